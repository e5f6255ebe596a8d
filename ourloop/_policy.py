"""EventLoopPolicy and install(), for code that configures asyncio through
its policy system (new code should prefer ourloop.run() or
asyncio.Runner(loop_factory=ourloop.new_event_loop))."""

import asyncio
import sys
import warnings
from typing import TYPE_CHECKING

from ._loop import Loop, new_event_loop

__all__ = ('EventLoopPolicy', 'install')

# Python 3.14 deprecates the policy system; its classes warn when touched.
_POLICIES_DEPRECATED = sys.version_info >= (3, 14)

_NO_POLICIES = ('this Python has no asyncio event loop policies (removed in 3.16); '
                'use ourloop.run(main()) or '
                'asyncio.Runner(loop_factory=ourloop.new_event_loop) instead')


class _NoPolicySystem:
    """The base of EventLoopPolicy where asyncio has no policies left:
    making one raises."""

    def __init__(self) -> None:
        raise RuntimeError(_NO_POLICIES)


def _default_policy_class() -> type:
    """asyncio's default policy class, found by feature test: the public
    name (which warns from 3.14 on and is gone in 3.16), else the private
    classes behind it, else _NoPolicySystem."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        cls = getattr(asyncio, 'DefaultEventLoopPolicy', None)
    for module, name in (('unix_events', '_UnixDefaultEventLoopPolicy'),
                         ('events', '_BaseDefaultEventLoopPolicy')):
        if cls is None:
            cls = getattr(getattr(asyncio, module, None), name, None)
    return cls if isinstance(cls, type) else _NoPolicySystem


if TYPE_CHECKING:
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy
else:
    _DefaultPolicy = _default_policy_class()


class EventLoopPolicy(_DefaultPolicy):
    """asyncio's default event loop policy, with ourloop loops.

    asyncio.set_event_loop_policy(ourloop.EventLoopPolicy()) makes
    asyncio.new_event_loop(), and get_event_loop() in the main thread,
    return ourloop.Loop instances.
    """

    def new_event_loop(self) -> Loop:
        return new_event_loop()

    def __repr__(self) -> str:
        return f'<{type(self).__name__}>'


def install() -> None:
    """Make ourloop the loop asyncio creates: sets an EventLoopPolicy."""
    if _POLICIES_DEPRECATED:
        warnings.warn(
            'ourloop.install() uses asyncio event loop policies, which are '
            'deprecated since Python 3.14; use ourloop.run(main()) or '
            'asyncio.Runner(loop_factory=ourloop.new_event_loop) instead',
            DeprecationWarning, stacklevel=2)
    set_policy = getattr(asyncio, 'set_event_loop_policy', None)
    if set_policy is None or _DefaultPolicy is _NoPolicySystem:
        raise RuntimeError(_NO_POLICIES)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        set_policy(EventLoopPolicy())
