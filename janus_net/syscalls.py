"""The one retry loop every wrapped syscall goes through, and one errno table per syscall.

Zig writes ``while (true) { checkCancel(); switch (errno(rc)) { ... } }`` once per
syscall. Here the loop is written once, in `retry`, and each syscall contributes
only data: a `Syscall` with its errno table. The loop:

1. calls the libc function (or, when a test armed the fault seam, the fault);
2. on success returns the result;
3. on EINTR runs the checkpoint (a context's ``check``) and calls again: a signal
   handler that raises, such as SIGINT's KeyboardInterrupt, runs here too, because
   the interpreter delivers pending signals at the loop's backward jump (PEP 475);
4. otherwise looks the errno up in the syscall's table: a mapped errno becomes its
   `SocketError` member; a bug errno becomes `ErrnoBug` (debug) or `Unexpected`
   (release); anything else becomes `Unexpected`.

The tables are looked at only on failure, so the success path costs one call and
one comparison.
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned
import sys
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from janus_net import errors, platform
from janus_net._shim import ffi, lib
from janus_net.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Protocol


Checkpoint = Callable[[], None]

_FS_ENCODING = sys.getfilesystemencoding()

#: Returned instead of raising when a ``nonblocking=True`` call would block.
WOULD_BLOCK = -1
_WOULD_BLOCK_ERRNOS = frozenset({E.EAGAIN, E.EWOULDBLOCK})


if TYPE_CHECKING:

    class Fault(Protocol):
        """What the fault seam (`janus_net.testing.fail`) arms on a syscall."""

        def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
            """Either call ``fn(*args)`` or set ``ffi.errno`` and return -1."""


class Syscall:
    """One syscall's errno table: which errno means which `SocketError` member.

    Attributes:
        name: the syscall's name as users see it in errors and in the fault seam.
        label: how the docs name the table (``"bind (unix)"``); ``name`` unless two share it.
        errors: errno -> member, for causes a caller can handle.
        bugs: errno -> why only a bug of janus_net can produce it. A row belongs here
            only if no input of a caller, no peer on the network and no other process
            can cause it; the reason says why (the docs print it, tests read it).
        retry_eintr: False only for close, whose fd is gone after EINTR on Linux.
        fault: set only while a test's fault seam is armed.
    """

    __slots__ = ("bugs", "errors", "fault", "label", "name", "retry_eintr")

    def __init__(
        self,
        name: str,
        errors: Mapping[int, type[SocketError]],
        bugs: Mapping[int, str] | Iterable[int] = MappingProxyType({}),
        *,
        retry_eintr: bool = True,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.label = name if label is None else label
        self.errors: Mapping[int, type[SocketError]] = MappingProxyType(dict(errors))
        # A bare errno (a table written before reasons were data) gets no reason, and
        # tests/test_errno_doc.py names the row until it has one.
        rows = bugs.items() if isinstance(bugs, Mapping) else ((err, "") for err in bugs)
        self.bugs: Mapping[int, str] = MappingProxyType(dict(rows))
        self.retry_eintr = retry_eintr
        self.fault: Fault | None = None

    def error(self, err: int, address: object = None) -> BaseException:
        """The exception for errno ``err`` from this syscall."""
        where = None if address is None else str(address)
        member = self.errors.get(err)
        if member is not None:
            return member(err, syscall=self.name, address=where)
        if err in self.bugs and errors.DEBUG:
            return ErrnoBug(err, self.name)
        return SocketError.Unexpected(err, syscall=self.name, address=where)

    def __repr__(self) -> str:
        return f"Syscall({self.label!r})"


def retry(
    syscall: Syscall,
    fn: Callable[..., int],
    args: tuple[Any, ...],
    checkpoint: Checkpoint | None = None,
    address: object = None,
    nonblocking: bool = False,
) -> int:
    """Call ``fn(*args)`` until it does not fail with EINTR; map any other failure.

    With ``nonblocking=True``, EAGAIN/EWOULDBLOCK return `WOULD_BLOCK` instead of
    raising, for callers that wait with poll and try again.
    """
    fault = syscall.fault
    rc = fn(*args) if fault is None else fault.call(fn, args)
    if rc >= 0:
        return rc
    return after_failure(syscall, fn, args, checkpoint, address, nonblocking)


def after_failure(
    syscall: Syscall,
    fn: Callable[..., int],
    args: tuple[Any, ...],
    checkpoint: Checkpoint | None = None,
    address: object = None,
    nonblocking: bool = False,
) -> int:
    """The loop of `retry`, entered after ``fn(*args)`` has just failed (errno is its errno).

    A hot path makes its first attempt inline, where the fault seam is unarmed, and
    comes here only when that attempt failed: the attempt is never made twice (a
    second sendto would consume the next pending error, or send twice).
    """
    while True:
        err = ffi.errno
        if err == E.EINTR and syscall.retry_eintr:
            if checkpoint is not None:
                checkpoint()
            fault = syscall.fault
            rc = fn(*args) if fault is None else fault.call(fn, args)
            if rc >= 0:
                return rc
            continue
        if nonblocking and err in _WOULD_BLOCK_ERRNOS:
            return WOULD_BLOCK
        raise syscall.error(err, address)


# --- The tables (DESIGN §5). One row per errno; a comment where the reason is not obvious.
# Bug rows carry their reason as data: `bug_rows_markdown` prints them for the docs.

# Reasons shared by many tables.
_OUR_FD = "the descriptor is one janus_net owns and keeps open while the call runs; only a double close frees it"
_OUR_SOCKET = "the descriptor is a socket janus_net made, or one it checked is a socket (fstat) before adopting it"
_OUR_POINTER = "every pointer passed is memory janus_net allocated for this call"

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
        E.EBADF: _OUR_FD,
        E.ENOTSOCK: _OUR_SOCKET,
        E.EINVAL: "optlen is sizeof(int), computed here; options are set on sockets janus_net just made, before "
        "bind, where each is valid (SO_NOSIGPIPE, valid at any time, aside); values are checked before any syscall",
        E.EFAULT: _OUR_POINTER,
    },
)

GETSOCKOPT = Syscall(
    "getsockopt",
    {E.ENOPROTOOPT: SocketError.OptionUnsupported},
    {
        E.EBADF: _OUR_FD,
        E.ENOTSOCK: _OUR_SOCKET,
        E.EINVAL: "optlen is sizeof(int), computed here, for options every socket has",
        E.EFAULT: _OUR_POINTER,
    },
)

FCNTL = Syscall("fcntl", {}, {E.EBADF: _OUR_FD})

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
    E.EBADF: _OUR_FD,
    E.ENOTSOCK: "bind runs only on a socket janus_net just made",
    E.EFAULT: _OUR_POINTER,
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

LISTEN = Syscall(
    "listen",
    {
        # EADDRINUSE: another socket listens on the port (SO_REUSEPORT races).
        E.EADDRINUSE: SocketError.AddressInUse,
        # EOPNOTSUPP: listen on a datagram socket.
        E.EOPNOTSUPP: SocketError.SocketModeUnsupported,
    },
    {E.EBADF: _OUR_FD, E.ENOTSOCK: "listen runs only on a socket janus_net just made"},
)

GETSOCKNAME = Syscall(
    "getsockname",
    {E.ENOBUFS: SocketError.SystemResources},
    {
        E.EBADF: _OUR_FD,
        E.EFAULT: _OUR_POINTER,
        E.EINVAL: "the length passed is sizeof(struct sockaddr_storage), never negative",
        E.ENOTSOCK: _OUR_SOCKET,
    },
)

GETPEERNAME = Syscall(
    "getpeername",
    {E.ENOBUFS: SocketError.SystemResources, E.ENOTCONN: SocketError.SocketUnconnected},
    {
        E.EBADF: _OUR_FD,
        E.EFAULT: _OUR_POINTER,
        E.EINVAL: "the length passed is sizeof(struct sockaddr_storage), never negative",
        E.ENOTSOCK: _OUR_SOCKET,
    },
)

ACCEPT = Syscall(
    "accept",
    {
        E.ECONNABORTED: SocketError.ConnectionAborted,
        # EINVAL: not listening, which is what shutdown() makes of a listener.
        E.EINVAL: SocketError.SocketNotListening,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.EPROTO: SocketError.ProtocolFailure,
        # EPERM: Linux firewall rules forbid the connection.
        E.EPERM: SocketError.BlockedByFirewall,
    },
    {
        E.EBADF: _OUR_FD,
        E.EFAULT: _OUR_POINTER,
        E.ENOTSOCK: _OUR_SOCKET,
        E.EOPNOTSUPP: "a Server is always a stream socket (made by listen, or adopted only after SO_TYPE and "
        "SO_ACCEPTCONN said so), and no process can change a socket's type",
    },
)

SEND = Syscall(
    "send",
    {
        E.EACCES: SocketError.AccessDenied,
        # ECONNREFUSED: an earlier datagram drew an ICMP port unreachable, or a unix
        # destination has no socket bound to it.
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.EMSGSIZE: SocketError.MessageTooBig,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.EHOSTUNREACH: SocketError.HostUnreachable,
        E.ENETUNREACH: SocketError.NetworkUnreachable,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
        E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
        # EINVAL: a destination the kernel rejects. The known ones (port 0, another
        # family) are refused before the syscall by address.check_destination.
        E.EINVAL: SocketError.AddressUnavailable,
        # EISCONN: a destination given to a connected connection-mode socket (an adopted,
        # connected unix stream); EOPNOTSUPP: to one that is not connected.
        E.EISCONN: SocketError.SocketModeUnsupported,
        E.EOPNOTSUPP: SocketError.SocketModeUnsupported,
        # EPIPE: the peer is gone (SIGPIPE is suppressed, so we see the errno).
        E.EPIPE: SocketError.SocketUnconnected,
        E.ENOTCONN: SocketError.SocketUnconnected,
        # A unix destination path: the file system's answers, as for bind.
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        # EPROTOTYPE: the unix destination is a socket of another type (a stream).
        E.EPROTOTYPE: SocketError.SocketModeUnsupported,
        # EPERM: the destination does not let this socket send to it. A unix datagram
        # socket connected to another socket takes datagrams from that peer only
        # (unix_may_send in unix_dgram_sendmsg): its owner, not the caller, decides. A
        # netfilter rule that drops the datagram on output, an LSM and Landlock's
        # abstract-unix scope answer EPERM too. AccessDenied, not ConnectionRefused:
        # the destination exists and listens; this sender is what it refuses.
        E.EPERM: SocketError.AccessDenied,
        # ECONNABORTED: another process destroyed the connection (ss -K, SOCK_DESTROY),
        # reported to the next write.
        E.ECONNABORTED: SocketError.ConnectionAborted,
        # ETIMEDOUT: the peer stopped acknowledging (retransmissions or TCP_USER_TIMEOUT ran
        # out, a keepalive went unanswered); the next write reports it.
        E.ETIMEDOUT: SocketError.ConnectionTimedOut,
    },
    {
        E.EBADF: _OUR_FD,
        E.EDESTADDRREQ: "Socket.send and send_many always pass a destination, and Stream.write runs only on "
        "a connected stream",
        E.EFAULT: _OUR_POINTER,
        E.ENOTSOCK: _OUR_SOCKET,
    },
)

RECEIVE = Syscall(
    "receive",
    {
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOTCONN: SocketError.SocketUnconnected,
        # EINVAL: Linux's answer to a read on a unix stream socket that is not connected
        # (bind("unix:...", mode=Mode.STREAM) then receive), where TCP says ENOTCONN.
        E.EINVAL: SocketError.SocketUnconnected,
        E.ETIMEDOUT: SocketError.ConnectionTimedOut,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
    },
    {
        E.EBADF: _OUR_FD,
        E.EFAULT: _OUR_POINTER,
        E.ENOTSOCK: _OUR_SOCKET,
        E.EOPNOTSUPP: "the only flags passed are MSG_DONTWAIT and MSG_WAITFORONE, which every IP and unix "
        "socket takes; only MSG_OOB and the like draw EOPNOTSUPP",
    },
)

# close: EINTR is not retried (on Linux the fd is already released, and a retry could
# close a descriptor another thread just opened); every other error is ignored.
CLOSE = Syscall("close", {}, {E.EBADF: "a double close: the descriptor was closed already"}, retry_eintr=False)

# The calls below are internal steps, not rows of DESIGN §5, but they get tables too so
# that nothing escapes the one loop.
SHUTDOWN = Syscall(
    "shutdown",
    # ENOTCONN: shutting down a socket that never connected; harmless for our uses.
    {E.ENOTCONN: SocketError.SocketUnconnected},
    {
        E.EBADF: _OUR_FD,
        E.EINVAL: "how is SHUT_RD, SHUT_WR or SHUT_RDWR, a constant from the compiler",
        E.ENOTSOCK: _OUR_SOCKET,
    },
)

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
        # jn.connect's rows: a client's causes, from connect or SO_ERROR.
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
        E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        # An ICMP error a router or the peer sends while the SYN is out (tcp_v4_err makes
        # the fatal ones the socket's error, read back with SO_ERROR): host unknown,
        # host isolated, protocol unreachable, parameter problem. Protocol unreachable
        # is ProtocolFailure, not ConnectionRefused: only ECONNREFUSED may tell the unix
        # stale-file probe that nobody listens.
        E.EHOSTDOWN: SocketError.HostUnreachable,
        E.ENONET: SocketError.NetworkUnreachable,
        E.ENOPROTOOPT: SocketError.ProtocolFailure,
        E.EPROTO: SocketError.ProtocolFailure,
    },
    {
        E.EBADF: _OUR_FD,
        E.EFAULT: _OUR_POINTER,
        E.ENOTSOCK: "connect runs only on a socket janus_net just made (a stale-file probe or jn.connect)",
        E.EISCONN: "the socket was made a moment ago and connect is retried only while no connection started",
    },
)

FCHMOD = Syscall(
    "fchmod",
    {E.EPERM: SocketError.AccessDenied, E.EROFS: SocketError.ReadOnlyFileSystem},
    {E.EBADF: _OUR_FD, E.EINVAL: "the mode was checked to be permission bits (0..0o7777) before any syscall"},
)

POLL = Syscall(
    "poll",
    {E.ENOMEM: SocketError.SystemResources},
    {
        E.EFAULT: _OUR_POINTER,
        E.EINVAL: "nfds is at most 2 (the socket and a wake fd), far below RLIMIT_NOFILE",
    },
)

# sendmsg for UDP segmentation offload and for a reply from a chosen source address
# (DESIGN §15). Both are named "send", so the fault seam's "send" reaches them too; each
# is SEND with the rows its control message adds.

#: sendmsg with a UDP_SEGMENT control message. The added rows mean "this socket or
#: route cannot segment": `janus_net.segments` catches OptionUnsupported from this table
#: and sends the same datagrams with sendmmsg instead, so a user never sees these rows.
SEND_SEGMENTS = Syscall(
    "send",
    {
        **SEND.errors,
        # EIO: the route cannot segment: an IPsec (xfrm) route, or (kernels before 6.11)
        # a device without checksum offload.
        E.EIO: SocketError.OptionUnsupported,
        # EINVAL: SO_NO_CHECK on the socket, more segments than the kernel's
        # UDP_MAX_SEGMENTS, or (older kernels) a segment larger than the route's MTU.
        E.EINVAL: SocketError.OptionUnsupported,
        # EMSGSIZE: a segment larger than the route's MTU (newer kernels). The total was
        # checked against the UDP limit before the call, so this is the route, not the
        # data: sent one by one, such datagrams are fragmented (or refused, with
        # IP_PMTUDISC_DO, as MessageTooBig by the fallback's own SEND table).
        E.EMSGSIZE: SocketError.OptionUnsupported,
        # ENOPROTOOPT / EOPNOTSUPP: a kernel or socket type without UDP_SEGMENT.
        E.ENOPROTOOPT: SocketError.OptionUnsupported,
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
    },
    bugs={err: why for err, why in SEND.bugs.items() if err not in (E.EINVAL, E.EOPNOTSUPP)},
    label="send (segments)",
)

#: sendmsg with an IP_PKTINFO / IPV6_PKTINFO control message naming the source address.
SEND_FROM = Syscall(
    "send",
    {
        **SEND.errors,
        # EINVAL: the source address is not an address of this host (or not of the
        # interface a link-local one names): the caller chose it.
        E.EINVAL: SocketError.AddressUnavailable,
    },
    bugs={err: why for err, why in SEND.bugs.items() if err != E.EINVAL},
    label="send (from source)",
)

# sendmsg with SCM_RIGHTS (send_sockets, notify): send's causes, plus one of its own.
SENDMSG = Syscall(
    "sendmsg",
    {
        **SEND.errors,
        # ETOOMANYREFS: more descriptors in flight than the sender's RLIMIT_NOFILE allows.
        E.ETOOMANYREFS: SocketError.SystemResources,
    },
    bugs=SEND.bugs,
    label="sendmsg (descriptors)",
)

#: Every table, for tests and the fault seam to iterate.
TABLES: tuple[Syscall, ...] = (
    SOCKET,
    SETSOCKOPT,
    GETSOCKOPT,
    FCNTL,
    BIND_IP,
    BIND_UNIX,
    LISTEN,
    GETSOCKNAME,
    GETPEERNAME,
    ACCEPT,
    SEND,
    RECEIVE,
    CLOSE,
    SHUTDOWN,
    CONNECT,
    FCHMOD,
    POLL,
    SEND_SEGMENTS,
    SEND_FROM,
    SENDMSG,
)


def bug_rows_markdown(tables: tuple[Syscall, ...] | None = None) -> str:
    """The bug rows of ``tables`` (default: every table) as a Markdown table: syscall, errno, why.

    docs/errno-tables.md holds its output; a test keeps the two in step.
    """
    if tables is None:
        tables = TABLES  # read at call time: tables appended later in this module count too
    lines = ["| syscall | errno | why only a bug of janus_net can produce it |", "| --- | --- | --- |"]
    for table in tables:
        for err, reason in sorted(table.bugs.items(), key=lambda row: errors.errno_name(row[0])):
            lines.append(f"| {table.label} | {errors.errno_name(err)} | {reason} |")
    return "\n".join(lines) + "\n"


# --- Typed wrappers on raw fds: the steps of listen/bind before an owner exists, and
# probes. Calls on owned sockets are in the section after these.


def set_cloexec(fd: int, checkpoint: Checkpoint | None = None, table: Syscall | None = None) -> None:
    """fcntl(fd, F_SETFD, FD_CLOEXEC): the Darwin way to a close-on-exec fd (``table`` as for `getsockopt_int`)."""
    retry(FCNTL if table is None else table, lib.fcntl, (fd, lib.F_SETFD, ffi.cast("int", lib.FD_CLOEXEC)), checkpoint)


def socket(family: int, type_: int, proto: int, checkpoint: Checkpoint | None = None) -> int:
    """A new close-on-exec socket: SOCK_CLOEXEC where it exists, else socket()+fcntl.

    On the emulated path the fd is closed if fcntl fails, so no fd escapes.
    """
    fd = retry(SOCKET, lib.socket, (family, type_ | platform.SOCKET_TYPE_FLAGS, proto), checkpoint)
    if not platform.HAS_SOCK_CLOEXEC:
        _cloexec_or_close(fd, checkpoint)
    return fd


def _cloexec_or_close(fd: int, checkpoint: Checkpoint | None) -> None:
    try:
        set_cloexec(fd, checkpoint)
    except BaseException:
        close(fd)
        raise


# setsockopt only reads its value, so the boxes for 0 and 1 (nearly every option) are
# made once and shared by every call and thread.
_INT_SIZE = ffi.sizeof("int")
_INT_BOXES = {0: ffi.new("int *", 0), 1: ffi.new("int *", 1)}


def setsockopt_int(fd: int, level: int, option: int, value: int, checkpoint: Checkpoint | None = None) -> None:
    """setsockopt with an int value (every option janus_net sets is one)."""
    box = _INT_BOXES.get(value)
    if box is None:
        box = ffi.new("int *", value)
    retry(SETSOCKOPT, lib.setsockopt, (fd, level, option, box, _INT_SIZE), checkpoint)


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


def fchmod(fd: int, mode: int, checkpoint: Checkpoint | None = None) -> None:
    """fchmod on an unbound unix socket: Linux gives the file bind creates this mode."""
    retry(FCHMOD, lib.fchmod, (fd, mode), checkpoint)


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


def connect(fd: int, sockaddr: Any, length: int, address: object = None, nonblocking: bool = False) -> int:
    """connect(2) of a probe socket: whether a unix socket file is stale (jn.connect uses connect_start).

    Returns `WOULD_BLOCK` when ``nonblocking`` and the connection cannot complete at
    once (for a unix socket: the listener's backlog is full).
    """
    return retry(CONNECT, lib.connect, (fd, sockaddr, length), None, address, nonblocking)


def set_nonblocking(fd: int, on: bool, checkpoint: Checkpoint | None = None) -> None:
    """Set or clear O_NONBLOCK on the file description behind ``fd`` (fcntl F_GETFL/F_SETFL)."""
    flags = retry(FCNTL, lib.fcntl, (fd, lib.F_GETFL, ffi.cast("int", 0)), checkpoint)
    wanted = flags | lib.O_NONBLOCK if on else flags & ~lib.O_NONBLOCK
    if wanted != flags:
        retry(FCNTL, lib.fcntl, (fd, lib.F_SETFL, ffi.cast("int", wanted)), checkpoint)


def listen(fd: int, backlog: int, checkpoint: Checkpoint | None = None, address: object = None) -> None:
    """listen(2)."""
    retry(LISTEN, lib.listen, (fd, backlog), checkpoint, address)


_STORAGE_P = ffi.typeof("struct sockaddr_storage *")
_STORAGE_SIZE = ffi.sizeof("struct sockaddr_storage")
_SOCKADDR_P = ffi.typeof("struct sockaddr *")
_SOCKLEN_P = ffi.typeof("socklen_t *")


def getsockname(fd: int, table: Syscall | None = None) -> tuple[Any, int]:
    """The socket's local address as (struct sockaddr_storage *, length); ``table`` as for `getsockopt_int`."""
    storage = ffi.new(_STORAGE_P)
    size = ffi.new(_SOCKLEN_P, _STORAGE_SIZE)
    retry(GETSOCKNAME if table is None else table, lib.getsockname, (fd, ffi.cast(_SOCKADDR_P, storage), size))
    return storage, int(size[0])


def getpeername(fd: int, table: Syscall | None = None) -> tuple[Any, int]:
    """The socket's peer address as (struct sockaddr_storage *, length); ``table`` as for `getsockopt_int`."""
    storage = ffi.new("struct sockaddr_storage *")
    size = ffi.new("socklen_t *", ffi.sizeof("struct sockaddr_storage"))
    retry(GETPEERNAME if table is None else table, lib.getpeername, (fd, ffi.cast("struct sockaddr *", storage), size))
    return storage, int(size[0])


def shutdown(fd: int, how: int) -> None:
    """shutdown(2); wakes threads blocked in accept or recv on this socket."""
    retry(SHUTDOWN, lib.shutdown, (fd, how))


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


# --- Client connections and passing descriptors (connect, send_sockets,
# receive_sockets, notify). sendmsg has its own table (SENDMSG); recvmsg uses RECEIVE,
# whose causes are the same, and the fault seam reaches it as "receive".

#: `connect_start`'s answer when a TCP connect is under way (EINPROGRESS): wait for POLLOUT.
IN_PROGRESS = -2
_IN_PROGRESS_ERRNOS = frozenset({E.EINPROGRESS, E.EALREADY})


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


def peer_credentials(fd: int | Any) -> tuple[int, int, int]:
    """SO_PEERCRED on a connected unix socket (an fd or an owned cell): the peer's (pid, uid, gid) at connect time."""
    if not lib.JN_HAS_UCRED:
        raise SocketError.OptionUnsupported(None, "this platform has no SO_PEERCRED", syscall="getsockopt")
    cred = ffi.new("struct ucred *")
    size = ffi.new("socklen_t *", ffi.sizeof("struct ucred"))
    retry(GETSOCKOPT, _getsockopt_of(fd), (fd, lib.SOL_SOCKET, lib.JN_SO_PEERCRED, cred, size))
    return int(cred.pid), int(cred.uid), int(cred.gid)


def recvmsg(fd: int, msg: Any, flags: int, checkpoint: Checkpoint | None = None, nonblocking: bool = False) -> int:
    """recvmsg(2) into a prepared ``struct msghdr *`` (RECEIVE table); 0 means end of stream.

    `WOULD_BLOCK` when ``nonblocking`` and nothing is there.
    """
    return retry(RECEIVE, lib.recvmsg, (fd, msg, flags), checkpoint, None, nonblocking)


# --- Landlock, network namespaces and the server options of DESIGN §14/§16 (janus_net.landlock,
# janus_net.netns, janus_net.sockopts call these wrappers).

LANDLOCK_CREATE_RULESET = Syscall(
    "landlock_create_ruleset",
    {
        # EOPNOTSUPP: built in but disabled at boot (lsm=); ENOSYS: not built in at all.
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
        E.ENOSYS: SocketError.OptionUnsupported,
        E.ENOMEM: SocketError.SystemResources,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
    },
    bugs={
        E.EINVAL: "an unknown flag or access bit: the ABI is asked first, so only a bug sends one",
        E.E2BIG: "the attribute size is ours, taken from the compiler's struct layout",
        E.EFAULT: "the attribute pointer is a struct janus_net allocated",
        E.ENOMSG: "an empty access mask: we always handle LANDLOCK_ACCESS_NET_BIND_TCP",
    },
)

LANDLOCK_ADD_RULE = Syscall(
    "landlock_add_rule",
    {E.ENOMEM: SocketError.SystemResources},
    bugs={
        E.EINVAL: "a port above 65535 or an unhandled access bit: NetBind checks ports first",
        E.ENOMSG: "an empty access mask: every rule allows LANDLOCK_ACCESS_NET_BIND_TCP",
        E.EBADF: "the ruleset descriptor was made by the same call just before",
        E.EBADFD: "the descriptor is the Landlock ruleset the same call created",
        E.EFAULT: "the rule pointer is a struct janus_net allocated",
        E.EPERM: "the ruleset handles the access right the rule names, always",
        E.EAFNOSUPPORT: "network rules are only added after the ABI said they exist",
    },
)

LANDLOCK_RESTRICT_SELF = Syscall(
    "landlock_restrict_self",
    {
        # EPERM: neither no_new_privs nor CAP_SYS_ADMIN (a seccomp filter may also refuse prctl).
        E.EPERM: SocketError.AccessDenied,
        # E2BIG: the thread already has the maximum of stacked Landlock domains (16).
        E.E2BIG: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={
        E.EINVAL: "flags are 0 or LANDLOCK_RESTRICT_SELF_TSYNC, the latter only on ABI 8",
        E.EBADF: "the ruleset descriptor was made by the same call just before",
        E.EBADFD: "the descriptor is the Landlock ruleset the same call created",
    },
)

PRCTL = Syscall(
    "prctl",
    {E.EPERM: SocketError.AccessDenied},
    bugs={
        E.EINVAL: "PR_SET_NO_NEW_PRIVS with 1 and zero arguments is valid since Linux 3.5",
        E.EFAULT: "PR_SET_NO_NEW_PRIVS takes no pointer at all",
    },
)

# seccomp(2), for the filter NetBind.enforce installs beside the Landlock ruleset.
SECCOMP_ACTION_AVAIL = Syscall(
    "seccomp",
    {
        # EINVAL: a kernel built without seccomp filters (every operation is EINVAL);
        # ENOSYS: no seccomp(2) at all; EOPNOTSUPP: SECCOMP_RET_ERRNO unknown.
        E.EINVAL: SocketError.OptionUnsupported,
        E.ENOSYS: SocketError.OptionUnsupported,
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
    },
    bugs={E.EFAULT: "the action is an unsigned int janus_net passes by address"},
    label="seccomp (action available)",
)

SECCOMP_SET_FILTER = Syscall(
    "seccomp",
    {
        # EACCES: neither no_new_privs nor CAP_SYS_ADMIN (enforce sets no_new_privs first).
        E.EACCES: SocketError.AccessDenied,
        # ENOMEM: the filters of the thread would exceed the kernel's 32768 instructions, or memory.
        E.ENOMEM: SocketError.SystemResources,
        # ESRCH: another thread cannot take the filter (it runs a filter of its own).
        E.ESRCH: SocketError.OptionUnsupported,
    },
    bugs={
        E.EINVAL: "the program is built from the kernel's own constants, and TSYNC/TSYNC_ESRCH exist on every "
        "kernel with Landlock network rules (6.7)",
        E.EFAULT: "the program and its instructions are memory janus_net allocated",
    },
    label="seccomp (set filter)",
)

NS_OPEN = Syscall(
    "open",
    {
        E.ENOENT: SocketError.FileNotFound,
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOTDIR: SocketError.NotDir,
        # ENAMETOOLONG: the path names no namespace file; ENXIO: a unix socket file or a
        # device without a driver; EISDIR cannot happen read-only but is the same story.
        E.ENAMETOOLONG: SocketError.InvalidAddress,
        E.ENXIO: SocketError.InvalidAddress,
        E.ENODEV: SocketError.InvalidAddress,
        E.EISDIR: SocketError.InvalidAddress,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EFAULT: "the path is a bytes object cffi passes as a valid pointer"},
    label="open (namespace file)",
)

NS_GET_NSTYPE = Syscall(
    "ioctl",
    # ENOTTY/EINVAL: the file is not a namespace file at all.
    {E.ENOTTY: SocketError.InvalidAddress, E.EINVAL: SocketError.InvalidAddress},
    bugs={
        E.EBADF: "the descriptor was opened by the same helper just before",
        E.EFAULT: "NS_GET_NSTYPE takes no pointer argument at all",
    },
)

SETNS = Syscall(
    "setns",
    {
        # EINVAL: not a namespace, or a namespace of another kind than CLONE_NEWNET.
        E.EINVAL: SocketError.InvalidAddress,
        # EPERM: no CAP_SYS_ADMIN over the namespace's owning user namespace.
        E.EPERM: SocketError.AccessDenied,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EBADF: "the namespace descriptor was opened by the same helper just before"},
)

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

TABLES = (
    *TABLES,
    LANDLOCK_CREATE_RULESET,
    LANDLOCK_ADD_RULE,
    LANDLOCK_RESTRICT_SELF,
    PRCTL,
    SECCOMP_ACTION_AVAIL,
    SECCOMP_SET_FILTER,
    NS_OPEN,
    NS_GET_NSTYPE,
    SETNS,
    SETSOCKOPT_SERVER,
)


def landlock_abi() -> int:
    """The Landlock ABI version the running kernel offers; 0 without Landlock (ENOSYS, EOPNOTSUPP)."""
    if not lib.JN_HAS_LANDLOCK:
        return 0
    try:
        return retry(
            LANDLOCK_CREATE_RULESET,
            lib.jn_landlock_create_ruleset,
            (ffi.NULL, ffi.NULL, 0, lib.JN_LANDLOCK_CREATE_RULESET_VERSION),  # no cell: no fd is made
        )
    except SocketError.OptionUnsupported:
        return 0


# The public question `janus_net.platform.landlock_abi()` is this door's: handed up to the
# facts module, which never imports the door (DESIGN §2: no arrow from facts into the door).
platform.hand_up(landlock_abi)


def landlock_create_ruleset(desc: Any, attr: Any, size: int) -> int:
    """landlock_create_ruleset(attr, size, 0) into the cell ``desc``: a new ruleset fd (close-on-exec)."""
    return retry(LANDLOCK_CREATE_RULESET, lib.jn_landlock_create_ruleset, (desc, attr, size, 0))


def landlock_add_net_port_rule(ruleset: int, attr: Any) -> None:
    """landlock_add_rule(ruleset, LANDLOCK_RULE_NET_PORT, attr, 0)."""
    retry(LANDLOCK_ADD_RULE, lib.jn_landlock_add_net_port_rule, (ruleset, attr))


def landlock_restrict_self(ruleset: int, flags: int) -> None:
    """landlock_restrict_self(ruleset, flags): irreversible for this thread and what it starts."""
    retry(LANDLOCK_RESTRICT_SELF, lib.jn_landlock_restrict_self, (ruleset, flags))


def seccomp_action_available(action: int) -> None:
    """seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action): OptionUnsupported unless the kernel has filters and ``action``."""
    retry(SECCOMP_ACTION_AVAIL, lib.jn_seccomp_action_avail, (action,))


def seccomp_set_filter(flags: int, program: Any) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): irreversible for the threads it reaches and their children."""
    retry(SECCOMP_SET_FILTER, lib.jn_seccomp_set_filter, (flags, program))


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again (irreversible)."""
    retry(PRCTL, lib.jn_set_no_new_privs, ())


def open_namespace(path: bytes, address: object = None) -> int:
    """open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) of a namespace file."""
    return retry(NS_OPEN, lib.jn_open_namespace, (path,), None, address)


def namespace_type(fd: int, address: object = None) -> int:
    """ioctl(fd, NS_GET_NSTYPE): the CLONE_NEW* kind of the namespace ``fd`` refers to."""
    return retry(NS_GET_NSTYPE, lib.jn_ns_get_nstype, (fd,), None, address)


def setns(fd: int, nstype: int, address: object = None) -> None:
    """setns(fd, nstype): the calling thread enters the namespace."""
    retry(SETNS, lib.jn_setns, (fd, nstype), None, address)


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


# --- Unix socket files (DESIGN §7): the lock beside the path, the file's identity and
# mode, and the kernel's list of bound unix sockets. Tables and wrappers kept together
# here, apart from the rows above.

OPEN = Syscall(
    "open",
    {
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        # ELOOP: O_NOFOLLOW met a symlink where the lock file or the socket file should be.
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOSPC: SocketError.SystemResources,
        E.EDQUOT: SocketError.SystemResources,
        # EISDIR / ENXIO: a directory or a socket sits where the lock file goes; the name is taken.
        E.EISDIR: SocketError.AddressInUse,
        E.ENXIO: SocketError.AddressInUse,
    },
    bugs={
        E.EBADF: "openat is given AT_FDCWD or a directory descriptor janus_net holds open",
        E.EFAULT: "the path is a buffer janus_net encoded for the call",
        E.EINVAL: "the open flags are constants janus_net chose, valid on every kernel it builds for",
    },
    label="open (unix file)",
)

FSTAT = Syscall(
    "fstat",
    {E.ENOMEM: SocketError.SystemResources},
    bugs={E.EBADF: _OUR_FD, E.EFAULT: "the stat buffer is a struct janus_net allocated for the call"},
)

CHMOD = Syscall(
    "chmod",
    {
        E.EPERM: SocketError.AccessDenied,
        E.EACCES: SocketError.AccessDenied,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # ENOENT: no /proc mounted, so /proc/self/fd/N does not exist.
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EFAULT: "the /proc/self/fd path is text janus_net built for the call"},
)

FCHOWN = Syscall(
    "fchown",
    {
        E.EPERM: SocketError.AccessDenied,
        E.EACCES: SocketError.AccessDenied,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # EINVAL: the uid or gid has no mapping in this process's user namespace.
        E.EINVAL: SocketError.AccessDenied,
        E.ENOMEM: SocketError.SystemResources,
        E.EDQUOT: SocketError.SystemResources,
    },
    bugs={
        E.EBADF: _OUR_FD,
        E.EFAULT: "the empty path of AT_EMPTY_PATH is a constant janus_net passes",
    },
)

FLOCK = Syscall(
    "flock",
    # ENOLCK: the kernel's lock table is full.
    {E.ENOLCK: SocketError.SystemResources},
    bugs={E.EBADF: _OUR_FD, E.EINVAL: "the lock operation is LOCK_EX (with LOCK_NB), a constant janus_net chose"},
)

SOCK_DIAG = Syscall(
    "sock_diag",
    {
        # No sock_diag in this kernel (EAFNOSUPPORT, EPROTONOSUPPORT), or no unix_diag
        # handler loaded (the kernel answers ENOENT): janus_net cannot ask.
        E.EAFNOSUPPORT: SocketError.ProtocolUnsupportedBySystem,
        E.EPROTONOSUPPORT: SocketError.ProtocolUnsupportedBySystem,
        E.ENOENT: SocketError.ProtocolUnsupportedBySystem,
        # EACCES / EPERM: a seccomp filter or an LSM forbids netlink.
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={
        E.EBADF: _OUR_FD,
        E.EFAULT: "the request and reply buffers are memory janus_net allocated for the call",
        E.ENOTSOCK: "the descriptor is the netlink socket the same call just made",
        E.EINVAL: "a malformed request, which only jn_udiag_request could lay out",
    },
)

#: The kernel reports a bound file's inode number in 32 bits (struct unix_diag_vfs).
VFS_INO_MASK = (1 << (8 * ffi.sizeof("unsigned int"))) - 1
#: One past the largest uid/gid: the all-ones value means "unchanged" to chown.
ID_LIMIT = (1 << (8 * ffi.sizeof("uid_t"))) - 1

# lstat and unlink look at and remove a path another process may change at any moment:
# every errno a racing process or a hostile directory can cause is a member, not a bug.
_PATH_ERRORS: Mapping[int, type[SocketError]] = {
    E.ENOENT: SocketError.FileNotFound,
    E.EACCES: SocketError.AccessDenied,
    E.EPERM: SocketError.AccessDenied,
    E.ENOTDIR: SocketError.NotDir,
    E.ELOOP: SocketError.SymLinkLoop,
    # ENAMETOOLONG: a path longer than PATH_MAX; a caller or a peer can hand one over.
    E.ENAMETOOLONG: SocketError.InvalidAddress,
    E.ENOMEM: SocketError.SystemResources,
    # EOVERFLOW: a 32-bit stat cannot hold the file's size or inode; janus_net builds 64-bit stat.
    E.EOVERFLOW: SocketError.SystemResources,
}

LSTAT = Syscall(
    "lstat", _PATH_ERRORS, bugs={E.EFAULT: "the path and the stat buffer are memory janus_net allocated for the call"}
)

UNLINK = Syscall(
    "unlink",
    {
        **_PATH_ERRORS,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # EBUSY: the path is a mount point; EISDIR: a directory took the socket's name.
        E.EBUSY: SocketError.AddressInUse,
        E.EISDIR: SocketError.AddressInUse,
    },
    bugs={E.EFAULT: "the path is a buffer janus_net encoded for the call"},
)

TABLES = (*TABLES, OPEN, FSTAT, LSTAT, UNLINK, CHMOD, FCHOWN, FLOCK, SOCK_DIAG)


def open_path(
    desc: Any, path: bytes, flags: int, mode: int = 0, checkpoint: Checkpoint | None = None, address: object = None
) -> int:
    """openat(AT_FDCWD, path, flags | O_CLOEXEC, mode) into the cell ``desc``: a close-on-exec descriptor of a file.

    The fd is in the cell when the call returns, so it is closed (with `close_desc`,
    or by the cell's collection) whatever exception comes after.
    """
    return retry(OPEN, lib.jn_desc_openat, (desc, lib.AT_FDCWD, path, flags | lib.O_CLOEXEC, mode), checkpoint, address)


class Stat:
    """What janus_net reads of fstat(2) and lstat(2): identity, type and permission bits, owner."""

    __slots__ = ("dev", "gid", "ino", "mode", "uid")

    def __init__(self, dev: int, ino: int, mode: int, uid: int, gid: int) -> None:
        self.dev = dev
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid

    @property
    def is_socket(self) -> bool:
        return self.mode & lib.S_IFMT == lib.S_IFSOCK

    @property
    def is_regular(self) -> bool:
        return self.mode & lib.S_IFMT == lib.S_IFREG

    @property
    def kind(self) -> str:
        """What the file is, for messages: ``"a socket"``, ``"a regular file"``..."""
        return _FILE_KINDS.get(self.mode & lib.S_IFMT, "some other kind of file")

    @property
    def identity(self) -> tuple[int, int]:
        """(st_dev, st_ino): which file this is, whatever its name."""
        return (self.dev, self.ino)


_FILE_KINDS = {
    lib.S_IFSOCK: "a socket",
    lib.S_IFREG: "a regular file",
    lib.S_IFDIR: "a directory",
    lib.S_IFIFO: "a pipe or FIFO",
    lib.S_IFCHR: "a character device",
    lib.S_IFBLK: "a block device",
    lib.S_IFLNK: "a symbolic link",
}


def fstat(fd: int, address: object = None, table: Syscall | None = None) -> Stat:
    """fstat(2); ``table`` as for `getsockopt_int`."""
    st = ffi.new("struct stat *")
    retry(FSTAT if table is None else table, lib.fstat, (fd, st), None, address)
    return Stat(int(st.st_dev), int(st.st_ino), int(st.st_mode), int(st.st_uid), int(st.st_gid))


def lstat(path: str | bytes, address: object = None) -> Stat:
    """lstat(2) of ``path``: what the name points at now (a final symlink is not followed).

    Raises `SocketError.FileNotFound` when nothing is there, as every other cause, typed.
    """
    st = ffi.new("struct stat *")
    retry(LSTAT, lib.lstat, (_path_bytes(path), st), None, address)
    return Stat(int(st.st_dev), int(st.st_ino), int(st.st_mode), int(st.st_uid), int(st.st_gid))


def unlink(path: str | bytes, address: object = None) -> None:
    """unlink(2) of ``path``; `SocketError.FileNotFound` when it is gone already."""
    retry(UNLINK, lib.unlink, (_path_bytes(path),), None, address)


def _path_bytes(path: str | bytes) -> bytes:
    # The filesystem encoding with surrogateescape, as os.fsencode: a name read from the
    # file system comes back as the same bytes. A NUL cannot be passed to the kernel.
    raw = path if isinstance(path, bytes) else path.encode(_FS_ENCODING, "surrogateescape")
    if b"\0" in raw:
        raise ValueError(f"a path with a NUL byte cannot name a file: {path!r}")
    return raw


def chmod_inode(path_fd: int, mode: int, address: object = None) -> None:
    """Set the mode of exactly the inode ``path_fd`` (an O_PATH descriptor) holds.

    chmod of the /proc/self/fd magic link reaches the inode itself, never a name that
    could have been swapped since the descriptor was opened.
    """
    retry(CHMOD, lib.chmod, (b"/proc/self/fd/%d" % path_fd, mode), None, address)


def fchown_inode(path_fd: int, uid: int | None, gid: int | None, address: object = None) -> None:
    """fchownat(path_fd, "", uid, gid, AT_EMPTY_PATH); None leaves that id unchanged."""
    keep_uid = ffi.cast("uid_t", -1 if uid is None else uid)
    keep_gid = ffi.cast("gid_t", -1 if gid is None else gid)
    retry(FCHOWN, lib.fchownat, (path_fd, b"", keep_uid, keep_gid, lib.JN_AT_EMPTY_PATH), None, address)


def flock(fd: int, operation: int, checkpoint: Checkpoint | None = None, nonblocking: bool = False) -> int:
    """flock(2). With ``nonblocking`` (LOCK_NB in ``operation``), `WOULD_BLOCK` while another holds it."""
    return retry(FLOCK, lib.flock, (fd, operation), checkpoint, None, nonblocking)


# A dump arrives in buffers the kernel sizes up to 32 KiB; a larger one never truncates.
_DIAG_BUFFER = 65536


def unix_diag(
    socket_ino: int, want: tuple[int, int] | None, checkpoint: Checkpoint | None = None
) -> tuple[int, int] | None:
    """Ask the kernel (NETLINK_SOCK_DIAG, UDIAG_SHOW_VFS) about bound unix sockets.

    ``socket_ino`` != 0: the file the socket with that inode number (fstat of the
    socket) is bound to, as ``(st_dev, st_ino & 0xffffffff)``, or None if it is bound
    to no file. ``socket_ino`` == 0 with ``want=(st_dev, st_ino)``: whether any
    socket of this network namespace is bound to that file (the match, or None).
    The kernel reports only the low 32 bits of the file's inode number.

    Raises:
        SocketError.ProtocolUnsupportedBySystem: the kernel cannot answer (no unix_diag).
        SocketError.AccessDenied: netlink is forbidden to this process.
        SocketError: ProcessFdQuotaExceeded, SystemResources... for the netlink socket.
    """
    if not platform.HAS_UNIX_DIAG:
        raise SocketError.ProtocolUnsupportedBySystem(
            None, "this platform has no sock_diag to list bound unix sockets", syscall=SOCK_DIAG.name
        )
    # The netlink socket lives in an owned cell from socket()'s return to the one close,
    # like every socket janus_net makes (janus_net.descriptor).
    desc = new_desc()
    try:
        family, type_ = lib.JN_AF_NETLINK, lib.SOCK_DGRAM | platform.SOCKET_TYPE_FLAGS
        fd = retry(SOCK_DIAG, lib.jn_desc_socket, (desc, family, type_, lib.JN_NETLINK_SOCK_DIAG), checkpoint)
        if not platform.HAS_SOCK_CLOEXEC:
            retry(SOCK_DIAG, lib.fcntl, (fd, lib.F_SETFD, ffi.cast("int", lib.FD_CLOEXEC)), checkpoint)
        dump = socket_ino == 0
        request = ffi.new("char[]", lib.JN_UDIAG_REQUEST_SIZE)
        length = lib.jn_udiag_request(request, socket_ino, 1 if dump else 0)
        retry(SOCK_DIAG, lib.jn_desc_send, (desc, request, length, 0), checkpoint)
        want_dev, want_ino = want if want is not None else (0, 0)
        buf = ffi.new("char[]", _DIAG_BUFFER)
        vfs_ino = ffi.new("unsigned int *")
        vfs_dev = ffi.new("unsigned long long *")
        error = ffi.new("int *")
        while True:
            got = retry(SOCK_DIAG, lib.jn_desc_recv, (desc, buf, _DIAG_BUFFER, 0), checkpoint)
            found = lib.jn_udiag_scan(
                buf, got, want_ino & VFS_INO_MASK, want_dev, 0 if dump else 1, vfs_ino, vfs_dev, error
            )
            if found == lib.JN_UDIAG_FOUND:
                return int(vfs_dev[0]), int(vfs_ino[0])
            if found == lib.JN_UDIAG_ERROR:
                raise SOCK_DIAG.error(int(error[0]))
            if found == lib.JN_UDIAG_DONE or not dump or got == 0:
                return None
    finally:
        close_desc(desc)


# --- The native step sequence (native/jn_steps.py; DESIGN §2 "Native fast paths")
#
# jn_steps makes the raw calls of listen/bind -- socket, setsockopt..., bind, listen,
# getsockname -- in one C call and stops at the first failure, EINTR included, with
# the failed step in io.at. The rules are this module's loop's: `retry` runs it (a
# negative start tells C to resume at io.at, so the loop's plain "call again" after
# EINTR resumes at the failed step, after the checkpoint), and any other errno is
# mapped through the table of the step that failed. While a test has armed the fault
# seam on any of the steps' tables, every step runs alone through `retry` with its
# own table instead, so `testing.fail`/`hold` see the same names, the same counts and
# the same rows as on the plain path. (Every table a step can have is checked, not
# just this plan's: six attribute reads, and stepping singly gives the same results.)


class _StepFailed(Exception):
    """A step failed with ``err``: the caller maps it with that step's table."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


class _Sequence(Syscall):
    """The loop's view of a native step sequence: no table of its own, no fault seam.

    Not in `TABLES`: the seam arms the steps' own tables, never this one.
    """

    __slots__ = ()

    def error(self, err: int, address: object = None) -> BaseException:
        return _StepFailed(err)


_SEQUENCE = _Sequence("steps", {})

# The plain path names the address in bind's and listen's errors only (its socket,
# setsockopt and getsockname wrappers take none); the steps' errors say the same.
_NAMES_ADDRESS = frozenset({BIND_IP, BIND_UNIX, LISTEN})


def steps(
    tables: tuple[Syscall | None, ...],
    plan: Any,
    io: Any,
    sa: Any,
    salen: int,
    start: int,
    stop: int,
    checkpoint: Checkpoint | None = None,
    address: object = None,
) -> None:
    """Run native steps ``start .. stop-1`` of ``plan`` (see native/jn_steps.py).

    Args:
        tables: the errno table of each step by index (None: a step this plan skips).
        plan, io: the ``struct jn_steps_plan *`` and ``struct jn_steps_io *``; the fd
            is in the cell ``io.desc`` from the moment socket() returned.
        sa, salen: the sockaddr to bind.
        checkpoint: run on every EINTR before the failed step is tried again.

    Raises:
        SocketError: the failed step's member (or ErrnoBug), from that step's table.
    """
    if not steps_armed():
        io.at = start
        args = (plan, io, sa, salen, -1, stop)
        if _SEQUENCE.fault is None:
            if lib.jn_steps(*args) >= 0:
                return  # the usual case: the loop is entered only after a failure
            loop = after_failure  # the attempt just made failed; later passes make their own
        else:
            loop = retry  # a test stands in for C (tests/test_steps.py)
        while True:
            try:
                loop(_SEQUENCE, lib.jn_steps, args, checkpoint, address)
                return
            except _StepFailed as failed:
                if io.expired:
                    # C stopped at a checkpoint past a stock context's deadline: the
                    # context's check() raises its Timeout (or, if not, C resumes there).
                    io.expired = 0
                    if checkpoint is not None:
                        checkpoint()
                    loop = retry
                    continue
                table = tables[io.at]
                assert table is not None  # a skipped step makes no call, so cannot fail
                raise table.error(failed.err, address if table in _NAMES_ADDRESS else None) from None
    for k in range(start, stop):  # the fault seam is armed: one step per pass of the loop
        table = tables[k]
        if table is not None:
            named = address if table in _NAMES_ADDRESS else None
            retry(table, lib.jn_steps, (plan, io, sa, salen, k, k + 1), checkpoint, named)


def steps_armed() -> bool:
    """Whether the fault seam is armed on any table a native step can have."""
    return not (
        SOCKET.fault is None
        and SETSOCKOPT.fault is None
        and BIND_IP.fault is None
        and BIND_UNIX.fault is None
        and LISTEN.fault is None
        and GETSOCKNAME.fault is None
    )


# --- Owned descriptors (`struct jn_desc`, native/unistd_h.py): the calls on a socket
# janus_net owns. Each native call takes the in-flight count, makes its one syscall and
# gives the count back before it returns, so no Python bytecode runs while a count is
# held; a new fd (socket, accept) is written into its cell before the call returns.
# Every one still goes through `retry` with its table, so the fault seam reaches it by
# the same name and rows as the plain call.

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

TABLES = (*TABLES, EVENTFD)

# --- The adoption door's probes (janus_net.adopt): a descriptor janus_net did not make.
# A number a caller names may be closed, or closed by another of its threads meanwhile;
# a descriptor a peer sends may be an O_PATH handle of a socket file (fstat says
# "socket", every socket call says EBADF), a pipe, or a socket of a family without
# getsockname (AF_XDP: EOPNOTSUPP). Here those errnos say what the descriptor is, so
# they are InvalidAddress rows, which the door words and, for a received descriptor,
# turns into ProtocolFailure; the tables above keep them as bugs for janus_net's own fds.
_NOT_ADOPTABLE = SocketError.InvalidAddress
_ADOPT_POINTER = "every pointer passed is memory janus_net allocated for this call"

ADOPT_FSTAT = Syscall(
    "fstat",
    {E.EBADF: _NOT_ADOPTABLE, E.ENOMEM: SocketError.SystemResources, E.EOVERFLOW: SocketError.SystemResources},
    bugs={E.EFAULT: _ADOPT_POINTER},
    label="fstat (adoption)",
)
ADOPT_FCNTL = Syscall("fcntl", {E.EBADF: _NOT_ADOPTABLE}, label="fcntl (adoption)")
ADOPT_GETSOCKOPT = Syscall(
    "getsockopt",
    {E.EBADF: _NOT_ADOPTABLE, E.ENOTSOCK: _NOT_ADOPTABLE, E.ENOPROTOOPT: SocketError.OptionUnsupported},
    bugs={E.EFAULT: _ADOPT_POINTER, E.EINVAL: "optlen is sizeof(int), computed here, for options every socket has"},
    label="getsockopt (adoption)",
)
_ADOPT_NAME_ERRORS: Mapping[int, type[SocketError]] = {
    E.EBADF: _NOT_ADOPTABLE,
    E.ENOTSOCK: _NOT_ADOPTABLE,
    # EOPNOTSUPP: a family whose sockets have no name to give (AF_XDP).
    E.EOPNOTSUPP: _NOT_ADOPTABLE,
    E.ENOBUFS: SocketError.SystemResources,
}
_ADOPT_NAME_BUGS = {
    E.EFAULT: _ADOPT_POINTER,
    E.EINVAL: "the length passed is sizeof(struct sockaddr_storage), never negative",
}
ADOPT_GETSOCKNAME = Syscall("getsockname", _ADOPT_NAME_ERRORS, _ADOPT_NAME_BUGS, label="getsockname (adoption)")
ADOPT_GETPEERNAME = Syscall(
    "getpeername",
    {**_ADOPT_NAME_ERRORS, E.ENOTCONN: SocketError.SocketUnconnected},
    _ADOPT_NAME_BUGS,
    label="getpeername (adoption)",
)

TABLES = (*TABLES, ADOPT_FSTAT, ADOPT_FCNTL, ADOPT_GETSOCKOPT, ADOPT_GETSOCKNAME, ADOPT_GETPEERNAME)


def file_flags(fd: int, table: Syscall | None = None) -> int:
    """fcntl(fd, F_GETFL): the access mode and status flags (O_PATH, O_NONBLOCK...) of the description."""
    return retry(FCNTL if table is None else table, lib.fcntl, (fd, lib.F_GETFL, ffi.cast("int", 0)))


#: The native owned-descriptor calls with their tables, for the hot paths that hand
#: them to `retry` themselves (one Python frame less per datagram than a wrapper).
SENDTO_CALL = (SEND, lib.jn_desc_sendto)
RECVFROM_CALL = (RECEIVE, lib.jn_desc_recvfrom)

#: Added to a `wait` result when the object is being closed.
WAIT_CLOSED: int = lib.JN_WAIT_CLOSED
#: Added to a `wait` result when the interpreter's signal wakeup fd fired.
WAIT_SIGNAL: int = lib.JN_WAIT_SIGNAL
_DESC_P = ffi.typeof("struct jn_desc *")


#: Called with every new cell while set: `janus_net.descriptor`'s registry of the fds
#: janus_net holds, switched on by the first adoption (the door knows nothing above it).
on_new_cell: Callable[[Any], None] | None = None


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
    if on_new_cell is not None:
        on_new_cell(cell)
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


def open_socket(desc: Any, family: int, type_: int, proto: int, checkpoint: Checkpoint | None = None) -> int:
    """socket(2) into ``desc``: close-on-exec (SOCK_CLOEXEC, or socket()+fcntl, closed again on failure)."""
    fd = retry(SOCKET, lib.jn_desc_socket, (desc, family, type_ | platform.SOCKET_TYPE_FLAGS, proto), checkpoint)
    if not platform.HAS_SOCK_CLOEXEC:
        try:
            set_cloexec(fd, checkpoint)
        except BaseException:
            close_desc(desc)
            raise
    return fd


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
    if on_new_cell is not None:  # received fds are held here, in flight, until claimed
        on_new_cell(buffer)
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


GETRLIMIT = Syscall(
    "getrlimit",
    {},
    bugs={
        E.EFAULT: "the struct rlimit is memory janus_net allocated for the call",
        E.EINVAL: "the resource is the compiler's RLIMIT_NOFILE",
    },
)

TABLES = (*TABLES, GETRLIMIT)


def nofile_limit(checkpoint: Checkpoint | None = None) -> int:
    """The soft RLIMIT_NOFILE: how many descriptors this process may hold (getrlimit(2))."""
    return nofile_limits(checkpoint)[0]


def nofile_limits(checkpoint: Checkpoint | None = None) -> tuple[int, int]:
    """RLIMIT_NOFILE's soft and hard limits (RLIM_INFINITY reads as the largest rlim_t)."""
    limit = ffi.new("struct rlimit *")
    retry(GETRLIMIT, lib.getrlimit, (lib.RLIMIT_NOFILE, limit), checkpoint)
    return int(limit.rlim_cur), int(limit.rlim_max)


def take_into(desc: Any, slot: Any) -> int:
    """Move the fd in ``slot`` (an ``int *``, e.g. a received SCM_RIGHTS entry) into ``desc``.

    One native call empties the slot and fills the cell, so at no bytecode is the fd
    held by neither (or by both). Returns the fd, or -1 when the slot was empty.
    """
    return int(lib.jn_desc_take(desc, slot))


def adopt_into(desc: Any, fd: int) -> None:
    """Put an inherited fd into ``desc``: from here on janus_net owns (and will close) it."""
    lib.jn_desc_adopt(desc, fd)


def kick_acceptor(desc: Any) -> None:
    """Signal (SIGURG) the thread sleeping inside accept(2) on ``desc``, if one is (see jn_desc_kick)."""
    lib.jn_desc_kick(desc)


def set_accept_gap(microseconds: int) -> None:
    """Test hook: sleep this long between the native accept's readiness check and accept(2)."""
    lib.jn_accept_gap_us = microseconds


def accept_into(
    desc: Any,
    storage: Any,
    size: Any,
    into: Any,
    checkpoint: Checkpoint | None = None,
    address: object = None,
    ctx_cell: Any = ffi.NULL,
) -> int:
    """One accept on ``desc``'s listener, the new fd written into the cell ``into``.

    Never blocks for a connection another thread of this process took: the attempt
    runs only when poll says one is queued, one thread at a time. Returns the fd, or
    `WOULD_BLOCK` when none is queued (or another thread is taking it right now, or
    ``ctx_cell`` -- a context's `new_waker_cell` -- says the context was cancelled).
    """
    sa = ffi.cast(_SOCKADDR_P, storage)
    flags = lib.JN_SOCK_CLOEXEC if platform.HAS_ACCEPT4 else -1
    conn = retry(ACCEPT, lib.jn_desc_accept, (desc, sa, size, flags, into, ctx_cell), checkpoint, address, True)
    if conn >= 0 and not platform.HAS_ACCEPT4:
        try:
            set_cloexec(conn, checkpoint)
        except BaseException:
            close_desc(into)
            raise
    return conn


def make_wake(desc: Any) -> None:
    """Give ``desc`` its wake fd (made once, on the first wait; closed with the descriptor)."""
    retry(EVENTFD, lib.jn_desc_make_wake, (desc,))


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
#: returns it, or -1. Called by `janus_net.socket` directly inside the expression that
#: gives the fd to its new owner, so that no janus_net bytecode runs while only a
#: Python int holds it.
DETACH = lib.jn_desc_detach


def send_on(desc: Any, data: Any, size: int, flags: int, address: object = None) -> int:
    """send(2) on a connected owned socket; `WOULD_BLOCK` when ``flags`` say MSG_DONTWAIT and it would."""
    return retry(SEND, lib.jn_desc_send, (desc, data, size, flags), None, address, True)


def recv_on(desc: Any, buf: Any, size: int, flags: int, checkpoint: Checkpoint | None = None) -> int:
    """recv(2) on an owned socket; 0 at end of stream, `WOULD_BLOCK` when it would block."""
    return retry(RECEIVE, lib.jn_desc_recv, (desc, buf, size, flags), checkpoint, None, True)


def sendmmsg_on(desc: Any, msgs: Any, count: int, flags: int, address: object = None) -> int:
    """sendmmsg(2) of ``count`` prepared ``struct mmsghdr``; returns how many went.

    The SEND table applies: the kernel reports an error only when the first message
    fails (a later failure ends the batch early and shows as a smaller count).
    `WOULD_BLOCK` when ``flags`` say MSG_DONTWAIT and nothing could go.
    """
    return retry(SEND, lib.jn_desc_sendmmsg, (desc, msgs, count, flags), None, address, True)


def recvmmsg_on(desc: Any, msgs: Any, count: int, flags: int, checkpoint: Checkpoint | None = None) -> int:
    """recvmmsg(2) into ``count`` prepared ``struct mmsghdr``; returns how many arrived.

    No timeout is ever passed (the shim passes NULL): recvmmsg checks its timeout only
    after a datagram arrives (BUGS in recvmmsg(2)), so callers wait with poll instead.
    `WOULD_BLOCK` when nothing is queued.
    """
    return retry(RECEIVE, lib.jn_desc_recvmmsg, (desc, msgs, count, flags), checkpoint, None, True)


def poll(fds: Any, count: int, timeout_ms: int, checkpoint: Checkpoint | None = None, drain: bool = False) -> int:
    """poll(2) on a ``struct pollfd[]`` of descriptors no socket object owns; EINTR runs the checkpoint.

    A retry reuses the same timeout; callers that care about a deadline pass a
    checkpoint that raises once it has passed. ``drain``: the last entry is
    janus_net's own signal wakeup pipe, emptied when it fired.
    """
    return retry(POLL, lib.jn_poll_wakeup, (fds, count, timeout_ms, drain), checkpoint)


def sendmsg_on(
    desc: Any, msg: Any, flags: int, table: Syscall = SEND, address: object = None, checkpoint: Checkpoint | None = None
) -> int:
    """sendmsg(2) of a prepared ``struct msghdr *`` on an owned socket; `WOULD_BLOCK` when it would block.

    ``table`` is SEND, or the table of the control message it carries (SEND_SEGMENTS,
    SEND_FROM, SENDMSG for descriptors).
    """
    return retry(table, lib.jn_desc_sendmsg, (desc, msg, flags), checkpoint, address, True)


def sendmsg_rights_on(
    desc: Any, msg: Any, flags: int, cells: Any, slots: Any, count: int, closed_at: Any,
    address: object = None, checkpoint: Checkpoint | None = None,
) -> int:  # fmt: skip
    """`sendmsg_on` with SCM_RIGHTS for the sockets in ``cells``, each held in flight during the call.

    Their fds are written into ``slots`` (the message's SCM_RIGHTS data) by the native
    call itself. If one of them is closing already, nothing is sent: the SENDMSG
    table's EBADF row is raised and ``closed_at[0]`` is its index.
    """
    return retry(
        SENDMSG,
        lib.jn_desc_sendmsg_rights,
        (desc, msg, flags, cells, slots, count, closed_at),
        checkpoint,
        address,
        True,
    )


def recvmsg_on(desc: Any, msg: Any, flags: int, checkpoint: Checkpoint | None = None) -> int:
    """recvmsg(2) into a prepared ``struct msghdr *`` on an owned socket; `WOULD_BLOCK` when nothing is there."""
    return retry(RECEIVE, lib.jn_desc_recvmsg, (desc, msg, flags), checkpoint, None, True)


def shutdown_on(desc: Any, how: int, address: object = None) -> None:
    """shutdown(2) of an owned socket: stops it for every holder of its description."""
    retry(SHUTDOWN, lib.jn_desc_shutdown, (desc, how), None, address)


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

    The pipe janus_net installs as the interpreter's signal wakeup fd (janus_net.wakeup).
    """
    retry(EVENTFD, lib.jn_wakeup_new, (cell,))
    return int(cell[0]), int(cell[1])


def close_waker(cell: Any) -> None:
    """Close what a waker cell holds now (its collection would too); never signals it."""
    lib.jn_waker_close(cell)


# --- Processes: what `janus-net run` asks of the kernel (its wake pipe, its copies of
# the passed sockets, starting, signalling and reaping its commands), random bytes for
# its notify name, and the command's stdout pointed at /dev/null after a failed write.
# os.* would retry EINTR inside CPython, where no checkpoint runs; these go through
# `retry` like every other call. ESRCH from kill and ECHILD from waitpid are answers,
# not failures: the wrappers return them as values (`kill` False, `waitpid` None).

RANDOM = Syscall(
    "getrandom",
    # ENOSYS: a kernel older than getrandom(2) (Linux 3.17).
    {E.ENOSYS: SocketError.OptionUnsupported},
    bugs={
        E.EFAULT: _OUR_POINTER,
        E.EINVAL: "the flags are 0 (getrandom) and the length at most 256 (getentropy)",
    },
)

PIPE = Syscall(
    "pipe",
    {
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        # ENFILE: the system's file table, or the user's pipe buffer quota, is full.
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
    },
    bugs={
        E.EFAULT: "the two ints are on the native call's own stack",
        E.EINVAL: "the flags are O_CLOEXEC and O_NONBLOCK, constants from the compiler",
    },
)

DUP_ABOVE = Syscall(
    "fcntl",
    {
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        # EINVAL: the lowest number asked (3 + the number of sockets) is at or above
        # RLIMIT_NOFILE: the sockets to pass do not fit under the limit.
        E.EINVAL: SocketError.ProcessFdQuotaExceeded,
    },
    bugs={E.EBADF: _OUR_FD},
    label="fcntl (F_DUPFD_CLOEXEC)",
)

SPAWN = Syscall(
    "posix_spawn",
    {
        # The program is /bin/sh: these are its file's answers (sh itself reports
        # COMMAND's own, as 127 and 126).
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        # ENOEXEC / ETXTBSY: the file is there but cannot be run (a bad format, open for writing).
        E.ENOEXEC: SocketError.AccessDenied,
        E.ETXTBSY: SocketError.AccessDenied,
        # EAGAIN: RLIMIT_NPROC or the pid limit of a cgroup.
        E.EAGAIN: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        # E2BIG: COMMAND's arguments and the environment exceed the kernel's limit (ARG_MAX).
        E.E2BIG: SocketError.SystemResources,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
    },
    bugs={
        E.EBADF: "the dup2 sources are the copies janus-net run holds open in its cells for the whole run",
        E.EFAULT: "argv and envp are NULL-terminated arrays janus_net built for the call",
        E.EINVAL: "the file actions and attributes are built by the same native call from valid signal numbers",
    },
)

KILL = Syscall(
    "kill",
    # EPERM: the command changed its user (a setuid program) and may no longer be signalled.
    {E.EPERM: SocketError.AccessDenied},
    bugs={E.EINVAL: "the signal is SIGTERM, SIGKILL or a stop signal just received: numbers from the signal module"},
)

WAITPID = Syscall(
    "waitpid",
    {},
    bugs={
        E.EINVAL: "the options are WNOHANG, a constant from the compiler",
        E.EFAULT: "the status is an int janus_net allocated for the call",
    },
)

READ = Syscall(
    "read",
    {},
    bugs={
        E.EBADF: _OUR_FD,
        E.EFAULT: _OUR_POINTER,
        E.EINVAL: "the descriptor is a pipe janus_net made, readable into any buffer",
    },
)

DUP2 = Syscall(
    "dup2",
    # EBUSY: Linux's answer when another thread is opening a file at the target number.
    {E.EBUSY: SocketError.SystemResources},
    bugs={
        E.EBADF: "the source is the descriptor the same call just opened, the target 1 (stdout)",
        E.EINVAL: "dup2 takes no flags; only dup3 answers EINVAL",
    },
)

TABLES = (*TABLES, RANDOM, PIPE, DUP_ABOVE, SPAWN, KILL, WAITPID, READ, DUP2)


def random_bytes(count: int) -> bytes:
    """``count`` (at most 256) random bytes from the kernel (getrandom, or getentropy)."""
    buf = ffi.new("char[]", count)
    got = retry(RANDOM, lib.jn_random, (buf, count))
    return ffi.unpack(buf, got)


def pipe(read_end: Any, write_end: Any) -> tuple[int, int]:
    """A close-on-exec, non-blocking pipe into the cells ``read_end`` and ``write_end``; its two fds."""
    retry(PIPE, lib.jn_desc_pipe, (read_end, write_end))
    return int(read_end.fd), int(write_end.fd)


def dup_above(into: Any, fd: int, low: int) -> int:
    """fcntl(fd, F_DUPFD_CLOEXEC, low) into the cell ``into``: a close-on-exec copy numbered ``low`` or more."""
    return retry(DUP_ABOVE, lib.jn_desc_dup_above, (into, fd, low))


def spawn(
    path: str, argv: list[str], env: Mapping[str, str], dups: list[tuple[int, int]], defaults: Iterable[int]
) -> int:
    """posix_spawn(path, argv, env): the child's pid.

    In the child, each ``(source, target)`` of ``dups`` is dup2'ed (its copy is not
    close-on-exec), the signal mask is empty and each signal of ``defaults`` has its
    default action.
    """
    keep = [ffi.new("char[]", os_bytes(text)) for text in argv]
    keep_env = [ffi.new("char[]", os_bytes(f"{key}={value}")) for key, value in env.items()]
    argv_c = ffi.new("char *[]", [*keep, ffi.NULL])
    env_c = ffi.new("char *[]", [*keep_env, ffi.NULL])
    sources = ffi.new("int[]", [source for source, _ in dups] or [0])
    targets = ffi.new("int[]", [target for _, target in dups] or [0])
    signals = list(defaults)
    sigdef = ffi.new("int[]", signals or [0])
    pid = ffi.new("pid_t *")
    args = (pid, os_bytes(path), argv_c, env_c, sources, targets, len(dups), sigdef, len(signals))
    retry(SPAWN, lib.jn_spawn, args, None, path)
    return int(pid[0])


def os_bytes(text: str) -> bytes:
    """``text`` as the kernel takes a path or an argument: the file system encoding, surrogateescape, no NUL."""
    return _path_bytes(text)


def kill(pid: int, signum: int) -> bool:
    """kill(pid, signum); False when no such process is left (ESRCH)."""
    try:
        retry(KILL, lib.kill, (pid, signum))
    except SocketError.Unexpected as e:
        if e.errno == E.ESRCH:
            return False
        raise
    return True


def waitpid(pid: int, options: int) -> tuple[int, int] | None:
    """waitpid(pid, &status, options): (pid, wait status); (0, 0) with WNOHANG while none ended; None: no children."""
    status = ffi.new("int *")
    try:
        got = retry(WAITPID, lib.waitpid, (pid, status, options))
    except SocketError.Unexpected as e:
        if e.errno == E.ECHILD:
            return None
        raise
    return got, int(status[0])


def read(fd: int, size: int) -> bytes | None:
    """read(2) of up to ``size`` bytes from a non-blocking descriptor; None when nothing is there."""
    buf = ffi.new("char[]", size)
    got = retry(READ, lib.read, (fd, buf, size), None, None, True)
    if got == WOULD_BLOCK:
        return None
    return ffi.unpack(buf, got)


def dup2(fd: int, target: int) -> None:
    """dup2(fd, target): ``target`` now names what ``fd`` names."""
    retry(DUP2, lib.dup2, (fd, target))
