# Pipes over uv_pipe_t.
#
# PipeTransport: a StreamTransport on a Unix stream socket
# (create_unix_connection, create_unix_server's connections). Its reads,
# writes, flow control and closing are StreamTransport's
# (handles/stream.pyx); only opening the handle is the pipe's own. Who owns
# the fd is the same as for TCP (see handles/tcp.pyx and
# docs/architecture.md).


cdef int _pipe_attach(LoopCore loop, int fd, StreamTransport t) except -1:
    # Open a uv_pipe_t on fd and give it to t: from then on libuv owns fd
    # (uv_close closes it). On failure the fd is the caller's to close.
    cdef uv.uv_pipe_t* pipe
    cdef int err
    loop._ensure_open()
    loop._fd_watchers.claim(fd)
    pipe = <uv.uv_pipe_t*>new_handle(sizeof(uv.uv_pipe_t))
    handle_inited(<uv.uv_handle_t*>pipe, uv.uv_pipe_init(loop.uvloop, pipe, 0))
    err = fd_identity(<uv.uv_handle_t*>pipe, fd)
    handle_opened(<uv.uv_handle_t*>pipe, err if err < 0 else uv.uv_pipe_open(pipe, fd))
    t._attach_handle(loop, <uv.uv_stream_t*>pipe)
    return 0


cdef PipeTransport _pipe_open_fd(LoopCore loop, int fd):
    # A PipeTransport whose uv_pipe_t owns fd (on failure the fd is the
    # caller's to close).
    cdef PipeTransport t = PipeTransport.__new__(PipeTransport)
    _pipe_attach(loop, fd, t)
    return t


cdef class PipeTransport(StreamTransport):
    """A Unix stream socket connection: an asyncio.Transport over a libuv
    uv_pipe_t."""


# ---------------------------------------------------------------------------
# connect_read_pipe / connect_write_pipe: ReadPipeTransport and
# WritePipeTransport, the stdlib's _UnixReadPipeTransport and
# _UnixWritePipeTransport (asyncio/unix_events.py) over uv_pipe_t.
#
# Who owns which fd:
# - The caller's `pipe` object (a file object, a socket, anything with
#   fileno() and close()) keeps its fd, the one get_extra_info('pipe') and
#   repr() name. The transport calls pipe.close() exactly once, after
#   protocol.connection_lost(); ourloop never closes that fd number itself,
#   so closing the object early, or the garbage collector doing it, never
#   closes an fd under libuv, and an fd opened later with the same number
#   is never touched by us. loop.close() with the transport open leaves the
#   pipe open (as the stdlib does: CPython's test_unclosed_pipe_transport);
#   the transport's __del__ then closes it with a ResourceWarning, as the
#   stdlib's does.
# - libuv works on a dup() of it (close-on-exec, so a child process never
#   inherits it): the uv_pipe_t owns the dup and uv_close() closes it when
#   the transport's handle closes (after connection_lost(), or at
#   loop.close()).
# - A write pipe on a FIFO or a socket also watches a second dup() with a
#   uv_poll_t (PipePeerWatch) for readability: that is how the stdlib
#   notices that the reader went away while the transport is idle (epoll
#   reports EPOLLERR on a pipe's write end once its read end is closed,
#   EPOLLIN|EPOLLRDHUP|EPOLLHUP on a socket whose peer closed; libuv reports
#   POLLERR as status UV_EBADF). libuv refuses uv_read_start() on a
#   write-only uv_pipe_t, and a second libuv handle on the same fd number
#   is refused too, hence the second dup. The transport owns it and closes
#   it right after uv_close() of its uv_poll_t (which has already removed it
#   from epoll), when the transport's handle closes.
# - Neither dup is in loop._transports: the stdlib does not register pipe
#   transports there either, so add_reader() on the caller's fd is allowed
#   as in the stdlib (it watches the caller's fd, never ours).
#
# Reads are StreamTransport's readiness-only reads (one read() of just
# under 128 KiB in the ready phase, _PIPE_READ_SIZE; after a large read
# straight into the bytes object delivered, see _read_once); what differs from a socket transport is
# overridden: EOF schedules eof_received() and connection_lost(None) (the
# return value is ignored), an exception of data_received() goes to the
# exception handler and the transport goes on (the stdlib does not catch
# it), read errors are 'Fatal read error on pipe transport' (EIO, a pty
# whose other side closed, is only logged in debug mode).
#
# Writes are StreamTransport's batched writes; what differs: write() after
# close()/write_eof() or after a write error drops the data (warning from
# the 5th time), write_eof() is close(), and a fatal write error is only
# logged in debug mode (OSError).
#
# Character devices epoll cannot watch (/dev/null, /dev/zero...): the
# stdlib accepts them and fails when it registers them with the selector
# (PermissionError; platform.h's ourloop_fd_unpollable asks the platform's
# selector, epoll or kqueue). libuv 1.44 would abort() the process when epoll_ctl
# fails, so such an fd never reaches libuv's poller: a read pipe raises
# the stdlib's PermissionError where the stdlib's add_reader() would (in
# the callback after connection_made(), or from resume_reading()); a write
# pipe writes with plain write() calls (such devices never block).
#
# The pipes of a subprocess transport that Popen made without pipesize=
# grow once to 256 KiB (platform.h's ourloop_set_pipe_size: Linux only) when the child keeps one full: a
# read that emptied a full pipe, a write the pipe did not take whole
# (PipeEnd._grow_when_full).

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.contextvars cimport PyContext_CopyCurrent
from libc cimport errno as cerrno
from libc.errno cimport EAGAIN as _C_EAGAIN, EINTR as _C_EINTR
from posix.unistd cimport read as c_read, write as c_write

from ourloop.includes cimport uv

import errno
import os
import stat as _stat
import sys
from asyncio import constants, futures, transports
from asyncio.log import logger

from ourloop.includes.platform cimport (
    ourloop_fd_unpollable, ourloop_pipe_size, ourloop_set_pipe_size)

# One read() of a read pipe: under 128 KiB with the bytes object's header,
# where the stdlib reads up to max_size (256 KiB). glibc serves a block of
# 128 KiB or more from the top of its heap and gives the memory back
# (brk) when it is freed, so every such read costs two brk calls and a
# page fault per 4 KiB touched again; blocks under it are reused from its
# free lists. A busy pipe (grown to 256 KiB, see _grow_when_full) takes two
# reads per fill: docs/performance.md, "Subprocess pipes". (256 KiB reads
# spare the second read of a fill from waiting on the pipe's mutex while
# the writer refills, but the blocks above 128 KiB cost more: there too.)
cdef Py_ssize_t _PIPE_READ_SIZE = 128 * 1024 - 64
cdef bint _READ_PIPE_IS_READING = sys.version_info >= (3, 11)


cdef class PipeEnd(StreamTransport):
    """What the read and the write pipe transports share (connect_read_pipe,
    connect_write_pipe): the caller's pipe object as `_pipe`, and the
    stdlib's pipe-transport behaviour at loop.close() and in __del__."""

    # The stdlib's pipe transports are not start_tls() compatible.
    _start_tls_compatible = False
    # loop.sendfile() refuses pipe transports, as the stdlib's.
    _sendfile_compatible = constants._SendfileMode.UNSUPPORTED

    @property
    def _pipe(self):
        return self.sock

    @_pipe.setter
    def _pipe(self, value):
        # (CPython's tests set it to None to silence __del__.)
        self.sock = value

    # loop.close() and __del__ are StreamTransport's: the loop closes
    # libuv's dup and leaves the caller's pipe open, as the stdlib does;
    # collected with it still open, the transport warns and closes it.

    def _grow_when_full(self, int size):
        # (The subprocess transport, for the pipes its Popen made without a
        # pipesize=.) A pipe the other side keeps full (a read that emptied
        # a full pipe, a write that filled it) grows once to `size` bytes,
        # so that each wake-up moves up to `size` bytes, not the kernel's
        # 64 KiB: see docs/performance.md, "Subprocess pipes". Idle and
        # short-lived pipes keep their size, and so their kernel memory.
        cdef int fd = self._handle_fd()
        cdef int cap
        if fd < 0 or size <= 0:
            return
        cap = ourloop_pipe_size(fd)
        if cap <= 0 or cap >= size:
            return      # not a pipe, or large enough
        self.pipe_cap = cap
        self.grow_to = size

    cdef void _grow_pipe(self) noexcept:
        # Once: a refusal (EPERM past the user's pipe-user-pages-soft, or
        # past pipe-max-size) leaves the pipe as it is.
        cdef int fd = self._handle_fd()
        if fd >= 0:
            ourloop_set_pipe_size(fd, self.grow_to)
        self.grow_to = 0


cdef int _closed_loop_close(StreamTransport t) except -1:
    # close()/abort() once the loop is closed: the stdlib marks the
    # transport closing, then its call_soon() raises.
    if t.loop._closed:
        t._closing = True
        raise RuntimeError('Event loop is closed')
    return 0


cdef _no_attr(obj, name):
    return AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")


cdef PipeEnd _open_pipe_transport(LoopCore loop, pipe, protocol, waiter, extra, bint write):
    # (LoopCore._make_read_pipe_transport, _make_write_pipe_transport; see
    # the top of this file for who owns which fd.) Per transport: the stdlib's pipe transport __init__ (checks, then
    # connection_made, start, waiter), over dups of the caller's fd.
    cdef PipeEnd t
    cdef ReadPipeTransport rt
    cdef WritePipeTransport wt
    cdef int fd
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    is_char = _stat.S_ISCHR(mode)
    is_fifo = _stat.S_ISFIFO(mode)
    is_socket = _stat.S_ISSOCK(mode)
    if not (is_char or is_fifo or is_socket):
        if write:
            raise ValueError("Pipe transport is only for "
                             "pipes, sockets and character devices")
        raise ValueError("Pipe transport is for pipes/sockets only.")
    os.set_blocking(fileno, False)
    loop._ensure_open()
    # Can the stdlib's selector watch it? (platform.h: epoll refuses
    # /dev/null and other devices without poll support.)
    unpollable = ourloop_fd_unpollable(fileno) if is_char else 0
    if write:
        wt = WritePipeTransport.__new__(WritePipeTransport)
        wt._fileno = fileno
        wt.unpollable = unpollable
        t = wt
    else:
        rt = ReadPipeTransport.__new__(ReadPipeTransport)
        rt._fileno = fileno
        rt.unpollable = unpollable
        t = rt
    # (repr() names the caller's fd, as the stdlib's does.)
    t.sock_fd = fileno
    fd = os.dup(fileno)
    try:
        _pipe_attach(loop, fd, t)
    except BaseException:
        os.close(fd)
        raise
    # libuv owns fd now; the caller still owns `pipe` until we are set up.
    try:
        t.context = PyContext_CopyCurrent()
        t.extra = dict(extra) if extra else {}
        t.extra['pipe'] = pipe
        t.set_protocol(protocol)
        if write and (is_socket or is_fifo):
            fd = os.dup(fileno)
            try:
                watch = PipePeerWatch(loop, fd)
            except BaseException:
                os.close(fd)
                raise
            (<PipePeerWatch>watch).transport = t
            wt.peer_watch = watch
            # libuv may call the watch (and so the transport) as long as
            # the handle is open: the loop holds the transport meanwhile.
            wt.pinned = True
            wt._hold_update()
        loop._call_soon(protocol.connection_made, (t,), None)
        if not write or wt.peer_watch is not None:
            # Only start reading (watching) once connection_made() ran.
            loop._call_soon(t._start, (), None)
        if waiter is not None:
            loop._call_soon(futures._set_result_unless_cancelled, (waiter, None), None)
    except BaseException:
        t._close_handle()
        raise
    t.sock = pipe
    t.borrowed = False
    return t


cdef class ReadPipeTransport(PipeEnd):
    """The read end of a pipe, FIFO, socket or character device: the
    stdlib's _UnixReadPipeTransport over a libuv uv_pipe_t."""

    max_size = 256 * 1024  # (as the stdlib's: one read() takes at most this)

    @property
    def __class__(self):
        # isinstance(t, asyncio.ReadTransport), and not WriteTransport, as
        # the stdlib's; type(t) stays ourloop's.
        return transports.ReadTransport

    def _start(self):
        # After connection_made(): the stdlib's _add_reader (3.11+: not if
        # connection_made() paused or closed the transport).
        if self._closing or self._paused:
            return
        self._start_reading()

    cdef int _start_reading(self) except -1:
        if self.unpollable:
            # What the stdlib's selector raises for such a device
            # (PermissionError on Linux).
            raise OSError(self.unpollable, os.strerror(self.unpollable))
        return StreamTransport._start_reading(self)

    _read_error_message = 'Fatal read error on pipe transport'

    cdef _read_once(self):
        # Ready phase: the stdlib's _read_ready (StreamTransport's
        # _do_read_ready calls it), with no BufferedProtocol reads.
        cdef int fd = self._handle_fd()
        cdef char* buf
        cdef ssize_t nbytes
        cdef int code
        cdef bint large
        cdef object data = None
        if fd < 0:
            return
        if self.read_direct:
            # The last read was large: read straight into the bytes object
            # the protocol gets (no copy out of the loop's buffer).
            data = PyBytes_FromStringAndSize(NULL, _PIPE_READ_SIZE)
            buf = PyBytes_AS_STRING(data)
        else:
            buf = _read_buffer(self.loop)
        nbytes = c_read(fd, buf, _PIPE_READ_SIZE)
        if nbytes < 0:
            code = cerrno.errno
            if code == _C_EAGAIN or code == _C_EINTR:
                return
            self._fatal_error(OSError(code, os.strerror(code)),
                              'Fatal read error on pipe transport')
            return
        if nbytes == 0:
            if self.loop._debug_flag:
                logger.info("%r was closed by peer", self)
            self._closing = True
            self._stop_reading()
            self.rx_eof = True
            self._conn_lost += 1
            self.loop._call_soon(self._protocol.eof_received, (), None)
            self.loop._call_soon(self._call_connection_lost, (None,), None)
            return
        if self.grow_to and nbytes >= self.pipe_cap:
            self._grow_pipe()
        large = nbytes * 2 >= _PIPE_READ_SIZE
        if self.read_direct and large:
            # Its size set to the bytes read; its block (under 128 KiB, at
            # most twice that) stays as it is.
            ourloop_bytes_reuse(data, nbytes)
        else:
            # A small read keeps no large block: a bytes object of its size.
            data = PyBytes_FromStringAndSize(buf, nbytes)
        self.read_direct = large
        # Not caught, as in the stdlib: an exception goes to the exception
        # handler (LoopCore runs this like a callback) and reading goes on.
        self._protocol.data_received(data)

    cdef bint _only_logged(self, exc) except -1:
        # The stdlib's read pipe logs EIO only (a pty whose other side
        # closed); other errors go to the exception handler.
        return isinstance(exc, OSError) and exc.errno == errno.EIO

    def close(self):
        """Close the transport: connection_lost(None) is called soon; no
        more data is delivered."""
        if not self._closing:
            _closed_loop_close(self)
            self._force_close(None)

    def is_reading(self):
        """Return True if data is being delivered to the protocol."""
        if not _READ_PIPE_IS_READING:
            # 3.9, 3.10: the stdlib's read pipe leaves ReadTransport's.
            raise NotImplementedError
        return not self._closing and not self._paused

    cdef _repr_io(self, list info):
        # (fd: the caller's, as the stdlib's repr names it.)
        if self.sock is not None and self.uvstream is NULL:
            info.append('open')  # the loop is closed
        elif self.sock is not None:
            info.append('polling' if self.reading else 'idle')
        else:
            info.append('closed')

    # What a ReadTransport does not have (StreamTransport's are hidden, so
    # that hasattr() answers as for the stdlib's transport).
    @property
    def write(self):
        raise _no_attr(self, 'write')

    @property
    def writelines(self):
        raise _no_attr(self, 'writelines')

    @property
    def write_eof(self):
        raise _no_attr(self, 'write_eof')

    @property
    def can_write_eof(self):
        raise _no_attr(self, 'can_write_eof')

    @property
    def abort(self):
        raise _no_attr(self, 'abort')

    @property
    def get_write_buffer_size(self):
        raise _no_attr(self, 'get_write_buffer_size')

    @property
    def get_write_buffer_limits(self):
        raise _no_attr(self, 'get_write_buffer_limits')

    @property
    def set_write_buffer_limits(self):
        raise _no_attr(self, 'set_write_buffer_limits')


cdef class PipePeerWatch(PollHandle):
    """The uv_poll_t with which a write pipe watches (a dup of) its fd for
    readability: its reader went away (see the top of handles/pipe.pyx)."""

    def __init__(self, *args, **kwargs):
        pass

    cdef on_events(self, int status, int events):
        # In uv_run: once is enough (epoll would go on reporting it).
        cdef WritePipeTransport t
        self.stop()
        if self.transport is not None:
            t = <WritePipeTransport>self.transport
            if not t.peer_event:
                t.peer_event = True
                self.loop._call_soon(t._peer_closed, (), t.context)


cdef class WritePipeTransport(PipeEnd):
    """The write end of a pipe, FIFO, socket or character device: the
    stdlib's _UnixWritePipeTransport over a libuv uv_pipe_t, with batched
    writes and flow control."""

    @property
    def __class__(self):
        # The stdlib's is a _FlowControlMixin (a Transport) and a
        # WriteTransport: isinstance() answers the same.
        return transports._FlowControlMixin

    def _start(self):
        # After connection_made(): watch for the reader going away.
        if self.peer_watch is not None and not self._conn_lost:
            self.peer_watch.start(uv.UV_READABLE)

    def _peer_closed(self):
        # Ready phase: the stdlib's _read_ready (the pipe was closed by the
        # peer): BrokenPipeError if data was still waiting.
        if self._conn_lost:
            return
        if self.loop._debug_flag:
            logger.info("%r was closed by peer", self)
        if self._bufsize():
            self._force_close(BrokenPipeError())
        else:
            self._force_close(None)

    def write(self, data):
        """Write bytes-like data; it leaves before the loop next polls.
        Dropped (with a warning from the 5th time) once the transport is
        closing or a write failed."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                # The stdlib asserts it.
                raise AssertionError(repr(data))
        if not data:
            return
        if self.lost_writes or self._closing:
            self.lost_writes = _lost_write(self.lost_writes, 'pipe closed by peer or '
                                           'os.write(pipe, data) raised exception.')
        else:
            self._queue_write(_kept(data))

    def writelines(self, list_of_data):
        """Write an iterable of bytes-like objects (WriteTransport's: they
        are joined, then written)."""
        self.write(b''.join(list_of_data))

    def can_write_eof(self):
        """Return True."""
        return True

    def write_eof(self):
        """Close the pipe once the buffered data has been written
        (connection_lost(None) then)."""
        if self._closing:
            return
        _closed_loop_close(self)
        StreamTransport.close(self)
        if self._conn_lost:
            self._stop_peer_watch()

    def close(self):
        """Close once the buffered data has been written (write_eof())."""
        if self.sock is not None and not self._closing:
            self.write_eof()

    def abort(self):
        """Close at once: buffered data is dropped; connection_lost(None)."""
        if not self._conn_lost:
            _closed_loop_close(self)
        self._force_close(None)
        self._stop_peer_watch()

    # What a WriteTransport leaves to ReadTransport (NotImplementedError).
    def is_reading(self):
        raise NotImplementedError

    def pause_reading(self):
        raise NotImplementedError

    def resume_reading(self):
        raise NotImplementedError

    cdef _stop_peer_watch(self):
        if self.peer_watch is not None:
            self.peer_watch.stop()

    cdef _fatal_error(self, exc, message):
        # A failed write (StreamTransport's messages name sockets): the
        # stdlib's write pipe drops every later write.
        message = message.replace('socket transport', 'pipe transport')
        self.lost_writes += 1
        TransportBase._fatal_error(self, exc, message)
        self._stop_peer_watch()

    cdef int _flush(self) except -1:
        if not self.unpollable:
            StreamTransport._flush(self)
            if self.grow_to and self.wreq is not NULL:
                self._grow_pipe()       # the pipe took less than all: full
            return 0
        return self._flush_direct()

    cdef int _flush_direct(self) except -1:
        # A device epoll cannot watch (/dev/null...): libuv must never poll
        # it, so no uv_write; such devices take everything at once.
        objs = self.pending
        cdef ssize_t n
        cdef Py_ssize_t off, size
        cdef int fd = self._handle_fd()
        cdef int code
        if objs is None or fd < 0:
            return 0
        if type(objs) is bytes:
            objs = [objs]
        self.pending = None
        self.pending_size = 0
        self.pending_contexts = None
        for obj in objs:
            off = 0
            size = PyBytes_GET_SIZE(obj)
            while off < size:
                n = c_write(fd, PyBytes_AS_STRING(obj) + off, <size_t>(size - off))
                if n < 0:
                    code = cerrno.errno
                    if code == _C_EINTR:
                        continue
                    if code == _C_EAGAIN:
                        # The stdlib's add_writer() would fail so.
                        code = self.unpollable
                    self._write_error(OSError(code, os.strerror(code)))
                    return 0
                off += n
        return 0

    cdef _close_handle(self):
        cdef PipePeerWatch watch = self.peer_watch
        StreamTransport._close_handle(self)
        if watch is not None:
            self.peer_watch = None
            watch.transport = None
            watch.close_with_fd()

    cdef _repr_io(self, list info):
        # (fd: the caller's, as the stdlib's repr names it.)
        if self.sock is not None and self.uvstream is NULL:
            info.append('open')  # the loop is closed
        elif self.sock is not None:
            info.append('polling' if self.wreq is not NULL else 'idle')
            info.append(f'bufsize={self._bufsize()}')
        else:
            info.append('closed')
