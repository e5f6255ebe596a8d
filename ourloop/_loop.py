"""ourloop.Loop: the event loop class.

LoopCore (Cython, ourloop/loop.pyx) runs the loop and everything that
happens per callback, task or future (tasks and futures are native). This
module adds what runs once per loop or per executor job:
run_until_complete, the task factory setters, executors, asynchronous
generator bookkeeping and exception handling; the mixins it combines add
the networking, pipe, subprocess and signal methods. Each method follows
the behaviour of the running Python's asyncio.BaseEventLoop.
"""

import asyncio
import concurrent.futures
import sys
import threading
import time
import traceback
import warnings
import weakref
from asyncio import constants, futures, tasks
from asyncio.log import logger
from typing import Awaitable, TypeVar

from ._core import LoopCore, _check_callback
from ._dns import DnsMixin
from ._pipes import PipeMixin
from ._sendfile import SendfileMixin
from ._signals import SignalMixin
from ._sockets import SockMixin
from ._subprocess import SubprocessMixin
from ._tcp import TcpMixin
from ._tls import TLSMixin
from ._udp import DatagramMixin
from ._unix import UnixMixin

__all__ = ('Loop', 'new_event_loop')

_T = TypeVar('_T')


# Python 3.12+ runs a custom exception handler in the contextvars context
# of the task, future or handle the error is about.
_HANDLER_IN_CONTEXT = sys.version_info >= (3, 12)


def _handler_context(context):
    thing = context.get('task')
    if thing is None:
        thing = context.get('future')
    if thing is None:
        thing = context.get('handle')
    if thing is not None and hasattr(thing, 'get_context'):
        ctx = thing.get_context()
        if ctx is not None and hasattr(ctx, 'run'):
            return ctx
    return None


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # run_forever() is already unwinding with this exception.
            return
    futures._get_loop(fut).stop()


class Loop(LoopCore, DnsMixin, SockMixin, TcpMixin, UnixMixin, SignalMixin,
           DatagramMixin, PipeMixin, SubprocessMixin, TLSMixin,
           SendfileMixin,
           asyncio.AbstractEventLoop):
    """An asyncio event loop running on libuv.

    A drop-in replacement for asyncio's default loop: create it with
    ourloop.new_event_loop(), or run a program with ourloop.run(main()).
    """

    def __init__(self):
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._task_factory = None
        self._exception_handler = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._clock_resolution = time.get_clock_info('monotonic').resolution
        self._signal_handlers = {}

    def __repr__(self):
        return (f'<{type(self).__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # -- running ----------------------------------------------------------

    def run_until_complete(self, future: Awaitable[_T]) -> _T:
        """Run until the future (or coroutine, wrapped in a task) is done,
        and return its result or raise its exception."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The task is ours: a KeyboardInterrupt leaves it pending, and
            # that should not be logged as "Task was destroyed but pending".
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                # Mark the exception as retrieved: it is the one propagating.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def close(self) -> None:
        """Close the loop. It must not be running; pending callbacks are
        dropped and the default executor is shut down without waiting."""
        was_closed = self.is_closed()
        LoopCore.close(self)
        self._remove_all_signal_handlers()
        self._drop_thread_child_waits()
        if was_closed:
            return
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth())
            sys.set_coroutine_origin_tracking_depth(constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # -- asynchronous generators ------------------------------------------

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self, stacklevel=1)
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self):
        """Close every asynchronous generator still alive on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(
            *[agen.aclose() for agen in agens], return_exceptions=True)
        for result, agen in zip(results, agens):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of '
                               f'asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })

    # -- executors --------------------------------------------------------

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in an executor (the default thread pool for
        None) and return an asyncio future for its result."""
        self._check_closed()
        if self.get_debug():
            _check_callback(func, 'run_in_executor')
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio')
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        """Set the executor run_in_executor(None, ...) uses."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            if sys.version_info >= (3, 11):
                raise TypeError('executor must be ThreadPoolExecutor instance')
            warnings.warn(
                'Using the default executor that is not an instance of '
                'ThreadPoolExecutor is deprecated and will be prohibited '
                'in Python 3.9',
                DeprecationWarning, 2)
        self._default_executor = executor

    def _do_shutdown(self, future):
        # Runs in a helper thread: joining the executor's threads may block.
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(
                    futures._set_result_unless_cancelled, future, None)
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    async def _join_default_executor(self, timeout=None):
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        if timeout is None:
            try:
                await future
            finally:
                thread.join()
            return
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            warnings.warn("The executor did not finishing joining "
                          f"its threads within {timeout} seconds.",
                          RuntimeWarning, stacklevel=3)
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    if sys.version_info >= (3, 12):
        async def shutdown_default_executor(self, timeout=None):
            """Shut the default executor down and wait for its threads
            (at most `timeout` seconds, then warn and stop waiting)."""
            await self._join_default_executor(timeout)
    else:
        async def shutdown_default_executor(self):
            """Shut the default executor down and wait for its threads."""
            await self._join_default_executor()

    # -- task factory (create_task and create_future are in loop.pyx) -----

    def set_task_factory(self, factory):
        """Set the callable create_task() uses: factory(loop, coro, **kw)
        returning a Future; None restores the default (asyncio.Task)."""
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
        self._task_factory = factory

    def get_task_factory(self):
        """Return the task factory, or None for the default one."""
        return self._task_factory

    # -- errors -----------------------------------------------------------

    def get_exception_handler(self):
        """Return the exception handler, or None for the default one."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set handler(loop, context) as the exception handler (None for
        the default one)."""
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, '
                            f'got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the error described by `context` to the 'asyncio' logger:
        its message, its other keys, the exception's traceback and, in
        debug mode, where the object or handle involved was created."""
        message = context.get('message') or 'Unhandled exception in event loop'
        exception = context.get('exception')
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        current = self._current_handle
        if ('source_traceback' not in context and current is not None
                and current._source_traceback):
            context['handle_traceback'] = current._source_traceback

        lines = [message]
        for key in sorted(context):
            if key in ('message', 'exception'):
                continue
            value = context[key]
            if key == 'source_traceback':
                value = ('Object created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            elif key == 'handle_traceback':
                value = ('Handle created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            else:
                value = repr(value)
            lines.append(f'{key}: {value}')
        logger.error('\n'.join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass `context` (a dict with 'message' and optionally 'exception',
        'future', 'task', 'handle', ...) to the exception handler."""
        handler = self._exception_handler
        if handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler',
                             exc_info=True)
            return
        try:
            ctx = _handler_context(context) if _HANDLER_IN_CONTEXT else None
            if ctx is not None:
                ctx.run(handler, self, context)
            else:
                handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    'message': 'Unhandled error in exception handler',
                    'exception': exc,
                    'context': context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler '
                             'while handling an unexpected error '
                             'in custom exception handler',
                             exc_info=True)


def new_event_loop() -> Loop:
    """Return a new ourloop event loop."""
    return Loop()
