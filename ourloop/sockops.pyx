# loop.sock_recv(), sock_recv_into() and sock_sendall(), natively.
#
#   _sock_recv, _sock_recv_into, _sock_sendall
#                 the coroutine functions that ourloop.Loop has as its
#                 sock_recv, sock_recv_into and sock_sendall (_sockets.py)
#   SockOps       the sock_* waits of one loop: an edge-triggered readiness
#                 set (an epoll instance with EPOLLET, platform.h), itself
#                 watched by a uv_poll_t; FdWatchers.sockops
#   SockFd        one fd in that set: its registration and its two waiters
#   SockWait      a Handle that waits for one socket's readiness in one
#                 direction and completes the operation's future
#
# Behaviour: the stdlib's selector loop (asyncio/selector_events.py). Each
# method tries the system call at once and returns its result without
# suspending when it has one; only then does it make a future, check that
# no transport uses the fd (RuntimeError), replace the fd's reader (or
# writer) with its own and wait. When the socket is ready the waiter, run
# by the ready queue in the order of the events, tries again; on a result
# or an error it completes the future (the operation's coroutine then
# returns or raises) and stays the fd's reader (writer) until its done
# step, which it queues ahead of the future's callbacks, unregisters it in
# the next iteration, as the stdlib's done callback removes its handle;
# on EAGAIN it keeps waiting. A
# cancelled operation consumes nothing: its waiter does nothing once the
# future is done, and the coroutine unregisters it when the cancellation
# reaches it, as the stdlib's done callback does, in the same iteration.
# loop.add_reader(fd)/remove_reader(fd) replace or remove the waiter as
# they would the stdlib's reader (FdWatchers calls displace()), and a new
# operation replaces another one's waiter on the same fd, whose future is
# then never completed (as with the stdlib, which cancels its handle).
#
# Which calls are native. Sockets of type socket.socket exactly (the
# subclasses of ssl.SSLSocket and any other class have methods of their
# own), whose timeout is 0, whose class's recv/recv_into/send are the
# socket module's, and arguments the socket module would take as they are
# (an int size; a writable C-contiguous buffer for recv_into; for sendall
# a buffer whose len() is its size in bytes): the system call is made in
# C (sockops.h), with the socket module's results and errors. Anything
# else, and the platforms without an edge-triggered set, take the Python
# implementation (_sockets.py: SockMixin._sock_recv_py & co.), which is the
# stdlib's code.
#
# Why edge-triggered, and why a set of its own. A wait through
# add_reader() costs, in system calls, an fstat() (the parked watch is
# still the same file), libuv's epoll_ctl(DEL) of uv_poll_start(), the
# prepare check's fstat() and epoll_ctl(ADD), then epoll_ctl(DEL) when it
# ends: five calls around the recv() that found nothing. Here a socket is
# added to the set once (its first wait), and a wait costs no system call:
# the waiter waits only after its own recv()/send()/accept() found nothing
# to do (EAGAIN), so an edge-triggered report is never missed; the set
# keeps reporting through the one uv_poll_t on its fd (readable while it
# has reports), which SockOps.on_events drains. Writing is watched only
# while a writer waits (EPOLLOUT reports of an idle socket are dropped on
# the first one: epoll_ctl(MOD)).
#
# Registrations and fds. The caller's socket keeps its fd; the set holds a
# registration (fd, file), dropped by the kernel when the file is closed.
# A registration outlives its fd's number only if another process (fork)
# or another fd still has the file open: its reports carry the old
# generation of the SockFd in their token and are ignored, and, being
# edge-triggered, they cannot keep the loop busy. A SockFd remembers the
# socket object it registered (a weak reference): another socket on the
# same fd number is registered anew (the fd may name another file). A
# socket whose fd was closed behind its object's back (os.close) and
# reused by another file keeps waiting for the old file (a misuse the
# stdlib survives, since it registers each wait anew).
#
# fork(): a child inherits the set; after_fork() gives each inherited loop
# a set of its own under the same fd number, empty (loop.pyx's fork hook).

from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE,
    PyBUF_C_CONTIGUOUS)
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.weakref cimport PyWeakref_NewRef
from libc cimport errno as cerrno
from libc.stdint cimport uint64_t, int64_t
from libc.stdlib cimport realloc, free
from libc.string cimport memset
from posix.unistd cimport close as c_close

from ourloop.includes cimport uv
from ourloop.includes.callbacks cimport ourloop_raise_pending
from ourloop.includes.platform cimport (
    OURLOOP_HAVE_ET, ourloop_et_create, ourloop_et_set, ourloop_et_del,
    ourloop_et_wait, ourloop_et_renew)

import contextvars
import os
import socket as _socket_module


cdef extern from "Python.h":
    PyObject* _PyType_Lookup(PyTypeObject* type, object name)
    bint PyLong_CheckExact(object o)
    Py_ssize_t PyLong_AsSsize_t(object o) except? -1
    Py_ssize_t PyObject_Length(object o) except -1


cdef extern from "sockops.h":
    int OURLOOP_WOULD_BLOCK
    int ourloop_sock_fd(object sock)
    int ourloop_sock_family(object sock)
    int ourloop_sock_type(object sock)
    int ourloop_sock_proto(object sock)
    int64_t ourloop_sock_timeout(object sock)
    PyObject* ourloop_weakref_target(object ref)
    PyObject* ourloop_sock_recv(int fd, Py_ssize_t n, int* status)
    Py_ssize_t ourloop_sock_recv_into(int fd, char* buf, Py_ssize_t n) except? -1
    Py_ssize_t ourloop_sock_send(int fd, const char* buf, Py_ssize_t n) except? -1


cdef enum:
    _OP_NONE = 0
    _OP_RECV = 1
    _OP_RECV_INTO = 2
    _OP_SENDALL = 3
    _OP_DONE = 4        # completed; its done step is queued
    _READ = 1       # selectors.EVENT_READ, OURLOOP_ET_IN
    _WRITE = 2      # selectors.EVENT_WRITE, OURLOOP_ET_OUT
    _MAX_EVENTS = 64


# -- which sockets take the native path --------------------------------------

cdef object _SOCKET_TYPE = _socket_module.socket
cdef object _BASE_DICT = _socket_module.SocketType.__dict__
cdef object _ORIG_RECV = _BASE_DICT.get('recv')
cdef object _ORIG_RECV_INTO = _BASE_DICT.get('recv_into')
cdef object _ORIG_SEND = _BASE_DICT.get('send')


cdef bint _layout_matches():
    # Does ourloop_socket_head (sockops.h) read real sockets right?
    if not issubclass(_SOCKET_TYPE, _socket_module.SocketType):
        return False
    if _ORIG_RECV is None or _ORIG_RECV_INTO is None or _ORIG_SEND is None:
        return False
    try:
        kinds = [(_socket_module.AF_INET, _socket_module.SOCK_STREAM),
                 (_socket_module.AF_INET, _socket_module.SOCK_DGRAM)]
        if hasattr(_socket_module, 'AF_UNIX'):
            kinds.append((_socket_module.AF_UNIX, _socket_module.SOCK_STREAM))
        for family, type_ in kinds:
            s = _SOCKET_TYPE(family, type_)
            try:
                if (ourloop_sock_fd(s) != s.fileno() or ourloop_sock_family(s) != s.family
                        or ourloop_sock_type(s) != s.type
                        or ourloop_sock_proto(s) != s.proto):
                    return False
                s.settimeout(0)
                if ourloop_sock_timeout(s) != 0 or s.gettimeout() != 0:
                    return False
                s.settimeout(None)
                if ourloop_sock_timeout(s) >= 0:
                    return False
                s.settimeout(2.5)
                if ourloop_sock_timeout(s) != 2500000000:
                    return False
                s.setblocking(False)
            finally:
                s.close()
            if ourloop_sock_fd(s) != -1:
                return False
    except Exception:
        return False
    return True


# The native path is possible here: a readiness set, a known socket layout.
cdef bint _NATIVE = OURLOOP_HAVE_ET and _layout_matches()


cdef inline bint _plain_socket(sock, object method_name, object original):
    # sock is a socket.socket in non-blocking mode whose method is the
    # socket module's (not replaced on the class, as blockbuster or a test
    # may do): the native call is then what sock.<method>() would do.
    cdef PyObject* found
    if type(sock) is not _SOCKET_TYPE or ourloop_sock_timeout(sock) != 0:
        return False
    found = _PyType_Lookup(<PyTypeObject*>_SOCKET_TYPE, method_name)
    return found is <PyObject*>original


cdef object _recv_bytes(int fd, Py_ssize_t n):
    # sock.recv(n): the bytes, or None when nothing is there (EAGAIN).
    cdef int status
    cdef PyObject* p = ourloop_sock_recv(fd, n, &status)
    if p is NULL:
        if status == OURLOOP_WOULD_BLOCK:
            return None
        ourloop_raise_pending()
    data = <object>p
    Py_DECREF(data)
    return data


# -- waiting -------------------------------------------------------------


cdef class SockWait(Handle):
    """A socket's sock_* waiter in one direction (see the top of
    sockops.pyx)."""

    def __call__(self):
        # The ready queue runs it (in SockOps.context) after the socket
        # reported readiness, and once more after its operation completed
        # (the done step).
        cdef bint done
        self.queued = False
        if self.op == _OP_NONE:
            return
        if self.op == _OP_DONE:
            # The done step, the stdlib's _sock_read_done/_sock_write_done:
            # nothing displaced the waiter meanwhile, so it unregisters.
            self.op = _OP_NONE
            return
        fut = self.fut
        if fut.done():
            # Cancelled meanwhile: nothing is consumed; the operation's
            # coroutine unregisters when the cancellation reaches it.
            return
        try:
            done = self.attempt()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.finish()
            fut.set_exception(exc)
            return
        if done:
            result = self.obj if self.op != _OP_SENDALL else None
            self.finish()
            fut.set_result(result)

    def __repr__(self):
        names = {_OP_RECV: 'sock_recv', _OP_RECV_INTO: 'sock_recv_into',
                 _OP_SENDALL: 'sock_sendall', _OP_DONE: 'done'}
        fd = self.owner.fd if self.owner is not None else -1
        return f'<SockWait {names.get(self.op, "idle")} fd={fd}>'

    cdef int arm(self, int op, fut, sock) except -1:
        self.op = op
        self.fut = fut
        self.sock = sock
        return 0

    cdef int attempt(self) except -1:
        # The operation, once: 1 when it is done (its result in self.obj
        # for the reads), 0 when the socket has nothing for it (EAGAIN).
        cdef int fd = ourloop_sock_fd(self.sock)
        cdef Py_ssize_t got
        cdef Py_buffer view
        if self.op == _OP_RECV:
            data = _recv_bytes(fd, self.n)
            if data is None:
                return 0
            self.obj = data
            return 1
        if self.op == _OP_RECV_INTO:
            buf = self.obj
            PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
            try:
                got = ourloop_sock_recv_into(fd, <char*>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
            if got == OURLOOP_WOULD_BLOCK:
                return 0
            self.obj = got
            return 1
        # sendall: what the kernel takes, until all is sent or EAGAIN
        while True:
            got = ourloop_sock_send(fd, <char*>self.view.buf + self.pos,
                                    self.view.len - self.pos)
            if got == OURLOOP_WOULD_BLOCK:
                return 0
            self.pos += got
            if self.pos >= self.view.len:
                return 1

    cdef finish(self):
        # The operation completed: what it held is released, but the waiter
        # stays the fd's reader (writer) until its done step, queued here
        # ahead of the future's callbacks, runs in the next iteration. The
        # stdlib's handle stays registered until its future's done callback
        # removes it: remove_reader(fd) in the rest of this iteration
        # returns True, and add_reader(fd) then keeps its new reader.
        self.disarm()
        self.op = _OP_DONE
        if not self.queued:
            self.queued = True
            self._loop._ready.append(self)

    cdef disarm(self):
        # No operation waits any more; what it held is released.
        self.op = _OP_NONE
        self.fut = None
        self.sock = None
        self.obj = None
        if self.has_view:
            self.has_view = False
            PyBuffer_Release(&self.view)

    cdef release(self, fut):
        # The operation's coroutine ends (cancelled, or closed): unregister
        # if this waiter still serves it.
        if self.fut is fut:
            self.disarm()

    def __dealloc__(self):
        if self.has_view:
            self.has_view = False
            PyBuffer_Release(&self.view)


cdef class SockFd:
    """One fd of SockOps' readiness set."""

    def __repr__(self):
        return f'<SockFd fd={self.fd} gen={self.gen} events={self.events}>'


cdef SockWait _new_wait(SockOps ops, SockFd rec, int event):
    cdef SockWait w = SockWait.__new__(SockWait)
    w._loop = ops.loop
    # Run by the ready queue as a callback without arguments: itself. (A
    # reference cycle, broken by SockOps._drop_rec.)
    w._callback = w
    w._args = ()
    w._ctx = ops.context
    w.owner = rec
    w.event = event
    return w


cdef class SockOps(PollHandle):
    """The sock_* waits of one loop (see the top of sockops.pyx)."""

    def __cinit__(self, LoopCore loop, int fd, *args):
        self.context = contextvars.Context()

    cdef on_events(self, int status, int events):
        cdef uint64_t tokens[_MAX_EVENTS]
        cdef int evs[_MAX_EVENTS]
        cdef int n, i, fd, ev
        cdef unsigned int gen
        cdef SockFd rec
        cdef SockWait w
        cdef list ready = self.loop._ready
        while not self.closed:
            n = ourloop_et_wait(self.fd, tokens, evs, _MAX_EVENTS)
            if n <= 0:
                break
            for i in range(n):
                fd = <int>(tokens[i] & 0xffffffffu)
                gen = <unsigned int>(tokens[i] >> 32)
                if fd < 0 or fd >= self.cap or self.recs[fd] is NULL:
                    continue
                rec = <SockFd>self.recs[fd]
                if rec.gen != gen:
                    continue        # a file this fd number no longer names
                ev = evs[i]
                if ev & _READ:
                    w = rec.reader
                    if w is not None and w.op != _OP_NONE:
                        if not w.queued:
                            w.queued = True
                            ready.append(w)
                    elif self._unwatched(rec):
                        continue
                if ev & _WRITE:
                    w = rec.writer
                    if w is not None and w.op != _OP_NONE:
                        if not w.queued:
                            w.queued = True
                            ready.append(w)
                    elif rec.events & _WRITE:
                        # Nobody writes: stop watching for it. (If the fd is
                        # gone, its next wait registers anew.)
                        try:
                            self.set_events(rec, rec.events & ~_WRITE)
                        except OSError:
                            rec.events = 0
                            rec.sockref = None
            if n < _MAX_EVENTS:
                break
        if status < 0 and self.uvpoll is not NULL and not self.closed:
            self.start(uv.UV_READABLE)

    cdef bint _unwatched(self, SockFd rec) except -1:
        # A report nobody waits for. If the socket is gone (collected, or
        # closed: its file may live on elsewhere) or a transport now uses
        # its fd (connect_accepted_socket... after a sock_recv), stop
        # watching it, so that its traffic does not wake the loop for
        # nothing; its next wait registers it anew. True if so.
        cdef PyObject* sock
        sock = ourloop_weakref_target(rec.sockref) if rec.sockref is not None else NULL
        if (sock is not NULL and sock is not <PyObject*>None
                and ourloop_sock_fd(<object>sock) == rec.fd
                and rec.fd not in self.loop._fd_watchers.transports.data):
            return False
        ourloop_et_del(self.fd, rec.fd)     # (fails harmlessly if closed)
        rec.events = 0
        rec.sockref = None
        return True

    cdef int set_events(self, SockFd rec, int events) except -1:
        # Watch rec's fd for events (edge-triggered); raises epoll_ctl's
        # error as the stdlib's selector would.
        cdef uint64_t token = (<uint64_t>rec.gen << 32) | <unsigned int>rec.fd
        if ourloop_et_set(self.fd, rec.fd, events, token, rec.events == 0) != 0:
            code = cerrno.errno
            raise OSError(code, os.strerror(code))
        rec.events = events
        return 0

    cdef SockFd _rec(self, int fd):
        cdef PyObject** grown
        cdef Py_ssize_t cap
        cdef SockFd rec
        if fd >= self.cap:
            cap = self.cap * 2 if self.cap else 64
            while cap <= fd:
                cap *= 2
            grown = <PyObject**>realloc(self.recs, cap * sizeof(PyObject*))
            if grown is NULL:
                raise MemoryError()
            memset(grown + self.cap, 0, (cap - self.cap) * sizeof(PyObject*))
            self.recs = grown
            self.cap = cap
        if self.recs[fd] is not NULL:
            return <SockFd>self.recs[fd]
        rec = SockFd.__new__(SockFd)
        rec.fd = fd
        Py_INCREF(rec)
        self.recs[fd] = <PyObject*>rec
        return rec

    cdef SockWait wait_for(self, int fd, sock, int event):
        """The waiter of sock (on fd) for event, registered and idle: the
        operation then arms it. Replaces what waited on fd for event."""
        cdef SockFd rec = self._rec(fd)
        cdef SockWait w
        if rec.sockref is None or ourloop_weakref_target(rec.sockref) is not <PyObject*>sock:
            # The first wait of this socket (on this fd number): register
            # its file; waits of another socket on the number end here.
            if rec.reader is not None:
                rec.reader.disarm()
            if rec.writer is not None:
                rec.writer.disarm()
            rec.sockref = PyWeakref_NewRef(sock, None)
            rec.gen = (rec.gen + 1) & 0x7fffffff
            rec.events = 0
        if event == _READ:
            if rec.reader is None:
                rec.reader = _new_wait(self, rec, _READ)
            w = rec.reader
        else:
            if rec.writer is None:
                rec.writer = _new_wait(self, rec, _WRITE)
            w = rec.writer
        if w.op != _OP_NONE:
            # Another operation waits in this direction: replaced, its
            # future left pending (the stdlib cancels its handle).
            w.disarm()
        if not (rec.events & event):
            self.set_events(rec, rec.events | event | _READ)
        return w

    cdef bint displace(self, int fd, int event) except -1:
        # add_reader/remove_reader (or the writer's) on fd: an operation
        # waiting for event there is replaced, its future left pending.
        # True if there was one.
        cdef SockFd rec
        cdef SockWait w
        if fd < 0 or fd >= self.cap or self.recs[fd] is NULL:
            return False
        rec = <SockFd>self.recs[fd]
        w = rec.reader if event == _READ else rec.writer
        if w is None or w.op == _OP_NONE:
            return False
        w.disarm()
        return True

    cdef list armed_fds(self):
        cdef list fds = []
        cdef Py_ssize_t i
        cdef SockFd rec
        for i in range(self.cap):
            if self.recs[i] is not NULL:
                rec = <SockFd>self.recs[i]
                if ((rec.reader is not None and rec.reader.op != _OP_NONE)
                        or (rec.writer is not None and rec.writer.op != _OP_NONE)):
                    fds.append(i)
        return fds

    cdef _drop_recs(self):
        cdef Py_ssize_t i
        cdef SockFd rec
        cdef PyObject* obj
        for i in range(self.cap):
            obj = self.recs[i]
            if obj is NULL:
                continue
            self.recs[i] = NULL
            rec = <SockFd>obj
            Py_DECREF(rec)      # `rec` holds one
            for w in (rec.reader, rec.writer):
                if w is not None:
                    (<SockWait>w).disarm()
                    (<SockWait>w)._callback = None
                    (<SockWait>w).owner = None
            rec.reader = rec.writer = None
        free(self.recs)
        self.recs = NULL
        self.cap = 0

    def __dealloc__(self):
        # Collected without close() (the loop was never closed): let the fd
        # and the records go. (The uv handle is the loop's to close.)
        if not self.closed:
            self.closed = True
            if self.recs is not NULL:
                self._drop_recs()
            c_close(self.fd)

    cdef after_fork(self):
        # In a child: the set is the parent's; this loop gets an empty one
        # under the same fd number (no epoll_ctl on the parent's).
        cdef Py_ssize_t i
        cdef SockFd rec
        if self.closed:
            return
        if ourloop_et_renew(self.fd) != 0:
            self.closed = True
            return
        for i in range(self.cap):
            if self.recs[i] is not NULL:
                rec = <SockFd>self.recs[i]
                rec.events = 0
                rec.sockref = None

    cdef close(self):
        # The loop closes: the poll handle, then the set's fd (no
        # epoll_ctl: after a fork it may be the parent's). Pending futures
        # stay pending, as the stdlib's selector.close() leaves them.
        cdef int fd = self.fd
        if self.closed:
            return
        self.closed = True
        PollHandle.close(self)
        self._drop_recs()
        c_close(fd)


cdef SockOps _sockops(LoopCore loop):
    # The loop's SockOps, made by its first wait; None where there is no
    # readiness set (ENOSYS...).
    cdef FdWatchers watchers = loop._fd_watchers
    cdef SockOps ops = watchers.sockops
    cdef int fd
    if ops is not None:
        return ops if not ops.closed else None
    fd = ourloop_et_create()
    if fd < 0:
        return None
    try:
        ops = SockOps(loop, fd)
        ops.start(uv.UV_READABLE)
    except BaseException:
        if ops is not None:
            ops.closed = True
            PollHandle.close(ops)
        c_close(fd)
        raise
    watchers.sockops = ops
    return ops


cdef SockWait _start_wait(LoopCore loop, sock, int fd, int event):
    # What the stdlib does before it waits (after create_future()):
    # _ensure_fd_no_transport(fd), then _add_reader/_add_writer, which
    # checks that the loop is open and replaces the fd's reader (writer).
    # None: no readiness set, wait the Python way.
    cdef FdWatchers watchers = loop._fd_watchers
    cdef SockOps ops
    cdef object watch
    if watchers is None:
        loop._check_closed()
        raise RuntimeError('Event loop is closed')
    if fd in watchers.transports.data:
        loop._ensure_fd_no_transport(fd)
    loop._check_closed()
    loop._check_thread()
    ops = _sockops(loop)
    if ops is None:
        return None
    watch = watchers.watches.get(fd)
    if watch is not None and (<FdWatch>watch).mask & event:
        watchers.remove(fd, event)
    return ops.wait_for(fd, sock, event)


async def _sock_recv(LoopCore self, sock, n):
    """Receive at most n bytes from sock (a non-blocking socket);
    b'' at end of stream."""
    cdef Py_ssize_t size
    cdef int fd
    cdef SockWait w
    if (not _NATIVE or not PyLong_CheckExact(n)
            or not _plain_socket(sock, 'recv', _ORIG_RECV)):
        return await self._sock_recv_py(sock, n)
    size = PyLong_AsSsize_t(n)      # (OverflowError, as sock.recv() raises)
    if size < 0:
        return await self._sock_recv_py(sock, n)
    fd = ourloop_sock_fd(sock)
    data = _recv_bytes(fd, size)
    if data is not None:
        return data
    fut = self.create_future()
    w = _start_wait(self, sock, fd, _READ)
    if w is None:
        return await self._sock_wait(sock, False, self._sock_retry, sock, 'recv', n)
    w.arm(_OP_RECV, fut, sock)
    w.n = size
    try:
        return await fut
    finally:
        w.release(fut)


async def _sock_recv_into(LoopCore self, sock, buf):
    """Receive into the writable buffer buf; returns the byte count."""
    cdef Py_buffer view
    cdef Py_ssize_t got
    cdef int fd
    cdef SockWait w
    if not _NATIVE or not _plain_socket(sock, 'recv_into', _ORIG_RECV_INTO):
        return await self._sock_recv_into_py(sock, buf)
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
    except Exception:
        # The socket module's own error, from sock.recv_into().
        return await self._sock_recv_into_py(sock, buf)
    fd = ourloop_sock_fd(sock)
    try:
        got = ourloop_sock_recv_into(fd, <char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    if got != OURLOOP_WOULD_BLOCK:
        return got
    fut = self.create_future()
    w = _start_wait(self, sock, fd, _READ)
    if w is None:
        return await self._sock_wait(sock, False, self._sock_retry, sock, 'recv_into', buf)
    w.arm(_OP_RECV_INTO, fut, sock)
    w.obj = buf
    try:
        return await fut
    finally:
        w.release(fut)


async def _sock_sendall(LoopCore self, sock, data):
    """Send all of data on a connected socket; returns None. On error,
    how much was sent is unknown."""
    cdef Py_buffer view
    cdef Py_ssize_t sent, pos = 0
    cdef int fd
    cdef bint kept = False
    cdef SockWait w
    if not _NATIVE or not _plain_socket(sock, 'send', _ORIG_SEND):
        return await self._sock_sendall_py(sock, data)
    try:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    except Exception:
        return await self._sock_sendall_py(sock, data)
    try:
        if PyObject_Length(data) != view.len:
            # Items larger than a byte (array('i')...): the stdlib counts
            # len(data) items against the bytes sent; so does its code.
            PyBuffer_Release(&view)
            kept = True
            return await self._sock_sendall_py(sock, data)
        fd = ourloop_sock_fd(sock)
        # The stdlib's first sock.send(data); if the kernel took part of
        # it, the rest at once until EAGAIN (the wait is edge-triggered).
        while True:
            sent = ourloop_sock_send(fd, <char*>view.buf + pos, view.len - pos)
            if sent == OURLOOP_WOULD_BLOCK:
                break
            pos += sent
            if pos >= view.len:
                return None
        fut = self.create_future()
        w = _start_wait(self, sock, fd, _WRITE)
        if w is None:
            PyBuffer_Release(&view)
            kept = True
            return await self._sock_wait(sock, True, self._sock_sendall_ready,
                                         sock, memoryview(data), [pos])
        w.arm(_OP_SENDALL, fut, sock)
        w.view = view
        w.has_view = True
        w.pos = pos
        kept = True
    finally:
        if not kept:
            PyBuffer_Release(&view)
    try:
        return await fut
    finally:
        w.release(fut)


def _sockops_after_fork(LoopCore loop):
    # loop.pyx's fork hook, for each inherited loop.
    cdef FdWatchers watchers = loop._fd_watchers
    if watchers is not None and watchers.sockops is not None:
        watchers.sockops.after_fork()


def _sock_set_fds():
    """The fds of the live loops' sock_* readiness sets: loop-owned, like
    libuv's own epoll fd (the tests' leak checks leave them out)."""
    cdef LoopCore loop
    cdef FdWatchers watchers
    fds = []
    for obj in list(_all_loops):
        loop = <LoopCore>obj
        watchers = loop._fd_watchers
        if watchers is not None and watchers.sockops is not None and not watchers.sockops.closed:
            fds.append(watchers.sockops.fd)
    return fds


def _sockops_native():
    """Whether sock_recv/sock_recv_into/sock_sendall can be native here."""
    return _NATIVE
