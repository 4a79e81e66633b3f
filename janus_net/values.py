"""Moved: see janus_net._values.strict."""

from janus_net._values.strict import INT_MAX, BadOptionType, flag, integer

__all__ = ["INT_MAX", "BadOptionType", "flag", "integer"]
