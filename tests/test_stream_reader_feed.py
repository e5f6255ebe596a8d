"""Reads reach an asyncio StreamReader the way StreamReaderProtocol sends them.

ourloop skips StreamReaderProtocol.data_received() and its _stream_reader
property for an exact StreamReaderProtocol (handles/stream.pyx,
_feed_stream_reader) and calls reader.feed_data() itself. Whatever replaces
one of these methods (on the class, on the instance, in a subclass) must
still be called, as with the stdlib's loop.
"""

import asyncio
import contextlib
import socket
from unittest import mock

import pytest

TIMEOUT = 10


async def _streams_pair(loop, protocol_factory=None):
    # A StreamReader/StreamWriter over one end of a socketpair (as
    # open_connection() makes them), and the other end.
    mine, theirs = socket.socketpair()
    theirs.setblocking(False)
    reader = asyncio.StreamReader(loop=loop)
    protocol = (protocol_factory or asyncio.StreamReaderProtocol)(reader, loop=loop)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, mine)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, protocol, theirs


def _run(loop, patch, check):
    async def main():
        reader, writer, protocol, peer = await _streams_pair(loop)
        seen = []
        try:
            with patch(reader, protocol, seen):
                await loop.sock_sendall(peer, b'hello')
                got = await asyncio.wait_for(reader.read(100), TIMEOUT)
                await loop.sock_sendall(peer, b'world')
                got += await asyncio.wait_for(reader.read(100), TIMEOUT)
        finally:
            writer.close()
            peer.close()
        return got, seen

    got, seen = loop.run_until_complete(main())
    check(got, seen)


def test_plain_streams_get_the_data(loop):
    def patch(reader, protocol, seen):
        return contextlib.nullcontext()

    def check(got, seen):
        assert got == b'helloworld'

    _run(loop, patch, check)


@pytest.mark.parametrize('where', ['class', 'instance'])
def test_replaced_data_received_is_called(loop, where):
    original = asyncio.StreamReaderProtocol.data_received

    def patch(reader, protocol, seen):
        def data_received(*args):
            data = args[-1]
            seen.append(data)
            return original(protocol, data.upper())
        if where == 'class':
            return mock.patch.object(asyncio.StreamReaderProtocol, 'data_received',
                                     lambda self, data: data_received(data))
        return mock.patch.object(protocol, 'data_received', data_received)

    def check(got, seen):
        assert got == b'HELLOWORLD'
        assert seen == [b'hello', b'world']

    _run(loop, patch, check)


@pytest.mark.parametrize('where', ['class', 'instance'])
def test_replaced_feed_data_is_called(loop, where):
    original = asyncio.StreamReader.feed_data

    def patch(reader, protocol, seen):
        def feed_data(*args):
            data = args[-1]
            seen.append(data)
            return original(reader, data[::-1])
        if where == 'class':
            return mock.patch.object(asyncio.StreamReader, 'feed_data',
                                     lambda self, data: feed_data(data))
        return mock.patch.object(reader, 'feed_data', feed_data)

    def check(got, seen):
        assert got == b'ollehdlrow'
        assert seen == [b'hello', b'world']

    _run(loop, patch, check)


def test_replaced_stream_reader_property_is_used(loop):
    async def main():
        reader, writer, protocol, peer = await _streams_pair(loop)
        seen = []
        other = asyncio.StreamReader()

        def get(self):
            seen.append('property')
            return reader if len(seen) == 1 else other
        try:
            with mock.patch.object(asyncio.StreamReaderProtocol, '_stream_reader',
                                   property(get)):
                await loop.sock_sendall(peer, b'hello')
                got = await asyncio.wait_for(reader.read(100), TIMEOUT)
                await loop.sock_sendall(peer, b'world')
                while not other._buffer:
                    await asyncio.sleep(0.01)
        finally:
            writer.close()
            peer.close()
        return got, bytes(other._buffer), seen

    got, other_got, seen = loop.run_until_complete(main())
    assert (got, other_got) == (b'hello', b'world')
    assert seen == ['property', 'property']


def test_subclass_data_received_is_called(loop):
    seen = []

    class Proto(asyncio.StreamReaderProtocol):
        def data_received(self, data):
            seen.append(data)
            super().data_received(data)

    async def main():
        reader, writer, protocol, peer = await _streams_pair(loop, Proto)
        try:
            await loop.sock_sendall(peer, b'hello')
            return await asyncio.wait_for(reader.read(100), TIMEOUT)
        finally:
            writer.close()
            peer.close()

    assert loop.run_until_complete(main()) == b'hello'
    assert seen == [b'hello']


def test_reader_gone_drops_the_data(loop):
    # The protocol refers to its reader weakly: once the reader is gone,
    # data is dropped without error.
    errors = []

    async def main():
        loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))
        mine, peer = socket.socketpair()
        peer.setblocking(False)
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, mine)
        del reader
        import gc
        gc.collect()
        assert protocol._stream_reader is None
        try:
            await loop.sock_sendall(peer, b'hello')
            for _ in range(10):
                await asyncio.sleep(0.01)
            return transport.is_closing()
        finally:
            transport.close()
            peer.close()

    assert loop.run_until_complete(main()) is False
    assert errors == []


def test_feed_after_eof_fails_the_transport(loop):
    # feed_data() after feed_eof() asserts (the stdlib's check): the
    # transport reports the protocol's failure and closes.
    errors = []

    async def main():
        loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))
        reader, writer, protocol, peer = await _streams_pair(loop)
        reader.feed_eof()
        try:
            await loop.sock_sendall(peer, b'hello')
            for _ in range(100):
                if writer.transport.is_closing():
                    break
                await asyncio.sleep(0.01)
            return writer.transport.is_closing()
        finally:
            writer.close()
            peer.close()

    assert loop.run_until_complete(main()) is True
    assert len(errors) == 1
    assert isinstance(errors[0]['exception'], AssertionError)
    assert errors[0]['message'] == 'Fatal error: protocol.data_received() call failed.'
