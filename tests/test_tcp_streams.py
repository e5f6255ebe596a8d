"""TCP through the high-level asyncio streams API (open_connection /
start_server), checked against the stdlib loop's behaviour.
"""

import asyncio
import socket
import struct

import pytest

HOST = "127.0.0.1"
TIMEOUT = 10


from support import fd_count, settled_fd_count


def free_closed_port():
    """A port on 127.0.0.1 with nothing listening (bound, then closed)."""
    s = socket.socket()
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


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


async def start_echo_server(**kw):
    server = await asyncio.start_server(echo_handler, HOST, 0, **kw)
    port = server.sockets[0].getsockname()[1]
    return server, port


async def close_server(server):
    server.close()
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)


@pytest.mark.parametrize(
    "size", [1024, 100 * 1024, 10 * 1024 * 1024], ids=["1KiB", "100KiB", "10MiB"]
)
def test_echo_payload(loop, size):
    payload = bytes(range(256)) * (size // 256)
    assert len(payload) == size

    async def main():
        server, port = await start_echo_server()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)

            async def send():
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sender = asyncio.ensure_future(send())
            received = await reader.read(-1)  # until EOF
            await sender
            writer.close()
            await writer.wait_closed()
            return received
        finally:
            await close_server(server)

    received = loop.run_until_complete(asyncio.wait_for(main(), 30))
    assert len(received) == size
    assert received == payload


def test_readexactly_readline_readuntil(loop):
    async def handler(reader, writer):
        writer.write(b"line one\nABCDEFxyz|tail")
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            line = await reader.readline()
            six = await reader.readexactly(6)
            until = await reader.readuntil(b"|")
            with pytest.raises(asyncio.IncompleteReadError) as ei:
                await reader.readexactly(100)
            assert reader.at_eof()
            writer.close()
            await writer.wait_closed()
            return line, six, until, ei.value
        finally:
            await close_server(server)

    line, six, until, exc = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    assert line == b"line one\n"
    assert six == b"ABCDEF"
    assert until == b"xyz|"
    assert exc.partial == b"tail"
    assert exc.expected == 100


def test_streams_half_close(loop):
    """Client write_eof(); server sees EOF, still answers; client reads it."""

    async def handler(reader, writer):
        data = await reader.read(-1)  # returns only at EOF
        writer.write(b"got:" + data)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            assert writer.can_write_eof() is True
            writer.write(b"hello")
            writer.write_eof()
            reply = await reader.read(-1)
            writer.close()
            await writer.wait_closed()
            return reply
        finally:
            await close_server(server)

    assert loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT)) == b"got:hello"


def test_writer_extra_info(loop):
    async def main():
        server, port = await start_echo_server()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            sock = writer.get_extra_info("socket")
            info = (
                type(sock),
                writer.get_extra_info("sockname"),
                writer.get_extra_info("peername"),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                writer.get_extra_info("no-such-key", "dflt"),
            )
            writer.close()
            await writer.wait_closed()
            return info
        finally:
            await close_server(server)

    typ, sockname, peername, nodelay, dflt = loop.run_until_complete(
        asyncio.wait_for(main(), TIMEOUT)
    )
    assert typ is asyncio.trsock.TransportSocket
    assert sockname[0] == HOST and sockname[1] > 0
    assert peername[0] == HOST
    assert nodelay != 0
    assert dflt == "dflt"


def test_concurrent_connections_200(loop):
    n = 200

    async def client(i):
        reader, writer = await asyncio.open_connection(HOST, port_box[0])
        msg = ("client %d\n" % i).encode() * 10
        writer.write(msg)
        await writer.drain()
        writer.write_eof()
        data = await reader.read(-1)
        writer.close()
        await writer.wait_closed()
        return data == msg

    port_box = []

    async def main():
        server, port = await start_echo_server(backlog=n)
        port_box.append(port)
        try:
            return await asyncio.gather(*(client(i) for i in range(n)))
        finally:
            await close_server(server)

    results = loop.run_until_complete(asyncio.wait_for(main(), 20))
    assert len(results) == n
    assert all(results)


def test_open_connection_refused(loop):
    port = free_closed_port()

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(HOST, port)
        return True

    assert loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))


def test_peer_reset_seen_by_stream_reader(loop):
    """The client closes with SO_LINGER=0 (RST): the server's read raises."""
    outcome = loop.create_future()
    first_read = loop.create_future()

    async def handler(reader, writer):
        try:
            first = await reader.readexactly(5)
            first_read.set_result(None)
            rest = await reader.read(100)
            rest += await reader.read(100)
            outcome.set_result(("data", first, rest))
        except Exception as exc:
            outcome.set_result(("exc", exc))
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handler, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"hello")
            await writer.drain()
            await asyncio.wait_for(first_read, TIMEOUT)  # the server has it
            sock = writer.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
            return await asyncio.wait_for(outcome, TIMEOUT)
        finally:
            await close_server(server)

    res = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    assert res[0] == "exc", res
    assert isinstance(res[1], ConnectionResetError)


def test_cancel_open_connection_leaves_no_fd(loop):
    """Cancel open_connection after 0, 1, 2, ... loop iterations."""

    async def main():
        server, port = await start_echo_server()
        try:
            fd0 = fd_count()
            # warm up: the first connection may create lazily allocated fds
            r, w = await asyncio.open_connection(HOST, port)
            w.close()
            await w.wait_closed()
            before = await settled_fd_count(fd0)  # (the server side closes later)
            outcomes = []
            for steps in range(8):
                task = asyncio.ensure_future(asyncio.open_connection(HOST, port))
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    r, w = await task
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
                else:
                    outcomes.append("connected")
                    w.close()
                    await w.wait_closed()
            return before, await settled_fd_count(before), outcomes
        finally:
            await close_server(server)

    before, after, outcomes = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    assert outcomes[0] == "cancelled"
    assert after == before, outcomes


def test_cancel_read_leaves_no_fd(loop):
    async def silent(reader, writer):
        try:
            await reader.read(-1)
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(silent, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            fd0 = fd_count()
            r, w = await asyncio.open_connection(HOST, port)
            w.close()
            await w.wait_closed()
            before = await settled_fd_count(fd0)  # (the server side closes later)
            for steps in range(4):
                reader, writer = await asyncio.open_connection(HOST, port)
                for meth in (
                    lambda reader=reader: reader.read(10),
                    lambda reader=reader: reader.readline(),
                    lambda reader=reader: reader.readexactly(10),
                ):
                    task = asyncio.ensure_future(meth())
                    for _ in range(steps):
                        await asyncio.sleep(0)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                # the stream is still usable after a cancelled read
                assert not reader.at_eof()
                writer.close()
                await writer.wait_closed()
            return before, await settled_fd_count(before)
        finally:
            await close_server(server)

    before, after = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    assert after == before


def test_start_server_releases_fds(loop):
    async def main():
        before = fd_count()
        server, port = await start_echo_server()
        during = fd_count()
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return before, during, await settled_fd_count(before)

    before, during, after = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    assert during > before
    assert after == before
