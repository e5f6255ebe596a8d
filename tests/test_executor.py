"""run_in_executor / set_default_executor / shutdown_default_executor.

Reference: BaseEventLoop.run_in_executor/set_default_executor/
shutdown_default_executor in asyncio/base_events.py.
"""

import asyncio
import concurrent.futures
import sys
import threading
import time
import warnings

import pytest

from support import until


def _thread_name():
    return threading.current_thread().name


def _current_thread():
    return threading.current_thread()


def test_run_in_executor_default(loop):
    fut = loop.run_in_executor(None, lambda a, b: a + b, 2, 3)
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert loop.run_until_complete(fut) == 5


def test_default_executor_thread_name_prefix(loop):
    name = loop.run_until_complete(loop.run_in_executor(None, _thread_name))
    assert name.startswith("asyncio")
    assert name != threading.current_thread().name


def test_default_executor_is_reused(loop):
    async def main():
        t1 = await loop.run_in_executor(None, _current_thread)
        t2 = await loop.run_in_executor(None, _current_thread)
        return t1, t2

    t1, t2 = loop.run_until_complete(main())
    # one idle worker is reused by a ThreadPoolExecutor
    assert t1 is t2


def test_run_in_executor_exception_propagates(loop):
    def fail():
        raise ValueError("in thread")

    with pytest.raises(ValueError, match="^in thread$"):
        loop.run_until_complete(loop.run_in_executor(None, fail))


def test_run_in_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom-pool") as ex:
        name = loop.run_until_complete(loop.run_in_executor(ex, _thread_name))
    assert name.startswith("custom-pool")


def test_run_in_executor_many_concurrent(loop):
    barrier = threading.Barrier(3, timeout=20)

    def work(i):
        barrier.wait()  # all three must run at the same time
        return i * 10

    async def main():
        return await asyncio.gather(*(loop.run_in_executor(None, work, i) for i in range(3)))

    assert loop.run_until_complete(main()) == [0, 10, 20]


def test_run_in_executor_wakes_blocked_loop(loop):
    def slow():
        time.sleep(0.1)
        return "slow"

    # nothing else scheduled: the loop blocks until the thread finishes
    assert loop.run_until_complete(loop.run_in_executor(None, slow)) == "slow"


def test_run_in_executor_cancel(loop):
    ev = threading.Event()
    started = threading.Event()

    def work():
        started.set()
        return ev.wait(10)

    async def main():
        fut = loop.run_in_executor(None, work)
        await until(started.is_set)  # cancelled while it runs
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        ev.set()

    loop.run_until_complete(main())


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="my-default")
    try:
        loop.set_default_executor(ex)
        name = loop.run_until_complete(loop.run_in_executor(None, _thread_name))
        assert name.startswith("my-default")
    finally:
        ex.shutdown(wait=True)


class _NotAThreadPool(concurrent.futures.Executor):
    def submit(self, fn, *args, **kwargs):
        f = concurrent.futures.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            f.set_exception(exc)
        return f


def test_set_default_executor_not_threadpool(loop):
    ex = _NotAThreadPool()
    if sys.version_info >= (3, 11):
        with pytest.raises(TypeError, match="^executor must be ThreadPoolExecutor instance$"):
            loop.set_default_executor(ex)
        # not installed
        name = loop.run_until_complete(loop.run_in_executor(None, _thread_name))
        assert name.startswith("asyncio")
    else:
        # 3.9 / 3.10: deprecated, but still installed
        with pytest.warns(DeprecationWarning, match="ThreadPoolExecutor is deprecated"):
            loop.set_default_executor(ex)
        name = loop.run_until_complete(loop.run_in_executor(None, _thread_name))
        assert name == threading.current_thread().name


def test_shutdown_default_executor_joins_threads(loop):
    thread = loop.run_until_complete(loop.run_in_executor(None, _current_thread))
    assert thread.is_alive()
    loop.run_until_complete(loop.shutdown_default_executor())
    assert not thread.is_alive()


def test_shutdown_default_executor_without_executor(loop):
    assert loop.run_until_complete(loop.shutdown_default_executor()) is None


def test_run_in_executor_after_shutdown_default_executor(loop):
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="^Executor shutdown has been called$"):
        loop.run_in_executor(None, print)
    # an explicit executor is still fine
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        assert loop.run_until_complete(loop.run_in_executor(ex, lambda: 4)) == 4


def test_shutdown_default_executor_shuts_down_custom_default(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(ex)
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        ex.submit(print)


def test_shutdown_default_executor_waits_for_running_work(loop):
    done = []

    def work():
        time.sleep(0.1)
        done.append(True)

    fut = loop.run_in_executor(None, work)
    loop.run_until_complete(loop.shutdown_default_executor())
    assert done == [True]
    assert loop.run_until_complete(fut) is None


def _stdlib_timeout_bounds_the_wait():
    """True when the stdlib's shutdown_default_executor(timeout) bounds the
    whole wait (3.13+; 3.12.1 only applied it to a final thread.join(), so
    the call still waited for the running work)."""
    import inspect

    src = inspect.getsource(asyncio.BaseEventLoop.shutdown_default_executor)
    return "timeouts.timeout(" in src


@pytest.mark.skipif(sys.version_info < (3, 12), reason="timeout= is new in Python 3.12")
def test_shutdown_default_executor_timeout(loop):
    ev = threading.Event()
    started = threading.Event()

    def block():
        started.set()
        ev.wait(30)
        return "released"

    fut = loop.run_in_executor(None, block)
    assert started.wait(20)
    try:
        if _stdlib_timeout_bounds_the_wait():
            with pytest.warns(
                RuntimeWarning,
                match=r"The executor did not finishing joining its threads within 0\.1 seconds\.",
            ):
                loop.run_until_complete(loop.shutdown_default_executor(timeout=0.1))
            assert not fut.done()
        else:
            # This stdlib only applies the timeout to the final join, after
            # the executor has shut down: the call waits for the work.  (Not
            # asserted: a loop implementing the fixed semantics is fine.)
            threading.Timer(0.2, ev.set).start()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                loop.run_until_complete(loop.shutdown_default_executor(timeout=0.1))
    finally:
        ev.set()
    assert loop.run_until_complete(fut) == "released"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="timeout= is new in Python 3.12")
def test_shutdown_default_executor_timeout_not_reached(loop):
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        loop.run_until_complete(loop.shutdown_default_executor(timeout=10))
    # The shutdown completed: the default executor is gone for good.
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, lambda: None)


def test_close_shuts_down_default_executor_without_waiting(loop):
    ev = threading.Event()
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    fut = loop.run_in_executor(None, ev.wait, 30)
    t0 = time.monotonic()
    loop.close()
    took = time.monotonic() - t0
    ev.set()
    assert loop.is_closed()
    assert took < 10  # did not wait for the blocked worker (30 s)
    del fut


def test_to_thread_propagates_context(loop):
    import contextvars

    var = contextvars.ContextVar("to_thread_var", default="default")

    async def main():
        var.set("in-task")
        return await asyncio.to_thread(var.get)

    assert loop.run_until_complete(main()) == "in-task"
