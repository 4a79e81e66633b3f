"""Moved: see janus_net._sockets (owner, server, stream, datagram) and janus_net._values.kinds."""

from janus_net._sockets.datagram import Socket
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream
from janus_net._values.kinds import Mode, Protocol
from janus_net.address import UnixAddress

__all__ = ["Mode", "Protocol", "Server", "Socket", "Stream", "UnixAddress"]
