# What every libuv handle wrapper shares: error translation, closing with
# the memory freed by libuv's close callback, and (debug builds) accounting
# of the handles opened and closed.
#
# Ownership rule: a wrapper mallocs its uv_*_t; once it calls
# close_and_free(), libuv owns the memory until the close callback frees it,
# so a handle's memory never depends on when Python frees the wrapper.

from libc.stdlib cimport malloc, free

from ourloop.includes cimport uv
from ourloop.includes.uv cimport (
    OURLOOP_DEBUG_BUILD, ourloop_count_open, ourloop_count_close,
    ourloop_handles_opened, ourloop_handles_closed,
    ourloop_fail_allocation, ourloop_fail_write, ourloop_install_allocator,
)

import errno
import os


cdef int _check_uv(int err) except -1:
    if err < 0:
        raise uv_error(err)
    return 0


cdef object uv_error(int err):
    """The Python exception for a libuv error code (errno-based when possible)."""
    name = uv.uv_err_name(err).decode()
    message = uv.uv_strerror(err).decode()
    if name.startswith('E') and hasattr(errno, name):
        code = getattr(errno, name)
        return OSError(code, os.strerror(code))
    return RuntimeError(f'libuv error {name}: {message}')


cdef inline void count_open(uv.uv_handle_t* handle) noexcept nogil:
    ourloop_count_open(handle.type)


cdef inline void _forget_ready_io(uv.uv_handle_t* handle) noexcept nogil:
    # A handle is about to be freed (its close callback): a read recorded
    # for it (LoopExt.rq, see _transport_readable in handles/transport.pyx)
    # must not reach the freed memory.
    cdef LoopExt* ext = <LoopExt*>handle.loop
    cdef size_t i
    for i in range(ext.rq_len):
        if ext.rq[i].handle == handle:
            ext.rq[i].handle = NULL


cdef void _free_closed(uv.uv_handle_t* handle) noexcept nogil:
    ourloop_count_close(handle.type)
    _forget_ready_io(handle)
    free(handle)


cdef void close_and_free(uv.uv_handle_t* handle) noexcept nogil:
    """Close a handle; libuv frees its memory once the close has completed."""
    if not uv.uv_is_closing(handle):
        uv.uv_close(handle, _free_closed)


# Opening a transport's handle on an fd (handles/tcp.pyx, pipe.pyx,
# udp.pyx): new_handle(), uv_<kind>_init() checked by handle_inited(),
# uv_<kind>_open() checked by handle_opened().

cdef void* new_handle(size_t size) except NULL:
    # Memory for a libuv handle (freed by close_and_free's callback).
    cdef void* handle = malloc(size)
    if handle is NULL:
        raise MemoryError()
    return handle


cdef int handle_inited(uv.uv_handle_t* handle, int err) except -1:
    # After uv_<kind>_init(): counted (debug builds); on failure the memory
    # is freed (libuv does not know the handle) and the error raised.
    if err < 0:
        free(handle)
        raise uv_error(err)
    count_open(handle)
    return 0


cdef int fd_identity(uv.uv_handle_t* handle, int fd) noexcept nogil:
    # Right before uv_<kind>_open(handle, fd): the loop records which file
    # fd names (LoopExt.fdids; FdWatchers' prepare guard and the handle's
    # closing compare it: see ourloop_fdids in includes/compat.h). 0, or
    # the error for handle_opened(): fstat()'s, or UV_ENOMEM.
    return uv.ourloop_fdid_record(&(<LoopExt*>handle.loop).fdids, handle, fd)


cdef int handle_opened(uv.uv_handle_t* handle, int err) except -1:
    # After uv_<kind>_open(handle, fd): on failure the handle is closed
    # (the fd stays the caller's: libuv never took it) and the error raised.
    if err < 0:
        handle.data = NULL
        close_and_free(handle)
        raise uv_error(err)
    return 0


def debug_handle_counts():
    """Handles opened and fully closed, by libuv handle type, as a dict
    {type name: (opened, closed)}; None unless ourloop was built with
    OURLOOP_DEBUG=1 (make debug)."""
    if not OURLOOP_DEBUG_BUILD:
        return None
    names = {
        uv.UV_ASYNC: 'async', uv.UV_CHECK: 'check', uv.UV_IDLE: 'idle',
        uv.UV_NAMED_PIPE: 'pipe', uv.UV_POLL: 'poll', uv.UV_PREPARE: 'prepare',
        uv.UV_PROCESS: 'process', uv.UV_TCP: 'tcp', uv.UV_TIMER: 'timer',
        uv.UV_TTY: 'tty', uv.UV_UDP: 'udp', uv.UV_SIGNAL: 'signal',
    }
    return {name: (ourloop_handles_opened[kind], ourloop_handles_closed[kind])
            for kind, name in names.items()}


# Fault injection (debug builds): libuv's allocator is replaced before any
# loop exists, so that debug_fail_allocation() can make one fail.
_check_uv(ourloop_install_allocator())


def debug_fail_allocation(long long n):
    """Make the n-th libuv allocation from now fail (malloc, realloc or
    calloc returns NULL); 0 turns it off. Returns how many allocations
    libuv has made so far. None (and nothing done) unless ourloop was
    built with OURLOOP_DEBUG=1 (make debug)."""
    if not OURLOOP_DEBUG_BUILD:
        return None
    if n < 0:
        raise ValueError('n must be >= 0')
    return ourloop_fail_allocation(n)


def debug_fail_write(long long n):
    """Make the n-th stream or datagram write that ourloop asks of libuv
    from now (uv_try_write, uv_write, uv_udp_send) fail with ENOMEM; 0
    turns it off. Returns how many such writes were made so far. None (and
    nothing done) unless ourloop was built with OURLOOP_DEBUG=1."""
    if not OURLOOP_DEBUG_BUILD:
        return None
    if n < 0:
        raise ValueError('n must be >= 0')
    return ourloop_fail_write(n)
