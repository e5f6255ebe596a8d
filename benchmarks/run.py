#!/usr/bin/env python3
"""Benchmarks of ourloop's loop core against asyncio's default loop, uvloop and rloop.

    python benchmarks/run.py                    # 7 repetitions, full sizes
    python benchmarks/run.py --quick            # small sizes, 1 repetition
    python benchmarks/run.py --reps 11 --only call_soon,task_switch
    python benchmarks/run.py --json results.json
    python benchmarks/run.py --loops ourloop,ourloop@../base   # two builds, interleaved

Method (see benchmarks/README.md):

* every measurement runs in a fresh subprocess, one per (loop, workload,
  repetition), so one loop's garbage, freelists or threads never weigh on
  another's measurement;
* the loops are interleaved: for each repetition and each workload every
  loop runs once, in an order that rotates from one repetition (and one
  workload) to the next, so slow drifts of a noisy machine hit all loops
  alike;
* each subprocess first runs the workload small on a throw-away loop
  (warm-up), then --inner (default 3) timed runs at full size, each on a new
  loop; the best one is the sample. The timing (time.perf_counter(), and the
  process's CPU time) covers the loop run only: set-up such as drawing random
  delays is outside it;
* ourloop is copied (package and built extension) to a temporary directory
  at the start, and every measurement imports that copy: a rebuild of the
  work tree during the run does not mix builds;
* the table shows the median ops/s per loop with the min..max of its
  samples, and the ratios of ourloop's median to each other loop's (above 1
  means ourloop is faster); --json also writes this summary, which
  bench_all.py (make bench) prints and charts.

The worker mode runs one measurement and prints it as JSON; it is also the
handy entry point for profiling a single workload on a single loop:

    python benchmarks/run.py --worker ourloop call_soon [--quick] [--size N] [--no-warmup] [--inner 1]
"""

import argparse
import asyncio
import contextvars
import datetime
import gc
import glob
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The loops a run compares by default (those of them that import). A
# --loops list may also name `ourloop@PATH`: ourloop imported from another
# checkout's in-place build, labelled `ourloop@<its commit>` (see
# select_loops), to compare two builds in one interleaved run.
LOOP_NAMES = ('asyncio', 'uvloop', 'rloop', 'ourloop')
CANDIDATE = 'ourloop'   # the ratio columns compare this loop with each other one


SNAPSHOT_ENV = 'OURLOOP_BENCH_SNAPSHOT'


def _use_source_tree():
    # A run measures one snapshot of ourloop (see snapshot_ourloop) when the
    # driver made one; otherwise the ourloop of this checkout when its
    # extension is built in place (an editable install points there too);
    # otherwise whatever `import ourloop` finds.
    snapshot = os.environ.get(SNAPSHOT_ENV)
    if snapshot:
        sys.path.insert(0, snapshot)
        return
    if glob.glob(os.path.join(ROOT, 'ourloop', '_core*.so')) or \
            glob.glob(os.path.join(ROOT, 'ourloop', '_core*.pyd')):
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)


def snapshot_ourloop(src=None):
    """Copy the ourloop package (with its built extension) to a temporary
    directory and return that directory, so that every measurement of a run
    uses the same build even if the work tree is rebuilt meanwhile. `src`:
    the package directory to copy (default: the ourloop this process
    imports)."""
    if src is None:
        import ourloop
        src = os.path.dirname(os.path.abspath(ourloop.__file__))
    dest = tempfile.mkdtemp(prefix='ourloop-bench-')
    shutil.copytree(src, os.path.join(dest, 'ourloop'),
                    ignore=shutil.ignore_patterns('__pycache__', '*.c', '*.pyx', '*.pxd',
                                                  '*.h', 'includes', 'handles'))
    return dest


_use_source_tree()


# ---------------------------------------------------------------------------
# Workloads. Each takes a fresh loop and a size n, and returns
# (operations, Stopwatch), timing only the part that runs on the loop.
# ---------------------------------------------------------------------------

perf_counter = time.perf_counter
process_time = time.process_time


class Stopwatch:
    """Wall-clock and CPU time (all threads of this process) of one region."""

    __slots__ = ('wall', 'cpu', '_w0', '_c0')

    def __enter__(self):
        self._c0 = process_time()
        self._w0 = perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = perf_counter() - self._w0
        self.cpu = process_time() - self._c0
        return False


def _run_forever_timed(loop):
    with Stopwatch() as sw:
        loop.run_forever()
    return sw


def _run_until_complete_timed(loop, coro):
    with Stopwatch() as sw:
        result = loop.run_until_complete(coro)
    return sw, result


def _check(condition, what):
    if not condition:
        raise AssertionError(f'workload check failed: {what}')


def wl_call_soon(loop, n):
    """n callbacks, scheduled 1000 at a time by a callback that reschedules itself."""
    batch = 1000
    rounds = max(1, n // batch)
    call_soon = loop.call_soon
    left = [rounds]

    def noop():
        pass

    def spawner():
        for _ in range(batch):
            call_soon(noop)
        left[0] -= 1
        if left[0]:
            call_soon(spawner)
        else:
            call_soon(loop.stop)

    call_soon(spawner)
    sw = _run_forever_timed(loop)
    _check(left[0] == 0, 'all batches ran')
    return rounds * batch, sw


def wl_call_soon_chain(loop, n):
    """One callback that schedules the next with call_soon, n times: one
    callback per loop iteration, so each costs a whole iteration too."""
    call_soon = loop.call_soon
    left = [n]

    def step():
        left[0] -= 1
        if left[0]:
            call_soon(step)
        else:
            loop.stop()

    call_soon(step)
    sw = _run_forever_timed(loop)
    _check(left[0] == 0, 'the whole chain ran')
    return n, sw


def wl_call_soon_ctx(loop, n):
    """Like call_soon, each call_soon(cb, arg1, arg2, context=ctx)."""
    batch = 1000
    rounds = max(1, n // batch)
    call_soon = loop.call_soon
    var = contextvars.ContextVar('bench_var')
    var.set('outer')
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'inner')
    left = [rounds]
    seen = []

    def noop(a, b):
        pass

    def spawner():
        for i in range(batch):
            call_soon(noop, i, spawner, context=ctx)
        left[0] -= 1
        if left[0]:
            call_soon(spawner, context=ctx)
        else:
            seen.append(var.get())
            call_soon(loop.stop)

    call_soon(spawner, context=ctx)
    sw = _run_forever_timed(loop)
    _check(left[0] == 0, 'all batches ran')
    _check(seen == ['inner'], 'callbacks ran in the given context')
    return rounds * batch, sw


def wl_call_later(loop, n):
    """n timers with random delays in [0, 10 ms]; runs until all have fired."""
    rng = random.Random(20261121)
    delays = [rng.uniform(0.0, 0.010) for _ in range(n)]
    fired = [0]

    def on_timer():
        fired[0] += 1
        if fired[0] == n:
            loop.stop()

    def start():
        call_later = loop.call_later
        for d in delays:
            call_later(d, on_timer)

    loop.call_soon(start)
    sw = _run_forever_timed(loop)
    _check(fired[0] == n, 'all timers fired')
    return n, sw


def wl_timer_cancel(loop, n):
    """n call_later(10, ...) timers, all cancelled, then a few loop iterations."""
    done = []

    def noop():
        pass

    def start():
        call_later = loop.call_later
        handles = [call_later(10.0, noop) for _ in range(n)]
        for h in handles:
            h.cancel()
        loop.call_soon(step, 3)

    def step(k):
        if k:
            loop.call_soon(step, k - 1)
        else:
            done.append(True)
            loop.stop()

    loop.call_soon(start)
    sw = _run_forever_timed(loop)
    _check(done, 'loop iterated after the cancellations')
    return n, sw


def wl_timer_half_cancel(loop, n):
    """n timers with random delays in [0, 10 ms], every other one cancelled
    at once; runs until the other half has fired."""
    rng = random.Random(20261207)
    delays = [rng.uniform(0.0, 0.010) for _ in range(n)]
    expected = (n + 1) // 2
    fired = [0]

    def on_timer():
        fired[0] += 1
        if fired[0] == expected:
            loop.stop()

    def start():
        call_later = loop.call_later
        handles = [call_later(d, on_timer) for d in delays]
        for h in handles[1::2]:
            h.cancel()

    loop.call_soon(start)
    sw = _run_forever_timed(loop)
    _check(fired[0] == expected, 'the timers not cancelled fired')
    return n, sw


async def _sleeper(k):
    sleep = asyncio.sleep
    for _ in range(k):
        await sleep(0)


def wl_task_switch(loop, n):
    """One task doing `await asyncio.sleep(0)` n times."""
    sw, _ = _run_until_complete_timed(loop, _sleeper(n))
    return n, sw


def wl_task_switch_100(loop, n):
    """100 tasks doing `await asyncio.sleep(0)` concurrently, n switches in all."""
    per_task = max(1, n // 100)

    async def main():
        await asyncio.gather(*[_sleeper(per_task) for _ in range(100)])

    sw, _ = _run_until_complete_timed(loop, main())
    return per_task * 100, sw


def wl_future_pingpong(loop, n):
    """Two tasks handing each other futures (set_result, await) n times in all."""
    rounds = max(1, n // 2)
    create_future = loop.create_future
    mailbox = [create_future()]     # what the pong task waits on

    async def ping():
        for _ in range(rounds):
            reply = create_future()
            mailbox[0].set_result(reply)
            await reply

    async def pong():
        for _ in range(rounds):
            reply = await mailbox[0]
            mailbox[0] = create_future()
            reply.set_result(None)

    async def main():
        await asyncio.gather(ping(), pong())

    sw, _ = _run_until_complete_timed(loop, main())
    return rounds * 2, sw


def wl_gather(loop, n):
    """create_task() for 10,000 trivial coroutines, then gather them; repeated."""
    width = min(n, 10000)
    rounds = max(1, n // width)

    async def trivial(i):
        return i

    async def main():
        create_task = loop.create_task
        total = 0
        for _ in range(rounds):
            tasks = [create_task(trivial(i)) for i in range(width)]
            results = await asyncio.gather(*tasks)
            total += len(results)
        return total

    sw, total = _run_until_complete_timed(loop, main())
    _check(total == rounds * width, 'all tasks finished')
    return total, sw


def wl_threadsafe(loop, n):
    """n call_soon_threadsafe() from another thread, until all callbacks ran."""
    ran = [0]

    def callback():
        ran[0] += 1
        if ran[0] == n:
            loop.stop()

    def producer():
        call = loop.call_soon_threadsafe
        for _ in range(n):
            call(callback)

    thread = threading.Thread(target=producer)
    loop.call_soon(thread.start)
    sw = _run_forever_timed(loop)
    thread.join()
    _check(ran[0] == n, 'all callbacks ran')
    return n, sw


def _trivial_job():
    return 1


def wl_run_in_executor(loop, n):
    """n trivial jobs through run_in_executor(None, ...), all awaited."""
    async def main():
        run = loop.run_in_executor
        results = await asyncio.gather(*[run(None, _trivial_job) for _ in range(n)])
        return sum(results)

    sw, total = _run_until_complete_timed(loop, main())
    _check(total == n, 'all jobs ran')
    return n, sw


def wl_queue(loop, n):
    """asyncio.Queue(maxsize=10): a producer task puts n items, a consumer gets them
    (bounded, so the two tasks hand over control every few items)."""
    async def main():
        queue = asyncio.Queue(maxsize=10)
        got = 0

        async def producer():
            put = queue.put
            for i in range(n):
                await put(i)
            await put(None)

        async def consumer():
            nonlocal got
            get = queue.get
            while (await get()) is not None:
                got += 1

        await asyncio.gather(producer(), consumer())
        return got

    sw, got = _run_until_complete_timed(loop, main())
    _check(got == n, 'all items consumed')
    return n, sw


# name: (function, full size, quick size, unit of one operation)
WORKLOADS = {
    'call_soon': (wl_call_soon, 1_000_000, 50_000, 'callback'),
    'call_soon_chain': (wl_call_soon_chain, 500_000, 25_000, 'callback'),
    'call_soon_ctx': (wl_call_soon_ctx, 1_000_000, 50_000, 'callback'),
    'call_later': (wl_call_later, 100_000, 5_000, 'timer'),
    'timer_cancel': (wl_timer_cancel, 100_000, 5_000, 'timer'),
    'timer_half_cancel': (wl_timer_half_cancel, 100_000, 5_000, 'timer'),
    'task_switch': (wl_task_switch, 200_000, 10_000, 'sleep(0)'),
    'task_switch_100': (wl_task_switch_100, 200_000, 10_000, 'sleep(0)'),
    'future_pingpong': (wl_future_pingpong, 200_000, 10_000, 'hand-off'),
    'gather': (wl_gather, 200_000, 10_000, 'task'),
    'threadsafe': (wl_threadsafe, 100_000, 5_000, 'callback'),
    'run_in_executor': (wl_run_in_executor, 10_000, 1_000, 'job'),
    'queue': (wl_queue, 200_000, 10_000, 'item'),
}


# ---------------------------------------------------------------------------
# Loops
# ---------------------------------------------------------------------------

def base_loop(label):
    """The loop a label names: 'ourloop' for 'ourloop@6ccb7cf' as well."""
    return label.split('@', 1)[0]


def loop_factory(name):
    name = base_loop(name)
    if name == 'asyncio':
        # The default loop of this platform (the selector loop on Unix).
        return asyncio.DefaultEventLoopPolicy().new_event_loop
    if name == 'uvloop':
        import uvloop
        return uvloop.new_event_loop
    if name == 'rloop':
        import rloop
        return rloop.new_event_loop
    if name == 'ourloop':
        import ourloop
        return ourloop.new_event_loop
    raise ValueError(f'unknown loop {name!r}')


def _close_loop(loop):
    try:
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def measure(loop_name, workload, quick, size=None, warmup=True, inner=1):
    """One measurement: a warm-up on a throw-away loop, then `inner` timed
    runs, each on a fresh loop; the best of them is the measurement (a
    run that another process interrupted is slower, never faster). Returns
    a dict for the JSON output."""
    func, full, small, _unit = WORKLOADS[workload]
    n = size or (small if quick else full)
    new_loop = loop_factory(loop_name)

    if warmup:
        warm = new_loop()
        asyncio.set_event_loop(warm)
        try:
            func(warm, max(n // 10, 100))
        finally:
            _close_loop(warm)
        del warm

    runs = []
    for _ in range(max(1, inner)):
        gc.collect()
        loop = new_loop()
        asyncio.set_event_loop(loop)
        try:
            os.getpgrp()    # instructions.py counts from here (callgrind's
            ops, sw = func(loop, n)
            os.getppid()    # --zero-before) to here (--dump-before)
        finally:
            _close_loop(loop)
        del loop
        runs.append((ops, sw.wall, sw.cpu))
    ops = runs[0][0]
    walls = [wall for _, wall, _ in runs]
    cpus = [cpu for _, _, cpu in runs if cpu > 0]
    return {'loop': loop_name, 'workload': workload, 'ops': ops,
            'seconds': min(walls), 'cpu_seconds': min(cpus) if cpus else None,
            'ops_per_sec': ops / min(walls),
            'ops_per_cpu_sec': ops / min(cpus) if cpus else None,
            'inner_seconds': walls,
            'rss': rss(),
            'build': build_fingerprint(loop_name)}


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def probe_loops():
    """{loop name: version string} for the loops of LOOP_NAMES importable
    here, and {loop name: reason} for those that are not."""
    available, missing = {}, {}
    available['asyncio'] = platform.python_version()
    for name in LOOP_NAMES[1:]:
        try:
            module = __import__(name)
            available[name] = getattr(module, '__version__', None) or _dist_version(name)
        except Exception as exc:  # ImportError, or a broken install
            missing[name] = f'{type(exc).__name__}: {exc}'
    return available, missing


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return '?'


# label -> checkout directory, for the `ourloop@PATH` loops of this run
CHECKOUTS = {}
# label -> snapshot directory (prepared_loops): what a worker of that label imports
_SNAPSHOTS = {}

_PROBE_CHECKOUT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import ourloop
from ourloop import _core
print(json.dumps({'package': os.path.dirname(os.path.abspath(ourloop.__file__)),
                  'version': getattr(ourloop, '__version__', '?'),
                  'libuv': ourloop.libuv_version(), 'extension': _core.__file__}))
"""


def probe_checkout(path):
    """Import ourloop from the checkout at `path` (its in-place build) in a
    subprocess. Returns (label, info, None) or (None, None, reason); the
    label is `ourloop@<short commit>` (`+dirty` if ourloop/ has uncommitted
    changes), or `ourloop@<directory name>` outside git."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(os.path.join(path, 'ourloop')):
        return None, None, f'{path} has no ourloop/ package'
    proc = subprocess.run([sys.executable, '-c', _PROBE_CHECKOUT, path], capture_output=True,
                          text=True, timeout=60, cwd=tempfile.gettempdir(),
                          env={k: v for k, v in os.environ.items() if k != SNAPSHOT_ENV})
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return None, None, f'ourloop does not import from {path} (built in place?): ' + \
            ' | '.join(tail)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if os.path.realpath(info['package']) != os.path.realpath(os.path.join(path, 'ourloop')):
        return None, None, f'importing ourloop from {path} found {info["package"]} instead'
    commit = _git('rev-parse', '--short', 'HEAD', root=path)
    if commit:
        if _git('status', '--porcelain', '--untracked-files=no', '--', 'ourloop', root=path):
            commit += '+dirty'
        label = f'ourloop@{commit}'
    else:
        label = f'ourloop@{os.path.basename(path.rstrip(os.sep))}'
    info['path'] = path
    info['commit'] = commit
    return label, info, None


def select_loops(spec, error=None):
    """The loops of a run from a --loops value (None: every loop of
    LOOP_NAMES that imports). Items: a name of LOOP_NAMES, or
    `ourloop@PATH` for ourloop built in place in another checkout.
    Returns (labels in the order given, {label: reason} of the wanted
    loops that are not available, {label: version}). Unknown names call
    error(message) (argparse's parser.error), or raise ValueError."""
    available, missing = probe_loops()
    items = [x.strip() for x in spec.split(',') if x.strip()] if spec else list(LOOP_NAMES)
    loops, versions, not_there = [], {}, {}
    for item in items:
        name, _, path = item.partition('@')
        if name not in LOOP_NAMES or (path and name != 'ourloop'):
            message = (f'unknown loop {item!r}: choose from {", ".join(LOOP_NAMES)}, '
                       'or ourloop@PATH (another checkout, built in place)')
            if error:
                error(message)
            raise ValueError(message)
        if path:
            label, info, reason = probe_checkout(path)
            if label is None:
                not_there[item] = reason
                continue
            if label in loops:
                continue
            CHECKOUTS[label] = info
            loops.append(label)
            versions[label] = f"{info['version']} ({info['path']}, libuv {info['libuv']})"
        elif name in available:
            if name not in loops:
                loops.append(name)
                versions[name] = available[name]
        else:
            not_there[name] = missing[name]
    for name, reason in not_there.items():
        print(f'NOTE: {name} is not available ({reason}); comparing {", ".join(loops)} only.',
              file=sys.stderr)
    return loops, not_there, versions


class prepared_loops:
    """Context manager: a snapshot (snapshot_ourloop) of every ourloop of
    `loops` (this checkout's and each `ourloop@...`), removed at the end;
    _worker_env(label) points the workers of each label at its own."""

    def __init__(self, loops):
        self.loops = loops
        self.made = []

    def __enter__(self):
        for label in self.loops:
            if base_loop(label) != 'ourloop' or label in _SNAPSHOTS:
                continue
            if label == 'ourloop' and os.environ.get(SNAPSHOT_ENV):
                continue        # a driver started by a driver: its snapshot
            src = os.path.join(CHECKOUTS[label]['path'], 'ourloop') if label in CHECKOUTS \
                else None
            _SNAPSHOTS[label] = snapshot_ourloop(src)
            self.made.append(label)
        return self

    def __exit__(self, *exc):
        for label in self.made:
            shutil.rmtree(_SNAPSHOTS.pop(label), ignore_errors=True)
        return False


def ratio_pairs(loops):
    """The (a, b) pairs whose ratio of medians a run reports: CANDIDATE
    (ourloop) against each other loop, or the first loop against the others
    when ourloop is not in the run."""
    if not loops:
        return []
    first = CANDIDATE if CANDIDATE in loops else loops[0]
    return [(first, other) for other in loops if other != first]


def build_fingerprint(loop_name):
    """The ourloop build a worker measured (None for other loops)."""
    return ourloop_build()['fingerprint'] if base_loop(loop_name) == 'ourloop' else None


def rss():
    """This process's resident set size now, in bytes, by psutil (None
    without psutil: the column shows n/a)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def ourloop_build():
    """What identifies the ourloop being measured: the extension file, its
    size and mtime (other work may rebuild it in place during a run), and
    whether it is a debug build (OURLOOP_DEBUG=1: -O0, not for timing)."""
    import ourloop
    from ourloop import _core
    st = os.stat(_core.__file__)
    debug_counts = getattr(_core, 'debug_handle_counts', None)
    return {
        'extension': _core.__file__,
        'fingerprint': f'{st.st_size}-{st.st_mtime_ns}',
        'built': datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec='seconds'),
        'debug_build': bool(debug_counts and debug_counts() is not None),
        'version': getattr(ourloop, '__version__', '?'),
    }


def _git(*args, root=ROOT):
    try:
        proc = subprocess.run(['git', '--no-optional-locks', '-C', root, *args],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _default_loop_class_name():
    loop = asyncio.DefaultEventLoopPolicy().new_event_loop()
    try:
        return type(loop).__name__
    finally:
        loop.close()


def machine_info(available):
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or '?'
    info = {
        'cpu': cpu,
        'cores': os.cpu_count(),
        'os': f'{platform.system()} {platform.release()}',
        'python': f'{platform.python_implementation()} {platform.python_version()}',
        'asyncio_loop': _default_loop_class_name(),
        'uvloop': available.get('uvloop'),
        'rloop': available.get('rloop'),
        'ourloop': available.get('ourloop'),
        'libuv (ourloop)': None,
        'loops': dict(available),
    }
    for label, checkout in CHECKOUTS.items():
        if label in available:
            info[label] = f"{checkout['path']} (libuv {checkout['libuv']})"
    if 'ourloop' in available:
        import ourloop
        info['libuv (ourloop)'] = ourloop.libuv_version()
        build = ourloop_build()
        info['ourloop_extension'] = build['extension']
        info['ourloop_built'] = build['built']
        info['ourloop_debug_build'] = build['debug_build']
        commit = _git('rev-parse', '--short', 'HEAD')
        if commit:
            dirty = _git('status', '--porcelain', '--untracked-files=no', '--', 'ourloop')
            info['git'] = commit + (' (ourloop/ has uncommitted changes)' if dirty else '')
    return info


def machine_line(info):
    """The one-line machine header of every script's output."""
    loops = info.get('loops') or {}
    others = ', '.join(f'{name} {version}' for name, version in loops.items()
                       if name not in ('asyncio', 'ourloop'))
    return (f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}, "
            f"{info['python']}, asyncio loop {info['asyncio_loop']}"
            + (f', {others}' if others else '')
            + (f", ourloop {info['ourloop']} (libuv {info['libuv (ourloop)'] or '?'})"
               if info.get('ourloop') else ''))


def _worker_env(loop_name=None):
    """The environment of a worker (or server) process measuring
    `loop_name`: debug modes off (they would measure the loops' debug
    paths, not their speed), and for an ourloop, its snapshot."""
    env = dict(os.environ)
    for name in ('PYTHONASYNCIODEBUG', 'PYTHONDEVMODE', 'PYTHONTRACEMALLOC',
                 'PYTHONMALLOC', 'PYTHONPROFILEIMPORTTIME'):
        env.pop(name, None)
    if loop_name in _SNAPSHOTS:
        env[SNAPSHOT_ENV] = _SNAPSHOTS[loop_name]
    elif loop_name is not None and base_loop(loop_name) == 'ourloop' and loop_name != 'ourloop':
        raise RuntimeError(f'{loop_name}: no snapshot prepared (use prepared_loops)')
    return env


def run_json_worker(cmd, loop_name, timeout):
    """Run a benchmark worker process (cmd) for loop_name, with the
    environment of _worker_env(); its last line of output is its JSON
    result. Returns (result, None) or (None, why it failed)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=_worker_env(loop_name))
    except subprocess.TimeoutExpired:
        return None, f'timed out after {timeout} s'
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f'exit {proc.returncode}: ' + ' | '.join(tail)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return None, f'bad worker output: {proc.stdout[-200:]!r}'


def run_worker(loop_name, workload, quick, inner, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', loop_name, workload,
           '--inner', str(inner)]
    if quick:
        cmd.append('--quick')
    return run_json_worker(cmd, loop_name, timeout)


def fmt_ops(x):
    if x is None:
        return 'n/a'
    for scale, suffix in ((1e6, 'M'), (1e3, 'k')):
        if x >= scale:
            return f'{x / scale:.3g} {suffix}' if x / scale < 1000 else f'{x / scale:.0f} {suffix}'
    return f'{x:.3g}'


def fmt_ratio(x):
    return 'n/a' if x is None else f'{x:.2f}x'


def print_errors(errors):
    """Print {case: {loop: error}}, if any case failed on any loop."""
    if not any(errors.values()):
        return
    print()
    print('Errors:')
    for case, errs in errors.items():
        for loop, error in errs.items():
            print(f'  {case} on {loop}: {error}')


def markdown_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = []
    def line(cells):
        return '| ' + ' | '.join(str(c).rjust(w) if i else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + ' |'
    lines.append(line(header))
    lines.append('|' + '|'.join('-' * (w + 1) + ':' if i else ':' + '-' * (w + 1)
                                for i, w in enumerate(widths)) + '|')
    lines.extend(line(r) for r in rows)
    return '\n'.join(lines)


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def worker_loop(label, error):
    """Check a worker's LOOP argument (a name of LOOP_NAMES, or ourloop@...:
    the driver passes the snapshot in the environment; by hand,
    ourloop@PATH imports the checkout at PATH)."""
    name, _, rest = label.partition('@')
    if name not in LOOP_NAMES or (rest and name != 'ourloop'):
        error(f'unknown loop {label!r}; choose from {", ".join(LOOP_NAMES)} or ourloop@PATH')
    if rest and not os.environ.get(SNAPSHOT_ENV):
        if not os.path.isdir(rest):
            error(f'{label}: no snapshot given ({SNAPSHOT_ENV}) and {rest!r} is not a checkout')
        sys.path.insert(0, os.path.abspath(rest))


LOOPS_HELP = ('comma-separated loops to compare (default: all available): '
              + ', '.join(LOOP_NAMES) + '; ourloop@PATH adds ourloop built in place in '
              'the checkout at PATH, shown as ourloop@<its commit>')


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark ourloop against uvloop, rloop and asyncio (interleaved, medians).')
    parser.add_argument('--reps', type=int, default=None,
                        help='repetitions per (loop, workload); default 7, or 1 with --quick')
    parser.add_argument('--quick', action='store_true',
                        help='small sizes: a smoke run of a few seconds')
    parser.add_argument('--only', metavar='NAME',
                        help='comma-separated workloads to run (default: all): '
                             + ', '.join(WORKLOADS))
    parser.add_argument('--loops', metavar='NAMES', help=LOOPS_HELP)
    parser.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    parser.add_argument('--inner', type=int, default=None, metavar='K',
                        help='timed runs per subprocess, each on a fresh loop; the best '
                             'one is the sample (default 3, or 1 with --quick)')
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='seconds before one measurement is given up (default 600)')
    parser.add_argument('--worker', nargs=2, metavar=('LOOP', 'WORKLOAD'),
                        help='run one measurement in this process and print it as JSON '
                             '(for profiling)')
    parser.add_argument('--size', type=int, default=None,
                        help='with --worker: the workload size instead of the default')
    parser.add_argument('--no-warmup', action='store_true',
                        help='with --worker: skip the warm-up run')
    args = parser.parse_args(argv)
    if args.inner is None:
        args.inner = 1 if args.quick else 3
    if args.inner < 1:
        parser.error('--inner must be at least 1')

    if args.worker:
        loop_name, workload = args.worker
        if workload not in WORKLOADS:
            parser.error(f'unknown workload {workload!r}; choose from {", ".join(WORKLOADS)}')
        worker_loop(loop_name, parser.error)
        result = measure(loop_name, workload, args.quick, args.size, not args.no_warmup,
                         args.inner)
        print(json.dumps(result))
        return 0

    reps = args.reps if args.reps is not None else (1 if args.quick else 7)
    if reps < 1:
        parser.error('--reps must be at least 1')

    workloads = list(WORKLOADS)
    if args.only:
        workloads = [w.strip() for w in args.only.split(',') if w.strip()]
        unknown = [w for w in workloads if w not in WORKLOADS]
        if unknown:
            parser.error(f'unknown workload(s) {", ".join(unknown)}; '
                         f'choose from {", ".join(WORKLOADS)}')

    loops, missing, versions = select_loops(args.loops, parser.error)
    if not loops:
        print('no loop to benchmark', file=sys.stderr)
        return 2
    info = machine_info(versions)
    with prepared_loops(loops):
        return _drive(args, reps, workloads, loops, missing, info)


def _drive(args, reps, workloads, loops, missing, info):
    print('machine: ' + '; '.join(f'{k} {v}' for k, v in info.items() if v is not None),
          file=sys.stderr)
    print(f'{len(workloads)} workloads x {len(loops)} loops x {reps} reps, '
          f'{"quick" if args.quick else "full"} sizes, one subprocess each',
          file=sys.stderr)

    if info.get('ourloop_debug_build'):
        print('WARNING: ourloop is a debug build (OURLOOP_DEBUG=1, -O0): its numbers '
              'are not representative; rebuild with `make build`.', file=sys.stderr)
    samples = {w: {name: [] for name in loops} for w in workloads}
    builds_seen = {}
    load_before = _loadavg()
    errors = {w: {} for w in workloads}
    started = time.monotonic()
    for rep in range(reps):
        for wi, workload in enumerate(workloads):
            # Round-robin: each loop once, in an order rotating per rep and workload.
            k = (rep + wi) % len(loops)
            order = loops[k:] + loops[:k]
            for name in order:
                result, error = run_worker(name, workload, args.quick, args.inner, args.timeout)
                if error:
                    errors[workload][name] = error
                    print(f'  [{rep + 1}/{reps}] {workload} on {name}: ERROR {error}',
                          file=sys.stderr)
                else:
                    samples[workload][name].append(result)
                    note_build(builds_seen, result)
        print(f'  repetition {rep + 1}/{reps} done ({time.monotonic() - started:.0f} s)',
              file=sys.stderr)

    load_after = _loadavg()
    summaries = {metric: summarize_samples(
        'loop core', metric.replace('ops_per_sec', 'ops/s').replace('ops_per_cpu_sec', 'ops/cpu-s'),
        workloads, loops, {w: {name: _values(samples[w][name], metric) for name in loops}
                           for w in workloads})
        for metric in ('ops_per_sec', 'ops_per_cpu_sec')}

    print()
    print(machine_line(info))
    print(f'Median of {reps} interleaved repetitions, each in a fresh subprocess; '
          f'{"quick" if args.quick else "full"} sizes; load average {load_before} '
          f'before, {load_after} after.')
    print_builds(info, builds_seen)
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')
    print()
    print('Throughput, wall clock: median ops/s (min .. max of the samples around it); '
          f'ratios of the medians (> 1: {ratio_pairs(loops)[0][0] if len(loops) > 1 else "-"} '
          'faster):')
    print()
    print(markdown_table(*summary_table(summaries['ops_per_sec'], fmt_ops, 'workload')))
    print()
    print('Same runs, per CPU second of the process (less sensitive to other '
          'processes on the machine):')
    print()
    print(markdown_table(*summary_table(summaries['ops_per_cpu_sec'], fmt_ops, 'workload',
                                        spreads=False)))
    rss_rows = {w: {name: [r['rss'] for r in samples[w][name] if r.get('rss')]
                    for name in loops} for w in workloads}
    if any(x for row in rss_rows.values() for x in row.values()):
        print()
        print('Resident set size of the worker after its timed runs (psutil; MiB, median):')
        print()
        rss = summarize_samples('rss', 'MiB', workloads, loops,
                                {w: {n: [x / 2**20 for x in xs] for n, xs in row.items()}
                                 for w, row in rss_rows.items()}, higher_is_better=False)
        print(markdown_table(*summary_table(rss, lambda x: f'{x:.1f}', 'workload',
                                            spreads=False, ratios=False)))
    print_errors(errors)

    if args.json:
        out = {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info,
            'load_average': {'before': load_before, 'after': load_after},
            'ourloop_builds_measured': {k: sorted(v) for k, v in builds_seen.items()},
            'reps': reps,
            'quick': args.quick,
            'missing_loops': missing,
            'summary': summaries['ops_per_sec'],
            'summary_cpu': summaries['ops_per_cpu_sec'],
            'samples': {w: {name: samples[w][name] for name in loops} for w in workloads},
            'errors': errors,
        }
        write_json(args.json, out)
    return 1 if any(errors.values()) else 0


def write_json(path, out):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(out, f, indent=2)
        f.write('\n')


def print_builds(info, builds_seen):
    """The ourloop builds of a run: commit, build time, and a warning if a
    build changed during the run. builds_seen: {label: {fingerprint}}."""
    if 'git' in info:
        print(f"ourloop: commit {info['git']}, extension built {info['ourloop_built']}"
              + (', DEBUG BUILD (numbers not representative)'
                 if info.get('ourloop_debug_build') else ''))
    for label, checkout in CHECKOUTS.items():
        if label in (info.get('loops') or {}):
            print(f"{label}: {checkout['path']}, extension {checkout['extension']}")
    for label, fingerprints in builds_seen.items():
        if len(fingerprints) > 1:
            print(f'WARNING: {label}\'s extension changed during the run '
                  f'({len(fingerprints)} different builds were measured): run again.')


def note_build(builds_seen, result):
    if result.get('build'):
        builds_seen.setdefault(result['loop'], set()).add(result['build'])


def _values(results, metric):
    return [r[metric] for r in results if r.get(metric)]


def stats(xs):
    """{'median', 'min', 'max', 'n'} of the samples, or None without any."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {'median': statistics.median(xs), 'min': min(xs), 'max': max(xs), 'n': len(xs)}


def summarize_samples(suite, unit, rows, loops, values, higher_is_better=True, na=None):
    """The summary every script prints and writes to its --json (under
    "summary"), and that bench_all.py charts: for each row and loop the
    median, min and max of its samples (values[row][loop]: a list), and the
    ratios of the medians of ratio_pairs(loops), oriented so that above 1
    means the first loop is better (faster, or fewer instructions when not
    higher_is_better), with their geometric means. na: {row: {loop:
    reason}} of the cells a loop could not run."""
    pairs = ratio_pairs(loops)
    out = {'suite': suite, 'unit': unit, 'higher_is_better': higher_is_better,
           'loops': list(loops), 'rows': {}, 'ratios': {}, 'na': na or {}}
    for row in rows:
        cells = {loop: stats(values.get(row, {}).get(loop, [])) for loop in loops}
        out['rows'][row] = cells
        ratios = {}
        for a, b in pairs:
            x, y = (cells[a] or {}).get('median'), (cells[b] or {}).get('median')
            ratios[f'{a}/{b}'] = (x / y if higher_is_better else y / x) if x and y else None
        out['ratios'][row] = ratios
    out['geomean'] = {f'{a}/{b}': geomean([out['ratios'][r][f'{a}/{b}'] for r in rows])
                      for a, b in pairs}
    return out


def spread_text(st):
    if not st:
        return 'n/a'
    m = st['median']
    return f"{(st['min'] - m) / m * 100:+.0f}%..{(st['max'] - m) / m * 100:+.0f}%"


def summary_table(summary, fmt, row_header, spreads=True, ratios=True, split=None):
    """(header, rows) of a summary: a column per loop with the median (and
    its min..max spread), then the ratio columns and a geometric-mean row.
    split(row) may turn a row key into several leading cells. A cell that
    summary['client_bound'] lists (echo.mark_client_bound) ends in ` !`."""
    loops = summary['loops']
    heads = list(row_header) if isinstance(row_header, (tuple, list)) else [row_header]
    pairs = list(summary['geomean']) if ratios else []
    header = heads + [f"{loop} {summary['unit']}" for loop in loops] + pairs
    rows = []
    for row, cells in summary['rows'].items():
        lead = split(row) if split else [row]
        line = list(lead)
        for loop in loops:
            st = cells.get(loop)
            reason = summary['na'].get(row, {}).get(loop)
            if st is None:
                line.append('n/a (not implemented yet)' if reason and
                            reason.startswith('not implemented') else 'n/a')
            else:
                line.append(fmt(st['median'])
                            + (f' ({spread_text(st)})' if spreads and st['n'] > 1 else '')
                            + (' !' if loop in summary.get('client_bound', {}).get(row, ())
                               else ''))
        line += [fmt_ratio(summary['ratios'][row][p]) for p in pairs]
        rows.append(line)
    if pairs:
        rows.append(['geometric mean'] + [''] * (len(heads) - 1) + [''] * len(loops)
                    + [fmt_ratio(summary['geomean'][p]) for p in pairs])
    return header, rows


def interleaved(rows, columns, reps, measure, on_sample=None):
    """The interleaved sampling of the subprocess suites (echo.py,
    ceiling.py, latency.py): for each repetition and each row, every
    column once, the order rotated by one per row and repetition so that no
    column always runs first or last. measure(row, col) returns (result,
    error): a result with an error is kept and the error noted; no result
    with an error starting 'not implemented' or 'not available' marks the
    cell n/a; any other is an error, printed. on_sample(rep, row, col,
    result) sees each kept result. Returns (samples, errors, na,
    load_before, load_after): samples[row][col] is the list of results."""
    samples = {r: {c: [] for c in columns} for r in rows}
    errors = {r: {} for r in rows}
    na = {r: {} for r in rows}
    load_before = _loadavg()
    started = time.monotonic()
    for rep in range(reps):
        for ri, row in enumerate(rows):
            k = (rep + ri) % len(columns)
            for col in columns[k:] + columns[:k]:
                result, error = measure(row, col)
                if result is None:
                    if error and error.startswith(('not implemented', 'not available')):
                        na[row][col] = error
                    else:
                        errors[row][col] = error
                        print(f'  [{rep + 1}/{reps}] {row} on {col}: ERROR {error}',
                              file=sys.stderr)
                    continue
                if error:
                    errors[row][col] = error
                samples[row][col].append(result)
                if on_sample is not None:
                    on_sample(rep, row, col, result)
        print(f'  repetition {rep + 1}/{reps} done ({time.monotonic() - started:.0f} s)',
              file=sys.stderr)
    return samples, errors, na, load_before, _loadavg()


def _loadavg():
    try:
        return ' '.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return '?'


if __name__ == '__main__':
    sys.exit(main())
