#!/usr/bin/env python3
"""`make valgrind`: a chosen subset of the suite under valgrind's memcheck.

    python tools/valgrind.py                    # the default subset (ourloop's half)
    python tools/valgrind.py tests/test_udp.py -k sendto   # any pytest arguments
    python tools/valgrind.py --keep DIR         # keep memcheck's XML report in DIR

pytest runs under `valgrind --tool=memcheck` with PYTHONMALLOC=malloc (so that
every Python object is a malloc block memcheck can follow). The run fails when
memcheck reports, with ourloop's extension or the libuv it links in one of
the innermost frames of the stack (DEPTH; every Python function the loop
runs has ourloop far down its stack, which makes nothing ourloop's):

- an invalid read or write, an invalid or mismatched free, a jump or move that
  depends on uninitialised memory, or a bad system-call argument;
- a block "definitely lost" at exit.

Errors whose stacks stay inside the interpreter, OpenSSL or libc are counted
and listed but do not fail the run: they are not ourloop's to fix (Python's own
allocations that live until exit show up as "possibly lost" or "still
reachable", which are not checked at all). The pytest run itself must pass.
Children (subprocess tests) are not traced. Needs valgrind (apt-get install
valgrind); the default subset takes a few minutes.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One module per kind of handle and transport, ourloop's half of each
# both-loop test: the native code under memcheck, in minutes.
DEFAULT_ARGS = [
    'tests/test_timers.py', 'tests/test_callbacks.py', 'tests/test_tasks.py',
    'tests/test_tcp_transport.py', 'tests/test_udp.py', 'tests/test_pipes.py',
    'tests/test_fd_watchers.py', 'tests/test_unclosed_transport.py',
    'tests/test_abort_sends.py', 'tests/test_tls.py',
    # The native sock_* operations and the lazily made per-connection state.
    'tests/test_sock.py', 'tests/test_idle_memory.py',
    # (Two tests measure time against limits that memcheck's ~30x slowdown
    # breaks: 8 MB through a paused writer in 10 s, a signal within a tick.)
    '-k', 'ourloop and not large_write_flow_control and not signal_wakeup_after',
]

# How deep in a stack ourloop's code must appear for an error to be its:
# every Python function the loop runs has _core far down its stack, so only
# the innermost frames say whose code misused memory.
DEPTH = 4

# memcheck error kinds that mean memory was misused.
MISUSE = {
    'InvalidRead', 'InvalidWrite', 'InvalidFree', 'MismatchedFree', 'InvalidJump',
    'UninitCondition', 'UninitValue', 'SyscallParam', 'Overlap', 'InvalidMemPool',
    'FishyValue',
}
LEAK = 'Leak_DefinitelyLost'


def ours(frame_objs):
    """True if one of the DEPTH innermost frames of a stack is ourloop's
    extension or libuv."""
    for obj in frame_objs[:DEPTH]:
        base = os.path.basename(obj)
        if base.startswith('_core.') or base.startswith('libuv'):
            return True
    return False


def read_report(xml_path):
    """The root element of one memcheck XML file. A forked child that dies
    before it execs (or is killed) may leave its report unterminated: what
    it did write is read."""
    with open(xml_path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    end = text.find('</valgrindoutput>')
    if end < 0:
        last = text.rfind('</error>')
        text = (text[:last + len('</error>')] if last >= 0 else text) + '</valgrindoutput>'
    else:
        text = text[:end + len('</valgrindoutput>')]
    return ET.fromstring(text)


def parse(xml_paths):
    """(ours, others): memcheck errors of the kinds checked, as
    (kind, what, first lines of the stack)."""
    mine, others = [], []
    for error in (e for path in xml_paths for e in read_report(path).iter('error')):
        kind = error.findtext('kind')
        if kind not in MISUSE and kind != LEAK:
            continue
        frames = []
        objs = []
        for frame in error.iter('frame'):
            objs.append(frame.findtext('obj') or '')
            fn = frame.findtext('fn') or '???'
            where = frame.findtext('file')
            line = frame.findtext('line')
            frames.append(f'{fn} ({where}:{line})' if where else f'{fn} ({frame.findtext("obj")})')
        what = error.findtext('what') or (error.find('xwhat').findtext('text')
                                         if error.find('xwhat') is not None else '')
        entry = (kind, what, frames[:8])
        (mine if ours(objs) else others).append(entry)
    return mine, others


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--keep', metavar='DIR', help='keep the XML report in DIR')
    parser.add_argument('--python', default=sys.executable)
    args, pytest_args = parser.parse_known_args(argv)
    if shutil.which('valgrind') is None:
        print('valgrind.py: valgrind is not installed (apt-get install valgrind)', file=sys.stderr)
        return 2
    pytest_args = pytest_args or DEFAULT_ARGS
    out_dir = args.keep or tempfile.mkdtemp(prefix='ourloop-valgrind-')
    os.makedirs(out_dir, exist_ok=True)
    # One file per process: a forked child (until it execs) is traced too.
    xml_path = os.path.join(out_dir, 'memcheck.%p.xml')
    env = dict(os.environ, PYTHONMALLOC='malloc')
    cmd = ['valgrind', '--tool=memcheck', '--trace-children=no', '--leak-check=full',
           '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
           '--num-callers=30', '--xml=yes', f'--xml-file={xml_path}',
           args.python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
           # memcheck makes everything ~30x slower
           '-o', 'timeout=1800', *pytest_args]
    print('valgrind.py:', ' '.join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    mine, others = parse(sorted(glob.glob(os.path.join(out_dir, 'memcheck.*.xml'))))
    for kind, what, frames in mine:
        print(f'\n== ourloop: {kind}: {what}')
        for frame in frames:
            print(f'     {frame}')
    print(f'\nvalgrind.py: pytest exit code {rc}; memcheck: {len(mine)} error(s) in '
          f'ourloop or libuv, {len(others)} elsewhere (not ourloop\'s; reports in {out_dir})')
    if not args.keep and not mine and rc == 0:
        for path in glob.glob(os.path.join(out_dir, '*')):
            os.unlink(path)
        os.rmdir(out_dir)
    return 1 if (mine or rc != 0) else 0


if __name__ == '__main__':
    sys.exit(main())
