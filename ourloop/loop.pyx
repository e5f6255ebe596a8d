# LoopCore: the native half of ourloop.Loop.
#
# It owns the uv_loop_t and drives it one iteration at a time, the way the
# stdlib's BaseEventLoop._run_once does:
#
#   1. drop cancelled timers at the top of the timer heap;
#   2. uv_run() once: without waiting when callbacks are ready or stop() was
#      called, else until the earliest timer is due (the TimerQueue's alarm),
#      else until I/O, a call_soon_threadsafe() or a signal wakes it up;
#   3. move the timers that are due (by loop.time()) to the ready queue;
#   4. run the callbacks that were ready at that point, FIFO; callbacks they
#      schedule run in the next iteration.
#
# The ready queue is a Python list of Handles; each iteration swaps it for an
# empty spare list and runs the old one, so scheduling is a list append and
# running is a walk over a C array. Walking takes each item's reference out
# of its slot and leaves the list's storage allocated for the next swap.

cimport cython
from cpython.contextvars cimport PyContext_CopyCurrent
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_Compare
from cpython.pythread cimport PyThread_get_thread_ident
from libc.math cimport INFINITY
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free

from ourloop.includes cimport uv
from ourloop.includes.callbacks cimport (
    ourloop_call_in_context, ourloop_call_with_self, ourloop_context_copy_current,
    ourloop_context_current_vars, ourloop_list_append, ourloop_list_forget_taken,
    ourloop_list_take, ourloop_tuple_from_array)
from ourloop.includes.uv cimport ourloop_timeout_ms
from ourloop.includes.udp_io cimport ourloop_udp_batch_free

import inspect
import os
import signal
import socket
import sys
import threading
import weakref
from asyncio import base_events, coroutines, events, futures, tasks
from asyncio.log import logger


from cpython.ref cimport PyObject, Py_DECREF, Py_XDECREF


cdef extern from "Python.h":
    # value NULL deletes the attribute.
    int PyObject_GenericSetAttr(object obj, object name, PyObject* value) except -1
    # (a borrowed reference, no exception set)
    PyObject* PyDict_GetItem(object d, object key)
    object PyObject_Call(object callable, object args, object kwargs)


cdef void _close_any(uv.uv_handle_t* handle, void* arg) noexcept nogil:
    close_and_free(handle)


cdef void _count_handle(uv.uv_handle_t* handle, void* arg) noexcept nogil:
    (<Py_ssize_t*>arg)[0] += 1


cdef void _collect_transport(uv.uv_handle_t* handle, void* arg) noexcept with gil:
    # uv_walk from LoopCore._open_transports (the GIL is held there): the
    # transport whose handle this is, if any, goes to the list at arg. A
    # transport's uv_tcp_t, uv_pipe_t or uv_udp_t has it as data (NULL once
    # closing); a non-IP datagram transport's poll handle is a _UDPPoll.
    cdef object owner
    cdef uv.uv_handle_type kind = handle.type
    # The kind comes first: only these kinds' data is always set (to NULL
    # or a Python object); ourloop's timer, async and prepare handles never
    # set theirs, and libuv leaves it uninitialised.
    if kind != uv.UV_POLL and kind != uv.UV_TCP and kind != uv.UV_NAMED_PIPE and kind != uv.UV_UDP:
        return
    if handle.data is NULL or uv.uv_is_closing(handle):
        return
    owner = <object>handle.data
    if kind == uv.UV_POLL:
        if type(owner) is not _UDPPoll:
            return
        owner = (<_UDPPoll>owner).transport
    if isinstance(owner, TransportBase):
        (<list>arg).append(owner)


cdef inline double _monotonic() noexcept nogil:
    # CLOCK_MONOTONIC in seconds, the clock of time.monotonic(), with the
    # same conversion from nanoseconds.
    return <double>uv.uv_hrtime() / 1e9


# Python 3.14 (gh-128307): create_task() hands every keyword it is given,
# name= included, to the task factory; earlier versions call the factory
# without the name and set it on the task afterwards. A feature test: there
# the stdlib's create_task has no `name` parameter of its own.
cdef bint _FACTORY_TAKES_NAME = (
    'name' not in inspect.signature(base_events.BaseEventLoop.create_task).parameters)


def _iscoroutinefunction(func):
    # What the running Python's stdlib loop checks callbacks with: 3.14
    # deprecates asyncio.iscoroutinefunction (removal in 3.16), which then
    # warns on every call, and checks with the private
    # coroutines._iscoroutinefunction. A feature test, looked up per call
    # (this runs in debug mode and for add_signal_handler only).
    check = getattr(coroutines, '_iscoroutinefunction', None)
    if check is None:
        check = coroutines.iscoroutinefunction
    return check(func)


def _check_callback(callback, method):
    if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(
            f'a callable object was expected by {method}(), got {callback!r}')


# The probe polls' rationing (LoopCore._probe_poll): after a probe that
# found nothing, 2**_PROBE_MAX_LEVEL - 1 sleeping polls go without one.
cdef enum:
    _PROBE_MAX_LEVEL = 8


@cython.no_gc_clear
cdef class LoopCore:
    """The libuv-driven core of ourloop.Loop (use ourloop.Loop, not this)."""

    def __cinit__(self, *args, **kwargs):
        # A loop whose set-up fails is born closed: its finalizer (Loop's
        # __del__) has nothing to warn about or release.
        self._closed = True
        self.uvloop = <uv.uv_loop_t*>malloc(sizeof(LoopExt))
        if self.uvloop is NULL:
            raise MemoryError()
        (<LoopExt*>self.uvloop).rbuf = NULL
        (<LoopExt*>self.uvloop).spare = NULL
        (<LoopExt*>self.uvloop).spare_cap = 0
        (<LoopExt*>self.uvloop).ubuf = NULL
        (<LoopExt*>self.uvloop).rq = NULL
        (<LoopExt*>self.uvloop).rq_len = 0
        (<LoopExt*>self.uvloop).rq_cap = 0
        uv.ourloop_fdids_init(&(<LoopExt*>self.uvloop).fdids)
        err = uv.uv_loop_init(self.uvloop)
        if err < 0:
            free(self.uvloop)
            self.uvloop = NULL
            _check_uv(err)
        self.uvloop.data = <void*>self
        self._ready = []
        self._ready_spare = []
        self._timers = TimerQueue(self)
        self._wakeup = AsyncWakeup(self)
        self._fd_watchers = FdWatchers(self)
        self._io_handles = set()
        self._debug_flag = coroutines._is_debug_mode()
        self.slow_callback_duration = 0.1
        self._check_custom_time()
        self._closed = False
        _all_loops.add(self)

    def __dealloc__(self):
        # Only C here: the Python attributes may already be gone. Every
        # handle still open on the loop is closed and its memory freed.
        if self.uvloop is not NULL:
            self.uvloop.data = NULL
            uv.uv_walk(self.uvloop, _close_any, NULL)
            uv.uv_run(self.uvloop, uv.UV_RUN_NOWAIT)
            uv.uv_loop_close(self.uvloop)
            free((<LoopExt*>self.uvloop).rbuf)
            ourloop_udp_batch_free((<LoopExt*>self.uvloop).ubuf)
            Py_XDECREF((<LoopExt*>self.uvloop).spare)
            free((<LoopExt*>self.uvloop).rq)
            uv.ourloop_fdids_free(&(<LoopExt*>self.uvloop).fdids)
            free(self.uvloop)
            self.uvloop = NULL

    # -- state ------------------------------------------------------------

    cdef inline int _ensure_open(self) except -1:
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return 0

    def _check_closed(self):
        self._ensure_open()

    cdef int _check_thread(self) except -1:
        # The stdlib's debug-mode check that non-threadsafe methods are
        # called from the thread running the loop.
        if self._running and PyThread_get_thread_ident() != self._thread_ident:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one")
        return 0

    def is_running(self):
        """Return True if the loop is running."""
        return self._running

    def is_closed(self):
        """Return True if the loop was closed."""
        return self._closed

    @property
    def _thread_id(self):
        return self._thread_ident if self._running else None

    def _table_sizes(self):
        """The sizes of the loop's internal tables, by name: what a soak
        test (tools/soak.py) checks for growth. Cheap; any build."""
        cdef Py_ssize_t uv_handles = 0
        cdef Py_ssize_t flushes = 0
        cdef TransportBase pending = self._flush_head
        if self.uvloop is not NULL:
            uv.uv_walk(self.uvloop, _count_handle, &uv_handles)
        while pending is not None:
            flushes += 1
            pending = pending.flush_next
        return {
            'ready': len(self._ready),
            # (cancelled timers wait in the heap until pruned: not counted)
            'timers': (self._timers.size - self._timers.cancelled
                       if self._timers is not None else 0),
            'fd_watchers': len(self._fd_watchers.watches) if self._fd_watchers is not None else 0,
            'io_handles': len(self._io_handles) if self._io_handles is not None else 0,
            'open_transports': len(self._open_transports()),
            'flush_queue': flushes,
            'uv_handles': uv_handles,
        }

    @property
    def _debug(self):
        return self._debug_flag

    @_debug.setter
    def _debug(self, value):
        self._debug_flag = bool(value)

    def get_debug(self):
        """Return True if the loop is in debug mode."""
        return self._debug_flag

    def set_debug(self, enabled):
        """Turn debug mode on or off."""
        self._debug_flag = bool(enabled)
        if self._running:
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def time(self):
        """Return the loop's time: time.monotonic()'s clock, in seconds."""
        return _monotonic()

    # A replaced time() moves the timers, as in the stdlib, whose call_later()
    # and due-time checks call self.time(). Whether it is replaced is decided
    # when the loop is made, when it starts running, and whenever the
    # instance's `time` attribute is set or deleted (`loop.time = fake`,
    # mock.patch.object); the common case pays one C flag test.

    def __setattr__(self, name, value):
        PyObject_GenericSetAttr(self, name, <PyObject*>value)
        if name == 'time':
            self._check_custom_time()

    def __delattr__(self, name):
        PyObject_GenericSetAttr(self, name, NULL)
        if name == 'time':
            self._check_custom_time()

    cdef _check_custom_time(self):
        cdef dict inst = getattr(self, '__dict__', None)
        self._custom_time = ((inst is not None and 'time' in inst)
                             or getattr(type(self), 'time', None) is not _CORE_TIME)

    cdef inline double _now(self) except? -1.0:
        if self._custom_time:
            return self.time()
        return _monotonic()

    # -- scheduling -------------------------------------------------------

    cdef Handle _call_soon(self, object callback, tuple args, object context):
        cdef Handle handle = _new_handle()
        if context is None:
            # (In the spare context the handle may have kept: callbacks.h.)
            context = ourloop_context_copy_current(<PyObject*>handle._ctx)
        handle._set(self, callback, args, context)
        ourloop_list_append(self._ready, handle)
        return handle

    cdef TimerHandle _call_at(self, double when, object callback, tuple args, object context):
        cdef TimerHandle timer = TimerHandle.__new__(TimerHandle)
        cdef PyObject* cvars
        if when != when:
            # NaN: due at once (what the stdlib does up to 3.12), rather than
            # a timer that is never due and breaks the heap's order.
            when = -INFINITY
        if context is None:
            # The copy of the current context is made when the timer runs
            # (callbacks.h, "Copies made late"), from its variables now.
            cvars = ourloop_context_current_vars()
            if cvars is NULL:
                context = PyContext_CopyCurrent()
            else:
                timer._vars = <object>cvars
                Py_DECREF(<object>cvars)
        timer._set(self, callback, args, context)
        timer._when = when
        self._timers.push(timer)
        return timer

    # The four scheduling methods. Their def bodies serve unusual calls
    # (keywords other than context=, missing arguments: Cython's argument
    # errors); the usual ones come through the METH_FASTCALL entries at the
    # end of this file. Both end in the cdef _sched_* methods.

    def call_soon(self, callback, *args, context=None):
        """Run callback(*args) soon, in the next iteration of the loop.

        Callbacks run in the order they were scheduled, each in `context`
        (a copy of the current contextvars context by default).
        """
        return self._sched_soon(callback, args, context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but safe to call from any thread."""
        return self._sched_soon_threadsafe(callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Run callback(*args) once loop.time() has reached `when`."""
        return self._sched_at(when, callback, args, context)

    def call_later(self, delay, callback, *args, context=None):
        """Run callback(*args) after `delay` seconds; returns a TimerHandle."""
        return self._sched_later(delay, callback, args, context)

    cdef Handle _sched_soon(self, object callback, tuple args, object context):
        self._ensure_open()
        if self._debug_flag:
            self._check_thread()
            _check_callback(callback, 'call_soon')
        return self._call_soon(callback, args, context)

    cdef Handle _sched_soon_threadsafe(self, object callback, tuple args, object context):
        self._ensure_open()
        if self._debug_flag:
            _check_callback(callback, 'call_soon_threadsafe')
        handle = self._call_soon(callback, args, context)
        self._wakeup.send()
        return handle

    cdef TimerHandle _sched_at(self, object when, object callback, tuple args, object context):
        if when is None:
            raise TypeError("when cannot be None")
        self._ensure_open()
        if self._debug_flag:
            self._check_thread()
            _check_callback(callback, 'call_at')
        return self._call_at(when, callback, args, context)

    cdef TimerHandle _sched_later(self, object delay, object callback, tuple args, object context):
        cdef double fast_when = 0.0
        cdef bint boxed = not PyFloat_CheckExact(delay)
        if delay is None:
            raise TypeError('delay must not be None')
        if boxed:
            # time() + delay as the stdlib adds them, for any type of delay.
            when = self._now() + delay
        else:
            # The common case: the same sum, without a float object for it.
            fast_when = self._now() + PyFloat_AS_DOUBLE(delay)
        self._ensure_open()
        if self._debug_flag:
            self._check_thread()
            _check_callback(callback, 'call_at')
        if boxed:
            fast_when = when
        return self._call_at(fast_when, callback, args, context)

    # -- futures and tasks (per task: native) -----------------------------

    def create_future(self):
        """Create an asyncio.Future attached to this loop."""
        # The stdlib's `futures.Future(loop=self)`, with the class read
        # from the module's dict (what getattr finds there, for a fraction
        # of a module attribute lookup) and, for asyncio's own C Future,
        # called with a {'loop': self} made once per loop rather than a
        # keyword dict per call (its __init__ only reads it).
        cdef PyObject* cls = PyDict_GetItem(_FUTURES_DICT, 'Future')
        if cls is NULL:
            return futures.Future(loop=self)
        if cls is <PyObject*>_C_FUTURE and _C_FUTURE is not _PY_FUTURE:
            if self._future_kwargs is None:
                self._future_kwargs = {'loop': self}
            return PyObject_Call(<object>cls, (), self._future_kwargs)
        return (<object>cls)(loop=self)

    def create_task(self, coro, *, name=None, context=None, **kwargs):
        """Schedule a coroutine as a task (through the task factory, if
        one is set); further keywords (e.g. eager_start) go to the task."""
        self._ensure_open()
        if context is not None:
            kwargs['context'] = context
        factory = self._task_factory
        if factory is None:
            # No Python frame of ours lies between the caller and the Task,
            # so its debug-mode source traceback already ends at the caller
            # (the stdlib deletes its own create_task frame from it).
            return tasks.Task(coro, loop=self, name=name, **kwargs)
        if _FACTORY_TAKES_NAME:
            if name is not None:
                kwargs['name'] = name
            return factory(self, coro, **kwargs)
        task = factory(self, coro, **kwargs)
        if name is not None:
            task.set_name(name)
        return task

    def _timer_handle_cancelled(self, handle):
        """Called by TimerHandle.cancel() (asyncio's loop protocol)."""
        if isinstance(handle, TimerHandle) and (<TimerHandle>handle)._scheduled:
            self._timers.on_cancel(<TimerHandle>handle)

    # -- running ----------------------------------------------------------

    def _check_running(self):
        if self._running:
            raise RuntimeError('This event loop is already running')
        if events._get_running_loop() is not None:
            raise RuntimeError(
                'Cannot run the event loop while another loop is running')

    def run_forever(self):
        """Run the loop until stop() is called."""
        self._ensure_open()
        self._check_running()
        self._check_custom_time()
        self._set_coroutine_origin_tracking(self._debug_flag)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_ident = PyThread_get_thread_ident()
            self._running = True
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            self._watch_signals()
            # The first iteration polls, whatever is ready: one iteration
            # (call_soon(stop), then run_forever()) sees the I/O that is
            # ready, as with the stdlib.
            self._poll_skipped = True
            while True:
                self._run_once()
                if self._stopping:
                    break
        finally:
            if self._flush_head is not None:
                # Writes of the last iteration leave now, not at the next run.
                self._flush_streams()
            self._stopping = False
            self._running = False
            self._thread_ident = 0
            if self._sigwake is not None:
                self._sigwake.uninstall()
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def stop(self):
        """Stop the loop after the current iteration."""
        self._stopping = True

    def _watch_signals(self):
        # Give signal.set_wakeup_fd() a socketpair watched by the loop, so a
        # signal (Ctrl-C) wakes a sleeping loop up. Main thread only.
        if threading.current_thread() is not threading.main_thread():
            return
        if self._sigwake is None:
            rsock, wsock = socket.socketpair()
            rsock.setblocking(False)
            wsock.setblocking(False)
            self._sigwake = SignalWakeup(self, rsock.fileno(), rsock, wsock)
        self._sigwake.install()

    def _pin_signal_wakeup(self, bint pin, dispatch=None):
        # add_signal_handler(): keep the signal wake-up fd set, with the
        # signal numbers read from it passed to dispatch, until unpinned.
        # Outside the main thread: the ValueError of signal.set_wakeup_fd.
        if pin:
            if threading.current_thread() is not threading.main_thread():
                raise ValueError('set_wakeup_fd only works in main thread '
                                 'of the main interpreter')
            self._watch_signals()
            if self._sigwake is None or not self._sigwake.installed:
                raise ValueError('cannot set the signal wake-up fd')
            self._sigwake.pinned = True
            self._sigwake.dispatch = dispatch
        elif self._sigwake is not None:
            self._sigwake.pinned = False
            self._sigwake.dispatch = None
            if not self._running:
                self._sigwake.uninstall()

    def _add_callback(self, Handle handle):
        # Queue an existing Handle (a signal handler's) as call_soon would.
        if not handle._cancelled:
            self._ready.append(handle)

    cdef void _set_pending_exception(self, object exc) noexcept:
        # An exception raised inside a libuv callback: keep the first one,
        # stop uv_run, and let _run_once raise it.
        if self._pending_exception is None:
            self._pending_exception = exc
        if self.uvloop is not NULL:
            uv.uv_stop(self.uvloop)

    cdef _run_once(self):
        cdef TimerQueue timers = self._timers
        cdef uv.uv_run_mode mode = uv.UV_RUN_ONCE
        cdef uint64_t timeout_ms

        if self._flush_head is not None:
            # Writes made since the last poll leave before the loop polls.
            self._flush_streams()
        if timers.cancelled:
            timers.prune()
        if self._ready and not self._stopping and not self._poll_skipped:
            # Callbacks are ready, and the previous iteration polled: this
            # one does not (a poll that cannot wait finds little between
            # two close iterations), so I/O is noticed within two
            # iterations. (A streams round trip then polls once per side.)
            self._poll_skipped = True
            if timers.size:
                timers.move_due(self._now(), self._ready)
            self._run_ready()
            return
        self._poll_skipped = False
        if self._ready or self._stopping:
            mode = uv.UV_RUN_NOWAIT
        elif timers.size:
            timeout_ms = ourloop_timeout_ms(timers.next_when() - self._now())
            if timeout_ms == 0:
                mode = uv.UV_RUN_NOWAIT
        if mode == uv.UV_RUN_ONCE and self._probe_poll():
            # The poll that cannot wait found something to do.
            mode = uv.UV_RUN_NOWAIT
        elif mode == uv.UV_RUN_NOWAIT:
            # Does not wait: releasing the GIL would only cost time.
            uv.uv_run(self.uvloop, mode)
        else:
            if timers.size:
                # (Again: the probe took time.)
                timeout_ms = ourloop_timeout_ms(timers.next_when() - self._now())
                if timeout_ms == 0:
                    timeout_ms = 1
                timers.arm(timeout_ms)
            else:
                timers.disarm()
            with nogil:
                uv.uv_run(self.uvloop, mode)
        if (<LoopExt*>self.uvloop).rq_len:
            # Read callbacks recorded without the GIL go to their transports.
            _deliver_ready_io(self)

        if self._pending_exception is not None:
            exc = self._pending_exception
            self._pending_exception = None
            raise exc

        if timers.size:
            timers.move_due(self._now(), self._ready)
        self._run_ready()

    cdef bint _probe_poll(self) except -1:
        # Before a poll that would sleep: one that does not, with the GIL
        # kept (releasing and taking it back costs more than the poll). If
        # it finds something to do, the sleeping poll is skipped: it would
        # have returned at once with the same events. A probe that finds
        # nothing costs an epoll_wait more, so probes are rationed: after
        # each, the next 2**level - 1 sleeping polls go without one; a miss
        # sets the level to _PROBE_MAX_LEVEL, a hit lowers it by one. So a
        # miss is followed by at least 2**_PROBE_MAX_LEVEL - 1 + ... + 1
        # polls before the next probe that may miss: whatever the
        # traffic, at most about one sleeping poll in 500 makes an extra
        # system call. A loop whose events are there when it polls (peers
        # on the same loop, a busy server) probes every time and keeps the
        # GIL.
        cdef bint hit
        if self._probe_skip:
            self._probe_skip -= 1
            return False
        uv.uv_run(self.uvloop, uv.UV_RUN_NOWAIT)
        hit = (self._ready or (<LoopExt*>self.uvloop).rq_len or self._stopping
               or self._pending_exception is not None or self._flush_head is not None
               or (self._timers.size and self._timers.next_when() <= self._now()))
        if hit:
            if self._probe_level:
                self._probe_level -= 1
        else:
            self._probe_level = _PROBE_MAX_LEVEL
        self._probe_skip = (1 << self._probe_level) - 1
        return hit

    cdef _queue_flush(self, TransportBase t):
        # t's writes leave at the end of the iteration (_flush_streams).
        t.flush_queued = True
        if self._flush_tail is None:
            self._flush_head = t
        else:
            self._flush_tail.flush_next = t
        self._flush_tail = t

    cdef _flush_streams(self):
        cdef TransportBase t = self._flush_head
        cdef TransportBase nxt
        cdef bint flushed
        self._flush_head = self._flush_tail = None
        while t is not None:
            nxt = t.flush_next
            t.flush_next = None
            t.flush_queued = False
            # (try/finally, not try/except: no exception state saved on
            # the way that does not raise.)
            flushed = False
            try:
                t._flush()
                flushed = True
            finally:
                if not flushed:
                    # (MemoryError...) The others stay queued.
                    while nxt is not None:
                        t = nxt
                        nxt = t.flush_next
                        t.flush_next = None
                        self._queue_flush(t)
            t = nxt

    cdef _clear_flush_queue(self):
        cdef TransportBase t = self._flush_head
        cdef TransportBase nxt
        self._flush_head = self._flush_tail = None
        while t is not None:
            nxt = t.flush_next
            t.flush_next = None
            t.flush_queued = False
            t = nxt

    cdef _run_ready(self):
        cdef list batch = self._ready
        cdef Py_ssize_t i = 0, n = len(batch)
        cdef Handle handle
        cdef object item
        cdef bint ran = False
        if n == 0:
            return
        self._ready = self._ready_spare
        # (try/finally, not try/except: no exception state saved on the
        # way that does not raise.)
        try:
            while i < n:
                # The batch's reference moves to `item`; the slot is left
                # NULL, and the list keeps its storage for the next batch.
                item = ourloop_list_take(batch, i)
                i += 1
                if (type(item) is not Handle and type(item) is not TimerHandle
                        and not isinstance(item, Handle)):
                    # Not a Handle (nor a TimerHandle): a readable transport
                    # queued itself (TransportBase._schedule_read).
                    (<TransportBase>item)._run_read()
                    continue
                handle = <Handle>item
                item = None
                if handle._cancelled:
                    continue
                if handle._ctx is None and type(handle) is TimerHandle:
                    # A timer's copy of its context, made as it runs
                    # (callbacks.h, "Copies made late").
                    _timer_context(<TimerHandle>handle)
                if self._debug_flag:
                    self._run_handle_debug(handle)
                elif ourloop_call_in_context(handle._callback, handle._args,
                                             handle._ctx) < 0:
                    _callback_raised(handle)
                elif _can_keep_spare(handle):
                    # Nothing else refers to it: call_soon() will reuse it.
                    _keep_spare(handle)
            ran = True
        finally:
            if not ran:
                # SystemExit / KeyboardInterrupt: what was not run yet
                # stays queued, ahead of what was scheduled meanwhile.
                rest = batch[i:]
                rest.extend(self._ready)
                self._ready = rest
                del batch[i:]
            ourloop_list_forget_taken(batch)
            self._ready_spare = batch

    cdef _run_handle_debug(self, Handle handle):
        cdef double t0, dt
        self._current_handle = handle
        try:
            t0 = self._now()
            handle._invoke()
            dt = self._now() - t0
            if dt >= self.slow_callback_duration:
                logger.warning('Executing %s took %.3f seconds',
                               _format_handle(handle), dt)
        finally:
            self._current_handle = None

    # -- closing ----------------------------------------------------------

    def close(self):
        """Close the loop: drop pending callbacks and release libuv's loop."""
        if self._running:
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug_flag:
            logger.debug("Close %r", self)
        self._closed = True
        self._ready.clear()
        self._ready_spare.clear()
        self._close_uv()

    cdef _close_uv(self):
        cdef int err
        if self.uvloop is NULL:
            return
        # Transports and listeners still open: their uv handles go. (A
        # transport libuv cannot call is not in _io_handles, see
        # handles/stream.pyx; _open_transports() finds every open one.)
        owners = set(self._io_handles)
        owners.update(self._open_transports())
        for owner in owners:
            owner._uv_close()
        self._clear_flush_queue()
        self._timers.close()
        self._wakeup.close()
        self._fd_watchers.close()
        if self._sigwake is not None:
            self._sigwake.pinned = False
            self._sigwake.uninstall()
            self._sigwake.close()
            self._sigwake.close_sockets()
        # Close callbacks free the handles' memory; they need no GIL.
        uv.uv_run(self.uvloop, uv.UV_RUN_NOWAIT)
        err = uv.uv_loop_close(self.uvloop)
        if err == uv.UV_EBUSY:
            uv.uv_walk(self.uvloop, _close_any, NULL)
            uv.uv_run(self.uvloop, uv.UV_RUN_NOWAIT)
            err = uv.uv_loop_close(self.uvloop)
        if err < 0:
            # A handle is still open: keep the memory rather than free a
            # loop libuv still uses (__dealloc__ tries again).
            raise RuntimeError(f'libuv could not close the loop: {uv.uv_strerror(err).decode()}')
        free((<LoopExt*>self.uvloop).rbuf)
        ourloop_udp_batch_free((<LoopExt*>self.uvloop).ubuf)
        Py_XDECREF((<LoopExt*>self.uvloop).spare)
        free((<LoopExt*>self.uvloop).rq)
        uv.ourloop_fdids_free(&(<LoopExt*>self.uvloop).fdids)
        free(self.uvloop)
        self.uvloop = NULL

    def _open_transports(self):
        """The transports whose libuv handle is open, as a new list (for
        close() and Server.close_clients()). libuv's own list of handles
        says it: no registry costs memory per connection."""
        cdef list found = []
        if self.uvloop is not NULL:
            uv.uv_walk(self.uvloop, _collect_transport, <void*>found)
        return found

    # -- transports and other native objects, made for the Python side -----
    #
    # One convention: the Python layer calls these methods; each calls the
    # module-level cdef factory of the file that holds what it makes.

    def _make_socket_transport(self, sock, protocol, waiter=None, extra=None,
                               server=None, *, adopt=False):
        """A transport over the connected TCP or Unix stream socket `sock`
        (see handles/tcp.pyx for who owns its fd; adopt=True: the loop made
        sock and libuv takes its fd over)."""
        return _make_socket_transport(self, sock, protocol, waiter, extra, server, adopt)

    def _listen_socket(self, sock, protocol_factory, server, backlog, tls=None):
        """Accept connections on the bound TCP or Unix socket `sock` (which
        stays the caller's); returns a SocketListener (close() stops). tls:
        None, or tls(transport, sock, protocol, server), which sets each
        accepted transport up under TLS (ourloop/_tls.py)."""
        return _listen_socket(self, sock, protocol_factory, server, backlog, tls)

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None,
                                 extra=None, *, adopt=False):
        """A datagram transport over sock for protocol (the stdlib's
        loop._make_datagram_transport). adopt=True: the loop made sock, and
        the transport's handle takes its fd over (see the top of
        handles/udp.pyx)."""
        return _make_datagram_transport(self, sock, protocol, address, waiter, extra, adopt)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        """A ReadPipeTransport reading `pipe` (the stdlib loop's hook; see the
        top of handles/pipe.pyx for who owns its fd)."""
        return _open_pipe_transport(self, pipe, protocol, waiter, extra, False)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        """A WritePipeTransport writing to `pipe` (the stdlib loop's hook; see
        the top of handles/pipe.pyx for who owns its fd)."""
        return _open_pipe_transport(self, pipe, protocol, waiter, extra, True)

    def _watch_child(self, int pidfd, int pid, popen, callback, orphaned, context=None):
        """Watch the child `pid` through `pidfd` until it is reaped; returns
        the ChildWatch (see _watch_child in handles/process.pyx)."""
        return _watch_child(self, pidfd, pid, popen, callback, orphaned, context)


# -- fork ----------------------------------------------------------------
#
# A child made by os.fork() shares the kernel objects of its parent's loops:
# the epoll instance, the call_soon_threadsafe() eventfd, the signal
# wake-up socketpair. Anything the child did with the copies it inherited
# (closing the loop, a transport finalizer removing its fd from epoll,
# a signal byte written to the wake-up socket) would act on the parent's
# loop. So, in the child, every inherited loop gets kernel objects of its
# own at once (uv_loop_fork), and stops being the process's signal wake-up
# fd (and the sock_* readiness set, sockops.pyx, is renewed). The child
# can then close or drop those loops freely and run new ones;
# running an inherited loop in the child stays unsupported, as for the
# stdlib's loops.

_all_loops = weakref.WeakSet()

# asyncio.futures' namespace, and its Future class when ourloop was
# imported (asyncio's C Future, unless the C module is missing: then the
# Python one, which create_future calls as the stdlib does).
cdef dict _FUTURES_DICT = futures.__dict__
cdef object _C_FUTURE = futures.Future
cdef object _PY_FUTURE = futures._PyFuture

# What `type(loop).time` is when nobody replaced it (see _check_custom_time).
_CORE_TIME = LoopCore.__dict__['time']


def _after_fork_in_child():
    cdef LoopCore loop
    cdef SignalWakeup sigwake
    for obj in list(_all_loops):
        loop = <LoopCore>obj
        if loop.uvloop is NULL:
            continue
        uv.uv_loop_fork(loop.uvloop)
        _sockops_after_fork(loop)
        sigwake = loop._sigwake
        if sigwake is not None and sigwake.installed:
            # The wake-up fd is the parent's socket: unset it (3.12+ asyncio
            # does this itself) unless code in the child set another one.
            try:
                current = signal.set_wakeup_fd(-1)
                if current != sigwake.wsock.fileno():
                    signal.set_wakeup_fd(current)
            except ValueError:
                pass
            sigwake.installed = False
            sigwake.pinned = False
            sigwake.saved_fd = None
            sigwake.stop()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _format_handle(handle):
    # How the slow-callback warning names a handle: the task for task steps.
    cb = handle._callback
    owner = getattr(cb, '__self__', None)
    if isinstance(owner, tasks.Task):
        return repr(owner)
    return str(handle)


# -- METH_FASTCALL entries of the scheduling methods -----------------------
#
# call_soon() & co. run once per callback, and most calls come from C
# (asyncio's Task and Future call loop.call_soon(cb, arg, context=ctx)).
# Cython's def methods take any call through its generic argument parser
# (keyword matching, an *args slice): the entries below take the usual
# shapes, `(pos..., *args)` and `(pos..., *args, context=ctx)`, with a
# pointer comparison or two, and hand any other call to the def method
# (whose errors are the ones callers see). They replace the def methods in
# LoopCore's type dict as method descriptors with the same name, docstring
# and signature.

cdef extern from "Python.h":
    ctypedef struct _MethodDef "PyMethodDef":
        const char* ml_name
        void* ml_meth
        int ml_flags
        const char* ml_doc
    ctypedef struct _TypeDict "PyTypeObject":
        PyObject* tp_dict
    object PyDescr_NewMethod(type tp, _MethodDef* meth)
    void PyType_Modified(type tp)
    enum:
        METH_FASTCALL
        METH_KEYWORDS


cdef object _CONTEXT_KW = 'context'
# The last `context` keyword name seen that is not _CONTEXT_KW itself: C
# callers (asyncio's Task and Future on 3.11) pass a str of their own, the
# same object every time.
cdef object _context_kw_seen = _CONTEXT_KW


cdef inline bint _plain_call(PyObject** args, Py_ssize_t nargs, PyObject* kwnames,
                             Py_ssize_t required, PyObject** context) noexcept:
    # Whether a call has `required` positional arguments or more, and no
    # keyword but context=; if so, *context is the context (or None).
    cdef PyObject* name
    if nargs < required:
        return False
    if kwnames is NULL:
        context[0] = <PyObject*>None
        return True
    if PyTuple_GET_SIZE(<object>kwnames) != 1:
        return False
    name = PyTuple_GET_ITEM(<object>kwnames, 0)
    if name is not <PyObject*>_CONTEXT_KW and name is not <PyObject*>_context_kw_seen:
        if not (PyUnicode_CheckExact(<object>name) and
                PyUnicode_Compare(<object>name, _CONTEXT_KW) == 0):
            return False
        _remember_context_kw(<object>name)
    context[0] = args[nargs]
    return True


cdef void _remember_context_kw(object name) noexcept:
    global _context_kw_seen
    _context_kw_seen = name


cdef object _generic_call_soon, _generic_call_soon_threadsafe
cdef object _generic_call_at, _generic_call_later


cdef object _call_soon_fast(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef PyObject* context
    if not _plain_call(args, nargs, kwnames, 1, &context):
        return ourloop_call_with_self(_generic_call_soon, self, args, nargs, kwnames)
    return (<LoopCore>self)._sched_soon(
        <object>args[0], ourloop_tuple_from_array(args + 1, nargs - 1), <object>context)


cdef object _call_soon_threadsafe_fast(object self, PyObject** args, Py_ssize_t nargs,
                                       PyObject* kwnames):
    cdef PyObject* context
    if not _plain_call(args, nargs, kwnames, 1, &context):
        return ourloop_call_with_self(_generic_call_soon_threadsafe, self, args, nargs, kwnames)
    return (<LoopCore>self)._sched_soon_threadsafe(
        <object>args[0], ourloop_tuple_from_array(args + 1, nargs - 1), <object>context)


cdef object _call_at_fast(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef PyObject* context
    if not _plain_call(args, nargs, kwnames, 2, &context):
        return ourloop_call_with_self(_generic_call_at, self, args, nargs, kwnames)
    return (<LoopCore>self)._sched_at(
        <object>args[0], <object>args[1], ourloop_tuple_from_array(args + 2, nargs - 2),
        <object>context)


cdef object _call_later_fast(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef PyObject* context
    if not _plain_call(args, nargs, kwnames, 2, &context):
        return ourloop_call_with_self(_generic_call_later, self, args, nargs, kwnames)
    return (<LoopCore>self)._sched_later(
        <object>args[0], <object>args[1], ourloop_tuple_from_array(args + 2, nargs - 2),
        <object>context)


cdef _MethodDef _fast_defs[4]
cdef list _fast_strings = []        # what the _MethodDef strings point into


cdef object _install_fast_entry(int i, str name, str params, void* entry):
    generic = LoopCore.__dict__[name]
    # Cython's docstring starts with its own signature line: the text
    # signature replaces it (inspect.signature reads it).
    doc = (generic.__doc__ or '').partition('\n\n')[2]
    name_b = name.encode()
    doc_b = f'{name}($self, {params})\n--\n\n{doc}'.encode()
    _fast_strings.extend((name_b, doc_b))
    _fast_defs[i].ml_name = name_b
    _fast_defs[i].ml_meth = entry
    _fast_defs[i].ml_flags = METH_FASTCALL | METH_KEYWORDS
    _fast_defs[i].ml_doc = doc_b
    (<object>(<_TypeDict*>LoopCore).tp_dict)[name] = PyDescr_NewMethod(LoopCore, &_fast_defs[i])
    return generic


_generic_call_soon = _install_fast_entry(
    0, 'call_soon', 'callback, *args, context=None', <void*>_call_soon_fast)
_generic_call_soon_threadsafe = _install_fast_entry(
    1, 'call_soon_threadsafe', 'callback, *args, context=None',
    <void*>_call_soon_threadsafe_fast)
_generic_call_at = _install_fast_entry(
    2, 'call_at', 'when, callback, *args, context=None', <void*>_call_at_fast)
_generic_call_later = _install_fast_entry(
    3, 'call_later', 'delay, callback, *args, context=None', <void*>_call_later_fast)
PyType_Modified(LoopCore)

# asyncio.Handle.get_context() is new in Python 3.12: before it, handles
# have no such method (their context is asyncio's private _context, which
# ourloop's handles keep too), so that code testing for it sees what the
# stdlib's handles show.
if sys.version_info < (3, 12):
    del (<object>(<_TypeDict*>Handle).tp_dict)['get_context']
    PyType_Modified(Handle)
