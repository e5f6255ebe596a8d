#!/usr/bin/env python3
"""Instructions per TCP round trip, per loop, counted by valgrind's callgrind.

    python benchmarks/pingpong_instructions.py                 # all loops available
    python benchmarks/pingpong_instructions.py --loops ourloop,uvloop --size 1024

Two protocols talk over a socketpair on one loop (connect_accepted_socket on
both ends): the client writes a message, the server echoes it, the client
writes the next one when the whole echo has arrived. Each loop runs the
exchange twice under callgrind, with N1 and N2 round trips; (I2 - I1) /
(N2 - N1) is what one round trip costs (two reads, two writes, two loop
iterations), start-up and tear-down cancelling out. Deterministic, so it
shows small changes that wall-clock runs on a noisy 2-core machine cannot
(PYTHONHASHSEED is fixed for the same reason).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

CHILD = r'''
import asyncio, socket, sys
kind, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind == 'uvloop':
    import uvloop
    new_loop = uvloop.new_event_loop
elif kind == 'ourloop':
    import ourloop
    new_loop = ourloop.new_event_loop
else:
    new_loop = asyncio.SelectorEventLoop
MSG = b'x' * size

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)

class Client(asyncio.Protocol):
    def __init__(self, done):
        self.done, self.count, self.got = done, 0, 0
    def connection_made(self, transport):
        self.transport = transport
        transport.write(MSG)
    def data_received(self, data):
        self.got += len(data)
        if self.got >= len(MSG):
            self.got = 0
            self.count += 1
            if self.count >= n:
                self.done.set_result(None)
            else:
                self.transport.write(MSG)

async def main():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    await loop.connect_accepted_socket(Echo, a)
    done = loop.create_future()
    await loop.connect_accepted_socket(lambda: Client(done), b)
    await done

loop = new_loop()
loop.run_until_complete(main())
loop.close()
'''


def instructions(kind, n, size, workdir):
    out = os.path.join(workdir, f'cg.{kind}.{n}')
    env = dict(os.environ, PYTHONHASHSEED='0')
    proc = subprocess.run(
        ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}',
         sys.executable, '-c', CHILD, kind, str(n), str(size)],
        capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'{kind}: {proc.stderr[-2000:]}')
    match = re.search(r'Collected : (\d+)', proc.stderr)
    return int(match.group(1))


def available(kind):
    if kind == 'asyncio':
        return True
    try:
        __import__(kind)
        return True
    except ImportError:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--loops', default='asyncio,uvloop,ourloop')
    ap.add_argument('--size', type=int, default=1024, help='message size (bytes)')
    ap.add_argument('--n1', type=int, default=1000)
    ap.add_argument('--n2', type=int, default=3000)
    opts = ap.parse_args(argv)
    loops = [k for k in opts.loops.split(',') if available(k)]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for kind in loops:
            i1 = instructions(kind, opts.n1, opts.size, workdir)
            i2 = instructions(kind, opts.n2, opts.size, workdir)
            rows.append((kind, (i2 - i1) / (opts.n2 - opts.n1)))
    print(f'Instructions per round trip ({opts.size}-byte messages, '
          f'callgrind, runs of {opts.n1} and {opts.n2}):\n')
    print('| loop | instructions per round trip |')
    print('|:-----|---------------------------:|')
    for kind, per in rows:
        print(f'| {kind} | {per:,.0f} |')


if __name__ == '__main__':
    main()
