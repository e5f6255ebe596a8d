# Declarations of sockaddr.h: IP socket addresses kept in C, and the
# Python form the socket module gives them.

from ourloop.includes.uv cimport sockaddr
from ourloop.includes.platform cimport socklen_t


cdef extern from "sockaddr.h":
    # (A union in C; opaque here.)
    ctypedef struct ourloop_inaddr:
        pass
    int ourloop_inaddr_family(const ourloop_inaddr* a) nogil
    int ourloop_inaddr_set(ourloop_inaddr* a, const sockaddr* sa, socklen_t len) nogil
    int ourloop_inaddr_get(int fd, int peer, ourloop_inaddr* a) nogil
    object ourloop_inaddr_obj(ourloop_inaddr* a)
