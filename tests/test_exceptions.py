"""Error handling: exception handlers, logging, BaseException propagation.

Reference: Handle._run (asyncio/events.py), BaseEventLoop.
call_exception_handler / default_exception_handler / set_exception_handler
(asyncio/base_events.py).
"""

import asyncio
import contextvars
import logging
import sys

import pytest

from support import run_until


def failing_callback(*args):
    raise ZeroDivisionError("from callback")


class MyBaseException(BaseException):
    pass


def _asyncio_records(caplog):
    return [r for r in caplog.records if r.name == "asyncio"]


@pytest.fixture
def contexts(loop):
    got = []

    def handler(lp, ctx):
        got.append((lp, ctx))

    loop.set_exception_handler(handler)
    return got


# --------------------------------------------------------------------------
# default handler / logging
# --------------------------------------------------------------------------


def test_exception_in_callback_is_logged_and_loop_continues(loop, caplog, callback_args_repr):
    log = []
    loop.call_soon(failing_callback, 1)
    loop.call_soon(log.append, "still running")
    loop.call_soon(loop.call_soon, log.append, "next iteration")
    loop.call_soon(loop.call_soon, loop.call_soon, loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    assert log == ["still running", "next iteration"]
    records = _asyncio_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    rec = records[0]
    assert rec.levelno == logging.ERROR
    msg = rec.getMessage()
    assert msg.startswith("Exception in callback "), msg
    assert "failing_callback" + callback_args_repr("1") in msg
    assert "handle: <Handle" in msg
    assert rec.exc_info is not None
    assert isinstance(rec.exc_info[1], ZeroDivisionError)


def test_exception_in_timer_callback_is_logged(loop, caplog):
    loop.call_later(0.001, failing_callback)
    loop.call_later(0.01, loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    msgs = [r.getMessage() for r in _asyncio_records(caplog)]
    assert len(msgs) == 1
    assert msgs[0].startswith("Exception in callback ")
    assert "failing_callback" in msgs[0]
    assert "handle: <TimerHandle" in msgs[0]


def test_default_exception_handler_logs_message_and_keys(loop, caplog):
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.default_exception_handler({"message": "custom message", "foo": "bar"})
    (rec,) = _asyncio_records(caplog)
    assert rec.levelno == logging.ERROR
    assert rec.getMessage() == "custom message\nfoo: 'bar'"
    assert not rec.exc_info


def test_default_exception_handler_without_message(loop, caplog):
    exc = KeyError("k")
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.default_exception_handler({"exception": exc})
    (rec,) = _asyncio_records(caplog)
    assert rec.getMessage() == "Unhandled exception in event loop"
    assert rec.exc_info[1] is exc


def test_call_exception_handler_default(loop, caplog):
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.call_exception_handler({"message": "via call_exception_handler"})
    (rec,) = _asyncio_records(caplog)
    assert rec.getMessage() == "via call_exception_handler"


# --------------------------------------------------------------------------
# custom handler
# --------------------------------------------------------------------------


def test_get_exception_handler(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize("bad", [1, "handler"])
def test_set_exception_handler_not_callable(loop, bad):
    with pytest.raises(TypeError, match="^A callable object or None is expected, got %r$" % (bad,)):
        loop.set_exception_handler(bad)
    assert loop.get_exception_handler() is None


def test_custom_handler_context_for_call_soon(loop, contexts, callback_args_repr):
    h = loop.call_soon(failing_callback, "x")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    lp, ctx = contexts[0]
    assert lp is loop
    assert {"message", "exception", "handle"} <= set(ctx)
    assert ctx["message"].startswith("Exception in callback ")
    assert "failing_callback" + callback_args_repr("'x'") in ctx["message"]
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert str(ctx["exception"]) == "from callback"
    assert ctx["handle"] is h


def test_custom_handler_context_for_call_later(loop, contexts):
    h = loop.call_later(0.001, failing_callback)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    _, ctx = contexts[0]
    assert ctx["handle"] is h
    assert isinstance(ctx["exception"], ZeroDivisionError)


def test_custom_handler_context_for_threadsafe(loop, contexts):
    h = loop.call_soon_threadsafe(failing_callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert contexts[0][1]["handle"] is h


def test_custom_handler_receives_same_context_dict(loop, contexts):
    ctx = {"message": "hello", "extra": 1}
    loop.call_exception_handler(ctx)
    assert contexts == [(loop, ctx)]
    assert contexts[0][1] is ctx


def test_custom_handler_sees_the_exception_being_handled(loop):
    # The stdlib calls the handler from Handle._run's except clause: a
    # handler may log with sys.exc_info() (logger.exception and the like).
    seen = []

    def handler(lp, ctx):
        seen.append((sys.exc_info()[1], ctx["exception"]))

    loop.set_exception_handler(handler)
    loop.call_soon(failing_callback, 1)
    loop.call_later(0, failing_callback)
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert len(seen) == 2
    for current, reported in seen:
        assert isinstance(reported, ZeroDivisionError)
        assert current is reported
    assert sys.exc_info() == (None, None, None)


def test_callback_cancelling_its_own_handle_keeps_its_arguments(loop):
    # cancel() drops the handle's callback and arguments while they run.
    got = []
    holder = []

    def callback(a, b):
        holder[0].cancel()
        got.append((a, b, holder[0].cancelled()))

    holder.append(loop.call_soon(callback, [1], {"b": 2}))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert got == [([1], {"b": 2}, True)]


def test_base_exception_subclass_goes_to_handler(loop, contexts):
    def raise_base():
        raise MyBaseException("base")

    log = []
    loop.call_soon(raise_base)
    loop.call_soon(log.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["after"]
    assert len(contexts) == 1
    assert isinstance(contexts[0][1]["exception"], MyBaseException)


def test_error_in_custom_handler_is_logged(loop, caplog):
    def bad_handler(lp, ctx):
        raise RuntimeError("handler is broken")

    loop.set_exception_handler(bad_handler)
    log = []
    loop.call_soon(failing_callback)
    loop.call_soon(log.append, "after")
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    assert log == ["after"]
    records = _asyncio_records(caplog)
    assert len(records) == 1
    msg = records[0].getMessage()
    assert msg.startswith("Unhandled error in exception handler"), msg
    assert "Exception in callback" in msg  # the original context is included
    assert isinstance(records[0].exc_info[1], RuntimeError)


def test_custom_handler_can_delegate_to_default(loop, caplog):
    seen = []

    def handler(lp, ctx):
        seen.append(ctx["message"])
        lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    loop.call_soon(failing_callback)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    assert len(seen) == 1
    msgs = [r.getMessage() for r in _asyncio_records(caplog)]
    assert len(msgs) == 1 and msgs[0].startswith("Exception in callback")


def test_custom_handler_runs_on_the_loop(loop):
    seen = []

    def handler(lp, ctx):
        seen.append((lp.is_running(), asyncio.get_running_loop() is lp))

    loop.set_exception_handler(handler)
    loop.call_soon(failing_callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [(True, True)]


def test_unretrieved_future_exception_goes_to_handler(loop, contexts):
    import gc

    fut = loop.create_future()
    fut.set_exception(ValueError("lost"))
    del fut
    gc.collect()
    assert len(contexts) == 1
    _, ctx = contexts[0]
    assert ctx["message"] == "Future exception was never retrieved"
    assert isinstance(ctx["exception"], ValueError)


# --------------------------------------------------------------------------
# KeyboardInterrupt / SystemExit propagate
# --------------------------------------------------------------------------


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_from_run_forever(loop, contexts, exc_type):
    log = []

    def raiser():
        raise exc_type()

    loop.call_soon(raiser)
    loop.call_soon(log.append, "rest-of-batch")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert contexts == []
    assert not loop.is_running()
    # The rest of the interrupted batch is still pending and runs next time.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["rest-of-batch"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_from_timer(loop, contexts, exc_type):
    def raiser():
        raise exc_type()

    loop.call_later(0.001, raiser)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert contexts == []


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_from_run_until_complete(loop, exc_type):
    def raiser():
        raise exc_type()

    fut = loop.create_future()
    loop.call_soon(raiser)
    with pytest.raises(exc_type):
        loop.run_until_complete(fut)
    assert not fut.done()
    loop.call_soon(fut.set_result, "ok")
    assert loop.run_until_complete(fut) == "ok"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_from_coroutine(loop, exc_type):
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None


def test_keyboard_interrupt_from_threadsafe_callback(loop):
    def raiser():
        raise KeyboardInterrupt

    loop.call_soon_threadsafe(raiser)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()


def test_exception_handler_raising_keyboard_interrupt_propagates(loop):
    def handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    loop.call_soon(failing_callback)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()


HANDLER_VAR = contextvars.ContextVar("HANDLER_VAR", default="outer")


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="3.12+ runs a custom exception handler in the handle's/task's context",
)
def test_custom_handler_runs_in_handle_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(HANDLER_VAR.set, "handle-context")
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(HANDLER_VAR.get()))
    loop.call_soon(failing_callback, context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["handle-context"]


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="3.12+ runs a custom exception handler in the handle's/task's context",
)
def test_custom_handler_runs_in_task_context(loop):
    import gc

    ctx = contextvars.copy_context()
    ctx.run(HANDLER_VAR.set, "task-context")
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append((c["message"], HANDLER_VAR.get())))

    async def fail():
        raise ValueError("x")

    task = loop.create_task(fail(), context=ctx)
    run_until(loop, task.done)
    assert task.done()
    del task
    gc.collect()
    assert seen == [("Task exception was never retrieved", "task-context")]
