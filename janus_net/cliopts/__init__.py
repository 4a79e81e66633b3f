"""Moved: see janus_net._cli.flags (a package here, not cliopts.py, so git follows the move of cliopts.py)."""

from janus_net._cli.flags import (
    add_kernel_flags,
    add_socket_flags,
    backlog,
    check_kernel_args,
    count,
    file_mode,
    kernel_options,
    port,
    seconds,
)

__all__ = [
    "add_kernel_flags",
    "add_socket_flags",
    "backlog",
    "check_kernel_args",
    "count",
    "file_mode",
    "kernel_options",
    "port",
    "seconds",
]
