"""The adoption door: the one place a descriptor janus_net did not make becomes an owner.

Four paths bring such descriptors, and every one of them comes through here:
``fd://N`` in ``listen``/``bind``, `janus_net.listen_fds` (socket activation),
`janus_net.receive_sockets` and, through it, `janus_net.handoff.take` (SCM_RIGHTS).
Each path first *judges* every descriptor it was given, then *owns* them::

    judge: refuse one a janus_net owner holds -> fstat -> fcntl(F_GETFL): not O_PATH
           -> SO_DOMAIN, SO_TYPE, SO_PROTOCOL, SO_ACCEPTCONN -> [check] -> getsockname
           (getpeername for a connected stream) -> the kind the path wants
           -> [capability gate, with the real family, type and protocol] -> audit event
    own:   FD_CLOEXEC, (SO_NOSIGPIPE) -> into a descriptor cell -> Server | Socket | Stream

The order is what keeps every answer typed: fstat first (a closed number is
EBADF there, not in a socket call), then F_GETFL, because an O_PATH handle of a
socket file fstat's as a socket while every socket call on it fails with EBADF;
the socket options only on a real socket; and getsockname only for a family
janus_net can adopt (AF_XDP answers it with EOPNOTSUPP). The probes use the
adoption tables of `janus_net._kernel` (``ADOPT_*``), where the errnos a strange
descriptor causes are members, never bug rows. A refusal is
`SocketError.InvalidAddress` naming what the descriptor is; `judge_received`
words it as `SocketError.ProtocolFailure` for a received one.

Judging never changes the descriptor. Who closes a refused one is the path's
business, and each follows one rule: a descriptor the caller named (``fd://N``,
``listen_fds``) is left open, as it was inherited; a descriptor janus_net
received is closed exactly once by the receive path (it still sits in the
control buffer that closes it); and one refused because a janus_net owner holds
it is never touched. Once owned, it is closed like any socket janus_net made; a
unix socket file is never removed on close, since janus_net did not create it.
"""

from __future__ import annotations

import _thread
import errno
import sys
from _weakref import ref as _ref  # weakref.ref, without the weakref module (import time)

from janus_net import platform
from janus_net._kernel import cells, files, flags, loop, owners, socket_options, sockets
from janus_net._kernel import cells as kernel_cells
from janus_net._shim import lib
from janus_net._sockets.datagram import Socket
from janus_net._sockets.from_cell import Kind, wrap
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream
from janus_net._values.addresses import Address
from janus_net._values.errors import SocketError, errno_name
from janus_net._values.fd import FdAddress
from janus_net._values.kinds import Mode
from janus_net._values.reported import from_sockaddr
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Literal


if TYPE_CHECKING:
    from janus_net._policy.capability import NetBind

#: What a path wants the descriptor to be: a listening stream socket (``"listen"``,
#: a `Server`), a bound, not listening socket of one `Mode` (``bind``: a `Socket`),
#: whichever of a listening stream or a bound datagram socket it is (``"any"``, for
#: `janus_net.listen_fds`), or a connected stream (``"stream"``, a received `Stream`).
if TYPE_CHECKING:
    Want = Literal["listen", "any", "stream"] | Mode

#: The families janus_net has address types for; any other socket is refused before
#: getsockname, which some of them (AF_XDP) do not even answer.
_FAMILIES = {lib.AF_INET: "AF_INET", lib.AF_INET6: "AF_INET6", lib.AF_UNIX: "AF_UNIX"}
_O_PATH: int = lib.JN_O_PATH
#: The probes' refusals (the ``ADOPT_*`` tables' InvalidAddress rows), in words. They
#: also come when another thread closes or replaces the number while it is looked at.
_KERNEL_SAYS = {
    errno.EBADF: "not open",
    errno.ENOTSOCK: "not a socket",
    errno.EOPNOTSUPP: "a socket of a family janus_net cannot adopt (it has no address to give)",
}


class Seen:
    """What a descriptor turned out to be, read from the kernel (nothing owned yet).

    Attributes:
        target: the ``fd://N`` it was asked as.
        family: SO_DOMAIN.
        mode: SO_TYPE.
        protocol: SO_PROTOCOL (0 where the platform cannot say).
        listening: SO_ACCEPTCONN.
        address: getsockname; the peer's (getpeername) for a connected stream.
    """

    __slots__ = ("address", "family", "listening", "mode", "protocol", "target")

    def __init__(
        self, target: FdAddress, family: int, mode: int, protocol: int, listening: bool, address: Address
    ) -> None:
        self.target = target
        self.family = family
        self.mode = mode
        self.protocol = protocol
        self.listening = listening
        self.address = address

    @property
    def kind(self) -> str:
        """``"listening stream socket"``, ``"datagram socket"``...: for messages."""
        return f"{'listening ' if self.listening else ''}{_mode_name(self.mode)} socket"


class Verdict:
    """A descriptor judged fit: what it is (``seen``), and the owner it becomes (``kind``)."""

    __slots__ = ("kind", "seen")

    def __init__(self, seen: Seen, kind: Kind) -> None:
        self.seen = seen
        self.kind = kind  # "server", "socket" or "stream"


def _mode_name(mode: int) -> str:
    try:
        name = Mode(mode).name.lower()
    except ValueError:
        return f"type-{mode}"
    return "datagram" if name == "dgram" else name


def _invalid(target: FdAddress, why: str) -> SocketError:
    return SocketError.InvalidAddress(None, why, address=str(target))


def _family_name(family: int) -> str:
    from socket import AddressFamily  # only for a refusal's message

    try:
        return f"{family} ({AddressFamily(family).name})"
    except ValueError:
        return str(family)


def _what_file(stat: files.Stat) -> str:
    if stat.mode & lib.S_IFMT == 0:
        # Anonymous inodes have no file type: epoll, eventfd, pidfd, signalfd, timerfd...
        return "an anonymous inode: an epoll, eventfd, pidfd, signalfd or timerfd descriptor, or the like"
    return stat.kind


# --- judge


def refuse_held(target: FdAddress) -> None:
    """InvalidAddress if a live janus_net owner (of any kind, or a cell still being set up) holds ``target``'s fd.

    Adopting it again would make two owners, and the second close would hit a number
    that may belong to someone else by then. The holder is not touched.
    """
    holder = owners.owner_of(target.fd)
    if holder is not None:
        raise _invalid(target, f"fd {target.fd} is already owned by {holder!r}; a descriptor is adopted once")


def look(target: FdAddress, want: Want = "any", check: loop.Checkpoint | None = None) -> Seen:
    """Read what ``target``'s descriptor is, without changing it: InvalidAddress unless a socket janus_net can adopt.

    ``check`` runs before the first look and again before getsockname.
    """
    fd = target.fd
    if check is not None:
        check()
    try:
        stat = files.fstat(fd, table=files.ADOPT_FSTAT)
        if not stat.is_socket:
            raise _invalid(target, f"fd {fd} is not a socket (it is {_what_file(stat)})")
        if _O_PATH and flags.file_flags(fd, flags.ADOPT_FCNTL) & _O_PATH:
            raise _invalid(target, f"fd {fd} is an O_PATH handle of a socket file, not an open socket")
        family = _option(fd, platform.HAS_SO_DOMAIN, lib.JN_SO_DOMAIN)
        mode = _option(fd, True, lib.SO_TYPE)
        protocol = _option(fd, platform.HAS_SO_PROTOCOL, lib.JN_SO_PROTOCOL)
        listening = _option(fd, True, lib.SO_ACCEPTCONN) == 1
        if platform.HAS_SO_DOMAIN and family not in _FAMILIES:
            raise _invalid(target, f"fd {fd} is a socket janus_net cannot adopt: address family {_family_name(family)}")
        if check is not None:
            check()
        if want == "stream":
            storage, length = sockets.getpeername(fd, sockets.ADOPT_GETPEERNAME)
        else:
            storage, length = sockets.getsockname(fd, sockets.ADOPT_GETSOCKNAME)
    except SocketError.InvalidAddress as e:
        if e.syscall is None:
            raise  # one of the refusals above
        # The kernel's own answer (the number was closed or replaced meanwhile, a
        # family without names): what the descriptor is, said as a refusal.
        what = _KERNEL_SAYS.get(e.errno or 0, "not a socket janus_net can adopt")
        raise _invalid(target, f"fd {fd} is {what} ({e.syscall}: {errno_name(e.errno or 0)})") from None
    except SocketError.SocketUnconnected as e:
        why = f"{e.syscall}: {errno_name(e.errno or 0)}"
        raise _invalid(target, f"fd {fd} is a {_mode_name(mode)} socket that is not connected ({why})") from None
    try:
        address = from_sockaddr(storage, length)
    except ValueError as e:  # a family with no janus_net address type, where SO_DOMAIN could not say
        raise _invalid(target, f"fd {fd} is a socket janus_net cannot adopt: {e}") from None
    if not platform.HAS_SO_DOMAIN:
        family = address.family
    return Seen(target, family, mode, protocol, listening, address)


def _option(fd: int, available: bool, option: int) -> int:
    if not available:
        return 0
    return socket_options.getsockopt_int(fd, lib.SOL_SOCKET, option, socket_options.ADOPT_GETSOCKOPT)


def require(seen: Seen, want: Want, protocol: int = 0) -> Kind:
    """Whether ``seen`` is what ``want`` asks for: the kind of owner it becomes.

    Raises InvalidAddress with a message that says what the descriptor is instead.
    A ``protocol`` other than 0 must match SO_PROTOCOL.
    """
    target, fd, kind = seen.target, seen.target.fd, seen.kind
    is_stream = seen.mode == lib.SOCK_STREAM
    if want == "stream":
        if not is_stream or seen.listening:
            raise _invalid(target, f"fd {fd} is a {kind}, not a connected stream socket")
        return "stream"
    if want == "any":
        if is_stream and seen.listening:
            return "server"
        if seen.mode == lib.SOCK_DGRAM:
            want = Mode.DGRAM
        else:
            raise _invalid(
                target, f"fd {fd} is a {kind}; listen_fds adopts listening stream sockets and datagram sockets"
            )
    if want == "listen":
        if not is_stream:
            raise _invalid(target, f"fd {fd} is a {kind}; listen adopts a listening stream socket (bind takes others)")
        if not seen.listening:
            raise _invalid(
                target, f"fd {fd} is a stream socket that is not listening; listen adopts only listening sockets"
            )
        return "server"
    if seen.listening:
        raise _invalid(target, f"fd {fd} is a {kind}; adopt it with listen('{target}'), not bind")
    if seen.mode != want:
        raise _invalid(target, f"fd {fd} is a {kind}, not a {_mode_name(want)} socket as mode=Mode.{want.name} asks")
    if not _is_bound(seen.address):
        raise _invalid(target, f"fd {fd} is a {kind} that is not bound to an address; bind adopts bound sockets")
    if protocol:
        if not platform.HAS_SO_PROTOCOL:
            raise SocketError.OptionUnsupported(
                None, "this platform cannot read a socket's protocol (no SO_PROTOCOL)", address=str(target)
            )
        if seen.protocol != protocol:
            raise _invalid(target, f"fd {fd} is a socket of protocol {seen.protocol}, not {protocol}")
    return "socket"


def _is_bound(address: Address) -> bool:
    # An unbound IP socket reports port 0; an unbound unix socket reports no name.
    if isinstance(address, UnixAddress):
        return not address.unnamed
    return address.port != 0


def authorize(verdict: Verdict, capability: NetBind | None) -> None:
    """The capability gate with the socket's real address, type and protocol (audits; CapabilityDenied).

    A connected stream binds nothing and is not gated.
    """
    seen = verdict.seen
    if capability is not None and verdict.kind != "stream":
        capability.authorize(seen.address, seen.mode, seen.protocol)


def announce(target: FdAddress, capability: NetBind | None = None) -> None:
    """Raise the PEP 578 event every bind raises, with ``"fd://N"``: an audit hook may veto it."""
    sys.audit("janus_net.bind", str(target), None if capability is None else capability.id)


def examine(target: FdAddress, want: Want, protocol: int = 0, check: loop.Checkpoint | None = None) -> Verdict:
    """What the descriptor is, and whether it is what ``want`` asks for (`look`, `require`): reads only."""
    seen = look(target, want, check)
    return Verdict(seen, require(seen, want, protocol))


def admit(verdict: Verdict, capability: NetBind | None = None) -> None:
    """The last judgements before owning: nobody in janus_net holds it, and the capability allows it.

    After `examine` (most refusals come from there, and it is cheap; the first owner
    check of a process walks the heap once), before the gate: a held descriptor is
    refused without an audit record, and never touched.
    """
    refuse_held(verdict.seen.target)
    authorize(verdict, capability)


def judge(
    target: FdAddress,
    want: Want,
    protocol: int = 0,
    check: loop.Checkpoint | None = None,
    capability: NetBind | None = None,
) -> Verdict:
    """Every step before owning (`examine`, then `admit`): nothing is owned, and every failure leaves the fd as it was.

    The audit event is left to the caller (`announce`), which raises it once it has
    judged every descriptor of its batch.
    """
    verdict = examine(target, want, protocol, check)
    admit(verdict, capability)
    return verdict


def judge_received(fd: int, kind: Kind, name: str, capability: NetBind | None = None) -> Verdict:
    """`judge` for a descriptor received by SCM_RIGHTS and announced as ``kind``: ProtocolFailure unless it is one.

    The refusal is the whole transfer's: the receive path closes every descriptor
    it received (this one included, once) before the error propagates.

    No owner check: the kernel gave the descriptor a number that was free, and its
    only holder until `own` is the control buffer it arrived in (which the owner
    registry counts, so that an ``fd://`` of the number meanwhile is refused).
    """
    target = FdAddress(fd)
    want: Want = "stream" if kind == "stream" else "any"
    try:
        verdict = examine(target, want)
    except SocketError.InvalidAddress as e:
        raise SocketError.ProtocolFailure(
            None, f"receive_sockets: {name!r}: {e.args[0] if e.args else e}", syscall="recvmsg"
        ) from e
    if verdict.kind != kind:
        raise SocketError.ProtocolFailure(
            None, f"receive_sockets: {name!r} was announced as a {kind} but is a {verdict.seen.kind}", syscall="recvmsg"
        )
    authorize(verdict, capability)
    return verdict


# --- own


# Two threads adopting one number at once would both pass the owner check before either
# owns it. So the take of a named fd is claimed first: fd -> (thread id, weak reference to
# the cell it goes into), set with one dict.setdefault (a single step under the GIL). Not a
# lock: an interrupt landing on the line that would release a lock would leave every later
# adoption waiting; a claim an exception cut short is merely stale, and is taken over --
# by its own thread at once (a thread is never inside two takes), by another once the
# claim's cell is gone or closed.
if TYPE_CHECKING:
    _Claim = tuple[int, _ref[Any]]
_taking: dict[int, _Claim] = {}


def _claim(target: FdAddress, desc: Any) -> _Claim:
    mine = (_thread.get_ident(), _ref(desc))
    theirs = _taking.setdefault(target.fd, mine)
    if theirs is not mine:
        cell = theirs[1]()
        if theirs[0] != mine[0] and cell is not None and not cell.closing:
            raise _invalid(target, f"fd {target.fd} is being adopted by another thread; a descriptor is adopted once")
        _taking[target.fd] = mine  # stale: nobody is taking it any more
    return mine


def own(verdict: Verdict, slot: Any = None) -> Server | Socket | Stream:
    """Make the descriptor close-on-exec (and SIGPIPE-free where that takes an option), and own it.

    ``slot``: the ``int *`` a received descriptor sits in (a control buffer's
    SCM_RIGHTS entry); None for a descriptor the caller named. Close-on-exec, so it
    is not leaked to the next program this one starts. Its O_NONBLOCK flag is left
    as it was: it belongs to the file description, which other processes may share,
    and janus_net's calls work either way. Ownership passes in one native call that
    stores the fd in the new object's cell (and, for a received one, empties its
    slot); from there on every path closes it exactly once.
    """
    fd = verdict.seen.target.fd
    # A named fd is still the caller's here: one of its threads may close it meanwhile.
    flags.set_cloexec(fd, table=flags.ADOPT_FCNTL if slot is None else None)
    if platform.SO_NOSIGPIPE:
        socket_options.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1)
    desc = kernel_cells.new_desc()
    if slot is None:
        claim = _claim(verdict.seen.target, desc)
        try:
            # Again, now that no other thread can be taking it: another may have adopted
            # the number since it was judged. Once adopt_into returns, the cell holds it
            # for every later check.
            refuse_held(verdict.seen.target)
            cells.adopt_into(desc, fd)  # the fd is ours from here on
        finally:
            if _taking.get(fd) is claim:
                _taking.pop(fd, None)
        # No unix file handle: janus_net did not create the file, so close() leaves it.
        return wrap(desc, verdict.kind, verdict.seen.address)
    try:
        cells.take_into(desc, slot)  # the slot is empty and the cell full, in one call
        return wrap(desc, verdict.kind, verdict.seen.address)
    except BaseException:
        kernel_cells.close_desc(desc)  # claim-once: an object made just before is lost with the exception anyway
        raise


def adopt(
    target: FdAddress,
    want: Want,
    protocol: int = 0,
    check: loop.Checkpoint | None = None,
    capability: NetBind | None = None,
) -> Server | Socket | Stream:
    """Adopt the socket ``target`` names, if it is what ``want`` asks for (the steps above).

    Under a capability the socket's real address, type and protocol are checked and
    audited (``check_bind_address``; there is no ``bind_socket`` record since nothing
    is bound here). The PEP 578 event ``janus_net.bind`` carries ``"fd://N"``.

    Raises:
        SocketError.InvalidAddress: the fd is not open, not a socket janus_net can
            adopt, not the kind ``want`` asks for, or already held by a live janus_net
            owner. The fd is left as it was.
        SocketError.CapabilityDenied: the capability refuses it (the fd is left open).
    """
    verdict = judge(target, want, protocol, check, capability)
    announce(target, capability)
    if check is not None:
        check()
    return own(verdict)


def adopt_listener(
    target: FdAddress, check: loop.Checkpoint | None = None, capability: NetBind | None = None
) -> Server:
    """`adopt` for ``listen``: a listening stream socket, as a `Server`."""
    server = adopt(target, "listen", 0, check, capability)
    assert isinstance(server, Server)
    return server


def adopt_bound(
    target: FdAddress,
    mode: Mode,
    protocol: int = 0,
    check: loop.Checkpoint | None = None,
    capability: NetBind | None = None,
) -> Socket:
    """`adopt` for ``bind``: a bound socket of ``mode`` (and ``protocol``), as a `Socket`."""
    sock = adopt(target, mode, protocol, check, capability)
    assert isinstance(sock, Socket)
    return sock
