#!/usr/bin/env python3
"""Sendfile benchmark: loop.sendfile() / loop.sock_sendfile() throughput on
asyncio, uvloop and ourloop.

    python benchmarks/sendfile.py              # 5 repetitions, 512 MiB file
    python benchmarks/sendfile.py --quick      # 1 repetition, 64 MiB: seconds
    python benchmarks/sendfile.py --only sendfile --loops asyncio,ourloop --json out.json

Workloads (each checks the byte count the receiver got):

* sendfile          -- loop.sendfile(transport, file) on a TCP transport
                       (create_connection over 127.0.0.1): sendfile(2) on
                       the stdlib's and ourloop's transports.
* sendfile_fallback -- the same with loop._sendfile_native made to raise
                       SendfileNotAvailableError: the read-and-write fallback
                       that TLS transports use (16 KiB reads in the default
                       executor, transport.write()).
* sock_sendfile     -- loop.sock_sendfile(sock, file) on a connected
                       non-blocking TCP socket.

The receiver is a separate process (pinned to CPU 1 when there are two
CPUs; the sender is pinned to CPU 0) that reads with 1 MiB recv_into()
calls and reports the byte count, so the loop under test only sends. The
file is in the page cache (written once, read once before timing). One fresh
worker subprocess per (loop, workload, repetition); the timing covers the
sendfile call only (connection set up before). MiB/s, median of the
repetitions and the spread. A loop without the method (uvloop has no
loop.sendfile) shows n/a.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOOPS = ('asyncio', 'uvloop', 'ourloop')
WORKLOADS = ('sendfile', 'sendfile_fallback', 'sock_sendfile')

RECEIVER = r'''
import os, socket, sys
if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
    os.sched_setaffinity(0, {1})
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(1)
print(lsock.getsockname()[1], flush=True)
conn, _ = lsock.accept()
buf = bytearray(1 << 20)
total = 0
while True:
    n = conn.recv_into(buf)
    if not n:
        break
    total += n
print(total, flush=True)
'''


def make_loop(name):
    import asyncio
    if name == 'asyncio':
        return asyncio.SelectorEventLoop()
    if name == 'uvloop':
        import uvloop
        return uvloop.new_event_loop()
    sys.path.insert(0, ROOT)
    import ourloop
    return ourloop.new_event_loop()


def worker(loop_name, workload, path):
    """One measurement: MiB/s, printed as JSON."""
    import asyncio
    import socket
    if hasattr(os, 'sched_setaffinity') and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    try:
        loop = make_loop(loop_name)
    except ImportError as exc:
        print(json.dumps({'n/a': str(exc)}))
        return
    size = os.path.getsize(path)
    with open(path, 'rb') as f:   # into the page cache
        while f.read(1 << 24):
            pass
    recv = subprocess.Popen([sys.executable, '-c', RECEIVER],
                            stdout=subprocess.PIPE, text=True)
    port = int(recv.stdout.readline())

    async def main():
        if workload == 'sock_sendfile':
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ('127.0.0.1', port))
            with open(path, 'rb') as f:
                t0 = time.perf_counter()
                sent = await loop.sock_sendfile(sock, f)
                elapsed = time.perf_counter() - t0
            sock.close()
            return sent, elapsed
        if workload == 'sendfile_fallback':
            async def not_available(*args):
                raise asyncio.SendfileNotAvailableError('forced fallback')
            loop._sendfile_native = not_available
        transport, _ = await loop.create_connection(
            asyncio.Protocol, '127.0.0.1', port)
        with open(path, 'rb') as f:
            t0 = time.perf_counter()
            sent = await loop.sendfile(transport, f)
            elapsed = time.perf_counter() - t0
        transport.close()
        await asyncio.sleep(0)
        return sent, elapsed

    try:
        sent, elapsed = loop.run_until_complete(main())
    except (NotImplementedError, AttributeError) as exc:
        recv.kill()
        recv.wait()
        print(json.dumps({'n/a': f'{type(exc).__name__}: {exc}'}))
        return
    finally:
        loop.close()
    got = int(recv.stdout.readline())
    recv.wait()
    if sent != size or got != size:
        raise SystemExit(f'{loop_name} {workload}: sent {sent}, received '
                         f'{got}, file {size}')
    print(json.dumps({'mib_s': size / elapsed / (1 << 20)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--only', default=','.join(WORKLOADS))
    ap.add_argument('--loops', default=','.join(LOOPS))
    ap.add_argument('--json')
    ap.add_argument('--worker', nargs=3, metavar=('LOOP', 'WORKLOAD', 'FILE'))
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    reps = args.reps or (1 if args.quick else 5)
    size = (64 if args.quick else 512) << 20
    loops = args.loops.split(',')
    workloads = args.only.split(',')
    results = {}
    with tempfile.TemporaryDirectory(prefix='ol-bench-sendfile-') as tmp:
        path = os.path.join(tmp, 'data.bin')
        with open(path, 'wb') as f:
            chunk = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
        for workload in workloads:
            for rep in range(reps):
                # Rotate the order of the loops from repetition to repetition.
                order = loops[rep % len(loops):] + loops[:rep % len(loops)]
                for name in order:
                    out = subprocess.run(
                        [sys.executable, __file__, '--worker', name, workload, path],
                        capture_output=True, text=True, check=True).stdout
                    results.setdefault(workload, {}).setdefault(name, []).append(
                        json.loads(out.strip().splitlines()[-1]))
    print(f'sendfile benchmark: {size >> 20} MiB file over TCP 127.0.0.1, '
          f'{reps} repetition(s), Python {sys.version.split()[0]}')
    print(f"{'workload':20}" + ''.join(f'{name:>22}' for name in loops))
    summary = {}
    for workload in workloads:
        row = f'{workload:20}'
        for name in loops:
            samples = results[workload][name]
            if any('n/a' in s for s in samples):
                row += f"{'n/a':>22}"
                continue
            values = [s['mib_s'] for s in samples]
            med = statistics.median(values)
            spread = (max(values) - min(values)) / med * 100 if med else 0
            summary.setdefault(workload, {})[name] = {'median_mib_s': med,
                                                      'samples': values}
            row += f'{med:>13.0f} MiB/s ±{spread:3.0f}%'
        print(row)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'size': size, 'reps': reps, 'python': sys.version,
                       'results': summary}, f, indent=1)


if __name__ == '__main__':
    main()
