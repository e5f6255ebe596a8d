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
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import vendor_libuv  # noqa: E402

REPO_URL = "https://github.com/ourloop/ourloop"
RAW_URL = "https://raw.githubusercontent.com/"
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


# -- pyproject metadata ---------------------------------------------------------

def test_classifiers_name_every_supported_python():
    project = _pyproject()["project"]
    versions = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == ["3.%d" % n for n in range(9, 16)]

    assert project["requires-python"] == ">=3.9"
    assert not [c for c in project["classifiers"] if c.startswith("License ::")], \
        "PEP 639: the licence is an SPDX expression, no licence classifiers"


def test_classifiers_claim_only_the_tested_platform():
    # README, "What is tested where": the whole suite runs on Linux; CI's
    # macOS job has never run on a Mac, so no macOS classifier until it has.
    project = _pyproject()["project"]
    systems = [c for c in project["classifiers"] if c.startswith("Operating System ::")]
    assert systems == ["Operating System :: POSIX :: Linux"]


def test_project_urls():
    urls = _pyproject()["project"]["urls"]
    assert urls["Homepage"] == REPO_URL
    assert urls["Source"] == REPO_URL
    assert urls["Issues"] == REPO_URL + "/issues"
    assert urls["Documentation"].startswith(REPO_URL + "/")


def test_license_is_set_by_setup_py():
    # setup.py's license_metadata(): it depends on whether libuv is linked in
    project = _pyproject()["project"]
    assert "license" in project["dynamic"]
    assert "license" not in project and "license-files" not in project


def test_cibuildwheel_builds_314_315_and_no_free_threaded():
    cibw = _pyproject()["tool"]["cibuildwheel"]
    build = cibw["build"].split()
    assert build == ["cp3%d-*" % n for n in range(9, 16)]
    assert "cp3??t-*" in cibw["skip"]
    assert "cpython-freethreading" not in cibw.get("enable", [])
    assert cibw["environment"]["OURLOOP_LIBUV"] == "vendor"
    assert "pytest" in cibw["test-command"]
    assert os.path.isfile(os.path.join(ROOT, "docs", "free-threading.md"))


# -- the README as PyPI shows it ---------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")


def _readme_links():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    # code blocks and spans are not links
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return (_LINK.findall(text) + _REF_LINK.findall(text) + _HTML_LINK.findall(text))


def test_readme_links_are_absolute():
    # PyPI renders README.md without the repository: a relative link is dead there.
    links = _readme_links()
    assert links, "no links found: the pattern is broken"
    relative = [u for u in links if not re.match(r"(https?:|mailto:|#)", u)]
    assert relative == []


def test_readme_links_into_the_repository_resolve():
    prefixes = (REPO_URL + "/blob/main/", REPO_URL + "/tree/main/", REPO_URL + "/raw/main/",
                REPO_URL.replace("https://github.com/", RAW_URL) + "/main/")
    missing = []
    for url in _readme_links():
        for prefix in prefixes:
            if url.startswith(prefix):
                path = url[len(prefix):].split("#", 1)[0]
                if not os.path.exists(os.path.join(ROOT, path)):
                    missing.append(url)
    assert missing == []


def test_readme_shows_the_headline_chart():
    # An image the package index can fetch: an absolute URL of the
    # committed chart (docs/_static/bench/headline.png, make charts).
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    images = re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", text)
    url = REPO_URL.replace("https://github.com/", RAW_URL) + "/main/docs/_static/bench/headline.png"
    assert url in images, images
    assert os.path.isfile(os.path.join(ROOT, "docs", "_static", "bench", "headline.png"))


# -- the wheel workflow ----------------------------------------------------------

def _workflow(name):
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, ".github", "workflows", name)) as f:
        return yaml.safe_load(f)


def test_wheel_workflow_structure():
    wf = _workflow("wheels.yml")
    on = wf.get("on", wf.get(True))     # YAML 1.1 reads a bare `on` as True
    assert on["push"]["tags"] == ["v*"]
    assert "pull_request" in on and "workflow_dispatch" in on
    jobs = wf["jobs"]
    assert set(jobs) == {"wheels", "sdist", "publish"}

    steps = jobs["wheels"]["steps"]
    pr_step = [s for s in steps if s.get("if") == "github.event_name == 'pull_request'"]
    assert len(pr_step) == 1 and "CIBW_BUILD=" in pr_step[0]["run"]
    selectors = re.search(r"CIBW_BUILD=([^\"]*)", pr_step[0]["run"]).group(1).split()
    # one Python per platform: a single CPython version across the selectors
    assert len({s.split("-")[0] for s in selectors}) == 1
    assert any(s.endswith("manylinux_*") for s in selectors)
    assert any("macosx" in s for s in selectors)
    cibw = [s for s in steps if str(s.get("uses", "")).startswith("pypa/cibuildwheel@")]
    assert len(cibw) == 1
    assert steps.index(pr_step[0]) < steps.index(cibw[0])
    checkout = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert checkout[0]["with"]["submodules"] in ("recursive", True)

    publish = jobs["publish"]
    assert set(publish["needs"]) == {"wheels", "sdist"}
    assert "refs/tags/v" in publish["if"] and "push" in publish["if"]
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    uses = [str(s.get("uses", "")) for s in publish["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish@") for u in uses)
    assert any(u.startswith("actions/download-artifact@") for u in uses)
    # trusted publishing: no token anywhere
    assert "password" not in repr(publish) and "secrets." not in repr(publish)


def test_tests_workflow_runs_every_supported_python():
    versions = _workflow("tests.yml")["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    assert versions == ["3.%d" % n for n in range(9, 16)]


def test_tests_workflow_runs_the_platform_fallbacks_and_macos():
    # The forced-portable build's whole suite (the fallbacks of
    # ourloop/includes/platform.h), and a macOS build whose platform tests
    # must pass (docs/architecture.md: "The platform layer").
    jobs = _workflow("tests.yml")["jobs"]
    portable = jobs["portable"]
    assert "make test-portable PYTHON=python" in [step.get("run") for step in portable["steps"]]
    assert {"3.9", "3.13"} <= set(portable["strategy"]["matrix"]["python-version"])
    macos = jobs["macos"]
    assert macos["runs-on"].startswith("macos")
    required = [step["run"] for step in macos["steps"]
                if "run" in step and not step.get("continue-on-error")]
    assert "bash tools/install.sh" in required
    assert any("tests/test_platform.py" in run for run in required)
    with open(os.path.join(ROOT, "Makefile")) as f:
        assert re.search(r"^test-portable:\n\tOURLOOP_PORTABLE=1 ", f.read(), re.M)


def test_tests_workflow_runs_the_reliability_targets():
    # docs/reliability.md: the slow part of each check runs in CI. Each
    # job's command is a make target of the Makefile (so CI and a local
    # run cannot differ), on the vendored libuv (compiled with the
    # sanitizers in the asan job).
    jobs = _workflow("tests.yml")["jobs"]
    with open(os.path.join(ROOT, "Makefile")) as f:
        targets = set(re.findall(r"^([a-z][\w-]*):", f.read(), re.M))
    for job, target in [("asan", "asan"), ("soak", "soak"), ("valgrind", "valgrind")]:
        runs = [s["run"] for s in jobs[job]["steps"] if "run" in s]
        assert any(r.startswith("make %s " % target) for r in runs), (job, runs)
        assert target in targets
        assert jobs[job]["env"]["OURLOOP_LIBUV"] == "vendor"
    valgrind_runs = " ".join(s.get("run", "") for s in jobs["valgrind"]["steps"])
    assert "apt-get install" in valgrind_runs and "valgrind" in valgrind_runs
    # the debug job builds the debug flavour, checks it counts handles (the
    # per-test check of conftest.py is only on then), and runs the suite
    debug_runs = [s["run"] for s in jobs["debug"]["steps"] if "run" in s]
    assert any("OURLOOP_DEBUG=1" in r and "pip install" in r for r in debug_runs)
    assert any("debug_handle_counts() is not None" in r for r in debug_runs)
    assert debug_runs[-1] == "python -m pytest"


# -- licences --------------------------------------------------------------------

_LICENCE_MARKERS = [
    ("MIT", "Permission is hereby granted, free of charge"),
    ("ISC", "Permission to use, copy, modify, and/or distribute this software for any"),
    ("ISC", "Permission to use, copy, modify, and distribute this software for any"),
    ("BSD-2-Clause", "Redistribution and use in source and binary forms"),
]


def _licence_of(path):
    with open(path, errors="replace") as f:
        head = " ".join(f.read(4000).split())
    found = {name for name, marker in _LICENCE_MARKERS if marker in head}
    if "BSD-2-Clause" in found and re.search(r"\b3\.\s", head):
        found.discard("BSD-2-Clause")
        found.add("BSD-3-Clause")
    return found


@pytest.mark.skipif(not vendor_libuv.vendored_present(),
                    reason="vendor/libuv is empty (make vendor-libuv)")
def test_license_expression_covers_what_the_build_compiles():
    # The code a vendored wheel contains: libuv's sources the Linux build
    # compiles (setup.py's lists) and every header. Their licence headers
    # must be exactly the licences the wheel's License-Expression names.
    consts = _setup_constants("UNIX_SOURCES", "PLATFORM_SOURCES", "LICENSE_WITH_LIBUV",
                              "LIBUV_LICENSE_FILES")
    vendor = os.path.join(ROOT, "vendor", "libuv")
    files = [os.path.join(vendor, "src", n) for n in os.listdir(os.path.join(vendor, "src"))
             if n.endswith((".c", ".h"))]
    unix = consts["UNIX_SOURCES"] + consts["PLATFORM_SOURCES"]["linux"]
    files += [os.path.join(vendor, "src", "unix", n) for n in unix]
    files += [os.path.join(vendor, "src", "unix", n)
              for n in os.listdir(os.path.join(vendor, "src", "unix")) if n.endswith(".h")]
    for dirpath, _, names in os.walk(os.path.join(vendor, "include")):
        files += [os.path.join(dirpath, n) for n in names if n.endswith(".h")]
    licences = set()
    for path in files:
        if os.path.isfile(path):
            licences |= _licence_of(path)
    assert licences == set(consts["LICENSE_WITH_LIBUV"].split(" AND "))
    # and the licence files the wheel ships exist and name those terms
    assert consts["LIBUV_LICENSE_FILES"] == ("LICENSE", "LICENSE-extra")
    with open(os.path.join(vendor, "LICENSE-extra")) as f:
        extra = f.read()
    assert "tree.h" in extra and "inet_pton" in extra and "ISC" in extra


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


# -- setup.py: sdist and the missing-libuv message ----------------------------------

def _needs_setuptools_77():
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("setup.py needs setuptools >= 77 (PEP 639); the build "
                    "backend installs it, this environment has %s" % setuptools.__version__)
    pytest.importorskip("Cython")


def _copy_tree(dest, vendor=False, git=False):
    """The files setup.py needs, without the build output; vendor/libuv only
    when asked; a .git directory when asked (a checkout, as setup.py sees it)."""
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "Makefile"):
        shutil.copy2(os.path.join(ROOT, name), os.path.join(dest, name))
    ignore = shutil.ignore_patterns("*.so", "_core.c", "*.html", "__pycache__", "*.egg-info",
                                    ".build")
    for name in ("ourloop", "benchmarks", "docs", "tools"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(dest, name), ignore=ignore)
    os.makedirs(os.path.join(dest, "vendor", "libuv"))
    if vendor:
        shutil.rmtree(os.path.join(dest, "vendor", "libuv"))
        shutil.copytree(os.path.join(ROOT, "vendor", "libuv"),
                        os.path.join(dest, "vendor", "libuv"),
                        ignore=shutil.ignore_patterns(".git", "docs", "test"))
    if git:
        os.makedirs(os.path.join(dest, ".git"))


def _setup_py(cwd, *args, **env):
    full_env = dict(os.environ, **env)
    for name in ("OURLOOP_LIBUV", "OURLOOP_SDIST_WITHOUT_LIBUV"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.run([sys.executable, "setup.py"] + list(args), cwd=str(cwd),
                          env=full_env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("git", [False, True], ids=["sdist-user", "checkout"])
def test_sdist_is_refused_without_libuv(tmp_path, git):
    _needs_setuptools_77()
    _copy_tree(str(tmp_path), git=git)
    proc = _setup_py(tmp_path, "-q", "sdist")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "an sdist without them is refused" in out
    assert "OURLOOP_SDIST_WITHOUT_LIBUV=1" in out
    # git advice only where there is a git checkout
    assert ("git submodule update --init vendor/libuv" in out) == git
    assert not os.path.isdir(str(tmp_path / "dist"))


def test_sdist_without_libuv_when_asked_warns(tmp_path):
    _needs_setuptools_77()
    _copy_tree(str(tmp_path))
    proc = _setup_py(tmp_path, "-q", "sdist", OURLOOP_SDIST_WITHOUT_LIBUV="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING: this sdist carries no libuv" in proc.stdout + proc.stderr
    (sdist,) = os.listdir(str(tmp_path / "dist"))
    with tarfile.open(str(tmp_path / "dist" / sdist)) as tf:
        pkg_info = tf.extractfile(sdist[:-len(".tar.gz")] + "/PKG-INFO").read().decode()
    # no libuv in it: ourloop's licence alone
    assert "License-Expression: MIT\n" in pkg_info
    assert "License-File: vendor" not in pkg_info


@pytest.mark.skipif(not vendor_libuv.vendored_present(),
                    reason="vendor/libuv is empty (make vendor-libuv)")
def test_sdist_carries_libuv_benchmarks_and_licences(tmp_path):
    _needs_setuptools_77()
    _copy_tree(str(tmp_path), vendor=True, git=True)
    proc = _setup_py(tmp_path, "-q", "sdist")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sdist,) = os.listdir(str(tmp_path / "dist"))
    top = sdist[:-len(".tar.gz")] + "/"
    with tarfile.open(str(tmp_path / "dist" / sdist)) as tf:
        names = {n[len(top):] for n in tf.getnames() if n.startswith(top)}
        pkg_info = tf.extractfile(top + "PKG-INFO").read().decode()
    bench = {n for n in os.listdir(os.path.join(ROOT, "benchmarks"))
             if n.endswith((".py", ".c")) or n == "README.md"}
    assert {"benchmarks/" + n for n in bench} <= names
    assert {"vendor/libuv/LICENSE", "vendor/libuv/LICENSE-extra", "vendor/libuv/include/uv.h",
            "vendor/libuv/src/unix/core.c", "LICENSE", "tools/vendor_libuv.py",
            "tools/wheel.py", "tools/wheel_smoke.py", "docs/free-threading.md"} <= names
    # the whole Sphinx site, with the charts its pages show
    docs = set()
    for base, dirs, files in os.walk(os.path.join(ROOT, "docs")):
        dirs[:] = [d for d in dirs if d != "_build"]
        rel = os.path.relpath(base, ROOT)
        docs.update(os.path.join(rel, f).replace(os.sep, "/") for f in files
                    if f.endswith((".md", ".png")) or f == "conf.py")
    assert {"docs/conf.py", "docs/guide/install.md", "docs/_static/bench/headline.png"} <= docs
    assert docs <= names, sorted(docs - names)
    assert "ourloop/_core.c" not in names
    assert "License-Expression: MIT AND ISC AND BSD-2-Clause\n" in pkg_info
    assert "License-File: vendor/libuv/LICENSE\n" in pkg_info
    assert "License-File: vendor/libuv/LICENSE-extra\n" in pkg_info


@pytest.mark.parametrize("git", [False, True], ids=["sdist-user", "checkout"])
def test_missing_libuv_message_fits_the_tree(tmp_path, git):
    _needs_setuptools_77()
    _copy_tree(str(tmp_path), git=git)
    proc = _setup_py(tmp_path, "build_ext", PKG_CONFIG=str(tmp_path / "no-pkg-config"))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "ourloop needs libuv to build, and found none." in out
    assert "apt-get install libuv1-dev" in out
    if git:
        assert "git submodule update --init vendor/libuv" in out
        assert "tools/vendor_libuv.py" in out
    else:
        assert "git submodule" not in out and "tools/install.sh" not in out
        assert "pip install --no-binary ourloop ourloop" in out
