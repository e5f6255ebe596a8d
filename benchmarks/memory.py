#!/usr/bin/env python3
"""Memory: resident bytes per idle connection and per pending timer, per loop.

    python benchmarks/memory.py                 # 2,000 connections, 100,000 timers, 5 reps
    python benchmarks/memory.py --quick         # 500 connections, 20,000 timers, 1 rep
    python benchmarks/memory.py --only pending_timer --loops ourloop,uvloop
    python benchmarks/memory.py --worker ourloop idle_connection 2000   # one measurement, JSON

Each measurement is a fresh worker process (one per loop, workload and
repetition, interleaved as in run.py) that makes a new loop and warms it
up, then reads its resident set size (psutil, after gc.collect()), adds N
idle objects, lets the loop run, collects garbage and reads the RSS again.
The sample is (RSS after - RSS before) / N:

* idle_connection -- a create_server() Protocol server on 127.0.0.1 that
  keeps each transport; N TCP connections from a helper process (its
  sockets are not in the worker), all accepted, none sending. Warm-up: 20
  connections accepted and closed.
* idle_connection_streams -- the same with asyncio.start_server(): a
  handler task per connection waiting in reader.read().
* pending_timer -- N loop.call_later(3600, cb) from a callback, handles
  dropped (the loop keeps them). Warm-up: 1,000 timers, cancelled.

The kernel's socket memory is not in the RSS, nor in these figures; what
is in them is what the loop and its Python objects keep per connection or
timer (transport, protocol, libuv handle, buffers, the heap entry). RSS
moves in whole pages and pymalloc arenas of 1 MiB (256 KiB before 3.10):
use N large enough that these steps are small against N objects.
"""

import argparse
import asyncio
import datetime
import gc
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import run as bench  # noqa: E402

# name: (full N, quick N, what one object is)
WORKLOADS = {
    'idle_connection': (2000, 500, 'connection'),
    'idle_connection_streams': (2000, 500, 'connection'),
    'pending_timer': (100_000, 20_000, 'timer'),
}

# The helper that holds the client ends of the idle connections. Commands
# on stdin: "open PORT K" connects K more sockets; "close" closes them all;
# each is answered "ok" on stdout. It exits at EOF.
CLIENT_HELPER = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = int(sys.argv[1]) + 64
if soft != resource.RLIM_INFINITY and soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
socks = []
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == 'open':
        for _ in range(int(cmd[2])):
            socks.append(socket.create_connection(('127.0.0.1', int(cmd[1]))))
    elif cmd[0] == 'close':
        for s in socks:
            s.close()
        socks = []
    print('ok', flush=True)
"""


def raise_fd_limit(n):
    """Let this process hold n more descriptors (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            raise RuntimeError(f'{n} connections need {want} descriptors; the hard limit '
                               f'is {hard} (ulimit -n)')


def rss_now():
    import psutil
    gc.collect()
    return psutil.Process().memory_info().rss


class IdleProtocol(asyncio.Protocol):
    def __init__(self, counter):
        self.counter = counter

    def connection_made(self, transport):
        self.transport = transport
        self.counter.made()

    def connection_lost(self, exc):
        self.transport = None
        self.counter.lost()


class Counter:
    """Counts connections made and lost; a future waits for a count."""

    def __init__(self, loop):
        self.loop = loop
        self.open = 0
        self.waiter = None
        self.target = None

    def made(self):
        self.open += 1
        self._check()

    def lost(self):
        self.open -= 1
        self._check()

    def _check(self):
        if self.waiter is not None and not self.waiter.done() and self.open == self.target:
            self.waiter.set_result(None)

    async def wait_for(self, target):
        self.target = target
        self.waiter = self.loop.create_future()
        self._check()
        await asyncio.wait_for(self.waiter, 60)


def measure_connections(loop, n, streams):
    raise_fd_limit(n)
    counter = Counter(loop)

    async def handler(reader, writer):
        counter.made()
        try:
            await reader.read()
        finally:
            writer.close()
            counter.lost()

    async def start():
        if streams:
            return await asyncio.start_server(handler, '127.0.0.1', 0, backlog=1024)
        return await loop.create_server(lambda: IdleProtocol(counter), '127.0.0.1', 0,
                                        backlog=1024)

    server = loop.run_until_complete(start())
    port = server.sockets[0].getsockname()[1]
    helper = subprocess.Popen([sys.executable, '-c', CLIENT_HELPER, str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def command(line, target):
        helper.stdin.write(line + '\n')
        helper.stdin.flush()
        loop.run_until_complete(counter.wait_for(target))
        if helper.stdout.readline().strip() != 'ok':
            raise RuntimeError(f'the client helper failed at {line!r}')
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))

    try:
        command(f'open {port} 20', 20)      # warm-up
        command('close', 0)
        before = rss_now()
        command(f'open {port} {n}', n)
        after = rss_now()
        command('close', 0)
    finally:
        helper.stdin.close()
        helper.wait()
        server.close()
        loop.run_until_complete(server.wait_closed())
    return before, after


def measure_timers(loop, n):
    def noop():
        pass

    async def schedule(k, cancel):
        later = loop.call_later
        if cancel:
            for h in [later(3600, noop) for _ in range(k)]:
                h.cancel()
        else:
            for _ in range(k):
                later(3600, noop)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop.run_until_complete(schedule(1000, True))       # warm-up
    before = rss_now()
    loop.run_until_complete(schedule(n, False))
    after = rss_now()
    return before, after


def worker(loop_name, workload, n):
    new_loop = bench.loop_factory(loop_name)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        if workload == 'pending_timer':
            before, after = measure_timers(loop, n)
        else:
            before, after = measure_connections(loop, n, workload.endswith('streams'))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return {'loop': loop_name, 'workload': workload, 'n': n, 'rss_before': before,
            'rss_after': after, 'bytes_per_object': (after - before) / n,
            'build': bench.build_fingerprint(loop_name)}


def run_worker(loop_name, workload, n, timeout=300):
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', loop_name, workload, str(n)]
    return bench.run_json_worker(cmd, loop_name, timeout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=None,
                   help='repetitions per (loop, workload); default 5, or 1 with --quick')
    p.add_argument('--quick', action='store_true',
                   help='smaller N (500 connections, 20,000 timers), 1 repetition')
    p.add_argument('--only', metavar='NAMES',
                   help='comma-separated workloads: ' + ', '.join(WORKLOADS))
    p.add_argument('--connections', type=int, default=None,
                   help='idle connections per measurement (default 2000, 500 with --quick)')
    p.add_argument('--timers', type=int, default=None,
                   help='pending timers per measurement (default 100000, 20000 with --quick)')
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    p.add_argument('--worker', nargs=3, metavar=('LOOP', 'WORKLOAD', 'N'),
                   help='one measurement in this process, printed as JSON')
    args = p.parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print('memory.py: needs psutil (pip install psutil)', file=sys.stderr)
        return 2
    if args.worker:
        loop_name, workload, n = args.worker
        if workload not in WORKLOADS:
            p.error(f'unknown workload {workload!r}; choose from {", ".join(WORKLOADS)}')
        bench.worker_loop(loop_name, p.error)
        print(json.dumps(worker(loop_name, workload, int(n))))
        return 0
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    workloads = list(WORKLOADS)
    if args.only:
        workloads = [w.strip() for w in args.only.split(',') if w.strip()]
        bad = [w for w in workloads if w not in WORKLOADS]
        if bad:
            p.error(f'unknown workload(s) {", ".join(bad)}; choose from {", ".join(WORKLOADS)}')
    sizes = {}
    for w in workloads:
        full, quick, _ = WORKLOADS[w]
        given = args.timers if w == 'pending_timer' else args.connections
        sizes[w] = given or (quick if args.quick else full)
    loops, missing, versions = bench.select_loops(args.loops, p.error)
    info = bench.machine_info(versions)
    with bench.prepared_loops(loops):
        return _drive(args, reps, workloads, sizes, loops, missing, info)


def _drive(args, reps, workloads, sizes, loops, missing, info):
    samples = {w: {loop: [] for loop in loops} for w in workloads}
    errors = {w: {} for w in workloads}
    load_before = bench._loadavg()
    started = time.monotonic()
    for rep in range(reps):
        for wi, w in enumerate(workloads):
            k = (rep + wi) % len(loops)
            for loop in loops[k:] + loops[:k]:
                result, error = run_worker(loop, w, sizes[w])
                if error:
                    errors[w][loop] = error
                    print(f'  [{rep + 1}/{reps}] {w} on {loop}: ERROR {error}', file=sys.stderr)
                else:
                    samples[w][loop].append(result)
        print(f'  repetition {rep + 1}/{reps} done ({time.monotonic() - started:.0f} s)',
              file=sys.stderr)
    load_after = bench._loadavg()
    summary = bench.summarize_samples(
        'memory', 'bytes', workloads, loops,
        {w: {loop: [r['bytes_per_object'] for r in samples[w][loop]] for loop in loops}
         for w in workloads}, higher_is_better=False)
    print(bench.machine_line(info))
    print(f'Median of {reps} interleaved repetitions, each a fresh worker process; N: '
          + ', '.join(f'{w} {sizes[w]:,}' for w in workloads)
          + f'; load average {load_before} before, {load_after} after.')
    bench.print_builds(info, {})
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')
    print()
    print('Resident bytes per idle connection / pending timer (RSS delta after gc.collect() '
          '/ N; lower is better): medians (min .. max around them); ratios > 1: the first '
          'loop uses less:')
    print()
    print(bench.markdown_table(*bench.summary_table(summary, lambda x: f'{x:,.0f}',
                                                    'workload')))
    bench.print_errors(errors)
    if args.json:
        bench.write_json(args.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'reps': reps, 'sizes': sizes,
            'load_average': {'before': load_before, 'after': load_after},
            'missing_loops': missing, 'summary': summary, 'samples': samples,
            'errors': errors,
        })
    return 1 if any(errors.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
