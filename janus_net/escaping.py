"""Moved: see janus_net._values.escaping."""

from janus_net._values.escaping import _escape, for_people

__all__ = ["_escape", "for_people"]
