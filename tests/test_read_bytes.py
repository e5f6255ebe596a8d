"""The bytes objects that data_received() gets.

ourloop reuses the bytes object of a read (or of a write) that nobody kept
for a later read (handles/stream.pyx, _read_data). Whatever the protocol
keeps must never change afterwards, and each bytes object must behave as a
fresh one: its content, length and hash are those of the data read.
"""

import asyncio
import hashlib
import socket

import pytest

TIMEOUT = 10

# Sizes of consecutive messages: equal, growing, shrinking, tiny, large
# (the largest ones may arrive in several reads).
SIZES = [1024, 1024, 1024, 600, 1024, 300, 2000, 2000, 1500, 10, 2, 1, 70000,
         100000, 50, 4096, 4096, 2048, 4096, 300000, 1024, 1024]


def _message(i, size):
    return bytes((i * 7 + j) % 251 for j in range(min(size, 251))) * (size // 251) + \
        bytes((i * 7 + j) % 251 for j in range(size % 251))


class Receiver(asyncio.Protocol):
    """Keeps every other read; checks each one as it arrives."""

    def __init__(self):
        self.kept = []          # (bytes object, its sha1 when it arrived)
        self.copies = []        # a copy of every read, in order
        self.bad_hash = 0
        self.received = 0
        self.waiter = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        copy = bytes(bytearray(data))
        self.copies.append(copy)
        if hash(data) != hash(copy) or {copy: 1}.get(data) != 1 or len(data) != len(copy):
            self.bad_hash += 1
        if len(self.copies) % 2:
            self.kept.append((data, hashlib.sha1(data).digest()))
        self.received += len(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def _exchange(loop, send, receiver):
    # One message at a time: the next leaves when the whole of this one
    # has arrived, so reads follow the sizes above.
    total = 0
    for i, size in enumerate(SIZES):
        msg = _message(i, size)
        total += size
        send(msg)
        while receiver.received < total:
            receiver.waiter = loop.create_future()
            await asyncio.wait_for(receiver.waiter, TIMEOUT)


def _check(receiver):
    expected = b''.join(_message(i, size) for i, size in enumerate(SIZES))
    assert b''.join(receiver.copies) == expected
    assert receiver.bad_hash == 0
    for data, digest in receiver.kept:
        assert hashlib.sha1(data).digest() == digest


@pytest.mark.parametrize('family', ['tcp', 'unix'])
def test_kept_reads_never_change(loop, family):
    async def main():
        if family == 'unix':
            mine, theirs = socket.socketpair()
        else:
            with socket.socket() as listener:
                listener.bind(('127.0.0.1', 0))
                listener.listen(1)
                theirs = socket.create_connection(listener.getsockname())
                mine, _ = listener.accept()
        try:
            receiver = Receiver()
            transport, _ = await loop.connect_accepted_socket(lambda: receiver, mine)
            theirs.setblocking(False)

            def send(msg):
                return loop.sock_sendall(theirs, msg)

            total = 0
            for i, size in enumerate(SIZES):
                total += size
                await send(_message(i, size))
                while receiver.received < total:
                    receiver.waiter = loop.create_future()
                    await asyncio.wait_for(receiver.waiter, TIMEOUT)
            transport.close()
            _check(receiver)
        finally:
            theirs.close()

    loop.run_until_complete(main())


def test_echoed_reads_never_change(loop):
    # The server writes each read back (its bytes object is freed, or
    # reused by ourloop, once the kernel took it); the client keeps every
    # other echo.
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0)
        receiver = Receiver()
        transport, _ = await loop.create_connection(
            lambda: receiver, *server.sockets[0].getsockname())
        await _exchange(loop, transport.write, receiver)
        transport.close()
        server.close()
        await server.wait_closed()
        _check(receiver)

    loop.run_until_complete(main())


def test_written_bytes_kept_by_the_caller_never_change(loop):
    # A bytes object the protocol wrote and still refers to is not reused.
    sent = []

    class KeepingEcho(Echo):
        def data_received(self, data):
            echo = bytes(bytearray(data))      # a new object, only ours
            sent.append((echo, bytes(bytearray(echo))))
            self.transport.write(echo)

    async def main():
        server = await loop.create_server(KeepingEcho, '127.0.0.1', 0)
        receiver = Receiver()
        transport, _ = await loop.create_connection(
            lambda: receiver, *server.sockets[0].getsockname())
        await _exchange(loop, transport.write, receiver)
        transport.close()
        server.close()
        await server.wait_closed()
        _check(receiver)

    loop.run_until_complete(main())
    assert sent and all(a == b for a, b in sent)
