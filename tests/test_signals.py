"""Signals (SIGINT / Ctrl-C) reaching a loop that is blocked waiting.

Every scenario runs in a child process (``sys.executable -c ...``) so that a
failure cannot kill pytest.  The child prints ``ready`` once its loop runs;
the parent then sends the signal, like a user pressing Ctrl-C, and checks
the child's output and exit code.  The child has its own watchdog: if the
signal does not interrupt it within WATCHDOG seconds it exits with code 3.

Reference: with the stdlib loop, SIGINT makes epoll_wait() fail with EINTR,
Python runs signal.default_int_handler and KeyboardInterrupt propagates out
of run_forever(); asyncio.Runner (3.11+) installs its own SIGINT handler that
cancels the main task and wakes the loop with call_soon_threadsafe().
"""

import signal
import subprocess
import sys
import textwrap

import pytest

from support import wait_blocked_in_poll

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WATCHDOG = 15  # seconds, in the child
COMMUNICATE_TIMEOUT = 40  # seconds, in the parent

_WATCHDOG_CODE = """
import os, threading
def ready():
    print("ready", flush=True)
_wd = threading.Timer(%d, os._exit, (3,))
_wd.daemon = True
_wd.start()
""" % WATCHDOG


@pytest.fixture
def interrupt(py_script):
    """Start a child, wait for 'ready', send a signal, collect the result."""

    def _interrupt(code, sig=signal.SIGINT, busy=False):
        argv, env = py_script(_WATCHDOG_CODE + textwrap.dedent(code))
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first = proc.stdout.readline()
            if first.strip() != "ready":
                out, err = proc.communicate(timeout=COMMUNICATE_TIMEOUT)
                pytest.fail("child did not get ready: %r %r %r" % (first, out, err))
            if not busy:
                # the signal has to wake the loop from its poll
                wait_blocked_in_poll(proc.pid, proc.pid)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=COMMUNICATE_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return proc.returncode, out, err

    return _interrupt


def _check(result, expected_lines):
    rc, out, err = result
    # The child's watchdog exits with 3 if the signal did not interrupt it.
    assert rc != 3, "signal did not interrupt the loop (watchdog fired)\n" + err
    assert out.split() == expected_lines, (out, err)
    assert rc == 0, err


def test_sigint_interrupts_run_forever_without_timers(interrupt):
    code = """
    loop = new_loop()
    loop.call_soon(ready)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    print("running=%s" % loop.is_running())
    loop.close()
    """
    _check(interrupt(code), ["KeyboardInterrupt", "running=False"])


def test_sigint_interrupts_run_forever_with_far_timer(interrupt):
    code = """
    loop = new_loop()
    loop.call_later(3600, print, "never")
    loop.call_soon(ready)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    loop.close()
    """
    _check(interrupt(code), ["KeyboardInterrupt"])


def test_sigint_interrupts_run_until_complete(interrupt):
    code = """
    loop = new_loop()
    async def main():
        print("ready", flush=True)
        await asyncio.sleep(3600)
    try:
        loop.run_until_complete(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    # the loop is usable afterwards
    print(loop.run_until_complete(asyncio.sleep(0, "reusable")))
    loop.close()
    """
    _check(interrupt(code), ["KeyboardInterrupt", "reusable"])


def test_sigint_interrupts_busy_loop(interrupt):
    code = """
    loop = new_loop()
    def spin():
        loop.call_soon(spin)
    loop.call_soon(ready)
    loop.call_soon(spin)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    loop.close()
    """
    # (spinning from the iteration that said ready: never in a blocking poll)
    _check(interrupt(code, busy=True), ["KeyboardInterrupt"])


def test_python_signal_handler_runs_while_loop_blocked(interrupt):
    # A Python-level handler (as asyncio.Runner installs) must run promptly
    # even though the loop is blocked in C with nothing scheduled.
    code = """
    import signal
    loop = new_loop()
    def handler(signum, frame):
        print("handler", signum == signal.SIGUSR1)
        loop.call_soon_threadsafe(loop.stop)
    signal.signal(signal.SIGUSR1, handler)
    loop.call_soon(ready)
    loop.run_forever()
    print("stopped")
    loop.close()
    """
    _check(interrupt(code, sig=signal.SIGUSR1), ["handler", "True", "stopped"])


def test_exception_from_python_signal_handler_propagates(interrupt):
    code = """
    import signal
    class Boom(Exception):
        pass
    def handler(signum, frame):
        raise Boom()
    signal.signal(signal.SIGUSR1, handler)
    loop = new_loop()
    loop.call_soon(ready)
    try:
        loop.run_forever()
    except Boom:
        print("Boom")
    loop.close()
    """
    _check(interrupt(code, sig=signal.SIGUSR1), ["Boom"])


_RUN_MAIN = """
async def main():
    print("ready", flush=True)
    try:
        await asyncio.get_running_loop().create_future()
    except asyncio.CancelledError:
        print("main-cancelled", flush=True)
        raise
"""


def test_ctrl_c_with_run(interrupt):
    # ourloop.run vs asyncio.run
    code = _RUN_MAIN + """
run = ourloop.run if ourloop is not None else asyncio.run
try:
    run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""
    _check(interrupt(code), ["main-cancelled", "KeyboardInterrupt"])


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in Python 3.11")
def test_ctrl_c_with_runner(interrupt):
    code = _RUN_MAIN + """
import signal
with asyncio.Runner(loop_factory=new_loop) as runner:
    try:
        runner.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    # the runner restored the default SIGINT handler
    print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    # and can still run coroutines
    print(runner.run(asyncio.sleep(0, "again")))
"""
    _check(interrupt(code), ["main-cancelled", "KeyboardInterrupt", "True", "again"])


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in Python 3.11")
def test_ctrl_c_main_task_can_clean_up(interrupt):
    # On Ctrl-C the Runner cancels the main task; the task may still await
    # during its cleanup before KeyboardInterrupt is raised.
    code = """
async def main():
    print("ready", flush=True)
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0.01)
        print("cleanup-done", flush=True)
with asyncio.Runner(loop_factory=new_loop) as runner:
    try:
        runner.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
"""
    _check(interrupt(code), ["cleanup-done", "KeyboardInterrupt"])


# --------------------------------------------------------------------------
# signal.set_wakeup_fd(): the stdlib loop never touches it in run_forever()
# (only add_signal_handler() does), so a wake-up fd installed by someone
# else keeps receiving signal bytes while the loop runs, and is still in
# place afterwards.  These run in pytest's main thread.
# --------------------------------------------------------------------------


@pytest.fixture
def wakeup_socket():
    import socket
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal.set_wakeup_fd() needs the main thread")
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    old_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_fd)
    old_handler = signal.getsignal(signal.SIGUSR1)
    try:
        yield r, w
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGUSR1, old_handler)
        r.close()
        w.close()


def _read_all(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_wakeup_fd_restored_after_run(loop, wakeup_socket):
    r, w = wakeup_socket
    signal.set_wakeup_fd(w.fileno())
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert signal.set_wakeup_fd(w.fileno()) == w.fileno()

    def fail():
        raise KeyboardInterrupt

    loop.call_soon(fail)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert signal.set_wakeup_fd(w.fileno()) == w.fileno()


def test_wakeup_fd_set_during_run_is_kept(loop, wakeup_socket):
    r, w = wakeup_socket
    seen = []

    def cb():
        seen.append(signal.set_wakeup_fd(w.fileno()))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert len(seen) == 1
    # whatever the loop had installed, the fd set by user code stays
    assert signal.set_wakeup_fd(-1) == w.fileno()


def test_user_wakeup_fd_receives_signals_while_loop_runs(loop, wakeup_socket):
    import os

    r, w = wakeup_socket
    handled = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    signal.set_wakeup_fd(w.fileno())

    def cb():
        os.kill(os.getpid(), signal.SIGUSR1)

    loop.call_soon(cb)
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert handled == [signal.SIGUSR1]
    assert _read_all(r) == bytes([signal.SIGUSR1])
