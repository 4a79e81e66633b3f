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
is made only when someone first waits, and closed when the context is collected.
``cancel()`` marks the context and every live descendant cancelled and signals each
one's wake fd, so a waiter needs to watch just one fd: its own context's. (Parents
keep weak references to their children, so a child that is no longer used is
collected as usual; a child keeps a strong reference to its parent, so the chain
from any live context up to the root stays intact.) The wake fd is never drained: once signalled it stays
readable, which is right, because a cancelled context never comes back.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from typing import TypeVar

from janus_net.errors import SocketError

_C = TypeVar("_C", bound="Context")

_HAS_EVENTFD = hasattr(os, "eventfd")


class _Waker:
    """A readable-when-signalled fd pair (eventfd: one fd for both ends)."""

    __slots__ = ("__weakref__", "read_fd", "write_fd")

    def __init__(self) -> None:
        if _HAS_EVENTFD:
            fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self.read_fd = self.write_fd = fd
        else:
            # os.pipe() fds are already non-inheritable (PEP 446): close-on-exec.
            self.read_fd, self.write_fd = os.pipe()
            os.set_blocking(self.write_fd, False)

    def signal(self) -> None:
        try:
            if _HAS_EVENTFD:
                os.eventfd_write(self.write_fd, 1)
            else:
                os.write(self.write_fd, b"\0")
        except BlockingIOError:
            pass  # already signalled to the brim: still readable, which is all we need


def _close_waker(read_fd: int, write_fd: int) -> None:
    os.close(read_fd)
    if write_fd != read_fd:
        os.close(write_fd)


class Context:
    """A cancellation flag plus an optional deadline, shared safely between threads.

    ``Context()`` never ends on its own (only ``cancel()`` ends it). Use
    `with_timeout` or `with_deadline` for one that expires, and `child` to derive one
    that ends with its parent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._deadline: float | None = None
        self._children: weakref.WeakSet[Context] = weakref.WeakSet()
        # A strong reference upwards: a child keeps its ancestors (and so the chain
        # that carries a cancel down to it) alive for as long as it lives.
        self._parent: Context | None = None
        self._waker: _Waker | None = None

    # --- making contexts

    @classmethod
    def with_timeout(cls: type[_C], seconds: float) -> _C:
        """A context that expires ``seconds`` from now (0 or less: already expired).

        Args:
            seconds: an int or float number of seconds, measured on the
                `time.monotonic` clock (wall-clock changes do not move it).

        Raises:
            TypeError: ``seconds`` is not an int or float (a bool is refused).
            ValueError: ``seconds`` is NaN.
        """
        return cls.with_deadline(time.monotonic() + _seconds(seconds, "timeout"))

    @classmethod
    def with_deadline(cls: type[_C], monotonic_seconds: float) -> _C:
        """A context that expires when `time.monotonic()` reaches ``monotonic_seconds``.

        Args:
            monotonic_seconds: an absolute point on the `time.monotonic` clock; one
                already passed gives an expired context.

        Raises:
            TypeError: ``monotonic_seconds`` is not an int or float (a bool is refused).
            ValueError: ``monotonic_seconds`` is NaN.
        """
        ctx = cls()
        ctx._deadline = _seconds(monotonic_seconds, "deadline")
        return ctx

    def child(self, timeout: float | None = None) -> Context:
        """A context that ends when this one does, or after ``timeout`` seconds if sooner.

        Cancelling the child does not touch this context. The child is a plain
        `Context`, whatever the type of its parent. A child of a context already
        cancelled starts cancelled.

        Args:
            timeout: seconds from now for the child's own deadline, or None to keep
                only the parent's. The earlier of the two deadlines applies.

        Raises:
            TypeError: ``timeout`` is not None, an int or a float (a bool is refused).
            ValueError: ``timeout`` is NaN.
        """
        child = Context()
        deadline = self._deadline
        if timeout is not None:
            own = time.monotonic() + _seconds(timeout, "timeout")
            deadline = own if deadline is None else min(deadline, own)
        child._deadline = deadline
        child._parent = self
        with self._lock:
            # Under the lock, so a concurrent cancel() either sees this child in
            # its snapshot or we see its flag here.
            if self._cancelled:
                child._cancelled = True
            else:
                self._children.add(child)
        return child

    # --- ending contexts

    def cancel(self) -> None:
        """End this context and all its descendants now; wakes every thread waiting on them.

        Idempotent, callable from any thread (and from a signal handler: it never
        blocks on anything but this context's lock). A blocked janus_net call waiting
        on this context (or a descendant) raises `SocketError.Timeout` with
        ``.reason == "cancelled"``.

        Raises:
            Nothing: cancelling cannot fail.
        """
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            waker = self._waker
            children = list(self._children)
        if waker is not None:
            waker.signal()
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

    # --- for the blocking calls in janus_net.socket

    def _wake_fd(self) -> int:
        """The fd that becomes readable when this context is cancelled; made on first use."""
        with self._lock:
            waker = self._waker
            if waker is None:
                waker = self._waker = _Waker()
                # The finalizer holds the fd numbers, not the context, so it does not
                # keep the context alive; it closes them when the context is collected.
                weakref.finalize(self, _close_waker, waker.read_fd, waker.write_fd)
                if self._cancelled:
                    waker.signal()
            return waker.read_fd

    def __repr__(self) -> str:
        if self._cancelled:
            state = "cancelled"
        elif self._deadline is None:
            state = "no deadline"
        else:
            left = self.remaining()
            state = "expired" if not left else f"{left:.3f}s left"
        return f"<janus_net.{type(self).__name__} {state}>"


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    if math.isnan(value):
        raise ValueError(f"{what} must not be NaN")
    return float(value)


__all__ = ["Context"]
