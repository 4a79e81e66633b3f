"""Socket options: setsockopt and getsockopt, each with the table its callers need.

Three setsockopt/getsockopt tables, one per kind of caller: the options listen and bind
set on a socket they just made (SETSOCKOPT: every errno but "unsupported" is a bug),
the server options of DESIGN §16 (SETSOCKOPT_SERVER: EPERM and ENODEV are the
caller's), and the reads of the adoption door (ADOPT_GETSOCKOPT: EBADF and ENOTSOCK
say what the descriptor is). A read takes a raw fd or an owned cell; the cell's native
call counts itself in flight (janus_net._kernel.cells).
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned

from janus_net._kernel.loop import NOT_ADOPTABLE, OUR_FD, OUR_POINTER, OUR_SOCKET, Checkpoint, Syscall, retry
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


# setsockopt only reads its value, so the boxes for 0 and 1 (nearly every option) are
# made once and shared by every call and thread.
_INT_SIZE = ffi.sizeof("int")

_INT_BOXES = {0: ffi.new("int *", 0), 1: ffi.new("int *", 1)}

SETSOCKOPT = Syscall(
    "setsockopt",
    {
        E.ENOPROTOOPT: SocketError.OptionUnsupported,
        # EOPNOTSUPP: the family has no such option (SO_REUSEPORT on a unix socket);
        # options.validate rejects the known cases before the socket exists.
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOBUFS: SocketError.SystemResources,
    },
    {
        E.EBADF: OUR_FD,
        E.ENOTSOCK: OUR_SOCKET,
        E.EINVAL: "optlen is sizeof(int), computed here; options are set on sockets janus_net just made, before "
        "bind, where each is valid (SO_NOSIGPIPE, valid at any time, aside); values are checked before any syscall",
        E.EFAULT: OUR_POINTER,
    },
)


def setsockopt_int(fd: int, level: int, option: int, value: int, checkpoint: Checkpoint | None = None) -> None:
    """setsockopt with an int value (every option janus_net sets is one)."""
    box = _INT_BOXES.get(value)
    if box is None:
        box = ffi.new("int *", value)
    retry(SETSOCKOPT, lib.setsockopt, (fd, level, option, box, _INT_SIZE), checkpoint)


GETSOCKOPT = Syscall(
    "getsockopt",
    {E.ENOPROTOOPT: SocketError.OptionUnsupported},
    {
        E.EBADF: OUR_FD,
        E.ENOTSOCK: OUR_SOCKET,
        E.EINVAL: "optlen is sizeof(int), computed here, for options every socket has",
        E.EFAULT: OUR_POINTER,
    },
)

#: getsockopt on a descriptor janus_net did not make (see loop.NOT_ADOPTABLE).
ADOPT_GETSOCKOPT = Syscall(
    "getsockopt",
    {E.EBADF: NOT_ADOPTABLE, E.ENOTSOCK: NOT_ADOPTABLE, E.ENOPROTOOPT: SocketError.OptionUnsupported},
    bugs={E.EFAULT: OUR_POINTER, E.EINVAL: "optlen is sizeof(int), computed here, for options every socket has"},
    label="getsockopt (adoption)",
)


def getsockopt_int(fd: int | Any, level: int, option: int, table: Syscall | None = None) -> int:
    """getsockopt of an int-valued option, on an fd or on an owned cell (counted in flight).

    ``table``: `ADOPT_GETSOCKOPT` for a descriptor janus_net did not make (the adoption door).
    """
    box = ffi.new("int *")
    size = ffi.new("socklen_t *", ffi.sizeof("int"))
    retry(GETSOCKOPT if table is None else table, _getsockopt_of(fd), (fd, level, option, box, size))
    return int(box[0])


def _getsockopt_of(fd: int | Any) -> Any:
    # An int is a descriptor janus_net holds for the moment; a cell is an owned socket.
    return lib.getsockopt if type(fd) is int else lib.jn_desc_getsockopt


SETSOCKOPT_SERVER = Syscall(
    "setsockopt",
    {
        E.ENOPROTOOPT: SocketError.OptionUnsupported,
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
        # EPERM: transparent without CAP_NET_ADMIN/CAP_NET_RAW, device without CAP_NET_RAW.
        E.EPERM: SocketError.AccessDenied,
        # ENODEV: SO_BINDTODEVICE names no interface in the socket's namespace.
        E.ENODEV: SocketError.AddressUnavailable,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOBUFS: SocketError.SystemResources,
    },
    bugs={
        E.EBADF: "the options are set on the socket the same call just made",
        E.ENOTSOCK: "the descriptor is the socket the same call just made",
        E.EINVAL: "the lengths and the two-instruction BPF program are built by janus_net",
        E.EFAULT: "every value points to memory janus_net allocated for the call",
    },
    label="setsockopt (§16 options)",
)


def setsockopt_server(
    fd: int, level: int, option: int, value: Any, size: int, checkpoint: Checkpoint | None = None
) -> None:
    """setsockopt of a DESIGN §16 option (its own errno table: EPERM, ENODEV are the caller's)."""
    retry(SETSOCKOPT_SERVER, lib.setsockopt, (fd, level, option, value, size), checkpoint)


def getsockopt_buffer(fd: int | Any, level: int, option: int, size: int) -> bytes:
    """getsockopt into a ``size``-byte buffer; returns the bytes the kernel wrote."""
    buf = ffi.new("char[]", size)
    length = ffi.new("socklen_t *", size)
    retry(GETSOCKOPT, _getsockopt_of(fd), (fd, level, option, buf, length))
    return ffi.buffer(buf, int(length[0]))[:]


def peer_credentials(fd: int | Any) -> tuple[int, int, int]:
    """SO_PEERCRED on a connected unix socket (an fd or an owned cell): the peer's (pid, uid, gid) at connect time."""
    if not lib.JN_HAS_UCRED:
        raise SocketError.OptionUnsupported(None, "this platform has no SO_PEERCRED", syscall="getsockopt")
    cred = ffi.new("struct ucred *")
    size = ffi.new("socklen_t *", ffi.sizeof("struct ucred"))
    retry(GETSOCKOPT, _getsockopt_of(fd), (fd, lib.SOL_SOCKET, lib.JN_SO_PEERCRED, cred, size))
    return int(cred.pid), int(cred.uid), int(cred.gid)
