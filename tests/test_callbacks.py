"""call_soon / call_soon_threadsafe: order, batches, threads, contexts.

Reference: BaseEventLoop.call_soon/_call_soon/call_soon_threadsafe/_run_once
in asyncio/base_events.py and events.Handle.
"""

import asyncio
import contextvars
import functools
import inspect
import threading
from unittest import mock

import pytest

from support import run_until, wait_blocked_in_poll, wait_blocking

VAR = contextvars.ContextVar("VAR", default="default")

WAIT = 20  # generous upper bound for cross-thread waits (seconds)


@pytest.fixture(autouse=True)
def _isolate_var():
    # pytest runs every test in the same context: undo what a test set.
    token = VAR.set("default")
    yield
    VAR.reset(token)


def run_loop_in_thread(loop):
    """Run loop.run_forever() in a daemon thread; wait until it runs."""
    started = threading.Event()
    errors = []

    def target():
        try:
            loop.run_forever()
        except BaseException as exc:  # pragma: no cover - reported by tests
            errors.append(exc)

    loop.call_soon(started.set)
    t = threading.Thread(target=target, daemon=True)
    t.start()
    assert started.wait(WAIT), "loop did not start running"
    return t, errors


# --------------------------------------------------------------------------
# call_soon
# --------------------------------------------------------------------------


def test_call_soon_fifo(loop):
    log = []
    for i in range(200):
        loop.call_soon(log.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == list(range(200))


def test_call_soon_passes_args(loop):
    log = []

    def cb(*args):
        log.append(args)

    loop.call_soon(cb)
    loop.call_soon(cb, 1)
    loop.call_soon(cb, 1, "two", None, (3,))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == [(), (1,), (1, "two", None, (3,))]


def test_call_soon_rejects_keyword_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_soon(print, end="")


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_scheduling_methods_take_their_arguments_by_keyword(loop, method):
    # The usual calls take a fast path; the others (callback=, context=
    # with other keywords, missing arguments) behave as the stdlib's.
    log = []
    schedule = getattr(loop, method)
    lead = () if method.startswith("call_soon") else (0,)
    ctx = contextvars.copy_context()
    schedule(*lead, log.append, "positional")
    schedule(*lead, log.append, "with context", context=ctx)
    schedule(*lead, callback=functools.partial(log.append, "keyword"))
    schedule(*lead, context=ctx, callback=functools.partial(log.append, "both"))
    with pytest.raises(TypeError):
        schedule(*lead, log.append, "x", end="")
    with pytest.raises(TypeError):
        schedule(*lead, log.append, "x", context=ctx, end="")
    with pytest.raises(TypeError):
        schedule()
    with pytest.raises(TypeError):
        schedule(context=ctx)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    # (The stdlib's timer heap does not keep scheduling order for equal
    # deadlines.)
    assert sorted(log) == sorted(["positional", "with context", "keyword", "both"])


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_scheduling_methods_introspect_and_patch_like_the_stdlib(loop, method):
    stdlib = inspect.signature(getattr(asyncio.BaseEventLoop, method))
    params = list(stdlib.parameters.values())[1:]          # without self
    assert inspect.signature(getattr(loop, method)) == stdlib.replace(parameters=params)
    assert getattr(loop, method).__name__ == method
    assert getattr(loop, method).__self__ is loop
    with mock.patch.object(loop, method, wraps=getattr(loop, method)) as patched:
        lead = () if method.startswith("call_soon") else (0,)
        getattr(loop, method)(*lead, loop.stop)
        loop.run_forever()
    assert patched.call_count == 1
    assert method not in vars(loop)


def test_call_soon_various_callables(loop):
    log = []

    class Obj:
        def method(self, x):
            log.append(("method", x))

        def __call__(self, x):
            log.append(("call", x))

    obj = Obj()
    loop.call_soon(obj.method, 1)
    loop.call_soon(obj, 2)
    loop.call_soon(functools.partial(log.append, ("partial", 3)))
    loop.call_soon(lambda: log.append(("lambda", 4)))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == [("method", 1), ("call", 2), ("partial", 3), ("lambda", 4)]


def test_callbacks_scheduled_by_callbacks_run_next_iteration(loop):
    # One batch per iteration: a self-rescheduling "tick" callback counts
    # iterations; b (scheduled by a) must run in the iteration after a.
    log = []

    def tick(i):
        log.append("tick%d" % i)
        if i < 3:
            loop.call_soon(tick, i + 1)
        else:
            loop.stop()

    def a():
        log.append("a")
        loop.call_soon(b)

    def b():
        log.append("b")
        loop.call_soon(c)

    def c():
        log.append("c")

    loop.call_soon(tick, 0)
    loop.call_soon(a)
    loop.run_forever()
    assert log == ["tick0", "a", "tick1", "b", "tick2", "c", "tick3"]


def test_nested_call_soon_order(loop):
    log = []

    def outer(name):
        log.append(name)
        loop.call_soon(log.append, name + "-child")

    loop.call_soon(outer, "x")
    loop.call_soon(outer, "y")
    loop.call_soon(log.append, "z")
    loop.call_soon(loop.call_soon, loop.stop)  # stop in the second iteration
    loop.run_forever()
    assert log == ["x", "y", "z", "x-child", "y-child"]


def test_cancel_handle_in_same_batch(loop):
    log = []
    handles = {}

    def a():
        log.append("a")
        handles["b"].cancel()

    loop.call_soon(a)
    handles["b"] = loop.call_soon(log.append, "b")
    loop.call_soon(log.append, "c")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["a", "c"]


def test_busy_call_soon_chain_does_not_starve_timers(loop):
    count = [0]

    def spin():
        count[0] += 1
        loop.call_soon(spin)

    loop.call_soon(spin)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert count[0] > 1


def test_busy_call_soon_chain_does_not_starve_threadsafe(loop):
    count = [0]

    def spin():
        count[0] += 1
        loop.call_soon(spin)

    def poster():
        wait_blocking(lambda: count[0] > 1)  # the chain is spinning
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(spin)
    t = threading.Thread(target=poster)
    t.start()
    loop.run_forever()
    t.join(WAIT)
    assert count[0] > 1


# --------------------------------------------------------------------------
# call_soon_threadsafe
# --------------------------------------------------------------------------


def test_call_soon_threadsafe_from_same_thread(loop):
    log = []
    loop.call_soon_threadsafe(log.append, 1)
    loop.call_soon(log.append, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == [1, 2]


def test_call_soon_threadsafe_before_run(loop):
    log = []

    def poster():
        loop.call_soon_threadsafe(log.append, "from-thread")

    t = threading.Thread(target=poster)
    t.start()
    t.join(WAIT)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["from-thread"]


def test_call_soon_threadsafe_wakes_blocked_loop(loop):
    # The loop has nothing to do and no timers: it blocks indefinitely
    # until another thread posts a callback.
    t, errors = run_loop_in_thread(loop)
    wait_blocked_in_poll(t.native_id)
    ran = threading.Event()
    loop.call_soon_threadsafe(ran.set)
    assert ran.wait(WAIT), "call_soon_threadsafe did not wake the loop"
    loop.call_soon_threadsafe(loop.stop)
    t.join(WAIT)
    assert not t.is_alive(), "loop did not stop"
    assert errors == []


def test_call_soon_threadsafe_wakes_loop_waiting_for_far_timer(loop):
    far = loop.call_later(3600, lambda: None)
    t, errors = run_loop_in_thread(loop)
    wait_blocked_in_poll(t.native_id)
    loop.call_soon_threadsafe(loop.stop)
    t.join(WAIT)
    assert not t.is_alive(), "call_soon_threadsafe did not wake the loop"
    assert errors == []
    far.cancel()


def test_call_soon_threadsafe_repeated_wakeups(loop):
    t, errors = run_loop_in_thread(loop)
    for i in range(20):
        ev = threading.Event()
        loop.call_soon_threadsafe(ev.set)
        assert ev.wait(WAIT), "wake-up %d lost" % i
        if i % 5 == 0:
            wait_blocked_in_poll(t.native_id)  # let the loop block again
    loop.call_soon_threadsafe(loop.stop)
    t.join(WAIT)
    assert not t.is_alive()
    assert errors == []


def test_call_soon_threadsafe_many_threads(loop):
    nthreads, per_thread = 8, 250
    total = nthreads * per_thread
    received = []
    done = threading.Event()

    def record(tid, i):
        received.append((tid, i))
        if len(received) == total:
            done.set()

    t, errors = run_loop_in_thread(loop)
    barrier = threading.Barrier(nthreads)

    def poster(tid):
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(record, tid, i)

    posters = [threading.Thread(target=poster, args=(n,)) for n in range(nthreads)]
    for p in posters:
        p.start()
    for p in posters:
        p.join(WAIT)
    assert done.wait(WAIT), "only %d of %d callbacks ran" % (len(received), total)
    loop.call_soon_threadsafe(loop.stop)
    t.join(WAIT)
    assert not t.is_alive()
    assert errors == []
    assert len(received) == total
    # FIFO per posting thread
    for tid in range(nthreads):
        seq = [i for (n, i) in received if n == tid]
        assert seq == list(range(per_thread))


def test_call_soon_threadsafe_cancel_before_run(loop):
    log = []
    h = loop.call_soon_threadsafe(log.append, "x")
    h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == []
    assert h.cancelled()


def test_call_soon_threadsafe_passes_args(loop):
    log = []
    loop.call_soon_threadsafe(lambda *a: log.append(a), 1, 2, 3)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == [(1, 2, 3)]


# --------------------------------------------------------------------------
# contextvars
# --------------------------------------------------------------------------


def _schedule(loop, method, cb, *args, **kw):
    if method == "call_soon":
        return loop.call_soon(cb, *args, **kw)
    if method == "call_soon_threadsafe":
        return loop.call_soon_threadsafe(cb, *args, **kw)
    if method == "call_later":
        return loop.call_later(0.001, cb, *args, **kw)
    if method == "call_at":
        return loop.call_at(loop.time() + 0.001, cb, *args, **kw)
    raise AssertionError(method)


METHODS = ["call_soon", "call_soon_threadsafe", "call_later", "call_at"]


@pytest.mark.parametrize("method", METHODS)
def test_explicit_context_is_used(loop, method):
    ctx = contextvars.Context()
    ctx.run(VAR.set, "in-ctx")
    seen = []

    def cb(arg):
        seen.append((arg, VAR.get(), contextvars.copy_context().get(VAR)))
        VAR.set("changed-by-cb")

    VAR.set("caller")
    _schedule(loop, method, cb, "arg", context=ctx)
    run_until(loop, lambda: seen)
    assert seen == [("arg", "in-ctx", "in-ctx")]
    # The callback ran *in* ctx: its change is visible there ...
    assert ctx[VAR] == "changed-by-cb"
    # ... and did not leak into the caller's context.
    assert VAR.get() == "caller"


@pytest.mark.parametrize("method", METHODS)
def test_default_context_is_copy_at_schedule_time(loop, method):
    seen = []

    def cb(tag):
        seen.append((tag, VAR.get()))
        VAR.set("set-by-" + tag)

    def run_in_fresh_context():
        VAR.set("A")
        _schedule(loop, method, cb, "first")
        VAR.set("B")
        _schedule(loop, method, cb, "second")
        VAR.set("C")

    ctx = contextvars.copy_context()
    ctx.run(run_in_fresh_context)
    run_until(loop, lambda: len(seen) == 2)
    # each callback sees the value current when it was scheduled, and
    # does not see what the other callback set
    assert sorted(seen) == [("first", "A"), ("second", "B")]
    assert ctx[VAR] == "C"
    assert VAR.get() == "default"


def test_explicit_context_shared_between_callbacks(loop):
    ctx = contextvars.copy_context()
    seen = []

    def setter():
        VAR.set("from-setter")

    def getter():
        seen.append(VAR.get())

    loop.call_soon(setter, context=ctx)
    loop.call_soon(getter, context=ctx)
    loop.call_soon(getter)  # a copy of the caller's context
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["from-setter", "default"]


def test_context_of_threadsafe_callback_from_other_thread(loop):
    seen = []

    def poster():
        VAR.set("thread-value")
        loop.call_soon_threadsafe(lambda: seen.append(VAR.get()))

    t = threading.Thread(target=poster)
    t.start()
    t.join(WAIT)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["thread-value"]


def test_context_none_means_copy(loop):
    seen = []
    VAR.set("outer")
    try:
        loop.call_soon(lambda: seen.append(VAR.get()), context=None)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        VAR.set("default")
    assert seen == ["outer"]


def test_invalid_context_object_goes_to_exception_handler(loop):
    # stdlib: Handle._run calls context.run -> AttributeError, reported to
    # the exception handler; the loop keeps running.
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    log = []
    h = loop.call_soon(log.append, "x", context=object())
    loop.call_soon(log.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["after"]
    assert len(contexts) == 1
    assert contexts[0]["handle"] is h
    assert isinstance(contexts[0]["exception"], Exception)


def test_run_coroutine_threadsafe(loop):
    t, errors = run_loop_in_thread(loop)

    async def add(a, b):
        await asyncio.sleep(0.01)
        return a + b

    try:
        cf = asyncio.run_coroutine_threadsafe(add(2, 3), loop)
        assert cf.result(WAIT) == 5
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(WAIT)
    assert not t.is_alive()
    assert errors == []


def test_loop_objects_are_weakrefable_and_take_attributes(loop):
    import weakref

    assert weakref.ref(loop)() is loop
    loop.some_library_attribute = "value"
    assert loop.some_library_attribute == "value"
