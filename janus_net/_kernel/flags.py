"""The flags of a descriptor and of the open file description behind it (fcntl(2)).

Three questions, one syscall: close-on-exec (``FD_CLOEXEC``, per descriptor: the way to
it on a platform without ``SOCK_CLOEXEC``), ``O_NONBLOCK`` and the access mode (per open
file description, so shared with every other holder: janus_net reads these, and sets
``O_NONBLOCK`` only on descriptions it made; DESIGN §3 "Shared sockets").
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned

from janus_net._kernel.loop import NOT_ADOPTABLE, OUR_FD, Checkpoint, Syscall, retry
from janus_net._shim import ffi, lib

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    pass


FCNTL = Syscall("fcntl", {}, {E.EBADF: OUR_FD})

#: fcntl on a descriptor janus_net did not make (the adoption door): EBADF says what it is.
ADOPT_FCNTL = Syscall("fcntl", {E.EBADF: NOT_ADOPTABLE}, label="fcntl (adoption)")


def set_cloexec(fd: int, checkpoint: Checkpoint | None = None, table: Syscall | None = None) -> None:
    """fcntl(fd, F_SETFD, FD_CLOEXEC): the Darwin way to a close-on-exec fd (``table`` as for `getsockopt_int`)."""
    retry(FCNTL if table is None else table, lib.fcntl, (fd, lib.F_SETFD, ffi.cast("int", lib.FD_CLOEXEC)), checkpoint)


def set_nonblocking(fd: int, on: bool, checkpoint: Checkpoint | None = None) -> None:
    """Set or clear O_NONBLOCK on the file description behind ``fd`` (fcntl F_GETFL/F_SETFL)."""
    flags = retry(FCNTL, lib.fcntl, (fd, lib.F_GETFL, ffi.cast("int", 0)), checkpoint)
    wanted = flags | lib.O_NONBLOCK if on else flags & ~lib.O_NONBLOCK
    if wanted != flags:
        retry(FCNTL, lib.fcntl, (fd, lib.F_SETFL, ffi.cast("int", wanted)), checkpoint)


def file_flags(fd: int, table: Syscall | None = None) -> int:
    """fcntl(fd, F_GETFL): the access mode and status flags (O_PATH, O_NONBLOCK...) of the description."""
    return retry(FCNTL if table is None else table, lib.fcntl, (fd, lib.F_GETFL, ffi.cast("int", 0)))
