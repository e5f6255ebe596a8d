"""`make wheel` end to end: tools/wheel.py builds the sdist and, from it, the
wheel with the vendored libuv, repairs it with auditwheel (manylinux tag,
libc the only shared library, libuv's licences inside), and smoke-tests it
in a fresh venv (`python -m ourloop` must say "vendored, static").

Skipped unless OURLOOP_TEST_WHEEL=1: it compiles Cython's output and libuv
from scratch (2-3 minutes on two cores), installs the build tools into
.venvs/ and needs the package index for the isolated build, so it does not
belong in every test run. CI's wheel workflow does the same on every pull
request through cibuildwheel; run this one before a release or after
touching setup.py, pyproject.toml or tools/wheel*.py:

    OURLOOP_TEST_WHEEL=1 python -m pytest tests/test_wheel.py
"""

import os
import subprocess
import sys
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

pytestmark = [
    pytest.mark.skipif(os.environ.get("OURLOOP_TEST_WHEEL", "") in ("", "0"),
                       reason="slow (a full build): set OURLOOP_TEST_WHEEL=1"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux wheels"),
]


@pytest.mark.timeout(1800)
def test_make_wheel(tmp_path):
    dist, wheelhouse = tmp_path / "dist", tmp_path / "wheelhouse"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "wheel.py"), "all",
         "--python", sys.executable, "--dist-dir", str(dist), "--wheelhouse", str(wheelhouse)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "wheel_smoke: ok:" in out
    assert "(vendored, static; compiled against" in out
    assert "wheel.py: smoke test passed" in out

    (wheel,) = [n for n in os.listdir(str(wheelhouse)) if n.endswith(".whl")]
    assert "-manylinux_" in wheel
    with zipfile.ZipFile(str(wheelhouse / wheel)) as zf:
        names = zf.namelist()
    dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    for lic in ("LICENSE", "vendor/libuv/LICENSE", "vendor/libuv/LICENSE-extra"):
        assert "%s/licenses/%s" % (dist_info, lic) in names
    assert [n for n in names if n.endswith(".so")] == [
        n for n in names if n.startswith("ourloop/_core") and n.endswith(".so")]
    # the sdist the wheel was built from is there too
    assert [n for n in os.listdir(str(dist)) if n.endswith(".tar.gz")]
