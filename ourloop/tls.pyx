# TLS over any asyncio stream transport: SSLProtocol and SSLTransport.
#
# SSLProtocol is the protocol the raw transport (ourloop's StreamTransport,
# or any other asyncio transport, the stdlib's selector transports
# included) talks to; SSLTransport is the transport the application's
# protocol gets. They follow the stdlib's asyncio.sslproto of the running
# Python (3.11's design on every version, 3.13's small changes on 3.13+):
# same states, same callback order, same errors and messages. The TLS work
# itself is the ssl module's: one ssl.SSLObject (sslcontext.wrap_bio) over
# two ssl.MemoryBIO, no OpenSSL call of our own.
#
# States of the TLS layer (`state`):
#
#   UNWRAPPED --connection_made--> DO_HANDSHAKE --handshake done--> WRAPPED
#   WRAPPED --close() or EOF from the peer--> FLUSHING --> SHUTDOWN
#   any --connection_lost / abort / handshake failure--> UNWRAPPED
#
# and of the app protocol (`app_state`): INIT --connection_made--> CON_MADE
# [--eof_received--> EOF] --connection_lost--> CON_LOST (start_tls builds
# the protocol in CON_MADE: the app protocol is connected already).
#
# How a TLS record travels in. The raw transport reads into _ssl_buffer
# (get_buffer() always hands out the same preallocated 256 KiB buffer);
# buffer_updated(n) copies those n bytes into the incoming BIO. (ourloop's
# stream transports do both without a Python call: read() into the
# bytearray, then _feed_raw(n); StreamTransport._read_into_tls.) In WRAPPED
# state SSLObject.read() then decrypts record after record: for a plain
# Protocol into `pbuf`, a per-connection buffer reused from read to read,
# and the whole lot goes to data_received() as one bytes object; for a
# BufferedProtocol straight into the buffer its get_buffer() returned, then
# buffer_updated(). When the peer's close_notify arrives (read() returns
# 0), the app gets eof_received() and the shutdown starts. Handshake and
# shutdown steps are driven by the same buffer_updated() calls.
#
# How application data travels out. SSLTransport.write() hands the bytes
# to SSLObject.write() at once (WRAPPED state, nothing waiting before them);
# the records land in the outgoing BIO, whose whole content goes to the raw
# transport's write() as one bytes object (after which the BIO is known to
# be empty: write flow control then needs no BIO_ctrl). Data written before the
# handshake is done, or while OpenSSL wants to read first, waits in the
# write backlog and is encrypted as soon as possible.
#
# Flow control. Reading: when the incoming BIO holds more than the read
# high-water mark (the app paused reading, or cannot keep up) the raw
# transport is paused, and resumed below the low-water mark, so a slow
# reader costs at most about two raw reads of memory. Writing: when the
# raw transport pauses us, the outgoing BIO is not drained; the app is
# paused when backlog + outgoing BIO exceed the write high-water mark.
#
# The per-record paths (get_buffer/buffer_updated, the read loop, write(),
# the outgoing flush, both flow controls) are cdef methods; the SSLObject's
# read()/write() are called on the C object behind it (SSLObject._sslobj)
# unless a subclass overrides them. Per-connection steps (handshake,
# shutdown, timeouts) are ordinary code on the loop's call_later().
#
# Renegotiation: TLS 1.3 has none. With TLS 1.2, a renegotiation the peer
# starts is OpenSSL's business inside SSLObject.read(): OpenSSL 3 refuses
# one a client starts against our server side (no_renegotiation alert) and
# follows one a server starts, as the stdlib does; every read is followed
# by a flush of the outgoing BIO, so OpenSSL's answer is always sent.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.contextvars cimport PyContext_CopyCurrent
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_WRITE, PyBUF_READ

import collections as _collections
import enum as _enum
import sys
import warnings

from asyncio import constants, protocols
from asyncio import exceptions as _aio_exceptions, transports as _transports
from asyncio.log import logger

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover
    _ssl = None

if _ssl is not None:
    _SSLAgainErrors = (_ssl.SSLWantReadError, _ssl.SSLSyscallError)
    _SSLError = _ssl.SSLError
    _CertificateError = _ssl.CertificateError
    _SSLObject_read = _ssl.SSLObject.read
    _SSLObject_write = _ssl.SSLObject.write
else:  # pragma: no cover
    class _NoSSL(Exception):
        pass
    _SSLAgainErrors = _SSLError = _CertificateError = _NoSSL
    _SSLObject_read = _SSLObject_write = None

try:
    from asyncio.sslproto import SSLProtocolState as _SSLProtocolState
    from asyncio.sslproto import AppProtocolState as _AppProtocolState
except ImportError:  # 3.9, 3.10: the old sslproto had no such enums
    class _SSLProtocolState(_enum.Enum):
        UNWRAPPED = "UNWRAPPED"
        DO_HANDSHAKE = "DO_HANDSHAKE"
        WRAPPED = "WRAPPED"
        FLUSHING = "FLUSHING"
        SHUTDOWN = "SHUTDOWN"

    class _AppProtocolState(_enum.Enum):
        STATE_INIT = "STATE_INIT"
        STATE_CON_MADE = "STATE_CON_MADE"
        STATE_EOF = "STATE_EOF"
        STATE_CON_LOST = "STATE_CON_LOST"


# 3.13 routes abort through _force_close (and so the exception, if any).
cdef bint _TLS_ABORT_FORCES_CLOSE = sys.version_info >= (3, 13)

# 3.9/3.10: an SSL transport's resume_reading() resumes the raw transport,
# so the connection's reads go on in the caller's context (3.11+ only
# schedule the delivery of what is buffered there).
cdef bint _RESUME_REREGISTERS_RAW = sys.version_info < (3, 11)


cdef enum:
    _S_UNWRAPPED = 0
    _S_DO_HANDSHAKE = 1
    _S_WRAPPED = 2
    _S_FLUSHING = 3
    _S_SHUTDOWN = 4

    _A_INIT = 0
    _A_CON_MADE = 1
    _A_EOF = 2
    _A_CON_LOST = 3

    _TLS_MAX_SIZE = 262144


cdef tuple _STATE_ENUMS = (
    _SSLProtocolState.UNWRAPPED, _SSLProtocolState.DO_HANDSHAKE,
    _SSLProtocolState.WRAPPED, _SSLProtocolState.FLUSHING,
    _SSLProtocolState.SHUTDOWN)
cdef tuple _APP_STATE_ENUMS = (
    _AppProtocolState.STATE_INIT, _AppProtocolState.STATE_CON_MADE,
    _AppProtocolState.STATE_EOF, _AppProtocolState.STATE_CON_LOST)


def _tls_constant(name, default):
    # 3.9/3.10 lack the SSL shutdown timeout and SSL flow-control constants.
    return getattr(constants, name, default)


def _create_transport_context(server_side, server_hostname):
    # ssl=True on a client: a default (verifying) context.
    if server_side:
        raise ValueError('Server side SSL needs a valid SSLContext')
    sslcontext = _ssl.create_default_context()
    if not server_hostname:
        sslcontext.check_hostname = False
    return sslcontext


def _flowcontrol_limits(high, low, kb):
    # The stdlib's add_flowcontrol_defaults().
    if high is None:
        if low is None:
            hi = kb * 1024
        else:
            lo = low
            hi = 4 * lo
    else:
        hi = high
    if low is None:
        lo = hi // 4
    else:
        lo = low
    if not hi >= lo >= 0:
        raise ValueError('high (%r) must be >= low (%r) must be >= 0' %
                         (hi, lo))
    return hi, lo


class _SSLProtocolBase(protocols.BufferedProtocol):
    """What SSLProtocol reports as its __class__: an asyncio.BufferedProtocol,
    so that transports feed it through get_buffer()/buffer_updated()."""
    __slots__ = ()


class _SSLTransportBase(_transports._FlowControlMixin, _transports.Transport):
    """What SSLTransport reports as its __class__: isinstance() with
    asyncio.Transport (and the _FlowControlMixin that loop.sendfile's
    fallback checks) holds, as for the stdlib's _SSLProtocolTransport."""
    __slots__ = ()


cdef class SSLTransport:
    """The transport an application protocol gets over TLS: the stdlib's
    asyncio.sslproto._SSLProtocolTransport."""

    # start_tls() over this transport (TLS in TLS): 3.11+, as the stdlib's
    # (3.9/3.10's transport does not advertise it; start_tls refuses it)
    _start_tls_compatible = sys.version_info >= (3, 11)
    _sendfile_compatible = constants._SendfileMode.FALLBACK

    def __init__(self, loop, SSLProtocol ssl_protocol):
        self._loop = loop
        self.proto = ssl_protocol
        self._closed = False

    @property
    def __class__(self):
        # A Cython class cannot subclass asyncio's Transport; isinstance()
        # falls back to __class__. type(t) stays ourloop's.
        return _SSLTransportBase

    cdef SSLProtocol _p(self):
        # The stdlib's transport forgets its protocol on a second close();
        # from then on its methods raise AttributeError (never a crash here).
        if self.proto is None:
            raise AttributeError("'NoneType' object has no attribute "
                                 "'_ssl_protocol'")
        return self.proto

    @property
    def _ssl_protocol(self):
        return self.proto

    def __repr__(self):
        return f'<{type(self).__name__} closed={bool(self._closed)}>'

    def get_extra_info(self, name, default=None):
        """Get optional transport information."""
        return self._p()._get_extra_info(name, default)

    def set_protocol(self, protocol):
        """Set a new application protocol."""
        self._p()._set_app_protocol(protocol)

    def get_protocol(self):
        """Return the current application protocol."""
        return self._p()._app_protocol

    def is_closing(self):
        """Return True once the transport is closing or closed."""
        return self._closed

    def close(self):
        """Close the transport: buffered data is flushed, the TLS session
        is shut down (close_notify), then connection_lost(None) follows."""
        if not self._closed:
            self._closed = True
            self._p()._start_shutdown_c()
        else:
            self.proto = None

    def __del__(self):
        if not self._closed:
            try:
                msg = f"unclosed transport {self!r}"
                self._closed = True
                warnings.warn(msg, ResourceWarning)
            except Exception:
                self._closed = True

    def is_reading(self):
        """Return True if the application protocol is receiving data."""
        return not self._p()._app_reading_paused

    def pause_reading(self):
        """Stop passing data to the protocol until resume_reading()."""
        self._p()._app_reading_paused = True

    def resume_reading(self):
        """Pass data to the protocol again."""
        cdef SSLProtocol proto = self._p()
        transport = proto._transport
        if _RESUME_REREGISTERS_RAW and proto._app_reading_paused \
                and proto.raw_is_stream and isinstance(transport, StreamTransport):
            # 3.9/3.10's SSL transport pauses and resumes the raw one, whose
            # reader is registered again in the caller's context: every
            # later read of the connection (and so data_received(),
            # eof_received()) runs there.
            (<StreamTransport>transport).context = PyContext_CopyCurrent()
        proto._resume_reading()

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the high- and low-water limits of write flow control."""
        cdef SSLProtocol proto = self._p()
        proto._set_write_buffer_limits(high, low)
        proto._control_app_writing_c()

    def get_write_buffer_limits(self):
        """Return (low, high), the write flow-control limits."""
        proto = self._p()
        return (proto._outgoing_low_water, proto._outgoing_high_water)

    def get_write_buffer_size(self):
        """Return the size of the write buffers (plaintext and records)."""
        return self._p()._write_size()

    def set_read_buffer_limits(self, high=None, low=None):
        """Set the high- and low-water limits of read flow control (when
        the raw transport is paused and resumed)."""
        cdef SSLProtocol proto = self._p()
        proto._set_read_buffer_limits(high, low)
        proto._control_ssl_reading_c()

    def get_read_buffer_limits(self):
        """Return (low, high), the read flow-control limits."""
        proto = self._p()
        return (proto._incoming_low_water, proto._incoming_high_water)

    def get_read_buffer_size(self):
        """Return the number of TLS bytes received and not decrypted yet."""
        return self._p()._incoming.pending

    @property
    def _protocol_paused(self):
        # loop.sendfile's fallback reads it
        return self._p()._app_writing_paused

    def write(self, data):
        """Write data; it is encrypted and sent asynchronously."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, "
                            f"got {type(data).__name__}")
        if not data:
            return
        self._p()._write_one(data)

    def writelines(self, list_of_data):
        """Write an iterable of bytes-like objects."""
        self._p()._write_many(list_of_data)

    def write_eof(self):
        """Not supported over TLS: raises NotImplementedError."""
        raise NotImplementedError

    def can_write_eof(self):
        """Return False: write_eof() is not supported over TLS."""
        return False

    def abort(self):
        """Close at once: buffered data is lost, no close_notify is sent;
        connection_lost(None) follows."""
        if _TLS_ABORT_FORCES_CLOSE:
            self._force_close(None)
        else:
            self._closed = True
            if self.proto is not None:
                self.proto._abort_c(None)

    def _force_close(self, exc):
        self._closed = True
        if self.proto is not None:
            self.proto._abort_c(exc)

    def _test__append_write_backlog(self, data):
        # for tests only (as the stdlib's)
        cdef SSLProtocol proto = self._p()
        proto.backlog.append(data)
        proto._write_buffer_size += len(data)


cdef class SSLProtocol:
    """TLS over an asyncio transport: the stdlib's 3.11+
    asyncio.sslproto.SSLProtocol (same arguments, states, callbacks and
    errors), with its per-record work in native code.

    SSLProtocol(loop, app_protocol, sslcontext, waiter, server_side=False,
    server_hostname=None, call_connection_made=True,
    ssl_handshake_timeout=None, ssl_shutdown_timeout=None)
    """

    max_size = _TLS_MAX_SIZE

    def __cinit__(self, *args, **kwargs):
        # What the native paths use without a None check exists from the
        # start, even if __init__ never runs.
        self._ssl_buffer = bytearray(_TLS_MAX_SIZE)
        self._ssl_buffer_view = memoryview(self._ssl_buffer)
        self.backlog = []
        self._extra = {}

    def __init__(self, loop, app_protocol, sslcontext, waiter,
                 server_side=False, server_hostname=None,
                 call_connection_made=True,
                 ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None):
        if _ssl is None:
            raise RuntimeError("stdlib ssl module not available")

        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _tls_constant('SSL_HANDSHAKE_TIMEOUT', 60.0)
        elif ssl_handshake_timeout <= 0:
            raise ValueError(
                f"ssl_handshake_timeout should be a positive number, "
                f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _tls_constant('SSL_SHUTDOWN_TIMEOUT', 30.0)
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(
                f"ssl_shutdown_timeout should be a positive number, "
                f"got {ssl_shutdown_timeout}")

        if not sslcontext:
            sslcontext = _create_transport_context(server_side, server_hostname)

        self._server_side = server_side
        if server_hostname and not server_side:
            self._server_hostname = server_hostname
        else:
            self._server_hostname = None
        self._sslcontext = sslcontext
        # more extra info once the handshake is done
        self._extra = dict(sslcontext=sslcontext)

        self.backlog = []
        self.backlog_head = 0
        self._write_buffer_size = 0

        self._waiter = waiter
        self._loop = loop
        self._set_app_protocol(app_protocol)
        self._app_transport = None
        self._app_transport_created = False
        self._transport = None
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._incoming = _ssl.MemoryBIO()
        self._outgoing = _ssl.MemoryBIO()
        self.in_write = self._incoming.write
        self.out_read = self._outgoing.read
        self.state = _S_UNWRAPPED
        self._conn_lost = 0
        self.app_state = _A_INIT if call_connection_made else _A_CON_MADE
        self._bind_sslobj(self._sslcontext.wrap_bio(
            self._incoming, self._outgoing,
            server_side=self._server_side,
            server_hostname=self._server_hostname))

        self._ssl_writing_paused = False
        self._app_reading_paused = False
        self._ssl_reading_paused = False
        self._set_read_buffer_limits()
        self._eof_received = False
        self._app_writing_paused = False
        self._set_write_buffer_limits()
        self._get_app_transport()

    @property
    def __class__(self):
        # isinstance(p, asyncio.BufferedProtocol) must hold: transports
        # check it to choose get_buffer()/buffer_updated().
        return _SSLProtocolBase

    # -- attributes of the stdlib's class -----------------------------------

    @property
    def _sslobj(self):
        return self.sslobj

    @_sslobj.setter
    def _sslobj(self, sslobj):
        self._bind_sslobj(sslobj)

    cdef _bind_sslobj(self, sslobj):
        # read()/write() of an ssl.SSLObject only forward to the C object
        # behind it: call that one (no Python frame per record), unless a
        # subclass (SSLContext.sslobject_class) overrides them.
        self.sslobj = sslobj
        target = sslobj
        cls = type(sslobj)
        if (isinstance(sslobj, _ssl.SSLObject)
                and getattr(cls, 'read', None) is _SSLObject_read
                and getattr(cls, 'write', None) is _SSLObject_write):
            inner = getattr(sslobj, '_sslobj', None)
            if inner is not None:
                target = inner
        self.sslread = target.read
        self.sslwrite = target.write
        # With the C object, a read that would only raise SSLWantReadError
        # (an exception costs more than the read) is skipped: nothing is
        # left when OpenSSL holds no decrypted bytes and the incoming BIO
        # is empty (the ssl module never turns on read-ahead).
        self.sslpending = target.pending if target is not sslobj else None

    @property
    def _state(self):
        return _STATE_ENUMS[self.state]

    @property
    def _app_state(self):
        return _APP_STATE_ENUMS[self.app_state]

    @property
    def _write_backlog(self):
        # a snapshot (the stdlib's is a deque)
        return _collections.deque(self.backlog[self.backlog_head:])

    @property
    def _app_protocol_get_buffer(self):
        return self.app_get_buffer

    @property
    def _app_protocol_buffer_updated(self):
        return self.app_buffer_updated

    def _set_app_protocol(self, app_protocol):
        self._app_protocol = app_protocol
        if (hasattr(app_protocol, 'get_buffer') and
                isinstance(app_protocol, protocols.BufferedProtocol)):
            self.app_get_buffer = app_protocol.get_buffer
            self.app_buffer_updated = app_protocol.buffer_updated
            self._app_protocol_is_buffer = True
        else:
            self.app_get_buffer = None
            self.app_buffer_updated = None
            self._app_protocol_is_buffer = False

    def _wakeup_waiter(self, exc=None):
        self._wakeup_waiter_c(exc)

    cdef _wakeup_waiter_c(self, exc):
        waiter = self._waiter
        if waiter is None:
            return
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)
        self._waiter = None

    def _get_app_transport(self):
        if self._app_transport is None:
            if self._app_transport_created:
                raise RuntimeError('Creating _SSLProtocolTransport twice')
            self._app_transport = SSLTransport(self._loop, self)
            self._app_transport_created = True
        return self._app_transport

    def _get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        elif self._transport is not None:
            return self._transport.get_extra_info(name, default)
        else:
            return default

    def _set_state(self, new_state):
        self._set_state_c(_STATE_ENUMS.index(new_state))

    cdef _set_state_c(self, int new_state):
        cdef int old = self.state
        if (new_state == _S_UNWRAPPED
                or (old == _S_UNWRAPPED and new_state == _S_DO_HANDSHAKE)
                or (old == _S_DO_HANDSHAKE and new_state == _S_WRAPPED)
                or (old == _S_WRAPPED and new_state == _S_FLUSHING)
                or (old == _S_FLUSHING and new_state == _S_SHUTDOWN)):
            self.state = new_state
        else:
            raise RuntimeError('cannot switch state from {} to {}'.format(
                _STATE_ENUMS[old], _STATE_ENUMS[new_state]))

    # -- protocol callbacks from the raw transport --------------------------

    def connection_made(self, transport):
        """The raw connection is made: start the TLS handshake."""
        self._transport = transport
        self.raw_is_stream = isinstance(transport, StreamTransport)
        self._start_handshake_c()

    def connection_lost(self, exc):
        """The raw connection is lost or closed."""
        self.backlog = []
        self.backlog_head = 0
        self._write_buffer_size = 0
        self.out_read()
        self._conn_lost += 1

        # only so that its __del__ does not complain
        if self._app_transport is not None:
            self._app_transport._closed = True

        if self.state != _S_DO_HANDSHAKE:
            if self.app_state == _A_CON_MADE or self.app_state == _A_EOF:
                self.app_state = _A_CON_LOST
                self._loop.call_soon(self._app_protocol.connection_lost, exc)
        self._set_state_c(_S_UNWRAPPED)
        self._transport = None
        self._app_transport = None
        self._app_protocol = None
        self.app_get_buffer = None
        self.app_buffer_updated = None
        self._wakeup_waiter_c(exc)

        if self._shutdown_timeout_handle:
            self._shutdown_timeout_handle.cancel()
            self._shutdown_timeout_handle = None
        if self._handshake_timeout_handle:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None

    def get_buffer(self, n):
        """The buffer the raw transport reads into (always the same)."""
        return self._ssl_buffer_view

    def buffer_updated(self, nbytes):
        """The raw transport read nbytes into the buffer: feed them to TLS."""
        cdef Py_ssize_t n = nbytes
        if n < 0 or n > PyByteArray_GET_SIZE(self._ssl_buffer):
            raise ValueError(f'nbytes out of range: {n}')
        self._feed_raw(n)

    cdef _feed_raw(self, Py_ssize_t n):
        # buffer_updated(n) of a valid n (ourloop's stream transports call
        # it directly)
        self.in_write(PyMemoryView_FromMemory(
            PyByteArray_AS_STRING(self._ssl_buffer), n, PyBUF_READ))
        self._on_incoming()

    def data_received(self, data):
        """TLS bytes from a transport that does not use get_buffer() (the
        pre-3.11 stdlib SSLProtocol was a plain Protocol)."""
        self.in_write(data)
        self._on_incoming()

    cdef _on_incoming(self):
        cdef int state = self.state
        if state == _S_DO_HANDSHAKE:
            self._do_handshake_c()
        elif state == _S_WRAPPED:
            self._do_read_c()
        elif state == _S_FLUSHING:
            self._do_flush_c()
        elif state == _S_SHUTDOWN:
            self._do_shutdown_c()

    def eof_received(self):
        """The peer closed its side of the raw connection."""
        self._eof_received = True
        try:
            if self._loop.get_debug():
                logger.debug("%r received EOF", self)

            if self.state == _S_DO_HANDSHAKE:
                self._on_handshake_complete_c(ConnectionResetError)
            elif self.state == _S_WRAPPED:
                self._set_state_c(_S_FLUSHING)
                if self._app_reading_paused:
                    return True
                else:
                    self._do_flush_c()
            elif self.state == _S_FLUSHING:
                self._do_write_c()
                self._set_state_c(_S_SHUTDOWN)
                self._do_shutdown_c()
            elif self.state == _S_SHUTDOWN:
                self._do_shutdown_c()
        except Exception:
            self._transport.close()
            raise

    def pause_writing(self):
        """The raw transport's buffer is over its high-water mark."""
        assert not self._ssl_writing_paused
        self._ssl_writing_paused = True

    def resume_writing(self):
        """The raw transport's buffer drained below its low-water mark."""
        assert self._ssl_writing_paused
        self._ssl_writing_paused = False
        self._process_outgoing_c()

    # -- handshake ----------------------------------------------------------

    def _start_handshake(self):
        self._start_handshake_c()

    cdef _start_handshake_c(self):
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start_time = self._loop.time()
        else:
            self._handshake_start_time = None
        self._set_state_c(_S_DO_HANDSHAKE)
        self._handshake_timeout_handle = self._loop.call_later(
            self._ssl_handshake_timeout, self._check_handshake_timeout)
        self._do_handshake_c()

    def _check_handshake_timeout(self):
        if self.state == _S_DO_HANDSHAKE:
            msg = (
                f"SSL handshake is taking longer than "
                f"{self._ssl_handshake_timeout} seconds: "
                f"aborting the connection"
            )
            self._fatal_error_c(ConnectionAbortedError(msg),
                                'Fatal error on transport')

    def _do_handshake(self):
        self._do_handshake_c()

    cdef _do_handshake_c(self):
        try:
            self.sslobj.do_handshake()
        except _SSLAgainErrors:
            self._process_outgoing_c()
        except _SSLError as exc:
            self._on_handshake_complete_c(exc)
        else:
            # The last handshake flight (a TLS 1.3 client's Finished) leaves
            # now: the stdlib's leaves it in the BIO until the first read, so
            # an app pausing reading in connection_made() stalls the peer.
            self._process_outgoing_c()
            self._on_handshake_complete_c(None)

    def _on_handshake_complete(self, handshake_exc):
        self._on_handshake_complete_c(handshake_exc)

    cdef _on_handshake_complete_c(self, handshake_exc):
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None

        sslobj = self.sslobj
        try:
            if handshake_exc is None:
                self._set_state_c(_S_WRAPPED)
            else:
                raise handshake_exc
            peercert = sslobj.getpeercert()
        except Exception as exc:
            handshake_exc = None
            self._set_state_c(_S_UNWRAPPED)
            if isinstance(exc, _CertificateError):
                msg = 'SSL handshake failed on verifying the certificate'
            else:
                msg = 'SSL handshake failed'
            self._fatal_error_c(exc, msg)
            self._wakeup_waiter_c(exc)
            return

        if self._loop.get_debug():
            dt = self._loop.time() - self._handshake_start_time
            logger.debug("%r: SSL handshake took %.1f ms", self, dt * 1e3)

        self._extra.update(peercert=peercert,
                           cipher=sslobj.cipher(),
                           compression=sslobj.compression(),
                           ssl_object=sslobj)
        if self.app_state == _A_INIT:
            self.app_state = _A_CON_MADE
            self._app_protocol.connection_made(self._get_app_transport())
        self._wakeup_waiter_c(None)
        self._do_read_c()

    # -- shutdown -----------------------------------------------------------

    def _start_shutdown(self):
        self._start_shutdown_c()

    cdef _start_shutdown_c(self):
        if self.state == _S_FLUSHING or self.state == _S_SHUTDOWN or self.state == _S_UNWRAPPED:
            return
        if self._app_transport is not None:
            self._app_transport._closed = True
        if self.state == _S_DO_HANDSHAKE:
            self._abort_c(None)
        else:
            self._set_state_c(_S_FLUSHING)
            self._shutdown_timeout_handle = self._loop.call_later(
                self._ssl_shutdown_timeout, self._check_shutdown_timeout)
            self._do_flush_c()

    def _check_shutdown_timeout(self):
        if self.state == _S_FLUSHING or self.state == _S_SHUTDOWN:
            self._raw_force_close(
                _aio_exceptions.TimeoutError('SSL shutdown timed out'))

    def _do_flush(self):
        self._do_flush_c()

    cdef _do_flush_c(self):
        self._do_read_c()
        self._set_state_c(_S_SHUTDOWN)
        self._do_shutdown_c()

    def _do_shutdown(self):
        self._do_shutdown_c()

    cdef _do_shutdown_c(self):
        try:
            if not self._eof_received:
                self.sslobj.unwrap()
        except _SSLAgainErrors:
            self._process_outgoing_c()
        except _SSLError as exc:
            self._on_shutdown_complete_c(exc)
        else:
            self._process_outgoing_c()
            self._call_eof_received_c()
            self._on_shutdown_complete_c(None)

    cdef _on_shutdown_complete_c(self, shutdown_exc):
        if self._shutdown_timeout_handle is not None:
            self._shutdown_timeout_handle.cancel()
            self._shutdown_timeout_handle = None
        if shutdown_exc:
            self._fatal_error_c(shutdown_exc, 'Fatal error on transport')
        else:
            self._loop.call_soon(self._transport.close)

    def _abort(self, exc=None):
        self._abort_c(exc)

    cdef _abort_c(self, exc):
        self._set_state_c(_S_UNWRAPPED)
        if self._transport is not None:
            if _TLS_ABORT_FORCES_CLOSE:
                self._raw_force_close(exc)
            else:
                self._transport.abort()

    # -- outgoing: app data -> SSLObject.write -> outgoing BIO -> raw -------

    def _write_appdata(self, list_of_data):
        self._write_many(list_of_data)

    cdef _write_one(self, data):
        # SSLTransport.write() of one non-empty bytes-like object.
        cdef Py_ssize_t size, count
        if self.state != _S_WRAPPED or self.backlog_head < len(self.backlog):
            self._write_many((data,))
            return
        try:
            size = data.nbytes if type(data) is memoryview else len(data)
            try:
                count = self.sslwrite(data)
            except _SSLAgainErrors:
                count = 0
            if count < size:
                self._backlog_append(memoryview(data).cast('B')[count:] if count else data)
            self._process_outgoing_c()
        except Exception as ex:
            self._fatal_error_c(ex, 'Fatal error on SSL protocol')

    cdef _write_many(self, list_of_data):
        if self.state == _S_FLUSHING or self.state == _S_SHUTDOWN or self.state == _S_UNWRAPPED:
            if self._conn_lost >= constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('SSL connection is closed')
            self._conn_lost += 1
            return
        for data in list_of_data:
            self._backlog_append(data)
        try:
            if self.state == _S_WRAPPED:
                self._do_write_c()
        except Exception as ex:
            self._fatal_error_c(ex, 'Fatal error on SSL protocol')

    cdef int _backlog_append(self, data) except -1:
        # Data waits as bytes: a bytearray or memoryview the caller reuses
        # must not change what is sent.
        if type(data) is not bytes:
            data = bytes(data)
        self.backlog.append(data)
        self._write_buffer_size += len(data)
        return 0

    def _do_write(self):
        self._do_write_c()

    cdef _do_write_c(self):
        cdef list backlog = self.backlog
        cdef Py_ssize_t count, size
        try:
            while self.backlog_head < len(backlog):
                data = backlog[self.backlog_head]
                count = self.sslwrite(data)
                size = len(data)
                if count < size:
                    backlog[self.backlog_head] = data[count:]
                    self._write_buffer_size -= count
                else:
                    backlog[self.backlog_head] = None
                    self.backlog_head += 1
                    self._write_buffer_size -= size
        except _SSLAgainErrors:
            pass
        finally:
            if self.backlog_head:
                if self.backlog_head >= len(backlog):
                    self.backlog = []
                else:
                    del backlog[:self.backlog_head]
                self.backlog_head = 0
        self._process_outgoing_c()

    def _process_outgoing(self):
        self._process_outgoing_c()

    cdef _process_outgoing_c(self):
        if not self._ssl_writing_paused:
            data = self.out_read()
            if len(<bytes>data):
                self._transport.write(data)
            # read() took the whole outgoing BIO, and the raw transport's
            # write() puts nothing back: no need to ask the BIO its size
            # (a Python attribute and a BIO_ctrl), twice per record.
            self._control_app_writing_size(self._write_buffer_size)
        else:
            self._control_app_writing_c()

    # -- incoming: raw -> incoming BIO -> SSLObject.read -> app protocol ----

    def _do_read(self):
        self._do_read_c()

    cdef _do_read_c(self):
        if self.state != _S_WRAPPED and self.state != _S_FLUSHING:
            return
        try:
            if not self._app_reading_paused:
                if self._app_protocol_is_buffer:
                    self._read_buffered()
                else:
                    self._read_copied()
                if self.backlog_head < len(self.backlog):
                    self._do_write_c()
                else:
                    self._process_outgoing_c()
            self._control_ssl_reading_c()
        except Exception as ex:
            self._fatal_error_c(ex, 'Fatal error on SSL protocol')

    cdef _read_buffered(self):
        # Decrypt straight into the app protocol's buffer.
        cdef Py_buffer view
        cdef Py_ssize_t offset = 0, wants, count = 1
        cdef char* base
        buf = self.app_get_buffer(self._incoming.pending)
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
        try:
            wants = view.len
            base = <char*>view.buf
            if wants <= 0:
                raise RuntimeError('get_buffer() returned an empty buffer')
            try:
                while offset < wants:
                    # the first read into the app's buffer itself, as the
                    # stdlib's (no memoryview to make and free), the next
                    # ones past what is filled
                    count = self.sslread(wants, buf) if offset == 0 else \
                        self.sslread(wants - offset, PyMemoryView_FromMemory(
                            base + offset, wants - offset, PyBUF_WRITE))
                    if count > 0:
                        offset += count
                        if self._nothing_left():
                            break
                    else:
                        break
                else:
                    # the buffer is full: more may be waiting
                    self._loop.call_soon(self._do_read)
            except _SSLAgainErrors:
                pass
        finally:
            PyBuffer_Release(&view)
        buf = None
        if offset > 0:
            self.app_buffer_updated(offset)
        if not count:
            # close_notify
            self._call_eof_received_c()
            self._start_shutdown_c()

    cdef _read_copied(self):
        # Decrypt every record available into pbuf, then one bytes object
        # for data_received() (several if more than pbuf holds arrived).
        cdef Py_ssize_t offset = 0, count = 1, size
        cdef char* base
        cdef list parts = None
        if self.pbuf is None:
            self.pbuf = bytearray(_TLS_MAX_SIZE)
        size = PyByteArray_GET_SIZE(self.pbuf)
        base = PyByteArray_AS_STRING(self.pbuf)
        try:
            while True:
                if offset == size:
                    if parts is None:
                        parts = []
                    parts.append(PyBytes_FromStringAndSize(base, offset))
                    offset = 0
                count = self.sslread(size - offset, PyMemoryView_FromMemory(
                    base + offset, size - offset, PyBUF_WRITE))
                if count <= 0:
                    break
                offset += count
                if self._nothing_left():
                    break
        except _SSLAgainErrors:
            pass
        if parts is not None:
            if offset:
                parts.append(PyBytes_FromStringAndSize(base, offset))
            self._app_protocol.data_received(b''.join(parts))
        elif offset:
            self._app_protocol.data_received(PyBytes_FromStringAndSize(base, offset))
        if count <= 0:
            # close_notify
            self._call_eof_received_c()
            self._start_shutdown_c()

    cdef bint _nothing_left(self) except -1:
        if self.sslpending is None:
            return False
        # The BIO first: while more records wait there (a large message),
        # SSLObject.pending(), which releases the GIL, is not called.
        return self._incoming.pending == 0 and self.sslpending() == 0

    def _call_eof_received(self):
        self._call_eof_received_c()

    cdef _call_eof_received_c(self):
        try:
            if self.app_state == _A_CON_MADE:
                self.app_state = _A_EOF
                keep_open = self._app_protocol.eof_received()
                if keep_open:
                    logger.warning('returning true from eof_received() '
                                   'has no effect when using ssl')
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as ex:
            self._fatal_error_c(ex, 'Error calling eof_received()')

    # -- flow control -------------------------------------------------------

    def _control_app_writing(self):
        self._control_app_writing_c()

    cdef _control_app_writing_c(self):
        self._control_app_writing_size(self._write_size())

    cdef _control_app_writing_size(self, Py_ssize_t size):
        # _control_app_writing() for this write buffer size (the outgoing
        # BIO's pending bytes plus the backlog's)
        if size >= self._outgoing_high_water and not self._app_writing_paused:
            self._app_writing_paused = True
            try:
                self._app_protocol.pause_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    'message': 'protocol.pause_writing() failed',
                    'exception': exc,
                    'transport': self._app_transport,
                    'protocol': self,
                })
        elif size <= self._outgoing_low_water and self._app_writing_paused:
            self._app_writing_paused = False
            try:
                self._app_protocol.resume_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    'message': 'protocol.resume_writing() failed',
                    'exception': exc,
                    'transport': self._app_transport,
                    'protocol': self,
                })

    cdef Py_ssize_t _write_size(self) except -1:
        return self._outgoing.pending + self._write_buffer_size

    def _get_write_buffer_size(self):
        return self._write_size()

    def _set_write_buffer_limits(self, high=None, low=None):
        high, low = _flowcontrol_limits(
            high, low, _tls_constant('FLOW_CONTROL_HIGH_WATER_SSL_WRITE', 512))
        self._outgoing_high_water = high
        self._outgoing_low_water = low

    def _pause_reading(self):
        self._app_reading_paused = True

    def _resume_reading(self):
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._resume_after_pause)

    def _resume_after_pause(self):
        if self.state == _S_WRAPPED:
            self._do_read_c()
        elif self.state == _S_FLUSHING:
            self._do_flush_c()
        elif self.state == _S_SHUTDOWN:
            self._do_shutdown_c()

    def _control_ssl_reading(self):
        self._control_ssl_reading_c()

    cdef _control_ssl_reading_c(self):
        cdef Py_ssize_t size = self._incoming.pending
        if size >= self._incoming_high_water and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._incoming_low_water and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()

    def _set_read_buffer_limits(self, high=None, low=None):
        high, low = _flowcontrol_limits(
            high, low, _tls_constant('FLOW_CONTROL_HIGH_WATER_SSL_READ', 256))
        self._incoming_high_water = high
        self._incoming_low_water = low

    def _get_read_buffer_size(self):
        return self._incoming.pending

    # -- errors -------------------------------------------------------------

    cdef _raw_force_close(self, exc):
        transport = self._transport
        if self.raw_is_stream and isinstance(transport, StreamTransport):
            (<StreamTransport>transport)._force_close(exc)
        else:
            transport._force_close(exc)

    def _fatal_error(self, exc, message='Fatal error on transport'):
        self._fatal_error_c(exc, message)

    cdef _fatal_error_c(self, exc, message):
        if self._transport:
            self._raw_force_close(exc)
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, _aio_exceptions.CancelledError):
            self._loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self._transport,
                'protocol': self,
            })
