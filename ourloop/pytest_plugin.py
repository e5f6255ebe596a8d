"""Run a whole pytest session on ourloop: ``pytest -p ourloop.pytest_plugin``.

Loaded this way (or through ``PYTEST_PLUGINS=ourloop.pytest_plugin``, or
``pytest_plugins = ['ourloop.pytest_plugin']`` in a root conftest.py), the
plugin makes every event loop that asyncio creates for the session an
ourloop loop, before any test module is imported:

- the event loop policy is ``ourloop.EventLoopPolicy``, so
  ``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner()``
  without a ``loop_factory``, ``get_event_loop()`` in the main thread, and
  the plugins built on them (pytest-asyncio, aiohttp's ``pyloop``, anyio's
  asyncio backend) make ourloop loops;
- ``asyncio.DefaultEventLoopPolicy`` names ourloop's policy, for code (older
  aiohttp test plugins among it) that installs a fresh "default" policy.

On a Python without asyncio's policy system (3.16 removes it; found by
feature test, as ``ourloop._policy`` does) the plugin replaces
``asyncio.new_event_loop`` (also as ``asyncio.events.new_event_loop``, which
``asyncio.run()`` and ``asyncio.Runner()`` call) instead.

A loop that a test asks for by class (``asyncio.SelectorEventLoop()``,
``uvloop.new_event_loop()``) or through an explicit ``loop_factory`` is left
alone: the plugin counts the stdlib loops made and says so at the end, so a
green run cannot hide tests that never ran on ourloop. The session header
names the loop.

Nothing happens unless the plugin is loaded: installing ourloop does not
register it with pytest.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import warnings
from typing import Any

import ourloop

from ._loop import Loop
from ._policy import _DefaultPolicy, _NoPolicySystem

__all__ = ('pytest_configure', 'pytest_report_header', 'pytest_terminal_summary',
           'pytest_unconfigure')

_MISSING = object()


class _SessionPolicy(ourloop.EventLoopPolicy):
    """ourloop's policy, counting the loops it makes."""

    made = 0

    def new_event_loop(self) -> Loop:
        type(self).made += 1
        return super().new_event_loop()


def _has_policies() -> bool:
    default: type = _DefaultPolicy     # (a type mypy cannot tell from _NoPolicySystem)
    return (default is not _NoPolicySystem
            and hasattr(asyncio, 'set_event_loop_policy')
            and hasattr(asyncio, 'get_event_loop_policy'))


def _new_event_loop() -> Loop:
    """asyncio.new_event_loop() of a session on a Python without
    policies."""
    _SessionPolicy.made += 1
    return ourloop.new_event_loop()


class _State:
    def __init__(self) -> None:
        self.saved_policy: Any = None
        self.saved_default: Any = _MISSING
        self.saved_init: Any = None
        # (without policies) the replaced new_event_loop functions
        self.saved_new_loop: dict[Any, Any] = {}
        self.stdlib_loops = 0


_state: _State | None = None


def _set_policy(policy: Any) -> None:
    with warnings.catch_warnings():
        # 3.14 deprecates the policy system; the switch still goes through it.
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.set_event_loop_policy(policy)


def _get_policy() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return asyncio.get_event_loop_policy()


def pytest_configure(config: Any) -> None:
    global _state
    if _state is not None:
        return
    state = _State()
    if _has_policies():
        state.saved_policy = _get_policy()
        state.saved_default = asyncio.__dict__.get('DefaultEventLoopPolicy', _MISSING)
        asyncio.DefaultEventLoopPolicy = _SessionPolicy
        _set_policy(_SessionPolicy())
    else:
        for module in (asyncio, asyncio.events):
            state.saved_new_loop[module] = module.__dict__.get('new_event_loop', _MISSING)
            module.new_event_loop = _new_event_loop  # type: ignore[attr-defined]

    # Count the stdlib loops made anyway (ourloop.Loop is not a
    # BaseEventLoop): the summary says how many tests bypassed the switch.
    base_init = asyncio.base_events.BaseEventLoop.__init__
    state.saved_init = base_init

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        state.stdlib_loops += 1
        base_init(self, *args, **kwargs)

    asyncio.base_events.BaseEventLoop.__init__ = counting_init  # type: ignore[method-assign]
    _state = state


def pytest_unconfigure(config: Any) -> None:
    global _state
    state = _state
    if state is None:
        return
    _state = None
    asyncio.base_events.BaseEventLoop.__init__ = state.saved_init  # type: ignore[method-assign]
    if state.saved_new_loop:
        for module, saved in state.saved_new_loop.items():
            if saved is _MISSING:
                module.__dict__.pop('new_event_loop', None)
            else:
                module.new_event_loop = saved
        return
    if state.saved_default is _MISSING:
        asyncio.__dict__.pop('DefaultEventLoopPolicy', None)
    else:
        asyncio.DefaultEventLoopPolicy = state.saved_default
    _set_policy(state.saved_policy)


def _describe() -> str:
    return (f'ourloop {ourloop.__version__} (libuv {ourloop.libuv_version()}): '
            f'asyncio makes ourloop loops in this session')


def pytest_report_header(config: Any) -> str:
    return _describe()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    state = _state
    if state is None:
        return
    line = f'ourloop: {_SessionPolicy.made} ourloop loop(s) made through asyncio'
    if state.stdlib_loops:
        line += (f'; {state.stdlib_loops} stdlib loop(s) made directly '
                 f'(asked for by class or loop_factory), not switched')
    terminalreporter.write_sep('-', 'ourloop')
    terminalreporter.write_line(line)
