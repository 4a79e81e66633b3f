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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from janus_net import errors, platform
from janus_net._shim import ffi, lib
from janus_net.errors import ErrnoBug, SocketError

Checkpoint = Callable[[], None]

#: Returned instead of raising when a ``nonblocking=True`` call would block.
WOULD_BLOCK = -1
_WOULD_BLOCK_ERRNOS = frozenset({E.EAGAIN, E.EWOULDBLOCK})


class Fault(Protocol):
    """What the fault seam (`janus_net.testing.fail`) arms on a syscall."""

    def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
        """Either call ``fn(*args)`` or set ``ffi.errno`` and return -1."""


class Syscall:
    """One syscall's errno table: which errno means which `SocketError` member.

    Attributes:
        name: the syscall's name as users see it in errors and in the fault seam.
        errors: errno -> member, for causes a caller can handle.
        bugs: errnos that only a bug in janus_net or its caller can produce.
        retry_eintr: False only for close, whose fd is gone after EINTR on Linux.
        fault: set only while a test's fault seam is armed.
    """

    __slots__ = ("bugs", "errors", "fault", "name", "retry_eintr")

    def __init__(
        self,
        name: str,
        errors: Mapping[int, type[SocketError]],
        bugs: Iterable[int] = (),
        *,
        retry_eintr: bool = True,
    ) -> None:
        self.name = name
        self.errors: Mapping[int, type[SocketError]] = dict(errors)
        self.bugs: frozenset[int] = frozenset(bugs)
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
        return f"Syscall({self.name!r})"


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
    while True:
        fault = syscall.fault
        rc = fn(*args) if fault is None else fault.call(fn, args)
        if rc >= 0:
            return rc
        err = ffi.errno
        if err == E.EINTR and syscall.retry_eintr:
            if checkpoint is not None:
                checkpoint()
            continue
        if nonblocking and err in _WOULD_BLOCK_ERRNOS:
            return WOULD_BLOCK
        raise syscall.error(err, address)


# --- The tables (DESIGN §5). One row per errno; a comment where the reason is not obvious.

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
        # EACCES: e.g. SOCK_RAW without CAP_NET_RAW, or an LSM policy.
        E.EACCES: SocketError.AccessDenied,
    },
)

SETSOCKOPT = Syscall(
    "setsockopt",
    {
        E.ENOPROTOOPT: SocketError.OptionUnsupported,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOBUFS: SocketError.SystemResources,
    },
    # EINVAL: we passed a bad optlen; only a bug does that.
    bugs=(E.EBADF, E.ENOTSOCK, E.EINVAL, E.EFAULT),
)

GETSOCKOPT = Syscall(
    "getsockopt",
    {E.ENOPROTOOPT: SocketError.OptionUnsupported},
    bugs=(E.EBADF, E.ENOTSOCK, E.EINVAL, E.EFAULT),
)

FCNTL = Syscall("fcntl", {}, bugs=(E.EBADF,))

_BIND_IP_ERRORS: dict[int, type[SocketError]] = {
    # EACCES: a port below 1024 without CAP_NET_BIND_SERVICE.
    E.EACCES: SocketError.AccessDenied,
    # EADDRINUSE: also when port 0 was asked and every ephemeral port is taken.
    E.EADDRINUSE: SocketError.AddressInUse,
    E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
    # EADDRNOTAVAIL: the address is not on any local interface.
    E.EADDRNOTAVAIL: SocketError.AddressUnavailable,
    E.ENOMEM: SocketError.SystemResources,
}
# EINVAL: the socket is already bound or the length is wrong. We bind only sockets we
# just made, with lengths we computed, so it is a bug; the one user-reachable EINVAL
# (IPv4-mapped address with ip6_only=True) is caught before the syscall.
_BIND_IP_BUGS = (E.EBADF, E.ENOTSOCK, E.EFAULT, E.EINVAL)

BIND_IP = Syscall("bind", _BIND_IP_ERRORS, bugs=_BIND_IP_BUGS)

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
    # ENAMETOOLONG: the parser already rejected paths longer than sun_path.
    bugs=(*_BIND_IP_BUGS, E.ENAMETOOLONG),
)

LISTEN = Syscall(
    "listen",
    {
        # EADDRINUSE: another socket listens on the port (SO_REUSEPORT races).
        E.EADDRINUSE: SocketError.AddressInUse,
        # EOPNOTSUPP: listen on a datagram socket.
        E.EOPNOTSUPP: SocketError.SocketModeUnsupported,
    },
    bugs=(E.EBADF, E.ENOTSOCK),
)

GETSOCKNAME = Syscall(
    "getsockname",
    {E.ENOBUFS: SocketError.SystemResources},
    bugs=(E.EBADF, E.EFAULT, E.EINVAL, E.ENOTSOCK),
)

GETPEERNAME = Syscall(
    "getpeername",
    {E.ENOBUFS: SocketError.SystemResources, E.ENOTCONN: SocketError.SocketUnconnected},
    bugs=(E.EBADF, E.EFAULT, E.EINVAL, E.ENOTSOCK),
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
    # EOPNOTSUPP: accept on a non-stream socket; our Server is always a stream.
    bugs=(E.EBADF, E.EFAULT, E.ENOTSOCK, E.EOPNOTSUPP),
)

SEND = Syscall(
    "send",
    {
        E.EACCES: SocketError.AccessDenied,
        # ECONNREFUSED: an earlier datagram drew an ICMP port unreachable.
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.EMSGSIZE: SocketError.MessageTooBig,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.EHOSTUNREACH: SocketError.HostUnreachable,
        E.ENETUNREACH: SocketError.NetworkUnreachable,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
        E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
        # EPIPE: the peer is gone (SIGPIPE is suppressed, so we see the errno).
        E.EPIPE: SocketError.SocketUnconnected,
        E.ENOTCONN: SocketError.SocketUnconnected,
    },
    bugs=(E.EBADF, E.EDESTADDRREQ, E.EFAULT, E.EINVAL, E.EISCONN, E.ENOTSOCK, E.EOPNOTSUPP),
)

RECEIVE = Syscall(
    "receive",
    {
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOTCONN: SocketError.SocketUnconnected,
        E.ETIMEDOUT: SocketError.ConnectionTimedOut,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
    },
    bugs=(E.EBADF, E.EFAULT, E.EINVAL, E.ENOTSOCK, E.EOPNOTSUPP),
)

# close: EINTR is not retried (on Linux the fd is already released, and a retry could
# close a descriptor another thread just opened); every other error is ignored.
CLOSE = Syscall("close", {}, bugs=(E.EBADF,), retry_eintr=False)

# The calls below are internal steps, not rows of DESIGN §5, but they get tables too so
# that nothing escapes the one loop.
SHUTDOWN = Syscall(
    "shutdown",
    # ENOTCONN: shutting down a socket that never connected; harmless for our uses.
    {E.ENOTCONN: SocketError.SocketUnconnected},
    bugs=(E.EBADF, E.EINVAL, E.ENOTSOCK),
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
    },
    bugs=(E.EBADF, E.EFAULT, E.ENOTSOCK, E.EISCONN),
)

FCHMOD = Syscall(
    "fchmod",
    {E.EPERM: SocketError.AccessDenied, E.EROFS: SocketError.ReadOnlyFileSystem},
    bugs=(E.EBADF, E.EINVAL),
)

POLL = Syscall(
    "poll",
    {E.ENOMEM: SocketError.SystemResources},
    bugs=(E.EFAULT, E.EINVAL),
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
)


# --- Typed wrappers on raw fds: the steps of listen/bind before an owner exists, and
# probes. Calls on owned sockets are in the section after these.


def set_cloexec(fd: int, checkpoint: Checkpoint | None = None) -> None:
    """fcntl(fd, F_SETFD, FD_CLOEXEC): the Darwin way to a close-on-exec fd."""
    retry(FCNTL, lib.fcntl, (fd, lib.F_SETFD, ffi.cast("int", lib.FD_CLOEXEC)), checkpoint)


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


def getsockopt_int(fd: int, level: int, option: int) -> int:
    """getsockopt of an int-valued option."""
    box = ffi.new("int *")
    size = ffi.new("socklen_t *", ffi.sizeof("int"))
    retry(GETSOCKOPT, lib.getsockopt, (fd, level, option, box, size))
    return int(box[0])


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
    """connect(2): used only to probe whether a unix socket file is stale.

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


def getsockname(fd: int) -> tuple[Any, int]:
    """The socket's local address as (struct sockaddr_storage *, length)."""
    storage = ffi.new(_STORAGE_P)
    size = ffi.new(_SOCKLEN_P, _STORAGE_SIZE)
    retry(GETSOCKNAME, lib.getsockname, (fd, ffi.cast(_SOCKADDR_P, storage), size))
    return storage, int(size[0])


def getpeername(fd: int) -> tuple[Any, int]:
    """The socket's peer address as (struct sockaddr_storage *, length)."""
    storage = ffi.new("struct sockaddr_storage *")
    size = ffi.new("socklen_t *", ffi.sizeof("struct sockaddr_storage"))
    retry(GETPEERNAME, lib.getpeername, (fd, ffi.cast("struct sockaddr *", storage), size))
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
    # EINVAL: flags we passed; only a bug (of the shim) does that.
    bugs=(E.EINVAL,),
)

TABLES = (*TABLES, EVENTFD)

#: The native owned-descriptor calls with their tables, for the hot paths that hand
#: them to `retry` themselves (one Python frame less per datagram than a wrapper).
SENDTO_CALL = (SEND, lib.jn_desc_sendto)
RECVFROM_CALL = (RECEIVE, lib.jn_desc_recvfrom)

#: Added to a `wait` result when the object is being closed.
WAIT_CLOSED: int = lib.JN_WAIT_CLOSED
_DESC_P = ffi.typeof("struct jn_desc *")


def new_desc() -> Any:
    """An empty owned-descriptor cell; when it is collected, whatever it still holds is closed.

    The collection is the backstop of "exactly once": a descriptor whose owner never
    came to exist (an exception between the syscall and the owner) or never closed it
    is closed with its cell, and the cell's claim-once close makes any other close of
    the same cell a no-op.
    """
    raw = lib.jn_desc_new()
    if raw == ffi.NULL:
        raise MemoryError("no memory for a descriptor cell")
    return ffi.gc(raw, lib.jn_desc_free)


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


def adopt_into(desc: Any, fd: int) -> None:
    """Put an inherited fd into ``desc``: from here on janus_net owns (and will close) it."""
    lib.jn_desc_adopt(desc, fd)


def accept_into(
    desc: Any, storage: Any, size: Any, into: Any, checkpoint: Checkpoint | None = None, address: object = None
) -> int:
    """One accept on ``desc``'s listener, the new fd written into the cell ``into``.

    Never blocks for a connection another thread of this process took: the attempt
    runs only when poll says one is queued, one thread at a time. Returns the fd, or
    `WOULD_BLOCK` when none is queued (or another thread is taking it right now).
    """
    sa = ffi.cast(_SOCKADDR_P, storage)
    flags = lib.JN_SOCK_CLOEXEC if platform.HAS_ACCEPT4 else -1
    conn = retry(ACCEPT, lib.jn_desc_accept, (desc, sa, size, flags, into), checkpoint, address, True)
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


def wait(desc: Any, events: int, ctx_fd: int, timeout_ms: int, checkpoint: Checkpoint | None = None) -> int:
    """poll(2) on ``desc``'s socket, its wake fd and a context's (-1: none).

    Returns the socket's revents, plus `WAIT_CLOSED` once the object is being closed.
    """
    return retry(POLL, lib.jn_desc_wait, (desc, events, ctx_fd, timeout_ms), checkpoint)


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


def shutdown_on(desc: Any, how: int, address: object = None) -> None:
    """shutdown(2) of an owned socket: stops it for every holder of its description."""
    retry(SHUTDOWN, lib.jn_desc_shutdown, (desc, how), None, address)


def new_waker_cell() -> Any:
    """An empty wake-pair cell (no fd yet): closed, with whatever it holds, when collected."""
    return ffi.gc(ffi.new("int[2]", [-1, -1]), lib.jn_waker_close)


def make_waker(cell: Any) -> int:
    """Fill ``cell`` with a wake pair (eventfd, or a pipe) unless it has one; returns its read fd.

    Racing callers share one pair: the native call publishes the first and closes the others.
    """
    if cell[0] < 0:
        retry(EVENTFD, lib.jn_waker_new, (cell,))
    return int(cell[0])


def signal_waker(cell: Any) -> None:
    """Make the cell's wake fd readable, if it has one (safe from a signal handler: one write)."""
    lib.jn_waker_signal_cell(cell)
