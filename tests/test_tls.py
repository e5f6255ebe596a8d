"""TLS on both loops: ssl= on create_connection / create_server /
connect_accepted_socket / create_unix_connection / create_unix_server,
loop.start_tls and StreamWriter.start_tls, checked against the stdlib
loop's behaviour (each test runs on asyncio and on ourloop).

Certificates come from tests/tls_certs.py (made with the openssl command
once per session). Where the stdlib changed between versions, the running
version's behaviour is asserted.
"""

import asyncio
import gc
import inspect
import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading

import pytest

from support import fd_count, run_coro, settled_fd_count, until

TIMEOUT = 20
PY311 = sys.version_info >= (3, 11)
# The stdlib's _SSLProtocolTransport is start_tls() compatible (TLS in
# TLS) from 3.11 on.
SSL_TRANSPORT_START_TLS = PY311
BIG = 8 * 1024 * 1024

needs_311 = pytest.mark.skipif(not PY311, reason='3.11+ API')


def new_tls_design(loop):
    """True if loop's TLS layer is the 3.11+ design: the stdlib's from
    3.11 on, ourloop's native one (ourloop/tls.pyx) on every version."""
    return PY311 or type(loop).__module__.startswith('ourloop')



def run_no_leak(loop, coro, timeout=TIMEOUT):
    """run_coro(), and check that no fd is left open. Measured once the loop
    has run: a running loop may own more fds (ourloop's signal wake-up
    socketpair)."""
    run_coro(loop, asyncio.sleep(0))
    gc.collect()  # sockets of earlier tests waiting for the collector
    before = fd_count()
    result = run_coro(loop, coro, timeout)
    # (closes the loop completes in later iterations are waited for)
    assert run_coro(loop, settled_fd_count(before, collect=True)) == before
    return result


@pytest.fixture
def sock_dir():
    # AF_UNIX paths are short: not pytest's tmp_path.
    path = tempfile.mkdtemp(prefix='ol-tls-', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Recorder(asyncio.Protocol):
    """Records callbacks; `done` resolves at connection_lost."""

    def __init__(self, loop, eof_keep_open=False):
        self.loop = loop
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.done = loop.create_future()
        self.eof_keep_open = eof_keep_open
        self.paused = 0
        self.resumed = 0
        self.waiting_for = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')
        self.made.set_result(transport)

    def data_received(self, data):
        if not self.events or self.events[-1] != 'data':
            self.events.append('data')
        self.data += data
        self._check_wait()

    def _check_wait(self):
        if self.waiting_for is not None:
            size, fut = self.waiting_for
            if len(self.data) >= size and not fut.done():
                fut.set_result(None)

    def wait_for_size(self, size):
        fut = self.loop.create_future()
        self.waiting_for = (size, fut)
        self._check_wait()
        return fut

    def eof_received(self):
        self.events.append('eof')
        return self.eof_keep_open

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.events.append('lost')
        self.exc = exc
        if not self.done.done():
            self.done.set_result(exc)


class EchoServer(Recorder):
    """Echoes what it receives; closes after EOF."""

    def data_received(self, data):
        super().data_received(data)
        self.transport.write(data)


async def serve(loop, certs, factory=None, **kw):
    """A TLS server on 127.0.0.1; returns (server, port, protocols)."""
    protos = []

    def make():
        proto = (factory or (lambda: Recorder(loop)))()
        protos.append(proto)
        return proto

    server = await loop.create_server(
        make, '127.0.0.1', 0, ssl=kw.pop('ssl', None) or certs.server_context(),
        **kw)
    return server, server.sockets[0].getsockname()[1], protos


async def close_server(server):
    server.close()
    await server.wait_closed()


# -- connections and servers ---------------------------------------------------


def test_streams_echo_tcp(loop, tls_certs):
    async def handler(reader, writer):
        data = await reader.readline()
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(
            handler, '127.0.0.1', 0, ssl=tls_certs.server_context())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            'localhost', port, ssl=tls_certs.client_context())
        writer.write(b'hello tls\n')
        assert await reader.read() == b'HELLO TLS\n'
        assert not writer.can_write_eof()
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run_no_leak(loop, main())


def test_protocol_callbacks_and_extra_info(loop, tls_certs):
    async def main():
        server, port, protos = await serve(
            loop, tls_certs, lambda: EchoServer(loop))
        ctx = tls_certs.client_context()
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port, ssl=ctx,
            server_hostname='localhost')
        assert client.events == ['made']
        assert isinstance(transport, asyncio.Transport)
        assert not isinstance(transport, type(protos))  # not a raw transport
        sslobj = transport.get_extra_info('ssl_object')
        assert isinstance(sslobj, ssl.SSLObject)
        assert sslobj.server_hostname == 'localhost'
        peercert = transport.get_extra_info('peercert')
        assert dict(x[0] for x in peercert['subject'])['commonName'] == 'localhost'
        cipher = transport.get_extra_info('cipher')
        assert isinstance(cipher, tuple) and len(cipher) == 3
        assert transport.get_extra_info('compression') is None
        assert transport.get_extra_info('sslcontext') is ctx
        assert transport.get_extra_info('peername') == ('127.0.0.1', port)
        sock = transport.get_extra_info('socket')
        assert sock.fileno() >= 0
        assert sock.getpeername() == ('127.0.0.1', port)
        assert transport.get_extra_info('nope', 42) == 42
        assert not transport.can_write_eof()
        with pytest.raises(NotImplementedError):
            transport.write_eof()

        transport.write(b'ping')
        await client.wait_for_size(4)
        assert bytes(client.data) == b'ping'
        srv = protos[0]
        assert srv.transport.get_extra_info('peercert') is None
        assert srv.transport.get_extra_info('ssl_object').server_side
        transport.close()
        assert transport.is_closing()
        assert await client.done is None
        # (the peer's close_notify may reach eof_received() first)
        assert client.events in (['made', 'data', 'lost'],
                                 ['made', 'data', 'eof', 'lost'])
        # The server saw the close_notify as EOF, then lost the connection.
        await srv.done
        if new_tls_design(loop):
            assert srv.events == ['made', 'data', 'eof', 'lost']
        else:
            # 3.9/3.10's SSLProtocol does not report close_notify as EOF.
            assert srv.events == ['made', 'data', 'lost']
        assert srv.exc is None
        await close_server(server)

    run_no_leak(loop, main())


def test_ssl_true_uses_default_context(loop, tls_certs):
    # ssl=True: a default client context, which does not trust the test CA.
    async def main():
        server, port, _ = await serve(loop, tls_certs)
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(
                lambda: Recorder(loop), 'localhost', port, ssl=True)
        await close_server(server)

    run_coro(loop, main())


def test_unix_tls(loop, tls_certs, sock_dir):
    path = os.path.join(sock_dir, 's')

    async def main():
        protos = []

        def make():
            protos.append(EchoServer(loop))
            return protos[-1]

        server = await loop.create_unix_server(
            make, path, ssl=tls_certs.server_context())
        transport, client = await loop.create_unix_connection(
            lambda: Recorder(loop), path, ssl=tls_certs.client_context(),
            server_hostname='localhost')
        assert transport.get_extra_info('peercert') is not None
        assert transport.get_extra_info('socket').family == socket.AF_UNIX
        transport.write(b'x' * 100000)
        await client.wait_for_size(100000)
        transport.close()
        await client.done
        await close_server(server)

        # streams over a Unix socket
        async def handler(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(
            handler, path, ssl=tls_certs.server_context())
        reader, writer = await asyncio.open_unix_connection(
            path, ssl=tls_certs.client_context(), server_hostname='localhost')
        writer.write(b'unix\n')
        assert await reader.read() == b'unix\n'
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run_no_leak(loop, main())


def test_connect_accepted_socket(loop, tls_certs):
    async def main():
        a, b = socket.socketpair()
        server_tr, server = await asyncio.gather(
            loop.connect_accepted_socket(
                lambda: EchoServer(loop), a, ssl=tls_certs.server_context()),
            loop.create_connection(
                lambda: Recorder(loop), sock=b,
                ssl=tls_certs.client_context(), server_hostname='localhost'))
        transport, client = server
        server_tr, server_proto = server_tr
        assert server_tr.get_extra_info('ssl_object').server_side
        transport.write(b'abc')
        await client.wait_for_size(3)
        assert bytes(client.data) == b'abc'
        transport.close()
        await client.done
        await server_proto.done
        # The transports closed the caller's sockets.
        assert a.fileno() == -1 and b.fileno() == -1

    run_no_leak(loop, main())


def test_connect_accepted_socket_ssl_true(loop):
    async def main():
        a, b = socket.socketpair()
        try:
            with pytest.raises(ValueError,
                               match='Server side SSL needs a valid SSLContext'):
                await loop.connect_accepted_socket(
                    lambda: Recorder(loop), a, ssl=True)
            assert a.fileno() >= 0  # left to its owner
        finally:
            a.close()
            b.close()

    run_coro(loop, main())


# -- large transfers, flow control ---------------------------------------------


def test_large_echo_with_flow_control(loop, tls_certs):
    payload = os.urandom(1024) * (BIG // 1024)

    async def main():
        server, port, protos = await serve(
            loop, tls_certs, lambda: EchoServer(loop))
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        # Writes of 64 KiB: the SSL layer buffers once the raw transport
        # is paused, and pauses the application past its high-water mark.
        view = memoryview(payload)
        for i in range(0, len(payload), 65536):
            transport.write(view[i:i + 65536])
        await client.wait_for_size(len(payload))
        assert bytes(client.data) == payload
        assert client.paused >= 1 and client.resumed >= 1
        transport.close()
        await client.done
        await close_server(server)

    run_coro(loop, main(), timeout=60)


def test_large_streams_both_ways(loop, tls_certs):
    payload = os.urandom(BIG)

    async def handler(reader, writer):
        data = await reader.readexactly(len(payload))
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(
            handler, '127.0.0.1', 0, ssl=tls_certs.server_context())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            '127.0.0.1', port, ssl=tls_certs.client_context(),
            server_hostname='localhost')
        writer.write(payload)
        await writer.drain()
        assert await reader.readexactly(len(payload)) == payload[::-1]
        assert await reader.read() == b''
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run_coro(loop, main(), timeout=60)


def test_buffered_protocol(loop, tls_certs):
    size = 2 * 1024 * 1024

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            # (a memoryview: the stdlib's SSLProtocol slices the buffer it
            # gets, and a bytearray slice would be a copy)
            self.buf = memoryview(bytearray(65536))
            self.received = bytearray()
            self.got_all = loop.create_future()
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            self.received += self.buf[:nbytes]
            if len(self.received) >= size and not self.got_all.done():
                self.got_all.set_result(None)

        def eof_received(self):
            return False

        def connection_lost(self, exc):
            self.done.set_result(exc)

    payload = os.urandom(size)

    async def main():
        server, port, protos = await serve(
            loop, tls_certs, lambda: EchoServer(loop))
        transport, proto = await loop.create_connection(
            Buffered, '127.0.0.1', port, ssl=tls_certs.client_context(),
            server_hostname='localhost')
        transport.write(payload)
        await proto.got_all
        assert bytes(proto.received) == payload
        transport.close()
        assert await proto.done is None
        await close_server(server)

    run_coro(loop, main(), timeout=60)


# -- handshake failures -----------------------------------------------------------


@pytest.mark.parametrize('cert', ['untrusted', 'wrong_host'])
def test_bad_certificate(loop, tls_certs, cert):
    async def main():
        server, port, protos = await serve(
            loop, tls_certs, ssl=tls_certs.server_context(cert))
        made = []
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await loop.create_connection(
                lambda: made.append(1) or Recorder(loop), 'localhost', port,
                ssl=tls_certs.client_context())
        if cert == 'wrong_host':
            text = str(info.value).lower()
            assert 'hostname mismatch' in text or "doesn't match" in text
        # The application protocol was made, never connected.
        assert made == [1]
        await close_server(server)

    run_no_leak(loop, main())


def test_streams_bad_certificate(loop, tls_certs):
    async def main():
        server = await asyncio.start_server(
            lambda r, w: w.close(), '127.0.0.1', 0,
            ssl=tls_certs.server_context('untrusted'))
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                '127.0.0.1', port, ssl=tls_certs.client_context(),
                server_hostname='localhost')
        await close_server(server)

    run_coro(loop, main())


def test_handshake_timeout(loop, tls_certs):
    # The peer accepts and never answers the ClientHello.
    async def main():
        listener = socket.create_server(('127.0.0.1', 0))
        port = listener.getsockname()[1]
        try:
            with pytest.raises(ConnectionAbortedError,
                               match='SSL handshake is taking longer than 0.2 seconds'):
                await loop.create_connection(
                    lambda: Recorder(loop), '127.0.0.1', port,
                    ssl=tls_certs.client_context(),
                    server_hostname='localhost', ssl_handshake_timeout=0.2)
        finally:
            listener.close()

    run_no_leak(loop, main())


@pytest.mark.parametrize('unix', [False, True])
def test_cancelled_during_handshake(loop, tls_certs, sock_dir, unix):
    # Cancelled while the peer keeps quiet: the socket is closed, nothing
    # leaks, the application protocol is never connected.
    async def main():
        if unix:
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(os.path.join(sock_dir, 'q'))
            listener.listen()
        else:
            listener = socket.create_server(('127.0.0.1', 0))
        protos = []

        def make():
            protos.append(Recorder(loop))
            return protos[-1]

        with listener:
            if unix:
                coro = loop.create_unix_connection(
                    make, listener.getsockname(),
                    ssl=tls_certs.client_context(), server_hostname='localhost')
            else:
                coro = loop.create_connection(
                    make, *listener.getsockname(),
                    ssl=tls_certs.client_context(), server_hostname='localhost')
            task = loop.create_task(coro)
            await until(lambda: protos)  # connected: the handshake waits
            assert len(protos) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(5):
                await asyncio.sleep(0)
            assert protos[0].events == []

    run_no_leak(loop, main())


def test_handshake_peer_closes(loop, tls_certs):
    # The peer closes during the handshake: ConnectionResetError.
    async def main():
        server = await loop.create_server(
            lambda: Recorder(loop), '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]

        class Closer(asyncio.Protocol):
            def connection_made(self, transport):
                transport.close()

        server2 = await loop.create_server(Closer, '127.0.0.1', 0)
        port = server2.sockets[0].getsockname()[1]
        with pytest.raises(ConnectionResetError):
            await loop.create_connection(
                lambda: Recorder(loop), '127.0.0.1', port,
                ssl=tls_certs.client_context(), server_hostname='localhost')
        await close_server(server)
        await close_server(server2)

    run_coro(loop, main())


def test_server_side_handshake_failure_is_quiet(loop, tls_certs):
    # A client failing the handshake is not reported outside debug mode,
    # and the server goes on serving.
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def main():
        server, port, protos = await serve(loop, tls_certs)
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(
                lambda: Recorder(loop), '127.0.0.1', port,
                ssl=tls_certs.client_context(), server_hostname='other')
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        transport.close()
        await client.done
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(protos) == 2
        # The failed connection's application protocol was never connected.
        assert protos[0].events == []
        await close_server(server)

    run_coro(loop, main())
    assert errors == []


# -- argument errors ---------------------------------------------------------------


def test_server_hostname_errors(loop, tls_certs, sock_dir):
    ctx = tls_certs.client_context()

    async def main():
        with pytest.raises(ValueError, match='server_hostname is only meaningful with ssl'):
            await loop.create_connection(
                asyncio.Protocol, '127.0.0.1', 1, server_hostname='x')
        with pytest.raises(ValueError, match='You must set server_hostname when using ssl without a host'):
            await loop.create_connection(asyncio.Protocol, port=1, ssl=ctx)
        a, b = socket.socketpair()
        with a, b:
            with pytest.raises(ValueError, match='You must set server_hostname'):
                await loop.create_connection(asyncio.Protocol, sock=a, ssl=ctx)
            assert a.fileno() >= 0
        with pytest.raises(ValueError, match='you have to pass server_hostname when using ssl'):
            await loop.create_unix_connection(
                asyncio.Protocol, os.path.join(sock_dir, 'x'), ssl=ctx)
        with pytest.raises(ValueError, match='server_hostname is only meaningful with ssl'):
            await loop.create_unix_connection(
                asyncio.Protocol, os.path.join(sock_dir, 'x'),
                server_hostname='x')

    run_coro(loop, main())


def test_server_ssl_argument_errors(loop, sock_dir):
    async def main():
        with pytest.raises(TypeError, match='ssl argument must be an SSLContext or None'):
            await loop.create_server(asyncio.Protocol, '127.0.0.1', 0, ssl=True)
        with pytest.raises(TypeError, match='ssl argument must be an SSLContext or None'):
            await loop.create_unix_server(
                asyncio.Protocol, os.path.join(sock_dir, 's'), ssl=False)
        with pytest.raises(ValueError, match='ssl_handshake_timeout is only meaningful with ssl'):
            await loop.create_server(asyncio.Protocol, '127.0.0.1', 0,
                                     ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match='ssl_handshake_timeout is only meaningful with ssl'):
            await loop.connect_accepted_socket(
                asyncio.Protocol, socket.socket(), ssl_handshake_timeout=1)
        if PY311:
            with pytest.raises(ValueError, match='ssl_shutdown_timeout is only meaningful with ssl'):
                await loop.create_server(asyncio.Protocol, '127.0.0.1', 0,
                                         ssl_shutdown_timeout=1)
            with pytest.raises(ValueError, match='ssl_shutdown_timeout is only meaningful with ssl'):
                await loop.create_connection(asyncio.Protocol, '127.0.0.1', 1,
                                             ssl_shutdown_timeout=1)
        else:
            with pytest.raises(TypeError):
                await loop.create_server(asyncio.Protocol, '127.0.0.1', 0,
                                         ssl_shutdown_timeout=1)

    run_coro(loop, main())


@pytest.mark.parametrize('kind', ['handshake', 'shutdown'])
@pytest.mark.parametrize('value', [0, -1])
def test_timeout_values(loop, tls_certs, kind, value):
    if kind == 'shutdown' and not PY311:
        pytest.skip('ssl_shutdown_timeout is 3.11+')
    name = f'ssl_{kind}_timeout'

    async def main():
        # Checked when the TLS layer is made: after connecting.
        server, port, _ = await serve(loop, tls_certs)
        with pytest.raises(ValueError,
                           match=f'{name} should be a positive number, got {value}'):
            await loop.create_connection(
                lambda: Recorder(loop), '127.0.0.1', port,
                ssl=tls_certs.client_context(), server_hostname='localhost',
                **{name: value})
        listener = socket.create_server(('127.0.0.1', 0))
        with listener:
            with pytest.raises(ConnectionRefusedError):
                # Nothing listens at port 1: the connect fails first.
                await loop.create_connection(
                    lambda: Recorder(loop), '127.0.0.1', 1,
                    ssl=tls_certs.client_context(),
                    server_hostname='localhost', **{name: value})
        await close_server(server)

    run_no_leak(loop, main())


# -- closing ------------------------------------------------------------------------


def test_abort(loop, tls_certs):
    async def main():
        server, port, protos = await serve(loop, tls_certs)
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        await protos[0].made
        transport.abort()
        assert transport.is_closing()
        assert await client.done is None
        assert client.events == ['made', 'lost']
        # No close_notify: the server only lost its connection.
        await protos[0].done
        assert 'lost' in protos[0].events
        await close_server(server)

    run_coro(loop, main())


def test_close_stops_delivery_at_once(loop, tls_certs):
    chunk = b'z' * 65536

    class Sender(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            for _ in range(64):
                transport.write(chunk)

    class Closer(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.calls = getattr(self, 'calls', 0) + 1
            self.transport.close()

    async def main():
        server, port, protos = await serve(loop, tls_certs, lambda: Sender(loop))
        transport, client = await loop.create_connection(
            lambda: Closer(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        await client.done
        if new_tls_design(loop):
            assert client.calls == 1
        else:
            # 3.9/3.10's SSLProtocol delivers the rest of what it decrypted.
            assert client.calls >= 1
        assert client.events == ['made', 'data', 'lost']
        await close_server(server)

    run_coro(loop, main())


@needs_311
def test_shutdown_timeout(loop, tls_certs):
    # The peer completes the handshake, then never answers close_notify.
    listener = socket.create_server(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    release = threading.Event()
    ctx = tls_certs.server_context()

    def peer():
        conn, _ = listener.accept()
        with conn:
            with ctx.wrap_socket(conn, server_side=True):
                release.wait(TIMEOUT)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()

    async def main():
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost',
            ssl_shutdown_timeout=0.3)
        transport.close()
        exc = await client.done
        assert isinstance(exc, asyncio.TimeoutError)
        assert str(exc) == 'SSL shutdown timed out'
        assert client.events == ['made', 'lost']
        release.set()
        thread.join(TIMEOUT)  # (the peer's socket closed before the fd count)

    try:
        run_no_leak(loop, main())
    finally:
        release.set()
        thread.join(TIMEOUT)
        listener.close()


def test_peer_aborts_mid_stream(loop, tls_certs):
    class Resetter(Recorder):
        def data_received(self, data):
            super().data_received(data)
            # An RST, not a FIN: SO_LINGER 0, then abort.
            sock = self.transport.get_extra_info('socket')
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b'\x01\x00\x00\x00\x00\x00\x00\x00')
            self.transport.abort()

    async def main():
        server, port, protos = await serve(loop, tls_certs, lambda: Resetter(loop))
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        transport.write(b'go')
        exc = await client.done
        assert isinstance(exc, ConnectionResetError)
        assert client.events == ['made', 'lost']
        await close_server(server)

    run_coro(loop, main())


def test_peer_closes_without_close_notify(loop, tls_certs):
    # A raw FIN (the peer's transport aborted without TLS shutdown): the
    # application sees EOF, then connection_lost.
    class Aborter(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.transport.abort()

    async def main():
        server, port, protos = await serve(loop, tls_certs, lambda: Aborter(loop))
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        transport.write(b'go')
        await client.done
        assert client.events[0] == 'made' and client.events[-1] == 'lost'
        assert client.events.count('lost') == 1
        await close_server(server)

    run_coro(loop, main())


def test_write_eof_not_supported(loop, tls_certs):
    async def main():
        server, port, protos = await serve(loop, tls_certs)
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        assert transport.can_write_eof() is False
        with pytest.raises(NotImplementedError):
            transport.write_eof()
        # The connection still works.
        transport.write(b'after')
        await protos[0].wait_for_size(5)
        transport.close()
        await client.done
        await close_server(server)

    run_coro(loop, main())


# -- start_tls -------------------------------------------------------------------


class Plain(Recorder):
    """Plaintext until upgraded; keeps what it received per phase."""


def test_start_tls_both_sides(loop, tls_certs):
    async def upgrade_server(proto, done):
        try:
            tr = await loop.start_tls(proto.transport, proto,
                                      tls_certs.server_context(),
                                      server_side=True)
            proto.transport = tr
            proto.data.clear()
            done.set_result(tr)
        except BaseException as exc:
            done.set_exception(exc)

    class Server(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if bytes(self.data) == b'STARTTLS\n':
                self.transport.write(b'OK\n')
                # Nothing more may be read until the TLS layer is in.
                self.transport.pause_reading()
                self.upgraded = loop.create_future()
                loop.create_task(upgrade_server(self, self.upgraded))
            elif hasattr(self, 'upgraded') and self.upgraded.done():
                self.transport.write(bytes(self.data).upper())
                self.data.clear()

    async def main():
        protos = []
        server = await loop.create_server(
            lambda: protos.append(Server(loop)) or protos[-1], '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: Plain(loop), '127.0.0.1', port)
        transport.write(b'STARTTLS\n')
        await client.wait_for_size(3)
        assert bytes(client.data) == b'OK\n'
        client.data.clear()
        ctx = tls_certs.client_context()
        tls = await loop.start_tls(transport, client, ctx,
                                   server_hostname='localhost')
        assert tls is not transport
        assert tls.get_extra_info('sslcontext') is ctx
        assert tls.get_extra_info('peercert') is not None
        assert client.events == ['made', 'data']  # no second connection_made
        assert transport.get_protocol() is not client  # the SSL protocol
        srv_tls = await protos[0].upgraded
        assert srv_tls.get_extra_info('ssl_object').server_side
        tls.write(b'secret')
        await client.wait_for_size(6)
        assert bytes(client.data) == b'SECRET'
        tls.close()
        await client.done
        await protos[0].done
        await close_server(server)

    run_no_leak(loop, main())


def test_start_tls_data_right_after_upgrade(loop, tls_certs):
    # The client starts TLS at once: its ClientHello is there before the
    # server's start_tls() runs; it must reach the TLS layer.
    class Server(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            if PY311:
                # (3.9/3.10's stdlib transports ignore a pause_reading()
                # in connection_made(); start_tls() pauses in time anyway)
                transport.pause_reading()
            self.upgraded = loop.create_task(loop.start_tls(
                transport, self, tls_certs.server_context(), server_side=True))

    async def main():
        protos = []
        server = await loop.create_server(
            lambda: protos.append(Server(loop)) or protos[-1], '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        srv_tls = await protos[0].upgraded
        srv_tls.write(b'hello')
        await client.wait_for_size(5)
        transport.write(b'world')
        await protos[0].wait_for_size(5)
        assert bytes(protos[0].data) == b'world'
        transport.close()
        await client.done
        await close_server(server)

    run_coro(loop, main())


def test_start_tls_wrong_arguments(loop, tls_certs):
    async def main():
        server = await loop.create_server(
            lambda: Recorder(loop), '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port)
        with pytest.raises(TypeError, match='sslcontext is expected to be an instance of ssl.SSLContext'):
            await loop.start_tls(transport, client, object())
        with pytest.raises(TypeError, match='sslcontext is expected'):
            await loop.start_tls(transport, client, None)
        with pytest.raises(TypeError, match='is not supported by start_tls'):
            await loop.start_tls(object(), client, tls_certs.client_context())
        with pytest.raises(ValueError, match='ssl_handshake_timeout should be a positive number'):
            await loop.start_tls(transport, client, tls_certs.client_context(),
                                 ssl_handshake_timeout=0)
        # Nothing was changed.
        assert transport.get_protocol() is client
        assert transport.is_reading()
        transport.close()
        await client.done
        await close_server(server)

    run_coro(loop, main())


def test_start_tls_pipe_not_supported(loop, tls_certs):
    async def main():
        r, w = os.pipe()
        rfile = open(r, 'rb', buffering=0)
        try:
            transport, proto = await loop.connect_read_pipe(
                lambda: Recorder(loop), rfile)
            assert not getattr(transport, '_start_tls_compatible', False)
            with pytest.raises(TypeError, match='is not supported by start_tls'):
                await loop.start_tls(transport, proto,
                                     tls_certs.client_context())
            transport.close()
            await proto.done
        finally:
            os.close(w)

    run_coro(loop, main())


def test_start_tls_closing_transport(loop, tls_certs):
    # The stdlib does not check is_closing(): the upgrade fails once the
    # connection is gone, with the handshake's error.
    async def main():
        server = await loop.create_server(
            lambda: Recorder(loop), '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port)
        transport.close()
        assert transport.is_closing()
        try:
            result = await loop.start_tls(
                transport, client, tls_certs.client_context(),
                server_hostname='localhost', ssl_handshake_timeout=5)
        except (ConnectionError, OSError) as exc:
            result = type(exc)
        await close_server(server)
        return result

    result = run_coro(loop, main())
    # The stdlib's SSLProtocol completes the waiter from connection_lost():
    # with no exception, start_tls returns the (then dropped) transport.
    assert result is None or result is ConnectionResetError


def test_start_tls_cancelled(loop, tls_certs):
    # Cancelled while the handshake waits: the transport is closed.
    async def main():
        listener = socket.create_server(('127.0.0.1', 0))
        port = listener.getsockname()[1]
        with listener:
            transport, client = await loop.create_connection(
                lambda: Recorder(loop), '127.0.0.1', port)
            task = loop.create_task(loop.start_tls(
                transport, client, tls_certs.client_context(),
                server_hostname='localhost'))
            # start_tls() has put its SSL protocol in place: it waits for
            # the handshake, which the silent peer never answers
            await until(lambda: transport.get_protocol() is not client)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert transport.is_closing()
            for _ in range(5):
                await asyncio.sleep(0)

    run_no_leak(loop, main())


def test_tls_in_tls(loop, tls_certs):
    async def main():
        inner = {}

        class Outer(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                if SSL_TRANSPORT_START_TLS:
                    inner['server'] = loop.create_task(loop.start_tls(
                        transport, self, tls_certs.server_context(),
                        server_side=True))

        server, port, protos = await serve(loop, tls_certs, lambda: Outer(loop))
        transport, client = await loop.create_connection(
            lambda: Recorder(loop), '127.0.0.1', port,
            ssl=tls_certs.client_context(), server_hostname='localhost')
        compatible = getattr(transport, '_start_tls_compatible', False)
        assert compatible is SSL_TRANSPORT_START_TLS
        if not SSL_TRANSPORT_START_TLS:
            with pytest.raises(TypeError, match='is not supported by start_tls'):
                await loop.start_tls(transport, client,
                                     tls_certs.client_context())
        else:
            tls2 = await loop.start_tls(transport, client,
                                        tls_certs.client_context(),
                                        server_hostname='localhost')
            srv2 = await inner['server']
            tls2.write(b'inner')
            await protos[0].wait_for_size(5)
            assert bytes(protos[0].data) == b'inner'
            srv2.write(b'back')
            await client.wait_for_size(4)
            assert bytes(client.data) == b'back'
            transport = tls2
        transport.close()
        await client.done
        await close_server(server)

    run_coro(loop, main())


@needs_311
def test_stream_writer_start_tls(loop, tls_certs):
    async def handler(reader, writer):
        assert await reader.readline() == b'STARTTLS\n'
        writer.write(b'OK\n')
        await writer.drain()
        await writer.start_tls(tls_certs.server_context())
        assert writer.get_extra_info('ssl_object').server_side
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(b'STARTTLS\n')
        assert await reader.readline() == b'OK\n'
        await writer.start_tls(tls_certs.client_context(),
                               server_hostname='localhost')
        assert writer.get_extra_info('peercert') is not None
        writer.write(b'over tls\n')
        assert await reader.readline() == b'OVER TLS\n'
        assert await reader.read() == b''
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run_no_leak(loop, main())


def test_start_tls_is_implemented(loop):
    assert inspect.iscoroutinefunction(loop.start_tls)
