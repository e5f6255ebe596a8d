"""Child processes: loop.subprocess_exec / subprocess_shell and
asyncio.create_subprocess_exec / create_subprocess_shell, checked against
the stdlib loop's behaviour: every keyword of subprocess_exec, the errors
of a failed spawn (and that it leaves no child, fd, zombie or warning), no
blocking call in the loop thread (blockbuster), reaping, signals, pipes.
"""

import asyncio
import errno
import fcntl
import gc
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings
import weakref

import psutil
import pytest

from support import fd_count, run_coro, until, wait_blocking

TIMEOUT = 60
DEVNULL = subprocess.DEVNULL
PY = sys.executable
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0



def proc_stat(pid):
    """(state, ppid, pgid, sid) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def zombie_children():
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(name)
            if st is not None and st[1] == me and st[0] == "Z":
                found.append(int(name))
    return found


def reaped(pid):
    """The process is gone entirely (reaped, not a zombie)."""
    return proc_stat(pid) is None


class Proto(asyncio.SubprocessProtocol):
    """Records the callbacks; `done` resolves at connection_lost."""

    def __init__(self, loop):
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.transport = None
        self.done = loop.create_future()
        self.exited = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("connection_made")

    def pipe_data_received(self, fd, data):
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_connection_lost", fd))

    def process_exited(self, *args):
        self.events.append("process_exited")
        self.exited.set_result(None)

    def connection_lost(self, exc):
        self.events.append("connection_lost")
        self.done.set_result(exc)


async def exec_quiet(loop, *args, **kwargs):
    """subprocess_exec with no pipes (DEVNULL unless given)."""
    for name in ("stdin", "stdout", "stderr"):
        kwargs.setdefault(name, DEVNULL)
    return await loop.subprocess_exec(lambda: Proto(loop), *args, **kwargs)


async def run_quiet(loop, *args, **kwargs):
    """Run a child to its end (no pipes); returns (transport, protocol)."""
    transport, proto = await exec_quiet(loop, *args, **kwargs)
    await proto.done
    transport.close()
    return transport, proto


def py_child(code):
    return (PY, "-S", "-c", code)


# -- basics ------------------------------------------------------------------


def test_exec_callbacks_and_returncode(loop):
    async def main():
        transport, proto = await exec_quiet(loop, "sh", "-c", "exit 3")
        assert proto.transport is transport
        pid = transport.get_pid()
        assert isinstance(pid, int) and pid > 0
        assert transport.get_extra_info("subprocess").pid == pid
        assert isinstance(transport.get_extra_info("subprocess"), subprocess.Popen)
        assert transport.get_pipe_transport(0) is None
        assert transport.get_pipe_transport(1) is None
        await proto.done
        assert proto.events == ["connection_made", "process_exited", "connection_lost"]
        assert transport.get_returncode() == 3
        assert transport.get_extra_info("subprocess").returncode == 3
        assert not transport.is_closing()
        transport.close()
        assert transport.is_closing()
        return pid

    pid = run_coro(loop, main())
    assert reaped(pid)


def test_shell_callbacks(loop):
    async def main():
        transport, proto = await loop.subprocess_shell(
            lambda: Proto(loop), "exit 7", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        await proto.done
        assert transport.get_returncode() == 7
        assert transport.get_extra_info("subprocess").args == "exit 7"
        transport.close()

    run_coro(loop, main())


def test_create_subprocess_wait(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "exit 4", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        assert await proc.wait() == 4
        assert proc.returncode == 4
        proc = await asyncio.create_subprocess_shell(
            "exit 5", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        assert await proc.wait() == 5

    run_coro(loop, main())


@pytest.mark.parametrize("kwargs, message", [
    ({"universal_newlines": True}, "universal_newlines must be False"),
    ({"shell": True}, "shell must be False"),
    ({"bufsize": 1}, "bufsize must be 0"),
    ({"text": True}, "text must be False"),
    ({"encoding": "utf-8"}, "encoding must be None"),
    ({"errors": "strict"}, "errors must be None"),
])
def test_exec_argument_errors(loop, kwargs, message):
    made = []
    with pytest.raises(ValueError, match=message):
        run_coro(loop, loop.subprocess_exec(lambda: made.append(1), "true", **kwargs))
    assert made == []


@pytest.mark.parametrize("cmd, kwargs, message", [
    (["true"], {}, "cmd must be a string"),
    ("true", {"shell": False}, "shell must be True"),
    ("true", {"universal_newlines": True}, "universal_newlines must be False"),
    ("true", {"bufsize": 4096}, "bufsize must be 0"),
])
def test_shell_argument_errors(loop, cmd, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_coro(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs))


def test_unknown_option_is_popens_error(loop):
    with pytest.raises(TypeError):
        run_coro(loop, exec_quiet(loop, "true", no_such_option=1))


def test_debug_logging(loop, caplog):
    loop.set_debug(True)
    caplog.set_level("DEBUG", logger="asyncio")

    async def main():
        await run_quiet(loop, "true")

    run_coro(loop, main())
    text = caplog.text
    assert "execute program 'true' stdin=%r stdout=%r stderr=%r" % ((DEVNULL,) * 3) in text
    assert "process 'true' created: pid" in text
    assert "exited with return code 0" in text


# -- stdio ----------------------------------------------------------------------


def _fd_targets(fds):
    return [os.readlink(f"/proc/self/fd/{fd}") for fd in fds]


def _fds_code(path, fds=(0, 1, 2)):
    return (f"import os\nwith open({str(path)!r}, 'w') as f:\n"
            f"    f.write(repr([os.readlink('/proc/self/fd/%d' % n) for n in {fds!r}]))\n")


def fd_count_warm(loop):
    """fd_count() once the loop has run (it makes its signal wake-up
    socketpair the first time it runs in the main thread)."""
    run_coro(loop, asyncio.sleep(0))
    return fd_count()


def test_stdio_inherited(loop, tmp_path):
    out = tmp_path / "out"

    async def main():
        transport, proto = await run_quiet(
            loop, *py_child(_fds_code(out)), stdin=None, stdout=None, stderr=None)
        assert transport.get_returncode() == 0
        return transport

    fds_before = fd_count_warm(loop)
    run_coro(loop, main())
    assert eval(out.read_text()) == _fd_targets((0, 1, 2))
    assert fd_count() == fds_before


def test_stdio_devnull(loop, tmp_path):
    out = tmp_path / "out"

    async def main():
        transport, proto = await run_quiet(loop, *py_child(_fds_code(out)))

    fds_before = fd_count_warm(loop)
    run_coro(loop, main())
    assert eval(out.read_text()) == ["/dev/null"] * 3
    assert fd_count() == fds_before


def test_stdio_files_and_fds(loop, tmp_path):
    (tmp_path / "in").write_bytes(b"input data\n")

    async def main():
        with open(tmp_path / "in", "rb") as fin, open(tmp_path / "out", "wb") as fout:
            ferr = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                transport, proto = await run_quiet(
                    loop, "sh", "-c", "cat; echo oops >&2",
                    stdin=fin, stdout=fout.fileno(), stderr=ferr)
            finally:
                os.close(ferr)
        assert transport.get_returncode() == 0

    fds_before = fd_count_warm(loop)
    run_coro(loop, main())
    assert (tmp_path / "out").read_bytes() == b"input data\n"
    assert (tmp_path / "err").read_bytes() == b"oops\n"
    assert fd_count() == fds_before


def test_stderr_to_stdout(loop, tmp_path):
    async def main():
        with open(tmp_path / "out", "wb") as fout:
            await run_quiet(loop, "sh", "-c", "echo one; echo two >&2",
                            stdout=fout, stderr=subprocess.STDOUT)

    run_coro(loop, main())
    assert (tmp_path / "out").read_bytes() == b"one\ntwo\n"


def test_stdio_swapped_low_fds(loop, tmp_path):
    # The child's fd 1 is our fd 2's file and its fd 2 our fd 1's file: the
    # low fds must not overwrite each other in the child.
    out = tmp_path / "out"

    async def main():
        await run_quiet(loop, *py_child(_fds_code(out, (1, 2))), stdout=2, stderr=1)

    run_coro(loop, main())
    assert eval(out.read_text()) == _fd_targets((2, 1))


def test_nonblocking_fd_left_alone(loop, tmp_path):
    # The child's fds 0-2 are the parent's files as they are: nothing makes
    # them blocking (libuv's uv_spawn would).
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        async def main():
            transport, proto = await run_quiet(loop, "sh", "-c", "echo hi", stdout=w)

        run_coro(loop, main())
        assert os.get_blocking(w) is False
        assert os.read(r, 100) == b"hi\n"
    finally:
        os.close(r)
        os.close(w)


# -- options -----------------------------------------------------------------------


def _report_code(path):
    return (
        "import os, sys\n"
        f"with open({str(path)!r}, 'w') as f:\n"
        "    f.write(repr(dict(pid=os.getpid(), sid=os.getsid(0), pgid=os.getpgid(0),"
        " cwd=os.getcwd(), umask=os.umask(0), uid=os.getuid(), gid=os.getgid(),"
        " groups=sorted(os.getgroups()), foo=os.environ.get('FOO'),"
        " fds=sorted(int(n) for n in os.listdir('/proc/self/fd')),"
        " sigign=[l for l in open('/proc/self/status') if l.startswith('SigIgn')][0].split()[1],"
        " sigblk=[l for l in open('/proc/self/status') if l.startswith('SigBlk')][0].split()[1],"
        ")))\n"
    )


def child_report(loop, tmp_path, **kwargs):
    """Run a Python child with kwargs; returns (what it saw, the transport)."""
    path = tmp_path / "report"

    async def main():
        transport, proto = await run_quiet(loop, *py_child(_report_code(path)), **kwargs)
        assert transport.get_returncode() == 0
        return transport

    transport = run_coro(loop, main())
    return eval(path.read_text()), transport


@pytest.mark.parametrize("kind", [str, bytes, pathlib.Path])
def test_cwd(loop, tmp_path, kind):
    where = tmp_path / "sub"
    where.mkdir()
    arg = {str: str, bytes: os.fsencode, pathlib.Path: pathlib.Path}[kind](str(where))
    seen, transport = child_report(loop, tmp_path, cwd=arg)
    assert seen["cwd"] == str(where)


def test_cwd_relative_program(loop, tmp_path):
    # A program path relative to cwd is found in cwd, as with Popen.
    script = tmp_path / "prog"
    script.write_text("#!/bin/sh\nexit 9\n")
    script.chmod(0o755)

    async def main():
        transport, proto = await run_quiet(loop, "./prog", cwd=tmp_path)
        assert transport.get_returncode() == 9

    run_coro(loop, main())


def test_env(loop, tmp_path):
    seen, transport = child_report(loop, tmp_path, env={"FOO": "bar"})
    assert seen["foo"] == "bar"
    seen, transport = child_report(loop, tmp_path, env={b"FOO": b"baz"})
    assert seen["foo"] == "baz"


def test_env_path_is_searched(loop, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "ourloop-test-prog"
    prog.write_text("#!/bin/sh\nexit 12\n")
    prog.chmod(0o755)

    async def main():
        transport, proto = await run_quiet(loop, "ourloop-test-prog",
                                           env={"PATH": str(bindir)})
        assert transport.get_returncode() == 12

    run_coro(loop, main())


def test_env_bad_name_is_popens_error(loop):
    with pytest.raises(ValueError, match="illegal environment variable name"):
        run_coro(loop, exec_quiet(loop, "true", env={"A=B": "x"}))


def test_start_new_session(loop, tmp_path):
    seen, transport = child_report(loop, tmp_path, start_new_session=True)
    assert seen["sid"] == seen["pid"] == seen["pgid"]
    seen, transport = child_report(loop, tmp_path)
    assert seen["sid"] == os.getsid(0)
    assert seen["pgid"] == os.getpgid(0)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="process_group is new in 3.11")
def test_process_group(loop, tmp_path):
    seen, transport = child_report(loop, tmp_path, process_group=0)
    assert seen["pgid"] == seen["pid"]
    assert seen["sid"] == os.getsid(0)


def test_umask(loop, tmp_path):
    seen, transport = child_report(loop, tmp_path, umask=0o027)
    assert seen["umask"] == 0o027


def test_pass_fds_and_close_fds(loop, tmp_path):
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        # An inheritable fd with close_fds=True (the default): the child
        # must not get it.
        seen, transport = child_report(loop, tmp_path)
        assert w not in seen["fds"]
        seen, transport = child_report(loop, tmp_path, close_fds=False)
        assert w in seen["fds"]
        os.set_inheritable(w, False)
        seen, transport = child_report(loop, tmp_path, pass_fds=(w,))
        assert w in seen["fds"]
        assert r not in seen["fds"]
        seen, transport = child_report(loop, tmp_path, close_fds=False)
        assert w not in seen["fds"]
    finally:
        os.close(r)
        os.close(w)


def test_preexec_fn(loop, tmp_path):
    marker = tmp_path / "marker"

    def preexec():
        with open(marker, "w") as f:
            f.write(str(os.getpid()))

    seen, transport = child_report(loop, tmp_path, preexec_fn=preexec)
    assert int(marker.read_text()) == seen["pid"]


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_user_group_extra_groups(loop, tmp_path):
    out = tmp_path / "ids"
    tmp_path.chmod(0o777)

    def ids(**kwargs):
        async def main():
            # The shell opens the file as root: the child may not reach it.
            with open(out, "wb") as f:
                transport, proto = await run_quiet(
                    loop, "sh", "-c", "id -u; id -g; id -G", stdout=f, **kwargs)
            assert transport.get_returncode() == 0
        run_coro(loop, main())
        uid, gid, groups = out.read_text().splitlines()
        return int(uid), int(gid), sorted(int(g) for g in groups.split())

    assert ids(user=65534, group=65533, extra_groups=[65532]) == (
        65534, 65533, sorted({65533, 65532}))
    # group only: the supplementary groups stay (libuv would drop them).
    uid, gid, groups = ids(group=65533)
    assert (uid, gid) == (os.getuid(), 65533)
    assert groups == sorted(set(os.getgroups()) | {65533})


def _run_to_file(loop, path, *args, **kwargs):
    """Run a child with its stdout to the file `path` (opened here, as
    root if we are: the child may not be able to open it)."""
    async def main():
        with open(path, "wb") as f:
            transport, proto = await run_quiet(loop, *args, stdout=f, **kwargs)
        assert transport.get_returncode() == 0

    run_coro(loop, main())
    return path.read_text()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_user_group_by_name(loop, tmp_path):
    # Names are looked up as Popen looks them up (pwd/grp).
    import grp
    import pwd
    user = pwd.getpwuid(65534).pw_name
    group = grp.getgrgid(0).gr_name
    out = _run_to_file(loop, tmp_path / "ids", "sh", "-c", "id -u; id -g; id -G",
                       user=user, group=group, extra_groups=[group])
    assert out.split() == ["65534", "0", "0"]
    with pytest.raises(KeyError):
        run_coro(loop, exec_quiet(loop, "true", user="ourloop-no-such-user"))


def _sigign(status):
    [line] = [l for l in status.splitlines() if l.startswith("SigIgn:")]
    return int(line.split()[1], 16)


def test_restore_signals(loop, tmp_path):
    # Python ignores SIGPIPE and SIGXFSZ; restore_signals=True (the
    # default) gives the child their default actions back, False leaves
    # them ignored across exec.
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    bits = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
    status = _run_to_file(loop, tmp_path / "status", "cat", "/proc/self/status")
    assert _sigign(status) & bits == 0
    status = _run_to_file(loop, tmp_path / "status", "cat", "/proc/self/status",
                          restore_signals=False)
    assert _sigign(status) & bits == bits


@pytest.mark.skipif(sys.version_info < (3, 10), reason="pipesize is new in 3.10")
def test_pipesize(loop):
    async def main(**kwargs):
        transport, proto = await loop.subprocess_exec(
            lambda: Proto(loop), "cat", stderr=DEVNULL, **kwargs)
        popen = transport.get_extra_info("subprocess")
        sizes = [fcntl.fcntl(f.fileno(), 1032)     # F_GETPIPE_SZ
                 for f in (popen.stdin, popen.stdout)]
        transport.get_pipe_transport(0).close()
        await proto.done
        transport.close()
        return sizes

    assert run_coro(loop, main(pipesize=1024 * 1024)) == [1024 * 1024] * 2
    assert run_coro(loop, main()) == [65536] * 2


async def _pump_through_cat(loop, nbytes, pipes=(), **kwargs):
    """nbytes of a pattern through `cat` (stdin to stdout) while reading its
    output; returns (bytes out intact, the sizes of the pipes to the child's
    fds `pipes` just before stdin is closed)."""
    proc = await asyncio.create_subprocess_exec(
        "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, **kwargs)
    block = bytes(range(256)) * 1024            # 256 KiB
    got = bytearray()

    async def reader():
        while len(got) < nbytes:
            data = await proc.stdout.read(1 << 20)
            if not data:
                return
            got.extend(data)

    task = asyncio.ensure_future(reader())
    for _ in range(nbytes // len(block)):
        proc.stdin.write(block)
        await proc.stdin.drain()
    await task
    sizes = [fcntl.fcntl(f.fileno(), 1032)      # F_GETPIPE_SZ
             for f in (proc._transport.get_pipe_transport(i).get_extra_info("pipe")
                       for i in pipes)]
    proc.stdin.close()
    assert await proc.stdout.read() == b""
    assert await proc.wait() == 0
    return bytes(got) == block * (nbytes // len(block)), sizes


def test_busy_pipes_keep_every_byte(loop):
    intact, _ = run_coro(loop, _pump_through_cat(loop, 16 << 20))
    assert intact


def _pipe_size_kind():
    try:
        from ourloop import _core
    except ImportError:
        return "none"
    return _core._platform_info()["pipe_size"]


@pytest.mark.only_loop("ourloop", reason="ourloop grows the pipes a child keeps full")
@pytest.mark.skipif(_pipe_size_kind() == "none",
                    reason="this platform (or the forced-portable build) cannot size pipes")
def test_busy_pipes_grow(loop):
    # (docs/performance.md, "Subprocess pipes": a pipe the child keeps full
    # grows once to 256 KiB, so each wake-up moves more than 64 KiB.)
    intact, sizes = run_coro(loop, _pump_through_cat(loop, 16 << 20, pipes=(0, 1, 2)))
    assert intact
    assert sizes == [256 * 1024, 256 * 1024, 65536]     # stderr stayed idle


@pytest.mark.skipif(sys.version_info < (3, 10), reason="pipesize is new in 3.10")
def test_busy_pipes_keep_the_pipesize_given(loop):
    intact, sizes = run_coro(loop, _pump_through_cat(loop, 4 << 20, pipes=(0, 1),
                                                      pipesize=8192))
    assert intact
    assert sizes == [8192] * 2


@pytest.mark.only_loop("ourloop", reason="checks which spawner ourloop uses")
def test_spawns_through_fork_exec(loop, tmp_path, monkeypatch):
    # The running Python's fork_exec is one whose parameters ourloop knows
    # (else it would fall back to the stdlib's own _execute_child), and it
    # is what spawns, with the arguments Popen gives it.
    import _posixsubprocess

    from ourloop import _subprocess
    assert _subprocess._FORK_EXEC_PARAMS is not None
    calls = []

    def spy(*args):
        calls.append(dict(zip(_subprocess._FORK_EXEC_PARAMS, args)))
        return _posixsubprocess.fork_exec(*args)

    monkeypatch.setattr(_subprocess, "_fork_exec", spy)
    seen, transport = child_report(loop, tmp_path, cwd=tmp_path, umask=0o077,
                                   start_new_session=True)
    assert seen["umask"] == 0o077 and seen["sid"] == seen["pid"]
    [call] = calls
    assert call["cwd"] == tmp_path and call["child_umask"] == 0o077
    assert call["call_setsid"] is True and call["close_fds"] is True
    assert call["executable_list"] == (os.fsencode(PY),)


def test_ignored_signal_stays_ignored(loop, tmp_path):
    # Popen's child keeps an ignored SIGUSR2 ignored (exec keeps SIG_IGN);
    # libuv would reset it, so ourloop has Popen spawn it.
    old = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        seen, transport = child_report(loop, tmp_path)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert int(seen["sigign"], 16) & (1 << (signal.SIGUSR2 - 1))
    seen, transport = child_report(loop, tmp_path)
    assert not int(seen["sigign"], 16) & (1 << (signal.SIGUSR2 - 1))


def test_blocked_signal_mask_is_inherited(loop, tmp_path):
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    try:
        seen, transport = child_report(loop, tmp_path)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert int(seen["sigblk"], 16) & (1 << (signal.SIGUSR2 - 1))


def test_executable(loop, tmp_path):
    out = tmp_path / "out"

    async def main():
        transport, proto = await run_quiet(
            loop, "argv0-name", "-c",
            'x=$(tr "\\0" " " < /proc/$$/cmdline); echo "$x" > "$0"', str(out),
            executable="/bin/sh")
        assert transport.get_returncode() == 0

    run_coro(loop, main())
    assert out.read_text().startswith("argv0-name -c ")


# -- exec errors --------------------------------------------------------------------


def _exec_error(loop, *args, **kwargs):
    with pytest.raises(OSError) as info:
        run_coro(loop, exec_quiet(loop, *args, **kwargs))
    return info.value


def test_exec_errors(loop, tmp_path):
    fds_before = fd_count_warm(loop)
    exc = _exec_error(loop, "ourloop-no-such-program")
    assert type(exc) is FileNotFoundError
    assert exc.errno == errno.ENOENT and exc.filename == "ourloop-no-such-program"

    exc = _exec_error(loop, str(tmp_path / "missing"))
    assert type(exc) is FileNotFoundError and exc.filename == str(tmp_path / "missing")

    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    if not IS_ROOT:
        exc = _exec_error(loop, str(plain))
        assert type(exc) is PermissionError and exc.errno == errno.EACCES
    exc = _exec_error(loop, str(tmp_path))
    assert type(exc) is PermissionError and exc.filename == str(tmp_path)

    noshebang = tmp_path / "noshebang"
    noshebang.write_text("exit 0\n")
    noshebang.chmod(0o755)
    exc = _exec_error(loop, str(noshebang))
    assert exc.errno == errno.ENOEXEC and exc.filename == str(noshebang)

    exc = _exec_error(loop, "/bin/true", cwd=tmp_path / "nowhere")
    assert type(exc) is FileNotFoundError and exc.filename == tmp_path / "nowhere"
    exc = _exec_error(loop, "/bin/true", cwd=str(plain))
    assert type(exc) is NotADirectoryError and exc.filename == str(plain)

    exc = _exec_error(loop, "/bin/true", stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                      cwd=str(plain))
    assert type(exc) is NotADirectoryError
    assert fd_count() == fds_before
    assert zombie_children() == []


def _fail_in_child():
    raise ZeroDivisionError


def _spawn_failure(tmp_path, kind):
    """(args, kwargs) of a spawn that fails in the way `kind` says."""
    plain = tmp_path / "plain"           # not executable
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    noshebang = tmp_path / "noshebang"   # executable, but no format execve knows
    noshebang.write_text("exit 0\n")
    noshebang.chmod(0o755)
    return {
        "missing": ((str(tmp_path / "missing"),), {}),
        "missing_on_path": (("ourloop-no-such-program",), {}),
        "missing_on_env_path": (("true",), {"env": {"PATH": str(tmp_path)}}),
        "not_executable": ((str(plain),), {}),
        "directory": ((str(tmp_path),), {}),
        "enoexec": ((str(noshebang),), {}),
        "cwd_missing": (("/bin/true",), {"cwd": tmp_path / "nowhere"}),
        "cwd_not_a_directory": (("true",), {"cwd": str(plain)}),
        "cwd_bytes_missing": (("true",), {"cwd": os.fsencode(tmp_path / "nowhere")}),
        "preexec_fn_raises": ((PY, "-c", "pass"), {"preexec_fn": _fail_in_child}),
        "env_bad_name": (("true",), {"env": {"A=B": "x"}}),
        "nul_in_argument": (("true", "a\0b"), {}),
        "bad_argument_type": (("true", 1), {}),
        "pass_fds_bad_fd": (("true",), {"pass_fds": (-5,)}),
        # setpgid() to a group that does not exist fails before exec (EPERM):
        # no filename since 3.13, the cwd before.
        "process_group_missing": (("true",), {"process_group": 4194000}),
        "process_group_missing_cwd": (("true",), {"process_group": 4194000,
                                                  "cwd": str(tmp_path)}),
    }[kind]


def _stdlib_popen_error(args, kwargs):
    """The exception subprocess.Popen itself raises for this spawn."""
    try:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kwargs)
    except Exception as exc:
        return exc
    proc.kill()
    proc.communicate()
    raise AssertionError(f"subprocess.Popen{args} did not fail")


def _exc_key(exc):
    return (type(exc), getattr(exc, "errno", None), getattr(exc, "strerror", None),
            getattr(exc, "filename", None), str(exc))


def _children():
    """pids of this process's children (zombies included)."""
    return {p.pid for p in psutil.Process().children()}


SPAWN_FAILURES = ["missing", "missing_on_path", "missing_on_env_path", "not_executable",
                  "directory", "enoexec", "cwd_missing", "cwd_not_a_directory",
                  "cwd_bytes_missing", "preexec_fn_raises", "env_bad_name",
                  "nul_in_argument", "bad_argument_type", "pass_fds_bad_fd"]
if sys.version_info >= (3, 11):
    SPAWN_FAILURES += ["process_group_missing", "process_group_missing_cwd"]


@pytest.mark.parametrize("kind", SPAWN_FAILURES)
def test_spawn_failure_is_popens_and_leaves_nothing(loop, tmp_path, kind):
    # A spawn that fails raises what subprocess.Popen raises (type, errno,
    # message, filename), through asyncio.create_subprocess_exec with pipes,
    # and leaves no transport to warn about, no fd, no child, no zombie.
    # (What CPython's test_popen_error(_with_stdin_pipe) checks by mocking
    # subprocess.Popen, skipped in tests/cpython/skips.py.)
    args, kwargs = _spawn_failure(tmp_path, kind)
    expected = _stdlib_popen_error(args, kwargs)

    async def main():
        with pytest.raises(type(expected)) as info:
            await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, **kwargs)
        return info.value

    run_coro(loop, main())       # warm-up: the loop's own fds exist from now on
    gc.collect()            # earlier tests' garbage closes its fds now
    fds_before = os.listdir("/proc/self/fd")
    children_before = _children()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exc = run_coro(loop, main())
        gc.collect()
    assert _exc_key(exc) == _exc_key(expected)
    # (3.12+ warns DeprecationWarning when it forks with threads around.)
    assert [str(w.message) for w in caught
            if not issubclass(w.category, DeprecationWarning)] == []
    assert sorted(os.listdir("/proc/self/fd")) == sorted(fds_before)
    assert _children() == children_before
    assert zombie_children() == []


class _Interrupted(Exception):
    pass


@pytest.mark.only_loop("ourloop", reason="the stdlib leaves the child of an interrupted "
                       "spawn unreaped (a zombie until a later Popen's _cleanup)")
def test_interrupted_spawn_leaves_no_zombie(loop, monkeypatch):
    # A signal handler raises while the loop thread waits for the child's
    # exec (a preexec_fn means fork, not vfork: the parent runs on and
    # reads the error pipe): the exception propagates, and the child, which
    # execs and exits later, is reaped by the orphan reaper.
    def interrupt(signum, frame):
        raise _Interrupted

    # The alarm is armed as that wait begins: armed earlier, a slow run
    # (AddressSanitizer) could take it before the fork, or in an at-fork
    # hook, where the exception is only reported as unraisable.
    from ourloop import _core
    read_spawn_error = _core._read_spawn_error

    def read_with_alarm(fd):
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return read_spawn_error(fd)

    monkeypatch.setattr(_core, "_read_spawn_error", read_with_alarm)

    async def main():
        with pytest.raises(_Interrupted):
            await asyncio.create_subprocess_exec(
                "true", preexec_fn=lambda: time.sleep(1), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE)

    run_coro(loop, asyncio.sleep(0))
    fds_before = fd_count()
    children_before = _children()
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            run_coro(loop, main())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert fd_count() == fds_before
    assert wait_blocking(lambda: _children() == children_before)
    assert zombie_children() == []


def test_spawn_failure_without_vfork(loop, tmp_path, monkeypatch):
    # subprocess._USE_VFORK (3.11+: tests turn vfork off with it) is read at
    # each spawn, as Popen does: the child is then fork()ed, and its
    # failure report waited for.
    monkeypatch.setattr(subprocess, "_USE_VFORK", False, raising=False)
    for kind in ("missing", "enoexec", "cwd_missing"):
        args, kwargs = _spawn_failure(tmp_path, kind)
        expected = _stdlib_popen_error(args, kwargs)
        exc = _exec_error(loop, *args, **kwargs)
        assert _exc_key(exc) == _exc_key(expected)
    seen, transport = child_report(loop, tmp_path, cwd=tmp_path)
    assert seen["cwd"] == str(tmp_path)
    assert zombie_children() == []


def test_no_blocking_calls_in_loop_thread(loop, tmp_path):
    # Tools that report blocking calls made while a loop runs (blockbuster,
    # used by aiohttp's and anyio's test suites) excuse the stdlib loop's
    # own (Popen's os.read of its error pipe, by file and function name):
    # ourloop must make none of its own while spawning, successfully or not.
    from blockbuster import blockbuster_ctx
    args_missing, _ = _spawn_failure(tmp_path, "missing")
    args_noexec, _ = _spawn_failure(tmp_path, "enoexec")
    r, w = os.pipe()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "cat; echo err >&2", stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate(b"in\n")
        assert (out, err, proc.returncode) == (b"in\n", b"err\n", 0)
        proc = await asyncio.create_subprocess_shell(
            "exit 4", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        assert await proc.wait() == 4
        proc = await asyncio.create_subprocess_exec(
            *py_child("import os, sys; os.write(int(sys.argv[1]), b'x\\n')"), str(w),
            pass_fds=(w,), cwd=tmp_path,
            env={"PATH": os.environ["PATH"]}, start_new_session=True,
            preexec_fn=os.getpid, stdin=DEVNULL, stdout=DEVNULL)
        assert await proc.wait() == 0
        for args, kwargs, exc_type in [
                (args_missing, {}, FileNotFoundError),
                (("ourloop-no-such-program",), {}, FileNotFoundError),
                (args_noexec, {}, OSError),
                (("true",), {"cwd": tmp_path / "nowhere"}, FileNotFoundError),
                ((PY, "-c", "pass"), {"preexec_fn": _fail_in_child},
                 subprocess.SubprocessError)]:
            with pytest.raises(exc_type):
                await asyncio.create_subprocess_exec(
                    *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kwargs)
        transport, proto = await loop.subprocess_exec(
            lambda: Proto(loop), "true", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        await proto.done
        transport.close()

    try:
        with blockbuster_ctx():
            run_coro(loop, main())
        assert os.read(r, 10) == b"x\n"
    finally:
        os.close(r)
        os.close(w)
    assert zombie_children() == []


def test_exec_error_bad_args(loop):
    with pytest.raises(ValueError):
        run_coro(loop, exec_quiet(loop, "true", "a\0b"))
    with pytest.raises(TypeError):
        run_coro(loop, exec_quiet(loop, "true", 1))


# -- signals, close, kill --------------------------------------------------------


@pytest.mark.parametrize("how, expected", [
    ("terminate", -signal.SIGTERM),
    ("kill", -signal.SIGKILL),
    ("send_signal", -signal.SIGINT),
])
def test_signals(loop, how, expected):
    async def main():
        transport, proto = await exec_quiet(loop, "sleep", "30")
        if how == "send_signal":
            transport.send_signal(signal.SIGINT)
        else:
            getattr(transport, how)()
        await proto.done
        assert transport.get_returncode() == expected
        assert proto.events == ["connection_made", "process_exited", "connection_lost"]
        transport.close()
        # The child is gone: nothing to signal.
        with pytest.raises(ProcessLookupError):
            transport.kill()

    run_coro(loop, main())


def test_process_send_signal(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sleep", "30", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        proc.send_signal(signal.SIGUSR1)
        assert await proc.wait() == -signal.SIGUSR1
        with pytest.raises(ProcessLookupError):
            proc.kill()

    run_coro(loop, main())


def test_close_kills_live_child(loop):
    async def main():
        transport, proto = await exec_quiet(loop, "sleep", "30")
        pid = transport.get_pid()
        transport.close()
        assert transport.is_closing()
        await proto.exited
        await proto.done
        assert transport.get_returncode() == -signal.SIGKILL
        return pid

    pid = run_coro(loop, main())
    assert wait_blocking(lambda: reaped(pid))


def test_killpg_with_grandchildren(loop, tmp_path):
    pids_file = tmp_path / "pids"

    async def main():
        transport, proto = await exec_quiet(
            loop, "sh", "-c", 'sleep 30 & echo $! > "$0"; sleep 30 & echo $! >> "$0"; wait',
            str(pids_file), start_new_session=True)
        pid = transport.get_pid()
        await until(lambda: pids_file.exists()
                    and len(pids_file.read_text().split()) == 2)
        os.killpg(pid, signal.SIGKILL)
        await proto.done
        assert transport.get_returncode() == -signal.SIGKILL
        transport.close()
        return [int(p) for p in pids_file.read_text().split()]

    grandchildren = run_coro(loop, main())

    def gone(p):
        st = proc_stat(p)
        return st is None or st[0] == "Z"

    assert wait_blocking(lambda: all(gone(p) for p in grandchildren))


def test_unclosed_transport_warns(loop):
    async def main():
        transport, proto = await exec_quiet(loop, "true")
        await proto.done
        return repr(transport)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_coro(loop, main())
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith("unclosed transport <") and "returncode=0" in m
               for m in messages), messages


def test_proc_poll_does_not_reap(loop):
    async def main():
        transport, proto = await exec_quiet(loop, "true")
        popen = transport.get_extra_info("subprocess")
        await proto.exited
        assert popen.poll() == 0
        await proto.done
        assert transport.get_returncode() == 0
        transport.close()

    run_coro(loop, main())


# -- reaping ---------------------------------------------------------------------------


def test_many_children_no_leaks(loop):
    async def main():
        for _ in range(500):
            transport, proto = await exec_quiet(loop, "true")
            await proto.done
            assert transport.get_returncode() == 0
            transport.close()

    run_coro(loop, main())   # warm up the loop's own fds
    fds_before = fd_count()
    run_coro(loop, main(), timeout=300)
    assert wait_blocking(lambda: zombie_children() == [])
    assert fd_count() == fds_before


@pytest.mark.only_loop("ourloop", reason="the stdlib's pidfd child watcher (3.12+) "
                       "leaves children of a closed loop as zombies")
def test_loop_closed_while_children_run(loop_factory):
    loop = loop_factory()
    asyncio.set_event_loop(loop)

    async def main():
        started = []
        for _ in range(5):
            transport, proto = await exec_quiet(loop, "sleep", "0.3")
            started.append(transport)
        return started

    try:
        transports = run_coro(loop, main())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    pids = [t.get_pid() for t in transports]
    popens = [t.get_extra_info("subprocess") for t in transports]
    # The reaper thread reaps each child, then records its returncode.
    assert wait_blocking(lambda: all(reaped(p) for p in pids)
                         and all(p.returncode is not None for p in popens))
    assert [p.returncode for p in popens] == [0] * len(popens)
    for t in transports:
        t.close()


@pytest.mark.only_loop("ourloop", reason="checks ourloop's fallback without pidfds")
def test_thread_watcher_fallback(loop, monkeypatch):
    from ourloop import _subprocess
    monkeypatch.setattr(_subprocess, "_USE_PIDFD", False)

    async def main():
        transport, proto = await run_quiet(loop, "sh", "-c", "exit 6")
        assert transport.get_returncode() == 6
        assert proto.events == ["connection_made", "process_exited", "connection_lost"]
        return transport.get_pid()

    pid = run_coro(loop, main())
    assert wait_blocking(lambda: reaped(pid))


@pytest.mark.only_loop("ourloop", reason="checks ourloop's fallback without pidfds")
# The collected transport's __del__ meets the closed loop (RuntimeError), as
# on the stdlib loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_thread_watcher_lets_go_of_a_closed_loops_child(loop_factory, monkeypatch):
    # Without a child fd a thread waits for each child. Once the loop is
    # closed the thread must no longer hold the child's transport (as a
    # closed ChildWatch does not): dropped, it is collected and its pipes'
    # fds close while the child still runs.
    from ourloop import _subprocess
    monkeypatch.setattr(_subprocess, "_USE_PIDFD", False)
    loop = loop_factory()

    async def main():
        transport, _ = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, "cat",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return transport

    transport = run_coro(loop, main())
    pid = transport.get_pid()
    popen = transport.get_extra_info("subprocess")
    pipe_fds = [transport.get_pipe_transport(n).get_extra_info("pipe").fileno() for n in (0, 1)]
    ref = weakref.ref(transport)
    loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del transport
        gc.collect()
    try:
        assert ref() is None
        for fd in pipe_fds:
            with pytest.raises(OSError) as exc:
                os.fstat(fd)
            assert exc.value.errno == errno.EBADF
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass    # cat saw its stdin close and exited
    # The thread still reaps the child.
    assert wait_blocking(lambda: reaped(pid) and popen.returncode in (0, -signal.SIGKILL))


def test_user_sigchld_handler_kept_and_called(loop):
    calls = []
    old = signal.signal(signal.SIGCHLD, lambda signum, frame: calls.append(signum))
    try:
        async def main():
            transport, proto = await exec_quiet(loop, "sleep", "0.2")
            assert signal.getsignal(signal.SIGCHLD) is not old
            await proto.done
            transport.close()
            # Let a signal that arrived between bytecodes run its handler.
            await until(lambda: calls)

        run_coro(loop, main())
        assert calls and set(calls) == {signal.SIGCHLD}
        # Still the C-level handler: one more child, one more call.
        del calls[:]
        run_coro(loop, main())
        assert calls
    finally:
        signal.signal(signal.SIGCHLD, old)


def sigchld_caught():
    """Whether this process catches SIGCHLD (a handler is installed)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))
    raise AssertionError("no SigCgt in /proc/self/status")


def test_sigchld_action_unchanged(loop):
    # Default action: no handler before, none after (libuv's would show).
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    assert not sigchld_caught()

    async def main(caught):
        transport, proto = await exec_quiet(loop, "true")
        assert sigchld_caught() == caught
        await proto.done
        transport.close()

    run_coro(loop, main(False))
    assert not sigchld_caught()
    # A user's handler: still the one the kernel calls after a spawn.
    calls = []
    old = signal.signal(signal.SIGCHLD, lambda signum, frame: calls.append(signum))
    try:
        run_coro(loop, main(True))
        assert sigchld_caught()
        del calls[:]
        os.kill(os.getpid(), signal.SIGCHLD)
        assert wait_blocking(lambda: calls == [signal.SIGCHLD])
    finally:
        signal.signal(signal.SIGCHLD, old)


# -- pipes ------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [-1, 0o022])
def test_communicate(loop, loop_kind, umask):
    # umask=-1 asks for nothing, umask=0o022 sets the child's umask.

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            umask=umask)
        out, err = await proc.communicate(b"hello\n" * 1000)
        assert out == b"hello\n" * 1000 and err == b""
        assert proc.returncode == 0

    run_coro(loop, main())


def test_dev_stdout_in_child(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo hi > /dev/stdout; echo ho > /dev/stderr",
            stdin=DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        assert (out, err) == (b"hi\n", b"ho\n")
        assert proc.returncode == 0

    run_coro(loop, main())


def test_flood_64_mib(loop):
    size = 64 * 1024 * 1024

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "head", "-c", str(size), "/dev/zero",
            stdin=DEVNULL, stdout=subprocess.PIPE)
        out, err = await proc.communicate()
        assert len(out) == size and err is None
        assert proc.returncode == 0

    run_coro(loop, main(), timeout=120)


def test_pipe_callbacks_order(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Proto(loop), "sh", "-c", "echo out; echo err >&2; exit 2")
        assert transport.get_pipe_transport(0) is not None
        transport.get_pipe_transport(0).close()
        await proto.done
        assert bytes(proto.data[1]) == b"out\n" and bytes(proto.data[2]) == b"err\n"
        assert proto.events[0] == "connection_made"
        assert proto.events[-1] == "connection_lost"
        assert sorted(e for e in proto.events if isinstance(e, tuple)) == [
            ("pipe_connection_lost", 0), ("pipe_connection_lost", 1),
            ("pipe_connection_lost", 2)]
        assert transport.get_returncode() == 2
        transport.close()

    run_coro(loop, main())


def test_stdin_backpressure(loop):
    class Writer(Proto):
        def __init__(self, loop):
            super().__init__(loop)
            self.paused = loop.create_future()

        def pause_writing(self):
            if not self.paused.done():
                self.paused.set_result(None)

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Writer(loop), "sleep", "30", stdout=DEVNULL, stderr=DEVNULL)
        stdin = transport.get_pipe_transport(0)
        stdin.write(b"x" * (4 * 1024 * 1024))
        await proto.paused
        assert stdin.get_write_buffer_size() > 0
        transport.kill()
        await proto.done
        assert transport.get_returncode() == -signal.SIGKILL
        transport.close()

    run_coro(loop, main())


def test_stdin_drain_with_slow_reader(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "sleep 0.2; wc -c", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for _ in range(32):
            proc.stdin.write(b"y" * 65536)
            await proc.stdin.drain()
        proc.stdin.close()
        out = await proc.stdout.read()
        assert int(out) == 32 * 65536
        assert await proc.wait() == 0

    run_coro(loop, main())


def test_many_children_with_pipes_no_leaks(loop):
    async def main(n):
        for i in range(n):
            proc = await asyncio.create_subprocess_exec(
                "echo", str(i), stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            assert out == b"%d\n" % i

    run_coro(loop, main(5))
    fds_before = fd_count()
    run_coro(loop, main(500), timeout=300)
    assert wait_blocking(lambda: zombie_children() == [])
    assert fd_count() == fds_before
