#!/usr/bin/env python3
"""Subprocess benchmark: pipe throughput and spawn rate on asyncio, uvloop, rloop and ourloop.

    python benchmarks/subprocess_pipe.py               # 5 repetitions, full sizes
    python benchmarks/subprocess_pipe.py --quick       # 1 repetition, small sizes: seconds
    python benchmarks/subprocess_pipe.py --only read,spawn --loops asyncio,uvloop --json out.json

Workloads (each checks its result; a broken loop fails its row):

* read          -- asyncio.create_subprocess_exec(child, stdout=PIPE); the
                   parent reads the child's stdout with `await
                   proc.stdout.read(256 KiB)` until EOF and checks every byte.
                   MiB/s.
* read_protocol -- the same through loop.subprocess_exec() and a
                   SubprocessProtocol whose pipe_data_received() checks the
                   bytes: the loop's pipe transport without StreamReader.
* write         -- asyncio.create_subprocess_exec(child, stdin=PIPE); the
                   parent writes 256 KiB chunks with `proc.stdin.write()` +
                   `await proc.stdin.drain()`, then closes stdin; the child
                   checks every byte and the count, and exits 0 only if all
                   is right. MiB/s.
* spawn         -- `await (await asyncio.create_subprocess_exec('/bin/true')).wait()`,
                   one after the other: processes per second (spawn, exit,
                   reaping, the exit status delivered to the loop).

The child is benchmarks/pipe_child.c (compiled on demand with cc -O2 into
benchmarks/.build/, like echo_load.c; a small Python child without a C
compiler), which writes or reads N bytes with 256 KiB write()/read() calls.

Method (see benchmarks/README.md, "Subprocess benchmark"): the method of
run.py, whose helpers this script imports. One fresh worker subprocess per
(loop, workload, repetition), pinned to CPU 0; it warms up on a throw-away
loop (1/10 size), then does --inner timed runs, each on a new loop; the best
one is the sample. The pipe children pin themselves to CPU 1 (the /bin/true
children of `spawn` inherit CPU 0). The timing covers the whole exchange on
the loop, from create_subprocess_exec() until wait() has returned, spawn
included. Loops interleaved in a rotating order; medians, ratios of the
medians and spreads.

A loop whose subprocess_exec raises NotImplementedError shows `n/a`.

Worker mode (one measurement, printed as JSON; handy for profiling):

    python benchmarks/subprocess_pipe.py --worker LOOP WORKLOAD [--size N] [--inner K] [--quick]
"""

import argparse
import asyncio
import datetime
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (run.py: loops, machine info, tables, snapshot)

CHILD_SOURCE = os.path.join(HERE, 'pipe_child.c')
CHUNK = 256 * 1024          # bytes per write() of either side; a multiple of 256
MIB = 1024 * 1024
CHILD_CPU = None            # worker mode: the CPU the pipe children pin themselves to

# The byte pattern of the echo benchmark, (i * 7 + 13) & 0xFF, period 256.
# The bytes at stream offset o are PATTERN[o % 256:][:n].
PATTERN = bytes((i * 7 + 13) & 0xFF for i in range(CHUNK + 256))
WRITE_CHUNK = PATTERN[:CHUNK]

# The child without a C compiler: the same protocol as pipe_child.c.
PY_CHILD = r'''
import os, sys
args = sys.argv[1:]
cpu = None
if args[0] == '--cpu':
    cpu, args = int(args[1]), args[2:]
if cpu is not None:
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass
mode, total = args[0], int(args[1])
chunk = %d
pattern = bytes((i * 7 + 13) & 0xFF for i in range(chunk + 256))
done = 0
if mode == 'write':
    while done < total:
        done += os.write(1, pattern[done %% 256:][:min(chunk, total - done)])
else:
    while True:
        data = os.read(0, chunk)
        if not data:
            break
        if done + len(data) > total or data != pattern[done %% 256:][:len(data)]:
            sys.exit('pipe_child.py: wrong bytes')
        done += len(data)
    sys.exit(0 if done == total else 'pipe_child.py: %%d bytes instead of %%d' %% (done, total))
''' % CHUNK


# ---------------------------------------------------------------------------
# The child command
# ---------------------------------------------------------------------------

def child_command():
    """(argv prefix of the child, description). Uses the C child when a C
    compiler is there (built once, cached by source hash), else Python."""
    import echo  # its build_c() and compiler search
    path, reason = echo.build_c(CHILD_SOURCE)
    if path is not None:
        return [path], f'C, {os.path.relpath(CHILD_SOURCE)} built with cc -O2'
    print(f'WARNING: cannot build the C child ({reason}); using a Python child, whose '
          f'start-up (about 20 ms) is inside the timing.', file=sys.stderr)
    return [sys.executable, '-c', PY_CHILD], 'Python (no C compiler)'


CHILD_ENV = 'OURLOOP_BENCH_PIPE_CHILD'     # the driver passes the child command down


def _child_prefix():
    """The child's argv up to its mode (write/read), with --cpu if pinned."""
    env = os.environ.get(CHILD_ENV)
    prefix = json.loads(env) if env else child_command()[0]
    return prefix + (['--cpu', str(CHILD_CPU)] if CHILD_CPU is not None else [])


def _pipe_kind(pid, fd):
    """'pipe', 'socket' or '?': what the loop made the child's stdin (fd 0)
    or stdout (fd 1) of, while the child runs (transports do not all expose
    their pipe: uvloop's get_extra_info('pipe') is None). psutil lists a
    process's sockets (a socketpair end is a Unix socket); an fd that is
    not among them is the pipe that subprocess.Popen makes. '?' without
    psutil."""
    try:
        import psutil
        proc = psutil.Process(pid)
        # net_connections() since psutil 6.0, connections() before
        conns = getattr(proc, 'net_connections', None) or proc.connections
        conns = conns(kind='unix')
    except ImportError:
        return '?'
    except psutil.Error:
        return '?'
    return 'socket' if any(c.fd == fd for c in conns) else 'pipe'


class Checker:
    """Checks a byte stream against PATTERN, chunk by chunk."""

    __slots__ = ('offset',)

    def __init__(self):
        self.offset = 0

    def feed(self, data):
        n = len(data)
        start = 0
        while start < n:        # pieces of at most CHUNK bytes (PATTERN's reach)
            piece = data[start:start + CHUNK] if n > CHUNK else data
            k = self.offset % 256
            if piece != PATTERN[k:k + len(piece)]:
                raise AssertionError(f'the bytes read differ from what the child wrote '
                                     f'(at offset {self.offset})')
            self.offset += len(piece)
            start += len(piece)


# ---------------------------------------------------------------------------
# Workloads: each takes a fresh loop and a size n, returns (bytes or
# processes, wall seconds, extra fields), timing the run on the loop only.
# ---------------------------------------------------------------------------

async def _read(loop, n):
    child = _child_prefix()
    check = Checker()
    proc = await asyncio.create_subprocess_exec(
        *child, 'write', str(n),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    kind = _pipe_kind(proc.pid, 1)
    read = proc.stdout.read
    while True:
        data = await read(CHUNK)
        if not data:
            break
        check.feed(data)
    rc = await proc.wait()
    bench._check(rc == 0, f'child exit status {rc}')
    bench._check(check.offset == n, f'{check.offset} bytes read instead of {n}')
    return {'pipe': kind}


class _ReadProtocol(asyncio.SubprocessProtocol):
    def __init__(self, done):
        self.done = done
        self.check = Checker()
        self.eof = False
        self.exited = False
        self.error = None

    def pipe_data_received(self, fd, data):
        try:
            self.check.feed(data)
        except AssertionError as exc:
            self.error = exc

    def pipe_connection_lost(self, fd, exc):
        if fd == 1:
            self.eof = True
            self._maybe_done()

    def process_exited(self):
        self.exited = True
        self._maybe_done()

    def _maybe_done(self):
        if self.eof and self.exited and not self.done.done():
            self.done.set_result(None)


async def _read_protocol(loop, n):
    child = _child_prefix()
    done = loop.create_future()
    transport, proto = await loop.subprocess_exec(
        lambda: _ReadProtocol(done), *child, 'write', str(n),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        kind = _pipe_kind(transport.get_pid(), 1)
        await done
        rc = transport.get_returncode()
    finally:
        transport.close()
    if proto.error:
        raise proto.error
    bench._check(rc == 0, f'child exit status {rc}')
    bench._check(proto.check.offset == n, f'{proto.check.offset} bytes read instead of {n}')
    return {'pipe': kind}


async def _write(loop, n):
    child = _child_prefix()
    proc = await asyncio.create_subprocess_exec(
        *child, 'read', str(n),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    kind = _pipe_kind(proc.pid, 0)
    write, drain = proc.stdin.write, proc.stdin.drain
    sent = 0
    while sent < n:
        part = WRITE_CHUNK if n - sent >= CHUNK else WRITE_CHUNK[:n - sent]
        write(part)
        await drain()
        sent += len(part)
    proc.stdin.close()
    rc = await proc.wait()
    # The child exits 0 only if it got exactly n bytes, all of them right.
    bench._check(rc == 0, f'child exit status {rc} (it got wrong bytes or a wrong count)')
    return {'pipe': kind}


async def _spawn(loop, n):
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec('/bin/true')
        rc = await proc.wait()
        bench._check(rc == 0, f'/bin/true exit status {rc}')
    return {}


# name: (coroutine function, full size, quick size, unit of the size)
WORKLOADS = {
    'read': (_read, 512 * MIB, 32 * MIB, 'byte'),
    'read_protocol': (_read_protocol, 512 * MIB, 32 * MIB, 'byte'),
    'write': (_write, 512 * MIB, 32 * MIB, 'byte'),
    'spawn': (_spawn, 300, 30, 'process'),
}


def _children_cpu():
    """CPU seconds of the reaped children (getrusage: psutil has no view of
    processes that are gone)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _switches():
    """Voluntary context switches (times a process slept) of this process
    and of its reaped children: how often a pipe's two ends waited for each
    other, far steadier than wall time on a loaded machine."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw)


def measure(loop_name, workload, quick, size=None, warmup=True, inner=1):
    """One measurement (see run.measure): warm-up, then `inner` timed runs,
    each on a fresh loop; the best is the sample. Returns a JSON-able dict;
    {'na': reason} if the loop does not implement subprocesses yet."""
    func, full, small, unit = WORKLOADS[workload]
    n = size or (small if quick else full)
    new_loop = bench.loop_factory(loop_name)

    def one(size):
        loop = new_loop()
        asyncio.set_event_loop(loop)
        try:
            c0, k0 = time.process_time(), _children_cpu()
            s0 = _switches()
            t0 = time.perf_counter()
            extra = loop.run_until_complete(func(loop, size))
            wall = time.perf_counter() - t0
            s1 = _switches()
            extra = dict(extra, parent_sleeps=s1[0] - s0[0], children_sleeps=s1[1] - s0[1])
            return wall, time.process_time() - c0, _children_cpu() - k0, extra
        finally:
            bench._close_loop(loop)

    try:
        if warmup:
            one(max(n // 10, 1))
        runs = []
        for _ in range(max(1, inner)):
            gc.collect()
            runs.append(one(n))
    except NotImplementedError as exc:
        return {'na': f'not implemented: {exc}'}
    wall, cpu, child_cpu, extra = min(runs, key=lambda r: r[0])
    rate = n / wall / (MIB if unit == 'byte' else 1)
    return {'loop': loop_name, 'workload': workload, 'size': n, 'unit': unit,
            'seconds': wall, 'rate': rate,
            'rate_unit': 'MiB/s' if unit == 'byte' else 'processes/s',
            'parent_cpu_share': cpu / wall, 'children_cpu_share': child_cpu / wall,
            'parent_cpu_seconds': cpu, 'children_cpu_seconds': child_cpu,
            'inner_seconds': [r[0] for r in runs], **extra, 'rss': bench.rss(),
            'build': bench.build_fingerprint(loop_name)}


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def run_worker(loop_name, workload, quick, inner, timeout, cpu, child_cpu):
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', loop_name, workload,
           '--inner', str(inner)]
    if quick:
        cmd.append('--quick')
    if cpu is not None:
        cmd += ['--cpu', str(cpu), '--child-cpu', str(child_cpu)]
    return bench.run_json_worker(cmd, loop_name, timeout)


def fmt_rate(x, unit):
    if x is None:
        return 'n/a'
    if unit == 'byte':
        return f'{x:.3g}' if x < 1000 else f'{x:.0f}'
    return bench.fmt_ops(x)


def main(argv=None):
    p = argparse.ArgumentParser(description='Subprocess pipe throughput and spawn rate of '
                                            'asyncio, uvloop and ourloop (interleaved, '
                                            'medians).')
    p.add_argument('--reps', type=int, default=None,
                   help='repetitions per (loop, workload); default 5, or 1 with --quick')
    p.add_argument('--quick', action='store_true',
                   help='small sizes (32 MiB, 30 processes), 1 repetition, 1 inner run: '
                        'a few seconds')
    p.add_argument('--only', metavar='NAMES',
                   help='comma-separated workloads (default: all): ' + ', '.join(WORKLOADS))
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--inner', type=int, default=None, metavar='K',
                   help='timed runs per worker, each on a fresh loop; the best one is the '
                        'sample (default 3, or 1 with --quick)')
    p.add_argument('--timeout', type=float, default=600.0,
                   help='seconds before one measurement is given up (default 600)')
    p.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    p.add_argument('--worker', nargs=2, metavar=('LOOP', 'WORKLOAD'),
                   help='run one measurement in this process and print it as JSON')
    p.add_argument('--size', type=int, default=None,
                   help='with --worker: bytes (read, write) or processes (spawn)')
    p.add_argument('--no-warmup', action='store_true', help='with --worker: no warm-up run')
    p.add_argument('--cpu', type=int, default=None,
                   help='with --worker: pin this process (the loop) to that CPU')
    p.add_argument('--child-cpu', type=int, default=None,
                   help='with --worker: the pipe children pin themselves to that CPU')
    args = p.parse_args(argv)
    if args.inner is None:
        args.inner = 1 if args.quick else 3
    if args.inner < 1:
        p.error('--inner must be at least 1')

    if args.worker:
        global CHILD_CPU
        CHILD_CPU = args.child_cpu
        loop_name, workload = args.worker
        if workload not in WORKLOADS:
            p.error(f'unknown workload {workload!r}; choose from {", ".join(WORKLOADS)}')
        bench.worker_loop(loop_name, p.error)
        if args.cpu is not None:
            try:
                os.sched_setaffinity(0, {args.cpu})
            except (AttributeError, OSError):
                pass
        print(json.dumps(measure(loop_name, workload, args.quick, args.size,
                                 not args.no_warmup, args.inner)))
        return 0

    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    if reps < 1:
        p.error('--reps must be at least 1')
    workloads = list(WORKLOADS)
    if args.only:
        workloads = [w.strip() for w in args.only.split(',') if w.strip()]
        unknown = [w for w in workloads if w not in WORKLOADS]
        if unknown:
            p.error(f'unknown workload(s) {", ".join(unknown)}; choose from '
                    f'{", ".join(WORKLOADS)}')
    loops, missing, versions = bench.select_loops(args.loops, p.error)
    if not loops:
        print('no loop to benchmark', file=sys.stderr)
        return 2

    prefix, child_desc = child_command()
    info = bench.machine_info(versions)
    info['child'] = child_desc
    saved = os.environ.get(CHILD_ENV)
    os.environ[CHILD_ENV] = json.dumps(prefix)
    try:
        with bench.prepared_loops(loops):
            return _drive(args, reps, workloads, loops, missing, info)
    finally:
        if saved is None:
            os.environ.pop(CHILD_ENV, None)
        else:
            os.environ[CHILD_ENV] = saved


def _cpus():
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    return cpus if len(cpus) >= 2 else None


def _drive(args, reps, workloads, loops, missing, info):
    cpus = _cpus()
    if cpus is None:
        print('WARNING: fewer than 2 CPUs: the loop and its children are not pinned apart.',
              file=sys.stderr)
        loop_cpu = child_cpu = None
    else:
        loop_cpu, child_cpu = cpus[0], cpus[1]
    print('machine: ' + '; '.join(f'{k} {v}' for k, v in info.items() if v is not None),
          file=sys.stderr)
    print(f'{len(workloads)} workloads x {len(loops)} loops x {reps} reps, '
          f'{"quick" if args.quick else "full"} sizes, best of {args.inner} per worker',
          file=sys.stderr)
    if info.get('ourloop_debug_build'):
        print('WARNING: ourloop is a debug build: its numbers are not representative.',
              file=sys.stderr)

    samples = {w: {loop: [] for loop in loops} for w in workloads}
    na = {w: {} for w in workloads}
    errors = {w: {} for w in workloads}
    builds = {}
    load_before = bench._loadavg()
    started = time.monotonic()
    for rep in range(reps):
        for wi, w in enumerate(workloads):
            k = (rep + wi) % len(loops)
            for loop_name in loops[k:] + loops[:k]:
                if loop_name in na[w]:
                    continue
                result, error = run_worker(loop_name, w, args.quick, args.inner,
                                           args.timeout, loop_cpu, child_cpu)
                if error:
                    errors[w][loop_name] = error
                    print(f'  [{rep + 1}/{reps}] {w} on {loop_name}: ERROR {error}',
                          file=sys.stderr)
                elif 'na' in result:
                    na[w][loop_name] = result['na']
                else:
                    samples[w][loop_name].append(result)
                    bench.note_build(builds, result)
        print(f'  repetition {rep + 1}/{reps} done ({time.monotonic() - started:.0f} s)',
              file=sys.stderr)
    load_after = bench._loadavg()

    def median(w, loop, key='rate'):
        xs = [r[key] for r in samples[w].get(loop, []) if r.get(key) is not None]
        return statistics.median(xs) if xs else None

    L = loops

    def cell(w, loop, text):
        if loop not in loops:
            return 'n/a'
        if loop in na[w]:
            return ('n/a (not implemented yet)' if na[w][loop].startswith('not implemented')
                    else 'n/a')
        return text

    def size_text(w):
        n = WORKLOADS[w][2 if args.quick else 1]
        return f'{n // MIB} MiB' if WORKLOADS[w][3] == 'byte' else f'{n} processes'

    def unit_text(w):
        return 'MiB/s' if WORKLOADS[w][3] == 'byte' else 'processes/s'

    summary = bench.summarize_samples(
        'subprocess', 'MiB/s or processes/s', workloads, loops,
        {w: {loop: [r['rate'] for r in samples[w][loop]] for loop in loops} for w in workloads},
        na=na)

    print()
    print(bench.machine_line(info))
    print(f'Median of {reps} interleaved repetitions, each a fresh worker process '
          f'(CPU {loop_cpu}), best of {args.inner} runs per worker; pipe children on CPU '
          f'{child_cpu}; child: {info["child"]}; load average {load_before} before, '
          f'{load_after} after.')
    bench.print_builds(info, builds)
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')
    print()
    print('Throughput (read, write: MiB/s through the pipe; spawn: processes/s): medians '
          '(min .. max of the samples around the median); ratios of the medians (> 1: the '
          'first loop faster):')
    print()

    header, rows = bench.summary_table(summary, lambda x: f'{x:.4g}', ('workload', 'size', 'unit'),
                                       split=lambda w: [w, size_text(w), unit_text(w)])
    header = [h.replace(' MiB/s or processes/s', '') for h in header]
    print(bench.markdown_table(header, rows))
    print()
    print('CPU: the parent\'s share of the wall time (the loop\'s process, all threads) / '
          'the children\'s share (reaped children, from getrusage), medians; "pipe": what '
          'the loop made the child\'s end of the pipe of (pipe: as subprocess.Popen; socket: '
          'a socketpair, as libuv).')
    print()
    header = ['workload'] + [f'{loop} CPU parent / children' for loop in L] + \
        [f'{loop} pipe' for loop in L]

    def cpu_cell(w, loop):
        pa, ch = median(w, loop, 'parent_cpu_share'), median(w, loop, 'children_cpu_share')
        return cell(w, loop, 'n/a' if pa is None else f'{pa:.0%} / {ch:.0%}')

    def pipe_cell(w, loop):
        kinds = sorted({r.get('pipe') for r in samples[w].get(loop, []) if r.get('pipe')})
        return cell(w, loop, ', '.join(kinds) or '-')
    rows = [[w] + [cpu_cell(w, loop) for loop in L] + [pipe_cell(w, loop) for loop in L]
            for w in workloads]
    print(bench.markdown_table(header, rows))
    print()
    print('Per MiB (read, write) or per process (spawn), medians: CPU milliseconds of the parent '
          '/ of the children, and how often each slept (voluntary context switches, '
          'getrusage): steadier than the rates above on a busy machine, as they do not '
          'count the time spent waiting for a CPU.')
    print()
    header = ['workload'] + [f'{loop} CPU ms' for loop in L] + [f'{loop} sleeps' for loop in L]

    def per_unit(w, loop, key):
        rs = [r for r in samples[w].get(loop, []) if key in r]
        if not rs:
            return None
        div = (lambda r: r['size'] / MIB) if WORKLOADS[w][3] == 'byte' else (lambda r: r['size'])
        return statistics.median(r[key] / div(r) for r in rs)

    def pair_cell(w, loop, a, b, fmt):
        pa, ch = per_unit(w, loop, a), per_unit(w, loop, b)
        return cell(w, loop, 'n/a' if pa is None or ch is None else f'{fmt(pa)} / {fmt(ch)}')
    ms = lambda x: f'{x * 1000:.2f}'   # noqa: E731
    rows = [[w] + [pair_cell(w, loop, 'parent_cpu_seconds', 'children_cpu_seconds', ms)
                   for loop in L]
            + [pair_cell(w, loop, 'parent_sleeps', 'children_sleeps', lambda x: f'{x:.2f}')
               for loop in L]
            for w in workloads]
    print(bench.markdown_table(header, rows))
    reasons = sorted({f'{loop}: {why}' for w in workloads for loop, why in na[w].items()})
    if reasons:
        print()
        print('n/a: ' + '; '.join(reasons))
    bench.print_errors(errors)

    if args.json:
        out = {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'reps': reps, 'inner': args.inner, 'quick': args.quick,
            'cpus': {'loop': loop_cpu, 'children': child_cpu},
            'load_average': {'before': load_before, 'after': load_after},
            'ourloop_builds_measured': {k: sorted(v) for k, v in builds.items()},
            'missing_loops': missing, 'summary': summary, 'workloads': {},
        }
        for w in workloads:
            out['workloads'][w] = {
                'size': WORKLOADS[w][2 if args.quick else 1], 'unit': unit_text(w),
                'samples': {loop: samples[w][loop] for loop in loops},
                'median': {loop: median(w, loop) for loop in loops},
                'ratios': summary['ratios'][w],
                'not_available': na[w], 'errors': errors[w],
            }
        bench.write_json(args.json, out)
    return 1 if any(errors.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
