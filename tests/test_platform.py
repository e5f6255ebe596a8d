"""The platform layer (ourloop/includes/platform.h): which native call or
fallback this build uses, and that each fallback gives the stdlib's results.

Every build runs these. The forced-portable flavour (OURLOOP_PORTABLE=1:
every fallback taken, even on Linux) runs them too, through
tests/test_portable_flavour.py (which builds it) and `make test-portable`
(the whole suite on it). A fallback's reference is the stdlib where it
lacks the same call: without os.sendfile the stdlib's loop.sendfile() and
sock_sendfile() read the file and write it; without pidfds it waits for
each child in a thread (ThreadedChildWatcher).
"""

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from support import fd_count, require_ourloop, run_coro, settled_fd_count

ourloop = pytest.importorskip('ourloop')
from ourloop import _core  # noqa: E402

INFO = _core._platform_info()
FORCED = INFO['fallbacks'] == 'forced'


def test_platform_info_matches_the_build():
    assert INFO['fallbacks'] == _core._build_info()['platform_fallbacks']
    assert _core._HAVE_SENDFILE == (INFO['sendfile'] != 'none')
    assert _core._CHILD_FD_KIND == INFO['child_fd']
    if FORCED:
        assert INFO['sendfile'] == 'none'
        assert INFO['accept'] == 'accept+fcntl'
        assert INFO['child_fd'] == 'none'
        assert INFO['pipe_size'] == 'none'
        assert INFO['udp_recv'] == 'recvfrom'
    elif sys.platform.startswith('linux'):
        assert INFO == {'sendfile': 'linux', 'accept': 'accept4', 'child_fd': 'pidfd',
                        'poll_backend': 'epoll', 'pipe_size': 'fcntl', 'udp_recv': 'recvmmsg',
                        'fallbacks': 'none'}
    elif sys.platform == 'darwin':
        assert INFO == {'sendfile': 'darwin', 'accept': 'accept+fcntl', 'child_fd': 'kqueue',
                        'poll_backend': 'kqueue', 'pipe_size': 'none', 'udp_recv': 'recvfrom',
                        'fallbacks': 'some'}
    if sys.platform.startswith('linux'):
        # The backend libuv polls with is the platform's, forced or not.
        assert INFO['poll_backend'] == 'epoll'


# -- accept: accept4(), or accept() then fcntl() --------------------------------


def test_accepted_sockets_are_nonblocking_and_not_inherited(loop):
    # The stdlib's accepted sockets (socket.accept(), then setblocking(False))
    # are non-blocking and non-inheritable; so are ourloop's, made by
    # accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) or by its fallback.
    async def main():
        accepted = []
        got_all = loop.create_future()

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.append(transport)
                if len(accepted) == 3 and not got_all.done():
                    got_all.set_result(None)

        server = await loop.create_server(Proto, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        writers = []
        for _ in range(3):
            _, writer = await asyncio.open_connection('127.0.0.1', port)
            writers.append(writer)
        await got_all
        flags = []
        for transport in accepted:
            fd = transport.get_extra_info('socket').fileno()
            flags.append((os.get_blocking(fd), os.get_inheritable(fd)))
            transport.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return flags

    assert run_coro(loop, main()) == [(False, False)] * 3


def test_accepted_socket_is_not_inherited_by_a_child(loop, tmp_path):
    # The close-on-exec flag matters when a child is spawned: it must not
    # keep the connection open (the peer would never see EOF).
    async def main():
        accepted = loop.create_future()

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

        server = await loop.create_server(Proto, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        transport = await accepted
        fd = transport.get_extra_info('socket').fileno()
        # A child that lives until we close its stdin, told to check fd.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, '-c',
            'import os, sys\n'
            'try:\n'
            '    os.fstat(int(sys.argv[1]))\n'
            '    print("inherited", flush=True)\n'
            'except OSError:\n'
            '    print("closed", flush=True)\n'
            'sys.stdin.read()\n',
            str(fd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=False)
        seen = (await proc.stdout.readline()).decode().strip()
        transport.close()
        eof = await reader.read()      # EOF although the child still runs
        proc.stdin.close()
        code = await proc.wait()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return seen, eof, code

    assert run_coro(loop, main()) == ('closed', b'', 0)


# -- sendfile: sendfile(2), or the stdlib's read/write fallback -----------------


@pytest.fixture
def without_sendfile(loop_kind, monkeypatch):
    """The stdlib as it is without os.sendfile; ourloop the same way, or as
    its build is when that has no sendfile(2) (forced portable): then
    os.sendfile stays, and only the build's fallback is at work."""
    if loop_kind == 'asyncio' or _core._HAVE_SENDFILE:
        monkeypatch.delattr(os, 'sendfile', raising=False)


@pytest.fixture
def payload(tmp_path):
    data = os.urandom(300_000) + b'end'
    path = tmp_path / 'payload.bin'
    path.write_bytes(data)
    return path, data


async def _tcp_pair(loop):
    # (client transport, server-side reader, server, writer to close)
    accepted = loop.create_future()

    async def on_client(reader, writer):
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_client, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, '127.0.0.1', port)
    reader, writer = await accepted
    return transport, reader, server, writer


@pytest.mark.parametrize('offset, count', [(0, None), (1000, 50_000)])
def test_sendfile_fallback_without_native_sendfile(loop, without_sendfile, payload,
                                                    offset, count):
    path, data = payload

    async def main():
        before = fd_count()
        transport, reader, server, writer = await _tcp_pair(loop)
        with open(path, 'rb') as f:
            with pytest.raises(asyncio.SendfileNotAvailableError) as info:
                await loop.sendfile(transport, f, offset, count, fallback=False)
            error = str(info.value)
            position_after_error = f.tell()
            sent = await loop.sendfile(transport, f, offset, count)
            position = f.tell()
        transport.close()
        expected = data[offset:offset + count if count else None]
        received = await reader.readexactly(len(expected))
        rest = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        leaked = await settled_fd_count(before) - before
        return error, position_after_error, sent, position, received == expected, rest, leaked

    error, pos0, sent, position, same, rest, leaked = run_coro(loop, main())
    expected_len = count if count else len(data) - offset
    assert error == 'os.sendfile() is not available'
    assert pos0 == 0
    assert (sent, position, same, rest) == (expected_len, offset + expected_len, True, b'')
    assert leaked == 0


@pytest.mark.skipif(not hasattr(os, 'sendfile'), reason='needs os.sendfile')
def test_native_sendfile_where_the_build_has_it(loop, loop_kind, tmp_path):
    # fallback=False: the zero-copy path (sendfile(2) on Linux, macOS's and
    # FreeBSD's own signatures) must send a file larger than the socket
    # buffers, through partial sends and EAGAIN, as the stdlib does.
    if loop_kind == 'ourloop' and not _core._HAVE_SENDFILE:
        pytest.skip('this build has no sendfile(2): the fallback tests cover it')
    data = os.urandom(4 * 1024 * 1024 + 17)
    path = tmp_path / 'big.bin'
    path.write_bytes(data)

    async def main():
        transport, reader, server, writer = await _tcp_pair(loop)
        transport.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)

        async def receive():
            got = bytearray()
            while len(got) < len(data) - 100:
                got += await reader.read(65536)
            return bytes(got)

        receiving = loop.create_task(receive())
        with open(path, 'rb') as f:
            sent = await loop.sendfile(transport, f, 100, fallback=False)
            position = f.tell()
        received = await receiving
        transport.close()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return sent, position, received == data[100:]

    assert run_coro(loop, main()) == (len(data) - 100, len(data), True)


def test_sock_sendfile_fallback_without_native_sendfile(loop, without_sendfile, payload):
    path, data = payload

    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            with open(path, 'rb') as f:
                with pytest.raises(asyncio.SendfileNotAvailableError) as info:
                    await loop.sock_sendfile(a, f, 10, 1000, fallback=False)
                sent = await loop.sock_sendfile(a, f, 10, 200_000)
                position = f.tell()
            got = bytearray()
            while len(got) < sent:
                got += await loop.sock_recv(b, 65536)
            return str(info.value), sent, position, bytes(got) == data[10:200_010]
        finally:
            a.close()
            b.close()

    assert run_coro(loop, main()) == ('os.sendfile() is not available', 200_000, 200_010, True)


# -- pipes: can the platform's selector watch the device? -----------------------


def _dev_null_read_outcome(loop):
    # What connect_read_pipe(/dev/null) ends in: the exception the
    # exception handler gets (the selector's refusal), or None.
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    f = open(os.devnull, 'rb', buffering=0)

    async def main():
        transport, _ = await loop.connect_read_pipe(asyncio.Protocol, f)
        for _ in range(10):
            await asyncio.sleep(0)
        transport.close()
        for _ in range(3):
            await asyncio.sleep(0)

    try:
        run_coro(loop, main())
    finally:
        loop.close()
    assert f.closed
    if not calls:
        return None
    exc = calls[0]['exception']
    return type(exc), exc.errno


def test_dev_null_pipe_as_the_platform_s_selector(tmp_path):
    # ourloop_fd_unpollable asks the platform's own selector (epoll on
    # Linux, kqueue on macOS): the outcome is the stdlib loop's there.
    import support
    stdlib = _dev_null_read_outcome(support.stdlib_new_event_loop())
    ours = _dev_null_read_outcome(require_ourloop().new_event_loop())
    assert ours == stdlib
    if sys.platform.startswith('linux'):
        assert stdlib == (PermissionError, 1)


# -- child processes: a pidfd/kqueue on the loop, or a thread per child ---------


@pytest.mark.only_loop('ourloop', reason='which watcher reaps a child is ourloop\'s own choice')
def test_children_are_watched_as_the_build_says(loop):
    require_ourloop()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, '-c', 'import sys; sys.stdin.read(); sys.exit(3)',
            stdin=subprocess.PIPE)
        names = {t.name for t in threading.enumerate()}
        waiting_thread = f'ourloop-waitpid-{proc.pid}' in names
        proc.stdin.close()
        return waiting_thread, await proc.wait()

    waiting_thread, code = run_coro(loop, main())
    assert code == 3
    # Linux 5.3+ has pidfds (this suite's machines do); a build without a
    # child fd waits in a thread, as the stdlib's ThreadedChildWatcher.
    assert waiting_thread == (INFO['child_fd'] == 'none')


@pytest.mark.parametrize('how', ['exit', 'signal'])
def test_child_exit_status_through_the_build_s_watcher(loop, how):
    # The exit code or minus the signal number, through whichever watcher
    # the build has, as the stdlib reports it.
    code = 'import sys; sys.exit(7)' if how == 'exit' else \
        'import os, signal; os.kill(os.getpid(), signal.SIGTERM)'

    async def main():
        proc = await asyncio.create_subprocess_exec(sys.executable, '-c', code)
        return await proc.wait()

    assert run_coro(loop, main()) == (7 if how == 'exit' else -15)


# -- the other platforms' branches compile -------------------------------------
#
# Nothing here runs macOS or FreeBSD, but their branches of platform.h can
# at least be compiled: against glibc with __linux__ undefined and the
# platform's own declarations given below (kqueue's sys/event.h, their
# sendfile signatures, as their manuals state them). CI's macOS job builds
# the real thing.

_KQUEUE_H = r'''
#include <stdint.h>
#include <time.h>
struct kevent { uintptr_t ident; short filter; unsigned short flags;
                unsigned int fflags; intptr_t data; void *udata; };
#define EV_SET(kevp, a, b, c, d, e, f) do { struct kevent *k_ = (kevp); \
    k_->ident = (a); k_->filter = (b); k_->flags = (c); k_->fflags = (d); \
    k_->data = (e); k_->udata = (void *)(f); } while (0)
#define EVFILT_READ (-1)
#define EVFILT_PROC (-5)
#define EV_ADD 0x0001
#define EV_ONESHOT 0x0010
#define NOTE_EXIT 0x80000000U
int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents, const struct timespec *timeout);
'''

_SENDFILE_DECLS = r'''
#include <sys/types.h>
struct sf_hdtr;
#if defined(__APPLE__)
int sendfile(int fd, int s, off_t offset, off_t *len, struct sf_hdtr *hdtr, int flags);
#elif defined(__DragonFly__)
int sendfile(int fd, int s, off_t offset, size_t nbytes, struct sf_hdtr *hdtr,
             off_t *sbytes, int flags);
#endif
'''

_USE_ALL = r'''
#include "platform.h"
#include <stdio.h>
int main(void) {
    off_t off = 0;
    int code = 0;
    int r = (int)ourloop_sendfile(0, 0, &off, 10) + ourloop_accept(0, NULL, NULL) + ourloop_child_fd(1)
        + ourloop_reap(0, 1, &code) + ourloop_fd_unpollable(0) + OURLOOP_UV_UDP_REUSE
        + OURLOOP_ABSTRACT_UNIX + OURLOOP_HAVE_SENDFILE + OURLOOP_CHILD_FD_IS_PIDFD;
    printf("%s %s %s %s %s\n", OURLOOP_SENDFILE_KIND, OURLOOP_ACCEPT_KIND,
           OURLOOP_CHILD_FD_KIND, OURLOOP_POLL_BACKEND, OURLOOP_PLATFORM_FALLBACKS);
    return r == 12345;
}
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='compiles against glibc')
@pytest.mark.parametrize('defines, expected', [
    (['-D__APPLE__'], 'darwin accept+fcntl kqueue kqueue some'),
    (['-D__DragonFly__'], 'freebsd accept4 kqueue kqueue some'),      # FreeBSD's branches
    ([], 'none accept+fcntl none other some'),                          # another Unix
    (['-D__APPLE__', '-DOURLOOP_FORCE_PORTABLE'], 'none accept+fcntl none kqueue forced'),
])
def test_other_platforms_branches_compile(tmp_path, defines, expected):
    import shutil
    cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc')
    if cc is None:
        pytest.skip('no C compiler')
    (tmp_path / 'sys').mkdir()
    (tmp_path / 'sys' / 'event.h').write_text(_KQUEUE_H)
    (tmp_path / 'decls.h').write_text(_SENDFILE_DECLS)
    (tmp_path / 'use.c').write_text(_USE_ALL)
    # (The checkout's headers: an installed ourloop carries none.)
    includes = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'ourloop', 'includes')
    if not os.path.exists(os.path.join(includes, 'platform.h')):
        pytest.skip('no ourloop/includes/platform.h next to the tests')
    proc = subprocess.run(
        [cc, '-E', '-std=c99', '-D_GNU_SOURCE', '-U__linux__', '-U__linux', '-Ulinux',
         *defines, '-include', str(tmp_path / 'decls.h'), '-I', str(tmp_path), '-I', includes,
         str(tmp_path / 'use.c'), '-o', str(tmp_path / 'use.i')],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Compiled (not linked: kqueue() and the other sendfiles exist only
    # there), every warning an error.
    proc = subprocess.run(
        [cc, '-fsyntax-only', '-Wall', '-Wextra', '-Werror', '-std=c99', '-D_GNU_SOURCE',
         '-U__linux__', '-U__linux', '-Ulinux', *defines, '-include', str(tmp_path / 'decls.h'),
         '-I', str(tmp_path), '-I', includes, str(tmp_path / 'use.c')],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    kinds = re.search(r'printf\("%s %s %s %s %s\\n", (.*?)\);',
                      (tmp_path / 'use.i').read_text(), re.S).group(1)
    assert ' '.join(re.findall(r'"([^"]*)"', kinds)) == expected
