"""python -m ourloop: the version report and the quick comparison."""

import platform
import re
import subprocess
import sys

import pytest

ourloop = pytest.importorskip('ourloop')


def run_module(*args, timeout=120):
    proc = subprocess.run([sys.executable, '-m', 'ourloop', *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_build_info():
    info = ourloop._core._build_info()
    assert set(info) == {'compiler', 'flavour', 'libuv_linkage', 'libuv_compiled',
                         'platform_fallbacks'}
    assert info['flavour'] in ('release', 'debug', 'asan', 'ubsan', 'asan+ubsan')
    assert info['platform_fallbacks'] in ('none', 'some', 'forced')
    assert info['libuv_linkage'] in ('vendored, static', 'system, shared')
    assert re.fullmatch(r'\d+\.\d+\.\d+', info['libuv_compiled'])
    assert info['compiler'] and info['compiler'] != 'unknown'


def test_version_report():
    out = run_module()
    lines = dict(line.split(':', 1) for line in out.splitlines())
    assert set(lines) == {'ourloop', 'libuv', 'Python', 'compiler', 'build', 'platform'}
    assert lines['ourloop'].split()[0] == ourloop.__version__
    assert lines['libuv'].split()[0] == ourloop.libuv_version()
    assert lines['Python'].split()[0] == platform.python_version()
    assert lines['build'].strip() == ourloop._core._build_info()['flavour']
    plat = ourloop._core._platform_info()
    assert lines['platform'].strip() == (
        f"sendfile {plat['sendfile']}, {plat['accept']}, child fd {plat['child_fd']}, "
        f"{plat['poll_backend']}, pipe size {plat['pipe_size']} "
        f"(portable fallbacks: {plat['fallbacks']})")


def test_bench_short_run():
    # The same code path as the 30 s run, with tiny measurements.
    out = run_module('bench', '--seconds', '0.05', '--runs', '1', timeout=300)
    assert 'TCP echo, 1 KiB round trips/s' in out
    assert 'call_soon chain, callbacks/s' in out
    rows = re.findall(r'^  (\w+)\s+([\d,]+)\s+([\d.]+)x the stdlib loop$', out, re.MULTILINE)
    kinds = [kind for kind, _, _ in rows]
    assert kinds.count('asyncio') == 2 and kinds.count('ourloop') == 2
    for kind, rate, ratio in rows:
        assert int(rate.replace(',', '')) > 0
        if kind == 'asyncio':
            assert ratio == '1.00'


def test_bench_worker_rejects_unknown_workload():
    proc = subprocess.run([sys.executable, '-m', 'ourloop', 'bench', '--worker', 'ourloop', 'nope'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode != 0
    assert 'nope' in proc.stderr
