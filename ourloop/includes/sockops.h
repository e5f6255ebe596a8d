/* C of sockops.pyx (loop.sock_recv / sock_recv_into / sock_sendall):
 * reading a socket object's fd and timeout without a method call, and the
 * system calls its recv() / recv_into() / send() make on a non-blocking
 * socket, with the socket module's results.
 *
 * The socket object. CPython's socket objects (Modules/socketmodule.h,
 * 3.9 to 3.14) start with
 *     PyObject_HEAD; SOCKET_T sock_fd; int sock_family; int sock_type;
 *     int sock_proto; PyObject *(*errorhandler)(void); _PyTime_t sock_timeout;
 * (SOCKET_T is int on POSIX; the timeout in nanoseconds, negative (-1 s)
 * for blocking).
 * That layout is not a public API: sockops.pyx checks it against real
 * sockets when the module loads (fileno(), family, type, proto and
 * gettimeout() of sockets it makes) and uses these accessors only if every
 * value matches; otherwise sock_* take their Python path.
 *
 * The calls. What the socket module does for a socket whose timeout is 0
 * (sock_call_ex: no poll, EINTR retried after the signal handlers ran, any
 * other error raised by PyErr_SetFromErrno), except that the GIL is kept:
 * a non-blocking call does not wait. EAGAIN/EWOULDBLOCK are returned as
 * OURLOOP_WOULD_BLOCK, without an exception: the sock_* methods then wait,
 * where the socket module would have raised BlockingIOError for the stdlib
 * loop to catch.
 */
#ifndef OURLOOP_SOCKOPS_H
#define OURLOOP_SOCKOPS_H

#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct {
    PyObject_HEAD
    int sock_fd;
    int sock_family;
    int sock_type;
    int sock_proto;
    PyObject *(*errorhandler)(void);
    int64_t sock_timeout;
} ourloop_socket_head;

static inline int
ourloop_sock_fd(PyObject *sock)
{
    return ((ourloop_socket_head *)sock)->sock_fd;
}

static inline int
ourloop_sock_family(PyObject *sock)
{
    return ((ourloop_socket_head *)sock)->sock_family;
}

static inline int
ourloop_sock_type(PyObject *sock)
{
    return ((ourloop_socket_head *)sock)->sock_type;
}

static inline int
ourloop_sock_proto(PyObject *sock)
{
    return ((ourloop_socket_head *)sock)->sock_proto;
}

static inline int64_t
ourloop_sock_timeout(PyObject *sock)
{
    return ((ourloop_socket_head *)sock)->sock_timeout;
}

#define OURLOOP_WOULD_BLOCK (-2)

/* The object a weak reference refers to, for an identity test only (no
 * reference is returned; NULL or None when it is gone). */
static inline PyObject *
ourloop_weakref_target(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj;
    if (PyWeakref_GetRef(ref, &obj) <= 0) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(obj);
    return obj;
#else
    return PyWeakref_GET_OBJECT(ref);
#endif
}

/* An error other than EAGAIN: EINTR runs the signal handlers (-1 with their
 * exception, else 1: try again); anything else is raised as the socket
 * module raises it (-1). EAGAIN/EWOULDBLOCK: OURLOOP_WOULD_BLOCK. */
static inline int
ourloop_sock_error(int err)
{
    if (err == EINTR) {
        if (PyErr_CheckSignals() < 0)
            return -1;
        return 1;
    }
    if (err == EAGAIN || err == EWOULDBLOCK)
        return OURLOOP_WOULD_BLOCK;
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* sock.recv(n): a new bytes object; NULL with *status OURLOOP_WOULD_BLOCK
 * (no exception) when nothing is there, NULL with *status -1 and an
 * exception on an error. n >= 0. */
static inline PyObject *
ourloop_sock_recv(int fd, Py_ssize_t n, int *status)
{
    PyObject *buf = PyBytes_FromStringAndSize(NULL, n);
    ssize_t got;
    int r;
    *status = -1;
    if (buf == NULL)
        return NULL;
    for (;;) {
        got = recv(fd, PyBytes_AS_STRING(buf), (size_t)n, 0);
        if (got >= 0)
            break;
        r = ourloop_sock_error(errno);
        if (r == 1)
            continue;
        Py_DECREF(buf);
        *status = r;
        return NULL;
    }
    if (got != n && _PyBytes_Resize(&buf, (Py_ssize_t)got) < 0)
        return NULL;
    *status = 0;
    return buf;
}

/* recv(2) into buf[0:n] (sock.recv_into): the count; OURLOOP_WOULD_BLOCK;
 * or -1 with an exception set. */
static inline Py_ssize_t
ourloop_sock_recv_into(int fd, char *buf, Py_ssize_t n)
{
    ssize_t got;
    int r;
    for (;;) {
        got = recv(fd, buf, (size_t)n, 0);
        if (got >= 0)
            return (Py_ssize_t)got;
        r = ourloop_sock_error(errno);
        if (r != 1)
            return r;
    }
}

/* send(2) of buf[0:n] (sock.send): the count sent; OURLOOP_WOULD_BLOCK;
 * or -1 with an exception set. */
static inline Py_ssize_t
ourloop_sock_send(int fd, const char *buf, Py_ssize_t n)
{
    ssize_t sent;
    int r;
    for (;;) {
        sent = send(fd, buf, (size_t)n, 0);
        if (sent >= 0)
            return (Py_ssize_t)sent;
        r = ourloop_sock_error(errno);
        if (r != 1)
            return r;
    }
}

#endif
