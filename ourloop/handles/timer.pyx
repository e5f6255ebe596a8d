# TimerQueue: every call_later / call_at of a loop, in one binary heap
# ordered by (when, scheduling order), behind a single uv_timer_t.
#
# The heap is a C array of (when, seq, timer) entries, each holding a strong
# reference to its TimerHandle: sifting compares doubles and moves
# pointers, with no reference counting and no Python list in the way (see
# docs/performance.md). The GC sees those references through TimerQueue's
# tp_traverse / tp_clear, extended at module load (_gc_slots_install).
#
# The uv_timer_t is only an alarm clock: it makes uv_run wake up when the
# earliest timer is due. Whether a timer is due is always decided with the
# loop's own clock (loop.time(), time.monotonic()'s clock), so a callback
# never runs before its `when`, whatever libuv's millisecond clock says.
#
# Cancelled timers stay in the heap until they reach its top, or until more
# than half of a heap of more than 100 timers is cancelled: then the heap is
# rebuilt without them (the stdlib's rule).
#
# Releasing a reference can run arbitrary code (a finalizer of something
# the callback held), which may schedule or cancel timers: the heap is
# always consistent before a reference is released.

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, realloc, free

from ourloop.includes cimport uv

cdef enum:
    _MIN_SCHEDULED_TIMERS = 100


cdef void _on_alarm(uv.uv_timer_t* handle) noexcept nogil:
    # Make this uv_run return without sleeping. libuv (1.44) runs due timers
    # at the start of an iteration, before it computes the poll timeout: an
    # alarm that fires there leaves no timer behind, and the poll would then
    # block forever. uv_stop() makes that poll not wait at all.
    uv.uv_stop(handle.loop)


cdef inline bint _earlier(TimerEntry* a, TimerEntry* b) noexcept nogil:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef inline void _sift_down(TimerEntry* heap, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    # Move heap[i] down to its place among its descendants.
    cdef TimerEntry moving = heap[i]
    cdef Py_ssize_t child
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _earlier(&heap[child + 1], &heap[child]):
            child += 1
        if not _earlier(&heap[child], &moving):
            break
        heap[i] = heap[child]
        i = child
    heap[i] = moving


cdef class TimerQueue:

    def __cinit__(self, LoopCore loop):
        self.loop = loop
        self.heap = NULL
        self.size = 0
        self.capacity = 0
        self.uvtimer = <uv.uv_timer_t*>malloc(sizeof(uv.uv_timer_t))
        if self.uvtimer is NULL:
            raise MemoryError()
        _check_uv(uv.uv_timer_init(loop.uvloop, self.uvtimer))
        count_open(<uv.uv_handle_t*>self.uvtimer)
        # The alarm alone must not keep uv_run from returning.
        uv.uv_unref(<uv.uv_handle_t*>self.uvtimer)

    def __dealloc__(self):
        cdef TimerEntry* heap = self.heap
        cdef Py_ssize_t i, n = self.size
        self.heap = NULL
        self.size = self.capacity = 0
        for i in range(n):
            Py_DECREF(<object>heap[i].timer)
        free(heap)

    def __len__(self):
        return self.size

    cdef int push(self, TimerHandle timer) except -1:
        cdef TimerEntry* heap
        cdef Py_ssize_t i, parent, capacity
        cdef TimerEntry entry
        if self.size == self.capacity:
            capacity = self.capacity * 2 if self.capacity else 64
            heap = <TimerEntry*>realloc(self.heap, capacity * sizeof(TimerEntry))
            if heap is NULL:
                raise MemoryError()
            self.heap = heap
            self.capacity = capacity
        heap = self.heap
        entry.when = timer._when
        entry.seq = self.seq
        entry.timer = <PyObject*>timer
        self.seq += 1
        Py_INCREF(timer)
        timer._scheduled = True
        i = self.size
        self.size += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _earlier(&entry, &heap[parent]):
                break
            heap[i] = heap[parent]
            i = parent
        heap[i] = entry
        return 0

    cdef TimerHandle _pop(self):
        # Take the earliest timer out of the (non-empty) heap; the heap's
        # reference passes to the caller.
        cdef TimerEntry* heap = self.heap
        cdef PyObject* top = heap[0].timer
        cdef TimerHandle timer
        self.size -= 1
        if self.size:
            heap[0] = heap[self.size]
            _sift_down(heap, self.size, 0)
        timer = <TimerHandle>top
        Py_DECREF(timer)        # `timer` holds its own reference now
        timer._scheduled = False
        return timer

    cdef void on_cancel(self, TimerHandle timer) noexcept:
        # Called by TimerHandle.cancel() while the timer is in the heap.
        self.cancelled += 1

    cdef int prune(self) except -1:
        # Drop cancelled timers: all of them when they are the majority of a
        # large heap, otherwise those at the top.
        if self.cancelled == 0:
            return 0
        if self.size > _MIN_SCHEDULED_TIMERS and self.cancelled * 2 > self.size:
            self._drop_cancelled()
            return 0
        while self.size and (<TimerHandle>self.heap[0].timer)._cancelled:
            self.cancelled -= 1
            self._pop()
        return 0

    cdef int _drop_cancelled(self) except -1:
        # Rebuild the heap without its cancelled timers. Each entry keeps
        # its (when, seq), so the scheduling order stays. The dropped
        # references are released once the heap is whole again.
        cdef TimerEntry* heap = self.heap
        cdef Py_ssize_t i, kept = 0, ndropped = 0, n = self.size
        cdef PyObject** dropped = <PyObject**>malloc(self.cancelled * sizeof(PyObject*))
        cdef TimerHandle timer
        if dropped is NULL:
            raise MemoryError()
        for i in range(n):
            timer = <TimerHandle>heap[i].timer
            if timer._cancelled and ndropped < self.cancelled:
                timer._scheduled = False
                dropped[ndropped] = heap[i].timer
                ndropped += 1
            else:
                heap[kept] = heap[i]
                kept += 1
        timer = None
        self.size = kept
        self.cancelled -= ndropped
        i = kept // 2
        while i > 0:
            i -= 1
            _sift_down(heap, kept, i)
        for i in range(ndropped):
            Py_DECREF(<object>dropped[i])
        free(dropped)
        return 0

    cdef double next_when(self) noexcept:
        # The earliest `when` in the heap; the caller checks it is not empty.
        return self.heap[0].when

    cdef int move_due(self, double now, list ready) except -1:
        # Move the timers whose time has come to the ready queue, in
        # (when, scheduling order) order.
        cdef TimerHandle timer
        while self.size and self.heap[0].when <= now:
            timer = self._pop()
            if timer._cancelled:
                self.cancelled -= 1
            else:
                ready.append(timer)
        return 0

    cdef arm(self, uint64_t timeout_ms):
        uv.uv_update_time(self.loop.uvloop)
        uv.uv_timer_start(self.uvtimer, _on_alarm, timeout_ms, 0)

    cdef disarm(self):
        uv.uv_timer_stop(self.uvtimer)

    cdef clear(self):
        cdef TimerEntry* heap = self.heap
        cdef Py_ssize_t i, n = self.size
        self.heap = NULL
        self.size = self.capacity = 0
        self.cancelled = 0
        for i in range(n):
            (<TimerHandle>heap[i].timer)._scheduled = False
        for i in range(n):
            Py_DECREF(<object>heap[i].timer)
        free(heap)

    cdef close(self):
        self.clear()
        if self.uvtimer is not NULL:
            close_and_free(<uv.uv_handle_t*>self.uvtimer)
            self.uvtimer = NULL


# The GC must see the references the heap holds (a timer's callback may
# refer back to the loop, making a cycle through the C array): TimerQueue's
# tp_traverse and tp_clear, as Cython generates them for its Python
# fields, are extended to the heap's entries.

cdef extern from "Python.h":
    ctypedef int (*_visitproc "visitproc")(PyObject*, void*) noexcept
    ctypedef int (*_traverseproc "traverseproc")(PyObject*, _visitproc, void*) noexcept
    ctypedef int (*_inquiry "inquiry")(PyObject*) noexcept
    ctypedef struct _GCSlots "PyTypeObject":
        _traverseproc tp_traverse
        _inquiry tp_clear

cdef _traverseproc _cy_timerqueue_traverse = NULL
cdef _inquiry _cy_timerqueue_clear = NULL


cdef int _timerqueue_traverse(PyObject* o, _visitproc visit, void* arg) noexcept:
    cdef TimerEntry* heap = (<TimerQueue>o).heap
    cdef Py_ssize_t i, n = (<TimerQueue>o).size
    cdef int err
    for i in range(n):
        err = visit(heap[i].timer, arg)
        if err:
            return err
    return _cy_timerqueue_traverse(o, visit, arg)


cdef int _timerqueue_clear(PyObject* o) noexcept:
    try:
        (<TimerQueue>o).clear()
    except BaseException:
        pass
    return _cy_timerqueue_clear(o)


cdef _gc_slots_install():
    global _cy_timerqueue_traverse, _cy_timerqueue_clear
    cdef _GCSlots* tp = <_GCSlots*>TimerQueue
    _cy_timerqueue_traverse = tp.tp_traverse
    _cy_timerqueue_clear = tp.tp_clear
    tp.tp_traverse = _timerqueue_traverse
    tp.tp_clear = _timerqueue_clear


_gc_slots_install()
