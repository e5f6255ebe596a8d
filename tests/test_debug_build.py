"""Checks that need a debug build of ourloop (make debug): every libuv
handle a loop opens is fully closed once the loop is closed."""

import asyncio
import gc
import threading

import pytest

ourloop = pytest.importorskip("ourloop")
from ourloop import _core  # noqa: E402

pytestmark = pytest.mark.skipif(
    _core.debug_handle_counts() is None,
    reason="handle accounting exists only in debug builds (make debug)",
)


def _open_handles():
    return {kind: opened - closed
            for kind, (opened, closed) in _core.debug_handle_counts().items()}


def test_closed_loops_leave_no_handle_open():
    gc.collect()
    before = _open_handles()
    for _ in range(5):
        loop = ourloop.new_event_loop()
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
        loop.close()
    assert _open_handles() == before


def test_loop_run_in_a_thread_leaves_no_handle_open():
    gc.collect()
    before = _open_handles()

    def work():
        ourloop.run(asyncio.sleep(0.001))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert _open_handles() == before


def test_collected_unclosed_loop_closes_its_handles():
    gc.collect()
    before = _open_handles()
    loop = ourloop.new_event_loop()
    loop.call_soon(loop.stop)
    loop.run_forever()
    with pytest.warns(ResourceWarning):
        del loop
        gc.collect()
    assert _open_handles() == before


def test_tcp_servers_and_connections_leave_no_handle_open():
    # Connections closed, aborted, and one still open when the loop closes:
    # every uv_tcp_t and the listener's uv_poll_t are closed with the loop.
    async def handle(reader, writer):
        data = await reader.read(100)
        writer.write(data)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for i in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
            if i % 2:
                writer.close()
                await writer.wait_closed()
            else:
                writer.transport.abort()
        left_open = await asyncio.open_connection("127.0.0.1", port)
        server.close()
        return left_open

    gc.collect()
    before = _open_handles()
    tcp_opened_before = _core.debug_handle_counts()["tcp"][0]
    loop = ourloop.new_event_loop()
    reader, writer = loop.run_until_complete(main())
    tcp_opened = _core.debug_handle_counts()["tcp"][0] - tcp_opened_before
    loop.close()
    del reader, writer
    gc.collect()
    assert tcp_opened >= 21   # 11 client and 10-11 server ends
    assert _open_handles() == before
