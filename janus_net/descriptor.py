"""Moved: see janus_net._kernel.cells (a descriptor's cell, its one close) and janus_net._kernel.owners."""

from __future__ import annotations

from janus_net._kernel.cells import close_desc as close
from janus_net._kernel.cells import new_desc as new
from janus_net._kernel.owners import REGISTRATION, InFlight, owner_of, owners_are, register


def __getattr__(name: str) -> object:
    # The registration switch was a module global, which a re-export would freeze at its
    # import-time value: read it live from its one object (owners.REGISTRATION).
    if name == "_registering":
        return REGISTRATION.on
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REGISTRATION", "InFlight", "close", "new", "owner_of", "owners_are", "register"]
