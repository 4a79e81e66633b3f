"""Moved: see janus_net._profiles.native_sequence."""

from __future__ import annotations

from janus_net._profiles.native_sequence import (
    Plan,
    bound_address,
    discard,
    new_io,
    plan_for,
    run,
)

__all__ = ["Plan", "bound_address", "discard", "new_io", "plan_for", "run"]
