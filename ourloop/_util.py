"""Helpers that several of ourloop.Loop's mixin modules share.

Each mixin module (_sockets, _tcp, _unix, _udp, _sendfile, ...) imports
what it needs from here, never a private helper of a sibling mixin. All of
it runs once per call or per connection, so it is Python; messages and
exception types are the running Python's asyncio's.
"""

import socket
import stat
from asyncio.log import logger

from . import _core

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None

_HAS_IPv6 = hasattr(socket, 'AF_INET6')


def _check_ssl_socket(sock):
    # sock= arguments: an ssl.SSLSocket cannot be used by a loop.
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_tls_timeouts(handshake_timeout, shutdown_timeout, have_ssl):
    # The stdlib's checks: TLS timeouts without TLS are an error.
    if handshake_timeout is not None and not have_ssl:
        raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
    if shutdown_timeout is not None and not have_ssl:
        raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')


def _enable_reuse_port(sock):
    # reuse_port=True of create_server() and create_datagram_endpoint().
    if not hasattr(socket, 'SO_REUSEPORT'):
        raise ValueError('reuse_port not supported by socket module')
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(  # noqa: B904 (as the stdlib)
            'reuse_port not supported by socket module, '
            'SO_REUSEPORT defined but not implemented.')


def _remove_stale_socket_file(path):
    # A socket file left by an earlier server would make bind() fail; any
    # other kind of file stays (and bind() reports it). stat and unlink are
    # C calls (_core, syscalls.pyx): no blocking-call detector can excuse
    # ourloop's own Python-level ones.
    try:
        mode, _ = _core._stat_mode_ino(path)
        if stat.S_ISSOCK(mode):
            _core._unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        # The directory may let us create the socket but not look at it.
        logger.error('Unable to check or remove stale UNIX socket %r: %r',
                     path, err)
