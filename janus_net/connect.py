"""Moved: see janus_net._profiles.connect."""

from __future__ import annotations

from janus_net._profiles.connect import (
    connect,
)

__all__ = ["connect"]
