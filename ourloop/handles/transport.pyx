# TransportBase: what every transport of ourloop shares, whatever it runs
# on. StreamTransport (handles/stream.pyx: TCP, Unix sockets, pipes) and
# UDPTransport (handles/udp.pyx) derive from it; LoopCore knows transports
# only through it.
#
# What lives here, once:
# - the protocol (set_protocol, get_protocol), the extra info, the socket
#   the transport keeps for its caller (`sock`, `_sock`) and its release;
# - closing state: `_closing`, `_conn_lost`, and the paths that end a
#   transport: _force_close() (abort), _fatal_error(), connection_lost()
#   scheduled (_schedule_connection_lost) and run (_call_connection_lost,
#   which closes the libuv handle and the socket), loop.close()
#   (_uv_close) and the ResourceWarning of a transport collected open
#   (__del__);
# - flow control: the water marks, pause_writing()/resume_writing()
#   calls (_maybe_pause_protocol, _maybe_resume_protocol, _tell_protocol);
# - the ready-queue read entry: libuv says "readable" (recorded without
#   the GIL by _transport_readable, handed over by _deliver_ready_io once
#   the loop holds it), the transport calls _schedule_read(), which puts the transport itself on LoopCore's ready
#   queue once per iteration (a Handle for _read_ready in debug mode, so
#   that the read is timed and named like any callback); LoopCore._run_ready
#   calls _run_read() (the one virtual entry it knows), which runs the
#   subclass's _do_read_ready() in the transport's context;
# - the write batch's entry: LoopCore's flush queue (a chain through
#   flush_next, from _flush_head) holds transports whose writes wait for
#   the end of the iteration; LoopCore._flush_streams calls _flush() on
#   each;
# - lifetime: _hold_update() keeps the transport in LoopCore._io_handles
#   exactly while libuv may call it (the subclass says when:
#   _libuv_may_call());
# - opening over a socket (_adopt_or_dup): a socket the loop made is
#   adopted (its fd detached and given to libuv; the transport's socket
#   object becomes a _BorrowedSocket naming the same fd), a caller's socket
#   is left to the caller and libuv gets a dup() of it (see handles/tcp.pyx
#   for who owns each fd).
#
# Where a subclass overrides, it is because the stdlib's transports differ:
# the pipe transports log only EIO read errors (_only_logged) and drop
# writes after a failed one (WritePipeTransport._fatal_error); stream
# transports finish a loop.sendfile() before connection_lost() and send
# their pending batch once before dropping it.

from cpython.contextvars cimport PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit
from ourloop.includes.callbacks cimport ourloop_list_append_if_room
from ourloop.includes.sockaddr cimport (
    ourloop_inaddr_family, ourloop_inaddr_get, ourloop_inaddr_obj)
from libc.stdlib cimport malloc, free, realloc

import os
import socket
import sys
import warnings
from asyncio import constants, trsock
from asyncio.log import logger


# Opens a transport whose libuv handle owns fd (on failure the fd is still
# the caller's to close): _open_socket_fd (handles/tcp.pyx), _udp_open_fd.
cdef enum:
    # The size of the loop's read buffer: one read() takes at most this
    # (the stdlib's max_size for streams and datagrams alike).
    _READ_BUF_SIZE = 262144


ctypedef TransportBase (*_fd_opener)(LoopCore loop, int fd, int family)

# The names of the extra info a transport over an IP socket makes only when
# asked (TransportBase.extra); any other name gets the default until then.
cdef frozenset _LAZY_EXTRA = frozenset(('socket', 'sockname', 'peername'))

# TransportBase.sock of an accepted connection until its socket object is
# needed (_get_sock): asked for, or the fd is about to close.
cdef object _LAZY_SOCK = object()


class _BorrowedSocket(socket.socket):
    """A socket object over an fd that libuv owns (a transport's socket).

    close() does nothing: the fd is closed by the transport, when it
    closes. detach() returns a duplicate of the fd, owned by the caller."""

    __slots__ = ()

    def close(self):
        pass

    def detach(self):
        return os.dup(self.fileno())


cdef void _transport_readable(uv.uv_handle_t* handle, ssize_t nread) noexcept nogil:
    # In uv_run, from the read callback of a transport's libuv handle
    # (handle.data: the transport, NULL once its handle is closing). The
    # GIL is not taken here (taking it back from the thread sleeping in
    # uv_run costs more than the read itself): the callback is recorded
    # in LoopExt.rq, and _deliver_ready_io() hands it to the transport
    # right after uv_run returns, or earlier, before any callback that
    # takes the GIL inside uv_run queues something, so that the ready
    # queue keeps libuv's order of events.
    cdef LoopExt* ext
    cdef IOReady* rq
    cdef size_t cap
    if handle.data is NULL:
        return
    ext = <LoopExt*>handle.loop
    if ext.rq_len == ext.rq_cap:
        cap = ext.rq_cap * 2 if ext.rq_cap else 64
        rq = <IOReady*>realloc(ext.rq, cap * sizeof(IOReady))
        if rq is NULL:
            # Out of memory: deliver what is recorded, then this one.
            _transport_readable_now(handle, nread)
            return
        ext.rq = rq
        ext.rq_cap = cap
    ext.rq[ext.rq_len].handle = handle
    ext.rq[ext.rq_len].nread = nread
    ext.rq_len += 1


cdef void _transport_readable_now(uv.uv_handle_t* handle, ssize_t nread) noexcept with gil:
    cdef LoopCore loop
    if handle.loop.data is NULL:
        return
    loop = <LoopCore>handle.loop.data
    _deliver_ready_io(loop)
    if handle.data is not NULL:
        _deliver_read(loop, <TransportBase>handle.data, nread)


cdef inline void _deliver_read(LoopCore loop, TransportBase t, ssize_t nread) noexcept:
    try:
        t._on_read(nread)
    except BaseException as exc:
        # (MemoryError and the like: raised by _run_once.)
        if loop._pending_exception is None:
            loop._pending_exception = exc


cdef void _deliver_ready_io(LoopCore loop) noexcept:
    # GIL held: the read callbacks recorded by _transport_readable go to
    # their transports (_on_read), in libuv's order. A handle closed since
    # is skipped (its data is NULL; a handle freed since was taken out of
    # the record by _forget_ready_io).
    #
    # "Readable" (UV_ENOBUFS: what every transport's _on_read turns into
    # rx_ready and _schedule_read) is done here, without the two calls,
    # when the transport goes on the ready queue without a Handle and the
    # queue has room (nothing to raise); anything else goes to _on_read.
    cdef LoopExt* ext = <LoopExt*>loop.uvloop
    cdef size_t i = 0
    cdef uv.uv_handle_t* handle
    cdef void* data
    cdef TransportBase t
    if ext is NULL:
        return
    while i < ext.rq_len:
        handle = ext.rq[i].handle
        if handle is not NULL:
            data = handle.data
            if data is not NULL:
                t = <TransportBase>data
                if ext.rq[i].nread != uv.UV_ENOBUFS:
                    _deliver_read(loop, t, ext.rq[i].nread)
                elif t.read_scheduled or t._closing:
                    t.rx_ready = True
                elif not loop._debug_flag and ourloop_list_append_if_room(loop._ready, t):
                    t.rx_ready = True
                    t.read_scheduled = True
                else:
                    _deliver_read(loop, t, ext.rq[i].nread)
        i += 1
    ext.rq_len = 0


cdef void _transport_write_done(void* req, void* data, int status) noexcept with gil:
    # In uv_run, from the callback of a transport's uv_write() or
    # uv_udp_send(): the request is freed, the transport told (data is
    # NULL if it is gone: only while a loop is torn down unclosed).
    cdef TransportBase t
    free(req)
    if data is NULL:
        return
    t = <TransportBase>data
    if (<LoopExt*>t.loop.uvloop).rq_len:
        # (Reads recorded before this callback keep their place.)
        _deliver_ready_io(t.loop)
    try:
        t._on_write_done(status)
    except BaseException as exc:
        t.loop._set_pending_exception(exc)


cdef TransportBase _adopt_or_dup(LoopCore loop, sock, bint adopt, _fd_opener open_fd,
                                 tuple setup_args):
    # A transport over sock (open_fd gives its libuv handle the fd), set up
    # with t._setup(sock, *setup_args). adopt=True (the loop made sock): the
    # fd is detached from sock and libuv's, the transport keeps a
    # _BorrowedSocket; else libuv works on a dup() and the transport keeps
    # the caller's sock.
    cdef TransportBase t
    cdef int fd
    family, type_, proto = sock.family, sock.type, sock.proto
    fd = sock.detach() if adopt else os.dup(sock.fileno())
    try:
        t = open_fd(loop, fd, family)
    except BaseException:
        os.close(fd)
        raise
    if adopt:
        try:
            sock = _BorrowedSocket(family, type_, proto, fileno=fd)
        except BaseException:
            t._close_handle()
            raise
    try:
        t._setup(sock, *setup_args)
    except BaseException:
        t._setup_failed(sock, adopt)
        raise
    return t


cdef inline char* _read_buffer(LoopCore loop) except NULL:
    # The loop's one read buffer (LoopExt.rbuf: reads are copied out of it
    # at once), allocated on first use.
    cdef LoopExt* ext = <LoopExt*>loop.uvloop
    if ext.rbuf is NULL:
        ext.rbuf = <char*>malloc(_READ_BUF_SIZE)
        if ext.rbuf is NULL:
            raise MemoryError()
    return ext.rbuf


cdef int _lost_write(int count, str message) except -1:
    # A write after the connection was lost is dropped, with a warning from
    # the LOG_THRESHOLD_FOR_CONNLOST_WRITES-th on (the stdlib's): returns
    # the new count of lost writes.
    if count >= constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
        logger.warning(message)
    return count + 1


cdef class TransportBase:
    """What every transport of ourloop shares (see StreamTransport and
    UDPTransport)."""

    def __cinit__(self):
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self.sock_fd = -1

    def __init__(self, *args, **kwargs):
        raise TypeError(f'{type(self).__name__} objects are made by the loop ({self._made_by})')

    @property
    def _loop(self):
        return self.loop

    # -- opening (per transport) --------------------------------------------

    cdef _setup_socket(self, sock, extra, bint borrowed):
        # The stdlib's _SelectorTransport.__init__: the socket, its extra
        # info, and its fd refused by add_reader() & co.
        #
        # The extra info of an IP socket is kept small until asked for (an
        # idle connection keeps no Python object for it): its two addresses
        # in C (raddr may come from accept(), as the stdlib's 'peername'
        # does), read now as the stdlib reads them, so that the values do
        # not change once the peer is gone; `extra` is the socket object
        # until _extra_dict() makes the dict.
        cdef dict d
        self.sock = sock
        self.borrowed = borrowed
        self.context = PyContext_CopyCurrent()
        if sock is not _LAZY_SOCK:
            self.sock_fd = sock.fileno()
        if not extra and ourloop_inaddr_get(self.sock_fd, 0, &self.laddr):
            if not ourloop_inaddr_family(&self.raddr):
                ourloop_inaddr_get(self.sock_fd, 1, &self.raddr)
            self.extra = sock
        else:
            sock = self._get_sock()
            d = dict(extra) if extra else {}
            d['socket'] = trsock.TransportSocket(sock)
            try:
                d['sockname'] = sock.getsockname()
            except OSError:
                d['sockname'] = None
            if 'peername' not in d:
                try:
                    d['peername'] = sock.getpeername()
                except OSError:
                    d['peername'] = None
            self.extra = d
        self.loop._fd_watchers.set_transport(self.sock_fd, self)

    cdef _forget_fd(self):
        # The fd is no longer refused by add_reader() & co. on its behalf
        # (see FdWatchers.set_transport).
        if self.loop is not None and self.loop._fd_watchers is not None:
            self.loop._fd_watchers.forget_transport(self.sock_fd, self)

    cdef object _get_sock(self):
        # The socket object (None once released). An accepted connection's
        # is made here the first time it is needed: asked for (its
        # 'socket', _sock), or its fd about to close (_close_handle; after
        # that the object could no longer be made over it).
        sock = self.sock
        if sock is _LAZY_SOCK:
            sock = _BorrowedSocket(self.sock_family, self.sock_type, self.sock_proto,
                                   fileno=self.sock_fd)
            self.sock = sock
            if self.extra is _LAZY_SOCK:
                self.extra = sock
        return sock

    cdef dict _extra_dict(self):
        # The extra info as a dict, made the first time it is needed (see
        # _setup_socket); the same objects from then on.
        cdef dict d
        src = self.extra
        if type(src) is dict:
            return <dict>src
        d = {}
        if src is not None:
            if src is _LAZY_SOCK:
                src = self._get_sock()
            d['socket'] = (trsock.TransportSocket(src)
                           if src is not None and src is not _LAZY_SOCK else None)
            d['sockname'] = ourloop_inaddr_obj(&self.laddr)
            d['peername'] = ourloop_inaddr_obj(&self.raddr)
        self.extra = d
        return d

    @property
    def _extra(self):
        return self._extra_dict()

    cdef _setup_failed(self, sock, bint adopt):
        # _setup() raised (see _adopt_or_dup): the handle goes (with the fd libuv owns); an
        # adopted socket object forgets its number.
        self._close_handle()
        if adopt:
            self.sock = sock
            self.borrowed = True
            self._release_socket()

    cdef int _start_reading(self) except -1:
        return 0

    cdef _stop_reading(self):
        pass

    cdef bint _libuv_may_call(self) except -1:
        return False

    cdef int _hold_update(self) except -1:
        # The loop holds the transport (LoopCore._io_handles) while libuv
        # may call it (see the top of handles/stream.pyx). Called where one
        # of the conditions changes; costs a set operation only when the
        # answer does.
        cdef bint want = self._libuv_may_call()
        cdef set handles
        if want == self.held or self.loop is None:
            return 0
        self.held = want
        handles = self.loop._io_handles
        if handles is not None:
            if want:
                handles.add(self)
            else:
                handles.discard(self)
        return 0

    # -- the protocol -------------------------------------------------------

    def set_protocol(self, protocol):
        """Set a new protocol; what arrives is delivered to it from now on."""
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        """Return the current protocol."""
        return self._protocol

    def get_extra_info(self, name, default=None):
        """Return optional transport information ('socket', 'sockname',
        'peername', ...), or default."""
        src = self.extra
        if type(src) is dict:
            return (<dict>src).get(name, default)
        if name in _LAZY_EXTRA:
            return self._extra_dict().get(name, default)
        return default

    def is_closing(self):
        """Return True if the transport is closing or closed."""
        return self._closing

    def __repr__(self):
        info = [type(self).__name__]
        if self.sock is None:
            info.append('closed')
        elif self._closing:
            info.append('closing')
        if self.sock_fd >= 0:
            # (The stdlib's: the number the socket had, even once closed.)
            info.append(f'fd={self.sock_fd}')
        self._repr_io(info)
        return '<{}>'.format(' '.join(info))

    cdef _repr_io(self, list info):
        pass

    # -- reading (the ready-queue entry) ------------------------------------

    cdef _schedule_read(self):
        # Readable (or an error to report): the transport goes on the ready
        # queue once per iteration; LoopCore._run_ready runs it with
        # _run_read. In debug mode a Handle for _read_ready, so that it is
        # timed and named like any callback.
        if self.read_scheduled or self._closing:
            return
        self.read_scheduled = True
        if self.loop._debug_flag:
            self.loop._call_soon(self._read_ready, (), self.context)
        else:
            self.loop._ready.append(self)

    cdef int _run_read(self) except -1:
        # Run from the ready queue: the read in the transport's context; an
        # unexpected exception goes to the exception handler as a
        # callback's would. (A local reference: resume_reading() from the
        # protocol replaces self.context meanwhile.) A try/finally rather
        # than a try/except, which would save and restore the handled
        # exception at every read: in the finally clause the exception is
        # the one being handled, as in an except clause.
        cdef bint done = False
        cdef bint reported
        context = self.context
        self.read_scheduled = False
        PyContext_Enter(context)
        try:
            self._do_read_ready()
            done = True
        finally:
            if done:
                PyContext_Exit(context)
            else:
                try:
                    reported = self._read_raised()
                finally:
                    PyContext_Exit(context)
                if reported:
                    return 0
        return 0

    cdef bint _read_raised(self) except -1:
        # _run_read's finally clause, the read's exception being handled:
        # reported as a callback's (True: it is dropped), or SystemExit and
        # KeyboardInterrupt (False: they propagate).
        exc = sys.exc_info()[1]
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return False
        self.loop.call_exception_handler({
            'message': f'Exception in callback {type(self).__name__}._read_ready()',
            'exception': exc,
            'transport': self,
        })
        return True

    def _read_ready(self):
        # What the debug-mode Handle calls.
        self.read_scheduled = False
        self._do_read_ready()

    cdef _do_read_ready(self):
        # Ready phase: the stdlib's reader callback (the subclass's).
        pass

    def pause_reading(self):
        """Stop delivering data to the protocol until resume_reading()."""
        if self._closing or self._paused:
            return
        self._paused = True
        self._stop_reading()
        if self.loop._debug_flag:
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        """Deliver data to the protocol again."""
        if self._closing or not self._paused:
            return
        self._paused = False
        # The stdlib registers its reader again: reads go on in (a copy
        # of) the caller's context.
        self.context = PyContext_CopyCurrent()
        self._start_reading()
        if self.loop._debug_flag:
            logger.debug("%r resumes reading", self)

    def is_reading(self):
        """Return True if data is being delivered to the protocol."""
        return not self._closing and not self._paused

    cdef _on_read(self, ssize_t nread):
        # In uv_run (_transport_readable): what the handle's read callback
        # reported. UV_ENOBUFS ("readable") must mean rx_ready = True and
        # _schedule_read(): _deliver_ready_io does that itself.
        pass

    # -- writing and flow control -------------------------------------------

    cdef int _flush(self) except -1:
        # LoopCore._flush_streams: hand the writes batched in this
        # iteration to the kernel.
        return 0

    cdef _on_write_done(self, int status):
        # In uv_run (_transport_write_done): a write request has completed
        # (or was cancelled by the close).
        pass

    cdef Py_ssize_t _buffer_size(self) except -1:
        # What flow control counts: the stdlib's write buffer size.
        return 0

    cdef _maybe_pause_protocol(self):
        if self._buffer_size() <= self._high_water:
            return
        if not self._protocol_paused:
            self._protocol_paused = True
            self._tell_protocol('pause_writing')

    cdef _maybe_resume_protocol(self):
        if self._protocol_paused and self._buffer_size() <= self._low_water:
            self._protocol_paused = False
            self._tell_protocol('resume_writing')

    def _tell_protocol(self, str method):
        # pause_writing() / resume_writing(): an exception goes to the
        # exception handler, the transport goes on.
        try:
            getattr(self._protocol, method)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.loop.call_exception_handler({
                'message': f'protocol.{method}() failed',
                'exception': exc,
                'transport': self,
                'protocol': self._protocol,
            })

    def get_write_buffer_limits(self):
        """Return (low, high), the flow control water marks."""
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the flow control water marks (pause_writing above high,
        resume_writing at or below low)."""
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    # -- closing ------------------------------------------------------------

    def abort(self):
        """Close at once: buffered data is dropped."""
        self._force_close(None)

    cdef _schedule_connection_lost(self, exc, context):
        # connection_lost(exc) from the ready queue, in context (None: the
        # current one). The stdlib's call_soon() raises on a closed loop:
        # the transport stays closing, its socket its own (see __del__).
        self._conn_lost += 1
        if self.loop._closed:
            raise RuntimeError('Event loop is closed')
        self.loop._call_soon(self._call_connection_lost, (exc,), context)

    cpdef _force_close(self, exc):
        # cpdef: the stdlib's SSLProtocol calls transport._force_close(exc)
        # (handshake failure, shutdown timeout).
        if self._conn_lost:
            return
        if not self._closing:
            self._closing = True
            self._stop_reading()
        self._drop_writes(exc)
        self._schedule_connection_lost(exc, self.lost_context)

    cdef _drop_writes(self, exc):
        # _force_close(): what waits to be written is dropped.
        pass

    cdef bint _only_logged(self, exc) except -1:
        # Which errors _fatal_error() only logs (in debug mode) rather than
        # report to the exception handler: the stdlib's socket transports
        # and write pipes log every OSError (the read pipe: EIO only).
        return isinstance(exc, OSError)

    cdef _fatal_error(self, exc, message):
        if self._only_logged(exc):
            if self.loop._debug_flag:
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self.loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self,
                'protocol': self._protocol,
            })
        self._force_close(exc)

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._close_handle()
            self._release_socket()
            self._protocol = None
            self._detach_server()

    cdef _detach_server(self):
        server = self._server
        if server is not None:
            self._server = None
            server._detach(self)

    cdef _close_handle(self):
        # The libuv handle goes (the subclass's); no libuv callback reaches
        # the transport from now on.
        pass

    cdef _fd_moved(self):
        # The transport's fd number now names another file (the user closed
        # it and it was reused; FdWatchers' prepare guard found it): that
        # file is not the transport's to read, write or close. The
        # transport then ends (_fds_gone in handles/poll.pyx), and its
        # handle closes without closing the number (_close_handle).
        pass

    @property
    def _sock(self):
        return self._get_sock()

    cdef _release_socket(self):
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        self._forget_fd()
        if sock is _LAZY_SOCK:
            # (Never made: libuv closes the fd, nothing else names it.)
            return
        if self.borrowed:
            # libuv owned the fd and closes it: the socket object only
            # forgets the number.
            socket.socket.detach(sock)
        else:
            sock.close()

    def _uv_close(self):
        # The loop closes with this transport still open: its libuv handle
        # goes (the stdlib's selector goes), the transport stays "open" and
        # keeps the caller's socket open until it is closed or collected
        # (__del__). A socket libuv owned is closed with the handle; the
        # socket object only forgets the number, and still marks the
        # transport as not closed.
        self._close_handle()
        self._forget_fd()
        if self.borrowed and self.sock is not None and self.sock is not _LAZY_SOCK:
            socket.socket.detach(self.sock)

    def __del__(self):
        # The stdlib's _SelectorTransport.__del__ (and its pipe transports'):
        # collected with its socket still open, the transport warns, closes
        # it, and (3.13's) tells its server the connection is gone. ourloop
        # also closes the libuv handle (loop still open: the transport was
        # paused with nothing to write, so nothing held it).
        sock = self.sock
        if sock is None:
            return
        try:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
        finally:
            self._del_close()

    def _del_close(self):
        # (The fd is forgotten, also when a warning keeps the transport
        # alive as its source: its number is not refused by add_reader().)
        self._close_handle()
        self._release_socket()
        self._forget_fd()
        self._detach_server()
