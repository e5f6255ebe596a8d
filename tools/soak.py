#!/usr/bin/env python3
"""`make soak`: one loop under every kind of work at once, checked for growth.

    python tools/soak.py                   # ourloop, then the stdlib loop for reference
    python tools/soak.py --loops ourloop   # one loop only
    SOAK_SCALE=10 python tools/soak.py     # ten times the work (or --scale 10)
    python tools/soak.py --json FILE       # also write the figures to FILE
    python tools/soak.py --only tcp,timers --rounds 10
                                           # some kinds of work alone, in more rounds:
                                           # which kind makes RSS grow, and does it go on

Each loop runs in a fresh process, which serves and drives, concurrently:
short TCP and Unix stream connections (plain and TLS; at scale 1, 100,000
connections in all), UDP exchanges, child processes with pipes, timers
created and half of them cancelled, call_soon_threadsafe() from threads and
run_in_executor() jobs. A warm-up round of the same work (a tenth of it)
comes first; then the process's open fds and RSS (after gc.collect()) and
the loop's tables are read before and after the main round.

The main work runs in ROUNDS (--rounds) equal rounds. ourloop fails the run when:
- an fd more is open after the last round than before the first;
- RSS grew by more than RSS_LIMIT_MB from the end of the first round to the
  end of the last (the first round may still raise the allocator's
  high-water mark, and the after-warm-up figure varies by 15 MB from run
  to run; a leak goes on growing: 100 bytes per connection is 6.7 MB over
  rounds 2 and 3 at scale 1);
- one of its tables (ready queue, timers, libuv handles held, open
  transports, fd watchers, pending flushes) is not back to its size before.
The stdlib loop's figures are printed as the reference line; they are not
judged. Needs psutil (the `test` extra) and the openssl command (for the
TLS certificate).
"""

import argparse
import asyncio
import gc
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

RSS_LIMIT_MB = 10.0
# The main work runs in this many equal rounds; RSS is judged from the end
# of the first to the end of the last.
ROUNDS = 3

# Work per round at scale 1 (the warm-up round does a tenth).
BASE = {
    'tcp': 45_000, 'unix': 45_000, 'tcp_tls': 5_000, 'unix_tls': 5_000,
    'udp': 50_000, 'spawn': 300, 'timers': 200_000, 'threadsafe': 100_000,
    'executor': 20_000,
}
CONCURRENCY = 16
MESSAGE = b'x' * 1024


def new_loop(kind):
    if kind == 'ourloop':
        import ourloop
        return ourloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def table_sizes(loop):
    """ourloop's internal tables (empty for the stdlib loop, which has no
    such accessor: its reference line is fds and RSS)."""
    sizes = getattr(loop, '_table_sizes', None)
    return dict(sizes()) if sizes is not None else {}


def process_figures():
    import psutil
    gc.collect()
    proc = psutil.Process()
    return {'fds': proc.num_fds(), 'rss_mb': proc.memory_info().rss / 2 ** 20,
            'cpu_s': sum(proc.cpu_times()[:2])}


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class DatagramEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class DatagramClient(asyncio.DatagramProtocol):
    def __init__(self):
        self.waiter = None

    def datagram_received(self, data, addr):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def in_parallel(count, worker):
    """Run worker(i) for i in range(count), CONCURRENCY at a time."""
    next_index = 0

    async def lane():
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            await worker(i)

    await asyncio.gather(*(lane() for _ in range(min(CONCURRENCY, count))))


async def connections(count, connect):
    async def one(_):
        reader, writer = await connect()
        writer.write(MESSAGE)
        await reader.readexactly(len(MESSAGE))
        writer.close()
        await writer.wait_closed()
    await in_parallel(count, one)


async def udp(loop, count):
    server, _ = await loop.create_datagram_endpoint(DatagramEcho, local_addr=('127.0.0.1', 0))
    addr = server.get_extra_info('sockname')
    clients = [await loop.create_datagram_endpoint(DatagramClient, remote_addr=addr)
               for _ in range(4)]

    async def one(i):
        transport, protocol = clients[i % len(clients)]
        while True:
            protocol.waiter = loop.create_future()
            transport.sendto(MESSAGE)
            try:
                await asyncio.wait_for(protocol.waiter, 1.0)
                return
            except asyncio.TimeoutError:  # a lost datagram: send again
                continue
    # One exchange per client at a time (a lane per client).
    next_index = 0

    async def lane(c):
        nonlocal next_index
        while next_index < count:
            next_index += 1
            await one(c)
    await asyncio.gather(*(lane(c) for c in range(len(clients))))
    for transport, _ in clients:
        transport.close()
    server.close()


async def spawns(count):
    async def one(_):
        proc = await asyncio.create_subprocess_exec(
            'cat', stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(MESSAGE)
        assert out == MESSAGE and proc.returncode == 0
    await in_parallel(count, one)


async def timers(loop, count):
    done = loop.create_future()
    fired = 0
    # Every other timer of each batch is cancelled: a batch of n keeps n // 2.
    batch = 1000
    expected = sum((min(start + batch, count) - start) // 2 for start in range(0, count, batch))

    def fire():
        nonlocal fired
        fired += 1
        if fired == expected and not done.done():
            done.set_result(None)

    for start in range(0, count, batch):
        handles = [loop.call_later(0.001 * (i % 20), fire) for i in range(start, min(start + batch, count))]
        for handle in handles[::2]:
            handle.cancel()
        await asyncio.sleep(0)
    if expected:
        await done


async def threadsafe(loop, count):
    done = loop.create_future()
    got = 0

    def arrived():
        nonlocal got
        got += 1
        if got == count and not done.done():
            done.set_result(None)

    def post(n):
        for _ in range(n):
            loop.call_soon_threadsafe(arrived)

    threads = [threading.Thread(target=post, args=(count // 4 + (i < count % 4),))
               for i in range(4)]
    for t in threads:
        t.start()
    if count:
        await done
    for t in threads:
        t.join()


async def executor(loop, count):
    async def one(i):
        assert await loop.run_in_executor(None, abs, -i) == i
    await in_parallel(count, one)


async def round_of_work(loop, scale, tls, sock_dir, only=None):
    """One round of every kind of work (of the kinds in `only`, when given)."""
    n = {k: max(1, int(v * scale)) if only is None or k in only else 0 for k, v in BASE.items()}
    tcp_server = await loop.create_server(Echo, '127.0.0.1', 0)
    tcp_port = tcp_server.sockets[0].getsockname()[1]
    tls_server = await loop.create_server(Echo, '127.0.0.1', 0, ssl=tls['server'])
    tls_port = tls_server.sockets[0].getsockname()[1]
    unix_path = os.path.join(sock_dir, 'plain.sock')
    unix_server = await loop.create_unix_server(Echo, unix_path)
    unix_tls_path = os.path.join(sock_dir, 'tls.sock')
    unix_tls_server = await loop.create_unix_server(Echo, unix_tls_path, ssl=tls['server'])
    client_ctx = tls['client']
    try:
        await asyncio.gather(
            connections(n['tcp'], lambda: asyncio.open_connection('127.0.0.1', tcp_port)),
            connections(n['unix'], lambda: asyncio.open_unix_connection(unix_path)),
            connections(n['tcp_tls'], lambda: asyncio.open_connection(
                '127.0.0.1', tls_port, ssl=client_ctx, server_hostname='localhost')),
            connections(n['unix_tls'], lambda: asyncio.open_unix_connection(
                unix_tls_path, ssl=client_ctx, server_hostname='localhost')),
            udp(loop, n['udp']),
            spawns(n['spawn']),
            timers(loop, n['timers']),
            threadsafe(loop, n['threadsafe']),
            executor(loop, n['executor']),
        )
    finally:
        for server in (tcp_server, tls_server, unix_server, unix_tls_server):
            server.close()
            await server.wait_closed()
    return sum(n[k] for k in ('tcp', 'unix', 'tcp_tls', 'unix_tls'))


async def settle(loop, start_fds):
    """Let closes the loop completes in later iterations happen (a
    transport's deferred close, a reaped child's pipes)."""
    import psutil
    proc = psutil.Process()
    deadline = time.monotonic() + 5
    while proc.num_fds() > start_fds and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def worker(kind, scale, certs_dir, only=None, n_rounds=ROUNDS):
    tls = {'server': ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),
           'client': ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)}
    tls['server'].load_cert_chain(os.path.join(certs_dir, 'server.pem'),
                                  os.path.join(certs_dir, 'server.key'))
    tls['client'].load_verify_locations(os.path.join(certs_dir, 'ca.pem'))
    sock_dir = tempfile.mkdtemp(prefix='ol-soak-', dir='/tmp')
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(round_of_work(loop, scale / 10, tls, sock_dir, only))
        before = process_figures()
        loop.run_until_complete(settle(loop, before['fds']))
        before = process_figures()
        tables_before = table_sizes(loop)
        start = time.monotonic()
        conns = 0
        rounds = []
        for _ in range(n_rounds):
            conns += loop.run_until_complete(round_of_work(loop, scale / n_rounds, tls, sock_dir, only))
            loop.run_until_complete(settle(loop, before['fds']))
            rounds.append(process_figures())
        seconds = time.monotonic() - start
        after = rounds[-1]
        tables_after = table_sizes(loop)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        shutil.rmtree(sock_dir, ignore_errors=True)
    return {'loop': kind, 'scale': scale, 'connections': conns, 'seconds': seconds,
            'before': before, 'after': after, 'rounds': rounds,
            'tables_before': tables_before, 'tables_after': tables_after}


def judge(result, rss_limit_mb):
    """The failures of one result (empty: it passes)."""
    problems = []
    before, after = result['before'], result['after']
    if after['fds'] > before['fds']:
        problems.append(f"fds grew: {before['fds']} -> {after['fds']}")
    # RSS: from the end of the first round to the end of the last (the
    # first may still raise the allocator's high-water mark; a leak keeps
    # growing round after round).
    rounds = result.get('rounds') or [before, after]
    growth = rounds[-1]['rss_mb'] - rounds[0]['rss_mb']
    if growth > rss_limit_mb:
        problems.append(f'RSS grew by {growth:.1f} MB over rounds 1 to {len(rounds)} '
                        f'(limit {rss_limit_mb} MB)')
    for name, size in result['tables_after'].items():
        if size > result['tables_before'].get(name, 0):
            problems.append(f"table {name}: {result['tables_before'].get(name, 0)} -> {size}")
    return problems


def make_certs(directory):
    from tls_certs import make_certs as make
    make(directory)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--loops', default='ourloop,asyncio')
    parser.add_argument('--scale', type=float, default=float(os.environ.get('SOAK_SCALE', '1')))
    parser.add_argument('--rss-limit-mb', type=float, default=RSS_LIMIT_MB)
    parser.add_argument('--json', metavar='FILE')
    parser.add_argument('--only', metavar='KINDS',
                        help='comma-separated kinds of work to run alone: ' + ','.join(BASE))
    parser.add_argument('--rounds', type=int, default=ROUNDS,
                        help=f'main rounds the work is split into (default {ROUNDS})')
    parser.add_argument('--worker', nargs=2, metavar=('LOOP', 'CERTS_DIR'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = None
    if args.only:
        only = args.only.split(',')
        unknown = sorted(set(only) - set(BASE))
        if unknown:
            parser.error(f"unknown kind(s) of work: {', '.join(unknown)} (known: {', '.join(BASE)})")
    if args.rounds < 2:
        parser.error('--rounds: at least 2 (growth is judged from the first round to the last)')
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.scale, args.worker[1], only, args.rounds)))
        return 0
    certs_dir = tempfile.mkdtemp(prefix='ol-soak-certs-')
    results = []
    try:
        make_certs(certs_dir)
        for kind in args.loops.split(','):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), '--scale', str(args.scale),
                 '--rounds', str(args.rounds), *(['--only', args.only] if args.only else []),
                 '--worker', kind, certs_dir],
                stdout=subprocess.PIPE, check=True, text=True, cwd=ROOT).stdout
            results.append(json.loads(out.splitlines()[-1]))
    finally:
        shutil.rmtree(certs_dir, ignore_errors=True)
    failed = False
    print(f'soak, scale {args.scale:g}, {args.rounds} rounds'
          + (f', only {args.only}' if args.only else '') + f' (Python {sys.version.split()[0]})')
    print(f"{'loop':8} {'conns':>8} {'s':>6} {'conn/s':>8} {'fds':>9} {'RSS MB':>15} {'CPU s':>7}  verdict")
    for r in results:
        b, a = r['before'], r['after']
        problems = judge(r, args.rss_limit_mb) if r['loop'] == 'ourloop' else []
        verdict = 'ok' if r['loop'] == 'ourloop' and not problems else (
            'reference' if r['loop'] != 'ourloop' else 'FAILED')
        print(f"{r['loop']:8} {r['connections']:>8,} {r['seconds']:>6.1f} "
              f"{r['connections'] / r['seconds']:>8,.0f} {b['fds']:>4}->{a['fds']:<4} "
              f"{b['rss_mb']:>6.1f}->{a['rss_mb']:<7.1f} {a['cpu_s'] - b['cpu_s']:>7.1f}  {verdict}")
        print('         RSS MB after each round: ' + ' -> '.join(
            f"{x['rss_mb']:.1f}" for x in r['rounds']))
        if r['tables_after']:
            print('         tables before/after: ' + ', '.join(
                f"{k} {r['tables_before'].get(k)}/{v}" for k, v in r['tables_after'].items()))
        for problem in problems:
            print(f'         {problem}')
        failed = failed or bool(problems)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
