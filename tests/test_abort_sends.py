"""What a transport dropped by abort() (or by any other path that discards
its write buffer) has already handed to the kernel, checked against the
stdlib loop.

The stdlib's socket and pipe transports try to send at once in write()
when their buffer is empty, so a small write followed by abort() reaches
the peer (aiohttp answers a refused websocket handshake so). ourloop
batches writes per iteration; every path that drops the batch (abort(),
a fatal error, _force_close(), loop.close()) makes one non-blocking try
first, and sends nothing the stdlib would not have sent: data written
while earlier data still waits for the socket to be writable is dropped.
"""

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile

import pytest

from support import run_coro

HOST = "127.0.0.1"
TIMEOUT = 10
RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


class Reader(asyncio.Protocol):
    """The peer: collects what arrives until the connection is lost."""

    def __init__(self, loop):
        self.data = bytearray()
        self.lost = loop.create_future()

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix="ol-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def serve_and_read(loop, factory, unix_path=None, send=b"", tls_certs=None):
    """Start a server with protocol factory, connect a Reader to it (which
    sends `send`); return what the Reader got once its connection is
    lost. Over TLS with tls_certs (TCP only)."""
    if unix_path is None:
        tls = tls_certs is not None
        server = await loop.create_server(
            factory, HOST, 0, ssl=tls_certs.server_context() if tls else None)
        port = server.sockets[0].getsockname()[1]
        tr, reader = await loop.create_connection(
            lambda: Reader(loop), HOST, port,
            **(dict(ssl=tls_certs.client_context(), server_hostname="localhost") if tls else {}))
    else:
        server = await loop.create_unix_server(factory, unix_path)
        tr, reader = await loop.create_unix_connection(lambda: Reader(loop), unix_path)
    if send:
        tr.write(send)
    try:
        await asyncio.wait_for(reader.lost, TIMEOUT)
    finally:
        tr.close()
        server.close()
        await server.wait_closed()
    return bytes(reader.data)


@contextlib.asynccontextmanager
async def raw_client(loop, protocol, rcvbuf=None):
    """A server making `protocol` (a class) and a plain non-blocking socket
    connected to it (with SO_RCVBUF set to `rcvbuf` before it connects, if
    given): yields (the server's protocol, its transport, the socket) once
    connection_made() has run; closes the socket and the server after."""
    made = loop.create_future()

    class Made(protocol):
        def connection_made(self, tr):
            super().connection_made(tr)
            made.set_result((self, tr))

    server = await loop.create_server(Made, HOST, 0)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    client.connect(server.sockets[0].getsockname())
    client.setblocking(False)
    try:
        proto, tr = await asyncio.wait_for(made, TIMEOUT)
        yield proto, tr, client
    finally:
        client.close()
        server.close()
        await server.wait_closed()


async def recv_to_eof(loop, sock, reset_ends=False):
    """What arrives on sock until EOF (or a reset, with reset_ends)."""
    data = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), TIMEOUT)
        except ConnectionResetError:
            if not reset_ends:
                raise
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


class WriteAbort(asyncio.Protocol):
    """The issue's protocol: a response, then abort() at once."""

    chunks = (RESPONSE,)

    def connection_made(self, tr):
        for chunk in self.chunks:
            tr.write(chunk)
        tr.abort()


def test_write_then_abort_in_connection_made(loop):
    assert run_coro(loop, serve_and_read(loop, WriteAbort)) == RESPONSE


def test_write_then_abort_unix(loop, sock_dir):
    path = os.path.join(sock_dir, "s")
    assert run_coro(loop, serve_and_read(loop, WriteAbort, path)) == RESPONSE


def test_several_writes_then_abort(loop):
    # Each of the stdlib's write()s sends at once: all of them arrive, in
    # order (writelines too).
    class P(asyncio.Protocol):
        def connection_made(self, tr):
            tr.write(b"a" * 10)
            tr.write(bytearray(b"b" * 20))
            tr.writelines([b"c" * 30, memoryview(b"d" * 40)])
            tr.abort()

    data = run_coro(loop, serve_and_read(loop, P))
    assert data == b"a" * 10 + b"b" * 20 + b"c" * 30 + b"d" * 40


def test_write_then_abort_in_data_received(loop):
    class Server(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            self.tr.write(b"no: " + data)
            self.tr.abort()

    assert run_coro(loop, serve_and_read(loop, Server, send=b"hello")) == b"no: hello"


def test_write_then_protocol_error(loop):
    # data_received() writes, then raises: the fatal error closes the
    # transport, and what was written already left.
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class Server(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            self.tr.write(b"partial answer")
            raise ZeroDivisionError

    assert run_coro(loop, serve_and_read(loop, Server, send=b"question")) == b"partial answer"
    assert [type(c.get("exception")) for c in contexts] == [ZeroDivisionError]


def test_write_then_force_close(loop):
    # _force_close(exc) (what the stdlib's SSLProtocol calls on a handshake
    # failure) drops the buffer the same way.
    class P(asyncio.Protocol):
        def connection_made(self, tr):
            tr.write(RESPONSE)
            tr._force_close(None)

    assert run_coro(loop, serve_and_read(loop, P)) == RESPONSE


def test_abort_with_buffered_data_drops_later_writes(loop):
    # The peer does not read: a large write fills the socket buffers and
    # the rest waits. A write made then would not have been tried by the
    # stdlib (its buffer is not empty): abort() drops it, only a part of
    # the large write has left.
    big = b"x" * (16 * 1024 * 1024)
    marker = b"MARKER"

    async def main():
        async with raw_client(loop, asyncio.Protocol) as (_, tr, client):
            tr.write(big)
            assert tr.get_write_buffer_size() > 0
            tr.write(marker)
            tr.abort()
            return await recv_to_eof(loop, client, reset_ends=True)

    data = run_coro(loop, main())
    assert 0 < len(data) < len(big)
    assert marker not in data


def test_write_then_loop_close(loop_factory):
    # The loop stops right after a write and is closed with the transport
    # open: what the stdlib would have sent has left.
    a, b = socket.socketpair()
    loop = loop_factory()
    try:
        async def main():
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
            tr.write(RESPONSE)
            loop.stop()

        loop.create_task(main())
        loop.run_forever()
    finally:
        loop.close()
        a.close()
    b.settimeout(TIMEOUT)
    try:
        assert b.recv(100) == RESPONSE
    finally:
        b.close()


def test_write_pipe_write_then_abort(loop):
    rfd, wfd = os.pipe()
    rf = open(rfd, "rb", buffering=0)
    wf = open(wfd, "wb", buffering=0)

    async def main():
        tr, _ = await loop.connect_write_pipe(asyncio.Protocol, wf)
        tr.write(b"last words")
        tr.abort()
        await asyncio.sleep(0)

    try:
        run_coro(loop, main())
        os.set_blocking(rf.fileno(), False)
        assert rf.read(100) == b"last words"
    finally:
        rf.close()
        wf.close()


def test_datagram_sendto_then_abort(loop):
    # sendto() already tries at once on both loops: the datagram left.
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((HOST, 0))
    receiver.settimeout(TIMEOUT)

    async def main():
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=receiver.getsockname())
        tr.sendto(b"datagram")
        tr.abort()
        await asyncio.sleep(0)

    try:
        run_coro(loop, main())
        assert receiver.recv(100) == b"datagram"
    finally:
        receiver.close()


def test_tls_write_then_abort(loop, tls_certs):
    # Over TLS: the records of a write made right before abort() leave
    # through the raw transport's abort().
    class Server(asyncio.Protocol):
        def connection_made(self, tr):
            tr.write(RESPONSE)
            tr.abort()

    assert run_coro(loop, serve_and_read(loop, Server, tls_certs=tls_certs)) == RESPONSE


def test_close_before_pending_resume_writing(loop):
    # close() called once the write buffer has drained but before the
    # protocol was told resume_writing(): what resume_writing() writes
    # still leaves before connection_lost(). The stdlib calls
    # resume_writing() in the same step that empties its buffer; ourloop's
    # comes in the ready phase, and a close() queued before it (TLS's
    # shutdown does call_soon(transport.close)) must wait for it.
    # (More than the kernel can take at once: an accepted socket's send
    # buffer may already be at tcp_wmem's maximum, 4 MiB by default.)
    big = b"x" * (16 * 1024 * 1024)

    class Server(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr
            self.pauses = 0

        def pause_writing(self):
            self.pauses += 1

        def resume_writing(self):
            self.tr.write(b"END")

    async def main():
        # Small socket buffers on both sides (no autotuning): the kernel
        # cannot take the write at once, whatever tcp_rmem/tcp_wmem allow.
        async with raw_client(loop, Server, rcvbuf=65536) as (proto, tr, client):
            tr.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            tr.write(big)
            assert proto.pauses == 1 and tr.get_write_buffer_size() > 0

            def tick():
                # Every iteration, before the I/O callbacks' work: close
                # as soon as nothing is buffered.
                if tr.get_write_buffer_size() == 0:
                    tr.close()
                else:
                    loop.call_soon(tick)

            loop.call_soon(tick)
            return await recv_to_eof(loop, client)

    data = run_coro(loop, main())
    assert len(data) == len(big) + 3 and data.endswith(b"END")
