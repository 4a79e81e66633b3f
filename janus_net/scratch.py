"""Moved: see janus_net._sockets.buffers."""

from janus_net._sockets.buffers import (
    IP4_KEY_OK,
    PEER_FAMILIES,
    SA_FAMILY_END,
    SIZE_MAX,
    SOCKADDR_IN_SIZE,
    STORAGE_P,
    STORAGE_SIZE,
    UNNAMED_UNIX,
    Buffer,
    Pool,
    Scratch,
    size_argument,
    uncleared,
    view_of,
)

__all__ = [
    "IP4_KEY_OK", "PEER_FAMILIES", "SA_FAMILY_END", "SIZE_MAX", "SOCKADDR_IN_SIZE", "STORAGE_P", "STORAGE_SIZE",
    "UNNAMED_UNIX", "Buffer", "Pool", "Scratch", "size_argument", "uncleared", "view_of",
]  # fmt: skip
