"""Moved: see janus_net._profiles.listen."""

from __future__ import annotations

from janus_net._profiles.listen import (
    bind,
    bind_with_capability,
    bind_with_context,
    listen,
    listen_with_capability,
    listen_with_context,
)

__all__ = [
    "bind",
    "bind_with_capability",
    "bind_with_context",
    "listen",
    "listen_with_capability",
    "listen_with_context",
]
