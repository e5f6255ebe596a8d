# Declarations of udp_io.h, the C helpers of the datagram transport
# (handles/udp.pyx).

from ourloop.includes.uv cimport sockaddr


cdef extern from "udp_io.h":
    ctypedef struct ourloop_udp_addr:
        int len
    int ourloop_udp_parse(ourloop_udp_addr* a, int family, object addr)
    object ourloop_udp_pyaddr(ourloop_udp_addr* a)
    ssize_t ourloop_udp_recvfrom(int fd, char* buf, size_t size, ourloop_udp_addr* a, int family) nogil
    enum: OURLOOP_UDP_BATCH
    const char* OURLOOP_UDP_RECV_KIND
    int ourloop_udp_recvbatch(int fd, char* buf, size_t slot, int count,
                              ourloop_udp_addr* addrs, size_t* lens, int family) nogil
    ssize_t ourloop_udp_sendto(int fd, const char* buf, size_t size, ourloop_udp_addr* a) nogil
    int ourloop_udp_get_reuseaddr(int fd) nogil
    void ourloop_udp_clear_reuseaddr(int fd) nogil
    const sockaddr* ourloop_udp_sa(ourloop_udp_addr* a) nogil
