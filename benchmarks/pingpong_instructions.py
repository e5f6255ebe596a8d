#!/usr/bin/env python3
"""Instructions per TCP round trip, per loop, counted by valgrind's callgrind.

    python benchmarks/pingpong_instructions.py                 # all loops available
    python benchmarks/pingpong_instructions.py --loops ourloop,uvloop --size 1024
    python benchmarks/pingpong_instructions.py --modes protocol --loops ourloop,ourloop@../base

A server and a client talk over TCP on 127.0.0.1 on one loop: the client
writes a message, the server echoes it, the client writes the next one when
the whole echo has arrived. Modes: `protocol` (loop.create_server() and
loop.create_connection() with two asyncio.Protocols) and `streams`
(asyncio.start_server() and open_connection(): reader.read() /
writer.write() + drain() on the server, write + drain + readexactly() on
the client). Each loop runs
the exchange twice under callgrind, with N1 and N2 round trips;
(I2 - I1) / (N2 - N1) is what one round trip costs (two reads, two writes,
the loop iterations), start-up and tear-down cancelling out.
Deterministic, so it shows small changes that wall-clock runs on a noisy
2-core machine cannot (PYTHONHASHSEED is fixed for the same reason).
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (benchmarks/run.py: loops, snapshots, tables)

CHILD = r'''
import asyncio, os, sys
snapshot = os.environ.get('OURLOOP_BENCH_SNAPSHOT')
if snapshot:
    sys.path.insert(0, snapshot)
kind, mode, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kind == 'uvloop':
    import uvloop
    new_loop = uvloop.new_event_loop
elif kind == 'rloop':
    import rloop
    new_loop = rloop.new_event_loop
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

async def protocols():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    done = loop.create_future()
    transport, _ = await loop.create_connection(lambda: Client(done), '127.0.0.1', port)
    await done
    transport.close()
    server.close()

async def streams():
    async def serve(reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    for _ in range(n):
        writer.write(MSG)
        await writer.drain()
        await reader.readexactly(size)
    writer.close()
    server.close()

loop = new_loop()
loop.run_until_complete(protocols() if mode == 'protocol' else streams())
loop.close()
'''

MODES = ('protocol', 'streams')
TIMEOUT = 600      # seconds for one callgrind run


def instructions(label, mode, n, size, workdir):
    out = os.path.join(workdir, f'cg.{label}.{mode}.{n}')
    env = dict(run._worker_env(label), PYTHONHASHSEED='0')
    proc = subprocess.run(
        ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}',
         sys.executable, '-c', CHILD, run.base_loop(label), mode, str(n), str(size)],
        capture_output=True, text=True, env=env, timeout=TIMEOUT)
    if proc.returncode != 0:
        tail = ' | '.join(proc.stderr.strip().splitlines()[-2:])
        raise RuntimeError(f'{label} {mode}: {tail}')
    match = re.search(r'Collected : (\d+)', proc.stderr)
    return int(match.group(1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--loops', help=run.LOOPS_HELP)
    ap.add_argument('--modes', default=','.join(MODES),
                    help='comma-separated: ' + ', '.join(MODES) + ' (default: both)')
    ap.add_argument('--size', type=int, default=1024, help='message size (bytes)')
    ap.add_argument('--n1', type=int, default=1000)
    ap.add_argument('--n2', type=int, default=3000)
    ap.add_argument('--json', metavar='FILE', help='also write the counts to FILE')
    opts = ap.parse_args(argv)
    modes = [m.strip() for m in opts.modes.split(',') if m.strip()]
    if any(m not in MODES for m in modes):
        ap.error(f'modes: {", ".join(MODES)}')
    if subprocess.run(['which', 'valgrind'], capture_output=True).returncode != 0:
        print('valgrind is not installed (apt-get install valgrind)', file=sys.stderr)
        return 2
    loops, missing, versions = run.select_loops(opts.loops, ap.error)
    per, na = {m: {} for m in modes}, {m: {} for m in modes}
    with run.prepared_loops(loops), tempfile.TemporaryDirectory() as workdir:
        for mode in modes:
            for label in loops:
                try:
                    i1 = instructions(label, mode, opts.n1, opts.size, workdir)
                    i2 = instructions(label, mode, opts.n2, opts.size, workdir)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    na[mode][label] = str(exc)
                    print(f'  {mode} on {label}: n/a ({exc})', file=sys.stderr)
                    continue
                per[mode][label] = (i2 - i1) / (opts.n2 - opts.n1)
                print(f'  {mode} on {label}: {per[mode][label]:,.0f} instructions/round trip',
                      file=sys.stderr)
    rows = [f'{m} round trip' for m in modes]
    summary = run.summarize_samples(
        'round trip instructions', 'instr', rows, loops,
        {f'{m} round trip': {label: [per[m][label]] if label in per[m] else []
                             for label in loops} for m in modes},
        higher_is_better=False, na={f'{m} round trip': na[m] for m in modes})
    print(f'Instructions per TCP round trip ({opts.size}-byte messages, callgrind, runs of '
          f'{opts.n1} and {opts.n2}; ratios > 1: the first loop executes fewer):\n')
    print(run.markdown_table(*run.summary_table(summary, lambda x: f'{x:,.0f}', 'exchange',
                                                spreads=False)))
    if opts.json:
        run.write_json(opts.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': run.machine_info(versions), 'size': opts.size,
            'n1': opts.n1, 'n2': opts.n2, 'summary': summary, 'not_available': na})
    return 0


if __name__ == '__main__':
    sys.exit(main())
