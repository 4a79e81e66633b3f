"""Moved: see janus_net._cli.output."""

from janus_net._cli.output import (
    USAGE_ERRORS,
    FileSink,
    close_quietly,
    discard_stdout,
    error_line,
    open_audit_file,
    output_error,
    usage_status,
)

__all__ = [
    "USAGE_ERRORS",
    "FileSink",
    "close_quietly",
    "discard_stdout",
    "error_line",
    "open_audit_file",
    "output_error",
    "usage_status",
]
