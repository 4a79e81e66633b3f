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

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from janus_net import adopt, descriptor, platform, syscalls
from janus_net._shim import lib
from janus_net.address import (
    Address,
    BindAddress,
    FdAddress,
    UnixAddress,
    as_bind_address,
    reported,
)
from janus_net.errors import SocketError
from janus_net.options import Options, bind_options, listen_options, validate
from janus_net.socket import Mode, Protocol, Server, Socket
from janus_net.unixfile import UnixFile, refuses_connections

if TYPE_CHECKING:
    from janus_net.capability import NetBind
    from janus_net.context import Context


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
    if opts.file_mode is not None:
        # Linux gives the file that bind creates the mode of the unbound socket's inode
        # (less the umask), so the file never exists with wider permissions.
        syscalls.fchmod(fd, opts.file_mode, check)


def _bind(
    fd: int,
    addr: Address,
    encoded: Any,
    opts: Options,
    check: syscalls.Checkpoint | None,
    unix_file: UnixFile | None,
) -> None:
    unix = isinstance(addr, UnixAddress)
    try:
        syscalls.bind(fd, encoded.pointer, encoded.length, unix=unix, checkpoint=check, address=addr)
    except SocketError.AddressInUse:
        if unix_file is None or not opts.unlink_stale:
            raise
        assert isinstance(addr, UnixAddress)
        if not refuses_connections(addr, opts.mode):
            raise
        try:
            os.unlink(addr.path)
        except FileNotFoundError:
            pass
        syscalls.bind(fd, encoded.pointer, encoded.length, unix=True, checkpoint=check, address=addr)


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
    changed = [_OPTION_NAMES.get(f, f) for f in Options._fields if getattr(opts, f) != getattr(default, f)]
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
    return _open(addr, opts, ctx, capability, Socket)


def _open(addr: Address, opts: Options, ctx: Context | None, capability: NetBind | None, owner: type[_B]) -> _B:
    """The step sequence (module docstring); ``owner`` is what the descriptor becomes."""
    validate(addr, opts)
    if capability is not None:
        capability.authorize(addr)  # audits check_bind_address; raises CapabilityDenied
    sys.audit("janus_net.bind", str(addr), None if capability is None else capability.id)

    check = None if ctx is None else ctx.check
    unix_file = UnixFile(addr.path) if isinstance(addr, UnixAddress) and not addr.abstract else None
    with _ErrDefer() as errdefer:
        # The cell exists before the socket: socket() writes the fd into it, so from
        # the syscall's return on, this cleanup (or the cell's collection) closes it.
        desc = descriptor.new()
        errdefer(lambda: descriptor.close(desc))
        if check is not None:
            check()  # (1) before socket
        fd = syscalls.open_socket(desc, addr.family, opts.mode, opts.protocol, check)
        if check is not None:
            check()  # (2) between socket and options
        _set_options(fd, addr, opts, check)
        if check is not None:
            check()  # (3) between options and sockaddr
        encoded = addr.sockaddr  # encoded once; the address keeps it
        if check is not None:
            check()  # (4) between sockaddr and bind
        _bind(fd, addr, encoded, opts, check, unix_file)
        if unix_file is not None:
            errdefer(unix_file.remove)
            unix_file.record()
            if opts.file_mode is not None:
                _exact_mode(unix_file.path, opts.file_mode)
        if opts.kind == "listen":
            if check is not None:
                check()  # (5) between bind and listen
            syscalls.listen(fd, opts.backlog, check, addr)
        result = owner(desc, _local_address(fd, addr), unix_file)
        if capability is not None:
            capability.record_bound(result.address)  # audits bind_socket with the real port
    return result


def _exact_mode(path: str, mode: int) -> None:
    """Set exactly ``mode`` where the umask narrowed it: this only ever widens to what was asked."""
    if os.lstat(path).st_mode & 0o7777 != mode:
        os.chmod(path, mode)


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
) -> Server:
    """Create a listening stream socket on ``address`` (:core profile).

    >>> with listen("127.0.0.1:0") as server:
    ...     server.address.port > 0
    True
    """
    return _listener(address, _listen_opts(backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale))


def bind(
    address: str | BindAddress,
    *,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
) -> Socket:
    """Create a bound socket (datagram by default) on ``address`` (:core profile)."""
    return _bound(address, _bind_opts(mode, protocol, ip6_only, reuse_address, broadcast))


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
) -> Server:
    """`listen`, with ``ctx.check()`` at the five checkpoints and on every EINTR retry.

    A cancelled or expired context raises `SocketError.Timeout` at the next
    checkpoint, and nothing is left behind: no fd, no unix socket file, no bound port.
    """
    _require_context(ctx)
    return _listener(address, _listen_opts(backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale), ctx)


def bind_with_context(
    address: str | BindAddress,
    ctx: Context,
    *,
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
) -> Socket:
    """`bind`, with ``ctx.check()`` at the first four checkpoints (a bound socket has no listen step)."""
    _require_context(ctx)
    return _bound(address, _bind_opts(mode, protocol, ip6_only, reuse_address, broadcast), ctx)


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
) -> Server:
    """`listen`, if the capability allows the address; audited (and with ``ctx``, cancellable).

    The capability is asked before any syscall: a denial writes one
    ``check_bind_address/denied`` record and raises `SocketError.CapabilityDenied`.
    An allowed bind writes ``check_bind_address/allowed``, and ``bind_socket/allowed``
    with the port actually bound once the OS bind has succeeded.
    """
    _require_capability(cap)
    opts = _listen_opts(backlog, reuse_address, reuse_port, ip6_only, mode, unlink_stale)
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
) -> Socket:
    """`bind`, gated and audited by the capability as `listen_with_capability` is."""
    _require_capability(cap)
    return _bound(address, _bind_opts(mode, protocol, ip6_only, reuse_address, broadcast), ctx, cap)


def _listen_opts(
    backlog: int, reuse_address: bool, reuse_port: bool, ip6_only: bool | None, mode: int | None, unlink_stale: bool
) -> Options:
    return listen_options(
        backlog=backlog,
        reuse_address=reuse_address,
        reuse_port=reuse_port,
        ip6_only=ip6_only,
        mode=mode,
        unlink_stale=unlink_stale,
    )


def _bind_opts(
    mode: Mode, protocol: Protocol | int | None, ip6_only: bool | None, reuse_address: bool, broadcast: bool
) -> Options:
    return bind_options(
        mode=mode, protocol=protocol, ip6_only=ip6_only, reuse_address=reuse_address, broadcast=broadcast
    )


def _require_context(ctx: object) -> None:
    # Without this, None would silently turn the :service profile into :core.
    if ctx is None:
        raise TypeError("a context is required here; use listen()/bind() to run without one")


def _require_capability(cap: object) -> None:
    if cap is None:
        raise TypeError("a capability is required here; use listen()/bind() to run without one")
