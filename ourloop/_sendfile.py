"""loop.sendfile() and loop.sock_sendfile().

SendfileMixin is one of ourloop.Loop's bases. Everything here runs once per
call (argument checks, choosing sendfile(2) or the read/write fallback, the
file position at the end); the bytes themselves move in C:

- loop.sendfile() on ourloop's socket transports (TCP and Unix stream
  sockets: StreamTransport, _sendfile_compatible TRY_NATIVE) waits until
  the transport's write buffer is empty and then calls sendfile(2) on the
  socket natively (the "zero-copy sendfile" section of
  ourloop/handles/stream.pyx). Pipe and datagram transports are refused
  (UNSUPPORTED), as the stdlib refuses them; TLS transports
  (_sendfile_compatible FALLBACK) and any transport when sendfile(2) cannot
  send that file use the fallback: the file is read in the default
  executor and written with transport.write(), waiting whenever the
  transport asks its protocol to pause writing.
- loop.sock_sendfile() calls os.sendfile() on a non-blocking socket and
  waits for writability with the loop's fd watchers (as sock_sendall()
  does); its fallback reads the file in the default executor and sends with
  sock_sendall().

The semantics are those of the stdlib (asyncio/base_events.py and
asyncio/unix_events.py, identical from 3.9 to 3.13): the same argument
checks and messages, SendfileNotAvailableError when sendfile(2) is not
possible (or failed before sending anything) so that the fallback takes
over unless fallback=False, the file position left at offset + bytes sent
(also after an error or a cancellation, so file.tell() says how much
left), the user's file never closed.
"""

import io
import os
import socket
import sys
from asyncio import constants, exceptions, protocols
from errno import ENOTCONN as errno_ENOTCONN

from . import _core
from ._core import StreamTransport
from ._util import _check_ssl_socket

__all__ = ('SendfileMixin',)

_SendfileMode = constants._SendfileMode

# sendfile(2) is asked for at most this much per call (3.13 truncates the
# same way, for 32-bit platforms).
_MAX_BLOCK = sys.maxsize // 2 + 1


def _native_plan(file, count):
    """(fd, block size) for sendfile(2) of file, or
    SendfileNotAvailableError (no os.sendfile, not a regular file). A block
    size of 0 means an empty file: nothing to send."""
    if not _core._HAVE_SENDFILE or not hasattr(os, 'sendfile'):
        # (No sendfile(2) in this build: the platform layer's fallback,
        # which is the stdlib's without os.sendfile.)
        raise exceptions.SendfileNotAvailableError(
            'os.sendfile() is not available')
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise exceptions.SendfileNotAvailableError('not a regular file')  # noqa: B904 (as the stdlib)
    try:
        fsize = os.fstat(fileno).st_size
    except OSError:
        raise exceptions.SendfileNotAvailableError('not a regular file')  # noqa: B904 (as the stdlib)
    return fileno, min(count if count else fsize, _MAX_BLOCK)


def _mark_writable(fut):
    # Writer callback of sock_sendfile: the socket may take more.
    if not fut.done():
        fut.set_result(None)


class _FallbackProtocol(protocols.Protocol):
    """Stands in for a transport's protocol while the sendfile fallback
    writes: it receives pause_writing()/resume_writing() (drain() waits
    while writing is paused) and connection_lost(), which it passes on to
    the real protocol. Reading is paused meanwhile. Works with any
    transport that has the public Transport API; the flow-control state
    at the start comes from its _protocol_paused attribute, if any."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._proto = transport.get_protocol()
        self._was_reading = transport.is_reading()
        self._was_paused = bool(getattr(transport, '_protocol_paused', False))
        # Not None while the transport has writing paused.
        self._writable = loop.create_future() if self._was_paused else None
        transport.pause_reading()
        transport.set_protocol(self)

    async def drain(self):
        """Return when the transport takes more data; ConnectionError if
        it is closing (the peer went away, or it was closed)."""
        if self._transport.is_closing():
            raise ConnectionError('Connection closed by peer')
        if self._writable is not None:
            await self._writable

    def connection_made(self, transport):
        raise RuntimeError('Invalid state: '
                           'connection should have been established already.')

    def connection_lost(self, exc):
        fut = self._writable
        if fut is not None and not fut.done():
            # A connection that ends while data is still to be sent is an
            # error for the sender, whatever the reason.
            fut.set_exception(
                exc if exc is not None
                else ConnectionError('Connection is closed by peer'))
        self._proto.connection_lost(exc)

    def pause_writing(self):
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self):
        fut = self._writable
        if fut is not None:
            self._writable = None
            if not fut.done():
                fut.set_result(None)

    def data_received(self, data):
        raise RuntimeError('Invalid state: reading should be paused')

    def eof_received(self):
        raise RuntimeError('Invalid state: reading should be paused')

    def restore(self):
        """Give the transport its protocol back, in the flow-control state
        the transport is in now."""
        transport = self._transport
        transport.set_protocol(self._proto)
        if self._was_reading:
            transport.resume_reading()
        fut = self._writable
        paused_now = fut is not None
        if fut is not None:
            self._writable = None
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                # Retrieved, so that a failure drain() did not get to raise
                # is not logged as never retrieved.
                fut.exception()
        if self._was_paused and not paused_now:
            self._proto.resume_writing()
        elif paused_now and not self._was_paused and not transport.is_closing():
            # The protocol hears resume_writing() from the transport later:
            # it must have heard pause_writing() first.
            self._proto.pause_writing()


class SendfileMixin:
    """loop.sendfile() and loop.sock_sendfile() (see the module's
    docstring)."""

    # -- sock_sendfile -----------------------------------------------------

    async def sock_sendfile(self, sock, file, offset=0, count=None,
                            *, fallback=True):
        """Send a file over a connected non-blocking SOCK_STREAM socket with
        os.sendfile(); returns the number of bytes sent.

        file must be a regular file opened in binary mode; offset is where
        to start, count how many bytes to send (None: until end of file).
        The file position is offset + bytes sent afterwards (also after an
        error). When sendfile(2) cannot be used, the file is read and sent
        with sock_sendall() if fallback is true, otherwise
        SendfileNotAvailableError is raised."""
        if self._debug and sock.gettimeout() != 0:
            raise ValueError('the socket must be non-blocking')
        _check_ssl_socket(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    def _check_sendfile_params(self, sock, file, offset, count):
        if 'b' not in getattr(file, 'mode', 'b'):
            raise ValueError('file should be opened in binary mode')
        if not sock.type == socket.SOCK_STREAM:
            raise ValueError('only SOCK_STREAM type sockets are supported')
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(
                    f'count must be a positive integer (got {count!r})')
            if count <= 0:
                raise ValueError(
                    f'count must be a positive integer (got {count!r})')
        if not isinstance(offset, int):
            raise TypeError(
                f'offset must be a non-negative integer (got {offset!r})')
        if offset < 0:
            raise ValueError(
                f'offset must be a non-negative integer (got {offset!r})')

    async def _sock_sendfile_native(self, sock, file, offset, count):
        fileno, blocksize = _native_plan(file, count)
        if not blocksize:
            return 0  # an empty file
        fd = sock.fileno()
        sent_total = 0
        first_call = True
        try:
            while True:
                if count:
                    blocksize = count - sent_total
                    if blocksize <= 0:
                        return sent_total
                try:
                    # os.sendfile() as a C call (see syscalls.pyx).
                    sent = _core._sendfile(fd, fileno, offset + sent_total,
                                           blocksize)
                except (BlockingIOError, InterruptedError):
                    first_call = False
                    await self._sock_wait(sock, True, _mark_writable)
                    continue
                except OSError as exc:
                    if (not first_call and exc.errno == errno_ENOTCONN
                            and type(exc) is not ConnectionError):
                        # The peer went away in the middle: the same
                        # ConnectionError on every platform.
                        new_exc = ConnectionError(
                            'socket is not connected', errno_ENOTCONN)
                        new_exc.__cause__ = exc
                        exc = new_exc
                    if sent_total == 0:
                        # Most likely a file sendfile(2) cannot read (not
                        # mmap-able): the fallback may send it.
                        raise exceptions.SendfileNotAvailableError(  # noqa: B904 (as the stdlib)
                            'os.sendfile call failed')
                    raise exc
                first_call = False
                if sent == 0:
                    return sent_total  # end of file
                sent_total += sent
                # The stdlib gives the loop a turn between two calls.
                await self._sock_wait(sock, True, _mark_writable)
        finally:
            if sent_total > 0:
                os.lseek(fileno, offset + sent_total, os.SEEK_SET)

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        bufsize = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
        if count:
            bufsize = min(count, bufsize)
        buf = bytearray(bufsize)
        sent_total = 0
        try:
            while not count or sent_total < count:
                want = min(count - sent_total, bufsize) if count else bufsize
                view = memoryview(buf)[:want]
                nread = await self.run_in_executor(None, file.readinto, view)
                if not nread:
                    break  # end of file
                await self.sock_sendall(sock, view[:nread])
                sent_total += nread
            return sent_total
        finally:
            if sent_total > 0 and hasattr(file, 'seek'):
                file.seek(offset + sent_total)

    # -- sendfile ----------------------------------------------------------

    async def sendfile(self, transport, file, offset=0, count=None,
                       *, fallback=True):
        """Send a file over a transport; returns the number of bytes sent.

        On ourloop's TCP and Unix socket transports the file goes with
        zero-copy sendfile(2). file must be a regular file opened in binary
        mode; offset is where to start, count how many bytes to send (None:
        until end of file). The file position is offset + bytes sent
        afterwards, also after an error. When sendfile(2) cannot be used
        (TLS transports, files it cannot read), the file is read and written
        to the transport if fallback is true; otherwise
        SendfileNotAvailableError (or RuntimeError for a transport that
        never supports it) is raised. While it runs, transport.write()
        raises RuntimeError."""
        if transport.is_closing():
            raise RuntimeError('Transport is closing')
        mode = getattr(transport, '_sendfile_compatible',
                       _SendfileMode.UNSUPPORTED)
        if mode is _SendfileMode.UNSUPPORTED:
            raise RuntimeError(
                f'sendfile is not supported for transport {transport!r}')
        if mode is _SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file,
                                                   offset, count)
            except exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f'fallback is disabled and native sendfile is not '
                f'supported for transport {transport!r}')
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        if not isinstance(transp, StreamTransport):
            raise exceptions.SendfileNotAvailableError(
                'sendfile syscall is not supported')
        resume_reading = transp.is_reading()
        transp.pause_reading()
        drained = transp._sendfile_begin()
        fileno = None
        try:
            await drained
            # What the stdlib's sock_sendfile() checks on the transport's
            # socket, then what its native part does.
            self._check_sendfile_params(transp._sock, file, offset, count)
            fileno, blocksize = _native_plan(file, count)
            if not blocksize:
                return 0  # an empty file
            return await transp._sendfile_run(fileno, offset, count or 0,
                                              blocksize)
        finally:
            sent = transp._sendfile_end()
            if fileno is not None and sent > 0:
                os.lseek(fileno, offset + sent, os.SEEK_SET)
            if resume_reading:
                transp.resume_reading()

    async def _sendfile_fallback(self, transp, file, offset, count):
        # Each chunk is read into a new buffer: a transport may keep what it
        # is given until it is sent (3.12+'s stdlib transports keep a view
        # of a buffer they could not send at once; the stdlib's fallback,
        # which reuses one buffer, then sends overwritten data).
        if offset:
            file.seek(offset)
        bufsize = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
        if count:
            bufsize = min(count, bufsize)
        sent_total = 0
        proto = _FallbackProtocol(self, transp)
        try:
            while not count or sent_total < count:
                want = min(count - sent_total, bufsize) if count else bufsize
                buf = bytearray(want)
                nread = await self.run_in_executor(None, file.readinto, buf)
                if not nread:
                    break  # end of file
                await proto.drain()
                transp.write(buf if nread == want else memoryview(buf)[:nread])
                sent_total += nread
            return sent_total
        finally:
            if sent_total > 0 and hasattr(file, 'seek'):
                file.seek(offset + sent_total)
            proto.restore()

