"""tools/soak.py (`make soak`): a tiny run on both loops, and its verdicts.

The real run (minutes, 100,000 connections) is `make soak`; this keeps the
script from rotting and checks what it calls growth."""

import os
import subprocess
import sys

import pytest

pytest.importorskip('psutil')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))

import soak  # noqa: E402

ourloop = pytest.importorskip('ourloop')
from ourloop import _core  # noqa: E402


def result(fds=(10, 10), rss=(50.0, 51.0), tables=({'ready': 0}, {'ready': 0}), first=None):
    before = {'fds': fds[0], 'rss_mb': rss[0], 'cpu_s': 0.0}
    after = {'fds': fds[1], 'rss_mb': rss[1], 'cpu_s': 1.0}
    rounds = [dict(after, rss_mb=rss[0] if first is None else first), after]
    return {'loop': 'ourloop', 'scale': 1, 'connections': 1, 'seconds': 1.0,
            'before': before, 'after': after, 'rounds': rounds,
            'tables_before': tables[0], 'tables_after': tables[1]}


def test_judge_passes_a_flat_run():
    assert soak.judge(result(), 20.0) == []


def test_judge_flags_each_kind_of_growth():
    assert soak.judge(result(fds=(10, 11)), 20.0) == ['fds grew: 10 -> 11']
    assert 'RSS grew by 30.0 MB' in soak.judge(result(rss=(50.0, 80.0)), 20.0)[0]
    # Growth during the first round only (the allocator's high-water mark)
    # is not a leak; growth after it is.
    assert soak.judge(result(rss=(30.0, 60.0), first=58.0), 20.0) == []
    assert soak.judge(result(rss=(30.0, 60.0), first=35.0), 20.0) != []
    problems = soak.judge(result(tables=({'timers': 0}, {'timers': 3})), 20.0)
    assert problems == ['table timers: 0 -> 3']


@pytest.mark.timeout(600)
def test_tiny_soak_on_both_loops(tmp_path):
    out = tmp_path / 'soak.json'
    limit = []
    if 'asan' in _core._build_info()['flavour']:
        # make asan: ASan keeps freed memory out of use in a quarantine
        # (256 MB) that RSS counts until it is full; memory errors are what
        # that run checks, RSS is the other builds' to judge.
        limit = ['--rss-limit-mb', '1000']
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'soak.py'), '--scale', '0.005',
         '--json', str(out), *limit],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout
    import json
    results = {r['loop']: r for r in json.loads(out.read_text())}
    assert set(results) == {'ourloop', 'asyncio'}
    ours = results['ourloop']
    assert ours['connections'] >= 4 * 25
    # ourloop reports its tables; after the round they are back where they were.
    assert set(ours['tables_after']) >= {'ready', 'timers', 'uv_handles', 'open_transports'}
    assert soak.judge(ours, 1000.0) == []
    assert results['asyncio']['tables_after'] == {}


@pytest.mark.timeout(300)
def test_only_some_kinds_in_more_rounds(tmp_path):
    """--only runs the named kinds of work alone, --rounds splits it: the
    way to find which kind makes RSS grow, and whether it goes on."""
    out = tmp_path / 'soak.json'
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'soak.py'), '--scale', '0.01',
         '--loops', 'ourloop', '--only', 'timers,unix', '--rounds', '4', '--json', str(out),
         '--rss-limit-mb', '1000'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert '4 rounds, only timers,unix' in proc.stdout
    import json
    [ours] = json.loads(out.read_text())
    assert len(ours['rounds']) == 4
    # Only the Unix connections count: 4 rounds of 45,000 * 0.01 / 4.
    assert ours['connections'] == 4 * int(45_000 * 0.01 / 4)


@pytest.mark.parametrize('argv, message', [
    (['--only', 'tcp,nonsense'], 'unknown kind(s) of work: nonsense'),
    (['--rounds', '1'], '--rounds: at least 2'),
])
def test_bad_only_or_rounds_is_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        soak.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
