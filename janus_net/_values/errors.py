"""Errors: one `SocketError` member per cause, and `ErrnoBug` for our own mistakes.

Every failure janus_net reports is a `SocketError` (an `OSError`), specialised into
exactly one member that names the cause: ``except SocketError.AddressInUse``. Where
Python already has a builtin for the same idea the member subclasses it too, so
``except PermissionError`` keeps working for code that never heard of janus_net.

An errno that can only mean a bug in janus_net or in the code that called it (a
bad descriptor, a bad pointer) is not a runtime condition to handle: in debug mode
it raises `ErrnoBug`, an `AssertionError` that no ``except OSError`` swallows.
"""

from __future__ import annotations

import errno as _errno
import os
import sys

from janus_net._values.escaping import for_people

TYPE_CHECKING = False  # `typing` only for the checker: it costs an import (docs/performance.md)
if TYPE_CHECKING:
    from typing import ClassVar


def _debug_from_environment() -> bool:
    override = os.environ.get("JANUS_NET_DEBUG")
    if override in ("0", "1"):
        return override == "1"
    return sys.flags.optimize == 0


#: Whether bug errnos raise `ErrnoBug` (debug) or `SocketError.Unexpected` (release).
#: Decided once at import: ``python -O`` means release; ``JANUS_NET_DEBUG=0|1`` overrides.
DEBUG: bool = _debug_from_environment()


# Where two names share a number, the one the syscall man pages use (Linux: ENOTSUP is EOPNOTSUPP).
_PREFERRED_NAMES = {_errno.EOPNOTSUPP: "EOPNOTSUPP", _errno.EAGAIN: "EAGAIN"}


def errno_name(number: int) -> str:
    """The symbolic name of an errno (``EBADF``), or ``errno 1234`` if it has none."""
    return _PREFERRED_NAMES.get(number) or _errno.errorcode.get(number, f"errno {number}")


class SocketError(OSError):
    """Base of every error janus_net raises about a socket or an address.

    Attributes:
        errno: the OS error number, or None when no syscall failed (a bad address,
            a denied capability, an expired deadline).
        syscall: the name of the failing syscall (``"bind"``), or None.
        address: the canonical text of the address involved, or None.
    """

    # The members, reachable as attributes: ``except SocketError.AddressInUse``.
    InvalidAddress: ClassVar[type[InvalidAddress]]
    InvalidPort: ClassVar[type[InvalidPort]]
    Timeout: ClassVar[type[Timeout]]
    CapabilityDenied: ClassVar[type[CapabilityDenied]]
    AddressInUse: ClassVar[type[AddressInUse]]
    AddressUnavailable: ClassVar[type[AddressUnavailable]]
    AddressFamilyUnsupported: ClassVar[type[AddressFamilyUnsupported]]
    AccessDenied: ClassVar[type[AccessDenied]]
    SystemResources: ClassVar[type[SystemResources]]
    ProcessFdQuotaExceeded: ClassVar[type[ProcessFdQuotaExceeded]]
    SystemFdQuotaExceeded: ClassVar[type[SystemFdQuotaExceeded]]
    NetworkSubsystemDown: ClassVar[type[NetworkSubsystemDown]]
    ProtocolUnsupportedBySystem: ClassVar[type[ProtocolUnsupportedBySystem]]
    ProtocolUnsupportedByAddressFamily: ClassVar[type[ProtocolUnsupportedByAddressFamily]]
    SocketModeUnsupported: ClassVar[type[SocketModeUnsupported]]
    OptionUnsupported: ClassVar[type[OptionUnsupported]]
    SocketNotListening: ClassVar[type[SocketNotListening]]
    ConnectionAborted: ClassVar[type[ConnectionAborted]]
    ProtocolFailure: ClassVar[type[ProtocolFailure]]
    BlockedByFirewall: ClassVar[type[BlockedByFirewall]]
    MessageTooBig: ClassVar[type[MessageTooBig]]
    NetworkUnreachable: ClassVar[type[NetworkUnreachable]]
    HostUnreachable: ClassVar[type[HostUnreachable]]
    ConnectionRefused: ClassVar[type[ConnectionRefused]]
    ConnectionResetByPeer: ClassVar[type[ConnectionResetByPeer]]
    ConnectionTimedOut: ClassVar[type[ConnectionTimedOut]]
    SocketUnconnected: ClassVar[type[SocketUnconnected]]
    SymLinkLoop: ClassVar[type[SymLinkLoop]]
    FileNotFound: ClassVar[type[FileNotFound]]
    NotDir: ClassVar[type[NotDir]]
    ReadOnlyFileSystem: ClassVar[type[ReadOnlyFileSystem]]
    Unexpected: ClassVar[type[Unexpected]]
    InvalidHostName: ClassVar[type[InvalidHostName]]
    UnknownHostName: ClassVar[type[UnknownHostName]]
    NameServerFailure: ClassVar[type[NameServerFailure]]

    syscall: str | None
    address: str | None

    def __init__(
        self,
        errno: int | None = None,
        detail: str | None = None,
        *,
        syscall: str | None = None,
        address: str | None = None,
    ) -> None:
        if errno is None:
            super().__init__(detail or "")
        else:
            super().__init__(errno, detail if detail is not None else os.strerror(errno))
        self.syscall = syscall
        self.address = address

    @property
    def member(self) -> str:
        """The member's name: ``"AddressInUse"``."""
        return type(self).__name__

    def __str__(self) -> str:
        # AddressInUse: bind 127.0.0.1:8080: [Errno 98] Address already in use
        # Text for people: the address and the detail (which may quote one) are escaped,
        # so a crafted unix path cannot forge a line (`for_people`). ``.address`` and
        # ``.args`` keep the exact text.
        address = None if self.address is None else for_people(self.address)
        where = " ".join(part for part in (self.syscall, address) if part)
        if self.errno is not None:
            what = f"[Errno {self.errno}] {self.strerror}"
        else:
            what = for_people(str(self.args[0])) if self.args else ""
        parts = [p for p in (where, what) if p]
        return f"{self.member}: " + ": ".join(parts) if parts else self.member

    def __reduce__(self) -> tuple[object, ...]:
        detail = self.strerror if self.errno is not None else (self.args[0] if self.args else None)
        return (_rebuild, (type(self), self.errno, detail, self.syscall, self.address, self.__dict__))


def _rebuild(
    cls: type[SocketError],
    errno: int | None,
    detail: str | None,
    syscall: str | None,
    address: str | None,
    state: dict[str, object],
) -> SocketError:
    error = cls(errno, detail, syscall=syscall, address=address)
    error.__dict__.update(state)
    return error


class InvalidAddress(SocketError):
    """The address text is not one of the accepted forms (DESIGN §4)."""


class InvalidPort(SocketError):
    """The port is not 1-5 ASCII digits with a value in 0..65535."""


class Timeout(SocketError, TimeoutError):
    """A context ended the operation: ``.reason`` is ``"cancelled"`` or ``"deadline"``."""

    reason: str

    def __init__(self, reason: str, detail: str | None = None, *, address: str | None = None) -> None:
        super().__init__(None, detail or f"context {reason}", address=address)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.args[0] if self.args else None), self.__dict__)


class CapabilityDenied(SocketError):
    """The NetBind capability does not allow this address; no syscall was made.

    ``.reason`` is ``"kernel"`` when the kernel refused the bind because of an enforced
    capability (`NetBind.enforce`, Landlock; ``.errno`` is EACCES), None otherwise.
    """

    reason: str | None = None


class AddressInUse(SocketError):
    """Another socket is bound to the address (or, for a unix path, a file is there)."""


class AddressUnavailable(SocketError):
    """The address is not local to this machine (or cannot be bound as asked)."""


class AddressFamilyUnsupported(SocketError):
    """The system does not support this address family."""


class AccessDenied(SocketError, PermissionError):
    """The process lacks the privilege (a port below 1024, a directory's permissions)."""


class SystemResources(SocketError):
    """The kernel ran out of memory or buffers."""


class ProcessFdQuotaExceeded(SocketError):
    """The per-process descriptor limit (RLIMIT_NOFILE) is reached."""


class SystemFdQuotaExceeded(SocketError):
    """The system-wide open file limit is reached."""


class NetworkSubsystemDown(SocketError):
    """The network interface used is down."""


class ProtocolUnsupportedBySystem(SocketError):
    """The kernel does not know this protocol or socket type."""


class ProtocolUnsupportedByAddressFamily(SocketError):
    """The protocol is not available in this address family."""


class SocketModeUnsupported(SocketError):
    """The socket mode (stream, datagram...) does not fit the protocol or operation."""


class OptionUnsupported(SocketError):
    """The socket option does not apply to this socket."""


class SocketNotListening(SocketError):
    """accept on a socket that is not (or no longer) listening, e.g. after shutdown()."""


class ConnectionAborted(SocketError, ConnectionAbortedError):
    """A connection was aborted before accept could return it."""


class ProtocolFailure(SocketError):
    """A protocol error on the connection being accepted."""


class BlockedByFirewall(SocketError):
    """A firewall rule forbade the connection."""


class MessageTooBig(SocketError):
    """The datagram is larger than the socket can send atomically."""


class NetworkUnreachable(SocketError):
    """No route to the network."""


class HostUnreachable(SocketError):
    """The network was reached but the host was not."""


class ConnectionRefused(SocketError, ConnectionRefusedError):
    """The destination refused (for datagrams: an earlier ICMP port unreachable)."""


class ConnectionResetByPeer(SocketError, ConnectionResetError):
    """The peer reset the connection."""


class ConnectionTimedOut(SocketError):
    """The connection timed out at the protocol level."""


class SocketUnconnected(SocketError):
    """The socket is not connected, or its peer has gone (EPIPE)."""


class SymLinkLoop(SocketError):
    """Too many symbolic links while resolving a unix socket path."""


class FileNotFound(SocketError, FileNotFoundError):
    """A directory in the unix socket path does not exist."""


class NotDir(SocketError):
    """A component of the unix socket path is not a directory."""


class ReadOnlyFileSystem(SocketError):
    """The unix socket path is on a read-only file system."""


class Unexpected(SocketError):
    """An errno this syscall's table does not map (or a bug errno in release mode)."""


class InvalidHostName(SocketError, ValueError):
    """The host name cannot be a DNS name (DESIGN §17); refused before any I/O.

    Empty, over 253 bytes (without a trailing dot), a label over 63 bytes or empty, a
    byte other than letters, digits, hyphen, underscore and dots (a NUL, a space), or
    a non-ASCII name that IDNA (UTS 46) refuses. A usage error, like ``ValueError``:
    the command exits 2 for it.
    """


class UnknownHostName(SocketError):
    """No address of the families asked is known for the name: ``.name`` is the name as asked.

    Every name tried was NXDOMAIN, or the answers had no address of the families
    asked (NODATA), or the hosts file and DNS had nothing for it.
    """

    name: str

    def __init__(
        self,
        errno: int | None = None,
        detail: str | None = None,
        *,
        syscall: str | None = None,
        address: str | None = None,
        name: str = "",
    ) -> None:
        if detail is None:
            detail = f"no address known for {name!r}"
        super().__init__(errno, detail, syscall=syscall, address=address)
        self.name = name


class NameServerFailure(SocketError):
    """No usable answer from any name server: ``.temporary`` says whether asking again may help.

    ``.temporary`` is True when some server timed out, answered SERVFAIL, or could not
    be reached (an ICMP refusal, a failed TCP connection): the same question may succeed
    later. It is False when every server that answered refused (REFUSED, NOTIMP, FORMERR)
    or sent only malformed replies, and none timed out: asking again will not help
    until the configuration or the servers change. ``.name`` is the name as asked.
    """

    name: str
    temporary: bool

    def __init__(
        self,
        errno: int | None = None,
        detail: str | None = None,
        *,
        syscall: str | None = None,
        address: str | None = None,
        name: str = "",
        temporary: bool = True,
    ) -> None:
        if detail is None:
            detail = f"no name server gave a usable answer for {name!r}"
        super().__init__(errno, detail, syscall=syscall, address=address)
        self.name = name
        self.temporary = temporary


MEMBERS: tuple[type[SocketError], ...] = (
    InvalidAddress,
    InvalidPort,
    Timeout,
    CapabilityDenied,
    AddressInUse,
    AddressUnavailable,
    AddressFamilyUnsupported,
    AccessDenied,
    SystemResources,
    ProcessFdQuotaExceeded,
    SystemFdQuotaExceeded,
    NetworkSubsystemDown,
    ProtocolUnsupportedBySystem,
    ProtocolUnsupportedByAddressFamily,
    SocketModeUnsupported,
    OptionUnsupported,
    SocketNotListening,
    ConnectionAborted,
    ProtocolFailure,
    BlockedByFirewall,
    MessageTooBig,
    NetworkUnreachable,
    HostUnreachable,
    ConnectionRefused,
    ConnectionResetByPeer,
    ConnectionTimedOut,
    SocketUnconnected,
    SymLinkLoop,
    FileNotFound,
    NotDir,
    ReadOnlyFileSystem,
    Unexpected,
    InvalidHostName,
    UnknownHostName,
    NameServerFailure,
)

for _member in MEMBERS:
    setattr(SocketError, _member.__name__, _member)
    _member.__qualname__ = f"SocketError.{_member.__name__}"
del _member


class ErrnoBug(AssertionError):
    """A syscall failed with an errno that only a bug can cause (debug mode only).

    It is deliberately not an OSError: a bad descriptor handed to janus_net must
    surface, not be handled as a network condition.
    """

    def __init__(self, errno: int, syscall: str) -> None:
        super().__init__(f"programmer bug caused syscall error: {errno_name(errno)} (in {syscall})")
        self.errno = errno
        self.syscall = syscall

    def __reduce__(self) -> tuple[object, ...]:
        # BaseException pickles ``args`` (the message), which this __init__ does not take;
        # rebuild from the errno and syscall so the error crosses process boundaries.
        return (type(self), (self.errno, self.syscall), self.__dict__)
