"""ourloop.run(): asyncio.run() on an ourloop loop."""

import asyncio
import sys
from asyncio import coroutines, events
from typing import Any, Coroutine, Optional, TypeVar

from ._loop import new_event_loop

__all__ = ('run',)

_T = TypeVar('_T')


def run(main: Coroutine[Any, Any, _T], *, debug: Optional[bool] = None,
        **run_kwargs: Any) -> _T:
    """Run the coroutine `main` on a new ourloop loop and return its result.

    This is asyncio.run() with ourloop as the loop factory: the loop is
    created, `main` runs to completion, remaining tasks are cancelled,
    asynchronous generators and the default executor are shut down, and
    the loop is closed. `debug` sets the loop's debug mode; further
    keywords go to asyncio.run() (Python 3.12+; `loop_factory` may replace
    ourloop.new_event_loop). Ctrl-C cancels `main` and then raises
    KeyboardInterrupt, as asyncio.run() does.
    """
    if sys.version_info >= (3, 12):
        run_kwargs.setdefault('loop_factory', new_event_loop)
        return asyncio.run(main, debug=debug, **run_kwargs)
    if run_kwargs:
        name = next(iter(run_kwargs))
        raise TypeError(f"run() got an unexpected keyword argument {name!r}")
    if events._get_running_loop() is not None:
        raise RuntimeError(
            "asyncio.run() cannot be called from a running event loop")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_legacy(main, debug)


def _run_legacy(main, debug):
    # Python 3.9 and 3.10: what their asyncio.run() does, on an ourloop loop.
    if not coroutines.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            asyncio.runners._cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()
