"""Waiting for a descriptor to become ready, or for a context to end: the hand-over modules' poll.

`connect`, `send_sockets`/`receive_sockets` and the supervisor try a non-blocking
call first and, when it would block, wait here: poll on the descriptor and on the
context's wake fd, with the time left until the deadline. ``ctx.check()`` runs on
every turn, so a cancel (from another thread or a signal handler) or an expired
deadline ends the wait with `SocketError.Timeout`. A signal (EINTR) recomputes the
timeout instead of polling again for the full one.
"""

from __future__ import annotations

import math

from janus_net import syscalls
from janus_net._shim import ffi, lib

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from janus_net.context import Context

_MAX_POLL_MS = 2**31 - 1


class _Interrupted(Exception):
    """Raised by the poll's EINTR checkpoint so the wait recomputes its timeout."""


def _interrupted() -> None:
    raise _Interrupted


def pollfds(fd: int, events: int, ctx: Context | None) -> Any:
    """A ``struct pollfd[2]``: ``fd`` for ``events``, then the context's wake fd (or -1, ignored)."""
    fds: Any = ffi.new("struct pollfd[2]")
    fds[0].fd = fd
    fds[0].events = events
    fds[1].fd = -1  # poll skips a negative fd
    if ctx is not None:
        fds[1].fd = ctx._wake_fd()
        fds[1].events = lib.POLLIN
    return fds


def wait(fds: Any, count: int, ctx: Context | None, pause_ms: int | None = None) -> None:
    """Poll ``count`` entries of ``fds`` until one is ready (or ``pause_ms`` passed).

    Raises `SocketError.Timeout` when the context is cancelled or its deadline passes.
    """
    while True:
        if ctx is not None:
            ctx.check()
        remaining = None if ctx is None else ctx.remaining()
        if remaining is None or math.isinf(remaining):
            timeout_ms = -1
        else:
            timeout_ms = min(math.ceil(remaining * 1000), _MAX_POLL_MS)
        if pause_ms is not None:
            timeout_ms = pause_ms if timeout_ms < 0 else min(timeout_ms, pause_ms)
        try:
            ready = syscalls.poll(fds, count, timeout_ms, _interrupted)
        except _Interrupted:
            continue
        if ready or pause_ms is not None:
            if ctx is not None:
                ctx.check()
            return
