"""ourloop.pytest_plugin: `pytest -p ourloop.pytest_plugin` runs every
asyncio loop of a session on ourloop.

Each test writes a small suite into a temporary directory and runs pytest on
it in a child process, with and without the plugin; the sample tests assert
which loop they run on, so the two runs must both pass.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from support import HIDE_NAMES_PRELUDE, NO_POLICY_NAMES

PLUGIN = ['-p', 'ourloop.pytest_plugin']

# A test that passes when the running loop is of the expected kind
# (EXPECT=ourloop or EXPECT=stdlib in the environment).
COMMON = '''
import asyncio, os

def loop_kind(loop):
    return 'ourloop' if type(loop).__module__.startswith('ourloop') else 'stdlib'

def check(loop):
    assert loop_kind(loop) == os.environ['EXPECT'], type(loop)
'''

PLAIN = '''
import asyncio, sys
import pytest
from common import check, loop_kind

async def running():
    return asyncio.get_running_loop()

def test_asyncio_run():
    check(asyncio.run(running()))

def test_new_event_loop():
    loop = asyncio.new_event_loop()
    try:
        check(loop)
        check(loop.run_until_complete(running()))
    finally:
        loop.close()

@pytest.mark.skipif(sys.version_info < (3, 11), reason='asyncio.Runner is 3.11+')
def test_runner():
    with asyncio.Runner() as runner:
        check(runner.get_loop())

def test_default_policy_class():
    # Code that installs a fresh "default" policy still gets the switch.
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        check(asyncio.run(running()))
    finally:
        asyncio.set_event_loop_policy(None)

def test_explicit_class_is_left_alone():
    loop = asyncio.SelectorEventLoop()
    loop.close()
    assert loop_kind(loop) == 'stdlib'
'''

PYTEST_ASYNCIO = '''
import asyncio
import pytest
import pytest_asyncio
from common import check

@pytest.mark.asyncio
async def test_marked():
    check(asyncio.get_running_loop())

@pytest_asyncio.fixture
async def served():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
    yield server
    server.close()
    await server.wait_closed()

@pytest.mark.asyncio
async def test_async_fixture(served):
    check(asyncio.get_running_loop())
    assert served.sockets
'''

ANYIO = '''
import asyncio
import pytest
from common import check

@pytest.fixture
def anyio_backend():
    return 'asyncio'

@pytest.mark.anyio
async def test_anyio_asyncio_backend():
    check(asyncio.get_running_loop())
'''

AIOHTTP = '''
import asyncio
from aiohttp import web
from common import check

pytest_plugins = ['aiohttp.pytest_plugin']

async def hello(request):
    return web.Response(text='hello from ' + type(asyncio.get_running_loop()).__module__)

async def test_client_and_server(aiohttp_client):
    check(asyncio.get_running_loop())
    app = web.Application()
    app.router.add_get('/', hello)
    client = await aiohttp_client(app)
    response = await client.get('/')
    assert response.status == 200
    text = await response.text()
    assert text.startswith('hello from ')

def test_loop_fixture(loop):
    check(loop)
'''


def run_sample(tmp_path, files, plugin, *extra):
    """Run pytest on a sample suite; returns (exit code, output)."""
    (tmp_path / 'common.py').write_text(COMMON)
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = dict(os.environ)
    env['EXPECT'] = 'ourloop' if plugin else 'stdlib'
    env.pop('PYTEST_ADDOPTS', None)
    env.pop('PYTEST_PLUGINS', None)
    args = [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-v',
            '-W', 'error::pytest.PytestUnraisableExceptionWarning',
            '--rootdir', str(tmp_path), *(PLUGIN if plugin else ()), *extra, str(tmp_path)]
    proc = subprocess.run(args, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    return proc.returncode, proc.stdout


@pytest.mark.parametrize('plugin', [False, True], ids=['stdlib', 'plugin'])
def test_plain_asyncio(tmp_path, plugin):
    code, out = run_sample(tmp_path, {'test_plain.py': PLAIN}, plugin,
                           '-p', 'no:asyncio', '-p', 'no:anyio')
    assert code == 0, out
    assert ' passed' in out and 'failed' not in out
    if plugin:
        assert 'asyncio makes ourloop loops in this session' in out
        # The explicit SelectorEventLoop is counted, not switched.
        assert '1 stdlib loop(s) made directly' in out
    else:
        assert 'ourloop' not in out


@pytest.mark.parametrize('plugin', [False, True], ids=['stdlib', 'plugin'])
def test_pytest_asyncio(tmp_path, plugin):
    pytest.importorskip('pytest_asyncio')
    code, out = run_sample(tmp_path, {'test_pa.py': PYTEST_ASYNCIO}, plugin,
                           '-p', 'no:anyio', '-o', 'asyncio_mode=strict',
                           '-o', 'asyncio_default_fixture_loop_scope=function')
    assert code == 0, out
    assert '2 passed' in out
    if plugin:
        assert 'stdlib loop(s) made directly' not in out


@pytest.mark.parametrize('plugin', [False, True], ids=['stdlib', 'plugin'])
def test_anyio(tmp_path, plugin):
    pytest.importorskip('anyio')
    code, out = run_sample(tmp_path, {'test_anyio_sample.py': ANYIO}, plugin, '-p', 'no:asyncio')
    assert code == 0, out
    assert '1 passed' in out
    if plugin:
        assert 'stdlib loop(s) made directly' not in out


@pytest.mark.parametrize('plugin', [False, True], ids=['stdlib', 'plugin'])
def test_aiohttp(tmp_path, plugin):
    pytest.importorskip('aiohttp')
    code, out = run_sample(tmp_path, {'test_aiohttp_sample.py': AIOHTTP}, plugin,
                           '-p', 'no:asyncio', '-p', 'no:anyio')
    assert code == 0, out
    assert '2 passed' in out
    if plugin:
        assert 'asyncio makes ourloop loops in this session' in out
        assert 'stdlib loop(s) made directly' not in out


def test_unconfigure_restores_asyncio():
    # In one process: configure, then unconfigure, leaves asyncio as it was.
    code = textwrap.dedent('''
        import asyncio, warnings
        warnings.simplefilter('ignore', DeprecationWarning)
        from ourloop import pytest_plugin
        before = (asyncio.DefaultEventLoopPolicy, asyncio.get_event_loop_policy(),
                  asyncio.base_events.BaseEventLoop.__init__)
        pytest_plugin.pytest_configure(None)
        assert asyncio.DefaultEventLoopPolicy is not before[0]
        loop = asyncio.new_event_loop()
        assert type(loop).__module__.startswith('ourloop'), type(loop)
        loop.close()
        pytest_plugin.pytest_unconfigure(None)
        after = (asyncio.DefaultEventLoopPolicy, asyncio.get_event_loop_policy(),
                 asyncio.base_events.BaseEventLoop.__init__)
        assert after == before, (before, after)
        loop = asyncio.new_event_loop()
        assert not type(loop).__module__.startswith('ourloop')
        loop.close()
        print('ok')
    ''')
    proc = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stdout


def test_own_suite_under_plugin():
    # This project's tests run under the switch unchanged: each both-loop
    # test asks for the stdlib's class by name for its stdlib half, which
    # the switch leaves alone (and counts, in -q's summary).
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    env.pop('PYTEST_ADDOPTS', None)
    args = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *PLUGIN,
            '-p', 'no:asyncio', '-p', 'no:anyio',
            os.path.join(here, 'test_tasks.py'), os.path.join(here, 'test_callbacks.py')]
    proc = subprocess.run(args, cwd=os.path.dirname(here), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out
    assert 'ourloop loop(s) made through asyncio' in out
    assert ' passed' in out and 'failed' not in out


def test_switch_without_a_policy_system():
    # A Python without asyncio's policies (3.16, simulated by hiding the
    # names): the plugin replaces asyncio.new_event_loop (and the
    # events module's, which asyncio.run() calls) and puts it back.
    code = HIDE_NAMES_PRELUDE + textwrap.dedent('''
        from ourloop import pytest_plugin
        before = (asyncio.new_event_loop, asyncio.events.new_event_loop)
        pytest_plugin.pytest_configure(None)
        async def kind():
            return type(asyncio.get_running_loop()).__module__.split('.')[0]
        print(asyncio.run(kind()))
        loop = asyncio.new_event_loop()
        print(type(loop).__module__.split('.')[0])
        loop.close()
        print(pytest_plugin._SessionPolicy.made)
        pytest_plugin.pytest_unconfigure(None)
        print((asyncio.new_event_loop, asyncio.events.new_event_loop) == before)
        print(asyncio.run(kind()))
    ''')
    proc = subprocess.run([sys.executable, '-c', code, NO_POLICY_NAMES], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.split() == ['ourloop', 'ourloop', '2', 'True', 'asyncio'], proc.stdout
