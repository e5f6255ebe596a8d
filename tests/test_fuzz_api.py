"""Generated arguments to the public loop methods: ourloop must fail (or
succeed) exactly as the stdlib loop does.

Each example calls one method with generated arguments on a fresh stdlib
loop and on a fresh ourloop loop, and compares the outcomes: both succeed,
or both raise the same exception type with the same message (addresses and
object ids normalised away). Coroutine methods run to completion with a short
timeout; whatever a call returns (handles, transports, servers, sockets) is
closed. Variants call each method on a closed loop and from another thread
in debug mode.

The suite runs a bounded number of examples per method; set
OURLOOP_FUZZ_EXAMPLES (e.g. 2000) for a longer search.
"""

import asyncio
import os
import re
import signal
import socket
import sys
import threading

import pytest

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from support import require_ourloop, stdlib_new_event_loop  # noqa: E402

EXAMPLES = int(os.environ.get('OURLOOP_FUZZ_EXAMPLES', '40'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get(
    'OURLOOP_FUZZ_EXAMPLES'), suppress_health_check=list(HealthCheck))


def callback(*args):
    return None


async def coroutine_function():
    return None


class Odd:
    """An object of no protocol at all."""

    def __repr__(self):
        return '<Odd>'


class BadIndex:
    def __index__(self):
        raise ZeroDivisionError('from __index__')


# Values of every kind a caller may pass by mistake (or on purpose).
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2 ** 66, max_value=2 ** 66),
    st.sampled_from([0, 1, -1, 2 ** 31 - 1, 2 ** 31, 2 ** 63, -2 ** 63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=6),
    st.sampled_from([Odd(), BadIndex(), [], {}, (), 1j, callback, object,
                     bytearray(b'x'), memoryview(b'x')]),
)
# The same without text: a host or address made of random text would make
# the stdlib loop ask the name service, and a test wait for it.
NON_TEXT = SCALARS.filter(lambda v: not isinstance(v, str))
CALLBACKS = st.one_of(st.just(callback), SCALARS)
DELAYS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(min_value=-2 ** 70, max_value=2 ** 70), SCALARS)
FDS = st.one_of(st.integers(min_value=-5, max_value=2 ** 40), st.just('fd-socket'), SCALARS)
SIGNALS = st.one_of(st.integers(min_value=-2, max_value=80),
                    st.sampled_from([signal.SIGKILL, signal.SIGSTOP, signal.SIGUSR1,
                                     signal.SIGINT]), SCALARS)
PORTS = st.one_of(st.integers(min_value=-2, max_value=70000), st.just(0), st.text(max_size=3),
                  SCALARS)
HOSTS = st.one_of(st.sampled_from(['127.0.0.1', '::1', '', '0.0.0.0', '256.1.1.1', '1.2.3',
                                   '127.0.0.1%lo']), st.none(), NON_TEXT)
KW_INTS = st.one_of(st.integers(min_value=-3, max_value=2 ** 33), SCALARS)

_ADDRESS = re.compile(r'(?:\bat )?0x[0-9a-fA-F]+|id=\d+|fd=\d+|\bat \d+')
# "BaseSelectorEventLoop.sock_recv() takes ...": the defining class differs.
_QUALNAME = re.compile(r'\b\w+\.(\w+\(\))')


def normalise(message):
    return _QUALNAME.sub(r'\1', _ADDRESS.sub('<addr>', message))


class Resources:
    """What a call made that the example must close."""

    def __init__(self):
        self.sockets = []

    def socket(self):
        sock = socket.socket()
        sock.setblocking(False)
        self.sockets.append(sock)
        return sock

    def close(self):
        for sock in self.sockets:
            sock.close()


def materialise(value, res):
    """Placeholders that stand for objects made per call."""
    if value == 'fd-socket':
        return res.socket().fileno()
    if value == 'socket':
        return res.socket()
    if value == 'coroutine':
        return coroutine_function()
    if value == 'closed-socket':
        sock = res.socket()
        sock.close()
        return sock
    return value


async def _settle(result):
    return await asyncio.wait_for(result, 2.0)


def dispose(loop, result):
    """Close what a successful call returned."""
    if isinstance(result, (asyncio.Handle,)) or type(result).__name__ in ('Handle', 'TimerHandle'):
        result.cancel()
    elif isinstance(result, tuple) and result and hasattr(result[0], 'close'):
        result[0].close()
    elif hasattr(result, 'close') and not isinstance(result, (str, bytes)):
        result.close()
        if isinstance(result, asyncio.AbstractServer):
            loop.run_until_complete(result.wait_closed())
    elif isinstance(result, asyncio.Future):
        result.cancel()
        try:
            loop.run_until_complete(result)
        except BaseException:
            pass


def outcome(new_loop, method, args, kwargs, variant='open'):
    """('ok',) or ('raise', type name, normalised message) of one call."""
    loop = new_loop()
    res = Resources()
    try:
        if variant == 'closed':
            loop.close()
        args = [materialise(a, res) for a in args]
        kwargs = {k: materialise(v, res) for k, v in kwargs.items()}
        if variant == 'thread':
            # From another thread while the loop runs, in debug mode: the
            # stdlib's thread check applies only then.
            loop.set_debug(True)

            async def from_thread():
                return await loop.run_in_executor(
                    None, lambda: getattr(loop, method)(*args, **kwargs))
            result = loop.run_until_complete(from_thread())
        else:
            result = getattr(loop, method)(*args, **kwargs)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future) and variant == 'open':
            result = loop.run_until_complete(_settle(result))
        elif asyncio.iscoroutine(result):
            result.close()
        if method in SCHEDULING and variant == 'open':
            # The stdlib checks little at the call: a bad deadline fails
            # when the loop next looks at its timers.
            try:
                loop.call_soon(loop.stop)
                loop.run_forever()
            except Exception as exc:
                return ('raise-later', type(exc).__name__)
        if not loop.is_closed():
            dispose(loop, result)
        return ('ok',)
    except asyncio.TimeoutError:
        return ('timeout',)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return ('raise', type(exc).__name__, normalise(str(exc)))
    finally:
        res.close()
        if not loop.is_closed():
            for sig in (signal.SIGUSR1, signal.SIGINT):
                try:
                    loop.remove_signal_handler(sig)
                except Exception:
                    pass
            loop.close()


SCHEDULING = {'call_soon', 'call_later', 'call_at', 'call_soon_threadsafe'}


def is_nan(value):
    return isinstance(value, float) and value != value


FD_WATCHERS = {'add_reader', 'add_writer', 'remove_reader', 'remove_writer'}


def documented(method, args, variant, ours, theirs):
    """The differences docs/conformance.md lists as ourloop's on purpose."""
    if method in FD_WATCHERS and variant == 'thread':
        # "Fd watchers from other threads" raise the stdlib's thread-check
        # RuntimeError; the stdlib's selector tolerates the call.
        return ours[:2] == ('raise', 'RuntimeError') and 'Non-thread-safe' in ours[2]
    if method in ('call_later', 'call_at'):
        # "Timer deadlines are checked at the call": the stdlib accepts a
        # deadline that is not a real number and fails in run_forever().
        if ours[0] == 'raise' and theirs[0] == 'raise-later':
            return True
        # "NaN deadlines" run at once; 3.13's selector raises ValueError.
        if is_nan(args[0]) and ours == ('ok',) and theirs == ('raise-later', 'ValueError'):
            return True
    return False


def compare(method, args, kwargs=None, variant='open'):
    kwargs = kwargs or {}
    ours = outcome(require_ourloop().new_event_loop, method, args, kwargs, variant)
    theirs = outcome(stdlib_new_event_loop, method, args, kwargs, variant)
    if ours != theirs and documented(method, args, variant, ours, theirs):
        return
    assert ours == theirs, f'{method}{tuple(args)!r} {kwargs!r} ({variant})'


VARIANTS = st.sampled_from(['open', 'open', 'closed', 'thread'])


# -- scheduling -------------------------------------------------------------

@FUZZ
@given(cb=CALLBACKS, extra=st.lists(SCALARS, max_size=2), variant=VARIANTS)
def test_call_soon(cb, extra, variant):
    compare('call_soon', [cb, *extra], variant=variant)


@FUZZ
@given(delay=DELAYS, cb=CALLBACKS, variant=VARIANTS)
def test_call_later(delay, cb, variant):
    compare('call_later', [delay, cb], variant=variant)


@FUZZ
@given(when=DELAYS, cb=CALLBACKS, variant=VARIANTS)
def test_call_at(when, cb, variant):
    compare('call_at', [when, cb], variant=variant)


@FUZZ
@given(cb=CALLBACKS, variant=st.sampled_from(['open', 'closed']))
def test_call_soon_threadsafe(cb, variant):
    compare('call_soon_threadsafe', [cb], variant=variant)


@FUZZ
@given(value=SCALARS)
def test_set_debug_and_handlers(value):
    for method in ('set_debug', 'set_exception_handler', 'set_task_factory',
                   'set_default_executor'):
        compare(method, [value])


@FUZZ
@given(value=st.one_of(SCALARS, st.just('coroutine')), name=st.one_of(st.none(), SCALARS))
def test_create_task(value, name):
    kwargs = {} if name is None else {'name': name}
    compare('create_task', [value], kwargs)


@FUZZ
@given(executor=st.one_of(st.none(), SCALARS), func=CALLBACKS)
def test_run_in_executor(executor, func):
    compare('run_in_executor', [executor, func])


# -- file descriptors and signals -------------------------------------------

@FUZZ
@given(method=st.sampled_from(['add_reader', 'add_writer']), fd=FDS, cb=CALLBACKS,
       variant=VARIANTS)
def test_add_fd_watcher(method, fd, cb, variant):
    compare(method, [fd, cb], variant=variant)


@FUZZ
@given(method=st.sampled_from(['remove_reader', 'remove_writer']), fd=FDS,
       variant=VARIANTS)
def test_remove_fd_watcher(method, fd, variant):
    compare(method, [fd], variant=variant)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason='signal handlers need the main thread')
@FUZZ
@given(sig=SIGNALS, cb=CALLBACKS, variant=st.sampled_from(['open', 'closed']))
def test_add_signal_handler(sig, cb, variant):
    if sig in (signal.SIGINT,):
        sig = signal.SIGUSR1  # never leave the runner's SIGINT changed
    compare('add_signal_handler', [sig, cb], variant=variant)


@FUZZ
@given(sig=SIGNALS)
def test_remove_signal_handler(sig):
    compare('remove_signal_handler', [sig])


# -- sockets ----------------------------------------------------------------

SOCKS = st.one_of(st.sampled_from(['socket', 'closed-socket']), SCALARS)


@FUZZ
@given(method=st.sampled_from(['sock_recv', 'sock_recv_into', 'sock_sendall', 'sock_accept',
                               'sock_connect', 'sock_recvfrom', 'sock_sendto']),
       sock=SOCKS, arg=SCALARS, arg2=SCALARS)
def test_sock_methods(method, sock, arg, arg2):
    if method in ('sock_recv_into', 'sock_sendall', 'sock_recv', 'sock_connect',
                  'sock_recvfrom'):
        args = [sock, arg]
    elif method == 'sock_accept':
        args = [sock]
    else:
        args = [sock, arg, arg2]
    if method == 'sock_recvfrom' and sys.version_info < (3, 11):
        return
    if method == 'sock_sendto' and sys.version_info < (3, 11):
        return
    compare(method, args)


@FUZZ
@given(host=HOSTS, port=PORTS, family=KW_INTS, flags=KW_INTS, backlog=KW_INTS,
       reuse=st.one_of(st.none(), st.booleans(), SCALARS))
def test_create_server(host, port, family, flags, backlog, reuse):
    kwargs = {'family': family, 'flags': flags, 'backlog': backlog, 'reuse_address': reuse}
    compare('create_server', [asyncio.Protocol, host, port], kwargs)


@FUZZ
@given(host=HOSTS, port=PORTS, family=KW_INTS, proto=KW_INTS, flags=KW_INTS,
       timeout=st.one_of(st.none(), DELAYS))
def test_create_connection(host, port, family, proto, flags, timeout):
    kwargs = {'family': family, 'proto': proto, 'flags': flags,
              'happy_eyeballs_delay': timeout}
    compare('create_connection', [asyncio.Protocol, host, port], kwargs)


@FUZZ
@given(local=st.one_of(st.none(), st.tuples(HOSTS, PORTS), SCALARS),
       remote=st.one_of(st.none(), st.tuples(HOSTS, PORTS), SCALARS),
       family=KW_INTS, reuse_port=st.one_of(st.none(), st.booleans(), SCALARS))
def test_create_datagram_endpoint(local, remote, family, reuse_port):
    kwargs = {'local_addr': local, 'remote_addr': remote, 'family': family,
              'reuse_port': reuse_port}
    compare('create_datagram_endpoint', [asyncio.DatagramProtocol], kwargs)


@FUZZ
@given(host=st.one_of(st.sampled_from(['127.0.0.1', '::1', '1.2.3']), st.none(), NON_TEXT),
       port=PORTS, family=KW_INTS, type_=KW_INTS, proto=KW_INTS, flags=KW_INTS)
def test_getaddrinfo(host, port, family, type_, proto, flags):
    # Numeric hosts only: no name service is asked.
    kwargs = {'family': family, 'type': type_, 'proto': proto,
              'flags': flags | socket.AI_NUMERICHOST if isinstance(flags, int)
              and not isinstance(flags, bool) and 0 <= flags < 2 ** 31 else flags}
    compare('getaddrinfo', [host, port], kwargs)
