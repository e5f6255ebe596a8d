"""EventLoopPolicy and install(), for code that configures asyncio through
its policy system (new code should prefer ourloop.run() or
asyncio.Runner(loop_factory=ourloop.new_event_loop))."""

import asyncio
import sys
import warnings

from ._loop import Loop, new_event_loop

__all__ = ('EventLoopPolicy', 'install')

# Python 3.14 deprecates the policy system; its classes warn when touched.
_POLICIES_DEPRECATED = sys.version_info >= (3, 14)

with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy


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
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.set_event_loop_policy(EventLoopPolicy())
