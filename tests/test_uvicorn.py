"""uvicorn on ourloop, the ways docs/guide/servers.md describes.

Each test starts uvicorn in a child process on a Unix socket, with an ASGI
app that answers with the module of its running loop's class, and checks
which loop served the requests.
"""

import os
import sys
import textwrap
import time

import pytest

from support import ServerProcess, http_get

pytest.importorskip('uvicorn')

APP = '''
import asyncio, os

async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    loop = asyncio.get_running_loop()
    body = f'{type(loop).__module__} {os.getpid()}'.encode()
    await send({'type': 'http.response.start', 'status': 200,
                'headers': [(b'content-length', str(len(body)).encode())]})
    await send({'type': 'http.response.body', 'body': body})
'''

# The pre-0.36 recipe, and the pitfall: install() with a named uvicorn loop.
SCRIPT = '''
import sys, ourloop, uvicorn
ourloop.install()
uvicorn.run('app:app', uds=sys.argv[1], loop=sys.argv[2], log_level='info')
'''


def get(path):
    """(module of the loop's class, pid) that answered a request."""
    module, pid = http_get(path).decode().split()
    return module, int(pid)


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / 'app.py').write_text(textwrap.dedent(APP))
    (tmp_path / 'serve.py').write_text(textwrap.dedent(SCRIPT))
    return tmp_path


@pytest.fixture
def sock_path():
    # AF_UNIX paths are short: not pytest's tmp_path.
    path = f'/tmp/ol-uvicorn-{os.getpid()}-{time.monotonic_ns()}.sock'
    yield path
    if os.path.exists(path):
        os.unlink(path)


def serve(args, app_dir, workers=1):
    """Start uvicorn; return once it listens and `workers` processes have
    started the app (single process: start-up, then the bind; with workers
    the parent binds first)."""
    server = ServerProcess(args, cwd=str(app_dir))
    try:
        server.wait_output('Uvicorn running on', *['Application startup complete'] * workers)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.mark.parametrize('workers', [1, 2])
def test_loop_factory_option(app_dir, sock_path, workers):
    args = [sys.executable, '-m', 'uvicorn', 'app:app', '--loop', 'ourloop:new_event_loop',
            '--uds', sock_path]
    if workers > 1:
        args += ['--workers', str(workers)]
    server = serve(args, app_dir, workers)
    try:
        answers = [get(sock_path) for _ in range(8)]
    finally:
        server.stop()
    assert {module for module, _ in answers} == {'ourloop._loop'}
    assert server.proc.returncode is not None


def test_install_with_loop_none(app_dir, sock_path):
    # The recipe for uvicorn releases that take no loop factory.
    server = serve([sys.executable, 'serve.py', sock_path, 'none'], app_dir)
    try:
        module, _ = get(sock_path)
    finally:
        server.stop()
    assert module == 'ourloop._loop'


def test_install_is_ignored_with_loop_asyncio(app_dir, sock_path):
    # The pitfall the guide warns about: uvicorn makes its own
    # SelectorEventLoop and never asks the policy.
    server = serve([sys.executable, 'serve.py', sock_path, 'asyncio'], app_dir)
    try:
        module, _ = get(sock_path)
    finally:
        server.stop()
    assert module == 'asyncio.unix_events'
