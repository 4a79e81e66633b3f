"""Moved: see janus_net._sockets.from_cell (and janus_net._sockets.owner for the unix file duty)."""

from janus_net._sockets.from_cell import KINDS, Kind, kind_of, wrap
from janus_net._sockets.owner import give_unix_file, unix_file_of

__all__ = ["KINDS", "Kind", "give_unix_file", "kind_of", "unix_file_of", "wrap"]
