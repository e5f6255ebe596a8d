# Declarations of the cdef classes of the extension module ourloop._core.
# Their code lives in the .pyx files that _core.pyx includes (one per
# subject: loop.pyx, handle.pyx, handles/<kind>.pyx).

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t
from ourloop.includes cimport uv
from ourloop.includes.udp_io cimport ourloop_udp_addr
from ourloop.includes.sockaddr cimport ourloop_inaddr
from ourloop.includes.platform cimport socklen_t


cdef class Handle:
    cdef readonly object _callback
    cdef readonly tuple _args
    cdef object _ctx            # the context (Python: _context, get_context())
    cdef readonly LoopCore _loop
    cdef readonly bint _cancelled
    cdef readonly object _source_traceback
    cdef object _repr
    cdef object __weakref__

    cdef inline int _set(self, LoopCore loop, object callback, tuple args, object context) except -1
    cdef int _invoke(self) except -1
    cdef int _cancel(self) except -1
    cdef _report(self, BaseException exc)


cdef class TimerHandle(Handle):
    cdef readonly double _when
    cdef readonly bint _scheduled
    cdef object _vars           # captured context variables, until _ctx is made


cdef struct TimerEntry:
    double when
    uint64_t seq           # scheduling order, among timers of equal `when`
    PyObject* timer        # a strong reference to the TimerHandle


cdef class TimerQueue:
    cdef LoopCore loop
    cdef TimerEntry* heap
    cdef Py_ssize_t size
    cdef Py_ssize_t capacity
    cdef Py_ssize_t cancelled
    cdef uint64_t seq
    cdef uv.uv_timer_t* uvtimer

    cdef int push(self, TimerHandle timer) except -1
    cdef TimerHandle _pop(self)
    cdef void on_cancel(self, TimerHandle timer) noexcept
    cdef int prune(self) except -1
    cdef int _drop_cancelled(self) except -1
    cdef double next_when(self) noexcept
    cdef int move_due(self, double now, list ready) except -1
    cdef arm(self, uint64_t timeout_ms)
    cdef disarm(self)
    cdef clear(self)
    cdef close(self)


cdef class AsyncWakeup:
    cdef uv.uv_async_t* uvasync

    cdef int send(self) noexcept nogil
    cdef close(self)


cdef class PollHandle:
    cdef LoopCore loop
    cdef uv.uv_poll_t* uvpoll
    cdef readonly int fd
    cdef bint dirty
    cdef uint64_t dev
    cdef uint64_t ino

    cdef int identify(self) except -1
    cdef int check_file(self) noexcept
    cdef int start(self, int events) except -1
    cdef stop(self)
    cdef close(self)
    cdef close_with_fd(self)
    cdef on_events(self, int status, int events)
    cdef on_file_gone(self)


cdef struct FdPrepare:
    # FdWatchers' uv_prepare_t (first: close_and_free frees the struct),
    # the count of uv_run calls and the number of restarted watchers to
    # check before libuv polls.
    uv.uv_prepare_t handle
    size_t gen
    Py_ssize_t ndirty
    void* owner


cdef class FdWatch(PollHandle):
    cdef FdWatchers owner
    cdef readonly object fileobj
    cdef readonly Handle reader
    cdef readonly Handle writer
    cdef readonly int mask
    cdef readonly bint dead
    cdef size_t read_gen
    cdef size_t write_gen


cdef class SockFd


cdef class SockWait(Handle):
    # One direction (reading or writing) of one socket's sock_* operation
    # (sockops.pyx): a Handle the loop's ready queue runs when the socket
    # is ready, reused by the socket's next operation.
    cdef SockFd owner
    cdef int event             # 1: reading, 2: writing
    cdef int op                # what waits (0: nothing; 4: done, step queued)
    cdef bint queued           # on the ready queue, not run yet
    cdef object fut
    cdef object sock
    cdef object obj            # recv_into's buffer; sendall's data
    cdef Py_ssize_t n          # recv's size
    cdef Py_ssize_t pos        # sendall's position in view
    cdef Py_buffer view        # sendall's data, while has_view
    cdef bint has_view

    cdef int arm(self, int op, fut, sock) except -1
    cdef int attempt(self) except -1
    cdef disarm(self)
    cdef finish(self)
    cdef release(self, fut)


cdef class SockFd:
    # One fd in SockOps' readiness set (sockops.pyx).
    cdef int fd
    cdef unsigned int gen      # registration generation: in each token
    cdef int events            # what the set watches (OURLOOP_ET_IN/OUT)
    cdef object sockref        # a weak reference to the socket registered
    cdef SockWait reader
    cdef SockWait writer


cdef class SockOps(PollHandle):
    # The sock_* waits of one loop (sockops.pyx): an edge-triggered
    # readiness set (an fd), watched by this poll handle.
    cdef PyObject** recs       # fd -> SockFd (strong references)
    cdef Py_ssize_t cap
    cdef object context        # the context SockWaits run in
    cdef bint closed

    cdef SockFd _rec(self, int fd)
    cdef _drop_recs(self)
    cdef SockWait wait_for(self, int fd, sock, int event)
    cdef int set_events(self, SockFd rec, int events) except -1
    cdef bint _unwatched(self, SockFd rec) except -1
    cdef bint displace(self, int fd, int event) except -1
    cdef list armed_fds(self)
    cdef after_fork(self)


cdef class FdWatchers:
    cdef LoopCore loop
    cdef dict watches
    cdef dict parked
    cdef list dirty
    # fd -> transport (the stdlib's loop._transports): the socket
    # transports' in a C array (borrowed: see set_transport), what Python
    # code sets in `transports` (weak values)
    cdef readonly object transports
    cdef dict foreign
    cdef PyObject** tfd
    cdef Py_ssize_t tfd_cap
    cdef FdPrepare* prep
    # the loop's sock_* waits (sockops.pyx), made by the first one
    cdef SockOps sockops

    cdef lookup(self, fileobj)
    cdef bint _remove(self, FdWatch watch, int event) except -1
    cdef int _set_mask(self, FdWatch watch, int mask) except -1
    cdef _drop(self, FdWatch watch, bint park)
    cdef FdWatch _unpark(self, fd)
    cdef check_dirty(self)
    cdef close(self)
    cdef int set_transport(self, int fd, TransportBase t) except -1
    cdef void forget_transport(self, int fd, TransportBase t) noexcept
    cpdef object transport_of(self, object fd)


cdef class SignalWakeup(PollHandle):
    cdef object rsock
    cdef object wsock
    cdef object saved_fd
    cdef bint installed
    cdef bint pinned
    cdef object dispatch

    cdef install(self)
    cdef uninstall(self)


cdef class _SendfileState:
    # A loop.sendfile() in progress on a StreamTransport (handles/stream.pyx,
    # from _sendfile_begin to _sendfile_end): `waiter` is first the "write
    # buffer is empty" future, then the result future of the sendfile(2)
    # calls, made while `sending`; the file's fd, where and how much to
    # send, what was sent in how many calls; the poll handle on a dup of
    # the socket (made on the first EAGAIN).
    cdef bint sending
    cdef object waiter
    cdef int in_fd
    cdef long long offset
    cdef long long count
    cdef long long blocksize
    cdef long long total
    cdef long long calls
    cdef SendfileWatch watch


cdef class SendfileWatch(PollHandle):
    # loop.sendfile() on a StreamTransport: waits for its socket (a dup of
    # it) to be writable (handles/stream.pyx).
    cdef object transport
    cdef bint started


cdef class TransportBase:
    # What every transport shares (handles/transport.pyx); LoopCore knows
    # transports only through it. (The 4-byte fields are together, after
    # the 8-byte ones: no padding between them, so that a TCPTransport
    # fits pymalloc's 368-byte size class.)
    cdef LoopCore loop
    cdef readonly object _protocol
    # get_extra_info(): the dict (`_extra`), made when first needed. Until
    # then, for an IP socket: the socket object, whose 'socket', 'sockname'
    # (laddr) and 'peername' (raddr) wait in C; None: nothing set up yet.
    cdef object extra
    cdef ourloop_inaddr laddr
    cdef ourloop_inaddr raddr
    cdef readonly object _server
    # the socket (or pipe) object the transport keeps for its caller (its
    # fd, whether libuv owns that fd: sock_fd, borrowed below; see
    # _adopt_or_dup)
    cdef object sock
    # The contexts the stdlib's callbacks would run in (see "Contexts" at
    # the top of handles/stream.pyx): reads (the reader's registration),
    # write completions (the writer's), and the one a connection_lost() of
    # _force_close() is scheduled in (None: the current one).
    cdef object context
    cdef object wcontext
    cdef object lost_context
    cdef readonly Py_ssize_t _high_water
    cdef readonly Py_ssize_t _low_water
    # on LoopCore's flush queue (a chain: _flush_head, flush_next)
    cdef TransportBase flush_next
    cdef readonly bint _protocol_connected
    cdef int sock_fd
    cdef bint borrowed
    # an accepted connection's socket object is made when first needed
    # (sock is _LAZY_SOCK until then: _get_sock), with these
    cdef unsigned short sock_family
    cdef unsigned short sock_type
    cdef int sock_proto
    cdef readonly bint _closing
    cdef readonly int _conn_lost
    cdef readonly bint _paused
    # reading: libuv watches; a read is on the ready queue; readable
    cdef bint reading
    cdef bint read_scheduled
    cdef bint rx_ready
    cdef readonly bint _protocol_paused
    # on the flush queue
    cdef bint flush_queued
    # in LoopCore._io_handles (libuv may call it: see _hold_update)
    cdef bint held
    cdef object __weakref__
    # As on the stdlib's (Python) transports, an instance attribute shadows
    # a method: tests and wrappers do `transport.pause_reading = Mock()`,
    # and ourloop calls its public methods by attribute lookup.
    cdef dict __dict__

    cdef _setup_socket(self, sock, extra, bint borrowed)
    cdef _forget_fd(self)
    cdef object _get_sock(self)
    cdef dict _extra_dict(self)
    cdef _setup_failed(self, sock, bint adopt)
    cdef int _start_reading(self) except -1
    cdef _stop_reading(self)
    cdef bint _libuv_may_call(self) except -1
    cdef int _hold_update(self) except -1
    cdef _repr_io(self, list info)
    cdef _schedule_read(self)
    cdef int _run_read(self) except -1
    cdef bint _read_raised(self) except -1
    cdef _do_read_ready(self)
    cdef _on_read(self, ssize_t nread)
    cdef int _flush(self) except -1
    cdef _on_write_done(self, int status)
    cdef Py_ssize_t _buffer_size(self) except -1
    cdef _maybe_pause_protocol(self)
    cdef _maybe_resume_protocol(self)
    cdef _schedule_connection_lost(self, exc, context)
    cpdef _force_close(self, exc)
    cdef _drop_writes(self, exc)
    cdef bint _only_logged(self, exc) except -1
    cdef _fatal_error(self, exc, message)
    cdef _detach_server(self)
    cdef _close_handle(self)
    cdef _fd_moved(self)
    cdef _release_socket(self)


cdef class StreamTransport(TransportBase):
    # An asyncio.Transport over a libuv stream (handles/stream.pyx).
    cdef uv.uv_stream_t* uvstream
    # the fd of uvstream (-1: none), known when it is attached
    cdef int uvfd
    cdef bint buffered
    # the protocol is exactly asyncio.StreamReaderProtocol (reads may be fed
    # to its StreamReader natively: _feed_stream_reader)
    cdef bint stream_reader_proto
    cdef readonly bint _eof
    cdef bint shutdown_done
    # reading: EOF seen, an error libuv met
    cdef bint rx_eof
    cdef object rx_error
    # writes: pending is None, one bytes object, or a list of them (two
    # writes or more); inflight_objs keeps what a uv_write sends alive
    cdef object pending
    cdef Py_ssize_t pending_size
    # the contexts of a batch's later writes (see _queue_write)
    cdef list pending_contexts
    cdef uv.uv_write_t* wreq
    cdef object inflight_objs
    cdef Py_ssize_t inflight
    cdef bint resume_scheduled
    # loop.sendfile() (the zero-copy section of handles/stream.pyx):
    # sf_active from its start to its end (write() refused), and its state
    # meanwhile (None otherwise: a connection pays 8 bytes for it)
    cdef bint sf_active
    cdef _SendfileState sf
    # a subclass's own libuv watcher needs the transport held while the
    # handle is open (a write pipe's PipePeerWatch)
    cdef bint pinned

    cdef _attach_handle(self, LoopCore loop, uv.uv_stream_t* stream)
    cdef _write(self, data)
    cdef _queue_write(self, bytes data)
    cdef _configure_socket(self, sock)
    cdef int _handle_fd(self) except -2
    cdef _read_once(self)
    cdef bint _read_failed(self, ssize_t nbytes, int code) except -1
    cdef _read_data(self)
    cdef _read_into_protocol(self)
    cdef _read_into_tls(self, SSLProtocol proto, int fd)
    cdef int _call_failed(self, str message) except -1
    cdef inline Py_ssize_t _bufsize(self) noexcept
    cdef _after_drain(self, context)
    cdef _shutdown_write(self)
    cdef _send_before_drop(self)
    cdef _write_error(self, exc)
    cdef int _sf_step(self) except -1
    cdef int _sf_wait_writable(self, int out_fd) except -1
    cdef _sf_finish(self, exc)
    cdef _sf_release(self)


cdef class TCPTransport(StreamTransport):
    pass


cdef class PipeTransport(StreamTransport):
    pass


cdef class PipeEnd(StreamTransport):
    # what the read and write pipe transports share (handles/pipe.pyx)
    cdef readonly object _fileno
    cdef int unpollable       # errno the selector would refuse the fd with, or 0
    cdef int grow_to          # pipe size to ask for once the pipe is full, or 0
    cdef Py_ssize_t pipe_cap  # the pipe's capacity while grow_to is set

    cdef void _grow_pipe(self) noexcept


cdef class ReadPipeTransport(PipeEnd):
    # connect_read_pipe (handles/pipe.pyx)
    cdef bint read_direct     # the last read was large: read into a bytes object


cdef class PipePeerWatch(PollHandle):
    cdef object transport


cdef class WritePipeTransport(PipeEnd):
    # connect_write_pipe (handles/pipe.pyx)
    cdef int lost_writes
    cdef bint peer_event
    cdef PipePeerWatch peer_watch

    cdef _stop_peer_watch(self)
    cdef int _flush_direct(self) except -1


cdef class SocketListener(PollHandle):
    # A listening TCP or Unix socket (handles/tcp.pyx).
    cdef object sock
    cdef object family
    cdef object type
    cdef object proto
    cdef object protocol_factory
    cdef object server
    # None, or for a TLS server the loop's callable wrapping each accepted
    # connection in TLS (ourloop/_tls.py: TLSMixin._tls_accepted).
    cdef object tls
    cdef int backlog
    cdef readonly bint closed
    cdef object retry
    # The context current when serving started (Server._start_serving: in
    # create_server(), start_serving() or serve_forever()), as the stdlib's
    # accept callback captures it in add_reader(); each connection is set
    # up in a copy of it.
    cdef object context

    cdef _accept_one(self, int conn, ourloop_inaddr* peer, socklen_t peer_len)


cdef class _UDPPoll(PollHandle):
    # The poll handle of a non-IP datagram transport (handles/udp.pyx).
    cdef UDPTransport transport


cdef class UDPTransport(TransportBase):
    # asyncio.DatagramTransport over a uv_udp_t or a _UDPPoll
    # (handles/udp.pyx).
    cdef uv.uv_udp_t* uvudp
    cdef _UDPPoll poller
    # the fd the handle works on (-1 once closed) and its family
    cdef int fd
    cdef int family
    cdef readonly object _address
    cdef bint connected
    # sending: the datagram in libuv's queue, the ones waiting (deque of
    # (bytes, addr)), their size, an error to report
    cdef bytes uv_head
    cdef object queue
    cdef Py_ssize_t buffer_size
    cdef bint write_done_scheduled
    cdef object send_error
    # the last address sent to and received from, parsed (reused while
    # the same object comes again)
    cdef object tx_addr
    cdef ourloop_udp_addr tx_sa
    cdef object rx_addr
    cdef ourloop_udp_addr rx_sa
    # reading again without waiting for libuv (see handles/udp.pyx): the
    # queued read is such a guess; readiness-driven reads left before the
    # next guess, and that count after the last guess that found nothing
    cdef bint rx_guess
    cdef int rx_guess_skip
    cdef int rx_guess_backoff
    # datagrams read in one batch and not delivered yet: [data, addr, data,
    # addr, ...] from rx_held[rx_held_next] on, or None; and whether a
    # guess follows once they are delivered
    cdef list rx_held
    cdef Py_ssize_t rx_held_next
    cdef bint rx_guess_next

    cdef _poll_update(self, bint force)
    cdef _on_readable(self)
    cdef object _sender(self, ourloop_udp_addr* sa)
    cdef _deliver_datagram(self, data, addr)
    cdef _read_next(self)
    cdef _read_with_socket(self)
    cdef inline bint _queued(self)
    cdef object _send_now(self, data, addr)
    cdef object _send_with_socket(self, data, addr)
    cdef _enqueue(self, data, addr)
    cdef _want_writable(self)
    cdef _submit_head(self)
    cdef bint _resolve(self, ourloop_udp_addr* sa, addr) except -1
    cdef _schedule_write_done(self)


cdef class ChildWatch(PollHandle):
    # A child process watched through its pidfd (handles/process.pyx).
    cdef readonly int pid
    cdef object popen
    cdef object callback
    cdef object orphaned
    cdef object context
    cdef readonly bint done

    cdef _release(self)
    cdef _orphan(self, int pidfd)


cdef struct IOReady:
    # A read callback recorded inside uv_run (handles/transport.pyx): the
    # handle (its data: the transport) and what libuv reported.
    uv.uv_handle_t* handle
    ssize_t nread


cdef struct LoopExt:
    # What LoopCore.uvloop points to: the uv_loop_t first, then the loop's
    # one read buffer, shared by every stream of the loop (reads are copied
    # into a bytes object at once), then the read callbacks recorded inside
    # uv_run without the GIL (rq[:rq_len], room for rq_cap), which the loop
    # hands to their transports once it holds the GIL again.
    uv.uv_loop_t uvloop
    char* rbuf
    # a bytes object of a read that nobody kept, reused by the next read
    # (StreamTransport._read_data), and the size of its memory
    PyObject* spare
    Py_ssize_t spare_cap
    # room for a batch of datagrams (UDPTransport._do_read_ready, an
    # ourloop_udp_batch of udp_io.h), allocated on first use
    void* ubuf
    IOReady* rq
    size_t rq_len
    size_t rq_cap
    # which file each fd a handle of the loop was opened on named (see
    # ourloop_fdids in includes/compat.h)
    uv.ourloop_fdids fdids


cdef class LoopCore:
    cdef uv.uv_loop_t* uvloop
    cdef bint _closed
    cdef bint _stopping
    cdef bint _running
    cdef unsigned long _thread_ident
    cdef bint _debug_flag
    cdef public double slow_callback_duration
    cdef public object _task_factory
    cdef readonly object _current_handle
    cdef list _ready
    cdef list _ready_spare
    cdef TimerQueue _timers
    cdef AsyncWakeup _wakeup
    cdef SignalWakeup _sigwake
    cdef readonly FdWatchers _fd_watchers
    cdef object _pending_exception
    cdef set _io_handles
    # transports whose writes wait for the end of the iteration, chained
    # through TransportBase.flush_next (no list allocated per iteration)
    cdef TransportBase _flush_head
    cdef TransportBase _flush_tail
    # True when loop.time() is not LoopCore.time (overridden by a subclass,
    # or replaced on the instance or the class): the scheduling then asks
    # self.time(), as the stdlib's loop does.
    cdef bint _custom_time
    # the last iteration ran its callbacks without polling (_run_once)
    cdef bint _poll_skipped
    # {'loop': self}, the keyword arguments of asyncio's C Future
    # (create_future)
    cdef dict _future_kwargs
    # the probe poll before a sleeping one (_probe_poll): sleeping polls
    # left to make without a probe; the rationing level (2**level - 1
    # sleeping polls without a probe after each)
    cdef int _probe_skip
    cdef int _probe_level
    cdef object __weakref__

    cdef inline int _ensure_open(self) except -1
    cdef _check_custom_time(self)
    cdef inline double _now(self) except? -1.0
    cdef int _check_thread(self) except -1
    cdef Handle _call_soon(self, object callback, tuple args, object context)
    cdef TimerHandle _call_at(self, double when, object callback, tuple args, object context)
    cdef Handle _sched_soon(self, object callback, tuple args, object context)
    cdef Handle _sched_soon_threadsafe(self, object callback, tuple args, object context)
    cdef TimerHandle _sched_at(self, object when, object callback, tuple args, object context)
    cdef TimerHandle _sched_later(self, object delay, object callback, tuple args, object context)
    cdef _run_once(self)
    cdef _run_ready(self)
    cdef _run_handle_debug(self, Handle handle)
    cdef _flush_streams(self)
    cdef bint _probe_poll(self) except -1
    cdef _queue_flush(self, TransportBase t)
    cdef _clear_flush_queue(self)
    cdef _close_uv(self)
    cdef void _set_pending_exception(self, object exc) noexcept


cdef class SSLProtocol:
    # TLS over any asyncio transport (tls.pyx): the stdlib's 3.11+
    # asyncio.sslproto.SSLProtocol, with the per-record paths native.
    cdef readonly object _loop
    cdef readonly object _app_protocol
    cdef readonly bint _app_protocol_is_buffer
    cdef object app_get_buffer
    cdef object app_buffer_updated
    cdef readonly SSLTransport _app_transport
    cdef readonly bint _app_transport_created
    cdef readonly object _transport
    cdef bint raw_is_stream
    cdef readonly object _sslcontext
    cdef readonly bint _server_side
    cdef readonly object _server_hostname
    cdef readonly dict _extra
    cdef readonly object _waiter
    cdef list backlog
    cdef Py_ssize_t backlog_head
    cdef readonly Py_ssize_t _write_buffer_size
    cdef readonly object _ssl_handshake_timeout
    cdef readonly object _ssl_shutdown_timeout
    cdef readonly object _incoming
    cdef readonly object _outgoing
    cdef object sslobj
    cdef object sslread
    cdef object sslwrite
    cdef object sslpending
    cdef object in_write
    cdef object out_read
    cdef int state
    cdef int app_state
    cdef readonly int _conn_lost
    cdef readonly bint _ssl_writing_paused
    cdef readonly bint _app_reading_paused
    cdef readonly bint _ssl_reading_paused
    cdef readonly bint _eof_received
    cdef readonly bint _app_writing_paused
    cdef readonly Py_ssize_t _incoming_high_water
    cdef readonly Py_ssize_t _incoming_low_water
    cdef readonly Py_ssize_t _outgoing_high_water
    cdef readonly Py_ssize_t _outgoing_low_water
    cdef readonly object _handshake_start_time
    cdef readonly object _handshake_timeout_handle
    cdef readonly object _shutdown_timeout_handle
    # the raw transport reads into _ssl_buffer (get_buffer); plaintext for
    # a non-buffered app protocol is read into pbuf
    cdef readonly bytearray _ssl_buffer
    cdef readonly object _ssl_buffer_view
    cdef bytearray pbuf
    cdef object __weakref__

    cdef _bind_sslobj(self, sslobj)
    cdef _on_incoming(self)
    cdef _feed_raw(self, Py_ssize_t n)
    cdef _set_state_c(self, int new_state)
    cdef _wakeup_waiter_c(self, exc)
    cdef _start_handshake_c(self)
    cdef _do_handshake_c(self)
    cdef _on_handshake_complete_c(self, handshake_exc)
    cdef _start_shutdown_c(self)
    cdef _do_flush_c(self)
    cdef _do_shutdown_c(self)
    cdef _on_shutdown_complete_c(self, shutdown_exc)
    cdef _abort_c(self, exc)
    cdef _write_one(self, data)
    cdef _write_many(self, list_of_data)
    cdef int _backlog_append(self, data) except -1
    cdef _do_write_c(self)
    cdef _process_outgoing_c(self)
    cdef _do_read_c(self)
    cdef _read_buffered(self)
    cdef _read_copied(self)
    cdef bint _nothing_left(self) except -1
    cdef _call_eof_received_c(self)
    cdef _control_app_writing_c(self)
    cdef _control_app_writing_size(self, Py_ssize_t size)
    cdef _control_ssl_reading_c(self)
    cdef Py_ssize_t _write_size(self) except -1
    cdef _raw_force_close(self, exc)
    cdef _fatal_error_c(self, exc, message)


cdef class SSLTransport:
    # the transport an app protocol gets over TLS (tls.pyx)
    cdef readonly object _loop
    cdef SSLProtocol proto
    cdef public bint _closed
    cdef object __weakref__
    cdef dict __dict__

    cdef SSLProtocol _p(self)
