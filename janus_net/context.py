"""Moved: see janus_net._policy.context."""

from janus_net._policy.context import Context

__all__ = ["Context"]
