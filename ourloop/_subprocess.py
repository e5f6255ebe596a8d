"""subprocess_exec / subprocess_shell (spawning in handles/process.pyx).

The transport is the running Python's asyncio.base_subprocess
.BaseSubprocessTransport (so every version's exact semantics and callback
order are kept); ourloop gives it its `_start` and a Popen-like `_proc`,
and watches the child itself (no asyncio child watcher is involved).

uv_spawn or subprocess.Popen (`_uv_spawn_plan`). A child is spawned with
libuv's uv_spawn when nothing asked for would come out differently from
subprocess.Popen, that is when:
  - the options are only args/program, executable, cwd, env, close_fds,
    start_new_session, and the others at their defaults (preexec_fn=None,
    pass_fds=(), user/group/extra_groups/process_group=None, umask=-1,
    restore_signals=True, pipesize=-1): uv_spawn cannot express the others;
  - the arguments convert as Popen converts them (str, bytes, path-like,
    no NUL byte, no '=' in an environment variable name);
  - the program resolves, the way Popen searches PATH (the env's PATH when
    env is given), to a regular executable file that starts with '#!' or
    an ELF header: libuv execs with execvp, which would run anything else
    through /bin/sh where Popen fails with ENOEXEC, and Popen's own error
    for a missing or unusable program is the reference;
  - every stdio fd given to the child is open and blocking (libuv makes
    the child's fds 0-2 blocking, which the parent would see);
  - with close_fds=True (the default), no fd > 2 of this process is
    inheritable (Popen's child closes them, libuv's would keep them);
  - no signal is ignored in this process other than SIGPIPE/SIGXFSZ, and
    the calling thread blocks no signal (libuv resets every disposition and
    empties the mask; Popen's child keeps both).
Everything else is spawned by subprocess.Popen (`Popen`, whose poll() and
wait() never reap), exactly as the stdlib does, including its errors; the
loop blocks during the spawn the same way. Both kinds of children are
watched and reaped by ourloop (handles/process.pyx).

Contexts: the protocol's callbacks run where the stdlib's do. The pipes'
(pipe_data_received, pipe_connection_lost) come from pipe transports the
base transport connects in its own task, a copy of the caller's context;
process_exited() and connection_lost() from the child watcher's report
(`_EXIT_IN_CALLER_CONTEXT`).
"""

import contextvars
import errno
import inspect
import os
import stat
import subprocess
import sys
import threading
import time
import warnings

from asyncio import base_subprocess
from asyncio.log import logger

from . import _core

try:
    from asyncio.unix_events import _UnixSelectorEventLoop
    _STDLIB_CHILD_CALLBACK = _UnixSelectorEventLoop._child_watcher_callback
except (ImportError, AttributeError):  # pragma: no cover
    _STDLIB_CHILD_CALLBACK = None

__all__ = ('SubprocessMixin',)

# Whether children are watched with pidfds (Linux 5.3+); else one waiting
# thread per child. Tests turn it off to exercise the fallback.
_USE_PIDFD = hasattr(os, 'pidfd_open')

# The context process_exited() and what follows it run in is the one the
# stdlib's child watcher reports in. 3.12+ watch through a pidfd
# (PidfdChildWatcher): a reader added when the transport is made, so a copy
# of the context subprocess_exec() was called in. 3.9-3.11 have a thread
# wait (ThreadedChildWatcher), which calls call_soon_threadsafe() in its new
# thread's context: an empty one. (ourloop's own waiting thread, without
# pidfds, does the same, as does the stdlib's without them.)
_EXIT_IN_CALLER_CONTEXT = sys.version_info >= (3, 12)

_POPEN_PARAMS = frozenset(inspect.signature(subprocess.Popen).parameters)

# Options uv_spawn can express (any value Popen accepts is checked in the
# plan), and the others at the values that ask for nothing.
_UV_OPTIONS = frozenset(('executable', 'cwd', 'env', 'close_fds',
                         'start_new_session'))
_DEFAULTS_OK = {
    'preexec_fn': lambda v: v is None,
    'pass_fds': lambda v: type(v) in (tuple, list) and not v,
    'user': lambda v: v is None,
    'group': lambda v: v is None,
    'extra_groups': lambda v: v is None,
    'process_group': lambda v: v is None,
    'umask': lambda v: type(v) is int and v == -1,
    'restore_signals': lambda v: v is True,
    'pipesize': lambda v: v is None or (type(v) is int and v == -1),
    'startupinfo': lambda v: v is None,
    'creationflags': lambda v: type(v) is int and v == 0,
}

# The warning the running Python's default child watcher logs when a
# child's status was read by someone else.
if sys.version_info >= (3, 12):
    _ECHILD_WARNING = ("child process pid %d exit status already read: "
                       " will report returncode 255")
else:
    _ECHILD_WARNING = "Unknown child process pid %d, will report returncode 255"


def _format_pipe(fd):
    if fd == subprocess.PIPE:
        return '<pipe>'
    if fd == subprocess.STDOUT:
        return '<stdout>'
    return repr(fd)


def _returncode_from_waitid(info):
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


class Popen(subprocess.Popen):
    """A subprocess.Popen whose child ourloop reaps: poll() and wait()
    look at the child without reaping it (waitid with WNOWAIT), so that
    neither they nor Popen's own clean-up ever take the exit status from
    the loop's watcher, which sets `returncode` when it reaps.

    Children spawned by uv_spawn get one too (`_adopt`), so that the
    transport's 'subprocess' extra info is a Popen in both cases."""

    @classmethod
    def _adopt(cls, args, pid, stdin, stdout, stderr):
        self = cls.__new__(cls)
        # What Popen.__init__ sets before spawning, for bufsize=0,
        # universal_newlines=False and no text options (asyncio's call).
        self.args = args
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.pid = pid
        self.returncode = None
        self.encoding = None
        self.errors = None
        self.text_mode = False
        self.pipesize = -1
        self._input = None
        self._communication_started = False
        self._sigint_wait_secs = 0.25
        self._closed_child_pipe_fds = True
        self._waitpid_lock = threading.Lock()
        self._child_created = True
        return self

    def _internal_poll(self, _deadstate=None, _waitid=os.waitid,
                       _P_PID=os.P_PID,
                       _options=os.WEXITED | os.WNOHANG | os.WNOWAIT,
                       _CLD_EXITED=os.CLD_EXITED):
        # Called by __del__: only local names.
        if self.returncode is None:
            try:
                info = _waitid(_P_PID, self.pid, _options)
            except ChildProcessError:
                # Reaped already (by the loop's watcher, which sets
                # returncode).
                return self.returncode
            if info is not None:
                if info.si_code == _CLD_EXITED:
                    self.returncode = info.si_status
                else:
                    self.returncode = -info.si_status
        return self.returncode

    def _wait(self, timeout):
        if self.returncode is not None:
            return self.returncode
        if timeout is not None:
            endtime = time.monotonic() + timeout
            delay = 0.0005
            while self._internal_poll() is None:
                remaining = endtime - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                delay = min(delay * 2, remaining, .05)
                time.sleep(delay)
            return self.returncode
        while self.returncode is None:
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                # Reaped meanwhile; as Popen says when it cannot know.
                return self.returncode if self.returncode is not None else 0
            if info is not None:
                self.returncode = _returncode_from_waitid(info)
        return self.returncode


# -- reaping -----------------------------------------------------------------


def _child_exited(loop, popen, transport, pid, returncode):
    # From the ready queue, once the child is reaped (returncode None: its
    # status was taken by someone else).
    if returncode is None:
        if popen.returncode is not None:
            returncode = popen.returncode
        else:
            logger.warning(_ECHILD_WARNING, pid)
            returncode = 255
    popen.returncode = returncode
    if loop.is_closed():
        return
    if _STDLIB_CHILD_CALLBACK is not None:
        # The running Python's own hop(s) to transport._process_exited.
        _STDLIB_CHILD_CALLBACK(loop, pid, returncode, transport)
    else:  # pragma: no cover
        loop.call_soon_threadsafe(transport._process_exited, returncode)


def _wait_in_thread(loop, pid, popen, callback):
    # The fallback without pidfds: block in waitpid, then report to the loop
    # (or just reap if the loop is closed meanwhile).
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        returncode = None
    else:
        returncode = os.waitstatus_to_exitcode(status)
        if popen.returncode is None:
            popen.returncode = returncode
    try:
        loop.call_soon_threadsafe(callback, pid, returncode)
    except RuntimeError:
        pass    # the loop is closed: nobody to tell


def _reap_orphan(pid, pidfd, popen):
    # A child whose loop closed before it exited: wait for it and reap it.
    try:
        if pidfd >= 0:
            try:
                info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                _, status = os.waitpid(pid, 0)
                returncode = os.waitstatus_to_exitcode(status)
            else:
                returncode = _returncode_from_waitid(info)
        else:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        return
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    if popen is not None and popen.returncode is None:
        popen.returncode = returncode


def _orphaned(pid, pidfd, popen):
    # Called by a ChildWatch whose loop closes while its child runs.
    thread = threading.Thread(target=_reap_orphan, args=(pid, pidfd, popen),
                              name=f'ourloop-reaper-{pid}', daemon=True)
    try:
        thread.start()
    except RuntimeError:
        # Interpreter shutdown: no thread can start. The child is reparented
        # to init when this process exits.
        if pidfd >= 0:
            os.close(pidfd)


def _watch(loop, popen, transport):
    pid = popen.pid

    def exited(pid, returncode):
        _child_exited(loop, popen, transport, pid, returncode)

    if _USE_PIDFD:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pass    # e.g. forbidden by a seccomp policy: use a thread
        else:
            if _EXIT_IN_CALLER_CONTEXT:
                context = contextvars.copy_context()
            else:
                context = contextvars.Context()
            try:
                _core._watch_child(loop, pidfd, pid, popen, exited, _orphaned,
                                   context)
            except (MemoryError, OSError):
                pass    # (the pidfd is closed): use a thread
            else:
                return
    threading.Thread(target=_wait_in_thread, args=(loop, pid, popen, exited),
                     name=f'ourloop-waitpid-{pid}', daemon=True).start()


# -- spawning with uv_spawn ----------------------------------------------------


def _has_inheritable_fds():
    try:
        names = os.listdir('/proc/self/fd')
    except OSError:
        return True     # cannot tell: let Popen close them
    for name in names:
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if os.get_inheritable(fd):
                return True
        except OSError:
            pass        # the fd listdir() used, closed since
    return False


def _usable_fd(fd):
    # An fd uv_spawn can give the child as it is: open and blocking.
    try:
        flags = os.get_blocking(fd)
    except (OSError, OverflowError, TypeError):
        return False
    return flags


def _no_nul(value):
    if b'\0' in value:
        raise ValueError('embedded null byte')
    return value


def _is_exec_candidate(path):
    # A regular file we may execute whose format the kernel execs itself
    # (execvp would hand anything else to /bin/sh).
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if not os.access(path, os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        head = os.read(fd, 4)
    except OSError:
        return False
    finally:
        os.close(fd)
    return head[:2] == b'#!' or head == b'\x7fELF'


def _uv_spawn_plan(args, shell, stdin, stdout, stderr, kwargs):
    """What to give uv_spawn, or None when subprocess.Popen must spawn this
    child (see the module docstring for the rule)."""
    try:
        return _make_plan(args, shell, stdin, stdout, stderr, kwargs)
    except Exception:
        # Anything unusual: Popen decides (and raises its own errors).
        return None


def _make_plan(args, shell, stdin, stdout, stderr, kwargs):
    for name, value in kwargs.items():
        if name not in _POPEN_PARAMS:
            return None
        if name in _UV_OPTIONS:
            continue
        check = _DEFAULTS_OK.get(name)
        if check is None or not check(value):
            return None
    executable = kwargs.get('executable')
    cwd = kwargs.get('cwd')
    env = kwargs.get('env')
    close_fds = kwargs.get('close_fds', True)
    new_session = kwargs.get('start_new_session', False)
    if type(close_fds) is not bool or type(new_session) is not bool:
        return None

    # The argv Popen would build.
    if isinstance(args, (str, bytes)):
        argv = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            return None
        argv = [args]
    else:
        argv = list(args)
    if shell:
        argv = ['/bin/sh', '-c'] + argv
        if executable:
            argv[0] = executable
    if not argv:
        return None
    if executable is None:
        executable = argv[0]
    argv_b = [_no_nul(os.fsencode(a)) for a in argv]
    exe_b = _no_nul(os.fsencode(executable))
    if not exe_b:
        return None
    cwd_b = None if cwd is None else _no_nul(os.fsencode(cwd))
    if env is not None:
        env_list = []
        for k, v in env.items():
            k = os.fsencode(k)
            if b'=' in k or not k:
                return None
            env_list.append(_no_nul(k + b'=' + os.fsencode(v)))
    else:
        env_list = None

    # The program, found the way Popen searches.
    if os.path.dirname(exe_b):
        candidates = [exe_b]
    else:
        candidates = [os.path.join(os.fsencode(d), exe_b)
                      for d in os.get_exec_path(env)]
    file_b = None
    for cand in candidates:
        check = cand
        if cwd_b is not None and not os.path.isabs(cand):
            check = os.path.join(cwd_b, cand)
        ok = _is_exec_candidate(check)
        if ok is None:
            continue        # as ENOENT, ENOTDIR or EACCES: Popen goes on
        if not ok:
            return None
        file_b = cand if os.path.dirname(cand) else os.path.join(b'.', cand)
        break
    if file_b is None:
        return None

    # The stdio fds (what is to be created, what is inherited).
    kinds = []
    for i, spec in enumerate((stdin, stdout, stderr)):
        if spec is None:
            kinds.append(('fd', i))
        elif spec == subprocess.PIPE:
            kinds.append(('pipe', None))
        elif spec == subprocess.DEVNULL:
            kinds.append(('devnull', None))
        elif spec == subprocess.STDOUT:
            if i != 2:
                return None
            if stdout is None:
                kinds.append(('fd', sys.__stdout__.fileno()))
            else:
                kinds.append(('stdout', None))
        elif isinstance(spec, int):
            if spec < 0:
                return None
            kinds.append(('fd', spec))
        else:
            kinds.append(('fd', spec.fileno()))
    for kind, fd in kinds:
        if kind == 'fd' and not _usable_fd(fd):
            return None
    if close_fds and _has_inheritable_fds():
        return None
    if _core._spawn_signals_differ():
        return None
    return {
        'orig_executable': executable, 'argv': argv, 'argv_b': argv_b,
        'file': file_b, 'cwd': cwd, 'cwd_b': cwd_b, 'env': env,
        'env_list': env_list, 'new_session': new_session, 'stdio': kinds,
    }


def _cwd_is_usable(cwd_b):
    try:
        st = os.stat(cwd_b)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and os.access(cwd_b, os.X_OK)


def _spawn_with_uv(loop, args, plan):
    """Spawn with uv_spawn; returns the Popen of the child."""
    sys.audit('subprocess.Popen', plan['orig_executable'], plan['argv'],
              plan['cwd'], plan['env'])
    child_fds = []      # fds for the child only: closed after the spawn
    parents = [None, None, None]    # our ends of the pipes (file objects)
    fds = [-1, -1, -1]
    try:
        for i, (kind, fd) in enumerate(plan['stdio']):
            if kind == 'fd':
                fds[i] = fd
            elif kind == 'pipe':
                r, w = os.pipe()    # (both O_CLOEXEC)
                if i == 0:
                    child_fds.append(r)
                    parents[i] = open(w, 'wb', buffering=0)
                    fds[i] = r
                else:
                    child_fds.append(w)
                    parents[i] = open(r, 'rb', buffering=0)
                    fds[i] = w
            elif kind == 'devnull':
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                child_fds.append(fd)
                fds[i] = fd
            else:   # 'stdout': stderr=STDOUT
                fds[i] = fds[1]
        try:
            pid = _core._uv_spawn(loop, plan['file'], plan['argv_b'],
                                  plan['env_list'], plan['cwd_b'],
                                  fds[0], fds[1], fds[2], plan['new_session'])
        except OSError as exc:
            # As Popen reports it: the cwd when the child failed before
            # exec (chdir), else the program as it was given.
            code = exc.errno
            if plan['cwd_b'] is not None and not _cwd_is_usable(plan['cwd_b']):
                filename = plan['cwd']
            else:
                filename = plan['orig_executable']
            raise OSError(code, os.strerror(code), filename) from None
    except BaseException:
        for f in parents:
            if f is not None:
                f.close()
        raise
    finally:
        for fd in child_fds:
            os.close(fd)
    return Popen._adopt(args, pid, *parents)


# -- the transport ---------------------------------------------------------------


class _SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """asyncio's subprocess transport, with ourloop's spawning and reaping.

    `_spawned_by` says which spawned the child: 'uv_spawn' or 'Popen'."""

    _spawned_by = None

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        plan = _uv_spawn_plan(args, shell, stdin, stdout, stderr, kwargs)
        if plan is None:
            self._proc = Popen(args, shell=shell, stdin=stdin, stdout=stdout,
                                stderr=stderr, universal_newlines=False,
                                bufsize=bufsize, **kwargs)
            self._spawned_by = 'Popen'
        else:
            self._proc = _spawn_with_uv(self._loop, args, plan)
            self._spawned_by = 'uv_spawn'
        _watch(self._loop, self._proc, self)


class SubprocessMixin:
    """Child processes of ourloop.Loop."""

    def _log_subprocess(self, msg, stdin, stdout, stderr):
        info = [msg]
        if stdin is not None:
            info.append(f'stdin={_format_pipe(stdin)}')
        if stdout is not None and stderr == subprocess.STDOUT:
            info.append(f'stdout=stderr={_format_pipe(stdout)}')
        else:
            if stdout is not None:
                info.append(f'stdout={_format_pipe(stdout)}')
            if stderr is not None:
                info.append(f'stderr={_format_pipe(stderr)}')
        logger.debug(' '.join(info))

    async def subprocess_shell(self, protocol_factory, cmd, *,
                               stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               universal_newlines=False,
                               shell=True, bufsize=0,
                               encoding=None, errors=None, text=None,
                               **kwargs):
        """Run `cmd` with /bin/sh -c; returns (transport, protocol) once the
        child runs and its pipes are connected."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        self._check_popen_args(universal_newlines, not shell, bufsize, text,
                               encoding, errors, 'shell must be True')
        protocol = protocol_factory()
        debug_log = None
        if self.get_debug():
            # Parameters are not logged: they may hold secrets.
            debug_log = 'run shell command %r' % cmd
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs)
        if self.get_debug() and debug_log is not None:
            logger.info('%s: %r', debug_log, transport)
        return transport, protocol

    async def subprocess_exec(self, protocol_factory, program, *args,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=False,
                              shell=False, bufsize=0,
                              encoding=None, errors=None, text=None,
                              **kwargs):
        """Run `program` with `args`; returns (transport, protocol) once the
        child runs and its pipes are connected."""
        self._check_popen_args(universal_newlines, shell, bufsize, text,
                               encoding, errors, 'shell must be False')
        popen_args = (program,) + args
        protocol = protocol_factory()
        debug_log = None
        if self.get_debug():
            debug_log = f'execute program {program!r}'
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, popen_args, False, stdin, stdout, stderr, bufsize,
            **kwargs)
        if self.get_debug() and debug_log is not None:
            logger.info('%s: %r', debug_log, transport)
        return transport, protocol

    @staticmethod
    def _check_popen_args(universal_newlines, bad_shell, bufsize, text,
                          encoding, errors, shell_message):
        # The stdlib's checks, in its order.
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if bad_shell:
            raise ValueError(shell_message)
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")

    async def _make_subprocess_transport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        waiter = self.create_future()
        transport = _SubprocessTransport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         waiter=waiter, extra=extra, **kwargs)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport
