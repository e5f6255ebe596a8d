# Declarations of platform.h, ourloop's platform layer: every call that is
# not POSIX, with its fallback (see the top of platform.h).

from libc.stdint cimport uint64_t
from posix.types cimport off_t
from ourloop.includes.uv cimport sockaddr


cdef extern from "platform.h" nogil:
    ctypedef unsigned int socklen_t
    const char* OURLOOP_SENDFILE_KIND
    const char* OURLOOP_ACCEPT_KIND
    const char* OURLOOP_CHILD_FD_KIND
    const char* OURLOOP_POLL_BACKEND
    const char* OURLOOP_PIPE_SIZE_KIND
    const char* OURLOOP_UDP_RECV_KIND
    const char* OURLOOP_PLATFORM_FALLBACKS
    const int OURLOOP_HAVE_SENDFILE
    const int OURLOOP_CHILD_FD_IS_PIDFD
    const int OURLOOP_UV_UDP_REUSE
    const int OURLOOP_ABSTRACT_UNIX
    ssize_t ourloop_sendfile(int out_fd, int in_fd, off_t* offset, size_t count)
    int ourloop_accept(int fd, sockaddr* addr, socklen_t* len)
    int ourloop_child_fd(int pid)
    int ourloop_reap(int fd, int pid, int* code)
    int ourloop_fd_unpollable(int fd)
    int ourloop_pipe_size(int fd)
    int ourloop_set_pipe_size(int fd, int size)
    const int OURLOOP_HAVE_ET
    const int OURLOOP_ET_IN
    const int OURLOOP_ET_OUT
    int ourloop_et_create()
    int ourloop_et_set(int set, int fd, int events, uint64_t token, int add)
    int ourloop_et_del(int set, int fd)
    int ourloop_et_wait(int set, uint64_t* tokens, int* events, int max)
    int ourloop_et_renew(int set)
