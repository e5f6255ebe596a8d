"""Name resolution: loop.getaddrinfo() and loop.getnameinfo().

DnsMixin is one of ourloop.Loop's bases; its methods run once per lookup,
so they are Python.
"""

__all__ = ('DnsMixin',)


class DnsMixin:
    """getaddrinfo / getnameinfo for ourloop.Loop."""

    __slots__ = ()
