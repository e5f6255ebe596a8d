#!/usr/bin/env python3
"""Reference ceiling: the echo servers of echo.py against an echo server in C on libuv.

    python benchmarks/ceiling.py                   # protocol and unix-protocol, 1/10/100 KiB, 1/16 clients
    python benchmarks/ceiling.py --quick           # 1 repetition, 0.3 s per measurement
    python benchmarks/ceiling.py --only protocol/1k,unix-protocol/100k/16 --reps 3
    python benchmarks/ceiling.py --only 'streams/1k/*' --loops ourloop,uvloop

`uv_echo.c` is an echo server written directly on libuv (no Python): read
callback, uv_try_write(), the rest queued. It is built on demand with
`cc -O2` into benchmarks/.build/ against the libuv ourloop uses: the
vendored tree (vendor/libuv, compiled in) when it is checked out, else the
system's (`pkg-config libuv`); the output names both versions and warns
when they differ. Each row runs the loops' echo.py server of that kind
(default: `protocol`, an asyncio.Protocol writing back in data_received,
over TCP and over a Unix socket) and the C server, interleaved, driven by
the same load generator as echo.py (echo_load.c, pinned to the other CPU,
every echo checked); the C server is pinned like the others. The ratios are
each loop's median over the C server's: how much of what libuv itself can
do a loop reaches (1.00x: all of it).

A cell marked `!` is client-bound: in at least half of its samples the
load generator, not the server, set the pace (echo.is_client_bound), and
the figure is a lower bound of what the server could do (see README.md,
"Is the client the limit?").
"""

import argparse
import datetime
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import echo  # noqa: E402
import run as bench  # noqa: E402

ROOT = os.path.dirname(HERE)
SOURCE = os.path.join(HERE, 'uv_echo.c')
LABEL = 'libuv-c'       # the ceiling's column
DEFAULT_KINDS = ('protocol', 'unix-protocol')

# The libuv sources every unix build compiles, and the Linux/macOS backends
# (as setup.py lists them for the vendored build).
UV_UNIX = ('async.c', 'core.c', 'dl.c', 'fs.c', 'getaddrinfo.c', 'getnameinfo.c',
           'loop-watcher.c', 'loop.c', 'pipe.c', 'poll.c', 'process.c',
           'random-devurandom.c', 'signal.c', 'stream.c', 'tcp.c', 'thread.c', 'tty.c', 'udp.c')
UV_PLATFORM = {
    'linux': ('linux.c', 'linux-core.c', 'linux-inotify.c', 'linux-syscalls.c', 'epoll.c',
              'procfs-exepath.c', 'proctitle.c', 'random-getrandom.c',
              'random-sysctl-linux.c'),
    'darwin': ('darwin.c', 'darwin-proctitle.c', 'fsevents.c', 'kqueue.c', 'bsd-ifaddrs.c',
               'proctitle.c', 'random-getentropy.c'),
}


def vendored_build_flags(vendor):
    """(cflags, libs) compiling the libuv tree at `vendor` into the
    binary, or None if that tree is not there."""
    if not all(os.path.isfile(os.path.join(vendor, p))
               for p in ('include/uv.h', 'src/uv-common.c', 'src/unix/core.c')):
        return None
    plat = 'darwin' if sys.platform == 'darwin' else 'linux'
    src = os.path.join(vendor, 'src')
    sources = sorted(glob.glob(os.path.join(src, '*.c')))
    sources += [p for p in (os.path.join(src, 'unix', n) for n in UV_UNIX + UV_PLATFORM[plat])
                if os.path.isfile(p)]
    defines = (['-D_GNU_SOURCE', '-D_POSIX_C_SOURCE=200112'] if plat == 'linux' else
               ['-D_DARWIN_UNLIMITED_SELECT=1', '-D_DARWIN_USE_64_BIT_INODE=1'])
    # The version header keys the binary's cache name (echo.build_c hashes
    # the flags): another vendored libuv gets another binary.
    with open(os.path.join(vendor, 'include', 'uv', 'version.h'), 'rb') as f:
        tag = hashlib.sha1(f.read()).hexdigest()[:8]
    cflags = [f'-I{os.path.join(vendor, "include")}', f'-I{src}', *defines,
              f'-DUV_ECHO_VENDORED_{tag}', '-w', *sources]
    libs = ['-lpthread'] + (['-ldl', '-lrt'] if plat == 'linux' else [])
    return cflags, libs


def pkg_config_flags():
    """(cflags, libs) of the system libuv by pkg-config, or None."""
    exe = os.environ.get('PKG_CONFIG', 'pkg-config')
    if not shutil.which(exe):
        return None
    try:
        cflags = subprocess.run([exe, '--cflags', 'libuv'], capture_output=True, text=True,
                                timeout=30)
        libs = subprocess.run([exe, '--libs', 'libuv'], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if cflags.returncode or libs.returncode:
        return None
    return cflags.stdout.split(), libs.stdout.split()


def _vendored_version(vendor):
    parts = {}
    try:
        with open(os.path.join(vendor, 'include', 'uv', 'version.h')) as f:
            for line in f:
                bits = line.split()
                if len(bits) == 3 and bits[0] == '#define' and bits[1] in (
                        'UV_VERSION_MAJOR', 'UV_VERSION_MINOR', 'UV_VERSION_PATCH'):
                    parts[bits[1]] = bits[2]
        return '{UV_VERSION_MAJOR}.{UV_VERSION_MINOR}.{UV_VERSION_PATCH}'.format(**parts)
    except (OSError, KeyError):
        return None


def _ourloop_libuv():
    try:
        import ourloop
        return ourloop.libuv_version()
    except Exception:
        return None


def build_server(vendor=None, want=None):
    """Build uv_echo.c against the libuv ourloop uses: the vendored tree
    (vendor/libuv, or `vendor`) or the system's (pkg-config), whichever
    has ourloop's version (`want`; default: ourloop.libuv_version()); when
    neither matches or it is unknown, the vendored tree if there is one.
    Returns (path, how, libuv version) or (None, reason, None)."""
    vendor = vendor or os.path.join(ROOT, 'vendor', 'libuv')
    want = want or _ourloop_libuv()
    flags = vendored_build_flags(vendor)
    how = f'vendored libuv ({os.path.relpath(vendor)}, compiled in)'
    if flags is not None and want and _vendored_version(vendor) != want:
        system = pkg_config_flags()
        exe = os.environ.get('PKG_CONFIG', 'pkg-config')
        if system is not None and subprocess.run(
                [exe, '--modversion', 'libuv'], capture_output=True,
                text=True).stdout.strip() == want:
            flags, how = system, 'system libuv (pkg-config libuv)'
    if flags is None:
        flags = pkg_config_flags()
        how = 'system libuv (pkg-config libuv)'
    if flags is None:
        return None, ('no libuv to build uv_echo.c with: vendor/libuv is empty and '
                      '`pkg-config libuv` finds none (Debian: apt-get install libuv1-dev '
                      'pkg-config)'), None
    path, reason = echo.build_c(SOURCE, tuple(flags[0]), tuple(flags[1]))
    if path is None:
        return None, reason, None
    proc = subprocess.run([path, '--version'], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return None, f'{path} --version failed: {proc.stderr.strip()}', None
    return path, how, proc.stdout.strip()


def start_ceiling(binary, kind, cpu=None):
    """Start the C server for a stream kind (TCP for protocol-like kinds,
    a Unix socket for unix-*). Returns (process, address, tmpdir) or
    (None, reason, None)."""
    tmpdir = None
    if echo.family(kind) == 'unix':
        tmpdir = tempfile.mkdtemp(prefix='uv-echo-')
        cmd = [binary, '--unix', os.path.join(tmpdir, 'echo.sock')]
    elif echo.family(kind) == 'tcp' and not echo.is_tls(kind):
        cmd = [binary, '--port', '0']
    else:
        return None, f'not available: the C server has no {kind}', None
    if cpu is not None:
        cmd += ['--cpu', str(cpu)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if line.startswith('PORT '):
        return proc, int(line.split()[1]), tmpdir
    if line.startswith('PATH '):
        return proc, line[5:], tmpdir
    proc.stdin.close()
    err = proc.stderr.read()
    proc.wait()
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return None, f'uv_echo failed (exit {proc.returncode}): {err.strip()[-300:]}', None


def measure_ceiling(binary, kind, size, conc, duration, warmup, extra_args=()):
    """One measurement of the C server, as echo.measure() makes one of a
    loop's server: a fresh server process, one load-generator run."""
    server_cpu, client_cpu = echo._cpus()
    proc, address, tmpdir = start_ceiling(binary, kind, server_cpu)
    if proc is None:
        return None, address
    try:
        result, error = echo.run_client(address, size, conc, duration=duration, warmup=warmup,
                                        cpu=client_cpu, timeout=60 + 5 * duration,
                                        server_pid=proc.pid, server_cpu=server_cpu,
                                        extra_args=extra_args)
    finally:
        stop_error = echo.stop_server_process(proc)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if result is not None:
        result['loop'] = LABEL
        result['kind'] = kind
    return result, error or stop_error


def select_cases(only):
    """echo.py's stream cases matching --only (default: DEFAULT_KINDS at
    every size, 1 and 16 clients); UDP and TLS have no C ceiling."""
    cases = echo.select_cases(only or ','.join(DEFAULT_KINDS))
    bad = sorted({k for k, _, _ in cases if echo.family(k) == 'udp' or echo.is_tls(k)})
    if bad:
        raise ValueError(f'no C ceiling for {", ".join(bad)} (TCP and Unix stream kinds only)')
    return cases


def ceiling_ratios(summary, loops, label=LABEL):
    """Replace a summary's ratio columns by each loop's median over the
    ceiling's (oriented as the summary: above 1, the loop is better)."""
    higher = summary['higher_is_better']
    summary['reference'] = label        # bench_all.py charts relative to it
    summary['ratio_note'] = (
        f"ratios: each loop's median over the C server's ({label}; 1.00x: as fast as libuv "
        'alone)' if higher else
        f"ratios: the C server's ({label}) median over each loop's (1.00x: as cheap as libuv "
        'alone)')
    summary['ratios'] = {}
    for row, cells in summary['rows'].items():
        c = (cells.get(label) or {}).get('median')
        summary['ratios'][row] = {
            f'{loop}/{label}': ((x / c if higher else c / x) if x and c else None)
            for loop in loops
            for x in [(cells.get(loop) or {}).get('median')]}
    summary['geomean'] = {
        f'{loop}/{label}': bench.geomean([summary['ratios'][r][f'{loop}/{label}']
                                          for r in summary['rows']])
        for loop in loops}
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=None,
                   help='repetitions per (server, case); default 5, or 1 with --quick')
    p.add_argument('--quick', action='store_true', help='1 repetition, 0.3 s per measurement')
    p.add_argument('--duration', type=float, default=None,
                   help='seconds of round trips per measurement (default 2, 0.3 with --quick)')
    p.add_argument('--only', metavar='FILTERS',
                   help="echo.py's kind[/size[/clients]] filters over the TCP and Unix stream "
                        'kinds (default: ' + ','.join(DEFAULT_KINDS) + ')')
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    args = p.parse_args(argv)
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    duration = args.duration or (0.3 if args.quick else 2.0)
    warmup = 0.1 if args.quick else 0.3
    try:
        cases = select_cases(args.only)
    except ValueError as exc:
        p.error(str(exc))
    loops, missing, versions = bench.select_loops(args.loops, p.error)
    binary, how, uv_version = build_server()
    if binary is None:
        print(f'ceiling.py: cannot build the C server: {how}', file=sys.stderr)
        return 2
    client_kind, client_desc = echo.select_client('c')
    if client_kind != 'c':
        print('ceiling.py: needs the C load generator (a C compiler)', file=sys.stderr)
        return 2
    info = bench.machine_info(versions)
    info['load_generator'] = client_desc + '; echoes checked byte for byte'
    info['ceiling'] = f'{os.path.relpath(SOURCE)} on libuv {uv_version}, {how}'
    with bench.prepared_loops(loops):
        return _drive(args, reps, duration, warmup, cases, loops, missing, info, binary,
                      uv_version)


def _drive(args, reps, duration, warmup, cases, loops, missing, info, binary, uv_version):
    names = [echo.case_name(*c) for c in cases]
    columns = loops + [LABEL]
    print(f'{len(cases)} cases x {len(columns)} servers x {reps} reps, {duration} s each',
          file=sys.stderr)
    by_name = dict(zip(names, cases))

    def measure(name, col):
        kind, size_name, conc = by_name[name]
        size = echo.case_size(kind, size_name)
        if col == LABEL:
            return measure_ceiling(binary, kind, size, conc, duration, warmup)
        return echo.measure(col, kind, size, conc, duration, warmup)

    samples, errors, na, load_before, load_after = bench.interleaved(
        names, columns, reps, measure)

    summary = bench.summarize_samples(
        'ceiling', 'req/s', names, columns,
        {n: {c: [r['req_per_sec'] for r in samples[n][c]] for c in columns} for n in names},
        na=na)
    ceiling_ratios(summary, loops)
    echo.mark_client_bound(summary, samples)
    cpu_summary = bench.summarize_samples(
        'ceiling server CPU', 'us/req', names, columns,
        {n: {c: [r['server_cpu_share'] / r['req_per_sec'] * 1e6 for r in samples[n][c]
                 if r.get('server_cpu_share') and r.get('req_per_sec')] for c in columns}
         for n in names}, higher_is_better=False, na=na)
    ceiling_ratios(cpu_summary, loops)

    ours = info.get('libuv (ourloop)')
    print(bench.machine_line(info))
    print(f'Median of {reps} interleaved repetitions, each a fresh server process and '
          f'load-generator run; {duration} s of round trips after {warmup} s warm-up; load '
          f'average {load_before} before, {load_after} after.')
    print(f"Ceiling: {info['ceiling']}." + (
        f' WARNING: ourloop runs on libuv {ours}, the C server on {uv_version}.'
        if ours and ours != uv_version else ''))
    print(f"Load generator: {info['load_generator']}.")
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')
    print()
    print(f'Requests per second: medians (min .. max around them); ratios: each loop\'s '
          f'median over the C server\'s ({LABEL}); `!`: client-bound (the load generator '
          'set the pace):')
    print()
    print(bench.markdown_table(*bench.summary_table(summary, bench.fmt_ops, 'row')))
    print()
    print('Server CPU time per request (µs); ratios: the C server\'s over each loop\'s '
          '(1.00x: as cheap as libuv alone):')
    print()
    print(bench.markdown_table(*bench.summary_table(cpu_summary, lambda x: f'{x:.1f}', 'row')))
    bench.print_errors(errors)
    if args.json:
        bench.write_json(args.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'reps': reps, 'duration': duration, 'warmup': warmup,
            'load_average': {'before': load_before, 'after': load_after},
            'ceiling_libuv': uv_version, 'missing_loops': missing,
            'summary': summary, 'summary_cpu': cpu_summary,
            'samples': samples, 'errors': errors,
        })
    return 1 if any(errors.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
