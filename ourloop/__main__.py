"""python -m ourloop: what this ourloop is, and a quick comparison.

    python -m ourloop             # versions: ourloop, libuv, Python, compiler, build,
                                  # the platform layer's calls and fallbacks
    python -m ourloop bench       # about 30 s: TCP echo and call_soon, ourloop vs
                                  # the stdlib loop (and uvloop when installed)

The comparison is a first look on the user's own machine, not the project's
benchmark (benchmarks/ in the source tree has the method and the suites):
each measurement runs in a fresh interpreter, the loops take turns, and the
median of three runs per loop is reported with its ratio to the stdlib loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from typing import Awaitable, Callable

import ourloop
from ourloop import _core

# Seconds of work per measurement; 2 workloads x 3 loops x 3 runs of it
# (plus start-up) make the ~30 s of `bench`.
_RUN_SECONDS = 1.0
_RUNS = 3
_ECHO_SIZE = 1024


def info() -> dict[str, str]:
    """The facts `python -m ourloop` prints, by label."""
    build = _core._build_info()
    plat = _core._platform_info()
    return {
        'ourloop': f'{ourloop.__version__} ({os.path.dirname(os.path.abspath(ourloop.__file__))})',
        'libuv': (f"{ourloop.libuv_version()} ({build['libuv_linkage']}; "
                  f"compiled against {build['libuv_compiled']})"),
        'Python': f'{platform.python_version()} ({platform.python_implementation()}, '
                  f'{sys.platform}, {platform.machine()})',
        'compiler': build['compiler'],
        'build': build['flavour'],
        'platform': (f"sendfile {plat['sendfile']}, {plat['accept']}, child fd "
                     f"{plat['child_fd']}, {plat['poll_backend']}, pipe size "
                     f"{plat['pipe_size']} "
                     f"(portable fallbacks: {build['platform_fallbacks']})"),
    }


def print_info() -> None:
    for label, value in info().items():
        print(f'{label + ":":10} {value}')


# -- bench: the workloads (run in a worker process, one loop each) -----------

def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == 'ourloop':
        return ourloop.new_event_loop()
    if kind == 'uvloop':
        import uvloop
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.SelectorEventLoop()


async def _call_soon(seconds: float) -> float:
    """call_soon chains: callbacks per second."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0
    batch = 10_000
    deadline = time.perf_counter() + seconds

    def step() -> None:
        nonlocal count
        count += 1
        if count % batch == 0 and time.perf_counter() >= deadline:
            done.set_result(None)
        else:
            loop.call_soon(step)

    start = time.perf_counter()
    loop.call_soon(step)
    await done
    return count / (time.perf_counter() - start)


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _Client(asyncio.Protocol):
    def __init__(self, deadline: float, done: asyncio.Future[int]) -> None:
        self.deadline = deadline
        self.done = done
        self.got = 0
        self.count = 0
        self.message = b'x' * _ECHO_SIZE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.write(self.message)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < _ECHO_SIZE:
            return
        self.got = 0
        self.count += 1
        if self.count % 100 == 0 and time.perf_counter() >= self.deadline:
            if not self.done.done():
                self.done.set_result(self.count)
            return
        self.transport.write(self.message)


async def _echo(seconds: float) -> float:
    """1 KiB TCP ping-pong on loopback, server and client on this loop:
    round trips per second."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    done: asyncio.Future[int] = loop.create_future()
    start = time.perf_counter()
    transport, _ = await loop.create_connection(
        lambda: _Client(start + seconds, done), '127.0.0.1', port)
    transport.get_extra_info('socket').setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    count = await done
    elapsed = time.perf_counter() - start
    transport.close()
    server.close()
    await server.wait_closed()
    return count / elapsed


_WORKLOADS: dict[str, tuple[str, Callable[[float], Awaitable[float]]]] = {
    'echo': ('TCP echo, 1 KiB round trips/s', _echo),
    'call_soon': ('call_soon chain, callbacks/s', _call_soon),
}


def _worker(kind: str, workload: str, seconds: float) -> None:
    loop = _new_loop(kind)
    try:
        fn = _WORKLOADS[workload][1]
        loop.run_until_complete(fn(0.05))  # warm-up
        rate: float = loop.run_until_complete(fn(seconds))
    finally:
        loop.close()
    print(json.dumps({'rate': rate}))


def _measure(kind: str, workload: str, seconds: float) -> float:
    out = subprocess.run(
        [sys.executable, '-m', 'ourloop', 'bench', '--worker', kind, workload,
         '--seconds', str(seconds)],
        stdout=subprocess.PIPE, check=True, text=True).stdout
    return float(json.loads(out.splitlines()[-1])['rate'])


def _available_loops() -> list[str]:
    loops = ['asyncio', 'ourloop']
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        loops.append('uvloop')
    return loops


def bench(seconds: float = _RUN_SECONDS, runs: int = _RUNS) -> dict[str, dict[str, float]]:
    """Median rate per workload and loop; prints the table as it goes."""
    loops = _available_loops()
    print_info()
    if 'uvloop' not in loops:
        print('(uvloop is not installed: comparing with the stdlib loop only)')
    print(f'\n{runs} runs of {seconds:g} s per loop and workload, each in a new '
          f'process; loops take turns\n')
    medians: dict[str, dict[str, float]] = {}
    for workload, (title, _) in _WORKLOADS.items():
        samples: dict[str, list[float]] = {kind: [] for kind in loops}
        for i in range(runs):
            order = loops[i % len(loops):] + loops[:i % len(loops)]
            for kind in order:
                samples[kind].append(_measure(kind, workload, seconds))
        medians[workload] = {kind: statistics.median(v) for kind, v in samples.items()}
        base = medians[workload]['asyncio']
        print(title)
        for kind in loops:
            value = medians[workload][kind]
            print(f'  {kind:8} {value:>12,.0f}   {value / base:5.2f}x the stdlib loop')
        print()
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m ourloop', description=__doc__.split('\n\n')[0] if __doc__ else None)
    sub = parser.add_subparsers(dest='command')
    bench_parser = sub.add_parser('bench', help='about 30 s: ourloop vs the stdlib loop (and uvloop)')
    bench_parser.add_argument('--seconds', type=float, default=_RUN_SECONDS,
                              help='seconds per measurement (default %(default)s)')
    bench_parser.add_argument('--runs', type=int, default=_RUNS,
                              help='runs per loop and workload (default %(default)s)')
    bench_parser.add_argument('--worker', nargs=2, metavar=('LOOP', 'WORKLOAD'),
                              help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == 'bench':
        if args.worker:
            kind, workload = args.worker
            if workload not in _WORKLOADS or kind not in ('asyncio', 'ourloop', 'uvloop'):
                parser.error(f'unknown loop or workload: {kind} {workload}')
            _worker(kind, workload, args.seconds)
        else:
            bench(args.seconds, args.runs)
    else:
        print_info()
    return 0


if __name__ == '__main__':
    sys.exit(main())
