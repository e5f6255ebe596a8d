"""run() / Runner / policy / install() / loop finalization.

``run_impl`` is asyncio.run for the ``asyncio`` parametrization and
ourloop.run for ``ourloop``: ourloop.run must behave like asyncio.run.
"""

import asyncio
import contextvars
import gc
import os
import socket
import subprocess
import sys
import threading
import warnings
import weakref

import pytest

from support import HIDE_NAMES_PRELUDE, NO_POLICY_NAMES, require_ourloop

needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in Python 3.11")

VAR = contextvars.ContextVar("policy_var", default="default")


@pytest.fixture
def run_impl(loop_kind):
    if loop_kind == "asyncio":
        return asyncio.run
    import ourloop

    return ourloop.run


@pytest.fixture
def expected_loop_type(loop_factory):
    lp = loop_factory()
    try:
        return type(lp)
    finally:
        lp.close()


# --------------------------------------------------------------------------
# run()
# --------------------------------------------------------------------------


def test_run_returns_result(run_impl):
    assert run_impl(asyncio.sleep(0.01, "ok")) == "ok"


def test_run_uses_expected_loop(run_impl, expected_loop_type):
    async def main():
        return asyncio.get_running_loop()

    lp = run_impl(main())
    assert type(lp) is expected_loop_type
    assert lp.is_closed()
    assert not lp.is_running()


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug(run_impl, debug):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert run_impl(main(), debug=debug) is debug


def test_run_propagates_exception(run_impl):
    async def main():
        raise LookupError("from main")

    with pytest.raises(LookupError, match="^from main$"):
        run_impl(main())


def test_run_inside_running_loop_raises(run_impl, loop):
    async def inner():
        pass

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
                run_impl(coro)
        finally:
            coro.close()
        return "checked"

    assert loop.run_until_complete(main()) == "checked"


@pytest.mark.parametrize("bad", [123, None, "coro"], ids=["int", "None", "str"])
def test_run_non_coroutine_same_error_as_asyncio(run_impl, bad):
    with pytest.raises(BaseException) as expected:
        asyncio.run(bad)
    with pytest.raises(BaseException) as got:
        run_impl(bad)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


def test_run_cancels_remaining_tasks(run_impl):
    state = {}

    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def main():
        state["task"] = asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)

    run_impl(main())
    assert state["cancelled"] is True
    assert state["task"].cancelled()


def test_run_finalizes_async_generators(run_impl):
    log = []
    holder = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append("finalized")

    async def main():
        g = agen()
        holder.append(g)  # keep it alive: only shutdown_asyncgens closes it
        await g.__anext__()

    run_impl(main())
    assert log == ["finalized"]


def test_run_shuts_down_default_executor(run_impl):
    async def main():
        return await asyncio.get_running_loop().run_in_executor(None, threading.current_thread)

    thread = run_impl(main())
    assert not thread.is_alive()


def test_run_twice(run_impl):
    assert run_impl(asyncio.sleep(0, 1)) == 1
    assert run_impl(asyncio.sleep(0, 2)) == 2


# --------------------------------------------------------------------------
# asyncio.Runner with a loop factory (3.11+)
# --------------------------------------------------------------------------


@needs_311
def test_runner_with_loop_factory(loop_factory, expected_loop_type):
    async def main(v):
        await asyncio.sleep(0)
        return asyncio.get_running_loop(), v

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        lp1, v1 = runner.run(main(1))
        lp2, v2 = runner.run(main(2))
        assert runner.get_loop() is lp1
    assert (v1, v2) == (1, 2)
    assert lp1 is lp2
    assert type(lp1) is expected_loop_type
    assert lp1.is_closed()


@needs_311
def test_runner_keeps_context_between_runs(loop_factory):
    async def setter():
        VAR.set("set-in-first-run")

    async def getter():
        return VAR.get()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(setter())
        assert runner.run(getter()) == "set-in-first-run"
    assert VAR.get() == "default"


@needs_311
def test_runner_debug(loop_factory):
    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(debug=True, loop_factory=loop_factory) as runner:
        assert runner.run(main()) is True


# --------------------------------------------------------------------------
# loop objects
# --------------------------------------------------------------------------


def test_loop_is_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)


def test_set_event_loop_and_get_event_loop(loop):
    # the ``loop`` fixture made it the current loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert asyncio.get_event_loop() is loop


def test_unclosed_loop_resource_warning(loop_factory):
    lp = loop_factory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith("unclosed event loop") for m in msgs), [str(w.message) for w in caught]


def test_closed_loop_no_resource_warning(loop_factory):
    lp = loop_factory()
    lp.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def _dropped_loop_ref(loop_factory, close, add_reader):
    lp = loop_factory()
    r, w = socket.socketpair()
    try:
        if add_reader:
            lp.add_reader(r, lambda: None)
        lp.run_until_complete(asyncio.sleep(0))
        if add_reader:
            lp.remove_reader(r)
        if close:
            lp.close()
    finally:
        r.close()
        w.close()
    ref = weakref.ref(lp)
    del lp
    return ref


@pytest.mark.parametrize("close", [True, False], ids=["closed", "unclosed"])
@pytest.mark.parametrize("add_reader", [False, True], ids=["plain", "reader"])
def test_dropped_loop_is_freed(loop_factory, close, add_reader):
    # A loop nobody references is freed by the collector, closed or not (the
    # unclosed one warns first). ourloop's loop and its fd-watcher table
    # referenced each other and neither could be cleared: every loop leaked,
    # its __dict__ emptied (anyio's test_asyncio_run_does_not_leak_event_loop,
    # and closing the loops found by gc.get_objects() raised AttributeError).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        ref = _dropped_loop_ref(loop_factory, close, add_reader)
        gc.collect()
    assert ref() is None


@needs_311
def test_runner_loop_is_freed(loop_factory):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(asyncio.sleep(0))
        ref = weakref.ref(runner.get_loop())
    del runner
    gc.collect()
    assert ref() is None


def test_new_loops_are_distinct(loop_factory):
    a, b = loop_factory(), loop_factory()
    try:
        assert a is not b
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------
# ourloop policy / install (ourloop only)
# --------------------------------------------------------------------------


def test_event_loop_policy_class(ourloop_mod):
    assert issubclass(ourloop_mod.EventLoopPolicy, asyncio.DefaultEventLoopPolicy)
    policy = ourloop_mod.EventLoopPolicy()
    lp = policy.new_event_loop()
    try:
        assert isinstance(lp, ourloop_mod.Loop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
    finally:
        lp.close()


def test_new_event_loop_returns_loop(ourloop_mod):
    lp = ourloop_mod.new_event_loop()
    try:
        assert type(lp) is ourloop_mod.Loop
        assert not lp.is_running()
        assert not lp.is_closed()
    finally:
        lp.close()


def test_install(ourloop_mod, restore_policy):
    ourloop_mod.install()
    assert isinstance(asyncio.get_event_loop_policy(), ourloop_mod.EventLoopPolicy)
    lp = asyncio.new_event_loop()
    try:
        assert isinstance(lp, ourloop_mod.Loop)
    finally:
        lp.close()

    async def main():
        return type(asyncio.get_running_loop())

    assert asyncio.run(main()) is ourloop_mod.Loop


def test_policy_restored_after_install(ourloop_mod):
    # guards the restore_policy fixture used above: must run after it
    assert not isinstance(asyncio.get_event_loop_policy(), ourloop_mod.EventLoopPolicy)


def test_ourloop_run_does_not_touch_policy(ourloop_mod):
    before = asyncio.get_event_loop_policy()

    async def main():
        return type(asyncio.get_running_loop())

    assert ourloop_mod.run(main()) is ourloop_mod.Loop
    assert asyncio.get_event_loop_policy() is before


@pytest.mark.only_loop("ourloop", reason="checks ourloop's concrete class")
def test_loop_fixture_gives_ourloop(loop, ourloop_mod):
    assert isinstance(loop, ourloop_mod.Loop)
    assert type(loop) is ourloop_mod.Loop


@pytest.mark.only_loop("asyncio", reason="checks the stdlib's concrete class")
def test_loop_fixture_gives_stdlib_loop(loop):
    assert isinstance(loop, asyncio.BaseEventLoop)
    assert isinstance(loop, asyncio.SelectorEventLoop)


# The stdlib selector loop's __del__ -> close() can trip over its selector
# already cleared by the cycle collector (an "Exception ignored in __del__"
# that is noise here; what matters is below).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("pending", ["call_soon", "call_later", "attribute-cycle"])
def test_unclosed_loop_in_reference_cycle_is_collected(loop_factory, pending):
    import weakref

    lp = loop_factory()
    if pending == "call_soon":
        lp.call_soon(lp.stop)  # handle -> bound method -> loop -> handle
    elif pending == "call_later":
        lp.call_later(10, lp.stop)
    else:
        lp.myself = lp
    ref = weakref.ref(lp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    assert ref() is None, "loop in a reference cycle was not collected"
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith("unclosed event loop") for m in msgs), msgs


# -- Python 3.16: no DefaultEventLoopPolicy (the policy system deprecated
# since 3.14). ourloop must import there, find the policy class by feature
# test, and say clearly what install() cannot do. Simulated in a child
# interpreter by deleting the names before ourloop is imported.

_WITHOUT_POLICIES = HIDE_NAMES_PRELUDE + r'''
import ourloop
print(ourloop.run(asyncio.sleep(0, 'ran')))
print(ourloop.EventLoopPolicy.__mro__[1].__name__)
try:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        ourloop.install()
        print(type(asyncio.new_event_loop()).__name__)
except RuntimeError as exc:
    print('RuntimeError:', exc)
'''


def _run_without(names):
    proc = subprocess.run([sys.executable, '-c', _WITHOUT_POLICIES, ','.join(names)],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(require_ourloop().__file__)))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_import_without_default_event_loop_policy():
    # 3.16 removes the public name; the class behind it stays while
    # policies exist, and install() still works with it.
    out = _run_without(['asyncio.DefaultEventLoopPolicy'])
    assert out[0] == 'ran'
    assert out[1] in ('_UnixDefaultEventLoopPolicy', 'DefaultEventLoopPolicy')
    assert out[2] == 'Loop'


def test_import_without_any_policy_system():
    # No policies at all: ourloop imports and runs; install() and
    # EventLoopPolicy() raise a RuntimeError that names the replacement.
    out = _run_without(NO_POLICY_NAMES.split(','))
    assert out[0] == 'ran'
    assert out[1] == '_NoPolicySystem'
    assert out[2].startswith('RuntimeError: this Python has no asyncio event loop policies')
    assert 'ourloop.run(main())' in out[2]
