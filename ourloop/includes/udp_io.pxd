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
    ctypedef struct ourloop_udp_batch:
        ourloop_udp_addr addrs[1]
        size_t lens[1]
    int ourloop_udp_addr_eq(const ourloop_udp_addr* a, const ourloop_udp_addr* b) nogil
    ourloop_udp_batch* ourloop_udp_batch_new(size_t slot) nogil
    void ourloop_udp_batch_free(void* b) nogil
    int ourloop_udp_recvbatch(ourloop_udp_batch* b, int fd, int family) nogil
    const char* ourloop_udp_batch_data(ourloop_udp_batch* b, int i) nogil
    ssize_t ourloop_udp_sendto(int fd, const char* buf, size_t size, ourloop_udp_addr* a) nogil
    int ourloop_udp_get_reuseaddr(int fd) nogil
    void ourloop_udp_clear_reuseaddr(int fd) nogil
    const sockaddr* ourloop_udp_sa(ourloop_udp_addr* a) nogil
