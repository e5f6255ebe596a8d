"""Micro-benchmark: the stdlib's asyncio.sslproto.SSLProtocol vs ourloop's
native one (ourloop/tls.pyx), both on the stdlib's selector loop.

Three modes, each run in rounds that alternate the two classes (medians):
  bulk      a TLS echo of --mib MiB over loopback TCP with asyncio streams
            (client writes with drain(), server echoes, client reads it all
            back): MiB/s of payload
  pingpong  --count round trips of a 1 KiB message over loopback TCP with
            asyncio streams: round trips per second
  layer     the TLS layer alone: two SSLProtocols wired back to back by an
            in-memory raw transport, --mib MiB echoed by plain protocols:
            MiB/s of payload (crypto included, no sockets, no streams)

    python benchmarks/tls_sslproto.py [--mib 256] [--count 20000] [--rounds 5]

Certificates are made with the `openssl` command in a temporary directory.
Not a test: numbers depend on the machine.

Results of 2026-11-22 (Python 3.11.7, OpenSSL 3.0.19, TLS 1.3 AES-256-GCM,
2 vCPUs shared with other jobs; --mib 256 --count 20000 --rounds 7, medians):

    mode       stdlib class            ourloop class           ratio
    layer      504 MiB/s               534 MiB/s               1.06
    bulk       372 MiB/s               377 MiB/s               1.01
    pingpong   21 185 round trips/s    26 076 round trips/s    1.23

Bulk transfers are bound by AES-GCM (four passes per echoed byte) and by the
page faults of large short-lived buffers (about 30% of the `layer` profile,
in both classes); the native class wins where per-record Python work
dominates: small messages.
"""

import argparse
import asyncio
import asyncio.sslproto
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ourloop._core  # noqa: E402

STDLIB = asyncio.sslproto.SSLProtocol
NATIVE = ourloop._core.SSLProtocol
CHUNK = 256 * 1024


def make_contexts(d):
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
                    '-keyout', f'{d}/k.pem', '-out', f'{d}/c.pem'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(f'{d}/c.pem', f'{d}/k.pem')
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(f'{d}/c.pem')
    return sctx, cctx


async def echo(reader, writer):
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def bulk(sctx, cctx, total):
    srv = await asyncio.start_server(echo, '127.0.0.1', 0, ssl=sctx)
    port = srv.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port, ssl=cctx,
                                                   server_hostname='localhost')
    block = os.urandom(CHUNK)

    async def send():
        for _ in range(total // CHUNK):
            writer.write(block)
            await writer.drain()

    t0 = time.perf_counter()
    sender = asyncio.ensure_future(send())
    got = 0
    while got < total:
        data = await reader.read(CHUNK)
        got += len(data)
    await sender
    dt = time.perf_counter() - t0
    writer.close()
    srv.close()
    await srv.wait_closed()
    return total / dt / (1024 * 1024)


async def pingpong(sctx, cctx, count):
    srv = await asyncio.start_server(echo, '127.0.0.1', 0, ssl=sctx)
    port = srv.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port, ssl=cctx,
                                                   server_hostname='localhost')
    msg = b'x' * 1024
    t0 = time.perf_counter()
    for _ in range(count):
        writer.write(msg)
        await reader.readexactly(len(msg))
    dt = time.perf_counter() - t0
    writer.close()
    srv.close()
    await srv.wait_closed()
    return count / dt


class MemoryRaw:
    """A raw transport in memory: what one side writes reaches the other
    side's SSLProtocol through get_buffer()/buffer_updated() on the next
    loop iteration."""

    def __init__(self, loop):
        self.loop = loop
        self.proto = None
        self.peer = None
        self.closed = False

    def write(self, data):
        self.loop.call_soon(self.peer._deliver, data)

    def _deliver(self, data):
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            piece = view[i:i + CHUNK]
            buf = self.proto.get_buffer(len(piece))
            buf[:len(piece)] = piece
            self.proto.buffer_updated(len(piece))

    def get_extra_info(self, name, default=None):
        return default

    def is_reading(self):
        return True

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def close(self):
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.proto.connection_lost, None)

    abort = close

    def _force_close(self, exc):
        self.close()


class EchoProto(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class SinkProto(asyncio.Protocol):
    def __init__(self, loop, total):
        self.total = total
        self.got = 0
        self.done = loop.create_future()
        self.can_write = loop.create_future()
        self.can_write.set_result(None)
        self.loop = loop

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.got += len(data)
        if self.got >= self.total and not self.done.done():
            self.done.set_result(None)

    def pause_writing(self):
        self.can_write = self.loop.create_future()

    def resume_writing(self):
        self.can_write.set_result(None)


async def layer(sctx, cctx, total):
    loop = asyncio.get_running_loop()
    cls = asyncio.sslproto.SSLProtocol
    cw, sw = loop.create_future(), loop.create_future()
    sink = SinkProto(loop, total)
    client = cls(loop, sink, cctx, cw, server_hostname='localhost')
    server = cls(loop, EchoProto(), sctx, sw, server_side=True)
    craw, sraw = MemoryRaw(loop), MemoryRaw(loop)
    craw.proto, craw.peer, sraw.proto, sraw.peer = client, sraw, server, craw
    server.connection_made(sraw)
    client.connection_made(craw)
    await cw
    await sw
    block = os.urandom(CHUNK)
    t0 = time.perf_counter()
    for _ in range(total // CHUNK):
        await sink.can_write
        sink.transport.write(block)
    await sink.done
    dt = time.perf_counter() - t0
    craw.close()
    sraw.close()
    return total / dt / (1024 * 1024)


def run_one(cls, coro_fn, *args):
    asyncio.sslproto.SSLProtocol = cls
    loop = asyncio.SelectorEventLoop()
    try:
        return loop.run_until_complete(coro_fn(*args))
    finally:
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()
        asyncio.sslproto.SSLProtocol = STDLIB


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--mib', type=int, default=256)
    ap.add_argument('--count', type=int, default=20000)
    ap.add_argument('--rounds', type=int, default=5)
    args = ap.parse_args()
    if sys.version_info < (3, 11):
        # Before 3.11 the stdlib's SSLProtocol is the older design (a plain
        # Protocol, no get_buffer()), which this comparison cannot drive.
        sys.exit('tls_sslproto.py needs Python 3.11 or later (the stdlib\'s SSLProtocol '
                 'before 3.11 is a different design)')
    with tempfile.TemporaryDirectory() as d:
        sctx, cctx = make_contexts(d)
        print(f'Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}')
        for name, fn, arg, unit in (('layer', layer, args.mib * 1024 * 1024, 'MiB/s'),
                                    ('bulk', bulk, args.mib * 1024 * 1024, 'MiB/s'),
                                    ('pingpong', pingpong, args.count, 'round trips/s')):
            res = {'stdlib': [], 'native': []}
            for _ in range(args.rounds):
                res['stdlib'].append(run_one(STDLIB, fn, sctx, cctx, arg))
                res['native'].append(run_one(NATIVE, fn, sctx, cctx, arg))
            ms, mn = statistics.median(res['stdlib']), statistics.median(res['native'])
            print(f'{name:9s} stdlib {ms:9.1f} {unit}   native {mn:9.1f} {unit}   '
                  f'x{mn / ms:.2f}   (rounds: stdlib {[round(x) for x in res["stdlib"]]}, '
                  f'native {[round(x) for x in res["native"]]})', flush=True)


if __name__ == '__main__':
    main()
