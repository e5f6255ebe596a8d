"""Handle / TimerHandle as returned by call_soon*, call_later, call_at.

Reference: asyncio/events.py (Handle, TimerHandle).
"""

import asyncio
import contextvars
import os
import re
import sys
import weakref

import pytest

THIS_FILE = os.path.basename(__file__)

needs_get_context = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="Handle.get_context() is new in Python 3.12"
)


def my_callback(*args):
    pass


def _lineno():
    return sys._getframe(1).f_lineno


# --------------------------------------------------------------------------
# types
# --------------------------------------------------------------------------


def test_call_soon_returns_asyncio_handle(loop):
    # docs: "Return an instance of asyncio.Handle"
    h = loop.call_soon(my_callback)
    assert isinstance(h, asyncio.Handle)
    assert not isinstance(h, asyncio.TimerHandle)
    h.cancel()


def test_call_soon_threadsafe_returns_asyncio_handle(loop):
    h = loop.call_soon_threadsafe(my_callback)
    assert isinstance(h, asyncio.Handle)
    h.cancel()


@pytest.mark.parametrize("method", ["call_later", "call_at"])
def test_timers_return_asyncio_timerhandle(loop, method):
    if method == "call_later":
        h = loop.call_later(10, my_callback)
    else:
        h = loop.call_at(loop.time() + 10, my_callback)
    assert isinstance(h, asyncio.TimerHandle)
    assert isinstance(h, asyncio.Handle)
    h.cancel()


def test_timer_handle_type_is_handle_subclass(loop):
    h = loop.call_soon(my_callback)
    th = loop.call_later(10, my_callback)
    assert issubclass(type(th), type(h))
    h.cancel()
    th.cancel()


def test_plain_handle_has_no_when(loop):
    h = loop.call_soon(my_callback)
    assert not hasattr(h, "when")
    h.cancel()


def test_handles_are_weakrefable_and_hashable(loop):
    h = loop.call_soon(my_callback)
    th = loop.call_later(10, my_callback)
    assert weakref.ref(h)() is h
    assert weakref.ref(th)() is th
    d = {h: 1, th: 2}
    assert d[h] == 1 and d[th] == 2
    h.cancel()
    th.cancel()


# --------------------------------------------------------------------------
# cancel / cancelled
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_cancel(loop, method):
    log = []
    if method == "call_soon":
        h = loop.call_soon(log.append, 1)
    elif method == "call_soon_threadsafe":
        h = loop.call_soon_threadsafe(log.append, 1)
    elif method == "call_later":
        h = loop.call_later(0, log.append, 1)
    else:
        h = loop.call_at(loop.time(), log.append, 1)
    assert h.cancelled() is False
    assert h.cancel() is None
    assert h.cancelled() is True
    h.cancel()  # twice is fine
    assert h.cancelled() is True
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert log == []


def test_cancel_after_run(loop):
    log = []
    h = loop.call_soon(log.append, 1)
    th = loop.call_later(0, log.append, 2)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert log == [1, 2]
    assert not h.cancelled() and not th.cancelled()
    h.cancel()
    th.cancel()
    assert h.cancelled() and th.cancelled()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert log == [1, 2]


def test_handle_kept_after_run_is_not_reused(loop):
    # A Handle the caller still holds keeps its callback and arguments
    # after it ran, whatever the loop schedules next.
    log = []
    kept = loop.call_soon(log.append, "kept")
    loop.call_soon(loop.stop)
    loop.run_forever()
    others = [loop.call_soon(log.append, i) for i in range(3)]
    assert all(h is not kept for h in others)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["kept", 0, 1, 2]
    assert kept._callback == log.append and kept._args == ("kept",)
    assert "append" in repr(kept)
    assert not kept.cancelled()


CTX_VAR = contextvars.ContextVar("CTX_VAR", default="default")


class _Value:
    """A context variable's value that weak references can watch."""


def _run_once_more(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_context_of_a_callback_is_new_for_each_call_soon(loop):
    # Each call_soon() copies the current context afresh: what a callback
    # set in its copy is not in the copy of a later call_soon(), and a
    # value only its copy held is released once the callback ran.
    seen = []
    refs = []

    def setter():
        value = _Value()
        refs.append(weakref.ref(value))
        CTX_VAR.set(value)

    def getter():
        seen.append(CTX_VAR.get())

    for _ in range(3):
        for _ in range(5):
            loop.call_soon(setter)
        _run_once_more(loop)
        for _ in range(5):
            loop.call_soon(getter)
        _run_once_more(loop)
    assert seen == ["default"] * 15
    assert len(refs) == 15 and all(ref() is None for ref in refs)
    assert CTX_VAR.get() == "default"


def test_context_kept_by_someone_else_is_left_alone(loop):
    # A callback's context that the caller kept (here through the Handle's
    # _context, the stdlib's attribute) stays that context: later
    # callbacks get contexts of their own, and its variables stay.
    kept = []

    def setter(tag):
        CTX_VAR.set(tag)

    for tag in ("a", "b"):
        kept.append(loop.call_soon(setter, tag)._context)
    _run_once_more(loop)
    seen = []
    handles = []
    for tag in ("c", "d"):
        token = CTX_VAR.set(tag)
        try:
            handles.append(loop.call_soon(lambda: seen.append(CTX_VAR.get())))
        finally:
            CTX_VAR.reset(token)
    assert all(h._context is not ctx for h in handles for ctx in kept)
    del handles
    _run_once_more(loop)
    assert seen == ["c", "d"]
    assert [ctx[CTX_VAR] for ctx in kept] == ["a", "b"]


def test_weakly_referenced_context_dies_after_run(loop):
    # A callback's context that only a weak reference watches dies with
    # its Handle, as with the stdlib: never kept for another callback.
    log = []
    refs = [weakref.ref(loop.call_soon(log.append, i)._context) for i in range(3)]
    _run_once_more(loop)
    later = [loop.call_soon(log.append, i) for i in range(3, 6)]
    assert all(ref() is None for ref in refs)
    del later
    _run_once_more(loop)
    assert log == list(range(6))


def test_weakly_referenced_handle_dies_after_run(loop):
    # Nothing but a weak reference holds the Handle once it ran: the weak
    # reference dies, and never sees a Handle scheduled later.
    log = []
    ref = weakref.ref(loop.call_soon(log.append, 1))
    loop.call_soon(loop.stop)
    loop.run_forever()
    later = loop.call_soon(log.append, 2)
    assert ref() is None
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert ref() is None
    assert log == [1, 2]
    assert later is not None


# --------------------------------------------------------------------------
# when / get_context
# --------------------------------------------------------------------------


def test_when(loop):
    when = loop.time() + 100.5
    h = loop.call_at(when, my_callback)
    assert h.when() == when
    h.cancel()
    assert h.when() == when  # still available after cancel


@needs_get_context
@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_get_context_explicit(loop, method):
    ctx = contextvars.copy_context()
    if method == "call_soon":
        h = loop.call_soon(my_callback, context=ctx)
    elif method == "call_soon_threadsafe":
        h = loop.call_soon_threadsafe(my_callback, context=ctx)
    elif method == "call_later":
        h = loop.call_later(1, my_callback, context=ctx)
    else:
        h = loop.call_at(loop.time() + 1, my_callback, context=ctx)
    assert h.get_context() is ctx
    h.cancel()


@needs_get_context
def test_get_context_default_is_a_copy(loop):
    var = contextvars.ContextVar("handles_var")
    token = var.set("v")
    try:
        h = loop.call_soon(my_callback)
        th = loop.call_later(1, my_callback)
    finally:
        var.reset(token)
    for handle in (h, th):
        ctx = handle.get_context()
        assert isinstance(ctx, contextvars.Context)
        assert ctx is not contextvars.copy_context()
        assert ctx[var] == "v"
        handle.cancel()


# --------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------


def test_repr_contains_callback_name(loop):
    h = loop.call_soon(my_callback)
    r = repr(h)
    assert r.startswith("<Handle") and r.endswith(">"), r
    assert "my_callback" in r
    h.cancel()


def test_repr_contains_args(loop, callback_args_repr):
    # 3.13+ only shows the arguments in debug mode
    h = loop.call_soon(my_callback, 1, "x")
    assert "my_callback" + callback_args_repr("1, 'x'") in repr(h)
    h.cancel()


def test_debug_repr_contains_args(loop, callback_args_repr):
    loop.set_debug(True)
    h = loop.call_soon(my_callback, 1, "x")
    assert "my_callback" + callback_args_repr("1, 'x'", debug=True) in repr(h)
    assert "my_callback(1, 'x')" in repr(h)
    h.cancel()


def test_timer_repr(loop):
    th = loop.call_at(1234.5, my_callback)
    r = repr(th)
    assert r.startswith("<TimerHandle"), r
    assert "when=1234.5" in r
    assert "my_callback" in r
    th.cancel()


def test_cancelled_repr(loop):
    h = loop.call_soon(my_callback)
    h.cancel()
    assert "cancelled" in repr(h)
    th = loop.call_later(10, my_callback)
    th.cancel()
    r = repr(th)
    assert r.startswith("<TimerHandle"), r
    assert "cancelled" in r
    assert "when=" in r


def test_repr_method_callback(loop):
    class Foo:
        def bar(self):
            pass

    h = loop.call_soon(Foo().bar)
    assert "Foo.bar" in repr(h)
    h.cancel()


def test_debug_repr_contains_created_at(loop):
    loop.set_debug(True)
    line = _lineno() + 1
    h = loop.call_soon(my_callback)
    r = repr(h)
    m = re.search(r"created at (.+):(\d+)>$", r)
    assert m, r
    assert os.path.basename(m.group(1)) == THIS_FILE
    assert int(m.group(2)) == line
    h.cancel()


@pytest.mark.parametrize("method", ["call_soon_threadsafe", "call_later", "call_at"])
def test_debug_repr_created_at_other_methods(loop, method):
    loop.set_debug(True)
    if method == "call_soon_threadsafe":
        line = _lineno() + 1
        h = loop.call_soon_threadsafe(my_callback)
    elif method == "call_later":
        line = _lineno() + 1
        h = loop.call_later(10, my_callback)
    else:
        line = _lineno() + 1
        h = loop.call_at(loop.time() + 10, my_callback)
    m = re.search(r"created at (.+):(\d+)>$", repr(h))
    assert m, repr(h)
    assert os.path.basename(m.group(1)) == THIS_FILE
    assert int(m.group(2)) == line
    h.cancel()


def test_debug_cancelled_repr_keeps_callback(loop):
    loop.set_debug(True)
    h = loop.call_soon(my_callback)
    h.cancel()
    r = repr(h)
    assert "cancelled" in r
    assert "my_callback" in r
    assert "created at" in r


def test_non_debug_repr_has_no_created_at(loop):
    h = loop.call_soon(my_callback)
    assert "created at" not in repr(h)
    h.cancel()


# --------------------------------------------------------------------------
# TimerHandle comparisons
# --------------------------------------------------------------------------


def test_timer_ordering(loop):
    t = loop.time() + 100
    h1 = loop.call_at(t, my_callback)
    h2 = loop.call_at(t + 1, my_callback)
    assert h1 < h2
    assert h1 <= h2
    assert h2 > h1
    assert h2 >= h1
    assert not (h2 < h1)
    assert not (h1 > h2)
    assert h1 <= h1 and h1 >= h1
    assert h1 != h2
    assert sorted([h2, h1]) == [h1, h2]
    h1.cancel()
    h2.cancel()


def test_timer_equality(loop):
    t = loop.time() + 100
    h1 = loop.call_at(t, my_callback, 1)
    h2 = loop.call_at(t, my_callback, 1)
    h3 = loop.call_at(t, my_callback, 2)
    # stdlib: equal when, callback, args and cancelled state => equal
    assert h1 == h2
    assert h1 <= h2 and h1 >= h2
    assert hash(h1) == hash(h2)
    assert h1 != h3
    assert not (h1 < h3) and not (h3 < h1)
    h2.cancel()
    assert h1 != h2
    h1.cancel()
    h3.cancel()


def test_timer_hash_follows_when(loop):
    t = loop.time() + 100
    h = loop.call_at(t, my_callback)
    assert hash(h) == hash(t)
    h.cancel()


def test_timer_compare_with_other_types(loop):
    h = loop.call_at(loop.time() + 100, my_callback)
    assert (h == 1) is False
    assert (h != 1) is True
    with pytest.raises(TypeError):
        h < 1  # noqa: B015 (the comparison raises)
    with pytest.raises(TypeError):
        h >= "x"  # noqa: B015 (the comparison raises)
    h.cancel()


def test_plain_handles_compare_by_identity(loop):
    h1 = loop.call_soon(my_callback)
    h2 = loop.call_soon(my_callback)
    assert h1 == h1
    assert h1 != h2
    h1.cancel()
    h2.cancel()


def test_get_context_exists_from_python_3_12(loop):
    # Handle.get_context() is new in 3.12; before it, code that looks for
    # the method must find none, as on the stdlib's handles.
    handles = [loop.call_soon(lambda: None), loop.call_later(3600, lambda: None),
               loop.call_at(loop.time() + 3600, lambda: None)]
    try:
        for h in handles:
            assert hasattr(h, "get_context") == (sys.version_info >= (3, 12))
            assert isinstance(h._context, contextvars.Context)
            if sys.version_info >= (3, 12):
                assert h.get_context() is h._context
    finally:
        for h in handles:
            h.cancel()
