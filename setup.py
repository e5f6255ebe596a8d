"""Build script for ourloop's one C extension, ``ourloop._core``.

Project metadata lives in pyproject.toml; this file only describes how the
extension is compiled and which libuv it links against.

libuv selection (env ``OURLOOP_LIBUV``):

* ``vendor``: compile the sources in vendor/libuv (git submodule) into a static
  archive with -fPIC and link it into the extension.
* ``system``: link the shared libuv that ``pkg-config libuv`` reports.
* unset / ``auto``: ``vendor`` when vendor/libuv holds sources, else ``system``.

Other knobs (env): ``OURLOOP_DEBUG=1`` (Cython line tracing, -O0 -g, C macro
OURLOOP_DEBUG=1), ``OURLOOP_ASAN=1`` (AddressSanitizer), ``OURLOOP_UBSAN=1``
(UndefinedBehaviorSanitizer: any report aborts the process),
``OURLOOP_ANNOTATE=1`` (write Cython's HTML annotation next to the .pyx), ``OURLOOP_PORTABLE=1`` (C
macro OURLOOP_FORCE_PORTABLE: the platform layer, ourloop/includes/platform.h,
takes its portable fallbacks even where the native calls exist, so that the
tests exercise them on Linux).
The sanitizer flags also compile the vendored libuv; a system libuv is not
instrumented.
"""

import glob
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.sdist import sdist as _sdist

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = "ourloop"
VENDOR = os.path.join("vendor", "libuv")

_SYSTEM_LIBUV_HELP = """\
  * install the system library and pkg-config:
      Debian/Ubuntu: sudo apt-get install libuv1-dev pkg-config
      Fedora/RHEL:   sudo dnf install libuv-devel pkgconf-pkg-config
      Alpine:        apk add libuv-dev pkgconf
      macOS:         brew install libuv pkg-config"""


def _is_git_checkout():
    # .git is a directory in a clone, a file in a worktree or submodule.
    return os.path.exists(os.path.join(HERE, ".git"))


def vendored_libuv_help():
    """How to get vendor/libuv, for where this tree came from: only a git
    checkout has a submodule to update."""
    if _is_git_checkout():
        return (
            "  * or check out the vendored copy:\n"
            "      git submodule update --init vendor/libuv\n"
            "    (offline: python tools/vendor_libuv.py unpacks a `git archive` of the\n"
            "    pinned libuv, from $LIBUV_ARCHIVE or ../shared/deps/)")
    return (
        "  * or build from a source package that carries libuv: ourloop's sdist on\n"
        "    PyPI does (pip install --no-binary ourloop ourloop). This tree is not a\n"
        "    git checkout and has no vendor/libuv; archives made by git hosting\n"
        "    (\"Download ZIP\", \"Source code\") leave the libuv submodule out.")


def missing_libuv_message():
    msg = ("ourloop needs libuv to build, and found none.\n" + _SYSTEM_LIBUV_HELP
           + "\n" + vendored_libuv_help())
    if _is_git_checkout():
        msg += "\n(`bash tools/install.sh` does the first for you on Debian/Ubuntu.)"
    return msg


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false", "off")


def _fail(msg):
    raise SystemExit("\nerror: " + msg + "\n")


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# libuv: vendored sources
# ---------------------------------------------------------------------------

# Sources every unix build of libuv compiles (identical from 1.44 to 1.51).
UNIX_SOURCES = [
    "async.c", "core.c", "dl.c", "fs.c", "getaddrinfo.c", "getnameinfo.c",
    "loop-watcher.c", "loop.c", "pipe.c", "poll.c", "process.c",
    "random-devurandom.c", "signal.c", "stream.c", "tcp.c", "thread.c",
    "tty.c", "udp.c",
]

# Per-platform candidates: whichever of these exist in the tree are compiled.
# libuv <= 1.44 splits the Linux backend into linux-core.c, linux-inotify.c,
# linux-syscalls.c and epoll.c; from 1.45 on it is a single linux.c.
PLATFORM_SOURCES = {
    "linux": [
        "linux.c", "linux-core.c", "linux-inotify.c", "linux-syscalls.c",
        "epoll.c", "procfs-exepath.c", "proctitle.c",
        "random-getrandom.c", "random-sysctl-linux.c",
    ],
    "darwin": [
        "darwin.c", "darwin-proctitle.c", "fsevents.c", "kqueue.c",
        "bsd-ifaddrs.c", "proctitle.c", "random-getentropy.c",
    ],
}
# One of these must exist for the tree to be usable on that platform.
PLATFORM_CORE = {"linux": ("linux.c", "linux-core.c"), "darwin": ("darwin.c",)}

PLATFORM_DEFINES = {
    "linux": [("_GNU_SOURCE", None), ("_POSIX_C_SOURCE", "200112")],
    "darwin": [("_DARWIN_UNLIMITED_SELECT", "1"), ("_DARWIN_USE_64_BIT_INODE", "1")],
}
PLATFORM_LIBS = {"linux": ["pthread", "dl", "rt"], "darwin": ["pthread"]}


def _platform():
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    return sys.platform


def vendored_libuv_present():
    return all(
        os.path.isfile(os.path.join(HERE, VENDOR, p))
        for p in ("include/uv.h", "src/uv-common.c", "src/unix/core.c")
    )


def vendored_libuv_version():
    try:
        with open(os.path.join(HERE, VENDOR, "include", "uv", "version.h")) as f:
            parts = {}
            for line in f:
                bits = line.split()
                if len(bits) == 3 and bits[0] == "#define" and bits[1] in (
                    "UV_VERSION_MAJOR", "UV_VERSION_MINOR", "UV_VERSION_PATCH"
                ):
                    parts[bits[1]] = bits[2]
        return "{UV_VERSION_MAJOR}.{UV_VERSION_MINOR}.{UV_VERSION_PATCH}".format(**parts)
    except (OSError, KeyError):
        return "unknown"


def vendored_libuv_sources():
    plat = _platform()
    if plat not in PLATFORM_SOURCES:
        _fail(
            "building the vendored libuv is only supported on Linux and macOS "
            "(this is %r); install libuv and build with OURLOOP_LIBUV=system" % sys.platform
        )
    src = os.path.join(VENDOR, "src")
    sources = sorted(glob.glob(os.path.join(src, "*.c")))
    missing = []
    for name in UNIX_SOURCES:
        path = os.path.join(src, "unix", name)
        if os.path.isfile(path):
            sources.append(path)
        else:
            missing.append(path)
    if missing:
        _fail("vendor/libuv looks incomplete, missing: " + ", ".join(missing))
    if not any(os.path.isfile(os.path.join(src, "unix", n)) for n in PLATFORM_CORE[plat]):
        _fail("vendor/libuv has no %s backend (%s)" % (plat, " or ".join(PLATFORM_CORE[plat])))
    for name in PLATFORM_SOURCES[plat]:
        path = os.path.join(src, "unix", name)
        if os.path.isfile(path):
            sources.append(path)
    return sources


# ---------------------------------------------------------------------------
# libuv: system library through pkg-config
# ---------------------------------------------------------------------------

def _pkg_config(*args):
    exe = shutil.which(os.environ.get("PKG_CONFIG", "pkg-config"))
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, *args, "libuv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, check=False,
        )
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def system_libuv():
    """Return build settings for the system libuv, or None if pkg-config can't find it."""
    version = _pkg_config("--modversion")
    if version is None:
        return None
    cfg = {"version": version, "include_dirs": [], "define_macros": [], "extra_compile_args": [],
           "library_dirs": [], "libraries": [], "extra_link_args": [], "runtime_library_dirs": []}
    for tok in shlex.split(_pkg_config("--cflags") or ""):
        if tok.startswith("-I"):
            cfg["include_dirs"].append(tok[2:])
        elif tok.startswith("-D"):
            name, _, value = tok[2:].partition("=")
            cfg["define_macros"].append((name, value or None))
        else:
            cfg["extra_compile_args"].append(tok)
    for tok in shlex.split(_pkg_config("--libs") or ""):
        if tok.startswith("-L"):
            cfg["library_dirs"].append(tok[2:])
        elif tok.startswith("-l"):
            cfg["libraries"].append(tok[2:])
        else:
            cfg["extra_link_args"].append(tok)
    if "uv" not in cfg["libraries"]:
        cfg["libraries"].append("uv")
    # pkg-config leaves out the default search dirs, so any -L here is a
    # non-standard prefix: let the extension find libuv.so there at run time.
    if _platform() == "linux":
        cfg["runtime_library_dirs"] = list(cfg["library_dirs"])
    return cfg


# ---------------------------------------------------------------------------
# build configuration
# ---------------------------------------------------------------------------

def build_config():
    debug = _env_flag("OURLOOP_DEBUG")
    asan = _env_flag("OURLOOP_ASAN")
    portable = _env_flag("OURLOOP_PORTABLE")
    ubsan = _env_flag("OURLOOP_UBSAN")
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "embedsignature": True,
    }
    macros = []
    cflags = []
    ldflags = []
    if debug:
        directives["linetrace"] = True
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1"), ("OURLOOP_DEBUG", "1")]
        cflags += ["-O0", "-g", "-UNDEBUG"]
    elif asan or ubsan:
        cflags += ["-O1", "-g"]
    else:
        cflags += ["-O2"]
    if portable:
        macros.append(("OURLOOP_FORCE_PORTABLE", "1"))
    if asan:
        flags = ["-fsanitize=address", "-fno-omit-frame-pointer"]
        cflags += flags + (["-g"] if "-g" not in cflags else [])
        ldflags += flags
    if ubsan:
        # Every check of -fsanitize=undefined, and float-to-integer casts out
        # of range (also undefined in C, not in gcc's group). No recovery:
        # a report aborts the process, so that it cannot pass unnoticed in a
        # test run (UBSAN_OPTIONS=print_stacktrace=1 adds the stack).
        flags = ["-fsanitize=undefined,float-cast-overflow",
                 "-fno-sanitize-recover=undefined,float-cast-overflow",
                 "-fno-omit-frame-pointer"]
        # Python's own CFLAGS (which come first) carry -fwrapv, which makes
        # signed overflow defined and turns its check off: -fno-wrapv (last
        # wins) checks it, as a wrapped int in our code is a bug anyway.
        cflags += [f for f in flags if f not in cflags] + ["-fno-wrapv"]
        cflags += ["-g"] if "-g" not in cflags else []
        ldflags += flags
        macros += [("OURLOOP_UBSAN", "1")]
    return {"debug": debug, "asan": asan, "ubsan": ubsan, "portable": portable,
            "directives": directives,
            "macros": macros, "cflags": cflags, "ldflags": ldflags}


def choose_libuv():
    mode = os.environ.get("OURLOOP_LIBUV", "auto").strip().lower() or "auto"
    if mode not in ("auto", "vendor", "system"):
        _fail("OURLOOP_LIBUV must be 'vendor', 'system' or unset, not %r" % mode)
    if mode in ("auto", "vendor") and vendored_libuv_present():
        return "vendor", None
    if mode == "vendor":
        _fail("OURLOOP_LIBUV=vendor, but vendor/libuv holds no libuv sources.\n"
              + vendored_libuv_help())
    cfg = system_libuv()
    if cfg is None:
        pkg_config = os.environ.get("PKG_CONFIG", "pkg-config")
        if shutil.which(pkg_config) is None:
            why = "`%s` is not installed, and vendor/libuv is empty." % pkg_config
        else:
            why = "`%s --cflags --libs libuv` finds no libuv, and vendor/libuv is empty." % pkg_config
        if mode == "system":
            why = "OURLOOP_LIBUV=system, but " + why[0].lower() + why[1:].replace(", and vendor/libuv is empty", "")
        _fail(why + "\n" + missing_libuv_message())
    return "system", cfg


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _normalized(data):
    return json.loads(json.dumps(data, sort_keys=True))


def _newest_mtime(paths):
    return max((os.path.getmtime(p) for p in paths), default=0.0)


# Survives between builds (pip's editable builds use a fresh temp dir each
# time): the cached static libuv and the directives of the current _core.c.
STATE_DIR = os.path.join(HERE, "build")


class build_ext(_build_ext):
    """Cythonize ourloop/_core.pyx, pick/compile libuv, then build as usual."""

    def run(self):
        cfg = build_config()
        mode, system_cfg = choose_libuv()
        self._ourloop_user_force = bool(self.force)

        # Rebuild when the flavour of the build changes (debug, asan, vendored
        # vs system libuv): Cython and setuptools only compare timestamps and
        # would otherwise keep output made with other settings.
        # _core.c is shared by all Pythons; its stamp holds the directives.
        cython_stamp_path = os.path.join(STATE_DIR, "ourloop-cython.json")
        cython_stamp = _normalized({"directives": cfg["directives"]})
        force_cython = bool(self.force) or _read_json(cython_stamp_path) != cython_stamp
        # Objects live in build_temp, which is per Python version.
        build_stamp_path = os.path.join(self.build_temp, "ourloop-build.json")
        build_stamp = _normalized({"cfg": cfg, "libuv": mode, "system": system_cfg})
        if _read_json(build_stamp_path) != build_stamp:
            self.force = True

        if mode == "vendor":
            log("ourloop: using the vendored libuv %s, linked statically" % vendored_libuv_version())
            libuv = {"include_dirs": [os.path.join(VENDOR, "include")], "libraries": [],
                     "define_macros": [("OURLOOP_LIBUV_STATIC", "1")]}
        else:
            log("ourloop: using the system libuv %s (pkg-config), linked dynamically"
                % system_cfg["version"])
            libuv = system_cfg
        self._ourloop_cfg = cfg
        self._ourloop_libuv_mode = mode

        from Cython.Build import cythonize

        for ext in self.extensions:
            ext.include_dirs = [PKG, os.path.join(PKG, "includes")] + libuv["include_dirs"] + ext.include_dirs
            ext.define_macros = ext.define_macros + cfg["macros"] + libuv.get("define_macros", [])
            ext.extra_compile_args = ext.extra_compile_args + libuv.get("extra_compile_args", []) + cfg["cflags"]
            ext.library_dirs = ext.library_dirs + libuv.get("library_dirs", [])
            ext.libraries = ext.libraries + libuv["libraries"]
            ext.runtime_library_dirs = ext.runtime_library_dirs + libuv.get("runtime_library_dirs", [])
            ext.extra_link_args = ext.extra_link_args + libuv.get("extra_link_args", []) + cfg["ldflags"]
            # Cython tracks `include`d .pyx files and cimported .pxd files
            # itself and regenerates the C file when any of them changed.
            # The project root is on the include path so that a file
            # included from a subfolder (ourloop/handles/) finds the
            # ourloop.includes.* .pxd files it cimports (Cython looks for
            # them relative to that file, then on this path).
            (cythonized,) = cythonize(
                [ext],
                include_path=[HERE, PKG, os.path.join(PKG, "includes")],
                compiler_directives=cfg["directives"],
                annotate=_env_flag("OURLOOP_ANNOTATE"),
                force=force_cython,
                quiet=False,
            )
            # Keep setuptools' own Extension object (it carries state from
            # finalize_options); only take over the generated sources.
            ext.sources = cythonized.sources
            ext.depends = sorted(set(ext.depends) | set(cythonized.depends))
        _write_json(cython_stamp_path, cython_stamp)

        super().run()
        _write_json(build_stamp_path, build_stamp)

    def build_extensions(self):
        # self.compiler exists from here on.
        if self._ourloop_libuv_mode == "vendor":
            libuv = self._build_vendored_libuv(self._ourloop_cfg)
            for ext in self.extensions:
                ext.extra_objects = ext.extra_objects + libuv["extra_objects"]
                ext.depends = ext.depends + libuv["extra_objects"]
                ext.libraries = ext.libraries + libuv["libraries"]
                # before the sanitizer flags, which must stay last
                ext.extra_link_args = libuv["extra_link_args"] + ext.extra_link_args
        super().build_extensions()

    def _build_vendored_libuv(self, cfg):
        plat = _platform()
        sources = vendored_libuv_sources()
        include_dirs = [os.path.join(VENDOR, "include"), os.path.join(VENDOR, "src")]
        macros = [("_FILE_OFFSET_BITS", "64"), ("_LARGEFILE_SOURCE", None)] + PLATFORM_DEFINES[plat]
        # -w: warnings in third-party code are not actionable here.
        cflags = ["-fPIC", "-fno-strict-aliasing", "-fvisibility=hidden", "-w"] + [
            f for f in cfg["cflags"] if f != "-UNDEBUG"
        ]
        lib_name = "uv_ourloop"
        stamp = _normalized({
            "version": vendored_libuv_version(), "sources": sources, "macros": macros,
            "cflags": cflags, "cc": list(getattr(self.compiler, "compiler_so", None) or []),
            "platform": sysconfig.get_platform(),
        })
        key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
        cache_dir = os.path.join(STATE_DIR, "libuv", key)
        archive = self.compiler.library_filename(lib_name, output_dir=cache_dir)

        headers = glob.glob(os.path.join(VENDOR, "include", "**", "*.h"), recursive=True)
        headers += glob.glob(os.path.join(VENDOR, "src", "**", "*.h"), recursive=True)
        # The cache key covers every flag, so only --force or newer sources
        # (a submodule bump) rebuild it.
        if (
            not self._ourloop_user_force
            and os.path.isfile(archive)
            and os.path.getmtime(archive) >= _newest_mtime(sources + headers)
        ):
            log("ourloop: reusing the static libuv in %s" % archive)
        else:
            log("ourloop: compiling %d libuv sources into %s" % (len(sources), archive))
            obj_dir = os.path.join(self.build_temp, "libuv-" + key)
            for src in sources:
                os.makedirs(os.path.join(obj_dir, os.path.dirname(src)), exist_ok=True)

            def compile_one(src):
                return self.compiler.compile(
                    [src], output_dir=obj_dir, macros=macros,
                    include_dirs=include_dirs, extra_postargs=cflags,
                )

            jobs = self.parallel if isinstance(self.parallel, int) and self.parallel > 0 else None
            with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
                objects = [o for objs in pool.map(compile_one, sources) for o in objs]
            tmp_archive = self.compiler.library_filename(lib_name, output_dir=obj_dir)
            if os.path.exists(tmp_archive):
                os.unlink(tmp_archive)  # `ar` would add to an old archive
            self.compiler.create_static_lib(objects, lib_name, output_dir=obj_dir)
            os.makedirs(cache_dir, exist_ok=True)
            shutil.copyfile(tmp_archive, archive + ".tmp%d" % os.getpid())
            os.replace(archive + ".tmp%d" % os.getpid(), archive)
            _write_json(os.path.join(cache_dir, "stamp.json"), stamp)

        link_args = []
        if plat == "linux":
            # Keep libuv's symbols private to the extension, so they can never
            # clash with another libuv loaded in the same process.
            link_args.append("-Wl,--exclude-libs,ALL")
        return {
            "extra_objects": [archive],
            "libraries": PLATFORM_LIBS[plat],
            "extra_link_args": link_args,
        }


SDIST_WITHOUT_LIBUV = """\
vendor/libuv holds no libuv sources, and an sdist without them is refused:
the sdist is what pip builds wherever no wheel fits, and without libuv it
turns into a build against whatever system libuv that machine has, or a
build failure there.
""" + vendored_libuv_help().replace("  * or ", "  * ", 1) + """
(OURLOOP_SDIST_WITHOUT_LIBUV=1 makes such an sdist anyway, e.g. for a
distribution that builds against its own libuv.)"""


class sdist(_sdist):
    """Also ship the Cython sources, the tests, benchmarks/ and libuv.

    Refuses to run without vendor/libuv (see SDIST_WITHOUT_LIBUV)."""

    EXTRA = [
        "LICENSE", "README.md", "Makefile", "setup.py", "pyproject.toml",
        "ourloop/**/*.pyx", "ourloop/**/*.pxd", "ourloop/**/*.pxi", "ourloop/**/*.h",
        "ourloop/**/*.pyi", "ourloop/py.typed",
        "tests/**/*.py", "tools/*.py", "tools/*.sh",
        # docs/: the whole Sphinx site (`make docs` builds from the sdist
        # too), with the benchmark charts its pages show.
        "docs/**/*.md", "docs/conf.py", "docs/_static/**/*.png",
        # benchmarks/: the scripts, their README and the C helpers
        # (echo_load.c, pipe_child.c, uv_echo.c) that echo.py,
        # subprocess_pipe.py and ceiling.py compile.
        "benchmarks/*.py", "benchmarks/*.c", "benchmarks/README.md",
        "vendor/libuv/LICENSE*", "vendor/libuv/AUTHORS",
        "vendor/libuv/include/**/*.h", "vendor/libuv/src/**/*.[ch]",
    ]

    def run(self):
        if not vendored_libuv_present():
            if not _env_flag("OURLOOP_SDIST_WITHOUT_LIBUV"):
                _fail(SDIST_WITHOUT_LIBUV)
            bar = "!" * 72
            log("\n".join([bar, "WARNING: this sdist carries no libuv (OURLOOP_SDIST_WITHOUT_LIBUV=1);",
                           "building it needs the system libuv (pkg-config libuv).", bar]))
        super().run()

    # (setuptools builds the file list in egg_info, which never calls an
    # overridden add_defaults; adding at make_release_tree always works.)
    def make_release_tree(self, base_dir, files):
        extra = set()
        for pattern in self.EXTRA:
            extra.update(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        extra.discard(os.path.join(PKG, "_core.c"))
        super().make_release_tree(base_dir, sorted(set(files) | extra))


# The licences of what a wheel contains (PEP 639 metadata): ourloop is MIT.
# A wheel that links the vendored libuv also contains libuv's code: MIT
# (LICENSE; LICENSE-extra: the MIT terms of the code from joyent/libuv), ISC
# (src/inet.c, src/idna.c, src/queue.h, src/heap-inl.h) and BSD-2-Clause
# (include/uv/tree.h, used by src/uv-common.h), which LICENSE-extra lists.
# tests/test_packaging.py checks this against the licence headers of the
# files the build compiles.
LICENSE_OURLOOP = "MIT"
LICENSE_WITH_LIBUV = "MIT AND ISC AND BSD-2-Clause"
LIBUV_LICENSE_FILES = ("LICENSE", "LICENSE-extra")


def libuv_linked_in():
    """Whether a build of this tree compiles vendor/libuv into the extension
    (what choose_libuv() will pick), without failing when it would not."""
    mode = os.environ.get("OURLOOP_LIBUV", "auto").strip().lower() or "auto"
    return mode in ("auto", "vendor") and vendored_libuv_present()


def license_metadata():
    """License-Expression and License-File for what this build ships: the
    sdist and vendored wheels carry libuv's licence files under
    <dist-info>/licenses/vendor/libuv/."""
    if not libuv_linked_in():
        return {"license_expression": LICENSE_OURLOOP, "license_files": ["LICENSE"]}
    files = [os.path.join(VENDOR, name) for name in LIBUV_LICENSE_FILES
             if os.path.isfile(os.path.join(HERE, VENDOR, name))]
    return {"license_expression": LICENSE_WITH_LIBUV, "license_files": ["LICENSE"] + files}


def _depends():
    pats = ["*.pyx", "*.pxd", "*.pxi", "*.h", "handles/*.pyx", "handles/*.pxd",
            "handles/*.pxi", "includes/*.pxd", "includes/*.h"]
    found = []
    for pat in pats:
        found += glob.glob(os.path.join(PKG, pat))
    return sorted(p for p in set(found) if not p.endswith("_core.c"))


setup(
    ext_modules=[
        Extension(
            "ourloop._core",
            sources=[os.path.join(PKG, "_core.pyx")],
            depends=_depends(),
        )
    ],
    cmdclass={"build_ext": build_ext, "sdist": sdist},
    **license_metadata(),
)
