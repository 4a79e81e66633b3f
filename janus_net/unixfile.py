"""Moved: see janus_net._profiles.unix_files."""

from __future__ import annotations

from janus_net._profiles.unix_files import (
    UnixFile,
    after_bind,
    before_bind,
    bind,
    bound_but_refusing,
    resolve_group,
    resolve_owner,
)

__all__ = ["UnixFile", "after_bind", "before_bind", "bind", "bound_but_refusing", "resolve_group", "resolve_owner"]
