"""Waiting: try a non-blocking call; while it would block, poll the socket, the object's wake fd and the context's.

Every blocking call of janus_net is made of non-blocking attempts (MSG_DONTWAIT, or
for accept, a poll-guarded accept) and this wait between them. The description's
own O_NONBLOCK flag is never touched, so a socket shared with other processes
behaves the same for them whatever janus_net does, and janus_net's calls work
whether the description is blocking or not.

``close()`` from another thread signals the object's wake fd, which every wait
polls: the waiting call wakes and raises the per-call `SocketError` member its
caller gives (never ErrnoBug). A context's ``cancel()`` signals the context's wake
fd, polled too; its deadline is the poll's timeout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from janus_net import syscalls
from janus_net._shim import lib
from janus_net.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from janus_net.context import Context


class _PollInterrupted(Exception):
    """Raised by the wait's EINTR checkpoint so that the loop recomputes its timeout."""


def _poll_interrupted() -> None:
    raise _PollInterrupted


# poll takes an int of milliseconds; a longer wait is cut into pieces by the loop.
_MAX_POLL_MS = 2**31 - 1
_POLLHUP = lib.POLLHUP
# The backoff after a readiness the call did not honour (see wait_for).
_BACKOFF_FIRST_MS = 1
_BACKOFF_MAX_MS = 50
_WAIT_CLOSED = syscalls.WAIT_CLOSED
_WOULD_BLOCK = syscalls.WOULD_BLOCK

POLLIN: int = lib.POLLIN
POLLOUT: int = lib.POLLOUT


def _timeout_ms(ctx: Context | None) -> int:
    remaining = None if ctx is None else ctx.remaining()
    if remaining is None or math.isinf(remaining):
        return -1
    if remaining >= _MAX_POLL_MS / 1000:
        return _MAX_POLL_MS
    return math.ceil(remaining * 1000)


def wait_for(
    desc: Any,
    events: int,
    ctx: Context | None,
    attempt: Callable[[], int],
    closed: Callable[[], SocketError],
    hangup: Callable[[], int] | None = None,
    tried: bool = False,
) -> int:
    """Run ``attempt`` until it does not say `WOULD_BLOCK`, waiting for ``events`` in between.

    Args:
        desc: the object's descriptor cell.
        events: POLLIN or POLLOUT: what the attempt needs.
        ctx: a context whose ``check()`` runs before each attempt and whose wake fd
            and deadline end the wait; None waits until the socket or close().
        attempt: one non-blocking try; returns a result >= 0, `WOULD_BLOCK`, or
            and nothing else below 0.
        closed: the error to raise when ``close()`` woke the wait.
        hangup: the answer after POLLHUP when the attempt still would block (a
            socket shut down by some holder); None: 0, end of stream.
        tried: the caller has already made the first attempt, and it would block.

    The loop is ``check -> attempt -> poll`` and never ``poll -> blocking call``:
    readiness is only a hint when other threads use the same socket, so every
    wakeup is followed by another non-blocking attempt. A signal (EINTR) returns to
    the top so the timeout is recomputed and a deadline is never overshot.
    """
    if not tried:
        if ctx is not None:
            ctx.check()
        rc = attempt()
        if rc >= 0:
            return rc
    if desc.wake[0] < 0:
        syscalls.make_wake(desc)
    ctx_fd = -1 if ctx is None else ctx._wake_fd()
    interrupted = None if ctx is None else _poll_interrupted
    backoff = 0  # ms: the last nap; grows while readiness keeps not being honoured
    nap = False  # poll said ready but the attempt still would block: nap before polling again
    while True:
        timeout = _timeout_ms(ctx)
        if nap:
            # Readiness that the call does not honour: an unconnected unix datagram
            # socket polls writable while its peer's queue is full (the kernel waits
            # for the peer only inside a blocking send). Waiting for the socket again
            # would spin, so wait for close()/the context only, a growing while.
            timeout = backoff if timeout < 0 else min(timeout, backoff)
        try:
            revents = syscalls.wait(desc, 0 if nap else events, ctx_fd, timeout, interrupted)
        except _PollInterrupted:
            revents = 0
        if revents & _WAIT_CLOSED:
            raise closed()
        if ctx is not None:
            ctx.check()
        rc = attempt()
        if rc >= 0:
            return rc
        if revents & _POLLHUP:
            return 0 if hangup is None else hangup()
        if nap:
            nap = False  # after a nap, wait for the socket again
        elif revents & events:
            # Another thread took what poll announced (then this is one short nap), or
            # the socket keeps saying ready without meaning it (then the naps grow).
            backoff = min(max(backoff * 2, _BACKOFF_FIRST_MS), _BACKOFF_MAX_MS)
            nap = True
        else:
            backoff = 0
