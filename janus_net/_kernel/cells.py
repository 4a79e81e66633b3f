"""Ownership of one descriptor: where the fd lives, who closes it, and when.

Every descriptor janus_net owns lives in a native cell (`struct jn_desc`, see
native/unistd_h.py) from the instant the kernel hands it over: socket() and
accept() write the new fd into the cell before they return, and an inherited fd
(``fd://N``) is stored there in one native call. The cell, not a Python variable,
is what is owned, and it is handed to the owning object (Server, Stream, Socket)
as it is. So at every bytecode the fd is reachable by exactly one cleanup path:

* before an owner exists, the function that made it closes the cell on failure;
* once an owner exists, the owner's ``close()`` does;
* if an exception lands where neither got to run (inside a cleanup handler, say),
  the cell is closed when it is garbage-collected.

All three close through a claim (an atomic exchange of the fd with -1), so the
first one closes and the others find nothing: exactly once.

Calls on the socket count themselves in flight inside the native call that makes
the syscall, so no Python bytecode runs while a count is held; ``close()`` while a
call is in flight marks the cell closing and wakes the call through the object's
wake fd, and the last call out closes the fd (so its number is never reused under
a syscall still using it).

This module is that cell's lifetime: made (`new_desc`), held by an owner
(`HOLD_DESC`), filled (`take_into`, `adopt_into`; socket() and accept() fill it
natively), closed once (`close_desc`: `begin_close`, `finish_close`; `close_all` for a list), handed over
(`check_detachable`, `DETACH`). The calls that use a cell are in
janus_net._kernel.cell_io (I/O) and janus_net._kernel.waking (wait, wake). Which cell
holds which fd, for the adoption door, is janus_net._kernel.owners.
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF as in the tables
from collections.abc import Callable

from janus_net._kernel.loop import Syscall, retry
from janus_net._shim import ffi, lib
from janus_net._values.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


# Who is told of every new cell and received-descriptor buffer: nobody, until the
# owner registry (janus_net._kernel.owners) switches itself on at the first adoption.
# One object with one attribute, so that the registry sets it where `new_desc` reads it
# (a module global set from another module would need that module to reach in here).
class CellWatch:
    """The hook `new_desc` and `new_rights_buffer` call with what they make, while ``notify`` is set."""

    __slots__ = ("notify",)

    def __init__(self) -> None:
        self.notify: Callable[[Any], None] | None = None


WATCH = CellWatch()

_DESC_P = ffi.typeof("struct jn_desc *")


def new_desc() -> Any:
    """An empty owned-descriptor cell; when it is collected, whatever it still holds is closed.

    The collection is the backstop of "exactly once": a descriptor whose owner never
    came to exist (an exception between the syscall and the owner) or never closed it
    is closed with its cell, and the cell's claim-once close makes any other close of
    the same cell a no-op.
    """
    raw = lib.jn_desc_new()
    if not raw:  # NULL
        raise MemoryError("no memory for a descriptor cell")
    cell = ffi.gc(raw, lib.jn_desc_free)
    notify = WATCH.notify
    if notify is not None:
        notify(cell)
    return cell


def is_cell(obj: object) -> bool:
    """Whether ``obj`` is a descriptor cell (a ``struct jn_desc *``)."""
    return isinstance(obj, ffi.CData) and ffi.typeof(obj) is _DESC_P


# An owner keeps its cell's memory from its __init__ to the end of its __del__
# (jn_desc_hold/unhold: a count in the cell, no syscall). cffi's collection of the
# cell runs from a tp_finalize, and in a reference cycle the garbage collector
# finalizes in no particular order: without the hold, the cell could be freed
# before the owner's __del__ reads it.
HOLD_DESC = lib.jn_desc_hold
UNHOLD_DESC = lib.jn_desc_unhold

# What an owner holds after its __del__: a cell that is closed and holds nothing, and
# is never freed, so anything that still reaches the owner (another object's __del__
# in the same cycle) finds it closed instead of reading freed memory.
DEAD_DESC = lib.jn_desc_new()
if not DEAD_DESC:
    raise MemoryError("no memory for a descriptor cell")
lib.jn_desc_close(DEAD_DESC)


# --- Filling a cell with a descriptor the kernel gave janus_net some other way


def take_into(desc: Any, slot: Any) -> int:
    """Move the fd in ``slot`` (an ``int *``, e.g. a received SCM_RIGHTS entry) into ``desc``.

    One native call empties the slot and fills the cell, so at no bytecode is the fd
    held by neither (or by both). Returns the fd, or -1 when the slot was empty.
    """
    return int(lib.jn_desc_take(desc, slot))


def adopt_into(desc: Any, fd: int) -> None:
    """Put an inherited fd into ``desc``: from here on janus_net owns (and will close) it."""
    lib.jn_desc_adopt(desc, fd)


# --- Closing: once, whoever gets there first

# close: EINTR is not retried (on Linux the fd is already released, and a retry could
# close a descriptor another thread just opened: https://lwn.net/Articles/576478/ and
# close(2), "Dealing with error returns"); every other error is ignored.
CLOSE = Syscall("close", {}, {E.EBADF: "a double close: the descriptor was closed already"}, retry_eintr=False)


def close(fd: int) -> None:
    """close(2) of a raw fd (a probe socket): never retried, errors ignored but EBADF.

    The fd is released either way; EBADF still means a double close somewhere, which
    is a bug worth surfacing. Owned sockets close through `close_desc` instead.
    """
    try:
        retry(CLOSE, lib.close, (fd,))
    except SocketError as e:
        if e.errno in CLOSE.bugs:
            raise


#: `begin_close` result bits: this call marked the object closed; the caller must `finish_close`.
CLOSE_FIRST: int = lib.JN_CLOSE_FIRST
CLOSE_FINISH: int = lib.JN_CLOSE_FINISH


def begin_close(desc: Any) -> int:
    """Mark ``desc`` closing and wake its waiters (never shutdown()); no syscall but the wake.

    Returns `CLOSE_FIRST` for the call that marked it, plus `CLOSE_FINISH` when no call
    is in flight and the fd is still held: then `finish_close` closes it. Otherwise the
    last call in flight closes it on its way out.
    """
    return int(lib.jn_desc_close(desc))


def finish_close(desc: Any) -> None:
    """close(2) of what ``desc`` holds: never retried, errors ignored but the bug row.

    The number is released either way (Linux), so the cell forgets it even when close
    failed -- or when the fault seam stood in for close(2), leaving the fd to the test.
    EBADF still means a double close somewhere: a bug worth surfacing.
    """
    try:
        retry(CLOSE, lib.jn_desc_finish, (desc,))
    except SocketError as e:  # close(2) said -1 (in release mode, EBADF too)
        lib.jn_desc_forget(desc)
        if e.errno in CLOSE.bugs:
            raise
    except ErrnoBug:  # close(2) said EBADF
        lib.jn_desc_forget(desc)
        raise
    # Anything else (a KeyboardInterrupt before close(2) ran) leaves the fd in the
    # cell: the next close() finishes it, or the cell's collection does.


def close_desc(desc: Any) -> int:
    """close() of an owned descriptor: `begin_close`, then `finish_close` if it falls to us.

    Returns the `begin_close` bits (`CLOSE_FIRST`: this call marked it closed). With
    the fault seam unarmed both steps are one native call; armed, close(2) goes
    through the retry loop as the seam's "close" step.
    """
    if CLOSE.fault is None:
        state = lib.jn_desc_close_now(desc)
        if state >= 0:
            return state
        err = ffi.errno  # close(2) failed: ignored, but for the bug row
        if err in CLOSE.bugs:
            raise CLOSE.error(err)
        return CLOSE_FIRST | CLOSE_FINISH
    state = begin_close(desc)
    if state & CLOSE_FINISH:
        finish_close(desc)
    return state


def closed_under(desc: Any, error: BaseException) -> bool:
    """Whether ``error`` is the EBADF a step finds once ``close()`` has marked ``desc`` closing.

    Each native call enters the cell and finds EBADF once it is closing. For a call
    that was already under way (it waited, or made an earlier step), that close came
    from another thread -- the documented way to stop a loop -- so its caller raises
    the closed member, not the table's EBADF row, which is kept for a call *begun*
    on a closed object (a bug of the caller).
    """
    return getattr(error, "errno", None) == E.EBADF and bool(desc.closing)


def close_all(held: list[Any]) -> None:
    """Close every cell in ``held`` and empty it: the last one first, each exactly once.

    For an owner of several sockets (a name lookup): its cleanup is this one call, so
    an exception arriving in the owner's own code cannot stop it halfway. A cell stays
    in the list until it is closed, and closing a closed cell does nothing, so an
    interrupted call can simply be made again.
    """
    while held:
        close_desc(held[-1])
        held.pop()


def check_detachable(desc: Any, address: str | None = None) -> None:
    """Raise unless ``desc`` can be handed over now: not closed, and no call using it.

    Raises:
        SocketError.Unexpected: closed already (or handed over), or a call is in flight.
    """
    lib.jn_desc_mine(desc)  # in a forked child, the parent's calls in flight are not this process's
    if desc.closing:
        raise SocketError.Unexpected(
            E.EBADF, "this socket is closed (or was handed over already)", syscall="to_socket", address=address
        )
    if desc.inflight:
        raise SocketError.Unexpected(
            E.EBUSY, "cannot hand over a socket while a call is using it", syscall="to_socket", address=address
        )


#: The native hand-over: takes the fd out of a cell (which then counts as closed) and
#: returns it, or -1. Called by `janus_net._sockets` directly inside the expression that
#: gives the fd to its new owner, so that no janus_net bytecode runs while only a
#: Python int holds it.
DETACH = lib.jn_desc_detach


# --- Received descriptors: held in the control buffer until claimed

_CHARS = ffi.typeof("char[]")

#: The size of `new_rights_buffer`: one SCM_RIGHTS message of SCM_MAX_FD descriptors.
RIGHTS_CONTROL_SIZE: int = lib.JN_RIGHTS_CONTROL_SIZE


def new_rights_buffer() -> Any:
    """A zeroed recvmsg control buffer that closes, when collected, every descriptor still in it.

    The received descriptors sit in the buffer's SCM_RIGHTS slots until `take_into`
    moves each into a cell (the slot becomes -1); whatever is left when the buffer
    goes is closed natively, so no exception can make a received fd outlive it.
    """
    buffer = ffi.gc(ffi.new("char[]", RIGHTS_CONTROL_SIZE), lib.jn_rights_close)
    notify = WATCH.notify
    if notify is not None:  # received fds are held here, in flight, until claimed
        notify(buffer)
    return buffer


def is_rights_buffer(obj: object) -> bool:
    """Whether ``obj`` is a control buffer that may hold received descriptors (see `new_rights_buffer`)."""
    return isinstance(obj, ffi.CData) and ffi.typeof(obj) is _CHARS


def close_slots(slots: Any, count: int) -> int:
    """Close the ``count`` received descriptors in ``slots`` (an ``int *``); returns how many were open.

    One native call: each slot becomes -1 before its fd is closed, so a slot already
    moved into a cell (`take_into`) or closed is skipped. close(2) is not retried
    and its errors are not reported: the descriptor is released either way.
    """
    return int(lib.jn_slots_close(slots, count))
