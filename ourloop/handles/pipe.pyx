# Pipes over uv_pipe_t: PipeTransport, a StreamTransport on a Unix stream
# socket (create_unix_connection, create_unix_server's connections). Its
# reads, writes, flow control and closing are StreamTransport's
# (handles/stream.pyx); only opening the handle is the pipe's own. Who owns
# the fd is the same as for TCP (see handles/tcp.pyx and
# docs/architecture.md).


cdef PipeTransport _pipe_open_fd(LoopCore loop, int fd):
    # A PipeTransport whose uv_pipe_t owns fd (on failure the fd is the
    # caller's to close).
    cdef uv.uv_pipe_t* pipe
    cdef PipeTransport t
    cdef int err
    loop._ensure_open()
    loop._fd_watchers.claim(fd)
    pipe = <uv.uv_pipe_t*>malloc(sizeof(uv.uv_pipe_t))
    if pipe is NULL:
        raise MemoryError()
    err = uv.uv_pipe_init(loop.uvloop, pipe, 0)
    if err < 0:
        free(pipe)
        raise uv_error(err)
    count_open(<uv.uv_handle_t*>pipe)
    err = uv.uv_pipe_open(pipe, fd)
    if err < 0:
        pipe.data = NULL
        close_and_free(<uv.uv_handle_t*>pipe)
        raise uv_error(err)
    t = PipeTransport.__new__(PipeTransport)
    t._attach_handle(loop, <uv.uv_stream_t*>pipe)
    return t


cdef class PipeTransport(StreamTransport):
    """A Unix stream socket connection: an asyncio.Transport over a libuv
    uv_pipe_t."""
