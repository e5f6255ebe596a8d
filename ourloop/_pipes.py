"""connect_read_pipe / connect_write_pipe (transports in handles/pipe.pyx)."""


class PipeMixin:
    """Pipe transports of ourloop.Loop."""
