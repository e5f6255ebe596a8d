"""Sphinx configuration of ourloop's documentation (`make docs`)."""

import os
import sys

sys.path.insert(0, os.path.abspath('..'))

project = 'ourloop'
author = 'the ourloop developers'
copyright = '2026, the ourloop developers'

try:
    import ourloop
    release = ourloop.__version__
except ImportError:  # the extension is not built: the API page says so
    release = 'unknown'
version = release

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns = ['_build']
myst_heading_anchors = 3
# The design documents link to source files of the repository (../ourloop/...),
# which are not pages of this site.
suppress_warnings = ['myst.xref_missing']

autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'

html_theme = 'alabaster'
html_title = f'ourloop {release}'
html_static_path = []
