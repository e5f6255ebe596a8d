# UDP over uv_udp_t: UDPTransport, the asyncio.DatagramTransport of
# create_datagram_endpoint (ourloop/_udp.py).
