# AsyncWakeup: the loop's uv_async_t. call_soon_threadsafe() queues its
# handle and then calls send(), which makes a loop sleeping in uv_run wake
# up from any thread. Several sends before the loop wakes up coalesce into
# one wake-up; the ready queue itself carries the work.

from libc.stdlib cimport malloc, free

from ourloop.includes cimport uv


cdef void _on_async(uv.uv_async_t* handle) noexcept nogil:
    # Waking uv_run up is all that is needed: the loop runs its ready queue
    # after every uv_run.
    pass


cdef class AsyncWakeup:

    def __cinit__(self, LoopCore loop):
        self.uvasync = <uv.uv_async_t*>malloc(sizeof(uv.uv_async_t))
        if self.uvasync is NULL:
            raise MemoryError()
        err = uv.uv_async_init(loop.uvloop, self.uvasync, _on_async)
        if err < 0:
            free(self.uvasync)
            self.uvasync = NULL
            _check_uv(err)
        count_open(<uv.uv_handle_t*>self.uvasync)

    cdef int send(self) noexcept nogil:
        if self.uvasync is NULL:
            return 0
        return uv.uv_async_send(self.uvasync)

    cdef close(self):
        if self.uvasync is not NULL:
            close_and_free(<uv.uv_handle_t*>self.uvasync)
            self.uvasync = NULL
