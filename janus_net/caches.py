"""Moved: see janus_net._values.caches."""

from janus_net._values.caches import bounded_put

__all__ = ["bounded_put"]
