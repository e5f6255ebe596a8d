#!/usr/bin/env python3
"""Latency of one request: p50, p90, p99 of 1 KiB echo round trips, one client, one at a time.

    python benchmarks/latency.py                     # protocol, buffered, streams, sock; 5 reps
    python benchmarks/latency.py --quick             # 1 repetition, 0.3 s each
    python benchmarks/latency.py --kinds protocol,streams --reps 3 --duration 0.5
    python benchmarks/latency.py --size 10240 --no-ceiling

One load-generator connection (echo_load.c --conc 1 --latency, pinned to
the other CPU) sends a request, waits for its whole echo, checks it and
sends the next, for --duration seconds after a warm-up; it records how long
each exchange took, from its first byte sent to the last byte of its echo
received (clock_gettime(CLOCK_MONOTONIC)). A sample is one such run on a
fresh server process (echo.py's server of that kind, pinned to CPU 0); its
p50, p90 and p99 are the nearest-rank percentiles of all its exchanges.
The table shows, per kind, the median over the repetitions of the samples'
p50, p90 and p99, with the min..max of the samples, and ourloop's ratio to
each other loop (above 1: ourloop answers sooner). The column `libuv-c` is
ceiling.py's echo server in C on libuv: the latency of libuv and the
kernel alone, the floor under every loop (--no-ceiling leaves it out).

p99 on a shared 2-core machine mostly measures the other processes: a
server or client preempted by another process waits out its time slice
(about 8 ms here, for every loop and the C server alike). Compare p50 and
p90 first; the p99s of a quiet machine are much closer to them.
"""

import argparse
import datetime
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import ceiling  # noqa: E402
import echo  # noqa: E402
import run as bench  # noqa: E402

KINDS = ('protocol', 'buffered', 'streams', 'sock')
PERCENTILES = ('p50', 'p90', 'p99')


def measure_one(col, kind, size, duration, warmup, binary):
    """One sample: a fresh server (a loop's, or the C ceiling's) and one
    latency run of the load generator. Returns (result, error)."""
    if col == ceiling.LABEL:
        return ceiling.measure_ceiling(binary, kind, size, 1, duration, warmup,
                                       extra_args=('--latency',))
    server_cpu, client_cpu = echo._cpus()
    proc, address = echo.start_server_process(col, kind, 'echo', size, server_cpu)
    if proc is None:
        return None, address
    try:
        result, error = echo.run_client(address, size, 1, duration=duration, warmup=warmup,
                                        cpu=client_cpu, timeout=60 + 5 * duration,
                                        server_pid=proc.pid, server_cpu=server_cpu,
                                        extra_args=('--latency',))
    finally:
        stop_error = echo.stop_server_process(proc)
    if result is not None:
        result['loop'] = col
        result['kind'] = kind
        if not result.get('latency_us'):
            return None, 'the load generator recorded no exchange'
    return result, error or stop_error


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=None,
                   help='repetitions per (server, kind); default 5, or 1 with --quick')
    p.add_argument('--quick', action='store_true', help='1 repetition, 0.3 s per measurement')
    p.add_argument('--duration', type=float, default=None,
                   help='seconds of round trips per sample (default 2, 0.3 with --quick)')
    p.add_argument('--kinds', default=','.join(KINDS),
                   help='comma-separated echo.py stream kinds over TCP (default: '
                        + ','.join(KINDS) + ')')
    p.add_argument('--size', type=int, default=1024, help='request size in bytes (default 1024)')
    p.add_argument('--no-ceiling', action='store_true',
                   help='leave out the C server on libuv (the libuv-c column)')
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    args = p.parse_args(argv)
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    duration = args.duration or (0.3 if args.quick else 2.0)
    warmup = 0.1 if args.quick else 0.3
    kinds = [k.strip() for k in args.kinds.split(',') if k.strip()]
    bad = [k for k in kinds if k not in echo.STREAM_KINDS]
    if bad or not kinds:
        p.error(f'unknown kind(s) {", ".join(bad)}; choose from {", ".join(echo.STREAM_KINDS)}')
    loops, missing, versions = bench.select_loops(args.loops, p.error)
    if echo.select_client('c')[0] != 'c':
        print('latency.py: needs the C load generator (a C compiler)', file=sys.stderr)
        return 2
    binary = None
    info = bench.machine_info(versions)
    info['load_generator'] = echo._client[2] + ' --latency; echoes checked byte for byte'
    if not args.no_ceiling:
        binary, how, uv_version = ceiling.build_server()
        if binary is None:
            print(f'NOTE: no libuv-c column: {how}', file=sys.stderr)
        else:
            info['ceiling'] = f'{os.path.relpath(ceiling.SOURCE)} on libuv {uv_version}, {how}'
    columns = loops + ([ceiling.LABEL] if binary else [])
    with bench.prepared_loops(loops):
        return _drive(args, reps, duration, warmup, kinds, loops, columns, missing, info, binary)


def _drive(args, reps, duration, warmup, kinds, loops, columns, missing, info, binary):
    samples, errors, na, load_before, load_after = bench.interleaved(
        kinds, columns, reps,
        lambda kind, col: measure_one(col, kind, args.size, duration, warmup, binary))

    rows = [f'{kind}/{pct}' for kind in kinds for pct in PERCENTILES]
    values = {f'{kind}/{pct}': {c: [r['latency_us'][pct] for r in samples[kind][c]]
                                for c in columns}
              for kind in kinds for pct in PERCENTILES}
    row_na = {f'{kind}/{pct}': na[kind] for kind in kinds for pct in PERCENTILES}
    summary = bench.summarize_samples('latency', 'µs', rows, columns, values,
                                      higher_is_better=False, na=row_na)

    print(bench.machine_line(info))
    print(f'{args.size} B requests, one connection, one request at a time; median of {reps} '
          f'interleaved samples, each a fresh server process and {duration} s of round trips '
          f'after {warmup} s warm-up; load average {load_before} before, {load_after} after.')
    print(f"Load generator: {info['load_generator']}.")
    if info.get('ceiling'):
        print(f"{ceiling.LABEL}: {info['ceiling']}.")
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')
    print()
    print('Round-trip time, µs (lower is better): the median of the samples\' percentile '
          '(min .. max around it); ratios > 1: the first loop answers sooner:')
    print()
    print(bench.markdown_table(*bench.summary_table(summary, lambda x: f'{x:.1f}', 'kind/pct')))
    print()
    print('Requests per second of the same runs (one at a time: 1e6 / mean latency):')
    print()
    rate = bench.summarize_samples(
        'latency req/s', 'req/s', kinds, columns,
        {k: {c: [r['req_per_sec'] for r in samples[k][c]] for c in columns} for k in kinds},
        na=na)
    print(bench.markdown_table(*bench.summary_table(rate, bench.fmt_ops, 'kind')))
    bench.print_errors(errors)
    if args.json:
        bench.write_json(args.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'reps': reps, 'duration': duration, 'warmup': warmup,
            'size': args.size, 'load_average': {'before': load_before, 'after': load_after},
            'missing_loops': missing, 'summary': summary, 'summary_rate': rate,
            'samples': samples, 'errors': errors,
        })
    return 1 if any(errors.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
