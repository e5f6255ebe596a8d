#!/usr/bin/env python3
"""Echo benchmark: TCP, Unix-socket, TLS and UDP servers on asyncio, uvloop, rloop and ourloop.

    python benchmarks/echo.py                      # 5 repetitions, 2 s per measurement
    python benchmarks/echo.py --quick              # 1 repetition, 0.3 s per measurement
    python benchmarks/echo.py --only sock,protocol/1k --loops asyncio,uvloop --json out.json
    python benchmarks/echo.py --quick --only 'unix-*'   # the Unix-socket rows only
    python benchmarks/echo.py --quick --only udp        # the UDP rows only
    python benchmarks/echo.py --only 'tls-*' --reps 3   # the TLS rows only
    python benchmarks/echo.py --quick --client py  # the Python load generator instead of the C one

Stream servers of four kinds, each on 127.0.0.1, port 0:

* protocol -- asyncio.Protocol, data_received() -> transport.write()
* buffered -- asyncio.BufferedProtocol, get_buffer()/buffer_updated()
* streams  -- asyncio.start_server(), reader.read() -> writer.write(), drain()
* sock     -- loop.sock_accept(), loop.sock_recv(), loop.sock_sendall()

and the same four on a Unix stream socket (a path in a fresh temporary
directory): unix-protocol and unix-buffered (loop.create_unix_server()),
unix-streams (asyncio.start_unix_server()), unix-sock (an AF_UNIX listening
socket and the same sock_* methods). Message sizes 1 KiB, 10 KiB, 100 KiB;
1 and 16 concurrent clients.

tls-protocol, tls-buffered, tls-streams -- protocol, buffered and streams
with TLS: create_server(ssl=ctx) / start_server(ssl=ctx) on 127.0.0.1, port
0. The server context is ssl.create_default_context(Purpose.CLIENT_AUTH)
with TLS 1.3 as its minimum version and its default cipher suites; its
certificate is self-signed (EC P-256, for localhost and 127.0.0.1), made
once per run with the `openssl` command in a temporary directory. The load
generator does the handshake before the timing starts and reports the
negotiated version and cipher (in the output and in the JSON samples).

udp -- a DatagramProtocol from loop.create_datagram_endpoint() on
127.0.0.1, port 0, whose datagram_received() sends the datagram back with
transport.sendto(). Datagrams of 64 B, 1 KiB and 8 KiB; 1 client with 1
datagram in flight (latency) and 16 clients with 4 datagrams in flight each
(`16x4`). Only the C load generator does UDP; it checks every echo byte for
byte, counts a datagram whose echo has not come back after 200 ms as lost
(and sends a new one), and the output reports the losses.

Method (see benchmarks/README.md, "Echo benchmark"): one fresh server
subprocess per measurement (pinned to CPU 0) and one load-generator process
pinned to CPU 1: benchmarks/echo_load.c (C, epoll), compiled on demand with
`cc -O2` into benchmarks/.build/, or with --client py (or when no C compiler
is found) benchmarks/echo_client.py (Python, selectors), which is itself the
limit with 16 clients. Each row shows the CPU share of the load generator
and of the server. Loops interleaved with a rotating order; medians, ratios
and spreads as in run.py, whose helpers this script imports.

A server whose set-up raises NotImplementedError (on any loop) shows `n/a`.

Server mode (used by the driver and by syscalls.py):

    python benchmarks/echo.py --server LOOP KIND [--respond echo|one|two --size N] [--cpu 0]

prints `PORT <n>` (TCP, UDP) or `PATH <socket path>` (unix-*) once
listening, `NA <reason>` if the loop does not implement what the kind needs,
and stops when its stdin closes. A tls-* server takes `--tls-dir DIR` (a
directory with cert.pem and key.pem, as make_tls_files() writes them);
without it, it makes its own certificate in a temporary directory.
"""

import argparse
import asyncio
import atexit
import datetime
import fnmatch
import hashlib
import json
import os
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (run.py: loops, machine info, tables, snapshot)

PY_CLIENT = os.path.join(HERE, 'echo_client.py')
C_CLIENT_SOURCE = os.path.join(HERE, 'echo_load.c')
BUILD_DIR = os.path.join(HERE, '.build')
CLIENT_CPU_WARN = 0.9    # the load generator's CPU busier than this: it may be the limit
OTHERS_WARN = 0.1        # other processes taking more of a benchmark CPU: a noisy run
# A sample is client-bound (see is_client_bound) when the load generator
# itself was on its CPU at least this share of the measured time, or its
# core was this busy and the generator needed as much CPU as the server.
CLIENT_BOUND = 0.9


def cpu_load(result, side):
    """The share of the measured phase that the client (side 'client') or
    the server ('server') process was on the CPU (all threads), or None."""
    return result.get(f'{side}_cpu_share')


def core_busy(result, side):
    """How busy the side's CPU was (1 - idle share), whoever used it; for
    the client, falls back to its own share when unknown."""
    busy = result.get(f'{side}_core_busy')
    return busy if busy is not None or side != 'client' else result['client_cpu_share']


def others_load(result, side):
    """The share of the side's CPU that went to other processes (and, on
    kernels with IRQ time accounting, to softirq work) during the measured
    phase: busy share minus the process's share. None if unknown."""
    busy, load = result.get(f'{side}_core_busy'), cpu_load(result, side)
    if busy is None or load is None:
        return None
    return max(0.0, busy - load)

def is_client_bound(result):
    """Whether the load generator, not the server, set the pace of this
    sample: it was on its CPU at least CLIENT_BOUND of the time (it never
    waited for the server), or its core was that busy (others taking the
    rest) and it was on the CPU at least as much as the server was (with
    the CPU shared out alike, it needed as much per request: it would run
    out first). None if the sample does not say."""
    client = result.get('client_cpu_share')
    if client is None:
        return None
    if client >= CLIENT_BOUND:
        return True
    busy, server = result.get('client_core_busy'), result.get('server_cpu_share')
    return busy is not None and server is not None and busy >= CLIENT_BOUND and \
        client >= server


def mark_client_bound(summary, samples):
    """Record in a summary (run.summarize_samples) which cells were
    client-bound: summary['client_bound'] = {row: [loops]} of the cells
    where at least half of the samples are (is_client_bound). Such a cell
    measures the generator's limit, a lower bound of the server's;
    run.summary_table marks it `!`. samples: {row: {loop: [results]}}."""
    bound = {}
    for row, per_loop in samples.items():
        for loop, results in per_loop.items():
            flags = [is_client_bound(r) for r in results]
            flags = [f for f in flags if f is not None]
            if flags and sum(flags) * 2 >= len(flags):
                bound.setdefault(row, []).append(loop)
    summary['client_bound'] = bound
    summary['client_bound_threshold'] = CLIENT_BOUND
    return summary


# kind: loop methods the server needs
KINDS = {
    'protocol': ('create_server',),
    'buffered': ('create_server',),
    'streams': ('create_server',),
    'sock': ('sock_accept', 'sock_recv', 'sock_sendall'),
    'unix-protocol': ('create_unix_server',),
    'unix-buffered': ('create_unix_server',),
    'unix-streams': ('create_unix_server',),
    'unix-sock': ('sock_accept', 'sock_recv', 'sock_sendall'),
    'tls-protocol': ('create_server',),
    'tls-buffered': ('create_server',),
    'tls-streams': ('create_server',),
    'udp': ('create_datagram_endpoint',),
}


def is_tls(kind):
    """Whether this kind's connections use TLS (tls-*: TCP on 127.0.0.1)."""
    return kind.startswith('tls-')


# The kinds of plain stream servers (TCP and Unix), which syscalls.py also
# measures (it has no TLS client set-up).
STREAM_KINDS = tuple(k for k in KINDS if k != 'udp' and not is_tls(k))
SIZES = {'1k': 1024, '10k': 10 * 1024, '100k': 100 * 1024}
CONCS = (1, 16)
# UDP: datagram sizes (8 KiB stays well below the 64 KiB datagram limit) and
# "CLIENTSxWINDOW": client sockets x datagrams in flight per client.
UDP_SIZES = {'64': 64, '1k': 1024, '8k': 8 * 1024}
UDP_CONCS = ('1x1', '16x4')
UDP_LOSS_TIMEOUT_MS = 200
# Room in the server's receive buffer for every datagram in flight (16 x 4 x
# 8 KiB plus the kernel's per-datagram overhead), so that a loop that is
# merely slower does not also lose datagrams. The kernel caps it at
# net.core.rmem_max. The C client does the same on its sockets.
UDP_RCVBUF = 4 * 1024 * 1024


def family(kind):
    """'tcp', 'unix' or 'udp' (tls-* kinds are 'tcp')."""
    return 'udp' if kind == 'udp' else 'unix' if kind.startswith('unix-') else 'tcp'


# ---------------------------------------------------------------------------
# TLS material: one self-signed certificate per run, made with `openssl`.
# ---------------------------------------------------------------------------

TLS_CERT, TLS_KEY = 'cert.pem', 'key.pem'
TLS_CERT_DESC = 'self-signed EC P-256 certificate for localhost and 127.0.0.1, made by'
_tls_files = None   # (directory, description) once made, or (None, reason)


def make_tls_files():
    """Make (once per process) a self-signed certificate and its key with
    the `openssl` command in a fresh temporary directory, removed when the
    process exits. Returns (directory, description) or (None, reason)."""
    global _tls_files
    if _tls_files is not None:
        return _tls_files
    openssl = shutil.which('openssl')
    if openssl is None:
        _tls_files = None, 'not available: no `openssl` command to make the certificate'
        return _tls_files
    tmpdir = tempfile.mkdtemp(prefix='echo-tls-')
    atexit.register(shutil.rmtree, tmpdir, True)
    cmd = [openssl, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
           '-nodes', '-days', '2', '-subj', '/CN=localhost',
           '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
           '-keyout', os.path.join(tmpdir, TLS_KEY), '-out', os.path.join(tmpdir, TLS_CERT)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        failed = None if proc.returncode == 0 else (
            (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f'exit {proc.returncode}'])
    except (OSError, subprocess.TimeoutExpired) as exc:
        failed = [str(exc)]
    if failed:
        _tls_files = None, 'not available: openssl req failed: ' + ' | '.join(failed)
        return _tls_files
    version = subprocess.run([openssl, 'version'], capture_output=True, text=True).stdout.strip()
    _tls_files = tmpdir, f'{TLS_CERT_DESC} `openssl req -x509` ({version})'
    return _tls_files


def server_ssl_context(tls_dir):
    """The servers' context: the stdlib's default server context, TLS 1.3
    only, its default cipher suites, the run's certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(os.path.join(tls_dir, TLS_CERT), os.path.join(tls_dir, TLS_KEY))
    return ctx
HEADER = 32          # --respond two: the first write is the first HEADER bytes
SERVER_CPU, CLIENT_CPU = 0, 1


# ---------------------------------------------------------------------------
# Servers. respond='echo': write back whatever arrived, as it arrives.
# respond='one'/'two': wait for a whole message of `size` bytes, then answer
# it with one write, or with two (the first HEADER bytes, then the rest).
# ---------------------------------------------------------------------------

def _split(msg, respond):
    return (msg,) if respond == 'one' else (msg[:HEADER], msg[HEADER:])


class EchoProtocol(asyncio.Protocol):
    def __init__(self, respond, size):
        self.respond = respond
        self.size = size
        self.pending = bytearray()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.respond == 'echo':
            self.transport.write(data)
            return
        self.pending += data
        while len(self.pending) >= self.size:
            msg = bytes(self.pending[:self.size])
            del self.pending[:self.size]
            for part in _split(msg, self.respond):
                self.transport.write(part)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def __init__(self, respond, size):
        self.respond = respond
        self.size = size
        self.buf = bytearray(256 * 1024)
        self.view = memoryview(self.buf)
        self.pending = bytearray()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        # The buffer is reused for the next read: write a copy.
        if self.respond == 'echo':
            self.transport.write(bytes(self.view[:nbytes]))
            return
        self.pending += self.view[:nbytes]
        while len(self.pending) >= self.size:
            msg = bytes(self.pending[:self.size])
            del self.pending[:self.size]
            for part in _split(msg, self.respond):
                self.transport.write(part)


async def _streams_handler(reader, writer, respond, size):
    try:
        if respond == 'echo':
            while True:
                data = await reader.read(256 * 1024)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        else:
            while True:
                try:
                    msg = await reader.readexactly(size)
                except asyncio.IncompleteReadError:
                    break
                for part in _split(msg, respond):
                    writer.write(part)
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _sock_client(loop, conn, respond, size):
    try:
        if respond == 'echo':
            while True:
                data = await loop.sock_recv(conn, 256 * 1024)
                if not data:
                    break
                await loop.sock_sendall(conn, data)
        else:
            pending = bytearray()
            while True:
                data = await loop.sock_recv(conn, 256 * 1024)
                if not data:
                    break
                pending += data
                while len(pending) >= size:
                    msg = bytes(pending[:size])
                    del pending[:size]
                    for part in _split(msg, respond):
                        await loop.sock_sendall(conn, part)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def _sock_server(loop, listener, respond, size, tasks):
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tasks.add(loop.create_task(_sock_client(loop, conn, respond, size)))


class UdpEchoProtocol(asyncio.DatagramProtocol):
    """Sends every datagram back to where it came from."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def error_received(self, exc):
        # An ICMP error for an earlier send (e.g. a client that has gone):
        # nothing to do, the client counts what it does not get back.
        pass


async def start_server(loop, kind, respond, size, path=None, ssl_context=None):
    """Start a server of this kind; return (address, closer coroutine
    function). The address is the port (TCP, UDP) or `path` (unix-*: the
    socket file to create). tls-* kinds need `ssl_context`."""
    if kind in ('protocol', 'buffered', 'unix-protocol', 'unix-buffered',
                'tls-protocol', 'tls-buffered'):
        cls = EchoProtocol if kind.endswith('protocol') else EchoBufferedProtocol
        if family(kind) == 'unix':
            server = await loop.create_unix_server(lambda: cls(respond, size), path,
                                                   backlog=128)
        elif is_tls(kind):
            server = await loop.create_server(lambda: cls(respond, size), '127.0.0.1', 0,
                                              backlog=128, ssl=ssl_context)
        else:
            server = await loop.create_server(lambda: cls(respond, size), '127.0.0.1', 0,
                                              backlog=128)
    elif kind in ('streams', 'unix-streams', 'tls-streams'):
        def handler(r, w):
            return _streams_handler(r, w, respond, size)
        if family(kind) == 'unix':
            server = await asyncio.start_unix_server(handler, path, backlog=128)
        elif is_tls(kind):
            server = await asyncio.start_server(handler, '127.0.0.1', 0, backlog=128,
                                                ssl=ssl_context)
        else:
            server = await asyncio.start_server(handler, '127.0.0.1', 0, backlog=128)
    elif kind == 'udp':
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            sock.bind(('127.0.0.1', 0))
            # sock=: the same socket options on every loop (create_datagram_endpoint
            # has no receive-buffer argument).
            transport, _ = await loop.create_datagram_endpoint(UdpEchoProtocol, sock=sock)
        except BaseException:
            sock.close()
            raise

        async def close_udp():
            transport.close()
            await asyncio.sleep(0)      # connection_lost() runs one iteration later
        return transport.get_extra_info('sockname')[1], close_udp
    elif kind in ('sock', 'unix-sock'):
        if family(kind) == 'unix':
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(('127.0.0.1', 0))
        listener.listen(128)
        listener.setblocking(False)
        tasks = set()
        acceptor = loop.create_task(_sock_server(loop, listener, respond, size, tasks))

        async def close_sock():
            acceptor.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(acceptor, *tasks, return_exceptions=True)
            listener.close()
        if family(kind) == 'unix':
            return path, close_sock
        return listener.getsockname()[1], close_sock
    else:
        raise ValueError(f'unknown kind {kind!r}')

    async def close_server():
        server.close()
        await server.wait_closed()
    if family(kind) == 'unix':
        return path, close_server
    return server.sockets[0].getsockname()[1], close_server


def serve(loop_name, kind, respond, size, cpu, tls_dir=None):
    """Server mode: listen, print the port (or the socket path), run until
    stdin is closed. tls-* kinds use the certificate in `tls_dir`, or make
    their own."""
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError):
            pass
    # unix-*: a fresh directory per server, so that concurrent runs never
    # share a path; removed with everything in it at the end.
    ssl_context = None
    if is_tls(kind):
        if tls_dir is None:
            tls_dir, reason = make_tls_files()
            if tls_dir is None:
                print(f'NA {reason}', flush=True)
                return 0
        ssl_context = server_ssl_context(tls_dir)
    tmpdir = tempfile.mkdtemp(prefix='echo-unix-') if family(kind) == 'unix' else None
    path = os.path.join(tmpdir, 'echo.sock') if tmpdir else None
    loop = bench.loop_factory(loop_name)()
    asyncio.set_event_loop(loop)
    try:
        try:
            address, closer = loop.run_until_complete(
                start_server(loop, kind, respond, size, path, ssl_context))
        except NotImplementedError as exc:
            # A loop still missing what this kind needs: the driver shows n/a.
            print(f'NA not implemented: {exc}'.replace('\n', ' '), flush=True)
            return 0
        stop = loop.create_future()

        def wait_stdin():
            sys.stdin.buffer.read()     # until EOF
            loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

        threading.Thread(target=wait_stdin, daemon=True).start()
        print(f'PATH {address}' if tmpdir else f'PORT {address}', flush=True)
        loop.run_until_complete(stop)
        loop.run_until_complete(closer())
    finally:
        bench._close_loop(loop)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def _cpus():
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = list(range(os.cpu_count() or 1))
    if len(cpus) >= 2:
        return cpus[0], cpus[1]
    return None, None


# ---------------------------------------------------------------------------
# Load generator: echo_load.c, built on demand, or echo_client.py
# ---------------------------------------------------------------------------

def _find_cc():
    """The C compiler command ($CC, else cc, gcc or clang), or None."""
    if os.environ.get('CC'):
        cmd = shlex.split(os.environ['CC'])
        if cmd and shutil.which(cmd[0]):
            return cmd
    for name in ('cc', 'gcc', 'clang'):
        if shutil.which(name):
            return [name]
    return None


# echo_load.c with TLS (--tls): OpenSSL's headers and libraries.
C_TLS_CFLAGS, C_TLS_LIBS = ('-DECHO_TLS',), ('-lssl', '-lcrypto')


def build_c_client():
    """Compile echo_load.c (see build_c), with TLS (OpenSSL) if it builds,
    else without. Returns (path, tls, note): path None if it does not build
    at all (note says why); tls False with a note saying why TLS is
    missing."""
    path, reason = build_c(C_CLIENT_SOURCE, C_TLS_CFLAGS, C_TLS_LIBS)
    if path is not None:
        return path, True, None
    path, plain_reason = build_c(C_CLIENT_SOURCE)
    if path is None:
        return None, False, plain_reason
    return path, False, f'built without TLS, OpenSSL did not build: {reason}'


def build_c(source, cflags=(), libs=()):
    """Compile a benchmark's C helper (echo_load.c, pipe_child.c) with
    `cc -O2` (and `cflags`, linked with `libs`) into benchmarks/.build/
    unless a binary of the same source and flags is there already. The
    file name carries a hash of both, so an edited source is always rebuilt
    and concurrent runs never see a half-written binary. Returns (path,
    None) or (None, reason)."""
    stem = os.path.splitext(os.path.basename(source))[0]
    with open(source, 'rb') as f:
        digest = hashlib.sha1(f.read() + repr((cflags, libs)).encode()).hexdigest()[:12]
    target = os.path.join(BUILD_DIR, f'{stem}-{digest}')
    if os.access(target, os.X_OK):
        return target, None
    cc = _find_cc()
    if cc is None:
        return None, 'no C compiler found ($CC, cc, gcc, clang)'
    os.makedirs(BUILD_DIR, exist_ok=True)
    tmp = f'{target}.tmp{os.getpid()}'
    cmd = [*cc, '-O2', '-Wall', *cflags, '-o', tmp, source, *libs]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f'{shlex.join(cmd)} failed: {exc}'
    if proc.returncode != 0:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f'{shlex.join(cmd)} failed (exit {proc.returncode}): ' + ' | '.join(tail)
    os.replace(tmp, target)
    for old in os.listdir(BUILD_DIR):       # binaries of older sources
        if old.startswith(f'{stem}-') and os.path.join(BUILD_DIR, old) != target \
                and '.tmp' not in old:
            try:
                os.unlink(os.path.join(BUILD_DIR, old))
            except OSError:
                pass
    return target, None


_client = None     # (kind 'c' or 'py', argv prefix, description)
_c_tls = (False, 'the C load generator is not in use')  # (it has --tls, or why not)
VERIFY_BYTES = True  # False: the C generator checks lengths only (--no-verify)


def select_client(choice='c'):
    """Choose the load generator of run_client(): 'c' builds echo_load.c and
    falls back to echo_client.py with a warning; 'py' is echo_client.py.
    Returns (kind, description)."""
    global _client, _c_tls
    if choice == 'c':
        path, tls, reason = build_c_client()
        if path is not None:
            flags = (' ' + ' '.join(C_TLS_CFLAGS + C_TLS_LIBS)) if tls else ''
            _client = ('c', [path], f'C, {os.path.relpath(C_CLIENT_SOURCE)} '
                                    f'built with cc -O2{flags} ({os.path.relpath(path)})')
            _c_tls = (True, None) if tls else (False, reason)
            return _client[0], _client[2]
        print(f'WARNING: cannot build the C load generator ({reason}).\n'
              f'WARNING: falling back to the Python one, {os.path.relpath(PY_CLIENT)}, '
              f'which is CPU-bound with 16 clients: those rows then measure the client, '
              f'not the server.', file=sys.stderr)
    elif choice != 'py':
        raise ValueError(f'unknown client {choice!r} (c or py)')
    _client = ('py', [sys.executable, PY_CLIENT],
               f'Python, {os.path.relpath(PY_CLIENT)} (selectors)')
    return _client[0], _client[2]


def start_server_process(loop_name, kind, respond='echo', size=1024, cpu=None, prefix=(),
                         tls_dir=None):
    """Start a server subprocess; return (process, address) or (None, reason).
    The address is a port number (TCP, UDP) or a socket path (unix-*).
    tls-* servers use the certificate in `tls_dir` (see make_tls_files())."""
    cmd = [*prefix, sys.executable, os.path.abspath(__file__), '--server', loop_name, kind,
           '--respond', respond, '--size', str(size)]
    if cpu is not None:
        cmd += ['--cpu', str(cpu)]
    if tls_dir is not None:
        cmd += ['--tls-dir', tls_dir]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=bench._worker_env(loop_name))
    line = proc.stdout.readline().strip()
    if line.startswith('PORT '):
        return proc, int(line.split()[1])
    if line.startswith('PATH '):
        return proc, line[5:]
    proc.stdin.close()
    err = proc.stderr.read()
    proc.wait()
    if line.startswith('NA '):
        return None, line[3:]
    tail = err.strip().splitlines()[-3:]
    return None, f'server failed (exit {proc.returncode}): ' + ' | '.join(tail)


def stop_server_process(proc, timeout=30):
    proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return 'server did not stop'
    if proc.returncode != 0:
        tail = proc.stderr.read().strip().splitlines()[-3:]
        return f'server exit {proc.returncode}: ' + ' | '.join(tail)
    return None


def run_client(port, size, conc, duration=None, count=None, warmup=0.0, cpu=None,
               timeout=120, server_pid=None, server_cpu=None, udp_window=None, tls_ca=None,
               extra_args=()):
    """Run the load generator chosen by select_client() (by default the C
    one, built now if needed); return (result dict, None) or (None, error).
    `port` is a port number, or a Unix socket path (a str). With udp_window,
    the C generator runs its UDP mode: `conc` client sockets with that many
    datagrams in flight each.
    With cpu (the client's) and server_cpu, the result says how busy each
    of these cores was during the measured phase (client_core_busy,
    server_core_busy: 1 - idle share, softirq included); with server_pid,
    the C generator also reports that process's CPU share. With tls_ca (the
    server certificate's file), the connections use TLS and the server's
    certificate is checked against it; a C generator built without OpenSSL
    hands these runs to the Python one. extra_args: more options of the C
    generator (e.g. --latency); not available with the Python one."""
    if _client is None:
        select_client('c')
    kind, prefix, _ = _client
    if udp_window is not None and kind != 'c':
        return None, 'not available: UDP needs the C load generator'
    if tls_ca is not None and kind == 'c' and not _c_tls[0]:
        kind, prefix = 'py', [sys.executable, PY_CLIENT]
    address = ['--unix', port] if isinstance(port, str) else ['--port', str(port)]
    cmd = [*prefix, *address, '--size', str(size),
           '--conc', str(conc), '--warmup', str(warmup)]
    if tls_ca is not None:
        cmd += ['--tls', '--tls-ca', tls_ca]
    if udp_window is not None:
        cmd += ['--udp', '--window', str(udp_window),
                '--loss-timeout', str(UDP_LOSS_TIMEOUT_MS)]
    cmd += ['--count', str(count)] if count is not None else ['--duration', str(duration)]
    if cpu is not None:
        cmd += ['--cpu', str(cpu)]
    if server_cpu is not None:
        cmd += ['--server-cpu', str(server_cpu)]
    if server_pid is not None and kind == 'c':
        cmd += ['--server-pid', str(server_pid)]
    if not VERIFY_BYTES and kind == 'c':
        cmd += ['--no-verify']
    if extra_args:
        if kind != 'c':
            return None, f'not available: {" ".join(extra_args)} needs the C load generator'
        cmd += list(extra_args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f'client timed out after {timeout} s'
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f'client exit {proc.returncode}: ' + ' | '.join(tail)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.setdefault('client', kind)
    for key in ('server_cpu_share', 'client_core_busy', 'server_core_busy'):
        result.setdefault(key, None)
    if tls_ca is not None and not result.get('tls'):
        return None, 'the load generator did not use TLS'
    return result, None


def measure(loop_name, kind, size, conc, duration, warmup):
    """One measurement: a fresh server subprocess and one load-generator run.
    `conc` is the number of clients, or 'CxW' for UDP (C clients, W
    datagrams in flight each)."""
    server_cpu, client_cpu = _cpus()
    window = None
    if family(kind) == 'udp':
        conc, window = (int(x) for x in str(conc).split('x'))
        if _client is not None and _client[0] != 'c':
            return None, 'not available: UDP needs the C load generator'
    tls_dir = tls_ca = None
    if is_tls(kind):
        tls_dir, reason = make_tls_files()      # once per run
        if tls_dir is None:
            return None, reason
        tls_ca = os.path.join(tls_dir, TLS_CERT)
    proc, address = start_server_process(loop_name, kind, 'echo', size, server_cpu,
                                         tls_dir=tls_dir)
    if proc is None:
        return None, address
    try:
        result, error = run_client(address, size, conc, duration=duration, warmup=warmup,
                                   cpu=client_cpu, timeout=60 + 5 * duration,
                                   server_pid=proc.pid, server_cpu=server_cpu,
                                   udp_window=window, tls_ca=tls_ca)
    finally:
        stop_error = stop_server_process(proc)
    if result is not None:
        result['loop'] = loop_name
        result['kind'] = kind
    return result, error or stop_error


def case_name(kind, size_name, conc):
    return f'{kind}/{size_name}/{conc}'


def all_cases():
    """Every (kind, size name, clients) of a full run: each stream kind at
    every size of SIZES with 1 and 16 clients, UDP at every size of
    UDP_SIZES with each of UDP_CONCS."""
    cases = []
    for k in KINDS:
        sizes, concs = (UDP_SIZES, UDP_CONCS) if family(k) == 'udp' else (SIZES, CONCS)
        cases += [(k, s, c) for s in sizes for c in concs]
    return cases


def case_size(kind, size_name):
    return (UDP_SIZES if family(kind) == 'udp' else SIZES)[size_name]


def select_cases(only):
    """All (kind, size name, conc) matching the --only filters. A filter is
    kind[/size[/conc]]; each part may use shell wildcards (`*` for any), e.g.
    `sock`, `*/1k`, `protocol/*/16`, `unix-*`, `udp/*/16x4`."""
    cases = all_cases()
    if not only:
        return cases

    def matches(parts, case):
        return all(p in ('*', '') or fnmatch.fnmatchcase(str(v), p)
                   for p, v in zip(parts, case))

    chosen = []
    for f in [x.strip() for x in only.split(',') if x.strip()]:
        parts = f.split('/')
        if len(parts) > 3:
            raise ValueError(f'bad filter {f!r}: kind/size/conc')
        parts += ['*'] * (3 - len(parts))
        hits = [case for case in cases if matches(parts, case)]
        if not hits:
            raise ValueError(
                f'filter {f!r} matches nothing (kinds {", ".join(KINDS)}; sizes '
                f'{", ".join(SIZES)}, for udp {", ".join(UDP_SIZES)}; clients '
                f'{", ".join(map(str, CONCS))}, for udp {", ".join(UDP_CONCS)})')
        chosen += [c for c in hits if c not in chosen]
    return [c for c in cases if c in chosen]


def fmt_mib(x):
    return 'n/a' if x is None else f'{x:.3g}' if x < 1000 else f'{x:.0f}'


def main(argv=None):
    p = argparse.ArgumentParser(description='Echo benchmark of asyncio, uvloop and ourloop '
                                            '(interleaved, medians).')
    p.add_argument('--reps', type=int, default=None,
                   help='repetitions per (loop, case); default 5, or 1 with --quick')
    p.add_argument('--quick', action='store_true',
                   help='0.3 s per measurement instead of 2 s, 1 repetition')
    p.add_argument('--duration', type=float, default=None,
                   help='seconds of round trips per measurement (default 2, or 0.3 with --quick)')
    p.add_argument('--only', metavar='FILTERS',
                   help='comma-separated kind[/size[/clients]] filters, shell wildcards '
                        'allowed: e.g. sock,protocol/1k,*/100k/16,unix-*,tls-*,udp. Kinds: '
                        + ', '.join(KINDS) + '; sizes: ' + ', '.join(SIZES) + ' (udp: '
                        + ', '.join(UDP_SIZES) + '); clients: 1, 16 (udp: clients x '
                        'datagrams in flight, ' + ', '.join(UDP_CONCS) + ')')
    p.add_argument('--loops', metavar='NAMES', help=bench.LOOPS_HELP)
    p.add_argument('--json', metavar='FILE', help='also write all samples and medians to FILE')
    p.add_argument('--client', choices=('c', 'py'), default='c',
                   help='load generator: c = benchmarks/echo_load.c, compiled on demand with '
                        'cc -O2 into benchmarks/.build/ (falls back to py, with a warning, '
                        'without a C compiler); py = benchmarks/echo_client.py, which is '
                        'CPU-bound with 16 clients (default: c)')
    p.add_argument('--no-verify', action='store_true',
                   help='the C load generator checks only the lengths of the measured '
                        'echoes (the warm-up\'s are still checked byte for byte) and receives '
                        'them with MSG_TRUNC, without copying: about 20%% less client CPU per '
                        '100 KiB request')
    p.add_argument('--server', nargs=2, metavar=('LOOP', 'KIND'),
                   help='server mode: run one server and print its port (for syscalls.py, '
                        'profiling)')
    p.add_argument('--respond', choices=('echo', 'one', 'two'), default='echo',
                   help='server mode: echo as data arrives, or answer each --size message '
                        'with one write / two writes (header + body)')
    p.add_argument('--size', type=int, default=1024, help='server mode: message size')
    p.add_argument('--cpu', type=int, default=None, help='server mode: pin to this CPU')
    p.add_argument('--tls-dir', metavar='DIR', default=None,
                   help=f'server mode, tls-* kinds: the directory with {TLS_CERT} and {TLS_KEY} '
                        '(default: a certificate made for this server)')
    args = p.parse_args(argv)

    if args.server:
        loop_name, kind = args.server
        if kind not in KINDS:
            p.error(f'--server LOOP KIND: kinds {tuple(KINDS)}')
        bench.worker_loop(loop_name, p.error)
        return serve(loop_name, kind, args.respond, args.size, args.cpu, args.tls_dir)

    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    duration = args.duration or (0.3 if args.quick else 2.0)
    warmup = 0.1 if args.quick else 0.3
    try:
        cases = select_cases(args.only)
    except ValueError as exc:
        p.error(str(exc))

    loops, missing, versions = bench.select_loops(args.loops, p.error)
    if not loops:
        print('no loop to benchmark', file=sys.stderr)
        return 2

    global VERIFY_BYTES
    VERIFY_BYTES = not args.no_verify
    client_kind, client_desc = select_client(args.client)
    if client_kind == 'c':
        client_desc += ('; echoes checked by length only (--no-verify)' if args.no_verify
                        else '; echoes checked byte for byte')
    info = bench.machine_info(versions)
    info['load_generator'] = client_desc
    if any(is_tls(case[0]) for case in cases):
        tls_dir, tls_desc = make_tls_files()    # the run's one certificate
        info['tls_server'] = ('ssl.create_default_context(Purpose.CLIENT_AUTH), TLS 1.3 '
                              f'minimum, default cipher suites, {ssl.OPENSSL_VERSION}')
        info['tls_certificate'] = tls_desc if tls_dir else None
        if tls_dir is None:
            print(f'WARNING: the TLS rows are n/a: {tls_desc}', file=sys.stderr)
        if client_kind == 'c' and not _c_tls[0]:
            info['load_generator_tls'] = (f'Python, {os.path.relpath(PY_CLIENT)} (the C one '
                                          f'has no TLS: {_c_tls[1]})')
            print(f'WARNING: the C load generator has no TLS ({_c_tls[1]}).\n'
                  f'WARNING: the TLS rows use the Python one, {os.path.relpath(PY_CLIENT)}, '
                  'which is CPU-bound with 16 clients: those rows then measure the client, '
                  'not the server.', file=sys.stderr)
    with bench.prepared_loops(loops):
        return _drive(args, reps, duration, warmup, cases, loops, missing, info)


def _drive(args, reps, duration, warmup, cases, loops, missing, info):
    names = [case_name(*c) for c in cases]
    server_cpu, client_cpu = _cpus()
    print('machine: ' + '; '.join(f'{k} {v}' for k, v in info.items() if v is not None),
          file=sys.stderr)
    print(f'{len(cases)} cases x {len(loops)} loops x {reps} reps, {duration} s each '
          f'(+{warmup} s warm-up), one server subprocess each', file=sys.stderr)
    if info.get('ourloop_debug_build'):
        print('WARNING: ourloop is a debug build: its numbers are not representative.',
              file=sys.stderr)
    if server_cpu is None:
        print('WARNING: fewer than 2 CPUs: server and client are not pinned apart.',
              file=sys.stderr)

    client_share, others = [], []
    by_name = dict(zip(names, cases))

    def measure_case(name, loop_name):
        kind, size_name, conc = by_name[name]
        return measure(loop_name, kind, case_size(kind, size_name), conc, duration, warmup)

    def on_sample(rep, name, loop_name, result):
        client_share.append(cpu_load(result, 'client'))
        others.extend(x for x in (others_load(result, 'client'),
                                  others_load(result, 'server')) if x is not None)
        busy = core_busy(result, 'client')
        if busy > CLIENT_CPU_WARN:
            print(f'  [{rep + 1}/{reps}] {name} on {loop_name}: WARNING the load '
                  f"generator's CPU was busy {busy:.0%} of the time (the generator "
                  f"{cpu_load(result, 'client'):.0%}): the client may be the limit",
                  file=sys.stderr)

    samples, errors, na, load_before, load_after = bench.interleaved(
        names, loops, reps, measure_case, on_sample)

    med = {n: {loop: (statistics.median([r['req_per_sec'] for r in samples[n][loop]])
                      if samples[n][loop] else None)
               for loop in loops} for n in names}
    med_mib = {n: {loop: (statistics.median([r['mib_per_sec'] for r in samples[n][loop]])
                          if samples[n][loop] else None)
                   for loop in loops} for n in names}

    summary = bench.summarize_samples(
        'echo', 'req/s', names, loops,
        {n: {loop: [r['req_per_sec'] for r in samples[n][loop]] for loop in loops}
         for n in names}, na=na)
    mark_client_bound(summary, samples)

    # Server CPU per request: the server process's CPU time (all threads)
    # over the measured span divided by the requests. Other processes taking
    # the CPU lower req/s but hardly this, so on a busy machine it is the
    # steadier gauge of a loop's cost (the kernel's share of the work is in
    # it too, as system time).
    cpu_summary = bench.summarize_samples(
        'echo server CPU', 'us/req', names, loops,
        {n: {loop: [r['server_cpu_share'] / r['req_per_sec'] * 1e6 for r in samples[n][loop]
                    if r.get('server_cpu_share') and r.get('req_per_sec')] for loop in loops}
         for n in names}, higher_is_better=False, na=na)

    print()
    print(bench.machine_line(info))
    print(f'Median of {reps} interleaved repetitions, each a fresh server subprocess '
          f'(CPU {server_cpu}) and client process (CPU {client_cpu}); {duration} s of round '
          f'trips after {warmup} s warm-up; load average {load_before} before, '
          f'{load_after} after.')
    bench.print_builds(info, {})
    print(f"Load generator: {info['load_generator']}.")
    if info.get('load_generator_tls'):
        print(f"Load generator of the TLS rows: {info['load_generator_tls']}.")
    if client_share:
        flagged = any(core_busy(r, 'client') > CLIENT_CPU_WARN
                      for n in names for loop in loops for r in samples[n][loop])
        print(f'The load generator was on the CPU {min(client_share):.0%} .. '
              f'{max(client_share):.0%} of each measurement'
              + (f' (WARNING: in the rows marked `!` its CPU was busy more than '
                 f'{CLIENT_CPU_WARN:.0%} of the time, and the client, not the server, may '
                 'be the limit)' if flagged else '') + '.')
    if others and max(others) > OTHERS_WARN:
        print(f'WARNING: other processes took up to {max(others):.0%} of the server\'s or the '
              'client\'s CPU during a measurement: the machine was not quiet (see "others").')
    for name, reason in missing.items():
        print(f'NOTE: {name} not available: {reason}')

    def cell(n, loop, fmt, table):
        if loop not in loops:
            return 'n/a'
        if loop in na[n]:
            return ('n/a (not implemented yet)' if na[n][loop].startswith('not implemented')
                    else 'n/a')
        return fmt(table[n].get(loop))

    def row_head(n):
        kind, size_name, conc = n.split('/')
        size = size_name.replace('k', ' KiB') if 'k' in size_name else f'{size_name} B'
        return [kind, size, conc]

    def row_max(n, key):
        xs = [key(r) for loop in loops for r in samples[n][loop]]
        xs = [x for x in xs if x is not None]
        return max(xs) if xs else None

    def client_max(n):
        x = row_max(n, lambda r: cpu_load(r, 'client'))
        if x is None:
            return 'n/a'
        busy = row_max(n, lambda r: core_busy(r, 'client'))
        return f'{x:.0%}' + (' !' if busy > CLIENT_CPU_WARN else '')

    def server_med(n, loop):
        if loop not in loops or loop in na[n]:
            return 'n/a'
        xs = [cpu_load(r, 'server') for r in samples[n][loop]]
        xs = [x for x in xs if x is not None]
        return f'{statistics.median(xs):.0%}' if xs else 'n/a'

    def others_max(n):
        xs = [row_max(n, lambda r, side=side: others_load(r, side)) for side in ('server', 'client')]
        return ' / '.join('n/a' if x is None else f'{x:.0%}' for x in xs)

    L = loops
    print()
    print('Requests per second: medians (min .. max of the samples around the median); '
          'ratios of the medians (> 1: the first loop faster). "client CPU": the share of '
          'the time the load generator was on the CPU, the highest of the row\'s samples; '
          f'`!`: in a sample of the row its CPU was busy more than {CLIENT_CPU_WARN:.0%} of '
          'the time (by the generator or by other processes), and the client, not the '
          'server, may be the limit:')
    print()
    header, rows = bench.summary_table(summary, bench.fmt_ops, ('kind', 'size', 'clients'),
                                       split=row_head)
    header.append('client CPU')
    for row, n in zip(rows, names):
        row.append(client_max(n))
    rows[-1].append('')
    print(bench.markdown_table(header, rows))
    if any(cpu_summary['rows'][n][loop] for n in names for loop in loops):
        print()
        print('Server CPU time per request (µs; the server process, all threads, user + '
              'system, over the measured span / requests): medians (min .. max); ratios > 1: '
              'the first loop costs less CPU. Less sensitive than req/s to other processes '
              'on the machine:')
        print()
        print(bench.markdown_table(*bench.summary_table(
            cpu_summary, lambda x: f'{x:.1f}', ('kind', 'size', 'clients'), split=row_head)))
    print()
    print('Throughput, MiB/s of payload echoed (one direction; medians). "server CPU": the '
          'share of the time the server process was on the CPU (all threads; median; n/a '
          'with --client py); "client CPU" as above. A server CPU near 100% with a client '
          'CPU well below: the server is the limit. "others": the highest share of the '
          'server\'s / the client\'s CPU that went to other processes in a measurement of '
          'the row (its busy share minus the process\'s; a quiet machine: about 0%).')
    print()
    header = ['kind', 'size', 'clients'] + [f'{loop} MiB/s' for loop in L] + \
        [f'{loop} server CPU' for loop in L] + ['client CPU', 'others']
    rows = [row_head(n) + [cell(n, loop, fmt_mib, med_mib) for loop in L]
            + [server_med(n, loop) for loop in L] + [client_max(n), others_max(n)]
            for n in names]
    print(bench.markdown_table(header, rows))

    udp_names = [n for n in names if family(n.split('/')[0]) == 'udp']
    if udp_names:
        print()
        print(f'UDP datagrams lost (no echo within {UDP_LOSS_TIMEOUT_MS} ms: counted lost, '
              'a new datagram sent in its place) and late (the echo came after that), summed '
              'over the samples, as lost / late / echoed in the measured spans; the req/s '
              'above count only echoes that came back in time:')
        print()
        header = ['kind', 'size', 'clients x window'] + [f'{loop} lost / late / echoed' for loop in L]
        rows = []
        for n in udp_names:
            cells = row_head(n)
            for loop in L:
                rs = samples[n].get(loop, [])
                if rs:
                    lost = sum(r.get('lost', 0) for r in rs)
                    late = sum(r.get('late', 0) for r in rs)
                    echoed = sum(r['requests'] for r in rs)
                    cells.append(f'{lost} / {late} / {echoed}')
                else:
                    cells.append(cell(n, loop, lambda x: 'n/a', {n: {}}))
            rows.append(cells)
        print(bench.markdown_table(header, rows))
        if any(r.get('lost') for n in udp_names for loop in loops for r in samples[n][loop]):
            print('WARNING: datagrams were lost: each loss stalled its slot for '
                  f'{UDP_LOSS_TIMEOUT_MS} ms, so these rows measure loss as well as speed.')

    tls_names = [n for n in names if is_tls(n.split('/')[0])]
    negotiated = {}
    if tls_names:
        # What the load generator's connections negotiated, per loop.
        for loop in loops:
            seen = sorted({f"{r.get('tls_version')} {r.get('tls_cipher')}"
                           for n in tls_names for r in samples[n][loop]})
            if seen:
                negotiated[loop] = seen
        print()
        print(f"TLS: server context {info['tls_server']}; "
              f"{info.get('tls_certificate') or 'no certificate'}. Negotiated: "
              + ('; '.join(f'{loop} {", ".join(v)}' for loop, v in negotiated.items())
                 or 'nothing (no TLS row ran)') + '.')

    reasons = sorted({f'{loop}: {why}' for n in names for loop, why in na[n].items()})
    if reasons:
        print()
        print('n/a: ' + '; '.join(reasons))
    bench.print_errors(errors)

    if args.json:
        out = {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': info, 'reps': reps, 'duration': duration, 'warmup': warmup,
            'quick': args.quick, 'cpus': {'server': server_cpu, 'client': client_cpu},
            'load_generator': info['load_generator'],
            'load_average': {'before': load_before, 'after': load_after},
            'missing_loops': missing, 'summary': summary, 'summary_cpu': cpu_summary,
            'cases': {},
        }
        if tls_names:
            out['tls'] = {'server': info['tls_server'],
                          'certificate': info.get('tls_certificate'),
                          'negotiated': negotiated}
        for n in names:
            out['cases'][n] = {
                'samples': {loop: samples[n][loop] for loop in loops},
                'median_req_per_sec': med[n], 'median_mib_per_sec': med_mib[n],
                'ratios': summary['ratios'][n],
                'not_available': na[n], 'errors': errors[n],
            }
        bench.write_json(args.json, out)
    return 1 if any(errors.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
