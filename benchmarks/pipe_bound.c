/*
 * The bound of subprocess_pipe.py's read and write workloads for any
 * parent: a C parent (pinned to CPU 0) and benchmarks/pipe_child (CPU 1)
 * over a real pipe or a socketpair, 256 KiB read()/write() calls.
 *
 *   cc -O2 -o pipe_bound benchmarks/pipe_bound.c
 *   pipe_bound CHILD read|write BYTES PIPESIZE pipe|socket
 *
 * read: the child writes BYTES, the parent reads them; write: the other
 * way. PIPESIZE: F_SETPIPE_SZ of the pipe (0: the kernel's 64 KiB).
 * Prints MiB/s, CPU milliseconds per MiB of the parent and the child
 * (getrusage) and their voluntary context switches per MiB. Linux only.
 * See docs/performance.md, "Subprocess pipes".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }
int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: pipe_bound CHILD read|write BYTES PIPESIZE pipe|socket\n");
        return 2;
    }
    const char *child = argv[1], *mode = argv[2];
    long long total = atoll(argv[3]);
    int psize = atoi(argv[4]);
    int sock = strcmp(argv[5], "socket") == 0;
    int fds[2];
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(0, &set); sched_setaffinity(0, sizeof set, &set);
    int parent_reads = strcmp(mode, "read") == 0;
    if (sock ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds)) {
        perror("pipe");
        return 1;
    }
    if (!sock && psize && fcntl(fds[1], F_SETPIPE_SZ, psize) < 0)
        perror("F_SETPIPE_SZ");
    /* pipe: fds[0] read end, fds[1] write end */
    int mine = parent_reads ? fds[0] : fds[1], theirs = parent_reads ? fds[1] : fds[0];
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(theirs, parent_reads ? 1 : 0); close(fds[0]); close(fds[1]);
        char n[32]; snprintf(n, sizeof n, "%lld", total);
        execl(child, child, "--cpu", "1", parent_reads ? "write" : "read", n, (char *)0);
        _exit(127);
    }
    close(theirs);
    size_t chunk = 256 * 1024;
    unsigned char *buf = malloc(chunk + 256);
    for (size_t k = 0; k < chunk + 256; k++) buf[k] = (unsigned char)((k * 7 + 13) & 0xFF);
    long long done = 0;
    if (parent_reads) {
        unsigned char *r = malloc(chunk); ssize_t n;
        while ((n = read(mine, r, chunk)) > 0) done += n;
    } else {
        while (done < total) { size_t w = total - done < (long long)chunk ? (size_t)(total - done) : chunk;
            ssize_t n = write(mine, buf, w); if (n < 0) { perror("write"); return 1; } done += n; }
    }
    close(mine);
    int st; waitpid(pid, &st, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage s, c; getrusage(RUSAGE_SELF, &s); getrusage(RUSAGE_CHILDREN, &c);
    double mib = total / 1048576.0, wall = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%s %s psize=%d: %.0f MiB/s, parent %.3f / child %.3f ms/MiB, sleeps parent %.2f child %.2f /MiB, exit %d\n",
           mode, argv[5], psize, mib / wall, (tv(s.ru_utime) + tv(s.ru_stime)) * 1e3 / mib,
           (tv(c.ru_utime) + tv(c.ru_stime)) * 1e3 / mib, s.ru_nvcsw / mib, c.ru_nvcsw / mib, st);
    return 0;
}
