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
 * The benchmark builds it on demand: cc -O2 -o benchmarks/.build/... echo_load.c
 * Linux only (epoll, sched_setaffinity, /proc).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <time.h>
#include <unistd.h>

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
} opt = {"127.0.0.1", 0, 1024, 1, 2.0, -1, 0.0, -1, 1, 0, -1};

static int epfd;
static int check_bytes = 1;     /* 0: recv(MSG_TRUNC), lengths only */
static struct conn *conns;
static unsigned char *pattern;  /* size + 256 bytes of the cycle */
static unsigned char *scratch;
static size_t scratch_size;

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

/* One send() of what is left of the request; wait for EPOLLOUT if it did
 * not all go (as echo_client.py does). */
static void send_more(struct conn *c)
{
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
    send_more(c);
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
            if (want > scratch_size && check_bytes)
                want = scratch_size;
            ssize_t r = recv(c->fd, scratch, want, check_bytes ? 0 : MSG_TRUNC);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    continue;
                die("recv: %s", strerror(errno));
            }
            if (r == 0)
                die("server closed a connection (%zu of %zu bytes echoed)", c->got, opt.size);
            if (c->got + (size_t)r > c->sent)
                die("echo check failed: %zu bytes received but only %zu sent",
                    c->got + (size_t)r, c->sent);
            if (check_bytes && memcmp(scratch, c->req + c->got, (size_t)r) != 0)
                die("echo check failed: reply differs from request (bytes %zu..%zu)",
                    c->got, c->got + (size_t)r);
            c->got += (size_t)r;
            if (c->got < opt.size)
                continue;
            completed++;
            int more = remaining < 0 ? now() < deadline : started < remaining;
            if (more) {
                started++;
                start_request(c);
            } else {
                c->active = 0;
                active--;
            }
        }
    }
    return completed;
}

static void usage(FILE *f)
{
    fputs("usage: echo_load --port P [--host 127.0.0.1] [--size N] [--conc N]\n"
          "                 [--duration S | --count N] [--warmup S] [--cpu N]\n"
          "                 [--no-verify] [--server-pid PID] [--server-cpu N]\n", f);
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

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"size", required_argument, 0, 's'},
        {"conc", required_argument, 0, 'c'},
        {"duration", required_argument, 0, 'd'},
        {"count", required_argument, 0, 'n'},
        {"warmup", required_argument, 0, 'w'},
        {"cpu", required_argument, 0, 'C'},
        {"no-verify", no_argument, 0, 'V'},
        {"server-pid", required_argument, 0, 'P'},
        {"server-cpu", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = (int)parse_long(optarg, "--port"); break;
        case 's': opt.size = (size_t)parse_long(optarg, "--size"); break;
        case 'c': opt.conc = (int)parse_long(optarg, "--conc"); break;
        case 'd': opt.duration = parse_double(optarg, "--duration"); break;
        case 'n': opt.count = parse_long(optarg, "--count"); break;
        case 'w': opt.warmup = parse_double(optarg, "--warmup"); break;
        case 'C': opt.cpu = (int)parse_long(optarg, "--cpu"); break;
        case 'V': opt.verify = 0; break;
        case 'P': opt.server_pid = parse_long(optarg, "--server-pid"); break;
        case 'S': opt.server_cpu = (int)parse_long(optarg, "--server-cpu"); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.size == 0 || opt.conc <= 0) {
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

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)opt.port);
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1)
        die("bad --host %s (an IPv4 address)", opt.host);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < opt.conc; i++) {
        struct conn *c = &conns[i];
        /* Blocking connect, then non-blocking for the exchanges. */
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket: %s", strerror(errno));
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
        int one = 1;
        if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            die("setsockopt TCP_NODELAY: %s", strerror(errno));
        int fl = fcntl(c->fd, F_GETFL);
        if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
            die("fcntl O_NONBLOCK: %s", strerror(errno));
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }

    /* Warm-up: uncounted round trips. */
    if (opt.warmup > 0)
        run_phase(now() + opt.warmup, -1);

    check_bytes = opt.verify;
    double u0, s0, u1, s1, srv0 = -1, srv1 = -1;
    unsigned long long cc0[8], cc1[8], sc0[8], sc1[8];
    int cc_ok = opt.cpu >= 0 && core_ticks(opt.cpu, cc0) == 0;
    int sc_ok = opt.server_cpu >= 0 && core_ticks(opt.server_cpu, sc0) == 0;
    if (opt.server_pid > 0)
        srv0 = proc_cpu_seconds(opt.server_pid);
    cpu_times(&u0, &s0);
    double t0 = now();
    long done = opt.count >= 0 ? run_phase(0, opt.count) : run_phase(t0 + opt.duration, -1);
    double wall = now() - t0;
    cpu_times(&u1, &s1);
    if (opt.server_pid > 0)
        srv1 = proc_cpu_seconds(opt.server_pid);
    cc_ok = cc_ok && core_ticks(opt.cpu, cc1) == 0;
    sc_ok = sc_ok && core_ticks(opt.server_cpu, sc1) == 0;
    if (wall <= 0)
        wall = 1e-9;

    for (int i = 0; i < opt.conc; i++)
        close(conns[i].fd);
    close(epfd);

    double user = u1 - u0, sys = s1 - s0;
    printf("{\"requests\": %ld, \"seconds\": %.9f, \"req_per_sec\": %.6f, "
           "\"mib_per_sec\": %.6f, \"client_cpu_share\": %.6f, "
           "\"client_cpu_user\": %.6f, \"client_cpu_sys\": %.6f, ",
           done, wall, done / wall, (double)done * (double)opt.size / wall / 1048576.0,
           (user + sys) / wall, user, sys);
    if (srv0 >= 0 && srv1 >= 0)
        printf("\"server_cpu_share\": %.6f, ", (srv1 - srv0) / wall);
    else
        printf("\"server_cpu_share\": null, ");
    print_core("client_core", cc_ok, cc0, cc1);
    print_core("server_core", sc_ok, sc0, sc1);
    printf("\"size\": %zu, \"conc\": %d, \"verified\": %s, \"client\": \"c\"}\n",
           opt.size, opt.conc, opt.verify ? "true" : "false");
    return 0;
}
