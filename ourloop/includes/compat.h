/* C-level shims for ourloop's Cython code.
 *
 * - OURLOOP_DEBUG_BUILD: 1 when built with OURLOOP_DEBUG=1 (setup.py defines
 *   OURLOOP_DEBUG); the handle accounting below compiles to nothing otherwise.
 * - (System calls that are not POSIX: platform.h.)
 * - Anything newer than libuv 1.44 is wrapped here behind UV_VERSION_HEX, so
 *   the Cython code can call it unconditionally and gets UV_ENOSYS on an
 *   older libuv.
 */
#ifndef OURLOOP_COMPAT_H
#define OURLOOP_COMPAT_H

#include <math.h>
#include "uv.h"

#ifdef OURLOOP_DEBUG
#  define OURLOOP_DEBUG_BUILD 1
#else
#  define OURLOOP_DEBUG_BUILD 0
#endif

/* Handle accounting (debug builds): how many libuv handles of each type
 * were initialised and how many were fully closed (close callback ran). */
#define OURLOOP_HANDLE_KINDS (UV_HANDLE_TYPE_MAX + 1)
static long long ourloop_handles_opened[OURLOOP_HANDLE_KINDS];
static long long ourloop_handles_closed[OURLOOP_HANDLE_KINDS];

static inline void ourloop_count_open(uv_handle_type t) {
#if OURLOOP_DEBUG_BUILD
    if ((int)t >= 0 && (int)t < OURLOOP_HANDLE_KINDS) ourloop_handles_opened[t]++;
#else
    (void)t;
#endif
}

static inline void ourloop_count_close(uv_handle_type t) {
#if OURLOOP_DEBUG_BUILD
    if ((int)t >= 0 && (int)t < OURLOOP_HANDLE_KINDS) ourloop_handles_closed[t]++;
#else
    (void)t;
#endif
}

/* Fault injection (debug builds; tests/test_debug_build.py): the n-th
 * libuv allocation from now fails (libuv's allocator is replaced by
 * ourloop_install_allocator() when _core is imported), and the n-th
 * stream or datagram write ourloop asks of libuv fails with UV_ENOMEM
 * (uv.pxd names ourloop_uv_try_write & co. for uv_try_write & co.).
 * 0: off. The counters are atomic: loops may run in several threads. */
#include <stdlib.h>
#include <string.h>
static long long ourloop_fail_alloc_at;
static long long ourloop_fail_write_at;
static long long ourloop_alloc_count;
static long long ourloop_write_count;

static inline int ourloop_injected(long long* at, long long* count) {
#if OURLOOP_DEBUG_BUILD
    __atomic_add_fetch(count, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(at, __ATOMIC_RELAXED) > 0
            && __atomic_sub_fetch(at, 1, __ATOMIC_RELAXED) == 0)
        return 1;
#else
    (void)at; (void)count;
#endif
    return 0;
}

#if OURLOOP_DEBUG_BUILD
/* libuv's allocator in debug builds (ourloop_install_allocator). */
static void* ourloop_dbg_malloc(size_t size) {
    return ourloop_injected(&ourloop_fail_alloc_at, &ourloop_alloc_count) ? NULL : malloc(size);
}
static void* ourloop_dbg_realloc(void* ptr, size_t size) {
    return ourloop_injected(&ourloop_fail_alloc_at, &ourloop_alloc_count) ? NULL : realloc(ptr, size);
}
static void* ourloop_dbg_calloc(size_t count, size_t size) {
    return ourloop_injected(&ourloop_fail_alloc_at, &ourloop_alloc_count) ? NULL : calloc(count, size);
}
static void ourloop_dbg_free(void* ptr) {
    free(ptr);
}
#endif

/* Arm (n > 0) or disarm (0) a failure; the count of allocations or
 * writes so far. */
static inline long long ourloop_fail_allocation(long long n) {
    __atomic_store_n(&ourloop_fail_alloc_at, n, __ATOMIC_RELAXED);
    return __atomic_load_n(&ourloop_alloc_count, __ATOMIC_RELAXED);
}
static inline long long ourloop_fail_write(long long n) {
    __atomic_store_n(&ourloop_fail_write_at, n, __ATOMIC_RELAXED);
    return __atomic_load_n(&ourloop_write_count, __ATOMIC_RELAXED);
}

static inline int ourloop_install_allocator(void) {
#if OURLOOP_DEBUG_BUILD
    return uv_replace_allocator(ourloop_dbg_malloc, ourloop_dbg_realloc,
                                ourloop_dbg_calloc, ourloop_dbg_free);
#else
    return 0;
#endif
}

static inline int ourloop_uv_try_write(uv_stream_t* handle, const uv_buf_t* bufs,
                                       unsigned int nbufs) {
    if (ourloop_injected(&ourloop_fail_write_at, &ourloop_write_count)) return UV_ENOMEM;
    return uv_try_write(handle, bufs, nbufs);
}
static inline int ourloop_uv_write(uv_write_t* req, uv_stream_t* handle, const uv_buf_t* bufs,
                                   unsigned int nbufs, uv_write_cb cb) {
    int err;
    if (ourloop_injected(&ourloop_fail_write_at, &ourloop_write_count)) return UV_ENOMEM;
    err = uv_write(req, handle, bufs, nbufs, cb);
    if (err == UV_ENOMEM) {
        /* libuv (1.44 to 1.51 at least) counts the request active, then
         * fails to allocate its buffer array (more than 4 buffers) and
         * returns without uncounting it: uv_loop_close() would fail with
         * EBUSY for ever. No other error of uv_write() comes after the
         * count. */
        handle->loop->active_reqs.count--;
    }
    return err;
}
static inline int ourloop_uv_udp_send(uv_udp_send_t* req, uv_udp_t* handle, const uv_buf_t* bufs,
                                      unsigned int nbufs, const struct sockaddr* addr,
                                      uv_udp_send_cb cb) {
    if (ourloop_injected(&ourloop_fail_write_at, &ourloop_write_count)) return UV_ENOMEM;
    return uv_udp_send(req, handle, bufs, nbufs, addr, cb);
}

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Which file each fd a libuv handle of the loop works on named when the
 * handle got it (LoopExt.fdids, indexed by fd): the handle's watcher `w`
 * and the file's (st_dev, st_ino). An entry counts only for its own
 * watcher, so an old one left behind by a closed handle is never taken for
 * another's (every handle ourloop opens on an fd records itself:
 * handles/common.pyx, fd_identity; a PollHandle in identify()). */
typedef struct {
    const uv__io_t* w;
    uint64_t dev;
    uint64_t ino;
} ourloop_fdid;

typedef struct {
    ourloop_fdid* ids;
    size_t cap;
} ourloop_fdids;

static inline void ourloop_fdids_init(ourloop_fdids* t) {
    t->ids = NULL;
    t->cap = 0;
}

static inline void ourloop_fdids_free(ourloop_fdids* t) {
    free(t->ids);
    t->ids = NULL;
    t->cap = 0;
}

/* The io watcher of a handle that watches an fd, else NULL (uv.h lays the
 * watcher out in each of these handle types). */
static inline uv__io_t* ourloop_handle_io(uv_handle_t* h) {
    switch (h->type) {
    case UV_TCP:
    case UV_NAMED_PIPE:
    case UV_TTY:
        return &((uv_stream_t*)h)->io_watcher;
    case UV_UDP:
        return &((uv_udp_t*)h)->io_watcher;
    case UV_POLL:
        return &((uv_poll_t*)h)->io_watcher;
    default:
        return NULL;
    }
}

/* Record that handle `h` watches `fd`, which names (dev, ino): 0, or
 * UV_ENOMEM when the table cannot grow. */
static inline int ourloop_fdid_set(ourloop_fdids* t, uv_handle_t* h, int fd,
                                   uint64_t dev, uint64_t ino) {
    const uv__io_t* w = ourloop_handle_io(h);
    if (w == NULL || fd < 0)
        return 0;
    if ((size_t)fd >= t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        ourloop_fdid* ids;
        while (cap <= (size_t)fd)
            cap *= 2;
        ids = (ourloop_fdid*)realloc(t->ids, cap * sizeof(ourloop_fdid));
        if (ids == NULL)
            return UV_ENOMEM;
        memset(ids + t->cap, 0, (cap - t->cap) * sizeof(ourloop_fdid));
        t->ids = ids;
        t->cap = cap;
    }
    t->ids[fd].w = w;
    t->ids[fd].dev = dev;
    t->ids[fd].ino = ino;
    return 0;
}

/* The same, for a handle about to be opened on fd: 0, or the error (a
 * negative errno) fstat() gives, or UV_ENOMEM. */
static inline int ourloop_fdid_record(ourloop_fdids* t, uv_handle_t* h, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;  /* libuv's error codes on Unix */
    return ourloop_fdid_set(t, h, fd, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
}

/* 1 if watcher w's fd now names another file than the one recorded for it
 * (st: that fd's fstat()); 0 if it names the same or nothing was recorded. */
static inline int ourloop_fdid_moved(const ourloop_fdids* t, const uv__io_t* w,
                                     const struct stat* st) {
    const ourloop_fdid* id;
    if ((size_t)w->fd >= t->cap)
        return 0;
    id = &t->ids[w->fd];
    return id->w == w && (id->dev != (uint64_t)st->st_dev || id->ino != (uint64_t)st->st_ino);
}

/* Right before libuv polls (FdWatchers' prepare callback), every watcher
 * whose events changed since the last poll (loop->watcher_queue: libuv
 * applies them in uv__io_poll with epoll_ctl, and calls abort() when that
 * fails) is checked with fstat(). One whose fd epoll would refuse, because
 * the fd was closed under it (EBADF) or its number now names a regular
 * file or a directory (EPERM), or another file than the handle was opened
 * on (the number was reused: epoll_ctl(MOD) fails with ENOENT, and an
 * epoll_ctl(ADD) would watch the new file for the old handle), is taken
 * off the queue as if it had been applied, as epoll itself drops the
 * registration of a closed file. Such a watcher stays silent until its
 * handle closes. At most `cap` of their fds go to `bad`, a reused one as
 * -2 - fd; returns how many there were. Walks the queue as libuv's QUEUE
 * macros do (void*[2]: next, prev). */
static inline int ourloop_guard_watchers(uv_loop_t* loop, const ourloop_fdids* ids,
                                         int* bad, int cap) {
    void** head = (void**)&loop->watcher_queue;
    void** q = (void**)head[0];
    int n = 0;
    while (q != head) {
        void** next = (void**)q[0];
        uv__io_t* w = (uv__io_t*)((char*)q - offsetof(uv__io_t, watcher_queue));
        struct stat st;
        int saved = errno;
        int refused = 0;
        int fd = w->fd;
        if (fstat(fd, &st) != 0)
            refused = errno == EBADF;
        else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
            refused = 1;
        else if (ourloop_fdid_moved(ids, w, &st)) {
            refused = 1;
            fd = -2 - fd;
        }
        errno = saved;
        if (refused) {
            ((void**)q[1])[0] = q[0];
            ((void**)q[0])[1] = q[1];
            q[0] = q;
            q[1] = q;
            w->events = w->pevents;
            if (n < cap) bad[n] = fd;
            n++;
        }
        q = next;
    }
    return n;
}

/* Right before uv_close() of handle h (a stream or a uv_udp_t, opened
 * after ourloop_fdid_record): if its fd number now names another file than
 * the handle was opened on (the user closed it and the number was reused),
 * libuv must neither epoll_ctl nor close() that number: the watcher lets go
 * of it (out of libuv's queue and fd table, fd -1, which uv_close() skips).
 * Returns 1 if it did. One fstat(), once per handle. */
static inline int ourloop_release_moved_fd(const ourloop_fdids* ids, uv_handle_t* h) {
    uv__io_t* w = ourloop_handle_io(h);
    uv_loop_t* loop = h->loop;
    struct stat st;
    void** q;
    int saved = errno;
    int moved;
    if (w == NULL || w->fd < 0)
        return 0;
    moved = fstat(w->fd, &st) == 0 && ourloop_fdid_moved(ids, w, &st);
    errno = saved;
    if (!moved)
        return 0;
    q = (void**)&w->watcher_queue;
    ((void**)q[1])[0] = q[0];
    ((void**)q[0])[1] = q[1];
    q[0] = q;
    q[1] = q;
    if ((unsigned)w->fd < loop->nwatchers && loop->watchers[w->fd] == w) {
        loop->watchers[w->fd] = NULL;
        loop->nfds--;
    }
    w->pevents = 0;
    w->events = 0;
    w->fd = -1;
    return 1;
}

/* uv_try_write(stream, bufs, nbufs) for a stream with no write queued and
 * no connect request (StreamTransport._flush ensures both) whose fd is fd:
 * on Linux (but in the forced-portable build, see platform.h), what libuv
 * (1.44 to 1.51) does there without its calls: one
 * write()/writev() of at most IOV_MAX buffers, again on EINTR; the bytes
 * written, UV_EAGAIN when the kernel takes nothing now, else libuv's
 * error. Elsewhere, uv_try_write() itself. */
#include <limits.h>
#include <sys/uio.h>
static inline ssize_t ourloop_try_write(uv_stream_t* stream, int fd, const uv_buf_t* bufs,
                                        unsigned int nbufs) {
#if defined(__linux__) && defined(IOV_MAX) && !defined(OURLOOP_FORCE_PORTABLE)
    ssize_t n;
    /* (Debug builds: _core.debug_fail_write() counts this as a write.) */
    if (ourloop_injected(&ourloop_fail_write_at, &ourloop_write_count))
        return UV_ENOMEM;
    if (!uv_is_writable(stream))
        return UV_EPIPE;
    if (fd < 0)
        return UV_EBADF;
    if (nbufs > IOV_MAX)
        nbufs = IOV_MAX;
    do {
        if (nbufs == 1)
            n = write(fd, bufs[0].base, bufs[0].len);
        else
            n = writev(fd, (const struct iovec*)bufs, (int)nbufs);
    } while (n == -1 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
        return UV_EAGAIN;
    return -errno;  /* libuv's error codes on Linux */
#else
    (void)fd;
    return ourloop_uv_try_write(stream, bufs, nbufs);
#endif
}

/* Milliseconds libuv should sleep so that a deadline `delta` seconds away
 * has passed when it wakes: rounded up, never negative, at most one day
 * (the stdlib caps its selector timeout at one day too). NaN sleeps 0. */
static inline uint64_t ourloop_timeout_ms(double delta) {
    if (!(delta > 0.0)) return 0;
    if (delta >= 86400.0) return 86400000ULL;
    return (uint64_t)ceil(delta * 1000.0);
}

/* A bytes object nobody else refers to (refcount 1, made by
 * PyBytes_FromStringAndSize with at least n bytes) is given a new length n
 * so that it can carry the next read (handles/stream.pyx: the loop's spare
 * bytes). Its cached hash is forgotten; the memory block keeps its size. */
#include <Python.h>
static inline void ourloop_bytes_reuse(PyObject* b, Py_ssize_t n) {
    Py_SET_SIZE(b, n);
    PyBytes_AS_STRING(b)[n] = '\0';
#if defined(__GNUC__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ((PyBytesObject*)b)->ob_shash = -1;
#if defined(__GNUC__)
#  pragma GCC diagnostic pop
#endif
}

/* The variables of a contextvars.Context, and the current context without
 * copying it (NULL where unknown): what handles/stream.pyx needs to tell
 * whether a copy of the current context it already holds is still one.
 * The layout is CPython's struct _pycontextobject (internal/pycore_context.h,
 * the same from 3.9 to 3.13) and PyThreadState.context (cpython/pystate.h);
 * other versions always copy. */
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030E0000
#  define OURLOOP_CONTEXT_PEEK 1
typedef struct {
    PyObject_HEAD
    PyObject *ctx_prev;
    PyObject *ctx_vars;
    PyObject *ctx_weakreflist;
    int ctx_entered;
} ourloop_context_layout;
#else
#  define OURLOOP_CONTEXT_PEEK 0
#endif

static inline PyObject* ourloop_current_context(void) {
#if OURLOOP_CONTEXT_PEEK
    return PyThreadState_GET()->context;
#else
    return NULL;
#endif
}

/* 1 if `copy` (a Context the caller holds, not entered) has the same
 * variables as the current context `cur`: a fresh copy of `cur` would
 * equal it. */
static inline int ourloop_context_same_vars(PyObject* copy, PyObject* cur) {
#if OURLOOP_CONTEXT_PEEK
    return cur != NULL && copy != cur
        && !((ourloop_context_layout*)copy)->ctx_entered
        && ((ourloop_context_layout*)copy)->ctx_vars == ((ourloop_context_layout*)cur)->ctx_vars;
#else
    (void)copy; (void)cur;
    return 0;
#endif
}

#endif
