"""Moved: see janus_net._sockets.batching."""

from janus_net._sockets.batching import (
    BATCH_MAX,
    USE_MMSG,
    ReceiveBatch,
    SendBatch,
    batch_capacity,
    receive_each,
    receive_many,
    send_each,
    send_many,
)

__all__ = [
    "BATCH_MAX", "USE_MMSG", "ReceiveBatch", "SendBatch", "batch_capacity", "receive_each", "receive_many",
    "send_each", "send_many",
]  # fmt: skip
