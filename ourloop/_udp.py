"""create_datagram_endpoint (the native transport is in handles/udp.pyx)."""


class DatagramMixin:
    """Datagram endpoints of ourloop.Loop."""
