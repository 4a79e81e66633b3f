"""The three profiles of ``listen`` and ``bind``: the six public functions.

:core       ``listen(address, **options)``, ``bind(address, **options)``
:service    ``listen_with_context(address, ctx, **options)``, ``bind_with_context``
:sovereign  ``listen_with_capability(address, cap, ctx=None, **options)``, ``bind_with_capability``

Each is an explicit keyword signature (for users and type checkers) over one step
sequence (`janus_net._profiles.sequence`). The keywords, their defaults and their
types are the table's (`janus_net._values.options`; tests/test_options_table.py fails
when a signature disagrees); each function hands their values, in signature order,
to `listen_values`/`bind_values`, which check them all before any syscall.
"""

from __future__ import annotations

import sys

from janus_net._policy.context import Context  # for _require_context's isinstance
from janus_net._policy.netns import NamespacePath
from janus_net._profiles import option_checks
from janus_net._profiles.sequence import bound, listener
from janus_net._sockets.datagram import Socket
from janus_net._sockets.server import Server
from janus_net._values.addresses import BindAddress
from janus_net._values.kinds import Mode, Protocol

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from janus_net._policy.capability import NetBind

    _F = TypeVar("_F", bound=Callable[..., object])


# --- the usual call: the address (and the context or capability), no keyword
#
# CPython fills each keyword-only default it was not given with a dict lookup, and
# the six functions below have up to seventeen: about 0.3 µs of a 13 µs listen cycle,
# measured. So each public name is a small function that takes the usual call --
# exactly its positional arguments and no keyword -- straight to the step sequence
# with the default options (the record the written function's check returns for
# them, the same object), and hands every other call to the function as written,
# whose signature Python checks and whose errors are therefore unchanged.
# ``inspect.signature``, ``help()`` and Sphinx follow ``__wrapped__`` to that
# signature; type checkers see it unchanged (the decorators return their argument's type).

_DEFAULT_LISTEN = option_checks.DEFAULT_LISTEN
_DEFAULT_BIND = option_checks.DEFAULT_BIND


def _named_like(call: Any, full: Any) -> Any:
    for name in ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__"):
        setattr(call, name, getattr(full, name))
    call.__wrapped__ = full
    return call


def _core_listen(full: _F) -> _F:
    def call(*args: Any, **options: Any) -> Any:
        if options or len(args) != 1:
            return full(*args, **options)
        return listener(args[0], _DEFAULT_LISTEN)

    return _named_like(call, full)  # type: ignore[no-any-return]


def _core_bind(full: _F) -> _F:
    def call(*args: Any, **options: Any) -> Any:
        if options or len(args) != 1:
            return full(*args, **options)
        return bound(args[0], _DEFAULT_BIND)

    return _named_like(call, full)  # type: ignore[no-any-return]


def _service_listen(full: _F) -> _F:
    def call(*args: Any, **options: Any) -> Any:
        if options or len(args) != 2:
            return full(*args, **options)
        _require_context(args[1])
        return listener(args[0], _DEFAULT_LISTEN, args[1])

    return _named_like(call, full)  # type: ignore[no-any-return]


def _service_bind(full: _F) -> _F:
    def call(*args: Any, **options: Any) -> Any:
        if options or len(args) != 2:
            return full(*args, **options)
        _require_context(args[1])
        return bound(args[0], _DEFAULT_BIND, args[1])

    return _named_like(call, full)  # type: ignore[no-any-return]


def _sovereign_listen(full: _F) -> _F:
    def call(*args: Any, **options: Any) -> Any:
        if options or len(args) != 2:
            return full(*args, **options)
        _require_capability(args[1])
        return listener(args[0], _DEFAULT_LISTEN, None, args[1])

    return _named_like(call, full)  # type: ignore[no-any-return]


def _sovereign_bind(full: _F) -> _F:
    def call(*args: Any, **options: Any) -> Any:
        if options or len(args) != 2:
            return full(*args, **options)
        _require_capability(args[1])
        return bound(args[0], _DEFAULT_BIND, None, args[1])

    return _named_like(call, full)  # type: ignore[no-any-return]


# --- :core


@_core_listen
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
    opts = option_checks.listen_values((
        backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale,
        freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, netns, owner, group,
    ))  # fmt: skip
    return listener(address, opts)


@_core_bind
def bind(
    address: str | BindAddress,
    *,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    reuse_address: bool = False,
    ip6_only: bool | None = None,
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
    opts = option_checks.bind_values((
        mode, protocol, reuse_address, ip6_only, broadcast, gro, pktinfo, timestamps,
        freebind, transparent, device, incoming_cpu, netns,
    ))  # fmt: skip
    return bound(address, opts)


# --- :service


@_service_listen
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
      **options: as for `listen` (``mode`` is the unix socket file's permissions): backlog,
          reuse_address, reuse_port, ip6_only, mode, unlink_stale, freebind, transparent, device,
          fastopen, defer_accept, incoming_cpu, steer, netns, owner, group.

    Raises:
      TypeError: ``ctx`` is not a `Context` (None included), before any syscall.
      SocketError.Timeout: the context was cancelled (``.reason == "cancelled"``) or its deadline
          passed (``"deadline"``) at a checkpoint.
      SocketError: the errors of `listen`.
    """
    _require_context(ctx)
    opts = option_checks.listen_values((
        backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale,
        freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, netns, owner, group,
    ))  # fmt: skip
    return listener(address, opts, ctx)


@_service_bind
def bind_with_context(
    address: str | BindAddress,
    ctx: Context,
    *,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    reuse_address: bool = False,
    ip6_only: bool | None = None,
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
      **options: as for `bind` (``mode`` is the socket type): mode, protocol, ip6_only,
          reuse_address, broadcast, gro, pktinfo, timestamps, freebind, transparent, device,
          incoming_cpu, netns.

    Raises:
      TypeError: ``ctx`` is not a `Context` (None included), before any syscall.
      SocketError.Timeout: the context was cancelled or its deadline passed at a checkpoint.
      SocketError: the errors of `bind`.
    """
    _require_context(ctx)
    opts = option_checks.bind_values((
        mode, protocol, reuse_address, ip6_only, broadcast, gro, pktinfo, timestamps,
        freebind, transparent, device, incoming_cpu, netns,
    ))  # fmt: skip
    return bound(address, opts, ctx)


# --- :sovereign


@_sovereign_listen
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
      **options: as for `listen` (``mode`` is the unix socket file's permissions): backlog,
          reuse_address, reuse_port, ip6_only, mode, unlink_stale, freebind, transparent, device,
          fastopen, defer_accept, incoming_cpu, steer, netns, owner, group.

    Raises:
      TypeError: ``cap`` is not a `NetBind`, or ``ctx`` is neither None nor a `Context`, before any
          syscall.
      SocketError.CapabilityDenied: the capability does not allow the address, or, after
          ``enforce()``, the kernel refused it.
      SocketError.Timeout: with ``ctx``, as in `listen_with_context`.
      SocketError: the errors of `listen`; an error raised by the audit sink propagates, after the socket is
          closed.
    """
    _require_capability(cap, ctx)
    opts = option_checks.listen_values((
        backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale,
        freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, netns, owner, group,
    ))  # fmt: skip
    return listener(address, opts, ctx, cap)


@_sovereign_bind
def bind_with_capability(
    address: str | BindAddress,
    cap: NetBind,
    *,
    ctx: Context | None = None,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    reuse_address: bool = False,
    ip6_only: bool | None = None,
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
      **options: as for `bind` (``mode`` is the socket type): mode, protocol, ip6_only,
          reuse_address, broadcast, gro, pktinfo, timestamps, freebind, transparent, device,
          incoming_cpu, netns.

    Raises:
      TypeError: ``cap`` is not a `NetBind`, or ``ctx`` is neither None nor a `Context`, before any
          syscall.
      SocketError.CapabilityDenied: the capability does not allow the address (or the type), or,
          after ``enforce()``, the kernel refused it.
      SocketError.Timeout: with ``ctx``, as in `bind_with_context`.
      SocketError: the errors of `bind`.
    """
    _require_capability(cap, ctx)
    opts = option_checks.bind_values((
        mode, protocol, reuse_address, ip6_only, broadcast, gro, pktinfo, timestamps,
        freebind, transparent, device, incoming_cpu, netns,
    ))  # fmt: skip
    return bound(address, opts, ctx, cap)


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
    capability = sys.modules.get("janus_net._policy.capability")
    if capability is None or not isinstance(cap, capability.NetBind):
        raise TypeError(f"cap must be a janus_net.NetBind, not {type(cap).__name__}")
    if ctx is not None:
        _require_context(ctx)


__all__ = [
    "bind",
    "bind_with_capability",
    "bind_with_context",
    "listen",
    "listen_with_capability",
    "listen_with_context",
]
