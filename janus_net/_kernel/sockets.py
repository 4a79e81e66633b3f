"""A socket's making and naming: socket, bind, listen, connect, the names the kernel gives it, shutdown.

These are the steps of listen/bind/connect before an owner object exists, and the
probes of the adoption door. Every socket janus_net makes goes through the one
`socket` here, straight into an owned cell (`janus_net._kernel.cells`), close-on-exec
from birth: ``SOCK_CLOEXEC`` where the platform has it, else socket() then fcntl, with
the cell closed again if fcntl fails. (The native step sequence makes the same call in
C with the same type flags, ``platform.SOCKET_TYPE_FLAGS``, and only where the flag
exists: janus_net._kernel.step_sequence.)

The calls take a raw fd the caller holds in a cell for the moment, or the cell
itself where the native call is a ``jn_desc_*`` one (`shutdown_on`).
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned
from collections.abc import Mapping

from janus_net import platform
from janus_net._kernel.cells import close_desc
from janus_net._kernel.flags import set_cloexec
from janus_net._kernel.loop import (
    NOT_ADOPTABLE,
    OUR_FD,
    OUR_POINTER,
    OUR_SOCKET,
    Checkpoint,
    Syscall,
    retry,
)
from janus_net._kernel.socket_options import getsockopt_int
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


SOCKET = Syscall(
    "socket",
    {
        E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
        # EINVAL: unknown type or flags (e.g. SOCK_CLOEXEC on a kernel without it).
        E.EINVAL: SocketError.ProtocolUnsupportedBySystem,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.EPROTONOSUPPORT: SocketError.ProtocolUnsupportedByAddressFamily,
        E.EPROTOTYPE: SocketError.SocketModeUnsupported,
        # ESOCKTNOSUPPORT: a mode the family lacks, such as SEQPACKET or RDM on IP.
        E.ESOCKTNOSUPPORT: SocketError.SocketModeUnsupported,
        # EACCES: e.g. SOCK_RAW without CAP_NET_RAW, or an LSM policy.
        E.EACCES: SocketError.AccessDenied,
    },
)


def socket(
    desc: Any, family: int, type_: int, proto: int, checkpoint: Checkpoint | None = None, table: Syscall | None = None
) -> int:
    """socket(2) into the cell ``desc``: close-on-exec (SOCK_CLOEXEC, or socket()+fcntl, closed again on failure).

    The fd is in the cell when the call returns, so it is closed (with `close_desc`, or
    by the cell's collection) whatever exception comes after. ``table`` replaces SOCKET
    (and FCNTL, for the emulated close-on-exec) when the socket is one step of a larger
    conversation with a table of its own (SOCK_DIAG: the netlink socket of `unix_diag`).
    """
    fd = retry(
        SOCKET if table is None else table,
        lib.jn_desc_socket,
        (desc, family, type_ | platform.SOCKET_TYPE_FLAGS, proto),
        checkpoint,
    )
    if not platform.HAS_SOCK_CLOEXEC:
        try:
            set_cloexec(fd, checkpoint, table)
        except BaseException:
            close_desc(desc)
            raise
    return fd


FCHMOD = Syscall(
    "fchmod",
    {E.EPERM: SocketError.AccessDenied, E.EROFS: SocketError.ReadOnlyFileSystem},
    {E.EBADF: OUR_FD, E.EINVAL: "the mode was checked to be permission bits (0..0o7777) before any syscall"},
)


def fchmod(fd: int, mode: int, checkpoint: Checkpoint | None = None) -> None:
    """fchmod on an unbound unix socket: Linux gives the file bind creates this mode."""
    retry(FCHMOD, lib.fchmod, (fd, mode), checkpoint)


_BIND_IP_ERRORS: dict[int, type[SocketError]] = {
    # EACCES: a port below 1024 without CAP_NET_BIND_SERVICE.
    E.EACCES: SocketError.AccessDenied,
    # EADDRINUSE: also when port 0 was asked and every ephemeral port is taken.
    E.EADDRINUSE: SocketError.AddressInUse,
    E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
    # EADDRNOTAVAIL: the address is not on any local interface.
    E.EADDRNOTAVAIL: SocketError.AddressUnavailable,
    # ENODEV: the zone (scope id) names no interface, or one that went away: [fe80::1%9999]:0.
    E.ENODEV: SocketError.AddressUnavailable,
    E.ENOMEM: SocketError.SystemResources,
}

_BIND_IP_BUGS: dict[int, str] = {
    E.EBADF: OUR_FD,
    E.ENOTSOCK: "bind runs only on a socket janus_net just made",
    E.EFAULT: OUR_POINTER,
    # The user-reachable EINVALs are caught before the syscall (options.validate): an
    # IPv4-mapped address with ip6_only=True, a link-local address without a zone, an
    # IPv6 multicast address on a stream socket.
    E.EINVAL: "the socket was made a moment ago (so not yet bound) and the length is the one its sockaddr "
    "was encoded with; the inputs the kernel rejects with EINVAL are refused before the syscall",
}

BIND_IP = Syscall("bind", _BIND_IP_ERRORS, _BIND_IP_BUGS, label="bind (IP)")

BIND_UNIX = Syscall(
    "bind",
    {
        **_BIND_IP_ERRORS,
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # EPERM: e.g. a sticky or immutable directory refusing the new inode.
        E.EPERM: SocketError.AccessDenied,
    },
    {
        **_BIND_IP_BUGS,
        E.ENAMETOOLONG: "every UnixAddress is checked to fit in sun_path (parsed or built directly) before "
        "it is encoded, and the kernel checks nothing longer",
    },
    label="bind (unix)",
)


def bind(
    fd: int,
    sockaddr: Any,
    length: int,
    *,
    unix: bool,
    checkpoint: Checkpoint | None = None,
    address: object = None,
) -> None:
    """bind(2), with the unix table (file system errors) for AF_UNIX addresses."""
    retry(BIND_UNIX if unix else BIND_IP, lib.bind, (fd, sockaddr, length), checkpoint, address)


LISTEN = Syscall(
    "listen",
    {
        # EADDRINUSE: another socket listens on the port (SO_REUSEPORT races).
        E.EADDRINUSE: SocketError.AddressInUse,
        # EOPNOTSUPP: listen on a datagram socket.
        E.EOPNOTSUPP: SocketError.SocketModeUnsupported,
    },
    {E.EBADF: OUR_FD, E.ENOTSOCK: "listen runs only on a socket janus_net just made"},
)


def listen(fd: int, backlog: int, checkpoint: Checkpoint | None = None, address: object = None) -> None:
    """listen(2)."""
    retry(LISTEN, lib.listen, (fd, backlog), checkpoint, address)


_STORAGE_P = ffi.typeof("struct sockaddr_storage *")

_STORAGE_SIZE = ffi.sizeof("struct sockaddr_storage")

_SOCKADDR_P = ffi.typeof("struct sockaddr *")

_SOCKLEN_P = ffi.typeof("socklen_t *")

GETSOCKNAME = Syscall(
    "getsockname",
    {E.ENOBUFS: SocketError.SystemResources},
    {
        E.EBADF: OUR_FD,
        E.EFAULT: OUR_POINTER,
        E.EINVAL: "the length passed is sizeof(struct sockaddr_storage), never negative",
        E.ENOTSOCK: OUR_SOCKET,
    },
)


def getsockname(fd: int, table: Syscall | None = None) -> tuple[Any, int]:
    """The socket's local address as (struct sockaddr_storage *, length); ``table`` as for `getsockopt_int`."""
    storage = ffi.new(_STORAGE_P)
    size = ffi.new(_SOCKLEN_P, _STORAGE_SIZE)
    retry(GETSOCKNAME if table is None else table, lib.getsockname, (fd, ffi.cast(_SOCKADDR_P, storage), size))
    return storage, int(size[0])


GETPEERNAME = Syscall(
    "getpeername",
    {E.ENOBUFS: SocketError.SystemResources, E.ENOTCONN: SocketError.SocketUnconnected},
    {
        E.EBADF: OUR_FD,
        E.EFAULT: OUR_POINTER,
        E.EINVAL: "the length passed is sizeof(struct sockaddr_storage), never negative",
        E.ENOTSOCK: OUR_SOCKET,
    },
)

# The adoption door's names of a descriptor it did not make (see loop.NOT_ADOPTABLE).
_ADOPT_NAME_ERRORS: Mapping[int, type[SocketError]] = {
    E.EBADF: NOT_ADOPTABLE,
    E.ENOTSOCK: NOT_ADOPTABLE,
    # EOPNOTSUPP: a family whose sockets have no name to give (AF_XDP).
    E.EOPNOTSUPP: NOT_ADOPTABLE,
    E.ENOBUFS: SocketError.SystemResources,
}

_ADOPT_NAME_BUGS = {
    E.EFAULT: OUR_POINTER,
    E.EINVAL: "the length passed is sizeof(struct sockaddr_storage), never negative",
}

ADOPT_GETSOCKNAME = Syscall("getsockname", _ADOPT_NAME_ERRORS, _ADOPT_NAME_BUGS, label="getsockname (adoption)")

ADOPT_GETPEERNAME = Syscall(
    "getpeername",
    {**_ADOPT_NAME_ERRORS, E.ENOTCONN: SocketError.SocketUnconnected},
    _ADOPT_NAME_BUGS,
    label="getpeername (adoption)",
)


def getpeername(fd: int, table: Syscall | None = None) -> tuple[Any, int]:
    """The socket's peer address as (struct sockaddr_storage *, length); ``table`` as for `getsockopt_int`."""
    storage = ffi.new(_STORAGE_P)
    size = ffi.new(_SOCKLEN_P, _STORAGE_SIZE)
    retry(GETPEERNAME if table is None else table, lib.getpeername, (fd, ffi.cast(_SOCKADDR_P, storage), size))
    return storage, int(size[0])


# The calls below are internal steps, not rows of DESIGN §5, but they get tables too so
# that nothing escapes the one loop.
SHUTDOWN = Syscall(
    "shutdown",
    # ENOTCONN: shutting down a socket that never connected; harmless for our uses.
    {E.ENOTCONN: SocketError.SocketUnconnected},
    {
        E.EBADF: OUR_FD,
        E.EINVAL: "how is SHUT_RD, SHUT_WR or SHUT_RDWR, a constant from the compiler",
        E.ENOTSOCK: OUR_SOCKET,
    },
)


def shutdown(fd: int, how: int) -> None:
    """shutdown(2); wakes threads blocked in accept or recv on this socket."""
    retry(SHUTDOWN, lib.shutdown, (fd, how))


def shutdown_on(desc: Any, how: int, address: object = None) -> None:
    """shutdown(2) of an owned socket: stops it for every holder of its description."""
    retry(SHUTDOWN, lib.jn_desc_shutdown, (desc, how), None, address)


# --- Connecting: a probe of a unix socket file (`connect`), a client (`connect_start`).

#: `connect_start`'s answer when a TCP connect is under way (EINPROGRESS): wait for POLLOUT.
IN_PROGRESS = -2

_IN_PROGRESS_ERRNOS = frozenset({E.EINPROGRESS, E.EALREADY})

CONNECT = Syscall(
    "connect",
    {
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ENOENT: SocketError.FileNotFound,
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        E.EPROTOTYPE: SocketError.SocketModeUnsupported,
        E.ETIMEDOUT: SocketError.ConnectionTimedOut,
        E.ENETUNREACH: SocketError.NetworkUnreachable,
        E.EHOSTUNREACH: SocketError.HostUnreachable,
        E.EADDRNOTAVAIL: SocketError.AddressUnavailable,
        # A client's causes (jn.connect), from connect itself or read back with SO_ERROR.
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
        E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        # An ICMP error a router or the peer sends while the SYN is out (tcp_v4_err makes
        # the fatal ones the socket's error, read back with SO_ERROR): host unknown,
        # host isolated, protocol unreachable, parameter problem, source route failed
        # (EOPNOTSUPP: a router could not deliver the SYN by the route asked). Protocol
        # unreachable is ProtocolFailure, not ConnectionRefused: only ECONNREFUSED may tell
        # the unix stale-file probe that nobody listens.
        E.EHOSTDOWN: SocketError.HostUnreachable,
        E.EOPNOTSUPP: SocketError.HostUnreachable,
        E.ENONET: SocketError.NetworkUnreachable,
        E.ENOPROTOOPT: SocketError.ProtocolFailure,
        E.EPROTO: SocketError.ProtocolFailure,
    },
    {
        E.EBADF: OUR_FD,
        E.EFAULT: OUR_POINTER,
        E.ENOTSOCK: "connect runs only on a socket janus_net just made (a stale-file probe or jn.connect)",
        E.EISCONN: "the socket was made a moment ago and connect is retried only while no connection started",
    },
)


def connect(fd: int, sockaddr: Any, length: int, address: object = None, nonblocking: bool = False) -> int:
    """connect(2) of a probe socket: whether a unix socket file is stale (jn.connect uses connect_start).

    Returns `WOULD_BLOCK` when ``nonblocking`` and the connection cannot complete at
    once (for a unix socket: the listener's backlog is full).
    """
    return retry(CONNECT, lib.connect, (fd, sockaddr, length), None, address, nonblocking)


def connect_start(fd: int, sockaddr: Any, length: int, checkpoint: Checkpoint | None, address: object) -> int:
    """A non-blocking connect(2): 0 when connected, `IN_PROGRESS`, or `WOULD_BLOCK`.

    `WOULD_BLOCK` (EAGAIN) is what a unix socket says when the listener's backlog is
    full: no connection was started, so the caller waits a little and calls again.
    """
    try:
        return retry(CONNECT, lib.connect, (fd, sockaddr, length), checkpoint, address, True)
    except SocketError.Unexpected as e:
        if e.errno in _IN_PROGRESS_ERRNOS:
            return IN_PROGRESS
        raise


def connect_result(fd: int, address: object) -> None:
    """After POLLOUT on a connecting socket: raise the CONNECT member for SO_ERROR, if any."""
    err = getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_ERROR)
    if err:
        raise CONNECT.error(err, address)
