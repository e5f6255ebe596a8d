"""A small program typed against ourloop's public API.

`make lint` type-checks it with mypy (strict), with the shipped stubs
(ourloop/_core.pyi) and the annotations of the public functions; the test
suite also runs it (tests/test_lint.py), so what it checks is real.
"""

import asyncio
import sys
from typing import Optional

import ourloop


async def double(n: int) -> int:
    await asyncio.sleep(0)
    return 2 * n


def with_run() -> int:
    result: int = ourloop.run(double(1))
    return result


def with_loop() -> float:
    loop: ourloop.Loop = ourloop.new_event_loop()
    try:
        seen: list[str] = []
        loop.call_soon(seen.append, "soon")
        timer = loop.call_later(0.001, seen.append, "later")
        when: float = timer.when()
        task: asyncio.Task[int] = loop.create_task(double(2))
        value: int = loop.run_until_complete(task)
        assert value == 4
        fut = loop.create_future()
        loop.call_soon(fut.set_result, None)
        loop.run_until_complete(fut)
        debug: bool = loop.get_debug()
        assert not debug and not loop.is_closed()
        return when
    finally:
        loop.close()


def handles() -> int:
    # call_soon & co. are typed as asyncio.AbstractEventLoop's (asyncio's
    # Handle/TimerHandle), and what they return is one for isinstance().
    loop = ourloop.new_event_loop()
    try:
        seen: list[int] = []
        soon: asyncio.Handle = loop.call_soon(seen.append, 1)
        threadsafe: asyncio.Handle = loop.call_soon_threadsafe(seen.append, 2)
        later: asyncio.TimerHandle = loop.call_later(3600, seen.append, 3)
        at: asyncio.TimerHandle = loop.call_at(loop.time() + 3600, seen.append, 4)
        assert isinstance(soon, asyncio.Handle) and isinstance(threadsafe, asyncio.Handle)
        assert isinstance(later, asyncio.TimerHandle) and isinstance(at, asyncio.TimerHandle)
        later.cancel()
        at.cancel()
        assert later.cancelled() and at.cancelled() and not soon.cancelled()
        assert later.when() > loop.time()
        loop.run_until_complete(asyncio.sleep(0))
        return sum(seen)
    finally:
        loop.close()


def as_abstract_loop() -> Optional[int]:
    # An ourloop loop wherever the stdlib's is expected.
    loop: asyncio.AbstractEventLoop = ourloop.new_event_loop()
    try:
        return loop.run_until_complete(double(3))
    finally:
        loop.close()


def with_policy() -> None:
    policy: asyncio.AbstractEventLoopPolicy = ourloop.EventLoopPolicy()
    loop = policy.new_event_loop()
    loop.close()
    if sys.version_info < (3, 14):
        old = asyncio.get_event_loop_policy()
        ourloop.install()
        asyncio.set_event_loop_policy(old)


def with_runner() -> None:
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=ourloop.new_event_loop) as runner:
            assert runner.run(double(4)) == 8


def libuv() -> str:
    version: str = ourloop.libuv_version()
    return version


def main() -> None:
    assert with_run() == 2
    assert with_loop() > 0
    assert handles() == 3
    assert as_abstract_loop() == 6
    with_policy()
    with_runner()
    assert libuv().count(".") == 2


if __name__ == "__main__":
    main()
    print("ok")
