"""Moved: see janus_net._process.supervisor (supervising) and janus_net._cli.run (the janus-net run command)."""

from janus_net._cli.parsers import build_run_parser as build_parser
from janus_net._cli.run import IGNORED_AT_START_UP, main
from janus_net._process.supervisor import STOP_SIGNALS, _receive_notification
from janus_net._process.supervisor import Supervisor as _Supervisor

__all__ = ["IGNORED_AT_START_UP", "STOP_SIGNALS", "_Supervisor", "_receive_notification", "build_parser", "main"]
