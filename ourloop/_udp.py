"""Datagram endpoints: loop.create_datagram_endpoint().

DatagramMixin is one of ourloop.Loop's bases. What runs once per endpoint
is here, in Python: argument checks, resolving local_addr/remote_addr
(numeric hosts without a lookup, else loop.getaddrinfo()), creating,
binding and connecting the socket. The transport, and everything done per
datagram, is native: loop._make_datagram_transport() (LoopCore's) and
UDPTransport (ourloop/handles/udp.pyx).

Behaviour, arguments and error messages are those of the running Python's
asyncio.BaseEventLoop.create_datagram_endpoint; where they changed between
3.9 and 3.13, the running version's rules apply:

- reuse_address: 3.9 and 3.10 take it (the stdlib's own sentinel as the
  default): True raises ValueError, False warns DeprecationWarning; 3.11+
  have no such argument.
- a (host, port) address that is not a 2-tuple: TypeError, except on 3.10
  (an assert: AssertionError).
- sock=: 3.13 refuses only SOCK_STREAM sockets ('A datagram socket was
  expected'); before, anything but SOCK_DGRAM ('A UDP Socket was
  expected').
- family=AF_UNIX: local_addr and remote_addr must be str (TypeError 'string
  is expected' otherwise, bytes and path-like objects included); they are
  never resolved; a socket file left at local_addr is removed before bind
  (not for an abstract address, starting with NUL).

Who owns which socket:

- A socket created here belongs to the attempt that created it and is
  closed on any failure, cancellation included, until the transport takes
  its fd over (then libuv's handle owns the fd; see handles/udp.pyx). If
  protocol_factory() raises, it is closed too (the stdlib leaves it to the
  garbage collector).
- A socket passed with sock= stays the caller's until the transport exists;
  from then on the transport closes it after connection_lost(), and a
  cancellation while waiting for connection_made closes the transport.
"""

import socket
import sys
import warnings
from asyncio import base_events as _base_events
from asyncio.log import logger

from ._util import _enable_reuse_port, _remove_stale_socket_file

__all__ = ('DatagramMixin',)

# 3.9, 3.10: the reuse_address argument (bpo-37228), with the stdlib's own
# "not given" sentinel, which also shows in the sock= error message.
_HAS_REUSE_ADDRESS = sys.version_info < (3, 11)
_unset = getattr(_base_events, '_unset', object())
# 3.10 checks addresses with an assert.
_ASSERT_TUPLE = sys.version_info[:2] == (3, 10)
# 3.13: only stream sockets are refused by sock=.
_PY313_SOCK_CHECK = sys.version_info >= (3, 13)


class DatagramMixin:
    """Datagram endpoints of ourloop.Loop."""

    __slots__ = ()

    if _HAS_REUSE_ADDRESS:
        async def create_datagram_endpoint(self, protocol_factory,
                                           local_addr=None, remote_addr=None, *,
                                           family=0, proto=0, flags=0,
                                           reuse_address=_unset, reuse_port=None,
                                           allow_broadcast=None, sock=None):
            """Create a datagram endpoint: (transport, protocol)."""
            return await self._datagram_endpoint(
                protocol_factory, local_addr, remote_addr, family, proto,
                flags, reuse_address, reuse_port, allow_broadcast, sock)
    else:
        async def create_datagram_endpoint(self, protocol_factory,
                                           local_addr=None, remote_addr=None, *,
                                           family=0, proto=0, flags=0,
                                           reuse_port=None,
                                           allow_broadcast=None, sock=None):
            """Create a datagram endpoint: (transport, protocol)."""
            return await self._datagram_endpoint(
                protocol_factory, local_addr, remote_addr, family, proto,
                flags, _unset, reuse_port, allow_broadcast, sock)

    async def _datagram_endpoint(self, protocol_factory, local_addr,
                                 remote_addr, family, proto, flags,
                                 reuse_address, reuse_port, allow_broadcast,
                                 sock):
        adopt = False
        r_addr = None
        if sock is not None:
            if _PY313_SOCK_CHECK:
                if sock.type == socket.SOCK_STREAM:
                    raise ValueError(
                        f'A datagram socket was expected, got {sock!r}')
            elif sock.type != socket.SOCK_DGRAM:
                raise ValueError(f'A UDP Socket was expected, got {sock!r}')
            if (local_addr or remote_addr or family or proto or flags or
                    reuse_port or allow_broadcast):
                # Name the offending arguments, as the stdlib does.
                opts = dict(local_addr=local_addr, remote_addr=remote_addr,
                            family=family, proto=proto, flags=flags)
                if _HAS_REUSE_ADDRESS:
                    opts['reuse_address'] = reuse_address
                opts.update(reuse_port=reuse_port,
                            allow_broadcast=allow_broadcast)
                problems = ', '.join(f'{k}={v}' for k, v in opts.items() if v)
                raise ValueError(
                    f'socket modifier keyword arguments can not be used '
                    f'when sock is specified. ({problems})')
            sock.setblocking(False)
        else:
            addr_pairs_info = await self._datagram_addr_pairs(
                local_addr, remote_addr, family, proto, flags)
            if _HAS_REUSE_ADDRESS and reuse_address is not _unset:
                # bpo-37228
                if reuse_address:
                    raise ValueError("Passing `reuse_address=True` is no "
                                     "longer supported, as the usage of "
                                     "SO_REUSEPORT in UDP poses a significant "
                                     "security concern.")
                warnings.warn("The *reuse_address* parameter has been "
                              "deprecated as of 3.5.10 and is scheduled "
                              "for removal in 3.11.", DeprecationWarning,
                              stacklevel=3)
            sock, r_addr = await self._datagram_socket(
                addr_pairs_info, local_addr, remote_addr, reuse_port,
                allow_broadcast)
            adopt = True

        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            transport = self._make_datagram_transport(
                sock, protocol, r_addr, waiter, adopt=adopt)
        except BaseException:
            if adopt:
                # Ours, and not taken over by a transport.
                sock.close()
            raise
        if self._debug:
            if local_addr:
                logger.info("Datagram endpoint local_addr=%r remote_addr=%r "
                            "created: (%r, %r)",
                            local_addr, remote_addr, transport, protocol)
            else:
                logger.debug("Datagram endpoint remote_addr=%r created: "
                             "(%r, %r)",
                             remote_addr, transport, protocol)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def _datagram_addr_pairs(self, local_addr, remote_addr, family,
                                   proto, flags):
        # The ((family, proto), (local address, remote address)) candidates,
        # in the stdlib's order.
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError('unexpected address family')
            return (((family, proto), (None, None)),)
        if hasattr(socket, 'AF_UNIX') and family == socket.AF_UNIX:
            # Paths are never resolved.
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError('string is expected')
            if local_addr and local_addr[0] not in (0, '\x00'):
                _remove_stale_socket_file(local_addr)
            return (((family, proto), (local_addr, remote_addr)),)
        # Join the addresses by (family, protocol), in order.
        addr_infos = {}
        for idx, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if _ASSERT_TUPLE:
                assert isinstance(addr, tuple) and len(addr) == 2, (
                    '2-tuple is expected')
            elif not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError('2-tuple is expected')
            infos = await self._ensure_resolved(
                addr, family=family, type=socket.SOCK_DGRAM,
                proto=proto, flags=flags, loop=self)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            for fam, _, pro, _, address in infos:
                key = (fam, pro)
                if key not in addr_infos:
                    addr_infos[key] = [None, None]
                addr_infos[key][idx] = address
        # Each given address needs an entry for the (family, proto) pair.
        pairs = [
            (key, addr_pair) for key, addr_pair in addr_infos.items()
            if not ((local_addr and addr_pair[0] is None) or
                    (remote_addr and addr_pair[1] is None))]
        if not pairs:
            raise ValueError('can not get address information')
        return pairs

    async def _datagram_socket(self, addr_pairs_info, local_addr, remote_addr,
                               reuse_port, allow_broadcast):
        # The first (family, proto) pair whose socket can be made, bound and
        # connected: (socket, remote address or None). A failed or cancelled
        # attempt closes its socket.
        exceptions = []
        for ((family, proto),
             (local_address, remote_address)) in addr_pairs_info:
            sock = None
            r_addr = None
            try:
                sock = socket.socket(
                    family=family, type=socket.SOCK_DGRAM, proto=proto)
                if reuse_port:
                    _enable_reuse_port(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local_address)
                if remote_addr:
                    if not allow_broadcast:
                        await self.sock_connect(sock, remote_address)
                    r_addr = remote_address
            except OSError as exc:
                if sock is not None:
                    sock.close()
                exceptions.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            else:
                return sock, r_addr
        try:
            raise exceptions[0]
        finally:
            exceptions = None
