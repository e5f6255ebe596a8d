# Child processes: spawning over uv_spawn, and watching children until they
# are reaped. The Python side (ourloop/_subprocess.py) checks the arguments,
# decides between uv_spawn and subprocess.Popen, and builds the transport.
#
# Spawning (_uv_spawn). libuv 1.44's uv_spawn forks, sets the child up and
# execs, and reports exec errors synchronously (the child writes its errno
# to a close-on-exec pipe and libuv reaps it). What its child set-up does,
# and where that differs from subprocess.Popen's (the rule that sends a
# spawn to Popen is in _subprocess.py, `_uv_spawn_plan`):
#   - signal dispositions 1..31 are all reset to SIG_DFL (Popen: only
#     SIGPIPE and SIGXFSZ, with restore_signals=True; an ignored signal stays
#     ignored across exec). _spawn_signals_differ() tells whether that shows.
#   - the signal mask is emptied (Popen: the child keeps the calling
#     thread's mask). _spawn_signals_differ() checks the mask too.
#   - fds: nothing is closed; only O_CLOEXEC fds go at exec (Popen with
#     close_fds=True closes every fd > 2).
#   - stdio fds 0-2 of the child are made blocking, which changes the open
#     file description the parent shares (Popen never touches O_NONBLOCK).
#   - setgroups(0, NULL) before setgid/setuid (Popen: setgroups only with
#     extra_groups); execvp, which runs a file the kernel refuses with
#     ENOEXEC through /bin/sh (Popen: execve, ENOEXEC is an error).
#   - UV_PROCESS_DETACHED calls setsid(), as start_new_session does.
#
# SIGCHLD. uv_spawn starts the loop's internal SIGCHLD watcher, which
# installs libuv's handler with sigaction (replacing whatever the process
# had, e.g. a handler set with signal.signal), and closing the last
# uv_process_t stops it, which resets SIGCHLD to SIG_DFL. ourloop keeps no
# uv_process_t: right after uv_spawn it closes the handle (uv__process_close
# takes it off the loop's process list and stops the watcher), then restores
# the SIGCHLD action saved before the spawn. SIGCHLD is blocked in the
# spawning thread meanwhile, so a SIGCHLD sent to it in that window reaches
# the restored handler afterwards. A message libuv's handler may still have
# queued is dropped by libuv itself (its watcher is stopped, signum 0). Spawns
# are serialised by _spawn_lock so that two loops (threads) never save each
# other's libuv handler. Left open: another thread of the process (where
# SIGCHLD is not blocked) taking a SIGCHLD during those microseconds runs
# libuv's handler, and that SIGCHLD does not reach the process's handler.
#
# Reaping (ChildWatch). A child is watched through a pidfd (os.pidfd_open,
# Linux 5.3+) with a uv_poll_t; when it becomes readable the child has
# exited: waitid(P_PIDFD, WNOHANG) reaps exactly that child (no pid reuse
# race), or waitpid(pid, WNOHANG) on kernels without P_PIDFD (5.3). The
# exit status goes to the Python callback through the ready queue (no Python
# code runs inside uv_run). When the loop closes first, the watch hands the
# child to the orphan reaper of _subprocess.py (a daemon thread that waits
# for it), so no zombie is left. Without pidfds, _subprocess.py waits in a
# thread per child instead.
#
# Who owns which fd:
#   - the pidfd: the ChildWatch from its creation until it reaps the child
#     (closed after the uv_poll_t is closed) or hands it to the orphan
#     reaper (which closes it once the child is reaped).
#   - the stdio fds given to _uv_spawn: the caller's (_subprocess.py); the
#     child gets dup2()s of them, and the caller closes its child-side ends
#     after the spawn.
#   - uv_spawn's own error pipe: libuv's, closed inside uv_spawn.

from libc.string cimport memset
from cpython.bytes cimport PyBytes_AS_STRING


cdef extern from *:
    """
    #include <signal.h>
    #include <string.h>
    #include <errno.h>
    #include <pthread.h>
    #include <sys/wait.h>
    #include <uv.h>

    #ifndef P_PIDFD
    #define P_PIDFD 3
    #endif

    typedef struct {
        struct sigaction action;
        sigset_t mask;
    } ourloop_sigchld_state;

    /* Block SIGCHLD in this thread and remember its action. */
    static void ourloop_sigchld_save(ourloop_sigchld_state* st) {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &chld, &st->mask);
        sigaction(SIGCHLD, NULL, &st->action);
    }

    /* Put the action back, then the mask (a pending SIGCHLD reaches the
       restored action). */
    static void ourloop_sigchld_restore(ourloop_sigchld_state* st) {
        sigaction(SIGCHLD, &st->action, NULL);
        pthread_sigmask(SIG_SETMASK, &st->mask, NULL);
    }

    /* Would uv_spawn's child differ from Popen's (restore_signals=True) in
       its signal set-up? 1 if a signal (other than SIGPIPE and SIGXFSZ,
       which Popen resets too) is ignored, since libuv resets it to SIG_DFL
       where exec keeps it ignored; 2 if the calling thread blocks signals,
       since libuv empties the child's mask where Popen's child keeps it. */
    static int ourloop_spawn_signals_differ(void) {
        struct sigaction sa;
        sigset_t cur;
        int n;
        for (n = 1; n < 32; n++) {
            if (n == SIGKILL || n == SIGSTOP || n == SIGPIPE || n == SIGXFSZ)
                continue;
            if (sigaction(n, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO)
                    && sa.sa_handler == SIG_IGN)
                return 1;
        }
        if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0)
            return 2;
        for (n = 1; n < NSIG; n++) {
            if (sigismember(&cur, n) == 1)
                return 2;
        }
        return 0;
    }

    static void ourloop_stdio_inherit(uv_stdio_container_t* c, int fd) {
        c->flags = UV_INHERIT_FD;
        c->data.fd = fd;
    }

    /* Reap the exited child of pidfd (or pid): 1 and *code set (the
       returncode: exit status, or minus the signal number), 0 if it has not
       exited, -1 with errno set (ECHILD: reaped by someone else). */
    static int ourloop_reap(int pidfd, int pid, int* code) {
        siginfo_t info;
        int status, r;
        memset(&info, 0, sizeof(info));
        do
            r = waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG);
        while (r == -1 && errno == EINTR);
        if (r == -1 && errno == EINVAL) {
            /* Linux 5.3: pidfds, but no P_PIDFD. */
            do
                r = waitpid(pid, &status, WNOHANG);
            while (r == -1 && errno == EINTR);
            if (r <= 0)
                return r;
            if (WIFSIGNALED(status))
                *code = -WTERMSIG(status);
            else
                *code = WEXITSTATUS(status);
            return 1;
        }
        if (r == -1)
            return -1;
        if (info.si_pid == 0)
            return 0;
        if (info.si_code == CLD_EXITED)
            *code = info.si_status;
        else
            *code = -info.si_status;
        return 1;
    }
    """
    ctypedef struct ourloop_sigchld_state:
        pass
    void ourloop_sigchld_save(ourloop_sigchld_state* st) nogil
    void ourloop_sigchld_restore(ourloop_sigchld_state* st) nogil
    int ourloop_spawn_signals_differ() nogil
    int ourloop_reap(int pidfd, int pid, int* code) nogil


cdef extern from "uv.h" nogil:
    ctypedef struct uv_process_t:
        void* data
        uv.uv_loop_t* loop
        int pid

    ctypedef struct uv_stdio_container_t:
        pass

    ctypedef struct uv_process_options_t:
        const char* file
        char** args
        char** env
        const char* cwd
        unsigned int flags
        int stdio_count
        uv_stdio_container_t* stdio

    enum:
        UV_PROCESS_DETACHED

    int uv_spawn(uv.uv_loop_t* loop, uv_process_t* handle,
                 const uv_process_options_t* options)


cdef extern from *:
    void ourloop_stdio_inherit(uv_stdio_container_t* c, int fd) nogil


_spawn_lock = threading.Lock()


def _reset_spawn_lock():
    # A fork while another thread was spawning must not leave the child's
    # copy of the lock held for ever.
    global _spawn_lock
    _spawn_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_spawn_lock)


cdef char** _cstring_array(list items) except NULL:
    # A NULL-terminated array pointing into the bytes objects of items
    # (which the caller keeps alive while the array is used).
    cdef Py_ssize_t i, n = len(items)
    cdef char** array = <char**>malloc((n + 1) * sizeof(char*))
    if array is NULL:
        raise MemoryError()
    for i in range(n):
        item = items[i]
        if type(item) is not bytes:
            free(array)
            raise TypeError('expected bytes')
        array[i] = PyBytes_AS_STRING(item)
    array[n] = NULL
    return array


def _spawn_signals_differ():
    """True if a child spawned by uv_spawn would not have the signal
    dispositions and mask a subprocess.Popen child (restore_signals=True)
    gets: some signal is ignored in this process, or this thread blocks
    signals."""
    return ourloop_spawn_signals_differ() != 0


def _uv_spawn(LoopCore loop, bytes file, list args, list env, bytes cwd,
              int stdin_fd, int stdout_fd, int stderr_fd, bint new_session):
    """Spawn `file` (a path with a slash: no PATH search) with argv `args`,
    environment `env` (None: this process's), working directory `cwd`
    (None: this one's) and fds 0-2 of the child duplicated from the three
    fds given (all open and blocking), in a new session if `new_session`.

    Returns the pid; the child is nobody's yet (the caller watches it).
    Raises OSError(errno) if the child could not be set up or exec'ed (libuv
    has reaped it then). The SIGCHLD action is the same afterwards."""
    cdef uv_process_options_t opts
    cdef uv_stdio_container_t stdio[3]
    cdef uv_process_t* proc
    cdef ourloop_sigchld_state sigstate
    cdef char** argv = NULL
    cdef char** envp = NULL
    cdef int err
    cdef int pid = 0
    loop._ensure_open()
    loop._check_thread()
    if not args:
        raise ValueError('args must not be empty')
    memset(&opts, 0, sizeof(opts))
    ourloop_stdio_inherit(&stdio[0], stdin_fd)
    ourloop_stdio_inherit(&stdio[1], stdout_fd)
    ourloop_stdio_inherit(&stdio[2], stderr_fd)
    opts.file = PyBytes_AS_STRING(file)
    opts.stdio = stdio
    opts.stdio_count = 3
    if cwd is not None:
        opts.cwd = PyBytes_AS_STRING(cwd)
    if new_session:
        opts.flags = UV_PROCESS_DETACHED
    proc = <uv_process_t*>malloc(sizeof(uv_process_t))
    if proc is NULL:
        raise MemoryError()
    try:
        argv = _cstring_array(args)
        opts.args = argv
        if env is not None:
            envp = _cstring_array(env)
            opts.env = envp
    except BaseException:
        free(argv)
        free(proc)
        raise
    with _spawn_lock:
        # The GIL stays held: signal.signal() (which needs it) cannot change
        # SIGCHLD between the save and the restore.
        ourloop_sigchld_save(&sigstate)
        err = uv_spawn(loop.uvloop, proc, &opts)
        if err == 0:
            pid = proc.pid
        # uv_spawn initialised the handle even if it failed. Closing it takes
        # it off libuv's process list and stops libuv's SIGCHLD watcher
        # (the action becomes SIG_DFL); libuv frees nothing of ours later.
        proc.data = NULL
        count_open(<uv.uv_handle_t*>proc)
        close_and_free(<uv.uv_handle_t*>proc)
        ourloop_sigchld_restore(&sigstate)
    free(argv)
    free(envp)
    if err < 0:
        raise OSError(-err, os.strerror(-err))
    return pid


cdef class ChildWatch(PollHandle):
    """Waits for one child through its pidfd (see the top of this file)."""

    cdef readonly int pid
    cdef object popen
    cdef object callback
    cdef object orphaned
    cdef object context
    cdef readonly bint done

    def __cinit__(self, LoopCore loop, int fd, int pid, popen, callback, orphaned,
                  context=None):
        self.pid = pid
        self.popen = popen
        self.callback = callback
        self.orphaned = orphaned
        self.context = context

    cdef on_events(self, int status, int events):
        cdef int code = 0
        cdef int r = ourloop_reap(self.fd, self.pid, &code)
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


def _watch_child(LoopCore loop, int pidfd, int pid, popen, callback, orphaned,
                 context=None):
    """Watch the child `pid` through `pidfd` (which the watch owns from now
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
