"""Loop lifecycle: run_forever / run_until_complete / stop / close /
is_running / is_closed / re-entrancy / repr / shutdown_asyncgens.

Reference: asyncio/base_events.py (BaseEventLoop).
"""

import asyncio
import sys
import threading

import pytest

CLOSED_MSG = "Event loop is closed"
ALREADY_RUNNING_MSG = "This event loop is already running"
ANOTHER_LOOP_MSG = "Cannot run the event loop while another loop is running"


def _exact(msg):
    """A regex matching exactly ``msg``."""
    import re

    return "^" + re.escape(msg) + "$"


def schedule_ticks(loop, log, n, name="tick"):
    """A self-rescheduling callback: appends name0..name{n-1}, then stops."""

    def tick(i):
        log.append("%s%d" % (name, i))
        if i + 1 < n:
            loop.call_soon(tick, i + 1)
        else:
            loop.stop()

    loop.call_soon(tick, 0)


async def _value(v):
    await asyncio.sleep(0)
    return v


# --------------------------------------------------------------------------
# run_until_complete
# --------------------------------------------------------------------------


def test_run_until_complete_coroutine(loop):
    assert loop.run_until_complete(_value(42)) == 42
    assert not loop.is_running()


def test_run_until_complete_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_task(loop):
    task = loop.create_task(_value("task"))
    assert loop.run_until_complete(task) == "task"
    assert task.done()


def test_run_until_complete_already_done_future(loop):
    fut = loop.create_future()
    fut.set_result(7)
    assert loop.run_until_complete(fut) == 7


def test_run_until_complete_future_exception(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_exception, ValueError("boom"))
    with pytest.raises(ValueError, match="^boom$"):
        loop.run_until_complete(fut)


def test_run_until_complete_coroutine_exception(loop):
    async def fail():
        await asyncio.sleep(0)
        raise ZeroDivisionError("zde")

    with pytest.raises(ZeroDivisionError, match="^zde$"):
        loop.run_until_complete(fail())


def test_run_until_complete_cancelled_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_stopped_before_future_completed(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match=_exact("Event loop stopped before Future completed.")):
        loop.run_until_complete(fut)
    assert not fut.done()
    assert not loop.is_running()
    # The same future can be waited for again and completes normally.
    loop.call_soon(fut.set_result, "later")
    assert loop.run_until_complete(fut) == "later"


def test_run_until_complete_removes_its_done_callback(loop):
    # After run_until_complete returned (here: stopped early), completing the
    # future during a later run_forever must not stop that run.
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError):
        loop.run_until_complete(fut)
    log = []
    loop.call_soon(fut.set_result, None)
    schedule_ticks(loop, log, 5)
    loop.run_forever()
    assert log == ["tick0", "tick1", "tick2", "tick3", "tick4"]


def test_run_until_complete_returns_while_other_callbacks_keep_running(loop):
    count = [0]

    def forever():
        count[0] += 1
        loop.call_soon(forever)

    loop.call_soon(forever)
    fut = loop.create_future()
    loop.call_later(0.01, fut.set_result, "x")
    assert loop.run_until_complete(fut) == "x"
    assert count[0] > 0


def test_run_until_complete_future_of_other_loop(loop, new_loop):
    other = new_loop()
    fut = other.create_future()
    with pytest.raises(ValueError, match="The future belongs to a different loop"):
        loop.run_until_complete(fut)


def test_run_until_complete_not_awaitable(loop):
    with pytest.raises(TypeError, match="An asyncio.Future, a coroutine or an awaitable is required"):
        loop.run_until_complete(42)


# --------------------------------------------------------------------------
# run_forever / stop
# --------------------------------------------------------------------------


def test_run_forever_until_stop_callback(loop):
    log = []
    loop.call_soon(log.append, 1)
    loop.call_soon(loop.stop)
    loop.call_soon(log.append, 2)
    loop.run_forever()
    assert log == [1, 2]
    assert not loop.is_running()


def test_run_forever_returns_none(loop):
    loop.call_soon(loop.stop)
    assert loop.run_forever() is None


def test_stop_before_run_runs_one_iteration(loop):
    log = []

    def a():
        log.append("a")
        loop.call_soon(b)

    def b():
        log.append("b")

    loop.stop()
    loop.call_soon(a)
    loop.run_forever()  # exactly one iteration: a runs, b is only scheduled
    assert log == ["a"]

    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["a", "b"]


def test_stop_before_run_with_empty_queue_returns(loop):
    loop.stop()
    loop.run_forever()
    assert not loop.is_running()


def test_stop_inside_callback_finishes_current_batch(loop):
    log = []

    def a():
        log.append("a")
        loop.stop()
        loop.call_soon(c)

    def b():
        log.append("b")

    def c():
        log.append("c")

    loop.call_soon(a)
    loop.call_soon(b)
    loop.run_forever()
    # b was already in the batch being run: it runs; c was scheduled after
    # stop(): it runs in the next run.
    assert log == ["a", "b"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["a", "b", "c"]


def test_stop_flag_is_consumed_by_run(loop):
    loop.stop()
    loop.stop()
    loop.run_forever()
    log = []
    schedule_ticks(loop, log, 4)
    loop.run_forever()
    assert log == ["tick0", "tick1", "tick2", "tick3"]


def test_loop_can_be_run_many_times(loop):
    for i in range(20):
        assert loop.run_until_complete(_value(i)) == i
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert not loop.is_running()
    assert not loop.is_closed()


def test_run_forever_after_run_until_complete_exception(loop):
    async def fail():
        raise KeyError("k")

    with pytest.raises(KeyError):
        loop.run_until_complete(fail())
    log = []
    schedule_ticks(loop, log, 2)
    loop.run_forever()
    assert log == ["tick0", "tick1"]


# --------------------------------------------------------------------------
# is_running / running-loop bookkeeping
# --------------------------------------------------------------------------


def test_is_running(loop):
    seen = []

    def cb():
        seen.append(loop.is_running())
        loop.stop()

    assert loop.is_running() is False
    loop.call_soon(cb)
    loop.run_forever()
    assert seen == [True]
    assert loop.is_running() is False


def test_is_running_inside_coroutine(loop):
    async def main():
        return loop.is_running()

    assert loop.run_until_complete(main()) is True
    assert loop.is_running() is False


def test_running_loop_set_while_running(loop):
    seen = []

    def cb():
        seen.append(asyncio.get_running_loop())
        seen.append(asyncio.get_event_loop())
        seen.append(asyncio._get_running_loop())
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert seen == [loop, loop, loop]
    assert asyncio._get_running_loop() is None
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()


def test_running_loop_reset_after_exception(loop):
    def cb():
        raise KeyboardInterrupt

    loop.call_soon(cb)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert asyncio._get_running_loop() is None
    assert not loop.is_running()


def test_is_closed(loop):
    assert loop.is_closed() is False
    loop.close()
    assert loop.is_closed() is True


# --------------------------------------------------------------------------
# close
# --------------------------------------------------------------------------


def test_close_running_loop_raises(loop):
    errors = []

    def cb():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def test_close_twice_is_ok(loop):
    loop.close()
    loop.close()
    assert loop.is_closed()


async def _coro():
    pass


def _closed_checks():
    def run_until_complete(loop):
        coro = _coro()
        try:
            loop.run_until_complete(coro)
        finally:
            coro.close()

    def create_task(loop):
        coro = _coro()
        try:
            loop.create_task(coro)
        finally:
            coro.close()

    return {
        "run_forever": lambda loop: loop.run_forever(),
        "run_until_complete": run_until_complete,
        "run_until_complete_future": lambda loop: loop.run_until_complete(
asyncio.Future(loop=loop)),
        "call_soon": lambda loop: loop.call_soon(print),
        "call_later": lambda loop: loop.call_later(1, print),
        "call_at": lambda loop: loop.call_at(loop.time() + 1, print),
        "call_soon_threadsafe": lambda loop: loop.call_soon_threadsafe(print),
        "create_task": create_task,
        "run_in_executor": lambda loop: loop.run_in_executor(None, print),
    }


@pytest.mark.parametrize("method", sorted(_closed_checks()))
def test_closed_loop_raises(loop, method):
    check = _closed_checks()[method]
    loop.close()
    with pytest.raises(RuntimeError, match=_exact(CLOSED_MSG)):
        check(loop)


def test_closed_loop_debug_mode_raises(loop):
    loop.set_debug(True)
    loop.close()
    with pytest.raises(RuntimeError, match=_exact(CLOSED_MSG)):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match=_exact(CLOSED_MSG)):
        loop.call_later(0, print)


def test_closed_loop_harmless_methods(loop):
    loop.close()
    # These do not check for a closed loop in the stdlib.
    assert isinstance(loop.time(), float)
    assert loop.is_running() is False
    assert loop.get_debug() in (False, True)
    loop.stop()
    fut = loop.create_future()
    assert not fut.done()


# --------------------------------------------------------------------------
# re-entrancy
# --------------------------------------------------------------------------


def test_run_forever_reentrant_raises(loop):
    errors = []

    def cb():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == [ALREADY_RUNNING_MSG]
    assert not loop.is_running()


def test_run_until_complete_reentrant_raises(loop):
    errors = []
    fut = loop.create_future()

    def cb():
        try:
            loop.run_until_complete(fut)
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == [ALREADY_RUNNING_MSG]
    fut.cancel()


def test_run_until_complete_reentrant_from_coroutine(loop):
    async def main():
        coro = _coro()
        try:
            with pytest.raises(RuntimeError, match=_exact(ALREADY_RUNNING_MSG)):
                loop.run_until_complete(coro)
        finally:
            coro.close()
        return "ok"

    assert loop.run_until_complete(main()) == "ok"


@pytest.mark.parametrize("method", ["run_forever", "run_until_complete"])
def test_running_second_loop_in_same_thread_raises(loop, new_loop, method):
    other = new_loop()
    errors = []
    fut = other.create_future()
    fut.set_result(None)  # if the check were missing, this would not hang

    def cb():
        try:
            if method == "run_forever":
                other.run_forever()
            else:
                other.run_until_complete(fut)
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == [ANOTHER_LOOP_MSG]
    assert not other.is_running()
    # other is usable afterwards
    assert other.run_until_complete(_value(3)) == 3


def _stdlib_has_gh130145():
    """CPython gh-130145: a run_forever() that fails its running-loop check
    resets the thread's running loop (3.13.0 and some later 3.13.x)."""
    outer, inner = asyncio.SelectorEventLoop(), asyncio.SelectorEventLoop()
    seen = []

    def cb():
        try:
            inner.run_forever()
        except RuntimeError:
            pass
        seen.append(asyncio._get_running_loop() is outer and outer.is_running())
        outer.stop()

    try:
        outer.call_soon(cb)
        outer.run_forever()
    finally:
        outer.close()
        inner.close()
    return not seen[0]


@pytest.mark.parametrize("which", ["same", "other"])
def test_failed_nested_run_forever_keeps_outer_loop_running(loop, new_loop, loop_kind, which):
    if loop_kind == "asyncio" and _stdlib_has_gh130145():
        pytest.skip("this CPython has bug gh-130145 (fixed upstream)")
    target = loop if which == "same" else new_loop()
    seen = []

    def cb():
        with pytest.raises(RuntimeError):
            target.run_forever()
        seen.append(
            (loop.is_running(), asyncio._get_running_loop() is loop,
             sys.get_asyncgen_hooks().firstiter is not None)
        )
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert seen == [(True, True, True)]
    assert not loop.is_running()


def test_running_stdlib_loop_inside_this_loop_raises(loop):
    # The loop under test must register itself as the thread's running
    # loop, so that a *stdlib* loop refuses to run inside it (and vice
    # versa, tested by the previous test when kind == asyncio).
    other = asyncio.SelectorEventLoop()
    errors = []

    def cb():
        try:
            other.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    try:
        loop.call_soon(cb)
        loop.run_forever()
    finally:
        other.close()
    assert errors == [ANOTHER_LOOP_MSG]


def test_this_loop_inside_running_stdlib_loop_raises(loop):
    outer = asyncio.SelectorEventLoop()
    errors = []

    def cb():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        outer.stop()

    try:
        outer.call_soon(cb)
        outer.run_forever()
    finally:
        outer.close()
    assert errors == [ANOTHER_LOOP_MSG]
    assert not loop.is_running()


def test_run_forever_from_other_thread_while_running_raises(loop):
    errors = []

    def other_thread():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    def cb():
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(30)
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == [ALREADY_RUNNING_MSG]


def test_loop_runs_in_non_main_thread(loop_factory):
    result = []

    def target():
        lp = loop_factory()
        try:
            result.append(lp.run_until_complete(_value("thread")))
        finally:
            lp.close()

    t = threading.Thread(target=target)
    t.start()
    t.join(30)
    assert result == ["thread"]


def test_two_loops_in_two_threads(loop, loop_factory):
    results = []

    def target():
        lp = loop_factory()
        try:
            results.append(lp.run_until_complete(_sleep_value(0.05, "thread")))
        finally:
            lp.close()

    t = threading.Thread(target=target)
    t.start()
    results.append(loop.run_until_complete(_sleep_value(0.05, "main")))
    t.join(30)
    assert sorted(results) == ["main", "thread"]


async def _sleep_value(delay, value):
    await asyncio.sleep(delay)
    return value


# --------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------


def _repr_tail(loop):
    r = repr(loop)
    prefix = "<" + type(loop).__name__ + " "
    assert r.startswith(prefix), r
    return r[len(prefix):]


def test_repr_idle(loop):
    assert _repr_tail(loop) == "running=False closed=False debug=False>"


def test_repr_running(loop):
    seen = []

    def cb():
        seen.append(_repr_tail(loop))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert seen == ["running=True closed=False debug=False>"]


def test_repr_debug_and_closed(loop):
    loop.set_debug(True)
    assert _repr_tail(loop) == "running=False closed=False debug=True>"
    loop.set_debug(False)
    loop.close()
    assert _repr_tail(loop) == "running=False closed=True debug=False>"


# --------------------------------------------------------------------------
# async generators: hooks and shutdown_asyncgens
# --------------------------------------------------------------------------


def test_asyncgen_hooks_installed_only_while_running(loop):
    before = sys.get_asyncgen_hooks()
    seen = []

    async def main():
        hooks = sys.get_asyncgen_hooks()
        seen.append((hooks.firstiter is not None, hooks.finalizer is not None))

    loop.run_until_complete(main())
    assert seen == [(True, True)]
    assert sys.get_asyncgen_hooks() == before


def test_shutdown_asyncgens_finalizes_unexhausted_generator(loop):
    log = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append("finalized")

    gen = agen()

    async def main():
        return await gen.__anext__()

    assert loop.run_until_complete(main()) == 1
    assert log == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert log == ["finalized"]
    # the generator is closed now
    with pytest.raises(StopAsyncIteration):
        loop.run_until_complete(gen.__anext__())


def test_shutdown_asyncgens_without_generators(loop):
    assert loop.run_until_complete(loop.shutdown_asyncgens()) is None


def test_shutdown_asyncgens_many_generators(loop):
    log = []

    async def agen(i):
        try:
            yield i
            yield i
        finally:
            log.append(i)

    gens = [agen(i) for i in range(10)]

    async def main():
        for g in gens:
            await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert sorted(log) == list(range(10))


def test_asyncgen_finalizer_on_gc_while_running(loop):
    import gc

    log = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append("finalized")

    async def main():
        g = agen()
        await g.__anext__()
        del g
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)
            if log:
                break

    loop.run_until_complete(main())
    assert log == ["finalized"]


def test_asyncgen_firstiter_after_shutdown_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def agen():
        yield 1

    async def main():
        g = agen()
        with pytest.warns(ResourceWarning, match=r"was scheduled after loop\.shutdown_asyncgens\(\) call"):
            await g.__anext__()
        await g.aclose()

    loop.run_until_complete(main())


def test_shutdown_asyncgens_aclose_error_goes_to_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append((lp, ctx)))

    async def agen():
        try:
            yield 1
        finally:
            raise ZeroDivisionError("in finally")

    gen = agen()

    async def main():
        await gen.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    lp, ctx = contexts[0]
    assert lp is loop
    assert ctx["message"].startswith(
        "an error occurred during closing of asynchronous generator"
    )
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert ctx["asyncgen"] is gen


def test_shutdown_asyncgens_aclose_error_logged_by_default(loop, caplog):
    async def agen():
        try:
            yield 1
        finally:
            raise ZeroDivisionError("in finally")

    gen = agen()

    async def main():
        await gen.__anext__()

    loop.run_until_complete(main())
    with caplog.at_level("ERROR", logger="asyncio"):
        loop.run_until_complete(loop.shutdown_asyncgens())
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("an error occurred during closing of asynchronous generator" in m for m in msgs), msgs
