"""Moved: see janus_net._kernel.control (message headers built, control buffers read under one bounds rule)."""

from janus_net._kernel.control import (
    HEADER,
    INT_SIZE,
    SIZES,
    Cmsg,
    Outgoing,
    RightsBuffer,
    close_all,
    close_received,
    header,
    rights_message,
    rights_room,
    rights_slots,
    scan,
    walk,
)

__all__ = [
    "HEADER",
    "INT_SIZE",
    "SIZES",
    "Cmsg",
    "Outgoing",
    "RightsBuffer",
    "close_all",
    "close_received",
    "header",
    "rights_message",
    "rights_room",
    "rights_slots",
    "scan",
    "walk",
]
