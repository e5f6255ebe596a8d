"""create_future / create_task / task factories / eager tasks.

Reference: BaseEventLoop.create_future/create_task/set_task_factory/
get_task_factory in asyncio/base_events.py.
"""

import asyncio
import contextvars
import inspect
import sys

import pytest

needs_311 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="create_task(context=...) is new in Python 3.11"
)
needs_312 = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12"
)

# 3.14+: create_task() hands name= to the task factory (gh-128307); the
# stdlib's create_task then has no `name` parameter of its own.
FACTORY_TAKES_NAME = "name" not in inspect.signature(asyncio.BaseEventLoop.create_task).parameters

VAR = contextvars.ContextVar("tasks_var", default="default")


async def _value(v):
    await asyncio.sleep(0)
    return v


# --------------------------------------------------------------------------
# create_future
# --------------------------------------------------------------------------


def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert not fut.done()
    loop.call_soon(fut.set_result, 5)
    assert loop.run_until_complete(fut) == 5


def test_create_future_uses_the_current_future_class(loop, monkeypatch):
    # The stdlib calls futures.Future(loop=self) at each call: a class put
    # there later (instrumentation, tests) is the one made, with the loop.
    made = []

    class Traced(asyncio.Future):
        def __init__(self, *, loop=None):
            made.append(loop)
            super().__init__(loop=loop)

    plain = loop.create_future()
    monkeypatch.setattr(asyncio.futures, "Future", Traced)
    fut = loop.create_future()
    monkeypatch.undo()
    again = loop.create_future()
    assert type(fut) is Traced and fut.get_loop() is loop
    assert made == [loop]
    assert type(plain) is asyncio.Future and type(again) is asyncio.Future
    assert again.get_loop() is loop and again is not plain


def test_create_future_in_debug_mode_keeps_its_source(loop):
    # asyncio's Future asks the loop's get_debug() when it is made.
    loop.set_debug(True)
    try:
        fut = loop.create_future()
    finally:
        loop.set_debug(False)
    assert fut._source_traceback
    assert not loop.create_future()._source_traceback


def test_create_future_callbacks_scheduled_on_loop(loop):
    fut = loop.create_future()
    log = []
    fut.add_done_callback(lambda f: log.append(f.result()))
    fut.set_result("r")
    assert log == []  # done callbacks are scheduled with call_soon
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["r"]


def test_future_done_callback_context(loop):
    fut = loop.create_future()
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "cb-ctx")
    seen = []
    fut.add_done_callback(lambda f: seen.append(VAR.get()), context=ctx)
    fut.set_result(None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["cb-ctx"]


def test_await_future_in_coroutine(loop):
    async def main():
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, "woken")
        return await fut

    assert loop.run_until_complete(main()) == "woken"


# --------------------------------------------------------------------------
# create_task
# --------------------------------------------------------------------------


def test_create_task(loop):
    task = loop.create_task(_value(3))
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == 3


def test_create_task_name(loop):
    task = loop.create_task(_value(1), name="my-task")
    assert task.get_name() == "my-task"
    loop.run_until_complete(task)


def test_create_task_default_name(loop):
    task = loop.create_task(_value(1))
    assert task.get_name().startswith("Task-")
    loop.run_until_complete(task)


def test_create_task_not_a_coroutine(loop):
    with pytest.raises(TypeError, match="a coroutine was expected"):
        loop.create_task(42)


def test_create_task_current_task_and_all_tasks(loop):
    async def main():
        me = asyncio.current_task()
        return me, asyncio.all_tasks()

    task = loop.create_task(main())
    me, everything = loop.run_until_complete(task)
    assert me is task
    assert task in everything


def test_tasks_run_concurrently(loop):
    log = []

    async def worker(name, n):
        for i in range(n):
            log.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker("a", 3), worker("b", 3))

    loop.run_until_complete(main())
    assert log == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_task_cancel(loop):
    started = []

    async def forever():
        started.append(True)
        await loop.create_future()

    async def main():
        t = loop.create_task(forever())
        await asyncio.sleep(0)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            return "cancelled"

    assert loop.run_until_complete(main()) == "cancelled"
    assert started == [True]


def test_task_starts_in_next_iteration(loop):
    log = []

    async def coro():
        log.append("task")

    loop.call_soon(log.append, "before")
    loop.create_task(coro())
    loop.call_soon(log.append, "after")
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    # Task.__init__ schedules its first step with call_soon
    assert log == ["before", "task", "after"]


def test_create_task_copies_current_context(loop):
    seen = []

    async def coro():
        seen.append(VAR.get())
        VAR.set("inside-task")

    token = VAR.set("outer")
    try:
        task = loop.create_task(coro())
    finally:
        VAR.reset(token)
    loop.run_until_complete(task)
    assert seen == ["outer"]
    assert VAR.get() == "default"


@needs_311
def test_create_task_with_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "given")
    seen = []

    async def coro():
        seen.append(VAR.get())
        VAR.set("changed")
        await asyncio.sleep(0)
        seen.append(VAR.get())

    task = loop.create_task(coro(), context=ctx)
    loop.run_until_complete(task)
    assert seen == ["given", "changed"]
    assert ctx[VAR] == "changed"
    assert VAR.get() == "default"


def test_create_task_exception_not_retrieved_is_logged(loop, caplog):
    import gc

    async def fail():
        raise ValueError("never retrieved")

    task = loop.create_task(fail())
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    assert task.done()
    with caplog.at_level("ERROR", logger="asyncio"):
        del task
        gc.collect()
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Task exception was never retrieved" in m for m in msgs), msgs


# --------------------------------------------------------------------------
# task factory
# --------------------------------------------------------------------------


def test_task_factory_default_none(loop):
    assert loop.get_task_factory() is None


@pytest.mark.parametrize("bad", [1, "factory", object()])
def test_set_task_factory_not_callable(loop, bad):
    with pytest.raises(TypeError, match="^task factory must be a callable or None$"):
        loop.set_task_factory(bad)
    assert loop.get_task_factory() is None


def test_set_get_task_factory(loop):
    calls = []

    def factory(lp, coro):
        calls.append((lp, coro))
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    coro = _value("via-factory")
    task = loop.create_task(coro)
    assert calls == [(loop, coro)]
    assert loop.run_until_complete(task) == "via-factory"
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    task2 = loop.create_task(_value(2))
    assert loop.run_until_complete(task2) == 2
    assert len(calls) == 1


def test_task_factory_used_by_run_until_complete(loop):
    calls = []

    def factory(lp, coro):
        calls.append(coro)
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)
    assert loop.run_until_complete(_value(9)) == 9
    assert len(calls) == 1


def test_task_factory_used_by_ensure_future(loop):
    calls = []

    def factory(lp, coro):
        calls.append(coro)
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)

    async def main():
        return await asyncio.ensure_future(_value("e"))

    assert loop.run_until_complete(main()) == "e"
    assert len(calls) == 2  # main() and _value()


def test_task_factory_can_return_custom_future(loop):
    class MyTask(asyncio.Task):
        pass

    loop.set_task_factory(lambda lp, coro: MyTask(coro, loop=lp))
    task = loop.create_task(_value(1))
    assert type(task) is MyTask
    loop.run_until_complete(task)


@pytest.mark.skipif(FACTORY_TAKES_NAME, reason="3.14+ hands name= to the task factory")
def test_task_factory_name_applied_after_factory(loop):
    def factory(lp, coro):
        return asyncio.Task(coro, loop=lp, name="factory-name")

    loop.set_task_factory(factory)
    task = loop.create_task(_value(1), name="explicit")
    assert task.get_name() == "explicit"
    loop.run_until_complete(task)


def test_task_factory_gets_name_as_the_running_python_passes_it(loop):
    # 3.14 (gh-128307) hands name= to the factory (so the task has its name
    # from the start, e.g. during an eager first step); before, the factory
    # is called without it and the name is set on the task afterwards.
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append(dict(kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    task = loop.create_task(_value(1), name="explicit")
    assert task.get_name() == "explicit"
    loop.run_until_complete(task)
    assert calls == ([{"name": "explicit"}] if FACTORY_TAKES_NAME else [{}])


@pytest.mark.skipif(not FACTORY_TAKES_NAME, reason="before 3.14 the factory gets no name=")
def test_two_argument_factory_refuses_a_name(loop):
    def factory(lp, coro):
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)
    coro = _value(1)
    with pytest.raises(TypeError):
        loop.create_task(coro, name="x")
    coro.close()
    task = loop.create_task(_value(2))
    assert loop.run_until_complete(task) == 2


@needs_311
def test_task_factory_receives_context_only_when_given(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append(kwargs)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    t1 = loop.create_task(_value(1))
    ctx = contextvars.copy_context()
    t2 = loop.create_task(_value(2), context=ctx)
    loop.run_until_complete(asyncio.gather(t1, t2))
    assert calls == [{}, {"context": ctx}]


@needs_311
def test_legacy_two_argument_factory_without_context(loop):
    # A factory that does not accept ``context`` keeps working as long as
    # no context is passed.
    def factory(lp, coro):
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)
    t = loop.create_task(_value(1))
    assert loop.run_until_complete(t) == 1
    coro = _value(2)
    with pytest.raises(TypeError):
        loop.create_task(coro, context=contextvars.copy_context())
    coro.close()


# --------------------------------------------------------------------------
# eager tasks (3.12+)
# --------------------------------------------------------------------------


@needs_312
def test_eager_task_factory_completes_synchronously(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    log = []

    async def no_await():
        log.append("ran")
        return "eager"

    async def main():
        t = loop.create_task(no_await())
        # completed inside create_task, before any loop iteration
        assert log == ["ran"]
        assert t.done()
        assert t.result() == "eager"
        return await t

    assert loop.run_until_complete(main()) == "eager"


@needs_312
def test_eager_task_factory_suspends_at_first_await(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    log = []

    async def with_await():
        log.append("start")
        await asyncio.sleep(0)
        log.append("end")
        return 1

    async def main():
        t = loop.create_task(with_await())
        assert log == ["start"]
        assert not t.done()
        assert await t == 1
        assert log == ["start", "end"]
        return asyncio.current_task()

    outer = loop.run_until_complete(loop.create_task(main()))
    assert outer is not None


@needs_312
def test_eager_task_sees_itself_as_current_task(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    seen = []

    async def child():
        seen.append(asyncio.current_task())

    async def main():
        t = loop.create_task(child())
        assert seen == [t]
        seen.append(asyncio.current_task())
        return t

    main_task = loop.create_task(main())
    child_task = loop.run_until_complete(main_task)
    assert seen == [child_task, main_task]


@needs_312
def test_eager_task_name(loop):
    loop.set_task_factory(asyncio.eager_task_factory)

    async def main():
        t = loop.create_task(_value(1), name="eager-named")
        assert t.get_name() == "eager-named"
        return await t

    assert loop.run_until_complete(main()) == 1
