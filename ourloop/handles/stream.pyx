# StreamTransport: an asyncio.Transport over a libuv stream (uv_stream_t).
#
# Everything a connected byte stream does the same way whatever it runs on
# (TCP and Unix sockets, pipes) lives in this file; handles/tcp.pyx adds what
# is a socket's own (opening over a socket, TCP_NODELAY, the listener) and
# handles/pipe.pyx what is a pipe's.
#
# Reads. libuv only tells that the stream is readable: the alloc callback
# gives it an empty buffer, which libuv answers with read_cb(UV_ENOBUFS)
# without reading. That queues the transport itself on the ready queue
# once per iteration (a Handle for _read_ready in debug mode), and the read
# happens when LoopCore._run_ready reaches it, in the transport's context,
# after the callbacks that were ready before, as the stdlib's reader
# callback does: one read() into the loop's one read buffer (LoopExt.rbuf)
# and a bytes object of the size read for data_received(), or, for an
# asyncio.BufferedProtocol, get_buffer(-1), one read() straight into that
# buffer, buffer_updated(n). Protocol code never runs inside uv_run(); debug
# mode times data_received like any callback; pause_reading() and close()
# stop reading at once; only one read's bytes are alive at a time, so
# memory is reused from read to read; and no buffer of the protocol is held
# between reads (it may resize or replace it at any time).
#
# Writes. write() keeps the bytes in `pending` (the bytes object itself
# for one write, a list from the second on) and queues the transport on
# LoopCore's flush queue (a chain through flush_next); before the loop next polls (or at once, if the loop is
# not running, 16 KiB or more are pending, or more than the high-water
# mark is buffered), _flush() hands
# all of it to the kernel in one uv_try_write() (one writev). What the
# kernel does not take goes to one uv_write() that keeps the objects alive
# until its callback; meanwhile new writes wait in `pending`. So N small
# writes of one iteration leave in one syscall, and nothing waits in a
# buffer while the loop sleeps.
#
# loop.sendfile() (the section "zero-copy sendfile" below; the per-call
# checks and the choice between this and the read/write fallback are
# Python, ourloop/_sendfile.py). While a sendfile is in progress write()
# raises the stdlib's RuntimeError and reading is paused (by _sendfile.py,
# through pause_reading()). It first waits until the write buffer is empty
# (nothing pending, no uv_write in flight: _after_drain resolves a future),
# then calls sendfile(2) from C on the stream's socket fd, again and again
# while the kernel takes data (at most _SF_STEP_BYTES per loop iteration,
# so that a fast reader cannot starve the loop). When the kernel says
# EAGAIN, it waits for writability with a uv_poll_t (SendfileWatch) on a
# dup() of the socket fd, whose callback sends the next bytes from inside
# uv_run (no Python code runs there; the result future is resolved, its
# callbacks run in the ready phase). Why a dup: the fd itself belongs to
# the uv_tcp_t/uv_pipe_t, and libuv keeps one watcher per fd number (a
# second libuv handle on the same number would replace the stream's own
# watcher); epoll registers the dup separately and reports the same
# socket's readiness for it. The dup is ours: it is closed right after
# uv_close() of the poll handle (which has taken it out of epoll), when the
# sendfile ends, is cancelled, or the transport closes; the poll handle is
# made on the first EAGAIN only, so a file that fits in the socket buffer
# costs no dup. close() and write_eof() during a sendfile wait for it to
# end, as they wait for buffered data; abort() (and loop.close()) end it
# with ConnectionError.
#
# Contexts (contextvars): each protocol callback runs in the context the
# stdlib's would. Reads run in `context`, a copy of the context current when
# the transport was made (the stdlib registers its reader with call_soon
# from its __init__) and taken again by resume_reading() (the stdlib
# registers the reader again, in the caller's context); _run_read enters
# it, so nothing is copied per read. Write completions run in `wcontext`,
# the context of the write() whose call registers the stdlib's writer (the
# first one since the buffer was empty that the kernel does not take whole):
# resume_writing(), connection_lost() after a close() that waited for the
# buffer, and a failed write's connection_lost(). A batch copies the
# context of its first write, and of each later one (pending_contexts);
# _flush picks the one whose bytes the kernel did not all take. Everything else (connection_lost() after close() or
# abort(), eof_received()...) is scheduled with call_soon in the context of
# whoever caused it, as in the stdlib. (TransportBase, handles/transport.pyx,
# holds the contexts and does the reads' part.)
#
# Lifetime. The loop keeps a transport alive (LoopCore._io_handles) exactly
# while libuv may call it: while it reads, while a uv_write is in flight,
# during a loop.sendfile(), and while a subclass's own watcher needs it (a
# write pipe's PipePeerWatch); _hold_update() keeps that up to date. So, as
# with the stdlib, whose selector keeps a transport alive only while a
# reader or writer is registered, a transport that is paused and has
# nothing to write can be garbage-collected once nothing else refers to
# it. LoopCore._open_transports() finds every transport whose handle is
# open (libuv's list of handles), for loop.close(). _close_handle() clears the handle's data
# pointer before uv_close(), so that no libuv callback reaches a freed
# transport (a cancelled uv_write's callback runs while it is still held).
#
# Unclosed transports. loop.close() closes the libuv handle of a transport
# still open but, as the stdlib, leaves it "open": the caller's socket (or
# pipe) stays open and the transport keeps it. A transport collected while
# it still has its socket (never closed, or closed too late for
# connection_lost() to run) warns ResourceWarning("unclosed transport
# ...") and closes it, as the stdlib's __del__ does (and, as 3.13's, tells
# its server the connection is gone).

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.contextvars cimport PyContext_CopyCurrent
from libc cimport errno as cerrno
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF, Py_XDECREF
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from posix.uio cimport iovec, readv
from posix.unistd cimport read as c_read
from posix.types cimport off_t

from ourloop.includes cimport uv
from ourloop.includes.uv cimport ourloop_count_close, ourloop_try_write
from ourloop.includes.callbacks cimport (
    ourloop_call_method1, ourloop_call_with_self, ourloop_raise_pending)

from ourloop.includes.platform cimport ourloop_sendfile

cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(object o)

cdef extern from "compat.h":
    void ourloop_bytes_reuse(object b, Py_ssize_t n)
    PyObject* ourloop_current_context()
    bint ourloop_context_same_vars(PyObject* copy, PyObject* cur)

cdef extern from "<sys/socket.h>" nogil:
    int c_shutdown "shutdown"(int fd, int how)
    const int SHUT_WR

import errno
import os
import sys
from asyncio import constants, exceptions, futures, protocols
from asyncio.log import logger
from asyncio.transports import Transport as _asyncio_Transport


cdef enum:
    _FLUSH_NOW_BYTES = 16384
    _SMALL_IOV = 16
    # sendfile(2): what one loop iteration sends at most before waiting for
    # the socket to be writable again (through the poll handle).
    _SF_STEP_BYTES = 4194304

# 3.12+ transports check write_eof() in writelines() itself.
cdef bint _WRITELINES_OWN_EOF_CHECK = sys.version_info >= (3, 12)


cdef inline bytes _kept(data):
    # What a write keeps until it is sent: bytes as they are, a copy of any
    # other bytes-like object (the caller may reuse its buffer).
    if type(data) is bytes:
        return <bytes>data
    return bytes(data)


cdef Py_ssize_t _pending_bufs(objs, uv.uv_buf_t* small, uv.uv_buf_t** out) except -1:
    # The iovecs of a pending batch (one bytes object or a list of them):
    # in `small` (room for _SMALL_IOV) or, for more, in memory malloc'ed
    # here, which the caller frees (*out is not small). Returns their count.
    cdef Py_ssize_t n, i
    cdef uv.uv_buf_t* bufs = small
    if type(objs) is bytes:
        small[0].base = PyBytes_AS_STRING(objs)
        small[0].len = <size_t>PyBytes_GET_SIZE(objs)
        out[0] = small
        return 1
    n = len(<list>objs)
    if n > _SMALL_IOV:
        bufs = <uv.uv_buf_t*>malloc(n * sizeof(uv.uv_buf_t))
        if bufs is NULL:
            raise MemoryError()
    for i in range(n):
        obj = (<list>objs)[i]
        bufs[i].base = PyBytes_AS_STRING(obj)
        bufs[i].len = <size_t>PyBytes_GET_SIZE(obj)
    out[0] = bufs
    return n


# -- asyncio streams: reads handed to the StreamReader directly -------------
#
# asyncio.start_server() and open_connection() give the transport an
# asyncio.StreamReaderProtocol, whose data_received() only hands each read
# to its StreamReader: `reader = self._stream_reader` (a property over a
# weak reference), then `reader.feed_data(data)`. Entering Python twice from
# C (the method, then the property's getter) costs more than what they do;
# for an exact StreamReaderProtocol whose data_received and _stream_reader
# are the stdlib's (on the class, checked again whenever it changes, and
# data_received on the instance), the transport does those two steps itself
# and calls reader.feed_data(data) (an attribute lookup, so a replaced
# feed_data is honoured). A subclass or a replaced method takes the Python
# path. (Both are the same on Python 3.9 to 3.13.) Doing feed_data's own
# work natively was tried and cost more: attribute access from C is slower
# than the interpreter's specialised bytecode.

from asyncio import streams as _asyncio_streams
from cpython.method cimport PyMethod_Check, PyMethod_GET_FUNCTION, PyMethod_GET_SELF

cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        unsigned int tp_version_tag
        PyObject* tp_dict

cdef object _SRP = _asyncio_streams.StreamReaderProtocol
cdef object _SRP_DATA_RECEIVED = _SRP.__dict__['data_received']
cdef object _SRP_STREAM_READER = _SRP.__dict__['_stream_reader']
# The version tag of StreamReaderProtocol when it was last found unpatched
# (0: not checked yet). CPython gives a class a new tag whenever it, or a
# base class, changes.
cdef unsigned int _srp_tag = 0


cdef bint _srp_unpatched() except -1:
    global _srp_tag
    if _srp_tag != 0 and _srp_tag == (<PyTypeObject*>_SRP).tp_version_tag:
        return True
    _srp_tag = 0
    if (getattr(_SRP, 'data_received') is not _SRP_DATA_RECEIVED
            or getattr(_SRP, '_stream_reader') is not _SRP_STREAM_READER
            or _SRP.__getattribute__ is not object.__getattribute__):
        return False
    # (The lookups above gave the class a tag, if it can have one.)
    _srp_tag = (<PyTypeObject*>_SRP).tp_version_tag
    return True


cdef inline bint _is_method(obj, name, func) except -1:
    # obj.name is the class's function `func`, bound to obj (not replaced
    # on the instance).
    meth = getattr(obj, name)
    return (PyMethod_Check(meth) and PyMethod_GET_FUNCTION(meth) is <void*>func
            and PyMethod_GET_SELF(meth) is <void*>obj)


cdef bint _feed_stream_reader(protocol, data) except -1:
    # StreamReaderProtocol.data_received(data) without its frame and its
    # property's (see above): True if done, False if
    # protocol.data_received(data) must be called.
    if not _srp_unpatched() or not _is_method(protocol, 'data_received', _SRP_DATA_RECEIVED):
        return False
    # data_received: reader = self._stream_reader (the property)
    wr = protocol._stream_reader_wr
    if wr is None:
        return True
    reader = wr()
    if reader is not None:
        reader.feed_data(data)
    return True


cdef inline void _keep_spare_bytes(LoopCore loop, object data, Py_ssize_t cap) noexcept:
    # data (an exact bytes object whose memory holds `cap` bytes, referred
    # to by the caller only) becomes the loop's spare bytes for the next
    # read (StreamTransport._read_data), in place of the previous one.
    cdef LoopExt* ext
    if cap < 2 or cap > _READ_BUF_SIZE or loop.uvloop is NULL:
        return
    ext = <LoopExt*>loop.uvloop
    Py_XDECREF(ext.spare)
    Py_INCREF(data)
    ext.spare = <PyObject*>data
    ext.spare_cap = cap


cdef void _stream_alloc_none(uv.uv_handle_t* handle, size_t suggested, uv.uv_buf_t* buf) noexcept nogil:
    # Readiness only: the transport reads in the ready phase itself (see
    # the top of this file).
    buf.base = NULL
    buf.len = 0


cdef void _stream_read(uv.uv_stream_t* stream, ssize_t nread, const uv.uv_buf_t* buf) noexcept nogil:
    _transport_readable(<uv.uv_handle_t*>stream, nread)


cdef void _stream_written(uv.uv_write_t* req, int status) noexcept nogil:
    _transport_write_done(req, req.data, status)


cdef void _io_handle_closed(uv.uv_handle_t* handle) noexcept with gil:
    # Close callback of transports: free the memory. (The transports clear
    # handle.data before uv_close(); a wrapper still named there is let go
    # by the loop.)
    cdef object owner
    cdef LoopCore loop
    ourloop_count_close(handle.type)
    _forget_ready_io(handle)
    if handle.data is not NULL and handle.loop.data is not NULL:
        # (loop.data is NULL while LoopCore.__dealloc__ runs.)
        loop = <LoopCore>handle.loop.data
        owner = <object>handle.data
        handle.data = NULL
        if loop._io_handles is not None:
            loop._io_handles.discard(owner)
    free(handle)


cdef class _SendfileState:
    """A loop.sendfile() in progress on a StreamTransport (its fields: see
    _core.pxd). Made by _sendfile_begin and dropped by _sendfile_end, so
    that an idle connection keeps none of it."""


cdef class SendfileWatch(PollHandle):
    """The uv_poll_t with which a loop.sendfile() waits for (a dup of) its
    transport's socket to be writable (see the top of this file)."""

    def __init__(self, *args, **kwargs):
        pass

    cdef on_events(self, int status, int events):
        # In uv_run: send the next bytes.
        cdef StreamTransport t = self.transport
        if status < 0:
            # POLLERR: libuv stopped the handle; sendfile(2) reports the
            # error.
            self.started = False
        if t is not None:
            try:
                t._sf_step()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                t._sf_finish(exc)


cdef class StreamTransport(TransportBase):
    """An asyncio.Transport over a libuv stream; see TCPTransport."""

    _made_by = 'loop.create_connection(), loop.create_server()'

    # loop.start_tls() accepts it, as the stdlib's socket transports (the
    # read/write pipe transports say False, as the stdlib's pipes have no
    # such attribute).
    _start_tls_compatible = True
    # loop.sendfile() uses sendfile(2) on this transport's socket (the
    # stdlib's socket transports say the same).
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    # (A read pipe says "pipe transport".)
    _read_error_message = 'Fatal read error on socket transport'

    @property
    def __class__(self):
        # isinstance(t, asyncio.Transport) must hold (code checks it), but a
        # Cython class cannot subclass asyncio's slotted Transport:
        # isinstance() falls back to __class__. type(t) stays ourloop's.
        return _asyncio_Transport

    # -- opening (per connection) -----------------------------------------

    cdef _attach_handle(self, LoopCore loop, uv.uv_stream_t* stream):
        # The transport takes over an open uv stream (its memory included).
        cdef uv.uv_os_fd_t fd
        self.loop = loop
        self.uvstream = stream
        self.uvfd = fd if uv.uv_fileno(<uv.uv_handle_t*>stream, &fd) == 0 else -1
        stream.data = <void*>self

    cdef bint _libuv_may_call(self) except -1:
        # (TransportBase._hold_update; see the top of this file.)
        return self.wreq is not NULL or (
            self.uvstream is not NULL
            and (self.reading or self.sf_active or self.pinned))

    cdef int _start_reading(self) except -1:
        cdef int err
        if self.rx_error is not None:
            # (resume_reading(): the error libuv met is reported now.)
            self._schedule_read()
            return 0
        if self.reading or self.uvstream is NULL or self.rx_eof:
            return 0
        err = uv.uv_read_start(self.uvstream, _stream_alloc_none, _stream_read)
        if err < 0:
            raise uv_error(err)
        self.reading = True
        self._hold_update()
        return 0

    cdef _stop_reading(self):
        if self.reading:
            self.reading = False
            if self.uvstream is not NULL:
                uv.uv_read_stop(self.uvstream)
            self._hold_update()

    def _setup(self, sock, protocol, waiter, extra, server, bint borrowed):
        # Per connection: the stdlib's socket-transport set-up (TCP and
        # Unix sockets).
        self._setup_socket(sock, extra, borrowed)
        self.set_protocol(protocol)
        self._server = server
        if server is not None:
            server._attach(self)
        self._configure_socket(sock)
        self.loop._call_soon(protocol.connection_made, (self,), None)
        self._start_reading()
        if waiter is not None:
            self.loop._call_soon(futures._set_result_unless_cancelled,
                                 (waiter, None), None)

    cdef _configure_socket(self, sock):
        pass

    # -- the protocol -----------------------------------------------------

    def set_protocol(self, protocol):
        """Set a new protocol; data is delivered to it from now on."""
        TransportBase.set_protocol(self, protocol)
        self.buffered = isinstance(protocol, protocols.BufferedProtocol)
        self.stream_reader_proto = type(protocol) is _SRP

    cdef _repr_io(self, list info):
        if self.uvstream is not NULL:
            info.append('read=polling' if self.reading else 'read=idle')
            state = 'polling' if self.wreq is not NULL else 'idle'
            info.append(f'write=<{state}, bufsize={self._bufsize()}>')

    # -- reading ----------------------------------------------------------

    cdef _on_read(self, ssize_t nread):
        # In uv_run: readable (UV_ENOBUFS, see _stream_alloc_none), or an
        # error libuv met; either way the ready phase deals with it.
        if nread == uv.UV_ENOBUFS:
            self.rx_ready = True
        elif nread < 0 and nread != uv.UV_EOF:
            self.rx_error = uv_error(<int>nread)
            self._stop_reading()
        else:
            return
        self._schedule_read()

    cdef _do_read_ready(self):
        # Ready phase: the stdlib's reader callback.
        if self._closing or self._paused:
            return
        if self.rx_error is not None:
            exc = self.rx_error
            self.rx_error = None
            self._fatal_error(exc, self._read_error_message)
            return
        if self.rx_ready:
            self.rx_ready = False
            self._read_once()

    cdef _read_once(self):
        # One read() and its delivery to the protocol.
        if self.buffered:
            self._read_into_protocol()
        else:
            self._read_data()

    cdef int _handle_fd(self) except -2:
        # The fd libuv's handle works on (reads, shutdown(), sendfile(2)),
        # or -1 once it is closed.
        if self.uvstream is NULL:
            return -1
        return self.uvfd

    cdef bint _read_failed(self, ssize_t nbytes, int code) except -1:
        # After a read(): True if there is nothing to deliver (would block,
        # error, EOF), with the error or EOF dealt with.
        if nbytes > 0:
            return False
        if nbytes < 0:
            if code == cerrno.EAGAIN or code == cerrno.EINTR:  # EWOULDBLOCK == EAGAIN
                return True
            self._stop_reading()
            self._fatal_error(OSError(code, os.strerror(code)),
                              'Fatal read error on socket transport')
            return True
        self._stop_reading()
        self.rx_eof = True
        self._eof_received()
        return True

    cdef _read_data(self):
        # One read() of at most _READ_BUF_SIZE bytes, delivered as a bytes
        # object. The loop keeps the bytes object of a read that nobody
        # kept (its refcount is 1 again once data_received() returned) as
        # its spare: the next read goes straight into it (readv: the
        # spare's memory first, then the read buffer) and, if it is at
        # least half its size, the spare itself becomes that read's bytes
        # (resized: no malloc, no free, no copy). A smaller read gets a
        # bytes object of its own size, so that a protocol keeping small
        # reads never keeps large blocks; the latest unkept bytes object
        # becomes the spare, so it follows the size of the reads.
        cdef LoopExt* ext
        cdef char* buf
        cdef char* sp
        cdef iovec iov[2]
        cdef ssize_t nbytes
        cdef Py_ssize_t cap, data_cap
        cdef PyObject* spare
        cdef PyObject* res
        cdef int fd = self.uvfd
        if fd < 0 or self.uvstream is NULL:
            return
        buf = _read_buffer(self.loop)
        ext = <LoopExt*>self.loop.uvloop
        spare = ext.spare
        cap = ext.spare_cap
        if spare is NULL:
            nbytes = c_read(fd, buf, _READ_BUF_SIZE)
        else:
            sp = PyBytes_AS_STRING(<object>spare)
            iov[0].iov_base = sp
            iov[0].iov_len = <size_t>cap
            iov[1].iov_base = buf
            iov[1].iov_len = <size_t>(_READ_BUF_SIZE - cap)
            nbytes = readv(fd, iov, 2)
        if nbytes <= 0 and self._read_failed(nbytes, cerrno.errno):
            return
        if spare is NULL:
            data = PyBytes_FromStringAndSize(buf, nbytes)
            data_cap = nbytes
        elif nbytes <= cap and nbytes * 2 >= cap:
            data = <object>spare
            ext.spare = NULL
            Py_DECREF(data)             # (the loop's reference, now data's)
            ourloop_bytes_reuse(data, nbytes)
            data_cap = cap
        else:
            data = PyBytes_FromStringAndSize(NULL, nbytes)
            if nbytes <= cap:
                memcpy(PyBytes_AS_STRING(data), sp, <size_t>nbytes)
            else:
                memcpy(PyBytes_AS_STRING(data), sp, <size_t>cap)
                memcpy(PyBytes_AS_STRING(data) + cap, buf, <size_t>(nbytes - cap))
            data_cap = nbytes
        if self.stream_reader_proto:
            try:
                if not _feed_stream_reader(self._protocol, data):
                    self._protocol.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal error: protocol.data_received() call failed.')
        else:
            # The same call, without a try set up for each read.
            res = ourloop_call_method1(self._protocol, 'data_received', data)
            if res is NULL:
                self._call_failed('Fatal error: protocol.data_received() call failed.')
            else:
                Py_DECREF(<object>res)
        if Py_REFCNT(data) == 1:
            # Nobody kept it: the next read may reuse it.
            _keep_spare_bytes(self.loop, data, data_cap)

    cdef int _call_failed(self, str message) except -1:
        # A protocol method called through ourloop_call_method1 raised (the
        # exception is set): what an `except BaseException` around the
        # call would do.
        try:
            ourloop_raise_pending()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, message)
        return 0

    cdef _read_into_protocol(self):
        # The stdlib's BufferedProtocol read: one read() straight into the
        # protocol's buffer.
        cdef Py_buffer view
        cdef ssize_t nbytes
        cdef int code
        cdef int fd = self._handle_fd()
        if fd < 0:
            return
        protocol = self._protocol   # (a reference of our own for the cdef call)
        if type(protocol) is SSLProtocol and (<SSLProtocol>protocol)._ssl_buffer is not None:
            self._read_into_tls(<SSLProtocol>protocol, fd)
            return
        try:
            buf = self._protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError('get_buffer() returned an empty buffer')
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.get_buffer() call failed.')
            return
        try:
            PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE | PyBUF_SIMPLE)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal read error on socket transport')
            return
        nbytes = c_read(fd, view.buf, <size_t>view.len)
        code = cerrno.errno
        PyBuffer_Release(&view)
        if self._read_failed(nbytes, code):
            return
        try:
            self._protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.buffer_updated() call failed.')

    cdef _read_into_tls(self, SSLProtocol proto, int fd):
        # _read_into_protocol() for ourloop's own SSLProtocol (not a
        # subclass): its get_buffer() always returns its 256 KiB bytearray
        # (which cannot be resized: its memoryview is out), and its
        # buffer_updated() is _feed_raw(); both without a Python call.
        cdef ssize_t nbytes
        cdef int code
        cdef bytearray buf = proto._ssl_buffer
        nbytes = c_read(fd, PyByteArray_AS_STRING(buf), <size_t>PyByteArray_GET_SIZE(buf))
        code = cerrno.errno
        if self._read_failed(nbytes, code):
            return
        try:
            proto._feed_raw(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.buffer_updated() call failed.')

    def _eof_received(self):
        if self.loop._debug_flag:
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.eof_received() call failed.')
            return
        if not keep_open:
            self.close()

    # -- writing ----------------------------------------------------------

    def write(self, data):
        """Write bytes-like data; it leaves before the loop next polls."""
        # (Calls with one positional argument come through _write_fast,
        # the METH_FASTCALL entry at the end of this file.)
        return self._write(data)

    cdef _write(self, data):
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f'data argument must be a bytes-like object, '
                                f'not {type(data).__name__!r}')
        if self._eof:
            raise RuntimeError('Cannot call write() after write_eof()')
        if self.sf_active:
            raise RuntimeError('unable to write; sendfile is in progress')
        if not data:
            return
        if self._conn_lost:
            self._conn_lost = _lost_write(self._conn_lost, 'socket.send() raised exception.')
            return
        self._queue_write(_kept(data))

    def writelines(self, list_of_data):
        """Write an iterable of bytes-like objects (they leave in one
        vectored write); nothing is written if one of them is not
        bytes-like."""
        if _WRITELINES_OWN_EOF_CHECK:
            if self._eof:
                raise RuntimeError('Cannot call writelines() after write_eof()')
            if self.sf_active:
                raise RuntimeError('unable to writelines; sendfile is in progress')
        chunks = [data if type(data) is bytes else bytes(memoryview(data))
                  for data in list_of_data]
        if self._eof:
            raise RuntimeError('Cannot call write() after write_eof()')
        if self.sf_active:
            raise RuntimeError('unable to write; sendfile is in progress')
        for data in chunks:
            if not data:
                continue
            if self._conn_lost:
                self._conn_lost = _lost_write(self._conn_lost, 'socket.send() raised exception.')
                return
            self._queue_write(<bytes>data)

    cdef _queue_write(self, bytes data):
        if self.pending is None:
            if self.wreq is NULL:
                # Nothing buffered: where the stdlib's write() would
                # register its writer, whose callback runs resume_writing()
                # and the connection_lost() of a waiting close(). The copy
                # the previous such write made is kept when it still has
                # the current context's variables (a context's variables
                # are immutable; setting one replaces them) and nothing
                # else refers to it (no callback was scheduled in it), as
                # a new copy would be equal to it: one allocation less per
                # write.
                wcontext = self.wcontext
                if wcontext is None or Py_REFCNT(wcontext) != 2 or not ourloop_context_same_vars(
                        <PyObject*>wcontext, ourloop_current_context()):
                    self.wcontext = PyContext_CopyCurrent()
            # One write pending is the bytes object itself, two or more a
            # list (no list is made for the common single write).
            self.pending = data
        else:
            if self.wreq is NULL:
                # A later write of a batch that started on an empty buffer:
                # the stdlib's writer is registered by the first write the
                # kernel does not take whole, which is this one if the
                # flush sends everything before it (see _flush).
                if self.pending_contexts is None:
                    self.pending_contexts = [None] * (
                        1 if type(self.pending) is bytes else len(<list>self.pending))
                self.pending_contexts.append(PyContext_CopyCurrent())
            if type(self.pending) is bytes:
                self.pending = [self.pending, data]
            else:
                (<list>self.pending).append(data)
        self.pending_size += PyBytes_GET_SIZE(data)
        if not self.loop._running:
            # Nobody would flush before the loop polls again.
            self._flush()
        elif self.pending_size >= _FLUSH_NOW_BYTES or self._bufsize() > self._high_water:
            # Batching helps small writes; large ones leave at once, so that
            # their memory is reused rather than piling up until the flush.
            self._flush()
        elif not self.flush_queued:
            # (LoopCore._queue_flush(self), without the call.)
            loop = self.loop
            self.flush_queued = True
            if loop._flush_tail is None:
                loop._flush_head = self
            else:
                loop._flush_tail.flush_next = self
            loop._flush_tail = self
            return
        self._maybe_pause_protocol()

    cdef int _flush(self) except -1:
        # Hand everything pending to the kernel: one writev now; what it
        # does not take goes to one uv_write (at most one in flight).
        objs = self.pending
        cdef list contexts = self.pending_contexts
        cdef uv.uv_buf_t small[_SMALL_IOV]
        cdef uv.uv_buf_t* bufs = small
        cdef Py_ssize_t n, i, total, written, first
        cdef uv.uv_write_t* req
        cdef int err
        if objs is None or self.wreq is not NULL or self.uvstream is NULL:
            return 0
        total = self.pending_size
        if type(objs) is bytes:
            # (_pending_bufs' first case, without the call.)
            small[0].base = PyBytes_AS_STRING(objs)
            small[0].len = <size_t>PyBytes_GET_SIZE(objs)
            n = 1
        else:
            n = _pending_bufs(objs, small, &bufs)
        try:
            written = ourloop_try_write(self.uvstream, self.uvfd, bufs, <unsigned int>n)
            if written == uv.UV_EAGAIN:
                written = 0
            elif written < 0:
                self.pending = None
                self.pending_size = 0
                self.pending_contexts = None
                self._write_error(uv_error(<int>written))
                return 0
            self.pending = None
            self.pending_size = 0
            self.pending_contexts = None
            if written == total:
                if type(objs) is bytes and Py_REFCNT(objs) == 1:
                    # A write nobody else refers to (an echo of a read,
                    # say): the next read may reuse it (see _read_data).
                    _keep_spare_bytes(self.loop, objs, PyBytes_GET_SIZE(objs))
                return 0
            # Skip what left, send the rest with uv_write.
            first = 0
            while <Py_ssize_t>bufs[first].len <= written:
                written -= bufs[first].len
                first += 1
            if first and contexts is not None and contexts[first] is not None:
                # Earlier writes left whole: the writer is this one's.
                self.wcontext = contexts[first]
            bufs[first].base += written
            bufs[first].len -= written
            req = <uv.uv_write_t*>malloc(sizeof(uv.uv_write_t))
            if req is NULL:
                raise MemoryError()
            req.data = <void*>self
            err = uv.uv_write(req, self.uvstream, bufs + first,
                              <unsigned int>(n - first), _stream_written)
            if err < 0:
                free(req)
                self._write_error(uv_error(err))
                return 0
            self.wreq = req
            self.inflight_objs = objs
            self.inflight = <Py_ssize_t>bufs[first].len
            for i in range(first + 1, n):
                self.inflight += <Py_ssize_t>bufs[i].len
            self._hold_update()
        finally:
            if bufs is not small:
                free(bufs)
        return 0

    cdef _on_write_done(self, int status):
        # In uv_run: the uv_write has finished (or was cancelled by close).
        # (The caller holds a reference: letting go of the loop's is safe.)
        self.wreq = NULL
        self.inflight_objs = None
        self.inflight = 0
        self._hold_update()
        if status < 0:
            if status != uv.UV_ECANCELED and not self._conn_lost and not self.loop._closed:
                self._write_error(uv_error(status))
            return
        if self.loop._closed:
            return
        if self.pending is not None:
            self._flush()
            if self._conn_lost:
                # It failed: connection_lost() is on its way, no
                # resume_writing() (the stdlib's _write_ready returns).
                return
        if self._protocol_paused and not self.resume_scheduled \
                and self._bufsize() <= self._low_water:
            self.resume_scheduled = True
            self.loop._call_soon(self._resume_protocol_writing, (), self.wcontext)
        elif self.pending is None and self.wreq is NULL:
            self._after_drain(self.wcontext)

    cdef _write_error(self, exc):
        # A write failed: the stdlib's write() or writer callback calls
        # _fatal_error, so connection_lost() is scheduled from the writer's
        # context.
        self.lost_context = self.wcontext
        try:
            self._fatal_error(exc, 'Fatal write error on socket transport')
        finally:
            self.lost_context = None

    cdef _after_drain(self, context):
        # Everything was written: a close() or write_eof() may complete;
        # during a loop.sendfile() they wait for its end (_sendfile_end),
        # and the sendfile, waiting for the buffer to be empty, goes on.
        if self.sf_active:
            waiter = self.sf.waiter
            if not self.sf.sending and waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if self._closing:
            if not self._conn_lost:
                self._conn_lost += 1
                self.loop._call_soon(self._call_connection_lost, (None,), context)
        elif self._eof:
            self._shutdown_write()

    def _resume_protocol_writing(self):
        # Ready phase (the stdlib's _maybe_resume_protocol, then what its
        # _write_ready does once the buffer is empty).
        self.resume_scheduled = False
        self._maybe_resume_protocol()
        if self.pending is not None and self.wreq is NULL:
            self._flush()
        if self.pending is None and self.wreq is NULL:
            self._after_drain(None)

    cdef inline Py_ssize_t _bufsize(self) noexcept:
        # What the stdlib calls the write buffer: pending writes, plus what
        # the in-flight uv_write has not written yet (libuv counts it).
        if self.inflight and self.uvstream is not NULL:
            return self.pending_size + <Py_ssize_t>self.uvstream.write_queue_size
        return self.pending_size + self.inflight

    cdef Py_ssize_t _buffer_size(self) except -1:
        return self._bufsize()

    def get_write_buffer_size(self):
        """Bytes written but not yet taken by the kernel."""
        # Writes wait for the end of the iteration; asking is a reason to
        # send them now, so the answer is what the stdlib's would be.
        if self.pending is not None:
            self._flush()
        return self._bufsize()

    def can_write_eof(self):
        """Return True: a stream can be half-closed."""
        return True

    def write_eof(self):
        """Close the write end once the buffered data has been sent."""
        if self._closing or self._eof:
            return
        self._eof = True
        self._flush()
        if self.pending is None and self.wreq is NULL and not self.sf_active \
                and not self.resume_scheduled:
            self._shutdown_write()

    cdef _shutdown_write(self):
        cdef uv.uv_os_fd_t fd
        if self.shutdown_done or self.uvstream is NULL:
            return
        self.shutdown_done = True
        fd = self.uvfd
        if fd >= 0:
            # Errors (the peer is gone) show up on the next read.
            c_shutdown(fd, SHUT_WR)

    # -- closing ----------------------------------------------------------

    def close(self):
        """Close: buffered data is sent, then connection_lost(None) is
        called; no more data is delivered."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if self.pending is not None:
            self._flush()
        # (A resume_writing() still to come may write more: the stdlib
        # calls it in the step that empties its buffer, before it could
        # close; _resume_protocol_writing completes the close then.)
        if self.pending is None and self.wreq is NULL and not self._conn_lost \
                and not self.sf_active and not self.resume_scheduled:
            self._schedule_connection_lost(None, None)

    cdef _drop_writes(self, exc):
        # _force_close(): the pending batch is sent once, then dropped.
        if self.pending is not None:
            self._send_before_drop()
        self.pending = None
        self.pending_size = 0
        self.pending_contexts = None
        # An in-flight uv_write is cancelled when the handle closes (at
        # connection_lost); its bytes no longer count as buffered.
        self.inflight = 0
        if exc is not None and self.sf_active and not self.sf.sending:
            # A write error while a sendfile waits for the buffer to empty:
            # the sendfile fails with it (the stdlib's _write_ready).
            waiter = self.sf.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)

    cdef _send_before_drop(self):
        # The pending batch is about to be dropped (abort(), a fatal error,
        # _force_close(), loop.close()). The stdlib's write() sends at once
        # when its buffer is empty, so by now it would have handed these
        # bytes to the kernel: one non-blocking writev of the batch, its
        # result ignored (what the kernel does not take is dropped, as the
        # stdlib drops its buffer). With a uv_write in flight the stdlib's
        # buffer was not empty, and it would not have tried: nothing is
        # sent.
        objs = self.pending
        cdef uv.uv_buf_t small[_SMALL_IOV]
        cdef uv.uv_buf_t* bufs = small
        cdef Py_ssize_t n
        if objs is None or self.wreq is not NULL or self.uvstream is NULL \
                or self.uvfd < 0 or uv.uv_is_closing(<uv.uv_handle_t*>self.uvstream):
            return
        try:
            n = _pending_bufs(objs, small, &bufs)
        except MemoryError:
            return
        uv.uv_try_write(self.uvstream, bufs, <unsigned int>n)
        if bufs is not small:
            free(bufs)

    def _call_connection_lost(self, exc):
        if self.sf_active:
            self._sf_finish(ConnectionError('Connection is closed by peer'))
        try:
            TransportBase._call_connection_lost(self, exc)
        finally:
            self.wcontext = None

    cdef _fd_moved(self):
        # (TransportBase._fd_moved.) Reads, writes and shutdown() go
        # through uvfd: none touches the number from now on.
        self.uvfd = -1

    cdef _close_handle(self):
        # libuv closes the fd it was given; pending uv_writes are cancelled
        # (their callback runs while the loop still holds the transport).
        cdef uv.uv_stream_t* stream = self.uvstream
        # A sendfile's dup of the fd goes first (it would keep the socket
        # open).
        self._sf_release()
        if stream is NULL:
            return
        if self.sock is _LAZY_SOCK:
            # The socket object, if it is to exist, must be made while its
            # fd is open (see TransportBase._get_sock); failing that (out
            # of memory), 'socket' will be None.
            try:
                self._get_sock()
            except Exception:
                pass
        self.uvstream = NULL
        self.uvfd = -1
        self.reading = False
        # No read callback from now on; the close callback only frees.
        stream.data = NULL
        if not uv.uv_is_closing(<uv.uv_handle_t*>stream):
            # (An fd number that now names another file is not closed.)
            uv.ourloop_release_moved_fd(&(<LoopExt*>stream.loop).fdids,
                                        <uv.uv_handle_t*>stream)
            uv.uv_close(<uv.uv_handle_t*>stream, _io_handle_closed)
        self._hold_update()

    def _uv_close(self):
        # The loop closes with this transport still open: the pending batch
        # is sent once and dropped, then TransportBase's.
        self._send_before_drop()
        self.pending = None
        self.pending_size = 0
        self.pending_contexts = None
        TransportBase._uv_close(self)

    # -- zero-copy sendfile (loop.sendfile; see the top of this file) -----

    def _sendfile_begin(self):
        """Start a loop.sendfile(): from now on write() is refused. Returns
        a future done when the write buffer is empty (pending writes and the
        uv_write in flight have left)."""
        if self.sf_active:
            raise RuntimeError('Empty waiter is already set')
        waiter = self.loop.create_future()
        self.sf = _SendfileState()
        self.sf_active = True
        self._hold_update()
        self.sf.sending = False
        self.sf.waiter = waiter
        self.sf.total = 0
        if self.pending is not None:
            self._flush()
        if self.pending is None and self.wreq is NULL and not waiter.done():
            waiter.set_result(None)
        return waiter

    def _sendfile_run(self, int fileno, long long offset, long long count,
                      long long blocksize):
        """Send the file `fileno` from `offset` with sendfile(2): `count`
        bytes (0: until end of file), asking for `blocksize` bytes a call.
        Returns a future of the number of bytes sent; it fails with
        SendfileNotAvailableError if the first bytes could not be sent."""
        if not self.sf_active or self.sf.sending:
            raise RuntimeError('no loop.sendfile() waits to run')
        if self._conn_lost or self.uvstream is NULL:
            raise ConnectionError('Connection is closed by peer')
        fut = self.loop.create_future()
        self.sf.waiter = fut
        self.sf.sending = True
        self.sf.in_fd = fileno
        self.sf.offset = offset
        self.sf.count = count
        self.sf.blocksize = blocksize
        self.sf.total = 0
        self.sf.calls = 0
        self._sf_step()
        return fut

    def _sendfile_end(self):
        """End the loop.sendfile() (done, failed or cancelled): returns the
        bytes sendfile(2) sent. write() works again, and a close() or
        write_eof() called meanwhile proceeds."""
        cdef long long sent = self.sf.total if self.sf is not None else 0
        self._sf_release()
        self.sf_active = False
        self._hold_update()
        self.sf = None
        if self.uvstream is not NULL and self.pending is None and self.wreq is NULL \
                and (self._closing or self._eof):
            self._after_drain(None)
        return sent

    cdef int _sf_step(self) except -1:
        # Call sendfile(2) while the socket takes data (up to
        # _SF_STEP_BYTES), then wait for it to be writable; at the end (all
        # sent, end of file, an error) resolve the result future. Runs in
        # _sendfile_run and in the poll callback (inside uv_run).
        cdef int out_fd, in_fd, code
        cdef off_t off
        cdef ssize_t n
        cdef size_t want
        cdef long long budget = _SF_STEP_BYTES
        if self.sf is None or not self.sf.sending:
            return 0
        waiter = self.sf.waiter
        if waiter is None or waiter.done():
            # Cancelled: the caller's clean-up (_sendfile_end) follows.
            self.sf.sending = False
            self._sf_release()
            return 0
        out_fd = self._handle_fd()
        if self._conn_lost or out_fd < 0:
            self._sf_finish(ConnectionError('Connection is closed by peer'))
            return 0
        in_fd = self.sf.in_fd
        while True:
            if self.sf.count:
                if self.sf.total >= self.sf.count:
                    self._sf_finish(None)
                    return 0
                want = <size_t>(self.sf.count - self.sf.total)
            else:
                want = <size_t>self.sf.blocksize
            off = <off_t>self.sf.offset
            with nogil:
                n = ourloop_sendfile(out_fd, in_fd, &off, want)
                code = cerrno.errno if n < 0 else 0
            self.sf.calls += 1
            if n < 0:
                if code == cerrno.EINTR:
                    continue
                if code == cerrno.EAGAIN:
                    break
                self._sf_finish(self._sf_error(code))
                return 0
            if n == 0:
                # End of file.
                self._sf_finish(None)
                return 0
            self.sf.offset += n
            self.sf.total += n
            budget -= n
            if budget <= 0:
                break
        try:
            self._sf_wait_writable(out_fd)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._sf_finish(exc)
        return 0

    def _sf_error(self, int code):
        # The stdlib's errors (unix_events._sock_sendfile_native_impl):
        # ENOTCONN after the first call is a ConnectionError, and nothing
        # sent yet means "use the fallback".
        exc = OSError(code, os.strerror(code))
        if code == cerrno.ENOTCONN and self.sf.calls > 1 and type(exc) is not ConnectionError:
            new_exc = ConnectionError('socket is not connected', errno.ENOTCONN)
            new_exc.__cause__ = exc
            exc = new_exc
        if self.sf.total == 0:
            exc = exceptions.SendfileNotAvailableError('os.sendfile call failed')
        return exc

    cdef int _sf_wait_writable(self, int out_fd) except -1:
        # The poll handle on a dup of the socket fd (made the first time).
        cdef SendfileWatch watch = self.sf.watch
        cdef int fd
        if watch is None:
            fd = os.dup(out_fd)
            try:
                watch = SendfileWatch(self.loop, fd)
            except BaseException:
                os.close(fd)
                raise
            watch.transport = self
            self.sf.watch = watch
        if not watch.started:
            watch.start(uv.UV_WRITABLE)
            watch.started = True
        return 0

    cdef _sf_finish(self, exc):
        # The sendfile(2) calls are over: the result future gets the byte
        # count or exc.
        if self.sf is None:
            return
        self.sf.sending = False
        self._sf_release()
        waiter = self.sf.waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(self.sf.total)
            else:
                waiter.set_exception(exc)

    cdef _sf_release(self):
        # Close the poll handle, then its dup (uv_close has already taken
        # it out of epoll).
        cdef SendfileWatch watch
        if self.sf is None:
            return
        watch = self.sf.watch
        if watch is None:
            return
        self.sf.watch = None
        watch.transport = None
        watch.close_with_fd()

    def __dealloc__(self):
        if self.wreq is not NULL:
            # Cannot happen while the handle is open (the loop holds us);
            # a cancelled request's callback would find freed memory.
            self.wreq.data = NULL
        if self.uvstream is not NULL:
            self.uvstream.data = NULL
            close_and_free(<uv.uv_handle_t*>self.uvstream)
            self.uvstream = NULL


# -- the METH_FASTCALL entries of write() -----------------------------------
#
# transport.write(data) runs once per write, called from Python code. A
# Cython def method is a cyfunction: each call goes through its generic
# argument parsing. A method descriptor with METH_FASTCALL | METH_KEYWORDS
# is called by the interpreter's specialised CALL directly, if it belongs
# to the exact type of the transport (the specialisation checks it): so
# the entry is installed in the type dict of StreamTransport and of each
# concrete class that inherits its write() (TCPTransport; PipeTransport,
# the Unix socket's), with the def method's name, docstring and
# signature. It takes the usual call, one positional argument, and hands
# any other (data=..., wrong counts) to the def method, whose errors are
# the ones callers see.

cdef extern from "Python.h":
    ctypedef struct _StreamMethodDef "PyMethodDef":
        const char* ml_name
        void* ml_meth
        int ml_flags
        const char* ml_doc
    object _stream_descr_new_method "PyDescr_NewMethod"(type tp, _StreamMethodDef* meth)
    void _stream_type_modified "PyType_Modified"(type tp)
    enum:
        _STREAM_METH_FASTCALL "METH_FASTCALL"
        _STREAM_METH_KEYWORDS "METH_KEYWORDS"


cdef object _generic_write = StreamTransport.__dict__['write']
cdef _StreamMethodDef _write_def
cdef list _write_def_strings = []        # what _write_def's strings point into


cdef object _write_fast(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if nargs != 1 or kwnames is not NULL:
        return ourloop_call_with_self(_generic_write, self, args, nargs, kwnames)
    return (<StreamTransport>self)._write(<object>args[0])


cdef _install_write_fast(tuple types):
    name_b = b'write'
    doc = (_generic_write.__doc__ or '').partition('\n\n')[2]
    doc_b = f'write($self, data)\n--\n\n{doc}'.encode()
    _write_def_strings.extend((name_b, doc_b))
    _write_def.ml_name = name_b
    _write_def.ml_meth = <void*>_write_fast
    _write_def.ml_flags = _STREAM_METH_FASTCALL | _STREAM_METH_KEYWORDS
    _write_def.ml_doc = doc_b
    for tp in types:
        (<object>(<PyTypeObject*>tp).tp_dict)['write'] = _stream_descr_new_method(
            tp, &_write_def)
        _stream_type_modified(tp)


_install_write_fast((StreamTransport, TCPTransport, PipeTransport))
