"""Moved: see janus_net._values.seconds."""

from janus_net._values.seconds import deadline_after, deadline_at, seconds

__all__ = ["deadline_after", "deadline_at", "seconds"]
