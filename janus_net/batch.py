"""Moved: see janus_net._sockets.batching and janus_net._sockets.mmsg_arrays."""

from janus_net._sockets.batching import receive_each, receive_many, send_each, send_many
from janus_net._sockets.mmsg_arrays import BATCH_MAX, USE_MMSG, ReceiveBatch, SendBatch, batch_capacity

__all__ = [
    "BATCH_MAX", "USE_MMSG", "ReceiveBatch", "SendBatch", "batch_capacity", "receive_each", "receive_many",
    "send_each", "send_many",
]  # fmt: skip
