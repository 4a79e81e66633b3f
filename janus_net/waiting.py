"""Waiting: try a non-blocking call, and while it would block, poll the socket and the context's wake fd."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from janus_net import syscalls
from janus_net._shim import ffi, lib

if TYPE_CHECKING:
    from janus_net.context import Context


class _PollInterrupted(Exception):
    """Raised by `_wait_for`'s EINTR checkpoint so that the loop recomputes its timeout."""


def _poll_interrupted() -> None:
    raise _PollInterrupted


# poll takes an int of milliseconds; a longer wait is cut into pieces by the loop.
_MAX_POLL_MS = 2**31 - 1


def _wait_for(ctx: Context, fd: int, attempt: Callable[[], int], hangup: Callable[[], int] | None = None) -> int:
    """Try a non-blocking call; while it would block, wait for the fd or the context.

    The loop is ``check -> attempt -> poll`` and never ``poll -> blocking call``:
    poll saying "readable" is only a hint when other threads read the same socket
    (one of them may take the connection or datagram first), so every wakeup is
    followed by another *non-blocking* attempt, and a thread that loses the race
    simply waits again. The poll watches the socket and the context's wake fd, with
    the time left until the deadline (rounded up, so an early wakeup cannot spin);
    ``ctx.check()`` at the top of each turn turns a cancel or an expired deadline
    into `SocketError.Timeout`. A signal (EINTR) also goes back to the top, so the
    timeout is recomputed and a deadline is never overshot by a retry.

    A socket that was shut down (``close()`` or ``shutdown()`` from another thread)
    polls as POLLHUP forever, yet some non-blocking calls still say EAGAIN there
    (recv on a datagram socket, accept on a unix listener), where the blocking call
    would return at once. Waiting again would spin, so after a POLLHUP the call is
    answered by ``hangup()`` -- the blocking call's answer -- or, without one, by 0
    (end of stream, the answer of every receive flavour).
    """
    pollfds: Any = None
    hung_up = False
    while True:
        ctx.check()
        rc = attempt()
        if rc != syscalls.WOULD_BLOCK:
            return rc
        if hung_up:
            return 0 if hangup is None else hangup()
        if pollfds is None:
            # Made only now: a call that never waits never creates the wake fd.
            pollfds = ffi.new("struct pollfd[2]")
            pollfds[0].fd = fd
            pollfds[0].events = lib.POLLIN
            pollfds[1].fd = ctx._wake_fd()
            pollfds[1].events = lib.POLLIN
        remaining = ctx.remaining()
        if remaining is None or remaining >= _MAX_POLL_MS / 1000:
            timeout_ms = -1 if remaining is None or math.isinf(remaining) else _MAX_POLL_MS
        else:
            timeout_ms = math.ceil(remaining * 1000)
        try:
            syscalls.poll(pollfds, 2, timeout_ms, _poll_interrupted)
        except _PollInterrupted:
            continue
        hung_up = bool(pollfds[0].revents & lib.POLLHUP)
