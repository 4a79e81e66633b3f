"""The options set on a new socket, in one list, and read back by ``options()`` (DESIGN §16).

`setsockopt_steps` turns a checked `Options` into the setsockopt steps of one socket,
from the table (`janus_net._values.options`), in the table's order: the native step
sequence (`janus_net._profiles.native_sequence`) runs the same list in C that `apply`
runs here one call at a time, so the two paths cannot drift apart. ``steer="cpu"``
attaches the classic BPF program ``ld #cpu; ret a`` to the socket's SO_REUSEPORT
group once the socket listens (`after_listen`): the kernel hands each new connection
to the group member whose index (the order in which the members were bound) equals
the CPU that received it (a CPU with no such member falls back to the kernel's hash).

Errors (each errno its member; see docs/kernel-capability.md): the DESIGN §16 options
(the table's ``errors="server"``) use their own setsockopt table, where EPERM
(transparent without CAP_NET_ADMIN) is `SocketError.AccessDenied` and ENODEV
(``device`` names no interface in the socket's namespace) is
`SocketError.AddressUnavailable`, as bind's ENODEV for an unknown zone is; the
message names the keyword and the address.
"""

from __future__ import annotations

import os

from janus_net import platform
from janus_net._kernel import loop, socket_options
from janus_net._shim import ffi, lib
from janus_net._values.addresses import Address
from janus_net._values.errors import SocketError
from janus_net._values.options import OPTIONS, Option

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from janus_net._profiles.option_checks import Options
    from janus_net._shim import CData

    #: One setsockopt: (the option, or None for SO_NOSIGPIPE; level; optname; an int, or the bytes of a name).
    Step = tuple[Option | None, int, int, int | bytes]


def _constant(name: str | None) -> int:
    return 0 if name is None else int(getattr(lib, name))


#: The options set with setsockopt before bind, with their constants: (option, level, optname, level6, optname6).
_SETTABLE = tuple(
    (o, _constant(o.level), _constant(o.optname), _constant(o.level6), _constant(o.optname6))
    for o in OPTIONS
    if o.step == "setsockopt"
)


def setsockopt_steps(family: int, opts: Options) -> list[Step]:
    """The setsockopt calls a new socket of ``family`` gets for ``opts``, in order (bind comes after)."""
    ip = family != lib.AF_UNIX
    ip6 = family == lib.AF_INET6
    out: list[Step] = []
    for option, level, optname, level6, optname6 in _SETTABLE:
        value = getattr(opts, option.field)
        if value is None or (option.sets_on == "ip" and not ip):
            continue  # None is "not asked for"; reuse_address means nothing on a unix socket
        how = option.value
        setting: int | bytes
        if how == "on":
            if not value:
                continue
            setting = 1
        elif how == "bool":
            setting = 1 if value else 0  # ip6_only=False sets IPV6_V6ONLY to 0
        elif how == "int":
            setting = value
        else:  # "name": NUL-terminated
            setting = os.fsencode(value) + b"\0"
        out.append((option, level6 if ip6 else level, optname6 if ip6 else optname, setting))
    if platform.SO_NOSIGPIPE:
        out.append((None, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1))  # where writes cannot say MSG_NOSIGNAL
    return out


def apply(fd: int, addr: Address, opts: Options, check: loop.Checkpoint | None) -> None:
    """Run `setsockopt_steps` on a socket that is not bound yet (``steer`` waits for `after_listen`)."""
    for option, level, optname, value in setsockopt_steps(addr.family, opts):
        if option is None or option.errors == "plain":
            assert isinstance(value, int)
            socket_options.setsockopt_int(fd, level, optname, value, check)
        elif isinstance(value, bytes):
            _set(option.name, fd, level, optname, ffi.new("char[]", value), len(value), check, addr)
        else:
            _set(option.name, fd, level, optname, ffi.new("int *", value), ffi.sizeof("int"), check, addr)


def after_listen(fd: int, addr: Address, opts: Options, check: loop.Checkpoint | None) -> None:
    """Attach the ``steer`` program once the socket listens.

    A TCP socket joins its SO_REUSEPORT group when it starts listening; a program
    attached before that gives the socket a group of its own, and listen then fails
    with EADDRINUSE. Every member attaches the same program, so whichever the kernel
    keeps for the group steers the same way.
    """
    if opts.steer == "cpu":
        code = _cpu_program()
        fprog = ffi.new("struct sock_fprog *")
        fprog.len = len(code)
        fprog.filter = code  # ``code`` stays referenced here until the call returns
        size = ffi.sizeof("struct sock_fprog")
        _set("steer", fd, lib.SOL_SOCKET, lib.JN_SO_ATTACH_REUSEPORT_CBPF, fprog, size, check, addr)


def _set(
    name: str,
    fd: int,
    level: int,
    option: int,
    value: CData,
    size: int,
    check: loop.Checkpoint | None,
    addr: Address,
) -> None:
    try:
        socket_options.setsockopt_server(fd, level, option, value, size, check)
    except SocketError as exc:
        # The same member and errno; the message names the keyword that failed and the address.
        detail = f"{name}: {exc.strerror if exc.errno is not None else exc}"
        raise type(exc)(exc.errno, detail, syscall=exc.syscall, address=str(addr)) from None


def _cpu_program() -> CData:
    """``ld #cpu; ret a``: the reuseport group member whose index is the receiving CPU."""
    code = ffi.new("struct sock_filter[2]")
    code[0].code = lib.JN_BPF_LD | lib.JN_BPF_W | lib.JN_BPF_ABS
    code[0].k = (lib.JN_SKF_AD_OFF + lib.JN_SKF_AD_CPU) & 0xFFFFFFFF  # k is a u32: SKF_AD_OFF is negative
    code[1].code = lib.JN_BPF_RET | lib.JN_BPF_A
    return code


__all__ = ["after_listen", "apply", "setsockopt_steps"]
