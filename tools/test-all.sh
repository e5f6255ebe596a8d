#!/usr/bin/env bash
# Build and test ourloop on every CPython found under pyenv, each in its own
# virtualenv .venvs/pyX.Y. Stops at the first version that fails.
#
#   bash tools/test-all.sh [X.Y ...]        (default: 3.9 3.10 3.11 3.12 3.13)
#   PYTEST_ARGS="-x -q" bash tools/test-all.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
versions=("$@")
[ "${#versions[@]}" -gt 0 ] || versions=(3.9 3.10 3.11 3.12 3.13)
read -r -a pytest_args <<<"${PYTEST_ARGS:-}"

summary=()
print_summary() {
    echo
    echo "== test-all summary =="
    printf '  %s\n' "${summary[@]}"
}
trap print_summary EXIT

found=0
for v in "${versions[@]}"; do
    # newest patch release of $v, e.g. versions/3.10.13/bin/python for 3.10
    interp="$(ls -d "$PYENV_ROOT"/versions/"$v".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$interp" ]; then
        summary+=("$v: skipped (no $PYENV_ROOT/versions/$v.*)")
        continue
    fi
    found=$((found + 1))
    venv=".venvs/py$v"
    echo "== Python $v: $interp -> $venv"
    if [ ! -x "$venv/bin/python" ]; then
        "$interp" -m venv "$venv"
    fi
    start=$SECONDS
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -e '.[test]' </dev/null; then
        summary+=("$v: FAILED to build/install")
        exit 1
    fi
    rc=0
    "$venv/bin/python" -m pytest ${pytest_args[@]+"${pytest_args[@]}"} || rc=$?
    if [ "$rc" -ne 0 ]; then
        summary+=("$v: FAILED (pytest exit code $rc, $((SECONDS - start)) s)")
        exit "$rc"
    fi
    summary+=("$v: passed ($((SECONDS - start)) s)")
done
if [ "$found" -eq 0 ]; then
    summary+=("no Python found under $PYENV_ROOT/versions")
    exit 1
fi
