"""gunicorn with uvicorn's and aiohttp's workers on ourloop: the recipe of
docs/guide/servers.md, taken from the guide itself, with two workers on one
port."""

import os
import re
import sys
import textwrap

import pytest

from support import ServerProcess, http_get

pytest.importorskip('gunicorn')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, 'docs', 'guide', 'servers.md')

ASGI_APP = '''
import asyncio, os

async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    body = f'{type(asyncio.get_running_loop()).__module__} {os.getpid()}'.encode()
    await send({'type': 'http.response.start', 'status': 200,
                'headers': [(b'content-length', str(len(body)).encode())]})
    await send({'type': 'http.response.body', 'body': body})
'''

AIOHTTP_APP = '''
import asyncio, os
from aiohttp import web

async def hello(request):
    return web.Response(text=f'{type(asyncio.get_running_loop()).__module__} {os.getpid()}')

async def make_app():
    app = web.Application()
    app.router.add_get('/', hello)
    return app
'''

WORKERS = 2


def recipe():
    """The ourloop_workers.py block of the guide."""
    with open(GUIDE) as f:
        text = f.read()
    match = re.search(r'```python\n(# ourloop_workers\.py\n.*?)```', text, re.DOTALL)
    assert match, 'docs/guide/servers.md lost its ourloop_workers.py block'
    return match.group(1)


@pytest.mark.parametrize('worker, app', [
    ('OurloopUvicornWorker', 'asgi_app:app'),
    ('OurloopAiohttpWorker', 'aiohttp_app:make_app'),
])
def test_gunicorn_workers(tmp_path, worker, app):
    # The recipe imports both worker bases.
    pytest.importorskip('aiohttp')
    pytest.importorskip('uvicorn_worker')
    (tmp_path / 'ourloop_workers.py').write_text(recipe())
    (tmp_path / 'asgi_app.py').write_text(textwrap.dedent(ASGI_APP))
    (tmp_path / 'aiohttp_app.py').write_text(textwrap.dedent(AIOHTTP_APP))
    server = ServerProcess(
        [sys.executable, '-m', 'gunicorn', '-k', f'ourloop_workers.{worker}',
         '-w', str(WORKERS), '-b', '127.0.0.1:0', '--graceful-timeout', '5', app],
        cwd=str(tmp_path))
    try:
        text = server.wait_output('Listening at: http://127.0.0.1:',
                                  *['Booting worker with pid'] * WORKERS)
        port = int(re.search(r'Listening at: http://127\.0\.0\.1:(\d+)', text).group(1))
        booted = {int(pid) for pid in re.findall(r'Booting worker with pid: (\d+)', text)}
        answers = [http_get(('127.0.0.1', port)).decode().split() for _ in range(12)]
    finally:
        server.stop()
    assert {module for module, _ in answers} == {'ourloop._loop'}, answers
    assert {int(pid) for _, pid in answers} <= booted
