"""Moved: see janus_net._sockets.coalesced."""

from janus_net._sockets.coalesced import (
    BUFFER,
    FOREIGN,
    UNCHECKED,
    Held,
    check_handover,
    pending,
    receive,
    receive_into,
    receive_many,
    state,
    take_held,
)

__all__ = [
    "BUFFER", "FOREIGN", "UNCHECKED", "Held", "check_handover", "pending", "receive", "receive_into", "receive_many",
    "state", "take_held",
]  # fmt: skip
