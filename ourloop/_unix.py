"""Unix stream sockets: loop.create_unix_connection() and
loop.create_unix_server().

UnixMixin is one of ourloop.Loop's bases. Like ourloop/_tcp.py it holds
what runs once per connection or per server (argument checks, creating,
binding and connecting the AF_UNIX socket, removing a stale socket file);
the transports and the accepting are native and shared with TCP:
`loop._make_socket_transport()` and `loop._listen_socket()` take AF_UNIX
sockets too (over a libuv pipe handle instead of a TCP one).

Behaviour, arguments and error messages are those of the running Python's
asyncio.unix_events._UnixSelectorEventLoop:

- `path` is anything os.fspath() accepts; a path starting with a NUL
  character (str or bytes) is a Linux abstract-namespace address, which has
  no file: nothing is checked or removed for it.
- create_unix_server() removes a socket file left at `path` by an earlier
  server before binding (only if it is a socket); binding to an address in
  use raises OSError(EADDRINUSE, "Address ... is already in use").
- 3.13+: with cleanup_socket=True (the default) the server's socket file is
  removed when the server is closed, provided it is still the file the
  server bound (same inode); the Server does it (ourloop/_server.py).

Who owns which socket: the same rules as TCP (see ourloop/_tcp.py). A
socket made here is closed on every failure, cancellation included, and
belongs to its transport or Server once that exists; a sock= socket stays
the caller's until a transport or Server takes it.

TLS (ssl=) works as for TCP: the socket's transport gets an SSL protocol,
the caller its application transport (ourloop/_tls.py).
"""

import errno
import os
import socket
import sys

from . import _core
from ._server import Server
from ._util import _check_tls_timeouts, _remove_stale_socket_file

__all__ = ('UnixMixin',)

# 3.13+: create_unix_server(cleanup_socket=True) removes the socket file
# when the server closes.
_HAS_CLEANUP_SOCKET = sys.version_info >= (3, 13)


def _is_abstract(address):
    """True for a Linux abstract-namespace address (str or bytes starting
    with a NUL), which names no file."""
    return address[:1] in ('\0', b'\0')


def _check_unix_stream_socket(sock):
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(
            f'A UNIX Domain Stream Socket was expected, got {sock!r}')


def _path_or_sock(path, sock, neither_message):
    # The stdlib's checks of path= against sock= (the message for neither
    # differs between connecting and serving); returns the path as a str
    # or bytes, or None when sock is used.
    if path is not None:
        if sock is not None:
            raise ValueError(
                'path and sock can not be specified at the same time')
        return os.fspath(path)
    if sock is None:
        raise ValueError(neither_message)
    _check_unix_stream_socket(sock)
    return None


class UnixMixin:
    """create_unix_connection / create_unix_server for ourloop.Loop."""

    __slots__ = ()

    # -- connecting ----------------------------------------------------------

    async def _unix_connect(self, protocol_factory, path, ssl, sock,
                            server_hostname, ssl_handshake_timeout,
                            ssl_shutdown_timeout):
        # -- the stdlib's argument checks, in its order --
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError(
                    'you have to pass server_hostname when using ssl')
        else:
            if server_hostname is not None:
                raise ValueError(
                    'server_hostname is only meaningful with ssl')
            _check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout,
                                False)
        path = _path_or_sock(path, sock, 'no path and sock were specified')

        ours = path is not None
        if ours:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        tls = None
        if ssl:
            tls = (ssl, False, server_hostname, ssl_handshake_timeout,
                   ssl_shutdown_timeout)
        return await self._tcp_start_transport(
            sock, protocol_factory, ours, tls)

    if sys.version_info >= (3, 11):
        async def create_unix_connection(
                self, protocol_factory, path=None, *, ssl=None, sock=None,
                server_hostname=None, ssl_handshake_timeout=None,
                ssl_shutdown_timeout=None):
            """Connect to the Unix socket at path (or wrap sock, a
            connected AF_UNIX stream socket) and return (transport,
            protocol)."""
            return await self._unix_connect(
                protocol_factory, path, ssl, sock, server_hostname,
                ssl_handshake_timeout, ssl_shutdown_timeout)
    else:
        async def create_unix_connection(
                self, protocol_factory, path=None, *, ssl=None, sock=None,
                server_hostname=None, ssl_handshake_timeout=None):
            """Connect to the Unix socket at path (or wrap sock, a
            connected AF_UNIX stream socket) and return (transport,
            protocol)."""
            return await self._unix_connect(
                protocol_factory, path, ssl, sock, server_hostname,
                ssl_handshake_timeout, None)

    # -- serving ---------------------------------------------------------------

    @staticmethod
    def _unix_bind(path):
        """A new AF_UNIX stream socket bound to path (a stale socket file
        there removed first)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not _is_abstract(path):
                _remove_stale_socket_file(path)
            try:
                sock.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                # Say which address is taken.
                raise OSError(errno.EADDRINUSE,
                              f'Address {path!r} is already in use') from None
        except BaseException:
            sock.close()
            raise
        return sock

    @staticmethod
    def _unix_socket_file(sock):
        """(path, inode) of the file sock is bound to, or None (abstract
        address, unbound socket, or the file is gone)."""
        name = sock.getsockname()
        if not name or _is_abstract(name):
            return None
        try:
            return name, _core._stat_mode_ino(name)[1]
        except FileNotFoundError:
            return None

    async def _unix_serve(self, protocol_factory, path, sock, backlog, ssl,
                          ssl_handshake_timeout, ssl_shutdown_timeout,
                          start_serving, cleanup_socket):
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        _check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout,
                            bool(ssl))
        path = _path_or_sock(
            path, sock, 'path was not specified, and no sock specified')

        ours = path is not None
        if ours:
            sock = self._unix_bind(path)
        try:
            cleanup = self._unix_socket_file(sock) if cleanup_socket else None
            sock.setblocking(False)
        except BaseException:
            if ours:
                sock.close()
            raise

        server = Server(self, [sock], protocol_factory, backlog)
        server._unix_path_to_cleanup = cleanup
        server._tls = self._tls_acceptor(ssl, ssl_handshake_timeout,
                                         ssl_shutdown_timeout)
        if start_serving:
            await self._tcp_start_new_server(server, ours)
        return server

    if _HAS_CLEANUP_SOCKET:
        async def create_unix_server(
                self, protocol_factory, path=None, *, sock=None, backlog=100,
                ssl=None, ssl_handshake_timeout=None,
                ssl_shutdown_timeout=None, start_serving=True,
                cleanup_socket=True):
            """Listen on the Unix socket path (or on sock, a bound AF_UNIX
            stream socket) and return a Server. With cleanup_socket the
            socket file is removed when the server closes."""
            return await self._unix_serve(
                protocol_factory, path, sock, backlog, ssl,
                ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
                cleanup_socket)
    elif sys.version_info >= (3, 11):
        async def create_unix_server(
                self, protocol_factory, path=None, *, sock=None, backlog=100,
                ssl=None, ssl_handshake_timeout=None,
                ssl_shutdown_timeout=None, start_serving=True):
            """Listen on the Unix socket path (or on sock, a bound AF_UNIX
            stream socket) and return a Server."""
            return await self._unix_serve(
                protocol_factory, path, sock, backlog, ssl,
                ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
                False)
    else:
        async def create_unix_server(
                self, protocol_factory, path=None, *, sock=None, backlog=100,
                ssl=None, ssl_handshake_timeout=None, start_serving=True):
            """Listen on the Unix socket path (or on sock, a bound AF_UNIX
            stream socket) and return a Server."""
            return await self._unix_serve(
                protocol_factory, path, sock, backlog, ssl,
                ssl_handshake_timeout, None, start_serving, False)
