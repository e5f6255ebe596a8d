"""add_reader / remove_reader / add_writer / remove_writer.

Reference: BaseSelectorEventLoop._add_reader & co., _process_events and
_ensure_fd_no_transport in asyncio/selector_events.py, with selectors'
EpollSelector underneath (its errors are epoll_ctl's). Every test runs on
both loops; the stdlib's answer is the expected one.

The fd-closed-while-watched sequences run in a child process: libuv aborts
the process when epoll_ctl fails while it (re)arms a watcher, so a
regression there must show up as a failed test, not as a dead pytest.
"""

import asyncio
import contextvars
import errno
import gc
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX fds")

VAR = contextvars.ContextVar("VAR", default="default")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def run_once(loop):
    """One iteration: what is ready now runs, I/O is polled without waiting."""
    loop.call_soon(loop.stop)
    loop.run_forever()


def run_until(loop, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in %ss" % timeout)
        run_once(loop)


def registered_fds(loop):
    """The fds the loop watches for the user (not its own self-pipe)."""
    if hasattr(loop, "_fd_watchers"):
        return sorted(loop._fd_watchers.fds())
    own = loop._ssock.fileno() if loop._ssock is not None else None
    return sorted(fd for fd in loop._selector.get_map() if fd != own)


def open_fd_count():
    return len(os.listdir("/proc/self/fd"))


class Pipe:
    """os.pipe() whose ends are closed once: a second close could close
    whatever reused the number (the loop's own fds, for instance)."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.open = {self.r, self.w}

    def close(self, fd):
        self.open.remove(fd)
        os.close(fd)

    def close_all(self):
        for fd in list(self.open):
            self.close(fd)


@pytest.fixture
def pipe():
    p = Pipe()
    yield p
    p.close_all()


@pytest.fixture(autouse=True)
def _isolate_var():
    token = VAR.set("default")
    yield
    VAR.reset(token)


# --------------------------------------------------------------------------
# basic behaviour
# --------------------------------------------------------------------------


def test_reader_called_when_readable(loop, pair):
    a, b = pair
    calls = []
    assert loop.add_reader(a.fileno(), calls.append, "r") is None
    run_once(loop)
    assert calls == []
    b.send(b"x")
    run_until(loop, lambda: calls)
    assert calls == ["r"]
    # Level-triggered: called again while data is unread.
    run_once(loop)
    assert calls == ["r", "r"]
    assert a.recv(10) == b"x"
    run_once(loop)
    run_once(loop)
    assert calls == ["r", "r"]
    assert loop.remove_reader(a.fileno()) is True


def test_writer_called_when_writable(loop, pair):
    a, _ = pair
    calls = []
    assert loop.add_writer(a.fileno(), calls.append, "w") is None
    run_until(loop, lambda: calls)
    assert calls == ["w"]
    assert loop.remove_writer(a.fileno()) is True
    run_once(loop)
    assert calls == ["w"]


def test_pipe_reader_and_writer(loop, pipe):
    r, w = pipe.r, pipe.w
    got = []

    def on_read():
        got.append(os.read(r, 100))
        if got[-1] == b"":
            loop.remove_reader(r)

    def on_write():
        os.write(w, b"hello")
        loop.remove_writer(w)
        pipe.close(w)

    loop.add_reader(r, on_read)
    loop.add_writer(w, on_write)
    run_until(loop, lambda: got and got[-1] == b"")
    assert b"".join(got) == b"hello"
    assert registered_fds(loop) == []


def test_file_objects_are_accepted(loop, pair):
    a, b = pair
    calls = []
    loop.add_reader(a, calls.append, 1)   # the socket object itself
    b.send(b"x")
    run_until(loop, lambda: calls)
    # Removing with the int fd finds the same registration, and back.
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a) is False
    loop.add_writer(a.fileno(), calls.append, 2)
    assert loop.remove_writer(a) is True


def test_object_with_fileno(loop, pair):
    a, b = pair

    class Wrapper:
        def fileno(self):
            return a.fileno()

    calls = []
    loop.add_reader(Wrapper(), calls.append, "ok")
    b.send(b"x")
    run_until(loop, lambda: calls)
    assert calls[0] == "ok"
    assert loop.remove_reader(Wrapper()) is True


def test_reader_and_writer_on_the_same_fd(loop, pair):
    a, b = pair
    log = []
    loop.add_reader(a, log.append, "r")
    loop.add_writer(a, log.append, "w")
    b.send(b"x")
    run_until(loop, lambda: "r" in log and "w" in log)
    # One selector key, reader first then writer, as _process_events does.
    assert log[:2] == ["r", "w"]
    assert loop.remove_writer(a) is True
    del log[:]
    run_once(loop)
    assert log == ["r"]
    assert registered_fds(loop) == [a.fileno()]
    assert loop.remove_reader(a) is True
    assert registered_fds(loop) == []


def test_callback_runs_in_the_context_of_add_time(loop, pair):
    a, b = pair
    seen = []
    VAR.set("at add")
    loop.add_reader(a, lambda: seen.append(VAR.get()))
    VAR.set("later")
    b.send(b"x")
    run_until(loop, lambda: seen)
    assert seen[0] == "at add"
    loop.remove_reader(a)


def test_readding_replaces_and_cancels(loop, pair):
    a, b = pair
    log = []
    h1 = loop._add_reader(a.fileno(), log.append, 1)
    h2 = loop._add_reader(a.fileno(), log.append, 2)
    assert isinstance(h1, asyncio.Handle)
    assert h1.cancelled() and not h2.cancelled()
    w1 = loop._add_writer(a.fileno(), log.append, "w1")
    w2 = loop._add_writer(a.fileno(), log.append, "w2")
    assert w1.cancelled() and not w2.cancelled()
    assert not h2.cancelled()
    b.send(b"x")
    run_until(loop, lambda: 2 in log)
    assert 1 not in log and "w1" not in log
    assert "w2" in log
    assert loop.remove_reader(a) is True
    assert h2.cancelled()
    assert loop.remove_writer(a) is True
    assert w2.cancelled()


def test_remove_return_values(loop, pair):
    a, _ = pair
    fd = a.fileno()
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False
    loop.add_reader(fd, lambda: None)
    assert loop.remove_writer(fd) is False       # a reader only
    assert registered_fds(loop) == [fd]
    assert loop.remove_reader(fd) is True
    assert loop.remove_reader(fd) is False
    assert registered_fds(loop) == []
    assert loop.remove_reader(12345) is False    # never registered


def test_remove_inside_callback(loop, pair):
    a, b = pair
    calls = []

    def cb():
        calls.append(1)
        assert loop.remove_reader(a) is True

    loop.add_reader(a, cb)
    b.send(b"x")
    run_until(loop, lambda: calls)
    for _ in range(3):
        run_once(loop)
    assert calls == [1]
    assert registered_fds(loop) == []


def test_readd_inside_callback(loop, pair):
    a, b = pair
    log = []

    def first():
        log.append("first")
        loop.add_reader(a, second)

    def second():
        log.append("second")
        loop.remove_reader(a)

    loop.add_reader(a, first)
    b.send(b"x")
    run_until(loop, lambda: "second" in log)
    assert log == ["first", "second"]


def test_cancelled_reader_is_unregistered_when_its_event_fires(loop, pair):
    a, b = pair
    calls = []
    h = loop._add_reader(a.fileno(), calls.append, "r")
    w = loop._add_writer(a.fileno(), calls.append, "w")
    h.cancel()
    assert registered_fds(loop) == [a.fileno()]
    b.send(b"x")
    run_once(loop)
    run_once(loop)
    assert "r" not in calls and "w" in calls
    # The reader part is gone (remove_reader has nothing to remove), the
    # writer stays.
    assert loop.remove_reader(a) is False
    w.cancel()
    run_once(loop)
    assert registered_fds(loop) == []
    assert loop.remove_writer(a) is False


def test_exception_in_callback_goes_to_the_handler(loop, pair):
    a, b = pair
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    def boom():
        loop.remove_reader(a)
        raise ZeroDivisionError("boom")

    loop.add_reader(a, boom)
    b.send(b"x")
    run_until(loop, lambda: errors)
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert isinstance(errors[0]["handle"], asyncio.Handle)
    assert errors[0]["message"].startswith("Exception in callback")


def test_add_reader_does_not_check_the_callback(loop, pair):
    # The stdlib stores anything; the error comes when it is called.
    a, b = pair
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    loop.add_reader(a, "not callable")
    b.send(b"x")
    run_until(loop, lambda: errors)
    assert isinstance(errors[0]["exception"], TypeError)
    loop.remove_reader(a)


def test_blocking_mode_of_the_fd_is_left_alone(loop, pipe):
    r, w = pipe.r, pipe.w
    assert os.get_blocking(r)
    loop.add_reader(r, lambda: None)
    loop.add_writer(w, lambda: None)
    assert os.get_blocking(r) and os.get_blocking(w)
    run_once(loop)
    assert os.get_blocking(r)
    loop.remove_reader(r)
    loop.remove_writer(w)
    os.set_blocking(r, False)
    loop.add_reader(r, lambda: None)
    assert not os.get_blocking(r)
    loop.remove_reader(r)


def test_hangup_makes_the_reader_run(loop, pipe):
    r, w = pipe.r, pipe.w
    got = []
    loop.add_reader(r, lambda: got.append(os.read(r, 10)))
    pipe.close(w)
    run_until(loop, lambda: got)
    assert got[0] == b""
    loop.remove_reader(r)


def test_socket_error_runs_reader_and_writer(loop):
    # A refused non-blocking connect: epoll reports EPOLLERR|EPOLLHUP, which
    # the stdlib's selector turns into "readable and writable".
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()
    s = socket.socket()
    s.setblocking(False)
    try:
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except ConnectionRefusedError:
            pytest.skip("refused synchronously")
        log = []
        loop.add_reader(s, log.append, "r")
        loop.add_writer(s, log.append, "w")
        run_until(loop, lambda: "r" in log and "w" in log)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        # Still reported, level-triggered, while registered (POLLHUP stays).
        del log[:]
        run_once(loop)
        assert "r" in log and "w" in log
        assert loop.remove_reader(s) and loop.remove_writer(s)
    finally:
        s.close()


# --------------------------------------------------------------------------
# order
# --------------------------------------------------------------------------


def test_io_callbacks_run_after_callbacks_already_ready(loop, pair):
    a, b = pair
    log = []

    def step():
        log.append("step")
        loop.call_soon(log.append, "soon1")
        b.send(b"x")              # readable in the next poll
        loop.call_soon(log.append, "soon2")

    def on_read():
        log.append("read")
        a.recv(10)
        loop.remove_reader(a)

    loop.add_reader(a, on_read)
    loop.call_soon(step)
    loop.call_later(0, log.append, "timer")
    run_until(loop, lambda: "read" in log and "timer" in log)
    # Iteration 1: step, then the due timer. Iteration 2: what call_soon
    # queued first, then the I/O callback.
    assert log == ["step", "timer", "soon1", "soon2", "read"]


def test_io_callback_then_due_timer_same_iteration(loop, pair):
    a, b = pair
    log = []

    def arm():
        b.send(b"x")
        loop.call_at(loop.time() - 1, log.append, "timer")

    loop.add_reader(a, lambda: (log.append("read"), loop.remove_reader(a)))
    loop.call_soon(arm)
    run_once(loop)
    run_once(loop)
    assert log == ["read", "timer"]


def test_reader_runs_once_per_iteration(loop):
    # Many fds ready at once: each reader is queued once per iteration, even
    # when the kernel reports more events than one epoll_wait() returns.
    pairs = [socket.socketpair() for _ in range(1100)]
    try:
        counts = {}
        for a, b in pairs:
            a.setblocking(False)
            fd = a.fileno()
            counts[fd] = 0

            def cb(fd=fd):
                counts[fd] += 1

            loop.add_reader(a, cb)
            b.send(b"x")
        run_once(loop)
        # The stdlib polls once per iteration; all are reported at once.
        assert set(counts.values()) == {1}
        run_once(loop)
        assert set(counts.values()) == {2}
        for a, _ in pairs:
            assert loop.remove_reader(a)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# --------------------------------------------------------------------------
# many fds, leaks
# --------------------------------------------------------------------------


def test_many_socketpairs(loop):
    pairs = [socket.socketpair() for _ in range(500)]
    try:
        got = []
        for a, _ in pairs:
            a.setblocking(False)

            def cb(a=a):
                got.append(a.recv(10))
                loop.remove_reader(a)

            loop.add_reader(a, cb)
        assert len(registered_fds(loop)) == 500
        for i, (_, b) in enumerate(pairs):
            b.send(b"%d" % i)
        run_until(loop, lambda: len(got) == 500)
        assert sorted(got) == sorted(b"%d" % i for i in range(500))
        assert registered_fds(loop) == []
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_no_fd_leaked(loop_factory):
    # libuv creates a process-wide pipe with its first loop: not a leak.
    loop_factory().close()
    gc.collect()
    before = open_fd_count()
    lp = loop_factory()
    try:
        pairs = [socket.socketpair() for _ in range(50)]
        for _ in range(3):
            for a, b in pairs:
                lp.add_reader(a, lambda: None)
                lp.add_writer(a, lambda: None)
                b.send(b"x")
            run_once(lp)
            for a, _ in pairs:
                assert lp.remove_reader(a)
                assert lp.remove_writer(a)
        # Registrations left behind are dropped by close().
        for a, _ in pairs:
            lp.add_reader(a, lambda: None)
        run_once(lp)
    finally:
        lp.close()
    for a, b in pairs:
        a.close()
        b.close()
    gc.collect()
    assert open_fd_count() == before


def test_watching_does_not_keep_a_closed_socket_open(loop):
    # Closing a watched socket really closes it: the peer sees EOF.
    a, b = socket.socketpair()
    try:
        loop.add_reader(a, lambda: None)
        run_once(loop)
        a.close()
        run_once(loop)
        b.settimeout(5)
        assert b.recv(10) == b""
    finally:
        b.close()
    loop.remove_reader(a)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


class _BadFileno:
    def __init__(self, result):
        self.result = result

    def fileno(self):
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
@pytest.mark.parametrize("fd, exc, message", [
    (-1, ValueError, "Invalid file descriptor: -1"),
    ("x", ValueError, "Invalid file object: 'x'"),
    (1.5, ValueError, "Invalid file object: 1.5"),
    (None, ValueError, "Invalid file object: None"),
    (object, ValueError, "Invalid file object: <class 'object'>"),
    (_BadFileno(-5), ValueError, "Invalid file descriptor: -5"),
    (_BadFileno(ValueError("closed")), ValueError, "Invalid file object: "),
    (_BadFileno("nope"), ValueError, "Invalid file object: "),
    (2 ** 40, OverflowError, "Python int too large to convert to C int"),
])
def test_bad_fd_arguments(loop, method, fd, exc, message):
    with pytest.raises(exc) as info:
        getattr(loop, method)(fd, lambda: None)
    assert str(info.value).startswith(message)
    assert registered_fds(loop) == []


@pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
def test_bad_fd_arguments_remove(loop, method):
    remove = getattr(loop, method)
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        remove(-1)
    with pytest.raises(ValueError, match="Invalid file object: 'x'"):
        remove("x")
    assert remove(2 ** 40) is False


def test_regular_file_is_refused_like_epoll(loop):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as info:
            loop.add_reader(f, lambda: None)
        assert info.value.errno == errno.EPERM
        with pytest.raises(PermissionError):
            loop.add_writer(f.fileno(), lambda: None)
        assert registered_fds(loop) == []
        assert loop.remove_reader(f) is False


def test_closed_fd_is_refused_like_epoll(loop):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        loop.add_reader(r, lambda: None)
    assert info.value.errno == errno.EBADF
    assert type(info.value) is OSError
    assert registered_fds(loop) == []


def test_closed_socket_object_can_still_be_removed(loop):
    # The selector finds a registered object whose fileno() is now -1.
    a, b = socket.socketpair()
    b.close()
    loop.add_reader(a, lambda: None)
    a.close()
    assert a.fileno() == -1
    assert loop.remove_reader(a) is True
    assert registered_fds(loop) == []
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.remove_reader(a)


def test_closed_loop(loop, pair):
    a, _ = pair
    loop.add_reader(a, lambda: None)
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, lambda: None)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_writer(a.fileno(), lambda: None)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    # The file object is checked first, even on a closed loop.
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.add_reader("x", lambda: None)
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.remove_reader("x")


class _FakeTransport:
    def __init__(self):
        self.closing = False

    def is_closing(self):
        return self.closing

    def __repr__(self):
        return "<FakeTransport>"


def test_fd_used_by_a_transport_is_refused(loop, pair):
    a, _ = pair
    transport = _FakeTransport()
    loop._transports[a.fileno()] = transport
    try:
        for method in ("add_reader", "add_writer"):
            with pytest.raises(RuntimeError, match="is used by transport <FakeTransport>"):
                getattr(loop, method)(a, lambda: None)
        for method in ("remove_reader", "remove_writer"):
            with pytest.raises(RuntimeError, match="File descriptor .* is used by transport"):
                getattr(loop, method)(a.fileno())
        # A closing transport no longer holds the fd.
        transport.closing = True
        loop.add_reader(a, lambda: None)
        assert loop.remove_reader(a) is True
    finally:
        del loop._transports[a.fileno()]


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------


def _run_in_thread(loop):
    started = threading.Event()
    loop.call_soon(started.set)
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    assert started.wait(10)
    return t


def test_add_reader_through_call_soon_threadsafe(loop, pair):
    # The supported way to register from another thread.
    a, b = pair
    got = threading.Event()
    t = _run_in_thread(loop)
    try:
        loop.call_soon_threadsafe(loop.add_reader, a, got.set)
        b.send(b"x")
        assert got.wait(10)
        done = threading.Event()
        loop.call_soon_threadsafe(lambda: (loop.remove_reader(a), done.set()))
        assert done.wait(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    assert registered_fds(loop) == []


@pytest.mark.only_loop("ourloop", reason="the stdlib's epoll tolerates it by "
                       "accident; libuv is not thread-safe, so ourloop refuses")
def test_watchers_of_a_running_loop_are_refused_from_other_threads(loop, pair):
    a, _ = pair
    t = _run_in_thread(loop)
    try:
        for call in (lambda: loop.add_reader(a, print),
                     lambda: loop.add_writer(a, print),
                     lambda: loop.remove_reader(a),
                     lambda: loop.remove_writer(a)):
            with pytest.raises(RuntimeError, match="Non-thread-safe operation"):
                call()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    # Not running: any thread may register (the loop is idle).
    loop.add_reader(a, print)
    assert loop.remove_reader(a) is True


# --------------------------------------------------------------------------
# debug mode
# --------------------------------------------------------------------------


def test_slow_reader_callback_is_reported_in_debug_mode(loop, pair, caplog):
    a, b = pair
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    done = []

    def slow():
        time.sleep(0.05)
        loop.remove_reader(a)
        done.append(1)

    loop.add_reader(a, slow)
    b.send(b"x")
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_until(loop, lambda: done)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Executing <Handle") and "slow" in m and "took" in m
               for m in messages), messages


# --------------------------------------------------------------------------
# fds closed while watched (child processes: libuv would abort)
# --------------------------------------------------------------------------

_HAZARD_PRELUDE = """
import os, socket, tempfile
loop = new_loop()
def once():
    loop.call_soon(loop.stop)
    loop.run_forever()
def try_(label, f, *args):
    try:
        print(label, f(*args))
    except OSError as e:
        print(label, type(e).__name__, e.errno)
once()   # the loop has run: its own fds exist
"""

HAZARDS = {
    "close_then_run": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
a.close()
once(); once()
print("remove", loop.remove_reader(fd))
""", ["remove True"]),

    "close_then_add_writer": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
once()
a.close()
try_("add_writer", loop.add_writer, fd, print, "WRONG")
once()
print("remove", loop.remove_reader(fd))
""", ["add_writer OSError 9", "remove False"]),

    "close_then_add_reader_again": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
once()
a.close()
try_("add_reader", loop.add_reader, fd, print, "WRONG")
once()
print("remove", loop.remove_reader(fd))
""", ["add_reader None", "remove True"]),

    "close_then_remove_reader_keeping_writer": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
loop.add_writer(fd, lambda: None)
once()
a.close()
try_("remove_reader", loop.remove_reader, fd)
once()
print("remove_writer", loop.remove_writer(fd))
""", ["remove_reader OSError 9", "remove_writer False"]),

    "close_then_remove_all": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
loop.add_writer(fd, lambda: None)
once()
a.close()
try_("remove_writer", loop.remove_writer, fd)
once()
print("remove_reader", loop.remove_reader(fd))
once()
""", ["remove_writer OSError 9", "remove_reader False"]),

    "add_writer_then_close_same_iteration": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
once()
loop.add_writer(fd, print, "WRONG")
a.close()
once(); once()
try_("remove_reader", loop.remove_reader, fd)
print("remove_writer", loop.remove_writer(fd))
""", ["remove_reader OSError 9", "remove_writer False"]),

    "close_inside_reader_callback": ("""
a, b = socket.socketpair()
fd = a.fileno()
def cb():
    print("cb")
    a.close()
loop.add_reader(fd, cb)
b.send(b"x")
once(); once(); once()
print("remove", loop.remove_reader(fd))
""", ["cb", "remove True"]),

    "close_and_readd_writer_inside_callback": ("""
a, b = socket.socketpair()
fd = a.fileno()
def cb():
    print("cb")
    a.close()
    try_("add_writer", loop.add_writer, fd, print, "WRONG")
loop.add_reader(fd, cb)
b.send(b"x")
once(); once(); once()
print("remove", loop.remove_reader(fd))
""", ["cb", "add_writer OSError 9", "remove False"]),

    "number_reused_by_a_regular_file": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
a.close()
f = tempfile.TemporaryFile()
print("reused", f.fileno() == fd)
once(); once()
try_("add_writer", loop.add_writer, fd, print, "WRONG")
print("remove", loop.remove_reader(fd))
""", ["reused True", "add_writer PermissionError 1", "remove False"]),

    "number_reused_by_a_new_socket": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
once()
a.close()
c, d = socket.socketpair()
print("reused", c.fileno() == fd)
d.send(b"data")
once(); once()
try_("add_writer", loop.add_writer, fd, print, "WRONG")
loop.add_reader(c, print, "new reader")
once()
print("remove", loop.remove_reader(c))
""", ["reused True", "add_writer FileNotFoundError 2", "new reader", "remove True"]),

    "number_reused_in_the_same_iteration": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
a.close()
c, d = socket.socketpair()
print("reused", c.fileno() == fd)
d.send(b"data")
once(); once()
print("remove", loop.remove_reader(c))
loop.add_reader(c, print, "new reader")
once()
print("remove", loop.remove_reader(c))
""", ["reused True", "remove True", "new reader", "remove True"]),

    # An fd whose registration ended (ourloop keeps its stopped uv_poll_t
    # for the next registration of the same file), then closed...
    "unregistered_then_closed": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG"); once()
print("remove", loop.remove_reader(fd))
a.close()
try_("add_reader", loop.add_reader, fd, print, "WRONG")
once()
""", ["remove True", "add_reader OSError 9"]),

    "unregistered_then_reused_by_a_regular_file": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG"); once()
print("remove", loop.remove_reader(fd))
a.close()
f = tempfile.TemporaryFile()
print("reused", f.fileno() == fd)
try_("add_writer", loop.add_writer, fd, print, "WRONG")
once()
""", ["remove True", "reused True", "add_writer PermissionError 1"]),

    "unregistered_then_reused_by_a_socket": ("""
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG"); once()
print("remove", loop.remove_reader(fd))
a.close()
c, d = socket.socketpair()
print("reused", c.fileno() == fd)
loop.add_reader(c, print, "new reader")
d.send(b"x")
once(); once()
print("remove", loop.remove_reader(c))
""", ["remove True", "reused True", "new reader", "new reader", "remove True"]),

    "unregistered_then_closed_inside_a_callback": ("""
a, b = socket.socketpair()
fd = a.fileno()
def cb():
    print("cb", loop.remove_reader(fd))
    a.close()
    try_("add_writer", loop.add_writer, fd, print, "WRONG")
loop.add_reader(fd, cb)
b.send(b"x")
once(); once()
""", ["cb True", "add_writer OSError 9"]),
}


def _hazard_check(run_py, code, expected, first_run=False):
    prelude = _HAZARD_PRELUDE
    if first_run:
        prelude = prelude.replace("once()   # the loop has run", "pass  # no run yet")
    proc = run_py(prelude + code + "\nloop.close()\nprint('exit ok')\n", timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert lines == expected + ["exit ok"], (proc.stdout, proc.stderr)


@pytest.mark.parametrize("name", sorted(HAZARDS))
def test_fd_closed_while_watched(run_py, name):
    code, expected = HAZARDS[name]
    _hazard_check(run_py, code, expected)


def test_fd_closed_before_the_first_run(run_py):
    # The loop's own wake-up socketpair, created by its first run, reuses
    # the number of the fd closed while watched.
    code = """
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print, "WRONG")
a.close()
once(); once()
print("remove", loop.remove_reader(fd))
once()
"""
    _hazard_check(run_py, code, ["remove True"], first_run=True)


def test_bool_as_fd(run_py):
    # True/False are ints (fds 1/0); Python 3.13's epoll warns each time it
    # is given one.
    code = """
import os, socket, warnings
a, b = socket.socketpair()
os.dup2(a.fileno(), 0)
loop = new_loop()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    loop.add_reader(False, print, "never")
    loop.add_writer(False, lambda: None)
    print("removed", loop.remove_reader(False), loop.remove_writer(0))
loop.close()
print(sorted(set(str(w.message) for w in caught)), len(caught))
"""
    proc = run_py(code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "removed True True"
    if sys.version_info >= (3, 13):
        assert lines[1] == "['bool is used as a file descriptor'] 4"
    else:
        assert lines[1] == "[] 0"


def test_double_close_hitting_the_loops_own_fd(run_py):
    # A buggy program closes an fd twice; the second close may hit whatever
    # reused the number, here the loop's own wake-up socket (ourloop creates
    # it on the first run). The loop must go on running, not abort.
    code = """
a, b = socket.socketpair()
fd = a.fileno()
a.close()
once()
try:
    os.close(fd)
except OSError:
    pass
for _ in range(3):
    once()
loop.call_later(0.01, print, "timer ran")
loop.call_later(0.02, loop.stop)
loop.run_forever()
try:
    loop.close()
except OSError:
    pass
print("survived")
"""
    prelude = _HAZARD_PRELUDE.replace("once()   # the loop has run", "pass  # no run yet")
    proc = run_py(prelude + code, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.splitlines() == ["timer ran", "survived"], proc.stderr


def test_signal_wakeup_after_an_fd_number_was_reused(py_script):
    # The loop's wake-up socket (created by ourloop's first run) reuses the
    # number of a socket that was watched, then unregistered and closed:
    # Ctrl-C must still wake the sleeping loop at once.
    code = """
import os, signal, socket, threading, time
loop = new_loop()
a, b = socket.socketpair()
fd = a.fileno()
loop.add_reader(fd, print)
loop.remove_reader(fd)
a.close()
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
loop.call_later(20, loop.stop)
t0 = time.monotonic()
try:
    loop.run_forever()
except KeyboardInterrupt:
    print("interrupted", time.monotonic() - t0 < 10)
loop.close()
"""
    argv, env = py_script(code)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.splitlines() == ["interrupted True"], proc.stderr
