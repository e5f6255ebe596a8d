"""Several loops at once, one per thread, each serving connections and
calling into the others with call_soon_threadsafe(): nothing one loop does
disturbs another (no shared state in the extension besides what is
meant to be shared: the signal wake-up, the child reaper)."""

import asyncio
import threading

import pytest

from support import fd_count, wait_blocking

LOOPS = 4
CLIENTS = 8
ROUNDS = 20
PINGS = 200


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve_and_talk(index, peers, received, ready, go):
    """Serve TCP echo, have CLIENTS clients (streams) do
    ROUNDS exchanges each, and meanwhile post PINGS callbacks to every
    other loop (peers) with call_soon_threadsafe."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    peers[index] = loop
    ready.set()
    await loop.run_in_executor(None, go.wait)

    async def client(n):
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        for r in range(ROUNDS):
            message = f'{index}:{n}:{r}\n'.encode()
            writer.write(message)
            assert await reader.readline() == message
        writer.close()
        await writer.wait_closed()

    def post():
        # From this loop's thread into the others'.
        for i in range(PINGS):
            for other, peer in peers.items():
                if other != index:
                    peer.call_soon_threadsafe(received[other].append, (index, i))

    posting = loop.run_in_executor(None, post)
    await asyncio.gather(*(client(n) for n in range(CLIENTS)), posting)
    server.close()
    await server.wait_closed()


def run_loop(new_loop, index, peers, received, ready, go, all_done, errors):
    loop = new_loop()
    try:
        loop.run_until_complete(serve_and_talk(index, peers, received, ready, go))

        # Stay alive until every loop has posted: callbacks sent to a
        # closed loop would raise in the sender.
        async def wait_all():
            await loop.run_in_executor(None, all_done.wait)
        all_done.count_down()
        loop.run_until_complete(wait_all())
    except BaseException as exc:
        errors.append((index, exc))
        all_done.abort()
    finally:
        loop.close()


class Countdown:
    """wait() returns once count_down() was called n times (or abort())."""

    def __init__(self, n):
        self._n = n
        self._cond = threading.Condition()

    def count_down(self):
        with self._cond:
            self._n -= 1
            self._cond.notify_all()

    def abort(self):
        with self._cond:
            self._n = 0
            self._cond.notify_all()

    def wait(self):
        with self._cond:
            self._cond.wait_for(lambda: self._n <= 0, timeout=120)


@pytest.mark.timeout(180)
def test_loops_in_threads(loop_factory):
    # The first loop of a process may open what stays for the process's
    # lifetime (libuv's signal lock pipe): count from after one.
    loop_factory().close()
    start_fds = fd_count()
    peers = {}
    received = {i: [] for i in range(LOOPS)}
    errors = []
    ready = [threading.Event() for _ in range(LOOPS)]
    go = threading.Event()
    all_done = Countdown(LOOPS)
    threads = [threading.Thread(target=run_loop, args=(loop_factory, i, peers, received,
                                                       ready[i], go, all_done, errors))
               for i in range(LOOPS)]
    for t in threads:
        t.start()
    for event in ready:
        assert event.wait(60)
    go.set()
    for t in threads:
        t.join(150)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    for i in range(LOOPS):
        # Every other loop's callbacks ran here, each sender's in order.
        got = received[i]
        assert len(got) == PINGS * (LOOPS - 1)
        for sender in range(LOOPS):
            mine = [n for s, n in got if s == sender]
            assert mine == (list(range(PINGS)) if sender != i else [])
    # Every loop is closed: their fds are all gone (no loop is left to
    # wait on, so poll the count).
    wait_blocking(lambda: fd_count() <= start_fds)
    assert fd_count() <= start_fds
