"""loop.getaddrinfo() and loop.getnameinfo().

Reference: BaseEventLoop.getaddrinfo, _getaddrinfo_debug and getnameinfo in
asyncio/base_events.py: socket.getaddrinfo() / socket.getnameinfo() run in
the default executor, so every result and every error is socket's own,
raised from the await. The matrices below compare each loop with a direct
socket call for the same arguments.

Only loopback networking exists where this suite runs, but names that the
hosts file does not know still go to the configured DNS server, which may
answer fast, slowly (a lost UDP packet costs a 5 s retry) or not at all
(EAI_AGAIN). So such names get only a few combinations, lookups run
concurrently, and a mismatch involving EAI_AGAIN is asked again.
"""

import asyncio
import concurrent.futures
import itertools
import logging
import re
import socket
import threading

import pytest

S = socket

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _outcome_of(func, *args):
    """What func(*args) gives: ('result', repr) or ('error', type, args).

    The repr makes an int where the stdlib gives an enum a mismatch.
    """
    try:
        return ('result', repr(func(*args)))
    except Exception as exc:
        return ('error', type(exc), exc.args)


async def _await_outcome(coro):
    try:
        return ('result', repr(await coro))
    except Exception as exc:
        return ('error', type(exc), exc.args)


def _is_eai_again(outcome):
    return (outcome[0] == 'error' and issubclass(outcome[1], S.gaierror)
            and outcome[2][:1] == (S.EAI_AGAIN,))


def _expected(func, cache, key, arg_lists):
    """socket's outcomes for arg_lists, computed once per key (in threads:
    DNS timeouts overlap)."""
    if key not in cache:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            cache[key] = list(pool.map(lambda args: _outcome_of(func, *args),
                                       arg_lists))
    return cache[key]


def _compare(loop, func, loop_call, arg_lists, expected):
    """Run loop_call(*args) for every args concurrently on `loop`; return
    the (args, expected, got) that differ from socket's outcome."""

    async def all_outcomes():
        return await asyncio.gather(
            *[_await_outcome(loop_call(*args)) for args in arg_lists])

    got = loop.run_until_complete(all_outcomes())
    assert len(got) == len(arg_lists)
    mismatches = []
    for args, want, have in zip(arg_lists, expected, got):
        for _ in range(3):  # a DNS server that did not answer in time
            if want == have or not (_is_eai_again(want)
                                    or _is_eai_again(have)):
                break
            want = _outcome_of(func, *args)
            have = loop.run_until_complete(_await_outcome(loop_call(*args)))
        if want != have:
            mismatches.append((args, want, have))
    return mismatches


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that records what is submitted to it."""

    def __init__(self):
        super().__init__(2, thread_name_prefix='counting')
        self.jobs = []

    def submit(self, fn, *args, **kwargs):
        self.jobs.append(args)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def counting_executor(loop):
    executor = CountingExecutor()
    loop.set_default_executor(executor)
    yield executor
    executor.shutdown(wait=True)


# --------------------------------------------------------------------------
# getaddrinfo: the matrix
# --------------------------------------------------------------------------

PORTS = [None, 0, 80, '80', 'http', b'80', 'nonexistent-service', 65536, -1]
FAMILIES = [0, S.AF_INET, S.AF_INET6, S.AF_UNIX]
TYPES = [0, S.SOCK_STREAM, S.SOCK_DGRAM]
FLAGS = [0, S.AI_PASSIVE, S.AI_CANONNAME, S.AI_NUMERICHOST, S.AI_ADDRCONFIG,
         S.AI_V4MAPPED | S.AI_ALL]

# Hosts that never need DNS: numeric ones, None, ''.
NUMERIC_HOSTS = [None, '', '127.0.0.1', '::1', '0.0.0.0', '::', 'fe80::1%lo',
                 'fe80::1%1', '::ffff:127.0.0.1', b'127.0.0.1', '1.2.3']


def _full_matrix(host, families=FAMILIES):
    return [(host, port, family, type_, 0, flags)
            for port, family, type_, flags
            in itertools.product(PORTS, families, TYPES, FLAGS)]


GETADDRINFO_MATRIX = {host: _full_matrix(host) for host in NUMERIC_HOSTS}
# The hosts file knows 'localhost' for IPv4; for IPv6 it may ask DNS.
GETADDRINFO_MATRIX['localhost'] = (
    _full_matrix('localhost', [0, S.AF_INET, S.AF_UNIX])
    + [('localhost', 80, S.AF_INET6, 0, 0, flags)
       for flags in (0, S.AI_CANONNAME, S.AI_NUMERICHOST)])
# Names for DNS: a few combinations only.
for _host in ('not a host name!', 'example.invalid'):
    GETADDRINFO_MATRIX[_host] = [
        (_host, port, family, 0, 0, flags)
        for port in (None, 80, 'http', 'nonexistent-service')
        for family in (0, S.AF_UNIX)
        for flags in (0, S.AI_NUMERICHOST)]
# Arguments of the wrong type or range, and other oddities.
GETADDRINFO_MATRIX['bad arguments'] = [
    (1, 80, 0, 0, 0, 0),
    (bytearray(b'127.0.0.1'), 80, 0, 0, 0, 0),
    ('\udcff', 80, 0, 0, 0, 0),
    ('a' * 300, 80, 0, 0, 0, 0),
    ('127.0.0.1\x00', 80, 0, 0, 0, 0),
    ('127.0.0.1', 1.5, 0, 0, 0, 0),
    ('127.0.0.1', 2 ** 70, 0, 0, 0, 0),
    ('127.0.0.1', [80], 0, 0, 0, 0),
    ('127.0.0.1', True, 0, 0, 0, 0),
    ('127.0.0.1', bytearray(b'80'), 0, 0, 0, 0),
    ('127.0.0.1', '8\x000', 0, 0, 0, 0),
    ('127.0.0.1', 80, 'x', 0, 0, 0),
    ('127.0.0.1', 80, None, 0, 0, 0),
    ('127.0.0.1', 80, 2 ** 40, 0, 0, 0),
    ('127.0.0.1', 80, 12345, 0, 0, 0),
    ('127.0.0.1', 80, 0, 2 ** 40, 0, 0),
    ('127.0.0.1', 80, 0, 12345, 0, 0),
    ('127.0.0.1', 80, 0, 0, 2 ** 40, 0),
    ('127.0.0.1', 80, 0, 0, -1, 0),
    ('127.0.0.1', 80, 0, 0, 0, 'x'),
    ('127.0.0.1', 80, 0, 0, 0, 1.0),
    ('127.0.0.1', 80, 0, 0, 0, True),
    ('127.0.0.1', 80, 0, 0, 0, 2 ** 40),
    ('127.0.0.1', 80, 0, 0, 0, -1),
    ('127.0.0.1', 80, 0, 0, 0, -3),     # no AI_CANONNAME bit
    ('127.0.0.1', 80, 0, 0, 0, -1025),
    ('127.0.0.1', 80, 0, 0, 0, S.AI_PASSIVE | 0x10000),
    ('127.0.0.1', 80, 0, 0, 0, 0x10000),
]

_GETADDRINFO_EXPECTED = {}


def _loop_getaddrinfo(loop):
    def call(host, port, family, type_, proto, flags):
        return loop.getaddrinfo(host, port, family=family, type=type_,
                                proto=proto, flags=flags)
    return call


def _expected_getaddrinfo(key):
    return _expected(S.getaddrinfo, _GETADDRINFO_EXPECTED, key,
                     GETADDRINFO_MATRIX[key])


@pytest.mark.parametrize('key', list(GETADDRINFO_MATRIX), ids=repr)
def test_getaddrinfo_matrix(loop, key):
    arg_lists = GETADDRINFO_MATRIX[key]
    mismatches = _compare(loop, S.getaddrinfo, _loop_getaddrinfo(loop),
                          arg_lists, _expected_getaddrinfo(key))
    assert mismatches == []


def test_getaddrinfo_matrix_is_not_vacuous():
    # The matrix reaches results and each kind of error.
    outcomes = [outcome for key in GETADDRINFO_MATRIX
                for outcome in _expected_getaddrinfo(key)]
    assert any(o[0] == 'result' for o in outcomes)
    errors = {o[1] for o in outcomes if o[0] == 'error'}
    for kind in (S.gaierror, TypeError, UnicodeError, OverflowError, OSError):
        assert any(issubclass(error, kind) for error in errors), kind
    errnos = {o[2][0] for o in outcomes
              if o[0] == 'error' and o[1] is S.gaierror}
    assert errnos >= {S.EAI_NONAME, S.EAI_SERVICE, S.EAI_FAMILY,
                      S.EAI_BADFLAGS}
    assert sum(len(v) for v in GETADDRINFO_MATRIX.values()) > 7000


def test_getaddrinfo_scope_id(loop):
    infos = loop.run_until_complete(
        loop.getaddrinfo('fe80::1%lo', 80, type=S.SOCK_STREAM))
    assert infos == [(S.AF_INET6, S.SOCK_STREAM, S.IPPROTO_TCP, '',
                      ('fe80::1', 80, 0, S.if_nametoindex('lo')))]
    assert infos == S.getaddrinfo('fe80::1%lo', 80, type=S.SOCK_STREAM)


def test_getaddrinfo_canonname(loop):
    for host in ('127.0.0.1', 'localhost'):
        infos = loop.run_until_complete(loop.getaddrinfo(
            host, 80, family=S.AF_INET, type=S.SOCK_STREAM,
            flags=S.AI_CANONNAME))
        assert infos == S.getaddrinfo(host, 80, S.AF_INET, S.SOCK_STREAM,
                                      0, S.AI_CANONNAME)
        assert infos[0][3]  # a canonical name was asked for


def test_getaddrinfo_keyword_only(loop):
    coro_func = loop.getaddrinfo
    with pytest.raises(TypeError):
        coro_func('127.0.0.1', 80, 0)


# --------------------------------------------------------------------------
# getnameinfo: the matrix
# --------------------------------------------------------------------------

NI_NUMERIC = S.NI_NUMERICHOST | S.NI_NUMERICSERV
SOCKADDRS = [
    ('127.0.0.1', 80), ('127.0.0.1', 0), ('0.0.0.0', 65535), ('1.2.3', 80),
    ('::1', 80), ('::1', 80, 0, 0), ('::', 443, 5, 0), ('fe80::1', 80, 0, 1),
    ('fe80::1%lo', 80, 0, 0), ('fe80::1', 80, 0, 99), ('::ffff:127.0.0.1', 53),
]
BAD_SOCKADDRS = [
    '127.0.0.1', None, ('127.0.0.1',), ('127.0.0.1', 'x'),
    ('127.0.0.1', 80, 0, 0), ('127.0.0.1', -1), ('127.0.0.1', 65536),
    ('::1', 80, 2 ** 40, 0), ('::1', 80, 0, 2 ** 40), (b'127.0.0.1', 80),
    ('localhost', 80), ('not a host', 80), ('\udcff', 80), (1, 80),
]
NUMERIC_FLAGS = [
    S.NI_NUMERICHOST, NI_NUMERIC, NI_NUMERIC | S.NI_DGRAM,
    NI_NUMERIC | S.NI_NAMEREQD, NI_NUMERIC | S.NI_NOFQDN,
    NI_NUMERIC | S.NI_NUMERICSCOPE if hasattr(S, 'NI_NUMERICSCOPE')
    else NI_NUMERIC,
]
LOOKUP_FLAGS = [0, S.NI_NUMERICSERV, S.NI_NOFQDN, S.NI_NAMEREQD, S.NI_DGRAM]
BAD_FLAGS = ['x', 1.0, 2 ** 40, -1, True]

GETNAMEINFO_MATRIX = {
    # Numeric host: never a lookup.
    'numeric': [(sa, flags) for sa in SOCKADDRS + BAD_SOCKADDRS
                for flags in NUMERIC_FLAGS],
    # 127.0.0.1 is in the hosts file; one IPv6 reverse lookup may ask DNS.
    'lookup': [(sa, flags)
               for sa in [('127.0.0.1', 80), ('127.0.0.1', 0),
                          ('127.0.0.1', 65535)] + BAD_SOCKADDRS
               for flags in LOOKUP_FLAGS] + [(('::1', 80), S.NI_NUMERICSERV)],
    'bad flags': [(sa, flags) for sa in [('127.0.0.1', 80), ('::1', 80)]
                  for flags in BAD_FLAGS],
}

_GETNAMEINFO_EXPECTED = {}


def _expected_getnameinfo(key):
    return _expected(S.getnameinfo, _GETNAMEINFO_EXPECTED, key,
                     GETNAMEINFO_MATRIX[key])


@pytest.mark.parametrize('key', list(GETNAMEINFO_MATRIX))
def test_getnameinfo_matrix(loop, key):
    arg_lists = GETNAMEINFO_MATRIX[key]
    mismatches = _compare(loop, S.getnameinfo, loop.getnameinfo, arg_lists,
                          _expected_getnameinfo(key))
    assert mismatches == []


def test_getnameinfo_matrix_is_not_vacuous():
    outcomes = [outcome for key in GETNAMEINFO_MATRIX
                for outcome in _expected_getnameinfo(key)]
    errors = {o[1] for o in outcomes if o[0] == 'error'}
    for kind in (S.gaierror, TypeError, OverflowError):
        assert any(issubclass(error, kind) for error in errors), kind
    results = {o[1] for o in outcomes if o[0] == 'result'}
    assert "('localhost', 'http')" in results
    assert "('fe80::1%lo', '80')" in results


# --------------------------------------------------------------------------
# the executor: when it is used, and when the stdlib's path would fail
# --------------------------------------------------------------------------

NO_LOOKUP_CASES = [
    ('127.0.0.1', 80, {}),
    ('::1', '443', {'type': S.SOCK_STREAM}),
    (None, 0, {'flags': S.AI_PASSIVE}),
    (None, '0', {'family': S.AF_INET6}),
    ('fe80::1%lo', b'80', {}),
    (b'127.0.0.1', 80, {'flags': S.AI_NUMERICHOST | S.AI_ADDRCONFIG}),
    ('127.0.0.1', 80, {'family': S.AF_INET6,
                       'flags': S.AI_V4MAPPED | S.AI_ALL}),
    ('1.2.3', 65536, {'proto': S.IPPROTO_UDP}),
]


@pytest.mark.only_loop('ourloop', reason='the thread-free fast path')
@pytest.mark.parametrize('host, port, kwargs', NO_LOOKUP_CASES)
def test_getaddrinfo_numeric_needs_no_thread(loop, counting_executor,
                                             host, port, kwargs):
    infos = loop.run_until_complete(loop.getaddrinfo(host, port, **kwargs))
    assert infos == S.getaddrinfo(host, port, **kwargs)
    assert counting_executor.jobs == []


@pytest.mark.only_loop('ourloop', reason='the thread-free fast path')
@pytest.mark.parametrize('host, port, kwargs', [
    ('localhost', 80, {}),                            # a name
    ('127.0.0.1', 'http', {}),                        # a service name
    ('127.0.0.1', 80, {'flags': S.AI_CANONNAME}),     # left to the resolver
    ('127.0.0.1', 80, {'family': S.AF_UNIX}),         # an error
    (1, 80, {}),                                      # a wrong argument
    ('127.0.0.1', 80, {'flags': 'x'}),
])
def test_getaddrinfo_other_uses_executor(loop, counting_executor,
                                         host, port, kwargs):
    want = _outcome_of(lambda: S.getaddrinfo(host, port, **kwargs))
    got = loop.run_until_complete(
        _await_outcome(loop.getaddrinfo(host, port, **kwargs)))
    assert got == want
    family = kwargs.get('family', 0)
    flags = kwargs.get('flags', 0)
    assert counting_executor.jobs == [(host, port, family, 0, 0, flags)]


@pytest.mark.only_loop('ourloop', reason='the thread-free fast path')
def test_getaddrinfo_debug_mode_uses_executor(loop, counting_executor):
    loop.set_debug(True)
    infos = loop.run_until_complete(loop.getaddrinfo('127.0.0.1', 80))
    assert infos == S.getaddrinfo('127.0.0.1', 80)
    assert counting_executor.jobs == [('127.0.0.1', 80, 0, 0, 0, 0)]


@pytest.mark.only_loop('ourloop', reason='the thread-free fast path')
def test_getnameinfo_numeric_needs_no_thread(loop, counting_executor):
    for sockaddr in [('127.0.0.1', 80), ('fe80::1', 80, 0, 1)]:
        for flags in [NI_NUMERIC, NI_NUMERIC | S.NI_DGRAM]:
            got = loop.run_until_complete(loop.getnameinfo(sockaddr, flags))
            assert got == S.getnameinfo(sockaddr, flags)
    got = loop.run_until_complete(
        _await_outcome(loop.getnameinfo(('localhost', 80), NI_NUMERIC)))
    assert got == _outcome_of(S.getnameinfo, ('localhost', 80), NI_NUMERIC)
    assert got[0] == 'error' and got[1] is S.gaierror
    assert counting_executor.jobs == []
    got = loop.run_until_complete(loop.getnameinfo(('127.0.0.1', 80),
                                                   S.NI_NUMERICHOST))
    assert got == ('127.0.0.1', 'http')
    assert counting_executor.jobs == [(('127.0.0.1', 80), S.NI_NUMERICHOST)]


def test_replaced_socket_functions_see_the_stdlib_calls(loop, monkeypatch):
    # A test's mock of socket.getaddrinfo gets exactly the stdlib's call,
    # in an executor thread, even for a numeric host.
    calls = []

    def fake(*args):
        calls.append((args, threading.current_thread()
                       is threading.main_thread()))
        return [('fake',)]

    monkeypatch.setattr(S, 'getaddrinfo', fake)
    monkeypatch.setattr(S, 'getnameinfo', fake)
    got = loop.run_until_complete(loop.getaddrinfo('127.0.0.1', 80))
    assert got == [('fake',)]
    got = loop.run_until_complete(loop.getnameinfo(('127.0.0.1', 80),
                                                   NI_NUMERIC))
    assert got == [('fake',)]
    assert calls == [(('127.0.0.1', 80, 0, 0, 0, 0), False),
                     ((('127.0.0.1', 80), NI_NUMERIC), False)]


CALLS = {
    'getaddrinfo numeric': lambda lp: lp.getaddrinfo('127.0.0.1', 80),
    'getaddrinfo None': lambda lp: lp.getaddrinfo(None, 0),
    'getaddrinfo name': lambda lp: lp.getaddrinfo('localhost', 80),
    'getaddrinfo bad': lambda lp: lp.getaddrinfo(1, 80),
    'getnameinfo numeric': lambda lp: lp.getnameinfo(('127.0.0.1', 80),
                                                     NI_NUMERIC),
    'getnameinfo lookup': lambda lp: lp.getnameinfo(('127.0.0.1', 80)),
}


@pytest.mark.parametrize('debug', [False, True])
@pytest.mark.parametrize('call', list(CALLS))
def test_closed_loop(loop, call, debug):
    # run_in_executor() checks first: the error comes from the first step
    # of the coroutine (awaited from another loop, or driven by hand).
    loop.set_debug(debug)
    loop.close()
    coro = CALLS[call](loop)
    with pytest.raises(RuntimeError, match='^Event loop is closed$'):
        coro.send(None)


@pytest.mark.parametrize('call', list(CALLS))
def test_after_shutdown_default_executor(loop, call):
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError,
                       match='^Executor shutdown has been called$'):
        loop.run_until_complete(CALLS[call](loop))


# --------------------------------------------------------------------------
# debug mode: the stdlib logs every getaddrinfo() call
# --------------------------------------------------------------------------


def _lookup_records(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == 'asyncio' and r.getMessage().startswith('Get')]


@pytest.mark.parametrize('slow', [False, True])
def test_getaddrinfo_debug_logging(loop, caplog, slow):
    caplog.set_level(logging.DEBUG, logger='asyncio')
    loop.set_debug(True)
    # Every lookup is "slow" against 0 s; none against 100 s.
    loop.slow_callback_duration = 0 if slow else 100
    infos = loop.run_until_complete(loop.getaddrinfo(
        '127.0.0.1', 80, type=S.SOCK_STREAM, flags=S.AI_PASSIVE))
    assert infos == S.getaddrinfo('127.0.0.1', 80, 0, S.SOCK_STREAM, 0,
                                  S.AI_PASSIVE)
    details = f'127.0.0.1:80, type={S.SOCK_STREAM!r}, flags={S.AI_PASSIVE!r}'
    records = _lookup_records(caplog)
    assert len(records) == 2
    assert records[0] == (logging.DEBUG, f'Get address info {details}')
    level, message = records[1]
    assert level == (logging.INFO if slow else logging.DEBUG)
    pattern = (re.escape(f'Getting address info {details} took ')
               + r'\d+\.\d{3}ms: ' + re.escape(repr(infos)))
    assert re.fullmatch(pattern, message), message


def test_getaddrinfo_debug_logging_error(loop, caplog):
    caplog.set_level(logging.DEBUG, logger='asyncio')
    loop.set_debug(True)
    want = _outcome_of(S.getaddrinfo, '127.0.0.1', 'nonexistent-service',
                       S.AF_INET, 0, S.IPPROTO_TCP, 0)
    got = loop.run_until_complete(_await_outcome(loop.getaddrinfo(
        '127.0.0.1', 'nonexistent-service', family=S.AF_INET,
        proto=S.IPPROTO_TCP)))
    assert got == want and got[0] == 'error'
    assert _lookup_records(caplog) == [
        (logging.DEBUG, f"Get address info 127.0.0.1:'nonexistent-service', "
                        f"family={S.AF_INET!r}, proto={S.IPPROTO_TCP!r}")]


def test_getnameinfo_debug_mode_logs_nothing(loop, caplog):
    caplog.set_level(logging.DEBUG, logger='asyncio')
    loop.set_debug(True)
    for flags in (0, NI_NUMERIC):
        got = loop.run_until_complete(loop.getnameinfo(('127.0.0.1', 80),
                                                       flags))
        assert got == S.getnameinfo(('127.0.0.1', 80), flags)
    assert _lookup_records(caplog) == []
