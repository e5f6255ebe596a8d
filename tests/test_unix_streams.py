"""Unix stream sockets: create_unix_connection / create_unix_server and the
streams API over them (open_unix_connection / start_unix_server), checked
against the stdlib loop's behaviour.

Socket paths live in a fresh directory under /tmp: AF_UNIX paths are
limited to about 107 bytes, which pytest's tmp_path may exceed.
"""

import asyncio
import errno
import gc
import os
import pathlib
import shutil
import socket
import sys
import tempfile
import uuid

import pytest

from support import fd_count, run_coro, settled_fd_count, until

TIMEOUT = 10
PY313 = sys.version_info >= (3, 13)
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="abstract namespace addresses are Linux only")


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix="ol-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(sock_dir):
    return os.path.join(sock_dir, "s")


def abstract_address():
    return "\0ourloop-test-" + uuid.uuid4().hex



async def echo_handler(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    finally:
        writer.close()


async def close_server(server):
    server.close()
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)


async def echo_roundtrip(payload, **connect_kw):
    reader, writer = await asyncio.open_unix_connection(**connect_kw)

    async def send():
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    try:
        # Send while receiving: the echo must not fill both directions.
        sender = asyncio.ensure_future(send())
        received = await reader.read(-1)
        await sender
        return received
    finally:
        writer.close()
        await writer.wait_closed()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class ClientProtocol(asyncio.Protocol):
    def __init__(self):
        self.data = bytearray()
        self.eof = False
        self.done = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.eof = True

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


# -- echo ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [1024, 5 * 1024 * 1024], ids=["1KiB", "5MiB"])
def test_echo_streams(loop, sock_path, size):
    payload = bytes(range(256)) * (size // 256)

    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        try:
            assert server.is_serving()
            return await echo_roundtrip(payload, path=sock_path)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == payload


def test_echo_protocols(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        try:
            transport, protocol = await loop.create_unix_connection(
                ClientProtocol, sock_path)
            assert isinstance(protocol, ClientProtocol)
            assert protocol.transport is transport
            assert transport.can_write_eof()
            transport.write(b"hello ")
            transport.writelines([b"unix ", b"world"])
            transport.write_eof()
            await until(lambda: protocol.eof)
            transport.close()
            assert await protocol.done is None
            return bytes(protocol.data)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"hello unix world"


@pytest.mark.parametrize("kind", ["pathlib", "bytes"])
def test_path_like_and_bytes_paths(loop, sock_path, kind):
    path = pathlib.Path(sock_path) if kind == "pathlib" else os.fsencode(sock_path)

    async def main():
        server = await asyncio.start_unix_server(echo_handler, path)
        try:
            assert os.path.exists(sock_path)
            return await echo_roundtrip(b"ping", path=path)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"ping"


def test_many_concurrent_connections(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        try:
            results = await asyncio.gather(*[
                echo_roundtrip(b"%d" % i, path=sock_path) for i in range(50)])
        finally:
            await close_server(server)
        return results

    assert run_coro(loop, main()) == [b"%d" % i for i in range(50)]


# -- sock= --------------------------------------------------------------------


def test_server_and_connection_with_sock(loop, sock_path):
    async def main():
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(sock_path)
        server = await asyncio.start_unix_server(echo_handler, sock=listening)
        try:
            assert server.sockets[0].getsockname() == sock_path
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(sock_path)  # the server listens already
            return await echo_roundtrip(b"via sock=", sock=client)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"via sock="


def test_start_serving_false(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(
            EchoProtocol, sock_path, start_serving=False)
        try:
            assert not server.is_serving()
            await server.start_serving()
            assert server.is_serving()
            return await echo_roundtrip(b"late", path=sock_path)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"late"


# -- argument errors -----------------------------------------------------------


def test_connection_bad_arguments(loop, sock_path):
    async def main():
        with pytest.raises(ValueError, match="path and sock can not be"):
            with socket.socket(socket.AF_UNIX) as s:
                await loop.create_unix_connection(
                    asyncio.Protocol, sock_path, sock=s)
        with pytest.raises(ValueError, match="no path and sock were specified"):
            await loop.create_unix_connection(asyncio.Protocol)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            with pytest.raises(ValueError,
                               match="A UNIX Domain Stream Socket was expected"):
                await loop.create_unix_connection(asyncio.Protocol, sock=s)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            with pytest.raises(ValueError,
                               match="A UNIX Domain Stream Socket was expected"):
                await loop.create_unix_connection(asyncio.Protocol, sock=s)
        with pytest.raises(ValueError, match="server_hostname is only meaningful"):
            await loop.create_unix_connection(
                asyncio.Protocol, sock_path, server_hostname="x")
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only"):
            await loop.create_unix_connection(
                asyncio.Protocol, sock_path, ssl_handshake_timeout=1)
        with pytest.raises(TypeError):
            await loop.create_unix_connection(asyncio.Protocol, 42)

    run_coro(loop, main())


def test_server_bad_arguments(loop, sock_path):
    async def main():
        with pytest.raises(ValueError, match="path and sock can not be"):
            with socket.socket(socket.AF_UNIX) as s:
                await loop.create_unix_server(
                    asyncio.Protocol, sock_path, sock=s)
        with pytest.raises(ValueError, match="path was not specified, and no sock"):
            await loop.create_unix_server(asyncio.Protocol)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            with pytest.raises(ValueError,
                               match="A UNIX Domain Stream Socket was expected"):
                await loop.create_unix_server(asyncio.Protocol, sock=s)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            with pytest.raises(ValueError,
                               match="A UNIX Domain Stream Socket was expected"):
                await loop.create_unix_server(asyncio.Protocol, sock=s)
        with pytest.raises(TypeError, match="ssl argument must be an SSLContext"):
            await loop.create_unix_server(asyncio.Protocol, sock_path, ssl=True)
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only"):
            await loop.create_unix_server(
                asyncio.Protocol, sock_path, ssl_handshake_timeout=1)
        with pytest.raises(TypeError):
            await loop.create_unix_server(asyncio.Protocol, 42)
        # Nothing was bound by the failed calls.
        assert not os.path.exists(sock_path)

    run_coro(loop, main())


def test_connect_to_missing_path(loop, sock_path):
    async def main():
        # Measured while the loop runs: a running loop may own more fds
        # (ourloop's signal wake-up socketpair).
        before = fd_count()
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(asyncio.Protocol, sock_path)
        with pytest.raises(FileNotFoundError):
            await asyncio.open_unix_connection(sock_path)
        return before, fd_count()

    before, after = run_coro(loop, main())
    assert after == before


def test_connect_with_nobody_listening(loop, sock_path):
    # A socket file whose socket is bound but not listening (or closed).
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock_path)
    s.close()

    async def main():
        before = fd_count()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_unix_connection(asyncio.Protocol, sock_path)
        return before, fd_count()

    before, after = run_coro(loop, main())
    assert after == before


def test_connect_to_abstract_address_nobody_listens(loop):
    if not sys.platform.startswith("linux"):
        pytest.skip("abstract namespace addresses are Linux only")

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await loop.create_unix_connection(
                asyncio.Protocol, abstract_address())

    run_coro(loop, main())


# -- the socket file ------------------------------------------------------------


def test_stale_socket_file_is_replaced(loop, sock_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()
    # A second link keeps the inode from being reused for the new file.
    os.link(sock_path, sock_path + "-old")
    old_inode = os.stat(sock_path).st_ino

    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        try:
            assert os.stat(sock_path).st_ino != old_inode
            return await echo_roundtrip(b"fresh", path=sock_path)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"fresh"


def test_non_socket_file_is_address_in_use(loop, sock_path):
    with open(sock_path, "w") as f:
        f.write("keep me")

    async def main():
        before = fd_count()
        with pytest.raises(OSError) as info:
            await loop.create_unix_server(asyncio.Protocol, sock_path)
        return before, fd_count(), info.value

    before, after, exc = run_coro(loop, main())
    assert after == before
    assert exc.errno == errno.EADDRINUSE
    assert str(exc) == f"[Errno {errno.EADDRINUSE}] Address {sock_path!r} is already in use"
    with open(sock_path) as f:
        assert f.read() == "keep me"


@linux_only
@pytest.mark.parametrize("kind", ["str", "bytes"])
def test_abstract_namespace(loop, kind):
    address = abstract_address()
    if kind == "bytes":
        address = address.encode()

    async def main():
        server = await asyncio.start_unix_server(echo_handler, address)
        try:
            name = server.sockets[0].getsockname()
            assert os.fsencode(name) == os.fsencode(address)
            return await echo_roundtrip(b"abstract", path=address)
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"abstract"


# -- transports -------------------------------------------------------------------


def test_extra_info(loop, sock_path):
    async def main():
        accepted = loop.create_future()

        async def handler(reader, writer):
            accepted.set_result(writer)
            await reader.read(-1)
            writer.close()

        server = await asyncio.start_unix_server(handler, sock_path)
        try:
            reader, writer = await asyncio.open_unix_connection(sock_path)
            server_writer = await accepted
            client = writer.transport
            served = server_writer.transport
            info = {
                "client_peername": client.get_extra_info("peername"),
                "client_sockname": client.get_extra_info("sockname"),
                "server_peername": served.get_extra_info("peername"),
                "server_sockname": served.get_extra_info("sockname"),
            }
            for transport in (client, served):
                sock = transport.get_extra_info("socket")
                assert sock.family == socket.AF_UNIX
                assert sock.type == socket.SOCK_STREAM
                assert sock.fileno() >= 0
            assert client.get_extra_info("nonexistent", "dflt") == "dflt"
            writer.close()
            await writer.wait_closed()
            return info
        finally:
            await close_server(server)

    info = run_coro(loop, main())
    assert info == {
        "client_peername": sock_path,
        "client_sockname": "",
        "server_peername": "",
        "server_sockname": sock_path,
    }


def test_half_close(loop, sock_path):
    async def handler(reader, writer):
        # Read until the client's EOF, then answer on the still open side.
        data = await reader.read(-1)
        writer.write(b"got " + data)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_unix_server(handler, sock_path)
        try:
            reader, writer = await asyncio.open_unix_connection(sock_path)
            assert writer.can_write_eof()
            writer.write(b"request")
            writer.write_eof()
            answer = await reader.read(-1)
            assert reader.at_eof()
            writer.close()
            await writer.wait_closed()
            return answer
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == b"got request"


def test_connection_lost_when_server_closes_connection(loop, sock_path):
    async def handler(reader, writer):
        writer.write(b"bye")
        writer.close()

    async def main():
        server = await asyncio.start_unix_server(handler, sock_path)
        try:
            transport, protocol = await loop.create_unix_connection(
                ClientProtocol, sock_path)
            exc = await protocol.done
            return exc, bytes(protocol.data), protocol.eof, transport.is_closing()
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == (None, b"bye", True, True)


# -- servers ------------------------------------------------------------------------


def test_server_close_and_wait_closed(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        assert server.get_loop() is loop
        assert len(server.sockets) == 1
        sock = server.sockets[0]
        assert sock.family == socket.AF_UNIX
        assert await echo_roundtrip(b"x", path=sock_path) == b"x"
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
        # Nobody listens any more.
        with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
            await asyncio.open_unix_connection(sock_path)

    run_coro(loop, main())


def test_async_with_server(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        async with server:
            assert server.is_serving()
            assert await echo_roundtrip(b"ctx", path=sock_path) == b"ctx"
        assert not server.is_serving()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)

    run_coro(loop, main())


def test_serve_forever_cancelled(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)  # one iteration: the task starts
        assert await echo_roundtrip(b"f", path=sock_path) == b"f"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()

    run_coro(loop, main())


def test_backlog_is_accepted(loop, sock_path):
    # One connection at a time: a non-blocking AF_UNIX connect() beyond the
    # backlog fails with EAGAIN on Linux, which both loops take for "in
    # progress" (the stdlib's behaviour too).
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path, backlog=1)
        try:
            return [await echo_roundtrip(b"b", path=sock_path) for _ in range(5)]
        finally:
            await close_server(server)

    assert run_coro(loop, main()) == [b"b"] * 5


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in Python 3.13")
def test_cleanup_socket_default(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        assert os.path.exists(sock_path)
        await close_server(server)
        return os.path.exists(sock_path)

    assert run_coro(loop, main()) is False


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in Python 3.13")
def test_cleanup_socket_with_sock(loop, sock_path):
    async def main():
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(sock_path)
        server = await loop.create_unix_server(EchoProtocol, sock=listening)
        await close_server(server)
        return os.path.exists(sock_path)

    assert run_coro(loop, main()) is False


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in Python 3.13")
def test_cleanup_socket_false_keeps_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(
            EchoProtocol, sock_path, cleanup_socket=False)
        await close_server(server)
        return os.path.exists(sock_path)

    assert run_coro(loop, main()) is True


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in Python 3.13")
def test_cleanup_socket_leaves_a_replaced_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        os.unlink(sock_path)
        with open(sock_path, "w") as f:
            f.write("someone else's")
        await close_server(server)
        return os.path.exists(sock_path)

    assert run_coro(loop, main()) is True


@pytest.mark.skipif(PY313, reason="before 3.13 the socket file stays")
def test_socket_file_stays_before_313(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        await close_server(server)
        return os.path.exists(sock_path)

    assert run_coro(loop, main()) is True


# -- fd leaks ----------------------------------------------------------------------


def test_no_fd_leak(loop, sock_path):
    async def main():
        gc.collect()  # sockets of earlier tests waiting for the collector
        fd0 = fd_count()
        # Warm up: the first stream may create lazily allocated fds.
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        await echo_roundtrip(b"w", path=sock_path)
        await close_server(server)
        before = await settled_fd_count(fd0, collect=True)
        for _ in range(3):
            server = await asyncio.start_unix_server(echo_handler, sock_path)
            await asyncio.gather(*[
                echo_roundtrip(b"x", path=sock_path) for _ in range(10)])
            transport, protocol = await loop.create_unix_connection(
                ClientProtocol, sock_path)
            transport.abort()
            await protocol.done
            await close_server(server)
        # The failures too.
        for _ in range(3):
            with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
                await asyncio.open_unix_connection(sock_path + "-missing")
        return before, await settled_fd_count(before)

    before, after = run_coro(loop, main())
    assert after == before


def test_cancelled_connection_closes_its_socket(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(echo_handler, sock_path)
        try:
            gc.collect()
            fd0 = fd_count()
            await echo_roundtrip(b"w", path=sock_path)
            before = await settled_fd_count(fd0, collect=True)
            for steps in range(6):
                task = asyncio.ensure_future(
                    asyncio.open_unix_connection(sock_path))
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    reader, writer = await task
                except asyncio.CancelledError:
                    pass
                else:
                    writer.close()
                    await writer.wait_closed()
            return before, await settled_fd_count(before)
        finally:
            await close_server(server)

    before, after = run_coro(loop, main())
    assert after == before


@pytest.mark.parametrize("start_serving", [True, False])
@pytest.mark.parametrize("backlog,exc", [(1.1, TypeError), ("1", TypeError),
                                         (2**70, OverflowError)])
def test_unix_server_bad_backlog(loop, sock_path, backlog, exc, start_serving):
    async def main():
        if start_serving:
            with pytest.raises(exc):
                await loop.create_unix_server(asyncio.Protocol, sock_path,
                                              backlog=backlog)
            return
        server = await loop.create_unix_server(asyncio.Protocol, sock_path,
                                               backlog=backlog,
                                               start_serving=False)
        try:
            with pytest.raises(exc):
                await server.start_serving()
        finally:
            server.close()

    run_coro(loop, main())
