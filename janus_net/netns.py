"""Moved: see janus_net._policy.netns."""

from janus_net._policy.netns import NamespacePath, check_path, run_in, shown, socket

__all__ = ["NamespacePath", "check_path", "run_in", "shown", "socket"]
