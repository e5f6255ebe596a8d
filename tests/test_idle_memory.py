"""What an idle connection keeps (docs/performance.md, "Memory"), and the
extra info that ourloop makes only when it is asked for: its values are
the stdlib's, whenever they are first asked for.
"""

import asyncio
import collections
import gc
import socket
import struct

import pytest

from support import ipv6_loopback_works, run_coro

TIMEOUT = 10


FAMILIES = [
    pytest.param(socket.AF_INET, "127.0.0.1", id="ipv4"),
    pytest.param(socket.AF_INET6, "::1", id="ipv6", marks=pytest.mark.skipif(
        not ipv6_loopback_works(), reason="no IPv6 loopback")),
]


class Keep(asyncio.Protocol):
    """Keeps its transport and asks it nothing. (Slots: no instance dict
    to count, on Pythons that make one per instance.)"""

    __slots__ = ("made", "lost", "transport")

    def __init__(self, loop, made):
        self.made = made
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.made.put_nowait(self)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def _reset(sock):
    # close() with SO_LINGER 0: the peer gets RST, the connection is gone.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("family, host", FAMILIES)
def test_accepted_extra_info_first_asked_after_a_reset(loop, family, host):
    # The server's protocol asks nothing until the client has reset the
    # connection and connection_lost() has run: the addresses are still
    # those of the connection, the socket the same object, now closed.
    async def main():
        made = asyncio.Queue()
        server = await loop.create_server(lambda: Keep(loop, made), host, 0)
        client = socket.socket(family, socket.SOCK_STREAM)
        try:
            client.setblocking(False)
            server_addr = server.sockets[0].getsockname()
            await loop.sock_connect(client, server_addr)
            client_addr = client.getsockname()
            proto = await asyncio.wait_for(made.get(), TIMEOUT)
            _reset(client)
            await asyncio.wait_for(proto.lost, TIMEOUT)
            t = proto.transport
            with pytest.raises(TypeError):
                t.get_extra_info([])
            out = dict(
                missing=t.get_extra_info("sslcontext", "dflt"),
                peername=t.get_extra_info("peername"),
                sockname=t.get_extra_info("sockname"),
                expected=(client_addr, server_addr),
            )
            s = t.get_extra_info("socket")
            out.update(same=s is t.get_extra_info("socket"), fileno=s.fileno(),
                       family=s.family, type=s.type)
            with pytest.raises(TypeError):
                t.get_extra_info({})
            return out
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    out = run_coro(loop, main())
    assert out["missing"] == "dflt"
    assert (out["peername"], out["sockname"]) == out["expected"]
    assert len(out["peername"]) == (2 if family == socket.AF_INET else 4)
    assert out["same"]
    assert out["fileno"] == -1
    assert (out["family"], out["type"]) == (family, socket.SOCK_STREAM)


@pytest.mark.parametrize("family, host", FAMILIES)
def test_client_extra_info_first_asked_after_a_reset(loop, family, host):
    # create_connection()'s transport: the same, the server resetting.
    async def main():
        accepted = loop.create_future()
        lsock = socket.socket(family, socket.SOCK_STREAM)
        lsock.bind((host, 0))
        lsock.listen(1)
        lsock.setblocking(False)
        try:
            made = asyncio.Queue()
            connect = asyncio.ensure_future(loop.create_connection(
                lambda: Keep(loop, made), sock=None, host=host,
                port=lsock.getsockname()[1]))
            conn, _ = await loop.sock_accept(lsock)
            accepted.set_result(conn)
            t, proto = await asyncio.wait_for(connect, TIMEOUT)
            expected = (conn.getsockname(), conn.getpeername())
            _reset(conn)
            await asyncio.wait_for(proto.lost, TIMEOUT)
            return dict(peername=t.get_extra_info("peername"),
                        sockname=t.get_extra_info("sockname"), expected=expected,
                        fileno=t.get_extra_info("socket").fileno())
        finally:
            lsock.close()
            if accepted.done():
                accepted.result().close()

    out = run_coro(loop, main())
    assert (out["peername"], out["sockname"]) == out["expected"]
    assert out["fileno"] == -1


@pytest.mark.only_loop("ourloop", reason="what ourloop's own objects cost per connection")
def test_idle_accepted_connection_keeps_few_objects(loop):
    # Per idle accepted connection ourloop keeps its transport and the
    # context its reads run in (and the protocol): no socket object,
    # extra-info dict, TransportSocket or address tuples until asked, no
    # weak reference in a registry.
    n = 40

    def census():
        gc.collect()
        return collections.Counter(type(o).__name__ for o in gc.get_objects())

    async def main():
        made = asyncio.Queue()
        server = await loop.create_server(lambda: Keep(loop, made), "127.0.0.1", 0,
                                          backlog=n)
        addr = server.sockets[0].getsockname()
        clients = [socket.socket() for _ in range(n)]
        protos = []
        try:
            before = census()
            for c in clients:
                c.setblocking(False)
                await loop.sock_connect(c, addr)
            for _ in range(n):
                protos.append(await asyncio.wait_for(made.get(), TIMEOUT))
            for _ in range(3):
                await asyncio.sleep(0)
            after = census()
            return {k: after[k] - before.get(k, 0) for k in after
                    if after[k] - before.get(k, 0) >= n}
        finally:
            for c in clients:
                c.close()
            for p in protos:
                await asyncio.wait_for(p.lost, TIMEOUT)
            server.close()
            await server.wait_closed()

    grown = run_coro(loop, main())
    # ('socket': the test's own client sockets; 'Future': each Keep's
    # `lost`; 'FdWatch': the watches of their sock_connect(); 'Handle':
    # spare Handles the loop keeps for call_soon.)
    assert set(grown) - {"socket", "FdWatch", "Future", "Handle"} <= {
        "TCPTransport", "Context", "Keep"}, grown
    assert grown["TCPTransport"] == n


@pytest.mark.parametrize("proto", [0, socket.IPPROTO_TCP])
def test_accepted_socket_made_when_asked_is_the_listeners_kind(loop, proto):
    # The accepted socket object takes the listening socket's family, type
    # and proto (a socket made with proto 0 gives 0, and then no
    # TCP_NODELAY), whether it is asked for while open or first after the
    # connection closed.
    async def main():
        made = asyncio.Queue()
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
        lsock.bind(("127.0.0.1", 0))
        server = await loop.create_server(lambda: Keep(loop, made), sock=lsock)
        out = []
        try:
            for ask_first in (True, False):
                client = socket.socket()
                client.setblocking(False)
                await loop.sock_connect(client, lsock.getsockname())
                p = await asyncio.wait_for(made.get(), TIMEOUT)
                s = p.transport.get_extra_info("socket") if ask_first else None
                info = None
                if ask_first:
                    info = (s.family, s.type, s.proto, s.fileno() >= 0,
                            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
                            s.getpeername() == client.getsockname())
                client.close()
                await asyncio.wait_for(p.lost, TIMEOUT)
                s = p.transport.get_extra_info("socket")
                out.append((info, (s.family, s.type, s.proto, s.fileno()),
                            "closed" in repr(p.transport)))
            return out
        finally:
            server.close()
            await server.wait_closed()

    (asked, after1, closed1), (none, after2, closed2) = run_coro(loop, main())
    nodelay = proto == socket.IPPROTO_TCP
    assert asked == (socket.AF_INET, socket.SOCK_STREAM, proto, True, nodelay, True)
    assert none is None
    assert after1 == after2 == (socket.AF_INET, socket.SOCK_STREAM, proto, -1)
    assert closed1 and closed2


def test_accepted_fd_refused_while_open_then_free(loop):
    # add_reader() refuses an accepted connection's fd while its transport
    # is open (even when it closes: it is then closing); once the
    # connection is lost, the number may be watched again (reused here by
    # a new socket, or free).
    async def main():
        made = asyncio.Queue()
        server = await loop.create_server(lambda: Keep(loop, made), "127.0.0.1", 0)
        client = socket.socket()
        try:
            client.setblocking(False)
            await loop.sock_connect(client, server.sockets[0].getsockname())
            p = await asyncio.wait_for(made.get(), TIMEOUT)
            fd = p.transport.get_extra_info("socket").fileno()
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_reader(fd, lambda: None)
            p.transport.close()
            await asyncio.wait_for(p.lost, TIMEOUT)
            a, b = socket.socketpair()
            try:
                watched = a if a.fileno() == fd else b
                loop.add_reader(watched, lambda: None)
                return loop.remove_reader(watched)
            finally:
                a.close()
                b.close()
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    assert run_coro(loop, main()) is True
