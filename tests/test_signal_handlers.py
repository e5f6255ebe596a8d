"""loop.add_signal_handler() / loop.remove_signal_handler().

The specification is the stdlib's _UnixSelectorEventLoop (asyncio/
unix_events.py, identical in 3.9 .. 3.13): the callback is wrapped in
``events.Handle(callback, args, loop, None)`` at add time (so it runs in a
copy of the context current at add time, the same copy at every delivery),
the Python-level handler of the signal is a no-op and the signal number
written to the wake-up fd makes the loop queue the Handle; errors are
checked in the order coroutine (TypeError) -> signal (TypeError /
ValueError) -> closed loop (RuntimeError) -> main thread (RuntimeError) ->
catchable (RuntimeError 'sig N cannot be caught').

Signals are sent to our own process (SIGUSR1, SIGUSR2, SIGINT) while their
disposition is a loop handler, never while it is SIG_DFL (which would kill
pytest).  Every wait for a delivery is bounded by asyncio.wait_for(), so a
loop that never sees the signal fails instead of hanging, and an autouse
fixture restores the dispositions and the wake-up fd after each test.
"""

import asyncio
import contextvars
import os
import signal
import socket
import subprocess
import sys
import threading
import warnings

import pytest

from support import QUIET_PERIOD, iscoroutinefunction_as_on_314, quiet_period, run_until, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TIMEOUT = 5.0  # seconds to wait for a delivery
SIGS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)


@pytest.fixture(autouse=True)
def restore_signals():
    """Start without a wake-up fd; restore dispositions and wake-up fd after.

    Autouse, so it is set up before (and torn down after) the ``loop``
    fixture: the loop is closed first, then whatever it left is undone.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    saved = {sig: signal.getsignal(sig) for sig in SIGS}
    old_fd = signal.set_wakeup_fd(-1)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)
        signal.set_wakeup_fd(old_fd)


class Recorder:
    """A signal callback recording its calls; ``wait(n)`` runs the loop
    until it has been called n times (at most ``timeout`` seconds)."""

    def __init__(self, loop):
        self.loop = loop
        self.calls = []
        self._want = None
        self._fut = None

    def __call__(self, *args):
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        self.calls.append(
            {"args": args, "thread": threading.get_ident(), "running": running}
        )
        if self._fut is not None and not self._fut.done() and len(self.calls) >= self._want:
            self._fut.set_result(None)

    @property
    def args(self):
        return [c["args"] for c in self.calls]

    def wait(self, n, timeout=TIMEOUT):
        if len(self.calls) >= n:
            return
        self._want = n
        self._fut = self.loop.create_future()
        try:
            self.loop.run_until_complete(asyncio.wait_for(self._fut, timeout))
        except asyncio.TimeoutError:
            pytest.fail(
                "signal callback called %d time(s) in %ss, expected %d"
                % (len(self.calls), timeout, n)
            )
        finally:
            self._fut = None


def kill_soon(loop, sig):
    """Send sig to our own process from a callback of the running loop."""
    loop.call_soon(os.kill, os.getpid(), sig)


def spin(loop, seconds=QUIET_PERIOD):
    """Run the loop for a quiet period (support.quiet_period), to show that
    something does NOT happen; spin(loop, 0) runs one iteration."""
    loop.run_until_complete(quiet_period(seconds))


# --------------------------------------------------------------------------
# delivery
# --------------------------------------------------------------------------


def test_callback_runs_in_loop_with_args(loop):
    rec = Recorder(loop)
    assert loop.add_signal_handler(signal.SIGUSR1, rec, "a", 2) is None
    seen_right_after_kill = []

    def send():
        os.kill(os.getpid(), signal.SIGUSR1)
        # never run inside the signal handler: only queued for the loop
        seen_right_after_kill.append(len(rec.calls))

    loop.call_soon(send)
    rec.wait(1)
    assert seen_right_after_kill == [0]
    assert rec.args == [("a", 2)]
    assert rec.calls[0]["running"] is loop
    assert rec.calls[0]["thread"] == threading.main_thread().ident
    spin(loop)
    assert len(rec.calls) == 1  # one signal, one call


def test_signal_wakes_up_idle_loop(loop):
    # Nothing is scheduled but wait_for()'s timeout: the signal, sent from
    # another thread while the loop sleeps in its poll, must wake it.
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR2, rec, "idle")
    sender = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR2))
    sender.start()
    try:
        rec.wait(1)
    finally:
        sender.cancel()
        sender.join(TIMEOUT)
    assert rec.args == [("idle",)]


def test_several_signals_several_deliveries(loop):
    r1, r2 = Recorder(loop), Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, r1, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, r2, "usr2")
    for n in (1, 2, 3):
        kill_soon(loop, signal.SIGUSR1)
        r1.wait(n)
    for n in (1, 2):
        kill_soon(loop, signal.SIGUSR2)
        r2.wait(n)
    kill_soon(loop, signal.SIGUSR1)
    r1.wait(4)
    spin(loop)
    assert r1.args == [("usr1",)] * 4
    assert r2.args == [("usr2",)] * 2


def test_handler_added_from_coroutine(loop):
    # the usual way: add_signal_handler() inside the running loop
    got = []

    async def main():
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, fut.set_result, "from-main")
        os.kill(os.getpid(), signal.SIGUSR1)
        got.append(await asyncio.wait_for(fut, TIMEOUT))
        return loop.remove_signal_handler(signal.SIGUSR1)

    assert loop.run_until_complete(main()) is True
    assert got == ["from-main"]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_handler_survives_stop_and_restart(loop):
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec)
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(2)
    assert rec.args == [(), ()]


def test_signal_sent_while_loop_not_running_is_delivered(loop):
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec, "early")
    os.kill(os.getpid(), signal.SIGUSR1)  # the loop is not running
    assert rec.calls == []
    rec.wait(1)
    assert rec.args == [("early",)]
    spin(loop)
    assert len(rec.calls) == 1


def test_signal_sent_between_runs_is_delivered(loop):
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR2, rec, "between")
    spin(loop, 0)
    os.kill(os.getpid(), signal.SIGUSR2)
    assert rec.calls == []
    rec.wait(1)
    assert rec.args == [("between",)]


def test_sigint_handler_replaces_keyboard_interrupt(loop):
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGINT, rec, "int")
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    try:
        kill_soon(loop, signal.SIGINT)
        rec.wait(1)
        spin(loop)
    except KeyboardInterrupt:
        pytest.fail("SIGINT raised KeyboardInterrupt despite add_signal_handler(SIGINT)")
    assert rec.args == [("int",)]
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --------------------------------------------------------------------------
# replace / remove
# --------------------------------------------------------------------------


def test_second_add_replaces_handler(loop):
    first, second = Recorder(loop), Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, first, 1)
    loop.add_signal_handler(signal.SIGUSR1, second, 2)
    kill_soon(loop, signal.SIGUSR1)
    second.wait(1)
    spin(loop)
    assert first.calls == []
    assert second.args == [(2,)]
    # one handler per signal: one removal
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_remove_returns_true_then_false_and_restores_sig_dfl(loop):
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    handler = signal.getsignal(signal.SIGUSR1)
    assert callable(handler)  # a Python-level (no-op) handler
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    # never added
    assert loop.remove_signal_handler(signal.SIGUSR2) is False
    # valid but uncatchable, never added: False as well
    assert loop.remove_signal_handler(signal.SIGKILL) is False


def test_remove_overrides_a_user_handler_with_sig_dfl(loop):
    # remove_signal_handler() sets SIG_DFL, not whatever was there before
    def user_handler(signum, frame):
        pass

    signal.signal(signal.SIGUSR2, user_handler)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    assert signal.getsignal(signal.SIGUSR2) is not user_handler
    assert loop.remove_signal_handler(signal.SIGUSR2) is True
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_remove_sigint_restores_default_int_handler(loop):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert loop.remove_signal_handler(signal.SIGINT) is False


def test_removed_handler_is_not_called(loop):
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec)
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(1)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    # a plain Python handler takes over (not SIG_DFL: that would kill us)
    py_calls = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: py_calls.append(signum))
    kill_soon(loop, signal.SIGUSR1)
    run_until(loop, lambda: py_calls)
    spin(loop)
    assert py_calls == [signal.SIGUSR1]
    assert len(rec.calls) == 1


def test_callback_can_remove_its_own_handler(loop):
    # one-shot handler: remove_signal_handler() from inside the callback
    results = []
    done = loop.create_future()

    def once():
        results.append(loop.remove_signal_handler(signal.SIGUSR2))
        done.set_result(None)

    loop.add_signal_handler(signal.SIGUSR2, once)
    kill_soon(loop, signal.SIGUSR2)
    loop.run_until_complete(asyncio.wait_for(done, TIMEOUT))
    assert results == [True]
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


async def _coro_func():
    pass


def test_coroutine_function_callback_type_error(loop):
    with pytest.raises(TypeError) as info:
        loop.add_signal_handler(signal.SIGUSR1, _coro_func)
    assert str(info.value) == "coroutines cannot be used with add_signal_handler()"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_coroutine_check_uses_no_deprecated_function(loop, loop_kind, monkeypatch):
    # Python 3.14 deprecates asyncio.iscoroutinefunction (it warns); the
    # stdlib's add_signal_handler() checks with the private function.
    iscoroutinefunction_as_on_314(monkeypatch, loop_kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(TypeError, match="coroutines cannot be used"):
            loop.add_signal_handler(signal.SIGUSR1, _coro_func)
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


def test_coroutine_object_callback_type_error(loop):
    coro = _coro_func()
    try:
        with pytest.raises(TypeError) as info:
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    assert str(info.value) == "coroutines cannot be used with add_signal_handler()"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_coroutine_check_comes_before_signal_check(loop):
    # stdlib order: the callback is checked first
    with pytest.raises(TypeError, match="coroutines cannot be used"):
        loop.add_signal_handler(0, _coro_func)


@pytest.mark.parametrize("sig", ["10", 10.0, None, b"\x0a"], ids=repr)
def test_non_int_signal_type_error(loop, sig):
    with pytest.raises(TypeError) as info:
        loop.add_signal_handler(sig, lambda: None)
    assert str(info.value) == "sig must be an int, not %r" % (sig,)
    with pytest.raises(TypeError) as info:
        loop.remove_signal_handler(sig)
    assert str(info.value) == "sig must be an int, not %r" % (sig,)


@pytest.mark.parametrize("sig", [0, -1, signal.NSIG + 1], ids=lambda s: "sig=%d" % s)
def test_invalid_signal_value_error(loop, sig):
    with pytest.raises(ValueError) as info:
        loop.add_signal_handler(sig, lambda: None)
    assert str(info.value) == "invalid signal number %d" % sig
    with pytest.raises(ValueError) as info:
        loop.remove_signal_handler(sig)
    assert str(info.value) == "invalid signal number %d" % sig
    assert signal.set_wakeup_fd(-1) == -1


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=lambda s: s.name)
def test_uncatchable_signal_runtime_error(loop, sig):
    with pytest.raises(RuntimeError) as info:
        loop.add_signal_handler(sig, lambda: None)
    assert str(info.value) == "sig %d cannot be caught" % sig
    assert signal.getsignal(sig) == signal.SIG_DFL
    assert loop.remove_signal_handler(sig) is False
    # the failed add left no wake-up fd behind (the stdlib resets it to -1)
    assert signal.set_wakeup_fd(-1) == -1
    # and the loop can still handle catchable signals
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec)
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(1)
    assert rec.args == [()]


def test_uncatchable_signal_keeps_other_handlers(loop):
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec, "kept")
    with pytest.raises(RuntimeError, match="^sig 9 cannot be caught$"):
        loop.add_signal_handler(signal.SIGKILL, lambda: None)
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(1)
    assert rec.args == [("kept",)]


def test_non_main_thread_runtime_error(loop_factory):
    # The message is the ValueError of signal.set_wakeup_fd() in a thread.
    result = {}

    def in_thread():
        try:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError as exc:
                result["expected"] = str(exc)
            lp = loop_factory()
            try:
                try:
                    lp.add_signal_handler(signal.SIGUSR1, lambda: None)
                except BaseException as exc:
                    result["exc"] = exc
                result["remove"] = lp.remove_signal_handler(signal.SIGUSR1)
            finally:
                lp.close()
        except BaseException as exc:  # reported below, not lost in the thread
            result["crash"] = exc

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), "thread hung"
    assert "crash" not in result, result.get("crash")
    assert type(result.get("exc")) is RuntimeError, result
    assert str(result["exc"]) == result["expected"]
    assert "main thread" in result["expected"]
    assert result["remove"] is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


def test_closed_loop_runtime_error(loop):
    loop.close()
    with pytest.raises(RuntimeError) as info:
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert str(info.value) == "Event loop is closed"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    # argument errors are raised before the closed check
    with pytest.raises(TypeError, match="coroutines cannot be used"):
        loop.add_signal_handler(signal.SIGUSR1, _coro_func)
    with pytest.raises(TypeError, match="sig must be an int"):
        loop.add_signal_handler("x", lambda: None)
    with pytest.raises(ValueError, match="invalid signal number 0"):
        loop.add_signal_handler(0, lambda: None)
    # remove_signal_handler() does not check for a closed loop
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


# --------------------------------------------------------------------------
# close()
# --------------------------------------------------------------------------


def test_close_removes_handlers(loop):
    for sig in SIGS:
        loop.add_signal_handler(sig, lambda: None)
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec)
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(1)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.set_wakeup_fd(-1) == -1  # no fd of the closed loop left
    for sig in SIGS:
        assert loop.remove_signal_handler(sig) is False


def test_close_without_running_removes_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


# --------------------------------------------------------------------------
# exceptions and context
# --------------------------------------------------------------------------


def _raise_boom(arg):
    raise ZeroDivisionError("boom %s" % arg)


def test_callback_exception_goes_to_exception_handler(loop, callback_args_repr):
    contexts = []
    rec = Recorder(loop)

    def handler(lp, context):
        contexts.append((lp, context))

    loop.set_exception_handler(handler)
    loop.add_signal_handler(signal.SIGUSR1, _raise_boom, 7)
    loop.add_signal_handler(signal.SIGUSR2, rec)
    kill_soon(loop, signal.SIGUSR1)
    kill_soon(loop, signal.SIGUSR2)  # the loop goes on after the error
    rec.wait(1)
    spin(loop)
    assert len(contexts) == 1, contexts
    lp, ctx = contexts[0]
    assert lp is loop
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert str(ctx["exception"]) == "boom 7"
    assert ctx["message"].startswith(
        "Exception in callback _raise_boom" + callback_args_repr("7")
    ), ctx["message"]
    assert "handle" in ctx
    # the same handler again: reported again
    kill_soon(loop, signal.SIGUSR1)
    kill_soon(loop, signal.SIGUSR2)
    rec.wait(2)
    spin(loop)
    assert len(contexts) == 2
    assert contexts[1][1]["handle"] is ctx["handle"]  # one Handle per add


_var = contextvars.ContextVar("signal_test_var", default="unset")


def test_callback_runs_in_context_copied_at_add_time(loop):
    seen = []
    token = _var.set("at-add")
    try:
        def cb():
            seen.append(_var.get())
            _var.set("set-in-callback-%d" % len(seen))

        loop.add_signal_handler(signal.SIGUSR1, cb)
        _var.set("after-add")
        done = []
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR2, rec)

        async def main():
            # the task's context has its own value; the callback's is not it
            _var.set("in-task")
            for n in (1, 2):
                os.kill(os.getpid(), signal.SIGUSR1)
                os.kill(os.getpid(), signal.SIGUSR2)
                await until(lambda n=n: len(rec.calls) >= n)
            done.append(_var.get())

        loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
        # first delivery: the value at add time; second: the same context
        # object again, so it sees what the first call set
        assert seen == ["at-add", "set-in-callback-1"]
        assert done == ["in-task"]
        assert _var.get() == "after-add"  # nothing leaked out
    finally:
        _var.reset(token)


# --------------------------------------------------------------------------
# the signal wake-up fd
# --------------------------------------------------------------------------


def test_no_wakeup_fd_left_after_last_remove(loop):
    # Without a wake-up fd of the user's, none is left set afterwards: the
    # stdlib resets it to -1 when its last handler goes.
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR2) is True
    assert signal.set_wakeup_fd(-1) == -1

    # ... also when removed while the loop runs, once run_forever() returns
    rec = Recorder(loop)
    loop.add_signal_handler(signal.SIGUSR1, rec)
    kill_soon(loop, signal.SIGUSR1)
    rec.wait(1)

    async def remove():
        return loop.remove_signal_handler(signal.SIGUSR1)

    assert loop.run_until_complete(remove()) is True
    assert signal.set_wakeup_fd(-1) == -1


def test_handlers_work_when_user_set_a_wakeup_fd(loop):
    r, w = socket.socketpair()
    try:
        r.setblocking(False)
        w.setblocking(False)
        signal.set_wakeup_fd(w.fileno())
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec, "with-user-fd")
        kill_soon(loop, signal.SIGUSR1)
        rec.wait(1)
        assert rec.args == [("with-user-fd",)]
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        # whichever fd is left, it is not a dangling one of the loop's
        fd = signal.set_wakeup_fd(-1)
        assert fd in (-1, w.fileno())
    finally:
        signal.set_wakeup_fd(-1)
        r.close()
        w.close()


@pytest.mark.only_loop(
    "ourloop",
    reason="the stdlib's add_signal_handler() replaces a wake-up fd set by the "
    "user with its self-pipe, and remove_signal_handler() resets it to -1: "
    "the user's fd is lost there",
)
def test_user_wakeup_fd_kept_across_add_and_remove(loop):
    r, w = socket.socketpair()
    try:
        r.setblocking(False)
        w.setblocking(False)
        signal.set_wakeup_fd(w.fileno())
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec)
        kill_soon(loop, signal.SIGUSR1)
        rec.wait(1)
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert signal.set_wakeup_fd(w.fileno()) == w.fileno()
        # the user's fd also got the signal byte
        assert r.recv(4096) == bytes([signal.SIGUSR1])
        # and after close() too
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)
        loop.close()
        assert signal.set_wakeup_fd(-1) == w.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        r.close()
        w.close()


_CTRL_C_CHILD = """
import os, signal, threading
threading.Timer(15, os._exit, (3,)).start()

def ctrl_c_later():
    # like a real Ctrl-C: to the main thread, while the loop sleeps
    t = threading.Timer(0.2, signal.pthread_kill,
                        (threading.main_thread().ident, signal.SIGINT))
    t.start()
    return t

loop = new_loop()
got = []
loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
ctrl_c_later()
try:
    loop.run_forever()
except KeyboardInterrupt:
    print("KeyboardInterrupt-1")
print(got)
print(loop.remove_signal_handler(signal.SIGUSR1))
ctrl_c_later()
try:
    loop.run_forever()
except KeyboardInterrupt:
    print("KeyboardInterrupt-2")
loop.close()
os._exit(0)
"""


def test_ctrl_c_with_and_after_signal_handlers(run_py):
    # SIGINT without a loop handler still raises KeyboardInterrupt out of a
    # sleeping loop, while other signals have handlers and after they are
    # all removed.  In a child process: a failure cannot hit pytest.
    try:
        proc = run_py(_CTRL_C_CHILD, timeout=40)
    except subprocess.TimeoutExpired:
        pytest.fail("child hung")
    assert proc.returncode != 3, "Ctrl-C did not interrupt the loop\n" + proc.stderr
    assert proc.stdout.split("\n")[:4] == [
        "KeyboardInterrupt-1",
        "['usr1']",
        "True",
        "KeyboardInterrupt-2",
    ], (proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
