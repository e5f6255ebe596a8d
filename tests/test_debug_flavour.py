"""The debug build's own checks, run by every test run.

tests/test_debug_build.py and tests/test_debug_handle_check.py (conftest's
per-test handle check) need a debug build of ourloop (`make debug`:
OURLOOP_DEBUG=1, handle accounting); against the ordinary build they skip.
So that the suite (and with it CI) always runs those checks, this test
builds the debug flavour from a copy of the source tree into a temporary
directory with pip (the build in the checkout is left alone) and runs
both against it in a child process, requiring every test there to pass.
"""

import os
import shutil
import subprocess
import sys

import pytest

ourloop = pytest.importorskip("ourloop")
from ourloop import _core  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# What the build needs from the checkout (vendor/ when it is checked out).
_SOURCES = ("ourloop", "vendor", "setup.py", "pyproject.toml", "README.md",
            "LICENSE")
_IGNORE = shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__",
                                 "*.egg-info", ".git")


def _copy_sources(dest):
    for name in _SOURCES:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name), ignore=_IGNORE)
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, name))


@pytest.mark.timeout(900)   # a full build at -O0: about a minute
@pytest.mark.skipif(_core.debug_handle_counts() is not None,
                    reason="this is a debug build: test_debug_build.py runs directly")
def test_debug_build_checks_pass(tmp_path):
    src = tmp_path / "src"
    site = tmp_path / "site"
    src.mkdir()
    _copy_sources(str(src))
    env = dict(os.environ, OURLOOP_DEBUG="1")
    env.pop("OURLOOP_ASAN", None)
    env.pop("OURLOOP_UBSAN", None)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
         "--no-deps", "--no-compile", "--target", str(site), str(src)],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    # The child's first sys.path entry is its working directory, the debug
    # build, ahead of the checkout's editable install.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         os.path.join(HERE, "test_debug_build.py"),
         os.path.join(HERE, "test_debug_handle_check.py")],
        cwd=str(site), env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert " passed" in out and "skipped" not in out, out[-3000:]
