"""The platform layer's fallbacks, run by every test run.

ourloop/includes/platform.h puts each non-POSIX call (sendfile(2), pidfd
reaping, accept4) behind a native path and a portable fallback; macOS and
other Unixes take the fallbacks, Linux the native calls. So that the
fallbacks are tested here on Linux, this test builds the forced-portable
flavour (OURLOOP_PORTABLE=1) from a copy of the source tree into a
temporary directory with pip (the build in the checkout is left alone) and
runs the test modules that depend on the platform layer against it in a
child process, requiring every test there to pass or skip as on the native
build. `make test-portable` (CI's `portable` job) runs the whole suite on
that flavour.
"""

import os
import re
import subprocess
import sys

import pytest

from support import build_flavour, flavour_env

ourloop = pytest.importorskip("ourloop")
from ourloop import _core  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# The modules whose code paths go through platform.h: sendfile
# (test_sendfile, test_platform), child reaping (test_subprocess,
# test_platform, test_contexts), accepting (test_tcp_server, test_unix_streams,
# test_platform), and the pipes' "can the selector watch it" probe
# (test_pipes). About 45 s, after a build of about a minute.
MODULES = ("test_platform.py", "test_sendfile.py", "test_subprocess.py", "test_contexts.py",
           "test_pipes.py", "test_tcp_server.py", "test_unix_streams.py")


@pytest.mark.timeout(1500)   # a full build, then the modules: a few minutes
@pytest.mark.skipif(_core._platform_info()["fallbacks"] == "forced",
                    reason="this is the forced-portable build: the modules run directly")
def test_platform_fallbacks_pass_the_tests(tmp_path):
    site = build_flavour(tmp_path, OURLOOP_PORTABLE="1")
    env = flavour_env()
    info = subprocess.run(
        [sys.executable, "-m", "ourloop"], cwd=str(site), env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "(portable fallbacks: forced)" in info.stdout, info.stdout
    assert os.path.join(str(site), "ourloop") in info.stdout, info.stdout

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE",
         *[os.path.join(HERE, name) for name in MODULES]],
        cwd=str(site), env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=1200)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert re.search(r"\d+ passed", out), out[-3000:]
    # (the report header names the ourloop the run imported)
    assert "from " + os.path.join(str(site), "ourloop") in out, out[:2000]
