"""ourloop's Server: what loop.create_server() returns.

A Server holds the listening sockets of one create_server() call and the
connections accepted on them. It runs once per server and per connection,
so it is Python; accepting is native (`loop._listen_socket()`, one listener
per socket, ourloop/handles/tcp.pyx).

Ownership: the Server owns its listening sockets (those it bound, and a
socket passed with sock=) and closes them in close(), after telling each
listener to stop accepting. The accepted connections belong to their
transports, which call `_attach()` when they start and `_detach()` after
their connection_lost().

The semantics are the running Python's: close() stops listening, closes
the sockets and cancels a pending serve_forever(). wait_closed() on 3.12+
returns once close() was called AND every connection is gone, in either
order; on 3.9-3.11 it returns at once when the server is already closed
(live connections or not), and otherwise waits for both, as those
versions' stdlib does. close_clients() and abort_clients() exist where the
running Python's asyncio.Server has them (3.13+).

A Unix server made by create_unix_server(cleanup_socket=True) (3.13+)
removes its socket file in close(), as the stdlib's loop does when it stops
serving, if the file still is the one it bound (same inode).
"""

import asyncio
import sys
from asyncio import trsock
from asyncio.log import logger

from . import _core

__all__ = ('Server',)

# Python 3.9-3.11's wait_closed() returns at once on a closed server, even
# while accepted connections are alive (3.12 changed it).
_CLOSED_RETURNS_AT_ONCE = sys.version_info < (3, 12)


class Server(asyncio.AbstractServer):
    """A TCP server bound to one or more listening sockets."""

    def __init__(self, loop, sockets, protocol_factory, backlog):
        self._loop = loop
        # Listening sockets; None once close() was called.
        self._sockets = sockets
        # One native listener per socket once serving started.
        self._listeners = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        # Live connections, from _attach() to _detach(): their count. (The
        # connections themselves, for close_clients(), are the loop's open
        # transports whose server this is: no per-connection registry. As
        # with the stdlib's weak set, a transport nothing else refers to,
        # paused with nothing to write, is collected, and its __del__ calls
        # _detach().)
        self._active_count = 0
        # Futures of wait_closed() callers; None once they were released.
        self._waiters = []
        self._serving = False
        self._serving_forever_fut = None
        # create_unix_server(cleanup_socket=True), 3.13+: (path, inode) of
        # the socket file to remove in close() if it is still that file.
        self._unix_path_to_cleanup = None
        # TLS servers: what the listeners call to set each accepted
        # connection up under TLS (TLSMixin._tls_acceptor), else None.
        self._tls = None

    def __repr__(self):
        return f'<{type(self).__name__} sockets={self.sockets!r}>'

    # -- called by the transports (native code) ----------------------------

    # The transport argument is optional, as in the stdlib up to 3.12
    # (whose own tests call these with no argument).
    def _attach(self, transport=None):
        self._active_count += 1

    def _detach(self, transport=None):
        self._active_count -= 1
        if self._sockets is None and self._active_count <= 0:
            self._release_waiters()

    def _release_waiters(self):
        waiters, self._waiters = self._waiters, None
        if not waiters:
            return
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- listening ---------------------------------------------------------

    def _start_serving(self):
        if self._serving or self._sockets is None:
            return
        self._serving = True
        loop = self._loop
        for sock in self._sockets:
            self._listeners.append(loop._listen_socket(
                sock, self._protocol_factory, self, self._backlog,
                self._tls))

    def get_loop(self):
        """The loop the server was created on."""
        return self._loop

    def is_serving(self):
        """True while the server accepts new connections."""
        return self._serving

    @property
    def sockets(self):
        """The listening sockets as asyncio.trsock.TransportSocket objects;
        () once the server is closed."""
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(sock) for sock in self._sockets)

    def close(self):
        """Stop listening and close the listening sockets (connections
        already accepted stay open). Cancels a pending serve_forever()."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.stop_serving()
        for sock in sockets:
            sock.close()
        self._serving = False
        if self._unix_path_to_cleanup is not None:
            self._remove_unix_socket_file()

        forever = self._serving_forever_fut
        if forever is not None and not forever.done():
            forever.cancel()
            self._serving_forever_fut = None

        if self._active_count <= 0:
            self._release_waiters()

    def _remove_unix_socket_file(self):
        # Only the file this server bound: another server may have replaced
        # it since.
        path, inode = self._unix_path_to_cleanup
        self._unix_path_to_cleanup = None
        try:
            # C calls (see _util._remove_stale_socket_file).
            if _core._stat_mode_ino(path)[1] == inode:
                _core._unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error('Unable to clean up listening UNIX socket %r: %r',
                         path, err)

    if hasattr(asyncio.AbstractServer, 'close_clients'):
        def close_clients(self):
            """Close every connection accepted by this server."""
            for transport in self._attached_transports():
                transport.close()

        def abort_clients(self):
            """Abort every connection accepted by this server (pending
            writes are dropped)."""
            for transport in self._attached_transports():
                transport.abort()

        def _attached_transports(self):
            # The connections attached to this server (a transport is from
            # its set-up to its _detach_server(), which follows the close of
            # its handle at once).
            return [t for t in self._loop._open_transports() if t._server is self]

    async def start_serving(self):
        """Start accepting connections (no-op if already serving)."""
        self._start_serving()
        # The stdlib lets one loop iteration pass here; so does ourloop.
        await asyncio.sleep(0)

    async def serve_forever(self):
        """Serve until cancelled; cancellation closes the server and waits
        for it (wait_closed()) before propagating."""
        if self._serving_forever_fut is not None:
            raise RuntimeError(
                f'server {self!r} is already being awaited on serve_forever()')
        if self._sockets is None:
            raise RuntimeError(f'server {self!r} is closed')

        self._start_serving()
        fut = self._loop.create_future()
        self._serving_forever_fut = fut
        try:
            await fut
        except asyncio.CancelledError as exc:
            await self._close_then_reraise(exc)
        finally:
            self._serving_forever_fut = None

    async def _close_then_reraise(self, cancelled):
        # serve_forever() was cancelled (by close() or by its caller):
        # close the server and wait for it; the caller then sees its
        # CancelledError, whatever happened meanwhile.
        try:
            self.close()
            await self.wait_closed()
        finally:
            raise cancelled

    async def wait_closed(self):
        """Return once close() was called and every connection accepted by
        the server is gone (both, in either order). Before Python 3.12:
        at once if the server is already closed, as the stdlib's."""
        if self._waiters is None or (_CLOSED_RETURNS_AT_ONCE
                                     and self._sockets is None):
            return
        fut = self._loop.create_future()
        self._waiters.append(fut)
        await fut
