/*
 * The reference ceiling of the echo benchmarks (benchmarks/ceiling.py,
 * latency.py): an echo server written directly on libuv, in C, with no
 * Python anywhere. What it reaches with the same load generator
 * (echo_load.c) on the same machine is what libuv itself can do; the
 * ratio of a loop's rate to it shows how much the Python layer costs.
 *
 *   uv_echo --port 0 [--cpu N]         # TCP on 127.0.0.1; prints "PORT <n>"
 *   uv_echo --unix PATH [--cpu N]      # a Unix stream socket; prints "PATH <path>"
 *   uv_echo --version                  # prints the libuv version it runs on
 *
 * It serves until its standard input closes (as echo.py's servers do), then
 * closes every handle and exits 0.
 *
 * The echo path is what an asyncio Protocol server does on a libuv loop,
 * minus Python: one read buffer (256 KiB) for all connections; in the read
 * callback the bytes go straight back with uv_try_write(); what the socket
 * does not take at once is copied and queued with uv_write(), and reading
 * stops until the queue has drained (the flow control of a transport whose
 * protocol pauses reading). Accepted TCP connections get TCP_NODELAY, as
 * asyncio's do. Backlog 128, as in echo.py.
 *
 * Built on demand by ceiling.py against the libuv ourloop uses (the
 * vendored tree if checked out, else pkg-config libuv). Linux and macOS.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define READ_BUF (256 * 1024)

static uv_loop_t *loop;
static uv_stream_t *server;
static uv_poll_t stdin_watch;
static char read_buf[READ_BUF];
static int buf_in_use;
static const char *unix_path;

struct write_req {
    uv_write_t req;
    uv_buf_t buf;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "uv_echo: %s: %s\n", what, err ? uv_strerror(err) : strerror(errno));
    exit(1);
}

static void on_close_free(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* One buffer serves every connection: a read callback consumes it
     * before the next read, copying what it cannot write at once. */
    if (buf_in_use) {
        buf->base = malloc(READ_BUF);
        buf->len = buf->base ? READ_BUF : 0;
        return;
    }
    buf_in_use = 1;
    buf->base = read_buf;
    buf->len = READ_BUF;
}

static void release(const uv_buf_t *buf)
{
    if (buf->base == read_buf)
        buf_in_use = 0;
    else
        free(buf->base);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    uv_stream_t *s = req->handle;
    free(w->buf.base);
    free(w);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close_free);
        return;
    }
    if (uv_stream_get_write_queue_size(s) == 0 && !uv_is_closing((uv_handle_t *)s))
        uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        release(buf);
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close_free);
        return;
    }
    if (n == 0) {
        release(buf);
        return;
    }
    size_t done = 0;
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        int r = uv_try_write(s, &b, 1);
        if (r > 0)
            done = (size_t)r;
        else if (r != UV_EAGAIN && r != UV_ENOSYS) {
            release(buf);
            uv_close((uv_handle_t *)s, on_close_free);
            return;
        }
    }
    if (done < (size_t)n) {
        struct write_req *w = malloc(sizeof *w);
        char *copy = malloc((size_t)n - done);
        if (!w || !copy) {
            fprintf(stderr, "uv_echo: out of memory\n");
            exit(1);
        }
        memcpy(copy, buf->base + done, (size_t)n - done);
        w->buf = uv_buf_init(copy, (unsigned)((size_t)n - done));
        int r = uv_write(&w->req, s, &w->buf, 1, on_write);
        if (r < 0) {
            free(copy);
            free(w);
            release(buf);
            uv_close((uv_handle_t *)s, on_close_free);
            return;
        }
        uv_read_stop(s);        /* until the queue drains (on_write) */
    }
    release(buf);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    uv_stream_t *client;
    int r;
    if (unix_path) {
        uv_pipe_t *p = malloc(sizeof *p);
        if (!p || (r = uv_pipe_init(loop, p, 0)) < 0)
            die("uv_pipe_init", p ? r : 0);
        client = (uv_stream_t *)p;
    } else {
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t || (r = uv_tcp_init(loop, t)) < 0)
            die("uv_tcp_init", t ? r : 0);
        client = (uv_stream_t *)t;
    }
    if ((r = uv_accept(srv, client)) < 0) {
        uv_close((uv_handle_t *)client, on_close_free);
        return;
    }
    if (!unix_path)
        uv_tcp_nodelay((uv_tcp_t *)client, 1);
    uv_read_start(client, on_alloc, on_read);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    /* The listener and the stdin watcher are static; connections are not. */
    uv_close(h, (h == (uv_handle_t *)server || h == (uv_handle_t *)&stdin_watch)
                    ? NULL : on_close_free);
}

static void on_stdin(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)events;
    char tmp[256];
    ssize_t r = status < 0 ? 0 : read(0, tmp, sizeof tmp);
    if (r > 0 || (r < 0 && errno == EINTR))
        return;
    uv_walk(loop, close_walk, NULL);    /* EOF (or an error): stop serving */
}

int main(int argc, char **argv)
{
    static uv_tcp_t tcp;
    static uv_pipe_t pipe_srv;
    int port = -1, cpu = -1, r;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version")) {
            printf("%s\n", uv_version_string());
            return 0;
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--unix") && i + 1 < argc) {
            unix_path = argv[++i];
        } else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
            cpu = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: uv_echo (--port 0 | --unix PATH) [--cpu N] | --version\n");
            return 2;
        }
    }
    if ((port < 0) == (unix_path == NULL)) {
        fprintf(stderr, "usage: uv_echo (--port 0 | --unix PATH) [--cpu N] | --version\n");
        return 2;
    }
#ifdef __linux__
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);     /* best effort */
    }
#endif
    loop = uv_default_loop();
    if (unix_path) {
        if ((r = uv_pipe_init(loop, &pipe_srv, 0)) < 0)
            die("uv_pipe_init", r);
        if ((r = uv_pipe_bind(&pipe_srv, unix_path)) < 0)
            die("uv_pipe_bind", r);
        server = (uv_stream_t *)&pipe_srv;
    } else {
        struct sockaddr_in addr;
        if ((r = uv_tcp_init(loop, &tcp)) < 0)
            die("uv_tcp_init", r);
        uv_ip4_addr("127.0.0.1", port, &addr);
        if ((r = uv_tcp_bind(&tcp, (const struct sockaddr *)&addr, 0)) < 0)
            die("uv_tcp_bind", r);
        server = (uv_stream_t *)&tcp;
    }
    if ((r = uv_listen(server, 128, on_connection)) < 0)
        die("uv_listen", r);
    if ((r = uv_poll_init(loop, &stdin_watch, 0)) < 0)
        die("uv_poll_init(stdin)", r);
    uv_poll_start(&stdin_watch, UV_READABLE | UV_DISCONNECT, on_stdin);

    if (unix_path) {
        printf("PATH %s\n", unix_path);
    } else {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if ((r = uv_tcp_getsockname(&tcp, (struct sockaddr *)&ss, &len)) < 0)
            die("uv_tcp_getsockname", r);
        printf("PORT %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    r = uv_loop_close(loop);
    if (unix_path)
        unlink(unix_path);
    return r == 0 ? 0 : 1;
}
