"""File-descriptor watchers and socket operations on non-blocking sockets:
loop.add_reader() & co. and loop.sock_*().

SockMixin is one of ourloop.Loop's bases. Registering a watcher or starting
a sock_* operation happens once per call and is Python; readiness events are
dispatched natively (ourloop/handles/poll.pyx, FdWatchers), which puts the
registered Handle on the loop's ready queue.

The behaviour is the one of the stdlib's selector loop
(asyncio/selector_events.py): each sock_* method tries the system call at
once and, if the socket is not ready, registers a reader or writer that
retries it and resolves a future; the watcher is removed when the future is
done, so cancelling an operation leaves the socket as it was (no data is
consumed by a cancelled call).

sock_recv, sock_recv_into and sock_sendall run per read and write: they are
native (ourloop/sockops.pyx), and fall back to the Python code here
(_sock_recv_py & co., the stdlib's) for sockets and arguments they do not
take natively (socket subclasses, blocking sockets, other platforms).
"""

import asyncio
import functools
import socket
import sys

from . import _core
from ._util import _check_ssl_socket, _HAS_IPv6

__all__ = ('SockMixin',)

_EVENT_READ = 1
_EVENT_WRITE = 2

def _numeric_addrinfo(host, port, family, type, proto, flowinfo=0, scopeid=0):
    """The getaddrinfo() entry for a host that already is a numeric IP
    address, or None when a real lookup is needed (the stdlib's rules:
    only TCP/UDP, a numeric or empty port, no IPv6 zone index)."""
    if not hasattr(socket, 'inet_pton'):
        return None
    # A set, as the stdlib's: an unhashable proto raises its TypeError.
    if proto not in {0, socket.IPPROTO_TCP, socket.IPPROTO_UDP} or host is None:
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None

    if port is None or (isinstance(port, (bytes, str)) and not port):
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            # A service name ("http"): getaddrinfo() knows it.
            return None

    if family == socket.AF_UNSPEC:
        families = (socket.AF_INET, socket.AF_INET6) if _HAS_IPv6 else (socket.AF_INET,)
    else:
        families = (family,)

    if isinstance(host, bytes):
        host = host.decode('idna')
    if '%' in host:
        # inet_pton() does not take a zone index ('fe80::1%eth0').
        return None

    for af in families:
        try:
            socket.inet_pton(af, host)
        except OSError:
            continue
        if _HAS_IPv6 and af == socket.AF_INET6:
            return af, type, proto, '', (host, port, flowinfo, scopeid)
        return af, type, proto, '', (host, port)
    return None


class SockMixin:
    """add_reader / add_writer / sock_* for ourloop.Loop."""

    __slots__ = ()

    # -- fd watchers -------------------------------------------------------

    @property
    def _transports(self):
        # fd -> transport (weak values), as the stdlib's loop._transports,
        # for what Python code registers; ourloop's own socket transports
        # are found by FdWatchers.transport_of() (a C array): add_reader()
        # & co. refuse the fd of either.
        return self._fd_watchers.transports

    def _ensure_fd_no_transport(self, fd):
        fileno = fd
        if not isinstance(fileno, int):
            try:
                fileno = int(fileno.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fd!r}") from None
        transport = self._fd_watchers.transport_of(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(
                f'File descriptor {fd!r} is used by transport {transport!r}')

    def _add_reader(self, fd, callback, *args):
        self._check_closed()
        return self._fd_watchers.add(fd, _EVENT_READ, callback, args)

    def _remove_reader(self, fd):
        if self.is_closed():
            return False
        return self._fd_watchers.remove(fd, _EVENT_READ)

    def _add_writer(self, fd, callback, *args):
        self._check_closed()
        return self._fd_watchers.add(fd, _EVENT_WRITE, callback, args)

    def _remove_writer(self, fd):
        if self.is_closed():
            return False
        return self._fd_watchers.remove(fd, _EVENT_WRITE)

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever fd (an int or an object with a
        fileno() method) is readable; replaces the previous reader."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if a reader was registered."""
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever fd is writable; replaces the
        previous writer."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if a writer was registered."""
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    # -- waiting for a socket ----------------------------------------------

    def _sock_read_done(self, fd, fut, handle=None):
        # Done callback of an operation's future: drop its reader, unless
        # another registration already replaced (and cancelled) it.
        if handle is None or not handle.cancelled():
            self.remove_reader(fd)

    def _sock_write_done(self, fd, fut, handle=None):
        if handle is None or not handle.cancelled():
            self.remove_writer(fd)

    def _sock_wait(self, sock, writing, ready, *args):
        """A future that ready(fut, *args) resolves, called each time sock is
        readable (writable); the watcher goes when the future is done."""
        fut = self.create_future()
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        if writing:
            handle = self._add_writer(fd, ready, fut, *args)
            done = self._sock_write_done
        else:
            handle = self._add_reader(fd, ready, fut, *args)
            done = self._sock_read_done
        fut.add_done_callback(functools.partial(done, fd, handle=handle))
        return fut

    def _sock_retry(self, fut, sock, method, *args):
        # Reader/writer callback: try sock.<method>(*args) again (looked up
        # anew each time, as the stdlib does), unless the future is already
        # done (cancelled meanwhile: nothing is consumed).
        if fut.done():
            return
        try:
            result = getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def _check_sock(self, sock):
        _check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    # -- receiving ---------------------------------------------------------

    # Native (sockops.pyx); each falls back to its _py twin below.
    if sys.version_info >= (3, 10):
        sock_recv = _core._sock_recv
        sock_recv_into = _core._sock_recv_into
        sock_sendall = _core._sock_sendall
    else:
        # 3.9's inspect.iscoroutinefunction() knows Python functions only:
        # a Python coroutine function around each (one frame more).
        async def sock_recv(self, sock, n):
            """Receive at most n bytes from sock (a non-blocking socket);
            b'' at end of stream."""
            return await _core._sock_recv(self, sock, n)

        async def sock_recv_into(self, sock, buf):
            """Receive into the writable buffer buf; returns the byte count."""
            return await _core._sock_recv_into(self, sock, buf)

        async def sock_sendall(self, sock, data):
            """Send all of data on a connected socket; returns None. On
            error, how much was sent is unknown."""
            return await _core._sock_sendall(self, sock, data)

    async def _sock_recv_py(self, sock, n):
        """Receive at most n bytes from sock (a non-blocking socket);
        b'' at end of stream."""
        self._check_sock(sock)
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, self._sock_retry, sock, 'recv', n)

    async def _sock_recv_into_py(self, sock, buf):
        """Receive into the writable buffer buf; returns the byte count."""
        self._check_sock(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, self._sock_retry, sock, 'recv_into', buf)

    if hasattr(asyncio.AbstractEventLoop, 'sock_recvfrom'):
        async def sock_recvfrom(self, sock, bufsize):
            """Receive a datagram of at most bufsize bytes: (data, address)."""
            self._check_sock(sock)
            try:
                return sock.recvfrom(bufsize)
            except (BlockingIOError, InterruptedError):
                pass
            return await self._sock_wait(sock, False, self._sock_retry,
                                         sock, 'recvfrom', bufsize)

    if hasattr(asyncio.AbstractEventLoop, 'sock_recvfrom_into'):
        async def sock_recvfrom_into(self, sock, buf, nbytes=0):
            """Receive a datagram into buf (at most nbytes, default
            len(buf)): (byte count, address)."""
            self._check_sock(sock)
            if not nbytes:
                nbytes = len(buf)
            try:
                return sock.recvfrom_into(buf, nbytes)
            except (BlockingIOError, InterruptedError):
                pass
            return await self._sock_wait(sock, False, self._sock_retry,
                                         sock, 'recvfrom_into', buf, nbytes)

    # -- sending -----------------------------------------------------------

    async def _sock_sendall_py(self, sock, data):
        """Send all of data on a connected socket; returns None. On error,
        how much was sent is unknown."""
        self._check_sock(sock)
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent == len(data):
            return None
        # The position lives in a list: the writer callback advances it.
        return await self._sock_wait(sock, True, self._sock_sendall_ready,
                                     sock, memoryview(data), [sent])

    def _sock_sendall_ready(self, fut, sock, view, pos):
        if fut.done():
            return
        start = pos[0]
        try:
            sent = sock.send(view[start:])
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            return
        start += sent
        if start == len(view):
            fut.set_result(None)
        else:
            pos[0] = start

    if hasattr(asyncio.AbstractEventLoop, 'sock_sendto'):
        async def sock_sendto(self, sock, data, address):
            """Send a datagram to address; returns the byte count."""
            self._check_sock(sock)
            try:
                return sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                pass
            return await self._sock_wait(sock, True, self._sock_retry,
                                         sock, 'sendto', data, 0, address)

    # -- connecting and accepting -------------------------------------------

    async def _ensure_resolved(self, address, *, family=0,
                               type=socket.SOCK_STREAM, proto=0, flags=0,
                               loop=None):
        # getaddrinfo() results for address, without a lookup when its host
        # is already a numeric IP address.
        host, port = address[:2]
        info = _numeric_addrinfo(host, port, family, type, proto, *address[2:])
        if info is not None:
            return [info]
        if loop is None:
            loop = self
        return await loop.getaddrinfo(host, port, family=family, type=type,
                                      proto=proto, flags=flags)

    async def sock_connect(self, sock, address):
        """Connect sock to address (resolved first for IP sockets)."""
        self._check_sock(sock)
        if sock.family == socket.AF_INET or (
                _HAS_IPv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type,
                proto=sock.proto, loop=self)
            address = resolved[0][4]
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            # In progress (EINPROGRESS, or EINTR: it goes on in the
            # background): the socket turns writable when it is done.
            pass
        else:
            return None
        fut = self._sock_wait(sock, True, self._sock_connect_ready, sock, address)
        try:
            return await fut
        finally:
            # No reference cycle through the exception's traceback.
            fut = None

    def _sock_connect_ready(self, fut, sock, address):
        if fut.done():
            return
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                raise OSError(err, f'Connect call failed {address}')
        except (BlockingIOError, InterruptedError):
            # Still in progress: the writer stays.
            pass
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)
        finally:
            fut = None

    async def sock_accept(self, sock):
        """Accept a connection on a listening socket: (conn, address), conn
        being non-blocking."""
        self._check_sock(sock)
        sock.fileno()  # the stdlib asks first: a non-socket fails there
        try:
            return self._accept_now(sock)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, self._sock_accept_ready, sock)

    @staticmethod
    def _accept_now(sock):
        conn, address = sock.accept()
        conn.setblocking(False)
        return conn, address

    def _sock_accept_ready(self, fut, sock):
        if fut.done():
            return
        try:
            result = self._accept_now(sock)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
