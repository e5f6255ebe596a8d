"""The contextvars context each protocol callback runs in, on both loops.

The stdlib's loop runs protocol callbacks in copies of contexts taken at
precise moments (selector_events.py, unix_events.py, sslproto.py,
base_subprocess.py), and these tests observe them with a ContextVar set
in distinct places:

- a server's accept callback is registered (add_reader) when serving
  starts: in create_server(), or in start_serving()/serve_forever() after
  create_server(start_serving=False). Each connection is set up in a task
  made from it: the protocol factory and every callback of the connection
  see that context, plus what the factory set in it, and no other
  connection's changes (TCP, Unix, TLS servers alike);
- a transport's reader is registered from its __init__ (the context of
  create_connection() and co.), and again by resume_reading(), in the
  caller's context; every read runs in the same registration's context;
- its writer is registered by the first write()/sendto() since the buffer
  was empty that the kernel does not take whole: resume_writing() and the
  connection_lost() of a close() that waited for the buffer run there;
- a child's exit is reported from a pidfd reader registered by
  subprocess_exec() (3.12+), or from a watcher thread (3.9-3.11: an empty
  context).
"""

import asyncio
import contextvars
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from support import run_coro, unix_dgram_pair

TIMEOUT = 20
PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
BIG = 8 * 1024 * 1024

cv = contextvars.ContextVar('cv', default='default')
mark = contextvars.ContextVar('mark', default=None)



async def in_context(value, fn, *args):
    """Call fn(*args) (awaiting the result if it is awaitable) in a new
    task whose cv is value; returns the result."""
    async def body():
        cv.set(value)
        result = fn(*args)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        return result
    return await asyncio.ensure_future(body())


@pytest.fixture
def sock_dir():
    # AF_UNIX paths are short: not pytest's tmp_path.
    path = tempfile.mkdtemp(prefix='ol-ctx-', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Seen:
    """Records (callback name, cv, mark) for each protocol callback;
    until(name) waits for a callback. Subclassed per protocol kind."""

    def __init__(self, loop, on_made=None, on_data=None):
        self.loop = loop
        self.seen = []
        self.transport = None
        self.received = bytearray()
        self.on_made = on_made
        self.on_data = on_data
        self._changed = loop.create_future()
        self.lost = loop.create_future()

    def note(self, name):
        self.seen.append((name, cv.get(), mark.get()))
        if not self._changed.done():
            self._changed.set_result(None)

    def cvs(self, name):
        """The cv values the callback `name` saw, in order."""
        return [value for n, value, _ in self.seen if n == name]

    def marks(self, name):
        return [value for n, _, value in self.seen if n == name]

    def names(self):
        return [n for n, _, _ in self.seen]

    async def until(self, predicate):
        if isinstance(predicate, str):
            name = predicate
            predicate = lambda: name in self.names()  # noqa: E731
        while not predicate():
            self._changed = self.loop.create_future()
            await self._changed

    def connection_made(self, transport):
        self.transport = transport
        self.note('connection_made')
        if self.on_made is not None:
            self.on_made(self)

    def connection_lost(self, exc):
        self.note('connection_lost')
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self):
        self.note('pause_writing')

    def resume_writing(self):
        self.note('resume_writing')


class StreamSeen(Seen, asyncio.Protocol):
    def data_received(self, data):
        self.received += data
        self.note('data_received')
        if self.on_data is not None:
            self.on_data(self, data)

    def eof_received(self):
        self.note('eof_received')


class BufferedSeen(Seen, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint):
        self.note('get_buffer')
        self.buf = bytearray(1024)
        return self.buf

    def buffer_updated(self, nbytes):
        self.received += self.buf[:nbytes]
        self.note('buffer_updated')
        if self.on_data is not None:
            self.on_data(self, bytes(self.buf[:nbytes]))

    def eof_received(self):
        self.note('eof_received')


def echo(p, data):
    p.transport.write(data)


# -- servers -------------------------------------------------------------------


async def start_server(loop, kind, factory, certs, sock_dir, **kwargs):
    """A server of `kind`; returns (server, connect) where connect(factory)
    is the matching client's create_*_connection()."""
    tls = kind.startswith('tls')
    ssl_server = certs.server_context() if tls else None
    ssl_client = certs.client_context() if tls else None
    client_kw = dict(ssl=ssl_client, server_hostname='localhost') if tls else {}
    if kind.endswith('unix'):
        path = os.path.join(sock_dir, 's')
        server = await loop.create_unix_server(factory, path, ssl=ssl_server, **kwargs)

        def connect(client_factory):
            return loop.create_unix_connection(client_factory, path, **client_kw)
    else:
        server = await loop.create_server(factory, '127.0.0.1', 0, ssl=ssl_server, **kwargs)
        port = server.sockets[0].getsockname()[1]

        def connect(client_factory):
            return loop.create_connection(client_factory, '127.0.0.1', port, **client_kw)
    return server, connect


def make_factory(loop, made, protocol=StreamSeen):
    """A protocol factory recording what it sees, then setting mark."""
    def factory():
        p = protocol(loop, on_data=echo)
        p.factory_saw = (cv.get(), mark.get())
        mark.set('factory')
        made.append(p)
        return p
    return factory



def recording(make):
    """(factory, made): factory() returns make() and records it in made."""
    made = []

    def factory():
        protocol = make()
        made.append(protocol)
        return protocol

    return factory, made


async def one_exchange(loop, connect, tls):
    """From a client task whose cv is 'client': connect, send, get the
    echo, close (half-close first without TLS); returns the client's
    protocol once its connection is lost."""
    async def client():
        cv.set('client')
        transport, p = await connect(lambda: StreamSeen(loop))
        transport.write(b'ping')
        await p.until(lambda: bytes(p.received) == b'ping')
        if tls:
            transport.close()
        else:
            transport.write_eof()
        await p.lost
        return p
    return await asyncio.ensure_future(client())


@pytest.mark.parametrize('kind', ['tcp', 'unix', 'tls', 'tls-unix'])
def test_server_callbacks_see_create_server_context(loop, kind, tls_certs, sock_dir):
    # TCP, Unix and TLS servers: every server-side callback sees the
    # context of create_server(), whatever the current context is when
    # the connection comes; the factory's changes are seen by its
    # connection only.
    async def main():
        made = []
        cv.set('create')
        server, connect = await start_server(
            loop, kind, make_factory(loop, made), tls_certs, sock_dir)
        cv.set('after create_server')
        tls = kind.startswith('tls')
        clients = [await one_exchange(loop, connect, tls) for _ in range(2)]
        for p in made:
            await p.lost
        server.close()
        await server.wait_closed()
        return made, clients

    made, clients = run_coro(loop, main())
    assert len(made) == 2
    for p in made:
        assert p.factory_saw == ('create', None)
        names = set(p.names())
        assert {'connection_made', 'data_received', 'connection_lost'} <= names
        for name in names:
            assert set(p.cvs(name)) == {'create'}, (name, p.seen)
        assert set(p.marks('connection_made')) == {'factory'}
        assert set(p.marks('data_received')) == {'factory'}
    for p in clients:
        assert {value for _, value, _ in p.seen} == {'client'}, p.seen


@pytest.mark.parametrize('debug', [False, True], ids=['nodebug', 'debug'])
@pytest.mark.parametrize('protocol', [StreamSeen, BufferedSeen], ids=['stream', 'buffered'])
def test_tcp_server_every_callback(loop, protocol, debug):
    # Every callback of an accepted connection, for a Protocol and a
    # BufferedProtocol, with and without debug mode (whose reads are
    # Handles): eof_received and connection_lost too, and a change made
    # in data_received is seen by the later reads (one reader
    # registration) and by what it schedules.
    loop.set_debug(debug)

    def changing_echo(p, data):
        p.transport.write(data)
        cv.set('changed by data_received')

    async def main():
        made = []

        def factory():
            p = protocol(loop, on_data=changing_echo)
            p.factory_saw = cv.get()
            made.append(p)
            return p

        cv.set('create')
        server = await loop.create_server(factory, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        cv.set('main')
        transport, cp = await loop.create_connection(
            lambda: StreamSeen(loop), '127.0.0.1', port)
        transport.write(b'x')
        await cp.until(lambda: cp.received == b'x')
        transport.write_eof()
        await cp.lost
        await made[0].lost
        server.close()
        await server.wait_closed()
        return made[0]

    p = run_coro(loop, main())
    assert p.factory_saw == 'create'
    data = 'data_received' if protocol is StreamSeen else 'buffer_updated'
    assert p.cvs('connection_made') == ['create']
    assert p.cvs(data) == ['create']
    if protocol is BufferedSeen:
        assert set(p.cvs('get_buffer')) <= {'create', 'changed by data_received'}
        assert p.cvs('get_buffer')[0] == 'create'
    assert p.cvs('eof_received') == ['changed by data_received']
    assert p.cvs('connection_lost') == ['changed by data_received']


@pytest.mark.parametrize('how', ['start_serving', 'serve_forever'])
def test_server_started_later_uses_that_context(loop, how):
    # create_server(start_serving=False): the context is the one
    # start_serving() or serve_forever() is called in.
    async def main():
        made = []
        cv.set('create')
        server = await loop.create_server(
            make_factory(loop, made), '127.0.0.1', 0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        forever = None
        if how == 'start_serving':
            await in_context('start', server.start_serving)
        else:
            forever = asyncio.ensure_future(in_context('start', server.serve_forever))
            while not server.is_serving():
                await asyncio.sleep(0)
        cv.set('after start')

        def connect(factory):
            return loop.create_connection(factory, '127.0.0.1', port)
        await one_exchange(loop, connect, False)
        await made[0].lost
        server.close()
        if forever is not None:
            with pytest.raises(asyncio.CancelledError):
                await forever
        await server.wait_closed()
        return made[0]

    p = run_coro(loop, main())
    assert p.factory_saw == ('start', None)
    for name in ('connection_made', 'data_received', 'eof_received', 'connection_lost'):
        assert p.cvs(name) == ['start'], (name, p.seen)


def test_start_serving_twice_keeps_first_context(loop):
    # A second start_serving() (or serve_forever()) does not register the
    # accept callback again: the first context stays.
    async def main():
        made = []
        server = await loop.create_server(
            make_factory(loop, made), '127.0.0.1', 0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        await in_context('first', server.start_serving)
        await in_context('second', server.start_serving)

        def connect(factory):
            return loop.create_connection(factory, '127.0.0.1', port)
        await one_exchange(loop, connect, False)
        await made[0].lost
        server.close()
        await server.wait_closed()
        return made[0]

    p = run_coro(loop, main())
    assert p.factory_saw == ('first', None)
    assert set(p.cvs('data_received')) == {'first'}


def test_streams_server_handler_sees_create_context(loop):
    # asyncio.start_server(): the client_connected_cb task is made from
    # the connection's context.
    async def main():
        seen = []
        done = loop.create_future()

        async def handler(reader, writer):
            seen.append(cv.get())
            writer.write(await reader.read(10))
            writer.close()
            done.set_result(None)

        cv.set('create')
        server = await asyncio.start_server(handler, '127.0.0.1', 0)
        cv.set('main')
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b'x')
        assert await reader.read(10) == b'x'
        writer.close()
        await done
        server.close()
        await server.wait_closed()
        return seen

    assert run_coro(loop, main()) == ['create']


# -- clients -------------------------------------------------------------------


@pytest.mark.parametrize('kind', ['tcp', 'unix', 'tls', 'tls-unix', 'accepted'])
def test_client_callbacks_see_caller_context(loop, kind, tls_certs, sock_dir):
    # create_connection(), create_unix_connection() (with TLS too) and
    # connect_accepted_socket(): the context of the call.
    async def main():
        made = []
        server, connect = await start_server(
            loop, 'tcp' if kind == 'accepted' else kind,
            make_factory(loop, made), tls_certs, sock_dir)
        if kind == 'accepted':
            a, b = socket.socketpair()

            def connect(factory):  # noqa: F811
                return loop.connect_accepted_socket(factory, a)
            peer = await loop.connect_accepted_socket(
                lambda: StreamSeen(loop, on_data=echo), b)
        p = await one_exchange(loop, connect, kind.startswith('tls'))
        if kind == 'accepted':
            await peer[1].lost
        server.close()
        await server.wait_closed()
        return p

    p = run_coro(loop, main())
    assert {'connection_made', 'data_received', 'connection_lost'} <= set(p.names())
    assert {value for _, value, _ in p.seen} == {'client'}, p.seen


# -- flow control: resume_reading, resume_writing -----------------------------------


def pause_on_made(p):
    p.transport.pause_reading()


async def paused_connection(loop, tls_certs=None):
    """A server created in cv 'create' whose protocol pauses reading in
    connection_made(), and a client connected to it in cv 'main' (over
    TLS with tls_certs). The cv changes stay in the caller's context.
    Returns (server, client transport, client protocol, server protocol)
    once the server side is made."""
    factory, made = recording(lambda: StreamSeen(loop, on_made=pause_on_made))
    tls = {} if tls_certs is None else dict(ssl=tls_certs.client_context(),
                                           server_hostname='localhost')
    cv.set('create')
    server = await loop.create_server(
        factory, '127.0.0.1', 0,
        ssl=None if tls_certs is None else tls_certs.server_context())
    port = server.sockets[0].getsockname()[1]
    cv.set('main')
    transport, cp = await loop.create_connection(
        lambda: StreamSeen(loop), '127.0.0.1', port, **tls)
    await made[0].until('connection_made')
    return server, transport, cp, made[0]


async def write_completed(protocol, transport, close):
    """The end of a write-completion test, once the peer reads again: the
    close() made while the buffer was full completes, or (not close)
    resume_writing() comes and then a close() with nothing buffered."""
    if close:
        await protocol.lost
    else:
        await protocol.until('resume_writing')
        transport.close()
        await protocol.lost


def assert_write_completion_contexts(protocol, writer, close):
    # pause_writing() and resume_writing() in the writer's context, and
    # the connection_lost() of a close() that waited for the buffer too;
    # an immediate close() runs it in the caller's ('main').
    assert protocol.cvs('pause_writing') == [writer]
    assert protocol.cvs('resume_writing') == [writer]
    assert protocol.cvs('connection_lost') == [writer if close else 'main']


def test_reads_after_resume_reading_run_in_resumer_context(loop):
    # resume_reading() registers the reader again: later reads (and EOF)
    # run in (a copy of) the context resume_reading() was called in.
    async def main():
        server, transport, cp, sp = await paused_connection(loop)
        transport.write(b'a')
        await in_context('resumer', sp.transport.resume_reading)
        await sp.until(lambda: sp.received == b'a')
        transport.write(b'b')
        await sp.until(lambda: sp.received == b'ab')
        # Resuming a transport that is not paused changes nothing.
        await in_context('not paused', sp.transport.resume_reading)
        transport.write_eof()
        await sp.lost
        transport.close()
        await cp.lost
        server.close()
        await server.wait_closed()
        return sp

    sp = run_coro(loop, main())
    assert sp.cvs('connection_made') == ['create']
    assert set(sp.cvs('data_received')) == {'resumer'}
    assert sp.cvs('eof_received') == ['resumer']
    assert sp.cvs('connection_lost') == ['resumer']


def test_resume_reading_from_data_received(loop):
    # pause_reading() and resume_reading() from data_received() itself
    # (the read's context is replaced while it is entered).
    def pause_resume(p, data):
        p.transport.pause_reading()
        cv.set('in data_received')
        p.transport.resume_reading()

    async def main():
        factory, made = recording(lambda: StreamSeen(loop, on_data=pause_resume))

        cv.set('create')
        server = await loop.create_server(factory, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, cp = await loop.create_connection(
            lambda: StreamSeen(loop), '127.0.0.1', port)
        transport.write(b'a')
        await made[0].until(lambda: made[0].received == b'a')
        transport.write(b'b')
        await made[0].until(lambda: made[0].received == b'ab')
        transport.close()
        await made[0].lost
        await cp.lost
        server.close()
        await server.wait_closed()
        return made[0]

    sp = run_coro(loop, main())
    assert sp.cvs('data_received') == ['create', 'in data_received']
    assert sp.cvs('connection_lost') == ['in data_received']


@pytest.mark.parametrize('close', [False, True], ids=['resume', 'close'])
def test_write_completion_runs_in_writer_context(loop, close):
    # resume_writing(), and the connection_lost() of a close() that waited
    # for the buffer, run in the context of the write() that found the
    # buffer empty (the stdlib's writer registration), not in the
    # closer's or the reader's.
    async def main():
        server, transport, cp, sp = await paused_connection(loop)
        await in_context('writer', transport.write, b'x' * BIG)
        assert cp.names() == ['connection_made', 'pause_writing']
        # More writes while the buffer is full do not change it.
        await in_context('second writer', transport.write, b'y')
        if close:
            await in_context('closer', transport.close)
        await in_context('resumer', sp.transport.resume_reading)
        await sp.until(lambda: len(sp.received) == BIG + 1)
        await write_completed(cp, transport, close)
        sp.transport.close()
        await sp.lost
        server.close()
        await server.wait_closed()
        return cp

    cp = run_coro(loop, main())
    assert_write_completion_contexts(cp, 'writer', close)


def write_in(value, transport, data):
    """transport.write(data) in a copy of the current context whose cv is
    value, synchronously (so that writes made one after the other stay in
    the same loop iteration)."""
    def body():
        cv.set(value)
        transport.write(data)
    contextvars.copy_context().run(body)


@pytest.mark.parametrize('close', [False, True], ids=['resume', 'close'])
@pytest.mark.parametrize('first_size', [1, 1000])
def test_writer_is_first_write_not_sent_whole(loop, close, first_size):
    # Two writes in one step, in two contexts: the first is small and the
    # kernel takes it whole, so the stdlib's writer is registered by the
    # second, which it cannot take whole. resume_writing() and a waiting
    # close()'s connection_lost() run in the second write's context.
    async def main():
        server, transport, cp, sp = await paused_connection(loop)
        write_in('first', transport, b'a' * first_size)
        write_in('second', transport, b'x' * BIG)
        write_in('third', transport, b'y')
        if close:
            transport.close()
        await in_context('resumer', sp.transport.resume_reading)
        await sp.until(lambda: len(sp.received) == first_size + BIG + 1)
        await write_completed(cp, transport, close)
        sp.transport.close()
        await sp.lost
        server.close()
        await server.wait_closed()
        return cp

    cp = run_coro(loop, main())
    assert_write_completion_contexts(cp, 'second', close)


def test_write_completion_context_follows_variables_set_between_writes(loop):
    # Two writes from the same context, each finding the buffer empty,
    # with cv set in between: the write completion of the second runs with
    # the value it saw (ourloop keeps the previous copy only while it is
    # still equal to a new one).
    async def main():
        factory, made = recording(lambda: StreamSeen(loop, on_made=pause_on_made))
        server = await loop.create_server(factory, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, cp = await loop.create_connection(
            lambda: StreamSeen(loop), '127.0.0.1', port)
        await made[0].until('connection_made')
        sp = made[0]
        ctx = contextvars.copy_context()

        def first():
            cv.set('first')
            transport.write(b'x')

        def second():
            cv.set('second')
            transport.write(b'y' * BIG)

        ctx.run(first)
        for _ in range(3):
            await asyncio.sleep(0)
        assert transport.get_write_buffer_size() == 0
        ctx.run(second)
        await in_context('resumer', sp.transport.resume_reading)
        await sp.until(lambda: len(sp.received) == BIG + 1)
        await cp.until('resume_writing')
        transport.close()
        await cp.lost
        sp.transport.close()
        await sp.lost
        server.close()
        await server.wait_closed()
        return cp

    cp = run_coro(loop, main())
    assert cp.cvs('pause_writing') == ['second']
    assert cp.cvs('resume_writing') == ['second']


def test_abort_and_close_run_connection_lost_in_caller_context(loop):
    # Nothing buffered: connection_lost() is scheduled by close() or
    # abort(), in the caller's context.
    async def main():
        made = []
        server = await loop.create_server(
            make_factory(loop, made), '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        cv.set('main')
        t1, p1 = await loop.create_connection(lambda: StreamSeen(loop), '127.0.0.1', port)
        t2, p2 = await loop.create_connection(lambda: StreamSeen(loop), '127.0.0.1', port)
        await in_context('closer', t1.close)
        await in_context('aborter', t2.abort)
        await p1.lost
        await p2.lost
        for p in made:
            await p.lost
        server.close()
        await server.wait_closed()
        return p1, p2

    p1, p2 = run_coro(loop, main())
    assert p1.cvs('connection_lost') == ['closer']
    assert p2.cvs('connection_lost') == ['aborter']


# -- TLS -----------------------------------------------------------------------------


def test_start_tls_reads_run_in_start_tls_context(loop, tls_certs):
    # start_tls() pauses the transport and schedules resume_reading(): the
    # application's callbacks over TLS run in the context start_tls() was
    # called in, on both sides.
    async def main():
        made = []
        started = loop.create_future()
        upgraded = loop.create_future()

        def on_data(p, data):
            if data == b'STARTTLS' and not started.done():
                async def upgrade():
                    cv.set('server start_tls')
                    # start_tls() pauses reading before its first await:
                    # the client may start its handshake from then on.
                    started.set_result(None)
                    p.transport = await loop.start_tls(
                        p.transport, p, tls_certs.server_context(),
                        server_side=True)
                    upgraded.set_result(p)
                    mark.set('upgraded')
                asyncio.ensure_future(upgrade())
            elif data == b'ping':
                p.transport.write(b'pong')

        def factory():
            p = StreamSeen(loop, on_data=on_data)
            made.append(p)
            return p

        cv.set('create')
        server = await loop.create_server(factory, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        cv.set('main')
        transport, cp = await loop.create_connection(
            lambda: StreamSeen(loop), '127.0.0.1', port)
        transport.write(b'STARTTLS')
        await started

        async def upgrade():
            cv.set('client start_tls')
            return await loop.start_tls(
                transport, cp, tls_certs.client_context(),
                server_hostname='localhost')
        tls_transport = await asyncio.ensure_future(upgrade())
        await upgraded
        tls_transport.write(b'ping')
        await cp.until(lambda: cp.received == b'pong')
        tls_transport.close()
        await cp.lost
        await made[0].lost
        server.close()
        await server.wait_closed()
        return made[0], cp

    sp, cp = run_coro(loop, main())
    assert sp.cvs('data_received') == ['create', 'server start_tls']
    assert cp.cvs('data_received') == ['client start_tls']
    # Both ends' connection_lost() follows the TLS shutdown, which ends
    # in a read.
    assert cp.cvs('connection_lost') == ['client start_tls']
    assert sp.cvs('connection_lost') == ['server start_tls']


def test_tls_resume_reading(loop, tls_certs):
    # An SSL transport's resume_reading(): what was held back is delivered
    # in the resumer's context; later reads run where the raw transport
    # reads: 3.9/3.10's SSL transport resumes the raw one (the resumer's
    # context), 3.11+'s leaves it alone (the server's).
    async def main():
        server, transport, cp, sp = await paused_connection(loop, tls_certs)
        transport.write(b'a')
        await in_context('resumer', sp.transport.resume_reading)
        await sp.until(lambda: sp.received == b'a')
        transport.write(b'b')
        await sp.until(lambda: sp.received == b'ab')
        transport.close()
        await cp.lost
        await sp.lost
        server.close()
        await server.wait_closed()
        return sp

    sp = run_coro(loop, main())
    later = 'create' if PY311 else 'resumer'
    assert sp.cvs('data_received')[-1] == later


def test_tls_resume_writing_runs_in_writer_context(loop, tls_certs):
    # Through the TLS layer too: the application's resume_writing() follows
    # the raw transport's write completion, in the writer's context.
    async def main():
        server, transport, cp, sp = await paused_connection(loop, tls_certs)

        def fill():
            sent = 0
            while 'pause_writing' not in cp.names() and sent < BIG * 4:
                transport.write(b'x' * 65536)
                sent += 65536
            return sent
        sent = await in_context('writer', fill)
        assert cp.names() == ['connection_made', 'pause_writing']
        await in_context('resumer', sp.transport.resume_reading)
        await cp.until('resume_writing')
        await sp.until(lambda: len(sp.received) == sent)
        transport.close()
        await cp.lost
        await sp.lost
        server.close()
        await server.wait_closed()
        return cp

    cp = run_coro(loop, main())
    assert cp.cvs('pause_writing') == ['writer']
    assert cp.cvs('resume_writing') == ['writer']


# -- datagrams -------------------------------------------------------------------------


class DatagramSeen(Seen, asyncio.DatagramProtocol):
    def datagram_received(self, data, addr):
        self.received += data
        self.note('datagram_received')

    def error_received(self, exc):
        self.note('error_received')


def test_datagram_callbacks(loop):
    # connection_made and datagram_received: the context of
    # create_datagram_endpoint(); connection_lost: close()'s.
    async def main():
        cv.set('create')
        transport, p = await loop.create_datagram_endpoint(
            lambda: DatagramSeen(loop), local_addr=('127.0.0.1', 0))
        cv.set('main')
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'x', transport.get_extra_info('sockname'))
            await p.until('datagram_received')
        await in_context('closer', transport.close)
        await p.lost
        return p

    p = run_coro(loop, main())
    assert p.cvs('connection_made') == ['create']
    assert p.cvs('datagram_received') == ['create']
    assert p.cvs('connection_lost') == ['closer']


@pytest.mark.skipif(not PY311, reason='datagram pause_reading() is 3.11+')
def test_datagram_resume_reading(loop):
    async def main():
        cv.set('create')
        transport, p = await loop.create_datagram_endpoint(
            lambda: DatagramSeen(loop), local_addr=('127.0.0.1', 0))
        cv.set('main')
        transport.pause_reading()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'x', transport.get_extra_info('sockname'))
            await in_context('resumer', transport.resume_reading)
            await p.until('datagram_received')
        transport.close()
        await p.lost
        return p

    p = run_coro(loop, main())
    assert p.cvs('datagram_received') == ['resumer']


@pytest.mark.parametrize('close', [False, True], ids=['resume', 'close'])
def test_datagram_queue_runs_in_sender_context(loop, close):
    # Datagrams queued while the socket would block: resume_writing() and
    # the connection_lost() of a close() that waited for the queue run in
    # the context of the sendto() that queued into an empty queue.
    async def main():
        a, b = unix_dgram_pair()
        cv.set('create')
        transport, p = await loop.create_datagram_endpoint(
            lambda: DatagramSeen(loop), sock=a)
        cv.set('main')
        # (3.13's stdlib never takes 8 bytes per queued datagram off its
        # buffer size, CPython gh-135444: low must leave room for them.)
        transport.set_write_buffer_limits(high=4000, low=4000)

        def fill():
            while 'pause_writing' not in p.names():
                transport.sendto(b'x' * 1000)
        await in_context('sender', fill)
        await in_context('second sender', transport.sendto, b'more')
        assert p.names() == ['connection_made', 'pause_writing']
        if close:
            await in_context('closer', transport.close)

        async def drain():
            while True:
                await loop.sock_recv(b, 100)
        drainer = asyncio.ensure_future(drain())
        await write_completed(p, transport, close)
        drainer.cancel()
        b.close()
        return p

    p = run_coro(loop, main())
    assert_write_completion_contexts(p, 'sender', close)


# -- pipes -------------------------------------------------------------------------------


def test_pipe_callbacks(loop):
    # Read pipe: the context of connect_read_pipe(), then resume_reading()'s;
    # write pipe: connect_write_pipe()'s, and the writer's for
    # resume_writing() and the connection_lost() of a waiting close().
    async def main():
        rfd, wfd = os.pipe()
        cv.set('read pipe')
        rt, rp = await loop.connect_read_pipe(
            lambda: StreamSeen(loop), os.fdopen(rfd, 'rb', 0))
        cv.set('write pipe')
        wt, wp = await loop.connect_write_pipe(
            lambda: StreamSeen(loop), os.fdopen(wfd, 'wb', 0))
        cv.set('main')
        wt.set_write_buffer_limits(high=1024)
        rt.pause_reading()
        await in_context('writer', wt.write, b'x' * (1 << 20))
        assert wp.names() == ['connection_made', 'pause_writing']
        await in_context('closer', wt.close)
        await in_context('resumer', rt.resume_reading)
        await wp.lost
        await rp.lost
        return rp, wp

    rp, wp = run_coro(loop, main())
    assert rp.cvs('connection_made') == ['read pipe']
    assert set(rp.cvs('data_received')) == {'resumer'}
    assert rp.cvs('eof_received') == ['resumer']
    assert rp.cvs('connection_lost') == ['resumer']
    assert wp.cvs('connection_made') == ['write pipe']
    assert wp.cvs('pause_writing') == ['writer']
    assert wp.cvs('resume_writing') == ['writer']
    assert wp.cvs('connection_lost') == ['writer']


# -- subprocesses --------------------------------------------------------------------------


class SubprocessSeen(Seen, asyncio.SubprocessProtocol):
    def pipe_data_received(self, fd, data):
        self.received += data
        self.note('pipe_data_received')

    def pipe_connection_lost(self, fd, exc):
        self.note(f'pipe_connection_lost({fd})')

    def process_exited(self):
        self.note('process_exited')


CAT = 'import sys; sys.stdout.write(sys.stdin.read())'


def run_in_outer_context(loop, coro):
    # The loop runs in a context where cv is 'outer': callbacks the stdlib
    # runs in an empty context must not see it.
    outer = contextvars.copy_context()
    outer.run(cv.set, 'outer')
    return outer.run(run_coro, loop, coro)


def test_subprocess_exit(loop):
    # process_exited() and the connection_lost() after it: 3.12+ report the
    # exit from a pidfd reader added by subprocess_exec() (its context);
    # 3.9-3.11 from the watcher thread (an empty context). The stdin pipe's
    # end runs where close() was called.
    _check_subprocess_exit_contexts(loop)


@pytest.mark.only_loop('ourloop', reason="ourloop's waiting thread, where it has no child fd")
def test_subprocess_exit_reported_by_thread(loop, monkeypatch):
    # Without a pidfd of its own (a seccomp policy, the forced-portable
    # build) ourloop waits in a thread, and still reports in the context the
    # stdlib's watcher on this machine reports in.
    from ourloop import _subprocess
    monkeypatch.setattr(_subprocess, '_USE_PIDFD', False)
    _check_subprocess_exit_contexts(loop)


def _check_subprocess_exit_contexts(loop):
    async def main():
        cv.set('caller')
        transport, p = await loop.subprocess_exec(
            lambda: SubprocessSeen(loop), sys.executable, '-c', CAT,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        cv.set('main')
        await in_context('closer', transport.get_pipe_transport(0).close)
        await p.lost
        transport.close()
        return p

    p = run_in_outer_context(loop, main())
    # (3.12+ without pidfds, e.g. on macOS: the watcher thread.)
    exit_context = 'caller' if PY312 and asyncio.unix_events.can_use_pidfd() else 'default'
    assert p.cvs('connection_made') == ['caller']
    assert p.cvs('pipe_connection_lost(0)') == ['closer']
    assert p.cvs('process_exited') == [exit_context]
    assert p.cvs('connection_lost') == [exit_context]


def test_subprocess_pipes(loop):
    # The pipes are connected in the transport's own task: their data and
    # end run in the context of subprocess_exec().
    async def main():
        cv.set('caller')
        transport, p = await loop.subprocess_exec(
            lambda: SubprocessSeen(loop), sys.executable, '-c', CAT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        cv.set('main')
        stdin = transport.get_pipe_transport(0)
        await in_context('writer', stdin.write, b'hello')
        stdin.close()
        await p.lost
        transport.close()
        return p

    p = run_in_outer_context(loop, main())
    assert bytes(p.received) == b'hello'
    assert set(p.cvs('pipe_data_received')) == {'caller'}
    assert p.cvs('pipe_connection_lost(1)') == ['caller']
    assert p.cvs('pipe_connection_lost(0)') == ['main']
