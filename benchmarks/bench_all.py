#!/usr/bin/env python3
"""Every benchmark suite in one run: `make bench` (short) and `make bench-full`.

    python benchmarks/bench_all.py                 # make bench: short runs, under 5 minutes
    python benchmarks/bench_all.py --full          # make bench-full: + callgrind, about 2 hours
    python benchmarks/bench_all.py --only core,udp --loops ourloop,uvloop
    BENCH_OUT=/tmp/b python benchmarks/bench_all.py   # where the raw results go

Suites (the tables of issue 13): `core` (run.py: callbacks, timers, tasks,
futures, executor), `echo` (echo.py, TCP and Unix stream servers),
`ceiling` (ceiling.py: the same load against an echo server in C on
libuv), `latency` (latency.py: p50/p99 of one 1 KiB request), `memory`
(memory.py: RSS per idle connection and per pending timer), `udp`, `tls`
(echo.py's UDP and TLS rows), `http` (http_bench.py: uvicorn and aiohttp
under wrk; skipped, not failed, without wrk), `subprocess`
(subprocess_pipe.py: pipe reads and writes, spawn rate); with --full also
`instructions` (callgrind: instructions.py's loop-core workloads and
pingpong_instructions.py's TCP round trips) and `syscalls` (syscalls.py,
strace).

Each suite runs its script with the loops interleaved (see README.md,
"Method"); this driver prints, per suite, one table: the median of each
loop, the min..max spread of its samples around it, and the ratios of
ourloop's median to each other loop's. Everything raw goes outside the
repository, into $BENCH_OUT (default ~/.cache/ourloop-bench/<UTC time>/):
per suite the script's full output (<suite>.txt, with its CPU-share and
other tables), its JSON (<suite>.json, every sample) and a chart
(<suite>.png, charts.py: each loop relative to asyncio, min..max as error
bars, the server CPU per request beside it where the suite has it; the
title carries the date, CPU, Python, libuv, ourloop's commit and the load
average). `--publish DIR` then draws the run's charts into DIR as well
(docs/_static/bench/, what the docs show; `make charts` does it from the
latest runs, see charts.py). A cell marked
`!` is client-bound: the load generator (echo_load.c, wrk), not the
server, set the pace (echo.is_client_bound), so the figure is its limit.
Without
matplotlib there are no charts (said so); a loop that is not installed
(uvloop, rloop) shows n/a.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import charts  # noqa: E402  (the PNGs)
import run  # noqa: E402  (tables, summaries)

PY = sys.executable

# suite: (script, arguments of the short run, arguments of the full run).
# The short runs fit `make bench` into 5 minutes on the shared 2-core
# machine: the echo suite's 100 KiB row is in the ceiling suite's short run
# (every loop and the C server), TLS and subprocess make 2 repetitions, and
# the servers' warm-up is 0.1 s (--quick; --reps and --duration as given).
# With load average 9 to 13 from other work: 341 s before the shorter warm-ups,
# 295 s after.
TCP_UNIX = 'protocol,buffered,streams,sock,unix-protocol,unix-buffered,unix-streams,unix-sock'
SUITES = {
    'core': ('run.py', ['--quick', '--reps', '3'], []),
    'echo': ('echo.py',
             ['--only', ','.join(f'{k}/1k/16' for k in TCP_UNIX.split(','))
              + ',protocol/1k/1',
              '--quick', '--reps', '3', '--duration', '0.25'],
             ['--only', TCP_UNIX, '--reps', '5', '--duration', '1.5']),
    'ceiling': ('ceiling.py', ['--only', 'protocol/1k/16,protocol/100k/16', '--quick',
                               '--reps', '2', '--duration', '0.25'],
                ['--reps', '5', '--duration', '1.5']),
    'latency': ('latency.py', ['--kinds', 'protocol,streams', '--quick', '--reps', '2',
                               '--duration', '0.3'],
                ['--reps', '5', '--duration', '2']),
    'memory': ('memory.py', ['--reps', '1'], ['--reps', '5']),
    'udp': ('echo.py', ['--only', 'udp/1k', '--quick', '--reps', '3', '--duration', '0.25'],
            ['--only', 'udp', '--reps', '5', '--duration', '1.5']),
    'tls': ('echo.py', ['--only', 'tls-protocol/1k/16,tls-streams/1k/16,tls-protocol/100k/16',
                        '--quick', '--reps', '2', '--duration', '0.25'],
            ['--only', 'tls-*', '--reps', '5', '--duration', '1.5']),
    'http': ('http_bench.py', ['--only', 'uvicorn-httptools,aiohttp', '--reps', '1',
                               '--duration', '1'],
             ['--reps', '5', '--duration', '2', '--wrk-warmup']),
    'subprocess': ('subprocess_pipe.py', ['--quick', '--reps', '2'], []),
    'instructions': ('instructions.py', None,
                     ['--only', 'call_soon,call_soon_ctx,call_later,timer_cancel,task_switch,'
                                'future_pingpong,gather']),
    'roundtrip': ('pingpong_instructions.py', None, []),
    'syscalls': ('syscalls.py', None, []),
}
SHORT = ('core', 'echo', 'ceiling', 'latency', 'memory', 'udp', 'tls', 'http', 'subprocess')
CPU_TABLES = ('echo', 'ceiling', 'udp', 'tls', 'http')   # also print summary_cpu
SKIPPED = 'SKIPPED:'    # a script's first output line when its tool is missing


def default_out():
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    return os.path.join(os.path.expanduser('~'), '.cache', 'ourloop-bench', stamp)


def run_suite(name, full, loops, out_dir):
    """Run one suite's script; returns (summary dict or None, seconds, error)."""
    script, short_args, full_args = SUITES[name]
    args = full_args if full else short_args
    json_path = os.path.join(out_dir, f'{name}.json')
    cmd = [PY, os.path.join(HERE, script), *args, '--json', json_path]
    if loops:
        cmd += ['--loops', loops]
    started = time.monotonic()
    with open(os.path.join(out_dir, f'{name}.txt'), 'w') as out, \
            open(os.path.join(out_dir, f'{name}.log'), 'w') as err:
        out.write('$ ' + ' '.join(cmd) + '\n\n')
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=err)
    seconds = time.monotonic() - started
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        with open(os.path.join(out_dir, f'{name}.txt')) as f:
            skipped = [line.strip() for line in f if line.startswith(SKIPPED)]
        if proc.returncode == 0 and skipped:
            return None, None, seconds, skipped[0]
        with open(os.path.join(out_dir, f'{name}.log')) as f:
            tail = ' | '.join(f.read().strip().splitlines()[-3:])
        return None, None, seconds, f'exit {proc.returncode}: {tail}'
    error = f'exit {proc.returncode} (see {name}.log)' if proc.returncode else None
    return data['summary'], data, seconds, error


def fmt_value(summary):
    unit = summary['unit']
    if unit in ('instr/op', 'instr'):
        return lambda x: f'{x:,.0f}'
    if unit == 'syscalls/req':
        return lambda x: f'{x:.2f}'
    if unit == 'µs':
        return lambda x: f'{x:.1f}'
    if unit == 'bytes':
        return lambda x: f'{x:,.0f}'
    return lambda x: f'{x:.4g}' if x < 1000 else run.fmt_ops(x)


def print_summary(name, summary, data, seconds, error):
    info = data.get('machine', {}) if data else {}
    print(f'## {name}' + (f' ({seconds:.0f} s)' if seconds is not None else ''))
    print()
    if summary is None and error and error.startswith(SKIPPED):
        print(error)
        print()
        return
    if summary is None:
        print(f'failed: {error}')
        print()
        return
    if info:
        load = data.get('load_average') or {}
        print(f"{data.get('date', '?')}; {info.get('cpu')}, {info.get('cores')} cores; "
              f"{info.get('python')}; libuv {info.get('libuv (ourloop)') or '?'}; "
              f"reps {data.get('reps', 1)}"
              + (f"; load average {load.get('before')} before, {load.get('after')} after"
                 if load else ''))
    better = 'higher is better' if summary['higher_is_better'] else 'lower is better'
    print(f"{summary['unit']} ({better}); median (min..max around it); "
          + summary.get('ratio_note', 'ratios > 1: the first loop is better'))
    print()
    print(run.markdown_table(*run.summary_table(summary, fmt_value(summary), 'row')))
    bound = summary.get('client_bound') or {}
    if any(bound.values()):
        print()
        print("`!` client-bound: in at least half of the samples the load generator set the "
              f"pace (on its CPU >= {summary.get('client_bound_threshold', 0.9):.0%} of the "
              'time, or its core that busy and the generator on the CPU at least as much as '
              'the server); the figure is its limit, a lower bound of the server\'s. Rows: '
              + ', '.join(f"{row} ({', '.join(loops)})" for row, loops in bound.items()
                          if loops) + '.')
    cpu = (data or {}).get('summary_cpu')
    if cpu and name in CPU_TABLES:
        print()
        print('Server CPU time per request, µs (lower is better; steadier than req/s when '
              'other processes take the CPU); '
              + cpu.get('ratio_note', 'ratios > 1: the first loop costs less') + ':')
        print()
        print(run.markdown_table(*run.summary_table(cpu, lambda x: f'{x:.1f}', 'row')))
    if error:
        print(f'WARNING: {error}')
    print()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--full', action='store_true',
                   help='full runs, and the callgrind and strace suites (make bench-full)')
    p.add_argument('--only', help='comma-separated suites: ' + ', '.join(SUITES))
    p.add_argument('--loops', help=run.LOOPS_HELP)
    p.add_argument('--out', default=os.environ.get('BENCH_OUT') or None,
                   help='directory of the raw results (default: $BENCH_OUT, else '
                        '~/.cache/ourloop-bench/<UTC time>/)')
    p.add_argument('--publish', metavar='DIR',
                   help="then draw this run's charts into DIR, e.g. docs/_static/bench "
                        '(charts.py; the headline chart needs --full)')
    args = p.parse_args(argv)
    suites = list(SUITES) if args.full else list(SHORT)
    if args.only:
        suites = [s.strip() for s in args.only.split(',') if s.strip()]
        bad = [s for s in suites if s not in SUITES]
        if bad:
            p.error(f'unknown suite(s) {", ".join(bad)}; choose from {", ".join(SUITES)}')
        if not args.full and any(SUITES[s][1] is None for s in suites):
            p.error('instructions, roundtrip and syscalls run with --full only')
    out_dir = os.path.abspath(args.out or default_out())
    os.makedirs(out_dir, exist_ok=True)
    print(f'# ourloop benchmarks ({"full" if args.full else "short"}), '
          f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC')
    print()
    print(f'Raw results: {out_dir}')
    print()
    started = time.monotonic()
    failed, drawn = [], []
    for name in suites:
        print(f'running {name} ...', file=sys.stderr, flush=True)
        summary, data, seconds, error = run_suite(name, args.full, args.loops, out_dir)
        print_summary(name, summary, data, seconds, error)
        sys.stdout.flush()
        if summary is None:
            if not (error or '').startswith(SKIPPED):
                failed.append(name)
            continue
        if error:
            failed.append(name)
        path, why = charts.suite_chart(name, summary, data,
                                       os.path.join(out_dir, f'{name}.png'))
        drawn.append(path or why)
    print(f'Total {time.monotonic() - started:.0f} s. Charts: '
          + ', '.join(sorted({os.path.basename(c) if c.endswith('.png') else c
                              for c in drawn})))
    if args.publish:
        print()
        charts.publish([out_dir], os.path.abspath(args.publish))
    if failed:
        print(f'FAILED: {", ".join(failed)} (see the .log files in {out_dir})')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
