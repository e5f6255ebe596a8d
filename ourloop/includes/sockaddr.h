/* IP socket addresses kept in C (a stream transport's 'sockname' and
 * 'peername' until get_extra_info() asks for them: handles/transport.pyx),
 * and the Python form the socket module gives them (udp_io.h builds a
 * datagram's sender with it too). Declared for Cython in sockaddr.pxd. */
#ifndef OURLOOP_SOCKADDR_H
#define OURLOOP_SOCKADDR_H

#include <Python.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>

/* An AF_INET or AF_INET6 address; sa_family AF_UNSPEC (all zero): none. */
typedef union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} ourloop_inaddr;

/* Keeps in *a what `len` bytes at sa hold if it is an IP address;
   otherwise *a is none. Returns the family kept, or 0. */
static inline int ourloop_inaddr_set(ourloop_inaddr* a, const struct sockaddr* sa,
                                     socklen_t len) {
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(&a->in4, sa, sizeof(struct sockaddr_in));
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(&a->in6, sa, sizeof(struct sockaddr_in6));
        return AF_INET6;
    }
    return 0;
}

static inline int ourloop_inaddr_family(const ourloop_inaddr* a) {
    return a->sa.sa_family;
}

/* getsockname() (peer == 0) or getpeername() (peer != 0) of fd into *a.
   Returns the family kept (AF_INET, AF_INET6); 0 if the call failed or the
   address is of another family (*a is none then). */
static inline int ourloop_inaddr_get(int fd, int peer, ourloop_inaddr* a) {
    struct sockaddr_storage ss;
    socklen_t len = (socklen_t)sizeof(ss);
    int r;
    memset(&ss, 0, sizeof(ss));
    r = peer ? getpeername(fd, (struct sockaddr*)&ss, &len)
             : getsockname(fd, (struct sockaddr*)&ss, &len);
    if (r != 0) {
        memset(a, 0, sizeof(*a));
        return 0;
    }
    return ourloop_inaddr_set(a, (const struct sockaddr*)&ss, len);
}

/* The socket module's Python form of an IP address: (host, port) or
   (host, port, flowinfo, scope_id); None for none. A new reference, or
   NULL with an exception. */
static inline PyObject* ourloop_inaddr_py(const struct sockaddr* sa) {
    char text[INET6_ADDRSTRLEN + 1];
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in* in4 = (const struct sockaddr_in*)sa;
        if (inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("si", text, (int)ntohs(in4->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("siII", text, (int)ntohs(in6->sin6_port),
                             (unsigned int)ntohl(in6->sin6_flowinfo),
                             (unsigned int)in6->sin6_scope_id);
    }
    default:
        Py_RETURN_NONE;
    }
}

static inline PyObject* ourloop_inaddr_obj(ourloop_inaddr* a) {
    return ourloop_inaddr_py(&a->sa);
}

#endif
