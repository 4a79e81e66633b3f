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
"""

from __future__ import annotations

import _thread
import os
from _weakref import ref as _ref  # weakref.ref itself, without the weakref module (import time)

from janus_net import syscalls

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Protocol


if TYPE_CHECKING:

    class _HasFileno(Protocol):
        def fileno(self) -> int: ...


# Listening and bound sockets janus_net owns, by fd: adopting one of them through
# fd://N again would give the descriptor two owners (and two closes). A plain dict of
# weak references (a WeakValueDictionary costs a microsecond per listen): an entry
# outlives its owner until the number is reused, and `owner_of` checks it is current.
# At most one entry per fd number, so it stays as small as the fd table.
#
# The registry is only read by an adoption (fd://N), which most processes never do, and
# an entry costs a listener a third of its memory (the weak reference, the dict slot, the
# fd as an int): so nothing is registered until the first `owner_of` call. That call
# first finds every live owner made before it (one walk over the objects the garbage
# collector tracks, once per process), then registration is on for good. The flag is
# set before the walk: an owner made during the walk either registers itself (it saw
# the flag) or existed, with its cell, when the walk began (it is found). Lookups wait
# for the walk to finish (a lock, taken only until it has run once), so two first
# adoptions on two threads both see the complete registry.
_OWNERS: dict[int, _ref[Any]] = {}
_registering = False
_walked = False
_walk_lock = _thread.allocate_lock()
# The classes whose objects register (set by socket.py: this module is below it).
_OWNER_TYPES: tuple[type, ...] = ()


def owners_are(*types: type) -> None:
    """Name the classes whose objects `register` (the walk in `owner_of` looks for them)."""
    global _OWNER_TYPES
    _OWNER_TYPES = types


def register(fd: int, owner: _HasFileno) -> None:
    """Remember that ``owner`` owns ``fd`` (for `owner_of`)."""
    _OWNERS[fd] = _ref(owner)


def _current(fd: int) -> _HasFileno | None:
    ref = _OWNERS.get(fd)
    owner = None if ref is None else ref()
    if owner is not None and owner.fileno() == fd:
        return owner  # type: ignore[no-any-return]
    return None


def _walk() -> None:
    global _registering, _walked
    with _walk_lock:
        if _walked:
            return
        _registering = True
        import gc

        for obj in gc.get_objects():
            if isinstance(obj, _OWNER_TYPES):
                fd = obj.fileno()  # type: ignore[attr-defined]  # an owner type: it has fileno()
                # An entry that is current was registered by its owner since the flag
                # was set: it wins over what the walk read (that owner may have closed).
                if fd >= 0 and _current(fd) is None:
                    _OWNERS[fd] = _ref(obj)
        _walked = True


def _new_walk_lock() -> None:
    # A fork while another thread walks: the child's copy of the lock would stay held.
    # The child walks again on its first lookup (the walk is idempotent).
    global _walk_lock
    _walk_lock = _thread.allocate_lock()


os.register_at_fork(after_in_child=_new_walk_lock)


def owner_of(fd: int) -> _HasFileno | None:
    """The live janus_net Server or Socket that owns ``fd`` now, if any."""
    if not _walked:
        _walk()
    return _current(fd)


new = syscalls.new_desc
close = syscalls.close_desc
