"""connect_read_pipe / connect_write_pipe (transports in handles/pipe.pyx).

PipeMixin is one of ourloop.Loop's bases. What runs here runs once per
pipe: the stdlib's BaseEventLoop.connect_read_pipe/connect_write_pipe
(protocol, waiter, closing the transport if the wait is cancelled); the
transports themselves (their checks, and who owns which fd) are native:
ourloop/handles/pipe.pyx.
"""

from asyncio.log import logger


class PipeMixin:
    """Pipe transports of ourloop.Loop."""

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Register the read end of `pipe` (a pipe, FIFO, socket or
        character device: anything with fileno()) in the loop; returns
        (transport, protocol). The transport closes `pipe` after
        connection_lost()."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_read_pipe_transport(pipe, protocol, waiter)
        try:
            await waiter
        except:  # noqa: E722 -- the stdlib's: cancellation included
            transport.close()
            raise
        if self._debug:
            logger.debug('Read pipe %r connected: (%r, %r)',
                         pipe.fileno(), transport, protocol)
        return transport, protocol

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Register the write end of `pipe` (a pipe, FIFO, socket or
        character device) in the loop; returns (transport, protocol). The
        transport closes `pipe` after connection_lost()."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_write_pipe_transport(pipe, protocol, waiter)
        try:
            await waiter
        except:  # noqa: E722 -- the stdlib's: cancellation included
            transport.close()
            raise
        if self._debug:
            logger.debug('Write pipe %r connected: (%r, %r)',
                         pipe.fileno(), transport, protocol)
        return transport, protocol
