/*
 * Load generator of the echo benchmark (benchmarks/echo.py, syscalls.py).
 *
 * One thread, one epoll set (level-triggered), non-blocking TCP sockets.
 * Each of --conc connections does request/response round trips: it sends
 * --size bytes, waits until --size bytes have come back (checking them
 * byte for byte unless --no-verify), then sends the next request. There is
 * never more than one request in flight on a connection. With --no-verify,
 * the warm-up's echoes are still checked byte for byte, but in the
 * measured phase only their lengths are: they are received with MSG_TRUNC,
 * which makes Linux TCP discard the bytes instead of copying them out, so
 * the client does half the copying at large sizes. The request bytes
 * are those of echo_client.py, (i * 7 + 13) & 0xFF, but each request starts
 * at a different offset of that 256-byte cycle, so that an echo of an
 * earlier request (stale data) fails the check too.
 *
 *   echo_load --port P --size 1024 --conc 16 --duration 2 --warmup 0.3
 *   echo_load --port P --size 1024 --count 2000   # exactly 2000 exchanges
 *   echo_load --unix PATH --size 1024 --conc 16   # a Unix stream socket instead of TCP
 *   echo_load --udp --port P --size 1024 --conc 16 --window 4 --duration 2
 *   echo_load --tls --port P --size 1024 --conc 16  # TLS over each TCP connection
 *   echo_load --port P --size 1024 --conc 1 --latency  # + percentiles of the round trips
 *
 * With --unix PATH the connections go to that Unix stream socket (no
 * TCP_NODELAY; everything else is the same). Linux Unix stream sockets
 * ignore MSG_TRUNC, so with --no-verify the echoes are still copied out,
 * only not compared.
 *
 * With --tls (a build with -DECHO_TLS, linked with -lssl -lcrypto; see
 * "TLS" below), each stream connection is wrapped in an OpenSSL client:
 * the TLS 1.3 handshake is done, blocking, when the connection is made,
 * before the warm-up and the timing; the exchanges then use non-blocking
 * SSL_write()/SSL_read() in the same epoll loop, and every echoed byte is
 * still checked (after decryption; MSG_TRUNC cannot apply). The JSON line
 * then also says which protocol version and cipher suite were negotiated.
 *
 * With --udp (see run_udp below), each of --conc "clients" is a connected
 * UDP socket that keeps --window datagrams of --size bytes in flight and
 * counts echoed datagrams (round trips) per second, checking every reply
 * byte for byte. A datagram whose echo has not come back after
 * --loss-timeout ms is counted as lost and replaced by a new one; an echo
 * that comes back after that is counted as late (and still checked).
 *
 * It takes the options of echo_client.py (the Python generator it
 * replaces) and prints the same JSON line: requests, seconds, req_per_sec,
 * mib_per_sec (payload echoed per second, one direction), client_cpu_share
 * (getrusage user + system of this process over the measured wall time),
 * plus a few extra fields. With --server-pid it also reports the CPU share
 * of that process over the same span (from /proc/PID/stat, all threads).
 * With --cpu (and --server-cpu) it reports how busy that whole core was
 * over the span (1 - idle share, from /proc/stat, whoever used it) and its
 * softirq share. The busy share minus the process's own share is what other
 * processes took from it: how noisy the machine was. (Softirq work the
 * kernel does inside a process's system calls -- on loopback, much of the
 * peer's TCP receive path runs in the sender's send() -- is charged to that
 * process, unless the kernel has IRQ time accounting.)
 *
 * With --latency (stream sockets) it also records how long each exchange of
 * the measured phase took, from its first byte sent to the last byte of its
 * echo received, and adds "latency_us" to the JSON line: n, min, mean, p50,
 * p90, p99, p999 and max in microseconds (nearest rank). latency.py uses it
 * with one connection, so each exchange is one request alone on the wire.
 *
 * The benchmark builds it on demand: cc -O2 -DECHO_TLS -o benchmarks/.build/...
 * echo_load.c -lssl -lcrypto, or without -DECHO_TLS and the libraries when the
 * OpenSSL headers are missing (then --tls is refused).
 * Linux only (epoll, sched_setaffinity, /proc).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef ECHO_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#define MAX_EVENTS 64
#define SCRATCH_SIZE (256 * 1024)
#define STALL_MS 10000          /* no event for this long: the server hangs */

struct conn {
    int fd;
    int active;                 /* a request is in flight in this phase */
    int want_out;               /* EPOLLOUT is in the registered events */
    unsigned seq;               /* requests started on this connection */
    const unsigned char *req;   /* the bytes of the request in flight */
    size_t sent, got;
    void *ssl;                  /* --tls: the connection's SSL *, else NULL */
    int write_wants_read;       /* --tls: SSL_write() wants the socket readable */
    int read_wants_write;       /* --tls: SSL_read() wants the socket writable */
    double t_start;             /* --latency: when the request in flight started */
};

static struct {
    const char *host;
    int port;
    size_t size;
    int conc;
    double duration;
    long count;                 /* < 0: run for duration */
    double warmup;
    int cpu;                    /* < 0: do not pin */
    int verify;
    long server_pid;            /* <= 0: none */
    int server_cpu;             /* < 0: none */
    const char *unix_path;      /* non-NULL: a Unix stream socket, not TCP */
    int udp;                    /* UDP datagram echo (run_udp) */
    int window;                 /* UDP: datagrams in flight per client */
    double loss_timeout;        /* UDP: seconds before a datagram counts as lost */
    int tls;                    /* TLS over each stream connection */
    const char *tls_ca;         /* --tls: verify the server against this CA file */
    int latency;                /* record each measured exchange's duration */
} opt = {"127.0.0.1", 0, 1024, 1, 2.0, -1, 0.0, -1, 1, 0, -1, NULL, 0, 1, 0.2, 0, NULL, 0};

static int epfd;
static int check_bytes = 1;     /* 0: recv(MSG_TRUNC), lengths only */
static struct conn *conns;
static unsigned char *pattern;  /* size + 256 bytes of the cycle */
static unsigned char *scratch;
static size_t scratch_size;
/* --latency: the durations (seconds) of the measured phase's exchanges,
 * from the first byte sent to the last byte of the echo received. */
static double *lat;
static size_t lat_n, lat_cap;
static int lat_on;              /* in the measured phase */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("echo_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this process: user and system seconds. */
static void cpu_times(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* CPU seconds (utime + stime, all threads) of another process, or -1. */
static double proc_cpu_seconds(long pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may contain spaces: start after its ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* Fields 3.. follow; utime and stime are fields 14 and 15. */
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The tick counters of one core from /proc/stat: user nice system idle
 * iowait irq softirq steal. Returns 0, or -1 if unavailable. */
static int core_ticks(int cpu, unsigned long long t[8])
{
    char want[32], line[512];
    int found = -1;
    snprintf(want, sizeof want, "cpu%d ", cpu);
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)) == 0) {
            memset(t, 0, 8 * sizeof t[0]);
            if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu",
                       &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7]) >= 7)
                found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Print `"name_busy": x, "name_softirq": y, ` for one core over a span. */
static void print_core(const char *name, int ok, const unsigned long long a[8],
                       const unsigned long long b[8])
{
    unsigned long long d[8], total = 0;
    for (int i = 0; ok && i < 8; i++) {
        d[i] = b[i] - a[i];
        total += d[i];
    }
    if (!ok || total == 0) {
        printf("\"%s_busy\": null, \"%s_softirq\": null, ", name, name);
        return;
    }
    printf("\"%s_busy\": %.4f, \"%s_softirq\": %.4f, ", name,
           1.0 - (double)(d[3] + d[4]) / (double)total, name, (double)d[6] / (double)total);
}

static void set_events(struct conn *c, int want_out)
{
    struct epoll_event ev;
    if (c->want_out == want_out)
        return;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* ---------------------------------------------------------------------------
 * TLS (--tls). One SSL_CTX for all connections: TLS 1.3 only, OpenSSL's
 * default TLS 1.3 cipher suites, partial writes (SSL_write() returns what
 * went out, like send()), read-ahead (one read() takes in whatever the
 * socket has, up to TLS_READ_BUFFER bytes, instead of a read() for each
 * record's header and another for its body). The handshake is blocking, in
 * stream_connect(). Afterwards the socket is non-blocking: SSL_write() may
 * want the socket writable (EPOLLOUT) or, rarely, readable; SSL_read() is
 * called again as long as OpenSSL holds bytes (SSL_has_pending(): decrypted
 * or not yet), which level-triggered epoll knows nothing about. Records
 * that carry no data (the server's session tickets after the handshake)
 * are consumed inside SSL_read(). So a 1 KiB exchange costs the same
 * system calls as without TLS: one write(), one read().
 * ------------------------------------------------------------------------- */

#ifdef ECHO_TLS
#define TLS_READ_BUFFER (256 * 1024)
static SSL_CTX *tls_ctx;

static void die_tls(const char *what, int ret, SSL *ssl) __attribute__((noreturn));

static void die_tls(const char *what, int ret, SSL *ssl)
{
    int err = ssl ? SSL_get_error(ssl, ret) : SSL_ERROR_SSL;
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else if (err == SSL_ERROR_SYSCALL)
        snprintf(buf, sizeof buf, "%s", errno ? strerror(errno) : "unexpected EOF");
    else if (err == SSL_ERROR_ZERO_RETURN)
        snprintf(buf, sizeof buf, "the server closed the TLS connection (close_notify)");
    die("%s failed (SSL error %d): %s", what, err, buf);
}

static void tls_init(void)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx)
        die_tls("SSL_CTX_new", 0, NULL);
    if (!SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION))
        die_tls("SSL_CTX_set_min_proto_version", 0, NULL);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                     | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    SSL_CTX_set_default_read_buffer_len(tls_ctx, TLS_READ_BUFFER);
    if (opt.tls_ca) {
        if (SSL_CTX_load_verify_locations(tls_ctx, opt.tls_ca, NULL) != 1)
            die_tls("loading --tls-ca", 0, NULL);
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    }
}

/* The handshake on a connected, still blocking socket. */
static SSL *tls_handshake(int fd)
{
    SSL *ssl = SSL_new(tls_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd))
        die_tls("SSL_new", 0, NULL);
    if (opt.tls_ca && !opt.unix_path) {
        /* The certificate must name the address connected to. */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), opt.host))
            die_tls("X509_VERIFY_PARAM_set1_ip_asc", 0, NULL);
    }
    int r = SSL_connect(ssl);
    if (r != 1)
        die_tls("TLS handshake", r, ssl);
    return ssl;
}

/* SSL_write() of what is left of the request. Returns the bytes written,
 * 0 if it has to wait (c->write_wants_read says for what). */
static size_t tls_send(struct conn *c)
{
    c->write_wants_read = 0;
    int n = SSL_write(c->ssl, c->req + c->sent, (int)(opt.size - c->sent));
    if (n > 0)
        return (size_t)n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_WANT_READ:
        c->write_wants_read = 1;
        return 0;
    default:
        die_tls("SSL_write", n, c->ssl);
    }
    return 0;
}

/* SSL_read() into scratch: the bytes read, or 0 when it has to wait for
 * the socket. Never returns on EOF or an error. */
static size_t tls_recv(struct conn *c, size_t want)
{
    ERR_clear_error();
    int n = SSL_read(c->ssl, scratch, (int)want);
    if (n > 0)
        return (size_t)n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        /* Reading wants to write (the answer to a key update): rare; wait
         * for EPOLLOUT, then read again. */
        c->read_wants_write = 1;
        set_events(c, 1);
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        die("server closed a TLS connection (close_notify; %zu of %zu bytes echoed)",
            c->got, opt.size);
    default:
        die_tls("SSL_read", n, c->ssl);
    }
    return 0;
}

/* Whether OpenSSL holds bytes of this connection that epoll cannot see. */
static int tls_has_pending(struct conn *c)
{
    return SSL_has_pending(c->ssl);
}

static void tls_close(struct conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);       /* sends close_notify; does not wait for the reply */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
}
#else
static void tls_init(void) { die("--tls: this build has no TLS (compiled without -DECHO_TLS)"); }
static void *tls_handshake(int fd) { (void)fd; return NULL; }
static size_t tls_send(struct conn *c) { (void)c; return 0; }
static size_t tls_recv(struct conn *c, size_t want) { (void)c; (void)want; return 0; }
static int tls_has_pending(struct conn *c) { (void)c; return 0; }
static void tls_close(struct conn *c) { (void)c; }
#endif

/* One send() of what is left of the request; wait for EPOLLOUT if it did
 * not all go (as echo_client.py does). */
static void send_more(struct conn *c)
{
    if (c->ssl) {
        c->sent += tls_send(c);
        set_events(c, (c->sent < opt.size && !c->write_wants_read) || c->read_wants_write);
        return;
    }
    ssize_t n = send(c->fd, c->req + c->sent, opt.size - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            die("send: %s", strerror(errno));
        n = 0;
    }
    c->sent += (size_t)n;
    set_events(c, c->sent < opt.size);
}

static void start_request(struct conn *c)
{
    c->sent = 0;
    c->got = 0;
    c->active = 1;
    /* 97 is odd: consecutive requests of a connection use all 256 offsets. */
    c->req = pattern + ((c->seq++ * 97u + (unsigned)(c - conns) * 31u) & 0xFFu);
    if (opt.latency)
        c->t_start = now();
    send_more(c);
}

/* The bytes of an echo that arrived on an active connection: check them,
 * and when the whole echo is back, count the exchange and start the next
 * one or make the connection idle. */
static void echo_bytes(struct conn *c, size_t r, double deadline, long remaining,
                       long *started, long *completed, int *active)
{
    if (c->got + r > c->sent)
        die("echo check failed: %zu bytes received but only %zu sent", c->got + r, c->sent);
    if (check_bytes && memcmp(scratch, c->req + c->got, r) != 0)
        die("echo check failed: reply differs from request (bytes %zu..%zu)",
            c->got, c->got + r);
    c->got += r;
    if (c->got < opt.size)
        return;
    (*completed)++;
    if (lat_on) {
        if (lat_n == lat_cap) {
            lat_cap = lat_cap ? lat_cap * 2 : 65536;
            lat = realloc(lat, lat_cap * sizeof *lat);
            if (!lat)
                die("out of memory");
        }
        lat[lat_n++] = now() - c->t_start;
    }
    int more = remaining < 0 ? now() < deadline : *started < remaining;
    if (more) {
        (*started)++;
        start_request(c);
    } else {
        c->active = 0;
        (*active)--;
    }
}

/* An epoll event on a TLS connection: go on writing the request, then read
 * until OpenSSL holds nothing more (its buffer is invisible to epoll; what
 * is still in the socket, epoll reports again). */
static void tls_events(struct conn *c, uint32_t ev, double deadline, long remaining,
                       long *started, long *completed, int *active)
{
    if (c->active && c->sent < opt.size
            && ((ev & EPOLLOUT) || (c->write_wants_read && (ev & EPOLLIN))))
        send_more(c);
    if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !(c->read_wants_write && (ev & EPOLLOUT)))
        return;
    if (c->read_wants_write) {
        /* SSL_read() wanted to write, and now may. */
        c->read_wants_write = 0;
        set_events(c, c->active && c->sent < opt.size && !c->write_wants_read);
    }
    for (;;) {
        if (!c->active) {
            /* Nothing is expected on an idle connection but records without
             * data, which SSL_read() consumes. */
            size_t r = tls_recv(c, scratch_size);
            if (r > 0)
                die("server sent %zu unexpected bytes (more than it was sent?)", r);
            return;
        }
        size_t want = opt.size - c->got;
        if (want > scratch_size)
            want = scratch_size;
        size_t r = tls_recv(c, want);
        if (r == 0)
            return;
        echo_bytes(c, r, deadline, remaining, started, completed, active);
        if (!tls_has_pending(c))
            return;
    }
}

/* Round trips until the deadline (remaining < 0) or until `remaining`
 * exchanges have been started. Every connection finishes the exchange it
 * has in flight, so the server is idle at the end. Returns the number of
 * exchanges completed. */
static long run_phase(double deadline, long remaining)
{
    struct epoll_event events[MAX_EVENTS];
    long completed = 0, started = 0;
    int active = 0;

    for (int i = 0; i < opt.conc; i++) {
        if (remaining >= 0 && started >= remaining)
            break;
        start_request(&conns[i]);
        started++;
        active++;
    }
    while (active) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, STALL_MS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        if (n == 0)
            die("no progress for %d s: %d connection(s) waiting for the server "
                "(%ld exchanges completed in this phase)", STALL_MS / 1000, active, completed);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if (c->ssl) {
                tls_events(c, ev, deadline, remaining, &started, &completed, &active);
                continue;
            }
            if (!c->active) {
                /* Nothing is expected on an idle connection. */
                ssize_t r = recv(c->fd, scratch, scratch_size, 0);
                if (r == 0)
                    die("server closed a connection");
                if (r > 0)
                    die("server sent %zd unexpected bytes (more than it was sent?)", r);
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    die("recv: %s", strerror(errno));
                continue;
            }
            if ((ev & EPOLLOUT) && c->sent < opt.size)
                send_more(c);
            if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            size_t want = opt.size - c->got;
            if (want > scratch_size && (check_bytes || opt.unix_path))
                want = scratch_size;
            /* MSG_TRUNC discards TCP data without copying it; Unix stream
             * sockets ignore the flag and copy anyway, into scratch. */
            ssize_t r = recv(c->fd, scratch, want,
                             check_bytes || opt.unix_path ? 0 : MSG_TRUNC);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    continue;
                die("recv: %s", strerror(errno));
            }
            if (r == 0)
                die("server closed a connection (%zu of %zu bytes echoed)", c->got, opt.size);
            echo_bytes(c, (size_t)r, deadline, remaining, &started, &completed, &active);
        }
    }
    return completed;
}

/* --latency: percentiles of the recorded exchanges, in microseconds (the
 * nearest-rank value: the smallest duration with at least p% of the
 * exchanges at or below it). */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_latency(void)
{
    static const struct { const char *name; double p; } pcts[] = {
        {"p50", 50}, {"p90", 90}, {"p99", 99}, {"p999", 99.9},
    };
    if (lat_n == 0) {
        printf("\"latency_us\": null, ");
        return;
    }
    qsort(lat, lat_n, sizeof *lat, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < lat_n; i++)
        sum += lat[i];
    printf("\"latency_us\": {\"n\": %zu, \"min\": %.3f, \"mean\": %.3f, ",
           lat_n, lat[0] * 1e6, sum / (double)lat_n * 1e6);
    for (size_t k = 0; k < sizeof pcts / sizeof pcts[0]; k++) {
        size_t rank = (size_t)((pcts[k].p / 100.0) * (double)lat_n + 0.999999);
        if (rank < 1)
            rank = 1;
        if (rank > lat_n)
            rank = lat_n;
        printf("\"%s\": %.3f, ", pcts[k].name, lat[rank - 1] * 1e6);
    }
    printf("\"max\": %.3f}, ", lat[lat_n - 1] * 1e6);
}

/* ---------------------------------------------------------------------------
 * What the measured span cost: CPU of this process, of the server process,
 * and how busy the two cores were. One snapshot at each end of the span.
 * ------------------------------------------------------------------------- */

struct snap {
    double t, user, sys, server;        /* server: -1 if unknown */
    unsigned long long cc[8], sc[8];
    int cc_ok, sc_ok;
};

static void take_snap(struct snap *x)
{
    x->cc_ok = opt.cpu >= 0 && core_ticks(opt.cpu, x->cc) == 0;
    x->sc_ok = opt.server_cpu >= 0 && core_ticks(opt.server_cpu, x->sc) == 0;
    x->server = opt.server_pid > 0 ? proc_cpu_seconds(opt.server_pid) : -1;
    cpu_times(&x->user, &x->sys);
    x->t = now();
}

/* The JSON line, without its closing brace: the caller adds its own fields. */
static void print_result(long done, const struct snap *a, const struct snap *b)
{
    double wall = b->t - a->t;
    if (wall <= 0)
        wall = 1e-9;
    double user = b->user - a->user, sys = b->sys - a->sys;
    printf("{\"requests\": %ld, \"seconds\": %.9f, \"req_per_sec\": %.6f, "
           "\"mib_per_sec\": %.6f, \"client_cpu_share\": %.6f, "
           "\"client_cpu_user\": %.6f, \"client_cpu_sys\": %.6f, ",
           done, wall, done / wall, (double)done * (double)opt.size / wall / 1048576.0,
           (user + sys) / wall, user, sys);
    if (a->server >= 0 && b->server >= 0)
        printf("\"server_cpu_share\": %.6f, ", (b->server - a->server) / wall);
    else
        printf("\"server_cpu_share\": null, ");
    print_core("client_core", a->cc_ok && b->cc_ok, a->cc, b->cc);
    print_core("server_core", a->sc_ok && b->sc_ok, a->sc, b->sc);
    printf("\"size\": %zu, \"conc\": %d, \"verified\": %s, \"client\": \"c\", ",
           opt.size, opt.conc, opt.verify ? "true" : "false");
}

/* ---------------------------------------------------------------------------
 * UDP: --conc clients, each a connected UDP socket with --window datagrams
 * in flight.
 *
 * A datagram is a 16-byte header -- client index (u32), slot (u32), sequence
 * number (u64, per client, never reused) -- then bytes of the request
 * pattern at an offset that depends on the sequence number. The server
 * echoes it as is. An echo must have exactly --size bytes, name this
 * client, a slot < --window and a sequence number this client has sent,
 * and carry exactly the bytes that datagram had; anything else (a wrong or
 * truncated reply, a reply to nothing) stops the run with an error.
 *
 * Loss: UDP may drop a datagram (a full socket buffer on either side). A
 * slot whose datagram has had no echo for --loss-timeout seconds counts it
 * as lost and sends a new datagram with a new sequence number, so a later
 * echo of the old one is recognised as late, not as the reply to the new
 * one. A second echo of a datagram already echoed fails the run. A send() that fails with EAGAIN (full send buffer) leaves the slot
 * waiting, and the same timeout resends it.
 *
 * Phases: one continuous run. Round trips during --warmup seconds are not
 * counted; then round trips are counted for --duration seconds (the
 * snapshots are taken when the loop notices the boundary); then no new
 * datagram is sent, and the run waits (up to --loss-timeout) for the echoes
 * still in flight, uncounted, so that the server is idle at the end.
 * ------------------------------------------------------------------------- */

#define UDP_HEADER 16
#define LOST_RING 4096          /* per client: the last lost sequence numbers */

struct uslot {
    uint64_t seq;               /* of the datagram in flight */
    double sent_at;
    int active;                 /* waiting for an echo */
};

struct uclient {
    int fd;
    uint32_t index;
    uint64_t next_seq;
    struct uslot *slots;
    /* Sequence numbers counted lost, newest last, so that a late echo of
     * one is told apart from a second echo of a datagram already answered
     * (which fails the run). UINT64_MAX: empty or already seen. */
    uint64_t lost[LOST_RING];
    unsigned lost_next;
};

static struct uclient *uclients;
static unsigned char *udp_buf;  /* one outgoing datagram */
static unsigned char *udp_in;   /* one incoming datagram (+1 to see oversize) */

static struct {
    long completed, lost, late, send_eagain;
} ucount;

static const unsigned char *udp_payload(const struct uclient *c, uint32_t slot, uint64_t seq)
{
    return pattern + ((unsigned)(seq * 97u + c->index * 31u + slot * 13u) & 0xFFu);
}

static void udp_send(struct uclient *c, uint32_t slot, double t)
{
    struct uslot *s = &c->slots[slot];
    s->seq = c->next_seq++;
    s->sent_at = t;
    s->active = 1;
    memcpy(udp_buf, &c->index, 4);
    memcpy(udp_buf + 4, &slot, 4);
    memcpy(udp_buf + 8, &s->seq, 8);
    memcpy(udp_buf + UDP_HEADER, udp_payload(c, slot, s->seq), opt.size - UDP_HEADER);
    ssize_t n = send(c->fd, udp_buf, opt.size, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR) {
            ucount.send_eagain++;      /* the loss timeout resends it */
            return;
        }
        if (errno == ECONNREFUSED)
            die("send: connection refused (no UDP server on port %d?)", opt.port);
        die("send: %s", strerror(errno));
    }
    if ((size_t)n != opt.size)
        die("send: %zd of %zu bytes", n, opt.size);
}

/* Read every echo waiting on this client's socket. `sending`: start a new
 * datagram in each slot that completes. */
static void udp_receive(struct uclient *c, int sending, double *last_reply)
{
    for (;;) {
        ssize_t r = recv(c->fd, udp_in, opt.size + 1, MSG_TRUNC);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            if (errno == ECONNREFUSED)
                die("recv: connection refused (the UDP server is gone?)");
            die("recv: %s", strerror(errno));
        }
        if ((size_t)r != opt.size)
            die("echo check failed: a datagram of %zd bytes instead of %zu", r, opt.size);
        uint32_t index, slot;
        uint64_t seq;
        memcpy(&index, udp_in, 4);
        memcpy(&slot, udp_in + 4, 4);
        memcpy(&seq, udp_in + 8, 8);
        if (index != c->index || slot >= (uint32_t)opt.window || seq >= c->next_seq)
            die("echo check failed: client %u received a reply to a datagram it never "
                "sent (client %u, slot %u, sequence %llu)", c->index, index, slot,
                (unsigned long long)seq);
        if (check_bytes && memcmp(udp_in + UDP_HEADER, udp_payload(c, slot, seq),
                                  opt.size - UDP_HEADER) != 0)
            die("echo check failed: reply differs from request (client %u, sequence %llu)",
                c->index, (unsigned long long)seq);
        double t = now();
        *last_reply = t;
        struct uslot *s = &c->slots[slot];
        if (!s->active || s->seq != seq) {
            /* Not the datagram in flight: it must be one counted lost. */
            unsigned k;
            for (k = 0; k < LOST_RING && c->lost[k] != seq; k++)
                ;
            if (k == LOST_RING)
                die("echo check failed: client %u received a second echo of datagram %llu",
                    c->index, (unsigned long long)seq);
            c->lost[k] = UINT64_MAX;
            ucount.late++;
            continue;
        }
        ucount.completed++;
        s->active = 0;
        if (sending)
            udp_send(c, slot, t);
    }
}

static int udp_in_flight(void)
{
    int n = 0;
    for (int i = 0; i < opt.conc; i++)
        for (int j = 0; j < opt.window; j++)
            n += uclients[i].slots[j].active;
    return n;
}

/* Slots waiting longer than the loss timeout: count a loss, and resend
 * (`sending`) or give up on the slot. */
static void udp_expire(double t, int sending)
{
    for (int i = 0; i < opt.conc; i++) {
        struct uclient *c = &uclients[i];
        for (int j = 0; j < opt.window; j++) {
            struct uslot *s = &c->slots[j];
            if (s->active && t - s->sent_at >= opt.loss_timeout) {
                ucount.lost++;
                s->active = 0;
                c->lost[c->lost_next++ % LOST_RING] = s->seq;
                if (sending)
                    udp_send(c, (uint32_t)j, t);
            }
        }
    }
}

static void run_udp(void)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)opt.port);
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1)
        die("bad --host %s (an IPv4 address)", opt.host);
    if (opt.size < UDP_HEADER || opt.size > 65507)
        die("--udp needs --size between %d and 65507", UDP_HEADER);

    uclients = calloc((size_t)opt.conc, sizeof *uclients);
    udp_buf = malloc(opt.size);
    udp_in = malloc(opt.size + 1);
    if (!uclients || !udp_buf || !udp_in)
        die("out of memory");
    for (int i = 0; i < opt.conc; i++) {
        struct uclient *c = &uclients[i];
        c->index = (uint32_t)i;
        for (int k = 0; k < LOST_RING; k++)
            c->lost[k] = UINT64_MAX;
        c->slots = calloc((size_t)opt.window, sizeof *c->slots);
        if (!c->slots)
            die("out of memory");
        c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->fd < 0)
            die("socket: %s", strerror(errno));
        /* Room for every echo in flight; capped by net.core.rmem_max. */
        int rcvbuf = 4 * 1024 * 1024;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }

    struct epoll_event events[MAX_EVENTS];
    struct snap a, b;
    double start = now();
    double t0 = start + opt.warmup, t1 = t0 + opt.duration;
    double last_reply = start, last_expire = start;
    /* Check for lost datagrams a few times per timeout. */
    int tick_ms = (int)(opt.loss_timeout * 1000 / 4);
    if (tick_ms < 1)
        tick_ms = 1;
    int phase = 0;                      /* 0 warm-up, 1 measured, 2 drain */
    long done = 0, lost = 0, late = 0, eagain = 0;

    check_bytes = 1;                    /* the warm-up's echoes are always checked */
    if (opt.warmup <= 0) {
        phase = 1;
        check_bytes = opt.verify;
        take_snap(&a);
        t1 = a.t + opt.duration;
    }
    for (int i = 0; i < opt.conc; i++)
        for (int j = 0; j < opt.window; j++)
            udp_send(&uclients[i], (uint32_t)j, start);

    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, tick_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++)
            udp_receive(events[i].data.ptr, phase < 2, &last_reply);
        double t = now();
        if (t - last_expire >= tick_ms * 1e-3) {
            udp_expire(t, phase < 2);
            last_expire = t;
        }
        if (phase < 2 && t - last_reply > STALL_MS / 1000.0)
            die("no echo for %d s: the server makes no progress", STALL_MS / 1000);
        if (phase == 0 && t >= t0) {
            take_snap(&a);
            check_bytes = opt.verify;
            memset(&ucount, 0, sizeof ucount);
            t1 = a.t + opt.duration;
            phase = 1;
        } else if (phase == 1 && t >= t1) {
            take_snap(&b);
            done = ucount.completed;
            lost = ucount.lost;
            late = ucount.late;
            eagain = ucount.send_eagain;
            phase = 2;
            check_bytes = 1;
        }
        if (phase == 2) {
            /* Drain: give every datagram in flight its loss timeout. */
            udp_expire(t, 0);
            if (udp_in_flight() == 0)
                break;
        }
    }
    for (int i = 0; i < opt.conc; i++)
        close(uclients[i].fd);

    print_result(done, &a, &b);
    printf("\"transport\": \"udp\", \"window\": %d, \"lost\": %ld, \"late\": %ld, "
           "\"send_eagain\": %ld, \"loss_timeout\": %.3f}\n",
           opt.window, lost, late, eagain, opt.loss_timeout);
}

static void usage(FILE *f)
{
    fputs("usage: echo_load (--port P [--host 127.0.0.1] | --unix PATH) [--size N] [--conc N]\n"
          "                 [--duration S | --count N] [--warmup S] [--cpu N]\n"
          "                 [--no-verify] [--server-pid PID] [--server-cpu N]\n"
          "                 [--tls [--tls-ca CAFILE]] [--latency]\n"
          "       echo_load --udp --port P [--host 127.0.0.1] [--size N] [--conc N]\n"
          "                 [--window N] [--loss-timeout MS] [--duration S] [--warmup S] ...\n",
          f);
}

static double parse_double(const char *s, const char *name)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0)
        die("bad %s: %s", name, s);
    return v;
}

static long parse_long(const char *s, const char *name)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0)
        die("bad %s: %s", name, s);
    return v;
}

/* One connected stream socket (TCP or Unix), non-blocking, in the epoll set. */
static int stream_connect(struct conn *c)
{
    int fd;
    if (opt.unix_path) {
        struct sockaddr_un addr;
        memset(&addr, 0, sizeof addr);
        addr.sun_family = AF_UNIX;
        if (strlen(opt.unix_path) >= sizeof addr.sun_path)
            die("--unix path too long: %s", opt.unix_path);
        strcpy(addr.sun_path, opt.unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect to %s: %s", opt.unix_path, strerror(errno));
    } else {
        struct sockaddr_in addr;
        memset(&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_port = htons((unsigned short)opt.port);
        if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1)
            die("bad --host %s (an IPv4 address)", opt.host);
        /* Blocking connect, then non-blocking for the exchanges. */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            die("setsockopt TCP_NODELAY: %s", strerror(errno));
    }
    if (opt.tls)
        c->ssl = tls_handshake(fd);     /* blocking, before any timing */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl O_NONBLOCK: %s", strerror(errno));
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    return fd;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"unix", required_argument, 0, 'U'},
        {"udp", no_argument, 0, 'D'},
        {"window", required_argument, 0, 'W'},
        {"loss-timeout", required_argument, 0, 'L'},
        {"size", required_argument, 0, 's'},
        {"conc", required_argument, 0, 'c'},
        {"duration", required_argument, 0, 'd'},
        {"count", required_argument, 0, 'n'},
        {"warmup", required_argument, 0, 'w'},
        {"cpu", required_argument, 0, 'C'},
        {"no-verify", no_argument, 0, 'V'},
        {"server-pid", required_argument, 0, 'P'},
        {"server-cpu", required_argument, 0, 'S'},
        {"tls", no_argument, 0, 'T'},
        {"tls-ca", required_argument, 0, 'A'},
        {"latency", no_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = (int)parse_long(optarg, "--port"); break;
        case 'U': opt.unix_path = optarg; break;
        case 'D': opt.udp = 1; break;
        case 'W': opt.window = (int)parse_long(optarg, "--window"); break;
        case 'L': opt.loss_timeout = parse_double(optarg, "--loss-timeout") / 1000.0; break;
        case 's': opt.size = (size_t)parse_long(optarg, "--size"); break;
        case 'c': opt.conc = (int)parse_long(optarg, "--conc"); break;
        case 'd': opt.duration = parse_double(optarg, "--duration"); break;
        case 'n': opt.count = parse_long(optarg, "--count"); break;
        case 'w': opt.warmup = parse_double(optarg, "--warmup"); break;
        case 'C': opt.cpu = (int)parse_long(optarg, "--cpu"); break;
        case 'V': opt.verify = 0; break;
        case 'P': opt.server_pid = parse_long(optarg, "--server-pid"); break;
        case 'S': opt.server_cpu = (int)parse_long(optarg, "--server-cpu"); break;
        case 'T': opt.tls = 1; break;
        case 'A': opt.tls_ca = optarg; break;
        case 'l': opt.latency = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int port_ok = opt.port > 0 && opt.port <= 65535;
    if (optind != argc || opt.size == 0 || opt.conc <= 0 || opt.window <= 0
            || (opt.unix_path ? opt.port != 0 || opt.udp : !port_ok)
            || (opt.udp && (opt.count >= 0 || opt.loss_timeout <= 0 || opt.tls))
            || (opt.tls_ca && !opt.tls) || (opt.latency && opt.udp)) {
        usage(stderr);
        return 2;
    }

    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        sched_setaffinity(0, sizeof set, &set);     /* best effort, as in echo_client.py */
    }

    /* The requests: windows of the byte pattern of echo_client.py. */
    pattern = malloc(opt.size + 256);
    scratch_size = opt.size < SCRATCH_SIZE ? opt.size : SCRATCH_SIZE;
    scratch = malloc(scratch_size);
    conns = calloc((size_t)opt.conc, sizeof *conns);
    if (!pattern || !scratch || !conns)
        die("out of memory");
    for (size_t i = 0; i < opt.size + 256; i++)
        pattern[i] = (unsigned char)((i * 7 + 13) & 0xFF);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    if (opt.udp) {
        run_udp();
        close(epfd);
        return 0;
    }
    if (opt.tls)
        tls_init();
    for (int i = 0; i < opt.conc; i++)
        conns[i].fd = stream_connect(&conns[i]);

    /* Warm-up: uncounted round trips. */
    if (opt.warmup > 0)
        run_phase(now() + opt.warmup, -1);

    check_bytes = opt.verify;
    lat_on = opt.latency;
    struct snap a, b;
    take_snap(&a);
    long done = opt.count >= 0 ? run_phase(0, opt.count) : run_phase(a.t + opt.duration, -1);
    take_snap(&b);

    char tls_info[256] = "";
#ifdef ECHO_TLS
    if (opt.tls) {
        /* What was negotiated (every connection has the same context, and
         * the same server: the first one speaks for all, but check). */
        const char *version = SSL_get_version(conns[0].ssl);
        const char *cipher = SSL_get_cipher_name(conns[0].ssl);
        for (int i = 1; i < opt.conc; i++)
            if (strcmp(SSL_get_cipher_name(conns[i].ssl), cipher) != 0)
                die("connections negotiated different ciphers: %s and %s",
                    cipher, SSL_get_cipher_name(conns[i].ssl));
        snprintf(tls_info, sizeof tls_info,
                 ", \"tls\": true, \"tls_version\": \"%s\", \"tls_cipher\": \"%s\", "
                 "\"tls_library\": \"%s\"", version, cipher, OpenSSL_version(OPENSSL_VERSION));
    }
#endif
    for (int i = 0; i < opt.conc; i++) {
        tls_close(&conns[i]);
        close(conns[i].fd);
    }
    close(epfd);

    print_result(done, &a, &b);
    if (opt.latency)
        print_latency();
    printf("\"transport\": \"%s\"%s}\n", opt.unix_path ? "unix" : "tcp", tls_info);
    return 0;
}
