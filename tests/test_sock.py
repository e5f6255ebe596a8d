"""loop.sock_recv / sock_recv_into / sock_recvfrom / sock_recvfrom_into /
sock_sendall / sock_sendto / sock_connect / sock_accept.

Reference: BaseSelectorEventLoop.sock_* in asyncio/selector_events.py
(sock_recvfrom, sock_recvfrom_into and sock_sendto are new in 3.11) and
BaseEventLoop._ensure_resolved in asyncio/base_events.py. Every test runs on
both loops.
"""

import asyncio
import errno
import hashlib
import os
import select
import socket
import struct
import sys
import tempfile
import time

import pytest

from support import ipv6_loopback_works, quiet_period, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX sockets")

HAS_DGRAM_API = hasattr(asyncio.AbstractEventLoop, "sock_recvfrom")
needs_311 = pytest.mark.skipif(not HAS_DGRAM_API, reason="new in Python 3.11")


HAS_IPV6 = ipv6_loopback_works()


def registered_fds(loop):
    """The fds the loop watches for the user (not its own self-pipe)."""
    if hasattr(loop, "_fd_watchers"):
        return sorted(loop._fd_watchers.fds())
    own = loop._ssock.fileno() if loop._ssock is not None else None
    return sorted(fd for fd in loop._selector.get_map() if fd != own)


def nonblocking(sock):
    sock.setblocking(False)
    return sock


@pytest.fixture
def listener():
    srv = nonblocking(socket.socket())
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    yield srv
    srv.close()


async def tcp_connection(loop, srv):
    """(client, server side) connected with sock_connect / sock_accept."""
    client = nonblocking(socket.socket())
    accepted, _ = await asyncio.gather(
        loop.sock_accept(srv),
        loop.sock_connect(client, srv.getsockname()),
    )
    conn, _ = accepted
    return client, conn


def fill_send_buffer(sock):
    """Write until the kernel buffer is full; return the byte count."""
    total = 0
    chunk = b"\0" * 65536
    while True:
        try:
            total += sock.send(chunk)
        except BlockingIOError:
            return total


def drain(sock):
    got = 0
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return got
        if not data:
            return got
        got += len(data)


def reset_by_peer(sock):
    """Close sock so that its peer gets a RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# sock_recv / sock_recv_into
# --------------------------------------------------------------------------


def test_sock_recv_data_already_there(loop, pair):
    a, b = pair
    b.send(b"hello")
    assert loop.run_until_complete(loop.sock_recv(a, 100)) == b"hello"
    assert registered_fds(loop) == []


def test_sock_recv_waits_for_data(loop, pair):
    a, b = pair
    loop.call_later(0.01, b.send, b"later")
    assert loop.run_until_complete(loop.sock_recv(a, 100)) == b"later"
    assert registered_fds(loop) == []


def test_sock_recv_respects_n(loop, pair):
    a, b = pair
    b.send(b"abcdef")
    assert loop.run_until_complete(loop.sock_recv(a, 4)) == b"abcd"
    assert loop.run_until_complete(loop.sock_recv(a, 4)) == b"ef"


def test_sock_recv_eof(loop, pair):
    a, b = pair
    loop.call_later(0.01, b.shutdown, socket.SHUT_WR)
    assert loop.run_until_complete(loop.sock_recv(a, 100)) == b""


def test_sock_recv_into(loop, pair):
    a, b = pair
    buf = bytearray(10)
    loop.call_later(0.01, b.send, b"12345")
    n = loop.run_until_complete(loop.sock_recv_into(a, buf))
    assert n == 5 and buf[:5] == b"12345"
    b.send(b"abc")
    n = loop.run_until_complete(loop.sock_recv_into(a, memoryview(buf)[5:]))
    assert n == 3 and buf[:8] == b"12345abc"
    assert registered_fds(loop) == []


def test_sock_recv_peer_reset(loop, listener):
    async def main():
        client, conn = await tcp_connection(loop, listener)
        try:
            loop.call_later(0.01, reset_by_peer, conn)
            with pytest.raises(ConnectionResetError):
                await loop.sock_recv(client, 100)
        finally:
            client.close()

    loop.run_until_complete(main())
    assert registered_fds(loop) == []


def test_sock_recv_error_at_once(loop):
    s = nonblocking(socket.socket())
    try:
        with pytest.raises(OSError) as info:
            loop.run_until_complete(loop.sock_recv(s, 10))
        assert info.value.errno == errno.ENOTCONN
    finally:
        s.close()


def test_sock_recv_cancelled_then_again(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert registered_fds(loop) == []
        b.send(b"kept")
        # Nothing was consumed by the cancelled call.
        return await loop.sock_recv(a, 100)

    assert loop.run_until_complete(main()) == b"kept"


def test_sock_recv_cancelled_when_data_is_ready(loop, pair):
    # Cancelled in the iteration where the data arrives: the data stays in
    # the socket.
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.send(b"data")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await loop.sock_recv(a, 100)

    assert loop.run_until_complete(main()) == b"data"
    assert registered_fds(loop) == []


def test_sock_recv_into_cancelled_then_again(loop, pair):
    a, b = pair
    buf = bytearray(10)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        b.send(b"xyz")
        return await loop.sock_recv_into(a, buf)

    assert loop.run_until_complete(main()) == 3
    assert buf[:3] == b"xyz"


def test_two_readers_of_one_socket(loop, pair):
    # The second operation replaces the first's reader (one reader per fd);
    # the first is woken by nothing, as with the stdlib. Cancel it.
    a, b = pair

    async def main():
        first = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.send(b"x")
        data = await asyncio.wait_for(second, 5)
        assert not first.done()
        first.cancel()
        return data

    assert loop.run_until_complete(main()) == b"x"


# --------------------------------------------------------------------------
# sock_sendall
# --------------------------------------------------------------------------


def test_sock_sendall_small(loop, pair):
    a, b = pair
    assert loop.run_until_complete(loop.sock_sendall(a, b"hi there")) is None
    assert b.recv(100) == b"hi there"
    assert registered_fds(loop) == []


def test_sock_sendall_empty(loop, pair):
    a, b = pair
    assert loop.run_until_complete(loop.sock_sendall(a, b"")) is None


def test_sock_sendall_buffer_types(loop, pair):
    a, b = pair
    loop.run_until_complete(loop.sock_sendall(a, bytearray(b"ba")))
    loop.run_until_complete(loop.sock_sendall(a, memoryview(b"mv")))
    assert b.recv(100) == b"bamv"


def test_sock_sendall_large_with_slow_reader(loop, listener):
    payload = os.urandom(8 * 1024 * 1024)

    async def reader(sock):
        digest = hashlib.sha256()
        total = 0
        chunks = 0
        while True:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                break
            digest.update(data)
            total += len(data)
            chunks += 1
            if chunks % 8 == 0:
                await asyncio.sleep(0.001)   # a slow reader
        return total, digest.hexdigest()

    async def main():
        client, conn = await tcp_connection(loop, listener)
        try:
            read = asyncio.ensure_future(reader(conn))
            await loop.sock_sendall(client, payload)
            client.shutdown(socket.SHUT_WR)
            return await read
        finally:
            client.close()
            conn.close()

    total, digest = loop.run_until_complete(main())
    assert total == len(payload)
    assert digest == hashlib.sha256(payload).hexdigest()
    assert registered_fds(loop) == []


def test_sock_sendall_to_reset_peer(loop, listener):
    async def main():
        client, conn = await tcp_connection(loop, listener)
        try:
            loop.call_later(0.05, reset_by_peer, conn)
            with pytest.raises(ConnectionError) as info:
                # Large enough to block before the reset arrives.
                await loop.sock_sendall(client, b"x" * (64 * 1024 * 1024))
            return info.value
        finally:
            client.close()

    exc = loop.run_until_complete(main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert registered_fds(loop) == []


def test_sock_sendall_cancelled_leaves_the_socket_usable(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, b"y" * (16 * 1024 * 1024)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert registered_fds(loop) == []
        drain(b)
        await loop.sock_sendall(a, b"after")
        data = b""
        while not data.endswith(b"after"):
            data += await loop.sock_recv(b, 1 << 20)
        return data

    assert loop.run_until_complete(main()).endswith(b"after")


# --------------------------------------------------------------------------
# sock_connect / sock_accept
# --------------------------------------------------------------------------


def test_sock_connect_and_accept_tcp(loop, listener):
    async def main():
        client, conn = await tcp_connection(loop, listener)
        try:
            assert conn.gettimeout() == 0          # non-blocking
            assert not os.get_blocking(conn.fileno())
            assert client.getpeername() == listener.getsockname()
            await loop.sock_sendall(client, b"ping")
            assert await loop.sock_recv(conn, 10) == b"ping"
        finally:
            client.close()
            conn.close()

    loop.run_until_complete(main())
    assert registered_fds(loop) == []


def test_sock_accept_returns_the_peer_address(loop, listener):
    client = nonblocking(socket.socket())

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, address = await accept
        conn.close()
        return address

    try:
        address = loop.run_until_complete(main())
        assert address == client.getsockname()
    finally:
        client.close()


def test_sock_accept_connection_already_waiting(loop, listener):
    client = socket.create_connection(listener.getsockname())
    try:
        conn, address = loop.run_until_complete(loop.sock_accept(listener))
        assert conn.gettimeout() == 0
        assert address == client.getsockname()
        conn.close()
    finally:
        client.close()


def test_sock_connect_refused(loop):
    port = closed_port()
    s = nonblocking(socket.socket())
    try:
        with pytest.raises(ConnectionRefusedError) as info:
            loop.run_until_complete(loop.sock_connect(s, ("127.0.0.1", port)))
        assert info.value.errno == errno.ECONNREFUSED
        # Linux answers a non-blocking connect with EINPROGRESS even on the
        # loopback: the refusal is seen by the writer callback, whose error
        # names the address.
        assert str(info.value) == (
            "[Errno %d] Connect call failed ('127.0.0.1', %d)" % (errno.ECONNREFUSED, port))
    finally:
        s.close()
    assert registered_fds(loop) == []


def test_sock_connect_ipv6(loop):
    if not HAS_IPV6:
        pytest.skip("no IPv6 loopback")
    srv = nonblocking(socket.socket(socket.AF_INET6))
    srv.bind(("::1", 0))
    srv.listen(5)
    client = nonblocking(socket.socket(socket.AF_INET6))

    async def main():
        # A 2-tuple address is completed to (host, port, flowinfo, scope_id).
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(client, ("::1", srv.getsockname()[1]))
        conn, address = await accept
        await loop.sock_sendall(conn, b"six")
        data = await loop.sock_recv(client, 10)
        conn.close()
        return data, address

    try:
        data, address = loop.run_until_complete(main())
        assert data == b"six"
        assert address[0] == "::1"
    finally:
        client.close()
        srv.close()


def test_sock_connect_unix(loop):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")
        srv = nonblocking(socket.socket(socket.AF_UNIX))
        srv.bind(path)
        srv.listen(5)
        client = nonblocking(socket.socket(socket.AF_UNIX))

        async def main():
            accept = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(client, path)
            conn, _ = await accept
            await loop.sock_sendall(client, b"unix")
            data = await loop.sock_recv(conn, 10)
            conn.close()
            return data

        try:
            assert loop.run_until_complete(main()) == b"unix"
        finally:
            client.close()
            srv.close()


def test_sock_connect_unix_missing_path(loop):
    s = nonblocking(socket.socket(socket.AF_UNIX))
    try:
        with pytest.raises(FileNotFoundError):
            loop.run_until_complete(loop.sock_connect(s, "/nonexistent/ourloop.sock"))
    finally:
        s.close()


def test_sock_connect_hostname_uses_getaddrinfo(loop, listener):
    s = nonblocking(socket.socket())

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(s, ("localhost", listener.getsockname()[1]))
        conn, _ = await accept
        conn.close()

    try:
        loop.run_until_complete(main())
        assert s.getpeername()[1] == listener.getsockname()[1]
    finally:
        s.close()


def test_sock_connect_uses_the_loops_getaddrinfo(loop, listener):
    # A host that is not a numeric address goes through loop.getaddrinfo();
    # a numeric one never does.
    calls = []
    port = listener.getsockname()[1]

    async def fake_getaddrinfo(host, port_, *, family=0, type=0, proto=0, flags=0):
        calls.append((host, port_, family, type, proto, flags))
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", port))]

    loop.getaddrinfo = fake_getaddrinfo
    try:
        async def main(host):
            s = nonblocking(socket.socket())
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            try:
                await loop.sock_connect(s, (host, port))
                conn, _ = await accept
                conn.close()
            finally:
                s.close()

        loop.run_until_complete(main("127.0.0.1"))
        assert calls == []
        loop.run_until_complete(main("some.name.invalid"))
        assert calls == [("some.name.invalid", port, socket.AF_INET,
                          socket.SOCK_STREAM, 0, 0)]
    finally:
        del loop.getaddrinfo


def test_sock_connect_cancelled(loop):
    # A connect that cannot complete at once: to a listener whose backlog is
    # full the SYN goes unanswered. Cancelling removes the writer.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fillers = []
    s = nonblocking(socket.socket())
    try:
        # Fill the backlog with connections nobody accepts.
        for _ in range(8):
            c = nonblocking(socket.socket())
            fillers.append(c)
            try:
                c.connect(srv.getsockname())
            except BlockingIOError:
                pass

        async def main():
            task = asyncio.ensure_future(loop.sock_connect(s, srv.getsockname()))
            # The connect is in progress (its writer is registered), then
            # stays so: the SYN goes unanswered.
            await until(lambda: registered_fds(loop) == [s.fileno()])
            await quiet_period()
            if task.done():
                task.result()
                return "connected"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return "cancelled"

        outcome = loop.run_until_complete(main())
        assert outcome == "cancelled"
        assert registered_fds(loop) == []
    finally:
        s.close()
        for c in fillers:
            c.close()
        srv.close()


def test_sock_accept_cancelled_then_again(loop, listener):
    async def main():
        task = asyncio.ensure_future(loop.sock_accept(listener))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert registered_fds(loop) == []
        client = nonblocking(socket.socket())
        try:
            await loop.sock_connect(client, listener.getsockname())
            # The pending connection was not taken by the cancelled call.
            conn, address = await loop.sock_accept(listener)
            conn.close()
            return address == client.getsockname()
        finally:
            client.close()

    assert loop.run_until_complete(main()) is True


def test_many_concurrent_accepts_and_connects(loop):
    listeners = []
    for _ in range(100):
        srv = nonblocking(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)
        listeners.append(srv)
    clients = [nonblocking(socket.socket()) for _ in range(100)]

    async def one(i):
        (conn, _), _ = await asyncio.gather(
            loop.sock_accept(listeners[i]),
            loop.sock_connect(clients[i], listeners[i].getsockname()),
        )
        try:
            await loop.sock_sendall(clients[i], b"%d" % i)
            return await loop.sock_recv(conn, 10)
        finally:
            conn.close()

    async def main():
        return await asyncio.gather(*(one(i) for i in range(100)))

    try:
        results = loop.run_until_complete(main())
        assert results == [b"%d" % i for i in range(100)]
        assert registered_fds(loop) == []
    finally:
        for s in listeners + clients:
            s.close()


def test_accept_loop_with_100_concurrent_connects(loop, listener):
    clients = [nonblocking(socket.socket()) for _ in range(100)]

    async def server():
        got = []
        for _ in range(100):
            conn, _ = await loop.sock_accept(listener)
            got.append(conn)
        return got

    async def main():
        srv = asyncio.ensure_future(server())
        await asyncio.gather(*(loop.sock_connect(c, listener.getsockname())
                               for c in clients))
        conns = await srv
        peers = sorted(c.getpeername() for c in conns)
        for c in conns:
            c.close()
        return peers

    try:
        peers = loop.run_until_complete(main())
        assert peers == sorted(c.getsockname() for c in clients)
    finally:
        for c in clients:
            c.close()


# --------------------------------------------------------------------------
# datagrams (3.11+)
# --------------------------------------------------------------------------


@pytest.fixture
def udp_pair():
    a = nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    b = nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    yield a, b
    a.close()
    b.close()


@needs_311
def test_sock_sendto_and_recvfrom(loop, udp_pair):
    a, b = udp_pair

    async def main():
        recv = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0)
        sent = await loop.sock_sendto(a, b"dgram", b.getsockname())
        data, address = await recv
        return sent, data, address

    sent, data, address = loop.run_until_complete(main())
    assert sent == 5 and data == b"dgram" and address == a.getsockname()
    assert registered_fds(loop) == []


@needs_311
def test_sock_recvfrom_into(loop, udp_pair):
    a, b = udp_pair
    buf = bytearray(10)

    async def main():
        recv = asyncio.ensure_future(loop.sock_recvfrom_into(b, buf))
        await asyncio.sleep(0)
        a.sendto(b"abcdef", b.getsockname())
        n1, addr1 = await recv
        a.sendto(b"ghijkl", b.getsockname())
        # nbytes limits the read; the rest of the datagram is dropped.
        n2, addr2 = await loop.sock_recvfrom_into(b, memoryview(buf)[6:], 3)
        return n1, n2, addr1, addr2

    n1, n2, addr1, addr2 = loop.run_until_complete(main())
    assert (n1, n2) == (6, 3)
    assert buf[:9] == b"abcdefghi"
    assert addr1 == addr2 == a.getsockname()


@needs_311
def test_sock_recvfrom_cancelled_then_again(loop, udp_pair):
    a, b = udp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        a.sendto(b"kept", b.getsockname())
        return await loop.sock_recvfrom(b, 100)

    assert loop.run_until_complete(main())[0] == b"kept"
    assert registered_fds(loop) == []


@needs_311
def test_sock_sendto_error(loop, udp_pair):
    a, _ = udp_pair
    with pytest.raises(OSError):
        loop.run_until_complete(loop.sock_sendto(a, b"x" * 70000, ("127.0.0.1", 9)))


def test_dgram_methods_exist_as_in_the_stdlib(loop):
    for name in ("sock_recvfrom", "sock_recvfrom_into", "sock_sendto"):
        assert hasattr(loop, name) == HAS_DGRAM_API


# --------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------


def _all_calls(loop, sock):
    calls = [
        ("sock_recv", lambda: loop.sock_recv(sock, 10)),
        ("sock_recv_into", lambda: loop.sock_recv_into(sock, bytearray(10))),
        ("sock_sendall", lambda: loop.sock_sendall(sock, b"x")),
        ("sock_connect", lambda: loop.sock_connect(sock, ("127.0.0.1", 9))),
        ("sock_accept", lambda: loop.sock_accept(sock)),
    ]
    if HAS_DGRAM_API:
        calls += [
            ("sock_recvfrom", lambda: loop.sock_recvfrom(sock, 10)),
            ("sock_recvfrom_into", lambda: loop.sock_recvfrom_into(sock, bytearray(10))),
            ("sock_sendto", lambda: loop.sock_sendto(sock, b"x", ("127.0.0.1", 9))),
        ]
    return calls


def test_blocking_socket_is_refused_in_debug_mode(loop):
    loop.set_debug(True)
    sock = socket.socket()
    try:
        for _name, call in _all_calls(loop, sock):
            with pytest.raises(ValueError, match="the socket must be non-blocking"):
                loop.run_until_complete(call())
    finally:
        sock.close()


def test_blocking_socket_is_not_checked_outside_debug_mode(loop, pair):
    # The stdlib checks only in debug mode: a blocking socket with data
    # ready just works.
    a, b = pair
    a.setblocking(True)
    b.send(b"data")
    assert loop.run_until_complete(loop.sock_recv(a, 10)) == b"data"
    loop.run_until_complete(loop.sock_sendall(a, b"back"))
    assert b.recv(10) == b"back"


def test_ssl_socket_is_refused(loop):
    ssl = pytest.importorskip("ssl")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sock = ctx.wrap_socket(socket.socket(), server_hostname="example.com",
                           do_handshake_on_connect=False)
    try:
        for _name, call in _all_calls(loop, sock):
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                loop.run_until_complete(call())
    finally:
        sock.close()


class _FakeTransport:
    def is_closing(self):
        return False


def test_fd_used_by_a_transport(loop, pair):
    a, b = pair
    transport = _FakeTransport()
    loop._transports[a.fileno()] = transport
    try:
        # Checked only when the call has to wait, as in the stdlib.
        b.send(b"ready")
        assert loop.run_until_complete(loop.sock_recv(a, 10)) == b"ready"
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.run_until_complete(loop.sock_recv(a, 10))
        assert registered_fds(loop) == []
    finally:
        del loop._transports[a.fileno()]


def test_closed_socket(loop):
    s = nonblocking(socket.socket())
    s.close()
    with pytest.raises(OSError) as info:
        loop.run_until_complete(loop.sock_recv(s, 10))
    assert info.value.errno == errno.EBADF


def test_the_method_is_looked_up_at_each_retry(loop, pair):
    # The stdlib calls sock.recv / sock.sendto anew each time the socket is
    # ready (its own test suite swaps a mock's method meanwhile).
    from unittest import mock
    a, b = pair
    fake = mock.Mock(a)
    fake.gettimeout = a.gettimeout
    fake.fileno = a.fileno
    fake.recv.configure_mock(side_effect=BlockingIOError)
    b.send(b"ready")         # readable at once, but fake.recv refuses

    def swap():
        fake.recv = a.recv

    loop.call_soon(swap)
    assert loop.run_until_complete(
        asyncio.wait_for(loop.sock_recv(fake, 10), 10)) == b"ready"
    assert registered_fds(loop) == []


def test_no_fd_leaked(loop_factory):
    import gc
    # libuv creates a process-wide pipe with its first loop: not a leak.
    loop_factory().close()
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    lp = loop_factory()
    srv = nonblocking(socket.socket())
    srv.bind(("127.0.0.1", 0))
    srv.listen(20)

    async def main():
        for _ in range(10):
            client, conn = await tcp_connection(lp, srv)
            recv = asyncio.ensure_future(lp.sock_recv(conn, 10))
            await asyncio.sleep(0)
            recv.cancel()                      # cancelled while waiting
            await lp.sock_sendall(client, b"x")
            assert await lp.sock_recv(conn, 10) == b"x"
            client.close()
            conn.close()
        accept = asyncio.ensure_future(lp.sock_accept(srv))
        await asyncio.sleep(0)
        accept.cancel()

    try:
        lp.run_until_complete(main())
    finally:
        srv.close()
        lp.close()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


# --------------------------------------------------------------------------
# The registry: a waiting operation is the fd's reader (writer), as the
# stdlib's; ourloop's sock_recv/sock_recv_into/sock_sendall wait natively
# (ourloop/sockops.pyx), these hold for both implementations.
# --------------------------------------------------------------------------


def test_remove_reader_removes_a_waiting_sock_recv(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        assert registered_fds(loop) == [a.fileno()]
        assert loop.remove_reader(a.fileno()) is True
        assert registered_fds(loop) == []
        assert loop.remove_reader(a.fileno()) is False
        b.send(b"lost?")
        await quiet_period()
        assert not task.done()          # its reader is gone, as in the stdlib
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Nothing was consumed.
        return await loop.sock_recv(a, 10)

    assert loop.run_until_complete(main()) == b"lost?"


def test_add_reader_replaces_a_waiting_sock_recv(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        called = loop.create_future()
        loop.add_reader(a.fileno(), lambda: called.done() or called.set_result(a.recv(100)))
        b.send(b"to the reader")
        assert await called == b"to the reader"
        assert not task.done()
        assert loop.remove_reader(a.fileno()) is True
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert registered_fds(loop) == []

    loop.run_until_complete(main())


def test_sock_recv_replaces_a_user_reader(loop, pair):
    # The stdlib's _add_reader() replaces the fd's reader, and the
    # operation's end removes the fd's reader altogether.
    a, b = pair
    calls = []

    async def main():
        loop.add_reader(a.fileno(), calls.append, "reader")
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        b.send(b"x")
        assert await task == b"x"
        await asyncio.sleep(0)
        assert loop.remove_reader(a.fileno()) is False
        assert registered_fds(loop) == []

    loop.run_until_complete(main())
    assert calls == []


def test_cancelled_sock_recv_is_unregistered_at_once(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert registered_fds(loop) == []
        assert loop.remove_reader(a.fileno()) is False

    loop.run_until_complete(main())


def _in_the_iteration_of_completion(loop, make_ready, then):
    """Call make_ready() (which makes a waiting operation's socket ready),
    then hold the loop for 50 ms, so that its next iteration runs the
    operation's reader (readiness comes first), then then(), a timer due
    meanwhile: the iteration where the operation completes."""

    def stall():
        make_ready()
        loop.call_later(0.001, then)
        time.sleep(0.05)

    loop.call_soon(stall)


def test_completed_sock_recv_is_the_reader_until_its_done_callback(loop, pair):
    # The stdlib removes a completed operation's reader in its future's
    # done callback, in the next iteration: later in the iteration of the
    # completion the reader is still there.
    a, b = pair
    found = []

    def then():
        found.append(select.select([a], [], [], 0)[0] == [])    # consumed
        found.append(registered_fds(loop) == [a.fileno()])
        found.append(loop.remove_reader(a.fileno()))

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        _in_the_iteration_of_completion(loop, lambda: b.send(b"x"), then)
        assert await task == b"x"
        assert registered_fds(loop) == []

    loop.run_until_complete(main())
    assert found == [True, True, True]


def test_reader_added_after_a_sock_recv_completed_is_kept(loop, pair):
    # The done callback removes only the operation's own reader.
    a, b = pair
    calls = []

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        _in_the_iteration_of_completion(
            loop, lambda: b.send(b"x"),
            lambda: loop.add_reader(a.fileno(), calls.append, "reader"))
        assert await task == b"x"
        await asyncio.sleep(0)
        assert calls == []
        b.send(b"y")
        await until(lambda: calls)
        assert loop.remove_reader(a.fileno()) is True
        assert registered_fds(loop) == []

    loop.run_until_complete(main())


def test_completed_sock_sendall_is_the_writer_until_its_done_callback(loop, pair):
    a, b = pair
    found = []
    filled = fill_send_buffer(a)

    def then():
        found.append(registered_fds(loop) == [a.fileno()])
        found.append(loop.remove_writer(a.fileno()))

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, b"z" * 1000))
        await asyncio.sleep(0)
        assert not task.done()
        _in_the_iteration_of_completion(loop, lambda: drain(b), then)
        assert await task is None
        assert registered_fds(loop) == []

    loop.run_until_complete(main())
    assert found == [True, True]
    assert filled > 0


def test_recv_and_sendall_wait_on_one_socket_together(loop, listener):
    async def main():
        client, conn = await tcp_connection(loop, listener)
        try:
            filled = fill_send_buffer(conn)
            reading = asyncio.ensure_future(loop.sock_recv(conn, 100))
            writing = asyncio.ensure_future(loop.sock_sendall(conn, b"w" * 100000))
            await asyncio.sleep(0)
            assert registered_fds(loop) == [conn.fileno()]
            client.send(b"ping")
            assert await reading == b"ping"
            assert not writing.done()
            total = filled + 100000
            got = 0
            while got < total:
                got += len(await loop.sock_recv(client, 1 << 20))
            await writing
            assert registered_fds(loop) == []
        finally:
            client.close()
            conn.close()

    loop.run_until_complete(main())


def test_sock_recv_into_cancelled_leaves_the_buffer_free(loop, pair):
    # The stdlib's retry handle holds the bytearray, not a view of it: it
    # may be resized while waiting and after a cancellation.
    a, b = pair
    buf = bytearray(10)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        buf.extend(b"0123456789")       # no BufferError
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        buf.extend(b"!")
        b.send(b"abc")
        return await loop.sock_recv_into(a, buf)

    assert loop.run_until_complete(main()) == 3
    assert buf[:3] == b"abc" and len(buf) == 21


def test_sock_sendall_holds_its_data_while_waiting(loop, pair):
    # The stdlib keeps a memoryview of the data until the operation ends:
    # a bytearray cannot be resized meanwhile.
    a, b = pair
    data = bytearray(b"d" * 200000)

    async def main():
        fill_send_buffer(a)
        task = asyncio.ensure_future(loop.sock_sendall(a, data))
        await asyncio.sleep(0)
        with pytest.raises(BufferError):
            data.extend(b"x")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        data.extend(b"x")               # released with the cancellation

    loop.run_until_complete(main())


@pytest.mark.parametrize("n, error", [(-1, ValueError), ("10", TypeError), (2**70, OverflowError)])
def test_sock_recv_bad_size(loop, pair, n, error):
    a, b = pair
    b.send(b"data")
    with pytest.raises(error) as info:
        loop.run_until_complete(loop.sock_recv(a, n))
    try:
        a.recv(n)
    except error as exc:
        assert str(info.value) == str(exc)
    assert a.recv(10) == b"data"


def test_sock_recv_into_readonly_buffer(loop, pair):
    a, b = pair
    b.send(b"data")
    with pytest.raises(TypeError) as info:
        loop.run_until_complete(loop.sock_recv_into(a, b"readonly"))
    with pytest.raises(TypeError) as expected:
        a.recv_into(b"readonly")
    assert str(info.value) == str(expected.value)


def test_sock_sendall_not_a_buffer(loop, pair):
    a, b = pair
    with pytest.raises(TypeError) as info:
        loop.run_until_complete(loop.sock_sendall(a, "text"))
    with pytest.raises(TypeError) as expected:
        a.send("text")
    assert str(info.value) == str(expected.value)


class _CountingSocket(socket.socket):
    __slots__ = ()
    calls = 0

    def recv(self, n):
        type(self).calls += 1
        raise OSError(errno.EPROTO, "from the subclass")


def test_socket_subclass_methods_are_called(loop):
    _CountingSocket.calls = 0
    a, b = socket.socketpair()
    s = _CountingSocket(fileno=a.detach())
    s.setblocking(False)
    try:
        with pytest.raises(OSError, match="from the subclass"):
            loop.run_until_complete(loop.sock_recv(s, 10))
        assert _CountingSocket.calls == 1
    finally:
        s.close()
        b.close()


def test_patched_socket_class_is_called(loop, pair, monkeypatch):
    # Tools such as blockbuster replace socket.socket.recv/send: the loop
    # then calls theirs, as the stdlib does.
    a, b = pair
    seen = []
    orig_recv, orig_send = socket.socket.recv, socket.socket.send

    def recv(self, *args):
        if self is a:
            seen.append("recv")
        return orig_recv(self, *args)

    def send(self, *args):
        if self is a:
            seen.append("send")
        return orig_send(self, *args)

    monkeypatch.setattr(socket.socket, "recv", recv, raising=False)
    monkeypatch.setattr(socket.socket, "send", send, raising=False)
    b.send(b"x")
    assert loop.run_until_complete(loop.sock_recv(a, 10)) == b"x"
    loop.run_until_complete(loop.sock_sendall(a, b"y"))
    assert seen == ["recv", "send"]


def test_fd_number_reused_by_another_socket(loop):
    # A socket's fd number, closed and given to the next socket, is
    # watched for the new socket.
    async def main():
        for i in range(5):
            a, b = socket.socketpair()
            a.setblocking(False)
            try:
                task = asyncio.ensure_future(loop.sock_recv(a, 10))
                await asyncio.sleep(0)
                b.send(b"%d" % i)
                assert await asyncio.wait_for(task, 10) == b"%d" % i
                again = asyncio.ensure_future(loop.sock_recv(a, 10))
                await asyncio.sleep(0)
                b.send(b"again")
                assert await asyncio.wait_for(again, 10) == b"again"
            finally:
                a.close()
                b.close()

    loop.run_until_complete(main())


def test_many_sockets_high_fd_numbers(loop):
    # fds beyond the first records (sockops.pyx grows its table).
    keep = [socket.socket() for _ in range(150)]
    pairs = [socket.socketpair() for _ in range(20)]
    try:
        for a, _b in pairs:
            a.setblocking(False)

        async def one(a, b):
            task = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            b.send(b"hi")
            return await task

        async def main():
            return await asyncio.gather(*(one(a, b) for a, b in pairs))

        assert loop.run_until_complete(main()) == [b"hi"] * len(pairs)
        assert registered_fds(loop) == []
    finally:
        for s in keep:
            s.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_socket_closed_while_sock_recv_waits(loop, pair):
    # No crash, nothing leaked: the operation waits, as with the stdlib,
    # until cancelled.
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        a.close()
        await quiet_period()
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop.run_until_complete(main())


def test_sock_recv_on_a_closed_loop(loop_factory, pair):
    a, b = pair
    lp = loop_factory()
    coro = lp.sock_recv(a, 10)
    lp.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        coro.send(None)
    coro.close()


def test_sock_methods_are_coroutine_functions(loop, pair):
    import inspect
    for name in ("sock_recv", "sock_recv_into", "sock_sendall"):
        method = getattr(loop, name)
        assert inspect.iscoroutinefunction(method), name
        assert asyncio.iscoroutinefunction(method), name
    a, b = pair
    coro = loop.sock_recv(a, 1)
    assert asyncio.iscoroutine(coro)
    b.send(b"z")
    assert loop.run_until_complete(loop.create_task(coro)) == b"z"


def test_socket_handed_to_a_transport_after_sock_recv(loop, pair):
    # A socket read with sock_recv, then given to a protocol.
    a, b = pair

    class Proto(asyncio.Protocol):
        def __init__(self):
            self.got = loop.create_future()

        def data_received(self, data):
            if not self.got.done():
                self.got.set_result(data)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        b.send(b"header")
        assert await task == b"header"
        transport, proto = await loop.connect_accepted_socket(Proto, a)
        for i in range(3):
            b.send(b"body%d" % i)
            assert await asyncio.wait_for(proto.got, 10) == b"body%d" % i
            proto.got = loop.create_future()
        transport.close()

    loop.run_until_complete(main())
