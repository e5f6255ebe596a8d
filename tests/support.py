"""Helpers of the test suite that are not fixtures.

Test modules import these from here (``from support import fd_count``);
tests/conftest.py holds the fixtures and hooks, and imports what it needs
from here too.
"""

import asyncio
import gc
import os
import socket
import sys
import time
import uuid
import warnings

import pytest

# --------------------------------------------------------------------------
# ourloop import status
# --------------------------------------------------------------------------

try:
    import ourloop as _ourloop
except BaseException as exc:  # ImportError, or a broken extension module
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise
    _ourloop = None
    OURLOOP_IMPORT_ERROR = exc
else:
    OURLOOP_IMPORT_ERROR = None

ALLOW_MISSING = os.environ.get("OURLOOP_ALLOW_MISSING") == "1"


def ourloop_module():
    """The ourloop module, or None if it cannot be imported."""
    return _ourloop


def require_ourloop():
    """Return the ourloop module; skip or fail (see conftest's doc) if
    missing."""
    if _ourloop is not None:
        return _ourloop
    reason = "cannot import ourloop: %r" % (OURLOOP_IMPORT_ERROR,)
    if ALLOW_MISSING:
        pytest.skip(reason + " (OURLOOP_ALLOW_MISSING=1)")
    pytest.fail(
        reason + " -- build/install it (pip install -e .), or set "
        "OURLOOP_ALLOW_MISSING=1 to skip the ourloop half of the suite",
        pytrace=False,
    )


def ourloop_path():
    """The directory to put on sys.path to import this ourloop ("" if it
    cannot be imported)."""
    if _ourloop is None:
        return ""
    return os.path.dirname(os.path.dirname(os.path.abspath(_ourloop.__file__)))


# --------------------------------------------------------------------------
# the stdlib loop
# --------------------------------------------------------------------------


def stdlib_new_event_loop():
    """The stdlib default loop, independent of any installed policy.

    This is what ``asyncio.DefaultEventLoopPolicy().new_event_loop()``
    returns (SelectorEventLoop on POSIX, ProactorEventLoop on Windows).
    """
    if sys.platform == "win32":  # pragma: no cover
        return asyncio.ProactorEventLoop()
    return asyncio.SelectorEventLoop()


def stdlib_callback_repr(args_repr, debug=False):
    """How the running stdlib formats ``cb(*args)`` in reprs and log messages.

    Python 3.13 stopped showing callback arguments outside debug mode; ask
    the stdlib itself instead of hard-coding versions.
    """

    def probe(*args):
        pass

    lp = asyncio.SelectorEventLoop()
    try:
        lp.set_debug(debug)
        h = lp.call_soon(probe, 1)
        shown = "probe(1)" in repr(h)
        h.cancel()
    finally:
        lp.close()
    return "(%s)" % args_repr if shown else "()"


# --------------------------------------------------------------------------
# fd accounting
# --------------------------------------------------------------------------


def fd_count():
    """Open fds of this process, for leak checks.

    libuv keeps one fd per loop, from the loop's first stream to its close:
    a reserve (``/dev/null``) it gives up to accept-and-drop a connection
    when the process runs out of fds. An ourloop loop keeps another from
    its first sock_* wait to its close: the epoll set those waits use
    (ourloop/sockops.pyx). Neither is a leak, so they are not counted."""
    try:
        from ourloop import _core
        loop_owned = {str(fd) for fd in _core._sock_set_fds()}
    except (ImportError, AttributeError):
        loop_owned = set()
    count = 0
    for name in os.listdir("/proc/self/fd"):
        if name in loop_owned:
            continue
        try:
            if os.readlink("/proc/self/fd/" + name) == "/dev/null":
                continue
        except OSError:
            continue  # the fd listdir() itself used, closed meanwhile
        count += 1
    return count


async def settled_fd_count(target, timeout=5.0, collect=False):
    """fd_count() once it is at most `target`: closes that the loop
    completes in later iterations (the server side of a connection, a
    transport's deferred close) are waited for, not slept for. After
    `timeout` seconds without getting there, the count as it is: a leak,
    which the caller's assertion then reports. With `collect`, each count
    follows a gc.collect() (for objects whose fd only goes with them)."""
    deadline = time.monotonic() + timeout
    while True:
        if collect:
            gc.collect()
        count = fd_count()
        if count <= target or time.monotonic() >= deadline:
            return count
        await asyncio.sleep(0.001)


# --------------------------------------------------------------------------
# waiting for a state, and for a quiet period
# --------------------------------------------------------------------------

# until()'s default: generous, only a guard against a state that never
# comes (a wait that succeeds returns as soon as the state is there).
WAIT_TIMEOUT = 30.0


async def until(predicate, timeout=WAIT_TIMEOUT, step=0.001):
    """Wait until predicate() is true; return its (true) value.

    For a state no callback of the test signals (bytes in a kernel buffer,
    a child's exit, a count another object keeps): predicate() is tried at
    once, then every `step` seconds while the running loop goes on. A
    future or event set by a callback is better where the test has one.
    After `timeout` seconds without it: AssertionError (a guard against a
    hang, not a bound on the wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                "not reached in %ss: %s" % (timeout, getattr(predicate, "__qualname__", predicate))
            )
        await asyncio.sleep(step)


def ipv6_loopback_works(kind=socket.SOCK_STREAM):
    """Whether a socket of `kind` can bind ::1 here (IPv6 may be compiled
    in and still be off in the kernel or the container)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, kind) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def run_until(loop, predicate, timeout=WAIT_TIMEOUT, step=0.001):
    """until() run in `loop` (which must not be running)."""
    return loop.run_until_complete(until(predicate, timeout, step))


def wait_blocking(predicate, timeout=WAIT_TIMEOUT, step=0.001):
    """until() for a thread without a running loop (time.sleep() steps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                "not reached in %ss: %s" % (timeout, getattr(predicate, "__qualname__", predicate))
            )
        time.sleep(step)


# Poll-like system calls, by machine (os.uname().machine): number -> index
# of the timeout among the arguments (None: not looked at).
_POLL_SYSCALLS = {
    "x86_64": {7: 2, 23: None, 232: 3, 270: None, 271: None, 281: 3, 441: None},
    "aarch64": {22: 3, 72: None, 73: None, 441: None},
}


def blocked_in_poll(native_id, pid="self"):
    """Whether thread `native_id` (threading's native_id) of process `pid`
    (this one by default; a child's main thread is its pid) is blocked in
    a poll-like system call (epoll_wait, ...) with a timeout other than 0,
    as /proc/PID/task/ID/syscall shows it; None where the kernel does not
    tell (another machine, no /proc)."""
    calls = _POLL_SYSCALLS.get(os.uname().machine)
    if calls is None:
        return None
    try:
        with open("/proc/%s/task/%d/syscall" % (pid, native_id)) as f:
            fields = f.read().split()
    except OSError:
        return None
    if not fields or not fields[0].isdigit() or int(fields[0]) not in calls:
        return False  # running, or in another system call
    index = calls[int(fields[0])]
    return index is None or int(fields[1 + index], 16) & 0xFFFFFFFF != 0


def wait_blocked_in_poll(native_id, pid="self", timeout=WAIT_TIMEOUT):
    """Wait, in another thread or process, until the loop running in thread
    `native_id` (of process `pid`) sleeps in its poll, so that what the
    test does next has to wake it. Where blocked_in_poll() cannot tell,
    quiet_period_blocking() instead."""
    if blocked_in_poll(native_id, pid) is None:
        quiet_period_blocking()
        return
    wait_blocking(lambda: blocked_in_poll(native_id, pid), timeout)


# How long quiet_period() lets the loop run by default.
QUIET_PERIOD = 0.05


async def quiet_period(seconds=QUIET_PERIOD):
    """Let the running loop go on for `seconds`, for a check that nothing
    happens meanwhile (no data_received while reading is paused, no second
    connection_lost, no late callback).

    The one place where the suite sleeps for a fixed time, on purpose: an
    event that does not come has no callback to wait for, so a bounded
    interval is the only way to observe its absence. A broken loop that
    would do it later than this passes, which is the inherent limit of the
    check; the interval is long enough for a loop to go round many times
    (the misbehaviour would come within an iteration or two, not after
    some time), and short enough not to slow the suite. Where it can, the
    caller first waits for a positive event proving the other side did
    its part (the peer has written, the timer before it has fired), so
    the quiet period starts when the event could have come."""
    await asyncio.sleep(seconds)


def quiet_period_blocking(seconds=QUIET_PERIOD):
    """quiet_period() for a thread that checks another thread's loop, or
    code outside any loop (time.sleep())."""
    time.sleep(seconds)


# sockets
# --------------------------------------------------------------------------


def unix_dgram_pair():
    """Two non-blocking AF_UNIX datagram sockets bound to names (in the
    abstract namespace) and connected to each other. A send on one fails
    with EAGAIN once the other's receive queue is full, where UDP would
    drop; and each end has a peer name (a socketpair's ends have the empty
    name, and the stdlib takes a transport whose peername is '' for an
    unconnected one)."""
    names = ["\0ourloop-test-" + uuid.uuid4().hex for _ in range(2)]
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.bind(names[0])
    b.bind(names[1])
    a.connect(names[1])
    b.connect(names[0])
    a.setblocking(False)
    b.setblocking(False)
    return a, b


# --------------------------------------------------------------------------
# running a coroutine
# --------------------------------------------------------------------------

# run_coro()'s default: generous, a guard against a hang that fails this
# test (with its teardown) rather than the whole run (pytest-timeout).
RUN_TIMEOUT = 60


def run_coro(loop, coro, timeout=RUN_TIMEOUT):
    """loop.run_until_complete(coro) under asyncio.wait_for(timeout)."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


# --------------------------------------------------------------------------
# servers in child processes (uvicorn, gunicorn)
# --------------------------------------------------------------------------

class ServerProcess:
    """A server started as a child process, whose stderr tells when it is
    ready: wait_output(*needles) reads it until each needle has appeared
    (a needle given twice must appear twice) and returns what was read."""

    def __init__(self, args, cwd):
        import subprocess
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.text = ''

    def wait_output(self, *needles, timeout=60):
        import selectors
        # Reads the raw fd: a buffered readline() could take several
        # lines at once and leave select() waiting for ones already read.
        fd = self.proc.stderr.fileno()
        wanted = {needle: needles.count(needle) for needle in needles}

        def done():
            return all(self.text.count(n) >= k for n, k in wanted.items())

        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not done():
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    break
                data = os.read(fd, 65536)
                if not data:
                    break
                self.text += data.decode(errors='replace')
        assert done(), f'waited for {needles!r}; the server wrote:\n{self.text}'
        return self.text

    def stop(self):
        import subprocess
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self.proc.stderr.close()


def http_get(address, path='/'):
    """One HTTP/1.1 GET with Connection: close to a TCP (host, port) or
    Unix socket path; returns the body (bytes) of a 200 answer."""
    import socket
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(address)
        sock.sendall(f'GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n'.encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    head, _, body = b''.join(chunks).partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), head
    return body


def iscoroutinefunction_as_on_314(monkeypatch, loop_kind):
    """Make asyncio.coroutines look as on Python 3.14: the public
    iscoroutinefunction deprecated (it warns on every call; 3.16 removes
    it), the loops' callback checks calling the private
    _iscoroutinefunction instead."""
    from asyncio import coroutines
    real = getattr(coroutines, "_iscoroutinefunction", None)
    if real is None:
        if loop_kind == "asyncio":
            pytest.skip("this Python's stdlib loop checks with the public "
                        "asyncio.iscoroutinefunction")
        real = coroutines.iscoroutinefunction
        monkeypatch.setattr(coroutines, "_iscoroutinefunction", real, raising=False)

    def deprecated(func):
        warnings.warn("asyncio.iscoroutinefunction is deprecated", DeprecationWarning,
                      stacklevel=2)
        return real(func)

    monkeypatch.setattr(coroutines, "iscoroutinefunction", deprecated)


# -- another flavour of ourloop, built into a temporary directory --------------

# What a build needs from the checkout (vendor/ when it is checked out).
_FLAVOUR_SOURCES = ("ourloop", "vendor", "setup.py", "pyproject.toml", "README.md", "LICENSE")
# The build switches of setup.py: each flavour build sets its own, none
# inherited from the environment of the test run (make asan's, say).
_FLAVOUR_SWITCHES = ("OURLOOP_DEBUG", "OURLOOP_ASAN", "OURLOOP_UBSAN", "OURLOOP_PORTABLE")


def build_flavour(tmp_path, **switches):
    """Build ourloop from a copy of the checkout's sources with the given
    setup.py switches (e.g. OURLOOP_DEBUG="1") into tmp_path/"site" with
    pip, the checkout's own build left alone; return that directory. A
    child process started with it as its working directory imports that
    build ahead of the checkout's editable install (PYTHONPATH unset: see
    flavour_env())."""
    import shutil
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = tmp_path / "src"
    site = tmp_path / "site"
    src.mkdir()
    ignore = shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__", "*.egg-info", ".git")
    for name in _FLAVOUR_SOURCES:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(src, name), ignore=ignore)
        elif os.path.exists(path):
            shutil.copy2(path, os.path.join(src, name))
    env = {k: v for k, v in os.environ.items() if k not in _FLAVOUR_SWITCHES}
    env.update(switches)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
         "--no-deps", "--no-compile", "--target", str(site), str(src)],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return site


def flavour_env():
    """The environment of a child that runs a build_flavour() build: the
    child's first sys.path entry is its working directory (that build),
    so PYTHONPATH must not put another ahead of it."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


# -- a Python without some asyncio names (3.16's: no policy system) ------------

# The start of a child interpreter's code (python -c): hides the
# comma-separated module.attribute names of sys.argv[1] before anything
# else is imported (the policy tests simulate a Python without asyncio's
# policies this way).
HIDE_NAMES_PRELUDE = r'''
import asyncio, asyncio.events, asyncio.unix_events, sys, warnings

def hide(target, attr):
    if attr in vars(target):
        delattr(target, attr)
    old = vars(target).get('__getattr__')
    if old is not None:   # 3.14+ serves deprecated names from __getattr__
        def __getattr__(name, _old=old, _attr=attr):
            if name == _attr:
                raise AttributeError(name)
            return _old(name)
        target.__getattr__ = __getattr__

# asyncio itself imports the default policy class lazily (3.9/3.10's
# set_event_loop does): let it, before the names are hidden, as a Python
# without them never asks.
with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    asyncio.events.get_event_loop_policy()
for name in sys.argv[1].split(','):
    module, _, attr = name.rpartition('.')
    hide(sys.modules[module], attr)
'''


# The policy system's names, all of them (3.16 removes it).
NO_POLICY_NAMES = ','.join([
    'asyncio.DefaultEventLoopPolicy', 'asyncio.set_event_loop_policy',
    'asyncio.unix_events._UnixDefaultEventLoopPolicy',
    'asyncio.unix_events.DefaultEventLoopPolicy',
    'asyncio.events._BaseDefaultEventLoopPolicy'])
