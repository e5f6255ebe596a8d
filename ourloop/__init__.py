"""ourloop: a fast asyncio event loop written in Cython over libuv.

    import ourloop
    ourloop.run(main())                     # like asyncio.run(main())

    asyncio.Runner(loop_factory=ourloop.new_event_loop)   # Python 3.11+
    ourloop.install()                       # older code: sets the policy
"""

from ._core import libuv_version
from ._loop import Loop, new_event_loop
from ._policy import EventLoopPolicy, install
from ._runner import run

__version__ = '0.1.0.dev0'

__all__ = ('Loop', 'new_event_loop', 'run', 'install', 'EventLoopPolicy',
           'libuv_version')
