"""subprocess_exec / subprocess_shell (the native half in handles/process.pyx).

The transport is the running Python's asyncio.base_subprocess
.BaseSubprocessTransport (so every version's exact semantics and callback
order are kept); ourloop gives it its `_start` and a Popen-like `_proc`,
and watches the child itself (no asyncio child watcher is involved).

One spawn path. Every child is spawned by `Popen`, a subprocess.Popen
subclass: Popen.__init__ does what it does for the stdlib loop (argument
conversion and checks, user/group look-ups, the pipes), and its
`_execute_child` is ourloop's: it calls the stdlib's own C spawner,
_posixsubprocess.fork_exec, with the arguments Popen would give it on the
running Python (vfork where CPython uses it; the layout of its parameters
is read from its signature, or from Popen's where it has none), then reads
the child's error pipe and, after a failure, reaps the child natively
(process.pyx: read(2)/waitpid(2) in C, GIL released) and raises the
exception Popen raises. So every keyword and error is Popen's, and the loop
thread makes no Python-level blocking call (os.read, os.waitpid, os.stat):
tools such as blockbuster, which excuse the stdlib's own calls by file and
function name, see none.

Where the stdlib's Popen would use os.posix_spawn instead (close_fds=False
and nothing else asked, or 3.13's closefrom case), ourloop still uses
fork_exec: the child and the errors come out the same.

Contexts: the protocol's callbacks run where the stdlib's do. The pipes'
(pipe_data_received, pipe_connection_lost) come from pipe transports the
base transport connects in its own task, a copy of the caller's context;
process_exited() and connection_lost() from the child watcher's report
(`_exit_in_caller_context`: the context the stdlib's watcher on this
machine reports in, whichever way ourloop watches the child).
"""

import builtins
import contextvars
import errno
import inspect
import os
import subprocess
import sys
import threading
import time
import weakref
from asyncio import base_subprocess, unix_events
from asyncio.log import logger

from . import _core

try:
    from _posixsubprocess import fork_exec as _fork_exec
except ImportError:  # pragma: no cover (not a POSIX CPython)
    _fork_exec = None

try:
    from asyncio.unix_events import _UnixSelectorEventLoop
    _STDLIB_CHILD_CALLBACK = _UnixSelectorEventLoop._child_watcher_callback
except (ImportError, AttributeError):  # pragma: no cover
    _STDLIB_CHILD_CALLBACK = None

__all__ = ('SubprocessMixin',)

# Whether children are watched through an fd on the loop (a pidfd on Linux
# 5.3+, a kqueue on macOS and the BSDs: _core._child_fd, from the platform
# layer); else one waiting thread per child, the stdlib's
# ThreadedChildWatcher (the forced-portable build always takes it). Tests
# turn it off to exercise the fallback.
_USE_PIDFD = _core._CHILD_FD_KIND != 'none'
# Whether that fd is a pidfd, which the orphan reaper can wait on.
_CHILD_FD_IS_PIDFD = _core._CHILD_FD_KIND == 'pidfd'

# What a subprocess pipe the child keeps full grows to: 4x the kernel's
# default (1 MiB moved no more per wake-up here, and costs the user's pipe
# memory quota, pipe-user-pages-soft, four times as much).
_PIPE_GROW_SIZE = 256 * 1024

# The context process_exited() and what follows it run in is the one the
# stdlib's child watcher on this machine reports in, whichever way ourloop
# watches the child. 3.12+ watch through a pidfd where one can be opened
# (PidfdChildWatcher; unix_events.can_use_pidfd()): a reader added when the
# transport is made, so a copy of the context subprocess_exec() was called
# in. 3.9-3.11, and 3.12+ without pidfds (macOS, seccomp), wait in a thread
# (ThreadedChildWatcher), which calls call_soon_threadsafe() in its new
# thread's context: an empty one.
_EXIT_IN_CALLER_CONTEXT = None


def _exit_in_caller_context():
    global _EXIT_IN_CALLER_CONTEXT
    if _EXIT_IN_CALLER_CONTEXT is None:
        can_use_pidfd = getattr(unix_events, 'can_use_pidfd', None)
        _EXIT_IN_CALLER_CONTEXT = (sys.version_info >= (3, 12) and can_use_pidfd is not None
                                   and bool(can_use_pidfd()))
    return _EXIT_IN_CALLER_CONTEXT

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
    """The subprocess.Popen of ourloop's children.

    `_execute_child` spawns through _posixsubprocess.fork_exec without a
    Python-level blocking call (see the top of this file). ourloop reaps the
    child: poll() and wait() look at it without reaping it (waitid with
    WNOWAIT), so that neither they nor Popen's own clean-up ever take the
    exit status from the loop's watcher, which sets `returncode` when it
    reaps."""

    def _execute_child(self, args, executable, preexec_fn, close_fds,
                       pass_fds, cwd, env, startupinfo, creationflags, shell,
                       p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                       restore_signals, gid, gids, uid, umask,
                       start_new_session, process_group=-1):
        # Popen.__init__ calls this with its arguments converted (the
        # parameters of each version's _execute_child; process_group is
        # 3.11+). On an exception, Popen.__init__ closes the pipes.
        if _FORK_EXEC_PARAMS is None:   # pragma: no cover
            # A fork_exec this module does not know: the stdlib's spawn.
            extra = (process_group,) if _POPEN_PGID else ()
            return super()._execute_child(
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env,
                startupinfo, creationflags, shell, p2cread, p2cwrite,
                c2pread, c2pwrite, errread, errwrite, restore_signals,
                gid, gids, uid, umask, start_new_session, *extra)

        # The argv and the program, as Popen builds them.
        if isinstance(args, (str, bytes)):
            args = [args]
        elif isinstance(args, os.PathLike):
            if shell:
                raise TypeError('path-like args is not allowed when '
                                'shell is true')
            args = [args]
        else:
            args = list(args)
        if shell:
            args = [_UNIX_SHELL, '-c'] + args
            if executable:
                args[0] = executable
        if executable is None:
            executable = args[0]
        sys.audit('subprocess.Popen', executable, args, cwd, env)
        program = executable

        # The pipe the child reports a failure through (its write end must
        # not be one of the fds 0-2 the child sets up).
        err_read, err_write = os.pipe()
        low = []
        while err_write < 3:
            low.append(err_write)
            err_write = os.dup(err_write)
        for fd in low:
            os.close(fd)
        try:
            try:
                if env is not None:
                    env_list = []
                    for name, value in env.items():
                        name = os.fsencode(name)
                        if b'=' in name:
                            raise ValueError('illegal environment variable name')
                        env_list.append(name + b'=' + os.fsencode(value))
                else:
                    env_list = None
                exe = os.fsencode(executable)
                if os.path.dirname(exe):
                    candidates = (exe,)
                else:
                    # Each directory of the PATH (of env if given), as
                    # os.execvpe searches.
                    candidates = tuple(os.path.join(os.fsencode(d), exe)
                                       for d in os.get_exec_path(env))
                keep = set(pass_fds)
                keep.add(err_write)
                values = {
                    'args': args, 'executable_list': candidates,
                    'close_fds': close_fds,
                    'pass_fds': tuple(sorted(map(int, keep))),
                    'cwd': cwd, 'env': env_list,
                    'p2cread': p2cread, 'p2cwrite': p2cwrite,
                    'c2pread': c2pread, 'c2pwrite': c2pwrite,
                    'errread': errread, 'errwrite': errwrite,
                    'errpipe_read': err_read, 'errpipe_write': err_write,
                    'restore_signals': restore_signals,
                    'call_setsid': start_new_session,
                    'pgid_to_set': process_group,
                    'gid': gid, 'extra_groups': gids, 'uid': uid,
                    'child_umask': umask, 'preexec_fn': preexec_fn,
                    # (read at each spawn, as Popen does: tests turn it off)
                    'allow_vfork': getattr(subprocess, '_USE_VFORK', True),
                }
                self.pid = _fork_exec(*[values[name] for name in _FORK_EXEC_PARAMS])
                self._child_created = True
            finally:
                os.close(err_write)
            try:
                self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite,
                                     errread, errwrite)
                report = _core._read_spawn_error(err_read)
            except BaseException:
                # (E.g. a signal handler's exception during the read.) The
                # child may run on, and no transport will watch it: the
                # orphan reaper waits for it, so no zombie is left.
                _orphaned(self.pid, -1, self)
                raise
        finally:
            os.close(err_read)
        if report:
            self._spawn_failed(report, program, cwd)

    def _spawn_failed(self, report, program, cwd):
        # The child reported `report` (b'ExceptionName:hex errno:message')
        # and exits: reap it, then raise what Popen raises.
        try:
            status = _core._wait_failed_child(self.pid)
        except ChildProcessError:
            pass
        else:
            self._handle_exitstatus(status)
        try:
            name, hex_errno, message = report.split(b':', 2)
            message = message.decode()
        except ValueError:
            name = b'SubprocessError'
            hex_errno = b'0'
            message = f'Bad exception data from child: {report!r}'
        exc_type = getattr(builtins, name.decode('ascii'),
                           subprocess.SubprocessError)
        if issubclass(exc_type, OSError) and hex_errno:
            code = int(hex_errno, 16)
            filename = program
            if message == 'noexec:chdir':
                # (3.13+) chdir(cwd) failed.
                message = ''
                filename = cwd
            elif message == 'noexec':
                # Failed before exec: chdir(cwd) before 3.13; since 3.13
                # (which says 'noexec:chdir' for that) something else.
                message = ''
                filename = None if _NOEXEC_CHDIR else cwd
            if code != 0:
                message = os.strerror(code)
            if filename is None:
                raise exc_type(code, message)
            raise exc_type(code, message, filename)
        raise exc_type(message)

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


class _ThreadWait:
    """A child waited for by a thread (the fallback without a child fd).
    The loop's close() drops `callback` (and with it the transport), as it
    closes a ChildWatch: the thread then only reaps the child."""

    __slots__ = ('callback', 'context', '__weakref__')

    def __init__(self, callback, context):
        self.callback = callback
        self.context = context


def _wait_in_thread(loop, pid, popen, wait):
    # The fallback without a child fd: block in waitpid, then report to the
    # loop in wait.context (None: this thread's, an empty one), or just reap
    # if the loop closed meanwhile.
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        returncode = None
    else:
        returncode = os.waitstatus_to_exitcode(status)
        if popen.returncode is None:
            popen.returncode = returncode
    callback, wait.callback = wait.callback, None
    if callback is None:
        return    # the loop closed: nobody to tell
    try:
        loop.call_soon_threadsafe(callback, pid, returncode, context=wait.context)
    except RuntimeError:
        pass    # the loop is closed: nobody to tell


def _reap_orphan(pid, pidfd, popen):
    # A child whose loop closed before it exited: wait for it and reap it
    # (`pidfd`: its child fd, or -1).
    try:
        if pidfd >= 0 and _CHILD_FD_IS_PIDFD:
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

    # The stdlib's reporting context (see _exit_in_caller_context), with
    # either way of watching.
    caller_context = contextvars.copy_context() if _exit_in_caller_context() else None
    if _USE_PIDFD:
        try:
            pidfd = _core._child_fd(pid)
        except OSError:
            pass    # e.g. forbidden by a seccomp policy: use a thread
        else:
            context = caller_context if caller_context is not None else contextvars.Context()
            try:
                loop._watch_child(pidfd, pid, popen, exited, _orphaned, context)
            except (MemoryError, OSError):
                pass    # (the pidfd is closed): use a thread
            else:
                return
    wait = _ThreadWait(exited, caller_context)
    loop._thread_child_waits.add(wait)
    threading.Thread(target=_wait_in_thread, args=(loop, pid, popen, wait),
                     name=f'ourloop-waitpid-{pid}', daemon=True).start()


# -- spawning ----------------------------------------------------------------


# Whether Popen._execute_child takes process_group (3.11+).
_POPEN_PGID = 'process_group' in inspect.signature(
    subprocess.Popen._execute_child).parameters


def _fork_exec_params():
    """The names of _posixsubprocess.fork_exec's parameters, in order (all
    positional), under the names of 3.12+; None if they are not known."""
    names = None
    try:
        sig = inspect.signature(_fork_exec)
    except (TypeError, ValueError):
        pass
    else:
        names = [p.name for p in sig.parameters.values()]
        names = ['extra_groups' if n == 'groups_list' else n for n in names]
    if names is None:
        # No signature (3.9-3.11): the arguments Popen passes there. 3.11's
        # Popen._execute_child takes process_group, and it passes
        # pgid_to_set and allow_vfork; 3.9 and 3.10 pass neither.
        names = ['args', 'executable_list', 'close_fds', 'pass_fds', 'cwd',
                 'env', 'p2cread', 'p2cwrite', 'c2pread', 'c2pwrite',
                 'errread', 'errwrite', 'errpipe_read', 'errpipe_write',
                 'restore_signals', 'call_setsid', 'gid', 'extra_groups',
                 'uid', 'child_umask', 'preexec_fn']
        if _POPEN_PGID:
            names.insert(names.index('gid'), 'pgid_to_set')
            names.append('allow_vfork')
    if not set(names) <= _KNOWN_PARAMS:
        return None
    return tuple(names)


_KNOWN_PARAMS = frozenset((
    'args', 'executable_list', 'close_fds', 'pass_fds', 'cwd', 'env',
    'p2cread', 'p2cwrite', 'c2pread', 'c2pwrite', 'errread', 'errwrite',
    'errpipe_read', 'errpipe_write', 'restore_signals', 'call_setsid',
    'pgid_to_set', 'gid', 'extra_groups', 'uid', 'child_umask', 'preexec_fn',
    'allow_vfork'))

_FORK_EXEC_PARAMS = None if _fork_exec is None else _fork_exec_params()

# Whether this Python's child reports a failed chdir as 'noexec:chdir' and
# other failures before exec as 'noexec' (3.13+), or both as 'noexec'.
_NOEXEC_CHDIR = 'noexec:chdir' in subprocess.Popen._execute_child.__code__.co_consts

_UNIX_SHELL = '/system/bin/sh' if hasattr(sys, 'getandroidapilevel') else '/bin/sh'


# -- the transport ---------------------------------------------------------------


class _SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """asyncio's subprocess transport, with ourloop's spawning and reaping."""

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        self._proc = Popen(args, shell=shell, stdin=stdin, stdout=stdout,
                           stderr=stderr, universal_newlines=False,
                           bufsize=bufsize, **kwargs)
        _watch(self._loop, self._proc, self)

    async def _connect_pipes(self, waiter):
        await super()._connect_pipes(waiter)
        # The pipes Popen made with the kernel's size (no pipesize=) grow
        # to _PIPE_GROW_SIZE once the child keeps one full (handles/pipe.pyx,
        # PipeEnd._grow_when_full; docs/performance.md, "Subprocess pipes").
        if getattr(self._proc, 'pipesize', -1) > 0:
            return
        for proto in self._pipes.values():
            transport = getattr(proto, 'pipe', None)
            if isinstance(transport, (_core.ReadPipeTransport, _core.WritePipeTransport)):
                transport._grow_when_full(_PIPE_GROW_SIZE)


class SubprocessMixin:
    """Child processes of ourloop.Loop."""

    @property
    def _thread_child_waits(self):
        # The children waited for by threads (_ThreadWait), made on first use.
        waits = self.__dict__.get('_thread_child_waits_set')
        if waits is None:
            waits = self.__dict__['_thread_child_waits_set'] = weakref.WeakSet()
        return waits

    def _drop_thread_child_waits(self):
        # (close()) A thread still waiting for its child no longer holds the
        # child's transport; it only reaps the child.
        waits = self.__dict__.get('_thread_child_waits_set')
        if waits:
            for wait in list(waits):
                wait.callback = wait.context = None

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
