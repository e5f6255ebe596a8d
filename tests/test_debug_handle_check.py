"""The per-test handle check of tests/conftest.py (``_libuv_handles_closed``),
which only a debug build of ourloop can make (make debug): a test that
leaves a libuv handle open fails, naming the kind of handle; one marked
``leaves_handles`` passes; one that drops its loop unclosed passes once the
loop is collected.

Each case is a small test module run by pytest in a child process with this
suite's conftest.py (copied next to it), so that the outcome of the check
itself is what is tested.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ourloop = pytest.importorskip("ourloop")
from ourloop import _core  # noqa: E402

pytestmark = pytest.mark.skipif(
    _core.debug_handle_counts() is None,
    reason="handle accounting exists only in debug builds (make debug)",
)

HERE = os.path.dirname(os.path.abspath(__file__))


def run_inner(tmp_path, body):
    for name in ("conftest.py", "support.py", "tls_certs.py"):
        shutil.copy(os.path.join(HERE, name), tmp_path / name)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""\
        import asyncio
        import ourloop
        import pytest

        KEEP = []
        """) + textwrap.dedent(body))
    # The child imports this very ourloop (the debug build under test).
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ourloop.__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "-p", "no:asyncio", "-p", "no:anyio", "-W", "ignore::ResourceWarning",
         "-o", "addopts=", str(tmp_path / "test_inner.py")],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_handle_left_open_fails_the_test_naming_its_kind(tmp_path):
    code, out = run_inner(tmp_path, """
        def test_leaves_a_loop_open():
            loop = ourloop.new_event_loop()
            loop.call_later(3600, print)
            loop.run_until_complete(asyncio.sleep(0))
            KEEP.append(loop)      # never closed, never collected
        """)
    assert code == 1, out
    assert "1 error" in out, out
    assert "libuv handles opened in this test and still open" in out, out
    assert "1 async" in out and "1 timer" in out, out


def test_the_marker_lets_a_test_leave_handles(tmp_path):
    code, out = run_inner(tmp_path, """
        @pytest.mark.leaves_handles(reason="kept for the next test")
        def test_leaves_a_loop_open():
            loop = ourloop.new_event_loop()
            loop.call_later(3600, print)
            loop.run_until_complete(asyncio.sleep(0))
            KEEP.append(loop)
        """)
    assert code == 0, out
    assert "1 passed" in out, out


def test_closed_and_collected_loops_pass(tmp_path):
    code, out = run_inner(tmp_path, """
        def test_closes_its_loop(loop):
            loop.run_until_complete(asyncio.sleep(0.001))

        def test_drops_its_loop_unclosed():
            loop = ourloop.new_event_loop()
            loop.call_later(3600, print)
            loop.run_until_complete(asyncio.sleep(0))
        """)
    assert code == 0, out
    assert "3 passed" in out, out
