"""The wheel's smoke test: run by tools/wheel.py in a fresh venv where only
the wheel is installed, from a directory outside the checkout.

It checks that the installed ourloop is the one imported, that it links the
vendored libuv statically, that its metadata carries the licences, and that
a small program runs on it: ourloop.run() with a TCP echo through asyncio
streams, a subprocess with pipes, an executor call and a
call_soon_threadsafe from another thread. Exit status 0 means it passed.
"""

import asyncio
import os
import sys
import threading
from importlib import metadata

import ourloop
from ourloop import _core

PAYLOAD = os.urandom(256 * 1024)


def check(cond, what):
    if not cond:
        raise SystemExit('wheel_smoke: FAILED: ' + what)


async def echo_round_trip():
    async def handle(reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(PAYLOAD)
    await writer.drain()
    writer.write_eof()
    got = await reader.read()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return got


async def subprocess_round_trip():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, '-c', 'import sys; sys.stdout.write(sys.stdin.read().upper())',
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(b'hello from ourloop')
    return proc.returncode, out


async def main():
    loop = asyncio.get_running_loop()
    check(isinstance(loop, ourloop.Loop), 'ourloop.run() runs an ourloop.Loop, not %r' % loop)

    got = await echo_round_trip()
    check(got == PAYLOAD, 'TCP echo returned %d of %d bytes' % (len(got), len(PAYLOAD)))

    code, out = await subprocess_round_trip()
    check((code, out) == (0, b'HELLO FROM OURLOOP'), 'subprocess gave %r, %r' % (code, out))

    check(await loop.run_in_executor(None, sum, [1, 2, 3]) == 6, 'run_in_executor')

    woken = loop.create_future()
    threading.Thread(target=loop.call_soon_threadsafe,
                     args=(woken.set_result, 'from a thread')).start()
    check(await woken == 'from a thread', 'call_soon_threadsafe')
    return 'ok'


def run_checks():
    # The installed copy, not a checkout on sys.path.
    check(sys.prefix != sys.base_prefix, 'not running in a venv')
    check(os.path.realpath(ourloop.__file__).startswith(os.path.realpath(sys.prefix) + os.sep),
          'ourloop imported from %s, outside the venv %s' % (ourloop.__file__, sys.prefix))
    build = _core._build_info()
    check(build['libuv_linkage'] == 'vendored, static',
          'libuv linkage is %r' % build['libuv_linkage'])
    check(build['flavour'] == 'release', 'build flavour is %r' % build['flavour'])

    meta = metadata.metadata('ourloop')
    expression = meta.get('License-Expression')
    check(expression == 'MIT AND ISC AND BSD-2-Clause', 'License-Expression %r' % expression)
    files = {str(f) for f in metadata.distribution('ourloop').files or ()}
    for name in ('LICENSE', 'vendor/libuv/LICENSE', 'vendor/libuv/LICENSE-extra'):
        check(any(f.endswith('.dist-info/licenses/' + name) for f in files),
              'installed licences lack ' + name)

    check(ourloop.run(main()) == 'ok', 'ourloop.run(main()) result')
    print('wheel_smoke: ok: ourloop %s, libuv %s (%s), %s'
          % (ourloop.__version__, ourloop.libuv_version(), build['libuv_linkage'],
             os.path.dirname(ourloop.__file__)))


if __name__ == '__main__':
    run_checks()
