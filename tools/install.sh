#!/usr/bin/env bash
# Install what ourloop needs to build, then ourloop itself (editable, with the
# test extras) into the Python given by $PYTHON (default: python3).
#
#   bash tools/install.sh              # then: python -m pytest
#   PYTHON=.venv/bin/python bash tools/install.sh
#
# libuv: if vendor/libuv is checked out (git submodule) it is compiled into the
# extension; otherwise the system libuv is used, and on Debian/Ubuntu this
# script installs it (libuv1-dev, pkg-config) with apt-get when it is missing,
# as well as the openssl command (the TLS tests make their certificates with it).
# Optional, for `make bench`: wrk, the HTTP benchmark's load generator, is
# installed with apt-get too when it can be (without it that suite is
# skipped; failing to install it only warns).
# OURLOOP_LIBUV=system|vendor forces either (see setup.py).
#
# Safe to run again; needs no terminal (CI=true, stdin closed is fine).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
MODE="${OURLOOP_LIBUV:-auto}"

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (and sudo is not installed)"
    fi
}

have_vendored() {
    [ -f vendor/libuv/include/uv.h ] && [ -f vendor/libuv/src/unix/core.c ]
}

have_system() {
    command -v "${PKG_CONFIG:-pkg-config}" >/dev/null 2>&1 &&
        "${PKG_CONFIG:-pkg-config}" --exists libuv
}

# --- the interpreter ----------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 ||
    die "no '$PYTHON' found; install Python >= 3.9 or set PYTHON=/path/to/python"
"$PYTHON" - <<'EOF' || die "ourloop needs Python >= 3.9 ($PYTHON is too old)"
import sys
sys.exit(sys.version_info < (3, 9))
EOF
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
say "python: $("$PYTHON" -c 'import sys; print(sys.executable)') ($PYVER)"

# Debian's own python3 refuses `pip install` outside a virtualenv (PEP 668).
if "$PYTHON" - <<'EOF'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if os.path.exists(marker) and sys.prefix == sys.base_prefix else 1)
EOF
then
    die "$PYTHON is the system's Python, where pip may not install packages (PEP 668).
  Use a virtualenv (python3 -m venv .venv && . .venv/bin/activate), then run this again."
fi

# --- system packages ----------------------------------------------------------
apt_pkgs=()
case "$MODE" in
    vendor) have_vendored || die "OURLOOP_LIBUV=vendor but vendor/libuv is empty; run: git submodule update --init vendor/libuv
  (offline: make vendor-libuv, which unpacks the pinned libuv archive from \$LIBUV_ARCHIVE or ../shared/deps/)" ;;
    system) have_system || apt_pkgs+=(libuv1-dev pkg-config) ;;
    *) have_vendored || have_system || apt_pkgs+=(libuv1-dev pkg-config) ;;
esac
if ! command -v "${CC:-cc}" >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    apt_pkgs+=(gcc libc6-dev)
fi
# The TLS tests make their certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || apt_pkgs+=(openssl)
if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    apt_pkgs+=("python${PYVER%.*}-dev")
fi

# Optional: benchmarks/http_bench.py's load generator.
opt_pkgs=()
command -v wrk >/dev/null 2>&1 || opt_pkgs+=(wrk)

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing with apt-get: ${apt_pkgs[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_pkgs[@]}" </dev/null
    elif command -v dnf >/dev/null 2>&1; then
        say "installing with dnf: libuv-devel pkgconf-pkg-config gcc python3-devel openssl"
        as_root dnf install -y libuv-devel pkgconf-pkg-config gcc python3-devel openssl </dev/null
    elif command -v brew >/dev/null 2>&1; then
        say "installing with brew: libuv pkg-config"
        brew install libuv pkg-config </dev/null
    else
        die "missing: ${apt_pkgs[*]} (Debian names). Install libuv's development files and pkg-config
  (Fedora: libuv-devel, Alpine: libuv-dev pkgconf, macOS: brew install libuv pkg-config),
  or check out the vendored copy: git submodule update --init vendor/libuv
  (offline: make vendor-libuv)"
    fi
fi

if [ "${#opt_pkgs[@]}" -gt 0 ]; then
    apt_install_opt() {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${opt_pkgs[@]}" </dev/null
    }
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
        say "installing with apt-get (optional, for make bench): ${opt_pkgs[*]}"
        # Without an update first: the package lists are often fresh enough.
        apt_install_opt >/dev/null 2>&1 ||
            { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 &&
              apt_install_opt >/dev/null 2>&1; } ||
            say "warning: could not install ${opt_pkgs[*]}; make bench skips the HTTP suite without wrk"
    else
        say "note: wrk is not installed; make bench skips the HTTP suite without it (dnf/brew/apt-get install wrk)"
    fi
fi

if have_vendored && [ "$MODE" != system ]; then
    say "libuv: vendored copy in vendor/libuv (built statically)"
else
    have_system || die "libuv is still not found by pkg-config"
    say "libuv: system $("${PKG_CONFIG:-pkg-config}" --modversion libuv) (pkg-config)"
fi

# --- ourloop ------------------------------------------------------------------
# Editable: the extension is built in place, next to the sources, so
# `python -m pytest` from the repository root tests exactly this build.
say "$PYTHON -m pip install -e '.[test,integration,docs]'"
"$PYTHON" -m pip install --disable-pip-version-check -e '.[test,integration,docs]' </dev/null
"$PYTHON" -c 'import ourloop._core, sys; print("install.sh: built", ourloop._core.__file__)' ||
    say "warning: ourloop._core was built but does not import (see above)"

# `python -m pytest` (the README's next command) must be this same Python.
if command -v python >/dev/null 2>&1; then
    same="$(python -c 'import sys; print(sys.prefix, sys.version_info[:2])' 2>/dev/null || true)"
    mine="$("$PYTHON" -c 'import sys; print(sys.prefix, sys.version_info[:2])')"
    [ "$same" = "$mine" ] ||
        say "note: 'python' is not $PYTHON here; run the tests with: $PYTHON -m pytest"
else
    say "note: there is no 'python' command here; run the tests with: $PYTHON -m pytest"
fi
say "done; now run: python -m pytest"
