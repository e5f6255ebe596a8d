"""TLS: the `ssl=` paths of the connection methods, and loop.start_tls().

TLSMixin is one of ourloop.Loop's bases. Everything here runs once per
connection, so it is Python. How a TLS connection is put together:

- `_new_ssl_protocol()` is the one place that makes a TLS protocol:
  ourloop's native SSL protocol (`SSLProtocol`, ourloop/tls.pyx: the
  3.11+ stdlib design on every version). Its constructor applies the
  stdlib's defaults and checks of the TLS arguments (ssl_handshake_timeout
  and ssl_shutdown_timeout: None means asyncio.constants' default, a value
  <= 0 is a ValueError; no context means a default client context), since
  it can be constructed directly too, as asyncio.sslproto.SSLProtocol can.
  Callers use only that interface: the constructor, the protocol methods
  and `_app_transport`.
- The raw transport is an ordinary ourloop stream transport (TCP or Unix
  socket, ourloop/handles/stream.pyx) whose protocol is the SSL protocol:
  ciphertext goes through it, the SSL protocol feeds the application
  protocol and hands it `_app_transport`, the transport the caller gets.
- create_connection(), create_unix_connection() and
  connect_accepted_socket() (`_tls_make_transport`): the SSL protocol gets
  the caller's waiter and completes it when the handshake is done (or
  failed); the caller awaits it and closes the application transport on
  failure or cancellation, as the stdlib's _create_connection_transport.
- create_server() and create_unix_server() (`_tls_acceptor`): the native
  listener makes each accepted transport and the application protocol,
  then calls `_tls_accepted()` to set the transport up under an SSL
  protocol; a failed handshake closes the application transport, and is
  reported to the exception handler in debug mode only, as the stdlib's
  _accept_connection2.
- start_tls(): the stdlib's upgrade of an open transport (pause reading,
  swap the protocol, connection_made and resume_reading on the next
  iteration, wait for the handshake).

Arguments, defaults and errors are those of the running Python's asyncio.
"""

import functools
import sys
from asyncio import exceptions

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None

__all__ = ('TLSMixin',)

from ._core import SSLProtocol

# 3.11+: start_tls() and the connection methods take ssl_shutdown_timeout
# (and asyncio.constants has SSL_SHUTDOWN_TIMEOUT); 3.9 and 3.10 have
# neither, so there the shutdown timeout is always the default (30 s, the
# value 3.11 gave it).
_HAS_SHUTDOWN_TIMEOUT = sys.version_info >= (3, 11)


def _new_ssl_protocol(loop, app_protocol, sslcontext, waiter, server_side,
                      server_hostname, call_connection_made,
                      ssl_handshake_timeout, ssl_shutdown_timeout):
    """The SSL protocol of one connection. SSLProtocol's constructor
    checks the arguments and applies the stdlib's defaults (None: the
    default timeouts; no context: a default client context, a ValueError
    server side); 3.9/3.10 callers always pass ssl_shutdown_timeout=None."""
    return SSLProtocol(
        loop, app_protocol, sslcontext, waiter, server_side,
        server_hostname, call_connection_made=call_connection_made,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout)


def _accept_done(loop, protocol, app_transport, waiter):
    # The handshake of an accepted connection ended. On failure: close the
    # application transport, and tell the exception handler in debug mode
    # only (the stdlib's _accept_connection2).
    if waiter.cancelled():
        exc = exceptions.CancelledError()
    else:
        exc = waiter.exception()
        if exc is None:
            return
    app_transport.close()
    if loop.get_debug():
        loop.call_exception_handler({
            'message': 'Error on transport creation for incoming connection',
            'exception': exc,
            'protocol': protocol,
            'transport': app_transport,
        })


class TLSMixin:
    """TLS for ourloop.Loop: start_tls() and the helpers of the `ssl=`
    paths of ourloop/_tcp.py and ourloop/_unix.py."""

    __slots__ = ()

    # -- connections (create_connection & co.) -------------------------------

    def _tls_make_transport(self, sock, protocol, waiter, adopt, tls):
        """A transport over the connected socket sock, under TLS: tls is
        (ssl, server_side, server_hostname, ssl_handshake_timeout,
        ssl_shutdown_timeout) as the stdlib's _create_connection_transport
        gets them. The SSL protocol completes waiter after the handshake;
        returns the application transport."""
        ssl_arg, server_side, server_hostname, handshake, shutdown = tls
        # ssl=True: no context, the SSL protocol makes a default one.
        sslcontext = None if isinstance(ssl_arg, bool) else ssl_arg
        ssl_protocol = _new_ssl_protocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            True, handshake, shutdown)
        self._make_socket_transport(sock, ssl_protocol, None, adopt=adopt)
        return ssl_protocol._app_transport

    # -- servers (create_server & co.) -----------------------------------------

    def _tls_acceptor(self, sslcontext, ssl_handshake_timeout,
                      ssl_shutdown_timeout):
        """What a Server gives its listeners (see `_listen_socket`): None
        without TLS, else a callable setting up each accepted connection
        under TLS."""
        if not sslcontext:
            return None
        return functools.partial(self._tls_accepted, sslcontext,
                                 ssl_handshake_timeout, ssl_shutdown_timeout)

    def _tls_accepted(self, sslcontext, ssl_handshake_timeout,
                      ssl_shutdown_timeout, transport, sock, protocol,
                      server):
        # Called by the native listener's accept task with a new transport
        # and the application protocol; an exception makes it close the
        # transport. Returns the handshake's waiter, which the task awaits.
        waiter = self.create_future()
        ssl_protocol = _new_ssl_protocol(
            self, protocol, sslcontext, waiter, True, None, True,
            ssl_handshake_timeout, ssl_shutdown_timeout)
        transport._setup(sock, ssl_protocol, None, None, server, True)
        waiter.add_done_callback(functools.partial(
            _accept_done, self, protocol, ssl_protocol._app_transport))
        return waiter

    # -- start_tls -------------------------------------------------------------

    async def _start_tls(self, transport, protocol, sslcontext, server_side,
                         server_hostname, ssl_handshake_timeout,
                         ssl_shutdown_timeout):
        if ssl is None:
            raise RuntimeError('Python ssl module is not available')
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(
                f'sslcontext is expected to be an instance of ssl.SSLContext, '
                f'got {sslcontext!r}')
        if not getattr(transport, '_start_tls_compatible', False):
            raise TypeError(
                f'transport {transport!r} is not supported by start_tls()')

        waiter = self.create_future()
        ssl_protocol = _new_ssl_protocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            False, ssl_handshake_timeout, ssl_shutdown_timeout)
        # Nothing may reach the SSL protocol before its connection_made():
        # reading stays paused until the callbacks below ran.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        made = self.call_soon(ssl_protocol.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return ssl_protocol._app_transport

    if _HAS_SHUTDOWN_TIMEOUT:
        async def start_tls(self, transport, protocol, sslcontext, *,
                            server_side=False, server_hostname=None,
                            ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None):
            """Upgrade transport to TLS (client side, or server side with
            server_side=True) once the handshake is done; returns the new
            transport, which protocol should use from now on."""
            return await self._start_tls(
                transport, protocol, sslcontext, server_side, server_hostname,
                ssl_handshake_timeout, ssl_shutdown_timeout)
    else:
        async def start_tls(self, transport, protocol, sslcontext, *,
                            server_side=False, server_hostname=None,
                            ssl_handshake_timeout=None):
            """Upgrade transport to TLS (client side, or server side with
            server_side=True) once the handshake is done; returns the new
            transport, which protocol should use from now on."""
            return await self._start_tls(
                transport, protocol, sslcontext, server_side, server_hostname,
                ssl_handshake_timeout, None)
