"""The release path, the fast parts: package metadata, the README as the
package index renders it, the wheel workflow's structure, the licence
metadata against the vendored libuv, tools/vendor_libuv.py, and setup.py's
sdist and missing-libuv messages.

The slow part, building the wheel and smoke-testing it in a fresh venv
(`make wheel`), is tests/test_wheel.py, run when OURLOOP_TEST_WHEEL=1.
"""

import ast
import io
import os
import sys
import tarfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import vendor_libuv  # noqa: E402

REPO_URL = "https://github.com/ourloop/ourloop"
PINNED_COMMIT = "5152db2cbfeb5582e9c27c5ea1dba2cd9e10759b"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _setup_constants(*names):
    """Module-level constants of setup.py (it cannot be imported: it builds)."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in names:
                found[target.id] = ast.literal_eval(node.value)
    return found


# -- tools/vendor_libuv.py -----------------------------------------------------------

def _fake_repo(tmp_path, commit=PINNED_COMMIT):
    root = tmp_path / "repo"
    (root / "vendor" / "libuv").mkdir(parents=True)
    (root / ".gitmodules").write_text(
        "# libuv, vendored as a submodule: tag v1.51.0 (%s).\n"
        '[submodule "vendor/libuv"]\n\tpath = vendor/libuv\n' % commit)
    return root


def _fake_archive(path, commit=PINNED_COMMIT, version=(1, 51, 0), top="libuv-v1.51.0"):
    files = {m: b"/* x */\n" for m in vendor_libuv.MARKERS}
    files["LICENSE"] = b"MIT\n"
    files["include/uv/version.h"] = (
        "#define UV_VERSION_MAJOR %d\n#define UV_VERSION_MINOR %d\n"
        "#define UV_VERSION_PATCH %d\n" % version).encode()
    pax = {"comment": commit} if commit else {}
    with tarfile.open(str(path), "w:gz", format=tarfile.PAX_FORMAT, pax_headers=pax) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(top + "/" + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return str(path)


def test_vendor_unpacks_the_pinned_archive(tmp_path):
    root = _fake_repo(tmp_path)
    archive = _fake_archive(tmp_path / "libuv.tar.gz")
    msg = vendor_libuv.ensure(root=str(root), environ={"LIBUV_ARCHIVE": archive})
    assert "unpacked" in msg and PINNED_COMMIT in msg
    assert vendor_libuv.header_version(str(root / "vendor" / "libuv")) == "1.51.0"
    assert (root / "vendor" / "libuv" / "LICENSE").read_text() == "MIT\n"
    # a second run leaves it alone
    assert "holds libuv 1.51.0" in vendor_libuv.ensure(root=str(root), environ={})


def test_vendor_default_archive_is_beside_the_repository(tmp_path):
    root = _fake_repo(tmp_path)
    deps = tmp_path / "shared" / "deps"
    deps.mkdir(parents=True)
    _fake_archive(deps / "libuv-v1.51.0.tar.gz")
    assert "unpacked" in vendor_libuv.ensure(root=str(root), environ={})


def test_vendor_refuses_another_commit(tmp_path):
    root = _fake_repo(tmp_path)
    archive = _fake_archive(tmp_path / "libuv.tar.gz", commit="0" * 40)
    with pytest.raises(vendor_libuv.Error, match="not of the pinned " + PINNED_COMMIT):
        vendor_libuv.ensure(root=str(root), environ={"LIBUV_ARCHIVE": archive})
    assert os.listdir(str(root / "vendor" / "libuv")) == []


def test_vendor_refuses_an_archive_without_commit_id(tmp_path):
    root = _fake_repo(tmp_path)
    archive = _fake_archive(tmp_path / "libuv.tar.gz", commit=None)
    with pytest.raises(vendor_libuv.Error, match="no commit id"):
        vendor_libuv.ensure(root=str(root), environ={"LIBUV_ARCHIVE": archive})


def test_vendor_refuses_another_version(tmp_path):
    root = _fake_repo(tmp_path)
    archive = _fake_archive(tmp_path / "libuv.tar.gz", version=(1, 50, 0))
    with pytest.raises(vendor_libuv.Error, match="unpacked libuv 1.50.0, but the pinned tag"):
        vendor_libuv.ensure(root=str(root), environ={"LIBUV_ARCHIVE": archive})
    assert os.listdir(str(root / "vendor" / "libuv")) == []


def test_vendor_without_archive_says_what_to_do(tmp_path):
    root = _fake_repo(tmp_path)
    with pytest.raises(vendor_libuv.Error) as info:
        vendor_libuv.ensure(root=str(root), environ={})
    msg = str(info.value)
    assert "LIBUV_ARCHIVE" in msg and "git submodule update --init vendor/libuv" in msg
    assert os.path.join("shared", "deps", "libuv-v1.51.0.tar.gz") in msg
    with pytest.raises(vendor_libuv.Error, match="LIBUV_ARCHIVE=.*no such file"):
        vendor_libuv.ensure(root=str(root), environ={"LIBUV_ARCHIVE": str(tmp_path / "nope")})


def test_vendor_pin_agrees_with_the_gitlink():
    # the .gitmodules comment and `git ls-tree HEAD vendor/libuv` name one commit
    tag, commit = vendor_libuv.pinned()
    assert tag == "v1.51.0"
    assert commit == PINNED_COMMIT
    if vendor_libuv.pinned_from_git() is not None:
        assert vendor_libuv.pinned_from_git() == commit


def test_the_shared_archive_is_the_pinned_tree():
    tag, commit = vendor_libuv.pinned()
    archive = vendor_libuv.default_archive(tag)
    if not os.path.isfile(archive):
        pytest.skip("no %s on this machine" % archive)
    assert vendor_libuv.check_archive(archive, tag, commit) == "libuv-" + tag
