"""The lint gate runs in the suite, so that CI enforces it.

tools/lint.sh (`make lint`) runs ruff, cython-lint, mypy and mypy.stubtest
(the stub against the built module) with the configuration in
pyproject.toml; the tools come with the `test` extra, so a
missing tool fails here rather than skipping. The typed program mypy checks
(tests/typecheck/public_api.py) is also run, so that what it states is true.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("ruff", "cython_lint", "mypy")


def _static_env():
    # The tools are not instrumented: a sanitizer runtime preloaded for the
    # suite (make asan) stays out of them (lint.sh preloads it for stubtest
    # alone, which imports an ASan build of ourloop._core).
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("LD_PRELOAD", None)
    env.pop("DYLD_INSERT_LIBRARIES", None)
    return env


@pytest.mark.parametrize("module", TOOLS)
def test_lint_tool_is_installed(module):
    assert importlib.util.find_spec(module) is not None, (
        "%s is missing: pip install -e '.[test]' (tools/install.sh) installs it" % module
    )


# ruff, cython-lint, two mypy runs and stubtest: about 10 s of CPU, but
# two minutes of wall time on the shared 2-core machine at load average 15,
# past the suite's 120 s default.
@pytest.mark.timeout(600)
def test_lint_gate_passes():
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "tools", "lint.sh")],
        cwd=ROOT,
        env=_static_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.rstrip().endswith("lint: ok"), proc.stdout
    # mypy checks only the target version's branches: the typed program's
    # 3.11+ and 3.14+ branches are checked by a second run, where a mypy
    # that knows 3.14 installs (Python 3.10 and later; lint.sh).
    if sys.version_info >= (3, 10):
        assert "== mypy --python-version 3.14\n" in proc.stdout, proc.stdout
    else:
        assert "== mypy --python-version 3.14: skipped on Python 3.9" in proc.stdout


def test_typed_public_api_program_runs(ourloop_mod):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "typecheck", "public_api.py")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip() == "ok", proc.stdout
