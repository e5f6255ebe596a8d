"""call_later / call_at / time().

Reference: BaseEventLoop.call_later/call_at/time/_run_once in
asyncio/base_events.py.  The stdlib clock is time.monotonic(); a timer is
moved to the ready queue when ``when < loop.time() + clock_resolution``, so
it never runs before its deadline (give or take the clock resolution).
"""

import asyncio
import contextvars
import gc
import math
import random
import sys
import time
import warnings
import weakref

import pytest

from support import run_until, until

RES = time.get_clock_info("monotonic").resolution


# --------------------------------------------------------------------------
# time()
# --------------------------------------------------------------------------


def _assert_between(before, t, after):
    # loop.time() reads time.monotonic()'s clock: a reading falls between
    # two readings of time.monotonic() taken around it.
    assert before - RES <= t <= after + RES, (before, t, after)


def test_time_is_float_close_to_monotonic(loop):
    before = time.monotonic()
    t = loop.time()
    after = time.monotonic()
    assert isinstance(t, float)
    _assert_between(before, t, after)


def test_time_never_decreases(loop):
    prev = loop.time()
    for _ in range(2000):
        now = loop.time()
        assert now >= prev
        prev = now


def test_time_advances_inside_a_long_callback(loop):
    # loop.time() is a live clock, not a value cached at the start of the
    # iteration.
    seen = []

    def cb():
        a = loop.time()
        time.sleep(0.1)
        before = time.monotonic()
        b = loop.time()
        seen.append((a, before, b, time.monotonic()))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    (a, before, b, after), = seen
    assert b - a >= 0.1 - 0.01
    _assert_between(before, b, after)


def test_time_while_running_close_to_monotonic(loop):
    seen = []

    async def main():
        for _ in range(5):
            await asyncio.sleep(0.01)
            seen.append((time.monotonic(), loop.time(), time.monotonic()))

    loop.run_until_complete(main())
    assert len(seen) == 5
    for before, t, after in seen:
        _assert_between(before, t, after)


# --------------------------------------------------------------------------
# ordering
# --------------------------------------------------------------------------


def test_call_later_ordering_by_delay(loop):
    log = []
    delays = [0.05, 0.01, 0.03, 0.0, 0.02, 0.04]
    for d in delays:
        loop.call_later(d, log.append, d)
    loop.call_later(0.1, loop.stop)
    loop.run_forever()
    assert log == sorted(delays)


def test_call_at_ordering_by_when(loop):
    log = []
    base = loop.time()
    offsets = list(range(20))
    random.Random(42).shuffle(offsets)
    for off in offsets:
        loop.call_at(base + off * 0.002, log.append, off)
    loop.call_at(base + 0.1, loop.stop)
    loop.run_forever()
    assert log == sorted(offsets)


def test_call_later_and_call_at_interleave(loop):
    log = []
    now = loop.time()
    loop.call_at(now + 0.03, log.append, "at-30")
    loop.call_later(0.01, log.append, "later-10")
    loop.call_at(now + 0.02, log.append, "at-20")
    loop.call_later(0.04, log.append, "later-40")
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    assert log == ["later-10", "at-20", "at-30", "later-40"]


def test_same_when_all_run(loop):
    log = []
    when = loop.time() + 0.02
    handles = [loop.call_at(when, log.append, i) for i in range(50)]
    loop.call_at(when + 0.02, loop.stop)
    loop.run_forever()
    # The stdlib only guarantees that they all run (order is documented as
    # undefined for equal deadlines: its heap is not stable).
    assert sorted(log) == list(range(50))
    assert all(h.when() == when for h in handles)


@pytest.mark.only_loop(
    "ourloop",
    reason="the stdlib heap does not keep scheduling order for equal `when` "
    "(documented as undefined); ourloop promises FIFO",
)
def test_same_when_keeps_scheduling_order(loop):
    log = []
    when = loop.time() + 0.02
    for i in range(50):
        loop.call_at(when, log.append, i)
    loop.call_at(when + 0.02, loop.stop)
    loop.run_forever()
    assert log == list(range(50))


def test_call_later_zero_in_sequence_keeps_order(loop):
    log = []
    for i in range(50):
        loop.call_later(0, log.append, i)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert log == list(range(50))


def test_due_timer_runs_after_ready_callbacks_of_same_iteration(loop):
    # Stdlib: the ready queue is run after due timers are *appended* to it,
    # so callbacks already scheduled with call_soon run first.
    log = []
    loop.call_later(0, log.append, "later0")
    loop.call_soon(log.append, "soon")
    loop.call_later(-1, log.append, "later-neg")
    loop.call_soon(log.append, "soon2")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert log[:2] == ["soon", "soon2"]
    assert sorted(log[2:]) == ["later-neg", "later0"]
    assert log[2:] == ["later-neg", "later0"]  # ordered by when


def test_timer_callback_can_schedule_timers(loop):
    log = []

    def first():
        log.append("first")
        loop.call_later(0.01, second)

    def second():
        log.append("second")
        loop.stop()

    loop.call_later(0.01, first)
    loop.run_forever()
    assert log == ["first", "second"]


# --------------------------------------------------------------------------
# deadlines
# --------------------------------------------------------------------------


def test_timer_never_fires_before_its_when(loop):
    results = []
    handles = {}

    def cb(key, scheduled_at, delay):
        results.append(
            (key, loop.time(), handles[key].when(), time.monotonic() - scheduled_at, delay)
        )

    for key, delay in enumerate([0.0, 0.001, 0.005, 0.01, 0.02, 0.05]):
        scheduled_at = time.monotonic()
        handles[key] = loop.call_later(delay, cb, key, scheduled_at, delay)
    run_until(loop, lambda: len(results) == len(handles))
    for key, now, when, elapsed, delay in results:
        assert now + RES >= when, (key, now, when)
        assert elapsed + RES >= delay, (key, elapsed, delay)


def test_call_at_never_fires_before_its_when(loop):
    seen = []
    when = loop.time() + 0.03
    loop.call_at(when, lambda: seen.append(loop.time()))
    run_until(loop, lambda: seen)
    assert seen[0] + RES >= when


def test_call_later_from_long_callback_uses_current_time(loop):
    # A loop that caches "now" at the start of an iteration would compute
    # the deadline from a stale time and fire the timer early in real time.
    seen = []

    def late():
        seen.append(time.monotonic())
        loop.stop()

    state = {}

    def slow():
        time.sleep(0.05)
        state["t0"] = time.monotonic()
        state["h"] = loop.call_later(0.05, late)

    loop.call_soon(slow)
    loop.run_forever()
    assert seen, "timer did not fire"
    assert seen[0] - state["t0"] + RES >= 0.05
    assert state["h"].when() + RES >= state["t0"] + 0.05


def test_asyncio_sleep_does_not_return_early(loop):
    async def main():
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        return time.monotonic() - t0

    assert loop.run_until_complete(main()) + RES >= 0.05


def test_call_later_zero_and_negative(loop):
    log = []
    before = loop.time()
    h0 = loop.call_later(0, log.append, "zero")
    hneg = loop.call_later(-5, log.append, "negative")
    after = loop.time()
    assert callable(h0.when) and callable(hneg.when)
    assert before <= h0.when() <= after
    assert before - 5 <= hneg.when() <= after - 5
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert log == ["negative", "zero"]


def test_call_at_in_the_past_runs(loop):
    log = []
    loop.call_at(loop.time() - 100, log.append, "past")
    loop.call_at(0, log.append, "zero")  # when=0 is long past
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert sorted(log) == ["past", "zero"]
    assert log == ["zero", "past"]  # ordered by when


def test_call_later_when_is_time_plus_delay(loop):
    before = loop.time()
    h = loop.call_later(10, lambda: None)
    after = loop.time()
    assert before + 10 <= h.when() <= after + 10
    h.cancel()


def test_call_at_when_is_exact(loop):
    when = loop.time() + 12.345678
    h = loop.call_at(when, lambda: None)
    assert h.when() == when
    h.cancel()


@pytest.mark.parametrize("delay", [1e9, float("inf")])
def test_huge_delay_never_fires_and_loop_still_works(loop, delay):
    log = []
    h = loop.call_later(delay, log.append, "huge")
    loop.call_later(0.01, log.append, "small")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert log == ["small"]
    assert h.when() >= delay
    h.cancel()
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert log == ["small"]


def test_call_later_args_passed(loop):
    log = []
    loop.call_later(0.001, lambda *a: log.append(a), 1, "2", None)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert log == [(1, "2", None)]


def test_call_later_rejects_keyword_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_later(0, print, end="")
    with pytest.raises(TypeError):
        loop.call_at(loop.time(), print, end="")


def test_call_later_delay_none(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, print)
    if sys.version_info >= (3, 11):
        with pytest.raises(TypeError, match="^delay must not be None$"):
            loop.call_later(None, print)


def test_call_at_when_none(loop):
    if sys.version_info >= (3, 11):
        with pytest.raises(TypeError, match="^when cannot be None$"):
            loop.call_at(None, print)
    else:  # 3.9/3.10: TimerHandle.__init__ asserts
        with pytest.raises((TypeError, AssertionError)):
            loop.call_at(None, print)


def test_timers_fire_during_run_until_complete(loop):
    log = []
    loop.call_later(0.01, log.append, "a")
    loop.call_later(0.02, log.append, "b")

    async def main():
        await until(lambda: len(log) >= 2)

    loop.run_until_complete(main())
    assert log == ["a", "b"]


def test_pending_timer_survives_between_runs(loop):
    log = []
    loop.call_later(0.05, log.append, "timer")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == []
    run_until(loop, lambda: log)
    assert log == ["timer"]


# --------------------------------------------------------------------------
# cancellation
# --------------------------------------------------------------------------


def test_cancelled_timer_never_runs(loop):
    log = []
    h = loop.call_later(0.01, log.append, "cancelled")
    h2 = loop.call_at(loop.time() + 0.01, log.append, "cancelled-at")
    h.cancel()
    h2.cancel()
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert log == []


def test_cancel_timer_from_earlier_timer(loop):
    log = []
    handles = {}

    def first():
        log.append("first")
        handles["second"].cancel()

    loop.call_later(0.01, first)
    handles["second"] = loop.call_later(0.02, log.append, "second")
    loop.call_later(0.04, loop.stop)
    loop.run_forever()
    assert log == ["first"]


def test_cancel_timer_due_in_same_iteration(loop):
    # Both timers are due in the same iteration; the first cancels the
    # second, which must then not run.
    log = []
    handles = {}
    when = loop.time() + 0.01

    def first():
        log.append("first")
        handles["second"].cancel()

    loop.call_at(when, first)
    handles["second"] = loop.call_at(when + 1e-6, log.append, "second")
    loop.call_at(when + 0.02, loop.stop)
    loop.run_forever()
    assert log == ["first"]


def test_cancel_thousands_of_far_timers(loop):
    handles = [loop.call_later(3600 + i, print, i) for i in range(10000)]
    for h in handles:
        h.cancel()
    log = []
    for i in range(5):
        loop.call_later(0.001 * i, log.append, i)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert log == list(range(5))
    assert all(h.cancelled() for h in handles)


def test_cancel_many_due_timers(loop):
    log = []
    rnd = random.Random(1234)
    handles = []
    for i in range(5000):
        handles.append(loop.call_later(rnd.random() * 0.05, log.append, i))
    cancelled = set()
    for i, h in enumerate(handles):
        if i % 3:
            h.cancel()
            cancelled.add(i)
    expected = [i for i in range(5000) if i not in cancelled]
    run_until(loop, lambda: len(log) >= len(expected))
    # let anything that should not run have a chance to run
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    assert sorted(log) == expected
    whens = [handles[i].when() for i in log]
    assert whens == sorted(whens)


def test_unclosed_loop_with_timer_referring_to_it_is_collected(loop_factory):
    # loop -> pending timer -> callback -> loop: a cycle the GC must see
    # through the loop's timer heap.
    lp = loop_factory()
    lp.call_later(3600, lp.stop)
    ref = weakref.ref(lp)
    del lp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
        gc.collect()
    assert ref() is None


class _SchedulesOnDel:
    """Schedules a timer (and cancels another) when it is released."""

    def __init__(self, loop, log, tag):
        self.loop, self.log, self.tag = loop, log, tag

    def __del__(self):
        self.loop.call_later(0, self.log.append, self.tag)
        self.loop.call_later(3600, self.log.append, "never").cancel()


_held = contextvars.ContextVar("held")


def _noop():
    pass


@pytest.mark.parametrize("count", [10, 500])
def test_dropping_cancelled_timers_may_schedule_timers(loop, count):
    # A cancelled timer keeps its context until the loop drops the timer;
    # releasing that context releases an object whose finalizer schedules
    # and cancels timers while the heap is being pruned (at the top for a
    # few cancelled timers, in one rebuild for most of 500).
    log = []
    handles = []
    for i in range(count):
        ctx = contextvars.Context()
        ctx.run(_held.set, _SchedulesOnDel(loop, log, i))
        handles.append(loop.call_later(0.001 * (i % 3), _noop, context=ctx))
    ctx = None
    for i in range(count - 2):
        handles[i].cancel()
    handles = None
    # Each finalizer logs through a call_later(0), in a later iteration than
    # the one that released it: wait for all of them (a stop at a fixed time
    # came first when the loop's first iteration was that late).
    run_until(loop, lambda: len([x for x in log if x != "never"]) >= count)
    assert sorted(x for x in log if x != "never") == list(range(count))
    assert "never" not in log


def test_cancel_and_reschedule_churn(loop):
    # e.g. a timeout that is constantly pushed back
    fired = []
    h = loop.call_later(0.5, fired.append, "old")
    for i in range(2000):
        h.cancel()
        h = loop.call_later(0.5 + i * 1e-6, fired.append, i)
    h.cancel()
    h = loop.call_later(0.005, fired.append, "last")
    run_until(loop, lambda: fired)
    assert fired == ["last"]


def test_cancelling_current_timer_inside_its_callback(loop):
    log = []
    holder = {}

    def cb():
        holder["h"].cancel()
        log.append(holder["h"].cancelled())

    holder["h"] = loop.call_later(0.001, cb)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert log == [True]


def test_timer_when_is_float_for_call_later(loop):
    h = loop.call_later(1, print)
    assert isinstance(h.when(), float)
    assert not math.isnan(h.when())
    h.cancel()


@pytest.mark.parametrize("scenario", ["nothing-scheduled", "far-timer", "near-timer"])
def test_idle_loop_does_not_busy_wait(loop, scenario):
    # Sanity bound, not a benchmark: while the loop has nothing to do for
    # 0.4 s, the thread running it must mostly sleep in the kernel.
    import threading

    far = None
    if scenario == "nothing-scheduled":
        threading.Timer(0.4, loop.call_soon_threadsafe, (loop.stop,)).start()
    elif scenario == "far-timer":
        far = loop.call_later(3600, print)
        threading.Timer(0.4, loop.call_soon_threadsafe, (loop.stop,)).start()
    else:
        loop.call_later(0.4, loop.stop)
    cpu0, wall0 = time.thread_time(), time.monotonic()
    loop.run_forever()
    cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
    if far is not None:
        far.cancel()
    assert wall >= 0.35
    assert cpu < 0.5 * wall, "loop thread used %.3f s of CPU in %.3f s idle" % (cpu, wall)


def test_wait_for_times_out(loop):
    async def main():
        t0 = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), 0.02)
        return loop.time() - t0

    assert loop.run_until_complete(main()) + RES >= 0.02


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in Python 3.11")
def test_asyncio_timeout_and_reschedule(loop):
    async def main():
        async with asyncio.timeout(10) as cm:
            # rescheduling uses call_at() and TimerHandle.when()
            cm.reschedule(loop.time() + 0.02)
            assert cm.when() is not None
            await asyncio.sleep(3600)
        return "unreachable"

    with pytest.raises(TimeoutError):
        loop.run_until_complete(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in Python 3.11")
def test_asyncio_timeout_at_not_reached(loop):
    async def main():
        async with asyncio.timeout_at(loop.time() + 10):
            await asyncio.sleep(0.01)
        return "done"

    assert loop.run_until_complete(main()) == "done"


@pytest.mark.only_loop(
    "ourloop",
    reason="the stdlib has no single answer for a NaN deadline: up to 3.12 "
    "the callback runs at once, 3.13's selector raises ValueError",
)
def test_nan_deadline_runs_at_once_and_keeps_timers_working(loop):
    log = []
    nan = float("nan")
    loop.call_later(nan, log.append, "nan-later")
    loop.call_at(nan, log.append, "nan-at")
    loop.call_later(0.01, log.append, "timer")
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    # Both NaN callbacks ran first, and the ordinary timer still fired.
    assert log == ["nan-later", "nan-at", "timer"]


@pytest.mark.only_loop(
    "ourloop",
    reason="regression guard for a libuv-specific hang (the stdlib has no "
    "libuv timer to lose)",
)
def test_many_sub_millisecond_sleeps_never_hang(run_py):
    # With libuv 1.44, a timer alarm armed for 1 ms could fire inside
    # uv_run's own timer pass, just before uv_run computed its poll timeout;
    # with no libuv timer left, the poll then slept forever. In a sequence
    # of a few thousand sub-millisecond sleeps that used to happen about
    # once in three runs.
    result = run_py(
        """
        import faulthandler
        faulthandler.dump_traceback_later(50, exit=True)

        async def main():
            for _ in range(4000):
                await asyncio.sleep(0.0005)
            return "done"

        loop = new_loop()
        print(loop.run_until_complete(main()))
        loop.close()
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["done"]


# --------------------------------------------------------------------------
# a replaced time(): the stdlib's call_later() and due-time checks call
# self.time(), so a subclass, a patched instance or a patched class moves
# the timers (aiohttp's tests and time-faking tools rely on it).
# --------------------------------------------------------------------------


class _Clock:
    """A loop clock running `offset` seconds ahead of the real one."""

    def __init__(self, real):
        self.real = real
        self.offset = 0.0

    def __call__(self):
        return self.real() + self.offset


def _jump_fires_far_timer(loop, clock):
    fired = []

    async def main():
        handle = loop.call_later(1000, fired.append, "far")
        when = handle.when()
        await asyncio.sleep(0)
        clock.offset += 1001
        # A short sleep lets the loop look at its (patched) clock again.
        await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        return when

    when = loop.run_until_complete(main())
    return fired, when


def test_patched_instance_time_moves_timers(loop):
    clock = _Clock(loop.time)
    loop.time = clock
    clock.offset = 5000.0
    try:
        fired, when = _jump_fires_far_timer(loop, clock)
    finally:
        del loop.time
    assert fired == ["far"]
    # call_later() computed its deadline with the patched clock.
    assert when > 5000 + 1000 + clock.real() - 60


def test_time_patched_with_mock_then_restored(loop):
    from unittest import mock

    clock = _Clock(loop.time)
    with mock.patch.object(loop, "time", clock):
        fired, _ = _jump_fires_far_timer(loop, clock)
    assert fired == ["far"]
    assert "time" not in vars(loop)
    # Restored: a short timer runs on the real clock again.
    before = time.monotonic()
    t = loop.time()
    _assert_between(before, t, time.monotonic())
    assert loop.run_until_complete(asyncio.sleep(0.001, "ok")) == "ok"
    before = time.monotonic()
    handle = loop.call_later(10, lambda: None)
    _assert_between(before + 10, handle.when(), time.monotonic() + 10)
    handle.cancel()


def test_subclass_time_moves_timers(loop_factory):
    probe = loop_factory()
    base = type(probe)
    probe.close()

    class Shifted(base):
        offset = 0.0

        def time(self):
            return super().time() + self.offset

    loop = Shifted()
    try:
        fired = []

        async def main():
            loop.call_later(1000, fired.append, "far")
            await asyncio.sleep(0)
            loop.offset = 1001.0
            await asyncio.sleep(0.001)
            await asyncio.sleep(0)

        loop.run_until_complete(main())
    finally:
        loop.close()
    assert fired == ["far"]


def test_class_patched_time_moves_timers(loop):
    from unittest import mock

    clock = _Clock(time.monotonic)
    with mock.patch.object(type(loop), "time", lambda self: clock()):
        fired, _ = _jump_fires_far_timer(loop, clock)
    assert fired == ["far"]


# --------------------------------------------------------------------------
# The context a timer runs in
# --------------------------------------------------------------------------
# Without context=, call_later() and call_at() give the timer a copy of the
# context current when they are called (asyncio.Handle.__init__). ourloop
# makes that copy when the timer runs, from the variables kept at
# scheduling (ourloop/includes/callbacks.h, "Copies made late"); none of
# this may show.

_var = contextvars.ContextVar("timer_var", default="unset")


def _context_of(handle):
    # Handle.get_context() is new in 3.12; _context is asyncio.Handle's
    # attribute on every version.
    return handle.get_context() if sys.version_info >= (3, 12) else handle._context


@pytest.mark.parametrize("how", ["call_later", "call_at"])
def test_timer_runs_in_copy_of_context_at_scheduling(loop, how):
    seen = []

    def cb(tag):
        seen.append((tag, _var.get()))
        _var.set(f"changed by {tag}")      # stays in this timer's copy

    def schedule(tag, value):
        _var.set(value)
        if how == "call_later":
            return loop.call_later(0, cb, tag)
        return loop.call_at(loop.time(), cb, tag)

    ctx = contextvars.copy_context()
    h1 = ctx.run(schedule, "a", "first")
    h2 = ctx.run(schedule, "b", "second")
    ctx.run(_var.set, "after scheduling")   # a copy is not the context
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == [("a", "first"), ("b", "second")]
    assert ctx[_var] == "after scheduling"
    assert _var.get() == "unset"
    assert _context_of(h1) is not _context_of(h2)
    assert _context_of(h1)[_var] == "changed by a"
    assert _context_of(h2)[_var] == "changed by b"


def test_timer_context_asked_before_it_runs_is_the_one_it_runs_in(loop):
    seen = []

    def cb():
        seen.append(_var.get())
        seen.append(contextvars.copy_context()[_var])

    _var.set("scheduled")
    try:
        h = loop.call_later(0, cb)
    finally:
        _var.set("unset")
    ctx = _context_of(h)
    assert isinstance(ctx, contextvars.Context)
    assert ctx is _context_of(h)
    assert ctx[_var] == "scheduled"
    ctx.run(_var.set, "set in the handle's context before it ran")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ["set in the handle's context before it ran"] * 2
    assert _context_of(h) is ctx


def test_timer_context_asked_inside_its_callback(loop):
    got = []

    def cb():
        _var.set("inside")
        got.append(_context_of(handle))

    handle = loop.call_later(0, cb)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert got == [_context_of(handle)]
    assert got[0][_var] == "inside"
    assert _var.get() == "unset"


def test_timer_private_context_attribute_matches_get_context(loop):
    # asyncio.Handle keeps its context in _context; code reads it.
    h = loop.call_later(3600, _noop)
    try:
        assert isinstance(h._context, contextvars.Context)
        assert h._context is h._context
        if sys.version_info >= (3, 12):
            assert h._context is h.get_context()
    finally:
        h.cancel()
    assert isinstance(h._context, contextvars.Context)   # kept when cancelled


def test_timer_with_explicit_context_runs_in_it(loop):
    ctx = contextvars.copy_context()
    ctx.run(_var.set, "explicit")
    seen = []
    h = loop.call_later(0, lambda: seen.append((_var.get(), contextvars.copy_context()[_var])),
                        context=ctx)
    assert h._context is ctx
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == [("explicit", "explicit")]


def test_timer_context_in_debug_mode(loop):
    loop.set_debug(True)
    seen = []
    _var.set("debug")
    try:
        loop.call_later(0, lambda: seen.append(_var.get()))
    finally:
        _var.set("unset")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ["debug"]


def test_run_of_a_pending_timer_uses_its_context(loop):
    # Handle._run() (asyncio's, called by code that runs a handle itself)
    # runs in the handle's context.
    seen = []
    _var.set("for _run")
    try:
        h = loop.call_later(3600, lambda: seen.append(_var.get()))
    finally:
        _var.set("unset")
    h._run()
    h.cancel()
    assert seen == ["for _run"]


def test_many_timers_each_get_their_own_context(loop):
    seen = []

    def cb(i):
        assert _var.get() == f"v{i}"
        _var.set(f"changed {i}")
        seen.append(i)

    for i in range(300):          # past the interpreter's 255 free contexts
        _var.set(f"v{i}")
        loop.call_later(0, cb, i)
    _var.set("unset")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert seen == list(range(300))


def test_context_variables_of_pending_timers_are_released(loop):
    # A value only pending timers' contexts hold is released once they ran.
    class Value:
        pass

    v = Value()
    ref = weakref.ref(v)
    _var.set(v)
    for _ in range(3):
        loop.call_later(0, _noop)
    _var.set("unset")
    del v
    gc.collect()
    assert ref() is not None          # the timers' contexts hold it
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    gc.collect()
    assert ref() is None


def test_pending_timers_hold_no_context_objects(loop, is_ourloop):
    # ourloop's improvement: no Context per pending timer (the stdlib's
    # loop copies one at scheduling).
    def contexts():
        return sum(1 for o in gc.get_objects() if type(o) is contextvars.Context)

    _var.set("x")                   # a context of this thread exists
    gc.collect()
    before = contexts()
    handles = [loop.call_later(3600, _noop) for _ in range(200)]
    made = contexts() - before
    if is_ourloop:
        assert made == 0
    else:
        assert made >= 200
    for h in handles:
        h.cancel()
