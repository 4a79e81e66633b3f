"""The three profiles of ``listen`` and ``bind``, all running one step sequence.

:core       ``listen(address, **options)``
:service    ``listen_with_context(address, ctx, **options)``
:sovereign  ``listen_with_capability(address, cap, ctx=None, **options)``

The steps (DESIGN §6) are written once, in `_open`::

    parse -> [capability gate] -> audit event -> (1) socket -> (2) options
          -> (3) sockaddr -> (4) bind -> (5) listen -> getsockname -> [bind_socket record]

A context's ``check()`` runs at each numbered checkpoint (before the step) and on
every EINTR retry; a profile without a context runs no checkpoint at all. Every
option is validated before the first syscall. Once the socket exists, any exception
-- a kernel error, a checkpoint's Timeout, an audit sink's error, a
KeyboardInterrupt -- closes it and removes a unix socket file this call created
before it propagates.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from janus_net import adopt, descriptor, landlock, netns, platform, sockopts, steps, syscalls, unixfile
from janus_net._shim import lib
from janus_net.address import (
    Address,
    BindAddress,
    FdAddress,
    Ip6Address,
    UnixAddress,
    as_bind_address,
    reported,
)
from janus_net.context import Context  # for _require_context's check (below listen, as in steps.py)
from janus_net.errors import SocketError
from janus_net.netns import NamespacePath
from janus_net.options import DEFAULT_LISTEN, Options, bind_options, listen_options, validate
from janus_net.socket import Mode, Protocol, Server, Socket
from janus_net.unixfile import UnixFile

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, TypeVar


if TYPE_CHECKING:
    from janus_net.capability import NetBind


def _set_options(fd: int, addr: Address, opts: Options, check: syscalls.Checkpoint | None) -> None:
    ip = not isinstance(addr, UnixAddress)
    if opts.reuse_address and ip:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, lib.SO_REUSEADDR, 1, check)
    if opts.reuse_port:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_REUSEPORT, 1, check)
    if opts.ip6_only is not None:
        syscalls.setsockopt_int(fd, lib.IPPROTO_IPV6, lib.IPV6_V6ONLY, 1 if opts.ip6_only else 0, check)
    if opts.broadcast:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, lib.SO_BROADCAST, 1, check)
    if platform.SO_NOSIGPIPE:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1, check)
    if opts.gro:
        syscalls.setsockopt_int(fd, lib.JN_SOL_UDP, lib.JN_UDP_GRO, 1, check)
    if opts.pktinfo:
        if isinstance(addr, Ip6Address):
            syscalls.setsockopt_int(fd, lib.IPPROTO_IPV6, lib.JN_IPV6_RECVPKTINFO, 1, check)
        else:
            syscalls.setsockopt_int(fd, lib.IPPROTO_IP, lib.JN_IP_PKTINFO, 1, check)
    if opts.timestamps:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, lib.JN_SO_TIMESTAMPNS, 1, check)
    if isinstance(addr, UnixAddress) and not addr.abstract:
        unixfile.before_bind(fd, opts.file_mode, opts.owner, opts.group, check)  # unix file: permissions before bind
    sockopts.apply(fd, addr, opts.extra, check)  # DESIGN §16: freebind, device, steer...


def _bind(
    fd: int,
    addr: Address,
    encoded: Any,
    opts: Options,
    check: syscalls.Checkpoint | None,
    unix_file: UnixFile | None,
) -> None:
    if unix_file is not None:
        assert isinstance(addr, UnixAddress)
        unixfile.bind(fd, addr, unix_file, opts.unlink_stale, opts.mode, check)  # unix file: stale handling, lock
        return
    unix = isinstance(addr, UnixAddress)
    syscalls.bind(fd, encoded.pointer, encoded.length, unix=unix, checkpoint=check, address=addr)


# --- fd://N: adopt an inherited socket instead of making one (janus_net.adopt)

# Options whose parameter name differs from their Options field.
_OPTION_NAMES = {"file_mode": "mode"}


def _refuse_options(target: FdAddress, opts: Options) -> None:
    """OptionUnsupported unless every option is at its default (raised before the fd is looked at).

    The options describe how to make a socket, and an adopted one is already made.
    For ``bind``, ``mode`` and ``protocol`` are not settings but what the socket
    must be: they are checked by `janus_net.adopt`.
    """
    default = listen_options() if opts.kind == "listen" else bind_options(mode=opts.mode, protocol=opts.protocol)
    changed = [
        _OPTION_NAMES.get(f, f) for f in Options._fields if f != "extra" and getattr(opts, f) != getattr(default, f)
    ]
    changed += opts.extra.changed()
    if changed:
        raise SocketError.OptionUnsupported(
            None,
            f"{', '.join(changed)} cannot apply to an adopted socket: set it where the socket is made",
            address=str(target),
        )


class _ErrDefer:
    """Cleanups that run only if the block raises, newest first (Zig's ``errdefer``).

    Each cleanup is registered *before* the step whose result it undoes, where the
    undo is harmless on nothing (closing an empty descriptor cell does nothing), so
    an exception landing between a syscall and its registration cannot skip it.
    """

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: list[Callable[[], object]] = []

    def __call__(self, cleanup: Callable[[], object]) -> None:
        self._steps.append(cleanup)

    def __enter__(self) -> _ErrDefer:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            while self._steps:
                self._steps.pop()()


if TYPE_CHECKING:
    _B = TypeVar("_B", Server, Socket)


def _listener(
    address: str | BindAddress, opts: Options, ctx: Context | None = None, capability: NetBind | None = None
) -> Server:
    addr = as_bind_address(address)
    if isinstance(addr, FdAddress):
        _refuse_options(addr, opts)
        # The capability gate needs the socket's real address: adopt asks it.
        return adopt.adopt_listener(addr, None if ctx is None else ctx.check, capability)
    return _open(addr, opts, ctx, capability, Server)


def _bound(
    address: str | BindAddress, opts: Options, ctx: Context | None = None, capability: NetBind | None = None
) -> Socket:
    addr = as_bind_address(address)
    if isinstance(addr, FdAddress):
        _refuse_options(addr, opts)
        return adopt.adopt_bound(addr, opts.mode, opts.protocol, None if ctx is None else ctx.check, capability)
    sock = _open(addr, opts, ctx, capability, Socket)
    sock._made(opts.gro)  # plain receives of a gro=True socket deliver one datagram each (coalesced.py)
    return sock


def _open(addr: Address, opts: Options, ctx: Context | None, capability: NetBind | None, owner: type[_B]) -> _B:
    """The step sequence (module docstring); ``owner`` is what the descriptor becomes."""
    validate(addr, opts)
    landlock.refuse_uncovered(addr, opts.mode, opts.protocol)  # after enforce(): no MPTCP or SMC (unseen by Landlock)
    if capability is not None:
        capability.authorize(addr, opts.mode, opts.protocol)  # audits check_bind_address; raises CapabilityDenied
    sys.audit("janus_net.bind", str(addr), None if capability is None else capability.id)
    plan = steps.plan_for(addr, opts)
    if plan is not None:
        return _open_native(plan, addr, opts, ctx, capability, owner)
    check = None if ctx is None else ctx.check
    unix_file = UnixFile(addr.path) if isinstance(addr, UnixAddress) and not addr.abstract else None
    with _ErrDefer() as errdefer:
        # The cell exists before the socket: socket() writes the fd into it, so from
        # the syscall's return on, this cleanup (or the cell's collection) closes it.
        desc = descriptor.new()
        errdefer(lambda: descriptor.close(desc))
        try:
            result = owner(desc, _steps_one_by_one(desc, addr, opts, check, unix_file, errdefer), unix_file)
        except SocketError.AccessDenied as exc:
            denial = _denial(exc, addr, opts)
            if denial is exc:
                raise
            raise denial from None
        if capability is not None and capability.audit is not None:
            # Audits bind_socket with the real port; only with a sink, since reading
            # ``.address`` builds the bound address a listener otherwise makes on first use.
            capability.record_bound(result.address, opts.mode, opts.protocol)
    return result


def _open_native(
    plan: steps.Plan, addr: Address, opts: Options, ctx: Context | None, capability: NetBind | None, owner: type[_B]
) -> _B:
    """`_open` for what the native step sequence covers (DESIGN §2): the same steps, checkpoints and tables.

    One cleanup, so no `_ErrDefer`: the cell is closed if anything below raises. Before
    the ``try`` the cell is empty (an interrupt there leaves it to its collection, which
    closes nothing); inside it, the fd is in the cell from socket()'s return on.
    """
    desc = descriptor.new()
    try:
        io = steps.new_io(desc)
        try:
            steps.run(plan, io, addr, ctx)
        except SocketError.AccessDenied as exc:
            denial = _denial(exc, addr, opts)
            if denial is exc:
                raise
            raise denial from None
        port = io.port
        if owner is Server and port >= 0 and type(addr) is not UnixAddress:
            result: _B = Server(desc, addr, None, port)  # the address is made on first use
        else:
            result = owner(desc, steps.bound_address(io, addr), None)
        if capability is not None and capability.audit is not None:
            capability.record_bound(result.address, opts.mode, opts.protocol)  # as in _open
    except BaseException:
        descriptor.close(desc)
        raise
    return result


def _denial(exc: SocketError, addr: Address, opts: Options) -> SocketError:
    """After enforce(), a bind the kernel's ruleset refused is CapabilityDenied("kernel")."""
    return landlock.kernel_denial(exc, addr, opts.mode, opts.protocol) if exc.syscall == "bind" else exc


def _steps_one_by_one(
    desc: Any,
    addr: Address,
    opts: Options,
    check: syscalls.Checkpoint | None,
    unix_file: UnixFile | None,
    errdefer: _ErrDefer,
) -> Address:
    """The step sequence one syscall at a time, for what the native one leaves to Python.

    A unix socket file (permissions before bind, the stale-file lock, the identity
    after bind), a network namespace, the DESIGN §15/§16 options and the SOCK_CLOEXEC
    emulation. Returns the bound address; the fd stays in ``desc``.
    """
    if check is not None:
        check()  # (1) before socket
    fd = netns.socket(opts.extra.netns, desc, addr.family, opts.mode, opts.protocol, check)
    if check is not None:
        check()  # (2) between socket and options
    _set_options(fd, addr, opts, check)
    if check is not None:
        check()  # (3) between options and sockaddr
    encoded = addr.sockaddr  # encoded once; the address keeps it
    if check is not None:
        check()  # (4) between sockaddr and bind
    if unix_file is not None:
        # Registered before bind, harmless on nothing (it removes only the inode recorded
        # after bind), and run before the fd is closed: the file names a live socket for
        # as long as it exists.
        errdefer(unix_file.remove)
    _bind(fd, addr, encoded, opts, check, unix_file)
    if unix_file is not None:
        unixfile.after_bind(fd, unix_file, opts.file_mode, opts.owner, opts.group, check)  # unix file: identity
    if opts.kind == "listen":
        if check is not None:
            check()  # (5) between bind and listen
        syscalls.listen(fd, opts.backlog, check, addr)
        sockopts.after_listen(fd, addr, opts.extra, check)  # steer="cpu" joins the group at listen
    return _local_address(fd, addr)


def _local_address(fd: int, requested: Address) -> Address:
    storage, length = syscalls.getsockname(fd)
    return reported(requested, storage, length)


# --- :core


def listen(
    address: str | BindAddress,
    *,
    backlog: int = 128,
    reuse_address: bool = True,
    reuse_port: bool = False,
    ip6_only: bool | None = None,
    mode: int | None = None,
    unlink_stale: bool = False,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    fastopen: int | None = None,
    defer_accept: int | None = None,
    incoming_cpu: int | None = None,
    steer: str | None = None,
    netns: NamespacePath | None = None,
    owner: int | str | None = None,
    group: int | str | None = None,
) -> Server:
    """Create a listening stream socket on ``address`` (:core profile).

    The socket is TCP, or a unix stream socket, close-on-exec and blocking. Every option is checked
    for type and range before the first syscall; once the socket exists, any failure closes it and
    removes a unix socket file this call created before the error reaches you.

    >>> with listen("127.0.0.1:0") as server:
    ...     server.address.port > 0
    True

    Args:
      address: the text of any address form (``"127.0.0.1:8080"``, ``"[::1]:0"``, ``":8080"``,
          ``"unix:/run/app.sock"``, ``"unix:@name"``), or an address value; ``"fd://N"`` adopts an
          inherited listening socket (then only the defaults of the other options are allowed).
      backlog: the listen(2) queue length, an int in 0..2**31-1 (the kernel caps it at
          ``net.core.somaxconn``).
      reuse_address: SO_REUSEADDR (IP only; ignored for unix sockets).
      reuse_port: SO_REUSEPORT: several sockets share the port and the kernel spreads connections
          among them (IP only).
      ip6_only: None leaves the system default; True or False sets IPV6_V6ONLY (IPv6 addresses only).
      mode: the **file permissions** of a unix socket file, an int such as ``0o600``, applied through
          the socket's inode, never through the name. (In `bind`, ``mode`` is the socket *type*.)
      unlink_stale: remove a stale unix socket file at the path (no socket is bound to it) under a
          lock, and bind again; a live socket, listening or merely bound, or any other file is never
          removed.
      freebind: IP_FREEBIND: bind an address no interface has (yet).
      transparent: IP_TRANSPARENT (TPROXY); needs CAP_NET_ADMIN.
      device: SO_BINDTODEVICE: an interface name, 1..15 bytes, no NUL, ``/``, whitespace or ``:``.
      fastopen: TCP_FASTOPEN: the TFO queue length, an int in 0..2**31-1 (TCP only).
      defer_accept: TCP_DEFER_ACCEPT: seconds to wait for the client's first data, an int in
          0..2**31-1 (TCP only).
      incoming_cpu: SO_INCOMING_CPU: a CPU number, an int in 0..2**31-1.
      steer: ``"cpu"`` attaches a BPF program that hands each connection to the member of the
          SO_REUSEPORT group whose index is the CPU that received it; needs ``reuse_port=True``.
      netns: a network namespace file (``/run/netns/NAME``, ``/proc/PID/ns/net``): the socket is
          made inside that namespace; the calling thread never leaves its own.
      owner: the unix socket file's owner, a user name or a uid.
      group: the unix socket file's group, a group name or a gid.

    Returns:
      The listening `Server`; ``.address`` has the real port when port 0 was asked.

    Raises:
      ValueError, TypeError: an option of the wrong type or out of range, before any syscall.
      SocketError.InvalidAddress, SocketError.InvalidPort: the address text.
      SocketError.AddressInUse: the port or the path is taken; for a unix path holding a stale
          socket file, ``unlink_stale=True`` removes it.
      SocketError.AddressUnavailable: not an address of this machine, a link-local address without a
          zone, or no such ``device``.
      SocketError.AccessDenied: a port below 1024 without privilege, a directory you may not write,
          ``transparent`` without CAP_NET_ADMIN.
      SocketError.FileNotFound, SocketError.NotDir, SocketError.SymLinkLoop,
          SocketError.ReadOnlyFileSystem: the directory of a unix path.
      SocketError.OptionUnsupported: an option that cannot apply to the address (``mode`` on an IP
          address, ``ip6_only`` on IPv4, ``reuse_port`` or a TCP option on unix), before the socket
          exists.
      SocketError.AddressFamilyUnsupported, SocketError.ProtocolUnsupportedBySystem,
          SocketError.ProtocolUnsupportedByAddressFamily: the platform lacks the family or protocol.
      SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded,
          SocketError.SystemResources: out of descriptors or kernel memory.
      SocketError.CapabilityDenied: after ``NetBind.enforce()``, the kernel refused the port
          (``.reason == "kernel"``).
    """
    opts = _listen_opts(
        backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale, owner, group,
        freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, netns,
    )  # fmt: skip
    return _listener(address, opts)


def bind(
    address: str | BindAddress,
    *,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
    gro: bool = False,
    pktinfo: bool = False,
    timestamps: bool = False,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    incoming_cpu: int | None = None,
    netns: NamespacePath | None = None,
) -> Socket:
    """Create a bound socket (datagram by default) on ``address`` (:core profile).

    The socket is close-on-exec and blocking; every option is checked before the first syscall, and a
    failure after the socket exists closes it before the error reaches you.

    Args:
      address: as for `listen` (``"fd://N"`` adopts an inherited bound socket).
      mode: the **socket type**, a `Mode`: ``Mode.DGRAM`` (the default), ``STREAM``, ``SEQPACKET``,
          ``RAW``, ``RDM``. (In `listen`, ``mode`` is a unix socket file's permissions.)
      protocol: None (the family's default for the type), a `Protocol` (IANA numbers: ``TCP``,
          ``UDP``, ...) or a protocol number as an int (a ``str`` or ``bool`` is a TypeError).
      ip6_only: None leaves the system default; True or False sets IPV6_V6ONLY (IPv6 addresses only).
      reuse_address: SO_REUSEADDR.
      broadcast: SO_BROADCAST: allow sending to a broadcast address.
      gro: UDP_GRO: `Socket.receive_segments` may get many coalesced datagrams at once (UDP only).
      pktinfo: fill in `Socket.receive_message`'s ``Datagram.destination`` (IP datagram sockets).
      timestamps: fill in `Socket.receive_message`'s ``Datagram.timestamp`` (the kernel's receive time).
      freebind, transparent, device, incoming_cpu, netns: as for `listen`.

    Returns:
      The bound `Socket`; ``.address`` has the real port when port 0 was asked.

    Raises:
      ValueError, TypeError: an option of the wrong type or out of range, before any syscall.
      SocketError.SocketModeUnsupported: a type the family does not offer (``SEQPACKET`` or ``RDM``
          on IP), or a protocol that does not fit the type.
      SocketError.AccessDenied: ``Mode.RAW`` without CAP_NET_RAW, and as for `listen`.
      The other members as for `listen`.
    """
    opts = _bind_opts(
        mode, protocol, ip6_only, reuse_address, broadcast, gro, pktinfo, timestamps,
        freebind, transparent, device, incoming_cpu, netns,
    )  # fmt: skip
    return _bound(address, opts)


# --- :service


def listen_with_context(
    address: str | BindAddress,
    ctx: Context,
    *,
    backlog: int = 128,
    reuse_address: bool = True,
    reuse_port: bool = False,
    ip6_only: bool | None = None,
    mode: int | None = None,
    unlink_stale: bool = False,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    fastopen: int | None = None,
    defer_accept: int | None = None,
    incoming_cpu: int | None = None,
    steer: str | None = None,
    netns: NamespacePath | None = None,
    owner: int | str | None = None,
    group: int | str | None = None,
) -> Server:
    """`listen`, with ``ctx.check()`` at the five checkpoints and on every EINTR retry (:service profile).

    A cancelled or expired context raises `SocketError.Timeout` at the next checkpoint, and nothing
    is left behind: no fd, no unix socket file, no bound port.

    Args:
      address: as for `listen`.
      ctx: the `Context` asked before socket, options, sockaddr, bind and listen.
      backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale, freebind, transparent,
          device, fastopen, defer_accept, incoming_cpu, steer, netns, owner, group: as for `listen`
          (``mode`` is the unix socket file's permissions).

    Raises:
      TypeError: ``ctx`` is not a `Context` (None included), before any syscall.
      SocketError.Timeout: the context was cancelled (``.reason == "cancelled"``) or its deadline
          passed (``"deadline"``) at a checkpoint.
      The errors of `listen`.
    """
    _require_context(ctx)
    opts = _listen_opts(
        backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale, owner, group,
        freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, netns,
    )  # fmt: skip
    return _listener(address, opts, ctx)


def bind_with_context(
    address: str | BindAddress,
    ctx: Context,
    *,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
    gro: bool = False,
    pktinfo: bool = False,
    timestamps: bool = False,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    incoming_cpu: int | None = None,
    netns: NamespacePath | None = None,
) -> Socket:
    """`bind`, with ``ctx.check()`` at the first four checkpoints (a bound socket has no listen step).

    Args:
      address: as for `bind`.
      ctx: the `Context` asked before socket, options, sockaddr and bind.
      mode, protocol, ip6_only, reuse_address, broadcast, gro, pktinfo, timestamps, freebind,
          transparent, device, incoming_cpu, netns: as for `bind` (``mode`` is the socket type).

    Raises:
      TypeError: ``ctx`` is not a `Context` (None included), before any syscall.
      SocketError.Timeout: the context was cancelled or its deadline passed at a checkpoint.
      The errors of `bind`.
    """
    _require_context(ctx)
    opts = _bind_opts(
        mode, protocol, ip6_only, reuse_address, broadcast, gro, pktinfo, timestamps,
        freebind, transparent, device, incoming_cpu, netns,
    )  # fmt: skip
    return _bound(address, opts, ctx)


# --- :sovereign


def listen_with_capability(
    address: str | BindAddress,
    cap: NetBind,
    *,
    ctx: Context | None = None,
    backlog: int = 128,
    reuse_address: bool = True,
    reuse_port: bool = False,
    ip6_only: bool | None = None,
    mode: int | None = None,
    unlink_stale: bool = False,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    fastopen: int | None = None,
    defer_accept: int | None = None,
    incoming_cpu: int | None = None,
    steer: str | None = None,
    netns: NamespacePath | None = None,
    owner: int | str | None = None,
    group: int | str | None = None,
) -> Server:
    """`listen`, if the capability allows the address; audited, and with ``ctx`` cancellable (:sovereign).

    The capability is asked before any syscall: a denial writes one ``check_bind_address/denied``
    record and raises `SocketError.CapabilityDenied`. An allowed bind writes
    ``check_bind_address/allowed``, and ``bind_socket/allowed`` with the port actually bound once the
    OS bind has succeeded.

    Args:
      address: as for `listen`.
      cap: the `NetBind` that must allow the address: an IP address if its port is one of the
          capability's ports (port 0 only if 0 was added); a unix socket while it grants ``net.bind``.
      ctx: None, or a `Context` asked at the checkpoints as in `listen_with_context`.
      backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale, freebind, transparent,
          device, fastopen, defer_accept, incoming_cpu, steer, netns, owner, group: as for `listen`
          (``mode`` is the unix socket file's permissions).

    Raises:
      TypeError: ``cap`` is not a `NetBind`, or ``ctx`` is neither None nor a `Context`, before any
          syscall.
      SocketError.CapabilityDenied: the capability does not allow the address, or, after
          ``enforce()``, the kernel refused it.
      SocketError.Timeout: with ``ctx``, as in `listen_with_context`.
      The errors of `listen`; an error raised by the audit sink propagates, after the socket is
          closed.
    """
    _require_capability(cap, ctx)
    opts = _listen_opts(
        backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale, owner, group,
        freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, netns,
    )  # fmt: skip
    return _listener(address, opts, ctx, cap)


def bind_with_capability(
    address: str | BindAddress,
    cap: NetBind,
    *,
    ctx: Context | None = None,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
    gro: bool = False,
    pktinfo: bool = False,
    timestamps: bool = False,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    incoming_cpu: int | None = None,
    netns: NamespacePath | None = None,
) -> Socket:
    """`bind`, gated and audited by the capability as `listen_with_capability` is (:sovereign).

    Args:
      address: as for `bind`.
      cap: the `NetBind` that must allow the address, as in `listen_with_capability`; it sees the
          socket type and protocol: RAW, RDM or another protocol than TCP, UDP and SCTP (whose
          "port" is no port) is denied unless the capability was built with ``raw=True``.
      ctx: None, or a `Context` asked at the checkpoints as in `bind_with_context`.
      mode, protocol, ip6_only, reuse_address, broadcast, gro, pktinfo, timestamps, freebind,
          transparent, device, incoming_cpu, netns: as for `bind` (``mode`` is the socket type).

    Raises:
      TypeError: ``cap`` is not a `NetBind`, or ``ctx`` is neither None nor a `Context`, before any
          syscall.
      SocketError.CapabilityDenied: the capability does not allow the address (or the type), or,
          after ``enforce()``, the kernel refused it.
      SocketError.Timeout: with ``ctx``, as in `bind_with_context`.
      The errors of `bind`.
    """
    _require_capability(cap, ctx)
    opts = _bind_opts(
        mode, protocol, ip6_only, reuse_address, broadcast, gro, pktinfo, timestamps,
        freebind, transparent, device, incoming_cpu, netns,
    )  # fmt: skip
    return _bound(address, opts, ctx, cap)


def _require_context(ctx: object) -> None:
    """A `Context` (or subclass) is required: anything else is a TypeError before any syscall."""
    # Without this, None would silently turn the :service profile into :core, and any
    # other object would fail with an AttributeError halfway through.
    if ctx is None:
        raise TypeError("a context is required here; use listen()/bind() to run without one")
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be a janus_net.Context, not {type(ctx).__name__}")


def _require_capability(cap: object, ctx: object = None) -> None:
    """A `NetBind` (or subclass), and a `Context` or None, are required: else TypeError before any syscall."""
    if cap is None:
        raise TypeError("a capability is required here; use listen()/bind() to run without one")
    # The capability module loads with the first NetBind (import time): until it is in
    # sys.modules nothing can be a NetBind. A dict lookup, not an import statement per call.
    capability = sys.modules.get("janus_net.capability")
    if capability is None or not isinstance(cap, capability.NetBind):
        raise TypeError(f"cap must be a janus_net.NetBind, not {type(cap).__name__}")
    if ctx is not None:
        _require_context(ctx)


def _listen_opts(
    backlog: int,
    reuse_address: bool,
    reuse_port: bool,
    ip6_only: bool | None,
    mode: int | None,
    unlink_stale: bool,
    owner: int | str | None,
    group: int | str | None,
    freebind: bool,
    transparent: bool,
    device: str | None,
    fastopen: int | None,
    defer_accept: int | None,
    incoming_cpu: int | None,
    steer: str | None,
    netns: NamespacePath | None,
) -> Options:
    """The three listen* profiles' keywords as one validated `Options` (built by keyword)."""
    if (
        backlog == 128
        and type(backlog) is int
        and reuse_address is True
        and reuse_port is False
        and ip6_only is None
        and mode is None
        and unlink_stale is False
        and owner is None
        and group is None
        and freebind is False
        and transparent is False
        and device is None
        and fastopen is None
        and defer_accept is None
        and incoming_cpu is None
        and steer is None
        and netns is None
    ):
        return DEFAULT_LISTEN  # every keyword at its default: the options checked once (no extra/listen_options)
    extra = sockopts.extra(
        freebind=freebind,
        transparent=transparent,
        device=device,
        fastopen=fastopen,
        defer_accept=defer_accept,
        incoming_cpu=incoming_cpu,
        steer=steer,
        netns=netns,
        reuse_port=reuse_port,
    )
    return listen_options(
        backlog=backlog,
        reuse_address=reuse_address,
        reuse_port=reuse_port,
        ip6_only=ip6_only,
        mode=mode,
        unlink_stale=unlink_stale,
        owner=owner,
        group=group,
        extra=extra,
    )


def _bind_opts(
    mode: Mode,
    protocol: Protocol | int | None,
    ip6_only: bool | None,
    reuse_address: bool,
    broadcast: bool,
    gro: bool,
    pktinfo: bool,
    timestamps: bool,
    freebind: bool,
    transparent: bool,
    device: str | None,
    incoming_cpu: int | None,
    netns: NamespacePath | None,
) -> Options:
    """The three bind* profiles' keywords as one validated `Options` (built by keyword)."""
    extra = sockopts.extra(
        freebind=freebind, transparent=transparent, device=device, incoming_cpu=incoming_cpu, netns=netns
    )
    return bind_options(
        mode=mode,
        protocol=protocol,
        ip6_only=ip6_only,
        reuse_address=reuse_address,
        broadcast=broadcast,
        gro=gro,
        pktinfo=pktinfo,
        timestamps=timestamps,
        extra=extra,
    )
