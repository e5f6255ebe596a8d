#!/usr/bin/env python3
"""Load generator of the echo benchmark (benchmarks/echo.py, benchmarks/syscalls.py).

Plain non-blocking sockets and one `selectors` loop in one thread: no
asyncio, no thread switches, so the client stays cheap next to the server
it measures. Each of --conc connections does request/response round trips:
it sends --size bytes, waits until --size bytes came back (and checks them),
then sends the next request.

    python benchmarks/echo_client.py --port P --size 1024 --conc 16 --duration 2
    python benchmarks/echo_client.py --port P --size 1024 --count 2000   # exactly 2000 exchanges
    python benchmarks/echo_client.py --unix PATH --size 1024 --conc 16    # a Unix stream socket
    python benchmarks/echo_client.py --tls --tls-ca cert.pem --port P      # TLS (1.3) over TCP

With --tls, each connection is an ssl.SSLSocket: the handshake is done,
blocking, when the connection is made (before the warm-up and the timing);
then the socket is non-blocking, SSLWantReadError/SSLWantWriteError mean
"wait", and after each read whatever OpenSSL still holds (pending()) is read
too, since the selector does not see it. The JSON line then also says which
protocol version and cipher were negotiated.

It prints one JSON line: requests, seconds, requests/s, MiB/s (payload echoed
per second, one direction), and the share of the time the client was on the
CPU (close to 1.0 would mean the client, not the server, is the limit); with
--cpu (and --server-cpu) also how busy that core was (see echo_load.c, the C
generator echo.py uses by default; this one is its fallback).
"""

import argparse
import json
import os
import selectors
import socket
import ssl
import sys
import time


def core_ticks(cpu):
    """The CPU-time counters of core `cpu` (psutil.cpu_times), or None
    (no such core, or no psutil)."""
    if cpu is None:
        return None
    try:
        import psutil
        return psutil.cpu_times(percpu=True)[cpu]
    except (ImportError, IndexError):
        return None


def core_share(before, after):
    """(busy share, softirq share) of a core between two core_ticks()."""
    if before is None or after is None:
        return None, None
    # guest time is already in user time (as in /proc/stat): the first 8
    # fields (user .. steal) add up to the whole.
    total = sum(tuple(after)[:8]) - sum(tuple(before)[:8])
    if total <= 0:
        return None, None
    idle = (after.idle - before.idle) + (getattr(after, 'iowait', 0) - getattr(before, 'iowait', 0))
    softirq = getattr(after, 'softirq', 0) - getattr(before, 'softirq', 0)
    return 1 - idle / total, softirq / total


class Conn:
    __slots__ = ('sock', 'sent', 'got', 'buf', 'view')

    def __init__(self, sock, size):
        self.sock = sock
        self.sent = 0
        self.got = 0
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)


def client_ssl_context(ca_file=None):
    """TLS 1.3 only, default cipher suites; the server's certificate checked
    against ca_file (and the address), or not checked without one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if ca_file is not None:
        ctx.load_verify_locations(ca_file)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# What a non-blocking socket raises when it has to wait.
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def run(port, size, conc, duration=None, count=None, warmup=0.0, cpu=None, server_cpu=None,
        unix_path=None, tls=False, tls_ca=None):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError):
            pass
    payload = bytes((i * 7 + 13) & 0xFF for i in range(size))
    out = memoryview(payload)
    sel = selectors.DefaultSelector()
    ctx = client_ssl_context(tls_ca) if tls else None
    conns = []
    for _ in range(conc):
        if unix_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(unix_path)
            except OSError:
                s.close()
                raise
        else:
            s = socket.create_connection(('127.0.0.1', port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx is not None:
            # The handshake, blocking, now: not in any timing.
            host = None if unix_path is not None or tls_ca is None else '127.0.0.1'
            try:
                s = ctx.wrap_socket(s, server_hostname=host)
            except BaseException:
                s.close()
                raise
        s.setblocking(False)
        conns.append(Conn(s, size))

    # Phases: warm-up (not counted), then the measured phase: for `duration`
    # seconds, or until `count` exchanges have completed.

    def start_request(c):
        c.sent = 0
        c.got = 0
        try:
            c.sent = c.sock.send(out)
        except WOULD_BLOCK:
            pass
        if c.sent < size:
            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def run_phase(deadline, remaining):
        """Round trips until the deadline (or `remaining` exchanges started);
        returns the number completed. Every connection finishes its
        exchange in flight, so the server is idle at the end."""
        completed = 0
        started = 0
        active = 0
        for c in conns:
            if remaining is not None and started >= remaining:
                break
            sel.register(c.sock, selectors.EVENT_READ, c)
            start_request(c)
            started += 1
            active += 1
        perf = time.perf_counter
        select = sel.select
        while active:
            for key, mask in select():
                c = key.data
                if mask & selectors.EVENT_WRITE and c.sent < size:
                    try:
                        c.sent += c.sock.send(out[c.sent:])
                    except WOULD_BLOCK:
                        pass
                    if c.sent >= size:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if mask & selectors.EVENT_READ:
                    try:
                        n = c.sock.recv_into(c.view[c.got:])
                        # TLS: bytes OpenSSL has decrypted but not handed out
                        # yet are invisible to the selector.
                        while tls and c.got + n < size and c.sock.pending():
                            n += c.sock.recv_into(c.view[c.got + n:])
                    except WOULD_BLOCK:
                        continue
                    if not n:
                        raise ConnectionError('server closed the connection')
                    c.got += n
                    if c.got >= size:
                        if c.buf != payload:
                            raise AssertionError('echo check failed: reply differs from request')
                        completed += 1
                        more = (perf() < deadline) if remaining is None else (started < remaining)
                        if more:
                            started += 1
                            start_request(c)
                        else:
                            sel.unregister(c.sock)
                            active -= 1
        return completed

    if warmup > 0:
        run_phase(time.perf_counter() + warmup, None)
    cores0 = core_ticks(cpu), core_ticks(server_cpu)
    c0 = time.process_time()
    t0 = time.perf_counter()
    if count is not None:
        done = run_phase(float('inf'), count)
    else:
        done = run_phase(t0 + duration, None)
    wall = time.perf_counter() - t0
    cpu_used = time.process_time() - c0
    client_core = core_share(cores0[0], core_ticks(cpu))
    server_core = core_share(cores0[1], core_ticks(server_cpu))
    extra = {}
    if tls:
        extra = {'tls': True, 'tls_version': conns[0].sock.version(),
                 'tls_cipher': conns[0].sock.cipher()[0], 'tls_library': ssl.OPENSSL_VERSION}
    for c in conns:
        c.sock.close()
    return {**extra, 'requests': done, 'seconds': wall, 'req_per_sec': done / wall,
            'mib_per_sec': done * size / wall / 2**20, 'client_cpu_share': cpu_used / wall,
            'client_core_busy': client_core[0], 'client_core_softirq': client_core[1],
            'server_core_busy': server_core[0], 'server_core_softirq': server_core[1],
            'size': size, 'conc': conc, 'client': 'py',
            'transport': 'tcp' if unix_path is None else 'unix'}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument('--port', type=int, help='TCP port on 127.0.0.1')
    where.add_argument('--unix', metavar='PATH', help='a Unix stream socket instead of TCP')
    p.add_argument('--size', type=int, default=1024)
    p.add_argument('--conc', type=int, default=1)
    p.add_argument('--duration', type=float, default=2.0)
    p.add_argument('--count', type=int, default=None,
                   help='exactly this many exchanges instead of --duration')
    p.add_argument('--warmup', type=float, default=0.0, help='seconds of uncounted round trips first')
    p.add_argument('--cpu', type=int, default=None, help='pin this process to that CPU')
    p.add_argument('--server-cpu', type=int, default=None,
                   help="also report how busy the server's CPU was")
    p.add_argument('--tls', action='store_true', help='TLS 1.3 over each connection')
    p.add_argument('--tls-ca', metavar='CAFILE', default=None,
                   help="--tls: check the server's certificate against this file")
    a = p.parse_args(argv)
    if a.tls_ca is not None and not a.tls:
        p.error('--tls-ca needs --tls')
    print(json.dumps(run(a.port, a.size, a.conc, a.duration, a.count, a.warmup, a.cpu,
                         a.server_cpu, a.unix, a.tls, a.tls_ca)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
