# Socket transports over uv_tcp_t and uv_pipe_t: TCPTransport (a
# StreamTransport opened over a TCP socket; PipeTransport, its Unix-socket
# twin, is in handles/pipe.pyx), the factory of both
# (_make_socket_transport) and SocketListener (a uv_poll_t on a listening
# TCP or Unix socket; it accepts the connections itself, each becoming a
# socket transport). The Python side (ourloop/_tcp.py, ourloop/_unix.py:
# create_connection, create_server, connect_accepted_socket and their Unix
# twins; ourloop/_server.py: Server) calls LoopCore._make_socket_transport()
# and LoopCore._listen_socket(), which land here.
#
# Who owns each fd (docs/architecture.md says it for every path):
# - a socket the caller passed (sock=, connect_accepted_socket, and the
#   listening sockets of a Server): the caller's socket object keeps its fd;
#   libuv gets a dup() of it, closed by uv_close(). The transport closes the
#   socket object after connection_lost(), as the stdlib does; a Server
#   closes its listening sockets in close().
# - a socket the loop made itself (create_connection without sock=) or
#   accepted: libuv owns the fd. get_extra_info('socket') is a TransportSocket
#   over a _BorrowedSocket (handles/transport.pyx): a socket object naming
#   the same fd, whose close() cannot close it, and which forgets the number
#   (detach) when the transport closes.

from cpython.contextvars cimport PyContext_CopyCurrent
from cpython.number cimport PyNumber_Index
from libc cimport errno as cerrno

from ourloop.includes cimport uv
from ourloop.includes.platform cimport ourloop_accept, socklen_t
from ourloop.includes.sockaddr cimport ourloop_inaddr, ourloop_inaddr_set

import errno
import os
import socket
from asyncio import constants, trsock
from asyncio.log import logger


cdef TCPTransport _tcp_open_fd(LoopCore loop, int fd):
    # A TCPTransport whose uv_tcp_t owns fd (on failure the fd is the
    # caller's to close).
    cdef uv.uv_tcp_t* tcp
    cdef TCPTransport t
    cdef int err
    loop._ensure_open()
    loop._fd_watchers.claim(fd)
    tcp = <uv.uv_tcp_t*>new_handle(sizeof(uv.uv_tcp_t))
    handle_inited(<uv.uv_handle_t*>tcp, uv.uv_tcp_init(loop.uvloop, tcp))
    err = fd_identity(<uv.uv_handle_t*>tcp, fd)
    handle_opened(<uv.uv_handle_t*>tcp, err if err < 0 else uv.uv_tcp_open(tcp, fd))
    t = TCPTransport.__new__(TCPTransport)
    t._attach_handle(loop, <uv.uv_stream_t*>tcp)
    return t


cdef class TCPTransport(StreamTransport):
    """A TCP connection: an asyncio.Transport over a libuv uv_tcp_t."""

    cdef _configure_socket(self, sock):
        # TCP_NODELAY, where the stdlib sets it.
        if sock is _LAZY_SOCK:
            family, type_, proto = self.sock_family, self.sock_type, self.sock_proto
        else:
            family, type_, proto = sock.family, sock.type, sock.proto
        if (family in (socket.AF_INET, socket.AF_INET6)
                and type_ == socket.SOCK_STREAM
                and proto == socket.IPPROTO_TCP):
            uv.uv_tcp_nodelay(<uv.uv_tcp_t*>self.uvstream, 1)


cdef TransportBase _open_socket_fd(LoopCore loop, int fd, int family):
    # A transport whose libuv handle owns fd: a uv_pipe_t for a Unix
    # socket, a uv_tcp_t otherwise.
    if family == socket.AF_UNIX:
        return _pipe_open_fd(loop, fd)
    return _tcp_open_fd(loop, fd)


cdef StreamTransport _make_socket_transport(LoopCore loop, sock, protocol, waiter, extra,
                                            server, bint adopt):
    # (LoopCore._make_socket_transport.) TCP and Unix stream sockets alike.
    return <StreamTransport>_adopt_or_dup(loop, sock, adopt, _open_socket_fd,
                                          (protocol, waiter, extra, server, adopt))


cdef class SocketListener(PollHandle):
    """A listening TCP or Unix socket: a uv_poll_t watches a dup() of it,
    and each readiness event accepts up to `backlog` connections natively
    (the stdlib's policy), each becoming a socket transport (TCPTransport,
    PipeTransport) with a protocol from protocol_factory. Out of fds (EMFILE & co.), the exception handler is
    told and accepting pauses for a second, as in the stdlib."""

    def __init__(self, *args, **kwargs):
        pass

    cdef on_events(self, int status, int events):
        # In uv_run: accept natively; protocols are made in the ready phase.
        cdef int _i, conn, code
        cdef ourloop_inaddr peer
        cdef socklen_t peer_len
        if self.closed:
            return
        for _i in range(self.backlog):
            # (The peer's address, as the stdlib's 'peername': an IP one is
            # kept, see TransportBase._setup_socket.)
            peer_len = sizeof(peer)
            conn = ourloop_accept(self.fd, <uv.sockaddr*>&peer, &peer_len)
            if conn < 0:
                code = cerrno.errno
                if code == cerrno.EAGAIN or code == cerrno.EINTR or code == cerrno.ECONNABORTED:
                    return
                self.loop._call_soon(self._accept_error, (OSError(code, os.strerror(code)),),
                                     self.context)
                if code in (cerrno.EMFILE, cerrno.ENFILE, cerrno.ENOBUFS, cerrno.ENOMEM):
                    # Accepting again at once would spin: wait a second.
                    PollHandle.stop(self)
                    self.retry = self.loop.call_later(
                        constants.ACCEPT_RETRY_DELAY, self._resume)
                return
            self._accept_one(conn, &peer, peer_len)

    cdef _accept_one(self, int conn, ourloop_inaddr* peer, socklen_t peer_len):
        cdef StreamTransport t
        try:
            t = <StreamTransport>_open_socket_fd(self.loop, conn, self.family)
        except BaseException as exc:
            os.close(conn)
            self.loop._call_soon(self._accept_error, (exc,), self.context)
            return
        ourloop_inaddr_set(&t.raddr, <uv.sockaddr*>peer, peer_len)
        # Ready phase, in the listener's context: what the stdlib's accept
        # callback does next, starting the connection's set-up as a task.
        self.loop._call_soon(self._start_accept, (t, conn), self.context)

    def _resume(self):
        self.retry = None
        if not self.closed and self.uvpoll is not NULL:
            self.start(uv.UV_READABLE)

    def _start_accept(self, StreamTransport t, int fd):
        # The stdlib runs each accepted connection's _accept_connection2 as
        # a task of the loop (made by its task factory, if any), whose
        # context is a copy of the listener's: the protocol factory runs in
        # that task (asyncio.current_task() is it), and connection_made()
        # and every later callback of the connection see the context
        # serving started in, plus what the factory set in it, never
        # another connection's changes.
        if self.closed or self.loop._closed:
            t._close_handle()
            return
        self.loop.create_task(self._accept_connection2(t, fd))

    async def _accept_connection2(self, StreamTransport t, int fd):
        # Per connection, in its task: the stdlib's _accept_connection2.
        protocol = None
        if self.closed or self.loop._closed:
            t._close_handle()
            return
        # The connection's socket object (a _BorrowedSocket) is made when
        # first needed (TransportBase._get_sock): an idle connection keeps
        # none.
        t.sock = _LAZY_SOCK
        t.sock_fd = fd
        t.sock_family = self.family
        t.sock_type = self.type
        t.sock_proto = self.proto
        t.borrowed = True
        try:
            protocol = self.protocol_factory()
            if self.tls is None:
                waiter = self.loop.create_future()
                t._setup(_LAZY_SOCK, protocol, waiter, None, self.server, True)
            else:
                # A TLS server: the loop's Python helper sets the transport
                # up under an SSL protocol (ourloop/_tls.py) and returns the
                # handshake's waiter.
                waiter = self.tls(t, t._get_sock(), protocol, self.server)
        except BaseException as exc:
            # Nothing was handed over: close the connection (the stdlib
            # leaves its socket to the garbage collector).
            t._close_handle()
            t._release_socket()
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                raise
            self._creation_failed(exc, protocol, t)
            return
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # Cancelled (or, under TLS, a failed handshake, which
            # ourloop/_tls.py has closed and reported already).
            if self.tls is None:
                t.close()
                self._creation_failed(exc, protocol, t)
            return
        if self.loop._debug_flag:
            logger.debug("%r got a new connection from %r: %r",
                         self.server, t._extra_dict().get('peername'), t)

    def _creation_failed(self, exc, protocol, transport):
        # Reported in debug mode only, as by the stdlib.
        if not self.loop._debug_flag or self.loop.is_closed():
            return
        context = {
            'message': 'Error on transport creation for incoming connection',
            'exception': exc,
            'transport': transport,
        }
        if protocol is not None:
            context['protocol'] = protocol
        self.loop.call_exception_handler(context)

    def _accept_error(self, exc):
        if isinstance(exc, OSError) and exc.errno in (
                errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            message = 'socket.accept() out of system resource'
        else:
            message = 'Error on accepting a connection'
        self.loop.call_exception_handler({
            'message': message,
            'exception': exc,
            'socket': trsock.TransportSocket(self.sock),
        })

    def stop_serving(self):
        """Stop accepting for good (the listening socket stays the caller's;
        the duplicate this listener watches is closed)."""
        self._uv_close()

    def _uv_close(self):
        cdef int fd = self.fd
        if self.closed:
            return
        self.closed = True
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        PollHandle.close(self)
        self.loop._io_handles.discard(self)
        if fd >= 0:
            os.close(fd)

    def __repr__(self):
        state = 'closed' if self.closed else 'listening'
        return f'<SocketListener {state} sock={self.sock!r}>'


cdef SocketListener _listen_socket(LoopCore loop, sock, protocol_factory, server, backlog, tls):
    # (LoopCore._listen_socket.)
    cdef SocketListener listener
    cdef int fd
    loop._ensure_open()
    # socket.listen() checks the argument as the stdlib's loop does (its
    # TypeError/OverflowError) and clamps a negative backlog to 0.
    sock.listen(backlog)
    fd = os.dup(sock.fileno())
    try:
        listener = SocketListener(loop, fd)
    except BaseException:
        os.close(fd)
        raise
    listener.sock = sock
    listener.family = sock.family
    listener.type = sock.type
    listener.proto = sock.proto
    listener.protocol_factory = protocol_factory
    listener.server = server
    listener.tls = tls
    listener.context = PyContext_CopyCurrent()
    # listen() accepted it, so it fits an int. Up to that many accepts per
    # readiness event, at least one (the stdlib's loop accepts none with a
    # backlog <= 0, and so never serves).
    listener.backlog = max(1, <int>PyNumber_Index(backlog))
    loop._io_handles.add(listener)
    try:
        listener.start(uv.UV_READABLE)
    except BaseException:
        listener._uv_close()
        raise
    return listener
