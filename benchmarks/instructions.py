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
__pyx_..._core_... symbols of ourloop/_core.c). --top K lists the K
functions whose own instructions grow most per operation; --by-object
splits each count between the interpreter, asyncio's C Task and Future,
the loop's native code (libuv included) and the C library: how much of an
operation any loop could save at all.

Only the workload is counted: the worker (run.py's measure()) calls
os.getpgrp() right before it and os.getppid() right after, where callgrind
zeroes its counts (--zero-before) and dumps them (--dump-before); start-up,
imports and the loop's close() are left out. The worker runs in an empty
directory of its own, writes no .pyc and has a fixed PYTHONHASHSEED, so
that nothing the rest of the machine does changes its counts (see
count_between_markers()).

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


def function_counts(out_file):
    """{'function (object)': exclusive instructions} of a callgrind output
    file, read from the file itself: each cost line counts for the function
    it is under, except the line after a `calls=` line, which is the
    inclusive cost of that call. (callgrind_annotate --inclusive=no counts
    the calls still running at the dump, the ones of the functions on the
    stack around the counted part, as the callers' own instructions.)
    Code inlined from another file (`fi=`/`fe=`) counts for the function it
    was inlined into."""
    names = {}                  # ('ob' or 'fn', id) -> name
    counts = {}
    obj = func = None
    after_call = False

    def name_of(kind, value):
        # `(id) name` defines a compressed name, `(id)` refers to it.
        match = re.match(r'\((\d+)\)(?:\s+(.*))?$', value)
        if not match:
            return value
        if match.group(2) is not None:
            names[kind, match.group(1)] = match.group(2)
        return names.get((kind, match.group(1)), value)

    with open(out_file) as f:
        for line in f:
            if not line or line[0] in '\n#':
                continue
            first = line[0]
            if first.isdigit() or first in '+-*':
                if after_call:
                    after_call = False
                elif func is not None:
                    fields = line.split()
                    if len(fields) > 1:
                        counts[func, obj] = counts.get((func, obj), 0) + int(fields[1])
                continue
            key, _, value = line.rstrip('\n').partition('=')
            if key == 'ob':
                obj = os.path.basename(name_of('ob', value))
            elif key == 'fn':
                func = name_of('fn', value)
            elif key == 'cob':
                name_of('ob', value)
            elif key == 'cfn':
                name_of('fn', value)
            elif key == 'calls':
                after_call = True
    merged = {}
    for (func, obj), n in counts.items():
        func = re.sub(r"'\d+$", '', func)          # recursion levels: f'2 -> f
        key = f'{func} ({obj})' if obj else func
        merged[key] = merged.get(key, 0) + n
    return merged


# Where a loop's instructions go, by shared object (function_counts()'s
# "(object)"): the interpreter, asyncio's C accelerator (Task, Future), the
# loop's own native code (with libuv, whether linked in or the system's),
# the C library, and the rest (other extension modules: _socket, select...).
OBJECT_GROUPS = (
    ('interpreter', ('libpython', 'python3')),
    ('_asyncio', ('_asyncio.',)),
    ('loop (native)', ('_core.', 'loop.cpython', '_rloop.', 'libuv.')),
    ('libc', ('libc.', 'ld-linux', 'libm.', 'libpthread')),
)
OTHER_GROUP = 'other'


def group_of(key):
    """OBJECT_GROUPS' name for a function_counts() key."""
    obj = key.rsplit(' (', 1)[1][:-1] if key.endswith(')') and ' (' in key else ''
    for name, prefixes in OBJECT_GROUPS:
        if obj.startswith(prefixes):
            return name
    return OTHER_GROUP


def group_growth(small_file, big_file, ops):
    """{group: instructions per operation} of OBJECT_GROUPS (and 'other')."""
    small, big = function_counts(small_file), function_counts(big_file)
    groups = dict.fromkeys([name for name, _ in OBJECT_GROUPS] + [OTHER_GROUP], 0.0)
    for key in set(small) | set(big):
        groups[group_of(key)] += (big.get(key, 0) - small.get(key, 0)) / ops
    return groups


def top_functions(small_file, big_file, ops, top):
    """The functions whose instruction count grows most per operation."""
    small, big = function_counts(small_file), function_counts(big_file)
    diffs = {f: (big.get(f, 0) - small.get(f, 0)) / ops for f in set(small) | set(big)}
    return sorted(diffs.items(), key=lambda item: -item[1])[:top]


# The calls around the counted part of a worker (run.py's measure(),
# pingpong_instructions.py's child): CPython's C functions of os.getpgrp()
# and os.getppid(), which no loop calls.
ZERO_AT, DUMP_AT = 'os_getpgrp', 'os_getppid'


def count_between_markers(argv, env, out_file, what, timeout=900):
    """Run the Python command argv under callgrind and return the
    instructions between its os.getpgrp() and os.getppid() calls, whose
    callgrind file becomes out_file (what came before and after is
    discarded).

    What would make two runs' fixed parts differ is kept out: the command
    runs in an empty working directory of its own (the import system lists
    a sys.path directory again when its mtime changed, and the working
    directory is on sys.path for `python -c` and scripts' imports), writes
    no .pyc (a module imported lazily in the counted part is compiled in
    every run, not in the first only), and has a fixed PYTHONHASHSEED
    (string hashes decide how many probes a dict lookup takes: a random
    seed moves the counts by a hundred instructions per operation)."""
    env = dict(env, PYTHONHASHSEED='0', PYTHONDONTWRITEBYTECODE='1')
    raw = out_file + '.raw'
    cwd = tempfile.mkdtemp(prefix='ourloop-callgrind-cwd-')
    try:
        proc = subprocess.run(
            ['valgrind', '--tool=callgrind', f'--callgrind-out-file={raw}',
             f'--zero-before={ZERO_AT}', f'--dump-before={DUMP_AT}', *argv],
            capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f'{what}: no answer in {timeout} s') from None
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{what}: {proc.stderr.strip()[-2000:]}')
    part = raw + '.1'       # the dump at DUMP_AT
    if not os.path.exists(part):
        raise RuntimeError(f'{what}: callgrind made no dump at {DUMP_AT}')
    os.replace(part, out_file)
    os.unlink(raw)          # what followed the counted part
    with open(out_file) as f:
        match = _TOTALS.search(f.read())
    if not match:
        raise RuntimeError(f'{what}: no instruction total in {out_file}')
    return int(match.group(1).replace(',', ''))


def count_instructions(loop_name, workload, size, out_file):
    """Instructions of one run of workload at size (run.py's worker, no
    warm-up, one timed run)."""
    argv = [sys.executable, os.path.join(HERE, 'run.py'),
            '--worker', loop_name, workload, '--size', str(size), '--no-warmup',
            '--inner', '1']
    return count_between_markers(argv, run._worker_env(loop_name), out_file,
                                 f'{loop_name} {workload}')


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
    parser.add_argument('--by-object', action='store_true',
                        help='also split each count by shared object: the interpreter, '
                             "asyncio's C Task and Future, the loop's native code "
                             '(with libuv), the C library, the rest')
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
    groups = {}
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
            if args.by_object:
                groups[workload, name] = group_growth(
                    os.path.join(out_dir, f'{name}-{workload}-small.out'),
                    os.path.join(out_dir, f'{name}-{workload}-big.out'), 2 * small)
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
    if groups:
        names = [name for name, _ in OBJECT_GROUPS] + [OTHER_GROUP]
        print()
        print("Instructions per operation by shared object (each function's own "
              "instructions, not what it calls; the loop's calls into the interpreter's "
              "C API count as the interpreter's):")
        print()
        print(run.markdown_table(
            ['workload', 'loop', *names, 'total'],
            [[w, name, *(f'{g[n]:,.0f}' for n in names), f'{per_op[w, name]:,.0f}']
             for (w, name), g in groups.items()]))
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
