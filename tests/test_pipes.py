"""loop.connect_read_pipe() / loop.connect_write_pipe(), checked against the
stdlib loop (asyncio/unix_events.py: _UnixReadPipeTransport and
_UnixWritePipeTransport).

Every scenario counts the process's fds before and after (no fd leaked,
none closed twice) and checks that the caller's pipe object ends closed.
"""

import asyncio
import errno
import gc
import logging
import os
import pty
import select
import socket
import stat
import subprocess
import sys
import tty
import warnings

import pytest

from support import fd_count, quiet_period, run_coro, until

PY311 = sys.version_info >= (3, 11)
MiB = 1024 * 1024



class Proto(asyncio.Protocol):
    """Records every callback; `lost` is done at connection_lost."""

    def __init__(self, eof_result=None):
        loop = asyncio.get_running_loop()
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.eof_result = eof_result
        self.paused = 0
        self.resumed = 0

    def connection_made(self, transport):
        self.events.append('made')
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data):
        if not self.events or self.events[-1] != 'data':
            self.events.append('data')
        self.data += data

    def eof_received(self):
        self.events.append('eof')
        self.eof.set_result(None)
        return self.eof_result

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.events.append('lost')
        if self.lost.done():
            raise AssertionError('connection_lost called twice')
        self.lost.set_result(exc)


def pipe_files():
    """(read file, write file) over os.pipe(), unbuffered."""
    r, w = os.pipe()
    return open(r, 'rb', buffering=0), open(w, 'wb', buffering=0)


def baseline(loop):
    """fd_count() once the loop has run (a loop makes its signal wake-up
    socketpair the first time it runs)."""
    run_coro(loop, asyncio.sleep(0))
    collect()
    return fd_count()


def collect():
    """gc.collect(), silencing what earlier tests' stdlib transports say
    from __del__ (ResourceWarning, or errors of half-made ones)."""
    old = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ResourceWarning)
            gc.collect()
    finally:
        sys.unraisablehook = old


def fd_is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def handler_calls(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    return calls


def readable(f):
    """Whether a read of `f` (a file, socket or fd) would not block."""
    return bool(select.select([f], [], [], 0)[0])


# -- what the transports are ---------------------------------------------


def test_transport_types_and_extra(loop):
    before = baseline(loop)
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        assert rp.events == ['made'] and wp.events == ['made']
        assert rp.transport is rt and wp.transport is wt
        assert isinstance(rt, asyncio.ReadTransport)
        assert not isinstance(rt, asyncio.WriteTransport)
        assert isinstance(wt, asyncio.WriteTransport)
        assert isinstance(wt, asyncio.Transport)  # the stdlib's too (_FlowControlMixin)
        assert rt.get_extra_info('pipe') is rf
        assert wt.get_extra_info('pipe') is wf
        assert rt.get_extra_info('nope', 42) == 42
        assert rt.get_protocol() is rp and wt.get_protocol() is wp
        # What the stdlib's read transport does not have.
        for name in ('write', 'writelines', 'write_eof', 'abort',
                     'get_write_buffer_size', 'set_write_buffer_limits'):
            assert not hasattr(rt, name), name
        if PY311:
            assert rt.is_reading()
        else:
            with pytest.raises(NotImplementedError):
                rt.is_reading()
        for name in ('is_reading', 'pause_reading', 'resume_reading'):
            with pytest.raises(NotImplementedError):
                getattr(wt, name)()
        assert wt.can_write_eof() is True
        assert wt.get_write_buffer_limits() == (16384, 65536)
        assert wt.get_write_buffer_size() == 0
        assert not rt.is_closing() and not wt.is_closing()
        # The fd is set non-blocking, as the stdlib does.
        assert not os.get_blocking(rf.fileno())
        assert not os.get_blocking(wf.fileno())
        assert f'fd={rf.fileno()}' in repr(rt)
        assert 'polling' in repr(rt)
        assert f'fd={wf.fileno()}' in repr(wt) and 'bufsize=0' in repr(wt)
        rt.close()
        wt.close()
        assert rt.is_closing() and wt.is_closing()
        assert await rp.lost is None
        assert await wp.lost is None
        assert 'closed' in repr(rt) and 'closed' in repr(wt)

    run_coro(loop, main())
    assert rf.closed and wf.closed
    assert fd_count() == before


def test_set_protocol(loop):
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        other = Proto()
        rt.set_protocol(other)
        assert rt.get_protocol() is other
        wf.write(b'abc')
        wf.close()
        assert await other.lost is None
        assert bytes(other.data) == b'abc' and other.events == ['data', 'eof', 'lost']
        assert rp.events == ['made']

    run_coro(loop, main())


# -- what is accepted / refused --------------------------------------------


@pytest.mark.parametrize('write', [False, True], ids=['read', 'write'])
def test_regular_file_refused(loop, tmp_path, write):
    path = tmp_path / 'f'
    path.write_bytes(b'data')
    before = baseline(loop)
    f = open(path, 'r+b', buffering=0)
    connect = loop.connect_write_pipe if write else loop.connect_read_pipe
    made = []
    with pytest.raises(ValueError) as info:
        run_coro(loop, connect(lambda: made.append(1) or asyncio.Protocol(), f))
    if write:
        assert str(info.value) == ("Pipe transport is only for "
                                   "pipes, sockets and character devices")
    else:
        assert str(info.value) == "Pipe transport is for pipes/sockets only."
    assert made == [1]  # the factory runs first, as in the stdlib
    # The fd is untouched: open, still blocking.
    assert not f.closed and fd_is_open(f.fileno())
    assert os.get_blocking(f.fileno())
    assert f.read() == b'data'
    f.close()
    gc.collect()
    assert fd_count() == before


def test_directory_refused(loop, tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        class Dir:
            def fileno(self):
                return fd

            def close(self):
                raise AssertionError('must not be closed')

        with pytest.raises(ValueError):
            run_coro(loop, loop.connect_read_pipe(asyncio.Protocol, Dir()))
        assert fd_is_open(fd)
    finally:
        os.close(fd)


def test_closed_file_object(loop):
    rf, wf = pipe_files()
    rf.close()
    with pytest.raises(ValueError):  # fileno() of a closed file
        run_coro(loop, loop.connect_read_pipe(asyncio.Protocol, rf))
    wf.close()
    collect()  # the stdlib's half-made transport complains in __del__


# -- os.pipe, FIFO, socketpair, pty, character devices ------------------


def transfer(loop, rf, wf, payload, *, flow=False):
    """Through a read and a write transport of `loop`; returns the protocols."""

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        if flow:
            wt.set_write_buffer_limits(high=64 * 1024)
        view = memoryview(payload)
        chunk = 256 * 1024
        for i in range(0, len(view), chunk):
            wt.write(view[i:i + chunk])
            if flow:
                await until(lambda: wp.paused == wp.resumed)
        wt.write_eof()
        assert wt.is_closing()
        assert await wp.lost is None
        assert await rp.lost is None
        return rp, wp

    return run_coro(loop, main(), timeout=120)


def test_os_pipe_transfer(loop):
    before = baseline(loop)
    rf, wf = pipe_files()
    payload = os.urandom(1 * MiB)
    rp, wp = transfer(loop, rf, wf, payload)
    assert bytes(rp.data) == payload
    assert rp.events == ['made', 'data', 'eof', 'lost']
    assert wp.events == ['made', 'lost']
    assert rf.closed and wf.closed
    assert fd_count() == before


def test_large_transfer_with_flow_control(loop):
    # 32 MiB through one pipe between two transports of the same loop: the
    # writer sees pause_writing()/resume_writing() and waits for them.
    before = baseline(loop)
    rf, wf = pipe_files()
    payload = os.urandom(32 * MiB)
    rp, wp = transfer(loop, rf, wf, payload, flow=True)
    assert len(rp.data) == len(payload) and bytes(rp.data) == payload
    assert wp.paused >= 1 and wp.resumed >= 1
    assert rf.closed and wf.closed
    assert fd_count() == before


class KeepingProto(Proto):
    """Proto that also keeps every bytes object it was given."""

    def __init__(self):
        super().__init__()
        self.kept = []

    def data_received(self, data):
        super().data_received(data)
        self.kept.append((data, bytes(data)))


def test_reads_kept_by_protocol_stay_intact(loop):
    # Reads of a full pipe, small ones between them and EOF right after a
    # large one: every data_received() gets a bytes object of its own,
    # whose content never changes afterwards (ourloop reads a large read's
    # successor straight into the bytes object it hands over).
    rf, wf = pipe_files()
    sizes = [150 * 1024, 10, 100_000, 70_000, 1, 1, 128 * 1024]
    payloads = [os.urandom(n) for n in sizes]

    async def main():
        rt, rp = await loop.connect_read_pipe(KeepingProto, rf)
        sent = 0
        for payload in payloads:
            # One write at a time, all of it read before the next: the
            # pipe (64 KiB at least) takes what the reader empties.
            view = memoryview(payload)
            while view:
                try:
                    n = os.write(wf.fileno(), view)
                except BlockingIOError:
                    n = 0
                view = view[n:]
                sent += n
                await until(lambda target=sent: len(rp.data) == target)
        wf.close()
        assert await rp.lost is None
        return rp

    os.set_blocking(wf.fileno(), False)
    rp = run_coro(loop, main())
    assert bytes(rp.data) == b''.join(payloads)
    assert rp.events == ['made', 'data', 'eof', 'lost']
    for data, copy in rp.kept:
        assert type(data) is bytes and data == copy and hash(data) == hash(copy)


def test_fifo_transfer(loop, tmp_path):
    path = tmp_path / 'fifo'
    os.mkfifo(path)
    before = baseline(loop)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    rf, wf = open(r, 'rb', buffering=0), open(w, 'wb', buffering=0)
    payload = os.urandom(3 * MiB)
    rp, wp = transfer(loop, rf, wf, payload, flow=True)
    assert bytes(rp.data) == payload
    assert rp.events[-2:] == ['eof', 'lost']
    assert rf.closed and wf.closed
    assert fd_count() == before


def test_socketpair_transfer(loop):
    before = baseline(loop)
    a, b = socket.socketpair()
    payload = os.urandom(2 * MiB)
    rp, wp = transfer(loop, a, b, payload)
    assert bytes(rp.data) == payload
    assert a.fileno() == -1 and b.fileno() == -1  # both sockets closed
    assert fd_count() == before


def test_pty(loop, handler_calls):
    # A tty: the read transport on the master, the write transport on the
    # slave (a character device: accepted, no peer watch). When the slave
    # side is gone, reading the master fails with EIO: connection_lost(EIO)
    # without bothering the exception handler.
    before = baseline(loop)
    master, slave = pty.openpty()
    tty.setraw(slave)
    mf = open(master, 'rb', buffering=0)
    sf = open(slave, 'wb', buffering=0)
    assert stat.S_ISCHR(os.fstat(slave).st_mode)

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, mf)
        wt, wp = await loop.connect_write_pipe(Proto, sf)
        wt.write(b'hello tty')
        await until(lambda: bytes(rp.data) == b'hello tty')
        wt.close()
        assert await wp.lost is None
        exc = await rp.lost
        assert isinstance(exc, OSError) and exc.errno == errno.EIO
        assert 'eof' not in rp.events

    run_coro(loop, main())
    assert handler_calls == []
    assert mf.closed and sf.closed
    assert fd_count() == before


def test_dev_null_write(loop, handler_calls):
    before = baseline(loop)
    f = open(os.devnull, 'wb', buffering=0)

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, f)
        for _ in range(100):
            wt.write(b'x' * 100000)
        await until(lambda: wt.get_write_buffer_size() == 0)
        wt.close()
        assert await wp.lost is None

    run_coro(loop, main())
    assert handler_calls == []
    assert f.closed
    assert fd_count() == before


def test_dev_null_read(loop, handler_calls):
    # The stdlib accepts the character device, then its selector cannot
    # watch it: PermissionError reaches the exception handler from the
    # callback that starts reading. Never a crash.
    before = baseline(loop)
    f = open(os.devnull, 'rb', buffering=0)

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, f)
        await until(lambda: handler_calls)
        assert isinstance(handler_calls[0]['exception'], PermissionError)
        assert rp.events == ['made']
        rt.close()
        assert await rp.lost is None

    run_coro(loop, main())
    assert len(handler_calls) == 1
    assert f.closed
    assert fd_count() == before


# -- child processes (the plain subprocess module) -------------------------


CAT = ('import shutil, sys; '
       'shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer, 65536)')


def test_child_process_transfer(loop):
    before = baseline(loop)
    payload = os.urandom(32 * MiB)

    async def main():
        proc = subprocess.Popen([sys.executable, '-c', CAT],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            rt, rp = await loop.connect_read_pipe(Proto, proc.stdout)
            wt, wp = await loop.connect_write_pipe(Proto, proc.stdin)
            # Not reading at first: the child blocks, so must the writer
            # (pause_writing) until reading resumes.
            rt.pause_reading()
            loop.call_later(0.2, rt.resume_reading)
            view = memoryview(payload)
            chunk = 1 * MiB
            for i in range(0, len(view), chunk):
                wt.write(view[i:i + chunk])
                await until(lambda: wp.paused == wp.resumed)
            assert wp.paused >= 1
            wt.write_eof()
            assert await wp.lost is None
            assert await rp.lost is None
            assert len(rp.data) == len(payload) and bytes(rp.data) == payload
            await until(lambda: proc.poll() is not None)
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stdin.closed and proc.stdout.closed

    run_coro(loop, main(), timeout=120)
    assert fd_count() == before


def test_child_process_reads_then_exits(loop):
    # The child exits without reading everything: the writer gets
    # connection_lost(BrokenPipeError) (on the write or from the peer watch).
    before = baseline(loop)

    async def main():
        proc = subprocess.Popen(
            [sys.executable, '-c', 'import sys; sys.stdin.buffer.read(10)'],
            stdin=subprocess.PIPE)
        try:
            wt, wp = await loop.connect_write_pipe(Proto, proc.stdin)
            wt.write(b'x' * (4 * MiB))
            exc = await wp.lost
            assert isinstance(exc, BrokenPipeError)
            await until(lambda: proc.poll() is not None)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stdin.closed

    run_coro(loop, main())
    assert fd_count() == before


# -- reading ----------------------------------------------------------------


def test_pause_resume_reading(loop):
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        rt.pause_reading()
        rt.pause_reading()  # no-op
        if PY311:
            assert not rt.is_reading()
        wf.write(b'paused')
        assert readable(rf)
        await quiet_period()
        assert rp.data == b''
        assert 'idle' in repr(rt)
        rt.resume_reading()
        rt.resume_reading()  # no-op
        if PY311:
            assert rt.is_reading()
        await until(lambda: rp.data == b'paused')
        wf.close()
        assert await rp.lost is None
        # After close: no-ops.
        rt.pause_reading()
        rt.resume_reading()
        if PY311:
            assert not rt.is_reading()

    run_coro(loop, main())


def test_instance_attributes_shadow_methods(loop):
    # As on the stdlib's (Python) transports, an attribute set on a pipe
    # transport shadows its method, for the transport's users (here a
    # StreamReader's flow control) as for direct calls. CPython's
    # test_subprocess.test_pause_reading does this; ourloop's Cython
    # transports refused it ("attribute is read-only") and the test hung.
    from unittest import mock
    limit = 10

    async def main():
        reader = asyncio.StreamReader(limit=limit)
        rt, rp = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), rf)
        rt.pause_reading = mock.Mock()
        rt.resume_reading = mock.Mock()
        wf.write(b'x' * (limit * 2 + 1))
        wf.close()
        assert await reader.read() == b'x' * (limit * 2 + 1)
        assert rt.pause_reading.called and rt.resume_reading.called
        del rt.pause_reading, rt.resume_reading
        # The methods are back; the transport closed at EOF.
        assert rt.is_closing()
        rt.pause_reading()
        rt.resume_reading()

        rf2, wf2 = pipe_files()
        wt, wp = await loop.connect_write_pipe(Proto, wf2)
        wt.write = mock.Mock(wraps=wt.write)
        wt.writelines([b'a', b'b'])
        wt.write(b'c')
        assert wt.write.call_count == 2  # writelines() goes through write()
        wt.close()
        assert await wp.lost is None
        assert rf2.read() == b'abc'
        rf2.close()

    before = baseline(loop)
    rf, wf = pipe_files()
    run_coro(loop, main())
    collect()
    assert fd_count() == before


def test_pause_in_connection_made(loop):
    # 3.11+ semantics (on every version): reading does not start when
    # connection_made() paused it.
    rf, wf = pipe_files()

    class P(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    async def main():
        wf.write(b'early')
        rt, rp = await loop.connect_read_pipe(P, rf)
        assert readable(rf)
        await quiet_period()
        assert rp.data == b''
        rt.resume_reading()
        await until(lambda: rp.data == b'early')
        rt.close()
        await rp.lost
        wf.close()

    if not PY311 and loop.__class__.__module__.startswith('asyncio'):
        pytest.skip('the 3.9/3.10 stdlib starts reading anyway (fixed in 3.11)')
    run_coro(loop, main())


@pytest.mark.parametrize('eof_result', [None, True])
def test_eof_then_connection_lost(loop, eof_result):
    # eof_received()'s return value is ignored: connection_lost follows.
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(lambda: Proto(eof_result), rf)
        wf.write(b'last words')
        wf.close()
        assert await rp.lost is None
        assert rp.events == ['made', 'data', 'eof', 'lost']
        assert rp.data == b'last words'
        assert rt.is_closing()

    run_coro(loop, main())
    assert rf.closed


def test_read_close_while_data_pending(loop):
    before = baseline(loop)
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wf.write(b'x' * 1000)
        rt.close()
        rt.close()
        assert rt.is_closing()
        assert await rp.lost is None
        await quiet_period()
        assert rp.events == ['made', 'lost']
        # The writer's peer is gone now.
        with pytest.raises(BrokenPipeError):
            wf.write(b'y')
        wf.close()

    run_coro(loop, main())
    assert rf.closed
    assert fd_count() == before


def test_read_buffered_protocol_gets_data_received(loop, handler_calls):
    # The stdlib's read pipe calls data_received() whatever the protocol.
    rf, wf = pipe_files()

    class P(Proto):
        pass

    async def main():
        rt, rp = await loop.connect_read_pipe(P, rf)
        wf.write(b'abc')
        wf.close()
        assert await rp.lost is None
        assert rp.data == b'abc'

    run_coro(loop, main())
    assert handler_calls == []


# -- writing ----------------------------------------------------------------


def test_write_types(loop):
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        with pytest.raises(AssertionError):
            wt.write('str')
        with pytest.raises(TypeError):
            wt.writelines([b'a', 'b'])
        buf = bytearray(b'ba')
        wt.write(buf)
        buf[:] = b'XX'  # copied by write()
        wt.write(memoryview(b'mv'))
        wt.write(b'')
        wt.writelines([b'l1', bytearray(b'l2'), memoryview(b'l3')])
        wt.writelines(iter([b'-', b'end']))
        wt.close()
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.data == b'bamvl1l2l3-end'

    run_coro(loop, main())


def test_write_buffer_and_flow_control(loop):
    # Nobody reads: what the kernel does not take is buffered,
    # pause_writing() is called once; reading resumes it.
    rf, wf = pipe_files()

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.write(b'a' * MiB)
        size = wt.get_write_buffer_size()
        assert 0 < size <= MiB
        assert wp.paused == 1
        assert f'bufsize={size}' in repr(wt)
        wt.write(b'b' * MiB)
        assert wp.paused == 1
        got = 0
        while got < 2 * MiB:
            await asyncio.sleep(0)
            await until(lambda: readable(rf))
            got += len(os.read(rf.fileno(), MiB))
        await until(lambda: wp.resumed == 1)
        assert wt.get_write_buffer_size() == 0
        wt.set_write_buffer_limits(high=10, low=5)
        assert wt.get_write_buffer_limits() == (5, 10)
        with pytest.raises(ValueError):
            wt.set_write_buffer_limits(high=1, low=5)
        wt.close()
        assert await wp.lost is None

    os.set_blocking(rf.fileno(), False)
    run_coro(loop, main())
    rf.close()


def test_write_eof_with_buffered_data(loop):
    rf, wf = pipe_files()
    payload = os.urandom(4 * MiB)

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.write(payload)
        wt.write_eof()
        assert wt.is_closing()
        wt.write_eof()  # no-op
        wt.write(b'dropped')  # dropped silently, as in the stdlib
        assert not wp.lost.done()
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        assert await wp.lost is None
        assert await rp.lost is None
        assert bytes(rp.data) == payload

    run_coro(loop, main())
    assert rf.closed and wf.closed


def test_write_after_close_warns(loop, caplog):
    # Writes after close() are dropped; from the 6th on, each logs the
    # stdlib's warning (its _conn_lost counter reaches 5).
    rf, wf = pipe_files()

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.close()
        with caplog.at_level(logging.WARNING, logger='asyncio'):
            for _ in range(10):
                wt.write(b'x')
        assert await wp.lost is None

    run_coro(loop, main())
    msgs = [r.getMessage() for r in caplog.records
            if 'pipe closed by peer' in r.getMessage()]
    assert msgs == ['pipe closed by peer or os.write(pipe, data) raised exception.'] * 5
    rf.close()


def test_epipe_on_write(loop, caplog, handler_calls):
    # The reader is gone before the loop noticed: the write fails with
    # EPIPE, connection_lost(BrokenPipeError); later writes are dropped,
    # with the warning from the 5th on (the failure counted once).
    rf, wf = pipe_files()

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        rf.close()
        wt.write(b'doomed')
        exc = await wp.lost
        assert isinstance(exc, BrokenPipeError)
        assert wt.is_closing()
        with caplog.at_level(logging.WARNING, logger='asyncio'):
            for _ in range(10):
                wt.write(b'x')

    run_coro(loop, main())
    msgs = [r for r in caplog.records if 'pipe closed by peer' in r.getMessage()]
    assert len(msgs) == 6
    assert handler_calls == []  # an OSError is only logged in debug mode
    assert wf.closed


@pytest.mark.parametrize('kind', ['pipe', 'fifo', 'socket'])
def test_reader_closes_while_idle(loop, kind, tmp_path):
    # The stdlib watches the write end for readability: the reader going
    # away closes the transport, connection_lost(None) when nothing was
    # buffered.
    before = baseline(loop)
    rf, wf = make_pair(kind, tmp_path)

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.write(b'small')
        await until(lambda: readable(rf))
        assert os.read(rf.fileno(), 100) == b'small'
        close_reader(rf)
        assert await wp.lost is None
        assert wt.is_closing()

    run_coro(loop, main())
    assert wf.fileno() == -1 if kind == 'socket' else wf.closed
    assert fd_count() == before


@pytest.mark.parametrize('kind', ['pipe', 'fifo', 'socket'])
def test_reader_closes_with_buffered_data(loop, kind, tmp_path):
    before = baseline(loop)
    rf, wf = make_pair(kind, tmp_path)

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.write(b'z' * (8 * MiB))
        assert wt.get_write_buffer_size() > 0
        await asyncio.sleep(0)  # one iteration: the loop polls the full pipe
        close_reader(rf)
        exc = await wp.lost
        assert isinstance(exc, BrokenPipeError)

    run_coro(loop, main())
    assert fd_count() == before


def make_pair(kind, tmp_path):
    if kind == 'pipe':
        return pipe_files()
    if kind == 'fifo':
        path = tmp_path / 'fifo'
        os.mkfifo(path)
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        return open(r, 'rb', buffering=0), open(w, 'wb', buffering=0)
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def close_reader(rf):
    rf.close()


# -- exceptions in protocol callbacks --------------------------------------


def test_data_received_raises(loop, handler_calls):
    # Not caught by the transport: the exception handler gets it and
    # reading goes on.
    rf, wf = pipe_files()

    class P(Proto):
        def data_received(self, data):
            super().data_received(data)
            if len(self.data) == 3:
                raise ZeroDivisionError('boom')

    async def main():
        rt, rp = await loop.connect_read_pipe(P, rf)
        wf.write(b'abc')
        await until(lambda: handler_calls)
        wf.write(b'def')
        wf.close()
        assert await rp.lost is None
        assert rp.data == b'abcdef'

    run_coro(loop, main())
    assert len(handler_calls) == 1
    assert isinstance(handler_calls[0]['exception'], ZeroDivisionError)
    assert handler_calls[0]['message'].startswith('Exception in callback')
    assert rf.closed


@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_data_received_interrupt_propagates(loop, handler_calls, exc_type):
    # KeyboardInterrupt and SystemExit from a read pipe's data_received
    # leave the loop (not the exception handler); reading goes on at the
    # next run.
    rf, wf = pipe_files()
    state = {}

    class P(Proto):
        def data_received(self, data):
            super().data_received(data)
            if len(self.data) == 3:
                raise exc_type()

    async def start():
        rt, rp = await loop.connect_read_pipe(P, rf)
        state['rt'], state['rp'] = rt, rp

    async def forever():
        await loop.create_future()

    loop.run_until_complete(start())
    wf.write(b'abc')
    task = loop.create_task(forever())
    with pytest.raises(exc_type):
        loop.run_until_complete(task)
    task.cancel()

    async def finish():
        wf.write(b'def')
        wf.close()
        return await state['rp'].lost

    assert loop.run_until_complete(finish()) is None
    assert state['rp'].data == b'abcdef'
    assert handler_calls == []


def test_eof_received_raises(loop, handler_calls):
    rf, wf = pipe_files()

    class P(Proto):
        def eof_received(self):
            super().eof_received()
            raise ZeroDivisionError('boom')

    async def main():
        rt, rp = await loop.connect_read_pipe(P, rf)
        wf.close()
        assert await rp.lost is None

    run_coro(loop, main())
    assert [type(c['exception']) for c in handler_calls] == [ZeroDivisionError]
    assert rf.closed


@pytest.mark.parametrize('write', [False, True], ids=['read', 'write'])
def test_connection_made_and_lost_raise(loop, handler_calls, write):
    before = baseline(loop)
    rf, wf = pipe_files()

    class P(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise ZeroDivisionError('made')

        def connection_lost(self, exc):
            super().connection_lost(exc)
            raise KeyError('lost')

    async def main():
        connect = loop.connect_write_pipe if write else loop.connect_read_pipe
        t, p = await connect(P, wf if write else rf)
        assert p.events == ['made']
        t.close()
        await p.lost
        await quiet_period()  # no further handler call

    run_coro(loop, main())
    assert [type(c['exception']) for c in handler_calls] == [ZeroDivisionError, KeyError]
    # The pipe is closed all the same.
    assert (wf if write else rf).closed
    (rf if write else wf).close()
    assert fd_count() == before


def test_pause_writing_raises(loop, handler_calls):
    rf, wf = pipe_files()

    class P(Proto):
        def pause_writing(self):
            raise ZeroDivisionError('pause')

    async def main():
        wt, wp = await loop.connect_write_pipe(P, wf)
        wt.write(b'a' * MiB)
        assert [c['message'] for c in handler_calls] == ['protocol.pause_writing() failed']
        wt.abort()
        assert await wp.lost is None

    run_coro(loop, main())
    rf.close()


# -- close / abort orders --------------------------------------------------


@pytest.mark.parametrize('order', ['close-abort', 'abort-close', 'abort-abort',
                                   'eof-abort', 'close-close'])
def test_write_close_abort_orders(loop, handler_calls, order, is_ourloop):
    before = baseline(loop)
    rf, wf = pipe_files()

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.write(b'q' * (2 * MiB))  # buffered: nobody reads yet
        first, second = order.split('-')
        getattr(wt, {'eof': 'write_eof'}.get(first, first))()
        getattr(wt, second)()
        if 'abort' not in order:
            # close() waits for the buffer to drain: read it all.
            os.set_blocking(rf.fileno(), False)
            got = 0
            while got < 2 * MiB:
                await until(lambda: readable(rf))
                got += len(os.read(rf.fileno(), MiB))
        exc = await wp.lost
        assert exc is None
        await quiet_period()  # no second connection_lost
        assert wp.events == ['made', 'lost']

    run_coro(loop, main())
    assert wf.closed
    rf.close()
    assert fd_count() == before
    if is_ourloop or order != 'abort-abort':
        # (The stdlib's second abort() schedules connection_lost again; that
        # call fails inside the loop.)
        assert handler_calls == []


def test_write_close_then_abort_idle(loop, handler_calls, is_ourloop):
    # Nothing buffered: close() schedules connection_lost; abort() after it
    # must not schedule another (the stdlib does, and its second call fails
    # inside the loop: only ourloop is checked for silence).
    rf, wf = pipe_files()

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.close()
        wt.abort()
        assert await wp.lost is None
        await quiet_period()  # no second connection_lost
        assert wp.events == ['made', 'lost']

    run_coro(loop, main())
    if is_ourloop:
        assert handler_calls == []
    assert wf.closed
    rf.close()


def test_read_close_after_eof(loop, handler_calls):
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wf.close()
        await rp.eof
        rt.close()
        assert await rp.lost is None
        rt.close()
        await quiet_period()  # no second connection_lost
        assert rp.events == ['made', 'eof', 'lost']

    run_coro(loop, main())
    assert handler_calls == []


@pytest.mark.parametrize('write', [False, True], ids=['read', 'write'])
def test_cancelled_while_connecting(loop, write):
    # connect_*_pipe cancelled while waiting for connection_made: the
    # transport is closed, which closes the pipe once.
    before = baseline(loop)
    rf, wf = pipe_files()
    pipe = wf if write else rf

    async def main():
        connect = loop.connect_write_pipe if write else loop.connect_read_pipe
        task = loop.create_task(connect(Proto, pipe))
        await asyncio.sleep(0)  # the task creates the transport
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: pipe.closed)

    run_coro(loop, main())
    (rf if write else wf).close()
    assert fd_count() == before


# -- fd ownership --------------------------------------------------------


def test_fd_number_reused_after_close(loop):
    # The caller closes its pipe object while the transports are open; new
    # fds take the numbers; closing the transports later must not touch
    # them (libuv works on dups; the caller's objects are closed once).
    rf, wf = pipe_files()
    rnum, wnum = rf.fileno(), wf.fileno()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        rf.close()
        wf.close()
        await quiet_period()  # the loop goes on with the numbers closed
        fresh = [os.open(os.devnull, os.O_RDONLY) for _ in range(2)]
        try:
            assert set(fresh) == {rnum, wnum}
            rt.close()
            wt.abort()
            await rp.lost
            await wp.lost
            await quiet_period()  # nothing closes the new fds later
            assert all(fd_is_open(fd) for fd in fresh)
        finally:
            for fd in fresh:
                os.close(fd)

    before = baseline(loop)
    run_coro(loop, main())
    assert fd_count() == before - 2


def test_loop_closed_with_open_transports(loop_factory):
    # No crash, no leak. As in the stdlib, loop.close() leaves the
    # transports "open" and the caller's pipes open (ourloop's libuv dups
    # go with the loop); a transport dropped unclosed warns and closes its
    # pipe (__del__); close() then raises 'Event loop is closed'.
    collect()
    before = fd_count()
    lp = loop_factory()
    rf, wf = pipe_files()
    a, b = socket.socketpair()

    async def main():
        ts = []
        ts.append(await lp.connect_read_pipe(Proto, rf))
        ts.append(await lp.connect_write_pipe(Proto, wf))
        ts.append(await lp.connect_write_pipe(Proto, a))
        ts[1][0].write(b'w' * MiB)  # buffered: a uv_write in flight
        return [t for t, p in ts]

    rt, wt, st = lp.run_until_complete(main())
    lp.close()
    assert not rf.closed and not wf.closed and a.fileno() != -1
    assert 'open' in repr(rt) and 'open' in repr(wt)
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        rt.close()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        st.abort()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ResourceWarning)
        del rt, wt, st
        gc.collect()
    assert [w.category for w in caught] == [ResourceWarning] * 3
    assert all('unclosed transport' in str(w.message) for w in caught)
    assert rf.closed and wf.closed and a.fileno() == -1
    b.close()
    assert fd_count() == before


@pytest.mark.only_loop('ourloop', reason='the stdlib transport closes the pipe '
                       'in __del__ once half-made; ourloop never took it')
def test_closed_loop_refuses(loop):
    loop.close()
    collect()
    before = fd_count()
    rf, wf = pipe_files()
    coro = loop.connect_read_pipe(asyncio.Protocol, rf)
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        coro.send(None)
    assert not rf.closed and fd_is_open(rf.fileno())
    rf.close()
    wf.close()
    assert fd_count() == before


@pytest.mark.only_loop('ourloop', reason='ourloop internals')
def test_transports_released(loop, ourloop_mod):
    # Once closed, nothing keeps the transports alive (the loop drops them
    # when libuv's close callbacks ran); debug builds also count handles.
    import weakref
    # The loop's own handles first (the signal wake-up's uv_poll_t opens
    # when it first runs in the main thread): only the pipes' are counted.
    loop.run_until_complete(asyncio.sleep(0))
    counts0 = ourloop_mod._core.debug_handle_counts()
    rf, wf = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wt, wp = await loop.connect_write_pipe(Proto, wf)
        wt.write(b'bye')
        wt.close()
        await rp.lost
        await wp.lost
        await asyncio.sleep(0)
        return weakref.ref(rt), weakref.ref(wt)

    refs = run_coro(loop, main())

    def balanced(counts):
        return counts is None or all(
            counts[name][0] - counts[name][1] == counts0[name][0] - counts0[name][1]
            for name in ('pipe', 'poll'))

    def released():
        # libuv's close callbacks drop the transports in a later iteration.
        gc.collect()
        return ([r() for r in refs] == [None, None]
                and balanced(ourloop_mod._core.debug_handle_counts()))

    run_coro(loop, until(released, step=0.01))
    assert [r() for r in refs] == [None, None]
    counts = ourloop_mod._core.debug_handle_counts()
    if counts is not None:  # debug builds only
        for name in ('pipe', 'poll'):
            opened, closed = counts[name]
            assert opened - closed == counts0[name][0] - counts0[name][1]


def test_debug_mode(loop, caplog):
    # Debug mode: reads run as named Handles; the stdlib's log lines.
    loop.set_debug(True)
    rf, wf = pipe_files()
    r2, w2 = pipe_files()

    async def main():
        rt, rp = await loop.connect_read_pipe(Proto, rf)
        wt, wp = await loop.connect_write_pipe(Proto, w2)
        wf.write(b'dbg')
        await until(lambda: rp.data == b'dbg')
        wf.close()
        assert await rp.lost is None
        r2.close()
        assert await wp.lost is None

    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        run_coro(loop, main())
    text = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'Read pipe' in text and 'Write pipe' in text
    assert text.count('was closed by peer') == 2


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full')
def test_dev_full_write_error(loop, handler_calls):
    # A character device whose write fails (ENOSPC): connection_lost(exc),
    # the exception handler is not involved (an OSError).
    before = baseline(loop)
    f = open('/dev/full', 'wb', buffering=0)

    async def main():
        wt, wp = await loop.connect_write_pipe(Proto, f)
        wt.write(b'no room')
        exc = await wp.lost
        assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        assert wt.is_closing()

    run_coro(loop, main())
    assert handler_calls == []
    assert f.closed
    assert fd_count() == before
