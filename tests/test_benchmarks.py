"""The benchmark scripts still run: each one's quickest mode, on the stdlib
loop and ourloop, so that a change to the loop or to the scripts cannot
leave them broken until the next time someone measures.

These runs measure nothing worth reading (tiny sizes, one repetition); they
check that each script gets through its whole path (driver, worker or
server subprocesses, load generator, tables, the --json summary) and that
every cell it reports for the two loops holds a number. No timing is
asserted. Scripts that need valgrind or strace are skipped without them.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from support import require_ourloop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
LOOPS = "asyncio,ourloop"

pytestmark = pytest.mark.timeout(300)


def run_script(tmp_path, script, *args, json_out=True):
    require_ourloop()
    cmd = [sys.executable, os.path.join(BENCH, script), *args]
    out = tmp_path / "out.json"
    if json_out:
        cmd += ["--json", str(out)]
    # The environment as it is: an AddressSanitizer build (make asan) only
    # loads in a process that has the runtime preloaded (LD_PRELOAD).
    proc = subprocess.run(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    if not json_out:
        return proc.stdout, None
    with open(out) as f:
        return proc.stdout, json.load(f)


def assert_summary(data, rows, loops=("asyncio", "ourloop")):
    summary = data["summary"]
    assert summary["loops"] == list(loops)
    assert sorted(summary["rows"]) == sorted(rows)
    for row, cells in summary["rows"].items():
        for loop in loops:
            cell = cells[loop]
            assert cell is not None, (row, loop, summary["na"])
            assert 0 < cell["min"] <= cell["median"] <= cell["max"], (row, loop, cell)
        ratio = summary["ratios"][row]["ourloop/asyncio"]
        assert ratio is not None and ratio > 0
    return summary


def test_run_py_loop_core(tmp_path):
    workloads = ["call_soon", "call_later", "task_switch", "threadsafe", "run_in_executor"]
    out, data = run_script(
        tmp_path, "run.py", "--quick", "--loops", LOOPS, "--only", ",".join(workloads)
    )
    assert_summary(data, workloads)
    assert "geometric mean" in out
    for w in workloads:
        for result in data["samples"][w]["ourloop"]:
            assert result["build"], "the ourloop worker records which build it measured"


def test_run_py_compares_another_checkout(tmp_path):
    # ourloop@PATH: the same checkout under another label still goes
    # through the snapshot and probe path of a second build.
    out, data = run_script(
        tmp_path,
        "run.py",
        "--quick",
        "--only",
        "call_soon",
        "--loops",
        "ourloop,ourloop@" + ROOT,
    )
    labels = data["summary"]["loops"]
    assert labels[0] == "ourloop" and labels[1].startswith("ourloop@"), labels
    ratio = data["summary"]["ratios"]["call_soon"]["ourloop/" + labels[1]]
    assert ratio is not None and ratio > 0


def test_echo_py_each_family(tmp_path):
    rows = [
        "protocol/1k/1",
        "buffered/1k/1",
        "streams/1k/1",
        "sock/1k/1",
        "unix-streams/1k/1",
        "udp/64/1x1",
    ]
    if shutil.which("openssl"):
        rows.append("tls-protocol/1k/1")
    out, data = run_script(
        tmp_path,
        "echo.py",
        "--quick",
        "--duration",
        "0.1",
        "--loops",
        LOOPS,
        "--only",
        ",".join(rows),
    )
    assert_summary(data, rows)
    # The server CPU per request is there too (at 0.1 s a row may show n/a:
    # the kernel counts CPU time in 10 ms ticks).
    assert sorted(data["summary_cpu"]["rows"]) == sorted(rows)


def test_subprocess_pipe_py(tmp_path):
    out, data = run_script(
        tmp_path, "subprocess_pipe.py", "--quick", "--loops", LOOPS
    )
    summary = assert_summary(data, ["read", "read_protocol", "write", "spawn"])
    assert summary["rows"]["spawn"]["ourloop"]["median"] > 0


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_syscalls_py(tmp_path):
    out, data = run_script(
        tmp_path, "syscalls.py", "--n", "50", "--only", "protocol", "--loops", LOOPS
    )
    assert_summary(data, ["protocol/1", "protocol/2"])


def _asan_build():
    mod = require_ourloop()
    return "asan" in mod._core._build_info()["flavour"]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_instructions_py_counts(tmp_path):
    # One callgrind run of a tiny workload (the script runs two per cell,
    # n and 3n: a minute here), through the script's own counting code.
    if _asan_build():
        pytest.skip("valgrind cannot run an AddressSanitizer build (make asan)")
    sys.path.insert(0, BENCH)
    try:
        import instructions
    finally:
        sys.path.remove(BENCH)
    count = instructions.count_instructions(
        "ourloop", "call_soon", 100, str(tmp_path / "cg.out")
    )
    assert count > 1_000_000, count     # an interpreter start-up at least


@pytest.mark.parametrize("mode", ["protocol", "streams", "udp"])
def test_pingpong_child_runs(tmp_path, mode):
    # The exchange pingpong_instructions.py runs under callgrind, here
    # without valgrind (seconds instead of minutes), on both loops.
    sys.path.insert(0, BENCH)
    try:
        import pingpong_instructions
    finally:
        sys.path.remove(BENCH)
    require_ourloop()
    for loop in ("asyncio", "ourloop"):
        proc = subprocess.run(
            [sys.executable, "-c", pingpong_instructions.CHILD, loop, mode, "tcp", "20", "1024"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, (loop, proc.stdout[-2000:])


def test_bench_all_summary_and_chart(tmp_path):
    # bench_all.py's report and chart of a suite, from a real (tiny) run.
    out, data = run_script(
        tmp_path, "run.py", "--quick", "--only", "call_soon,gather", "--loops", LOOPS
    )
    sys.path.insert(0, BENCH)
    try:
        import bench_all
    finally:
        sys.path.remove(BENCH)
    path, why = bench_all.chart("core", data["summary"], data, str(tmp_path / "core.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert path is None and "matplotlib" in why
    else:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_sendfile_py(tmp_path):
    out, data = run_script(tmp_path, "sendfile.py", "--quick", "--loops", LOOPS)
    for workload in ("sendfile", "sendfile_fallback", "sock_sendfile"):
        for loop in ("asyncio", "ourloop"):
            assert data["results"][workload][loop]["median_mib_s"] > 0, (workload, loop)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="compares the stdlib's SSLProtocol of 3.11+"
)
def test_tls_sslproto_py(tmp_path):
    out, _ = run_script(
        tmp_path, "tls_sslproto.py", "--mib", "1", "--count", "50", "--rounds", "1",
        json_out=False,
    )
    modes = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert modes == ["layer", "bulk", "pingpong"], out
