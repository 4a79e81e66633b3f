"""Moved: see janus_net._policy.waiting."""

from janus_net._policy.waiting import POLLIN, POLLOUT, pause, poll_fds, wait_for, wait_ready

__all__ = ["POLLIN", "POLLOUT", "pause", "poll_fds", "wait_for", "wait_ready"]
