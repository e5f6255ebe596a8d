"""Name resolution: loop.getaddrinfo() and loop.getnameinfo().

DnsMixin is one of ourloop.Loop's bases; its methods run once per lookup,
so they are Python.

The stdlib runs every lookup in the default executor. ourloop does the same,
except when the answer needs no lookup at all:

- getaddrinfo() first asks socket.getaddrinfo() in the loop's thread with
  AI_NUMERICHOST | AI_NUMERICSERV added to the flags. The C library then
  answers only for a numeric host (or None) and a numeric port (or None),
  and with the same result as without those flags. If that call raises, for
  whatever reason (a name to look up, a service name, bad arguments), the
  stdlib's call runs in the executor, so errors always come from the very
  call the stdlib makes. AI_CANONNAME requests skip this: POSIX leaves the
  canonical name of a numeric host to the resolver, which may look it up.
- getnameinfo() with both NI_NUMERICHOST and NI_NUMERICSERV never looks
  anything up, so it is called directly, with the stdlib's arguments.

Neither shortcut is taken when the stdlib's path would behave differently:
on a closed loop, after shutdown_default_executor(), for getaddrinfo() in
debug mode (which logs every lookup), or while socket.getaddrinfo or
socket.getnameinfo is replaced (by a test's mock, say), so a replacement
sees exactly the stdlib's calls, in the executor.

A shortcut answers without the loop running an iteration first, where the
stdlib's answer always comes back through at least one.
"""

import socket
from asyncio.log import logger

__all__ = ('DnsMixin',)


_real_getaddrinfo = socket.getaddrinfo
_real_getnameinfo = socket.getnameinfo

# Plain ints: IntFlag arithmetic would rewrite negative flags (-3 | an
# AddressInfo is 2045 on 3.11+), and the C function must see the value the
# caller passed, with our bits added.
_NO_LOOKUP = int(socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
_CANONNAME = int(socket.AI_CANONNAME)
_NI_NUMERIC = int(socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)


class DnsMixin:
    """getaddrinfo / getnameinfo for ourloop.Loop."""

    __slots__ = ()

    def _may_skip_executor(self):
        # run_in_executor() would raise: let it.
        return not (self.is_closed() or self._executor_shutdown_called)

    async def getaddrinfo(self, host, port, *,
                          family=0, type=0, proto=0, flags=0):
        """Like socket.getaddrinfo(host, port, family, type, proto, flags),
        run in the default executor; a numeric host and port are resolved
        at once, without a thread. Same results and errors as the stdlib.
        """
        debug = self.get_debug()
        if (not debug and self._may_skip_executor()
                and socket.getaddrinfo is _real_getaddrinfo
                and isinstance(flags, int)
                and not flags & _CANONNAME):
            try:
                return _real_getaddrinfo(host, port, family, type, proto,
                                         flags | _NO_LOOKUP)
            except Exception:
                pass  # a lookup is needed, or the arguments are wrong
        func = self._getaddrinfo_debug if debug else socket.getaddrinfo
        return await self.run_in_executor(
            None, func, host, port, family, type, proto, flags)

    def _getaddrinfo_debug(self, host, port, family, type, proto, flags):
        # What the stdlib's executor job does in debug mode: log the call,
        # and its result and duration (at INFO level when it was slow).
        details = [f'{host}:{port!r}']
        for name, value in (('family', family), ('type', type),
                            ('proto', proto), ('flags', flags)):
            if value:
                details.append(f'{name}={value!r}')
        details = ', '.join(details)
        logger.debug('Get address info %s', details)
        start = self.time()
        addrinfo = socket.getaddrinfo(host, port, family, type, proto, flags)
        took = self.time() - start
        slow = took >= self.slow_callback_duration
        (logger.info if slow else logger.debug)(
            f'Getting address info {details} took {took * 1e3:.3f}ms: '
            f'{addrinfo!r}')
        return addrinfo

    async def getnameinfo(self, sockaddr, flags=0):
        """Like socket.getnameinfo(sockaddr, flags), run in the default
        executor; called directly when flags hold both NI_NUMERICHOST and
        NI_NUMERICSERV. Same results and errors as the stdlib.
        """
        if (self._may_skip_executor()
                and socket.getnameinfo is _real_getnameinfo
                and isinstance(flags, int)
                and flags & _NI_NUMERIC == _NI_NUMERIC):
            return _real_getnameinfo(sockaddr, flags)
        return await self.run_in_executor(
            None, socket.getnameinfo, sockaddr, flags)
