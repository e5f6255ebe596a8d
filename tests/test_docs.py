"""The Sphinx site (`make docs`) builds without a warning."""

import os
import subprocess
import sys

import pytest

pytest.importorskip('sphinx')
pytest.importorskip('myst_parser')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_docs_build_without_warnings(tmp_path):
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
