"""The one step sequence every profile of ``listen`` and ``bind`` runs (the profiles: `janus_net._profiles.listen`).

The steps (DESIGN §6) are written once, in `open_socket`::

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

from janus_net._kernel import cells, loop, sockets
from janus_net._kernel.step_sequence import steps as _steps
from janus_net._policy import landlock, netns
from janus_net._profiles import adoption, native_sequence, socket_options, unix_files
from janus_net._profiles.addresses import as_bind_address
from janus_net._profiles.option_checks import DEFAULT_BIND, DEFAULT_LISTEN, Options, default, validate
from janus_net._profiles.unix_files import UnixFile
from janus_net._shim import ffi
from janus_net._sockets.datagram import Socket
from janus_net._sockets.server import Server
from janus_net._values.addresses import Address, BindAddress
from janus_net._values.errors import SocketError
from janus_net._values.fd import FdAddress
from janus_net._values.ip import Ip4Address
from janus_net._values.options import taken_by
from janus_net._values.reported import reported
from janus_net._values.unix import UnixAddress

_NEW = ffi.new
_IO_P = ffi.typeof("struct jn_steps_io *")

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from janus_net._policy.capability import NetBind
    from janus_net._policy.context import Context


def _set_options(fd: int, addr: Address, opts: Options, check: loop.Checkpoint | None) -> None:
    socket_options.apply(fd, addr, opts, check)  # the one list of setsockopt steps (the native path's too)
    if isinstance(addr, UnixAddress) and not addr.abstract:
        unix_files.before_bind(fd, opts.file_mode, opts.owner, opts.group, check)  # permissions before bind


def _bind(
    fd: int,
    addr: Address,
    encoded: Any,
    opts: Options,
    check: loop.Checkpoint | None,
    unix_file: UnixFile | None,
) -> None:
    if unix_file is not None:
        assert isinstance(addr, UnixAddress)
        unix_files.bind(fd, addr, unix_file, opts.unlink_stale, opts.mode, check)  # unix file: stale handling, lock
        return
    unix = isinstance(addr, UnixAddress)
    sockets.bind(fd, encoded.pointer, encoded.length, unix=unix, checkpoint=check, address=addr)


# --- fd://N: adopt an inherited socket instead of making one (janus_net._profiles.adoption)


def _refuse_options(target: FdAddress, opts: Options) -> None:
    """OptionUnsupported unless every option is at its default (raised before the fd is looked at).

    The options describe how to make a socket, and an adopted one is already made.
    For ``bind``, ``mode`` and ``protocol`` are not settings but what the socket
    must be: they are checked by the adoption door.
    """
    if opts is DEFAULT_LISTEN or opts is DEFAULT_BIND:
        return
    kind = opts.kind
    changed = [
        option.name
        for option in taken_by(kind)
        if option.step != "socket" and getattr(opts, option.field) != default(option, kind)
    ]
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


def listener(
    address: str | BindAddress, opts: Options, ctx: Context | None = None, capability: NetBind | None = None
) -> Server:
    addr = as_bind_address(address)
    if isinstance(addr, FdAddress):
        _refuse_options(addr, opts)
        # The capability gate needs the socket's real address: adopt asks it.
        return adoption.adopt_listener(addr, None if ctx is None else ctx.check, capability)
    return open_socket(addr, opts, ctx, capability, Server)


def bound(
    address: str | BindAddress, opts: Options, ctx: Context | None = None, capability: NetBind | None = None
) -> Socket:
    addr = as_bind_address(address)
    if isinstance(addr, FdAddress):
        _refuse_options(addr, opts)
        return adoption.adopt_bound(addr, opts.mode, opts.protocol, None if ctx is None else ctx.check, capability)
    sock = open_socket(addr, opts, ctx, capability, Socket)
    sock._made(opts.gro)  # plain receives of a gro=True socket deliver one datagram each (coalesced.py)
    return sock


def open_socket(addr: Address, opts: Options, ctx: Context | None, capability: NetBind | None, owner: type[_B]) -> _B:
    """The step sequence (module docstring); ``owner`` is what the descriptor becomes."""
    if not ((opts is DEFAULT_LISTEN or opts is DEFAULT_BIND) and type(addr) is Ip4Address):
        validate(addr, opts)  # the usual call (an IPv4 address, the defaults) has nothing it could refuse
    landlock.refuse_uncovered(addr, opts.mode, opts.protocol)  # after enforce(): no MPTCP or SMC (unseen by Landlock)
    if capability is not None:
        capability.authorize(addr, opts.mode, opts.protocol)  # audits check_bind_address; raises CapabilityDenied
    sys.audit("janus_net.bind", str(addr), None if capability is None else capability.id)
    plan = native_sequence.plan_for(addr, opts)
    if plan is not None:
        return _open_native(plan, addr, opts, ctx, capability, owner)
    check = None if ctx is None else ctx.check
    unix_file = UnixFile(addr.path) if isinstance(addr, UnixAddress) and not addr.abstract else None
    with _ErrDefer() as errdefer:
        # The cell exists before the socket: socket() writes the fd into it, so from
        # the syscall's return on, this cleanup (or the cell's collection) closes it.
        desc = cells.new_desc()
        errdefer(lambda: cells.close_desc(desc))
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
    plan: native_sequence.Plan,
    addr: Address,
    opts: Options,
    ctx: Context | None,
    capability: NetBind | None,
    owner: type[_B],
) -> _B:
    """`open_socket` for what the native step sequence covers (DESIGN §2): the same steps, checkpoints and tables.

    One cleanup, so no `_ErrDefer`: the cell is closed if anything below raises. Before
    the ``try`` the cell is empty (an interrupt there leaves it to its collection, which
    closes nothing); inside it, the fd is in the cell from socket()'s return on.
    """
    desc = cells.new_desc()
    try:
        io = _NEW(_IO_P)  # `native_sequence.new_io`, written out (as is its :core branch below)
        io.desc = desc
        try:
            if ctx is None:
                # `native_sequence.run`'s :core branch, one frame less per listen: its
                # cleanup (closing the cell) is this function's own, below.
                encoded = addr.sockaddr
                _steps(plan.tables, plan.struct, io, encoded.pointer, encoded.length, 0, plan.end, None, addr)
            else:
                native_sequence.run(plan, io, addr, ctx)
        except SocketError.AccessDenied as exc:
            denial = _denial(exc, addr, opts)
            if denial is exc:
                raise
            raise denial from None
        port = io.port
        if owner is Server and port >= 0 and type(addr) is not UnixAddress:
            result: _B = Server(desc, addr, None, port)  # the address is made on first use
        else:
            result = owner(desc, native_sequence.bound_address(io, addr), None)
        if capability is not None and capability.audit is not None:
            capability.record_bound(result.address, opts.mode, opts.protocol)  # as in open_socket
    except BaseException:
        cells.close_desc(desc)
        raise
    return result


def _denial(exc: SocketError, addr: Address, opts: Options) -> SocketError:
    """After enforce(), a bind the kernel's ruleset refused is CapabilityDenied("kernel")."""
    return landlock.kernel_denial(exc, addr, opts.mode, opts.protocol) if exc.syscall == "bind" else exc


def _steps_one_by_one(
    desc: Any,
    addr: Address,
    opts: Options,
    check: loop.Checkpoint | None,
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
    fd = netns.socket(opts.netns, desc, addr.family, opts.mode, opts.protocol, check)
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
        unix_files.after_bind(fd, unix_file, opts.file_mode, opts.owner, opts.group, check)  # unix file: identity
    if opts.kind == "listen":
        if check is not None:
            check()  # (5) between bind and listen
        sockets.listen(fd, opts.backlog, check, addr)
        socket_options.after_listen(fd, addr, opts, check)  # steer="cpu" joins the group at listen
    return _local_address(fd, addr)


def _local_address(fd: int, requested: Address) -> Address:
    storage, length = sockets.getsockname(fd)
    return reported(requested, storage, length)


__all__ = ["bound", "listener", "open_socket"]
