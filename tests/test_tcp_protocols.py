"""TCP transports and protocols (loop.create_server / loop.create_connection),
checked against the stdlib loop's behaviour.
"""

import asyncio
import logging
import socket
import struct

import pytest

from support import quiet_period, run_coro, until

HOST = "127.0.0.1"
TIMEOUT = 10


class Recorder(asyncio.Protocol):
    """Records the protocol callbacks in order."""

    def __init__(self, loop, eof_result=None, echo=False):
        self.loop = loop
        self.eof_result = eof_result
        self.echo = echo
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.lost_calls = 0
        self.waiters = []  # (nbytes, future)

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        assert isinstance(data, bytes) and data, data
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data.extend(data)
        if self.echo:
            self.transport.write(data)
        for n, fut in self.waiters:
            if len(self.data) >= n and not fut.done():
                fut.set_result(None)

    def wait_bytes(self, n):
        fut = self.loop.create_future()
        if len(self.data) >= n:
            fut.set_result(None)
        self.waiters.append((n, fut))
        return fut

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)
        return self.eof_result

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.events.append(("lost", exc))
        if not self.lost.done():
            self.lost.set_result(exc)


async def serve(loop, factory):
    """Start a server; return (server, port, list of server protocols)."""
    protos = []

    def make():
        p = factory()
        protos.append(p)
        return p

    server = await loop.create_server(make, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, protos


async def shutdown(server):
    server.close()
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)



def test_callback_order_and_single_connection_lost(loop):
    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop, echo=True))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            assert cp.transport is tr
            tr.write(b"ping")
            await cp.wait_bytes(4)
            tr.write_eof()
            # server: eof_received returns None -> the loop closes it -> the
            # client sees EOF, also returns None -> client closed too
            await asyncio.wait_for(cp.lost, TIMEOUT)
            sp = sprotos[0]
            await asyncio.wait_for(sp.lost, TIMEOUT)
            await quiet_period()  # no second connection_lost
            return cp, sp
        finally:
            await shutdown(server)

    cp, sp = run_coro(loop, main())
    assert bytes(cp.data) == b"ping"
    assert bytes(sp.data) == b"ping"
    assert sp.events == ["made", "data", "eof", ("lost", None)]
    assert cp.events == ["made", "data", "eof", ("lost", None)]
    assert cp.lost_calls == 1 and sp.lost_calls == 1
    assert cp.transport.is_closing() and sp.transport.is_closing()


def test_eof_received_true_keeps_transport_open(loop):
    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop, eof_result=True))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            assert tr.can_write_eof() is True
            tr.write(b"request")
            tr.write_eof()
            with pytest.raises(RuntimeError):
                tr.write(b"more")  # write() after write_eof() is an error
            sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
            await asyncio.wait_for(sp.eof, TIMEOUT)
            await quiet_period()  # nothing closes it
            # still open: eof_received returned True
            assert not sp.transport.is_closing()
            assert not sp.lost.done()
            sp.transport.write(b"reply after eof")
            await cp.wait_bytes(len(b"reply after eof"))
            sp.transport.close()
            await asyncio.wait_for(cp.lost, TIMEOUT)
            await asyncio.wait_for(sp.lost, TIMEOUT)
            return cp, sp
        finally:
            await shutdown(server)

    cp, sp = run_coro(loop, main())
    assert bytes(sp.data) == b"request"
    assert bytes(cp.data) == b"reply after eof"
    assert sp.events == ["made", "data", "eof", ("lost", None)]
    assert cp.events == ["made", "data", "eof", ("lost", None)]


async def _first(protos):
    await until(lambda: protos)
    await protos[0].made
    return protos[0]


def test_flow_control_write_and_read(loop):
    high, low = 64 * 1024, 16 * 1024
    chunk = b"x" * 65536

    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
            assert sp.transport.is_reading() is True
            sp.transport.pause_reading()
            sp.transport.pause_reading()  # idempotent
            assert sp.transport.is_reading() is False

            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(high=10, low=20)
            tr.set_write_buffer_limits(high=high, low=low)
            assert tr.get_write_buffer_limits() == (low, high)
            assert tr.get_write_buffer_size() == 0

            sent = 0
            while "pause_writing" not in cp.events and sent < 256 * 1024 * 1024:
                tr.write(chunk)
                sent += len(chunk)
                await asyncio.sleep(0)
            assert "pause_writing" in cp.events
            buffered = tr.get_write_buffer_size()
            await quiet_period()  # the server reads nothing while paused
            got_while_paused = len(sp.data)

            sp.transport.resume_reading()
            assert sp.transport.is_reading() is True
            await asyncio.wait_for(sp.wait_bytes(sent), TIMEOUT)
            # the client learns that its last write completed (maybe in a
            # later iteration than the one where the server read it)
            await until(lambda: tr.get_write_buffer_size() == 0)
            final_size = tr.get_write_buffer_size()
            tr.close()
            await asyncio.wait_for(cp.lost, TIMEOUT)
            return sent, buffered, got_while_paused, final_size, cp, sp
        finally:
            await shutdown(server)

    sent, buffered, got_while_paused, final_size, cp, sp = run_coro(loop, main())
    assert buffered > high
    assert got_while_paused == 0
    assert len(sp.data) == sent
    assert final_size == 0
    flow = [e for e in cp.events if e in ("pause_writing", "resume_writing")]
    assert flow == ["pause_writing", "resume_writing"]


def _close_or_abort(loop, how):
    total = 16 * 1024 * 1024

    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
            sp.transport.pause_reading()
            tr.write(b"a" * total)
            pending = tr.get_write_buffer_size()
            getattr(tr, how)()
            assert tr.is_closing()
            if how == "abort":
                # connection_lost comes without the drain
                await asyncio.wait_for(asyncio.shield(cp.lost), TIMEOUT)
            else:
                await quiet_period()  # close() waits for the drain: not yet
            lost_before_drain = cp.lost.done()
            sp.transport.resume_reading()
            await asyncio.wait_for(sp.lost, TIMEOUT)
            await asyncio.wait_for(cp.lost, TIMEOUT)
            return pending, lost_before_drain, cp, sp
        finally:
            await shutdown(server)

    return total, run_coro(loop, main())


def test_close_flushes_pending_data(loop):
    total, (pending, lost_before_drain, cp, sp) = _close_or_abort(loop, "close")
    assert pending > 0
    assert lost_before_drain is False  # connection_lost waits for the flush
    assert len(sp.data) == total
    assert sp.events[-2:] == ["eof", ("lost", None)]
    # 16 MiB exceeds the default high-water mark; the buffer drains after close
    assert cp.events == ["made", "pause_writing", "resume_writing", ("lost", None)]


def test_abort_drops_pending_data(loop):
    total, (pending, lost_before_drain, cp, sp) = _close_or_abort(loop, "abort")
    assert pending > 0
    assert lost_before_drain is True  # immediate
    assert len(sp.data) < total
    # the dropped buffer never drains: no resume_writing
    assert cp.events == ["made", "pause_writing", ("lost", None)]
    assert sp.lost_calls == 1


def test_writes_after_close_ignored_then_warned(loop, caplog):
    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            tr.close()
            counts = []
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                for _ in range(7):
                    tr.write(b"ignored")  # must not raise
                    counts.append(
                        sum(
                            1
                            for r in caplog.records
                            if r.name == "asyncio"
                            and "socket.send() raised exception" in r.getMessage()
                        )
                    )
            await asyncio.wait_for(cp.lost, TIMEOUT)
            sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
            await asyncio.wait_for(sp.lost, TIMEOUT)
            return counts, sp
        finally:
            await shutdown(server)

    counts, sp = run_coro(loop, main())
    assert bytes(sp.data) == b""
    # close() counts as the first lost write; from the 5th write on, each
    # write logs "socket.send() raised exception." on the asyncio logger.
    assert counts == [0, 0, 0, 0, 1, 2, 3]


def test_transport_extra_info_and_types(loop):
    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
            st = sp.transport
            out = {}
            for name, t in (("client", tr), ("server", st)):
                sock = t.get_extra_info("socket")
                out[name] = dict(
                    transport=t,
                    sock=sock,
                    sockname=t.get_extra_info("sockname"),
                    peername=t.get_extra_info("peername"),
                    nodelay=sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                    family=sock.family,
                    type=sock.type,
                    missing=t.get_extra_info("nope", 42),
                    fileno=sock.fileno(),
                )
            tr.close()
            await asyncio.wait_for(sp.lost, TIMEOUT)
            return port, out
        finally:
            await shutdown(server)

    port, out = run_coro(loop, main())
    c, s = out["client"], out["server"]
    for d in (c, s):
        assert isinstance(d["transport"], asyncio.Transport)
        assert isinstance(d["transport"], asyncio.ReadTransport)
        assert isinstance(d["transport"], asyncio.WriteTransport)
        assert isinstance(d["sock"], asyncio.trsock.TransportSocket)
        assert d["nodelay"] != 0
        assert d["family"] == socket.AF_INET
        assert d["type"] == socket.SOCK_STREAM
        assert d["missing"] == 42
    assert c["peername"] == (HOST, port)
    assert s["sockname"] == (HOST, port)
    assert c["sockname"] == s["peername"]
    assert c["fileno"] >= 0 and s["fileno"] >= 0
    assert c["fileno"] != s["fileno"]
    # after close the TransportSocket reports fd -1
    assert c["sock"].fileno() == -1


def test_set_protocol_get_protocol(loop):
    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop))
        try:
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
            assert sp.transport.get_protocol() is sp
            assert tr.get_protocol() is cp
            tr.write(b"one")
            await sp.wait_bytes(3)
            newp = Recorder(loop)
            sp.transport.set_protocol(newp)
            assert sp.transport.get_protocol() is newp
            tr.write(b"two")
            await newp.wait_bytes(3)
            tr.close()
            await asyncio.wait_for(newp.lost, TIMEOUT)
            await quiet_period()  # nothing reaches the old protocol
            return sp, newp
        finally:
            await shutdown(server)

    old, new = run_coro(loop, main())
    assert bytes(old.data) == b"one"
    assert bytes(new.data) == b"two"
    assert not old.lost.done()  # the replaced protocol hears nothing more
    assert new.events == ["data", "eof", ("lost", None)]  # no connection_made


class BufRecorder(asyncio.BufferedProtocol):
    def __init__(self, loop, size=65536):
        self.buf = bytearray(size)
        self.data = bytearray()
        self.hints = []
        self.events = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def get_buffer(self, sizehint):
        self.hints.append(sizehint)
        return memoryview(self.buf)

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        self.data += self.buf[:nbytes]

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


@pytest.mark.parametrize("side", ["server", "client"])
def test_buffered_protocol_large_payload(loop, side):
    payload = bytes(range(251)) * (8 * 1024 * 1024 // 251)

    async def main():
        if side == "server":
            server, port, sprotos = await serve(loop, lambda: BufRecorder(loop))
            tr, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
            tr.write(payload)
            tr.write_eof()
            await until(lambda: sprotos)
            receiver = sprotos[0]
        else:

            class Sender(Recorder):
                def connection_made(self, transport):
                    super().connection_made(transport)
                    transport.write(payload)
                    transport.write_eof()

            server, port, _ = await serve(loop, lambda: Sender(loop))
            tr, receiver = await loop.create_connection(
                lambda: BufRecorder(loop, size=4096), HOST, port
            )
        try:
            await asyncio.wait_for(receiver.lost, TIMEOUT)
            return receiver
        finally:
            tr.close()
            await shutdown(server)

    r = run_coro(loop, main(), 20)
    assert len(r.data) == len(payload)
    assert r.data == payload
    assert r.events == ["made", "eof", ("lost", None)]
    assert r.hints and all(isinstance(h, int) for h in r.hints)


def test_peer_reset_reports_connection_reset(loop):
    async def main():
        server, port, sprotos = await serve(loop, lambda: Recorder(loop))
        try:
            raw = socket.create_connection((HOST, port))
            try:
                raw.sendall(b"hi")
                sp = await asyncio.wait_for(_first(sprotos), TIMEOUT)
                await asyncio.wait_for(sp.wait_bytes(2), TIMEOUT)
                raw.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            finally:
                raw.close()
            exc = await asyncio.wait_for(sp.lost, TIMEOUT)
            await quiet_period()  # no second connection_lost
            return exc, sp
        finally:
            await shutdown(server)

    exc, sp = run_coro(loop, main())
    assert isinstance(exc, ConnectionResetError)
    assert sp.lost_calls == 1
    assert "eof" not in sp.events
