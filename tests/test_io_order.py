"""The order of I/O callbacks that become ready in the same poll.

The stdlib's selector loop queues the callbacks of one poll in the order
epoll reports the events, which is the order in which the fds became ready;
ourloop records stream and datagram reads without the GIL inside uv_run and
queues them afterwards, and must keep that order, also relative to
add_reader() callbacks and to callbacks scheduled before the poll.
"""

import asyncio
import socket

import pytest

TIMEOUT = 10


class Recorder(asyncio.Protocol):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.log.append((self.name, data))


class DatagramRecorder(asyncio.DatagramProtocol):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def datagram_received(self, data, addr):
        self.log.append((self.name, data))


def _reader(name, sock, log):
    def on_readable():
        log.append((name, sock.recv(100)))
    return on_readable


@pytest.mark.parametrize('order', ['abcd', 'dcba', 'cadb', 'bdac'])
def test_reads_and_fd_watchers_keep_the_poll_order(loop, order):
    # a, b: stream transports; c: an add_reader() callback; d: a datagram
    # transport. All four become readable before the loop polls, in `order`.
    log = []
    pairs = []

    async def main():
        peers = {}
        for name in 'ab':
            mine, theirs = socket.socketpair()
            pairs.extend((mine, theirs))
            await loop.connect_accepted_socket(lambda name=name: Recorder(name, log), mine)
            peers[name] = theirs.send
        mine, theirs = socket.socketpair()
        pairs.extend((mine, theirs))
        mine.setblocking(False)
        loop.add_reader(mine, _reader('c', mine, log))
        peers['c'] = theirs.send
        udp, _ = await loop.create_datagram_endpoint(
            lambda: DatagramRecorder('d', log), local_addr=('127.0.0.1', 0))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        pairs.append(sender)
        addr = udp.get_extra_info('sockname')
        peers['d'] = lambda data: sender.sendto(data, addr)
        await asyncio.sleep(0)

        done = loop.create_future()
        early = []

        def make_ready():
            # A callback queued now runs before the I/O callbacks.
            loop.call_soon(early.append, len(log))
            for name in order:
                peers[name](name.encode())
            loop.call_later(0.05, done.set_result, None)

        loop.call_soon(make_ready)
        await asyncio.wait_for(done, TIMEOUT)
        while len(log) < 4:
            await asyncio.sleep(0.01)
        loop.remove_reader(pairs[4])
        udp.close()
        return early

    try:
        early = loop.run_until_complete(main())
    finally:
        for s in pairs:
            s.close()
    assert early == [0]
    assert log == [(name, name.encode()) for name in order]


def test_reads_of_many_transports_in_one_poll_keep_their_order(loop):
    # More transports than the first size of ourloop's record of reads.
    log = []
    socks = []
    n = 150

    async def main():
        senders = []
        for i in range(n):
            mine, theirs = socket.socketpair()
            socks.extend((mine, theirs))
            await loop.connect_accepted_socket(lambda i=i: Recorder(i, log), mine)
            senders.append(theirs)
        await asyncio.sleep(0)
        order = list(range(0, n, 2)) + list(range(1, n, 2))

        def make_ready():
            for i in order:
                senders[i].send(b'x')

        loop.call_soon(make_ready)
        while len(log) < n:
            await asyncio.sleep(0.01)
        return order

    try:
        order = loop.run_until_complete(main())
    finally:
        for s in socks:
            s.close()
    assert [name for name, _ in log] == order


def test_io_is_noticed_while_callbacks_keep_the_loop_busy(loop):
    # A callback that always reschedules itself keeps callbacks ready in
    # every iteration; a read must still be delivered within two
    # iterations of the data's arrival (the stdlib: the next one; ourloop
    # may skip the poll of every other such iteration).
    log = []
    socks = []

    async def main():
        mine, theirs = socket.socketpair()
        socks.extend((mine, theirs))
        await loop.connect_accepted_socket(lambda: Recorder('a', log), mine)
        await asyncio.sleep(0)
        ticks = [0]
        sent_at = []
        received_at = []

        class Tick:
            def __call__(self):
                ticks[0] += 1
                if log and not received_at:
                    received_at.append(ticks[0])
                if ticks[0] == 10:
                    theirs.send(b'x')
                    sent_at.append(ticks[0])
                if ticks[0] < 100:
                    loop.call_soon(self)

        loop.call_soon(Tick())
        while ticks[0] < 100:
            await asyncio.sleep(0)
        return sent_at[0], received_at[0]

    try:
        sent, received = loop.run_until_complete(main())
    finally:
        for s in socks:
            s.close()
    assert 1 <= received - sent <= 3


class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class _PingPong(asyncio.Protocol):
    def __init__(self, rounds, done):
        self.left, self.done = rounds, done

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b'ping')

    def data_received(self, data):
        self.left -= 1
        if self.left:
            self.transport.write(data)
        else:
            self.done.set_result(None)


def test_loop_sleeps_releasing_the_gil_after_polls_that_found_io(loop):
    # Two ends of a connection on one loop: every poll of the exchange finds
    # the other end's write ready (ourloop then polls without releasing the
    # GIL first). Once the exchange ends, the loop must still sleep with the
    # GIL released (a thread running Python code wakes it) and wake for a
    # timer.
    import threading
    socks = []

    async def main():
        mine, theirs = socket.socketpair()
        socks.extend((mine, theirs))
        done = loop.create_future()
        await loop.connect_accepted_socket(_Echo, theirs)
        await loop.connect_accepted_socket(lambda: _PingPong(300, done), mine)
        await done
        woken = loop.create_future()

        def worker():
            # Python code: needs the GIL the loop must have released.
            total = sum(i * i for i in range(20000))
            loop.call_soon_threadsafe(woken.set_result, total)

        thread = threading.Thread(target=worker)
        thread.start()
        total = await woken
        thread.join()
        t0 = loop.time()
        await asyncio.sleep(0.02)
        return total, loop.time() - t0

    try:
        total, slept = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    finally:
        for s in socks:
            s.close()
    assert total == sum(i * i for i in range(20000))
    assert slept >= 0.02
