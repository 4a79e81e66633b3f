"""Waiting and waking: poll on a socket and its wake fds, and the wake fds themselves.

A blocking call of janus_net is a non-blocking attempt, then a `wait` (one poll(2) on
the socket, the object's wake fd, a context's and the signal wakeup fd) and another
attempt (docs/architecture.md, "First attempt inline"). What wakes it is a wake fd
becoming readable, never a shutdown() of a socket other processes may share:

* an owned cell's wake fd (`make_wake`), signalled by ``close()``;
* a context's waker cell (`new_waker_cell`, `make_waker`, `signal_waker`), signalled
  by ``cancel()``, safe from a signal handler (one write);
* the interpreter's signal wakeup fd, janus_net's own pipe when the program has none
  (`make_wakeup_pipe`).

A wake pair is an eventfd where the platform has one (one descriptor), else a pipe.
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned

from janus_net._kernel.loop import OUR_POINTER, Checkpoint, Syscall, after_failure, retry
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


#: Added to a `wait` result when the object is being closed.
WAIT_CLOSED: int = lib.JN_WAIT_CLOSED

#: Added to a `wait` result when the interpreter's signal wakeup fd fired.
WAIT_SIGNAL: int = lib.JN_WAIT_SIGNAL

EVENTFD = Syscall(
    "eventfd",
    {
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOMEM: SocketError.SystemResources,
        # ENODEV: the kernel could not mount its anonymous-inode file system.
        E.ENODEV: SocketError.SystemResources,
    },
    bugs={E.EINVAL: "the flags, EFD_CLOEXEC and EFD_NONBLOCK, are constants the shim passes"},
)


def make_wake(desc: Any) -> None:
    """Give ``desc`` its wake fd (made once, on the first wait; closed with the descriptor)."""
    # Asked at every wait, and nearly always there already: the first attempt is made
    # here while the fault seam is unarmed (no `retry` frame), the loop only after a failure.
    if EVENTFD.fault is not None:
        retry(EVENTFD, lib.jn_desc_make_wake, (desc,))
    elif lib.jn_desc_make_wake(desc) < 0:
        after_failure(EVENTFD, lib.jn_desc_make_wake, (desc,))


POLL = Syscall(
    "poll",
    {E.ENOMEM: SocketError.SystemResources},
    {
        E.EFAULT: OUR_POINTER,
        E.EINVAL: "nfds is at most 2 (the socket and a wake fd), far below RLIMIT_NOFILE",
    },
)


def wait(
    desc: Any, events: int, ctx_fd: int, sig_fd: int, drain: bool, timeout_ms: int,
    checkpoint: Checkpoint | None = None,
) -> int:  # fmt: skip
    """poll(2) on ``desc``'s socket, its wake fd, a context's and the signal wakeup fd (-1: none).

    ``drain``: ``sig_fd`` is janus_net's own wakeup pipe, emptied when it fired.
    Returns the socket's revents, plus `WAIT_CLOSED` once the object is being closed
    and `WAIT_SIGNAL` when ``sig_fd`` fired.
    """
    return retry(POLL, lib.jn_desc_wait, (desc, events, ctx_fd, sig_fd, drain, timeout_ms), checkpoint)


def poll(fds: Any, count: int, timeout_ms: int, checkpoint: Checkpoint | None = None, drain: bool = False) -> int:
    """poll(2) on a ``struct pollfd[]`` of descriptors no socket object owns; EINTR runs the checkpoint.

    A retry reuses the same timeout; callers that care about a deadline pass a
    checkpoint that raises once it has passed. ``drain``: the last entry is
    janus_net's own signal wakeup pipe, emptied when it fired.
    """
    return retry(POLL, lib.jn_poll_wakeup, (fds, count, timeout_ms, drain), checkpoint)


def new_waker_cell() -> tuple[Any, Any]:
    """An empty wake-pair cell (no fd yet), and the object whose collection closes what it holds.

    The cell is ``[read fd, write fd, cancelled, pid]``: the pid of the process that
    made its pair, so that a forked child never signals (nor waits on) its parent's.

    Keep both: the cell is the memory (freed only when the cell object is), the closer
    closes the pair when it is collected. They are two objects because cffi runs an
    ``ffi.gc`` destructor from ``tp_finalize`` and then drops the memory it wraps: in a
    reference cycle that can come before another ``__del__`` of the cycle still uses
    the holder (a ``cancel()``), which would then write to a freed cell.
    """
    cell = ffi.new("int[4]", [-1, -1, 0, 0])  # read fd, write fd, cancelled (`mark_cancelled`), pid
    return cell, ffi.gc(cell, lib.jn_waker_close)


def mark_cancelled(cell: Any) -> None:
    """Record a cancel in a context's waker cell, where native calls can read it (no syscall)."""
    lib.jn_waker_cancel(cell)


def make_waker(cell: Any) -> int:
    """Fill ``cell`` with a wake pair (eventfd, or a pipe) unless it has one; returns its read fd.

    Racing callers share one pair: the native call publishes the first and closes the
    others. In a forked child the inherited pair is closed (it is the parent's) and a
    new one made.
    """
    retry(EVENTFD, lib.jn_waker_new, (cell,))
    return int(cell[0])


def signal_waker(cell: Any) -> None:
    """Make the cell's wake fd readable, if this process made one (safe from a signal handler: one write).

    A forked child closes its copies of the parent's pair instead: never signals it.
    """
    lib.jn_waker_signal_cell(cell)


def make_wakeup_pipe(cell: Any) -> tuple[int, int]:
    """Fill a `new_waker_cell` with a non-blocking, close-on-exec pipe unless it has one; (read, write).

    The pipe janus_net installs as the interpreter's signal wakeup fd (janus_net._policy.wakeup).
    """
    # Asked at every wait on the main thread: the first attempt inline, as `make_wake`'s.
    if EVENTFD.fault is not None:
        retry(EVENTFD, lib.jn_wakeup_new, (cell,))
    elif lib.jn_wakeup_new(cell) < 0:
        after_failure(EVENTFD, lib.jn_wakeup_new, (cell,))
    return int(cell[0]), int(cell[1])


def forward_wakeup(read_end: int, to_fd: int) -> int:
    """Move the bytes in janus_net's wakeup pipe (``read_end``) to the program's wakeup fd ``to_fd``.

    One native call that never fails: reads until the pipe is empty and writes what it
    read (a program's fd that is full already holds a wake); ``to_fd`` -1 only empties
    the pipe. Returns the bytes moved.
    """
    return int(lib.jn_wakeup_forward(read_end, to_fd))


def claim_waker(cell: Any) -> None:
    """Count ``cell`` as this process's, keeping the pair it holds (no syscall).

    For a forked child that has just moved a pair of its own under the numbers the
    cell holds (janus_net._policy.wakeup): otherwise the next native call on the cell
    would take them for the parent's copies and close them.
    """
    cell[3] = lib.jn_self_pid()


def close_waker(cell: Any) -> None:
    """Close what a waker cell holds now (its collection would too); never signals it."""
    lib.jn_waker_close(cell)
