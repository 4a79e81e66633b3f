"""Moved: see janus_net._sockets.ancillary."""

from janus_net._sockets.ancillary import CONTROL_SPACE, Datagram, Message, Outgoing, parse, receive, send_from

__all__ = ["CONTROL_SPACE", "Datagram", "Message", "Outgoing", "parse", "receive", "send_from"]
