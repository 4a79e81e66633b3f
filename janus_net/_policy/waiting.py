"""Waiting: try a non-blocking call; while it would block, poll the socket, the object's wake fd and the context's.

Every blocking call of janus_net is made of non-blocking attempts (MSG_DONTWAIT, or
for accept, a poll-guarded accept) and this wait between them. The description's
own O_NONBLOCK flag is never touched, so a socket shared with other processes
behaves the same for them whatever janus_net does, and janus_net's calls work
whether the description is blocking or not.

``close()`` from another thread signals the object's wake fd, which every wait
polls: the waiting call wakes and raises the per-call `SocketError` member its
caller gives (never ErrnoBug). A context's ``cancel()`` signals the context's wake
fd, polled too; its deadline is the poll's timeout. On the main thread every wait
also polls the interpreter's signal wakeup fd (janus_net._policy.wakeup), so a Python signal
handler runs even when the kernel gave the signal to another thread: a handler that
cancels the context or raises ends the wait; otherwise the wait goes on, its
timeout recomputed.

Four smaller waits live here too, so that every wait of janus_net has one home:
`wait_ready` (a socket in a cell that has no other user yet: connect in progress),
`pause` (a cancellable nap: a full unix backlog, a hand-over address still taken),
`poll_fds` (descriptors no socket object owns: the supervisor's notify socket
and signal pipe) and `wait_fds` (the sockets of one name lookup or Happy Eyeballs
race, which one call owns alone, with the context and the signal wakeup fd).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from janus_net._kernel import cells, loop, waking
from janus_net._policy import wakeup
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from janus_net._policy.context import Context


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
_WAIT_CLOSED = waking.WAIT_CLOSED
_WAIT_SIGNAL = waking.WAIT_SIGNAL
_WOULD_BLOCK = loop.WOULD_BLOCK

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
    # Always asked (one native call): in a forked child the cell's pair is the parent's,
    # and this makes the child's own.
    waking.make_wake(desc)
    ctx_fd = -1 if ctx is None else ctx._wake_fd()
    with wakeup.Watch() as watch:
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
            timeout = watch.timeout(timeout)
            try:
                revents = waking.wait(desc, 0 if nap else events, ctx_fd, watch.fd, watch.drain, timeout, interrupted)
            except _PollInterrupted:
                revents = 0
            if revents & _WAIT_CLOSED:
                raise closed()
            if revents & _WAIT_SIGNAL:
                # A Python signal is pending: its handler runs at the next call below (the
                # context's check, or the attempt), and may cancel or raise.
                watch.woke()
            if ctx is not None:
                ctx.check()
            try:
                rc = attempt()
            except Exception as error:
                # close() from another thread after poll returned, before this attempt:
                # the call was waiting, so it is woken, not begun on a closed object.
                if cells.closed_under(desc, error):
                    raise closed() from None
                raise
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


def wait_ready(desc: Any, events: int, ctx: Context | None) -> int:
    """Wait until the socket in ``desc`` reports ``events`` (or an error or hang-up); return its revents.

    For a socket nobody else holds yet (a connect in progress): no object wake fd is
    made, only the context's is polled. ``ctx.check()`` runs before every poll, so a
    cancel or an expired deadline raises `SocketError.Timeout`; a signal (EINTR)
    recomputes the timeout.

    Raises:
        SocketError.Timeout: the context was cancelled or its deadline passed.
        SocketError.Unexpected: the cell was closed under the wait (a bug of the caller).
    """
    ctx_fd = -1 if ctx is None else ctx._wake_fd()
    with wakeup.Watch() as watch:
        interrupted = None if ctx is None else _poll_interrupted
        while True:
            if ctx is not None:
                ctx.check()
            try:
                revents = waking.wait(
                    desc, events, ctx_fd, watch.fd, watch.drain, watch.timeout(_timeout_ms(ctx)), interrupted
                )
            except _PollInterrupted:
                continue
            if revents & _WAIT_CLOSED:
                raise SocketError.Unexpected(None, "the socket was closed while it was waited for", syscall="poll")
            if revents & _WAIT_SIGNAL:
                watch.woke()
                revents &= ~_WAIT_SIGNAL
            if revents:
                return revents
            _handlers_run()


def _handlers_run() -> None:
    """Nothing: calling it is the point at which CPython runs pending Python signal handlers."""


def poll_fds(fds: Sequence[int], events: int, timeout_ms: int) -> list[int]:
    """One poll(2) of ``fds`` (descriptors no socket object owns) for ``events``; each one's revents.

    A negative entry is skipped (revents 0). A signal (EINTR) ends the poll early with
    all zeros, so the caller's loop can look at what its handlers recorded.
    ``timeout_ms`` -1 waits without end. The interpreter's wakeup fd is not touched:
    the caller of this low-level poll (the supervisor) installs its own signal pipe as
    the wakeup fd and polls its read end among ``fds``, so a signal the kernel gives
    another thread still ends the poll.
    """
    count = len(fds)
    table: Any = ffi.new("struct pollfd[]", count)
    for i, fd in enumerate(fds):
        table[i].fd = fd
        table[i].events = events
    try:
        waking.poll(table, count, timeout_ms, _poll_interrupted, False)
    except _PollInterrupted:
        return [0] * count
    return [int(table[i].revents) for i in range(count)]


def wait_fds(entries: Sequence[tuple[int, int]], ctx: Context | None, until: float | None) -> list[int]:
    """One poll(2) of raw descriptors that one call owns alone, with the context's wake fd and the signal fd.

    The wait of a state machine that never waits itself (a name lookup, Happy
    Eyeballs): it names the descriptors and events it waits for and its next timer;
    this waits once and hands back what happened, and the machine advances.

    Args:
        entries: ``(fd, events)`` pairs; a negative fd is skipped (revents 0).
        ctx: its ``check()`` runs before the wait and after it, so a cancel or an
            expired deadline raises at once; its wake fd and deadline end the wait.
        until: a `time.monotonic` instant at which the wait ends anyway (the caller's
            next timer); None: only the context's deadline (or never).

    Returns:
        Each entry's revents, in ``entries``' order: all 0 when the wait ended by
        ``until``, by a signal whose handler returned, or by the context's wake fd
        (whose cancel then raises).

    Raises:
        SocketError.Timeout: the context was cancelled or its deadline passed.
        Whatever a Python signal handler raises (KeyboardInterrupt).
    """
    if ctx is not None:
        ctx.check()
    count = len(entries)
    ctx_fd = -1 if ctx is None else ctx._wake_fd()
    with wakeup.Watch() as watch:
        timeout = _timeout_ms(ctx)
        if until is not None:
            left = until - time.monotonic()
            mine = 0 if left <= 0 else (_MAX_POLL_MS if left >= _MAX_POLL_MS / 1000 else math.ceil(left * 1000))
            timeout = mine if timeout < 0 else min(timeout, mine)
        timeout = watch.timeout(timeout)
        table: Any = ffi.new("struct pollfd[]", count + 2)
        for i, (fd, events) in enumerate(entries):
            table[i].fd = fd
            table[i].events = events
        table[count].fd = ctx_fd
        table[count].events = POLLIN
        table[count + 1].fd = watch.fd
        table[count + 1].events = POLLIN
        try:
            waking.poll(table, count + 2, timeout, _poll_interrupted, watch.drain)
        except _PollInterrupted:
            pass  # a signal: its handler runs at the check below; the caller's loop recomputes the time
        else:
            if table[count + 1].revents:
                watch.woke()
    if ctx is not None:
        ctx.check()  # also where a pending handler runs
    else:
        _handlers_run()
    return [int(table[i].revents) for i in range(count)]


def pause(ctx: Context | None, milliseconds: int) -> None:
    """Nap ``milliseconds`` (less if the deadline comes first), ended at once by the context's cancel.

    A janus_net wait like the others: on the main thread a Python signal handler runs
    during the nap (a handler that raises ends it with that exception; one that
    cancels the context ends it with Timeout), and the nap then goes on for the time
    it has left.

    Raises:
        SocketError.Timeout: the context was cancelled or its deadline passed
            (checked before and after the nap).
    """
    ctx_fd = -1
    if ctx is not None:
        ctx.check()
        ctx_fd = ctx._wake_fd()
    with wakeup.Watch() as watch:
        end = time.monotonic() + milliseconds / 1000
        table: Any = ffi.new("struct pollfd[]", 2)
        table[0].fd = ctx_fd
        table[0].events = POLLIN
        table[1].events = POLLIN
        while True:
            left = math.ceil((end - time.monotonic()) * 1000)
            if left <= 0:
                break
            timeout = _timeout_ms(ctx)
            timeout = watch.timeout(left if timeout < 0 else min(timeout, left))
            table[1].fd = watch.fd
            table[1].revents = 0
            try:
                waking.poll(table, 2, timeout, _poll_interrupted, watch.drain)
            except _PollInterrupted:
                pass
            if table[1].revents:
                watch.woke()
            if ctx is not None:
                ctx.check()  # also where a pending handler runs
                if table[0].revents:
                    break  # signalled but not done: a cancel's flag is set before its signal, so never
            else:
                _handlers_run()
        if ctx is not None:
            ctx.check()
