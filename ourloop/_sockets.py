"""File-descriptor watchers and socket operations on non-blocking sockets:
loop.add_reader() & co. and loop.sock_*().

SockMixin is one of ourloop.Loop's bases. Registering a watcher or starting
a sock_* operation happens once per call and is Python; readiness events are
dispatched natively (ourloop/handles/poll.pyx).
"""

__all__ = ('SockMixin',)


class SockMixin:
    """add_reader / add_writer / sock_* for ourloop.Loop."""

    __slots__ = ()
