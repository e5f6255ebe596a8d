/* ourloop's platform layer: every system call or kernel behaviour that is
 * not POSIX lives here, each with its portable fallback. Declared for
 * Cython in platform.pxd; docs/architecture.md ("The platform layer") lists
 * them. Nothing else in ourloop includes a Linux-only (or macOS-only)
 * header.
 *
 * Two kinds of entries:
 *
 * - System calls ourloop chooses for speed or exactness where the
 *   platform has them (sendfile, pidfd, accept4). Each has a POSIX
 *   fallback with the stdlib's results. OURLOOP_FORCE_PORTABLE (setup.py
 *   defines it when built with OURLOOP_PORTABLE=1) takes the fallback even
 *   where the native call exists, so that the test suite exercises the
 *   fallbacks on Linux.
 * - Facts of the kernel and of libuv's backend that ourloop must match
 *   (epoll vs kqueue for "can the selector watch this fd", the socket
 *   option uv_udp_open sets, Linux's abstract Unix socket names). These
 *   follow the platform compiled for; forcing the portable build cannot
 *   change them (libuv still runs on epoll on Linux).
 *
 * OURLOOP_PLATFORM_FALLBACKS (for _core._build_info()): "forced" when
 * built with OURLOOP_FORCE_PORTABLE, "none" when every native call is
 * used (Linux), else "some".
 */
#ifndef OURLOOP_PLATFORM_H
#define OURLOOP_PLATFORM_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__linux__)
#  include <sys/epoll.h>
#  include <sys/syscall.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
#  define OURLOOP_KQUEUE 1
#  include <sys/event.h>
#  include <sys/uio.h>
#endif

#if defined(OURLOOP_FORCE_PORTABLE)
#  define OURLOOP_NATIVE_OK 0
#else
#  define OURLOOP_NATIVE_OK 1
#endif


/* -- sendfile(2) ----------------------------------------------------------
 * ourloop_sendfile(out_fd, in_fd, &offset, count): Linux's sendfile(2)
 * semantics everywhere: bytes sent (0 at end of file) with *offset
 * advanced, or -1 and errno (EAGAIN when the socket is full and nothing
 * was sent). macOS's sendfile(in, out, off, &len, NULL, 0) and FreeBSD's
 * (in, out, off, n, NULL, &sbytes, 0) report a partial send together with
 * EAGAIN: that is a count here, as os.sendfile() makes it. Without any
 * (or forced portable): ENOSYS, and OURLOOP_HAVE_SENDFILE is 0, so that
 * _sendfile.py raises the stdlib's SendfileNotAvailableError('os.sendfile()
 * is not available') and loop.sendfile()/sock_sendfile() fall back to
 * reading the file and writing it, as the stdlib does without os.sendfile.
 */
#if OURLOOP_NATIVE_OK && defined(__linux__)
#  include <sys/sendfile.h>
#  define OURLOOP_HAVE_SENDFILE 1
#  define OURLOOP_SENDFILE_KIND "linux"
static inline ssize_t ourloop_sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
    return sendfile(out_fd, in_fd, offset, count);
}
#elif OURLOOP_NATIVE_OK && defined(__APPLE__)
#  define OURLOOP_HAVE_SENDFILE 1
#  define OURLOOP_SENDFILE_KIND "darwin"
static inline ssize_t ourloop_sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
    off_t len = (off_t)count;
    int r;
    if (count == 0)
        return 0;   /* (0 would mean "to the end of the file" here) */
    r = sendfile(in_fd, out_fd, *offset, &len, NULL, 0);
    if (r == -1 && !((errno == EAGAIN || errno == EINTR) && len > 0))
        return -1;
    *offset += len;
    return (ssize_t)len;
}
#elif OURLOOP_NATIVE_OK && (defined(__FreeBSD__) || defined(__DragonFly__))
#  define OURLOOP_HAVE_SENDFILE 1
#  define OURLOOP_SENDFILE_KIND "freebsd"
static inline ssize_t ourloop_sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
    off_t sbytes = 0;
    int r;
    if (count == 0)
        return 0;   /* (0 would mean "to the end of the file" here) */
    r = sendfile(in_fd, out_fd, *offset, count, NULL, &sbytes, 0);
    if (r == -1 && !((errno == EAGAIN || errno == EBUSY || errno == EINTR) && sbytes > 0))
        return -1;
    *offset += sbytes;
    return (ssize_t)sbytes;
}
#else
#  define OURLOOP_HAVE_SENDFILE 0
#  define OURLOOP_SENDFILE_KIND "none"
static inline ssize_t ourloop_sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
    (void)out_fd; (void)in_fd; (void)offset; (void)count;
    errno = ENOSYS;
    return -1;
}
#endif


/* -- accept ---------------------------------------------------------------
 * ourloop_accept(fd, addr, len): a connection as a non-blocking, close-on-exec
 * socket, its peer's address in addr (as accept(); NULL: not wanted); -1
 * and errno set on failure. accept4() where the platform has
 * it; else accept() then fcntl() (macOS has neither accept4 nor
 * SOCK_CLOEXEC/SOCK_NONBLOCK; the fd is only ever seen by this thread
 * between the two, and a fork() meanwhile is a spawn by another thread,
 * which closes it in the child: Popen's close_fds).
 */
#if OURLOOP_NATIVE_OK && (defined(__linux__) || defined(__FreeBSD__) || \
    defined(__NetBSD__) || defined(__OpenBSD__) || defined(__DragonFly__))
#  define OURLOOP_ACCEPT_KIND "accept4"
static inline int ourloop_accept(int fd, struct sockaddr* addr, socklen_t* len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
#else
#  define OURLOOP_ACCEPT_KIND "accept+fcntl"
static inline int ourloop_accept(int fd, struct sockaddr* addr, socklen_t* len) {
    int conn = accept(fd, addr, len);
    if (conn >= 0) {
        int fl = fcntl(conn, F_GETFL);
        int fdfl = fl == -1 ? -1 : fcntl(conn, F_GETFD);
        if (fdfl == -1 || fcntl(conn, F_SETFL, fl | O_NONBLOCK) == -1 ||
                fcntl(conn, F_SETFD, fdfl | FD_CLOEXEC) == -1) {
            int saved = errno;
            close(conn);
            errno = saved;
            return -1;
        }
    }
    return conn;
}
#endif


/* -- child processes ------------------------------------------------------
 * ourloop_child_fd(pid): an fd that becomes readable when the child `pid`
 * exits, for ChildWatch's uv_poll_t (handles/process.pyx); -1 and errno
 * when there is none, and then _subprocess.py waits in a thread per child
 * (the stdlib's ThreadedChildWatcher, its own choice wherever pidfds are
 * missing). Linux 5.3+: pidfd_open(2). macOS and the BSDs: a kqueue of its
 * own with EVFILT_PROC/NOTE_EXIT for the pid (a kqueue fd is readable
 * while an event is pending; libuv's uv_poll_init accepts it). Forced
 * portable: ENOSYS, so the thread fallback runs.
 *
 * ourloop_reap(fd, pid, &code): reap the exited child: 1 and *code set
 * (exit status, or minus the signal number), 0 if it has not exited, -1
 * with errno (ECHILD: reaped by someone else). Through the pidfd with
 * waitid(P_PIDFD) (no pid-reuse race) when there is one, else by pid,
 * which is safe while the child is unreaped (its pid cannot be reused
 * before). The kqueue's only event is NOTE_EXIT, which the kernel may post
 * an instant before the child can be waited for; an unconsumed event keeps
 * the kqueue readable, so a WNOHANG miss would spin: there the wait blocks
 * for the end of that exit instead.
 */
#if OURLOOP_NATIVE_OK && defined(__linux__)
#  define OURLOOP_CHILD_FD_KIND "pidfd"
#  define OURLOOP_CHILD_FD_IS_PIDFD 1
#  ifndef P_PIDFD
#    define P_PIDFD 3
#  endif
#  ifndef SYS_pidfd_open
#    define SYS_pidfd_open 434   /* the same number on every architecture */
#  endif
static inline int ourloop_child_fd(int pid) {
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
}
#elif OURLOOP_NATIVE_OK && defined(OURLOOP_KQUEUE)
#  define OURLOOP_CHILD_FD_KIND "kqueue"
#  define OURLOOP_CHILD_FD_IS_PIDFD 0
#  define OURLOOP_CHILD_FD_KQUEUE 1
static inline int ourloop_child_fd(int pid) {
    struct kevent ev;
    int saved;
    int kq = kqueue();
    if (kq == -1)
        return -1;
    if (fcntl(kq, F_SETFD, FD_CLOEXEC) == -1)
        goto fail;
    EV_SET(&ev, (uintptr_t)pid, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, 0);
    if (kevent(kq, &ev, 1, NULL, 0, NULL) == -1)
        goto fail;   /* ESRCH (already exited): the thread reaps it */
    return kq;
fail:
    saved = errno;
    close(kq);
    errno = saved;
    return -1;
}
#else
#  define OURLOOP_CHILD_FD_KIND "none"
#  define OURLOOP_CHILD_FD_IS_PIDFD 0
static inline int ourloop_child_fd(int pid) {
    (void)pid;
    errno = ENOSYS;
    return -1;
}
#endif

/* waitpid(pid, options), again on EINTR: 1 and *code (the exit status,
 * or -signal) once reaped, else waitpid's 0 or -1. */
static inline int ourloop_waitpid_code(int pid, int* code, int options) {
    int status, r;
    do
        r = waitpid(pid, &status, options);
    while (r == -1 && errno == EINTR);
    if (r <= 0)
        return r;
    if (WIFSIGNALED(status))
        *code = -WTERMSIG(status);
    else
        *code = WEXITSTATUS(status);
    return 1;
}

static inline int ourloop_waitpid_nohang(int pid, int* code) {
    return ourloop_waitpid_code(pid, code, WNOHANG);
}

static inline int ourloop_reap(int fd, int pid, int* code) {
#if OURLOOP_CHILD_FD_IS_PIDFD
    siginfo_t info;
    int r;
    memset(&info, 0, sizeof(info));
    do
        r = waitid(P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG);
    while (r == -1 && errno == EINTR);
    if (r == -1 && errno == EINVAL)
        return ourloop_waitpid_nohang(pid, code);   /* Linux 5.3: no P_PIDFD */
    if (r == -1)
        return -1;
    if (info.si_pid == 0)
        return 0;
    if (info.si_code == CLD_EXITED)
        *code = info.si_status;
    else
        *code = -info.si_status;
    return 1;
#elif defined(OURLOOP_CHILD_FD_KQUEUE)
    (void)fd;
    return ourloop_waitpid_code(pid, code, 0);
#else
    (void)fd;
    return ourloop_waitpid_nohang(pid, code);
#endif
}


/* -- can the selector watch this fd? --------------------------------------
 * ourloop_fd_unpollable(fd): 0 if the stdlib's selector on this platform
 * could register fd for reading, else the errno its register() fails with
 * (handles/pipe.pyx asks before libuv sees a character device). A fact of
 * the backend, not a call ourloop may avoid: on Linux libuv polls with
 * epoll and abort()s when epoll_ctl refuses an fd, so the epoll probe stays
 * in the forced-portable build. Linux: a throw-away epoll instance
 * (EPERM for /dev/null and other devices without poll support). macOS/BSD:
 * a throw-away kqueue (KqueueSelector's registration; libuv's pipes fall
 * back to a select() thread for such devices, so nothing aborts).
 * Elsewhere: 0 (poll(2) and select(2) take any open fd).
 */
#if defined(__linux__)
#  define OURLOOP_POLL_BACKEND "epoll"
static inline int ourloop_fd_unpollable(int fd) {
    struct epoll_event ev;
    int r, err;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    r = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    err = errno;
    close(ep);
    return r == 0 || err != EPERM ? 0 : err;
}
#elif defined(OURLOOP_KQUEUE)
#  define OURLOOP_POLL_BACKEND "kqueue"
static inline int ourloop_fd_unpollable(int fd) {
    struct kevent ev;
    int r, err;
    int kq = kqueue();
    if (kq < 0)
        return 0;
    EV_SET(&ev, (uintptr_t)fd, EVFILT_READ, EV_ADD, 0, 0, 0);
    r = kevent(kq, &ev, 1, NULL, 0, NULL);
    err = errno;
    close(kq);
    return r == 0 ? 0 : err;
}
#else
#  define OURLOOP_POLL_BACKEND "other"
static inline int ourloop_fd_unpollable(int fd) {
    (void)fd;
    return 0;
}
#endif


/* -- an edge-triggered readiness set (loop.sock_* waits) ------------------
 * ourloop_et_create(): a new, empty set (an fd, close-on-exec), or -1 and
 * errno; ENOSYS where there is none (and in the forced-portable build),
 * and sockops.pyx then waits through add_reader/add_writer as before.
 * ourloop_et_set(set, fd, events, token, add): watch fd for events
 * (OURLOOP_ET_IN | OURLOOP_ET_OUT), edge-triggered: a readiness change is
 * reported once; add=1 registers (an fd already there is modified), add=0
 * modifies (an fd not there is registered). 0, or -1 and errno.
 * ourloop_et_del(set, fd): stop watching fd (0, or -1 and errno).
 * ourloop_et_wait(set, tokens, events, max): the reports since the last
 * call, without waiting: how many (token as given, events as
 * OURLOOP_ET_IN/OUT, an error or hang-up reporting both, as the stdlib's
 * EpollSelector does), or -1 and errno.
 * ourloop_et_renew(set): in a child after fork(), a set of its own under
 * the same fd number (the parent's registrations stay the parent's).
 * Linux: an epoll instance with EPOLLET.
 */
#define OURLOOP_ET_IN 1
#define OURLOOP_ET_OUT 2
#if OURLOOP_NATIVE_OK && defined(__linux__)
#  define OURLOOP_HAVE_ET 1
static inline int ourloop_et_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}
static inline int ourloop_et_set(int set, int fd, int events, uint64_t token, int add) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLET | ((events & OURLOOP_ET_IN) ? EPOLLIN : 0)
                | ((events & OURLOOP_ET_OUT) ? EPOLLOUT : 0);
    ev.data.u64 = token;
    if (epoll_ctl(set, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    if (add && errno == EEXIST)
        return epoll_ctl(set, EPOLL_CTL_MOD, fd, &ev);
    if (!add && errno == ENOENT)
        return epoll_ctl(set, EPOLL_CTL_ADD, fd, &ev);
    return -1;
}
static inline int ourloop_et_del(int set, int fd) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    return epoll_ctl(set, EPOLL_CTL_DEL, fd, &ev);
}
static inline int ourloop_et_wait(int set, uint64_t *tokens, int *events, int max) {
    struct epoll_event evs[64];
    int n, i, e, r;
    if (max > 64)
        max = 64;
    do {
        n = epoll_wait(set, evs, max, 0);
    } while (n < 0 && errno == EINTR);
    for (i = 0; i < n; i++) {
        e = (int)evs[i].events;
        r = 0;
        if (e & ~EPOLLOUT)
            r |= OURLOOP_ET_IN;
        if (e & ~EPOLLIN)
            r |= OURLOOP_ET_OUT;
        tokens[i] = evs[i].data.u64;
        events[i] = r;
    }
    return n;
}
static inline int ourloop_et_renew(int set) {
    int fresh = epoll_create1(EPOLL_CLOEXEC);
    int r;
    if (fresh < 0)
        return -1;
    r = dup3(fresh, set, O_CLOEXEC);
    close(fresh);
    return r < 0 ? -1 : 0;
}
#else
#  define OURLOOP_HAVE_ET 0
static inline int ourloop_et_create(void) {
    errno = ENOSYS;
    return -1;
}
static inline int ourloop_et_set(int set, int fd, int events, uint64_t token, int add) {
    (void)set; (void)fd; (void)events; (void)token; (void)add;
    errno = ENOSYS;
    return -1;
}
static inline int ourloop_et_del(int set, int fd) {
    (void)set; (void)fd;
    errno = ENOSYS;
    return -1;
}
static inline int ourloop_et_wait(int set, uint64_t *tokens, int *events, int max) {
    (void)set; (void)tokens; (void)events; (void)max;
    errno = ENOSYS;
    return -1;
}
static inline int ourloop_et_renew(int set) {
    (void)set;
    errno = ENOSYS;
    return -1;
}
#endif


/* -- a pipe's capacity ----------------------------------------------------
 * ourloop_pipe_size(fd): the pipe's capacity in bytes, or -1 where it
 * cannot be read (not Linux, not a pipe, or the forced-portable build);
 * ourloop_set_pipe_size(fd, size): ask for a larger pipe, 0 or -1 and
 * errno. Only Linux lets a process size its pipes (F_GETPIPE_SZ,
 * F_SETPIPE_SZ); elsewhere a subprocess's busy pipes keep their size
 * (handles/pipe.pyx, PipeEnd._grow_when_full: a speed-up, not behaviour). */
#if OURLOOP_NATIVE_OK && defined(__linux__) && defined(F_GETPIPE_SZ)
#  define OURLOOP_PIPE_SIZE_KIND "fcntl"
static inline int ourloop_pipe_size(int fd) {
    return fcntl(fd, F_GETPIPE_SZ);
}
static inline int ourloop_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size) < 0 ? -1 : 0;
}
#else
#  define OURLOOP_PIPE_SIZE_KIND "none"
static inline int ourloop_pipe_size(int fd) {
    (void)fd;
    errno = ENOSYS;
    return -1;
}
static inline int ourloop_set_pipe_size(int fd, int size) {
    (void)fd; (void)size;
    errno = ENOSYS;
    return -1;
}
#endif


/* -- several datagrams in one system call ---------------------------------
 * OURLOOP_UDP_BATCH: how many datagrams a datagram transport asks the
 * kernel for at once (handles/udp.pyx, through udp_io.h's
 * ourloop_udp_recvbatch); ourloop_recvmmsg(fd, msgs, n): recvmmsg(2)
 * without a timeout. Elsewhere, and in the forced-portable build, one
 * recvfrom() per datagram: the same datagrams in the same order, one more
 * system call per datagram waiting (a speed-up, not behaviour). */
#if OURLOOP_NATIVE_OK && defined(__linux__)
#  define OURLOOP_UDP_RECV_KIND "recvmmsg"
#  define OURLOOP_UDP_BATCH 8
static inline int ourloop_recvmmsg(int fd, struct mmsghdr* msgs, unsigned int n) {
    return recvmmsg(fd, msgs, n, 0, NULL);
}
#else
#  define OURLOOP_UDP_RECV_KIND "recvfrom"
#  define OURLOOP_UDP_BATCH 1
#endif


/* -- the socket option uv_udp_open() sets ---------------------------------
 * libuv turns on SO_REUSEPORT where it means what SO_REUSEADDR means on
 * Linux (macOS, the BSDs), else SO_REUSEADDR (src/unix/udp.c,
 * uv__sock_reuseaddr); the datagram transport turns it off again when the
 * socket did not have it, as the stdlib never sets it. */
#if defined(SO_REUSEPORT) && !defined(__linux__) && !defined(__GNU__) && \
    !defined(__sun) && !defined(__illumos__) && !defined(__DragonFly__) && \
    !defined(_AIX73) && !defined(__MVS__)
#  define OURLOOP_UV_UDP_REUSE SO_REUSEPORT
#else
#  define OURLOOP_UV_UDP_REUSE SO_REUSEADDR
#endif


/* -- Linux's abstract Unix socket names -----------------------------------
 * A name starting with NUL is an abstract-namespace address on Linux only
 * (the socket module parses and reports it so only under __linux__). */
#if defined(__linux__)
#  define OURLOOP_ABSTRACT_UNIX 1
#else
#  define OURLOOP_ABSTRACT_UNIX 0
#endif


#if defined(OURLOOP_FORCE_PORTABLE)
#  define OURLOOP_PLATFORM_FALLBACKS "forced"
#elif OURLOOP_HAVE_SENDFILE && defined(__linux__)
#  define OURLOOP_PLATFORM_FALLBACKS "none"
#else
#  define OURLOOP_PLATFORM_FALLBACKS "some"
#endif

#endif
