"""Structural tests of ourloop's public API (ourloop only, by nature).

* the public names of the package exist;
* every public method of asyncio.AbstractEventLoop is defined by ourloop
  (on Loop, one of its mixins or its Cython base), never inherited from
  AbstractEventLoop, whose methods all raise a bare NotImplementedError.
"""

import asyncio
import os
import re

import pytest

ABSTRACT_METHODS = sorted(
    name
    for name, value in vars(asyncio.AbstractEventLoop).items()
    if not name.startswith("_") and callable(value)
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_public_names(ourloop_mod):
    for name in ("new_event_loop", "Loop", "run", "install", "EventLoopPolicy"):
        assert hasattr(ourloop_mod, name), name
    assert callable(ourloop_mod.new_event_loop)
    assert callable(ourloop_mod.run)
    assert callable(ourloop_mod.install)


def test_version(ourloop_mod):
    v = ourloop_mod.__version__
    assert isinstance(v, str)
    assert re.match(r"^\d+\.\d+", v), v


def test_all_names_exist(ourloop_mod):
    for name in getattr(ourloop_mod, "__all__", ()):
        assert hasattr(ourloop_mod, name), name


def test_loop_class_hierarchy(ourloop_mod):
    assert issubclass(ourloop_mod.Loop, asyncio.AbstractEventLoop)
    assert issubclass(ourloop_mod.EventLoopPolicy, asyncio.DefaultEventLoopPolicy)


def _defining_class(cls, name):
    """The class of ``cls.__mro__`` whose own namespace defines ``name``."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


@pytest.mark.parametrize("name", ABSTRACT_METHODS)
def test_method_not_inherited_from_abstract_event_loop(ourloop_mod, name):
    assert hasattr(ourloop_mod.Loop, name), name
    assert getattr(ourloop_mod.Loop, name) is not getattr(asyncio.AbstractEventLoop, name), (
        "%s is inherited from asyncio.AbstractEventLoop" % name
    )
    # Defined by one of ourloop's own classes, not by any stdlib class.
    owner = _defining_class(ourloop_mod.Loop, name)
    assert owner is not None, name
    assert owner.__module__.startswith("ourloop."), (name, owner)


# --------------------------------------------------------------------------
# The suite itself: a missing ourloop must never be skipped silently.
# --------------------------------------------------------------------------


def test_missing_ourloop_fails_unless_allowed(tmp_path):
    import shutil
    import subprocess
    import sys

    for name in ("conftest.py", "support.py", "tls_certs.py"):
        shutil.copy(os.path.join(ROOT, "tests", name), tmp_path / name)
    (tmp_path / "ourloop").mkdir()
    (tmp_path / "ourloop" / "__init__.py").write_text(
        "raise ImportError('ourloop deliberately broken for this test')\n"
    )
    (tmp_path / "test_x.py").write_text(
        "def test_loop(loop):\n    assert loop.run_until_complete(__import__('asyncio').sleep(0, 1)) == 1\n"
    )

    def run(allow):
        env = dict(os.environ)
        env.pop("OURLOOP_ALLOW_MISSING", None)
        if allow:
            env["OURLOOP_ALLOW_MISSING"] = "1"
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", "test_x.py"],
            cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
        )

    strict = run(allow=False)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    # pytest.fail() in a fixture shows as an error at setup: loud, exit 1
    assert "1 passed, 1 error" in strict.stdout, strict.stdout
    assert "ourloop deliberately broken" in strict.stdout

    lenient = run(allow=True)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "1 passed, 1 skipped" in lenient.stdout, lenient.stdout
    assert "ourloop deliberately broken" in lenient.stdout  # the reason
