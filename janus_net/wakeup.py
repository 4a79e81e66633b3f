"""Moved: see janus_net._policy.wakeup."""

from janus_net._policy.wakeup import TICK_MS, Watch, install

__all__ = ["TICK_MS", "Watch", "install"]
