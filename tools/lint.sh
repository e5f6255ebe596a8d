#!/usr/bin/env bash
# The lint gate (`make lint`; tests/test_lint.py runs it too):
#   ruff        pyflakes, bugbear, import order on .py/.pyi
#   cython-lint the .pyx/.pxd files
#   mypy        the stubs (ourloop/_core.pyi) and tests/typecheck/public_api.py
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

if [ "${#failed[@]}" -gt 0 ]; then
    echo "lint: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "lint: ok"
