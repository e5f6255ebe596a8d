"""Where ourloop's TCP side differs from the stdlib on purpose (each listed
in docs/conformance.md, "Where ourloop differs from the stdlib on purpose").
"""

import asyncio
import json
import os

import pytest

from support import run_coro

HOST = "127.0.0.1"
TIMEOUT = 10



@pytest.mark.only_loop("ourloop", reason="the stdlib raises TypeError here")
def test_start_serving_on_closed_server_does_nothing(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, HOST, 0,
                                          start_serving=False)
        server.close()
        await server.start_serving()
        return server.is_serving(), server.sockets

    serving, sockets = run_coro(loop, main())
    assert serving is False
    assert not sockets


def test_transport_is_an_asyncio_transport(loop, loop_kind):
    async def main():
        server = await loop.create_server(asyncio.Protocol, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, HOST, port)
        result = (isinstance(tr, asyncio.Transport), type(tr).__name__)
        tr.close()
        server.close()
        await server.wait_closed()
        return result

    is_transport, name = run_coro(loop, main())
    assert is_transport
    if loop_kind == "ourloop":
        # type() is ourloop's own class; isinstance() holds through __class__
        assert name == "TCPTransport"


@pytest.mark.only_loop("ourloop", reason="the transport socket of a libuv-owned fd")
def test_transport_socket_close_cannot_close_libuv_fd(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, HOST, port)
        raw = tr.get_extra_info("socket")._sock
        fd = raw.fileno()
        raw.close()                 # a no-op: libuv owns the fd
        alive = os.fstat(fd) is not None and raw.fileno() == fd
        dup = raw.detach()          # a duplicate, the caller's
        os.close(dup)
        tr.write(b"still works")
        tr.close()
        for _ in range(3):
            await asyncio.sleep(0)
        server.close()
        await server.wait_closed()
        return alive, raw.fileno()

    alive, fileno_after = run_coro(loop, main())
    assert alive
    assert fileno_after == -1       # forgotten when the transport closed


@pytest.mark.only_loop("ourloop", reason="the stdlib sends a bytearray queued behind "
                       "other data as it is when sent (3.12+)")
def test_bytearray_always_copied(loop):
    async def main():
        got = bytearray()
        done = loop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data):
                got.extend(data)
                if len(got) >= 6 and not done.done():
                    done.set_result(None)

        server = await loop.create_server(Sink, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, HOST, port)
        buf = bytearray(b"abc")
        tr.write(b"xyz")
        tr.write(buf)
        buf[:] = b"ZZZ"
        await done
        tr.close()
        server.close()
        await server.wait_closed()
        return bytes(got)

    assert run_coro(loop, main()) == b"xyzabc"


def test_accept_out_of_fds_reported_then_accepting_goes_on(run_py):
    # Both loops report EMFILE to the exception handler with the stdlib's
    # message, pause accepting for a second and accept again once fds are
    # free (libuv's own uv_listen would drop such connections silently:
    # ourloop accepts by itself).
    code = r"""
import json, os, resource, socket

loop = new_loop()
messages = []
loop.set_exception_handler(lambda l, ctx: messages.append(ctx['message']))

class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
    def data_received(self, data):
        self.tr.write(data)

async def main():
    server = await loop.create_server(Echo, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    clients = []
    for _ in range(5):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(('127.0.0.1', port))
        except BlockingIOError:
            pass
        clients.append(c)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir('/proc/self/fd'))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use - 1, hard))
    try:
        # until the failed accept is reported (the test's until(), inline)
        deadline = loop.time() + 30
        while (not any('out of system resource' in m for m in messages)
               and loop.time() < deadline):
            await asyncio.sleep(0.001)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for c in clients:
        c.close()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection('127.0.0.1', port), 5)
    writer.write(b'ping')
    echoed = await asyncio.wait_for(reader.readexactly(4), 5)
    writer.close()
    server.close()
    await server.wait_closed()
    return echoed

echoed = loop.run_until_complete(main())
loop.close()
print(json.dumps({'echoed': echoed.decode(), 'messages': messages}))
"""
    result = run_py(code, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["echoed"] == "ping"
    assert "socket.accept() out of system resource" in out["messages"]
