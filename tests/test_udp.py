"""Datagram endpoints: loop.create_datagram_endpoint() and its transport,
checked against the stdlib loop's behaviour (every test runs on both loops
unless marked otherwise).

Unix socket paths live in a fresh directory under /tmp: AF_UNIX paths are
limited to about 107 bytes, which pytest's tmp_path may exceed.
"""

import asyncio
import errno
import gc
import os
import pathlib
import select
import shutil
import socket
import sys
import tempfile
import uuid
import warnings

import pytest

from support import (
    QUIET_PERIOD,
    fd_count,
    ipv6_loopback_works,
    quiet_period,
    run_coro,
    settled_fd_count,
    unix_dgram_pair,
    until,
)

TIMEOUT = 10
PY310 = sys.version_info[:2] == (3, 10)
PY311 = sys.version_info >= (3, 11)
PY313 = sys.version_info >= (3, 13)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Linux-only socket behaviour")


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_works(socket.SOCK_DGRAM),
                                reason="no IPv6 loopback")


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix="ol-udp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)



class Recorder(asyncio.DatagramProtocol):
    """Records every call; echo=True sends each datagram back."""

    def __init__(self, echo=False):
        self.echo = echo
        self.events = []
        self.datagrams = []
        self.errors = []
        self.transport = None
        self.lost = asyncio.get_event_loop().create_future()
        self.waiters = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')

    def datagram_received(self, data, addr):
        self.datagrams.append((data, addr))
        if self.echo:
            self.transport.sendto(data, addr)
        self._wake()

    def error_received(self, exc):
        self.errors.append(exc)
        self.events.append(('error', type(exc)))
        self._wake()

    def pause_writing(self):
        self.events.append('pause')

    def resume_writing(self):
        self.events.append('resume')
        self._wake()

    def connection_lost(self, exc):
        self.events.append(('lost', exc))
        if not self.lost.done():
            self.lost.set_result(exc)

    def _wake(self):
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters = []

    async def wait_for(self, predicate):
        while not predicate():
            fut = asyncio.get_running_loop().create_future()
            self.waiters.append(fut)
            await asyncio.wait_for(fut, TIMEOUT)


def settled_fds(loop, target=None):
    """fd_count() once the loop has run (a running loop may own more fds:
    ourloop's signal wake-up socketpair) and the garbage is collected;
    with a `target`, once the count is down to it (closes the loop
    completes in later iterations are waited for)."""
    loop.run_until_complete(asyncio.sleep(0))
    if target is not None:
        return run_coro(loop, settled_fd_count(target, collect=True))
    gc.collect()
    return fd_count()


def readable(sock):
    """Whether a read of `sock` would not block."""
    return bool(select.select([sock], [], [], 0)[0])


def exact_buffer_size(loop):
    """False for the stdlib loop on 3.13+: it adds 8 header bytes per
    queued datagram to the write buffer size and never takes them off
    (CPython gh-135444, fixed in later releases), so its size never returns
    to 0 and resume_writing() may never come. ourloop takes them off."""
    return ours(loop) or not PY313


def ours(loop):
    return type(loop).__module__.startswith('ourloop')


# -- round trips ---------------------------------------------------------------


def _echo_roundtrip(loop, family, host):
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), local_addr=(host, 0))
        server_addr = st.get_extra_info('sockname')
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, remote_addr=server_addr[:2])
        payloads = [b'x' * n for n in (1, 100, 1400, 9000)]
        for p in payloads:
            ct.sendto(p)
        await cp.wait_for(lambda: len(cp.datagrams) == len(payloads))
        client_addr = ct.get_extra_info('sockname')
        assert [d for d, _ in cp.datagrams] == payloads
        assert all(a == server_addr for _, a in cp.datagrams)
        assert all(a == client_addr for _, a in sp.datagrams)
        assert ct.get_extra_info('peername') == server_addr
        assert st.get_extra_info('peername') is None
        assert ct.get_extra_info('socket').family == family
        ct.close()
        st.close()
        await asyncio.wait_for(cp.lost, TIMEOUT)
        await asyncio.wait_for(sp.lost, TIMEOUT)
        assert cp.events == ['made', ('lost', None)]
        assert sp.events == ['made', ('lost', None)]
        return server_addr, client_addr

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_echo_ipv4(loop):
    _echo_roundtrip(loop, socket.AF_INET, '127.0.0.1')


@needs_ipv6
def test_echo_ipv6(loop):
    _echo_roundtrip(loop, socket.AF_INET6, '::1')


def test_transport_types(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        try:
            assert isinstance(t, asyncio.BaseTransport)
            assert isinstance(t, asyncio.Transport)
            if PY313 or ours(loop):
                # (Before 3.13 the stdlib's transport is not a
                # DatagramTransport.)
                assert isinstance(t, asyncio.DatagramTransport)
            assert 'fd=' in repr(t)
            assert p.transport is t
            assert t.get_protocol() is p
            other = Recorder()
            t.set_protocol(other)
            assert t.get_protocol() is other
            t.set_protocol(p)
            with pytest.raises(NotImplementedError):
                t.write(b'x')
            with pytest.raises(NotImplementedError):
                t.write_eof()
            with pytest.raises(NotImplementedError):
                t.can_write_eof()
        finally:
            t.close()
        await p.lost

    run_coro(loop, main())


def test_unix_paths_str(loop, sock_dir):
    server_path = os.path.join(sock_dir, 'server')
    client_path = os.path.join(sock_dir, 'client')

    async def main():
        st, sp = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), local_addr=server_path,
            family=socket.AF_UNIX)
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, local_addr=client_path, remote_addr=server_path,
            family=socket.AF_UNIX)
        assert st.get_extra_info('sockname') == server_path
        assert ct.get_extra_info('peername') == server_path
        for i in range(5):
            ct.sendto(b'ping%d' % i)
        await cp.wait_for(lambda: len(cp.datagrams) == 5)
        assert cp.datagrams == [(b'ping%d' % i, server_path) for i in range(5)]
        assert sp.datagrams == [(b'ping%d' % i, client_path) for i in range(5)]
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


@linux_only
def test_unix_abstract(loop):
    server = '\0ourloop-udp-' + uuid.uuid4().hex
    client = '\0ourloop-udp-' + uuid.uuid4().hex

    async def main():
        st, sp = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), local_addr=server, family=socket.AF_UNIX)
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, local_addr=client, family=socket.AF_UNIX)
        # Unconnected: the address goes with every datagram (its length
        # is the name's own, not sizeof(struct sockaddr_un)).
        ct.sendto(b'hi', server)
        ct.sendto(b'there', server.encode())
        await cp.wait_for(lambda: len(cp.datagrams) == 2)
        assert cp.datagrams == [(b'hi', server.encode()),
                                (b'there', server.encode())]
        assert sp.datagrams == [(b'hi', client.encode()),
                                (b'there', client.encode())]
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    run_coro(loop, main())


@pytest.mark.parametrize('kind', ['bytes', 'pathlike'])
def test_unix_addresses_must_be_str(loop, sock_dir, kind):
    # The stdlib takes only str addresses for family=AF_UNIX.
    path = os.path.join(sock_dir, 's')
    addr = os.fsencode(path) if kind == 'bytes' else pathlib.Path(path)

    async def main():
        for kw in (dict(local_addr=addr), dict(remote_addr=addr)):
            with pytest.raises(TypeError, match='string is expected'):
                await loop.create_datagram_endpoint(
                    Recorder, family=socket.AF_UNIX, **kw)

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def _socket_takes_pathlike():
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b'', pathlib.Path('/nonexistent/ourloop'))
        except TypeError:
            return False
        except OSError:
            return True
    return True


def test_unix_sock_with_bytes_and_pathlike_addresses(loop, sock_dir):
    # Paths as bytes: with sock= and as sendto() addresses; the received
    # sender address is a str, as recvfrom() says. A path-like address is
    # whatever the socket module makes of it (refused by the socket module of some versions:
    # a fatal write error).
    server_path = os.path.join(sock_dir, 'server')
    client_path = os.path.join(sock_dir, 'client')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(os.fsencode(server_path))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    client.bind(os.fsencode(client_path))
    pathlike_ok = _socket_takes_pathlike()

    async def main():
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        st, sp = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), sock=server)
        ct, cp = await loop.create_datagram_endpoint(Recorder, sock=client)
        ct.sendto(b'a', os.fsencode(server_path))
        ct.sendto(b'b', server_path)
        ct.sendto(b'c', bytearray(os.fsencode(server_path)))
        await cp.wait_for(lambda: len(cp.datagrams) == 3)
        assert [d for d, _ in cp.datagrams] == [b'a', b'b', b'c']
        assert {a for _, a in cp.datagrams} == {server_path}
        assert {a for _, a in sp.datagrams} == {client_path}
        ct.sendto(b'd', pathlib.Path(server_path))
        if pathlike_ok:
            await cp.wait_for(lambda: len(cp.datagrams) == 4)
            ct.close()
        else:
            assert isinstance(errors[0]['exception'], TypeError)
        st.close()
        await cp.lost
        await sp.lost

    run_coro(loop, main())
    assert server.fileno() == -1 and client.fileno() == -1


def test_unix_never_resolved(loop, sock_dir):
    path = os.path.join(sock_dir, 's')

    async def no_dns(*args, **kwargs):
        raise AssertionError('getaddrinfo called for a Unix path')

    loop.getaddrinfo = no_dns

    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=path, family=socket.AF_UNIX)
        t.close()
        await p.lost

    run_coro(loop, main())


def test_unix_stale_socket_removed(loop, sock_dir):
    path = os.path.join(sock_dir, 's')
    old = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old.bind(path)
    old.close()
    assert os.path.exists(path)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=path, family=socket.AF_UNIX)
        assert t.get_extra_info('sockname') == path
        t.close()
        await p.lost

    run_coro(loop, main())


def test_unix_regular_file_not_removed(loop, sock_dir):
    path = os.path.join(sock_dir, 'f')
    with open(path, 'w') as f:
        f.write('keep')

    async def main():
        with pytest.raises(OSError) as info:
            await loop.create_datagram_endpoint(
                Recorder, local_addr=path, family=socket.AF_UNIX)
        return info.value.errno

    before = settled_fds(loop)
    assert run_coro(loop, main()) == errno.EADDRINUSE
    assert settled_fds(loop, before) == before
    with open(path) as f:
        assert f.read() == 'keep'


# -- connected endpoints -----------------------------------------------------


def test_connected_sendto_address_checks(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        addr = st.get_extra_info('sockname')
        ct, cp = await loop.create_datagram_endpoint(Recorder, remote_addr=addr)
        with pytest.raises(ValueError, match='Invalid address: must be None or'):
            ct.sendto(b'x', ('127.0.0.1', addr[1] + 1 if addr[1] < 65535 else 1))
        with pytest.raises(TypeError, match="data argument must be a bytes-like "
                                            "object, not 'str'"):
            ct.sendto('text')
        ct.sendto(b'1', addr)
        ct.sendto(bytearray(b'2'))
        ct.sendto(memoryview(b'3'))
        await sp.wait_for(lambda: len(sp.datagrams) == 3)
        assert [d for d, _ in sp.datagrams] == [b'1', b'2', b'3']
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    run_coro(loop, main())


def test_connected_econnrefused(loop):
    # Nothing listens on the port: the ICMP error comes back as
    # ECONNREFUSED on the connected socket, and goes to error_received().
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        addr = s.getsockname()

    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, remote_addr=addr)
        for _ in range(50):
            t.sendto(b'anyone?')
            if p.errors:
                break
            try:
                await asyncio.wait_for(p.wait_for(lambda: p.errors), 0.2)
            except asyncio.TimeoutError:
                pass
        assert p.errors
        assert all(isinstance(e, ConnectionRefusedError) for e in p.errors)
        assert not t.is_closing()
        t.close()
        await p.lost
        assert p.events[-1] == ('lost', None)

    run_coro(loop, main())


def test_empty_datagram(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info('sockname'))
        ct.sendto(b'')
        ct.sendto(b'end')
        await sp.wait_for(lambda: any(d == b'end' for d, _ in sp.datagrams))
        ct.close()
        st.close()
        await cp.lost
        await sp.lost
        return [d for d, _ in sp.datagrams]

    got = run_coro(loop, main())
    # 3.13+ sends empty datagrams; before, sendto(b'') did nothing.
    assert got == ([b'', b'end'] if PY313 else [b'end'])


def test_sendto_host_name(loop):
    # A host name as the address: the socket module resolves it.
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        port = st.get_extra_info('sockname')[1]
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, family=socket.AF_INET)
        ct.sendto(b'by name', ('localhost', port))
        await sp.wait_for(lambda: sp.datagrams)
        assert sp.datagrams[0][0] == b'by name'
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    run_coro(loop, main())


@pytest.mark.parametrize('addr', [None, 'not a tuple', ('127.0.0.1', 'port'),
                                  ('127.0.0.1', 70000)])
def test_sendto_bad_address_is_fatal(loop, addr):
    # The stdlib: a non-OSError from sock.sendto() is a fatal write error.
    async def main():
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        t, p = await loop.create_datagram_endpoint(Recorder, family=socket.AF_INET)
        t.sendto(b'x', addr)
        await p.lost
        assert len(errors) == 1
        assert errors[0]['message'] == 'Fatal write error on datagram transport'
        assert p.events == ['made', ('lost', errors[0]['exception'])]
        exc = errors[0]['exception']
        return type(exc), str(exc)

    before = settled_fds(loop)
    result = run_coro(loop, main())
    assert settled_fds(loop, before) == before
    expected = {None: TypeError, 'not a tuple': TypeError,
                ('127.0.0.1', 'port'): TypeError,
                ('127.0.0.1', 70000): OverflowError}[addr]
    assert result[0] is expected


def test_sendto_oserror_goes_to_error_received(loop):
    # EINVAL-class errors from sendto() (port 0 is refused by the kernel).
    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        t.sendto(b'x', ('127.0.0.1', 0))
        assert len(p.errors) == 1 and isinstance(p.errors[0], OSError)
        assert not t.is_closing()
        t.close()
        await p.lost
        return p.errors[0].errno

    assert run_coro(loop, main()) == errno.EINVAL


# -- bursts and flow control ------------------------------------------------------


def test_burst_ipv4_order_kept(loop):
    count = 10000

    async def main():
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        server.bind(('127.0.0.1', 0))
        st, sp = await loop.create_datagram_endpoint(Recorder, sock=server)
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, remote_addr=server.getsockname())

        def burst():
            for i in range(count):
                ct.sendto(i.to_bytes(4, 'big') * 25)

        loop.call_soon(burst)
        # Wait until the last one came in, or nothing came for a while (the
        # kernel may drop datagrams when the receive buffer is full): each
        # datagram is waited for, their absence for ten quiet periods.
        last = (count - 1).to_bytes(4, 'big')
        while not sp.datagrams or sp.datagrams[-1][0][:4] != last:
            seen = len(sp.datagrams)
            try:
                await asyncio.wait_for(
                    sp.wait_for(lambda seen=seen: len(sp.datagrams) > seen),
                    10 * QUIET_PERIOD)
            except asyncio.TimeoutError:
                break
        numbers = [int.from_bytes(d[:4], 'big') for d, _ in sp.datagrams]
        assert numbers == sorted(numbers)
        assert len(set(numbers)) == len(numbers)
        assert len(numbers) > count // 10
        assert all(len(d) == 100 for d, _ in sp.datagrams)
        # Everything left: nothing is queued.
        if exact_buffer_size(loop):
            assert ct.get_write_buffer_size() == 0
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


class TurnLog(asyncio.DatagramProtocol):
    """Logs each datagram and, one turn of the loop later, a callback it
    scheduled; pauses reading at datagram `pause_at` (3.11+)."""

    def __init__(self, loop, pause_at=None):
        self.loop, self.pause_at, self.log = loop, pause_at, []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.log.append(data)
        self.loop.call_soon(self.log.append, b'after ' + data)
        if data == self.pause_at:
            self.transport.pause_reading()

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def _turns(n):
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.parametrize('family', [socket.AF_INET, socket.AF_UNIX])
def test_waiting_datagrams_one_per_turn(loop, family, tmp_path):
    # Datagrams already waiting are delivered one per turn of the loop:
    # what datagram_received() scheduled runs before the next one.
    async def main():
        server = socket.socket(family, socket.SOCK_DGRAM)
        server.bind(('127.0.0.1', 0) if family == socket.AF_INET
                    else str(tmp_path / 's'))
        sent = [b'%d' % i for i in range(6)]
        with socket.socket(family, socket.SOCK_DGRAM) as c:
            for d in sent:
                c.sendto(d, server.getsockname())
        t, p = await loop.create_datagram_endpoint(lambda: TurnLog(loop), sock=server)
        while len(p.log) < 2 * len(sent):
            await asyncio.sleep(0)
        assert p.log == [x for d in sent for x in (d, b'after ' + d)]
        t.close()
        await p.lost

    run_coro(loop, main())


@pytest.mark.skipif(not PY311, reason='pause_reading of datagram transports is 3.11+')
def test_pause_in_datagram_received_stops_the_next(loop):
    async def main():
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(('127.0.0.1', 0))
        sent = [b'%d' % i for i in range(4)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for d in sent:
                c.sendto(d, server.getsockname())
        t, p = await loop.create_datagram_endpoint(
            lambda: TurnLog(loop, pause_at=b'1'), sock=server)
        while len(p.log) < 4:
            await asyncio.sleep(0)
        await _turns(20)
        assert p.log == [b'0', b'after 0', b'1', b'after 1']
        t.resume_reading()
        while len(p.log) < 8:
            await asyncio.sleep(0)
        assert p.log[4:] == [b'2', b'after 2', b'3', b'after 3']
        t.close()
        await p.lost

    run_coro(loop, main())


class RaisingTurnLog(TurnLog):
    """A TurnLog whose datagram_received() raises for the datagrams in
    `raise_at` (after logging them), or closes the transport at
    `close_at`."""

    def __init__(self, loop, raise_at=(), close_at=None):
        super().__init__(loop)
        self.raise_at, self.close_at = raise_at, close_at

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if data == self.close_at:
            self.transport.close()
        if data in self.raise_at:
            raise RuntimeError(data)


def _send_waiting(server, family, count):
    sent = [b'%d' % i for i in range(count)]
    with socket.socket(family, socket.SOCK_DGRAM) as c:
        for d in sent:
            c.sendto(d, server.getsockname())
    return sent


def _bound(family, tmp_path):
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind(('127.0.0.1', 0) if family == socket.AF_INET else str(tmp_path / 's'))
    return server


@pytest.mark.parametrize('family', [socket.AF_INET, socket.AF_UNIX])
def test_many_waiting_datagrams_one_per_turn(loop, family, tmp_path):
    # More datagrams wait than ourloop reads in one system call (8; a Unix
    # datagram socket queues 10 by default, net.unix.max_dgram_qlen): still
    # one per turn, in order, each followed by what it scheduled.
    async def main():
        server = _bound(family, tmp_path)
        sent = _send_waiting(server, family, 10)
        t, p = await loop.create_datagram_endpoint(lambda: TurnLog(loop), sock=server)
        while len(p.log) < 2 * len(sent):
            await asyncio.sleep(0)
        assert p.log == [x for d in sent for x in (d, b'after ' + d)]
        t.close()
        await p.lost

    run_coro(loop, main())


@pytest.mark.parametrize('family', [socket.AF_INET, socket.AF_UNIX])
def test_datagram_received_raising_reading_goes_on(loop, family, tmp_path):
    # An exception of datagram_received() goes to the exception handler and
    # the next datagrams are still delivered, one per turn (the stdlib's
    # reader stays registered), also those read in the same system call.
    errors = []

    async def main():
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        server = _bound(family, tmp_path)
        sent = _send_waiting(server, family, 10)
        t, p = await loop.create_datagram_endpoint(
            lambda: RaisingTurnLog(loop, raise_at=(b'1', b'9')), sock=server)
        while len(p.log) < 2 * len(sent):
            await asyncio.sleep(0)
        assert p.log == [x for d in sent for x in (d, b'after ' + d)]
        assert [ctx['exception'].args for ctx in errors] == [(b'1',), (b'9',)]
        t.close()
        await p.lost

    run_coro(loop, main())


@pytest.mark.parametrize('family', [socket.AF_INET, socket.AF_UNIX])
def test_close_in_datagram_received_delivers_no_more(loop, family, tmp_path):
    # close() from datagram_received() with more datagrams waiting (read in
    # the same system call on ourloop): none of them is delivered.
    async def main():
        server = _bound(family, tmp_path)
        _send_waiting(server, family, 10)
        t, p = await loop.create_datagram_endpoint(
            lambda: RaisingTurnLog(loop, close_at=b'2'), sock=server)
        assert await p.lost is None
        await _turns(10)
        assert p.log == [b'0', b'after 0', b'1', b'after 1', b'2', b'after 2']

    run_coro(loop, main())


@pytest.mark.skipif(not PY311, reason='pause_reading of datagram transports is 3.11+')
def test_pause_resume_with_many_waiting(loop):
    # Paused in the middle of a batch: nothing comes until resume_reading(),
    # then the rest in order, one per turn, new datagrams after them.
    async def main():
        server = _bound(socket.AF_INET, None)
        sent = _send_waiting(server, socket.AF_INET, 12)
        t, p = await loop.create_datagram_endpoint(
            lambda: TurnLog(loop, pause_at=b'3'), sock=server)
        while len(p.log) < 8:
            await asyncio.sleep(0)
        await _turns(20)
        assert p.log == [x for d in sent[:4] for x in (d, b'after ' + d)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b'new', server.getsockname())
        t.resume_reading()
        while len(p.log) < 2 * len(sent) + 2:
            await asyncio.sleep(0)
        assert p.log[8:] == [x for d in sent[4:] + [b'new'] for x in (d, b'after ' + d)]
        t.close()
        await p.lost

    run_coro(loop, main())


def test_burst_unix_none_lost(loop):
    # Unix datagram sockets do not drop: the sender gets EAGAIN when the
    # peer's queue is full, so 10000 datagrams sent in one callback are
    # queued by the transport and all arrive, in order.
    count = 10000

    async def main():
        a, b = unix_dgram_pair()
        ta, pa = await loop.create_datagram_endpoint(Recorder, sock=a)
        tb, pb = await loop.create_datagram_endpoint(Recorder, sock=b)
        sizes = []

        def burst():
            for i in range(count):
                ta.sendto(i.to_bytes(4, 'big') * 25)
            sizes.append(ta.get_write_buffer_size())

        loop.call_soon(burst)
        await pb.wait_for(lambda: len(pb.datagrams) == count)
        assert [int.from_bytes(d[:4], 'big') for d, _ in pb.datagrams] == list(range(count))
        assert sizes[0] > 0          # the kernel did not take them all at once
        assert 'pause' in pa.events
        if exact_buffer_size(loop):
            assert ta.get_write_buffer_size() == 0
            assert pa.events[-1] == 'resume'
        ta.close()
        tb.close()
        await pa.lost
        await pb.lost

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_backpressure_unix(loop):
    async def main():
        a, b = unix_dgram_pair()
        t, p = await loop.create_datagram_endpoint(Recorder, sock=a)
        t.set_write_buffer_limits(high=100, low=20)
        assert t.get_write_buffer_limits() == (20, 100)
        sent = 0
        while 'pause' not in p.events:
            t.sendto(b'%05d' % sent + b'.' * 45)
            sent += 1
            assert sent < 10000
        assert t.get_write_buffer_size() > 100
        assert p.events == ['made', 'pause']
        # The peer reads: the queue drains and the protocol resumes.
        got = []
        while len(got) < sent:
            await until(lambda: readable(b))
            got.append(b.recv(100))
        assert [int(g[:5]) for g in got] == list(range(sent))
        if exact_buffer_size(loop):
            await p.wait_for(lambda: 'resume' in p.events)
            assert p.events == ['made', 'pause', 'resume']
        t.close()
        await p.lost
        b.close()

    run_coro(loop, main())


def test_set_write_buffer_limits_checks(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        assert t.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        t.set_write_buffer_limits(low=1000)
        assert t.get_write_buffer_limits() == (1000, 4000)
        t.set_write_buffer_limits(high=800)
        assert t.get_write_buffer_limits() == (200, 800)
        with pytest.raises(ValueError, match=r'high \(1\) must be >= low \(2\) must be >= 0'):
            t.set_write_buffer_limits(high=1, low=2)
        assert t.get_write_buffer_size() == 0
        t.close()
        await p.lost

    run_coro(loop, main())


class BlockOnce(socket.socket):
    """A UDP socket whose first sendto() says the kernel would block: the
    transport must queue that datagram and those after it."""

    __slots__ = ('blocked',)

    def sendto(self, *args):
        if not getattr(self, 'blocked', False):
            self.blocked = True
            raise BlockingIOError(errno.EAGAIN, 'would block')
        return super().sendto(*args)


def test_ip_queue_in_order_after_eagain(loop):
    # The queue of an IP endpoint (libuv's send queue in ourloop): what
    # could not leave at once leaves in order when the socket is writable;
    # an error of a queued datagram goes to error_received(); the
    # protocol is paused and resumed. (Loopback UDP never says EAGAIN, so
    # the first send is refused by a socket subclass; a host name makes
    # both loops go through the socket object's sendto().)
    async def main():
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(('127.0.0.1', 0))
        port = server.getsockname()[1]
        st, sp = await loop.create_datagram_endpoint(Recorder, sock=server)
        client = BlockOnce(socket.AF_INET, socket.SOCK_DGRAM)
        ct, cp = await loop.create_datagram_endpoint(Recorder, sock=client)
        ct.set_write_buffer_limits(high=1000, low=0)
        ct.sendto(b'first' * 100, ('localhost', port))
        assert ct.get_write_buffer_size() == 500 + (8 if PY313 else 0)
        ct.sendto(b'bad', ('127.0.0.1', 0))      # EINVAL when it is sent
        queued = [b'q%d' % i + b'.' * 300 for i in range(5)]
        for q in queued:
            ct.sendto(q, ('127.0.0.1', port))
        assert cp.events == ['made', 'pause']
        await sp.wait_for(lambda: len(sp.datagrams) == 6)
        assert [d for d, _ in sp.datagrams] == [b'first' * 100] + queued
        if exact_buffer_size(loop):
            await cp.wait_for(lambda: 'resume' in cp.events)
        else:
            await cp.wait_for(lambda: cp.errors)
        assert [type(e) for e in cp.errors] == [OSError]
        assert cp.errors[0].errno == errno.EINVAL
        if exact_buffer_size(loop):
            assert ct.get_write_buffer_size() == 0
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_close_waits_for_queue(loop):
    # close() with queued datagrams: they still go, then connection_lost.
    async def main():
        a, b = unix_dgram_pair()
        t, p = await loop.create_datagram_endpoint(Recorder, sock=a)
        n = 0
        while t.get_write_buffer_size() == 0:
            t.sendto(b'%d' % n)
            n += 1
        t.sendto(b'last')
        t.close()
        assert t.is_closing()
        await quiet_period()  # the peer does not read: the queue stays
        assert not p.lost.done()
        got = []
        while True:
            await until(lambda: readable(b) or p.lost.done())
            try:
                got.append(b.recv(100))
            except BlockingIOError:
                break  # (lost, and nothing left to read)
        assert got == [b'%d' % i for i in range(n)] + [b'last']
        assert p.events == ['made', ('lost', None)]
        b.close()

    run_coro(loop, main())


def test_abort_drops_queue(loop):
    async def main():
        a, b = unix_dgram_pair()
        t, p = await loop.create_datagram_endpoint(Recorder, sock=a)
        while t.get_write_buffer_size() == 0:
            t.sendto(b'x')
        t.abort()
        if ours(loop) or not PY311:
            # (3.11+'s stdlib keeps counting the dropped datagrams.)
            assert t.get_write_buffer_size() == 0
        await p.lost
        assert p.events == ['made', ('lost', None)]
        assert a.fileno() == -1
        b.close()

    run_coro(loop, main())


# -- argument checks ------------------------------------------------------------


def _sock_error_message(sock):
    if PY313:
        return f'A datagram socket was expected, got {sock!r}'
    return f'A UDP Socket was expected, got {sock!r}'


def test_sock_stream_refused(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            with pytest.raises(ValueError) as info:
                await loop.create_datagram_endpoint(Recorder, sock=s)
            assert str(info.value) == _sock_error_message(s)
            assert s.fileno() != -1

    run_coro(loop, main())


@pytest.mark.parametrize('kwargs', [
    dict(local_addr=('127.0.0.1', 0)),
    dict(remote_addr=('127.0.0.1', 1)),
    dict(family=socket.AF_INET),
    dict(proto=17),
    dict(flags=1),
    dict(reuse_port=True),
    dict(allow_broadcast=True),
    dict(family=socket.AF_INET, allow_broadcast=True),
])
def test_sock_with_modifiers_refused(loop, kwargs):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with pytest.raises(ValueError) as info:
                await loop.create_datagram_endpoint(Recorder, sock=s, **kwargs)
            assert s.fileno() != -1
            return str(info.value)

    message = run_coro(loop, main())
    assert message.startswith('socket modifier keyword arguments can not be '
                              'used when sock is specified. (')
    for name, value in kwargs.items():
        assert f'{name}={value}' in message
    # (3.9 and 3.10 also list reuse_address=<the stdlib's sentinel>.)
    assert ('reuse_address=' in message) == (not PY311)


def test_no_address_no_family(loop):
    async def main():
        with pytest.raises(ValueError, match='unexpected address family'):
            await loop.create_datagram_endpoint(Recorder)

    run_coro(loop, main())


def test_family_only(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, family=socket.AF_INET)
        assert t.get_extra_info('sockname') == ('0.0.0.0', 0)
        assert t.get_extra_info('peername') is None
        t.close()
        await p.lost

    run_coro(loop, main())


@pytest.mark.parametrize('addr', [('127.0.0.1',), ('127.0.0.1', 0, 0), '127.0.0.1'])
def test_address_not_a_pair(loop, addr):
    async def main():
        for kw in (dict(local_addr=addr), dict(remote_addr=addr)):
            expected = AssertionError if PY310 else TypeError
            with pytest.raises(expected, match='2-tuple is expected'):
                await loop.create_datagram_endpoint(Recorder, **kw)

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_unix_family_with_tuple(loop):
    async def main():
        with pytest.raises(TypeError, match='string is expected'):
            await loop.create_datagram_endpoint(
                Recorder, local_addr=('127.0.0.1', 0), family=socket.AF_UNIX)

    run_coro(loop, main())


@needs_ipv6
def test_no_common_family(loop):
    async def main():
        with pytest.raises(ValueError, match='can not get address information'):
            await loop.create_datagram_endpoint(
                Recorder, local_addr=('127.0.0.1', 0), remote_addr=('::1', 1))

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_bind_error(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(('127.0.0.1', 0))
            with pytest.raises(OSError) as info:
                await loop.create_datagram_endpoint(
                    Recorder, local_addr=s.getsockname())
            return info.value.errno

    before = settled_fds(loop)
    assert run_coro(loop, main()) == errno.EADDRINUSE
    assert settled_fds(loop, before) == before


@pytest.mark.parametrize('value', [True, False])
def test_reuse_address(loop, value):
    async def main():
        return await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0), reuse_address=value)

    before = settled_fds(loop)
    if PY311:
        with pytest.raises(TypeError, match='reuse_address'):
            run_coro(loop, main())
    elif value:
        with pytest.raises(ValueError, match='Passing `reuse_address=True` is no '
                                             'longer supported'):
            run_coro(loop, main())
    else:
        with pytest.warns(DeprecationWarning, match='The \\*reuse_address\\* '
                                                    'parameter has been deprecated'):
            t, p = run_coro(loop, main())
        t.close()
        run_coro(loop, p.lost)
    assert settled_fds(loop, before) == before


def test_socket_options(loop):
    async def main():
        t1, p1 = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0), reuse_port=True)
        s1 = t1.get_extra_info('socket')
        assert s1.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        # Not SO_REUSEADDR (libuv turns it on in uv_udp_open; ourloop puts
        # it back).
        assert not s1.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert not s1.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        # Another endpoint on the same port, as SO_REUSEPORT allows.
        t2, p2 = await loop.create_datagram_endpoint(
            Recorder, local_addr=t1.get_extra_info('sockname'), reuse_port=True)
        t3, p3 = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0), allow_broadcast=True)
        assert t3.get_extra_info('socket').getsockopt(
            socket.SOL_SOCKET, socket.SO_BROADCAST)
        for t, p in ((t1, p1), (t2, p2), (t3, p3)):
            t.close()
            await p.lost

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_allow_broadcast_with_remote_addr(loop):
    # allow_broadcast: the socket is not connected, remote_addr is the
    # default destination.
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        addr = st.get_extra_info('sockname')
        ct, cp = await loop.create_datagram_endpoint(
            Recorder, remote_addr=addr, allow_broadcast=True)
        assert ct.get_extra_info('peername') is None
        with pytest.raises(ValueError, match='Invalid address'):
            ct.sendto(b'x', ('127.0.0.2', 9))
        ct.sendto(b'one')
        ct.sendto(b'two', addr)
        await sp.wait_for(lambda: len(sp.datagrams) == 2)
        assert [d for d, _ in sp.datagrams] == [b'one', b'two']
        ct.close()
        st.close()
        await cp.lost
        await sp.lost

    run_coro(loop, main())


# -- sock= ----------------------------------------------------------------------


def test_sock_forms(loop):
    async def main():
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(('127.0.0.1', 0))
        addr = server.getsockname()
        st, sp = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), sock=server)
        assert st.get_extra_info('socket').fileno() == server.fileno()
        assert st.get_extra_info('sockname') == addr
        unbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        connected.connect(addr)
        blocking = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert blocking.gettimeout() is None
        ends = []
        for s in (unbound, connected, blocking):
            t, p = await loop.create_datagram_endpoint(Recorder, sock=s)
            assert s.gettimeout() == 0.0      # made non-blocking
            ends.append((s, t, p))
        ends[0][1].sendto(b'unbound', addr)
        ends[1][1].sendto(b'connected')
        ends[2][1].sendto(b'blocking', addr)
        for _, _, p in ends:
            await p.wait_for(lambda p=p: p.datagrams)
        assert [p.datagrams[0][0] for _, _, p in ends] == [
            b'unbound', b'connected', b'blocking']
        assert ends[1][1].get_extra_info('peername') == addr
        for s, t, p in ends + [(server, st, sp)]:
            t.close()
            await p.lost
            # The transport closes the caller's socket, as the stdlib does.
            assert s.fileno() == -1

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_sock_unix_socketpair(loop):
    # A socketpair's peername is '': the stdlib takes the transport for an
    # unconnected one, and sendto() without an address is a fatal error
    # (sock.sendto(data, None)); with the address, it is a send().
    async def main():
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ta, pa = await loop.create_datagram_endpoint(Recorder, sock=a)
        tb, pb = await loop.create_datagram_endpoint(Recorder, sock=b)
        assert ta.get_extra_info('peername') == ''
        ta.sendto(b'ping')
        await pa.lost
        assert len(errors) == 1
        assert errors[0]['message'] == 'Fatal write error on datagram transport'
        assert isinstance(errors[0]['exception'], TypeError)
        assert a.fileno() == -1
        tb.close()
        await pb.lost

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_sock_unix_unnamed_sender_address(loop, sock_dir):
    # What recvfrom() says about an unbound sender, compared across loops
    # through the socket module itself.
    path = os.path.join(sock_dir, 's')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    probe.sendto(b'p', path)
    expected = server.recvfrom(10)[1]
    probe.close()

    async def main():
        st, sp = await loop.create_datagram_endpoint(Recorder, sock=server)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.sendto(b'x', path)
        await sp.wait_for(lambda: sp.datagrams)
        sender.close()
        st.close()
        await sp.lost
        return sp.datagrams[0]

    assert run_coro(loop, main()) == (b'x', expected)


# -- closing ---------------------------------------------------------------------


def test_close_and_abort_once(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, remote_addr=('127.0.0.1', 9))
        assert not t.is_closing()
        t.close()
        assert t.is_closing()
        t.close()
        t.abort()
        # A connected transport only counts sends after close.
        t.sendto(b'late')
        await p.lost
        await quiet_period()  # no second connection_lost
        assert p.events == ['made', ('lost', None)]

        t2, p2 = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        t2.abort()
        t2.abort()
        t2.close()
        assert t2.is_closing()
        await p2.lost
        await quiet_period()  # no second connection_lost
        assert p2.events == ['made', ('lost', None)]

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_close_in_connection_made(loop):
    class CloseAtOnce(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.close()

    async def main():
        t, p = await loop.create_datagram_endpoint(
            CloseAtOnce, local_addr=('127.0.0.1', 0))
        await p.lost
        assert p.events == ['made', ('lost', None)]

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_no_datagram_after_close(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        addr = st.get_extra_info('sockname')
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'first', addr)
            await sp.wait_for(lambda: sp.datagrams)
            s.sendto(b'second', addr)
            await asyncio.sleep(0)   # (may or may not be read yet)
            st.close()
            s.sendto(b'third', addr)
            await sp.lost
        assert b'third' not in [d for d, _ in sp.datagrams]

    run_coro(loop, main())


def test_datagram_received_exception(loop):
    class Boom(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b'boom':
                raise ZeroDivisionError('boom')

    async def main():
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        st, sp = await loop.create_datagram_endpoint(Boom, local_addr=('127.0.0.1', 0))
        addr = st.get_extra_info('sockname')
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'boom', addr)
            await sp.wait_for(lambda: errors)
            s.sendto(b'after', addr)
            await sp.wait_for(lambda: len(sp.datagrams) == 2)
        assert len(errors) == 1
        assert isinstance(errors[0]['exception'], ZeroDivisionError)
        assert errors[0]['message'].startswith('Exception in callback ')
        assert '_read_ready' in errors[0]['message']
        assert not st.is_closing()
        st.close()
        await sp.lost

    run_coro(loop, main())


def test_debug_mode_round_trip(loop):
    loop.set_debug(True)
    _echo_roundtrip(loop, socket.AF_INET, '127.0.0.1')


# -- reading pauses (3.11+) ---------------------------------------------------------


def test_pause_reading(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        addr = st.get_extra_info('sockname')
        if not PY311:
            for name in ('pause_reading', 'resume_reading', 'is_reading'):
                with pytest.raises(NotImplementedError):
                    getattr(st, name)()
            st.close()
            await sp.lost
            return
        assert st.is_reading()
        st.pause_reading()
        assert not st.is_reading()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'waits', addr)
            # it is in the socket, and stays there while paused
            await until(lambda: readable(st.get_extra_info('socket')))
            await quiet_period()
            assert sp.datagrams == []
            st.resume_reading()
            assert st.is_reading()
            await sp.wait_for(lambda: sp.datagrams)
        assert sp.datagrams[0][0] == b'waits'
        st.close()
        assert not st.is_reading()
        await sp.lost

    run_coro(loop, main())


# -- fds and cancellation -----------------------------------------------------------


def test_cancel_while_resolving(loop):
    started = []

    async def slow_getaddrinfo(*args, **kwargs):
        started.append(args)
        await asyncio.sleep(3600)

    loop.getaddrinfo = slow_getaddrinfo

    async def main():
        task = asyncio.ensure_future(loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0), remote_addr=('localhost', 9)))
        while not started:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


@pytest.mark.parametrize('use_sock', [False, True])
def test_cancel_while_waiting_for_connection_made(loop, use_sock):
    async def main():
        protocols = []

        def factory():
            protocols.append(Recorder())
            return protocols[-1]

        if use_sock:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            kw = dict(sock=s)
        else:
            s = None
            kw = dict(local_addr=('127.0.0.1', 0))
        task = asyncio.ensure_future(loop.create_datagram_endpoint(factory, **kw))
        while not protocols:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await protocols[0].lost
        assert protocols[0].events == ['made', ('lost', None)]
        if s is not None:
            assert s.fileno() == -1

    before = settled_fds(loop)
    run_coro(loop, main())
    assert settled_fds(loop, before) == before


def test_protocol_factory_error(loop):
    def factory():
        raise ZeroDivisionError

    async def main():
        with pytest.raises(ZeroDivisionError):
            await loop.create_datagram_endpoint(factory, local_addr=('127.0.0.1', 0))

    before = settled_fds(loop)
    run_coro(loop, main())
    if type(loop).__module__.startswith('ourloop'):
        # (The stdlib leaves its socket to the garbage collector.)
        assert settled_fds(loop, before) == before


def test_loop_close_with_open_endpoints(loop_factory, sock_dir):
    # loop.close() leaves the transports open (their sockets too); once
    # collected, each warns and closes its socket.
    loop_factory().close()  # (libuv's signal pipe, made once, kept)
    gc.collect()
    before = fd_count()
    lp = loop_factory()
    try:
        async def main():
            ends = []
            ends.append(await lp.create_datagram_endpoint(
                Recorder, local_addr=('127.0.0.1', 0)))
            ends.append(await lp.create_datagram_endpoint(
                Recorder, local_addr=os.path.join(sock_dir, 's'), family=socket.AF_UNIX))
            a, b = unix_dgram_pair()
            peer.append(b)
            ends.append(await lp.create_datagram_endpoint(Recorder, sock=a))
            for _ in range(10000):
                # Datagrams still queued when the loop closes.
                ends[2][0].sendto(b'x')
                if ends[2][0].get_write_buffer_size():
                    break
            assert ends[2][0].get_write_buffer_size()
            return ends

        peer = []
        ends = lp.run_until_complete(main())
    finally:
        lp.close()
        for b in peer:
            b.close()
    assert all(p.events == ['made'] for _, p in ends)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ResourceWarning)
        del ends
        gc.collect()
    unclosed = [w for w in caught if str(w.message).startswith('unclosed transport <')]
    assert len(unclosed) == 3
    del caught, unclosed
    gc.collect()
    assert fd_count() == before


@pytest.mark.only_loop("ourloop", reason="ourloop's transport class")
def test_transport_not_instantiable(ourloop_mod):
    with pytest.raises(TypeError):
        ourloop_mod._core.UDPTransport()


def test_instance_attributes_shadow_methods(loop):
    # As on the stdlib's (Python) transports, an instance attribute shadows
    # a method.
    from unittest import mock

    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        t.sendto = mock.Mock()
        t.sendto(b'x', ('127.0.0.1', 9))
        t.sendto.assert_called_once_with(b'x', ('127.0.0.1', 9))
        assert t.get_write_buffer_size() == 0
        del t.sendto
        t.close()
        assert await p.lost is None

    run_coro(loop, main())


def test_get_extra_info(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(
            Recorder, local_addr=('127.0.0.1', 0))
        sock = st.get_extra_info('socket')
        assert isinstance(sock, asyncio.trsock.TransportSocket)
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_DGRAM)
        assert sock.getsockname() == st.get_extra_info('sockname')
        assert st.get_extra_info('peername') is None
        assert st.get_extra_info('nothing', 'default') == 'default'
        fd = sock.fileno()
        with pytest.raises(RuntimeError, match='is used by transport'):
            loop.add_reader(fd, lambda: None)
        st.close()
        await sp.lost

    run_coro(loop, main())
