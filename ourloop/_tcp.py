"""TCP: loop.create_connection(), loop.create_server() and
loop.connect_accepted_socket().

TcpMixin is one of ourloop.Loop's bases. Everything here runs once per
connection or per server, so it is Python: argument checks, name
resolution (through `_ensure_resolved`, so numeric hosts skip the lookup,
and `loop.getaddrinfo`), creating, binding and connecting sockets, trying
several addresses (one after the other, or staggered: happy eyeballs), and
the bookkeeping of servers (ourloop/_server.py). Moving bytes is native:
`loop._make_socket_transport()` turns a connected socket into a transport
and `loop._listen_socket()` accepts connections on a listening socket
(ourloop/handles/tcp.pyx).

Behaviour, arguments and error messages are those of the running Python's
asyncio.BaseEventLoop; where those changed between 3.9 and 3.13, the
running version's rules apply.

Who owns which socket:

- A socket created here belongs to the attempt that created it until it is
  connected, and is closed on every failure, cancellation included; a
  connected one is handed to its transport, which closes it after
  connection_lost(). If the transport cannot be made (protocol_factory()
  raised, say), the socket is closed at once.
- With happy eyeballs, an attempt that connects after another one won, or
  while create_connection() is being cancelled, has its socket closed here.
- A socket passed with sock= stays the caller's until a transport (or
  Server) takes it. As in the stdlib, once the transport exists a failure
  or a cancellation closes the transport, and with it the socket; an error
  before that (protocol_factory() raising) leaves the socket to its owner.
- create_server(): the listening sockets, bound here or passed with sock=,
  belong to the Server, which closes them in close(). A create_server()
  that fails or is cancelled after its Server started listening closes the
  Server (see docs/conformance.md).
- TLS (ssl=): the connected or accepted socket's transport gets an SSL
  protocol as its protocol, and the caller the SSL protocol's application
  transport (ourloop/_tls.py); the ownership rules above are unchanged.
"""

import asyncio
import collections.abc
import errno
import functools
import itertools
import os
import socket
import sys
from asyncio import staggered
from asyncio.log import logger

from ._server import Server
from ._util import _check_ssl_socket, _check_tls_timeouts, _enable_reuse_port, _HAS_IPv6

__all__ = ('TcpMixin',)

# Version differences of the stdlib this module follows.
# 3.10+: create_connection() binds a local address only to sockets of the
# same family (and says so when none matches).
_LOCAL_ADDR_SAME_FAMILY = sys.version_info >= (3, 10)
# 3.13+: bind errors quote str(exc) (with "[errno N]"), not exc.strerror;
# create_server() skips addresses failing with EADDRNOTAVAIL (a family not
# enabled) and fails when no address could be bound.
_PY313_BINDING = sys.version_info >= (3, 13)

_DEFAULT_REUSE_ADDRESS = os.name == 'posix' and sys.platform != 'cygwin'


def _bind_error(address, exc):
    """The OSError the stdlib raises when binding to address failed."""
    if _PY313_BINDING:
        detail = str(exc).lower()
    else:
        detail = exc.strerror.lower()
    return OSError(exc.errno, f'error while attempting to bind on '
                              f'address {address!r}: {detail}')


def _interleave_families(infos, first_family_count):
    """Reorder getaddrinfo() results so that address families alternate,
    in the order families first appear; the first family gets
    first_family_count addresses before the alternation starts."""
    by_family = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())
    ordered = []
    if first_family_count > 1:
        # Slicing, as the stdlib does: a non-integer count raises its
        # TypeError ('slice indices must be integers ...').
        head = groups[0]
        ordered.extend(head[:first_family_count - 1])
        del head[:first_family_count - 1]
    for round_ in itertools.zip_longest(*groups):
        ordered.extend(info for info in round_ if info is not None)
    return ordered


def _combined_error(errors, all_errors):
    """The exception create_connection() raises when every attempt failed
    with one of `errors` (OSErrors, in the order they happened)."""
    if all_errors:
        return ExceptionGroup('create_connection failed', errors)  # noqa: F821 (3.11+, as all_errors)
    first = errors[0]
    if len(errors) == 1:
        return first
    text = str(first)
    if all(str(exc) == text for exc in errors[1:]):
        return first
    # Different errors: one OSError showing all of their messages.
    return OSError('Multiple exceptions: ' + ', '.join(map(str, errors)))


class TcpMixin:
    """create_connection / create_server / connect_accepted_socket for
    ourloop.Loop."""

    __slots__ = ()

    # -- connecting ----------------------------------------------------------

    async def _tcp_connect_one(self, errors, addrinfo, local_infos):
        """One attempt of create_connection(): create a socket for addrinfo,
        bind it to one of local_infos (if given) and connect it. Returns the
        connected socket; the OSErrors met go to a list appended to errors.
        Any failure, cancellation included, closes the socket."""
        mine = []
        errors.append(mine)
        family, type_, proto, _, address = addrinfo
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_infos is not None:
                self._tcp_bind_local(sock, family, local_infos, mine)
            await self.sock_connect(sock, address)
        except BaseException as exc:
            if isinstance(exc, OSError):
                mine.append(exc)
            if sock is not None:
                sock.close()
            raise
        finally:
            # No reference cycles through the exceptions' tracebacks.
            errors = mine = None
        return sock

    @staticmethod
    def _tcp_bind_local(sock, family, local_infos, failures):
        # Bind sock to the first local address that works; each failure is
        # recorded, the last one is raised if none worked.
        for info in local_infos:
            if _LOCAL_ADDR_SAME_FAMILY and info[0] != family:
                continue
            address = info[4]
            try:
                sock.bind(address)
            except OSError as exc:
                failures.append(_bind_error(address, exc))
            else:
                return
        if failures:
            # Raised, it is recorded again by the caller.
            raise failures.pop()
        raise OSError(f'no matching local address with family={family!r} found')

    async def _tcp_connect_staggered(self, errors, infos, local_infos, delay):
        # Happy eyeballs: start the attempts `delay` seconds apart (or as
        # soon as the previous one failed); the first to connect wins and
        # the others are cancelled. Returns (socket or None, exceptions).
        connected = []

        async def attempt(addrinfo):
            sock = await self._tcp_connect_one(errors, addrinfo, local_infos)
            connected.append(sock)
            return sock

        try:
            winner, _, excs = await staggered.staggered_race(
                (functools.partial(attempt, addrinfo) for addrinfo in infos),
                delay, loop=self)
        except BaseException:
            # Cancelled (or broken) after an attempt connected: the socket
            # has no other owner.
            for sock in connected:
                sock.close()
            raise
        for sock in connected:
            if sock is not winner:
                sock.close()
        return winner, excs

    async def _tcp_start_transport(self, sock, protocol_factory, sock_is_ours,
                                   tls=None):
        """Make the transport of a connected socket and wait until it is
        ready (connection_made() scheduled; with tls, the TLS handshake
        done, see TLSMixin._tls_make_transport); on failure or cancellation
        the transport is closed, which closes the socket."""
        try:
            sock.setblocking(False)
            protocol = protocol_factory()
            waiter = self.create_future()
            # adopt: libuv takes over the fd of a socket made here; a sock=
            # socket keeps its fd (libuv works on a duplicate).
            if tls is None:
                transport = self._make_socket_transport(
                    sock, protocol, waiter, adopt=sock_is_ours)
            else:
                transport = self._tls_make_transport(
                    sock, protocol, waiter, sock_is_ours, tls)
        except BaseException:
            if sock_is_ours:
                # A no-op if the transport already took (detached) the fd.
                sock.close()
            raise
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def _tcp_connect(self, protocol_factory, host, port, ssl, family,
                           proto, flags, sock, local_addr, server_hostname,
                           ssl_handshake_timeout, ssl_shutdown_timeout,
                           happy_eyeballs_delay, interleave, all_errors):
        # -- the stdlib's argument checks, in its order --
        if server_hostname is not None and not ssl:
            raise ValueError('server_hostname is only meaningful with ssl')
        if server_hostname is None and ssl:
            if not host:
                raise ValueError('You must set server_hostname '
                                 'when using ssl without a host')
            server_hostname = host
        _check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout,
                            bool(ssl))
        if sock is not None:
            _check_ssl_socket(sock)
        resolve = host is not None or port is not None
        if resolve:
            if sock is not None:
                raise ValueError(
                    'host/port and sock can not be specified at the same time')
        elif sock is None:
            raise ValueError(
                'host and port was not specified and no sock specified')
        elif sock.type != socket.SOCK_STREAM:
            # AF_UNIX stream sockets are accepted too, as in the stdlib.
            raise ValueError(f'A Stream Socket was expected, got {sock!r}')

        if resolve:
            if happy_eyeballs_delay is not None and interleave is None:
                interleave = 1
            sock = await self._tcp_connect_addresses(
                host, port, family, proto, flags, local_addr,
                happy_eyeballs_delay, interleave, all_errors)

        tls = None
        if ssl:
            tls = (ssl, False, server_hostname, ssl_handshake_timeout,
                   ssl_shutdown_timeout)
        transport, protocol = await self._tcp_start_transport(
            sock, protocol_factory, resolve, tls)
        if self._debug:
            logger.debug('%r connected to %s:%r: (%r, %r)',
                         transport.get_extra_info('socket'), host, port,
                         transport, protocol)
        return transport, protocol

    async def _tcp_connect_addresses(self, host, port, family, proto, flags,
                                     local_addr, delay, interleave,
                                     all_errors):
        # Resolve host/port (and local_addr), then try the addresses; the
        # connected socket, or the stdlib's error.
        infos = await self._ensure_resolved(
            (host, port), family=family, type=socket.SOCK_STREAM,
            proto=proto, flags=flags, loop=self)
        if not infos:
            raise OSError('getaddrinfo() returned empty list')
        local_infos = None
        if local_addr is not None:
            local_infos = await self._ensure_resolved(
                local_addr, family=family, type=socket.SOCK_STREAM,
                proto=proto, flags=flags, loop=self)
            if not local_infos:
                raise OSError('getaddrinfo() returned empty list')
        if interleave:
            infos = _interleave_families(infos, interleave)

        errors = []
        other_failures = ()
        sock = None
        if delay is None:
            for addrinfo in infos:
                try:
                    sock = await self._tcp_connect_one(
                        errors, addrinfo, local_infos)
                except OSError:
                    continue
                break
        else:
            sock, other_failures = await self._tcp_connect_staggered(
                errors, infos, local_infos, delay)
        if sock is not None:
            return sock

        flat = [exc for attempt in errors for exc in attempt]
        errors = None
        try:
            if not flat:
                # Only possible with happy eyeballs, when the attempts
                # failed with something else than OSError.
                failures = [exc for exc in other_failures if exc is not None]
                if failures:
                    raise failures[0]
            raise _combined_error(flat, all_errors)
        finally:
            flat = other_failures = None

    if sys.version_info >= (3, 12):
        async def create_connection(
                self, protocol_factory, host=None, port=None, *, ssl=None,
                family=0, proto=0, flags=0, sock=None, local_addr=None,
                server_hostname=None, ssl_handshake_timeout=None,
                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                interleave=None, all_errors=False):
            """Open a TCP connection to host:port (or wrap sock, already
            connected) and return (transport, protocol). Several addresses
            are tried in order, or staggered with happy_eyeballs_delay;
            all_errors=True raises an ExceptionGroup of every failure."""
            return await self._tcp_connect(
                protocol_factory, host, port, ssl, family, proto, flags,
                sock, local_addr, server_hostname, ssl_handshake_timeout,
                ssl_shutdown_timeout, happy_eyeballs_delay, interleave,
                all_errors)
    elif sys.version_info >= (3, 11):
        async def create_connection(
                self, protocol_factory, host=None, port=None, *, ssl=None,
                family=0, proto=0, flags=0, sock=None, local_addr=None,
                server_hostname=None, ssl_handshake_timeout=None,
                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                interleave=None):
            """Open a TCP connection to host:port (or wrap sock, already
            connected) and return (transport, protocol). Several addresses
            are tried in order, or staggered with happy_eyeballs_delay."""
            return await self._tcp_connect(
                protocol_factory, host, port, ssl, family, proto, flags,
                sock, local_addr, server_hostname, ssl_handshake_timeout,
                ssl_shutdown_timeout, happy_eyeballs_delay, interleave,
                False)
    else:
        async def create_connection(
                self, protocol_factory, host=None, port=None, *, ssl=None,
                family=0, proto=0, flags=0, sock=None, local_addr=None,
                server_hostname=None, ssl_handshake_timeout=None,
                happy_eyeballs_delay=None, interleave=None):
            """Open a TCP connection to host:port (or wrap sock, already
            connected) and return (transport, protocol). Several addresses
            are tried in order, or staggered with happy_eyeballs_delay."""
            return await self._tcp_connect(
                protocol_factory, host, port, ssl, family, proto, flags,
                sock, local_addr, server_hostname, ssl_handshake_timeout,
                None, happy_eyeballs_delay, interleave, False)

    # -- accepted sockets ------------------------------------------------------

    async def _tcp_adopt(self, protocol_factory, sock, ssl,
                         ssl_handshake_timeout, ssl_shutdown_timeout):
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f'A Stream Socket was expected, got {sock!r}')
        _check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout,
                            bool(ssl))
        _check_ssl_socket(sock)
        tls = None
        if ssl:
            tls = (ssl, True, '', ssl_handshake_timeout, ssl_shutdown_timeout)
        transport, protocol = await self._tcp_start_transport(
            sock, protocol_factory, False, tls)
        if self._debug:
            logger.debug('%r handled: (%r, %r)',
                         transport.get_extra_info('socket'),
                         transport, protocol)
        return transport, protocol

    if sys.version_info >= (3, 11):
        async def connect_accepted_socket(
                self, protocol_factory, sock, *, ssl=None,
                ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
            """Make a transport of a connection accepted outside asyncio
            (sock, a connected stream socket); returns (transport,
            protocol)."""
            return await self._tcp_adopt(
                protocol_factory, sock, ssl, ssl_handshake_timeout,
                ssl_shutdown_timeout)
    else:
        async def connect_accepted_socket(
                self, protocol_factory, sock, *, ssl=None,
                ssl_handshake_timeout=None):
            """Make a transport of a connection accepted outside asyncio
            (sock, a connected stream socket); returns (transport,
            protocol)."""
            return await self._tcp_adopt(
                protocol_factory, sock, ssl, ssl_handshake_timeout, None)

    # -- serving ---------------------------------------------------------------

    async def _tcp_server_addrinfo(self, host, port, family, flags):
        infos = await self._ensure_resolved(
            (host, port), family=family, type=socket.SOCK_STREAM,
            flags=flags, loop=self)
        if not infos:
            raise OSError(f'getaddrinfo({host!r}) returned empty list')
        return infos

    async def _tcp_bind_all(self, host, port, family, flags, reuse_address,
                            reuse_port, keep_alive):
        """Resolve host (a host, None/'' for all interfaces, or an iterable
        of hosts) and return a bound socket for each distinct address."""
        if host == '':
            hosts = [None]
        elif isinstance(host, str) or not isinstance(
                host, collections.abc.Iterable):
            hosts = [host]
        else:
            hosts = host
        lookups = [self._tcp_server_addrinfo(h, port, family, flags)
                   for h in hosts]
        results = await asyncio.gather(*lookups)
        # Each distinct address once (the stdlib uses a set; this keeps the
        # resolver's order).
        infos = list(dict.fromkeys(itertools.chain.from_iterable(results)))

        if reuse_address is None:
            reuse_address = _DEFAULT_REUSE_ADDRESS
        sockets = []
        try:
            for af, socktype, proto, _, address in infos:
                try:
                    sock = socket.socket(af, socktype, proto)
                except OSError:
                    # Taken for a family/type/protocol the system lacks.
                    if self._debug:
                        logger.warning('create_server() failed to create '
                                       'socket.socket(%r, %r, %r)',
                                       af, socktype, proto, exc_info=True)
                    continue
                sockets.append(sock)
                if reuse_address:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                if reuse_port:
                    _enable_reuse_port(sock)
                if keep_alive:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
                if (_HAS_IPv6 and af == socket.AF_INET6
                        and hasattr(socket, 'IPPROTO_IPV6')):
                    # One socket per family: no IPv4-mapped addresses on
                    # the IPv6 one (Linux enables dual stack by default).
                    sock.setsockopt(
                        socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                try:
                    sock.bind(address)
                except OSError as exc:
                    error = _bind_error(address, exc)
                    if _PY313_BINDING and exc.errno == errno.EADDRNOTAVAIL:
                        # Most likely a family the system has not enabled.
                        sockets.remove(sock)
                        sock.close()
                        if self._debug:
                            logger.warning(error.strerror)
                        continue
                    raise error from None
            if _PY313_BINDING and not sockets:
                raise OSError('could not bind on any address out of %r'
                              % ([info[4] for info in infos],))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return sockets

    async def _tcp_serve(self, protocol_factory, host, port, family, flags,
                         sock, backlog, ssl, reuse_address, reuse_port,
                         keep_alive, ssl_handshake_timeout,
                         ssl_shutdown_timeout, start_serving):
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        _check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout,
                            ssl is not None)
        if sock is not None:
            _check_ssl_socket(sock)
        bind = host is not None or port is not None
        if bind:
            if sock is not None:
                raise ValueError(
                    'host/port and sock can not be specified at the same time')
        elif sock is None:
            raise ValueError('Neither host/port nor sock were specified')
        elif sock.type != socket.SOCK_STREAM:
            raise ValueError(f'A Stream Socket was expected, got {sock!r}')

        if bind:
            sockets = await self._tcp_bind_all(
                host, port, family, flags, reuse_address, reuse_port,
                keep_alive)
        else:
            sockets = [sock]
        try:
            for listening in sockets:
                listening.setblocking(False)
        except BaseException:
            if bind:
                for listening in sockets:
                    listening.close()
            raise

        server = Server(self, sockets, protocol_factory, backlog)
        server._tls = self._tls_acceptor(ssl, ssl_handshake_timeout,
                                         ssl_shutdown_timeout)
        if start_serving:
            await self._tcp_start_new_server(server, bind)
        if self._debug:
            logger.info('%r is serving', server)
        return server

    async def _tcp_start_new_server(self, server, sockets_are_ours):
        # start_serving=True: listen now, then let one loop iteration pass,
        # as the stdlib does. A failure, or a cancellation during that
        # iteration, closes the server: nobody would ever see it.
        try:
            server._start_serving()
        except BaseException:
            self._tcp_abandon_server(server, sockets_are_ours)
            raise
        try:
            await asyncio.sleep(0)
        except BaseException:
            server.close()
            raise

    @staticmethod
    def _tcp_abandon_server(server, sockets_are_ours):
        # Starting to listen failed: stop what did start; close the sockets
        # if they were bound here, leave a sock= socket to its owner (as the
        # stdlib does, whose Server is dropped without closing it).
        if sockets_are_ours:
            server.close()
            return
        listeners, server._listeners = server._listeners, []
        for listener in listeners:
            listener.stop_serving()
        server._serving = False

    if sys.version_info >= (3, 13):
        async def create_server(
                self, protocol_factory, host=None, port=None, *,
                family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                keep_alive=None, ssl_handshake_timeout=None,
                ssl_shutdown_timeout=None, start_serving=True):
            """Listen on host:port (host: a name, None or '' for every
            interface, or a list of hosts; port 0 picks a free port) or
            on sock, and return a Server. Each accepted connection gets
            protocol_factory()."""
            return await self._tcp_serve(
                protocol_factory, host, port, family, flags, sock, backlog,
                ssl, reuse_address, reuse_port, keep_alive,
                ssl_handshake_timeout, ssl_shutdown_timeout, start_serving)
    elif sys.version_info >= (3, 11):
        async def create_server(
                self, protocol_factory, host=None, port=None, *,
                family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                start_serving=True):
            """Listen on host:port (host: a name, None or '' for every
            interface, or a list of hosts; port 0 picks a free port) or
            on sock, and return a Server. Each accepted connection gets
            protocol_factory()."""
            return await self._tcp_serve(
                protocol_factory, host, port, family, flags, sock, backlog,
                ssl, reuse_address, reuse_port, None,
                ssl_handshake_timeout, ssl_shutdown_timeout, start_serving)
    else:
        async def create_server(
                self, protocol_factory, host=None, port=None, *,
                family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                ssl_handshake_timeout=None, start_serving=True):
            """Listen on host:port (host: a name, None or '' for every
            interface, or a list of hosts; port 0 picks a free port) or
            on sock, and return a Server. Each accepted connection gets
            protocol_factory()."""
            return await self._tcp_serve(
                protocol_factory, host, port, family, flags, sock, backlog,
                ssl, reuse_address, reuse_port, None,
                ssl_handshake_timeout, None, start_serving)
