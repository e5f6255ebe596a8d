# Handle and TimerHandle: what call_soon / call_later / call_at return.
#
# They behave like asyncio.Handle / asyncio.TimerHandle (same methods, same
# repr, same exception reporting); the loop creates them without going
# through __init__ (Handle.__new__ + _set) and runs them with _invoke, which
# enters the handle's contextvars context at the C level (callbacks.h);
# LoopCore._run_ready calls the same C directly.

cimport cython
from cpython.contextvars cimport PyContext_CopyCurrent, PyContext_New
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_REFCNT

from ourloop.includes.callbacks cimport (
    ourloop_call_in_context, ourloop_context_empty, ourloop_context_from_vars,
    ourloop_context_sparable, ourloop_has_weakrefs, ourloop_raise_pending)

import sys
from asyncio import format_helpers
from asyncio.events import Handle as _asyncio_Handle, TimerHandle as _asyncio_TimerHandle


# Python 3.13+ shows a callback's arguments only in debug mode.
cdef bint _SOURCE_TAKES_DEBUG = sys.version_info >= (3, 13)


cdef object _callback_source(object callback, tuple args, LoopCore loop):
    if _SOURCE_TAKES_DEBUG:
        return format_helpers._format_callback_source(
            callback, args, debug=loop is not None and loop._debug_flag)
    return format_helpers._format_callback_source(callback, args)


cdef int _callback_raised(Handle handle) except -1:
    # The exception of handle's callback is set: report it as the stdlib's
    # Handle._run does (from within an except clause, so the exception
    # handler sees it in sys.exc_info()); SystemExit and KeyboardInterrupt
    # propagate. Kept out of the per-callback path, which sets up no try.
    try:
        ourloop_raise_pending()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        handle._report(exc)
    return 0


# Handles that ran and that nobody else refers to, kept for call_soon() to
# fill again (LoopCore._run_ready puts them here, LoopCore._call_soon takes
# them): a Handle's allocation, field initialisation, GC tracking and
# deallocation cost more than refilling one. They hold nothing (all their
# fields are None but _ctx: a spare context, empty, or None; see
# callbacks.h) and stay GC-tracked. Shared by all loops, like a free list;
# beyond its size, Handles are freed as usual.
cdef enum:
    _SPARE_HANDLES = 1024

cdef PyObject* _spare_handles[_SPARE_HANDLES]
cdef Py_ssize_t _nspare = 0


cdef inline bint _can_keep_spare(Handle handle) noexcept:
    # The caller's reference is the only one, it is a plain Handle (no
    # subclass, no TimerHandle), and no weak reference can see it reused.
    return (Py_REFCNT(handle) == 1 and type(handle) is Handle
            and _nspare < _SPARE_HANDLES and not handle._cancelled
            and not ourloop_has_weakrefs(handle))


cdef int _keep_spare(Handle handle) except -1:
    # Release what the handle holds (which may run finalizers, which may
    # take spare handles: the stack is only touched afterwards), then keep
    # it if there is still room.
    global _nspare
    handle._callback = None
    handle._args = None
    if ourloop_context_sparable(<PyObject*>handle._ctx):
        # Only the handle holds its context: kept for the handle's next
        # call_soon() to copy the current context into, emptied meanwhile.
        ourloop_context_empty(<PyObject*>handle._ctx, <PyObject*>_EMPTY_CONTEXT)
    else:
        handle._ctx = None
    handle._loop = None
    if handle._source_traceback is not None:
        handle._source_traceback = None
    if _nspare < _SPARE_HANDLES:
        Py_INCREF(handle)
        _spare_handles[_nspare] = <PyObject*>handle
        _nspare += 1
    return 0


cdef inline object _context_of(Handle handle):
    # The handle's context. A timer scheduled without context= that has not
    # run yet gets its copy of the context current then here (callbacks.h,
    # "Copies made late"; LoopCore._run_ready makes it as the timer runs).
    if handle._ctx is None and isinstance(handle, TimerHandle):
        _timer_context(<TimerHandle>handle)
    return handle._ctx


cdef int _timer_context(TimerHandle timer) except -1:
    if timer._ctx is None and timer._vars is not None:
        timer._ctx = ourloop_context_from_vars(timer._vars)
        timer._vars = None
    return 0


# What spare contexts' variables are while they wait (an empty mapping).
cdef object _EMPTY_CONTEXT = PyContext_New()


cdef inline Handle _new_handle():
    # A spare Handle if there is one, else a new one; either way with all
    # fields None but _ctx (a spare context, or None) and not cancelled.
    global _nspare
    cdef Handle handle
    if _nspare:
        _nspare -= 1
        handle = <Handle>_spare_handles[_nspare]
        Py_DECREF(handle)       # the stack's reference; `handle` holds one
        return handle
    return Handle.__new__(Handle)


# A free list for the Handles the spare stack above does not take (it
# holds 1,024 more): a burst of call_soon()s then allocates no new
# GC-tracked objects, so it does not trigger garbage collections. What
# both keep stays resident (104 bytes a Handle): 1,024 here, as many as
# the spare stack, so that a burst of accepted connections leaves no more
# than 2,048 (213 KB) behind (docs/performance.md, "Memory").
@cython.freelist(1024)
cdef class Handle:
    """A callback scheduled on an ourloop loop (the counterpart of asyncio.Handle)."""

    def __init__(self, callback, args, loop, context=None):
        if not isinstance(loop, LoopCore):
            raise TypeError(f'an ourloop loop is expected, got {loop!r}')
        if context is None:
            context = PyContext_CopyCurrent()
        self._set(<LoopCore>loop, callback, tuple(args), context)

    cdef inline int _set(self, LoopCore loop, object callback, tuple args, object context) except -1:
        self._loop = loop
        self._callback = callback
        self._args = args
        self._ctx = context
        if loop._debug_flag:
            self._source_traceback = format_helpers.extract_stack(sys._getframe(0))
        return 0

    @property
    def __class__(self):
        # asyncio documents call_soon() as returning an asyncio.Handle, and
        # code checks isinstance(h, asyncio.Handle). A Cython class cannot
        # subclass asyncio.Handle (its __slots__ layout conflicts), but
        # isinstance() falls back to __class__: report asyncio's class.
        # type(h) stays ourloop's own class.
        return _asyncio_Handle

    def get_context(self):
        """Return the contextvars.Context the callback runs in."""
        return _context_of(self)

    @property
    def _context(self):
        # (asyncio.Handle's attribute, read by some code and tests.)
        return _context_of(self)

    def cancel(self):
        """Cancel the callback; a cancelled callback is never run."""
        if not self._cancelled:
            self._cancel()

    cdef int _cancel(self) except -1:
        self._cancelled = True
        if self._loop is not None and self._loop._debug_flag:
            # Keep the description of what was cancelled, for debugging.
            self._repr = repr(self)
        self._callback = None
        self._args = None
        return 0

    def cancelled(self):
        """Return True if the callback was cancelled."""
        return self._cancelled

    def _run(self):
        self._invoke()

    cdef int _invoke(self) except -1:
        # Run the callback in its context. An exception goes to the loop's
        # exception handler; only SystemExit and KeyboardInterrupt escape.
        if ourloop_call_in_context(self._callback, self._args, _context_of(self)) < 0:
            _callback_raised(self)
        return 0

    cdef _report(self, BaseException exc):
        source = _callback_source(self._callback, self._args, self._loop)
        context = {
            'message': f'Exception in callback {source}',
            'exception': exc,
            'handle': self,
        }
        if self._source_traceback:
            context['source_traceback'] = self._source_traceback
        self._loop.call_exception_handler(context)

    def _repr_info(self):
        info = [type(self).__name__]
        if self._cancelled:
            info.append('cancelled')
        if self._callback is not None:
            info.append(_callback_source(self._callback, self._args, self._loop))
        if self._source_traceback:
            frame = self._source_traceback[len(self._source_traceback) - 1]
            info.append(f'created at {frame[0]}:{frame[1]}')
        return info

    def __repr__(self):
        if self._repr is not None:
            return self._repr
        return '<{}>'.format(' '.join(self._repr_info()))


cdef class TimerHandle(Handle):
    """A callback scheduled for a time (the counterpart of asyncio.TimerHandle)."""

    def __init__(self, when, callback, args, loop, context=None):
        Handle.__init__(self, callback, args, loop, context)
        self._when = when

    @property
    def __class__(self):
        return _asyncio_TimerHandle

    def when(self):
        """Return the loop time at which the callback is scheduled to run."""
        return self._when

    def cancel(self):
        if not self._cancelled:
            if self._scheduled:
                self._loop._timers.on_cancel(self)
            self._cancel()

    def _repr_info(self):
        info = Handle._repr_info(self)
        info.insert(2 if self._cancelled else 1, f'when={self._when}')
        return info

    def __hash__(self):
        return hash(self._when)

    def __lt__(self, other):
        if isinstance(other, TimerHandle):
            return self._when < (<TimerHandle>other)._when
        return NotImplemented

    def __le__(self, other):
        if isinstance(other, TimerHandle):
            return self._when < (<TimerHandle>other)._when or self.__eq__(other)
        return NotImplemented

    def __gt__(self, other):
        if isinstance(other, TimerHandle):
            return self._when > (<TimerHandle>other)._when
        return NotImplemented

    def __ge__(self, other):
        if isinstance(other, TimerHandle):
            return self._when > (<TimerHandle>other)._when or self.__eq__(other)
        return NotImplemented

    def __eq__(self, other):
        if not isinstance(other, TimerHandle):
            return NotImplemented
        cdef TimerHandle o = <TimerHandle>other
        return (self._when == o._when and self._callback == o._callback
                and self._args == o._args and self._cancelled == o._cancelled)

    def __ne__(self, other):
        equal = self.__eq__(other)
        return NotImplemented if equal is NotImplemented else not equal
