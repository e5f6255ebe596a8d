#!/usr/bin/env python3
"""Instructions per operation of each loop, counted by valgrind's callgrind.

Wall-clock numbers on a shared 2-core machine move by tens of percent from
one run to the next; instruction counts do not. This script runs each
workload of benchmarks/run.py under callgrind at two sizes, n and 3n, and
reports the difference divided by 2n: the instructions one more operation
costs, free of start-up, import and warm-up costs.

    python benchmarks/instructions.py                      # all workloads
    python benchmarks/instructions.py --only call_soon,gather --loops uvloop,ourloop
    python benchmarks/instructions.py --keep DIR           # keep the callgrind files

With --keep, `callgrind_annotate DIR/<loop>-<workload>-big.out` shows where
the instructions go, function by function (ourloop's are the
__pyx_..._core_... symbols of ourloop/_core.c).

Instructions are not time (cache misses, syscalls and waiting are not in
them), and the multi-threaded workloads (threadsafe, run_in_executor) count
what valgrind's serialised threads happened to do: read those with care.
Needs valgrind (apt-get install valgrind); takes a few minutes.
"""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (benchmarks/run.py: the workloads and loops)

_TOTALS = re.compile(r'^(?:summary|totals):\s*([\d,]+)', re.MULTILINE)
_ANNOTATE_LINE = re.compile(r'^\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$')


def function_counts(out_file):
    """{function: exclusive instructions} of a callgrind output file."""
    proc = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100', '--auto=no',
                           out_file], capture_output=True, text=True)
    counts, objects = {}, {}
    for line in proc.stdout.splitlines():
        match = _ANNOTATE_LINE.match(line)
        if not match or 'PROGRAM TOTALS' in line:
            continue
        where = match.group(2)
        obj = ''
        if where.endswith(']') and ' [' in where:
            where, obj = where.rsplit(' [', 1)
            obj = os.path.basename(obj[:-1])
        func = where.rsplit(':', 1)[-1]
        func = re.sub(r"'\d+$", '', func)          # recursion levels: f'2 -> f
        # Code inlined from headers is listed under the header's name and
        # no object: count it with the function it was inlined into.
        if obj:
            objects[func] = obj
        counts[func] = counts.get(func, 0) + int(match.group(1).replace(',', ''))
    return {f'{func} ({objects[func]})' if func in objects else func: n
            for func, n in counts.items()}


def top_functions(small_file, big_file, ops, top):
    """The functions whose instruction count grows most per operation."""
    small, big = function_counts(small_file), function_counts(big_file)
    diffs = {f: (big.get(f, 0) - small.get(f, 0)) / ops for f in set(small) | set(big)}
    return sorted(diffs.items(), key=lambda item: -item[1])[:top]


def count_instructions(loop_name, workload, size, out_file):
    cmd = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out_file}',
           sys.executable, os.path.join(HERE, 'run.py'),
           '--worker', loop_name, workload, '--size', str(size), '--no-warmup',
           '--inner', '1']
    env = run._worker_env(loop_name)
    # String hashes decide how many probes a dict lookup takes (the loop's
    # instance dict, asyncio's task dicts): a random seed moves the counts
    # by a hundred instructions per operation from one run to the next.
    env['PYTHONHASHSEED'] = '0'
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'{loop_name} {workload}: ' + proc.stderr.strip()[-300:])
    with open(out_file) as f:
        text = f.read()
    match = _TOTALS.search(text)
    if not match:
        raise RuntimeError(f'no instruction total in {out_file}')
    return int(match.group(1).replace(',', ''))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', help='comma-separated workloads (default: all)')
    parser.add_argument('--loops', help=run.LOOPS_HELP)
    parser.add_argument('--json', metavar='FILE', help='also write the counts to FILE')
    parser.add_argument('--size', type=int, default=None, metavar='N',
                        help='n of the two runs (n and 3n; default: run.py\'s quick size)')
    parser.add_argument('--keep', metavar='DIR', help='keep the callgrind output files in DIR')
    parser.add_argument('--top', type=int, default=0, metavar='K',
                        help='also list, per workload and loop, the K functions that '
                             'cost the most instructions per operation')
    args = parser.parse_args(argv)

    if shutil.which('valgrind') is None:
        print('valgrind is not installed (apt-get install valgrind)', file=sys.stderr)
        return 2

    workloads = list(run.WORKLOADS)
    if args.only:
        workloads = [w.strip() for w in args.only.split(',') if w.strip()]
        unknown = [w for w in workloads if w not in run.WORKLOADS]
        if unknown:
            parser.error(f'unknown workload(s): {", ".join(unknown)}')
    loops, missing, versions = run.select_loops(args.loops, parser.error)
    build_before = run.ourloop_build() if 'ourloop' in loops else None
    with run.prepared_loops(loops):
        return _count_all(args, workloads, loops, build_before, versions)


def _count_all(args, workloads, loops, build_before, versions):
    out_dir = args.keep or tempfile.mkdtemp(prefix='ourloop-callgrind-')
    os.makedirs(out_dir, exist_ok=True)
    per_op = {}
    tops = {}
    for workload in workloads:
        small = args.size or run.WORKLOADS[workload][2]
        for name in loops:
            counts = []
            for label, size in (('small', small), ('big', 3 * small)):
                out_file = os.path.join(out_dir, f'{name}-{workload}-{label}.out')
                counts.append(count_instructions(name, workload, size, out_file))
            per_op[workload, name] = (counts[1] - counts[0]) / (2 * small)
            print(f'  {workload} on {name}: {per_op[workload, name]:,.0f} instructions/op',
                  file=sys.stderr)
            if args.top:
                tops[workload, name] = top_functions(
                    os.path.join(out_dir, f'{name}-{workload}-small.out'),
                    os.path.join(out_dir, f'{name}-{workload}-big.out'),
                    2 * small, args.top)
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)

    if build_before:
        print(f"ourloop: commit {run._git('rev-parse', '--short', 'HEAD') or '?'}, "
              f"extension built {build_before['built']} (measured from a copy taken at the start)"
              + (', DEBUG BUILD (-O0: not representative)' if build_before['debug_build'] else ''))
    summary = run.summarize_samples(
        'instructions', 'instr/op', workloads, loops,
        {w: {name: [per_op[w, name]] if (w, name) in per_op else [] for name in loops}
         for w in workloads}, higher_is_better=False)
    print()
    print('Instructions per operation (callgrind, (I(3n) - I(n)) / 2n); '
          'ratios > 1: the first loop executes fewer instructions.')
    print()
    print(run.markdown_table(*run.summary_table(summary, lambda x: f'{x:,.0f}', 'workload',
                                                spreads=False)))
    if args.json:
        run.write_json(args.json, {
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': run.machine_info(versions), 'summary': summary,
            'per_op': {w: {name: per_op.get((w, name)) for name in loops} for w in workloads}})
    for (workload, name), functions in tops.items():
        print()
        print(f'{workload} on {name}: top functions, instructions per operation '
              f'(of {per_op[workload, name]:,.0f})')
        print()
        print(run.markdown_table(['function (object)', 'instr/op'],
                                 [[f, f'{x:,.0f}'] for f, x in functions]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
