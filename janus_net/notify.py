"""Moved: see janus_net._process.notify."""

from janus_net._process.notify import notify, notify_address, watchdog_interval

__all__ = ["notify", "notify_address", "watchdog_interval"]
