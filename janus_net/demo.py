"""Moved: see janus_net._cli.demo."""

from janus_net._cli.demo import run

__all__ = ["run"]
