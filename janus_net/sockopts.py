"""Moved: see janus_net._profiles.socket_options."""

from __future__ import annotations

from janus_net._profiles.socket_options import (
    after_listen,
    apply,
    read,
    setsockopt_steps,
)

__all__ = ["after_listen", "apply", "read", "setsockopt_steps"]
