"""Adopting an inherited socket: the ``fd://N`` form of ``listen`` and ``bind``.

A supervisor (systemd, a parent process, a hot-restart manager) opens, binds and
often listens on a socket, then starts your process with the descriptor already
open. Adopting it means: make sure the descriptor really is the kind of socket the
caller asked for, learn its real address, and only then take ownership. The steps::

    [check] -> look: fstat, SO_TYPE, SO_ACCEPTCONN -> [check] -> getsockname
            -> require the wanted kind -> [capability gate] -> audit event
            -> [check] -> take: FD_CLOEXEC, (SO_NOSIGPIPE) -> Server | Socket

Until the last step succeeds the descriptor is not janus_net's: every failure
(a wrong kind of socket, a denied capability, a cancelled context, a
KeyboardInterrupt) leaves it open, exactly as it was inherited, because the
caller or the supervisor may still have a use for it. Once adopted, it is closed
like any socket janus_net made; a unix socket file is never removed on close,
since janus_net did not create it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

from janus_net import descriptor, platform, syscalls
from janus_net._shim import lib
from janus_net.address import Address, FdAddress, UnixAddress, from_sockaddr
from janus_net.errors import SocketError
from janus_net.socket import Mode, Server, Socket

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Literal, NamedTuple, TypeVar
else:
    from janus_net.typing_runtime import NamedTuple


if TYPE_CHECKING:
    from janus_net.capability import NetBind

#: What the caller wants the descriptor to be: a listening stream socket
#: (``"listen"``), a bound, not listening socket of one `Mode` (``bind``), or
#: whichever of a listening stream or a bound datagram socket it is (``"any"``,
#: for `janus_net.listen_fds`).
if TYPE_CHECKING:
    Want = Literal["listen", "any"] | Mode

_FILE_KINDS = (
    (stat.S_ISFIFO, "a pipe or FIFO"),
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Inherited(NamedTuple):
    """What an inherited descriptor turned out to be (nothing owned yet)."""

    target: FdAddress
    mode: int  # SO_TYPE
    listening: bool  # SO_ACCEPTCONN
    address: Address  # getsockname

    @property
    def kind(self) -> str:
        """``"listening stream socket"``, ``"datagram socket"``...: for messages."""
        return f"{'listening ' if self.listening else ''}{_mode_name(self.mode)} socket"


def _mode_name(mode: int) -> str:
    try:
        name = Mode(mode).name.lower()
    except ValueError:
        return f"type-{mode}"
    return "datagram" if name == "dgram" else name


def _invalid(target: FdAddress, why: str) -> SocketError:
    return SocketError.InvalidAddress(None, why, address=str(target))


def inspect(target: FdAddress, check: syscalls.Checkpoint | None = None) -> Inherited:
    """Look at an inherited descriptor without taking it: InvalidAddress unless it is a usable socket.

    ``check`` runs before the first look and again before getsockname.
    """
    fd = target.fd
    if check is not None:
        check()
    # fstat answers "open?" and "a socket?" as data; getsockopt would answer with EBADF
    # and ENOTSOCK, which its table rightly treats as bugs of a caller that made the fd.
    try:
        st = os.fstat(fd)
    except OSError as e:
        if e.errno == errno.EBADF:
            raise _invalid(target, f"fd {fd} is not open") from None
        raise SocketError.Unexpected(e.errno, syscall="fstat", address=str(target)) from None
    if not stat.S_ISSOCK(st.st_mode):
        what = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "some other kind of file")
        raise _invalid(target, f"fd {fd} is not a socket (it is {what})")
    mode = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_TYPE)
    listening = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_ACCEPTCONN) == 1
    if check is not None:
        check()
    storage, length = syscalls.getsockname(fd)
    try:
        address = from_sockaddr(storage, length)
    except ValueError as e:  # a family with no janus_net address type (netlink, packet...)
        raise _invalid(target, f"fd {fd} is a socket janus_net cannot adopt: {e}") from None
    return Inherited(target, mode, listening, address)


def require(inherited: Inherited, want: Want, protocol: int = 0) -> Literal["listen", "bind"]:
    """Whether ``inherited`` is what ``want`` asks for: "listen" (a Server) or "bind" (a Socket).

    Raises InvalidAddress with a message that says what the descriptor is instead.
    A ``protocol`` other than 0 must match SO_PROTOCOL.
    """
    target, fd, kind = inherited.target, inherited.target.fd, inherited.kind
    is_stream = inherited.mode == lib.SOCK_STREAM
    if want == "any":
        if is_stream and inherited.listening:
            return "listen"
        if inherited.mode == lib.SOCK_DGRAM:
            want = Mode.DGRAM
        else:
            raise _invalid(
                target, f"fd {fd} is a {kind}; listen_fds adopts listening stream sockets and datagram sockets"
            )
    if want == "listen":
        if not is_stream:
            raise _invalid(target, f"fd {fd} is a {kind}; listen adopts a listening stream socket (bind takes others)")
        if not inherited.listening:
            raise _invalid(
                target, f"fd {fd} is a stream socket that is not listening; listen adopts only listening sockets"
            )
        return "listen"
    if inherited.listening:
        raise _invalid(target, f"fd {fd} is a {kind}; adopt it with listen('{target}'), not bind")
    if inherited.mode != want:
        raise _invalid(target, f"fd {fd} is a {kind}, not a {_mode_name(want)} socket as mode=Mode.{want.name} asks")
    if not _is_bound(inherited.address):
        raise _invalid(target, f"fd {fd} is a {kind} that is not bound to an address; bind adopts bound sockets")
    if protocol:
        if not platform.HAS_SO_PROTOCOL:
            raise SocketError.OptionUnsupported(
                None, "this platform cannot read a socket's protocol (no SO_PROTOCOL)", address=str(target)
            )
        actual = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.JN_SO_PROTOCOL)
        if actual != protocol:
            raise _invalid(target, f"fd {fd} is a socket of protocol {actual}, not {protocol}")
    return "bind"


def _is_bound(address: Address) -> bool:
    # An unbound IP socket reports port 0; an unbound unix socket reports no name.
    if isinstance(address, UnixAddress):
        return not address.unnamed
    return address.port != 0


def announce(target: FdAddress, capability: NetBind | None = None) -> None:
    """Raise the PEP 578 event every bind raises, with ``"fd://N"``: an audit hook may veto it."""
    sys.audit("janus_net.bind", str(target), None if capability is None else capability.id)


if TYPE_CHECKING:
    _O = TypeVar("_O", Server, Socket)


def take(inherited: Inherited, as_: Literal["listen", "bind"]) -> Server | Socket:
    """Own the descriptor as a Server ("listen") or a Socket ("bind"); see `_own`."""
    return _own(inherited, Server) if as_ == "listen" else _own(inherited, Socket)


def _own(inherited: Inherited, owner: type[_O]) -> _O:
    """Make the descriptor close-on-exec (and SIGPIPE-free where that takes an option), and own it.

    Close-on-exec, so it is not leaked to the next program this one starts. Its
    O_NONBLOCK flag is left as the supervisor set it: it belongs to the file
    description, which other processes may share, and janus_net's calls work
    either way. Ownership passes in one native call that stores the fd in the new
    object's cell; from there on every path closes it exactly once.
    """
    fd = inherited.target.fd
    syscalls.set_cloexec(fd)
    if platform.SO_NOSIGPIPE:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1)
    desc = descriptor.new()
    syscalls.adopt_into(desc, fd)  # the fd is ours from here on
    # No unix file handle: janus_net did not create the file, so close() leaves it.
    return owner(desc, inherited.address)


def refuse_second_owner(target: FdAddress) -> None:
    """InvalidAddress if a live janus_net Server or Socket already owns ``target``'s fd.

    Adopting it again would make two owners, and the second close would hit a
    number that may belong to someone else by then.
    """
    owner = descriptor.owner_of(target.fd)
    if owner is not None:
        raise _invalid(target, f"fd {target.fd} is already owned by {owner!r}; a descriptor is adopted once")


def _checked(
    target: FdAddress,
    want: Want,
    protocol: int,
    check: syscalls.Checkpoint | None,
    capability: NetBind | None,
) -> tuple[Inherited, Literal["listen", "bind"]]:
    """Every step before ``take``: nothing is owned yet, and every failure leaves the fd as it was."""
    refuse_second_owner(target)
    inherited = inspect(target, check)
    as_ = require(inherited, want, protocol)
    if capability is not None:
        capability.authorize(inherited.address, inherited.mode, protocol)  # audits; raises CapabilityDenied
    announce(target, capability)
    if check is not None:
        check()
    return inherited, as_


def adopt(
    target: FdAddress,
    want: Want,
    protocol: int = 0,
    check: syscalls.Checkpoint | None = None,
    capability: NetBind | None = None,
) -> Server | Socket:
    """Adopt the socket ``target`` names, if it is what ``want`` asks for (the steps above).

    Under a capability the socket's real address is checked and audited
    (``check_bind_address``; there is no ``bind_socket`` record since nothing is
    bound here). The PEP 578 event ``janus_net.bind`` carries ``"fd://N"``.

    Raises:
        SocketError.InvalidAddress: the fd is not open, not a socket, not the kind
            ``want`` asks for, or already owned by a live janus_net Server or Socket.
    """
    inherited, as_ = _checked(target, want, protocol, check, capability)
    return take(inherited, as_)


def adopt_listener(
    target: FdAddress, check: syscalls.Checkpoint | None = None, capability: NetBind | None = None
) -> Server:
    """`adopt` for ``listen``: a listening stream socket, as a `Server`."""
    inherited, _ = _checked(target, "listen", 0, check, capability)
    return _own(inherited, Server)


def adopt_bound(
    target: FdAddress,
    mode: Mode,
    protocol: int = 0,
    check: syscalls.Checkpoint | None = None,
    capability: NetBind | None = None,
) -> Socket:
    """`adopt` for ``bind``: a bound socket of ``mode`` (and ``protocol``), as a `Socket`."""
    inherited, _ = _checked(target, mode, protocol, check, capability)
    return _own(inherited, Socket)
