"""The Sphinx site (`make docs`) builds without a warning; the benchmark
charts it and the README show are there, small, and say where they ran."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip('sphinx')
    pytest.importorskip('myst_parser')
    out = tmp_path / 'html'
    proc = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html', '-q',
         os.path.join(ROOT, 'docs'), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout
    for page in ('index.html', 'api.html', 'conformance.html', 'architecture.html',
                 'guide/testing.html'):
        assert (out / page).is_file(), page
    api = (out / 'api.html').read_text()
    # autodoc found the extension's public API (a missing build would
    # leave these out with a warning, failing above).
    for name in ('ourloop.run', 'ourloop.new_event_loop', 'ourloop.Loop'):
        assert name in api, name


CHARTS = os.path.join(ROOT, "docs", "_static", "bench")


def _png_text(path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import charts
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))
    return charts.png_text(path)


def test_committed_charts_are_shown_small_and_say_where_they_ran():
    # The charts of docs/_static/bench/ (make charts): the headline one and
    # one per suite; the performance page shows each, the README the
    # headline (tests/test_packaging.py checks its absolute URL). Each is
    # small, and its caption names the date, CPU, Python and libuv, and
    # the load for a wall-clock measurement.
    pngs = sorted(n for n in os.listdir(CHARTS) if n.endswith(".png"))
    assert "headline.png" in pngs and "core.png" in pngs, pngs
    with open(os.path.join(ROOT, "docs", "performance.md")) as f:
        page = f.read()
    for name in pngs:
        path = os.path.join(CHARTS, name)
        assert "(_static/bench/%s)" % name in page, name
        assert os.path.getsize(path) < 60_000, (name, os.path.getsize(path))
        caption = _png_text(path)["Description"]
        for part in ("CPython 3.", "libuv 1.", " cores", "20"):
            assert part in caption, (name, part, caption)
        if name in ("headline.png", "instructions.png", "roundtrip.png"):
            assert "callgrind" in caption or "the same under any load" in caption, caption
        elif name not in ("syscalls.png", "memory.png"):
            assert "load average" in caption, (name, caption)
    headline = _png_text(os.path.join(CHARTS, "headline.png"))["Description"]
    assert "HTTP server CPU time per request" in headline
