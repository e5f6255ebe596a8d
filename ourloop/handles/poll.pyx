# uv_poll_t file-descriptor watchers.
#
#   PollHandle    one uv_poll_t on one fd (the base of the two below).
#   FdWatch       one fd's add_reader()/add_writer() registration: its
#                 reader and writer Handles and the events its uv_poll_t is
#                 started with (reader | writer).
#   FdWatchers    the per-loop registry behind loop.add_reader() & co.
#                 (LoopCore._fd_watchers): {fd: FdWatch}, the `transports`
#                 mapping the stdlib calls loop._transports, and the
#                 uv_prepare_t that checks fds before libuv polls them.
#   SignalWakeup  the socketpair given to signal.set_wakeup_fd() so that
#                 Ctrl-C wakes a sleeping loop.
#
# Semantics are the stdlib's selector loop (selector_events.py) over
# EpollSelector: a registration is a selector key {fd: (mask, reader,
# writer)}; re-adding replaces and cancels the previous handle; an event
# puts the Handle on the loop's ready queue (natively, from the poll
# callback), where it runs in the context current when it was added, after
# the callbacks already queued and before the timers that are due; a
# cancelled handle whose event fires is unregistered. Errors are epoll's:
# PermissionError for a regular file, OSError(EBADF) for a closed fd,
# FileNotFoundError (ENOENT) when a registration changes its events after
# its fd number was closed and reused.
#
# Who does what. Registering and unregistering are Python-callable methods
# of FdWatchers (once per call; _sockets.py calls them); dispatching an
# event is C: the poll callback appends the Handle to LoopCore._ready.
# Only the thread running the loop may register while it runs (libuv is
# not thread-safe): other threads get the stdlib's "Non-thread-safe
# operation" RuntimeError and should use call_soon_threadsafe().
#
# The crash hazard and how it is avoided. libuv 1.44 (and later) applies a
# watcher's new events in uv__io_poll with epoll_ctl(ADD) and calls abort()
# if that fails with anything but EEXIST; uv_poll_start always re-adds the
# fd. So if the fd of a (re)started watcher is closed before the next
# uv_run (closed after add_reader, closed in a callback before the next
# iteration, closed and its number reused by a regular file, closed twice
# by mistake...), libuv would abort the process. epoll itself ties a
# registration to the open file description and silently drops it when the
# description is closed; ourloop reproduces that, without ever handing
# libuv a bad fd:
#
# - Every PollHandle records the (st_dev, st_ino) of its fd when created
#   (in the loop's table as well, where every handle ourloop opens on an
#   fd records it: ourloop_fdids in includes/compat.h).
# - A PollHandle (re)started with uv_poll_start is "dirty". Before libuv
#   polls, FdWatchers' uv_prepare_t (prepare callbacks run right before
#   uv__io_poll) checks every dirty handle with fstat(): if the fd is
#   closed or now names another file, the handle's on_file_gone() closes
#   its uv_poll_t, so libuv never touches the fd. For an FdWatch that is
#   epoll's behaviour: the registration died with its file; it stays
#   registered but "dead" (its callbacks never run, remove_reader() still
#   returns True). SignalWakeup just stops waking the loop. Handles that
#   were not restarted cost nothing: libuv does no epoll_ctl for them, and
#   a closed fd simply stops reporting events.
# - Changing the events of a registration (add_writer on a watched reader,
#   remove_reader with a writer left) checks the fd first, synchronously,
#   and raises what epoll_ctl(MOD) raises: OSError(EBADF) if it is closed,
#   PermissionError or FileNotFoundError if its number now names another
#   file; the registration is dropped (its handles are not cancelled), as
#   the stdlib's selector does when modify() fails.
# - A new registration goes through uv_poll_init, which tests the fd with
#   epoll_ctl(ADD)/(DEL): errors are raised as the stdlib's epoll raises them
#   (PermissionError for regular files, OSError(EBADF)...). uv_poll_init also
#   sets O_NONBLOCK on the file; ourloop restores a blocking fd's flags,
#   since the stdlib never changes them.
# - A libuv handle that wants an fd we still hold in libuv (the signal
#   wake-up socketpair reusing a closed fd's number; the socket, pipe and
#   datagram handles) calls FdWatchers.claim(fd) first: our stale registration lets
#   go of the fd in libuv before the new handle starts.
# - The other handles on fds (a transport's stream or uv_udp_t) are
#   checked by the same prepare callback, after the PollHandles:
#   ourloop_guard_watchers in includes/compat.h walks libuv's queue of
#   changed watchers (docs/architecture.md, "Fds closed while watched").
# - Watching a dup() of the user's fd was rejected: the dup would keep a
#   socket open (no FIN to the peer) after the user closed it, and would go
#   on reporting its events while the number may already name another
#   socket, whose data a stale callback could then read.
#
# Cost: one fstat() per registration change (in the prepare phase), plus
# one per events change of an existing registration; nothing per event.
# What is left: another thread closing a watched fd in the microseconds
# between the prepare check and uv__io_poll, or epoll_ctl(ADD) failing with
# ENOMEM/ENOSPC (kernel out of memory, fs.epoll.max_user_watches reached),
# still reach libuv's abort().
#
# POLLERR: libuv stops a uv_poll_t that reports an error; epoll keeps
# reporting it (level-triggered) and the stdlib calls both the reader and the
# writer, so ourloop queues both and restarts the watcher.
#
# Events seen twice in one uv_run (libuv polls again without waiting when
# epoll_wait filled its 1024-event buffer) queue a Handle once: the prepare
# callback counts uv_run calls (FdPrepare.gen), each Handle is queued at
# most once per count.
#
# SignalWakeup: while a loop runs in the main thread, Python's signal module
# writes a byte to a socketpair for every signal (signal.set_wakeup_fd) and
# this poll handle wakes uv_run up, so Python-level signal handlers
# (KeyboardInterrupt for Ctrl-C, asyncio.Runner's SIGINT handler) run at
# once even while the loop sleeps in the kernel. A wake-up fd that was set
# before the loop started is restored afterwards, and meanwhile receives the
# bytes the loop drains, as if it had stayed set.

from cpython.contextvars cimport PyContext_CopyCurrent
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject
from libc cimport errno as cerrno   # (the name errno is the Python module)
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free, realloc
from posix.fcntl cimport fcntl, F_GETFL, F_SETFL, O_NONBLOCK
from posix.stat cimport struct_stat, fstat, S_ISREG, S_ISDIR
from posix.unistd cimport close as c_close

from ourloop.includes cimport uv

import os
import signal
import sys
import warnings
import weakref


cdef enum:
    _EVENT_READ = 1     # selectors.EVENT_READ == UV_READABLE
    _EVENT_WRITE = 2    # selectors.EVENT_WRITE == UV_WRITABLE
    _INT_MAX = 2147483647

cdef bint _WARN_BOOL_FD = sys.version_info >= (3, 13)


cdef void _on_poll(uv.uv_poll_t* handle, int status, int events) noexcept with gil:
    cdef PollHandle poller
    if handle.data is NULL:
        return
    poller = <PollHandle>handle.data
    if (<LoopExt*>handle.loop).rq_len:
        # (Reads recorded before this callback keep their place.)
        _deliver_ready_io(poller.loop)
    try:
        poller.on_events(status, events)
    except BaseException as exc:
        poller.loop._set_pending_exception(exc)


cdef class PollHandle:
    """A uv_poll_t on one fd. Every (re)start is checked before libuv polls:
    see the top of this file."""

    def __cinit__(self, LoopCore loop, int fd, *args):
        cdef int err, flags
        self.loop = loop
        self.fd = fd
        loop._ensure_open()
        if not isinstance(self, FdWatch) and loop._fd_watchers is not None:
            # A stale fd watch of ours may still hold this fd number in
            # libuv (its file was closed): it lets go first.
            loop._fd_watchers.claim(fd)
        self.uvpoll = <uv.uv_poll_t*>malloc(sizeof(uv.uv_poll_t))
        if self.uvpoll is NULL:
            raise MemoryError()
        flags = fcntl(fd, F_GETFL)
        err = uv.uv_poll_init(loop.uvloop, self.uvpoll, fd)
        if err < 0:
            free(self.uvpoll)
            self.uvpoll = NULL
            _check_uv(err)
        count_open(<uv.uv_handle_t*>self.uvpoll)
        if flags != -1 and not (flags & O_NONBLOCK):
            # uv_poll_init made the file non-blocking; polling does not
            # need it and the stdlib leaves the flags alone.
            fcntl(fd, F_SETFL, flags)
        # The callback reaches this object through data; close() clears it
        # before this object can go away.
        self.uvpoll.data = <void*>self
        try:
            self.identify()
        except BaseException:
            self.close()
            raise

    cdef int identify(self) except -1:
        # Remember which file the fd names now (the loop's table too: see
        # ourloop_fdids in includes/compat.h).
        cdef struct_stat st
        if fstat(self.fd, &st) != 0:
            code = cerrno.errno
            raise OSError(code, os.strerror(code))
        self.dev = <uint64_t>st.st_dev
        self.ino = <uint64_t>st.st_ino
        if uv.ourloop_fdid_set(&(<LoopExt*>self.loop.uvloop).fdids,
                               <uv.uv_handle_t*>self.uvpoll, self.fd,
                               self.dev, self.ino) < 0:
            raise MemoryError()
        return 0

    cdef int check_file(self) noexcept:
        """0 if the fd still names the file it was watched for, else the
        errno epoll_ctl(MOD) would fail with: EBADF if it is closed; if its
        number was reused, EPERM for a file epoll cannot watch (regular
        file, directory), else ENOENT (that file is not registered)."""
        cdef struct_stat st
        if fstat(self.fd, &st) != 0:
            return cerrno.EBADF
        if <uint64_t>st.st_dev != self.dev or <uint64_t>st.st_ino != self.ino:
            return _unregistered_file_errno(&st)
        return 0

    cdef int start(self, int events) except -1:
        # (Re)start for `events`. libuv re-adds the fd to epoll in the next
        # uv__io_poll; FdWatchers' prepare callback checks it first.
        cdef FdWatchers watchers = self.loop._fd_watchers
        cdef FdPrepare* prep
        if self.uvpoll is NULL:
            raise RuntimeError('the poll handle is closed')
        _check_uv(uv.uv_poll_start(self.uvpoll, events, _on_poll))
        if self.dirty or watchers is None:
            return 0
        prep = watchers.prep
        if prep is not NULL:
            self.dirty = True
            watchers.dirty.append(self)
            prep.ndirty += 1
        return 0

    cdef stop(self):
        if self.uvpoll is not NULL:
            uv.uv_poll_stop(self.uvpoll)

    cdef close(self):
        if self.uvpoll is not NULL:
            self.uvpoll.data = NULL
            close_and_free(<uv.uv_handle_t*>self.uvpoll)
            self.uvpoll = NULL

    cdef close_with_fd(self):
        # Close the handle, then its fd: a dup() made for this handle alone
        # (uv_close() has already taken it out of epoll).
        cdef int fd = self.fd
        self.close()
        c_close(fd)

    cdef on_events(self, int status, int events):
        pass

    cdef on_file_gone(self):
        # The fd was closed (or names another file) before libuv could poll
        # it: libuv must never see it.
        self.close()

    # No __dealloc__: LoopCore owns its poll handles and closes them (and,
    # when it is freed itself, every handle left on the uv loop).


# -- add_reader / add_writer ---------------------------------------------


cdef class FdWatch(PollHandle):
    """One fd's reader/writer registration (a selector key)."""

    def __cinit__(self, LoopCore loop, int fd, FdWatchers owner, fileobj):
        self.owner = owner
        self.fileobj = fileobj

    cdef on_file_gone(self):
        # The registered file is gone: let go of the fd in libuv. The
        # registration itself stays, with its handles, as a selector key
        # stays after its fd was closed.
        self.close()
        self.dead = True

    cdef on_events(self, int status, int events):
        cdef Handle reader = self.reader
        cdef Handle writer = self.writer
        cdef FdWatchers owner = self.owner
        cdef FdPrepare* prep = owner.prep
        cdef size_t gen = prep.gen if prep is not NULL else 0
        if status < 0:
            # POLLERR: the stdlib's selector reports it as readable and
            # writable.
            events = uv.UV_READABLE | uv.UV_WRITABLE
        if events & uv.UV_READABLE and reader is not None:
            if reader._cancelled:
                owner._remove(self, _EVENT_READ)
            elif self.read_gen != gen:
                self.read_gen = gen
                self.loop._ready.append(reader)
        if events & uv.UV_WRITABLE and writer is not None:
            if writer._cancelled:
                owner._remove(self, _EVENT_WRITE)
            elif self.write_gen != gen:
                self.write_gen = gen
                self.loop._ready.append(writer)
        if status < 0 and self.uvpoll is not NULL and self.mask:
            # libuv stopped the watcher; epoll would go on reporting.
            self.start(self.mask)


cdef inline int _unregistered_file_errno(struct_stat* st) noexcept:
    # epoll_ctl(MOD) on a file that is not in the epoll set: EPERM first if
    # epoll cannot watch it at all.
    if S_ISREG(st.st_mode) or S_ISDIR(st.st_mode):
        return cerrno.EPERM
    return cerrno.ENOENT


def _fileobj_to_fd(fileobj):
    # The fd of an int or of an object with fileno(), with the errors of
    # the stdlib's selectors.
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


cdef void _on_prepare(uv.uv_prepare_t* handle) noexcept nogil:
    cdef FdPrepare* prep = <FdPrepare*>handle
    cdef int bad[8]
    cdef int nbad
    prep.gen += 1
    if prep.ndirty and prep.owner is not NULL:
        with gil:
            _check_dirty(prep)
    # Any other watcher whose fd epoll would refuse (a transport's fd the
    # user closed under it, or whose number now names another file): libuv
    # must not see it (see compat.h).
    nbad = uv.ourloop_guard_watchers(handle.loop, &(<LoopExt*>handle.loop).fdids, bad, 8)
    if nbad and prep.owner is not NULL:
        with gil:
            _fds_gone(prep, bad, nbad if nbad < 8 else 8)
        # Ending those transports changed their watchers again (reading
        # stopped while a write waits): libuv must not see those either.
        uv.ourloop_guard_watchers(handle.loop, &(<LoopExt*>handle.loop).fdids, bad, 8)
        # Callbacks were queued: libuv must not sleep in this poll.
        uv.uv_stop(handle.loop)


cdef void _fds_gone(FdPrepare* prep, int* bad, int nbad) noexcept:
    # The transports whose fd was closed under them end as after a failed
    # write: connection_lost(OSError(EBADF)). (The stdlib's selector raises
    # that OSError from the next call that changes the fd's registration.)
    # A number that now names another file (bad[i] is -2 - fd) is that
    # file's: the transport no longer reads, writes or closes it.
    cdef FdWatchers owner = <FdWatchers><PyObject*>prep.owner
    cdef TransportBase transport
    cdef int i, fd
    try:
        for i in range(nbad):
            fd = bad[i]
            if fd < -1:
                fd = -2 - fd
            transport = owner.transport_of(fd)
            if transport is not None and bad[i] < -1:
                transport._fd_moved()
            if transport is not None and not transport._conn_lost:
                transport._fatal_error(OSError(cerrno.EBADF, os.strerror(cerrno.EBADF)),
                                       'Fatal error on transport')
    except BaseException as exc:
        owner.loop._set_pending_exception(exc)


cdef void _check_dirty(FdPrepare* prep) noexcept:
    cdef FdWatchers owner = <FdWatchers><PyObject*>prep.owner
    try:
        owner.check_dirty()
    except BaseException as exc:
        owner.loop._set_pending_exception(exc)


cdef inline void _set_handle(FdWatch watch, int event, Handle handle):
    # Make `handle` the watch's reader (event 1) or writer (2).
    if event == _EVENT_READ:
        watch.reader = handle
    else:
        watch.writer = handle


# Not no_gc_clear: the loop and its FdWatchers reference each other, and
# LoopCore is no_gc_clear, so clearing ``loop`` here is what lets the
# collector free a dropped loop (with neither clearable, every loop leaked,
# its __dict__ emptied).  Nothing runs on a cleared FdWatchers: its
# __dealloc__ only frees C memory, and LoopCore.__dealloc__ only closes the
# uv handles in C.
cdef class FdWatchers:
    """The fd watchers of one loop: what add_reader() & co. registered."""

    def __cinit__(self, LoopCore loop):
        self.loop = loop
        self.watches = {}
        self.parked = {}
        self.dirty = []
        # fd -> transport using it (the stdlib's loop._transports): the
        # socket transports register here when they take an fd over
        # (set_transport); `transports` holds what Python code sets.
        self.transports = weakref.WeakValueDictionary()
        self.foreign = self.transports.data
        self.prep = <FdPrepare*>malloc(sizeof(FdPrepare))
        if self.prep is NULL:
            raise MemoryError()
        self.prep.gen = 0
        self.prep.ndirty = 0
        self.prep.owner = NULL
        err = uv.uv_prepare_init(loop.uvloop, &self.prep.handle)
        if err < 0:
            free(self.prep)
            self.prep = NULL
            _check_uv(err)
        count_open(<uv.uv_handle_t*>&self.prep.handle)
        self.prep.owner = <void*>self
        uv.uv_prepare_start(&self.prep.handle, _on_prepare)
        uv.uv_unref(<uv.uv_handle_t*>&self.prep.handle)

    def __dealloc__(self):
        free(self.tfd)
        self.tfd = NULL
        self.tfd_cap = 0

    def __len__(self):
        return len(self.watches)

    # -- fd -> transport (add_reader() & co. refuse a transport's fd) -------
    #
    # A socket transport is found by its fd in a C array of borrowed
    # references (8 bytes per fd number, where the stdlib's weak-valued
    # dict costs a weak reference and a dict entry per connection). The
    # entry goes when the transport lets its socket go (_release_socket), or
    # closes its handle for a closing loop (_uv_close), or is collected with
    # its socket (__del__): every path by which a registered transport can
    # be freed, so the array never names a freed one. (The stdlib keeps a
    # closed transport's entry until it is collected; add_reader() ignores a
    # closing transport, so both refuse the same fds.)

    cdef int set_transport(self, int fd, TransportBase t) except -1:
        cdef Py_ssize_t cap, i
        cdef PyObject** grown
        if fd < 0:
            return 0
        if fd >= self.tfd_cap:
            cap = max(64, self.tfd_cap * 2, <Py_ssize_t>fd + 1)
            grown = <PyObject**>realloc(self.tfd, cap * sizeof(PyObject*))
            if grown is NULL:
                raise MemoryError()
            for i in range(self.tfd_cap, cap):
                grown[i] = NULL
            self.tfd = grown
            self.tfd_cap = cap
        self.tfd[fd] = <PyObject*>t
        if self.foreign:
            # (As in the stdlib's dict, the newest entry for an fd wins.)
            self.transports.pop(fd, None)
        return 0

    cdef void forget_transport(self, int fd, TransportBase t) noexcept:
        if 0 <= fd < self.tfd_cap and self.tfd[fd] == <PyObject*>t:
            self.tfd[fd] = NULL

    cpdef object transport_of(self, object fd):
        """The transport using fd (an int), or None."""
        cdef Py_ssize_t i
        if type(fd) is int and 0 <= fd < self.tfd_cap:
            i = fd
            if self.tfd[i] is not NULL:
                return <object>self.tfd[i]
        if self.foreign:
            return self.transports.get(fd)
        return None

    def fds(self):
        """The registered fds (dead registrations included), and those
        of the sock_* operations waiting (sockops.pyx)."""
        fds = list(self.watches)
        if self.sockops is not None:
            fds += [fd for fd in self.sockops.armed_fds() if fd not in self.watches]
        return fds

    def get(self, fd):
        """The FdWatch registered for fd, or None."""
        return self.watches.get(fd)

    cdef lookup(self, fileobj):
        # selectors' _fileobj_lookup: a registered object whose fileno()
        # no longer works (a closed socket) is found by identity.
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            for watch in self.watches.values():
                if (<FdWatch>watch).fileobj is fileobj:
                    return (<FdWatch>watch).fd
            raise

    def add(self, fileobj, int event, callback, tuple args):
        """Register callback(*args) for `event` (1: read, 2: write) on
        fileobj; returns its Handle."""
        cdef Handle handle
        cdef Handle old
        cdef FdWatch watch
        self.loop._ensure_open()
        # libuv is not thread-safe: only the thread running the loop may
        # touch its watchers (the stdlib's debug-mode error for call_soon).
        self.loop._check_thread()
        handle = Handle.__new__(Handle)
        handle._set(self.loop, callback, args, PyContext_CopyCurrent())
        fd = self.lookup(fileobj)
        if self.sockops is not None:
            # A sock_* operation waiting there is replaced (sockops.pyx).
            self.sockops.displace(fd, event)
        watch = self.watches.get(fd)
        if watch is None:
            if fd > _INT_MAX:
                raise OverflowError('Python int too large to convert to C int')
            if _WARN_BOOL_FD and isinstance(fd, bool):
                warnings.warn('bool is used as a file descriptor',
                              RuntimeWarning, stacklevel=3)
            watch = self._unpark(fd)
            if watch is None:
                watch = FdWatch(self.loop, fd, self, fileobj)
            else:
                watch.fileobj = fileobj
            try:
                watch.mask = event
                watch.start(event)
            except BaseException:
                watch.close()
                raise
            _set_handle(watch, event, handle)
            self.watches[fd] = watch
            return handle
        old = watch.reader if event == _EVENT_READ else watch.writer
        self._set_mask(watch, watch.mask | event)
        _set_handle(watch, event, handle)
        if old is not None:
            old.cancel()
        return handle

    def remove(self, fileobj, int event):
        """Unregister the reader (1) or writer (2) of fileobj; True if there
        was one."""
        if self.loop._closed:
            return False
        self.loop._check_thread()
        fd = self.lookup(fileobj)
        if self.sockops is not None and self.sockops.displace(fd, event):
            return True
        watch = self.watches.get(fd)
        if watch is None:
            return False
        return self._remove(<FdWatch>watch, event)

    cdef bint _remove(self, FdWatch watch, int event) except -1:
        # Read the handle first: clearing the last event parks the watch.
        cdef Handle old = watch.reader if event == _EVENT_READ else watch.writer
        self._set_mask(watch, watch.mask & ~event)
        _set_handle(watch, event, None)
        if old is not None:
            old.cancel()
            return True
        return False

    cdef int _set_mask(self, FdWatch watch, int mask) except -1:
        # What the stdlib's selector does to its key and to epoll.
        cdef int err
        cdef struct_stat st
        if mask == watch.mask:
            return 0
        if _WARN_BOOL_FD and isinstance(watch.fileobj, bool):
            # 3.13+: epoll's modify()/unregister() take the key's fd.
            warnings.warn('bool is used as a file descriptor',
                          RuntimeWarning, stacklevel=3)
        if mask == 0:
            self._drop(watch, True)
            return 0
        err = watch.check_file()
        if watch.dead and err == 0:
            # The registered description is gone; epoll_ctl(MOD) on the
            # file that now has its number fails like this.
            err = cerrno.ENOENT
            if fstat(watch.fd, &st) == 0:
                err = _unregistered_file_errno(&st)
        if err:
            self._drop(watch, False)
            raise OSError(err, os.strerror(err))
        watch.mask = mask
        watch.start(mask)
        return 0

    cdef _drop(self, FdWatch watch, bint park):
        # Unregister (libuv's epoll_ctl(DEL) ignores a closed fd); the
        # handles stay as they are. A live uv_poll_t is kept stopped for
        # the next registration of the same file (the common case: one
        # sock_recv() after another), which then costs no uv_poll_init.
        cdef FdWatch other
        if self.watches.get(watch.fd) is watch:
            del self.watches[watch.fd]
        watch.mask = 0
        if not park or watch.dead or watch.uvpoll is NULL:
            watch.close()
            return
        watch.stop()
        watch.fileobj = None
        watch.reader = None
        watch.writer = None
        other = self.parked.get(watch.fd)
        if other is not None and other is not watch:
            other.close()
        self.parked[watch.fd] = watch

    cdef FdWatch _unpark(self, fd):
        # The parked watch of fd if fd still names its file, else None (the
        # parked one is closed: only the file uv_poll_init checked may be
        # watched without a new check).
        cdef FdWatch watch = self.parked.pop(fd, None)
        if watch is None:
            return None
        if watch.uvpoll is NULL or watch.check_file() != 0:
            watch.close()
            return None
        watch.dead = False
        return watch

    def claim(self, int fd):
        """Another libuv handle is about to watch fd: if a registration of
        ours still holds it in libuv (its file is gone), let it go. True if
        something was released."""
        cdef FdWatch parked = self.parked.pop(fd, None)
        if parked is not None:
            parked.close()
        watch = self.watches.get(fd)
        if watch is None or (<FdWatch>watch).uvpoll is NULL:
            return parked is not None
        (<FdWatch>watch).on_file_gone()
        return True

    cdef check_dirty(self):
        # Runs in the prepare phase, right before libuv re-adds the fds of
        # restarted watchers to epoll: never let it see a bad one.
        cdef PollHandle poller
        cdef list dirty = self.dirty
        self.dirty = []
        if self.prep is not NULL:
            self.prep.ndirty = 0
        for poller in dirty:
            poller.dirty = False
            if poller.uvpoll is not NULL and poller.check_file() != 0:
                poller.on_file_gone()

    cdef close(self):
        # The loop closes: every uv handle goes; handles are not cancelled
        # (the stdlib's selector.close() does not either).
        cdef FdWatch watch
        if self.sockops is not None:
            self.sockops.close()
        for watch in self.watches.values():
            watch.close()
        for watch in self.parked.values():
            watch.close()
        self.watches.clear()
        self.parked.clear()
        self.dirty = []
        if self.prep is not NULL:
            self.prep.owner = NULL
            self.prep.ndirty = 0
            close_and_free(<uv.uv_handle_t*>&self.prep.handle)
            self.prep = NULL


# -- the signal wake-up fd -------------------------------------------------


cdef class SignalWakeup(PollHandle):
    """The read end of the socketpair given to signal.set_wakeup_fd()."""

    def __cinit__(self, LoopCore loop, int fd, rsock, wsock):
        self.rsock = rsock
        self.wsock = wsock

    cdef install(self):
        # Only the main thread of the main interpreter may set the wake-up fd.
        if self.installed:
            return
        if self.uvpoll is NULL or self.check_file() != 0:
            # Someone closed the loop's socket (a double close of a reused
            # fd number): no wake-up, rather than libuv aborting.
            self.close()
            return
        try:
            self.saved_fd = signal.set_wakeup_fd(self.wsock.fileno(), warn_on_full_buffer=False)
        except ValueError:
            return
        self.installed = True
        self.start(uv.UV_READABLE)

    cdef uninstall(self):
        if not self.installed or self.pinned:
            # Pinned: loop.add_signal_handler() handlers exist, and the
            # wake-up fd stays set while they do (as the stdlib's).
            return
        self.installed = False
        self.stop()
        try:
            current = signal.set_wakeup_fd(self.saved_fd)
            if current != self.wsock.fileno():
                # Code run by the loop set a wake-up fd of its own: keep it.
                signal.set_wakeup_fd(current)
        except ValueError:
            pass
        self.saved_fd = None

    cdef on_events(self, int status, int events):
        # Drain the bytes, then run the Python-level signal handlers now;
        # whatever they raise (KeyboardInterrupt) stops the loop and comes
        # out of run_forever().
        # A wake-up fd set before the loop ran still gets every byte.
        while True:
            try:
                data = self.rsock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            if self.saved_fd is not None and self.saved_fd >= 0:
                try:
                    os.write(self.saved_fd, data)
                except OSError:
                    pass
            if self.dispatch is not None:
                # Each byte is a signal number: add_signal_handler()'s
                # callbacks are queued.
                self.dispatch(data)
        PyErr_CheckSignals()

    def close_sockets(self):
        self.rsock.close()
        self.wsock.close()
