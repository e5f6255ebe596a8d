# TimerQueue: every call_later / call_at of a loop, in one binary heap
# ordered by (when, scheduling order), behind a single uv_timer_t.
#
# The uv_timer_t is only an alarm clock: it makes uv_run wake up when the
# earliest timer is due. Whether a timer is due is always decided with the
# loop's own clock (loop.time(), time.monotonic()'s clock), so a callback
# never runs before its `when`, whatever libuv's millisecond clock says.
#
# Cancelled timers stay in the heap until they reach its top, or until more
# than half of a heap of more than 100 timers is cancelled: then the heap is
# rebuilt without them (the stdlib's rule).

from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc

from ourloop.includes cimport uv

cdef enum:
    _MIN_SCHEDULED_TIMERS = 100


cdef void _on_alarm(uv.uv_timer_t* handle) noexcept nogil:
    # Make this uv_run return without sleeping. libuv (1.44) runs due timers
    # at the start of an iteration, before it computes the poll timeout: an
    # alarm that fires there leaves no timer behind, and the poll would then
    # block forever. uv_stop() makes that poll not wait at all.
    uv.uv_stop(handle.loop)


cdef inline bint _earlier(TimerHandle a, TimerHandle b) noexcept:
    return a._when < b._when or (a._when == b._when and a._seq < b._seq)


cdef class TimerQueue:

    def __cinit__(self, LoopCore loop):
        self.loop = loop
        self.heap = []
        self.uvtimer = <uv.uv_timer_t*>malloc(sizeof(uv.uv_timer_t))
        if self.uvtimer is NULL:
            raise MemoryError()
        _check_uv(uv.uv_timer_init(loop.uvloop, self.uvtimer))
        count_open(<uv.uv_handle_t*>self.uvtimer)
        # The alarm alone must not keep uv_run from returning.
        uv.uv_unref(<uv.uv_handle_t*>self.uvtimer)

    def __len__(self):
        return len(self.heap)

    cdef push(self, TimerHandle timer):
        cdef list heap = self.heap
        cdef Py_ssize_t i, parent
        timer._seq = self.seq
        self.seq += 1
        timer._scheduled = True
        heap.append(timer)
        i = len(heap) - 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _earlier(timer, <TimerHandle>heap[parent]):
                break
            heap[i] = heap[parent]
            i = parent
        heap[i] = timer

    cdef TimerHandle _pop(self):
        cdef list heap = self.heap
        cdef TimerHandle top = <TimerHandle>heap[0]
        cdef TimerHandle last = <TimerHandle>heap.pop()
        cdef Py_ssize_t i = 0, child, n = len(heap)
        if n:
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and _earlier(<TimerHandle>heap[child + 1], <TimerHandle>heap[child]):
                    child += 1
                if not _earlier(<TimerHandle>heap[child], last):
                    break
                heap[i] = heap[child]
                i = child
            heap[i] = last
        top._scheduled = False
        return top

    cdef void on_cancel(self, TimerHandle timer) noexcept:
        # Called by TimerHandle.cancel() while the timer is in the heap.
        self.cancelled += 1

    cdef prune(self):
        # Drop cancelled timers: all of them when they are the majority of a
        # large heap, otherwise those at the top.
        cdef list heap = self.heap
        cdef list kept
        cdef TimerHandle timer
        cdef Py_ssize_t n = len(heap)
        if self.cancelled == 0:
            return
        if n > _MIN_SCHEDULED_TIMERS and self.cancelled * 2 > n:
            kept = []
            for timer in heap:
                if timer._cancelled:
                    timer._scheduled = False
                else:
                    kept.append(timer)
            # Re-inserting keeps each timer's scheduling order (its _seq).
            self.heap = []
            self.cancelled = 0
            for timer in sorted(kept, key=_timer_key):
                self.heap.append(timer)
            return
        while heap and (<TimerHandle>heap[0])._cancelled:
            self.cancelled -= 1
            self._pop()

    cdef double next_when(self) noexcept:
        # The earliest `when` in the heap; the caller checks it is not empty.
        return (<TimerHandle>self.heap[0])._when

    cdef move_due(self, double now, list ready):
        # Move the timers whose time has come to the ready queue, in
        # (when, scheduling order) order.
        cdef list heap = self.heap
        cdef TimerHandle timer
        while heap and (<TimerHandle>heap[0])._when <= now:
            timer = self._pop()
            if timer._cancelled:
                self.cancelled -= 1
            else:
                ready.append(timer)

    cdef arm(self, uint64_t timeout_ms):
        uv.uv_update_time(self.loop.uvloop)
        uv.uv_timer_start(self.uvtimer, _on_alarm, timeout_ms, 0)

    cdef disarm(self):
        uv.uv_timer_stop(self.uvtimer)

    cdef clear(self):
        cdef TimerHandle timer
        for timer in self.heap:
            timer._scheduled = False
        self.heap = []
        self.cancelled = 0

    cdef close(self):
        self.clear()
        if self.uvtimer is not NULL:
            close_and_free(<uv.uv_handle_t*>self.uvtimer)
            self.uvtimer = NULL


def _timer_key(TimerHandle timer):
    return (timer._when, timer._seq)
