/*
 * Child process of the subprocess pipe benchmark (benchmarks/subprocess_pipe.py).
 *
 *   pipe_child [--cpu N] [--chunk BYTES] write BYTES   # BYTES of the pattern to stdout
 *   pipe_child [--cpu N] [--chunk BYTES] read BYTES    # stdin to EOF, checked, discarded
 *
 * The bytes are the request pattern of the echo benchmark,
 * (i * 7 + 13) & 0xFF for stream offset i (period 256), so the parent can
 * check what it reads, and this child checks what it is sent.
 *
 * write: BYTES to stdout in write() calls of --chunk bytes (default 256 KiB,
 * a multiple of 256 so that every chunk is the same buffer); exit 0.
 * read: read() into a --chunk buffer until EOF; exit 0 only if exactly BYTES
 * arrived and every byte matched, else a message on stderr and exit 1 (the
 * parent checks the exit status).
 *
 * --cpu N pins this process to CPU N (the parent, the event loop measured,
 * is pinned to another CPU). Linux only; built on demand by the benchmark
 * with cc -O2 into benchmarks/.build/.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *msg)
{
    fprintf(stderr, "pipe_child: %s\n", msg);
    exit(1);
}

static long long parse(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0)
        die("bad number");
    return v;
}

int main(int argc, char **argv)
{
    long long chunk = 256 * 1024;
    int cpu = -1, i = 1;
    while (i + 1 < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--cpu") == 0)
            cpu = (int)parse(argv[i + 1]);
        else if (strcmp(argv[i], "--chunk") == 0)
            chunk = parse(argv[i + 1]);
        else
            die("usage: pipe_child [--cpu N] [--chunk BYTES] write|read BYTES");
        i += 2;
    }
    if (argc - i != 2 || chunk <= 0 || chunk % 256 != 0)
        die("usage: pipe_child [--cpu N] [--chunk BYTES (a multiple of 256)] write|read BYTES");
    const char *mode = argv[i];
    long long total = parse(argv[i + 1]);

    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);     /* best effort */
    }
    /* The pattern, chunk + 256 bytes: the bytes at stream offset o are
     * pattern[o % 256 ...]. */
    unsigned char *pattern = malloc((size_t)chunk + 256);
    unsigned char *buf = malloc((size_t)chunk);
    if (!pattern || !buf)
        die("out of memory");
    for (long long k = 0; k < chunk + 256; k++)
        pattern[k] = (unsigned char)((k * 7 + 13) & 0xFF);

    if (strcmp(mode, "write") == 0) {
        long long done = 0;
        while (done < total) {
            /* chunk is a multiple of 256, so done % 256 is 0 until the
             * last, shorter write. */
            size_t want = (size_t)(total - done < chunk ? total - done : chunk);
            ssize_t n = write(1, pattern + done % 256, want);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die(errno == EPIPE ? "write: the reader closed the pipe" : strerror(errno));
            }
            done += n;
        }
        return 0;
    }
    if (strcmp(mode, "read") == 0) {
        long long done = 0;
        for (;;) {
            ssize_t n = read(0, buf, (size_t)chunk);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die(strerror(errno));
            }
            if (n == 0)
                break;
            if (done + n > total)
                die("read: more bytes than expected");
            if (memcmp(buf, pattern + done % 256, (size_t)n) != 0)
                die("read: the bytes differ from the pattern");
            done += n;
        }
        if (done != total) {
            fprintf(stderr, "pipe_child: read %lld bytes instead of %lld\n", done, total);
            return 1;
        }
        return 0;
    }
    die("mode must be write or read");
    return 1;
}
