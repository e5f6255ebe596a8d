#!/usr/bin/env bash
# The lint gate (`make lint`; tests/test_lint.py runs it too):
#   ruff        pyflakes, bugbear, import order on .py/.pyi
#   cython-lint the .pyx/.pxd files
#   mypy        the stubs (ourloop/_core.pyi) and tests/typecheck/public_api.py,
#               as Python 3.10 and as 3.14 (each version's branches)
#   stubtest    the stubs against the built module ourloop._core (so build it
#               first), with the allowlist tools/stubtest-allowlist.txt
# Configuration: pyproject.toml ([tool.ruff], [tool.cython-lint], [tool.mypy]).
# The tools come with the `lint` (and `test`) extra: pip install -e '.[lint]'.
# Runs every check, then fails if any failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"

failed=()
check() {
    local name="$1"
    shift
    echo "== $name"
    "$@" || failed+=("$name")
}

check ruff "$PYTHON" -m ruff check .
check cython-lint "$PYTHON" -m cython_lint.cython_lint ourloop
check mypy "$PYTHON" -m mypy
# mypy checks only the branches of the target version (pyproject.toml: 3.10);
# the typed program also has `>= (3, 11)` (asyncio.Runner) and `< (3, 14)`
# (policies) branches: check them as 3.14 sees them too.
# The mypy releases that still run on Python 3.9 (1.19 and older) carry a
# typeshed without 3.14's deprecated policy names (DefaultEventLoopPolicy,
# AbstractEventLoopPolicy, still in asyncio until 3.16): this pass needs
# the newer mypy that installs on Python 3.10 and later.
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    check "mypy --python-version 3.14" "$PYTHON" -m mypy --python-version 3.14
else
    echo "== mypy --python-version 3.14: skipped on Python 3.9 (its mypy's typeshed predates 3.14)"
fi

# stubtest imports the built module. An AddressSanitizer build (make asan)
# loads only with the sanitizer runtime preloaded; the other tools run
# without it.
stubtest_env=()
ext="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
if grep -qa __asan_init "ourloop/_core$ext" 2>/dev/null; then
    stubtest_env=(env "LD_PRELOAD=$("${CC:-gcc}" -print-file-name=libasan.so)"
                  "ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
fi
check stubtest "${stubtest_env[@]}" "$PYTHON" -m mypy.stubtest --mypy-config-file pyproject.toml \
    --allowlist tools/stubtest-allowlist.txt ourloop._core

if [ "${#failed[@]}" -gt 0 ]; then
    echo "lint: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "lint: ok"
