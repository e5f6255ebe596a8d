#!/usr/bin/env python3
"""System calls per request of the echo servers (benchmarks/echo.py), by strace.

    python benchmarks/syscalls.py                         # every loop x stream kind (TCP, Unix)
    python benchmarks/syscalls.py --loops asyncio,uvloop --only sock,protocol --n 2000

For each loop and server kind, the server (echo.py --server) runs under
`strace -c -f` while one client (echo.py's load generator: echo_load.c, or
echo_client.py with --client py) does request/response
exchanges of --size bytes (1 KiB). The server answers each whole request with
ONE write, or with TWO writes (the first 32 bytes, a "header", then the
body). To remove start-up and shutdown (imports, accept, close), each
configuration runs twice, with --base and with --base + --n exchanges; the
difference divided by --n is the count per request (the default base
run connects and closes without an exchange).

`--only udp` (not in the default set): the UDP echo server (echo.py's
`udp` kind) per datagram echoed, with 1 client socket x 1 datagram in
flight and 16 x 4 (rows udp/1x1, udp/16x4; --size 1024 by default). The
UDP load generator has no exact-count mode: two runs of 1 and 3 seconds,
the difference of the counts over the difference of the datagrams echoed.

Without strace the script says so and exits 0.
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import echo  # noqa: E402
import run as bench  # noqa: E402

GROUPS = (
    ('epoll_wait', {'epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'poll', 'ppoll', 'select',
                    'pselect6'}),
    ('recvfrom/read', {'recvfrom', 'recvmsg', 'recvmmsg', 'read', 'readv'}),
    ('sendto/write/writev', {'sendto', 'sendmsg', 'sendmmsg', 'write', 'writev'}),
)


def parse_strace_c(path):
    """{syscall: (calls, errors)} from the summary `strace -c -o path` wrote."""
    out = {}
    with open(path) as f:
        for line in f:
            tokens = line.split()
            if len(tokens) < 5 or tokens[-1] == 'total':
                continue
            try:
                float(tokens[0])
                calls = int(tokens[3])
            except ValueError:
                continue
            errors = int(tokens[4]) if len(tokens) == 6 else 0
            out[tokens[-1]] = (calls, errors)
    return out


def traced_run(loop_name, kind, respond, size, count, cpus):
    """Counts of one server run under strace with `count` exchanges."""
    fd, path = tempfile.mkstemp(prefix='echo-strace-', suffix='.txt')
    os.close(fd)
    try:
        proc, port = echo.start_server_process(
            loop_name, kind, respond, size, cpus[0],
            prefix=('strace', '-c', '-f', '-o', path))
        if proc is None:
            return None, port
        try:
            result, error = echo.run_client(port, size, 1, count=count, cpu=cpus[1],
                                            timeout=300)
        finally:
            stop_error = echo.stop_server_process(proc, timeout=60)
        if error or stop_error:
            return None, error or stop_error
        if result['requests'] != count:
            return None, f'{result["requests"]} exchanges instead of {count}'
        return parse_strace_c(path), None
    finally:
        os.unlink(path)


def traced_udp_run(loop_name, size, conc, window, seconds, cpus):
    """(counts, datagrams echoed) of one UDP server run under strace."""
    fd, path = tempfile.mkstemp(prefix='echo-strace-', suffix='.txt')
    os.close(fd)
    try:
        proc, port = echo.start_server_process(
            loop_name, 'udp', 'echo', size, cpus[0],
            prefix=('strace', '-c', '-f', '-o', path))
        if proc is None:
            return None, port
        try:
            result, error = echo.run_client(port, size, conc, duration=seconds, cpu=cpus[1],
                                            timeout=300, udp_window=window)
        finally:
            stop_error = echo.stop_server_process(proc, timeout=60)
        if error or stop_error:
            return None, error or stop_error
        return (parse_strace_c(path), result['requests']), None
    finally:
        os.unlink(path)


def per_datagram(loop_name, size, conc, window, cpus):
    runs = []
    for seconds in (1, 3):
        res, error = traced_udp_run(loop_name, size, conc, window, seconds, cpus)
        if res is None:
            return None, error
        runs.append(res)
    (small, n_small), (big, n_big) = runs
    n = n_big - n_small
    if n <= 0:
        return None, 'no more datagrams echoed in the longer run'
    calls, errors = {}, 0.0
    for name in set(small) | set(big):
        c_small, e_small = small.get(name, (0, 0))
        c_big, e_big = big.get(name, (0, 0))
        calls[name] = (c_big - c_small) / n
        errors += (e_big - e_small) / n
    return {'calls': calls, 'errors': errors}, None


def per_request(loop_name, kind, respond, size, base, n, cpus):
    small, error = traced_run(loop_name, kind, respond, size, base, cpus)
    if small is None:
        return None, error
    big, error = traced_run(loop_name, kind, respond, size, base + n, cpus)
    if big is None:
        return None, error
    calls, errors = {}, 0.0
    for name in set(small) | set(big):
        c_small, e_small = small.get(name, (0, 0))
        c_big, e_big = big.get(name, (0, 0))
        calls[name] = (c_big - c_small) / n
        errors += (e_big - e_small) / n
    return {'calls': calls, 'errors': errors}, None


def main(argv=None):
    p = argparse.ArgumentParser(description='System calls per request of the echo servers.')
    p.add_argument('--n', type=int, default=2000, help='exchanges measured (default 2000)')
    p.add_argument('--base', type=int, default=0,
                   help='exchanges of the baseline run that is subtracted (default 0: connect, then close)')
    p.add_argument('--size', type=int, default=1024, help='message size (default 1024)')
    p.add_argument('--only', metavar='KINDS',
                   help='comma-separated kinds: ' + ', '.join(echo.STREAM_KINDS)
                   + ', udp (per datagram; not in the default set)')
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--json', metavar='FILE', help='also write the counts to FILE')
    p.add_argument('--client', choices=('c', 'py'), default='c',
                   help='load generator, as in echo.py: c = echo_load.c (built on demand), '
                        'py = echo_client.py (default: c)')
    args = p.parse_args(argv)

    if not shutil.which('strace'):
        print('strace is not installed (apt-get install -y strace): nothing measured.')
        return 0

    # The stream kinds (TCP and Unix sockets); the UDP load generator has no
    # exact-count mode.
    kinds = list(echo.STREAM_KINDS)
    if args.only:
        kinds = [k.strip() for k in args.only.split(',') if k.strip()]
        bad = [k for k in kinds if k not in echo.STREAM_KINDS and k != 'udp']
        if bad:
            p.error(f'unknown kind(s) {", ".join(bad)}')
    loops, missing, versions = bench.select_loops(args.loops, p.error)
    _, client_desc = echo.select_client(args.client)
    info = bench.machine_info(versions)
    cpus = echo._cpus()

    rows, detail, errors = [], [], []
    totals, na = {}, {}
    with bench.prepared_loops(loops):
        for kind in kinds:
            for loop_name in loops:
                variants = ((('echo', '1x1'), ('echo', '16x4')) if kind == 'udp'
                            else (('one', '1'), ('two', '2')))
                for respond, label in variants:
                    head = [loop_name, kind, label]
                    print(f'  {loop_name} {kind} {label}...', file=sys.stderr)
                    if kind == 'udp':
                        conc, window = (int(x) for x in label.split('x'))
                        res, error = per_datagram(loop_name, args.size, conc, window, cpus)
                    else:
                        res, error = per_request(loop_name, kind, respond, args.size,
                                                 args.base, args.n, cpus)
                    if res is None:
                        if error.startswith(('not implemented', 'not available')):
                            na.setdefault(f'{kind}/{label}', {})[loop_name] = error
                            rows.append(head + ['n/a (not implemented yet)'] + [''] * 5)
                        else:
                            errors.append(f'{loop_name} {kind} {respond}: {error}')
                            rows.append(head + ['error'] + [''] * 5)
                        continue
                    calls = res['calls']
                    grouped, seen = [], set()
                    for _, names in GROUPS:
                        grouped.append(sum(v for k, v in calls.items() if k in names))
                        seen |= names
                    other = sum(v for k, v in calls.items() if k not in seen)
                    total = sum(calls.values())
                    totals.setdefault(f'{kind}/{label}', {})[loop_name] = [total]
                    rows.append(head + [f'{x:.2f}' for x in grouped]
                                + [f'{other:.2f}', f'{total:.2f}', f'{res["errors"]:.2f}'])
                    names = sorted((k for k, v in calls.items() if abs(v) >= 0.01),
                                   key=lambda k: -calls[k])
                    detail.append(head + [', '.join(f'{k} {calls[k]:.2f}' for k in names)])

    print()
    print(bench.machine_line(info) + (f", commit {info['git']}" if 'git' in info else ''))
    print(f'Server system calls per request (all threads, strace -c -f): {args.size}-byte '
          f'requests, one client, (runs of {args.base + args.n} minus {args.base} '
          f'exchanges) / {args.n}. "writes": the response as 1 write or as 2 '
          f'(32-byte header + body); udp: per datagram echoed, client sockets x '
          f'datagrams in flight, (3 s run minus 1 s run) / the difference of the '
          f'datagrams echoed. Load generator: {client_desc}.')
    print()
    header = ['loop', 'kind', 'writes'] + [g for g, _ in GROUPS] + ['others', 'total',
                                                                   'of which failed']
    print(bench.markdown_table(header, rows))
    print()
    print('By syscall name (per request, at least 0.01):')
    print()
    print(bench.markdown_table(['loop', 'kind', 'writes', 'syscalls per request'], detail))
    summary = bench.summarize_samples(
        'syscalls', 'syscalls/req',
        [f'{k}/{w}' for k in kinds for w in (('1x1', '16x4') if k == 'udp' else ('1', '2'))],
        loops,
        totals, higher_is_better=False, na=na)
    print()
    print('Total per request; ratios > 1: the first loop makes fewer system calls:')
    print()
    print(bench.markdown_table(*bench.summary_table(summary, lambda x: f'{x:.2f}',
                                                    'kind/writes', spreads=False)))
    if args.json:
        bench.write_json(args.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'n': args.n, 'base': args.base, 'size': args.size,
            'summary': summary, 'errors': errors})
    if errors:
        print()
        print('Errors:')
        for e in errors:
            print('  ' + e)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
