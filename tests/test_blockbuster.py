"""No Python-level blocking call in the loop thread that the stdlib loop does
not make from its own (excused) functions.

blockbuster (used by aiohttp's and anyio's own test suites) wraps os.stat,
os.read/os.write on blocking fds, os.sendfile, os.unlink, blocking socket
calls, time.sleep, lock waits and more, and raises BlockingError when one
runs while a loop is running, unless it is called from a function it
excuses by file and name (the stdlib loop's own create_unix_server,
_stop_serving, _sock_sendfile_native_impl, subprocess_exec...). It cannot
excuse ourloop's functions, so ourloop must make such calls natively (C
calls) or not at all. Each scenario runs on both loops under
blockbuster_ctx().
"""

import asyncio
import os
import signal
import socket
import sys
import tempfile

import blockbuster
import pytest

HOST = "127.0.0.1"
TIMEOUT = 20


@pytest.fixture
def busted(loop):
    """run(coro) on `loop` with blockbuster active."""

    def run(coro):
        with blockbuster.blockbuster_ctx():
            return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))

    return run


@pytest.fixture
def sock_dir():
    d = tempfile.mkdtemp(prefix="ourloop-bb-")
    yield d
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


async def _echo(reader, writer):
    data = await reader.read(100)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _roundtrip(reader, writer, payload=b"ping"):
    writer.write(payload)
    await writer.drain()
    data = await reader.read(100)
    writer.close()
    await writer.wait_closed()
    return data


async def _serve_and_roundtrip(start, connect):
    """start() -> a server; connect(server) -> (reader, writer); one echo."""
    server = await start()
    data = await _roundtrip(*await connect(server))
    server.close()
    await server.wait_closed()
    return data


def _port(server):
    return server.sockets[0].getsockname()[1]


def test_tcp_server_and_client(busted):
    assert busted(_serve_and_roundtrip(
        lambda: asyncio.start_server(_echo, HOST, 0),
        lambda server: asyncio.open_connection(HOST, _port(server)))) == b"ping"


def test_tcp_client_by_name(busted):
    # 'localhost' is resolved through getaddrinfo in the executor.
    assert busted(_serve_and_roundtrip(
        lambda: asyncio.start_server(_echo, HOST, 0),
        lambda server: asyncio.open_connection("localhost", _port(server),
                                               family=socket.AF_INET))) == b"ping"


def test_unix_server_and_client(busted, sock_dir):
    path = os.path.join(sock_dir, "s")
    assert busted(_serve_and_roundtrip(
        lambda: asyncio.start_unix_server(_echo, path),
        lambda server: asyncio.open_unix_connection(path))) == b"ping"


@pytest.mark.only_loop("ourloop", reason="the stdlib loop removes the stale file with "
                       "os.remove, which blockbuster does not excuse")
def test_unix_server_replaces_stale_socket_file(busted, sock_dir):
    path = os.path.join(sock_dir, "stale")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()

    assert busted(_serve_and_roundtrip(
        lambda: asyncio.start_unix_server(_echo, path),
        lambda server: asyncio.open_unix_connection(path))) == b"ping"


def test_udp_endpoints(busted):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self, fut):
            self.fut = fut

        def datagram_received(self, data, addr):
            self.fut.set_result(data)

    async def main():
        loop = asyncio.get_running_loop()
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
        port = server.get_extra_info("sockname")[1]
        fut = loop.create_future()
        client, _ = await loop.create_datagram_endpoint(
            lambda: Client(fut), remote_addr=(HOST, port))
        client.sendto(b"ping")
        data = await fut
        client.close()
        server.close()
        return data

    assert busted(main()) == b"ping"


def test_sock_methods(busted):
    async def main():
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        try:
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, listener.getsockname())
            conn, _ = await accept
            with conn:
                await loop.sock_sendall(client, b"ping")
                data = await loop.sock_recv(conn, 100)
                buf = bytearray(10)
                await loop.sock_sendall(conn, b"pong")
                n = await loop.sock_recv_into(client, buf)
            return data, bytes(buf[:n])
        finally:
            client.close()
            listener.close()

    assert busted(main()) == (b"ping", b"pong")


@pytest.fixture
def data_file():
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 100_000)
        f.flush()
        f.seek(0)
        yield f


def test_sendfile_and_sock_sendfile(busted, data_file):
    async def main():
        loop = asyncio.get_running_loop()
        got = []
        done = loop.create_future()

        async def sink(reader, writer):
            got.append(await reader.read())
            writer.close()
            await writer.wait_closed()
            done.set_result(None)

        server = await asyncio.start_server(sink, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        sent = await loop.sendfile(writer.transport, data_file, 0, 50_000)
        writer.close()
        await writer.wait_closed()
        await done

        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (HOST, port))
            done = loop.create_future()
            sent2 = await loop.sock_sendfile(sock, data_file, 50_000)
        finally:
            sock.close()
        await done
        server.close()
        await server.wait_closed()
        return sent, sent2, [len(g) for g in got]

    assert busted(main()) == (50_000, 50_000, [50_000, 50_000])


def test_tls_server_and_client(busted, tls_certs):
    server_ctx = tls_certs.server_context()
    client_ctx = tls_certs.client_context()
    assert busted(_serve_and_roundtrip(
        lambda: asyncio.start_server(_echo, HOST, 0, ssl=server_ctx),
        lambda server: asyncio.open_connection(
            HOST, _port(server), ssl=client_ctx,
            server_hostname="localhost"))) == b"ping"


def test_pipes(busted):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        reader = asyncio.StreamReader()
        read_tr, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", 0))
        write_tr, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(wfd, "wb", 0))
        write_tr.write(b"ping")
        write_tr.close()
        data = await reader.read()
        read_tr.close()
        return data

    assert busted(main()) == b"ping"


@pytest.mark.skipif(sys.platform == "win32", reason="Unix signals")
def test_signal_handler(busted):
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, fut.set_result, "got it")
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            return await fut
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    assert busted(main()) == "got it"


def test_executor_and_timers(busted):
    async def main():
        loop = asyncio.get_running_loop()
        value = await loop.run_in_executor(None, sum, [1, 2, 3])
        await asyncio.sleep(0.001)
        return value

    assert busted(main()) == 6


def test_loop_shutdown_steps(busted):
    # What asyncio.run() does at the end, inside the running loop.
    async def agen():
        yield 1
        yield 2

    async def main():
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sum, [1])
        gen = agen()
        first = await gen.__anext__()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()
        return first

    assert busted(main()) == 1


def test_fd_watchers(busted):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            fut = loop.create_future()
            loop.add_reader(a.fileno(), lambda: fut.set_result(a.recv(10)))
            b.send(b"ping")
            data = await fut
            loop.remove_reader(a.fileno())
            wfut = loop.create_future()
            loop.add_writer(a.fileno(), lambda: wfut.done() or wfut.set_result(True))
            writable = await wfut
            loop.remove_writer(a.fileno())
            return data, writable
        finally:
            a.close()
            b.close()

    assert busted(main()) == (b"ping", True)
