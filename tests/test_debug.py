"""Debug mode: set_debug/get_debug, environment, slow callbacks, source
tracebacks, thread and callback checks.

Reference: BaseEventLoop.__init__/set_debug/_check_thread/_check_callback/
_run_once and asyncio/coroutines.py (_is_debug_mode).
"""

import asyncio
import logging
import os
import re
import sys
import threading
import time
import warnings

import pytest

from support import iscoroutinefunction_as_on_314

THIS_FILE = os.path.basename(__file__)
THREAD_MSG = "Non-thread-safe operation invoked on an event loop other than the current one"


def _lineno():
    return sys._getframe(1).f_lineno


def _in_other_thread(fn):
    """Run fn() in another thread; return the exception it raised, or None."""
    result = []

    def target():
        try:
            fn()
        except BaseException as exc:
            result.append(exc)
        else:
            result.append(None)

    t = threading.Thread(target=target)
    t.start()
    t.join(20)
    assert result, "thread did not finish"
    return result[0]


# --------------------------------------------------------------------------
# set_debug / get_debug / environment
# --------------------------------------------------------------------------


def test_set_get_debug(loop):
    loop.set_debug(False)
    assert loop.get_debug() is False
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_set_debug_while_running(loop):
    seen = []

    async def main():
        loop.set_debug(True)
        seen.append(loop.get_debug())
        await asyncio.sleep(0)
        loop.set_debug(False)
        seen.append(loop.get_debug())

    loop.run_until_complete(main())
    assert seen == [True, False]


def test_slow_callback_duration_default(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


_PRINT_DEBUG = """
loop = new_loop()
print("debug=%s" % loop.get_debug())
loop.close()
"""


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        ((), {}, False),
        ((), {"PYTHONASYNCIODEBUG": "1"}, True),
        ((), {"PYTHONASYNCIODEBUG": ""}, False),
        (("-X", "dev"), {}, True),
        (("-E",), {"PYTHONASYNCIODEBUG": "1"}, False),  # -E ignores the env
    ],
    ids=["default", "env", "env-empty", "dev-mode", "ignore-env"],
)
def test_debug_from_environment(run_py, flags, env, expected):
    proc = run_py(_PRINT_DEBUG, flags=flags, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "debug=%s" % expected


def test_asyncio_run_debug_env_subprocess(run_py):
    # The loop created by the runner honours PYTHONASYNCIODEBUG too.
    code = """
    async def main():
        return asyncio.get_running_loop().get_debug()
    if ourloop is not None:
        print("debug=%s" % ourloop.run(main()))
    else:
        print("debug=%s" % asyncio.run(main()))
    """
    proc = run_py(code, env={"PYTHONASYNCIODEBUG": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "debug=True"


# --------------------------------------------------------------------------
# coroutine origin tracking
# --------------------------------------------------------------------------


def test_coroutine_origin_tracking_in_debug(loop):
    before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    depth = loop.run_until_complete(main())
    assert depth == asyncio.constants.DEBUG_STACK_DEPTH
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_no_coroutine_origin_tracking_without_debug(loop):
    loop.set_debug(False)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(main()) == sys.get_coroutine_origin_tracking_depth()


# --------------------------------------------------------------------------
# slow callbacks
# --------------------------------------------------------------------------


def slow_callback():
    time.sleep(0.05)


def test_slow_callback_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(slow_callback)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    warnings_ = [r for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(warnings_) == 1, [r.getMessage() for r in caplog.records]
    msg = warnings_[0].getMessage()
    m = re.match(r"^Executing (<Handle .*>) took (\d+\.\d{3}) seconds$", msg, re.S)
    assert m, msg
    assert "slow_callback" in m.group(1)
    assert float(m.group(2)) >= 0.045


def test_slow_timer_callback_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_later(0.001, slow_callback)
    loop.call_later(0.01, loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(msgs) == 1, msgs
    assert re.match(r"^Executing <TimerHandle .*slow_callback.*> took \d+\.\d{3} seconds$", msgs[0], re.S)


def test_slow_task_step_warning_names_the_task(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def slow_coroutine():
        time.sleep(0.05)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_until_complete(slow_coroutine())
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(msgs) == 1, msgs
    assert re.match(r"^Executing <Task .*slow_coroutine.*> took \d+\.\d{3} seconds$", msgs[0], re.S), msgs[0]


def test_debug_exception_message_shows_args(loop, caplog):
    # 3.13+ hides callback arguments, except in debug mode
    loop.set_debug(True)
    loop.call_soon(failing_callback_args, 1, "two")
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    errors = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("Exception in callback failing_callback_args(1, 'two')"), errors[0]


def failing_callback_args(*args):
    raise ValueError("debug boom")


def test_no_slow_callback_warning_without_debug(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.01
    loop.call_soon(slow_callback)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    assert [r for r in caplog.records if r.name == "asyncio"] == []


def test_fast_callback_no_warning_in_debug(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 10
    loop.call_soon(slow_callback)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    assert [r for r in caplog.records if r.name == "asyncio"] == []


# --------------------------------------------------------------------------
# source tracebacks
# --------------------------------------------------------------------------


def failing_callback():
    raise ValueError("debug boom")


def test_source_traceback_in_exception_context(loop):
    loop.set_debug(True)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    line = _lineno() + 1
    h = loop.call_soon(failing_callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx["handle"] is h
    tb = ctx["source_traceback"]
    assert os.path.basename(tb[-1][0]) == THIS_FILE
    assert tb[-1][1] == line


def test_source_traceback_logged_in_debug(loop, caplog):
    loop.set_debug(True)
    loop.call_soon(failing_callback)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    errors = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "Object created at (most recent call last):" in errors[0]
    assert THIS_FILE in errors[0]


def test_handle_traceback_for_errors_reported_from_a_callback(loop, caplog):
    # In debug mode the default handler adds where the *current* handle was
    # created when the context has no source_traceback of its own.
    loop.set_debug(True)

    def reporter():
        loop.call_exception_handler({"message": "reported from a callback"})

    loop.call_soon(reporter)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_forever()
    errors = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("reported from a callback\nhandle_traceback: Handle created at (most recent call last):")
    assert THIS_FILE in errors[0]


def test_no_source_traceback_without_debug(loop):
    loop.set_debug(False)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.call_soon(failing_callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert "source_traceback" not in contexts[0]


# --------------------------------------------------------------------------
# thread checks
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_thread_check_in_debug(loop, method):
    loop.set_debug(True)
    errors = []

    def other_thread_call():
        if method == "call_soon":
            loop.call_soon(print)
        elif method == "call_later":
            loop.call_later(1, print)
        else:
            loop.call_at(loop.time() + 1, print)

    def cb():
        errors.append(_in_other_thread(other_thread_call))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError), errors
    assert str(errors[0]) == THREAD_MSG


def test_call_soon_threadsafe_from_other_thread_ok_in_debug(loop):
    loop.set_debug(True)
    log = []
    errors = []

    def cb():
        errors.append(_in_other_thread(lambda: loop.call_soon_threadsafe(log.append, "ok")))
        loop.call_soon(loop.stop)

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == [None]
    assert log == ["ok"]


def test_no_thread_check_when_loop_not_running(loop):
    loop.set_debug(True)
    assert _in_other_thread(lambda: loop.call_soon(print).cancel()) is None


def test_no_thread_check_without_debug(loop):
    loop.set_debug(False)
    log = []
    errors = []

    def cb():
        errors.append(_in_other_thread(lambda: loop.call_soon(log.append, "x")))
        # the loop does not know a callback was added: wake it up
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == [None]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["x"]


# --------------------------------------------------------------------------
# callback checks
# --------------------------------------------------------------------------


async def coro_func():
    pass


def _schedule(loop, method, cb):
    if method == "call_soon":
        return loop.call_soon(cb)
    if method == "call_soon_threadsafe":
        return loop.call_soon_threadsafe(cb)
    if method == "call_later":
        return loop.call_later(1, cb)
    if method == "call_at":
        return loop.call_at(loop.time() + 1, cb)
    if method == "run_in_executor":
        return loop.run_in_executor(None, cb)
    raise AssertionError(method)


# call_later delegates to call_at in the stdlib, hence the name in the message
_REPORTED = {
    "call_soon": "call_soon",
    "call_soon_threadsafe": "call_soon_threadsafe",
    "call_later": "call_at",
    "call_at": "call_at",
    "run_in_executor": "run_in_executor",
}


@pytest.mark.parametrize("method", sorted(_REPORTED))
def test_coroutine_rejected_in_debug(loop, method):
    loop.set_debug(True)
    coro = coro_func()
    try:
        with pytest.raises(TypeError, match=r"^coroutines cannot be used with %s\(\)$" % _REPORTED[method]):
            _schedule(loop, method, coro)
    finally:
        coro.close()


@pytest.mark.parametrize("method", sorted(_REPORTED))
def test_coroutine_function_rejected_in_debug(loop, method):
    loop.set_debug(True)
    with pytest.raises(TypeError, match=r"^coroutines cannot be used with %s\(\)$" % _REPORTED[method]):
        _schedule(loop, method, coro_func)


@pytest.mark.parametrize("method", sorted(_REPORTED))
def test_callback_check_uses_no_deprecated_function(loop, loop_kind, method, monkeypatch):
    # Python 3.14: in debug mode every callback is checked, and a check
    # through the deprecated asyncio.iscoroutinefunction would warn for
    # every call_soon() (an error under -W error). The stdlib's does not.
    iscoroutinefunction_as_on_314(monkeypatch, loop_kind)
    loop.set_debug(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(TypeError, match=r"^coroutines cannot be used with %s\(\)$"
                           % _REPORTED[method]):
            _schedule(loop, method, coro_func)
        if method != "run_in_executor":
            handle = _schedule(loop, method, lambda: None)
            assert isinstance(handle, asyncio.Handle)
            handle.cancel()


@pytest.mark.parametrize("method", sorted(_REPORTED))
def test_non_callable_rejected_in_debug(loop, method):
    loop.set_debug(True)
    with pytest.raises(
        TypeError,
        match=r"^a callable object was expected by %s\(\), got 1$" % _REPORTED[method],
    ):
        _schedule(loop, method, 1)


def test_close_logged_in_debug(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.close()
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.DEBUG]
    assert any(m.startswith("Close <") for m in msgs), msgs
