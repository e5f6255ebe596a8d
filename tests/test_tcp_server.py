"""asyncio.Server objects and loop.create_connection options, checked
against the stdlib loop's behaviour.
"""

import asyncio
import socket
import sys

import pytest

HOST = "127.0.0.1"
TIMEOUT = 10


from support import fd_count, ipv6_loopback_works, quiet_period, run_coro, settled_fd_count, until


def closed_port(host=HOST, family=socket.AF_INET):
    s = socket.socket(family)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()





class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.lost = loop.create_future()
        self.got = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        if not self.got.done():
            self.got.set_result(None)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def roundtrip(loop, host, port, **kw):
    tr, p = await loop.create_connection(lambda: Client(loop), host, port, **kw)
    tr.write(b"ping")
    await asyncio.wait_for(p.got, TIMEOUT)
    info = tr.get_extra_info("peername"), tr.get_extra_info("sockname")
    tr.close()
    await asyncio.wait_for(p.lost, TIMEOUT)
    return bytes(p.data), info


def patch_getaddrinfo(monkeypatch, loop, addrs):
    """Make ``loop.getaddrinfo`` return the given (family, sockaddr) list."""
    calls = []

    async def fake(host, port, *, family=0, type=0, proto=0, flags=0):
        calls.append((host, port))
        return [(fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sa) for fam, sa in addrs]

    try:
        monkeypatch.setattr(loop, "getaddrinfo", fake)
    except (AttributeError, TypeError) as exc:
        pytest.skip("cannot patch loop.getaddrinfo on this loop: %r" % (exc,))
    return calls


# --------------------------------------------------------------------------
# Server objects
# --------------------------------------------------------------------------


def test_server_attributes_and_close(loop):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        socks = server.sockets
        state = dict(
            loop=server.get_loop(),
            n=len(socks),
            types={type(s) for s in socks},
            sockname=socks[0].getsockname(),
            serving=server.is_serving(),
            isinstance_server=isinstance(server, asyncio.AbstractServer),
        )
        data, _ = await roundtrip(loop, HOST, state["sockname"][1])
        server.close()
        state["serving_after_close"] = server.is_serving()
        state["sockets_after_close"] = server.sockets
        await server.wait_closed()
        await server.wait_closed()  # idempotent
        state["data"] = data
        return state

    st = run_coro(loop, main())
    assert st["loop"] is loop
    assert st["n"] == 1
    assert st["types"] == {asyncio.trsock.TransportSocket}
    assert st["sockname"][0] == HOST and st["sockname"][1] > 0
    assert st["serving"] is True
    assert st["isinstance_server"]
    assert st["data"] == b"ping"
    assert st["serving_after_close"] is False
    assert tuple(st["sockets_after_close"]) == ()


def test_start_serving_false_then_start_serving(loop):
    async def main():
        server = await loop.create_server(Echo, HOST, 0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        before = server.is_serving()
        # bound but not listening yet
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, HOST, port)
        await server.start_serving()
        await server.start_serving()  # idempotent
        after = server.is_serving()
        data, _ = await roundtrip(loop, HOST, port)
        server.close()
        await server.wait_closed()
        return before, after, data

    before, after, data = run_coro(loop, main())
    assert before is False
    assert after is True
    assert data == b"ping"


def test_serve_forever_cancelled_by_close(loop):
    async def main():
        server = await loop.create_server(Echo, HOST, 0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        task = asyncio.ensure_future(server.serve_forever())
        serving = await until(server.is_serving)  # serve_forever starts serving
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # already being awaited
        data, _ = await roundtrip(loop, HOST, port)
        server.close()
        # on every supported version (3.9 .. 3.13) the serve_forever()
        # awaiter sees CancelledError when another task closes the server
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # server is closed
        return serving, data

    serving, data = run_coro(loop, main())
    assert serving is True
    assert data == b"ping"


def test_async_with_server(loop):
    async def main():
        async with await loop.create_server(Echo, HOST, 0) as server:
            port = server.sockets[0].getsockname()[1]
            inside = server.is_serving()
            data, _ = await roundtrip(loop, HOST, port)
        outside = server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, HOST, port)
        return inside, outside, data

    inside, outside, data = run_coro(loop, main())
    assert inside is True and outside is False
    assert data == b"ping"


async def _server_with_live_client(loop):
    """An echo server and one connected client that has had an echo."""
    server = await loop.create_server(Echo, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    tr, p = await loop.create_connection(lambda: Client(loop), HOST, port)
    tr.write(b"x")
    await p.got
    return server, tr, p


def test_wait_closed_and_live_connections(loop):
    async def main():
        server, tr, p = await _server_with_live_client(loop)
        server.close()
        waiter = asyncio.ensure_future(server.wait_closed())
        if sys.version_info >= (3, 12):
            await quiet_period()  # it waits for the live connection
        else:
            await asyncio.wait([waiter], timeout=TIMEOUT)
        done_with_live_conn = waiter.done()
        # the live connection is not closed by Server.close()
        tr.write(b"y")
        await until(lambda: len(p.data) >= 2)
        still_echoing = bytes(p.data)
        tr.close()
        await asyncio.wait_for(waiter, TIMEOUT)
        return done_with_live_conn, still_echoing

    done_with_live_conn, echoed = run_coro(loop, main())
    assert echoed == b"xy"
    if sys.version_info >= (3, 12):
        # 3.12+: wait_closed() waits until all connections are gone
        assert done_with_live_conn is False
    else:
        # before 3.12 it returned as soon as the listening sockets closed
        assert done_with_live_conn is True


def test_wait_closed_before_close_waits_for_close_and_connections(loop):
    # Every version: wait_closed() on an open server waits for close() and
    # for the last connection (3.9-3.11 too: only an already closed server
    # returns at once there).
    async def main():
        server, tr, p = await _server_with_live_client(loop)
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0)
        before_close = waiter.done()
        server.close()
        await asyncio.sleep(0)
        after_close = waiter.done()
        tr.close()
        await asyncio.wait_for(waiter, TIMEOUT)
        return before_close, after_close

    before_close, after_close = run_coro(loop, main())
    assert before_close is False
    assert after_close is False


@pytest.mark.skipif(
    not hasattr(asyncio.Server, "close_clients"), reason="Server.close_clients is 3.13+"
)
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_close_and_abort_clients(loop, how):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        clients = []
        for _ in range(3):
            tr, p = await loop.create_connection(lambda: Client(loop), HOST, port)
            tr.write(b"a")
            await p.got
            clients.append(p)
        server.close()
        getattr(server, how)()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
        excs = await asyncio.wait_for(
            asyncio.gather(*(p.lost for p in clients)), TIMEOUT
        )
        for p in clients:
            p.transport.close()
        return excs

    excs = run_coro(loop, main())
    assert len(excs) == 3
    if how == "close_clients":
        assert excs == [None, None, None]
    else:
        assert all(e is None or isinstance(e, ConnectionResetError) for e in excs)


def test_create_server_with_sock(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind((HOST, 0))
        port = lsock.getsockname()[1]
        server = await loop.create_server(Echo, sock=lsock)
        same = server.sockets[0].fileno() == lsock.fileno()
        data, _ = await roundtrip(loop, HOST, port)
        server.close()
        await server.wait_closed()
        return same, data, lsock.fileno()

    same, data, fileno_after = run_coro(loop, main())
    assert same and data == b"ping"
    assert fileno_after == -1  # the server owns and closes the socket


def test_create_server_bad_arguments(loop):
    async def main():
        s = socket.socket()
        try:
            with pytest.raises(ValueError):
                await loop.create_server(Echo, HOST, 0, sock=s)
            with pytest.raises(ValueError):
                await loop.create_server(Echo)  # neither host/port nor sock
            with pytest.raises(ValueError):
                await loop.create_server(Echo, HOST, 0, ssl_handshake_timeout=1)
        finally:
            s.close()
        return True

    assert run_coro(loop, main())


def test_many_servers_release_fds(loop):
    async def main():
        s = await loop.create_server(Echo, HOST, 0)
        s.close()
        await s.wait_closed()
        before = fd_count()
        for _ in range(20):
            s = await loop.create_server(Echo, HOST, 0)
            await roundtrip(loop, HOST, s.sockets[0].getsockname()[1])
            s.close()
            await s.wait_closed()
        return before, await settled_fd_count(before)

    before, after = run_coro(loop, main())
    assert after == before


# --------------------------------------------------------------------------
# create_connection options
# --------------------------------------------------------------------------


def test_create_connection_refused(loop):
    port = closed_port()

    async def main():
        with pytest.raises(ConnectionRefusedError) as ei:
            await loop.create_connection(asyncio.Protocol, HOST, port)
        return ei.value

    exc = run_coro(loop, main())
    assert str(port) in str(exc)


def test_create_connection_with_connected_sock(loop):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        raw = socket.socket()
        raw.setblocking(False)
        await loop.sock_connect(raw, (HOST, port))
        tr, p = await loop.create_connection(lambda: Client(loop), sock=raw)
        same_fd = tr.get_extra_info("socket").fileno() == raw.fileno()
        tr.write(b"via sock")
        await p.got
        await until(lambda: len(p.data) >= 8)
        tr.close()
        await p.lost
        server.close()
        await server.wait_closed()
        return same_fd, bytes(p.data), raw.fileno()

    same_fd, data, fileno_after = run_coro(loop, main())
    assert same_fd
    assert data == b"via sock"
    assert fileno_after == -1  # the transport owns the socket


def test_create_connection_local_addr(loop):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        lport = closed_port()
        data, (peer, sockname) = await roundtrip(
            loop, HOST, port, local_addr=(HOST, lport)
        )
        server.close()
        await server.wait_closed()
        return port, lport, data, peer, sockname

    port, lport, data, peer, sockname = run_coro(loop, main())
    assert data == b"ping"
    assert peer == (HOST, port)
    assert sockname == (HOST, lport)


def test_create_connection_bad_arguments(loop):
    async def main():
        s = socket.socket()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol, HOST, 1, sock=s)
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol)
            with pytest.raises(ValueError):
                await loop.create_connection(
                    asyncio.Protocol, HOST, 1, server_hostname="x"
                )
            with pytest.raises(ValueError):
                await loop.create_connection(
                    asyncio.Protocol, HOST, 1, ssl_handshake_timeout=1
                )
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol, sock=u)
        finally:
            s.close()
            u.close()
        return True

    assert run_coro(loop, main())


def test_create_connection_several_addresses_one_refusing(loop, monkeypatch):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        dead = closed_port()
        calls = patch_getaddrinfo(
            monkeypatch,
            loop,
            [(socket.AF_INET, (HOST, dead)), (socket.AF_INET, (HOST, port))],
        )
        data, (peer, _) = await roundtrip(loop, "multi.example", port)
        server.close()
        await server.wait_closed()
        return calls, data, peer, port

    calls, data, peer, port = run_coro(loop, main())
    if not calls:
        pytest.skip("the loop does not resolve through loop.getaddrinfo")
    assert data == b"ping"
    assert peer == (HOST, port)


def test_create_connection_all_refused_multiple(loop, monkeypatch):
    async def main():
        p1, p2 = closed_port(), closed_port()
        patch_getaddrinfo(
            monkeypatch, loop, [(socket.AF_INET, (HOST, p1)), (socket.AF_INET, (HOST, p2))]
        )
        with pytest.raises(OSError) as ei:
            await loop.create_connection(asyncio.Protocol, "multi.example", 80)
        return ei.value

    exc = run_coro(loop, main())
    # different messages -> a plain OSError summarizing all of them
    assert type(exc) is OSError
    assert str(exc).startswith("Multiple exceptions:")


def test_happy_eyeballs_delay(loop, monkeypatch):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        dead = closed_port()
        calls = patch_getaddrinfo(
            monkeypatch,
            loop,
            [(socket.AF_INET, (HOST, dead)), (socket.AF_INET, (HOST, port))],
        )
        data, (peer, _) = await roundtrip(
            loop, "multi.example", port, happy_eyeballs_delay=0.05, interleave=1
        )
        server.close()
        await server.wait_closed()
        return calls, data, peer, port

    calls, data, peer, port = run_coro(loop, main())
    if not calls:
        pytest.skip("the loop does not resolve through loop.getaddrinfo")
    assert data == b"ping"
    assert peer == (HOST, port)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="all_errors is 3.12+")
def test_all_errors_exception_group(loop, monkeypatch):
    async def main():
        single = closed_port()
        with pytest.raises(ExceptionGroup) as ei1:  # noqa: F821 (3.11+ builtin)
            await loop.create_connection(asyncio.Protocol, HOST, single, all_errors=True)
        p1, p2 = closed_port(), closed_port()
        patch_getaddrinfo(
            monkeypatch, loop, [(socket.AF_INET, (HOST, p1)), (socket.AF_INET, (HOST, p2))]
        )
        with pytest.raises(ExceptionGroup) as ei2:  # noqa: F821
            await loop.create_connection(
                asyncio.Protocol, "multi.example", 80, all_errors=True
            )
        return ei1.value, ei2.value

    g1, g2 = run_coro(loop, main())
    assert len(g1.exceptions) == 1
    assert isinstance(g1.exceptions[0], ConnectionRefusedError)
    assert len(g2.exceptions) == 2
    assert all(isinstance(e, ConnectionRefusedError) for e in g2.exceptions)


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 on ::1")
def test_ipv6_loopback(loop):
    async def main():
        server = await loop.create_server(Echo, "::1", 0)
        sock = server.sockets[0]
        family = sock.family
        port = sock.getsockname()[1]
        data, (peer, sockname) = await roundtrip(loop, "::1", port)
        server.close()
        await server.wait_closed()
        return family, port, data, peer, sockname

    family, port, data, peer, sockname = run_coro(loop, main())
    assert family == socket.AF_INET6
    assert data == b"ping"
    assert peer[:2] == ("::1", port)
    assert len(peer) == 4
    assert sockname[0] == "::1"


def test_cancel_create_connection_leaves_no_fd(loop):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        fd0 = fd_count()
        await roundtrip(loop, HOST, port)  # warm up
        before = await settled_fd_count(fd0)  # (the server side closes later)
        outcomes = []
        for steps in range(8):
            task = asyncio.ensure_future(
                loop.create_connection(lambda: Client(loop), HOST, port)
            )
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                tr, p = await task
            except asyncio.CancelledError:
                outcomes.append("cancelled")
            else:
                outcomes.append("connected")
                tr.close()
                await p.lost
        after = await settled_fd_count(before)
        server.close()
        await server.wait_closed()
        return before, after, outcomes

    before, after, outcomes = run_coro(loop, main())
    assert outcomes[0] == "cancelled"
    assert after == before, outcomes


# --------------------------------------------------------------------------
# integer arguments: the stdlib's socket.listen() / slicing errors
# --------------------------------------------------------------------------

BAD_BACKLOGS = [
    (1.1, TypeError, "integer"),
    ("1", TypeError, "integer"),
    (None, TypeError, "integer"),
    (2**40, OverflowError, "greater than maximum"),
]


@pytest.mark.parametrize("start_serving", [True, False])
@pytest.mark.parametrize("backlog,exc,words", BAD_BACKLOGS)
def test_create_server_bad_backlog(loop, backlog, exc, words, start_serving):
    async def main():
        if start_serving:
            with pytest.raises(exc, match=words):
                await loop.create_server(asyncio.Protocol, HOST, 0,
                                         backlog=backlog)
            return
        server = await loop.create_server(asyncio.Protocol, HOST, 0,
                                          backlog=backlog,
                                          start_serving=False)
        try:
            with pytest.raises(exc, match=words):
                await server.start_serving()
        finally:
            server.close()

    run_coro(loop, main())


@pytest.mark.parametrize("backlog", [True, -5, 0, 1])
def test_create_server_small_backlogs_serve(loop, backlog, is_ourloop):
    if backlog <= 0 and not is_ourloop:
        # The stdlib's loop accepts range(backlog) connections per
        # readiness event: none, so it never serves. ourloop accepts at
        # least one (docs/conformance.md).
        pytest.skip("the stdlib's loop never accepts with backlog <= 0")

    async def main():
        server = await loop.create_server(Echo, HOST, 0, backlog=backlog)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"ping")
        data = await reader.readexactly(4)
        writer.close()
        server.close()
        await server.wait_closed()
        return data

    assert run_coro(loop, main()) == b"ping"


@pytest.mark.parametrize("interleave,exc", [(1.5, TypeError), ("2", TypeError)])
def test_create_connection_bad_interleave(loop, interleave, exc):
    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(exc) as info:
                await loop.create_connection(asyncio.Protocol, HOST, port,
                                             interleave=interleave)
        finally:
            server.close()
        return str(info.value)

    message = run_coro(loop, main())
    if isinstance(interleave, float):
        assert "slice indices must be integers" in message


# --------------------------------------------------------------------------
# accepted connections are set up in a task of the loop, as in the stdlib
# (its accept callback runs _accept_connection2 through create_task())
# --------------------------------------------------------------------------


async def _one_echo(loop, server):
    port = server.sockets[0].getsockname()[1]
    tr, p = await loop.create_connection(lambda: Client(loop), HOST, port)
    tr.write(b"x")
    await p.got
    tr.close()
    await p.lost


def test_accepted_protocol_factory_runs_in_a_task(loop):
    seen = []

    def factory():
        seen.append(asyncio.current_task())
        return Echo()

    async def main():
        server = await loop.create_server(factory, HOST, 0)
        await _one_echo(loop, server)
        server.close()
        await server.wait_closed()

    run_coro(loop, main())
    assert len(seen) == 1
    assert isinstance(seen[0], asyncio.Task)
    assert seen[0].done()


def test_task_factory_makes_the_accept_tasks(loop):
    made = []

    def task_factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        before = len(made)
        await _one_echo(loop, server)
        server.close()
        await server.wait_closed()
        return len(made) - before

    loop.set_task_factory(task_factory)
    # main() makes no task of its own after `before`: the one counted is
    # the accepted connection's.
    assert run_coro(loop, main()) == 1


@pytest.mark.parametrize("debug", [False, True])
def test_failing_accepted_protocol_factory_reported_in_debug_only(loop, debug):
    errors = []
    calls = []

    def factory():
        calls.append(None)
        if len(calls) == 1:
            raise RuntimeError("no protocol")
        return Echo()

    async def main():
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        server = await loop.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        first = socket.create_connection((HOST, port))
        try:
            # Connections are accepted in order: once the second echoes,
            # the first one's set-up is over.
            await _one_echo(loop, server)
        finally:
            first.close()
        server.close()
        await server.wait_closed()

    loop.set_debug(debug)
    run_coro(loop, main())
    got = [(c["message"], type(c["exception"])) for c in errors]
    if debug:
        assert got == [("Error on transport creation for incoming connection",
                        RuntimeError)]
    else:
        assert got == []
