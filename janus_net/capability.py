"""Moved: see janus_net._policy.capability."""

from janus_net._policy.capability import NET_BIND, NetBind

__all__ = ["NET_BIND", "NetBind"]
