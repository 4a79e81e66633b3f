"""Moved: see janus_net._cli (the janus-net command)."""

from janus_net._cli.command import STOP_SIGNALS, main
from janus_net._cli.parsers import build_parser

__all__ = ["STOP_SIGNALS", "build_parser", "main"]
