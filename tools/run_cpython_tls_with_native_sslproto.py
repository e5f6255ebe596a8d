#!/usr/bin/env python
"""Run CPython's asyncio TLS tests with ourloop's native SSLProtocol.

asyncio.sslproto.SSLProtocol (which the stdlib's selector loop, its
start_tls() and its tests all look up at call time) is replaced by
ourloop._core.SSLProtocol, then test.test_asyncio.test_ssl and
test.test_asyncio.test_sslproto run under unittest on the stdlib's loop.

    python tools/run_cpython_tls_with_native_sslproto.py [--stdlib] [-v] [unittest args]

--stdlib leaves the stdlib's class in place (the baseline). Other
arguments go to unittest (test names or -k patterns). Needs the in-place
build of ourloop (run from the repository root).
"""

import asyncio.sslproto
import importlib.util
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODULES = ['test.test_asyncio.test_ssl', 'test.test_asyncio.test_sslproto']


def main(argv):
    native = '--stdlib' not in argv
    argv = [a for a in argv if a != '--stdlib']
    if native:
        import ourloop._core
        asyncio.sslproto.SSLProtocol = ourloop._core.SSLProtocol
    print(f'SSLProtocol under test: {asyncio.sslproto.SSLProtocol!r}', flush=True)
    names = [a for a in argv if not a.startswith('-')]
    opts = [a for a in argv if a.startswith('-')]
    # test_ssl is 3.11+
    modules = [m for m in MODULES if importlib.util.find_spec(m) is not None]
    unittest.main(module=None, argv=[sys.argv[0]] + opts + (names or modules))


if __name__ == '__main__':
    main(sys.argv[1:])
