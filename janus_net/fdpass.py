"""Moved: see janus_net._process.transfer, janus_net._process.sending and janus_net._process.receiving."""

from janus_net._process.receiving import check_peer, receive_sockets
from janus_net._process.sending import RightsSend, send_sockets
from janus_net._process.transfer import (
    CHUNK_MAX,
    HEADER,
    LAST,
    MAGIC,
    NAME_MAX,
    TRANSFER_MAX,
    VERSION,
    AnySocket,
    check_name,
)
from janus_net._process.transfer import check_channel as _check_channel
from janus_net._process.transfer import sockets_to_send as _items

__all__ = [
    "CHUNK_MAX",
    "HEADER",
    "LAST",
    "MAGIC",
    "NAME_MAX",
    "TRANSFER_MAX",
    "VERSION",
    "AnySocket",
    "RightsSend",
    "_check_channel",
    "_items",
    "check_name",
    "check_peer",
    "receive_sockets",
    "send_sockets",
]
