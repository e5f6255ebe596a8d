"""Shared fixtures for the ourloop test suite.

The rule of this suite: the stdlib asyncio event loop is the specification.
Every behavioural test takes the ``loop`` (or ``loop_factory``) fixture,
which is parametrized with the ids ``asyncio`` (the stdlib default loop) and
``ourloop`` (``ourloop.new_event_loop``), so that a divergence shows up as a
test that passes on ``[asyncio]`` and fails on ``[ourloop]``.

If ``import ourloop`` fails, the ``ourloop`` parameter FAILS loudly, unless
the environment variable ``OURLOOP_ALLOW_MISSING=1`` is set, in which case it
is skipped with the import error as the reason.  CI must never silently skip
ourloop.

Tests that only make sense on one loop use ``@pytest.mark.only_loop("ourloop",
reason="...")`` (or ``"asyncio"``); the other parameter is skipped with that
reason.

Helpers that are not fixtures (``fd_count``, ``require_ourloop``, ...) live
in tests/support.py; test modules import them from there, never from here.
A hung test is stopped by pytest-timeout (pyproject.toml: ``timeout``).

On a debug build of ourloop (``make debug``, which counts libuv handles),
every test must close by its end each libuv handle it opened: the autouse
fixture ``_libuv_handles_closed`` fails the test otherwise, naming the kind
of handle. A test that leaves handles to a later collection on purpose says
so with ``@pytest.mark.leaves_handles(reason="...")``.
"""

import asyncio
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

from support import (
    ALLOW_MISSING,
    OURLOOP_IMPORT_ERROR,
    ourloop_module,
    ourloop_path,
    require_ourloop,
    stdlib_callback_repr,
    stdlib_new_event_loop,
)
from tls_certs import make_certs

LOOP_KINDS = ("asyncio", "ourloop")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "only_loop(kind, reason): run the test only with the given loop kind "
        "('asyncio' or 'ourloop'); the other parametrization is skipped",
    )
    config.addinivalue_line(
        "markers",
        "leaves_handles(reason): on a debug build, do not require every libuv "
        "handle the test opened to be closed by its end",
    )
    # A run started in the background by a non-interactive shell (`cmd &`,
    # nohup) inherits SIGINT ignored, and an ignored signal stays ignored
    # across exec: the Python children of the Ctrl-C tests would get no
    # KeyboardInterrupt, on either loop. Take Python's own handler, as an
    # interactive run has (exec resets it to the default for children).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    mod = ourloop_module()
    if mod is not None:
        return "ourloop: %s from %s" % (
            getattr(mod, "__version__", "?"),
            os.path.dirname(mod.__file__),
        )
    return "ourloop: NOT IMPORTABLE (%r)%s" % (
        OURLOOP_IMPORT_ERROR,
        ", skipped (OURLOOP_ALLOW_MISSING=1)" if ALLOW_MISSING else ", its tests will FAIL",
    )


# --------------------------------------------------------------------------
# debug builds: every libuv handle a test opens is closed by its end
# --------------------------------------------------------------------------


def _debug_handle_counts():
    """ourloop._core.debug_handle_counts, or None unless this is a debug
    build (the only one that counts handles)."""
    mod = ourloop_module()
    counts = getattr(getattr(mod, "_core", None), "debug_handle_counts", None)
    if counts is None or counts() is None:
        return None
    return counts


_HANDLE_COUNTS = _debug_handle_counts()


def _open_handles():
    return {kind: opened - closed
            for kind, (opened, closed) in _HANDLE_COUNTS().items()}


def _handles_left(before):
    after = _open_handles()
    return {kind: n - before.get(kind, 0)
            for kind, n in sorted(after.items()) if n > before.get(kind, 0)}


@pytest.fixture(autouse=True)
def _libuv_handles_closed(request):
    """On a debug build: fail the test if more libuv handles are open after
    it (its loops closed by their fixtures, then gc.collect()) than before.
    Autouse, so it is set up before and torn down after the loop fixtures."""
    if _HANDLE_COUNTS is None or request.node.get_closest_marker("leaves_handles"):
        yield
        return
    before = _open_handles()
    yield
    left = _handles_left(before)
    if left:
        # Objects the test dropped unclosed close their handles when
        # collected (ResourceWarning, as the stdlib loop warns).
        gc.collect()
        left = _handles_left(before)
    if left:
        pytest.fail(
            "libuv handles opened in this test and still open at its end "
            "(after its loops were closed and gc.collect()): %s. Close them, or "
            "mark a test that leaves them on purpose with "
            "@pytest.mark.leaves_handles(reason=...)"
            % ", ".join("%d %s" % (n, kind) for kind, n in left.items()),
            pytrace=False,
        )


# --------------------------------------------------------------------------
# loop fixtures
# --------------------------------------------------------------------------


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request):
    """'asyncio' or 'ourloop'; honours @pytest.mark.only_loop."""
    kind = request.param
    marker = request.node.get_closest_marker("only_loop")
    if marker is not None:
        wanted = marker.args[0]
        if kind != wanted:
            reason = marker.kwargs.get("reason") or (
                marker.args[1] if len(marker.args) > 1 else ""
            )
            pytest.skip("only meaningful on %s: %s" % (wanted, reason))
    if kind == "ourloop":
        require_ourloop()
    return kind


@pytest.fixture
def loop_factory(loop_kind):
    if loop_kind == "asyncio":
        return stdlib_new_event_loop
    return require_ourloop().new_event_loop


def _finalize_loop(loop):
    try:
        if not loop.is_closed() and not loop.is_running():
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
    finally:
        asyncio.set_event_loop(None)


@pytest.fixture
def loop(loop_factory):
    """A fresh loop of the parametrized kind, set as the current loop."""
    lp = loop_factory()
    asyncio.set_event_loop(lp)
    yield lp
    _finalize_loop(lp)


@pytest.fixture
def new_loop(loop_factory):
    """Factory for extra loops of the same kind, all closed at teardown."""
    made = []

    def make():
        lp = loop_factory()
        made.append(lp)
        return lp

    yield make
    for lp in made:
        if not lp.is_closed() and not lp.is_running():
            lp.close()


@pytest.fixture
def run(loop):
    """run(aw) -> loop.run_until_complete(aw)."""

    def _run(aw):
        return loop.run_until_complete(aw)

    return _run


@pytest.fixture
def is_ourloop(loop_kind):
    return loop_kind == "ourloop"


@pytest.fixture
def ourloop_mod():
    """The ourloop module itself (for ourloop-only tests)."""
    return require_ourloop()


@pytest.fixture
def restore_policy():
    """Restore the global event loop policy after the test."""
    old = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(old)
    asyncio.set_event_loop(None)


# --------------------------------------------------------------------------
# subprocess helper
# --------------------------------------------------------------------------

_PREAMBLE = """\
import sys, asyncio
_kind, _path = sys.argv[1], sys.argv[2]
if _path:
    sys.path.insert(0, _path)
if _kind == "ourloop":
    import ourloop
    new_loop = ourloop.new_event_loop
else:
    ourloop = None
    new_loop = asyncio.SelectorEventLoop
"""


@pytest.fixture
def callback_args_repr():
    """callback_args_repr("1, 'x'", debug=False) -> "(1, 'x')" or "()"."""
    return stdlib_callback_repr


@pytest.fixture
def py_script(loop_kind):
    """Build the argv to run a snippet with ``sys.executable``.

    The snippet sees ``new_loop()`` (a loop factory for the current
    parametrization), ``ourloop`` (module or None) and ``asyncio``.
    Returns ``(argv, env)``; ``flags`` go before ``-c``.
    """

    def build(code, *, flags=(), env=None):
        full_env = dict(os.environ)
        full_env.pop("PYTHONASYNCIODEBUG", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        src = _PREAMBLE + textwrap.dedent(code)
        argv = [sys.executable, *flags, "-c", src, loop_kind, ourloop_path()]
        return argv, full_env

    return build


@pytest.fixture
def run_py(py_script):
    """Run a snippet in a subprocess (see ``py_script``), return the result."""

    def _run(code, *, flags=(), env=None, timeout=60):
        argv, full_env = py_script(code, flags=flags, env=env)
        return subprocess.run(
            argv, env=full_env, capture_output=True, text=True, timeout=timeout
        )

    return _run


@pytest.fixture
def pair():
    """A connected pair of non-blocking sockets (socket.socketpair())."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


# --------------------------------------------------------------------------
# TLS certificates
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_certs():
    """The test certificates of tests/tls_certs.py, made once per run."""
    if shutil.which("openssl") is None:
        pytest.fail(
            "the openssl command is needed to make test "
            "certificates (tools/install.sh installs it)",
            pytrace=False,
        )
    directory = tempfile.mkdtemp(prefix="ourloop-tls-")
    try:
        yield make_certs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
