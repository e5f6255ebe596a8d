#!/usr/bin/env python3
"""Instructions per round trip, per loop, counted by valgrind's callgrind.

    python benchmarks/pingpong_instructions.py                 # every mode, every loop available
    python benchmarks/pingpong_instructions.py --modes protocol --loops ourloop,uvloop --size 1024
    python benchmarks/pingpong_instructions.py --modes streams --keep /tmp/cg --top 25
    python benchmarks/pingpong_instructions.py --loops ourloop,ourloop@../base --json out.json
    python benchmarks/pingpong_instructions.py --tls --modes protocol,buffered,streams --n1 200 --n2 600

Modes (one connection, one loop, the client sends the next message when the
whole echo has arrived):

* protocol -- a TCP server (create_server on 127.0.0.1; --family unix: a
  Unix socket) and a client (create_connection) on the same loop: the
  server protocol's data_received() writes the data back;
* buffered -- the same with an asyncio.BufferedProtocol server: get_buffer()
  returns a view of its own 256 KiB bytearray (every call the same one),
  buffer_updated(n) writes a copy of the n bytes back; the client is
  protocol's;
* streams  -- the same over asyncio.start_server() and open_connection():
  the server's handler does `data = await reader.read(65536); writer.write(data);
  await writer.drain()`, the client `writer.write(msg); await
  writer.drain(); await reader.readexactly(size)`;
* udp      -- two DatagramProtocols (create_datagram_endpoint on 127.0.0.1):
  the server's datagram_received() sends the datagram back to its sender;
* sock     -- loop.sock_*() on non-blocking sockets (a listening socket on
  127.0.0.1, or a Unix socket with --family unix; sock_connect, sock_accept):
  the server task does `data = await loop.sock_recv(conn, 65536); await
  loop.sock_sendall(conn, data)`, the client `await loop.sock_sendall(sock,
  msg)`, then sock_recv until the whole echo is back.

With --tls, protocol, buffered and streams run over TLS (create_server /
start_server with ssl=, the clients with ssl= and server_hostname
'localhost'): TLS 1.3 only, each side's default cipher suites (the server's
context is echo.py's, ssl.create_default_context(Purpose.CLIENT_AUTH); the
client's an SSLContext(PROTOCOL_TLS_CLIENT) that checks the certificate),
and one self-signed certificate, made once per run with the `openssl`
command (echo.py's make_tls_files()), for every loop and both run lengths.
The handshake is in the fixed part, so it cancels out.

Each loop runs a mode twice under callgrind, with N1 and N2 round trips;
(I2 - I1) / (N2 - N1) is what one round trip costs (two reads, two writes,
the loop iterations between them), set-up and tear-down cancelling out.
Deterministic, so it shows small changes that wall-clock runs on a noisy
2-core machine cannot. What would make the two runs' fixed parts differ is
kept out of them:
- only `loop.run_until_complete()` is counted: the child calls
  os.getpgrp() right before it (callgrind zeroes its counts there,
  --zero-before) and os.getppid() right after (callgrind dumps them there,
  --dump-before); imports and interpreter start-up are not counted. (They
  were: the import system lists a directory of sys.path again whenever its
  mtime changed, and the child's working directory, on sys.path as '' for
  `python -c`, changed under other processes: a round trip moved by
  thousands of instructions with what the machine was doing.)
- the child runs in an empty directory of its own, writes no .pyc
  (PYTHONDONTWRITEBYTECODE: a module imported lazily in the counted part
  is compiled in both runs, not in the first only) and has a fixed
  PYTHONHASHSEED.
The per-round-trip calls of the system call wrappers and of
PyEval_SaveThread (a poll that released the GIL to sleep) are listed too,
so a heuristic that decides by timing would show as a fraction there.

With --keep DIR the callgrind files stay in DIR (`callgrind_annotate
DIR/<mode>-<loop>-<n>.out`; ourloop's functions are the __pyx_..._core_...
symbols of ourloop/_core.c); --top K also lists, per mode and loop, the K
functions whose instruction count grows most per round trip.
"""

import argparse
import datetime
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import instructions as instructions_py  # noqa: E402  (callgrind between markers)
import run  # noqa: E402  (benchmarks/run.py: loops, snapshots, summaries)

MODES = ('protocol', 'buffered', 'streams', 'udp', 'sock')
DEFAULT_MODES = ('protocol', 'streams', 'udp', 'sock')  # (bench_all.py's roundtrip suite)
TLS_MODES = ('protocol', 'buffered', 'streams')   # the modes --tls applies to (its default)

CHILD = r'''
import asyncio, os, sys
snapshot = os.environ.get('OURLOOP_BENCH_SNAPSHOT')
if snapshot:
    sys.path.insert(0, snapshot)
kind, mode, family, n, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
# argv[6], with --tls: the directory of cert.pem and key.pem (echo.py's make_tls_files())
tls_dir = sys.argv[6] if len(sys.argv) > 6 else None
if kind == 'uvloop':
    import uvloop
    new_loop = uvloop.new_event_loop
elif kind == 'rloop':
    import rloop
    new_loop = rloop.new_event_loop
elif kind == 'ourloop':
    import ourloop
    new_loop = ourloop.new_event_loop
else:
    new_loop = asyncio.SelectorEventLoop
MSG = b'x' * size
server_ssl = client_ssl = None
if tls_dir:
    import ssl
    # echo.py's server_ssl_context() and echo_client.py's client_ssl_context()
    # (with the certificate as the CA): TLS 1.3, default cipher suites.
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.minimum_version = ssl.TLSVersion.TLSv1_3
    server_ssl.load_cert_chain(os.path.join(tls_dir, 'cert.pem'),
                               os.path.join(tls_dir, 'key.pem'))
    client_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ssl.minimum_version = ssl.TLSVersion.TLSv1_3
    client_ssl.load_verify_locations(os.path.join(tls_dir, 'cert.pem'))
tls = {'ssl': client_ssl, 'server_hostname': 'localhost'} if tls_dir else {}


async def connect(server_factory, client_factory, streams=False):
    # A server (create_server / start_server) and one client connected to
    # it; returns what the client side gets.
    server, client = await _connect(server_factory, client_factory, streams)
    if tls_dir:
        # (once per run: the fixed part) what is measured is TLS indeed
        transport = client[1].transport if streams else client[0]
        assert transport.get_extra_info('ssl_object') is not None, transport
    return server, client


async def _connect(server_factory, client_factory, streams):
    loop = asyncio.get_running_loop()
    if family == 'unix':
        import os, tempfile
        path = os.path.join(tempfile.mkdtemp(), 'sock')
        if streams:
            server = await asyncio.start_unix_server(server_factory, path, ssl=server_ssl)
            return server, await asyncio.open_unix_connection(path, **tls)
        server = await loop.create_unix_server(server_factory, path, ssl=server_ssl)
        return server, await loop.create_unix_connection(client_factory, path, **tls)
    if streams:
        server = await asyncio.start_server(server_factory, '127.0.0.1', 0, ssl=server_ssl)
        addr = server.sockets[0].getsockname()
        return server, await asyncio.open_connection(*addr, **tls)
    server = await loop.create_server(server_factory, '127.0.0.1', 0, ssl=server_ssl)
    addr = server.sockets[0].getsockname()
    return server, await loop.create_connection(client_factory, *addr, **tls)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)


class BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self):
        self.view = memoryview(bytearray(256 * 1024))
    def connection_made(self, transport):
        self.transport = transport
    def get_buffer(self, sizehint):
        return self.view
    def buffer_updated(self, nbytes):
        # The buffer is reused for the next read: write a copy.
        self.transport.write(bytes(self.view[:nbytes]))


class Client(asyncio.Protocol):
    def __init__(self, done):
        self.done, self.count, self.got = done, 0, 0
    def connection_made(self, transport):
        self.transport = transport
        transport.write(MSG)
    def data_received(self, data):
        self.got += len(data)
        if self.got >= len(MSG):
            self.got = 0
            self.count += 1
            if self.count >= n:
                self.done.set_result(None)
            else:
                self.transport.write(MSG)


async def protocol(server_protocol=Echo):
    done = asyncio.get_running_loop().create_future()
    server, (transport, _) = await connect(server_protocol, lambda: Client(done))
    await done
    transport.close()
    server.close()


async def buffered():
    await protocol(BufferedEcho)


async def streams():
    finished = asyncio.get_running_loop().create_future()

    async def serve(sr, sw):
        left = n * size
        while left > 0:
            data = await sr.read(65536)
            if not data:
                break
            sw.write(data)
            await sw.drain()
            left -= len(data)
        sw.close()
        finished.set_result(None)

    server, (cr, cw) = await connect(serve, None, streams=True)
    for _ in range(n):
        cw.write(MSG)
        await cw.drain()
        await cr.readexactly(size)
    cw.close()
    await finished
    server.close()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self, done):
        self.done, self.count = done, 0
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.count += 1
        if self.count >= n:
            self.done.set_result(None)
        else:
            self.transport.sendto(MSG)


async def udp():
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=('127.0.0.1', 0))
    done = loop.create_future()
    client, _ = await loop.create_datagram_endpoint(
        lambda: UdpClient(done), remote_addr=server.get_extra_info('sockname'))
    client.sendto(MSG)
    await done
    client.close()
    server.close()


async def sock():
    import socket
    loop = asyncio.get_running_loop()
    if family == 'unix':
        import tempfile
        path = os.path.join(tempfile.mkdtemp(), 'sock')
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        client = socket.socket(socket.AF_UNIX)
    else:
        path = None
        listener = socket.socket()
        listener.bind(('127.0.0.1', 0))
        client = socket.socket()
    listener.listen(1)
    listener.setblocking(False)
    client.setblocking(False)

    async def serve():
        conn, _ = await loop.sock_accept(listener)
        while True:
            data = await loop.sock_recv(conn, 65536)
            if not data:
                break
            await loop.sock_sendall(conn, data)
        conn.close()

    server = loop.create_task(serve())
    await loop.sock_connect(client, path or listener.getsockname())
    for _ in range(n):
        await loop.sock_sendall(client, MSG)
        left = size
        while left:
            left -= len(await loop.sock_recv(client, left))
    client.close()
    await server
    listener.close()


loop = new_loop()
main = {'protocol': protocol, 'buffered': buffered, 'streams': streams, 'udp': udp,
        'sock': sock}[mode]()
os.getpgrp()    # callgrind zeroes its counts here (--zero-before)
loop.run_until_complete(main)
os.getppid()    # ... and dumps them here (--dump-before): the counted part
loop.close()
'''


def instructions(label, mode, family, n, size, out, tls_dir=None):
    """Instructions of the child's run_until_complete(); its callgrind
    file is `out` (the part between the markers; the rest is discarded).
    With tls_dir (cert.pem, key.pem) the mode runs over TLS."""
    # run._worker_env: debug modes off; an ourloop (this checkout's or an
    # ourloop@...) imports its snapshot (run.prepared_loops).
    kind = run.base_loop(label)
    return instructions_py.count_between_markers(
        [sys.executable, '-c', CHILD, kind, mode, family, str(n), str(size)]
        + ([tls_dir] if tls_dir else []),
        run._worker_env(label), out, f'{kind} {mode}')


# The calls counted per round trip besides instructions: the system call
# wrappers of libc a loop's I/O goes through, and PyEval_SaveThread (the
# GIL released: a poll that may sleep).
CALLS = ('epoll_wait', 'epoll_pwait', 'recvfrom', 'recv', 'recvmsg', 'recvmmsg', 'read',
         'readv', 'sendto', 'send', 'sendmsg', 'sendmmsg', 'write', 'writev',
         'PyEval_SaveThread')
_FN_LINE = re.compile(r'^c?fn=\((\d+)\)(?: (.*))?$')


def call_counts(out_file):
    """{callee: calls} of a callgrind output file, for the CALLS."""
    names, counts, callee = {}, dict.fromkeys(CALLS, 0), None
    with open(out_file, errors='replace') as f:
        for line in f:
            if line.startswith(('fn=', 'cfn=')):
                match = _FN_LINE.match(line.rstrip('\n'))
                if match is None:
                    continue
                if match.group(2):
                    names[match.group(1)] = match.group(2)
                if line.startswith('cfn='):
                    callee = names.get(match.group(1))
            elif line.startswith('calls=') and callee is not None:
                if callee in counts:
                    counts[callee] += int(line[6:].split()[0])
                callee = None
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--loops', help=run.LOOPS_HELP)
    ap.add_argument('--modes', help=f'of {", ".join(MODES)} (default: '
                    f'{",".join(DEFAULT_MODES)}; with --tls: {",".join(TLS_MODES)})')
    ap.add_argument('--family', choices=('tcp', 'unix'), default='tcp',
                    help='what protocol, streams and sock run over (default tcp)')
    ap.add_argument('--tls', action='store_true',
                    help=f'run {", ".join(TLS_MODES)} over TLS 1.3 (the other modes are left out)')
    ap.add_argument('--size', type=int, default=1024, help='message size (bytes)')
    ap.add_argument('--n1', type=int, default=1000)
    ap.add_argument('--n2', type=int, default=3000)
    ap.add_argument('--keep', metavar='DIR', help='keep the callgrind files in DIR')
    ap.add_argument('--top', type=int, default=0, metavar='K',
                    help='list the K functions costing most per round trip')
    ap.add_argument('--json', metavar='FILE', help='also write the counts to FILE')
    opts = ap.parse_args(argv)
    if shutil.which('valgrind') is None:
        print('valgrind is not installed (apt-get install valgrind)', file=sys.stderr)
        return 2
    loops, missing, versions = run.select_loops(opts.loops, ap.error)
    modes = [m for m in (opts.modes or ','.join(TLS_MODES if opts.tls else DEFAULT_MODES))
             .split(',') if m in (TLS_MODES if opts.tls else MODES)]
    tls_dir = None
    if opts.tls:
        # benchmarks/echo.py's certificate, made once per run
        import echo
        tls_dir, why = echo.make_tls_files()
        if tls_dir is None:
            print(f'--tls: {why}', file=sys.stderr)
            return 2
    workdir = opts.keep or tempfile.mkdtemp(prefix='pingpong-cg-')
    os.makedirs(workdir, exist_ok=True)
    per, tops, na, calls = {}, {}, {}, {}
    snapshots = run.prepared_loops(loops)
    snapshots.__enter__()
    try:
        for mode in modes:
            for kind in loops:
                files = [os.path.join(workdir, f'{mode}-{kind}-{n}.out')
                         for n in (opts.n1, opts.n2)]
                try:
                    i1 = instructions(kind, mode, opts.family, opts.n1, opts.size, files[0],
                                      tls_dir)
                    i2 = instructions(kind, mode, opts.family, opts.n2, opts.size, files[1],
                                      tls_dir)
                except RuntimeError as exc:
                    if run.base_loop(kind) == 'ourloop':
                        raise
                    na.setdefault(f'{mode} round trip', {})[kind] = str(exc)[-300:]
                    # (rloop lacks some of the API.)
                    print(f'  {mode} on {kind}: failed: {str(exc)[-300:]}', file=sys.stderr)
                    continue
                per[mode, kind] = (i2 - i1) / (opts.n2 - opts.n1)
                print(f'  {mode} on {kind}: {per[mode, kind]:,.0f}', file=sys.stderr)
                small, big = call_counts(files[0]), call_counts(files[1])
                calls[mode, kind] = {f: (big[f] - small[f]) / (opts.n2 - opts.n1)
                                     for f in CALLS if big[f] != small[f]}
                if opts.top:
                    small = instructions_py.function_counts(files[0])
                    big = instructions_py.function_counts(files[1])
                    diffs = {f: (big.get(f, 0) - small.get(f, 0)) / (opts.n2 - opts.n1)
                             for f in set(small) | set(big)}
                    tops[mode, kind] = sorted(diffs.items(), key=lambda x: -x[1])[:opts.top]
    finally:
        snapshots.__exit__(None, None, None)
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    over = f'TLS 1.3 over {opts.family}' if opts.tls else f'{opts.family} for protocol, ' \
        'buffered, streams and sock'
    print(f'Instructions per round trip ({opts.size}-byte messages, {over}, '
          f'callgrind, runs of {opts.n1} and {opts.n2}):\n')
    rows = [f'{m} round trip' for m in modes]
    summary = run.summarize_samples(
        'round trip instructions', 'instr', rows, loops,
        {f'{m} round trip': {k: [per[m, k]] if (m, k) in per else [] for k in loops}
         for m in modes}, higher_is_better=False, na=na)
    print('Ratios > 1: the first loop executes fewer instructions.\n')
    print(run.markdown_table(*run.summary_table(summary, lambda x: f'{x:,.0f}', 'exchange')))
    if opts.json:
        run.write_json(opts.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': run.machine_info(versions), 'size': opts.size, 'family': opts.family,
            'tls': opts.tls,
            'n1': opts.n1, 'n2': opts.n2, 'summary': summary, 'missing_loops': missing})
    print('\nCalls per round trip (libc system call wrappers; PyEval_SaveThread: '
          'the GIL released):\n')
    for (mode, kind), made in calls.items():
        print(f'  {mode} on {kind}: ' + (', '.join(f'{f} {x:.3g}' for f, x in made.items())
                                          or '-'))
    for (mode, kind), funcs in tops.items():
        print(f'\n{mode} on {kind}: top functions, instructions per round trip '
              f'(of {per[mode, kind]:,.0f})\n')
        for func, x in funcs:
            print(f'  {x:10,.0f}  {func}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
