"""Moved: see janus_net._process.activation."""

from janus_net._process.activation import LISTEN_FDS_START, listen_fds

__all__ = ["LISTEN_FDS_START", "listen_fds"]
