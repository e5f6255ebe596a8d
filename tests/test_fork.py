"""os.fork() with a loop in the parent: the child can make and run a fresh
loop of the same kind, and whatever the child does (including closing the
loop object it inherited) leaves the parent's loop working.

Each scenario runs in a fresh interpreter (run_py), which forks; the child
reports through its exit status and a pipe, and never returns into pytest.
"""

import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform == 'win32', reason='os.fork')


# Shared by the scripts below: a TCP echo server on the parent's loop, and a
# client that checks it still answers.
_PRELUDE = r'''
import asyncio, os, signal, socket, sys, threading, time

async def echo_handler(reader, writer):
    while data := await reader.read(1000):
        writer.write(data)
        await writer.drain()
    writer.close()

async def ping(port, payload=b'ping'):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    return data

def child_work():
    # A fresh loop in the child: timers, call_soon_threadsafe, an executor
    # job, DNS, TCP, a signal handler.
    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.01)
        fut = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe,
                         args=(fut.set_result, 'threaded')).start()
        assert await fut == 'threaded'
        assert await loop.run_in_executor(None, sum, [1, 2]) == 3
        await loop.getaddrinfo('127.0.0.1', 80)
        server = await asyncio.start_server(echo_handler, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        assert await ping(port, b'child') == b'child'
        server.close()
        await server.wait_closed()
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, 'sig')
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await asyncio.wait_for(got, 10) == 'sig'
        loop.remove_signal_handler(signal.SIGUSR1)
        return 'ok'
    loop = new_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()

def wait_child(pid):
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
'''


def test_child_runs_fresh_loop_parent_unaffected(run_py):
    # Fork while the parent's loop is idle (between runs); the child closes
    # the loop it inherited, then runs a new one.
    out = run_py(_PRELUDE + r'''
loop = new_loop()
server = loop.run_until_complete(
    asyncio.start_server(echo_handler, '127.0.0.1', 0))
port = server.sockets[0].getsockname()[1]
assert loop.run_until_complete(ping(port)) == b'ping'
pid = os.fork()
if pid == 0:
    code = 1
    try:
        loop.close()            # the inherited copy: must not touch the parent
        assert child_work() == 'ok'
        code = 0
    except BaseException:
        import traceback; traceback.print_exc()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
wait_child(pid)
# The parent's server still accepts and echoes, many times over.
for i in range(20):
    assert loop.run_until_complete(ping(port, b'x%d' % i)) == b'x%d' % i
server.close()
loop.run_until_complete(server.wait_closed())
loop.close()
print('parent ok')
''', timeout=30)
    assert out.returncode == 0 and 'parent ok' in out.stdout, out.stdout + out.stderr


def test_fork_inside_running_loop(run_py):
    # Fork from a coroutine: in the child, no loop is running (asyncio's
    # running loop is per process), and a new loop runs; the parent's loop
    # goes on serving while and after the child runs.
    out = run_py(_PRELUDE + r'''
async def main():
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(echo_handler, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise AssertionError('a loop runs in the child')
            assert child_work() == 'ok'
            os.write(w, b'child ok')
            code = 0
        except BaseException:
            import traceback; traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    os.close(w)
    # Serve while the child works.
    for i in range(5):
        assert await ping(port, b'p%d' % i) == b'p%d' % i
    result = await loop.run_in_executor(None, os.read, r, 100)
    os.close(r)
    await loop.run_in_executor(None, wait_child, pid)
    assert result == b'child ok', result
    for i in range(20):
        assert await ping(port, b'q%d' % i) == b'q%d' % i
    server.close()
    await server.wait_closed()
    return 'parent ok'

loop = new_loop()
print(loop.run_until_complete(main()))
loop.close()
''', timeout=30)
    assert out.returncode == 0 and 'parent ok' in out.stdout, out.stdout + out.stderr


def test_child_signals_do_not_reach_parent(run_py, loop_kind):
    if loop_kind == 'asyncio' and sys.version_info < (3, 12):
        pytest.skip("asyncio resets the child's signal wake-up fd from 3.12 on")
    # The parent has a signal handler (so its wake-up fd is set); a signal
    # the child receives must not be seen by the parent's loop.
    out = run_py(_PRELUDE + r'''
async def main():
    loop = asyncio.get_running_loop()
    seen = []
    loop.add_signal_handler(signal.SIGUSR2, seen.append, 'parent')
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGUSR2, lambda *a: None)
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.1)  # a quiet period (tests/support.py) in the child
            code = 0
        finally:
            os._exit(code)
    await loop.run_in_executor(None, wait_child, pid)
    # The child has signalled itself and exited: a quiet period (see
    # tests/support.py) in which the parent's loop must see nothing.
    await asyncio.sleep(0.3)
    assert seen == [], seen
    os.kill(os.getpid(), signal.SIGUSR2)
    deadline = time.monotonic() + 30  # until seen (support.until, inline)
    while not seen and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    assert seen == ['parent'], seen
    loop.remove_signal_handler(signal.SIGUSR2)
    return 'parent ok'

loop = new_loop()
print(loop.run_until_complete(main()))
loop.close()
''', timeout=30)
    assert out.returncode == 0 and 'parent ok' in out.stdout, out.stdout + out.stderr


@pytest.mark.only_loop("ourloop", reason="the stdlib's selector loop shares its "
                        "epoll instance with the child, whose finalizers then "
                        "unregister the parent's fds")
def test_child_garbage_collects_parent_loop(run_py):
    # The child drops every reference to the inherited loop and its open
    # transports (so their finalizers run in the child); the parent's
    # connection still works.
    out = run_py(_PRELUDE + r'''
import gc
loop = new_loop()
server = loop.run_until_complete(
    asyncio.start_server(echo_handler, '127.0.0.1', 0))
port = server.sockets[0].getsockname()[1]
reader, writer = loop.run_until_complete(
    asyncio.open_connection('127.0.0.1', port))
pid = os.fork()
if pid == 0:
    code = 1
    try:
        import warnings
        warnings.simplefilter('ignore')
        del reader, writer, server
        loop.close()
        del loop
        gc.collect()
        assert child_work() == 'ok'
        code = 0
    except BaseException:
        import traceback; traceback.print_exc()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
wait_child(pid)
async def talk():
    for i in range(10):
        writer.write(b'abc%d' % i)
        assert await reader.readexactly(4) == b'abc%d' % i
    writer.close()
    await writer.wait_closed()
loop.run_until_complete(talk())
server.close()
loop.run_until_complete(server.wait_closed())
loop.close()
print('parent ok')
''', timeout=30)
    assert out.returncode == 0 and 'parent ok' in out.stdout, out.stdout + out.stderr


def test_child_closing_the_loop_leaves_parent_sock_waits(run_py):
    # sock_recv waits (ourloop: an epoll set of the loop's own, sockops.pyx)
    # before and after a fork whose child closes the inherited loop and
    # waits on the same sockets with a fresh loop.
    out = run_py(_PRELUDE + r'''
loop = new_loop()
a, b = socket.socketpair()
a.setblocking(False)

async def wait_recv(lp, sock, peer, payload):
    task = asyncio.ensure_future(lp.sock_recv(sock, 100))
    await asyncio.sleep(0)
    peer.send(payload)
    return await asyncio.wait_for(task, 10)

assert loop.run_until_complete(wait_recv(loop, a, b, b'before')) == b'before'
pid = os.fork()
if pid == 0:
    code = 1
    try:
        loop.close()
        fresh = new_loop()
        assert fresh.run_until_complete(wait_recv(fresh, a, b, b'child')) == b'child'
        fresh.close()
        code = 0
    except BaseException:
        import traceback; traceback.print_exc()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
wait_child(pid)
for i in range(5):
    assert loop.run_until_complete(wait_recv(loop, a, b, b'p%d' % i)) == b'p%d' % i
loop.close()
print('parent ok')
''', timeout=30)
    assert out.returncode == 0 and 'parent ok' in out.stdout, out.stdout + out.stderr
