/* C helpers of the datagram transport (ourloop/handles/udp.pyx): socket
 * addresses parsed and built as the socket module does, recvfrom()/sendto()
 * on them, and the SO_REUSEADDR fix-up after uv_udp_open(). Declared for
 * Cython in udp_io.pxd. */
#ifndef OURLOOP_UDP_IO_H
#define OURLOOP_UDP_IO_H

#include <Python.h>
#include "platform.h"
#include "sockaddr.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

/* A socket address of any family, with its length. */
typedef struct {
    int len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
} ourloop_udp_addr;

/* The length recvfrom() is given for a family (the socket module's). */
static inline int ourloop_udp_addrlen(int family) {
    switch (family) {
    case AF_INET: return (int)sizeof(struct sockaddr_in);
    case AF_INET6: return (int)sizeof(struct sockaddr_in6);
    case AF_UNIX: return (int)sizeof(struct sockaddr_un);
    default: return (int)sizeof(struct sockaddr_storage);
    }
}

/* addr as the socket module would parse it for `family`, when that
   needs no name resolution and cannot fail: 1 and a->len set; else 0
   (the caller asks the socket object, which raises the socket
   module's error or resolves the name). Never sets an exception. */
static inline int ourloop_udp_parse(ourloop_udp_addr* a, int family, PyObject* addr) {
    memset(a, 0, sizeof(*a));
    if (family == AF_INET || family == AF_INET6) {
        Py_ssize_t n, hlen;
        const char* host;
        long port;
        unsigned long flowinfo = 0, scope_id = 0;
        PyObject* item;
        if (!PyTuple_CheckExact(addr))
            return 0;
        n = PyTuple_GET_SIZE(addr);
        if (family == AF_INET ? n != 2 : (n < 2 || n > 4))
            return 0;
        item = PyTuple_GET_ITEM(addr, 0);
        if (!PyUnicode_CheckExact(item))
            return 0;
        host = PyUnicode_AsUTF8AndSize(item, &hlen);
        if (host == NULL) {
            PyErr_Clear();
            return 0;
        }
        if ((Py_ssize_t)strlen(host) != hlen)
            return 0;
        item = PyTuple_GET_ITEM(addr, 1);
        if (!PyLong_CheckExact(item))
            return 0;
        port = PyLong_AsLong(item);
        if (port == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (port < 0 || port > 65535)
            return 0;
        if (n > 2) {
            item = PyTuple_GET_ITEM(addr, 2);
            if (!PyLong_CheckExact(item))
                return 0;
            flowinfo = PyLong_AsUnsignedLong(item);
            if (PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            if (flowinfo > 0xfffff)
                return 0;
        }
        if (n > 3) {
            item = PyTuple_GET_ITEM(addr, 3);
            if (!PyLong_CheckExact(item))
                return 0;
            scope_id = PyLong_AsUnsignedLong(item);
            if (PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            if (scope_id > 0xffffffffUL)
                return 0;
        }
        if (family == AF_INET) {
            if (inet_pton(AF_INET, host, &a->u.in4.sin_addr) != 1)
                return 0;
            a->u.in4.sin_family = AF_INET;
            a->u.in4.sin_port = htons((unsigned short)port);
            a->len = (int)sizeof(struct sockaddr_in);
        } else {
            if (inet_pton(AF_INET6, host, &a->u.in6.sin6_addr) != 1)
                return 0;
            a->u.in6.sin6_family = AF_INET6;
            a->u.in6.sin6_port = htons((unsigned short)port);
            a->u.in6.sin6_flowinfo = htonl((uint32_t)flowinfo);
            a->u.in6.sin6_scope_id = (uint32_t)scope_id;
            a->len = (int)sizeof(struct sockaddr_in6);
        }
        return 1;
    }
    if (family == AF_UNIX) {
        PyObject* encoded = NULL;
        const char* path;
        Py_ssize_t plen;
        if (PyUnicode_CheckExact(addr)) {
            encoded = PyUnicode_EncodeFSDefault(addr);
            if (encoded == NULL) {
                PyErr_Clear();
                return 0;
            }
            path = PyBytes_AS_STRING(encoded);
            plen = PyBytes_GET_SIZE(encoded);
        } else if (PyBytes_CheckExact(addr)) {
            path = PyBytes_AS_STRING(addr);
            plen = PyBytes_GET_SIZE(addr);
        } else {
            return 0;
        }
        if (OURLOOP_ABSTRACT_UNIX && plen > 0 && path[0] == 0) {
            /* Linux abstract namespace: the length is the name's. */
            if ((size_t)plen > sizeof(a->u.un.sun_path))
                goto unix_fail;
        } else if ((size_t)plen >= sizeof(a->u.un.sun_path)) {
            goto unix_fail;
        }
        a->u.un.sun_family = AF_UNIX;
        memcpy(a->u.un.sun_path, path, (size_t)plen);
        a->len = (int)(plen + offsetof(struct sockaddr_un, sun_path));
        Py_XDECREF(encoded);
        return 1;
    unix_fail:
        Py_XDECREF(encoded);
        return 0;
    }
    return 0;
}

/* The Python address for a received datagram's sender, as the socket
   module builds it (a new reference, or NULL with an exception). */
static inline PyObject* ourloop_udp_pyaddr(ourloop_udp_addr* a) {
    if (a->len == 0)
        Py_RETURN_NONE;
    switch (a->u.sa.sa_family) {
    case AF_INET:
    case AF_INET6:
        return ourloop_inaddr_py(&a->u.sa);
    case AF_UNIX: {
        Py_ssize_t n = (Py_ssize_t)a->len - (Py_ssize_t)offsetof(struct sockaddr_un, sun_path);
        if (OURLOOP_ABSTRACT_UNIX && n > 0 && a->u.un.sun_path[0] == 0)
            return PyBytes_FromStringAndSize(a->u.un.sun_path, n);
        return PyUnicode_DecodeFSDefault(a->u.un.sun_path);
    }
    default:
        return Py_BuildValue("iy#", (int)a->u.sa.sa_family, a->u.sa.sa_data,
                             (Py_ssize_t)sizeof(a->u.sa.sa_data));
    }
}

static inline ssize_t ourloop_udp_recvfrom(int fd, char* buf, size_t size, ourloop_udp_addr* a, int family) {
    socklen_t len = (socklen_t)ourloop_udp_addrlen(family);
    ssize_t n;
    memset(a, 0, sizeof(*a));
    n = recvfrom(fd, buf, size, 0, &a->u.sa, &len);
    a->len = n < 0 ? 0 : (int)len;
    return n;
}

/* Whether two received addresses are the same: their lengths, then the
   bytes the kernel wrote (the rest of the struct may be stale). */
static inline int ourloop_udp_addr_eq(const ourloop_udp_addr* a, const ourloop_udp_addr* b) {
    return a->len == b->len && memcmp(&a->u, &b->u, (size_t)a->len) == 0;
}

/* A loop's room for a batch of datagrams (LoopExt.ubuf): OURLOOP_UDP_BATCH
   slots of `slot` bytes and, for recvmmsg, the message headers pointing at
   them and at the senders' addresses, set up once. */
typedef struct {
#if OURLOOP_UDP_BATCH > 1
    struct mmsghdr msgs[OURLOOP_UDP_BATCH];
    struct iovec iov[OURLOOP_UDP_BATCH];
#endif
    ourloop_udp_addr addrs[OURLOOP_UDP_BATCH];
    size_t lens[OURLOOP_UDP_BATCH];
    size_t slot;
    char* data;
} ourloop_udp_batch;

/* NULL (no exception set) when out of memory. One block, the slots after
   the headers: large enough to be mapped on its own (not in the heap the
   bytes objects come from), and mostly never touched, so mostly never
   resident. */
static inline ourloop_udp_batch* ourloop_udp_batch_new(size_t slot) {
    ourloop_udp_batch* b = (ourloop_udp_batch*)calloc(1, sizeof(*b) + slot * OURLOOP_UDP_BATCH);
    int i;
    if (b == NULL)
        return NULL;
    b->data = (char*)(b + 1);
    b->slot = slot;
    for (i = 0; i < OURLOOP_UDP_BATCH; i++) {
#if OURLOOP_UDP_BATCH > 1
        b->iov[i].iov_base = b->data + (size_t)i * slot;
        b->iov[i].iov_len = slot;
        b->msgs[i].msg_hdr.msg_name = &b->addrs[i].u.sa;
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
#endif
    }
    return b;
}

static inline void ourloop_udp_batch_free(void* b) {
    free(b);
}

/* Up to OURLOOP_UDP_BATCH datagrams in one system call (platform.h:
   recvmmsg on Linux; elsewhere, and in the forced-portable build, one
   recvfrom, OURLOOP_UDP_BATCH being 1): datagram i in b->data + i *
   b->slot (at most b->slot bytes, cut as recvfrom cuts), its length in
   b->lens[i], its sender in b->addrs[i]. Returns how many were read (the
   socket had no more, or the batch is full), or -1 and errno when none
   was (an error pending on the socket after some datagrams is reported
   by the next call, as recvfrom would report it after them). */
static inline int ourloop_udp_recvbatch(ourloop_udp_batch* b, int fd, int family) {
#if OURLOOP_UDP_BATCH > 1
    socklen_t alen = (socklen_t)ourloop_udp_addrlen(family);
    int i, n;
    for (i = 0; i < OURLOOP_UDP_BATCH; i++)
        b->msgs[i].msg_hdr.msg_namelen = alen;
    n = ourloop_recvmmsg(fd, b->msgs, OURLOOP_UDP_BATCH);
    for (i = 0; i < n; i++) {
        ourloop_udp_addr* a = &b->addrs[i];
        a->len = (int)b->msgs[i].msg_hdr.msg_namelen;
        if (a->len > (int)sizeof(a->u))
            a->len = (int)sizeof(a->u);
        if (family == AF_UNIX)
            /* (a path is read up to its NUL: none stale after it) */
            memset((char*)&a->u + a->len, 0, sizeof(a->u) - (size_t)a->len);
        b->lens[i] = b->msgs[i].msg_len;
    }
    return n;
#else
    ssize_t got = ourloop_udp_recvfrom(fd, b->data, b->slot, &b->addrs[0], family);
    if (got < 0)
        return -1;
    b->lens[0] = (size_t)got;
    return 1;
#endif
}

static inline const char* ourloop_udp_batch_data(ourloop_udp_batch* b, int i) {
    return b->data + (size_t)i * b->slot;
}

static inline ssize_t ourloop_udp_sendto(int fd, const char* buf, size_t size, ourloop_udp_addr* a) {
    if (a == NULL)
        return send(fd, buf, size, 0);
    return sendto(fd, buf, size, 0, &a->u.sa, (socklen_t)a->len);
}

static inline const struct sockaddr* ourloop_udp_sa(ourloop_udp_addr* a) {
    return &a->u.sa;
}

static inline int ourloop_udp_get_reuseaddr(int fd) {
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(fd, SOL_SOCKET, OURLOOP_UV_UDP_REUSE, &on, &len) != 0)
        return -1;
    return on != 0;
}

static inline void ourloop_udp_clear_reuseaddr(int fd) {
    int off = 0;
    (void)setsockopt(fd, SOL_SOCKET, OURLOOP_UV_UDP_REUSE, &off, sizeof(off));
}

#endif
