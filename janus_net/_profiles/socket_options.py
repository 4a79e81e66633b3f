"""The socket options servers need (DESIGN §16): checked before any syscall, set, and read back.

Keyword options of ``listen*`` (all) and ``bind*`` (``freebind``, ``transparent``,
``device``, ``incoming_cpu``, and ``netns``, which is not a socket option but the
namespace the socket is made in, see `janus_net.netns`):

=============  ==========================================  ================================
keyword        kernel option                               value
=============  ==========================================  ================================
freebind       IP_FREEBIND / IPV6_FREEBIND                 bool: bind an address no interface has (yet)
transparent    IP_TRANSPARENT / IPV6_TRANSPARENT           bool: TPROXY; needs CAP_NET_ADMIN
device         SO_BINDTODEVICE                             str: an interface name (< IF_NAMESIZE bytes)
fastopen       TCP_FASTOPEN                                int >= 0: TFO queue length (listen only)
defer_accept   TCP_DEFER_ACCEPT                            int >= 0: seconds (listen only)
incoming_cpu   SO_INCOMING_CPU                             int >= 0: the CPU that should handle it
steer          SO_ATTACH_REUSEPORT_CBPF                    "cpu": with reuse_port (listen only)
=============  ==========================================  ================================

``steer="cpu"`` attaches the classic BPF program ``ld #cpu; ret a`` to the socket's
SO_REUSEPORT group: the kernel hands each new connection to the group member whose
index (the order in which the members were bound) equals the CPU that received the
connection (a CPU with no such member falls back to the kernel's hash).

Errors (each errno its member; see docs/kernel-capability.md): a wrong type or value
is TypeError/ValueError and an option that cannot apply to the address (a unix socket,
a platform without the option) is `SocketError.OptionUnsupported`, all before any
syscall; EPERM (transparent without CAP_NET_ADMIN) is `SocketError.AccessDenied`;
ENODEV (``device`` names no interface in the socket's namespace) is
`SocketError.AddressUnavailable`, as bind's ENODEV for an unknown zone is.
"""

from __future__ import annotations

import os

from janus_net import netns, platform, syscalls
from janus_net._shim import ffi, lib
from janus_net.address import Address, Ip6Address, UnixAddress
from janus_net.errors import SocketError
from janus_net.values import BadOptionType, flag, integer

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from janus_net.typing_runtime import NamedTuple


if TYPE_CHECKING:
    from janus_net._shim import CData


class Extra(NamedTuple):
    """The §14/§16 options of one listen or bind call, validated (defaults: nothing to do)."""

    freebind: bool = False
    transparent: bool = False
    device: str | None = None
    fastopen: int | None = None
    defer_accept: int | None = None
    incoming_cpu: int | None = None
    steer: str | None = None
    netns: bytes | None = None

    def changed(self) -> list[str]:
        """The keywords given a value other than their default, for error messages."""
        return [name for name in self._fields if getattr(self, name) != getattr(NO_EXTRA, name)]


NO_EXTRA = Extra()


def extra(
    *,
    freebind: bool = False,
    transparent: bool = False,
    device: str | None = None,
    fastopen: int | None = None,
    defer_accept: int | None = None,
    incoming_cpu: int | None = None,
    steer: str | None = None,
    netns: netns.NamespacePath | None = None,
    reuse_port: bool = False,
) -> Extra:
    """Check every option's type and value (no syscall); return them as an `Extra`.

    Raises:
        TypeError: a value of the wrong type (``True`` is not an int here, 1 is not a bool).
        ValueError: a value out of range, ``steer`` other than ``"cpu"``, ``steer``
            without ``reuse_port=True``, a device name that no interface can have.
    """
    if (
        freebind is False
        and transparent is False
        and device is None
        and fastopen is None
        and defer_accept is None
        and incoming_cpu is None
        and steer is None
        and netns is None
    ):
        return NO_EXTRA
    flag("freebind", freebind)
    flag("transparent", transparent)
    if device is not None:
        _check_device(device)
    for name, value in (("fastopen", fastopen), ("defer_accept", defer_accept), ("incoming_cpu", incoming_cpu)):
        if value is not None:
            integer(name, value)
    if steer is not None:
        if not isinstance(steer, str) or steer != "cpu":
            raise ValueError(f'steer must be None or "cpu", not {steer!r}')
        if reuse_port is not True:
            raise ValueError('steer="cpu" steers a SO_REUSEPORT group: it needs reuse_port=True')
    path = None if netns is None else _netns_path(netns)
    return Extra(freebind, transparent, device, fastopen, defer_accept, incoming_cpu, steer, path)


def _netns_path(path: object) -> bytes:
    return netns.check_path(path)


def _type_error(name: str, expected: str, value: object) -> TypeError:
    return BadOptionType(f"{name} must be {expected}, not {value!r}")


def _check_device(device: object) -> None:
    if not isinstance(device, str):
        raise _type_error("device", "an interface name (str)", device)
    encoded = os.fsencode(device)
    # The kernel copies at most IF_NAMESIZE - 1 bytes and would silently cut a longer name.
    if not encoded or b"\0" in encoded or len(encoded) >= lib.IF_NAMESIZE or encoded in (b".", b".."):
        raise ValueError(f"device must be an interface name of 1..{lib.IF_NAMESIZE - 1} bytes, not {device!r}")
    if b"/" in encoded or any(c in encoded for c in b" \t\n\r:"):
        raise ValueError(f"no interface can be named {device!r}")


# Which kernel flag each option needs; 0 in the shim means the platform has none.
_NEEDS = {
    "freebind": ("JN_IP_FREEBIND",),
    "transparent": ("JN_IP_TRANSPARENT",),
    "device": ("JN_SO_BINDTODEVICE",),
    "fastopen": ("JN_TCP_FASTOPEN",),
    "defer_accept": ("JN_TCP_DEFER_ACCEPT",),
    "incoming_cpu": ("JN_SO_INCOMING_CPU",),
    "steer": ("JN_SO_ATTACH_REUSEPORT_CBPF", "JN_HAS_CBPF"),
    "netns": ("JN_HAS_SETNS",),
}
# IPv6 has its own option numbers for these two.
_NEEDS_IP6 = {"freebind": ("JN_IPV6_FREEBIND",), "transparent": ("JN_IPV6_TRANSPARENT",)}
# Options that mean nothing on a unix socket (IP or TCP level, or a reuseport group).
_IP_ONLY = ("freebind", "transparent", "device", "fastopen", "defer_accept", "steer")


def validate(addr: Address, extra: Extra, stream: bool) -> None:
    """Reject, before any syscall, an option that cannot apply to this address or platform."""
    if extra is NO_EXTRA:
        return
    text = str(addr)
    for name in extra.changed():
        if any(not getattr(lib, flag) for flag in _NEEDS[name]):
            raise SocketError.OptionUnsupported(None, f"this platform has no {name} option", address=text)
        if name in _IP_ONLY and isinstance(addr, UnixAddress):
            raise SocketError.OptionUnsupported(None, f"{name} applies to IP sockets only", address=text)
        if isinstance(addr, Ip6Address) and any(not getattr(lib, flag) for flag in _NEEDS_IP6.get(name, ())):
            raise SocketError.OptionUnsupported(None, f"this platform has no IPv6 {name} option", address=text)
        if name in ("fastopen", "defer_accept") and not stream:
            raise SocketError.OptionUnsupported(None, f"{name} applies to TCP (stream) sockets only", address=text)


def apply(fd: int, addr: Address, extra: Extra, check: syscalls.Checkpoint | None) -> None:
    """Set the options on a socket that is not bound yet (``steer`` waits for `after_listen`)."""
    if extra is NO_EXTRA:
        return
    text = str(addr)
    ip6 = isinstance(addr, Ip6Address)
    if extra.freebind:
        level, option = (lib.IPPROTO_IPV6, lib.JN_IPV6_FREEBIND) if ip6 else (lib.IPPROTO_IP, lib.JN_IP_FREEBIND)
        _set_int("freebind", fd, level, option, 1, check, text)
    if extra.transparent:
        level, option = (lib.IPPROTO_IPV6, lib.JN_IPV6_TRANSPARENT) if ip6 else (lib.IPPROTO_IP, lib.JN_IP_TRANSPARENT)
        _set_int("transparent", fd, level, option, 1, check, text)
    if extra.device is not None:
        name = os.fsencode(extra.device)
        buf = ffi.new("char[]", name)  # NUL-terminated
        _set("device", fd, lib.SOL_SOCKET, lib.JN_SO_BINDTODEVICE, buf, len(name) + 1, check, text)
    if extra.fastopen is not None:
        _set_int("fastopen", fd, lib.IPPROTO_TCP, lib.JN_TCP_FASTOPEN, extra.fastopen, check, text)
    if extra.defer_accept is not None:
        _set_int("defer_accept", fd, lib.IPPROTO_TCP, lib.JN_TCP_DEFER_ACCEPT, extra.defer_accept, check, text)
    if extra.incoming_cpu is not None:
        _set_int("incoming_cpu", fd, lib.SOL_SOCKET, lib.JN_SO_INCOMING_CPU, extra.incoming_cpu, check, text)


def after_listen(fd: int, addr: Address, extra: Extra, check: syscalls.Checkpoint | None) -> None:
    """Attach the ``steer`` program once the socket listens.

    A TCP socket joins its SO_REUSEPORT group when it starts listening; a program
    attached before that gives the socket a group of its own, and listen then fails
    with EADDRINUSE. Every member attaches the same program, so whichever the kernel
    keeps for the group steers the same way.
    """
    if extra.steer == "cpu":
        text = str(addr)
        code = _cpu_program()
        fprog = ffi.new("struct sock_fprog *")
        fprog.len = len(code)
        fprog.filter = code  # ``code`` stays referenced here until the call returns
        size = ffi.sizeof("struct sock_fprog")
        _set("steer", fd, lib.SOL_SOCKET, lib.JN_SO_ATTACH_REUSEPORT_CBPF, fprog, size, check, text)


def _set_int(
    name: str, fd: int, level: int, option: int, value: int, check: syscalls.Checkpoint | None, text: str
) -> None:
    _set(name, fd, level, option, ffi.new("int *", value), ffi.sizeof("int"), check, text)


def _set(
    name: str,
    fd: int,
    level: int,
    option: int,
    value: CData,
    size: int,
    check: syscalls.Checkpoint | None,
    text: str,
) -> None:
    try:
        syscalls.setsockopt_server(fd, level, option, value, size, check)
    except SocketError as exc:
        # The same member and errno; the message names the keyword that failed and the address.
        detail = f"{name}: {exc.strerror if exc.errno is not None else exc}"
        raise type(exc)(exc.errno, detail, syscall=exc.syscall, address=text) from None


def _cpu_program() -> CData:
    """``ld #cpu; ret a``: the reuseport group member whose index is the receiving CPU."""
    code = ffi.new("struct sock_filter[2]")
    code[0].code = lib.JN_BPF_LD | lib.JN_BPF_W | lib.JN_BPF_ABS
    code[0].k = (lib.JN_SKF_AD_OFF + lib.JN_SKF_AD_CPU) & 0xFFFFFFFF  # k is a u32: SKF_AD_OFF is negative
    code[1].code = lib.JN_BPF_RET | lib.JN_BPF_A
    return code


def read(fd: int) -> dict[str, object]:
    """The options the kernel holds on ``fd``, keyed by the listen/bind keyword names (getsockopt).

    Keys present depend on the socket: ``reuse_address`` and ``incoming_cpu`` always;
    ``reuse_port`` where the platform has SO_REUSEPORT; ``ip6_only`` on IPv6;
    ``broadcast`` on datagram sockets; ``freebind``, ``transparent``, ``device`` on IP;
    ``fastopen``, ``defer_accept`` on TCP. ``device`` and ``incoming_cpu`` are None when
    unset; ``fastopen`` and ``defer_accept`` 0 when off (``defer_accept`` in seconds as
    the kernel rounds it). ``backlog`` and ``steer`` are not readable and never present.
    """
    family = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_DOMAIN)
    kind = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_TYPE)
    ip = family in (lib.AF_INET, lib.AF_INET6)
    result: dict[str, object] = {
        "reuse_address": bool(syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_REUSEADDR)),
    }
    if platform.SO_REUSEPORT:
        result["reuse_port"] = bool(syscalls.getsockopt_int(fd, lib.SOL_SOCKET, platform.SO_REUSEPORT))
    if family == lib.AF_INET6:
        result["ip6_only"] = bool(syscalls.getsockopt_int(fd, lib.IPPROTO_IPV6, lib.IPV6_V6ONLY))
    if kind != lib.SOCK_STREAM:
        result["broadcast"] = bool(syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_BROADCAST))
    if ip:
        v6 = family == lib.AF_INET6
        if lib.JN_IPV6_FREEBIND if v6 else lib.JN_IP_FREEBIND:
            level, option = (lib.IPPROTO_IPV6, lib.JN_IPV6_FREEBIND) if v6 else (lib.IPPROTO_IP, lib.JN_IP_FREEBIND)
            result["freebind"] = bool(syscalls.getsockopt_int(fd, level, option))
        if lib.JN_IPV6_TRANSPARENT if v6 else lib.JN_IP_TRANSPARENT:
            level, option = (
                (lib.IPPROTO_IPV6, lib.JN_IPV6_TRANSPARENT) if v6 else (lib.IPPROTO_IP, lib.JN_IP_TRANSPARENT)
            )
            result["transparent"] = bool(syscalls.getsockopt_int(fd, level, option))
        if lib.JN_SO_BINDTODEVICE:
            raw = syscalls.getsockopt_buffer(fd, lib.SOL_SOCKET, lib.JN_SO_BINDTODEVICE, lib.IF_NAMESIZE)
            name = raw.split(b"\0", 1)[0]
            result["device"] = os.fsdecode(name) if name else None
        if kind == lib.SOCK_STREAM:
            if lib.JN_TCP_FASTOPEN:
                result["fastopen"] = syscalls.getsockopt_int(fd, lib.IPPROTO_TCP, lib.JN_TCP_FASTOPEN)
            if lib.JN_TCP_DEFER_ACCEPT:
                result["defer_accept"] = syscalls.getsockopt_int(fd, lib.IPPROTO_TCP, lib.JN_TCP_DEFER_ACCEPT)
    if lib.JN_SO_INCOMING_CPU:
        cpu = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.JN_SO_INCOMING_CPU)
        result["incoming_cpu"] = None if cpu < 0 else cpu
    return result


__all__ = ["NO_EXTRA", "Extra", "after_listen", "apply", "extra", "read", "validate"]
