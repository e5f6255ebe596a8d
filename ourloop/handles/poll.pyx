# PollHandle: a uv_poll_t watching a file descriptor for readiness.
#
# SignalWakeup is the one in use so far: while a loop runs in the main
# thread, Python's signal module writes a byte to a socketpair for every
# signal (signal.set_wakeup_fd) and this poll handle wakes uv_run up, so
# Python-level signal handlers (KeyboardInterrupt for Ctrl-C, asyncio.Runner's
# SIGINT handler) run at once even while the loop sleeps in the kernel.
# A wake-up fd that was set before the loop started is restored afterwards,
# and meanwhile receives the bytes the loop drains, as if it had stayed set.


cdef void _on_poll(uv.uv_poll_t* handle, int status, int events) noexcept with gil:
    cdef PollHandle poller = <PollHandle>handle.data
    try:
        poller.on_events(status, events)
    except BaseException as exc:
        poller.loop._set_pending_exception(exc)


cdef class PollHandle:

    def __cinit__(self, LoopCore loop, int fd, *args):
        self.loop = loop
        self.fd = fd
        self.uvpoll = <uv.uv_poll_t*>malloc(sizeof(uv.uv_poll_t))
        if self.uvpoll is NULL:
            raise MemoryError()
        err = uv.uv_poll_init(loop.uvloop, self.uvpoll, fd)
        if err < 0:
            free(self.uvpoll)
            self.uvpoll = NULL
            _check_uv(err)
        count_open(<uv.uv_handle_t*>self.uvpoll)
        # The callback reaches this object through data; close() clears it
        # before this object can go away.
        self.uvpoll.data = <void*>self

    cdef start(self, int events):
        _check_uv(uv.uv_poll_start(self.uvpoll, events, _on_poll))

    cdef stop(self):
        if self.uvpoll is not NULL:
            uv.uv_poll_stop(self.uvpoll)

    cdef close(self):
        if self.uvpoll is not NULL:
            self.uvpoll.data = NULL
            close_and_free(<uv.uv_handle_t*>self.uvpoll)
            self.uvpoll = NULL

    cdef on_events(self, int status, int events):
        pass

    # No __dealloc__: LoopCore owns its poll handles and closes them (and,
    # when it is freed itself, every handle left on the uv loop).


cdef class SignalWakeup(PollHandle):
    """The read end of the socketpair given to signal.set_wakeup_fd()."""

    def __cinit__(self, LoopCore loop, int fd, rsock, wsock):
        self.rsock = rsock
        self.wsock = wsock

    cdef install(self):
        # Only the main thread of the main interpreter may set the wake-up fd.
        if self.installed:
            return
        try:
            self.saved_fd = signal.set_wakeup_fd(self.wsock.fileno(), warn_on_full_buffer=False)
        except ValueError:
            return
        self.installed = True
        self.start(uv.UV_READABLE)

    cdef uninstall(self):
        if not self.installed:
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
        PyErr_CheckSignals()

    def close_sockets(self):
        self.rsock.close()
        self.wsock.close()
