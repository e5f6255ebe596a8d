"""uvicorn on ourloop, the ways docs/guide/servers.md describes.

Each test starts uvicorn in a child process on a Unix socket, with an ASGI
app that answers with the module of its running loop's class, and checks
which loop served the requests.
"""

import os
import selectors
import socket
import subprocess
import sys
import textwrap
import time

import pytest

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
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(b'GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n')
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    head, _, body = b''.join(chunks).partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), head
    module, pid = body.decode().split()
    return module, int(pid)


class Uvicorn:
    """A uvicorn child; ready() waits until it listens and `workers`
    report start-up."""

    def __init__(self, args, cwd):
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log = []

    def ready(self, workers=1, timeout=60):
        # Reads stderr's raw fd: a buffered readline() could take several
        # lines at once and leave select() waiting for ones already read.
        fd = self.proc.stderr.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        text = ''
        # Single process: start-up, then the bind; with workers the parent
        # binds first. Ready when both happened.
        while (text.count('Application startup complete') < workers
               or 'Uvicorn running on' not in text):
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            data = os.read(fd, 65536)
            if not data:
                break
            text += data.decode(errors='replace')
        sel.close()
        self.log.append(text)
        assert text.count('Application startup complete') == workers, text
        assert 'Uvicorn running on' in text, text

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stderr.close()


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
    server = Uvicorn(args, cwd=str(app_dir))
    try:
        server.ready(workers)
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
