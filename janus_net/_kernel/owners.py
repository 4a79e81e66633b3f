"""Who holds which descriptor: the owner registry the adoption door asks before it adopts.

Adopting a descriptor a janus_net owner holds would give it two owners (and two
closes, the second of a number that may name something else by then), so the
adoption door (janus_net._profiles.adoption) asks `owner_of` first. Every descriptor janus_net holds
is in a cell (janus_net._kernel.cells): an owner's, one still in flight (a socket
being set up, an accepted fd before its Stream exists, a lock file, a namespace
handle), or a received one waiting in a control buffer; each of them counts.

Most processes never adopt anything, so nothing is registered until the first
`owner_of`: it switches registration on (`REGISTRATION.on`, which owners read when
they are made, and the cells' `WATCH`), then walks the objects the garbage collector
tracks, once, for the owners and cells made before.
"""

from __future__ import annotations

import _thread
import os
from _weakref import ref as _ref  # weakref.ref itself, without the weakref module (import time)

from janus_net._kernel import cells, control

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Protocol


if TYPE_CHECKING:

    class _HasFileno(Protocol):
        def fileno(self) -> int: ...


# Who holds which fd, for the adoption door's owner check: adopting a descriptor a
# janus_net owner holds would give it two owners (and two closes, the second of a
# number that may name something else by then). Two registries, filled only once the
# process first asks (`owner_of`), since most processes never adopt anything:
#
# * _OWNERS: the owner objects (Server, Socket, Stream) by fd, to name the holder. A
#   plain dict of weak references (a WeakValueDictionary costs a microsecond per
#   listen): an entry outlives its owner until the number is reused, and `_current`
#   checks it is current. At most one entry per fd number.
# * _CELLS: every live descriptor cell, owned or still in flight (a socket being set
#   up, an accepted fd before its Stream exists, a lock file, a namespace handle),
#   and every recvmsg control buffer (received fds wait there until claimed), keyed
#   by id. What they hold is read at lookup time, since the kernel and the native
#   calls fill them after they are made. Both are made by `cells` alone (`new_desc`,
#   `new_rights_buffer`), which call `cells.WATCH.notify` once `_walk` sets it to `_track`.
#
# The first `owner_of` turns registration on (`REGISTRATION` and the watch), then walks the
# objects the garbage collector tracks, once per process, for owners and cells made
# before it; an object made during the walk either registers itself or is found.
# Lookups wait for the walk to finish (a lock, taken only until it has run once), so
# two first adoptions on two threads both see every holder. An entry costs memory
# (a listener's third), which is why nothing is registered before.
_OWNERS: dict[int, _ref[Any]] = {}
_CELLS: dict[int, _CellRef] = {}
_walked = False
_walk_lock = _thread.allocate_lock()
# The classes whose objects register (set by socket.py: this module is below it).
_OWNER_TYPES: tuple[type, ...] = ()


class Registration:
    """Whether owners register themselves (`register`): off until the first adoption asks `owner_of`.

    One object, read by every owner as it is made (``if REGISTRATION.on:``): an
    attribute of a shared object, so that whoever imported it sees the switch.
    """

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


REGISTRATION = Registration()


class _CellRef(_ref):  # type: ignore[type-arg]  # a weak reference to a cell, knowing its key
    __slots__ = ("key",)
    key: int


def _forget(ref: _CellRef) -> None:
    # The cell is gone: drop its entry, unless a newer cell took the same id already.
    if _CELLS.get(ref.key) is ref:
        _CELLS.pop(ref.key, None)


def _track(cell: Any) -> None:
    ref = _CellRef(cell, _forget)
    ref.key = id(cell)
    _CELLS[ref.key] = ref


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


class InFlight:
    """A cell that holds an fd with no owner object to name: what `owner_of` answers for it."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def __repr__(self) -> str:
        # No owner object to name: a socket still being set up (an accepted fd before its
        # Stream), a lock file, a namespace handle, or an owner's wake fd.
        return "janus_net itself (a descriptor cell with no owner object: a socket being set up, or a helper fd)"


def _walk() -> None:
    global _walked
    with _walk_lock:
        if _walked:
            return
        REGISTRATION.on = True
        cells.WATCH.notify = _track
        import gc

        cell_type = type(cells.new_desc())
        for obj in gc.get_objects():
            if isinstance(obj, _OWNER_TYPES):
                fd = obj.fileno()  # type: ignore[attr-defined]  # an owner type: it has fileno()
                # An entry that is current was registered by its owner since the flag
                # was set: it wins over what the walk read (that owner may have closed).
                if fd >= 0 and _current(fd) is None:
                    _OWNERS[fd] = _ref(obj)
            elif type(obj) is cell_type and (cells.is_cell(obj) or cells.is_rights_buffer(obj)):
                _track(obj)
        _walked = True


def _new_walk_lock() -> None:
    # A fork while another thread walks: the child's copy of the lock would stay held.
    # The child walks again on its first lookup (the walk is idempotent).
    global _walk_lock
    _walk_lock = _thread.allocate_lock()


os.register_at_fork(after_in_child=_new_walk_lock)


def owner_of(fd: int) -> _HasFileno | None:
    """The live janus_net holder of ``fd`` now, if any: its Server, Socket or Stream, or an `InFlight`.

    Every descriptor cell counts, owned or not yet (a socket being made, an accepted
    connection before its Stream exists, a lock file), and so do the wake fds of each.
    A dup of a held fd is a different number, and is not held.
    """
    if fd < 0:
        return None
    if not _walked:
        _walk()
    owner = _current(fd)
    if owner is not None:
        return owner
    for ref in list(_CELLS.values()):  # a copy: other threads add and drop cells meanwhile
        held = ref()
        if held is None:
            continue
        if fd in (
            (held.fd, held.wake[0], held.wake[1])
            if cells.is_cell(held)
            else control.still_held(held, cells.RIGHTS_CONTROL_SIZE)
        ):
            # The owner object may have registered between the two lookups.
            return _current(fd) or InFlight(fd)
    return None
