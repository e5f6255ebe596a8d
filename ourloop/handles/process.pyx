# Child processes: the native half of spawning, and watching children until
# they are reaped. The Python side (ourloop/_subprocess.py) spawns through
# the stdlib's own C spawner, _posixsubprocess.fork_exec (vfork where the
# running CPython uses it), from a subprocess.Popen subclass, and builds the
# transport.
#
# Spawning (_read_spawn_error, _wait_failed_child). fork_exec returns the
# child's pid once the child exists; the child reports a failure before or
# at exec (chdir, preexec_fn, execve...) through a close-on-exec pipe and
# exits. With vfork the parent only resumes after the exec or the failure,
# so the pipe is already at EOF or holds the report; with fork (preexec_fn,
# user/group changes, 3.9) the read waits for the exec, as Popen's does.
# Both the read of that pipe and the wait for a failed child are C calls
# here, with the GIL released: the loop thread makes no Python-level
# blocking call (os.read, os.waitpid) while spawning, which tools like
# blockbuster would report.
#
# Reaping (ChildWatch). A child is watched through an fd that becomes
# readable when it exits (_child_fd: platform.h's ourloop_child_fd, a pidfd
# on Linux 5.3+, a kqueue with EVFILT_PROC on macOS and the BSDs) with a
# uv_poll_t; when it becomes readable the child has exited: ourloop_reap
# reaps exactly that child (waitid(P_PIDFD, WNOHANG), no pid reuse race;
# else waitpid(pid, WNOHANG)). The exit status goes to the Python callback
# through the ready queue (no Python code runs inside uv_run). When the loop
# closes first, the watch hands the child to the orphan reaper of
# _subprocess.py (a daemon thread that waits for it), so no zombie is left.
# Without such an fd (old kernels, seccomp, the forced-portable build),
# _subprocess.py waits in a thread per child instead, as the stdlib's
# ThreadedChildWatcher does. ourloop never uses a uv_process_t, nor a
# SIGCHLD handler (libuv's would replace the process's, and restores
# SIG_DFL, not the previous handler, when its last watcher stops).
#
# Who owns which fd:
#   - the child fd (pidfd or kqueue): the ChildWatch from its creation
#     until it reaps the child
#     (closed after the uv_poll_t is closed) or hands it to the orphan
#     reaper (which closes it once the child is reaped).
#   - the error pipe given to _read_spawn_error: the caller's
#     (_subprocess.py closes it); this file only reads it.

from cpython.exc cimport PyErr_CheckSignals
from libc cimport errno as _cerrno
from posix.types cimport pid_t
from posix.unistd cimport read as _c_read
from posix.wait cimport waitpid

from ourloop.includes cimport uv
from ourloop.includes.platform cimport ourloop_reap, ourloop_child_fd, OURLOOP_CHILD_FD_KIND

import os


# As much of a child's failure report as Popen reads (it stops past this).
cdef enum:
    _SPAWN_ERROR_MAX = 50000


def _read_spawn_error(int fd):
    """Read the error pipe of a child just spawned by fork_exec until EOF
    (the child exec'ed, or failed and exited) or past 50,000 bytes, as
    Popen does, and return what was read (b'' if the exec succeeded).

    read(2) in C with the GIL released; EINTR runs the signal handlers (an
    exception of theirs propagates) and reads again; any other error is
    raised as OSError."""
    cdef char buf[4096]
    cdef Py_ssize_t n
    cdef int err = 0
    data = bytearray()
    while True:
        with nogil:
            n = _c_read(fd, buf, sizeof(buf))
            if n < 0:
                err = _cerrno.errno
        if n < 0:
            if err == _cerrno.EINTR:
                PyErr_CheckSignals()
                continue
            raise OSError(err, os.strerror(err))
        if n == 0:
            break
        data += buf[:n]
        if len(data) > _SPAWN_ERROR_MAX:
            break
    return bytes(data)


def _wait_failed_child(int pid):
    """Wait for (reap) the child `pid`, which reported a spawn failure and
    exits: its wait status. ChildProcessError if it is not ours to wait
    for (reaped by someone else). waitpid(2) in C with the GIL released;
    EINTR runs the signal handlers and waits again."""
    cdef int status = 0
    cdef pid_t r
    cdef int err = 0
    while True:
        with nogil:
            r = waitpid(pid, &status, 0)
            if r < 0:
                err = _cerrno.errno
        if r >= 0:
            return status
        if err == _cerrno.EINTR:
            PyErr_CheckSignals()
            continue
        raise OSError(err, os.strerror(err))


def _child_fd(int pid):
    """An fd that becomes readable when the child `pid` exits (a pidfd, or
    a kqueue watching it: _CHILD_FD_KIND), for _watch_child; OSError where
    there is none (ENOSYS: not on this platform or build)."""
    cdef int fd = ourloop_child_fd(pid)
    cdef int code
    if fd < 0:
        code = _cerrno.errno
        raise OSError(code, os.strerror(code))
    return fd


# 'pidfd', 'kqueue' or 'none' (platform.h).
_CHILD_FD_KIND = OURLOOP_CHILD_FD_KIND.decode()


cdef class ChildWatch(PollHandle):
    """Waits for one child through its child fd (see the top of this file)."""

    def __cinit__(self, LoopCore loop, int fd, int pid, popen, callback, orphaned,
                  context=None):
        self.pid = pid
        self.popen = popen
        self.callback = callback
        self.orphaned = orphaned
        self.context = context

    cdef on_events(self, int status, int events):
        cdef int code = 0
        cdef int fd = self.fd
        cdef int pid = self.pid
        cdef int r
        with nogil:
            # (Blocks on a kqueue for the end of an exit it reported.)
            r = ourloop_reap(fd, pid, &code)
        if r == 0:
            return          # not exited yet (spurious wake-up): keep waiting
        self._release()
        callback = self.callback
        self.callback = None
        self.popen = None
        context = self.context
        self.context = None
        self.loop._call_soon(callback, (self.pid, code if r == 1 else None), context)

    cdef _release(self):
        # Close the uv_poll_t first (uv_close takes the fd off epoll), then
        # the pidfd.
        cdef int fd = self.fd
        self.done = True
        PollHandle.close(self)
        self.loop._io_handles.discard(self)
        if fd >= 0:
            self.fd = -1
            os.close(fd)

    cdef on_file_gone(self):
        # Our pidfd was closed under us (a bug elsewhere): stop polling it and
        # let the orphan reaper wait for the child by its pid.
        self.done = True
        PollHandle.close(self)
        self.loop._io_handles.discard(self)
        self.fd = -1
        self._orphan(-1)

    cdef _orphan(self, int pidfd):
        orphaned = self.orphaned
        popen = self.popen
        self.callback = self.popen = self.orphaned = None
        orphaned(self.pid, pidfd, popen)

    def _uv_close(self):
        # The loop closes while the child runs: the orphan reaper takes the
        # child and the pidfd over.
        cdef int fd = self.fd
        if self.done:
            return
        self.done = True
        PollHandle.close(self)
        self.loop._io_handles.discard(self)
        self.fd = -1
        self._orphan(fd)

    def __repr__(self):
        return f'<ChildWatch pid={self.pid} {"done" if self.done else "watching"}>'


cdef ChildWatch _watch_child(LoopCore loop, int pidfd, int pid, popen, callback, orphaned,
                             context):
    """(LoopCore._watch_child.) Watch the child `pid` through `pidfd` (which the watch owns from now
    on, even if this raises): when it has exited and is reaped,
    callback(pid, returncode) runs from the ready queue, in `context` (None:
    a copy of the context current then), with returncode None if someone
    else reaped it. If the loop closes first, orphaned(pid, pidfd, popen)
    is called, once."""
    cdef ChildWatch watch
    try:
        loop._ensure_open()
        watch = ChildWatch(loop, pidfd, pid, popen, callback, orphaned, context)
    except BaseException:
        os.close(pidfd)
        raise
    loop._io_handles.add(watch)
    try:
        watch.start(uv.UV_READABLE)
    except BaseException:
        watch._uv_close()
        raise
    return watch
