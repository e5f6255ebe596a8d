"""loop.sendfile() and loop.sock_sendfile(), checked against the stdlib loop.

A 32 MiB file (made once per session) is sent over TCP and Unix stream
sockets whose buffers are small, to a receiver that keeps pausing its
reading, so the sender runs out of socket buffer many times (EAGAIN, then a
wait for writability) before it is done. What is compared: the bytes the
peer receives (and their order with transport.write()), the return value,
the file position afterwards, the errors and their messages, and that no
file descriptor is left open.
"""

import asyncio
import errno
import io
import os
import random
import shutil
import socket
import sys
import tempfile
from asyncio import constants

import pytest

from support import fd_count, run_coro, until

TIMEOUT = 60
FILE_SIZE = 32 * 1024 * 1024 + 123   # larger than any socket buffer
SMALL_BUF = 64 * 1024                # SO_SNDBUF / SO_RCVBUF of the pairs
PAUSE_EVERY = 2 * 1024 * 1024        # the receiver pauses this often

pytestmark = pytest.mark.skipif(not hasattr(os, 'sendfile'),
                                reason='needs os.sendfile')

try:
    from ourloop import _core as _ourloop_core
except ImportError:
    _ourloop_core = None

# Whether this ourloop build calls sendfile(2). A build without it (the
# forced-portable one: ourloop/includes/platform.h) is the stdlib without
# os.sendfile, so there both loops run without it (the autouse fixture
# below) and are compared so; the tests of the zero-copy path itself skip.
# Except on 3.12+, where the stdlib's fallback sends overwritten data (it
# reuses its read buffer while the transport keeps a view of it: see
# test_fallback_on_a_transport_that_keeps_buffers): there the stdlib loop keeps
# os.sendfile, whose results the remaining tests expect of both paths.
NATIVE = _ourloop_core is None or _ourloop_core._HAVE_SENDFILE
native_only = pytest.mark.skipif(
    not NATIVE, reason="this ourloop build has no sendfile(2) (forced portable)")
_STDLIB_FALLBACK_REUSES_BUFFER = sys.version_info >= (3, 12)


@pytest.fixture(autouse=True)
def _no_os_sendfile_without_native(request, monkeypatch):
    if NATIVE:
        return
    if ('loop_kind' in request.fixturenames and _STDLIB_FALLBACK_REUSES_BUFFER
            and request.getfixturevalue('loop_kind') == 'asyncio'):
        return
    monkeypatch.delattr(os, 'sendfile')


def not_available():
    """Why loop.sendfile()/sock_sendfile() cannot use the native path for
    a file object without fileno(), in this test."""
    if hasattr(os, 'sendfile'):
        return 'not a regular file'
    return r'os\.sendfile\(\) is not available'


@pytest.fixture(scope='session')
def data_file():
    """(path, content) of the big file, made once per session."""
    tmpdir = tempfile.mkdtemp(prefix='ol-sendfile-')
    path = os.path.join(tmpdir, 'data.bin')
    content = random.Random(5).randbytes(FILE_SIZE)
    with open(path, 'wb') as f:
        f.write(content)
    yield path, content
    shutil.rmtree(tmpdir, ignore_errors=True)


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix='ol-', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)



class Receiver(asyncio.Protocol):
    """Collects what arrives; pauses reading every PAUSE_EVERY bytes for a
    moment (so the sender meets a full socket buffer), closes after
    close_after bytes if asked."""

    def __init__(self, loop, close_after=None, slow=True):
        self.loop = loop
        self.close_after = close_after
        self.slow = slow
        self.next_pause = PAUSE_EVERY
        self.data = bytearray()
        self.transport = None
        self.connected = loop.create_future()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.connected.set_result(None)

    def data_received(self, data):
        self.data += data
        if self.close_after is not None and len(self.data) >= self.close_after:
            # Unread data is left behind: the sender gets a reset.
            self.transport.abort()
            return
        if self.slow and len(self.data) >= self.next_pause:
            self.next_pause += PAUSE_EVERY
            self.transport.pause_reading()
            self.loop.call_later(0.002, self.transport.resume_reading)

    def eof_received(self):
        return None

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


class Sender(asyncio.Protocol):
    def __init__(self, loop):
        self.lost = loop.create_future()
        self.paused = 0
        self.resumed = 0

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def _small_buffers(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)


async def open_pair(loop, kind, sock_dir, **receiver_kw):
    """(server, receiver protocol, client transport, sender protocol)."""
    receiver = Receiver(loop, **receiver_kw)
    if kind == 'tcp':
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(('127.0.0.1', 0))
        csock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(os.path.join(sock_dir, 's'))
        csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _small_buffers(lsock)        # accepted sockets inherit it
    server = await loop.create_server(lambda: receiver, sock=lsock)
    _small_buffers(csock)
    csock.connect(lsock.getsockname())
    csock.setblocking(False)
    transport, sender = await loop.create_connection(
        lambda: Sender(loop), sock=csock)
    await receiver.connected
    return server, receiver, transport, sender


async def close_pair(server, receiver, transport, sender):
    transport.close()
    await sender.lost
    await receiver.done
    server.close()
    await server.wait_closed()


KINDS = ['tcp', 'unix']
# (offset, count)
RANGES = [(0, None), (1000, None), (12345, 5 * 1024 * 1024 + 7),
          (FILE_SIZE - 10, 1000)]


# -- loop.sendfile on socket transports ---------------------------------------


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('offset,count', RANGES)
def test_sendfile_large(loop, data_file, sock_dir, kind, offset, count):
    path, content = data_file
    expected = content[offset:offset + count if count else None]

    async def main():
        before = fd_count()
        pair = await open_pair(loop, kind, sock_dir)
        server, receiver, transport, sender = pair
        with open(path, 'rb') as f:
            if count is None:
                ret = await loop.sendfile(transport, f, offset)
            else:
                ret = await loop.sendfile(transport, f, offset, count)
            tell = f.tell()
            assert not f.closed  # the caller's file stays open
        # The transport works as before.
        assert transport.is_reading()
        await close_pair(*pair)
        return before, ret, tell, bytes(receiver.data), fd_count()

    before, ret, tell, received, after = run_coro(loop, main())
    assert ret == len(expected)
    assert tell == offset + len(expected)
    assert received == expected
    assert after == before


@pytest.mark.parametrize('kind', KINDS)
def test_sendfile_pre_and_post_data(loop, data_file, sock_dir, kind):
    path, content = data_file
    prefix = b'PREFIX__' * (128 * 1024)   # 1 MiB: still buffered when
    suffix = b'--SUFFIX' * 1024           # sendfile() starts

    async def main():
        pair = await open_pair(loop, kind, sock_dir)
        server, receiver, transport, sender = pair
        transport.write(prefix)
        with open(path, 'rb') as f:
            ret = await loop.sendfile(transport, f, 100, 3 * 1024 * 1024)
            tell = f.tell()
        transport.write(suffix)
        await close_pair(*pair)
        return ret, tell, bytes(receiver.data)

    ret, tell, received = run_coro(loop, main())
    assert ret == 3 * 1024 * 1024
    assert tell == 100 + ret
    assert received == prefix + content[100:100 + ret] + suffix


@native_only
@pytest.mark.parametrize('kind', KINDS)
def test_write_during_sendfile_raises(loop, data_file, sock_dir, kind):
    path, content = data_file

    async def main():
        pair = await open_pair(loop, kind, sock_dir)
        server, receiver, transport, sender = pair
        with open(path, 'rb') as f:
            task = loop.create_task(loop.sendfile(transport, f))
            await asyncio.sleep(0)
            assert not task.done()
            errors = []
            for call in (lambda: transport.write(b'data'),
                         lambda: transport.writelines([b'data'])):
                with pytest.raises(RuntimeError) as info:
                    call()
                errors.append(str(info.value))
            assert not transport.is_reading()   # paused while sending
            ret = await task
            assert transport.is_reading()
            transport.write(b'after')   # allowed again
        await close_pair(*pair)
        return ret, errors, bytes(receiver.data)

    ret, errors, received = run_coro(loop, main())
    assert ret == FILE_SIZE
    assert received == content + b'after'
    assert errors[0] == 'unable to write; sendfile is in progress'
    if sys.version_info >= (3, 12):
        assert errors[1] == 'unable to writelines; sendfile is in progress'
    else:
        assert errors[1] == 'unable to write; sendfile is in progress'


@pytest.mark.parametrize('kind', KINDS)
def test_peer_closes_in_the_middle(loop, data_file, sock_dir, kind):
    path, content = data_file

    async def main():
        before = fd_count()
        pair = await open_pair(loop, kind, sock_dir,
                               close_after=1024 * 1024)
        server, receiver, transport, sender = pair
        with open(path, 'rb') as f:
            with pytest.raises(ConnectionError):
                await loop.sendfile(transport, f)
            tell = f.tell()
        await receiver.done
        # Reading resumed: the transport sees the reset and closes.
        await sender.lost
        assert transport.is_closing()
        server.close()
        await server.wait_closed()
        return before, tell, len(receiver.data), fd_count()

    before, tell, nreceived, after = run_coro(loop, main())
    assert 1024 * 1024 <= nreceived < FILE_SIZE
    assert tell < FILE_SIZE
    if NATIVE:
        # (The fallback counts a chunk once all of it is sent: the peer
        # may have received part of the next one.)
        assert nreceived <= tell
    assert after == before


@pytest.mark.parametrize('kind', KINDS)
def test_forced_fallback(loop, data_file, sock_dir, kind, monkeypatch):
    # The fallback (reads and transport.write()) on a socket transport, as
    # when sendfile(2) cannot send the file.
    path, content = data_file

    async def not_available(transp, file, offset, count):
        raise asyncio.SendfileNotAvailableError('sendfile syscall is not supported')

    loop._sendfile_native = not_available

    async def main():
        pair = await open_pair(loop, kind, sock_dir)
        server, receiver, transport, sender = pair
        transport.write(b'<')
        with open(path, 'rb') as f:
            ret = await loop.sendfile(transport, f, 7, 2 * 1024 * 1024 + 3)
            tell = f.tell()
            with pytest.raises(asyncio.SendfileNotAvailableError,
                               match='not supported'):
                await loop.sendfile(transport, f, fallback=False)
            tell_after_refusal = f.tell()
        transport.write(b'>')
        assert transport.get_protocol() is sender
        assert sender.paused == sender.resumed
        await close_pair(*pair)
        return ret, tell, tell_after_refusal, bytes(receiver.data)

    ret, tell, tell2, received = run_coro(loop, main())
    assert ret == 2 * 1024 * 1024 + 3
    assert tell == tell2 == 7 + ret
    assert received == b'<' + content[7:7 + ret] + b'>'


def test_not_a_regular_file(loop, sock_dir):
    # No fileno(): sendfile(2) is not possible; the fallback sends it.
    payload = b'0123456789' * 10000

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        with pytest.raises(asyncio.SendfileNotAvailableError, match=not_available()):
            await loop.sendfile(transport, io.BytesIO(payload),
                                fallback=False)
        buf = io.BytesIO(payload)
        ret = await loop.sendfile(transport, buf, 5)
        tell = buf.tell()
        await close_pair(*pair)
        return ret, tell, bytes(receiver.data)

    ret, tell, received = run_coro(loop, main())
    assert ret == len(payload) - 5
    assert tell == len(payload)
    assert received == payload[5:]


@native_only
def test_pipe_as_file(loop, sock_dir):
    # A pipe has no size: with count=None nothing is sent (the stdlib's
    # "empty file"); with a count, sendfile(2) refuses it (EINVAL) before
    # sending anything and the fallback reads it, then fails to set the
    # file position (ESPIPE), as the stdlib's does.
    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        r, w = os.pipe()
        os.write(w, b'abcdef' * 100)
        os.close(w)
        with open(r, 'rb', buffering=0) as f:
            nothing = await loop.sendfile(transport, f)
            with pytest.raises(OSError) as info:
                await loop.sendfile(transport, f, count=300)
        await close_pair(*pair)
        return nothing, info.value.errno, bytes(receiver.data)

    nothing, code, received = run_coro(loop, main())
    assert nothing == 0
    assert code == errno.ESPIPE
    assert received == (b'abcdef' * 100)[:300]


def test_bad_arguments(loop, data_file, sock_dir, tmp_path):
    path, content = data_file
    text_path = tmp_path / 'text.txt'
    text_path.write_text('hello')

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        errors = []
        with open(path, 'rb') as f, open(text_path) as text:
            cases = [(text, 0, None), (f, -1, None), (f, 1.5, None),
                     (f, 0, 0), (f, 0, -5), (f, 0, 'x')]
            for file, offset, count in cases:
                with pytest.raises((ValueError, TypeError)) as info:
                    await loop.sendfile(transport, file, offset, count)
                errors.append((type(info.value), str(info.value)))
                assert transport.is_reading()
            tell = f.tell()
        transport.write(b'still works')
        await close_pair(*pair)
        return errors, tell, bytes(receiver.data)

    errors, tell, received = run_coro(loop, main())
    assert errors == [
        (ValueError, 'file should be opened in binary mode'),
        (ValueError, 'offset must be a non-negative integer (got -1)'),
        (TypeError, 'offset must be a non-negative integer (got 1.5)'),
        (ValueError, 'count must be a positive integer (got 0)'),
        (ValueError, 'count must be a positive integer (got -5)'),
        (TypeError, "count must be a positive integer (got 'x')"),
    ]
    assert tell == 0
    assert received == b'still works'


def test_closing_transport(loop, data_file, sock_dir):
    path, content = data_file

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        transport.close()
        with open(path, 'rb') as f:
            with pytest.raises(RuntimeError, match='^Transport is closing$'):
                await loop.sendfile(transport, f)
            tell = f.tell()
        await sender.lost
        await receiver.done
        server.close()
        await server.wait_closed()
        return tell, bytes(receiver.data)

    assert run_coro(loop, main()) == (0, b'')


def test_unsupported_transports(loop, data_file):
    # Datagram and pipe transports: the stdlib's RuntimeError.
    path, content = data_file

    async def main():
        messages = []
        lost = [loop.create_future(), loop.create_future()]

        class UdpProto(asyncio.DatagramProtocol):
            def connection_lost(self, exc):
                lost[0].set_result(None)

        class PipeProto(asyncio.Protocol):
            def connection_lost(self, exc):
                lost[1].set_result(None)

        udp, _ = await loop.create_datagram_endpoint(
            UdpProto, local_addr=('127.0.0.1', 0))
        r, w = os.pipe()
        wpipe, _ = await loop.connect_write_pipe(
            PipeProto, open(w, 'wb', buffering=0))
        try:
            with open(path, 'rb') as f:
                for t in (udp, wpipe):
                    with pytest.raises(RuntimeError) as info:
                        await loop.sendfile(t, f)
                    messages.append(str(info.value))
                tell = f.tell()
        finally:
            udp.close()
            wpipe.close()
            os.close(r)
            await asyncio.wait_for(asyncio.gather(*lost), 30)
        return messages, tell

    messages, tell = run_coro(loop, main())
    assert tell == 0
    for m in messages:
        assert m.startswith('sendfile is not supported for transport ')


def test_fallback_disabled_for_fallback_transport(loop, data_file, sock_dir):
    # A transport that only supports the fallback (TLS transports do).
    path, content = data_file

    class FallbackOnly(asyncio.transports._FlowControlMixin, asyncio.Transport):
        """A transport that forwards to a real one, the way a wrapping
        transport (TLS) would, and only supports the fallback."""
        _sendfile_compatible = constants._SendfileMode.FALLBACK

        def __init__(self, inner):
            super().__init__(loop=loop)
            self.inner = inner

        def is_closing(self):
            return self.inner.is_closing()

        def write(self, data):
            self.inner.write(data)

        def get_protocol(self):
            return self.inner.get_protocol()

        def set_protocol(self, protocol):
            self.inner.set_protocol(protocol)

        def is_reading(self):
            return self.inner.is_reading()

        def pause_reading(self):
            self.inner.pause_reading()

        def resume_reading(self):
            self.inner.resume_reading()

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        wrapped = FallbackOnly(transport)
        with open(path, 'rb') as f:
            with pytest.raises(RuntimeError, match='fallback is disabled'):
                await loop.sendfile(wrapped, f, fallback=False)
            ret = await loop.sendfile(wrapped, f, 10, 1024 * 1024)
            tell = f.tell()
        assert transport.get_protocol() is sender
        await close_pair(*pair)
        return ret, tell, bytes(receiver.data)

    ret, tell, received = run_coro(loop, main())
    assert ret == 1024 * 1024
    assert tell == 10 + ret
    assert received == content[10:10 + ret]


def test_empty_file(loop, sock_dir, tmp_path):
    empty = tmp_path / 'empty'
    empty.write_bytes(b'')

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        with open(empty, 'rb') as f:
            ret = await loop.sendfile(pair[2], f)
            tell = f.tell()
        await close_pair(*pair)
        return ret, tell, bytes(pair[1].data)

    assert run_coro(loop, main()) == (0, 0, b'')


@pytest.mark.only_loop('ourloop', reason='the stdlib leaves the position '
                       'where it was when a sendfile is cancelled')
def test_cancelled_sendfile(loop, data_file, sock_dir):
    # Cancelled in the middle: the transport is usable again, the file
    # position says how much was sent.
    path, content = data_file

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        with open(path, 'rb') as f:
            task = loop.create_task(loop.sendfile(transport, f, 50))
            await until(lambda: len(receiver.data) >= 1024 * 1024)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            tell = f.tell()
        assert transport.is_reading()
        transport.write(b'END')
        await close_pair(*pair)
        return tell, bytes(receiver.data)

    tell, received = run_coro(loop, main())
    assert 50 < tell < FILE_SIZE
    assert received == content[50:tell] + b'END'


@pytest.mark.only_loop('ourloop', reason='the stdlib loop never finishes a '
                       'sendfile whose transport was aborted')
def test_abort_during_sendfile(loop, data_file, sock_dir):
    path, content = data_file

    async def main():
        before = fd_count()
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        with open(path, 'rb') as f:
            task = loop.create_task(loop.sendfile(transport, f))
            await until(lambda: len(receiver.data) >= 1024 * 1024)
            transport.abort()
            with pytest.raises(ConnectionError):
                await task
            tell = f.tell()
        await sender.lost
        await receiver.done
        server.close()
        await server.wait_closed()
        return before, tell, len(receiver.data), fd_count()

    before, tell, nreceived, after = run_coro(loop, main())
    assert 0 < tell < FILE_SIZE
    assert nreceived <= tell
    assert after == before


@native_only
@pytest.mark.only_loop('ourloop', reason='the stdlib loop never finishes a '
                       'sendfile whose transport was closed')
def test_close_during_sendfile_waits_for_it(loop, data_file, sock_dir):
    # close() waits for the file as it waits for buffered data.
    path, content = data_file

    async def main():
        pair = await open_pair(loop, 'unix', sock_dir)
        server, receiver, transport, sender = pair
        with open(path, 'rb') as f:
            task = loop.create_task(loop.sendfile(transport, f))
            await asyncio.sleep(0)
            transport.close()
            assert transport.is_closing()
            ret = await task
        await sender.lost
        await receiver.done
        server.close()
        await server.wait_closed()
        return ret, bytes(receiver.data)

    ret, received = run_coro(loop, main())
    assert ret == FILE_SIZE
    assert received == content


# -- loop.sock_sendfile ---------------------------------------------------------


async def _drain_socket(loop, sock, slow=True, limit=None):
    """Read everything from sock (slowly) until EOF; returns the bytes."""
    got = bytearray()
    next_pause = PAUSE_EVERY
    while True:
        chunk = await loop.sock_recv(sock, 256 * 1024)
        if not chunk:
            return bytes(got)
        got += chunk
        if limit is not None and len(got) >= limit:
            return bytes(got)
        if slow and len(got) >= next_pause:
            next_pause += PAUSE_EVERY
            await asyncio.sleep(0.002)


def _socket_pair(kind):
    if kind == 'unix':
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(('127.0.0.1', 0))
        lsock.listen(1)
        a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        a.connect(lsock.getsockname())
        b, _ = lsock.accept()
        lsock.close()
    for s in (a, b):
        _small_buffers(s)
        s.setblocking(False)
    return a, b


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('offset,count', RANGES)
def test_sock_sendfile_large(loop, data_file, kind, offset, count):
    path, content = data_file
    expected = content[offset:offset + count if count else None]

    async def main():
        before = fd_count()
        a, b = _socket_pair(kind)
        with a, b, open(path, 'rb') as f:
            reader = loop.create_task(_drain_socket(loop, b))
            ret = await loop.sock_sendfile(a, f, offset, count)
            tell = f.tell()
            a.shutdown(socket.SHUT_WR)
            received = await reader
        return before, ret, tell, received, fd_count()

    before, ret, tell, received, after = run_coro(loop, main())
    assert ret == len(expected)
    assert tell == offset + len(expected)
    assert received == expected
    assert after == before


@pytest.mark.parametrize('kind', KINDS)
def test_sock_sendfile_mixed_with_sendall(loop, data_file, kind):
    path, content = data_file

    async def main():
        a, b = _socket_pair(kind)
        with a, b, open(path, 'rb') as f:
            reader = loop.create_task(_drain_socket(loop, b))
            await loop.sock_sendall(a, b'head')
            ret = await loop.sock_sendfile(a, f, 0, 1024 * 1024)
            await loop.sock_sendall(a, b'tail')
            a.shutdown(socket.SHUT_WR)
            received = await reader
        return ret, received

    ret, received = run_coro(loop, main())
    assert ret == 1024 * 1024
    assert received == b'head' + content[:ret] + b'tail'


def test_sock_sendfile_fallback(loop):
    payload = bytes(range(256)) * 1000

    async def main():
        a, b = _socket_pair('unix')
        with a, b:
            with pytest.raises(asyncio.SendfileNotAvailableError, match=not_available()):
                await loop.sock_sendfile(a, io.BytesIO(payload),
                                         fallback=False)
            reader = loop.create_task(_drain_socket(loop, b))
            buf = io.BytesIO(payload)
            ret = await loop.sock_sendfile(a, buf, 3, 100000)
            a.shutdown(socket.SHUT_WR)
            return ret, buf.tell(), await reader

    ret, tell, received = run_coro(loop, main())
    assert ret == 100000
    assert tell == 100003
    assert received == payload[3:100003]


def test_sock_sendfile_bad_arguments(loop, data_file, tmp_path):
    path, content = data_file
    text_path = tmp_path / 'text.txt'
    text_path.write_text('hello')

    async def main():
        errors = []
        a, b = _socket_pair('unix')
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        with a, b, udp, open(path, 'rb') as f, open(text_path) as text:
            cases = [(a, text, 0, None), (udp, f, 0, None), (a, f, -1, None),
                     (a, f, None, None), (a, f, 0, 0), (a, f, 0, 2.0)]
            for sock, file, offset, count in cases:
                with pytest.raises((ValueError, TypeError)) as info:
                    await loop.sock_sendfile(sock, file, offset, count)
                errors.append((type(info.value), str(info.value)))
            # Debug mode: the socket must be non-blocking.
            loop.set_debug(True)
            a.setblocking(True)
            try:
                with pytest.raises(ValueError,
                                   match='the socket must be non-blocking'):
                    await loop.sock_sendfile(a, f)
            finally:
                a.setblocking(False)
                loop.set_debug(False)
            tell = f.tell()
        return errors, tell

    errors, tell = run_coro(loop, main())
    assert errors == [
        (ValueError, 'file should be opened in binary mode'),
        (ValueError, 'only SOCK_STREAM type sockets are supported'),
        (ValueError, 'offset must be a non-negative integer (got -1)'),
        (TypeError, 'offset must be a non-negative integer (got None)'),
        (ValueError, 'count must be a positive integer (got 0)'),
        (TypeError, 'count must be a positive integer (got 2.0)'),
    ]
    assert tell == 0


def test_sock_sendfile_empty_file(loop, tmp_path):
    empty = tmp_path / 'empty'
    empty.write_bytes(b'')

    async def main():
        a, b = _socket_pair('tcp')
        with a, b, open(empty, 'rb') as f:
            return await loop.sock_sendfile(a, f), f.tell()

    assert run_coro(loop, main()) == (0, 0)


@pytest.mark.parametrize('kind', KINDS)
def test_sock_sendfile_peer_closes(loop, data_file, kind):
    path, content = data_file

    async def main():
        before = fd_count()
        a, b = _socket_pair(kind)
        with a, open(path, 'rb') as f:
            async def read_then_close():
                got = await _drain_socket(loop, b, limit=1024 * 1024)
                b.close()   # unread data left: the sender gets a reset
                return len(got)
            reader = loop.create_task(read_then_close())
            with pytest.raises(ConnectionError):
                await loop.sock_sendfile(a, f)
            tell = f.tell()
            nreceived = await reader
        return before, tell, nreceived, fd_count()

    before, tell, nreceived, after = run_coro(loop, main())
    assert 1024 * 1024 <= nreceived < FILE_SIZE
    assert tell < FILE_SIZE
    if NATIVE:
        # (The fallback counts a chunk once all of it is sent.)
        assert nreceived <= tell
    assert after == before


@native_only
def test_sock_sendfile_on_transport_socket(loop, data_file, sock_dir):
    # A transport's socket belongs to the transport (the stdlib refuses to
    # watch it).
    path, content = data_file

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        sock = transport.get_extra_info('socket')
        with open(path, 'rb') as f:
            with pytest.raises(RuntimeError, match='is used by transport'):
                await loop.sock_sendfile(sock, f)
        await close_pair(*pair)

    run_coro(loop, main())


@pytest.mark.parametrize('kind', KINDS)
def test_sendfile_from_accepted_transport(loop, data_file, sock_dir, kind):
    # The server side sends: its transport owns the accepted fd (the
    # client here connects by address, so it owns its fd too).
    path, content = data_file

    async def main():
        before = fd_count()
        results = loop.create_future()

        class Serving(asyncio.Protocol):
            def connection_made(self, transport):
                async def send():
                    try:
                        with open(path, 'rb') as f:
                            ret = await loop.sendfile(transport, f, 3)
                            results.set_result((ret, f.tell()))
                    except BaseException as exc:
                        results.set_exception(exc)
                    transport.close()
                loop.create_task(send())

        if kind == 'tcp':
            server = await loop.create_server(Serving, '127.0.0.1', 0)
            host, port = server.sockets[0].getsockname()[:2]
            transport, receiver = await loop.create_connection(
                lambda: Receiver(loop), host, port)
        else:
            spath = os.path.join(sock_dir, 's')
            server = await loop.create_unix_server(Serving, spath)
            transport, receiver = await loop.create_unix_connection(
                lambda: Receiver(loop), spath)
        ret, tell = await results
        await receiver.done
        server.close()
        await server.wait_closed()
        return before, ret, tell, bytes(receiver.data), fd_count()

    before, ret, tell, received, after = run_coro(loop, main())
    assert ret == FILE_SIZE - 3
    assert tell == FILE_SIZE
    assert received == content[3:]
    assert after == before


def test_fallback_keeps_flow_control_paired(loop, loop_kind, data_file, sock_dir):
    # Writing is paused when the fallback starts: the protocol gets its
    # transport back with pause_writing()/resume_writing() still paired.
    path, content = data_file

    async def not_available(transp, file, offset, count):
        raise asyncio.SendfileNotAvailableError('sendfile syscall is not supported')

    loop._sendfile_native = not_available
    big = b'B' * (4 * 1024 * 1024)

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        receiver.transport.pause_reading()
        transport.write(big)
        assert sender.paused == 1
        loop.call_later(0.01, receiver.transport.resume_reading)
        with open(path, 'rb') as f:
            ret = await loop.sendfile(transport, f, 0, 1024 * 1024)
        transport.write(b'!')
        await close_pair(*pair)
        return ret, sender.paused, sender.resumed, bytes(receiver.data)

    ret, paused, resumed, received = run_coro(loop, main())
    assert ret == 1024 * 1024
    assert len(received) == len(big) + ret + 1
    if loop_kind == 'asyncio' and sys.version_info >= (3, 12):
        # 3.12+'s stdlib transport keeps a view of what it could not send,
        # and the stdlib's fallback reuses its read buffer: what is sent
        # may have been overwritten by the next read (a stdlib bug, see
        # docs/conformance.md). ourloop's fallback reads into new buffers.
        pass
    else:
        assert received == big + content[:ret] + b'!'
    assert paused >= 1
    assert paused == resumed


@pytest.mark.only_loop('ourloop', reason="the stdlib's fallback reuses its "
                       'read buffer, so a transport that keeps what it is '
                       'given sends overwritten data')
def test_fallback_on_a_transport_that_keeps_buffers(loop, data_file, sock_dir):
    # A wrapping transport (a TLS layer may do this) that holds the objects
    # write() gives it until the next loop iteration.
    path, content = data_file

    class Deferring(asyncio.transports._FlowControlMixin, asyncio.Transport):
        _sendfile_compatible = constants._SendfileMode.FALLBACK

        def __init__(self, inner):
            super().__init__(loop=loop)
            self.inner = inner
            self.held = []

        def is_closing(self):
            return self.inner.is_closing()

        def write(self, data):
            if not self.held:
                loop.call_soon(self._flush)
            self.held.append(data)   # no copy

        def _flush(self):
            held, self.held = self.held, []
            for data in held:
                self.inner.write(data)

        def get_protocol(self):
            return self.inner.get_protocol()

        def set_protocol(self, protocol):
            self.inner.set_protocol(protocol)

        def is_reading(self):
            return self.inner.is_reading()

        def pause_reading(self):
            self.inner.pause_reading()

        def resume_reading(self):
            self.inner.resume_reading()

    async def main():
        pair = await open_pair(loop, 'tcp', sock_dir)
        server, receiver, transport, sender = pair
        wrapped = Deferring(transport)
        with open(path, 'rb') as f:
            ret = await loop.sendfile(wrapped, f, 0, 3 * 1024 * 1024 + 5)
        await asyncio.sleep(0)
        await close_pair(*pair)
        return ret, bytes(receiver.data)

    ret, received = run_coro(loop, main())
    assert ret == 3 * 1024 * 1024 + 5
    assert received == content[:ret]
