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
import subprocess
import sys

import pytest

from support import build_flavour, flavour_env

ourloop = pytest.importorskip("ourloop")
from ourloop import _core  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

@pytest.mark.timeout(900)   # a full build at -O0: about a minute
@pytest.mark.skipif(_core.debug_handle_counts() is not None,
                    reason="this is a debug build: test_debug_build.py runs directly")
def test_debug_build_checks_pass(tmp_path):
    site = build_flavour(tmp_path, OURLOOP_DEBUG="1")
    env = flavour_env()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         os.path.join(HERE, "test_debug_build.py"),
         os.path.join(HERE, "test_debug_handle_check.py")],
        cwd=str(site), env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert " passed" in out and "skipped" not in out, out[-3000:]
