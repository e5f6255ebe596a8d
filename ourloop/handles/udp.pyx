# Datagram sockets: UDPTransport, the asyncio.DatagramTransport of
# loop.create_datagram_endpoint() (the Python side is ourloop/_udp.py, which
# calls LoopCore._make_datagram_transport(), which lands here).
#
# Two handle kinds, one transport class:
# - AF_INET / AF_INET6: a uv_udp_t opened on the socket's fd.
# - every other family (AF_UNIX datagram sockets above all): a uv_poll_t
#   (_UDPPoll, a PollHandle). libuv 1.44's uv_udp_open accepts an AF_UNIX
#   socket, but its send queue (uv_udp_send) passes sizeof(struct
#   sockaddr_un) as the address length, which names another address for a
#   Linux abstract-namespace destination, and it refuses (or aborts on)
#   other families; so those sockets are watched with a poll handle and
#   their queue is ours.
#
# Reads. As with streams (handles/stream.pyx), libuv only reports
# readiness: uv_udp_recv_start gets an alloc callback that gives an empty
# buffer, which libuv answers with recv_cb(UV_ENOBUFS) without reading (the
# poll handle reports UV_READABLE). The transport then queues itself on the
# ready queue once, and in the ready phase does what the stdlib's reader
# callback does: one datagram of at most 256 KiB (the stdlib's max_size),
# then protocol.datagram_received(data, addr), or
# protocol.error_received(exc) for an OSError. One datagram per turn of
# the loop, as the stdlib, so the callbacks a datagram_received() schedules
# run before the next datagram is delivered. The kernel is asked for up to
# 8 datagrams at once (recvmmsg, into the loop's batch buffer LoopExt.ubuf;
# one recvfrom where the platform layer has no recvmmsg): the ones beyond
# the first are held by the transport (rx_held) and delivered one per turn
# before the socket is read again (after resume_reading() too; dropped
# with the socket at close). After a datagram the transport queues itself
# for the next turn without waiting for libuv to report the socket
# readable again (a read until EAGAIN spread over turns: one epoll_wait per
# burst, not per datagram; docs/performance.md, "UDP"). The address is
# built natively as the socket module builds it (an address equal to the
# previous one reuses its object); other families than IP and Unix go
# through the socket object's recvfrom().
#
# Writes. sendto() tries the system call at once (send() on a connected
# socket, sendto() otherwise), natively for bytes-like data and a numeric
# IP address or a str/bytes Unix path; any other address goes through the
# socket object's sendto(), so that its errors (and its host name
# resolution) are the socket module's. An OSError goes to
# protocol.error_received() right away, as in the stdlib. When the kernel
# would block (EAGAIN), the datagram is queued, and so is every later one
# until the queue is empty again (order is kept). (bytes, addr) pairs wait
# in the transport's deque, and the transport waits for writability:
# - uv_udp_t: the first queued datagram goes to uv_udp_send(), which libuv
#   sends once the socket is writable; its callback (in uv_run) queues
#   _sendto_ready. Only one datagram at a time is in libuv's queue: libuv
#   sends its queue with sendmmsg() and fails the whole batch when the
#   first datagram fails, where the stdlib fails that one only.
# - uv_poll_t: the poll handle also watches for writability.
# Then the ready phase does what the stdlib's _sendto_ready does: sends
# what the kernel takes (natively), error_received() for an OSError,
# resume_writing() below the low-water mark, and completes a close().
# get_write_buffer_size() is the stdlib's count of queued bytes (3.13+: 8
# more per datagram for its header, taken off again when it leaves).
#
# Who owns each fd (as for TCP, handles/tcp.pyx):
# - a socket the caller passed (sock=): the caller's socket object keeps its
#   fd and stays the transport's 'socket'; libuv (or the poll handle) works
#   on a dup() of it, closed when the handle closes. The transport closes
#   the caller's socket object after connection_lost(), as the stdlib does.
# - a socket the loop made (create_datagram_endpoint without sock=): its fd
#   is detached from the socket object and owned by the uv_udp_t (closed by
#   uv_close) or by the transport for a poll handle (closed right after the
#   poll handle). get_extra_info('socket') is a TransportSocket over a
#   _BorrowedSocket (handles/transport.pyx): same fd, close() does nothing, and it
#   forgets the number when the transport closes.
# - uv_udp_open sets SO_REUSEADDR on the socket; the transport puts the
#   option back as it was (the stdlib never sets it for datagrams).
#
# Lifetime (as for streams, handles/stream.pyx): the loop keeps the
# transport alive (LoopCore._io_handles) while libuv may call it: while it
# reads, while a datagram is in libuv's queue (uv_head) or waits for
# writability; _hold_update() keeps that up to date. Paused with nothing
# queued, it is collected once nothing else refers to it, as the stdlib's.
# loop.close() calls _uv_close() for a transport still open (no
# connection_lost, as with the stdlib): the handle goes, the caller's socket
# stays open until the transport is closed or collected; collected with its
# socket open, it warns ResourceWarning("unclosed transport ...") and
# closes it (the stdlib's __del__).

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.contextvars cimport PyContext_CopyCurrent
from libc cimport errno as cerrno
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from ourloop.includes cimport uv
from ourloop.includes.udp_io cimport (
    ourloop_udp_addr, ourloop_udp_parse, ourloop_udp_pyaddr, ourloop_udp_recvbatch,
    ourloop_udp_sendto, ourloop_udp_get_reuseaddr, ourloop_udp_clear_reuseaddr, ourloop_udp_sa,
    OURLOOP_UDP_BATCH, ourloop_udp_batch, ourloop_udp_batch_new, ourloop_udp_batch_data,
    ourloop_udp_addr_eq,
)

import os
import socket
import sys
from collections import deque
from asyncio import futures
from asyncio.transports import (
    DatagramTransport as _asyncio_DatagramTransport,
    ReadTransport as _asyncio_ReadTransport,
    Transport as _asyncio_Transport,
    WriteTransport as _asyncio_WriteTransport,
)


cdef enum:
    _UDP_MAX_SIZE = 262144          # the stdlib's max_size for recvfrom()


cdef inline ourloop_udp_batch* _udp_batch(LoopCore loop) except NULL:
    # The loop's room for a batch of datagrams (LoopExt.ubuf), made on
    # first use: OURLOOP_UDP_BATCH slots of _UDP_MAX_SIZE (mostly never
    # touched, so never resident) and their recvmmsg headers.
    cdef LoopExt* ext = <LoopExt*>loop.uvloop
    if ext.ubuf is NULL:
        ext.ubuf = ourloop_udp_batch_new(_UDP_MAX_SIZE)
        if ext.ubuf is NULL:
            raise MemoryError()
    return <ourloop_udp_batch*>ext.ubuf

# 3.11+: datagram transports can pause reading.
cdef bint _UDP_CAN_PAUSE = sys.version_info >= (3, 11)
# 3.13+: an empty datagram is sent (before: dropped); a queued datagram
# counts 8 header bytes in the write buffer size.
cdef bint _UDP_SEND_EMPTY = sys.version_info >= (3, 13)
cdef Py_ssize_t _UDP_HEADER = 8 if sys.version_info >= (3, 13) else 0


# isinstance(t, asyncio.DatagramTransport) holds for ourloop's transport,
# and isinstance(t, asyncio.Transport) too, as for the stdlib's (whose
# datagram transport also derives from Transport).
_UDPTransportABC = type('UDPTransport',
                        (_asyncio_DatagramTransport, _asyncio_Transport),
                        {'__slots__': (), '__module__': __name__})


cdef void _udp_recv(uv.uv_udp_t* handle, ssize_t nread, const uv.uv_buf_t* buf,
                    const uv.sockaddr* addr, unsigned flags) noexcept nogil:
    # With the empty buffer of _stream_alloc_none, libuv only says
    # "readable" (UV_ENOBUFS) and reads nothing.
    if nread == uv.UV_ENOBUFS:
        _transport_readable(<uv.uv_handle_t*>handle, nread)


cdef void _udp_sent(uv.uv_udp_send_t* req, int status) noexcept nogil:
    _transport_write_done(req, req.data, status)


cdef class _UDPPoll(PollHandle):
    # The poll handle of a non-IP datagram transport.

    cdef on_events(self, int status, int events):
        cdef UDPTransport t = self.transport
        if t is None:
            return
        if status < 0:
            # libuv stopped the handle: let the system calls report the
            # error, and watch again.
            events = uv.UV_READABLE | uv.UV_WRITABLE
            t._poll_update(True)
        if events & uv.UV_READABLE and t.reading:
            t._on_readable()
        if events & uv.UV_WRITABLE:
            if t.queue:
                t._schedule_write_done()
            else:
                t._poll_update(False)

    cdef on_file_gone(self):
        # Our own fd cannot be closed by others, unless by mistake (an
        # os.close() on a number it does not own): stop watching it.
        PollHandle.close(self)


cdef class UDPTransport(TransportBase):
    """A datagram endpoint: an asyncio.DatagramTransport over a libuv
    uv_udp_t (IPv4, IPv6) or uv_poll_t (other families)."""

    _made_by = 'loop.create_datagram_endpoint()'

    def __cinit__(self):
        self.fd = -1

    @property
    def __class__(self):
        # See _UDPTransportABC; type(t) stays ourloop's class.
        return _UDPTransportABC

    max_size = _UDP_MAX_SIZE

    # -- opening (per endpoint) --------------------------------------------

    def _setup(self, sock, protocol, address, waiter, extra, bint borrowed):
        # The stdlib's _SelectorDatagramTransport.__init__.
        self._setup_socket(sock, extra, borrowed)
        self.connected = bool(self._extra_dict()['peername'])
        self._address = address
        self.set_protocol(protocol)
        self.loop._call_soon(protocol.connection_made, (self,), None)
        # Reading starts once connection_made() has run (the stdlib's
        # call_soon(_add_reader)).
        self.loop._call_soon(self._start_reading_soon, (), None)
        if waiter is not None:
            self.loop._call_soon(futures._set_result_unless_cancelled,
                                 (waiter, None), None)

    def _start_reading_soon(self):
        if self._closing or self._paused:
            return
        self._start_reading()

    cdef int _start_reading(self) except -1:
        cdef int err
        if self.reading:
            return 0
        if self.uvudp is not NULL:
            err = uv.uv_udp_recv_start(self.uvudp, _stream_alloc_none, _udp_recv)
            if err < 0:
                raise uv_error(err)
            self.reading = True
        elif self.poller is not None:
            self.reading = True
            self._poll_update(False)
        self._hold_update()
        if self.rx_held is not None:
            # (resume_reading()) Datagrams read before the pause come
            # first; libuv will not report them.
            self.rx_ready = True
            self.rx_guess = False
            self._schedule_read()
        return 0

    cdef _stop_reading(self):
        if not self.reading:
            return
        self.reading = False
        if self.uvudp is not NULL:
            uv.uv_udp_recv_stop(self.uvudp)
        elif self.poller is not None:
            self._poll_update(False)
        self._hold_update()

    cdef bint _libuv_may_call(self) except -1:
        # (TransportBase._hold_update; see the top of this file.)
        return self.uv_head is not None or (
            self.fd >= 0 and (self.reading or bool(self.queue)))

    cdef _poll_update(self, bint force):
        # The poll handle watches what is wanted: reads while reading, and
        # writability while datagrams are queued.
        cdef int events = 0
        cdef _UDPPoll poller = self.poller
        if poller is None or poller.uvpoll is NULL:
            return
        if self.reading:
            events |= uv.UV_READABLE
        if self.queue:
            events |= uv.UV_WRITABLE
        if events:
            poller.start(events)
        else:
            poller.stop()

    cdef _repr_io(self, list info):
        if self.loop is not None and not self.loop._closed and self.fd >= 0:
            info.append('read=polling' if self.reading else 'read=idle')
            state = 'polling' if self._queued() else 'idle'
            info.append(f'write=<{state}, bufsize={self.buffer_size}>')

    # -- reading -----------------------------------------------------------

    cdef _on_readable(self):
        # In uv_run: a datagram waits; it is read in the ready phase.
        self.rx_ready = True
        self.rx_guess = False
        self._schedule_read()

    cdef _do_read_ready(self):
        # The stdlib's _read_ready: one datagram per turn. The kernel is
        # asked for up to OURLOOP_UDP_BATCH at once (recvmmsg); those beyond
        # the first are held (rx_held) and delivered one per turn before
        # the socket is read again, so the protocol sees what the stdlib's
        # one recvfrom() per turn would show it, in the same order.
        cdef ourloop_udp_batch* batch
        cdef int n, i, code
        cdef list held
        if self._conn_lost or self._closing or self._paused or not self.rx_ready:
            return
        self.rx_ready = False
        if self.fd < 0:
            return
        held = self.rx_held
        if held is not None:
            i = <int>self.rx_held_next
            data = held[i]
            addr = held[i + 1]
            if i + 2 >= len(held):
                self.rx_held = None
            else:
                self.rx_held_next = i + 2
            self._deliver_datagram(data, addr)
            return
        if self.family != socket.AF_INET and self.family != socket.AF_INET6 \
                and self.family != socket.AF_UNIX:
            self._read_with_socket()
            return
        batch = _udp_batch(self.loop)
        n = ourloop_udp_recvbatch(batch, self.fd, self.family)
        if n < 0:
            code = cerrno.errno
            if code == cerrno.EAGAIN or code == cerrno.EINTR:
                if self.rx_guess:
                    # Nothing came: guess again only after 1, 2, 4... up
                    # to 16 datagrams libuv reported.
                    self.rx_guess = False
                    self.rx_guess_backoff = min(self.rx_guess_backoff * 2 or 1, 16)
                    self.rx_guess_skip = self.rx_guess_backoff
                return
            self._protocol.error_received(OSError(code, os.strerror(code)))
            return
        # Another datagram may wait once these are delivered: read again
        # then, without waiting for libuv to poll and report it. A guess
        # that finds nothing (EAGAIN) costs a system call: after one, the
        # next datagrams wait for libuv's report (backing off to one guess
        # per 16 datagrams while datagrams come one at a time). A full
        # batch says more are likely: a guess follows.
        if self.rx_guess:
            self.rx_guess_backoff = 0
            self.rx_guess_next = True
        elif n == OURLOOP_UDP_BATCH:
            self.rx_guess_next = True
        elif self.rx_guess_skip:
            self.rx_guess_skip -= 1
            self.rx_guess_next = False
        else:
            self.rx_guess_next = True
        self.rx_guess = False
        data = PyBytes_FromStringAndSize(ourloop_udp_batch_data(batch, 0),
                                         <Py_ssize_t>batch.lens[0])
        addr = self._sender(&batch.addrs[0])
        if n > 1:
            held = []
            for i in range(1, n):
                held.append(PyBytes_FromStringAndSize(ourloop_udp_batch_data(batch, i),
                                                      <Py_ssize_t>batch.lens[i]))
                held.append(self._sender(&batch.addrs[i]))
            self.rx_held = held
            self.rx_held_next = 0
        self._deliver_datagram(data, addr)

    cdef object _sender(self, ourloop_udp_addr* sa):
        # The sender's address object (the previous one while it repeats).
        if self.rx_addr is not None and ourloop_udp_addr_eq(sa, &self.rx_sa):
            return self.rx_addr
        addr = ourloop_udp_pyaddr(sa)
        memcpy(&self.rx_sa, sa, sizeof(ourloop_udp_addr))
        self.rx_addr = addr
        return addr

    cdef _deliver_datagram(self, data, addr):
        # datagram_received(), then the next read is queued behind the
        # callbacks it scheduled (as the stdlib's next poll would find the
        # socket, or here the held datagrams, still readable), even if it
        # raised: the held datagrams have no libuv report to wait for.
        try:
            self._protocol.datagram_received(data, addr)
        finally:
            self._read_next()

    cdef _read_next(self):
        if self._closing or self._paused or self._conn_lost or self.read_scheduled:
            return
        if self.rx_held is not None:
            self.rx_guess = False
        elif self.rx_guess_next:
            self.rx_guess = True
        else:
            return
        self.rx_ready = True
        self._schedule_read()

    cdef _read_with_socket(self):
        # Families whose addresses only the socket module knows.
        try:
            data, addr = self.sock.recvfrom(_UDP_MAX_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal read error on datagram transport')
            return
        self._protocol.datagram_received(data, addr)

    def pause_reading(self):
        """Stop delivering datagrams to the protocol until resume_reading()
        (Python 3.11+, as the stdlib)."""
        if not _UDP_CAN_PAUSE:
            return _asyncio_ReadTransport.pause_reading(self)
        TransportBase.pause_reading(self)

    def resume_reading(self):
        """Deliver datagrams to the protocol again (Python 3.11+)."""
        if not _UDP_CAN_PAUSE:
            return _asyncio_ReadTransport.resume_reading(self)
        TransportBase.resume_reading(self)

    def is_reading(self):
        """Return True if datagrams are delivered to the protocol (Python
        3.11+)."""
        if not _UDP_CAN_PAUSE:
            return _asyncio_ReadTransport.is_reading(self)
        return TransportBase.is_reading(self)

    # -- writing -----------------------------------------------------------

    cdef inline bint _queued(self):
        if self.uv_head is not None:
            return True
        if self.queue:
            return True
        return False

    def sendto(self, data, addr=None):
        """Send data (bytes-like) to addr, or to the connected address
        (remote_addr) when addr is None; an empty datagram is sent on
        3.13+. Queued when the kernel would block."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if not _UDP_SEND_EMPTY and not data:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(
                    f'Invalid address: must be None or {self._address}')
            addr = self._address
        if self._conn_lost and self._address:
            self._conn_lost = _lost_write(self._conn_lost, 'socket.send() raised exception.')
            return
        if not self._queued():
            # Attempt to send it right away first.
            try:
                failed = self._send_now(data, addr)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal write error on datagram transport')
                return
            if failed is None:
                return
            if not isinstance(failed, (BlockingIOError, InterruptedError)):
                self._protocol.error_received(failed)
                return
        self._enqueue(data, addr)

    cdef object _send_now(self, data, addr):
        # One send: None if it left, else the OSError the socket module
        # would raise (BlockingIOError: the kernel would block). Raises what
        # the socket module raises for a bad address or data.
        cdef Py_buffer view
        cdef ssize_t n
        cdef ourloop_udp_addr* sa = NULL
        if self.fd < 0:
            # The stdlib's socket is gone after connection_lost().
            raise AttributeError("'NoneType' object has no attribute "
                                 + ("'send'" if self.connected else "'sendto'"))
        if not self.connected:
            if addr is not self.tx_addr or addr is None:
                if not ourloop_udp_parse(&self.tx_sa, self.family, addr):
                    self.tx_addr = None
                    return self._send_with_socket(data, addr)
                self.tx_addr = addr
            sa = &self.tx_sa
        if type(data) is bytes:
            n = ourloop_udp_sendto(self.fd, PyBytes_AS_STRING(data),
                                   <size_t>PyBytes_GET_SIZE(data), sa)
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            n = ourloop_udp_sendto(self.fd, <const char*>view.buf, <size_t>view.len, sa)
            PyBuffer_Release(&view)
        if n < 0:
            code = cerrno.errno
            return OSError(code, os.strerror(code))
        return None

    cdef object _send_with_socket(self, data, addr):
        # Addresses the socket module must parse or resolve itself.
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            return exc
        return None

    cdef _enqueue(self, data, addr):
        # The kernel would block: the datagram waits, in order, until the
        # socket is writable.
        cdef bytes payload = bytes(data)
        if not self._queued():
            # Where the stdlib's sendto() registers its writer.
            self.wcontext = PyContext_CopyCurrent()
        if self.queue is None:
            self.queue = deque()
        self.queue.append((payload, addr))
        self.buffer_size += PyBytes_GET_SIZE(payload) + _UDP_HEADER
        if self.uvudp is not NULL:
            if self.uv_head is None:
                self._submit_head()
        elif len(self.queue) == 1:
            self._poll_update(False)
        self._hold_update()
        self._maybe_pause_protocol()

    cdef _want_writable(self):
        # Be told when the socket is writable while datagrams wait.
        if self.uvudp is not NULL:
            if self.uv_head is None:
                self._submit_head()
        else:
            self._poll_update(False)

    cdef _submit_head(self):
        # uv_udp_t: the first queued datagram goes to uv_udp_send(), and
        # libuv sends it when the socket is writable; its callback lets
        # _sendto_ready() send the rest. Only one datagram is ever in
        # libuv's queue: libuv fails a whole sendmmsg() batch when its first
        # datagram fails, where the stdlib fails only that one.
        cdef uv.uv_udp_send_t* req
        cdef uv.uv_buf_t buf
        cdef ourloop_udp_addr sa
        cdef const uv.sockaddr* target
        cdef bytes payload
        cdef int err
        while self.queue and self.uv_head is None and self.uvudp is not NULL:
            payload, addr = self.queue[0]
            target = NULL
            if not self.connected:
                if not ourloop_udp_parse(&sa, self.family, addr) \
                        and not self._resolve(&sa, addr):
                    # Only the socket module can tell what is wrong with
                    # this address: let it try (and raise).
                    self.queue.popleft()
                    self.buffer_size -= PyBytes_GET_SIZE(payload) + _UDP_HEADER
                    try:
                        failed = self._send_with_socket(payload, addr)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._fatal_error(exc, 'Fatal write error on datagram transport')
                        return
                    if failed is not None:
                        self._protocol.error_received(failed)
                    continue
                target = ourloop_udp_sa(&sa)
            req = <uv.uv_udp_send_t*>malloc(sizeof(uv.uv_udp_send_t))
            if req is NULL:
                raise MemoryError()
            buf.base = PyBytes_AS_STRING(payload)
            buf.len = <size_t>PyBytes_GET_SIZE(payload)
            req.data = <void*>self
            err = uv.uv_udp_send(req, self.uvudp, &buf, 1, target, _udp_sent)
            if err < 0:
                free(req)
                self.queue.popleft()
                self.buffer_size -= PyBytes_GET_SIZE(payload) + _UDP_HEADER
                self._protocol.error_received(uv_error(err))
                continue
            self.queue.popleft()
            self.uv_head = payload

    cdef bint _resolve(self, ourloop_udp_addr* sa, addr) except -1:
        # A (host name, port) address, resolved as socket.sendto() does.
        try:
            infos = socket.getaddrinfo(addr[0], addr[1], self.family,
                                       socket.SOCK_DGRAM)
            return ourloop_udp_parse(sa, self.family, infos[0][4]) == 1
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            return False

    cdef _on_read(self, ssize_t nread):
        # In uv_run: readable (_udp_recv passes UV_ENOBUFS only).
        self._on_readable()

    cdef _on_write_done(self, int status):
        # In uv_run: libuv sent the head datagram (or failed, or the close
        # cancelled it).
        payload = self.uv_head
        self.uv_head = None
        # (The caller holds a reference: letting go of the loop's is safe.)
        self._hold_update()
        if self._conn_lost or self.loop._closed or status == uv.UV_ECANCELED:
            return
        self.buffer_size -= PyBytes_GET_SIZE(payload) + _UDP_HEADER
        if status < 0:
            self.send_error = uv_error(status)
        self._schedule_write_done()

    cdef _schedule_write_done(self):
        if not self.write_done_scheduled:
            self.write_done_scheduled = True
            self.loop._call_soon(self._sendto_ready, (), self.wcontext)

    def _sendto_ready(self):
        # Ready phase, the socket being writable: the stdlib's
        # _sendto_ready (send what can be sent, in order).
        self.write_done_scheduled = False
        if self._conn_lost:
            return
        exc = self.send_error
        if exc is not None:
            # The head datagram failed; the others go on later.
            self.send_error = None
            self._want_writable()
            self._protocol.error_received(exc)
            return
        if self.uv_head is not None:
            return
        while self.queue:
            data, addr = self.queue.popleft()
            self.buffer_size -= PyBytes_GET_SIZE(data) + _UDP_HEADER
            try:
                failed = self._send_now(data, addr)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal write error on datagram transport')
                return
            if failed is None:
                continue
            if isinstance(failed, (BlockingIOError, InterruptedError)):
                self.queue.appendleft((data, addr))   # try again later
                self.buffer_size += PyBytes_GET_SIZE(data) + _UDP_HEADER
                break
            self._want_writable()
            self._protocol.error_received(failed)
            return
        self._want_writable()
        self._hold_update()
        self._maybe_resume_protocol()
        if not self._queued() and self._closing and not self._conn_lost:
            self._conn_lost += 1
            self._call_connection_lost(None)

    def get_write_buffer_size(self):
        """Bytes queued and not yet sent (3.13+: 8 more per datagram, its
        header, as the stdlib counts)."""
        return self.buffer_size

    cdef Py_ssize_t _buffer_size(self) except -1:
        return self.buffer_size

    # What the stdlib's datagram transport inherits from asyncio.Transport.

    def write(self, data):
        """Not for datagrams (NotImplementedError, as the stdlib)."""
        return _asyncio_WriteTransport.write(self, data)

    def writelines(self, list_of_data):
        """Not for datagrams (NotImplementedError, as the stdlib)."""
        return _asyncio_WriteTransport.writelines(self, list_of_data)

    def write_eof(self):
        """Not for datagrams (NotImplementedError, as the stdlib)."""
        return _asyncio_WriteTransport.write_eof(self)

    def can_write_eof(self):
        """Not for datagrams (NotImplementedError, as the stdlib)."""
        return _asyncio_WriteTransport.can_write_eof(self)

    # -- closing -----------------------------------------------------------

    def close(self):
        """Close: queued datagrams are still sent, then connection_lost(None)
        is called; no more datagrams are delivered."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._queued():
            self._schedule_connection_lost(None, None)

    def abort(self):
        """Close at once: queued datagrams are dropped (those libuv already
        holds may still leave until connection_lost())."""
        self._force_close(None)

    cdef _drop_writes(self, exc):
        # _force_close(): the queue is dropped (the stdlib's buffer).
        if self.queue:
            self.queue.clear()
        self.buffer_size = 0
        self._poll_update(False)
        self._hold_update()

    cdef _close_handle(self):
        # uv_udp_t: libuv closes the fd (queued sends are cancelled first);
        # poll handle: the transport closes it.
        cdef uv.uv_udp_t* udp = self.uvudp
        cdef _UDPPoll poller = self.poller
        cdef int fd = self.fd
        self.reading = False
        self.fd = -1
        self.rx_held = None     # (dropped with the socket, as the kernel's)
        if udp is not NULL:
            self.uvudp = NULL
            # No receive callback from now on; a datagram libuv still
            # holds is cancelled while the loop holds the transport.
            udp.data = NULL
            if not uv.uv_is_closing(<uv.uv_handle_t*>udp):
                # (An fd number that now names another file is not closed.)
                uv.ourloop_release_moved_fd(&(<LoopExt*>udp.loop).fdids,
                                            <uv.uv_handle_t*>udp)
                uv.uv_close(<uv.uv_handle_t*>udp, _io_handle_closed)
        elif poller is not None:
            self.poller = None
            poller.transport = None
            PollHandle.close(poller)
            if fd >= 0 and poller.check_file() == 0:
                # (Not if the user closed it, and not a number that now
                # names another file: the user closed it, then reused it.)
                os.close(fd)
        self._hold_update()

    def __dealloc__(self):
        if self.uvudp is not NULL:
            self.uvudp.data = NULL
            close_and_free(<uv.uv_handle_t*>self.uvudp)
            self.uvudp = NULL


# -- making transports (per endpoint) -----------------------------------------


cdef TransportBase _udp_open_fd(LoopCore loop, int fd, int family):
    # A transport whose handle owns fd from now on (on failure the fd is
    # still the caller's to close).
    cdef UDPTransport t
    cdef uv.uv_udp_t* udp
    cdef _UDPPoll poller
    cdef int reuse
    cdef int err
    loop._ensure_open()
    t = UDPTransport.__new__(UDPTransport)
    t.family = family
    if family == socket.AF_INET or family == socket.AF_INET6:
        loop._fd_watchers.claim(fd)
        udp = <uv.uv_udp_t*>new_handle(sizeof(uv.uv_udp_t))
        handle_inited(<uv.uv_handle_t*>udp, uv.uv_udp_init(loop.uvloop, udp))
        udp.data = NULL
        reuse = ourloop_udp_get_reuseaddr(fd)
        err = fd_identity(<uv.uv_handle_t*>udp, fd)
        handle_opened(<uv.uv_handle_t*>udp, err if err < 0 else uv.uv_udp_open(udp, fd))
        if reuse == 0:
            # uv_udp_open turned SO_REUSEADDR on; the stdlib never does.
            ourloop_udp_clear_reuseaddr(fd)
        udp.data = <void*>t
        t.uvudp = udp
    else:
        poller = _UDPPoll(loop, fd)
        poller.transport = t
        t.poller = poller
    t.loop = loop
    t.fd = fd
    return t


cdef UDPTransport _make_datagram_transport(LoopCore loop, sock, protocol, address,
                                           waiter, extra, bint adopt):
    # (LoopCore._make_datagram_transport.)
    return <UDPTransport>_adopt_or_dup(loop, sock, adopt, _udp_open_fd,
                                       (protocol, address, waiter, extra, adopt))
