#!/usr/bin/env python3
"""Run the frameworks' own test suites on the stdlib loop and on ourloop.

``make test-upstream`` runs this script.  It

1. downloads the source packages (sdists) of pinned releases of aiohttp,
   anyio, httpx and uvicorn (``pip download --no-binary :all:``) into
   ``.venvs/upstream-sdists/`` and unpacks them into ``.venvs/upstream-src/``
   (the suites' tests ship in the sdists);
2. makes the venv ``.venvs/upstream-pyX.Y`` from the running Python, installs
   the four packages from those sdists and the test dependencies their
   requirements name (what the package index has; a module whose imports
   are missing is left out and the docs say so), and makes the ourloop that
   the running Python imports importable there (a symlink, no rebuild);
3. runs each suite twice, with pytest's JUnit XML: once as it is (the stdlib
   loop) and once with ``-p ourloop.pytest_plugin``, which makes every loop
   asyncio creates an ourloop loop; the two runs go side by side (``--jobs
   2``, the default with two cores or more: each is its own pytest process
   with its own XML, log and temporary directories), but for a suite that
   binds a fixed port (``side_by_side: False``);
4. compares the outcome of every test id across the two runs, reruns each
   test that passed on the stdlib loop and did not on ourloop (both loops,
   ``--confirm`` times) to tell a steady difference from a flaky one, and
   prints the counts and the differences (``--update-docs`` writes them to
   docs/conformance.md between markers).

It exits non-zero if a test passes on the stdlib loop and fails (or errors)
on ourloop in the main run, is not in ALLOWED below, and is steady: its
reruns pass fewer times on ourloop than on the stdlib loop (with
``--confirm 0``, every such test); or if the ourloop run shows no sign of
the plugin.  A test whose reruns pass as often on ourloop is reported as
flaky and does not fail the run.  All four suites run from a clean clone in
about 10 minutes on a 2-core machine (see docs/conformance.md for the
measured time); a second run reuses the venv (``--reinstall`` rebuilds it).

Usage::

    python tools/test_upstream.py                      # all suites
    python tools/test_upstream.py --suite anyio -v     # one suite
    python tools/test_upstream.py --update-docs
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
VENVS = os.path.join(REPO_ROOT, '.venvs')
SDIST_DIR = os.path.join(VENVS, 'upstream-sdists')
SRC_DIR = os.path.join(VENVS, 'upstream-src')
DOCS_FILE = os.path.join(REPO_ROOT, 'docs', 'conformance.md')
DOCS_KEY = 'upstream'

# Each suite: the pinned release, the pytest arguments (run from the unpacked
# sdist's directory), and, per test module, the imports it needs beyond the
# suite's own (a module whose imports are missing is ignored, and said so).
SUITES = {
    'aiohttp': {
        'version': '3.14.5',
        # The sdist's pytest.ini adds xdist, coverage and doctests; keep its
        # marker selection and nothing else.  The whole suite (5,200 tests)
        # takes 17 min per loop on a loaded 2-core machine, so only the
        # modules that run the loop's I/O run: servers, clients, connectors,
        # websockets, sendfile, run_app and the test utilities.  The rest
        # (parsers, cookie jar, multipart, URL dispatch, benchmarks) test
        # pure-Python code whose only loop use is create_future().
        'args': ['-o', 'addopts=', '--strict-markers',
                 '-m', 'not dev_mode and not autobahn and not internal',
                 '--timeout=120'] + ['tests/test_%s.py' % m for m in (
                     'base_protocol', 'client_functional', 'client_proto',
                     'client_session', 'client_ws_functional', 'connector',
                     'loop', 'proxy_functional', 'pytest_plugin', 'resolver',
                     'run_app', 'streams', 'test_utils', 'web_functional',
                     'web_runner', 'web_sendfile_functional', 'web_server',
                     'web_websocket_functional')],
        'ignore': [],
        'needs': {
            'tests/test_proxy_functional.py': ['proxy'],
            'tests/test_client_fingerprint.py': ['trustme'],
        },
    },
    'anyio': {
        'version': '4.16.0',
        # trio's parametrizations never touch asyncio; the uvloop ones are
        # skipped (uvloop is not installed: it is not the loop under test).
        'args': ['-k', 'not trio and not uvloop', 'tests'],
        'ignore': [],
        'needs': {},
    },
    'httpx': {
        'version': '0.29.0',
        'args': ['-k', 'not trio', '--timeout=60', 'tests'],
        'ignore': [],
        'needs': {},
        # Its test server binds 127.0.0.1:8000: the two loops' runs would
        # take it from each other (and the suite takes under a minute).
        'side_by_side': False,
    },
    'uvicorn': {
        'version': '0.55.0',
        # The sdist's addopts start 8 xdist workers.
        'args': ['-o', 'addopts=-rxXs --strict-config --strict-markers',
                 '--timeout=60', 'tests'],
        # codspeed benchmarks: they need pytest-codspeed's 'benchmark' marker.
        'ignore': ['tests/benchmarks'],
        'needs': {
            'tests/test_main.py': ['httpx2'],
            'tests/middleware/test_message_logger.py': ['httpx2'],
            'tests/middleware/test_wsgi.py': ['a2wsgi'],
        },
    },
}

# What the suites' requirements (aiohttp's requirements/test.in, anyio's
# and uvicorn's test dependency groups, httpx's test imports) name that
# matters on Linux/CPython, without the linters, coverage, xdist and uvloop.
TEST_DEPS = [
    'pytest', 'pytest-timeout', 'pytest-mock', 'trustme', 'cryptography',
    'coverage',  # aiohttp's pytest.ini names its warning class
    # aiohttp
    'blockbuster', 'freezegun', 'proxy.py', 'isal', 'zlib-ng', 'pkgconfig',
    'aiodns', 'brotli', 'backports.zstd; python_version < "3.14"', 'gunicorn',
    # anyio
    'hypothesis', 'psutil', 'truststore', 'exceptiongroup', 'trio',
    # httpx
    'chardet', 'zstandard', 'socksio', 'h2', 'click', 'rich', 'pygments',
    # uvicorn
    'httptools', 'websockets', 'wsproto', 'python-dotenv', 'pyyaml',
    'watchfiles', 'a2wsgi', 'httpx2',
]

# Tests that pass on the stdlib loop and fail on ourloop for a reason that is
# not an ourloop bug.  Each entry: test id (as printed) -> the reason.  Keep
# every entry explained; docs/conformance.md repeats them.
ALLOWED: dict[str, str] = {
    # Asserts that asyncio.run() without a loop_factory makes the OS's
    # stdlib loop class (asyncio.SelectorEventLoop): under the plugin the
    # default loop is ourloop's by design, so this test checks the switch,
    # not the loop.
    'tests.test_compat::test_asyncio_run__default_loop_factory':
        "asserts the stdlib's default loop class; the plugin replaces it",
}

RUN_TIMEOUT = 25 * 60          # one suite on one loop
CONFIRM_TIMEOUT = 5 * 60


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


# --- setup -------------------------------------------------------------------

def venv_dir() -> str:
    return os.path.join(VENVS, 'upstream-py%d.%d' % sys.version_info[:2])


def venv_python() -> str:
    return os.path.join(venv_dir(), 'bin', 'python')


def fetch_sdists() -> dict[str, str]:
    os.makedirs(SDIST_DIR, exist_ok=True)
    paths = {}
    for name, suite in SUITES.items():
        pattern = os.path.join(SDIST_DIR, '%s-%s.tar.gz' % (name, suite['version']))
        if not glob.glob(pattern):
            log('downloading the %s %s sdist' % (name, suite['version']))
            run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps',
                 '--no-binary', ':all:', '-d', SDIST_DIR,
                 '%s==%s' % (name, suite['version'])])
        found = glob.glob(pattern)
        if not found:
            sys.exit('no %s sdist in %s after pip download' % (name, SDIST_DIR))
        paths[name] = found[0]
    return paths


def unpack(name: str, sdist: str) -> str:
    dest = os.path.join(SRC_DIR, '%s-%s' % (name, SUITES[name]['version']))
    if not os.path.isdir(os.path.join(dest, 'tests')):
        os.makedirs(SRC_DIR, exist_ok=True)
        with tarfile.open(sdist) as tf:
            if hasattr(tarfile, 'data_filter'):
                tf.extractall(SRC_DIR, filter='data')
            else:
                tf.extractall(SRC_DIR)
    # The tests must import the installed build (aiohttp's has its C
    # parsers), not the source package beside them in the sdist.
    pkg = os.path.join(dest, name)
    if os.path.isdir(pkg):
        os.rename(pkg, pkg + '.src-not-imported')
    return dest


def ourloop_package_dir() -> str:
    import ourloop
    return os.path.dirname(os.path.abspath(ourloop.__file__))


def setup_venv(sdists: dict[str, str], reinstall: bool) -> list[str]:
    """Make the venv; return the test dependencies that could not be installed."""
    vdir = venv_dir()
    stamp = os.path.join(vdir, 'upstream-stamp.json')
    want = {'suites': {n: s['version'] for n, s in SUITES.items()}, 'deps': TEST_DEPS}
    if reinstall and os.path.isdir(vdir):
        shutil.rmtree(vdir)
    if os.path.exists(stamp):
        with open(stamp) as f:
            have = json.load(f)
        if have.get('want') == want:
            link_ourloop()
            return have['missing']
        shutil.rmtree(vdir)
    log('making %s' % os.path.relpath(vdir, REPO_ROOT))
    run([sys.executable, '-m', 'venv', vdir])
    pip = [venv_python(), '-m', 'pip', '--disable-pip-version-check', 'install', '-q']
    run(pip + ['-U', 'pip'])
    log('installing %s from their sdists' % ', '.join(sorted(sdists)))
    run(pip + [sdists[n] for n in sorted(sdists)])
    missing = []
    try:
        run(pip + TEST_DEPS)
    except subprocess.CalledProcessError:
        log('the test dependencies do not install together; one at a time')
        for dep in TEST_DEPS:
            try:
                run(pip + [dep])
            except subprocess.CalledProcessError:
                missing.append(dep)
                log('  not installable here: %s' % dep)
    link_ourloop()
    with open(stamp, 'w') as f:
        json.dump({'want': want, 'missing': missing}, f)
    return missing


def link_ourloop() -> None:
    """Make the ourloop the running Python imports importable in the venv."""
    link_dir = os.path.join(venv_dir(), 'ourloop-link')
    os.makedirs(link_dir, exist_ok=True)
    link = os.path.join(link_dir, 'ourloop')
    target = ourloop_package_dir()
    if os.path.islink(link) and os.readlink(link) == target:
        pass
    else:
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(target, link)
    site = subprocess.check_output(
        [venv_python(), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        text=True).strip()
    with open(os.path.join(site, 'ourloop-upstream.pth'), 'w') as f:
        f.write(link_dir + '\n')


def importable(mod: str) -> bool:
    return subprocess.run(
        [venv_python(), '-c', 'import importlib.util, sys; '
         'sys.exit(importlib.util.find_spec(%r) is None)' % mod]).returncode == 0


# --- running -----------------------------------------------------------------

class Result:
    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.nodeids: dict[str, str] = {}
        self.seconds = 0.0
        self.returncode = 0
        self.timed_out = False
        self.plugin_line = ''
        self.log_path = ''

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


_RANK = {'passed': 0, 'skipped': 1, 'failed': 2, 'error': 3}


def parse_junit(path: str) -> tuple[dict[str, str], dict[str, str]]:
    outcomes: dict[str, str] = {}
    nodeids: dict[str, str] = {}
    if not os.path.exists(path):
        return outcomes, nodeids
    for case in ET.parse(path).getroot().iter('testcase'):
        cls = case.get('classname', '')
        name = case.get('name', '')
        tid = '%s::%s' % (cls, name) if cls else name
        outcome = 'passed'
        for child in case:
            if child.tag in ('failure', 'error', 'skipped'):
                outcome = {'failure': 'failed'}.get(child.tag, child.tag)
        prev = outcomes.get(tid)
        if prev is None or _RANK[outcome] > _RANK[prev]:
            outcomes[tid] = outcome
        file = case.get('file')
        if file and tid not in nodeids:
            mod = file[:-3].replace('/', '.') if file.endswith('.py') else ''
            rest = cls[len(mod) + 1:] if mod and cls.startswith(mod + '.') else ''
            nodeids[tid] = '::'.join([file] + ([*rest.split('.')] if rest else []) + [name])
    return outcomes, nodeids


def pytest_cmd(loop: str, xml: str) -> list[str]:
    cmd = [venv_python(), '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
           '-o', 'junit_family=xunit1', '--junitxml', xml]
    if loop == 'ourloop':
        cmd += ['-p', 'ourloop.pytest_plugin']
    return cmd


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ('PYTEST_ADDOPTS', 'PYTEST_PLUGINS', 'PYTHONPATH'):
        env.pop(var, None)
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    return env


def run_pytest(cmd: list[str], cwd: str, log_path: str, timeout: float) -> tuple[int, bool]:
    with open(log_path, 'w') as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env=child_env(), start_new_session=True)
        try:
            return proc.wait(timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -9, True


def run_suite(name: str, src: str, loop: str, extra: list[str], outdir: str,
              verbose: bool) -> Result:
    res = Result()
    xml = os.path.join(outdir, '%s-%s.xml' % (name, loop))
    res.log_path = os.path.join(outdir, '%s-%s.log' % (name, loop))
    if os.path.exists(xml):
        os.unlink(xml)
    cmd = pytest_cmd(loop, xml) + extra
    if verbose:
        log('  $ (cd %s && %s)' % (os.path.relpath(src, REPO_ROOT), ' '.join(cmd)))
    t0 = time.monotonic()
    res.returncode, res.timed_out = run_pytest(cmd, src, res.log_path, RUN_TIMEOUT)
    res.seconds = time.monotonic() - t0
    res.outcomes, res.nodeids = parse_junit(xml)
    with open(res.log_path, errors='replace') as f:
        text = f.read()
    m = re.search(r'^ourloop: .*$', text, re.M)
    res.plugin_line = m.group(0) if m else ''
    return res


def confirm(name: str, src: str, nodeids: list[str], times: int, outdir: str) -> dict:
    """Rerun nodeids on both loops; return {tid: {loop: passes}}."""
    tally: dict[str, dict[str, int]] = {}
    base = [a for a in SUITES[name]['args'] if not a.startswith('tests')]
    for i in range(times):
        for loop in ('stdlib', 'ourloop'):
            xml = os.path.join(outdir, '%s-confirm-%s-%d.xml' % (name, loop, i))
            cmd = pytest_cmd(loop, xml) + base + nodeids
            run_pytest(cmd, src, xml[:-4] + '.log', CONFIRM_TIMEOUT)
            outcomes, _ = parse_junit(xml)
            for tid, outcome in outcomes.items():
                t = tally.setdefault(tid, {'stdlib': 0, 'ourloop': 0})
                t[loop] += outcome == 'passed'
    return tally


# --- report ------------------------------------------------------------------

def differences(std: Result, our: Result) -> list[tuple[str, str, str]]:
    out = []
    for tid in sorted(set(std.outcomes) | set(our.outcomes)):
        a = std.outcomes.get(tid, 'absent')
        b = our.outcomes.get(tid, 'absent')
        if a != b:
            out.append((tid, a, b))
    return out


def is_regression(a: str, b: str) -> bool:
    return a == 'passed' and b in ('failed', 'error', 'absent')


def is_flaky(tally: dict | None) -> bool:
    """A regression of the main run whose reruns (`--confirm`) pass at
    least as often on ourloop as on the stdlib loop."""
    return bool(tally) and tally['ourloop'] >= tally['stdlib']


def fmt_counts(r: Result) -> str:
    s = '%d / %d / %d / %d' % (r.count('passed'), r.count('failed'), r.count('error'),
                               r.count('skipped'))
    if r.timed_out:
        s += ' (timed out)'
    return s


def side_by_side_note(results: dict) -> str:
    apart = [n for n in results if not SUITES[n].get('side_by_side', True)]
    return ', the two side by side%s' % (
        ' (but %s\'s, which bind%s a fixed port)' % (
            ' and '.join(apart), 's' if len(apart) == 1 else '') if apart else '')


def render(results: dict, total_seconds: float, setup_seconds: float, missing: list[str],
           ignored: dict[str, list[str]], jobs: int = 1) -> str:
    import ourloop
    py = '.'.join(map(str, sys.version_info[:3]))
    lines = [
        '### Frameworks\' own suites, Python %s' % py,
        '',
        'ourloop `%s` (libuv %s), run on %s by `make test-upstream` '
        '(`tools/test_upstream.py`): each suite once on the stdlib loop and once '
        'with `pytest -p ourloop.pytest_plugin`%s. Wall time %.1f min (%.1f min '
        'of it making the venv from the sdists).'
        % (ourloop.__version__, ourloop.libuv_version(), time.strftime('%Y-%m-%d'),
           side_by_side_note(results) if jobs > 1 else '',
           total_seconds / 60, setup_seconds / 60),
        '',
        '| suite | stdlib loop: passed / failed / errors / skipped | ourloop: passed '
        '/ failed / errors / skipped | ourloop loops made | time stdlib / ourloop |',
        '|---|---|---|---|---|',
    ]
    for name, (std, our, _diffs, _tally) in results.items():
        loops = re.search(r'(\d+) ourloop loop', our.plugin_line)
        lines.append('| %s %s | %s | %s | %s | %.0f s / %.0f s |' % (
            name, SUITES[name]['version'], fmt_counts(std), fmt_counts(our),
            loops.group(1) if loops else '?', std.seconds, our.seconds))
    lines.append('')
    notes = []
    for name in results:
        if ignored.get(name):
            notes.append('- %s: not run: %s.' % (name, ', '.join(
                '`%s`' % m for m in ignored[name])))
    if missing:
        notes.append('- test dependencies not installable here: %s.'
                     % ', '.join('`%s`' % m for m in missing))
    if notes:
        lines += ['Left out (see `SUITES` in the script for why):', ''] + notes + ['']
    lines += ['Every test whose outcome differs between the two loops (main run; '
              '"rerun" is `--confirm` reruns of that test alone, passes on '
              'stdlib / ourloop):', '']
    any_diff = False
    for name, (_std, _our, diffs, tally) in results.items():
        for tid, a, b in diffs:
            any_diff = True
            t = tally.get(tid)
            rerun = ' rerun %d / %d;' % (t['stdlib'], t['ourloop']) if t else ''
            why = ALLOWED.get(tid)
            if why:
                verdict = 'allowed: ' + why
            elif not is_regression(a, b):
                verdict = 'ourloop does better'
            elif is_flaky(t):
                verdict = 'flaky: its reruns pass as often on ourloop'
            else:
                verdict = 'NOT ALLOWED'
            lines.append('- %s `%s`: stdlib %s, ourloop %s;%s %s' % (
                name, tid, a, b, rerun, verdict))
    if not any_diff:
        lines.append('- none')
    return '\n'.join(lines) + '\n'


def update_docs(block: str) -> None:
    begin = '<!-- BEGIN GENERATED %s -->' % DOCS_KEY
    end = '<!-- END GENERATED %s -->' % DOCS_KEY
    with open(DOCS_FILE) as f:
        text = f.read()
    new = begin + '\n' + block.rstrip() + '\n' + end
    if begin in text and end in text:
        text = text[:text.index(begin)] + new + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + '\n\n' + new + '\n'
    with open(DOCS_FILE, 'w') as f:
        f.write(text)


# --- main --------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--suite', action='append', choices=sorted(SUITES),
                    help='run only this suite (repeatable)')
    ap.add_argument('--reinstall', action='store_true', help='remake the venv')
    ap.add_argument('--confirm', type=int, default=3, metavar='N',
                    help='rerun each regression N times on both loops (default 3)')
    ap.add_argument('--update-docs', action='store_true',
                    help='write the results into docs/conformance.md')
    ap.add_argument('--out', default=os.path.join(VENVS, 'upstream-results'),
                    help='where the JUnit XML and logs go')
    ap.add_argument('--jobs', type=int, choices=(1, 2),
                    default=2 if (os.cpu_count() or 1) >= 2 else 1,
                    help='run the two loops of a suite side by side (2, the default '
                         'with 2 cores or more) or one after the other (1)')
    ap.add_argument('-v', '--verbose', action='store_true')
    opts = ap.parse_args()
    t_start = time.monotonic()
    names = opts.suite or list(SUITES)

    sdists = fetch_sdists()
    srcs = {n: unpack(n, sdists[n]) for n in SUITES}
    missing = setup_venv(sdists, opts.reinstall)
    setup_seconds = time.monotonic() - t_start
    log('venv ready in %.0f s: %s' % (setup_seconds, os.path.relpath(venv_dir(), REPO_ROOT)))
    os.makedirs(opts.out, exist_ok=True)

    results = {}
    ignored: dict[str, list[str]] = {}
    failed_gate = []
    for name in names:
        suite = SUITES[name]
        src = srcs[name]
        extra = list(suite['args'])
        ign = []
        for pat in suite['ignore']:
            for path in sorted(glob.glob(os.path.join(src, pat))):
                ign.append(os.path.relpath(path, src))
        skipped_deps = []
        for path, mods in suite['needs'].items():
            lost = [m for m in mods if not importable(m)]
            if lost:
                ign.append(path)
                skipped_deps.append('%s (needs %s)' % (path, ', '.join(lost)))
        extra = [a for p in ign for a in ('--ignore', p)] + extra
        ignored[name] = ([p for p in ign if not any(p.startswith(s.split(' ')[0])
                                                     for s in skipped_deps)]
                         + skipped_deps)
        loops = ('stdlib', 'ourloop')
        jobs = opts.jobs if suite.get('side_by_side', True) else 1
        log('%s %s on the %s loop%s ...' % (
            name, suite['version'], ' and the '.join(loops),
            's side by side' if jobs > 1 else 's, one after the other'))
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            runs = {loop: pool.submit(run_suite, name, src, loop, extra, opts.out,
                                      opts.verbose) for loop in loops}
            res = {loop: f.result() for loop, f in runs.items()}
        for loop, r in res.items():
            log('  %s: passed/failed/errors/skipped %s in %.0f s%s' % (
                loop, fmt_counts(r), r.seconds,
                ('; ' + r.plugin_line) if r.plugin_line else ''))
            if not r.outcomes:
                failed_gate.append('%s on %s: no results (see %s)' % (name, loop, r.log_path))
        std, our = res['stdlib'], res['ourloop']
        if our.outcomes and not our.plugin_line:
            failed_gate.append('%s: the ourloop run shows no plugin summary' % name)
        diffs = differences(std, our)
        regress = [tid for tid, a, b in diffs if is_regression(a, b)]
        tally = {}
        if regress and opts.confirm:
            ids = [std.nodeids[t] for t in regress if t in std.nodeids]
            log('  confirming %d test(s), %d time(s) each' % (len(ids), opts.confirm))
            tally = confirm(name, src, ids, opts.confirm, opts.out)
        for tid, a, b in diffs:
            t = tally.get(tid)
            extra_s = ' (rerun: stdlib %d, ourloop %d passes)' % (
                t['stdlib'], t['ourloop']) if t else ''
            log('  differs: %s: stdlib %s, ourloop %s%s%s' % (
                tid, a, b, extra_s, ' [allowed]' if tid in ALLOWED else
                ' [flaky]' if is_regression(a, b) and is_flaky(t) else ''))
        for tid in regress:
            if tid not in ALLOWED and not is_flaky(tally.get(tid)):
                failed_gate.append('%s: %s passes on the stdlib loop, not on ourloop'
                                   % (name, tid))
        results[name] = (std, our, diffs, tally)

    total = time.monotonic() - t_start
    block = render(results, total, setup_seconds, missing, ignored, opts.jobs)
    log('')
    log(block)
    if opts.update_docs:
        update_docs(block)
        log('wrote %s' % os.path.relpath(DOCS_FILE, REPO_ROOT))
    if failed_gate:
        log('FAILED:')
        for f in failed_gate:
            log('  ' + f)
        return 1
    log('no test passes on the stdlib loop and fails on ourloop (%.1f min)' % (total / 60))
    return 0


if __name__ == '__main__':
    sys.exit(main())
