#!/usr/bin/env python3
"""Run CPython's own ``test.test_asyncio`` suite with ourloop as the event loop.

``make test-cpython`` runs this script.  Every module runs in its own child
process; in that child every event loop the tests create through the public
entry points (``asyncio.new_event_loop()``, ``asyncio.get_event_loop()``,
``asyncio.run()``, ``asyncio.Runner()``, ``unittest.IsolatedAsyncioTestCase``,
and ``asyncio.set_event_loop_policy(None)`` followed by any of those) is an
``ourloop.Loop``.  Loops the tests build directly from stdlib classes
(``test_utils.TestLoop``, a mock-time loop, ``asyncio.SelectorEventLoop``,
``asyncio.EventLoop``, ``asyncio.BaseEventLoop``) legitimately stay stdlib
loops; they are counted separately.

Each module prints one line::

    test_tasks: 913 run, 0 failed, 0 errors, 1 skipped | loops: ourloop.Loop=598 TestLoop=14 ...

The script exits non-zero if a module of the selected set has a failure or an
error, crashes, times out, or -- in ourloop mode -- ran tests but created no
ourloop loop at all (the proof that the patching took effect).

Usage (see ``--help``)::

    python tools/cpython_conformance.py                 # default (non-network) set, ourloop
    python tools/cpython_conformance.py --baseline      # same modules, stdlib loop, no patching
    python tools/cpython_conformance.py --all           # default + network modules
    python tools/cpython_conformance.py --module test_tasks --module locks -v
    python tools/cpython_conformance.py --list-failures
    python tools/cpython_conformance.py --python .venvs/py3.12/bin/python

Skips: tests/cpython/skips.py (tests that depend on stdlib-loop internals only).
Results: docs/conformance.md (``--update-docs`` rewrites the generated part).
"""

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
DEFAULT_SKIPS_FILE = os.path.join(REPO_ROOT, 'tests', 'cpython', 'skips.py')
DEFAULT_DOCS_FILE = os.path.join(REPO_ROOT, 'docs', 'conformance.md')
TEST_PACKAGE = 'test.test_asyncio'

# Modules that do not need sockets, pipes, subprocesses or SSL, in the order
# they run.  Only the ones the running Python's test.test_asyncio has are used.
DEFAULT_MODULES = [
    'test_futures',
    'test_futures2',
    'test_tasks',
    'test_eager_task_factory',   # 3.12+
    'test_locks',
    'test_queues',
    'test_timeouts',             # 3.11+
    'test_waitfor',
    'test_taskgroups',           # 3.11+
    'test_context',
    'test_runners',
    'test_pep492',
    'test_threads',
    'test_staggered',            # 3.13+ (3.12 has no such module)
    'test_free_threading',       # 3.14+
    'test_graph',                # 3.14+
]

# Modules that need network / pipe / subprocess / SSL support in the loop (or
# are mostly about it).  Run with --all or --network, or by name.
NETWORK_MODULES = [
    'test_events',
    'test_base_events',
    'test_streams',
    'test_server',
    'test_sock_lowlevel',
    'test_buffered_proto',
    'test_subprocess',
    'test_sendfile',
    'test_ssl',
    'test_sslproto',
    'test_unix_events',
]

# Modules that test one stdlib implementation (selector, proactor, Windows)
# or only abstract base classes; they never use the default loop.  Not part of
# any set; run them by name if you want to.
IMPLEMENTATION_MODULES = [
    'test_selector_events',
    'test_proactor_events',
    'test_windows_events',
    'test_windows_utils',
    'test_protocols',
    'test_transports',
    'test_tools',
]

# Modules of the default set that by design never create a default loop: they
# build a mock-time ``test_utils.TestLoop`` for every test, so "zero ourloop
# loops" is expected there and is not a gate failure.  Their results still
# count (they test asyncio.Future against a stdlib loop while ourloop is
# installed as the default).  See also ADAPTATIONS.
NO_DEFAULT_LOOP_MODULES = {
    # module: (Python versions or None for all, reason)
    'test_futures': (None, 'every test uses test_utils.TestLoop (mock time)'),
    'test_queues': (('3.9', '3.10'),
                    'every test uses test_utils.TestLoop (mock time) before 3.11'),
}


def no_default_loop_reason(name, pyver):
    entry = NO_DEFAULT_LOOP_MODULES.get(name)
    if entry is None:
        return None
    pythons, reason = entry
    if pythons is not None and pyver not in pythons:
        return None
    return reason


MODULE_TIMEOUT = 300.0      # seconds, per module, all restarts included
TEST_TIMEOUT = 60.0         # seconds; a single test running longer is a hang
MAX_RESTARTS = 25           # child restarts per module after crashes / hangs

OURLOOP_LABEL = 'ourloop.Loop'
ALWAYS_SHOWN_LOOPS = [OURLOOP_LABEL, 'TestLoop', '_UnixSelectorEventLoop']


def short_module(name):
    """'tasks' / 'test_tasks' / 'test.test_asyncio.test_tasks' -> 'test_tasks'."""
    name = name.strip()
    if name.startswith(TEST_PACKAGE + '.'):
        name = name[len(TEST_PACKAGE) + 1:]
    if name.endswith('.py'):
        name = name[:-3]
    if not name.startswith('test_'):
        name = 'test_' + name
    return name


def short_id(test_id):
    if test_id.startswith(TEST_PACKAGE + '.'):
        return test_id[len(TEST_PACKAGE) + 1:]
    return test_id


def load_skips(path, pyver):
    """Return [(pattern, reason)] of the skip list entries for 'X.Y' pyver."""
    if not path or not os.path.exists(path):
        return []
    ns = {'__file__': path, '__name__': 'ourloop_cpython_skips'}
    with open(path) as f:
        code = compile(f.read(), path, 'exec')
    exec(code, ns)
    out = []
    for entry in ns.get('SKIPS', []):
        if len(entry) == 2:
            pattern, reason = entry
            pythons = None
        else:
            pattern, reason, pythons = entry
        if isinstance(pythons, str):
            pythons = (pythons,)
        if pythons and pyver not in pythons:
            continue
        out.append((pattern, ' '.join(reason.split())))
    return out


# ---------------------------------------------------------------------------
# Child side: runs one test module, streams JSON lines into a progress file.
# ---------------------------------------------------------------------------

class LoopCounter:
    """Counts event loop constructions by class.

    * every ``asyncio.BaseEventLoop`` subclass (TestLoop, selector loops, ...)
      through a wrapper around ``BaseEventLoop.__init__``;
    * ``ourloop.Loop`` (and subclasses) through a wrapper around
      ``ourloop.Loop.__init__`` or, if the class does not allow that, around
      the ourloop policy's ``new_event_loop`` and ``ourloop.new_event_loop``.
    """

    def __init__(self):
        self.counts = {}
        self.lock = threading.Lock()
        self.ourloop_cls = None
        self.hooks = []

    def is_ourloop(self, cls):
        return self.ourloop_cls is not None and issubclass(cls, self.ourloop_cls)

    def label(self, cls):
        if self.is_ourloop(cls):
            if cls is self.ourloop_cls:
                return OURLOOP_LABEL
            return '%s<%s>' % (OURLOOP_LABEL, cls.__qualname__)
        return cls.__qualname__

    def note(self, obj):
        lab = self.label(type(obj))
        with self.lock:
            self.counts[lab] = self.counts.get(lab, 0) + 1

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def reset(self):
        with self.lock:
            self.counts.clear()

    def install(self, ourloop_mod=None):
        import asyncio.base_events
        counter = self
        base = asyncio.base_events.BaseEventLoop
        orig_base_init = base.__init__

        def __init__(self, *args, **kwargs):
            orig_base_init(self, *args, **kwargs)
            if not counter.is_ourloop(type(self)):
                counter.note(self)
        __init__.__wrapped__ = orig_base_init
        base.__init__ = __init__
        self.hooks.append('asyncio.BaseEventLoop.__init__')

        if ourloop_mod is None:
            return
        cls = ourloop_mod.Loop
        self.ourloop_cls = cls
        orig_init = cls.__init__

        def ourloop_init(self, *args, **kwargs):
            orig_init(self, *args, **kwargs)
            counter.note(self)
        ourloop_init.__wrapped__ = orig_init
        try:
            cls.__init__ = ourloop_init
            self.hooks.append('ourloop.Loop.__init__')
            return
        except (TypeError, AttributeError):
            pass
        # ourloop.Loop is a static (extension) type: count at the factories.
        self.hooks.append('ourloop policy new_event_loop (fallback)')

        def wrap_factory(fn):
            def factory(*args, **kwargs):
                loop = fn(*args, **kwargs)
                counter.note(loop)
                return loop
            factory.__wrapped__ = fn
            return factory
        policy_cls = ourloop_mod.EventLoopPolicy
        policy_cls.new_event_loop = wrap_factory(policy_cls.new_event_loop)
        if hasattr(ourloop_mod, 'new_event_loop'):
            ourloop_mod.new_event_loop = wrap_factory(ourloop_mod.new_event_loop)


def import_ourloop():
    try:
        import ourloop
    except ImportError:
        if os.path.exists(os.path.join(REPO_ROOT, 'ourloop', '__init__.py')):
            sys.path.insert(0, REPO_ROOT)
            for name in list(sys.modules):
                if name == 'ourloop' or name.startswith('ourloop.'):
                    del sys.modules[name]
            import ourloop
        else:
            raise
    return ourloop


def install_ourloop(ourloop):
    """Make ourloop the loop of every default-loop code path of asyncio.

    ``events._init_event_loop_policy()`` (run by get_event_loop_policy() when
    no policy is set, e.g. after the tests' ``set_event_loop_policy(None)``)
    does ``from . import DefaultEventLoopPolicy``, i.e. it reads the attribute
    of the asyncio package (``_DefaultEventLoopPolicy`` on 3.14+).  Replacing
    that attribute (and the ones in asyncio.events / asyncio.unix_events, so
    that every spelling agrees) makes every re-created policy an ourloop one.
    """
    import asyncio
    import asyncio.events
    patched = []
    policy_cls = ourloop.EventLoopPolicy
    mods = [asyncio, asyncio.events]
    if sys.platform != 'win32':
        import asyncio.unix_events
        mods.append(asyncio.unix_events)
    for mod in mods:
        for name in ('DefaultEventLoopPolicy', '_DefaultEventLoopPolicy'):
            # the public name everywhere; the 3.14+ private one where it exists
            if name == 'DefaultEventLoopPolicy' or name in vars(mod):
                setattr(mod, name, policy_cls)
                patched.append('%s.%s' % (mod.__name__, name))
        # asyncio.EventLoop (3.13+) is left alone: like SelectorEventLoop it
        # names a concrete stdlib class (test_runners checks that it is the
        # selector loop on Unix), and ourloop.install() does not change it.
    setter = getattr(asyncio.events, '_set_event_loop_policy', None) or \
        asyncio.set_event_loop_policy
    setter(None)            # next get_event_loop_policy() builds ours
    getter = getattr(asyncio.events, '_get_event_loop_policy', None) or \
        asyncio.get_event_loop_policy
    policy = getter()
    if not isinstance(policy, policy_cls):
        raise RuntimeError('policy patching failed: got %r' % (policy,))
    return patched


class _CloseLoopProxy:
    """Stands in for a loop that has no ``_default_executor`` attribute."""
    _default_executor = None

    def __init__(self, loop):
        self._loop = loop

    def __getattr__(self, name):
        return getattr(self._loop, name)


def adapt_test_utils():
    """Harness adaptation (ourloop mode only; documented in docs/conformance.md).

    ``test_utils.TestCase.close_loop()``, the cleanup every loop registered
    with ``TestCase.set_event_loop()`` goes through, reads the stdlib-private
    ``loop._default_executor``.  For a loop without that attribute, do the same
    thing through the public API (``shutdown_default_executor()``) and then let
    the original close the loop and wait for the child watcher.  Loops that
    have the attribute go through the original unchanged.
    """
    from test.test_asyncio import utils as test_utils
    tc = test_utils.TestCase
    orig = tc.__dict__['close_loop']
    orig = getattr(orig, '__func__', orig)

    def close_loop(loop):
        if hasattr(loop, '_default_executor'):
            return orig(loop)
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
        return orig(_CloseLoopProxy(loop))
    tc.close_loop = staticmethod(close_loop)
    return ['test.test_asyncio.utils.TestCase.close_loop']


def _adapt_test_runners(mod, ourloop):
    base = mod.BaseTest

    def new_loop(self):
        # Original: a bare asyncio.BaseEventLoop whose private _selector,
        # _process_events and _write_to_self are mocks (only needed to make
        # the abstract BaseEventLoop runnable), plus this public-API
        # instrumentation, kept as is:
        loop = ourloop.new_event_loop()
        loop.shutdown_ag_run = False

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop
    base.new_loop = new_loop
    return ['%s.BaseTest.new_loop' % mod.__name__]


def _adapt_test_pep492(mod, ourloop):
    base = mod.BaseTest
    parent = base.__mro__[1]

    def setUp(self):
        # Original: a bare asyncio.BaseEventLoop with a mocked _selector and
        # _process_events (only needed to make it runnable).
        parent.setUp(self)
        self.loop = ourloop.new_event_loop()
        self.set_event_loop(self.loop)
    base.setUp = setUp
    return ['%s.BaseTest.setUp' % mod.__name__]


_SELECTOR_CLASS_RE = re.compile(r'(Select|Poll|Kqueue|Selector)')


def _adapt_selector_variants(mod, ourloop):
    """Network modules: the functional tests live in mixins, instantiated
    once per stdlib selector (SelectEventLoopTests, PollEventLoopTests,
    EPollEventLoopTests, SelectorStartServerTests, ...) through a
    ``create_event_loop()`` / ``new_loop()`` factory that builds an
    ``asyncio.SelectorEventLoop``.  Replace each family (same bases) by one
    ``Ourloop<First>`` class with the same bases whose factory returns an
    ourloop loop; the selector variants themselves test only the stdlib loop
    (they run in --baseline) and are dropped.
    """
    import unittest
    families = {}
    for name, obj in sorted(vars(mod).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and obj.__module__ == mod.__name__):
            continue
        factory = None
        for fname in ('create_event_loop', 'new_loop'):
            if fname in vars(obj):
                factory = fname
        if factory is None or not _SELECTOR_CLASS_RE.search(name):
            continue
        families.setdefault((obj.__bases__, factory), []).append(name)
    out = []
    for (bases, factory), names in sorted(families.items(), key=lambda kv: kv[1][0]):
        first = names[0]
        for name in names:
            delattr(mod, name)

        def make_loop(self):
            return ourloop.new_event_loop()
        new_name = 'Ourloop' + first
        cls = type(new_name, bases, {factory: make_loop,
                                     '__module__': mod.__name__,
                                     '__qualname__': new_name})
        setattr(mod, new_name, cls)
        out.append('%s.%s (replaces %s)' % (mod.__name__, new_name, ', '.join(names)))
    return out


# Modules whose tests build a bare, partly mocked asyncio.BaseEventLoop as "the
# loop" (for want of a concrete default loop); in ourloop mode that loop is an
# ourloop loop instead (--no-adapt turns this off).  test_futures is not
# adapted: its TestLoop has mock time, which the tests depend on.
ADAPTATIONS = {
    'test_runners': _adapt_test_runners,
    'test_pep492': _adapt_test_pep492,
    'test_events': _adapt_selector_variants,
    'test_sock_lowlevel': _adapt_selector_variants,
    'test_sendfile': _adapt_selector_variants,
    'test_buffered_proto': _adapt_selector_variants,
    'test_server': _adapt_selector_variants,
    'test_sslproto': _adapt_selector_variants,
}


def make_result_class(unittest, emit, counter, test_timeout):
    import faulthandler

    def parent_of(test):
        # _SubTest objects carry the real test in .test_case
        return getattr(test, 'test_case', test)

    def fmt(err, test):
        import traceback
        exctype, value, tb = err
        return ''.join(traceback.format_exception(exctype, value, tb))

    class Result(unittest.TextTestResult):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._cur = None
            # Loops are attributed to a test if they were created after the
            # previous test's stopTest: IsolatedAsyncioTestCase (3.9/3.10)
            # makes its loop in run() before startTest; a class fixture's
            # loop goes to the first test of the class.
            self._since = counter.snapshot()

        def _begin(self, test):
            emit({'ev': 'start', 'id': test.id()})
            self._cur = {
                'id': test.id(), 'outcome': 'pass', 'details': [],
                'reason': None, 'skiplist': False,
                'before': self._since, 't0': time.monotonic(),
            }

        def startTest(self, test):
            self._begin(test)
            if test_timeout:
                faulthandler.dump_traceback_later(test_timeout, exit=True)
            super().startTest(test)

        def stopTest(self, test):
            super().stopTest(test)
            if test_timeout:
                faulthandler.cancel_dump_traceback_later()
            self._end()

        def _end(self):
            cur = self._cur
            self._cur = None
            if cur is None:
                return
            after = self._since = counter.snapshot()
            loops = {k: after[k] - cur['before'].get(k, 0) for k in after
                     if after[k] - cur['before'].get(k, 0)}
            emit({'ev': 'test', 'id': cur['id'], 'outcome': cur['outcome'],
                  'details': cur['details'], 'reason': cur['reason'],
                  'skiplist': cur['skiplist'], 'loops': loops,
                  'dt': round(time.monotonic() - cur['t0'], 3)})

        _rank = {'pass': 0, 'xfail': 1, 'skip': 2, 'xpass': 3,
                 'fail': 4, 'error': 5}

        def _set(self, test, outcome, detail=None, reason=None):
            cur = self._cur
            if cur is None or parent_of(test).id() != cur['id']:
                # Error outside a test: setUpClass / setUpModule /
                # tearDownClass / tearDownModule (an _ErrorHolder).
                emit({'ev': 'fixture', 'id': str(getattr(test, 'description', test.id())),
                      'outcome': outcome, 'details': [detail] if detail else []})
                return
            if self._rank[outcome] > self._rank[cur['outcome']]:
                cur['outcome'] = outcome
            if detail:
                cur['details'].append(detail)
            if reason is not None and outcome == 'skip':
                cur['reason'] = reason
                if reason.startswith('ourloop-skip:'):
                    cur['skiplist'] = True

        def _detail(self, kind, test, err):
            d = {'kind': kind, 'tb': fmt(err, test)}
            if test is not parent_of(test):
                d['sub'] = test._subDescription()
            return d

        def addError(self, test, err):
            super().addError(test, err)
            self._set(test, 'error', self._detail('error', test, err))

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._set(test, 'fail', self._detail('fail', test, err))

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                if issubclass(err[0], test.failureException):
                    self._set(subtest, 'fail', self._detail('fail', subtest, err))
                else:
                    self._set(subtest, 'error', self._detail('error', subtest, err))

        def addSkip(self, test, reason):
            # 3.12.1's TestCase.run() reports a skipped test (skip
            # decorator, or a skip-list entry) without calling startTest()
            # and stopTest() (3.11 and 3.13 call them): record it as a
            # test all the same.
            unstarted = (self._cur is None
                         and getattr(test, '_testMethodName', None) is not None)
            if unstarted:
                self._begin(test)
            super().addSkip(test, reason)
            self._set(test, 'skip', reason=reason)
            if unstarted:
                self._end()

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._set(test, 'xfail')

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._set(test, 'xpass', {'kind': 'xpass', 'tb': 'unexpected success'})

    return Result


def iter_tests(suite):
    for t in suite:
        if hasattr(t, '__iter__') and not hasattr(t, '_testMethodName'):
            yield from iter_tests(t)
        else:
            yield t


def prune_suite(suite, exclude):
    kept = []
    for t in list(suite._tests):
        if hasattr(t, '_tests'):
            prune_suite(t, exclude)
            kept.append(t)
        elif t.id() not in exclude:
            kept.append(t)
    suite._tests = kept


def child_main(args):
    import faulthandler
    faulthandler.enable()
    progress = open(args.progress, 'a', buffering=1)
    lock = threading.Lock()

    def emit(rec):
        line = json.dumps(rec)
        with lock:
            progress.write(line + '\n')
            progress.flush()

    import asyncio
    import unittest
    pyver = '%d.%d' % sys.version_info[:2]
    hello = {'ev': 'hello', 'python': sys.version.split()[0],
             'executable': sys.executable, 'pyver': pyver,
             'mode': 'baseline' if args.baseline else 'ourloop',
             'module': args.child}
    counter = LoopCounter()
    ourloop = None
    if not args.baseline:
        try:
            ourloop = import_ourloop()
        except Exception as exc:
            emit({'ev': 'fatal', 'msg': 'cannot import ourloop: %r' % (exc,)})
            return 3
        hello['ourloop_file'] = getattr(ourloop, '__file__', None)
        hello['ourloop_version'] = getattr(ourloop, '__version__', None)
        try:
            hello['patched'] = install_ourloop(ourloop)
            counter.install(ourloop)
            hello['patched'] += adapt_test_utils()
            # Self-check: the public factory must now give an ourloop loop.
            loop = asyncio.new_event_loop()
            hello['selfcheck'] = counter.label(type(loop))
            loop.close()
            asyncio.set_event_loop(None)
            if not counter.is_ourloop(type(loop)):
                emit({'ev': 'fatal', 'msg': 'asyncio.new_event_loop() gave %r, '
                      'not an ourloop loop' % (type(loop),)})
                return 3
        except Exception:
            import traceback
            emit({'ev': 'fatal', 'msg': 'patching ourloop in failed:\n' +
                  traceback.format_exc()})
            return 3
    else:
        counter.install(None)
        loop = asyncio.new_event_loop()
        hello['selfcheck'] = counter.label(type(loop))
        loop.close()
    hello['hooks'] = counter.hooks
    counter.reset()

    skips = [] if args.baseline else load_skips(args.skips, pyver)
    exclude = set()
    if args.exclude:
        with open(args.exclude) as f:
            exclude = set(json.load(f))

    name = TEST_PACKAGE + '.' + args.child
    if ourloop is not None and not args.no_adapt and args.child in ADAPTATIONS:
        import importlib
        try:
            tmod = importlib.import_module(name)
        except Exception:
            tmod = None     # the loader reports the import error
        if tmod is not None:
            hello['adapted'] = ADAPTATIONS[args.child](tmod, ourloop)
    emit(hello)
    suite = unittest.defaultTestLoader.loadTestsFromName(name)
    if exclude:
        prune_suite(suite, exclude)
    skipped_by_list = 0
    used = set()
    for test in iter_tests(suite):
        meth = getattr(test, '_testMethodName', None)
        if meth is None:
            continue
        reason = None
        for pattern, why in skips:
            if fnmatch.fnmatchcase(short_id(test.id()), pattern):
                reason = why
                used.add(pattern)
                break
        if reason is not None:
            def skipped(*a, _reason=reason, **kw):
                raise unittest.SkipTest(_reason)
            skipped.__unittest_skip__ = True
            skipped.__unittest_skip_why__ = 'ourloop-skip: ' + reason
            setattr(test, meth, skipped)
            skipped_by_list += 1
    unused = [p for p, _ in skips
              if fnmatch.fnmatchcase(args.child, p.split('.')[0]) and p not in used]
    emit({'ev': 'loaded', 'count': suite.countTestCases(),
          'skiplist': skipped_by_list, 'unused_skips': [] if exclude else unused})

    Result = make_result_class(unittest, emit, counter, args.test_timeout)
    runner = unittest.TextTestRunner(stream=sys.stderr,
                                     verbosity=2 if args.verbose else 0,
                                     resultclass=Result)
    result = runner.run(suite)
    emit({'ev': 'done', 'loops': counter.snapshot(),
          'testsRun': result.testsRun})
    progress.close()
    return 0


# ---------------------------------------------------------------------------
# Parent side.
# ---------------------------------------------------------------------------

def list_available(python):
    code = ('import importlib.util, os, sys\n'
            'spec = importlib.util.find_spec(%r)\n'
            'd = os.path.dirname(spec.origin)\n'
            'print(sys.version.split()[0])\n'
            'print(" ".join(sorted(f[:-3] for f in os.listdir(d) '
            'if f.startswith("test_") and f.endswith(".py"))))\n'
            % TEST_PACKAGE)
    out = subprocess.run([python, '-c', code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    if out.returncode != 0:
        sys.exit('cannot list %s with %s:\n%s' % (TEST_PACKAGE, python, out.stderr))
    lines = out.stdout.splitlines()
    return lines[0], set(lines[1].split())


def summarize_tb(tb):
    """The line of a traceback that says what went wrong (the exception)."""
    lines = [ln for ln in tb.strip().splitlines() if ln.strip()]
    if not lines:
        return ''
    if 'most recent call first' in tb:
        # A crash / hang: faulthandler dump.  Say what happened and where.
        frames = [ln.strip() for ln in lines if ln.strip().startswith('File "')]
        where = ''
        for fr in frames:
            if 'cpython_conformance.py' not in fr:
                where = fr
                break
        return (lines[0] + (' at ' + where if where else ''))[:300]
    # the header line of the last exception ("AssertionError: Lists differ...")
    exc_re = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|'
                        r'Failure|Group|Cancelled|Timeout|StopIteration)\b(: |$)')
    for i in range(len(lines) - 1, -1, -1):
        if exc_re.match(lines[i]):
            return lines[i][:300]
    # else: last line that starts at column 0 and isn't a 'Traceback' line
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i].startswith((' ', 'Traceback', 'During handling',
                                    'The above exception')):
            # Multi-line exception messages: take from here to the end (max 3)
            msg = ' '.join(x.strip() for x in lines[i:i + 3])
            return msg[:300]
    return lines[-1][:300]


class ModuleRun:
    def __init__(self, name):
        self.name = name
        self.tests = {}          # id -> record (last one wins)
        self.order = []
        self.fixtures = []       # fixture error records
        self.loops = {}
        self.hello = None
        self.fatal = None
        self.crashes = []        # (test id or None, description, log tail)
        self.timed_out = False
        self.finished = False
        self.duration = 0.0
        self.loaded = None
        self.restarts = 0

    def add_test(self, rec):
        if rec['id'] not in self.tests:
            self.order.append(rec['id'])
        self.tests[rec['id']] = rec

    def counts(self):
        c = {'run': 0, 'pass': 0, 'fail': 0, 'error': 0, 'skip': 0,
             'xfail': 0, 'xpass': 0, 'skiplist': 0, 'on_ourloop': 0}
        for rec in self.tests.values():
            c['run'] += 1
            c[rec['outcome']] += 1
            if rec.get('skiplist'):
                c['skiplist'] += 1
            if any(k.startswith(OURLOOP_LABEL) for k in rec.get('loops', {})):
                c['on_ourloop'] += 1
        c['error'] += sum(1 for f in self.fixtures if f['outcome'] in ('error', 'fail'))
        return c

    def not_implemented(self):
        """Failing tests whose every error is ourloop's NotImplementedError
        (a feature ourloop does not have yet, e.g. sockets)."""
        n = 0
        for rec in self.failing():
            sums = [summarize_tb(d.get('tb', '')) for d in rec.get('details', [])]
            if sums and all(x.startswith('NotImplementedError') and 'ourloop' in x
                            for x in sums):
                n += 1
        return n

    def ourloop_loops(self):
        return sum(v for k, v in self.loops.items() if k.startswith(OURLOOP_LABEL))

    def failing(self):
        out = []
        for tid in self.order:
            rec = self.tests[tid]
            if rec['outcome'] in ('fail', 'error', 'xpass'):
                out.append(rec)
        for f in self.fixtures:
            if f['outcome'] in ('fail', 'error'):
                out.append(f)
        return out


def run_module(mod, opts, logdir, skips_file, tag=''):
    mr = ModuleRun(mod)
    mr.no_adapt = opts.no_adapt
    progress = os.path.join(logdir, mod + tag + '.jsonl')
    logfile = os.path.join(logdir, mod + tag + '.log')
    excl_file = os.path.join(logdir, mod + tag + '.exclude.json')
    for p in (progress, logfile):
        if os.path.exists(p):
            os.unlink(p)
    workdir = tempfile.mkdtemp(prefix=mod + '-', dir=logdir)
    deadline = time.monotonic() + opts.timeout
    t_start = time.monotonic()
    env = dict(os.environ)
    env.pop('PYTHONASYNCIODEBUG', None)
    env['PYTHONUNBUFFERED'] = '1'
    done_ids = set()
    nlines = 0
    while True:
        cmd = [opts.python, os.path.abspath(__file__), '--child', mod,
               '--progress', progress, '--test-timeout', str(opts.test_timeout)]
        if opts.baseline:
            cmd.append('--baseline')
        if opts.no_adapt:
            cmd.append('--no-adapt')
        if opts.verbose:
            cmd.append('-v')
        if skips_file:
            cmd += ['--skips', skips_file]
        if done_ids:
            with open(excl_file, 'w') as f:
                json.dump(sorted(done_ids), f)
            cmd += ['--exclude', excl_file]
        log_start = os.path.getsize(logfile) if os.path.exists(logfile) else 0
        with open(logfile, 'ab') as logf:
            logf.write(('\n$ %s\n' % ' '.join(cmd)).encode())
            logf.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, cwd=workdir,
                                    env=env, start_new_session=True)

            def pump(src=proc.stdout, dst=logf, echo=opts.verbose):
                for chunk in iter(lambda: src.read1(65536) if hasattr(src, 'read1')
                                  else src.read(65536), b''):
                    dst.write(chunk)
                    dst.flush()
                    if echo:
                        sys.stdout.buffer.write(chunk)
                        sys.stdout.flush()
            th = threading.Thread(target=pump, daemon=True)
            th.start()
            timed_out = False
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGABRT)   # faulthandler dumps
                    proc.wait(timeout=10)
                except Exception:
                    pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except Exception:
                    pass
                rc = proc.wait()
            th.join(timeout=10)
        # Read what this child reported.
        started = None
        finished = False
        recs = []
        if os.path.exists(progress):
            with open(progress) as f:
                lines = f.read().splitlines()
            recs = lines[nlines:]
            nlines = len(lines)
        for line in recs:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ev = rec.get('ev')
            if ev == 'hello':
                if mr.hello is None:
                    mr.hello = rec
            elif ev == 'fatal':
                mr.fatal = rec['msg']
            elif ev == 'loaded':
                if mr.loaded is None:
                    mr.loaded = rec
            elif ev == 'start':
                started = rec['id']
            elif ev == 'test':
                mr.add_test(rec)
                done_ids.add(rec['id'])
                if started == rec['id']:
                    started = None
            elif ev == 'fixture':
                mr.fixtures.append(rec)
            elif ev == 'done':
                finished = True
                for k, v in rec['loops'].items():
                    mr.loops[k] = mr.loops.get(k, 0) + v
        if not finished:
            # Loops of the tests that completed in this child.
            for line in recs:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get('ev') == 'test':
                    for k, v in rec.get('loops', {}).items():
                        mr.loops[k] = mr.loops.get(k, 0) + v
        if finished or mr.fatal:
            mr.finished = finished
            break
        with open(logfile, 'rb') as f:
            f.seek(log_start)
            tail = f.read().decode('utf-8', 'replace').splitlines()[-60:]
        tail = '\n'.join(tail)
        if timed_out:
            what = 'module timeout (%ds) hit' % opts.timeout
        elif 'Timeout (' in tail:
            what = 'hung: no result after %ds (faulthandler watchdog)' % opts.test_timeout
        elif rc < 0:
            what = 'child killed by signal %s' % (-rc,)
        else:
            what = 'child exited with code %s before finishing' % (rc,)
        mr.crashes.append((started, what, tail))
        if started is not None:
            mr.add_test({'id': started, 'outcome': 'error', 'loops': {},
                         'details': [{'kind': 'crash', 'tb': what + '\n' + tail}],
                         'reason': None, 'skiplist': False, 'crash': what})
            done_ids.add(started)
        if timed_out:
            mr.timed_out = True
            break
        if started is None or mr.restarts >= MAX_RESTARTS:
            break
        mr.restarts += 1
    mr.duration = time.monotonic() - t_start
    shutil.rmtree(workdir, ignore_errors=True)
    return mr


def loops_str(loops):
    parts = []
    for k in ALWAYS_SHOWN_LOOPS:
        parts.append('%s=%d' % (k, loops.get(k, 0)))
    for k in sorted(loops):
        if k not in ALWAYS_SHOWN_LOOPS:
            parts.append('%s=%d' % (k, loops[k]))
    return ' '.join(parts)


def module_line(mr, baseline):
    c = mr.counts()
    s = '%s: %d run, %d failed, %d errors, %d skipped' % (
        mr.name, c['run'], c['fail'] + c['xpass'], c['error'], c['skip'])
    extra = []
    if c['skiplist']:
        extra.append('%d by skip list' % c['skiplist'])
    if c['xfail']:
        extra.append('%d expected failures' % c['xfail'])
    if c['xpass']:
        extra.append('%d unexpected successes' % c['xpass'])
    ni = mr.not_implemented()
    if ni:
        extra.append('%d of the failures: NotImplementedError from ourloop' % ni)
    if extra:
        s += ' (' + ', '.join(extra) + ')'
    s += ' | loops: ' + loops_str(mr.loops)
    if not baseline:
        s += ' | tests on ourloop: %d/%d' % (c['on_ourloop'], c['run'])
    s += ' | %.1fs' % mr.duration
    if mr.loaded and mr.loaded.get('count', 0) > c['run']:
        s += ' | %d NOT RUN' % (mr.loaded['count'] - c['run'])
    if mr.crashes:
        s += ' | %d crash(es)' % len(mr.crashes)
    if mr.timed_out:
        s += ' | TIMEOUT'
    return s


def module_problems(mr, baseline):
    """Why this module fails the gate (empty list: it passes)."""
    probs = []
    c = mr.counts()
    if mr.fatal:
        probs.append('fatal: ' + mr.fatal.splitlines()[0])
        return probs
    if c['fail'] or c['error'] or c['xpass']:
        probs.append('%d failed, %d errors' % (c['fail'] + c['xpass'], c['error']))
    if mr.timed_out:
        probs.append('timed out')
    elif not mr.finished:
        probs.append('child did not finish')
    if not baseline and c['run'] - c['skip'] > 0 and mr.ourloop_loops() == 0 \
            and not no_default_loop_reason(mr.name, (mr.hello or {}).get('pyver')) \
            and not (getattr(mr, 'no_adapt', False) and mr.name in ADAPTATIONS):
        probs.append('ran tests but created no ourloop loop (patching did not take effect)')
    return probs


def failure_summary(rec):
    for d in rec.get('details', []):
        summ = summarize_tb(d.get('tb', ''))
        if summ:
            return summ
    return ''


def is_not_implemented(summary):
    return summary.startswith('NotImplementedError') and 'ourloop' in summary


def module_data(mr, probs, base=None):
    failing = []
    for rec in mr.failing():
        failing.append({'id': rec['id'], 'outcome': rec['outcome'],
                        'summary': failure_summary(rec),
                        'details': rec.get('details', [])})
    d = {
        'name': mr.name, 'counts': mr.counts(), 'loops': mr.loops,
        'ourloop_loops': mr.ourloop_loops(), 'problems': probs,
        'duration': round(mr.duration, 1), 'fatal': mr.fatal,
        'not_implemented': mr.not_implemented(),
        'adapted': (mr.hello or {}).get('adapted', []),
        'no_default_loop': no_default_loop_reason(mr.name, (mr.hello or {}).get('pyver')),
        'failing': failing,
        'skipped_by_list': [{'id': r['id'], 'reason': r['reason']}
                            for r in (mr.tests[i] for i in mr.order)
                            if r.get('skiplist')],
        'skipped': [{'id': r['id'], 'reason': r['reason']}
                    for r in (mr.tests[i] for i in mr.order)
                    if r['outcome'] == 'skip' and not r.get('skiplist')],
        'crashes': [{'test': t, 'what': w} for t, w, _ in mr.crashes],
    }
    if base is not None:
        d['baseline'] = {'counts': base.counts(), 'loops': base.loops,
                         'failing': [{'id': r['id'], 'summary': failure_summary(r)}
                                     for r in base.failing()]}
    return d


def render_markdown(data):
    """Generated docs block for one run (one Python, one mode, one set)."""
    out = []
    out.append('### Python %s, %s, %s set' % (data['python'], data['mode'], data['set']))
    out.append('')
    if data.get('ourloop'):
        out.append('ourloop `%s`, run on %s.' % (data['ourloop'], data['date']))
    else:
        out.append('Run on %s.' % data['date'])
    out.append('Command: `%s`' % data['command'])
    out.append('')
    has_base = any('baseline' in m for m in data['modules'])
    ourloop_mode = data['mode'] == 'ourloop'
    hdr = '| module | run | passed | failed | errors | skipped (skip list) |'
    sep = '|---|---:|---:|---:|---:|---:|'
    if has_base:
        hdr += ' baseline run/failed/errors/skipped |'
        sep += '---|'
    hdr += ' loops created | tests on ourloop | gate |'
    sep += '---|---:|---|'
    out.append(hdr)
    out.append(sep)
    for m in data['modules']:
        c = m['counts']
        loops = ', '.join('%s=%d' % (k, v) for k, v in sorted(
            m['loops'].items(), key=lambda kv: (not kv[0].startswith(OURLOOP_LABEL), kv[0])))
        row = '| %s | %d | %d | %d | %d | %d (%d) |' % (
            m['name'], c['run'], c['pass'] + c['xfail'], c['fail'] + c['xpass'],
            c['error'], c['skip'], c['skiplist'])
        if has_base:
            b = m.get('baseline', {}).get('counts')
            row += (' %d/%d/%d/%d |' % (b['run'], b['fail'] + b['xpass'], b['error'], b['skip'])
                    if b else ' - |')
        gate = 'PASS' if not m['problems'] else 'FAIL: ' + '; '.join(m['problems'])
        if m.get('not_implemented'):
            gate += ' (%d NotImplementedError)' % m['not_implemented']
        row += ' %s | %s | %s |' % (
            loops or '-', ('%d' % c['on_ourloop']) if ourloop_mode else '-', gate)
        out.append(row)
    out.append('')
    notes = []
    for m in data['modules']:
        if m.get('adapted'):
            notes.append('- %s: adapted: %s' % (m['name'], '; '.join(
                a.replace('test.test_asyncio.', '') for a in m['adapted'])))
        if ourloop_mode and m.get('no_default_loop') and not m['ourloop_loops']:
            notes.append('- %s: no ourloop loop expected: %s' % (m['name'], m['no_default_loop']))
        for cr in m.get('crashes', []):
            notes.append('- %s: %s in `%s`' % (m['name'], cr['what'], short_id(cr['test'] or '?')))
    if notes:
        out.extend(notes)
        out.append('')
    real, notimpl = [], {}
    for m in data['modules']:
        for f in m['failing']:
            if f.get('details'):
                f['summary'] = failure_summary(f)
            if is_not_implemented(f['summary']):
                notimpl.setdefault(f['summary'], []).append(short_id(f['id']))
            else:
                real.append(f)
    if real:
        out.append('Failing tests:')
        out.append('')
        for f in real:
            out.append('- `%s` (%s): %s' % (short_id(f['id']), f['outcome'],
                                            f['summary'].replace('|', '\\|')))
        out.append('')
    if notimpl:
        out.append('Failing with NotImplementedError (feature not in ourloop yet):')
        out.append('')
        for msg, ids in sorted(notimpl.items(), key=lambda kv: -len(kv[1])):
            out.append('- %d test(s): %s' % (len(ids), msg))
            out.append('  <details><summary>tests</summary>%s</details>'
                       % ', '.join('`%s`' % i for i in ids))
        out.append('')
    if has_base:
        bf = [(m['name'], f) for m in data['modules']
              for f in m.get('baseline', {}).get('failing', [])]
        if bf:
            out.append('Failing with the stdlib loop too (baseline):')
            out.append('')
            for _mod, f in bf:
                out.append('- `%s`: %s' % (short_id(f['id']), f['summary'].replace('|', '\\|')))
            out.append('')
    sk = [s for m in data['modules'] for s in m['skipped_by_list']]
    if sk:
        out.append('Skipped by tests/cpython/skips.py:')
        out.append('')
        for s in sk:
            out.append('- `%s`: %s' % (short_id(s['id']), s['reason']))
        out.append('')
    elif ourloop_mode:
        out.append('No test skipped by tests/cpython/skips.py.')
        out.append('')
    own = {}
    for m in data['modules']:
        for r in m.get('skipped', []):
            own.setdefault(r['reason'] or '(no reason)', []).append(short_id(r['id']))
    if own:
        out.append('Skipped by the tests themselves (same on the stdlib loop unless the '
                   'baseline column differs):')
        out.append('')
        for reason, ids in sorted(own.items(), key=lambda kv: kv[1][0]):
            if len(ids) <= 3:
                out.append('- %s: %s' % (', '.join('`%s`' % i for i in ids),
                                         reason.replace('|', '\\|')))
            else:
                out.append('- %d tests: %s' % (len(ids), reason.replace('|', '\\|')))
                out.append('  <details><summary>tests</summary>%s</details>'
                           % ', '.join('`%s`' % i for i in ids))
        out.append('')
    return '\n'.join(out)


def update_docs(path, key, block):
    begin = '<!-- BEGIN GENERATED %s -->' % key
    end = '<!-- END GENERATED %s -->' % key
    text = ''
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    new = begin + '\n' + block.rstrip() + '\n' + end
    if begin in text and end in text:
        pre = text[:text.index(begin)]
        post = text[text.index(end) + len(end):]
        text = pre + new + post
    else:
        marker = '<!-- GENERATED RESULTS GO HERE -->'
        if marker in text:
            text = text.replace(marker, new + '\n\n' + marker)
        else:
            text = text.rstrip() + '\n\n' + new + '\n'
    with open(path, 'w') as f:
        f.write(text)


def print_module(mr, opts, baseline):
    mod = mr.name
    if mr.fatal:
        print('%s: FATAL: %s' % (mod, mr.fatal))
    else:
        print(module_line(mr, baseline))
    pyver = (mr.hello or {}).get('pyver')
    if not baseline and mr.hello and mr.ourloop_loops() == 0 and \
            no_default_loop_reason(mod, pyver):
        print('    no ourloop loop expected: %s' % no_default_loop_reason(mod, pyver))
    if mr.hello and mr.hello.get('adapted'):
        print('    adapted to ourloop: %s' % ', '.join(mr.hello['adapted']))
    if mr.loaded and mr.loaded.get('unused_skips'):
        print('    WARNING: skip list entries matching no test of %s: %s' % (
            mod, ', '.join(mr.loaded['unused_skips'])))
    for tid, what, _tail in mr.crashes:
        print('    crash: %s in %s' % (what, short_id(tid) if tid else '(outside tests)'))
    probs = module_problems(mr, baseline)
    if probs and not mr.fatal:
        print('    GATE FAIL: ' + '; '.join(probs))
    if opts.list_failures:
        for rec in mr.failing():
            print('    %s %s: %s' % (rec['outcome'].upper(), short_id(rec['id']),
                                     failure_summary(rec)))
    return probs


def parent_main(opts):
    python = opts.python or sys.executable
    if os.sep in python:
        # The children run in another directory: a relative path (as in
        # the docstring's `--python .venvs/py3.12/bin/python`) must not be.
        python = os.path.abspath(python)
    opts.python = python
    version, available = list_available(python)
    pyver = '.'.join(version.split('.')[:2])
    shown = python
    if os.path.abspath(python).startswith(REPO_ROOT + os.sep):
        shown = os.path.relpath(os.path.abspath(python), REPO_ROOT)
    elif os.path.abspath(python) == os.path.abspath(sys.executable):
        shown = 'python%s' % pyver
    opts.command_line = opts.command_line.replace('python ', shown + ' ', 1)
    if opts.module:
        setname = 'custom'
        mods = []
        for m in opts.module:
            for part in m.split(','):
                if part.strip():
                    mods.append(short_module(part))
        missing = [m for m in mods if m not in available]
        if missing:
            print('not in this Python\'s %s: %s' % (TEST_PACKAGE, ' '.join(missing)))
            return 2
    else:
        wanted = list(DEFAULT_MODULES)
        setname = 'default'
        if opts.network:
            wanted, setname = list(NETWORK_MODULES), 'network'
        elif opts.all:
            wanted, setname = wanted + NETWORK_MODULES, 'all'
        mods = [m for m in wanted if m in available]

    skips_file = None if opts.baseline else (opts.skips or DEFAULT_SKIPS_FILE)
    logdir = opts.log_dir or tempfile.mkdtemp(prefix='ourloop-cpython-')
    os.makedirs(logdir, exist_ok=True)
    mode = 'baseline' if opts.baseline else 'ourloop'
    print('CPython conformance: Python %s (%s), mode=%s, %s set, %d module(s), logs in %s'
          % (version, python, mode, setname, len(mods), logdir))
    sys.stdout.flush()
    base_opts = None
    if opts.with_baseline and not opts.baseline:
        base_opts = argparse.Namespace(**vars(opts))
        base_opts.baseline = True

    results = []
    header_done = False
    for mod in mods:
        mr = run_module(mod, opts, logdir, skips_file)
        if not header_done and mr.hello:
            h = mr.hello
            if mode == 'ourloop':
                print('ourloop %s from %s; patched: %s; counting via: %s; '
                      'self-check asyncio.new_event_loop() -> %s' % (
                          h.get('ourloop_version'), h.get('ourloop_file'),
                          ', '.join(h.get('patched', [])),
                          ', '.join(h.get('hooks', [])), h.get('selfcheck')))
            else:
                print('stdlib loop, no patching; counting via: %s; self-check '
                      'asyncio.new_event_loop() -> %s' % (
                          ', '.join(h.get('hooks', [])), h.get('selfcheck')))
            header_done = True
        probs = print_module(mr, opts, opts.baseline)
        base = None
        if base_opts is not None and not mr.fatal:
            base = run_module(mod, base_opts, logdir, None, tag='.baseline')
            c = base.counts()
            print('    baseline: %d run, %d failed, %d errors, %d skipped | loops: %s' % (
                c['run'], c['fail'] + c['xpass'], c['error'], c['skip'],
                loops_str(base.loops)))
            if opts.list_failures:
                for rec in base.failing():
                    print('    baseline %s %s: %s' % (rec['outcome'].upper(),
                                                      short_id(rec['id']),
                                                      failure_summary(rec)))
        sys.stdout.flush()
        results.append((mr, probs, base))
        if mr.fatal and 'cannot import ourloop' in mr.fatal:
            break

    total = {'run': 0, 'pass': 0, 'fail': 0, 'error': 0, 'skip': 0, 'xfail': 0,
             'xpass': 0, 'skiplist': 0, 'on_ourloop': 0}
    loops = {}
    for mr, _, _ in results:
        for k, v in mr.counts().items():
            total[k] += v
        for k, v in mr.loops.items():
            loops[k] = loops.get(k, 0) + v
    bad = [mr.name for mr, probs, base in results if probs]
    print('TOTAL: %d run, %d failed, %d errors, %d skipped (%d by skip list) | loops: %s'
          % (total['run'], total['fail'] + total['xpass'], total['error'],
             total['skip'], total['skiplist'], loops_str(loops)))
    if bad:
        print('gate: FAIL (%s)' % ', '.join(bad))
    else:
        print('gate: PASS')
    # Plain closing line, readable by CI log parsers.
    print('cpython-conformance: %d passed, %d failed, %d skipped' % (
        total['pass'] + total['xfail'], total['fail'] + total['xpass'] + total['error'],
        total['skip']))

    if opts.json or opts.update_docs:
        data = {'python': version, 'executable': python, 'mode': mode,
                'set': setname, 'command': opts.command_line,
                'date': time.strftime('%Y-%m-%d'),
                'ourloop': None, 'modules': []}
        for mr, probs, base in results:
            if mr.hello and mr.hello.get('ourloop_file'):
                data['ourloop'] = '%s' % (mr.hello.get('ourloop_version'),)
            data['modules'].append(module_data(mr, probs, base))
        if opts.json:
            with open(opts.json, 'w') as f:
                json.dump(data, f, indent=1)
        if opts.update_docs:
            key = 'py%s %s %s' % (pyver, mode, setname)
            update_docs(opts.update_docs, key, render_markdown(data))
            print('updated %s [%s]' % (opts.update_docs, key))
    if not opts.log_dir and not bad and not opts.keep_logs:
        shutil.rmtree(logdir, ignore_errors=True)
    if any(mr.fatal for mr, _, _ in results):
        return 2
    return 1 if bad else 0


def command_line(argv):
    """The command, as recorded in docs: output-only options left out."""
    args = []
    skip_next = False
    for a in argv:
        if skip_next:
            maybe, skip_next = skip_next == 'maybe', False
            if not (maybe and a.startswith('-')):
                continue
        if a in ('--json', '--log-dir', '--python'):
            skip_next = True
            continue
        if a == '--update-docs':
            skip_next = 'maybe'
            continue
        if a.startswith(('--json=', '--log-dir=', '--python=', '--update-docs')) or \
                a in ('--keep-logs', '--list-failures', '-v', '--verbose'):
            continue
        args.append(a)
    return ' '.join(['python', 'tools/cpython_conformance.py'] + args)


def main(argv=None):
    # Started in the background by a non-interactive shell (`cmd &`, nohup),
    # this process inherits SIGINT ignored, and an ignored signal survives
    # exec: test_runners' Ctrl-C tests would hang on either loop. Take
    # Python's handler, as an interactive run has (children exec with the
    # default action then).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = argparse.ArgumentParser(
        description='Run CPython test.test_asyncio modules with ourloop as the loop.')
    ap.add_argument('modules', nargs='*', metavar='MODULE',
                    help='modules to run (same as --module)')
    ap.add_argument('--module', '-m', action='append', default=[],
                    help='run only this module (test_tasks, tasks, ...); repeatable, '
                         'comma-separated lists accepted')
    ap.add_argument('--all', action='store_true',
                    help='default set plus the network/subprocess/SSL modules')
    ap.add_argument('--network', action='store_true',
                    help='only the network/subprocess/SSL modules')
    ap.add_argument('--baseline', action='store_true',
                    help='stdlib loop, no patching, no skip list (for comparison)')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='verbose unittest output (streamed)')
    ap.add_argument('--list-failures', action='store_true',
                    help='print failing test ids with the assertion')
    ap.add_argument('--list-modules', action='store_true',
                    help='print the module sets and exit')
    ap.add_argument('--python', help='interpreter for the children '
                    '(default: this one); e.g. .venvs/py3.12/bin/python')
    ap.add_argument('--timeout', type=float, default=MODULE_TIMEOUT,
                    help='per-module timeout in seconds (default %(default)s)')
    ap.add_argument('--test-timeout', type=float, default=TEST_TIMEOUT,
                    help='per-test hang watchdog in seconds (default %(default)s)')
    ap.add_argument('--no-adapt', action='store_true',
                    help='ourloop mode: run the tests unmodified (no ADAPTATIONS: '
                         'test_runners/test_pep492 keep their mocked BaseEventLoop, '
                         'network modules their selector-loop variants)')
    ap.add_argument('--skips', help='skip list file (default tests/cpython/skips.py)')
    ap.add_argument('--log-dir', help='keep child logs and JSON progress files here')
    ap.add_argument('--keep-logs', action='store_true',
                    help='keep the temporary log dir even if everything passed')
    ap.add_argument('--json', help='write full results (JSON) to this file')
    ap.add_argument('--update-docs', nargs='?', const=DEFAULT_DOCS_FILE,
                    help='rewrite the generated results block for this Python/mode '
                         'in docs/conformance.md (or the given file)')
    ap.add_argument('--with-baseline', action='store_true',
                    help='ourloop mode: also run every module with the stdlib loop '
                         'and show both (the gate looks at ourloop only)')
    ap.add_argument('--from-json', metavar='FILE',
                    help='render the docs block of a --json result file (to stdout, '
                         'or into the docs with --update-docs) instead of running tests')
    # child mode (internal)
    ap.add_argument('--child', help=argparse.SUPPRESS)
    ap.add_argument('--progress', help=argparse.SUPPRESS)
    ap.add_argument('--exclude', help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.child:
        return child_main(opts)
    opts.module = list(opts.module) + list(opts.modules)
    opts.command_line = command_line(sys.argv[1:] if argv is None else argv)
    if opts.from_json:
        with open(opts.from_json) as f:
            data = json.load(f)
        pyver = '.'.join(data['python'].split('.')[:2])
        key = 'py%s %s %s' % (pyver, data['mode'], data['set'])
        block = render_markdown(data)
        if opts.update_docs:
            update_docs(opts.update_docs, key, block)
            print('updated %s [%s]' % (opts.update_docs, key))
        else:
            print(block)
        return 0
    if opts.list_modules:
        python = opts.python or sys.executable
        version, available = list_available(python)
        print('Python %s' % version)
        for title, lst in (('default', DEFAULT_MODULES), ('network (--all)', NETWORK_MODULES),
                           ('implementation-specific (by name only)', IMPLEMENTATION_MODULES)):
            print('%s: %s' % (title, ' '.join(m for m in lst if m in available)))
        known = set(DEFAULT_MODULES) | set(NETWORK_MODULES) | set(IMPLEMENTATION_MODULES)
        other = sorted(available - known)
        if other:
            print('unclassified: %s' % ' '.join(other))
        return 0
    return parent_main(opts)


if __name__ == '__main__':
    sys.exit(main())
