"""Moved: see janus_net._cli.stop_signals (and janus_net._process.stopped for Stopped)."""

from janus_net._cli.stop_signals import Stopped, StopSignals, die_of

__all__ = ["StopSignals", "Stopped", "die_of"]
