#!/usr/bin/env python3
"""HTTP hello world: uvicorn (httptools, h11) and aiohttp servers on each loop, loaded by wrk.

    python benchmarks/http_bench.py                  # 3 servers, 16 connections, 5 reps of 2 s
    python benchmarks/http_bench.py --quick          # 1 rep of 1 s
    python benchmarks/http_bench.py --only uvicorn-httptools,aiohttp --conns 1,16 --reps 3
    python benchmarks/http_bench.py --server ourloop aiohttp   # one server; prints PORT <n>

(Not `http.py`: that name would shadow the standard library's package.)

Servers (each a fresh subprocess per measurement, pinned to CPU 0, on a
socket bound to 127.0.0.1 port 0 and handed over):

* uvicorn-httptools -- uvicorn's Server.serve() with http="httptools", a raw
  ASGI app answering every request `200 Hello, world!` (text/plain,
  content-length 13); lifespan off, access log off, log level warning;
* uvicorn-h11 -- the same with http="h11";
* aiohttp -- an aiohttp.web Application with one GET route returning
  web.Response(text="Hello, world!"), started with AppRunner (access log
  off) and SockSite.

The loop is made by the benchmark (run.py's loop_factory, the same as every
other suite) and the server runs on it with run_until_complete(); uvicorn's
own loop selection is not used. A server whose framework is not installed
shows n/a.

The load generator is wrk (`apt-get install wrk`; tools/install.sh
installs it), one thread, --conns keep-alive connections (default 16),
pinned to CPU 1, `--duration` whole seconds after a warm-up (50 requests
through http.client, each response checked, then with --wrk-warmup a 1 s
wrk run). A sample is wrk's Requests/sec; non-2xx responses or socket
errors fail it. Without wrk the suite is skipped with a message (exit
status 0, no summary).

Each sample also records wrk's CPU share (its rusage over its run), the
server's (psutil) and how busy wrk's core was (/proc/stat). A cell is
marked `!`, client-bound, when in at least half of its samples wrk set the
pace (echo.is_client_bound: on its CPU >= 90% of the time, or its core
>= 90% busy and wrk on the CPU at least as much as the server).
"""

import argparse
import asyncio
import datetime
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import echo  # noqa: E402  (CPUs, client-bound marks)
import run as bench  # noqa: E402

SERVERS = ('uvicorn-httptools', 'uvicorn-h11', 'aiohttp')
NEEDS = {'uvicorn-httptools': ('uvicorn', 'httptools'), 'uvicorn-h11': ('uvicorn', 'h11'),
         'aiohttp': ('aiohttp',)}
BODY = b'Hello, world!'
WRK_MISSING = ('wrk is not installed (Debian/Ubuntu: apt-get install wrk; '
               'tools/install.sh installs it): the HTTP suite is skipped')


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

async def asgi_hello(scope, receive, send):
    if scope['type'] != 'http':
        return
    await send({'type': 'http.response.start', 'status': 200,
                'headers': [(b'content-type', b'text/plain'),
                            (b'content-length', str(len(BODY)).encode())]})
    await send({'type': 'http.response.body', 'body': BODY})


def _listen():
    # proto IPPROTO_TCP as getaddrinfo() gives it to create_server(): the
    # stdlib loop sets TCP_NODELAY only on sockets whose proto says TCP
    # (base_events._set_nodelay), and without it every two-write response
    # waits out a delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(loop_name, server, cpu):
    """Server mode: serve hello world on a fresh loop, print `PORT <n>`
    (or `NA <reason>`), stop when stdin closes."""
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError):
            pass
    for module in NEEDS[server]:
        try:
            __import__(module)
        except ImportError as exc:
            print(f'NA not available: {module} is not installed ({exc})', flush=True)
            return 0
    loop = bench.loop_factory(loop_name)()
    asyncio.set_event_loop(loop)
    sock = _listen()
    port = sock.getsockname()[1]
    stop = threading.Event()

    def wait_stdin(on_eof):
        sys.stdin.buffer.read()
        stop.set()
        loop.call_soon_threadsafe(on_eof)

    try:
        if server.startswith('uvicorn-'):
            import uvicorn
            config = uvicorn.Config(asgi_hello, http=server.split('-', 1)[1], lifespan='off',
                                    access_log=False, log_level='warning', loop='none')
            srv = uvicorn.Server(config)

            def on_eof():
                srv.should_exit = True
            threading.Thread(target=wait_stdin, args=(on_eof,), daemon=True).start()
            # The port is printed once uvicorn listens: its startup() runs
            # inside serve(), so announce it from a callback after that.
            loop.call_later(0, _announce_when, loop, lambda: srv.started, port)
            loop.run_until_complete(srv.serve(sockets=[sock]))
        else:
            from aiohttp import web

            async def hello(request):
                return web.Response(text=BODY.decode())

            async def main():
                app = web.Application()
                app.router.add_get('/', hello)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.SockSite(runner, sock)
                await site.start()
                done = loop.create_future()
                threading.Thread(target=wait_stdin,
                                 args=(lambda: done.done() or done.set_result(None),),
                                 daemon=True).start()
                print(f'PORT {port}', flush=True)
                await done
                await runner.cleanup()
            loop.run_until_complete(main())
    finally:
        sock.close()
        bench._close_loop(loop)
    return 0


def _announce_when(loop, ready, port):
    if ready():
        print(f'PORT {port}', flush=True)
    else:
        loop.call_later(0.01, _announce_when, loop, ready, port)


def start_server_process(loop_name, server, cpu):
    cmd = [sys.executable, os.path.abspath(__file__), '--server', loop_name, server]
    if cpu is not None:
        cmd += ['--cpu', str(cpu)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=bench._worker_env(loop_name))
    line = proc.stdout.readline().strip()
    if line.startswith('PORT '):
        return proc, int(line.split()[1])
    proc.stdin.close()
    err = proc.stderr.read()
    proc.wait()
    if line.startswith('NA '):
        return None, line[3:]
    tail = err.strip().splitlines()[-3:]
    return None, f'server failed (exit {proc.returncode}): ' + ' | '.join(tail)


# ---------------------------------------------------------------------------
# Load: http.client warm-up (checks the answers), then wrk
# ---------------------------------------------------------------------------

def warm_up(port, n=50):
    """n keep-alive GETs, each answer checked. Returns an error or None."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        for _ in range(n):
            conn.request('GET', '/')
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or body != BODY:
                return f'bad answer: {resp.status} {body[:60]!r}'
    except (OSError, http.client.HTTPException) as exc:
        return f'warm-up failed: {type(exc).__name__}: {exc}'
    finally:
        conn.close()
    return None


_UNITS = {'': 1, 'k': 1e3, 'K': 1e3, 'M': 1e6, 'G': 1e9}


def parse_wrk(text):
    """{'req_per_sec', 'requests', 'non_2xx', 'socket_errors', 'latency_*'}
    from wrk's report."""
    out = {}
    m = re.search(r'Requests/sec:\s*([\d.]+)', text)
    out['req_per_sec'] = float(m.group(1)) if m else None
    m = re.search(r'(\d+) requests in', text)
    out['requests'] = int(m.group(1)) if m else None
    m = re.search(r'Non-2xx or 3xx responses:\s*(\d+)', text)
    out['non_2xx'] = int(m.group(1)) if m else 0
    m = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', text)
    out['socket_errors'] = sum(int(x) for x in m.groups()) if m else 0
    for pct in ('50', '99'):
        m = re.search(rf'^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$', text, re.M)
        if m:
            scale = {'us': 1, 'ms': 1e3, 's': 1e6}[m.group(2)]
            out[f'latency_p{pct}_us'] = float(m.group(1)) * scale
    return out


def run_wrk(port, conns, duration, cpu=None, timeout=None):
    """One wrk run; returns (result, None) or (None, error). The result
    adds wrk's CPU share over its run (its rusage)."""
    cmd = ['wrk', '-t1', f'-c{conns}', f'-d{int(duration)}s', '--latency',
           f'http://127.0.0.1:{port}/']

    def pin():
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError:
                pass
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=pin)
    out = b''
    try:
        out, _ = proc.communicate(timeout=timeout or duration + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None, 'wrk timed out'
    wall = time.monotonic() - t0
    text = out.decode(errors='replace')
    if proc.returncode != 0:
        return None, f'wrk exit {proc.returncode}: ' + ' | '.join(text.strip().splitlines()[-3:])
    result = parse_wrk(text)
    if not result['req_per_sec']:
        return None, 'no Requests/sec in wrk\'s output: ' + text.strip()[-200:]
    if result['non_2xx'] or result['socket_errors']:
        return None, (f"wrk saw {result['non_2xx']} non-2xx responses and "
                      f"{result['socket_errors']} socket errors")
    result['wrk_wall'] = wall
    return result, None


class _ChildCPU:
    """CPU seconds of reaped children (wrk): the difference around a run."""

    def __enter__(self):
        import resource
        self._r = resource
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.c0 = ru.ru_utime + ru.ru_stime
        return self

    def __exit__(self, *exc):
        ru = self._r.getrusage(self._r.RUSAGE_CHILDREN)
        self.seconds = ru.ru_utime + ru.ru_stime - self.c0
        return False


def _core_ticks(cpu):
    """(busy, total) jiffies of one CPU from /proc/stat, or None."""
    try:
        with open('/proc/stat') as f:
            for line in f:
                if line.startswith(f'cpu{cpu} '):
                    t = [int(x) for x in line.split()[1:]]
                    idle = t[3] + (t[4] if len(t) > 4 else 0)    # idle + iowait
                    return sum(t[:8]) - idle, sum(t[:8])
    except (OSError, ValueError):
        pass
    return None


def _proc_cpu(pid):
    try:
        import psutil
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except Exception:
        return None


def measure(loop_name, server, conns, duration, wrk_warmup):
    server_cpu, client_cpu = echo._cpus()
    proc, port = start_server_process(loop_name, server, server_cpu)
    if proc is None:
        return None, port
    try:
        error = warm_up(port)
        if error:
            return None, error
        if wrk_warmup:
            _, error = run_wrk(port, conns, 1, client_cpu)
            if error:
                return None, 'warm-up: ' + error
        s0 = _proc_cpu(proc.pid)
        k0 = _core_ticks(client_cpu) if client_cpu is not None else None
        with _ChildCPU() as child:
            result, error = run_wrk(port, conns, duration, client_cpu)
        k1 = _core_ticks(client_cpu) if client_cpu is not None else None
        s1 = _proc_cpu(proc.pid)
    finally:
        stop_error = echo.stop_server_process(proc)
    if result is None:
        return None, error
    wall = result['wrk_wall']
    result['client_cpu_share'] = child.seconds / wall
    result['server_cpu_share'] = (s1 - s0) / wall if s0 is not None and s1 is not None \
        else None
    # How busy wrk's core was (by wrk or others), as echo_load.c reports it.
    result['client_core_busy'] = ((k1[0] - k0[0]) / (k1[1] - k0[1])
                                  if k0 and k1 and k1[1] > k0[1] else None)
    result.update(loop=loop_name, server=server, conns=conns)
    return result, stop_error


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=None,
                   help='repetitions per (loop, row); default 5, or 1 with --quick')
    p.add_argument('--quick', action='store_true', help='1 repetition of 1 s per measurement')
    p.add_argument('--duration', type=int, default=None,
                   help='whole seconds of wrk per measurement (default 2, 1 with --quick)')
    p.add_argument('--only', metavar='SERVERS', help='comma-separated: ' + ', '.join(SERVERS))
    p.add_argument('--conns', default='16',
                   help='comma-separated numbers of wrk connections, a row each (default 16)')
    p.add_argument('--wrk-warmup', action='store_true',
                   help='a 1 s wrk run before each measured one')
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    p.add_argument('--server', nargs=2, metavar=('LOOP', 'SERVER'),
                   help='server mode: serve on LOOP and print PORT <n>; stops at stdin EOF')
    p.add_argument('--cpu', type=int, default=None, help='server mode: pin to this CPU')
    args = p.parse_args(argv)
    if args.server:
        loop_name, server = args.server
        if server not in SERVERS:
            p.error(f'--server LOOP SERVER: servers {", ".join(SERVERS)}')
        bench.worker_loop(loop_name, p.error)
        return serve(loop_name, server, args.cpu)
    if shutil.which('wrk') is None:
        print(f'SKIPPED: {WRK_MISSING}.')
        print(f'http_bench.py: {WRK_MISSING}', file=sys.stderr)
        return 0
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    duration = args.duration or (1 if args.quick else 2)
    servers = list(SERVERS)
    if args.only:
        servers = [s.strip() for s in args.only.split(',') if s.strip()]
        bad = [s for s in servers if s not in SERVERS]
        if bad:
            p.error(f'unknown server(s) {", ".join(bad)}; choose from {", ".join(SERVERS)}')
    try:
        conns = [int(c) for c in args.conns.split(',') if c.strip()]
    except ValueError:
        p.error('--conns: comma-separated integers')
    loops, missing, versions = bench.select_loops(args.loops, p.error)
    info = bench.machine_info(versions)
    wrk_version = subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout
    info['load_generator'] = (wrk_version.strip().splitlines() or ['wrk'])[0] + \
        ', 1 thread, keep-alive'
    info['frameworks'] = {m: bench._dist_version(m)
                          for m in ('uvicorn', 'httptools', 'h11', 'aiohttp')}
    with bench.prepared_loops(loops):
        return _drive(args, reps, duration, servers, conns, loops, missing, info)


def _drive(args, reps, duration, servers, conns, loops, missing, info):
    cases = [(s, c) for s in servers for c in conns]
    names = [f'{s}/{c}' for s, c in cases]
    samples = {n: {loop: [] for loop in loops} for n in names}
    errors = {n: {} for n in names}
    na = {n: {} for n in names}
    load_before = bench._loadavg()
    started = time.monotonic()
    for rep in range(reps):
        for ci, ((server, c), name) in enumerate(zip(cases, names)):
            k = (rep + ci) % len(loops)
            for loop in loops[k:] + loops[:k]:
                result, error = measure(loop, server, c, duration, args.wrk_warmup)
                if result is None:
                    if error and error.startswith(('not available', 'not implemented')):
                        na[name][loop] = error
                    else:
                        errors[name][loop] = error
                        print(f'  [{rep + 1}/{reps}] {name} on {loop}: ERROR {error}',
                              file=sys.stderr)
                    continue
                if error:
                    errors[name][loop] = error
                samples[name][loop].append(result)
        print(f'  repetition {rep + 1}/{reps} done ({time.monotonic() - started:.0f} s)',
              file=sys.stderr)
    load_after = bench._loadavg()
    summary = bench.summarize_samples(
        'http', 'req/s', names, loops,
        {n: {loop: [r['req_per_sec'] for r in samples[n][loop]] for loop in loops}
         for n in names}, na=na)
    echo.mark_client_bound(summary, samples)
    cpu_summary = bench.summarize_samples(
        'http server CPU', 'us/req', names, loops,
        {n: {loop: [r['server_cpu_share'] / r['req_per_sec'] * 1e6 for r in samples[n][loop]
                    if r.get('server_cpu_share') and r.get('req_per_sec')] for loop in loops}
         for n in names}, higher_is_better=False, na=na)
    print(bench.machine_line(info))
    print(f"Median of {reps} interleaved repetitions, each a fresh server process (CPU 0) "
          f"and {duration} s of {info['load_generator']} (CPU 1); "
          + ', '.join(f'{k} {v}' for k, v in info['frameworks'].items())
          + f'; load average {load_before} before, {load_after} after.')
    bench.print_builds(info, {})
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')
    print()
    print('Requests per second (rows: server/connections): medians (min .. max around '
          'them); ratios > 1: the first loop faster; `!`: client-bound (wrk set the pace):')
    print()
    print(bench.markdown_table(*bench.summary_table(summary, bench.fmt_ops, 'row')))
    if any(cpu_summary['rows'][n][loop] for n in names for loop in loops):
        print()
        print('Server CPU time per request (µs); ratios > 1: the first loop costs less:')
        print()
        print(bench.markdown_table(*bench.summary_table(cpu_summary, lambda x: f'{x:.1f}',
                                                        'row')))
    reasons = sorted({f'{loop}: {why}' for n in names for loop, why in na[n].items()})
    if reasons:
        print()
        print('n/a: ' + '; '.join(reasons))
    bench.print_errors(errors)
    if args.json:
        bench.write_json(args.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'reps': reps, 'duration': duration,
            'load_average': {'before': load_before, 'after': load_after},
            'missing_loops': missing, 'summary': summary, 'summary_cpu': cpu_summary,
            'samples': samples, 'errors': errors,
        })
    return 1 if any(errors.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
