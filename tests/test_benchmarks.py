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


def test_function_counts_are_each_functions_own(tmp_path):
    # The per-function counts of instructions.py (and --top, --by-object):
    # a call's inclusive cost (the line after `calls=`) is the callee's, not
    # the caller's, also for a call still running at the dump (calls=0, the
    # frames around the counted part); inlined code (fi=/fe=) is its
    # function's; recursion levels (f'2) are one function; compressed names
    # are resolved.
    sys.path.insert(0, BENCH)
    try:
        import instructions
    finally:
        sys.path.remove(BENCH)
    out = tmp_path / "cg.out"
    out.write_text(
        "# callgrind format\nversion: 1\npositions: line\nevents: Ir\n"
        "summary: 163\n\n"
        "ob=(1) /usr/lib/libpython3.11.so.1.0\nfl=(1) main.c\nfn=(1) main\n"
        "cob=(2) /x/ourloop/_core.cpython-311-x86_64-linux-gnu.so\n"
        "cfi=(2) _core.c\ncfn=(2) run_ready\ncalls=0 10\n5 160\n"
        "+1 3\n\n"
        "ob=(2)\nfl=(2)\nfn=(2)\n20 100\nfi=(3) object.h\n7 20\nfe=(2)\n+1 5\n"
        "cob=(1)\ncfi=(1)\ncfn=(3) step'2\ncalls=2 30\n21 35\n\n"
        "ob=(1)\nfl=(1)\nfn=(3)\n30 30\nfn=(4) step\n31 5\n"
    )
    counts = instructions.function_counts(str(out))
    assert counts == {
        "main (libpython3.11.so.1.0)": 3,
        "run_ready (_core.cpython-311-x86_64-linux-gnu.so)": 125,
        "step (libpython3.11.so.1.0)": 35,
    }
    assert sum(counts.values()) == 163
    assert instructions.group_of("run_ready (_core.cpython-311-x86_64-linux-gnu.so)") \
        == "loop (native)"
    assert instructions.group_of("main (libpython3.11.so.1.0)") == "interpreter"
    assert instructions.group_of("sock_recv (_socket.cpython-311-x86_64-linux-gnu.so)") \
        == "other"


@pytest.mark.parametrize("mode", ["protocol", "buffered", "streams", "udp", "sock"])
@pytest.mark.parametrize("family", ["tcp", "unix", "tls"])
def test_pingpong_child_runs(tmp_path, mode, family):
    if family == "unix" and mode == "udp":
        pytest.skip("udp is over 127.0.0.1 only")
    # The exchange pingpong_instructions.py runs under callgrind, here
    # without valgrind (seconds instead of minutes), on both loops.
    sys.path.insert(0, BENCH)
    try:
        import pingpong_instructions
    finally:
        sys.path.remove(BENCH)
    tls = []
    if family == "tls":
        # --tls: TCP, with the certificate the script makes (echo.py's); the
        # child asserts that its client's transport is a TLS one.
        if mode not in pingpong_instructions.TLS_MODES:
            pytest.skip(f"--tls leaves {mode} out")
        tls_dir, why = _import_bench("echo").make_tls_files()
        assert tls_dir is not None, why
        family, tls = "tcp", [tls_dir]
    require_ourloop()
    for loop in ("asyncio", "ourloop"):
        proc = subprocess.run(
            [sys.executable, "-c", pingpong_instructions.CHILD, loop, mode, family, "20", "1024",
             *tls],
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
    charts = _import_bench("charts")
    path, why = charts.suite_chart("core", data["summary"], data, str(tmp_path / "core.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert path is None and "matplotlib" in why
    else:
        text = charts.png_text(path)
        # The title says when, where and under which load it ran.
        for part in ("core: ops/s", data["date"][:10], data["machine"]["python"],
                     "libuv " + data["machine"]["libuv (ourloop)"], "load average"):
            assert part in text["Description"], (part, text)


CHART_LOOPS = ["asyncio", "uvloop", "rloop", "ourloop"]


def _fake_run(directory, suite, unit, rows, date, higher=True, cpu=False, load=True):
    """A run's <suite>.json as the scripts write it, made up."""
    run = _import_bench("run")
    values = {r: {lp: [100.0 * (i + 1), 110.0 * (i + 1)] for i, lp in enumerate(CHART_LOOPS)}
              for r in rows}
    data = {"date": date,
            "machine": {"cpu": "Test CPU 9000", "cores": 2, "python": "CPython 3.99.1",
                        "libuv (ourloop)": "1.51.0", "git": "abc1234"},
            "summary": run.summarize_samples(suite, unit, rows, CHART_LOOPS, values,
                                             higher_is_better=higher)}
    if load:
        data["load_average"] = {"before": "3.00 2.00 1.00", "after": "4.50 2.00 1.00"}
    if cpu:
        data["summary_cpu"] = run.summarize_samples(suite, "µs", rows, CHART_LOOPS, values,
                                                    higher_is_better=False)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, suite + ".json"), "w") as f:
        json.dump(data, f)


def test_charts_publish_latest_runs_and_headline(tmp_path):
    # make charts: per suite the latest run's chart, and the headline chart
    # of the callgrind suites with the HTTP CPU per request; titles and
    # captions name date, CPU, Python, libuv, commit, and the load where
    # it matters; small palette PNGs.
    pytest.importorskip("matplotlib")
    charts = _import_bench("charts")
    old, new, dest = tmp_path / "old", tmp_path / "new", tmp_path / "charts"
    _fake_run(old, "core", "ops/s", ["call_soon", "gather"], "2026-01-01T10:00:00")
    _fake_run(new, "core", "ops/s", ["call_soon", "gather"], "2026-02-01T10:00:00")
    _fake_run(old, "http", "req/s", ["uvicorn-httptools/16", "aiohttp/16"],
              "2026-01-01T11:00:00", cpu=True)
    _fake_run(new, "instructions", "instr/op", ["call_soon", "task_switch"],
              "2026-02-01T12:00:00", higher=False, load=False)
    _fake_run(new, "roundtrip", "instr", ["protocol round trip", "streams round trip"],
              "2026-02-01T12:30:00", higher=False, load=False)
    written = charts.publish([str(old), str(new)], str(dest), say=lambda msg: None)
    assert sorted(os.path.basename(p) for p in written) == [
        "core.png", "headline.png", "http.png", "instructions.png", "roundtrip.png"]
    texts = {os.path.basename(p): charts.png_text(p)["Description"] for p in written}
    for name, text in texts.items():
        for part in ("Test CPU 9000", "CPython 3.99.1", "libuv 1.51.0", "abc1234"):
            assert part in text, (name, part, text)
        assert os.path.getsize(dest / name) < 60_000, name
    assert "2026-02-01" in texts["core.png"]            # the latest core run
    assert "load average 3.0 before, 4.5 after" in texts["core.png"]
    assert "callgrind" in texts["instructions.png"] and "load average" not in \
        texts["instructions.png"]
    headline = texts["headline.png"]
    assert "callgrind" in headline and "HTTP server CPU time per request" in headline
    assert "2026-01-01 11:00" in headline and "load average 3.0 before" in headline

    # Without the callgrind suites there is no headline chart.
    only_core = charts.publish([str(old)], str(tmp_path / "other"), say=lambda msg: None)
    assert [os.path.basename(p) for p in only_core] == ["core.png", "http.png"]


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


def _import_bench(name):
    sys.path.insert(0, BENCH)
    try:
        return __import__(name)
    finally:
        sys.path.remove(BENCH)


def _have_libuv_for_ceiling():
    vendored = os.path.isfile(os.path.join(ROOT, "vendor", "libuv", "include", "uv.h"))
    if vendored:
        return True
    if shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "libuv"]).returncode == 0


def assert_cells(summary, rows, columns, ratios):
    """Every row has a positive median (min <= median <= max) for each
    column, and a positive value for each of the ratio columns named."""
    assert summary["loops"] == list(columns)
    assert list(summary["rows"]) == list(rows)
    for row in rows:
        for col in columns:
            cell = summary["rows"][row][col]
            assert cell is not None, (row, col, summary["na"])
            assert 0 < cell["min"] <= cell["median"] <= cell["max"], (row, col, cell)
        for pair in ratios:
            assert summary["ratios"][row][pair] > 0, (row, pair)
    for pair in ratios:
        assert summary["geomean"][pair] > 0, pair


@pytest.mark.skipif(not _have_libuv_for_ceiling(), reason="needs libuv (pkg-config or vendor/)")
def test_ceiling_py(tmp_path):
    rows = ["protocol/1k/1", "unix-protocol/1k/16"]
    out, data = run_script(
        tmp_path, "ceiling.py", "--quick", "--duration", "0.1", "--loops", LOOPS,
        "--only", ",".join(rows),
    )
    # Each loop against the C server on libuv: loop/libuv-c per row.
    assert_cells(data["summary"], rows, ["asyncio", "ourloop", "libuv-c"],
                 ["asyncio/libuv-c", "ourloop/libuv-c"])
    assert data["summary"]["reference"] == "libuv-c"
    assert "ourloop/libuv-c" in out and "libuv-c req/s" in out
    # The C server runs on the libuv the output names, as ourloop's.
    assert data["ceiling_libuv"] == data["machine"]["libuv (ourloop)"]


def test_latency_py(tmp_path):
    ceiling = [] if _have_libuv_for_ceiling() else ["--no-ceiling"]
    out, data = run_script(
        tmp_path, "latency.py", "--quick", "--duration", "0.1", "--kinds", "protocol,streams",
        "--loops", LOOPS, *ceiling,
    )
    columns = ["asyncio", "ourloop"] + ([] if ceiling else ["libuv-c"])
    rows = ["protocol/p50", "protocol/p90", "protocol/p99",
            "streams/p50", "streams/p90", "streams/p99"]
    assert_cells(data["summary"], rows, columns,
                 ["ourloop/" + c for c in columns if c != "ourloop"])
    assert data["summary"]["higher_is_better"] is False
    for kind in ("protocol", "streams"):
        for col in columns:
            lat = data["samples"][kind][col][0]["latency_us"]
            assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], \
                (kind, col, lat)


def test_memory_py(tmp_path):
    pytest.importorskip("psutil")
    out, data = run_script(
        tmp_path, "memory.py", "--quick", "--connections", "300", "--timers", "20000",
        "--loops", LOOPS,
    )
    rows = ["idle_connection", "idle_connection_streams", "pending_timer"]
    assert_cells(data["summary"], rows, ["asyncio", "ourloop"], ["ourloop/asyncio"])
    assert data["sizes"] == {"idle_connection": 300, "idle_connection_streams": 300,
                             "pending_timer": 20000}
    assert "bytes" in out


def _http_ready():
    if shutil.which("wrk") is None:
        return "needs wrk"
    for module in ("uvicorn", "httptools"):
        try:
            __import__(module)
        except ImportError:
            return f"needs {module}"
    return None


@pytest.mark.skipif(_http_ready() is not None, reason=str(_http_ready()))
def test_http_bench_py(tmp_path):
    rows = ["uvicorn-httptools/4"]
    out, data = run_script(
        tmp_path, "http_bench.py", "--quick", "--only", "uvicorn-httptools", "--conns", "4",
        "--loops", LOOPS,
    )
    assert_summary(data, rows)
    sample = data["samples"][rows[0]]["ourloop"][0]
    assert sample["non_2xx"] == 0 and sample["socket_errors"] == 0
    assert 0 < sample["client_cpu_share"]


def test_http_bench_without_wrk_is_skipped(tmp_path):
    # Without wrk on PATH the suite says so and succeeds; bench_all.py
    # reports it as skipped, not failed.
    require_ourloop()
    env = dict(os.environ, PATH=str(tmp_path), BENCH_OUT=str(tmp_path / "out"))
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench_all.py"), "--only", "http",
         "--loops", LOOPS],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "SKIPPED: wrk is not installed" in proc.stdout
    assert "FAILED" not in proc.stdout


def test_client_bound_cells_are_marked():
    run = _import_bench("run")
    echo = _import_bench("echo")
    # A sample is client-bound when the generator was on its CPU >= 90% of
    # the time, or its core was >= 90% busy and it was on the CPU at least
    # as much as the server; a cell, when at least half its samples are.
    busy = {"client_core_busy": 0.99}
    assert echo.is_client_bound({"client_cpu_share": 0.95})
    assert echo.is_client_bound(dict(busy, client_cpu_share=0.3, server_cpu_share=0.2))
    assert not echo.is_client_bound(dict(busy, client_cpu_share=0.2, server_cpu_share=0.3))
    assert not echo.is_client_bound({"client_core_busy": 0.5, "client_cpu_share": 0.5,
                                     "server_cpu_share": 0.2})
    assert echo.is_client_bound({"server_cpu_share": 0.2}) is None
    samples = {"a/1k/16": {"x": [{"client_cpu_share": 0.95}, {"client_cpu_share": 0.97},
                                 {"client_cpu_share": 0.5}],
                           "y": [{"client_cpu_share": 0.5}, {"client_cpu_share": 0.5},
                                 {"client_cpu_share": 0.95}]}}
    summary = run.summarize_samples("t", "req/s", ["a/1k/16"], ["x", "y"],
                                    {"a/1k/16": {"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0]}})
    echo.mark_client_bound(summary, samples)
    assert summary["client_bound"] == {"a/1k/16": ["x"]}
    header, rows = run.summary_table(summary, str, "row")
    assert rows[0][1].endswith(" !") and not rows[0][2].endswith("!"), rows
