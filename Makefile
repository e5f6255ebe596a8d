# ourloop developer targets. The README's quick start needs none of these:
#   bash tools/install.sh && python -m pytest
PYTHON ?= python3
PIP := $(PYTHON) -m pip --disable-pip-version-check
ARGS ?=

.PHONY: help build inplace test lint docs test-all test-cpython test-upstream test-portable debug asan ubsan valgrind soak bench bench-full charts vendor-libuv sdist wheel wheel-smoke clean distclean

help:
	@echo "make build          editable install (pip install -e .); rebuilds ourloop._core in place"
	@echo "make inplace        faster rebuild: setup.py build_ext --inplace (needs Cython + setuptools>=77 installed)"
	@echo "make test           $(PYTHON) -m pytest"
	@echo "make lint           tools/lint.sh: ruff, cython-lint, mypy, stubtest (pip install -e '.[lint]')"
	@echo "make docs           the Sphinx site into docs/_build/html, warnings as errors (pip install -e '.[docs]')"
	@echo "make test-all       build + test in .venvs/pyX.Y for each pyenv CPython 3.9 .. 3.13"
	@echo "make test-cpython   tools/cpython_conformance.py (ARGS=... passed through)"
	@echo "make test-upstream  aiohttp/anyio/httpx/uvicorn's own suites on the stdlib loop and ourloop (ARGS=...)"
	@echo "make test-portable  rebuild with OURLOOP_PORTABLE=1 (every platform fallback forced), run the whole suite (ARGS=...)"
	@echo "make debug          rebuild with OURLOOP_DEBUG=1 (line tracing, -O0 -g, handle accounting)"
	@echo "make asan           rebuild with AddressSanitizer + UBSan (OURLOOP_ASAN=1 OURLOOP_UBSAN=1), run the whole suite under them (ARGS=...)"
	@echo "make ubsan          rebuild with UndefinedBehaviorSanitizer only (OURLOOP_UBSAN=1), run the whole suite (ARGS=...)"
	@echo "make valgrind       tools/valgrind.py: a subset of the suite under memcheck (ARGS=pytest args)"
	@echo "make soak           tools/soak.py: every kind of work on one loop, checked for growth (SOAK_SCALE=...)"
	@echo "make bench          every benchmark suite (core, echo, C ceiling, latency, memory, UDP, TLS, HTTP,"
	@echo "                    subprocess), short runs (< 5 min); raw results and charts in BENCH_OUT"
	@echo "make bench-full     every suite, full runs, + callgrind and strace (about 2 h)"
	@echo "make charts         the charts of the latest runs into docs/_static/bench/ (README, docs; ARGS=RUN_DIR...)"
	@echo "make vendor-libuv   fill an empty vendor/libuv from the pinned libuv archive (LIBUV_ARCHIVE=...)"
	@echo "make sdist          the source package into dist/ (refuses without vendor/libuv)"
	@echo "make wheel          sdist + manylinux wheel from the vendored libuv, auditwheel, smoke test"
	@echo "make wheel-smoke    the smoke test again, on the newest wheel in wheelhouse/"
	@echo "make clean          remove build output; make distclean also removes .venvs/"
	@echo "PYTHON=$(PYTHON); libuv: OURLOOP_LIBUV=vendor|system (default: vendored if checked out)"

build:
	$(PIP) install -e .

inplace:
	$(PYTHON) setup.py build_ext --inplace

test:
	$(PYTHON) -m pytest $(ARGS)

lint:
	PYTHON=$(PYTHON) bash tools/lint.sh

docs:
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html

test-all:
	bash tools/test-all.sh

test-cpython:
	$(PYTHON) tools/cpython_conformance.py $(ARGS)

test-upstream:
	$(PYTHON) tools/test_upstream.py $(ARGS)

# The whole suite on the forced-portable build: OURLOOP_PORTABLE=1 makes
# ourloop/includes/platform.h take every portable fallback (no sendfile(2),
# accept() + fcntl(), a thread per child instead of pidfds) even on Linux,
# so that what macOS and other Unixes run is tested here. CI's `portable`
# job; tests/test_portable_flavour.py runs the platform-dependent modules on
# it in every test run.
test-portable:
	OURLOOP_PORTABLE=1 $(PIP) install -e .
	$(PYTHON) -m pytest $(ARGS)
	@echo "The forced-portable build stays in place; 'make build' goes back to a normal build."

debug:
	OURLOOP_DEBUG=1 $(PIP) install -e .
	@echo "Built with OURLOOP_DEBUG=1; 'make build' goes back to a normal build."

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer
# (CI's asan job runs this). The interpreter is not instrumented, so the
# ASan runtime is preloaded (gcc's; on macOS preload clang's
# libclang_rt.asan_osx_dynamic.dylib with DYLD_INSERT_LIBRARIES instead).
# PYTHONMALLOC=malloc: Python objects come from malloc, not from pymalloc's
# arenas, so that ASan also sees a use of a freed or overrun object (a
# reference-count mistake in the Cython code). The UBSan runtime is linked
# into the extension; the build makes every UBSan report abort the process
# (-fno-sanitize-recover), and print_stacktrace=1 says where. The sanitizer
# flags also compile the vendored libuv; a system libuv is not instrumented.
UBSAN_ENV = UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1$${UBSAN_OPTIONS:+:$$UBSAN_OPTIONS}"
ASAN_ENV = LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" PYTHONMALLOC=malloc \
	ASAN_OPTIONS="detect_leaks=0$${ASAN_OPTIONS:+:$$ASAN_OPTIONS}" $(UBSAN_ENV)

asan:
	OURLOOP_ASAN=1 OURLOOP_UBSAN=1 $(PIP) install -e .
	$(ASAN_ENV) $(PYTHON) -m pytest $(ARGS)
	@echo "The ASan+UBSan build stays in place; 'make build' goes back to a normal build."

# UBSan alone: no preloaded runtime, about the speed of a normal -O1 build.
ubsan:
	OURLOOP_UBSAN=1 $(PIP) install -e .
	$(UBSAN_ENV) $(PYTHON) -m pytest $(ARGS)
	@echo "The UBSan build stays in place; 'make build' goes back to a normal build."

valgrind:
	$(PYTHON) tools/valgrind.py $(ARGS)

soak:
	$(PYTHON) tools/soak.py $(ARGS)

# Raw results, charts and each script's full output go to $(BENCH_OUT)
# (default ~/.cache/ourloop-bench/<UTC time>/), never into the tree.
# Needs the bench extra: pip install -e '.[bench]'; the HTTP suite also wrk
# (tools/install.sh installs it; without it that suite is skipped).
bench:
	$(PYTHON) benchmarks/bench_all.py $(ARGS)

bench-full:
	$(PYTHON) benchmarks/bench_all.py --full $(ARGS)

# benchmarks/charts.py: for each suite the newest run under
# ~/.cache/ourloop-bench/ (or the run directories in ARGS) drawn into
# docs/_static/bench/<suite>.png, and headline.png (callgrind counts + HTTP
# CPU per request), which the README and docs/performance.md show.
charts:
	$(PYTHON) benchmarks/charts.py $(ARGS)

# tools/vendor_libuv.py: the submodule, or the archive in $LIBUV_ARCHIVE or
# ../shared/deps/ (checked against the pinned commit) unpacked into vendor/libuv.
vendor-libuv:
	$(PYTHON) tools/vendor_libuv.py

sdist: vendor-libuv
	$(PYTHON) -m venv .venvs/sdist-tools && .venvs/sdist-tools/bin/python -m pip install -q --disable-pip-version-check build
	.venvs/sdist-tools/bin/python -m build --sdist --outdir dist .

# tools/wheel.py: vendor, sdist, wheel from the sdist, auditwheel repair into
# wheelhouse/ and its checks (manylinux tag, libc only, licences), smoke test
# in a fresh venv. The tools go into .venvs/wheel-tools-pyX.Y.
wheel:
	$(PYTHON) tools/wheel.py all --python $(PYTHON)

wheel-smoke:
	$(PYTHON) tools/wheel.py smoke --python $(PYTHON)

clean:
	rm -rf build/ *.egg-info ourloop/*.egg-info docs/_build
	rm -f ourloop/_core.c
	find ourloop -name '*.so' -delete
	find ourloop -name '*.html' -delete
	find . -path ./.venvs -prune -o -path ./.git -prune -o -name __pycache__ -type d -print | xargs rm -rf

distclean: clean
	rm -rf .venvs/ dist/ wheelhouse/ .pytest_cache/
