"""add_signal_handler / remove_signal_handler (SignalMixin of ourloop.Loop).

The signal wake-up fd is the loop's own socketpair (SignalWakeup in
ourloop/handles/poll.pyx). While handlers exist it stays set even when the
loop is not running ("pinned"), as the stdlib's self-pipe does; each byte
read from it is a signal number, and the handler registered for it is queued
like a call_soon() callback. The Python-level handler of a watched signal
does nothing: the callback runs in the loop, never inside the signal handler.

Why not libuv's uv_signal_t: it installs its own C handler with sigaction,
replacing Python's. The stdlib's semantics live in Python's signal module:
signal.getsignal() reports the loop's handler, remove_signal_handler(SIGINT)
puts back default_int_handler so Ctrl-C raises KeyboardInterrupt again,
other code may call signal.signal() for another signal or the same one, and
a Python-level handler of a signal not watched by the loop must still run
(the wake-up fd is how the loop wakes up for it). With uv_signal_t the
process would have two owners of each signal's disposition, and each would
break the other. Going through signal.signal() and the wake-up fd keeps one
owner (Python) and costs nothing per signal that matters: a byte on a
socket the loop already polls.
"""

import errno
import signal
import sys
import warnings
from asyncio import coroutines
from asyncio.log import logger

from ._core import Handle, _iscoroutinefunction


def _ignore_in_python(signum, frame):
    """Python-level handler of signals watched by the loop: nothing to do
    here, the byte written to the wake-up fd is what counts."""


class SignalMixin:
    """Unix signal handlers run as loop callbacks."""

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) in the loop each time signal sig arrives.

        ValueError for an invalid signal number; RuntimeError outside the
        main thread or for a signal that cannot be caught."""
        if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        try:
            self._pin_signal_wakeup(True, self._dispatch_signals)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))  # noqa: B904 (as the stdlib)
        handlers = self._signal_handlers
        handlers[sig] = Handle(callback, args, self, None)
        try:
            signal.signal(sig, _ignore_in_python)
            # Let system calls be restarted rather than fail with EINTR.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del handlers[sig]
            if not handlers:
                self._pin_signal_wakeup(False)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig} cannot be caught')  # noqa: B904 (as the stdlib)
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler of signal sig; True if there was one."""
        self._check_signal(sig)
        handlers = self._signal_handlers
        if handlers.pop(sig, None) is None:
            return False
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, default)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig} cannot be caught')  # noqa: B904 (as the stdlib)
            raise
        if not handlers:
            try:
                self._pin_signal_wakeup(False)
            except (ValueError, OSError) as exc:
                logger.info('set_wakeup_fd(-1) failed: %s', exc)
        return True

    def _dispatch_signals(self, data):
        # Called by the wake-up fd's poll callback with the bytes read.
        handlers = self._signal_handlers
        for signum in data:
            handle = handlers.get(signum)
            if handle is None:
                continue
            if handle._cancelled:
                self.remove_signal_handler(signum)
            else:
                self._add_callback(handle)

    def _remove_all_signal_handlers(self):
        # Loop.close(): the stdlib's unix loop removes its handlers.
        handlers = self._signal_handlers
        if not handlers:
            return
        if not sys.is_finalizing():
            for sig in list(handlers):
                self.remove_signal_handler(sig)
        else:
            warnings.warn(f"Closing the loop {self!r} on interpreter shutdown "
                          f"stage, skipping signal handlers removal",
                          ResourceWarning, source=self, stacklevel=1)
            handlers.clear()
