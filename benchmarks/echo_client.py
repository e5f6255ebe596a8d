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
import sys
import time


def core_ticks(cpu):
    """The tick counters of core `cpu` from /proc/stat, or None."""
    if cpu is None:
        return None
    try:
        with open('/proc/stat') as f:
            for line in f:
                if line.startswith(f'cpu{cpu} '):
                    return [int(x) for x in line.split()[1:9]]
    except OSError:
        pass
    return None


def core_share(before, after):
    """(busy share, softirq share) of a core between two core_ticks()."""
    if before is None or after is None:
        return None, None
    d = [b - a for a, b in zip(before, after)]
    total = sum(d)
    if total <= 0:
        return None, None
    return 1 - (d[3] + d[4]) / total, d[6] / total


class Conn:
    __slots__ = ('sock', 'sent', 'got', 'buf', 'view')

    def __init__(self, sock, size):
        self.sock = sock
        self.sent = 0
        self.got = 0
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)


def run(port, size, conc, duration=None, count=None, warmup=0.0, cpu=None, server_cpu=None,
        unix_path=None):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError):
            pass
    payload = bytes((i * 7 + 13) & 0xFF for i in range(size))
    out = memoryview(payload)
    sel = selectors.DefaultSelector()
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
        s.setblocking(False)
        conns.append(Conn(s, size))

    # Phases: warm-up (not counted), then the measured phase: for `duration`
    # seconds, or until `count` exchanges have completed.
    state = {'done': 0, 'stop': False, 'deadline': None, 'remaining': None}

    def start_request(c):
        c.sent = 0
        c.got = 0
        try:
            c.sent = c.sock.send(out)
        except BlockingIOError:
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
                    except BlockingIOError:
                        pass
                    if c.sent >= size:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if mask & selectors.EVENT_READ:
                    try:
                        n = c.sock.recv_into(c.view[c.got:])
                    except BlockingIOError:
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
    for c in conns:
        c.sock.close()
    return {'requests': done, 'seconds': wall, 'req_per_sec': done / wall,
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
    a = p.parse_args(argv)
    print(json.dumps(run(a.port, a.size, a.conc, a.duration, a.count, a.warmup, a.cpu,
                         a.server_cpu, a.unix)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
