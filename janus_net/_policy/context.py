"""`Context`: the cancellation and deadline that the :service profile threads through a call.

A context answers one question, "should this operation stop now?", at the points
where janus_net asks it: the five checkpoints of a listen/bind, every EINTR retry,
and every turn of a blocking wait. The answer is ``check()``, which returns quietly
or raises `SocketError.Timeout` with ``.reason`` ``"cancelled"`` or ``"deadline"``::

    ctx = Context.with_timeout(2.0)
    server = listen_with_context("127.0.0.1:0", ctx)
    stream = server.accept(ctx)          # ends by 2 s after the context was made

    # from any other thread:
    ctx.cancel()                         # the accept above wakes at once

Contexts form a tree. ``ctx.child(timeout=...)`` ends when its parent ends, and
earlier if its own timeout says so; cancelling a child leaves the parent alone.

janus_net always calls ``ctx.check()`` through the bound method, so a subclass that
overrides it (to count checkpoints, to add its own stop condition) is honoured
everywhere.

How a cancel wakes a blocked call: a thread that has to wait polls the socket
*and* the context's wake fd (an eventfd, or a pipe where there is none). The fd
is made only when someone first waits (failing to make it is
ProcessFdQuotaExceeded/SystemFdQuotaExceeded), and closed when the context is
collected.
``cancel()`` marks the context and every live descendant cancelled and signals each
one's wake fd, so a waiter needs to watch just one fd: its own context's. (Parents
keep weak references to their children, so a child that is no longer used is
collected as usual; a child keeps a strong reference to its parent, so the chain
from any live context up to the root stays intact.) The wake fd is never drained: once signalled it stays
readable, which is right, because a cancelled context never comes back.

After a fork the child's copy of a context is the child's: its ``cancel()`` never
signals the parent's wake fd (the native cell records the pid that made the pair; the
child closes its copies and makes its own if it waits), so a parent thread waiting on
the same context is neither woken nor left spinning on a signalled fd.
"""

from __future__ import annotations

import time
from _weakrefset import WeakSet  # weakref.WeakSet itself, without the weakref module (import time)

from janus_net._kernel import cell_io, waking
from janus_net._values.errors import SocketError
from janus_net._values.seconds import deadline_after, deadline_at

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, TypeVar


if TYPE_CHECKING:
    _C = TypeVar("_C", bound="Context")


class Context:
    """A cancellation flag plus an optional deadline, shared safely between threads.

    ``Context()`` never ends on its own (only ``cancel()`` ends it). Use
    `with_timeout` or `with_deadline` for one that expires, and `child` to derive one
    that ends with its parent.
    """

    __slots__ = (
        "__weakref__", "_accepting", "_cancelled", "_children", "_deadline", "_parent", "_waker", "_waker_closer",
    )  # fmt: skip

    def __init__(self) -> None:
        self._cancelled = False
        self._deadline: float | None = None
        self._children: WeakSet[Context] = WeakSet()
        # A strong reference upwards: a child keeps its ancestors (and so the chain
        # that carries a cancel down to it) alive for as long as it lives.
        self._parent: Context | None = None
        # [read fd, write fd (-1 for an eventfd)]: a native cell, filled by the first
        # wait (creating a context makes no fd) and closed when the closer is collected.
        self._waker, self._waker_closer = waking.new_waker_cell()
        # The listeners an accept(ctx) is using right now (their cells): a thread can
        # sleep inside accept(2) itself, where the wake fd does not reach it, and
        # cancel() then signals it (janus_net._sockets.server.Server.accept).
        self._accepting: list[Any] = []

    # --- making contexts

    @classmethod
    def with_timeout(cls: type[_C], seconds: float) -> _C:
        """A context that expires ``seconds`` from now (0 or less: already expired).

        Args:
            seconds: an int or float number of seconds, measured on the
                `time.monotonic` clock (wall-clock changes do not move it).
                +inf, or a number beyond the float range (``10**400``), never expires.

        Raises:
            TypeError: ``seconds`` is not an int or float (a bool is refused).
            ValueError: ``seconds`` is NaN.
        """
        ctx = cls()
        ctx._deadline = deadline_after(seconds, "timeout")
        return ctx

    @classmethod
    def with_deadline(cls: type[_C], monotonic_seconds: float) -> _C:
        """A context that expires when `time.monotonic()` reaches ``monotonic_seconds``.

        Args:
            monotonic_seconds: an absolute point on the `time.monotonic` clock; one
                already passed gives an expired context; +inf, or a number beyond the
                float range, never comes.

        Raises:
            TypeError: ``monotonic_seconds`` is not an int or float (a bool is refused).
            ValueError: ``monotonic_seconds`` is NaN.
        """
        ctx = cls()
        ctx._deadline = deadline_at(monotonic_seconds, "deadline")
        return ctx

    def child(self, timeout: float | None = None) -> Context:
        """A context that ends when this one does, or after ``timeout`` seconds if sooner.

        Cancelling the child does not touch this context. The child is a plain
        `Context`, whatever the type of its parent. A child of a context already
        cancelled starts cancelled.

        Args:
            timeout: seconds from now for the child's own deadline, or None to keep
                only the parent's (+inf, or beyond the float range: the same). The
                earlier of the two deadlines applies.

        Raises:
            TypeError: ``timeout`` is not None, an int or a float (a bool is refused).
            ValueError: ``timeout`` is NaN.
        """
        child = Context()
        deadline = self._deadline
        own = None if timeout is None else deadline_after(timeout, "timeout")
        if own is not None:
            deadline = own if deadline is None else min(deadline, own)
        child._deadline = deadline
        child._parent = self
        # Added first, then the flag read: a concurrent cancel() sets the flag
        # first, then takes its snapshot, so either it sees this child or we see
        # its flag (both orders are single bytecodes under the GIL).
        self._children.add(child)
        if self._cancelled:
            child._cancelled = True
        return child

    # --- ending contexts

    def cancel(self) -> None:
        """End this context and all its descendants now; wakes every thread waiting on them.

        Idempotent, callable from any thread and from a signal handler: it takes no
        lock at all (the flag is set first, then the wake fd, if one was made, is
        written), so it can never wait on a lock the interrupted thread holds.
        A blocked janus_net call waiting on this context (or a descendant) raises
        `SocketError.Timeout` with ``.reason == "cancelled"``.

        Raises:
            Nothing: cancelling cannot fail.
        """
        if self._cancelled:
            return
        self._cancelled = True
        # Marked in the native cell too, before the kick: an accept reads the mark once
        # it has said it is inside accept(2), so it either sees the mark or is kicked.
        waking.mark_cancelled(self._waker)
        waking.signal_waker(self._waker)
        for cell in tuple(self._accepting):
            cell_io.kick_acceptor(cell)
        while True:
            try:
                children = list(self._children)
            except RuntimeError:  # the set changed size while being copied: copy again
                continue
            break
        for child in children:
            child.cancel()

    # --- asking

    @property
    def cancelled(self) -> bool:
        """True once this context (or an ancestor) was cancelled."""
        return self._cancelled

    @property
    def expired(self) -> bool:
        """True once the deadline (its own or an ancestor's, whichever is first) has passed."""
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline

    @property
    def done(self) -> bool:
        """True once cancelled or expired: ``check()`` would raise."""
        return self._cancelled or self.expired

    @property
    def deadline(self) -> float | None:
        """The effective deadline on the `time.monotonic` clock, or None if there is none."""
        return self._deadline

    def remaining(self) -> float | None:
        """Seconds left until the deadline (never negative), or None without a deadline.

        This is about time only: a cancelled context with no deadline still says None.

        Returns:
            A float >= 0.0, or None when neither this context nor an ancestor has a deadline.
        """
        deadline = self._deadline
        if deadline is None:
            return None
        return max(0.0, deadline - time.monotonic())

    def check(self) -> None:
        """Return if the operation may go on; raise `SocketError.Timeout` if it must stop.

        janus_net calls it at every checkpoint of a :service call; your own code may
        call it between steps of its own work.

        Raises:
            SocketError.Timeout: the context is done. ``.reason`` is ``"cancelled"`` if
                it was cancelled (cancellation wins when both hold), else ``"deadline"``.
        """
        if self._cancelled:
            raise SocketError.Timeout("cancelled", "context cancelled")
        if self.expired:
            raise SocketError.Timeout("deadline", "context deadline exceeded")

    # --- for the blocking calls in janus_net._sockets

    def _wake_fd(self) -> int:
        """The fd that becomes readable when this context is cancelled; made on first use.

        Raises:
            SocketError.ProcessFdQuotaExceeded, SystemFdQuotaExceeded: no fd for it.
        """
        waker = self._waker
        # Always the native call (no Python shortcut on waker[0]): in a forked child the
        # pair in the cell is the parent's, and the call replaces it with this process's.
        # No lock: racing threads share the one pair the native call publishes, and
        # cancel() never waits on anything.
        fd = waking.make_waker(waker)
        # Published before the flag is read: a cancel() that ran before found no fd to
        # signal, so the flag it set is seen here, and the fd signalled now.
        if self._cancelled:
            waking.signal_waker(waker)
        return fd

    def __repr__(self) -> str:
        if self._cancelled:
            state = "cancelled"
        elif self._deadline is None:
            state = "no deadline"
        else:
            left = self.remaining()
            state = "expired" if not left else f"{left:.3f}s left"
        return f"<janus_net.{type(self).__name__} {state}>"


__all__ = ["Context"]
