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
