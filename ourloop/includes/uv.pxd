# Declarations of the parts of libuv's C API that ourloop uses.
#
# Only what is needed is declared; functions newer than libuv 1.44 (the oldest
# libuv ourloop supports) are reached through compat.h, which compiles them in
# only when the libuv being built against has them.

from libc.stdint cimport uint64_t, int64_t


cdef extern from "uv.h" nogil:
    const int UV_VERSION_HEX
    const int UV_EBUSY
    const int UV_EAGAIN
    const int UV_ECANCELED
    const int UV_EOF
    const int UV_ENOBUFS

    ctypedef enum uv_run_mode:
        UV_RUN_DEFAULT = 0
        UV_RUN_ONCE
        UV_RUN_NOWAIT

    ctypedef enum uv_poll_event:
        UV_READABLE = 1
        UV_WRITABLE = 2
        UV_DISCONNECT = 4
        UV_PRIORITIZED = 8

    ctypedef enum uv_handle_type:
        UV_UNKNOWN_HANDLE = 0
        UV_ASYNC
        UV_CHECK
        UV_FS_EVENT
        UV_FS_POLL
        UV_HANDLE
        UV_IDLE
        UV_NAMED_PIPE
        UV_POLL
        UV_PREPARE
        UV_PROCESS
        UV_STREAM
        UV_TCP
        UV_TIMER
        UV_TTY
        UV_UDP
        UV_SIGNAL

    ctypedef struct uv_loop_t:
        void* data

    ctypedef struct uv_handle_t:
        void* data
        uv_loop_t* loop
        uv_handle_type type

    ctypedef struct uv_timer_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_async_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_poll_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_prepare_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_buf_t:
        char* base
        size_t len

    ctypedef struct uv_stream_t:
        void* data
        uv_loop_t* loop
        size_t write_queue_size

    ctypedef struct uv_tcp_t:
        void* data
        uv_loop_t* loop
        size_t write_queue_size

    ctypedef struct uv_pipe_t:
        void* data
        uv_loop_t* loop
        size_t write_queue_size

    ctypedef struct uv_write_t:
        void* data

    ctypedef int uv_os_fd_t

    # (C's struct sockaddr, as libuv's UDP functions take it.)
    struct sockaddr:
        pass

    ctypedef struct uv_udp_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_udp_send_t:
        void* data

    ctypedef void (*uv_close_cb)(uv_handle_t* handle) noexcept nogil
    ctypedef void (*uv_walk_cb)(uv_handle_t* handle, void* arg) noexcept nogil
    ctypedef void (*uv_timer_cb)(uv_timer_t* handle) noexcept nogil
    ctypedef void (*uv_async_cb)(uv_async_t* handle) noexcept nogil
    ctypedef void (*uv_poll_cb)(uv_poll_t* handle, int status, int events) noexcept nogil
    ctypedef void (*uv_prepare_cb)(uv_prepare_t* handle) noexcept nogil
    ctypedef void (*uv_alloc_cb)(uv_handle_t* handle, size_t suggested_size, uv_buf_t* buf) noexcept nogil
    ctypedef void (*uv_read_cb)(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept nogil
    ctypedef void (*uv_write_cb)(uv_write_t* req, int status) noexcept nogil
    ctypedef void (*uv_udp_send_cb)(uv_udp_send_t* req, int status) noexcept nogil
    ctypedef void (*uv_udp_recv_cb)(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                                    const sockaddr* addr, unsigned flags) noexcept nogil

    unsigned int uv_version()
    const char* uv_version_string()
    const char* uv_strerror(int err)
    const char* uv_err_name(int err)
    int uv_translate_sys_error(int sys_errno)

    uint64_t uv_hrtime()

    int uv_loop_init(uv_loop_t* loop)
    int uv_loop_close(uv_loop_t* loop)
    int uv_loop_fork(uv_loop_t* loop)
    int uv_loop_alive(const uv_loop_t* loop)
    size_t uv_loop_size()
    int uv_run(uv_loop_t* loop, uv_run_mode mode)
    void uv_stop(uv_loop_t* loop)
    uint64_t uv_now(const uv_loop_t* loop)
    void uv_update_time(uv_loop_t* loop)
    int uv_backend_fd(const uv_loop_t* loop)
    void uv_walk(uv_loop_t* loop, uv_walk_cb walk_cb, void* arg)
    int uv_loop_fork(uv_loop_t* loop)

    void uv_close(uv_handle_t* handle, uv_close_cb close_cb)
    int uv_is_closing(const uv_handle_t* handle)
    int uv_is_active(const uv_handle_t* handle)
    void uv_ref(uv_handle_t* handle)
    void uv_unref(uv_handle_t* handle)

    int uv_timer_init(uv_loop_t* loop, uv_timer_t* handle)
    int uv_timer_start(uv_timer_t* handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
    int uv_timer_stop(uv_timer_t* handle)

    int uv_async_init(uv_loop_t* loop, uv_async_t* handle, uv_async_cb async_cb)
    int uv_async_send(uv_async_t* handle)

    int uv_poll_init(uv_loop_t* loop, uv_poll_t* handle, int fd)
    int uv_poll_start(uv_poll_t* handle, int events, uv_poll_cb cb)
    int uv_poll_stop(uv_poll_t* handle)

    int uv_fileno(const uv_handle_t* handle, uv_os_fd_t* fd)

    int uv_read_start(uv_stream_t* stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
    int uv_read_stop(uv_stream_t* stream)
    # (ourloop_uv_*: compat.h's fault injection of debug builds, else
    # the libuv call itself.)
    int uv_try_write "ourloop_uv_try_write" (
        uv_stream_t* handle, const uv_buf_t* bufs, unsigned int nbufs)
    int uv_write "ourloop_uv_write" (
        uv_write_t* req, uv_stream_t* handle, const uv_buf_t* bufs,
        unsigned int nbufs, uv_write_cb cb)

    int uv_pipe_init(uv_loop_t* loop, uv_pipe_t* handle, int ipc)
    int uv_pipe_open(uv_pipe_t* handle, int file)

    int uv_tcp_init(uv_loop_t* loop, uv_tcp_t* handle)
    int uv_tcp_open(uv_tcp_t* handle, uv_os_fd_t sock)
    int uv_tcp_nodelay(uv_tcp_t* handle, int enable)

    int uv_udp_init(uv_loop_t* loop, uv_udp_t* handle)
    int uv_udp_open(uv_udp_t* handle, int sock)
    int uv_udp_recv_start(uv_udp_t* handle, uv_alloc_cb alloc_cb, uv_udp_recv_cb recv_cb)
    int uv_udp_recv_stop(uv_udp_t* handle)
    int uv_udp_send "ourloop_uv_udp_send" (
        uv_udp_send_t* req, uv_udp_t* handle, const uv_buf_t* bufs,
        unsigned int nbufs, const sockaddr* addr, uv_udp_send_cb send_cb)

    int uv_prepare_init(uv_loop_t* loop, uv_prepare_t* prepare)
    int uv_prepare_start(uv_prepare_t* prepare, uv_prepare_cb cb)
    int uv_prepare_stop(uv_prepare_t* prepare)


cdef extern from "compat.h" nogil:
    const int OURLOOP_DEBUG_BUILD
    long long ourloop_handles_opened[]
    long long ourloop_handles_closed[]
    void ourloop_count_open(uv_handle_type t)
    void ourloop_count_close(uv_handle_type t)
    uint64_t ourloop_timeout_ms(double delta)
    ssize_t ourloop_try_write(uv_stream_t* stream, int fd, const uv_buf_t* bufs,
                              unsigned int nbufs)
    ctypedef struct ourloop_fdids:
        pass
    void ourloop_fdids_init(ourloop_fdids* t)
    void ourloop_fdids_free(ourloop_fdids* t)
    int ourloop_fdid_set(ourloop_fdids* t, uv_handle_t* h, int fd, uint64_t dev, uint64_t ino)
    int ourloop_fdid_record(ourloop_fdids* t, uv_handle_t* h, int fd)
    int ourloop_guard_watchers(uv_loop_t* loop, const ourloop_fdids* ids, int* bad, int cap)
    int ourloop_release_moved_fd(const ourloop_fdids* ids, uv_handle_t* h)
    long long ourloop_fail_allocation(long long n)
    long long ourloop_fail_write(long long n)
    int ourloop_install_allocator()
