"""ResourceWarning("unclosed transport ...") for socket and datagram
transports that are garbage-collected unclosed, checked against the stdlib
loop (its _SelectorTransport.__del__ warns and closes the socket; 3.13+
also tells the server the connection is gone).

When the stdlib warns: its selector keeps a transport alive while a reader
or writer is registered (reading, or data waiting to be written), so such
a transport is only collected once the loop is closed; a transport that
does neither (paused, nothing buffered) is collected as soon as nothing
else refers to it, loop running or not. The pipe transports' warning is
tested in test_pipes.py, the TLS transport's in test_tls.py.
"""

import asyncio
import gc
import os
import shutil
import socket
import sys
import tempfile
import warnings
import weakref

import pytest

from support import fd_count, run_coro, until

HOST = "127.0.0.1"
TIMEOUT = 10


def baseline(loop_factory):
    """fd_count() once a loop of the kind was made (libuv makes a pipe for
    its signal handling the first time, and keeps it)."""
    loop_factory().close()
    collect()
    return fd_count()


def collect():
    """gc.collect(), silencing what objects of earlier tests say."""
    old = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    finally:
        sys.unraisablehook = old


class Recorder:
    """Records the 'unclosed transport' ResourceWarnings of a block."""

    def __enter__(self):
        self._cm = warnings.catch_warnings(record=True)
        self.caught = self._cm.__enter__()
        warnings.simplefilter("always", ResourceWarning)
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)

    def check_one(self):
        """Exactly one warning, whose source is a transport. (The warning
        keeps its source alive; a weak reference to a transport collected
        in a cycle was cleared before its finalizer ran, so the two cannot
        be compared.)"""
        assert len(self.unclosed) == 1, [str(w.message) for w in self.caught]
        source = self.unclosed[0].source
        assert isinstance(source, asyncio.BaseTransport), source

    @property
    def unclosed(self):
        return [w for w in self.caught
                if issubclass(w.category, ResourceWarning)
                and str(w.message).startswith("unclosed transport <")]


@pytest.fixture(autouse=True)
def no_automatic_gc():
    """Transports are collected where the tests say (gc.collect() inside a
    Recorder), not by an automatic collection earlier."""
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix="ol-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Proto(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.data = bytearray()
        self.got = None

    def connection_made(self, tr):
        self.transport = tr

    def data_received(self, data):
        self.data += data
        if self.got is not None and not self.got.done():
            self.got.set_result(None)


def listening(family=socket.AF_INET, path=None):
    if family == socket.AF_UNIX:
        lsock = socket.socket(socket.AF_UNIX)
        lsock.bind(path)
    else:
        lsock = socket.socket()
        lsock.bind((HOST, 0))
    lsock.listen(5)
    return lsock


def connect_unclosed(loop, lsock, **kw):
    """A transport connected to lsock, left open; returns (a weak reference
    to it, the accepted peer socket)."""
    async def main():
        if lsock.family == socket.AF_UNIX:
            tr, proto = await loop.create_unix_connection(
                Proto, lsock.getsockname(), **kw)
        else:
            tr, proto = await loop.create_connection(
                Proto, *lsock.getsockname(), **kw)
        return weakref.ref(tr)

    ref = run_coro(loop, main())
    peer, _ = lsock.accept()
    return ref, peer


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_unclosed_after_loop_close(loop_factory, family, sock_dir):
    # A reading transport lives as long as its loop; once the loop is
    # closed and nothing refers to it, it warns and its socket is closed
    # (the peer sees EOF).
    before = baseline(loop_factory)
    path = os.path.join(sock_dir, "s")
    lsock = listening(socket.AF_UNIX if family == "unix" else socket.AF_INET, path)
    loop = loop_factory()
    try:
        ref, peer = connect_unclosed(loop, lsock)
        collect()
        assert ref() is not None
    finally:
        loop.close()
    with Recorder() as rec:
        gc.collect()
    rec.check_one()
    peer.settimeout(TIMEOUT)
    assert peer.recv(10) == b""
    peer.close()
    lsock.close()
    assert fd_count() == before


def test_unclosed_sock_argument_is_closed(loop_factory):
    # create_connection(sock=...): the caller's socket object is closed by
    # the warning transport's finalizer.
    lsock = listening()
    loop = loop_factory()
    sock = socket.create_connection(lsock.getsockname())
    peer, _ = lsock.accept()
    try:
        async def main():
            tr, _ = await loop.create_connection(Proto, sock=sock)
            return weakref.ref(tr)

        run_coro(loop, main())
    finally:
        loop.close()
    with Recorder() as rec:
        gc.collect()
    rec.check_one()
    assert sock.fileno() == -1
    peer.settimeout(TIMEOUT)
    assert peer.recv(10) == b""
    peer.close()
    lsock.close()


def test_closing_transport_at_loop_close_warns(loop_factory):
    # close() was called but the loop was closed before connection_lost()
    # could run: the socket is still the transport's, as with the stdlib.
    lsock = listening()
    loop = loop_factory()
    try:
        ref, peer = connect_unclosed(loop, lsock)
        ref().close()
    finally:
        loop.close()
    with Recorder() as rec:
        gc.collect()
    rec.check_one()
    peer.close()
    lsock.close()


def test_closed_transport_does_not_warn(loop):
    lsock = listening()

    async def main():
        tr, proto = await loop.create_connection(Proto, *lsock.getsockname())
        lost = loop.create_future()
        proto.connection_lost = lambda exc: lost.set_result(exc)
        tr.close()
        await lost
        return weakref.ref(tr)

    collect()
    with Recorder() as rec:
        ref = run_coro(loop, main())
        gc.collect()
    assert ref() is None
    assert rec.unclosed == []
    lsock.close()


def test_reading_transport_is_kept_alive(loop):
    # While it reads, the loop keeps the transport and its protocol alive
    # (as the stdlib's selector does): no warning, data still delivered.
    lsock = listening()

    async def main():
        tr, proto = await loop.create_connection(Proto, *lsock.getsockname())
        peer, _ = lsock.accept()
        proto.got = got = loop.create_future()
        ref = weakref.ref(tr)
        del tr, proto
        with Recorder() as rec:
            gc.collect()
            await asyncio.sleep(0)
            gc.collect()
        assert rec.unclosed == []
        assert ref() is not None
        peer.sendall(b"ping")
        await got
        assert bytes(ref().get_protocol().data) == b"ping"
        ref().close()
        peer.close()

    run_coro(loop, main())
    lsock.close()


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_paused_transport_collected_while_running(loop, family, sock_dir):
    # Paused and with nothing to write, nothing in the loop refers to the
    # transport: once the user drops it, it warns at once and closes its
    # socket, while the loop runs.
    path = os.path.join(sock_dir, "s")
    lsock = listening(socket.AF_UNIX if family == "unix" else socket.AF_INET, path)
    collect()

    async def main():
        if family == "unix":
            tr, proto = await loop.create_unix_connection(Proto, path)
        else:
            tr, proto = await loop.create_connection(Proto, *lsock.getsockname())
        peer, _ = lsock.accept()
        tr.write(b"sent")
        tr.pause_reading()
        await asyncio.sleep(0)
        del tr, proto
        with Recorder() as rec:
            gc.collect()
        rec.check_one()
        peer.setblocking(False)
        data = b""
        while True:
            chunk = await loop.sock_recv(peer, 100)
            if not chunk:
                break
            data += chunk
        peer.close()
        return data

    assert run_coro(loop, main()) == b"sent"
    lsock.close()


def test_paused_server_transport_collected(loop, loop_kind):
    # An accepted connection collected unclosed: the server stops counting
    # it (3.13's __del__), so wait_closed() returns.
    if loop_kind == "asyncio" and sys.version_info < (3, 13):
        pytest.skip("the stdlib server before 3.13 keeps counting it: "
                    "wait_closed() never returns")
    collect()
    made = []

    class Server(asyncio.Protocol):
        def connection_made(self, tr):
            self.transport = tr  # (a cycle: only gc.collect() frees it)
            tr.pause_reading()
            made.append(weakref.ref(tr))

    async def main():
        server = await loop.create_server(Server, HOST, 0)
        tr, _ = await loop.create_connection(Proto, *server.sockets[0].getsockname())
        await until(lambda: made)
        await asyncio.sleep(0)
        with Recorder() as rec:
            gc.collect()
        rec.check_one()
        server.close()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
        tr.close()

    run_coro(loop, main())


def test_datagram_unclosed_after_loop_close(loop_factory):
    before = baseline(loop_factory)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((HOST, 0))
    loop = loop_factory()
    try:
        async def main():
            tr, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=receiver.getsockname())
            return weakref.ref(tr)

        ref = run_coro(loop, main())
        collect()
        assert ref() is not None
    finally:
        # (No cycle: the transport may go with the loop's last reference.)
        with Recorder() as rec:
            loop.close()
            gc.collect()
    rec.check_one()
    receiver.close()
    assert fd_count() == before


def test_datagram_unix_unclosed_after_loop_close(loop_factory, sock_dir):
    before = baseline(loop_factory)
    loop = loop_factory()
    try:
        async def main():
            tr, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=os.path.join(sock_dir, "d"),
                family=socket.AF_UNIX)
            return weakref.ref(tr)

        run_coro(loop, main())
    finally:
        with Recorder() as rec:
            loop.close()
            gc.collect()
    rec.check_one()
    assert fd_count() == before


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="datagram transports pause reading from 3.11")
def test_paused_datagram_collected_while_running(loop):
    collect()

    async def main():
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(HOST, 0))
        tr.pause_reading()
        await asyncio.sleep(0)
        with Recorder() as rec:
            del tr
            gc.collect()
        rec.check_one()

    run_coro(loop, main())


@pytest.mark.parametrize("method", ["close", "abort"])
@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_close_on_closed_loop(loop_factory, method, kind):
    # close()/abort() once the loop is closed: the transport is marked
    # closing, the stdlib's call_soon() raises, the socket stays the
    # transport's (the finalizer warns and closes it), and a second call
    # does nothing.
    lsock = listening()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((HOST, 0))
    loop = loop_factory()
    try:
        async def main():
            if kind == "tcp":
                tr, _ = await loop.create_connection(Proto, *lsock.getsockname())
            else:
                tr, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=receiver.getsockname())
            return tr

        tr = run_coro(loop, main())
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        getattr(tr, method)()
    assert tr.is_closing()
    tr.close()
    tr.abort()
    assert "fd=" in repr(tr)
    with Recorder() as rec:
        del tr
        gc.collect()
    rec.check_one()
    lsock.close()
    receiver.close()
