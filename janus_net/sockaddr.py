"""Moved: see janus_net._values.sockaddr."""

from janus_net._values.sockaddr import (
    Decoded,
    Encoded,
    decode,
    encode_ip4,
    encode_ip6,
    encode_unix,
    port_if_same_host,
    sockaddr_size,
)

__all__ = [
    "Decoded",
    "Encoded",
    "decode",
    "encode_ip4",
    "encode_ip6",
    "encode_unix",
    "port_if_same_host",
    "sockaddr_size",
]
