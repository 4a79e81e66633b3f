"""Moved: see janus_net._profiles.option_checks."""

from __future__ import annotations

from janus_net._profiles.option_checks import (
    DEFAULT_BIND,
    DEFAULT_LISTEN,
    BadOptionType,
    Options,
    bind_options,
    listen_options,
    validate,
)

__all__ = ["DEFAULT_BIND", "DEFAULT_LISTEN", "BadOptionType", "Options", "bind_options", "listen_options", "validate"]
