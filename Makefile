# ourloop developer targets. The README's quick start needs none of these:
#   bash tools/install.sh && python -m pytest
PYTHON ?= python3
PIP := $(PYTHON) -m pip --disable-pip-version-check
ARGS ?=

.PHONY: help build inplace test lint docs test-all test-cpython test-upstream debug asan valgrind bench clean distclean

help:
	@echo "make build          editable install (pip install -e .); rebuilds ourloop._core in place"
	@echo "make inplace        faster rebuild: setup.py build_ext --inplace (needs Cython + setuptools>=77 installed)"
	@echo "make test           $(PYTHON) -m pytest"
	@echo "make lint           tools/lint.sh: ruff, cython-lint, mypy (pip install -e '.[lint]')"
	@echo "make docs           the Sphinx site into docs/_build/html, warnings as errors (pip install -e '.[docs]')"
	@echo "make test-all       build + test in .venvs/pyX.Y for each pyenv CPython 3.9 .. 3.13"
	@echo "make test-cpython   tools/cpython_conformance.py (ARGS=... passed through)"
	@echo "make test-upstream  aiohttp/anyio/httpx/uvicorn's own suites on the stdlib loop and ourloop (ARGS=...)"
	@echo "make debug          rebuild with OURLOOP_DEBUG=1 (line tracing, -O0 -g, handle accounting)"
	@echo "make asan           rebuild with OURLOOP_ASAN=1 (AddressSanitizer)"
	@echo "make valgrind       tools/valgrind.py: a subset of the suite under memcheck (ARGS=pytest args)"
	@echo "make bench          benchmarks/run.py (ARGS=... passed through)"
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

debug:
	OURLOOP_DEBUG=1 $(PIP) install -e .
	@echo "Built with OURLOOP_DEBUG=1; 'make build' goes back to a normal build."

asan:
	OURLOOP_ASAN=1 $(PIP) install -e .
	@echo
	@echo "Built with AddressSanitizer. The interpreter is not instrumented, so preload the runtime:"
	@echo '  LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 $(PYTHON) -m pytest'
	@echo '(macOS: DYLD_INSERT_LIBRARIES=$$(clang -print-file-name=libclang_rt.asan_osx_dynamic.dylib) instead of LD_PRELOAD)'
	@echo "Run 'make build' to go back to a normal build."

valgrind:
	$(PYTHON) tools/valgrind.py $(ARGS)

bench:
	$(PYTHON) benchmarks/run.py $(ARGS)

clean:
	rm -rf build/ *.egg-info ourloop/*.egg-info docs/_build
	rm -f ourloop/_core.c
	find ourloop -name '*.so' -delete
	find ourloop -name '*.html' -delete
	find . -path ./.venvs -prune -o -path ./.git -prune -o -name __pycache__ -type d -print | xargs rm -rf

distclean: clean
	rm -rf .venvs/ dist/ wheelhouse/ .pytest_cache/
