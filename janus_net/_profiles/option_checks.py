"""The keyword options of ``listen*`` and ``bind*``, checked before any syscall, as one `Options` record.

Every option is checked here, once, from the table (`janus_net._values.options`), before
the first syscall of a listen or bind (DESIGN §3 "Strict values"): `checked` takes the
values of a profile's keywords in signature order and checks each for type and range;
`validate` then refuses, still before any syscall, an option that cannot apply to the
address or the platform. A wrong type raises before anything exists, so nothing has to
be undone.
"""

from __future__ import annotations

import os

from janus_net._policy import netns
from janus_net._profiles import unix_files
from janus_net._shim import lib
from janus_net._values.addresses import Address
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address, require_zone
from janus_net._values.kinds import Mode, Protocol
from janus_net._values.options import NOT_TAKEN, OPTIONS, WHERE, Option, taken_by
from janus_net._values.strict import BadOptionType, flag, integer
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Literal

    Profile = Literal["listen", "bind"]

#: The fields of `Options` after ``kind``: each option's field once, in table order.
FIELDS: tuple[str, ...] = tuple(dict.fromkeys(option.field for option in OPTIONS))


class Options:
    """The checked options of one listen or bind: a field per option (the table's order), and the profile.

    Immutable and hashable (the native plans are cached by it). ``mode`` is the socket
    type (``Mode.STREAM`` for ``listen``), ``file_mode`` the unix socket file's
    permissions (``listen``'s ``mode=``); a profile's options it does not take hold
    their unset value (``backlog`` 0 for ``bind``).
    """

    __slots__ = ("kind", *FIELDS)

    kind: Literal["listen", "bind"]
    mode: Mode
    protocol: int
    backlog: int
    reuse_address: bool
    reuse_port: bool
    ip6_only: bool | None
    file_mode: int | None
    unlink_stale: bool
    broadcast: bool
    gro: bool
    pktinfo: bool
    timestamps: bool
    freebind: bool
    transparent: bool
    device: str | None
    fastopen: int | None
    defer_accept: int | None
    incoming_cpu: int | None
    steer: str | None
    netns: bytes | None
    owner: int | None
    group: int | None

    _fields = ("kind", *FIELDS)

    def __init__(self, kind: Profile, **fields: Any) -> None:
        setter = object.__setattr__
        setter(self, "kind", kind)
        for name in FIELDS:
            setter(self, name, fields.get(name, _UNSET[name]))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Options are immutable: use _replace()")

    def _replace(self, **changes: Any) -> Options:
        """A copy with ``changes`` (not checked: for tests and the profiles' own use)."""
        values = {name: getattr(self, name) for name in FIELDS}
        values.update(changes)
        kind = values.pop("kind", self.kind)
        return Options(kind, **values)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is Options and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "Options(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields) + ")"


def _unset(option: Option) -> object:
    return Mode[option.unset] if isinstance(option.unset, str) and option.check == "socket_type" else option.unset


#: What each field holds where its profile does not take it (``mode``: listen makes stream sockets).
_UNSET = {option.field: _unset(option) for option in OPTIONS}


def default(option: Option, profile: Profile) -> object:
    """``option``'s default in ``profile`` as the signatures write it (`Mode.DGRAM`, not ``"DGRAM"``)."""
    value = option.default(profile)
    return Mode[value] if option.check == "socket_type" and isinstance(value, str) else value


# --- one check per kind of value (the table's ``check``); None passes where it is the default


def _flag(name: str, value: object, none_ok: bool) -> object:
    if value is None and none_ok:
        return None
    if none_ok and type(value) is not bool:
        # None leaves the system default; a truthy string must not quietly mean True.
        raise BadOptionType(f"{name} must be None, True or False, not {value!r}")
    return flag(name, value)


def _count(name: str, value: object, none_ok: bool) -> object:
    # A C int: a larger value would fail in cffi after the socket exists.
    return None if value is None and none_ok else integer(name, value)


def _permissions(name: str, value: object, none_ok: bool) -> object:
    if value is None and none_ok:
        return None
    return integer(name, value, 0, 0o7777, "of file permission bits (0..0o7777)")


_MODES = frozenset(int(m) for m in Mode)


def _socket_type(name: str, value: object, none_ok: bool) -> Mode:
    if type(value) is Mode:
        return value
    number = integer(name, value, what="naming a janus_net.Mode")
    if number not in _MODES:
        raise ValueError(f"mode must be a janus_net.Mode ({', '.join(m.name for m in Mode)}), not {value!r}")
    return Mode(number)


def _protocol(name: str, value: object, none_ok: bool) -> int:
    return 0 if value is None else integer(name, value)


def _interface(name: str, value: object, none_ok: bool) -> object:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadOptionType(f"{name} must be an interface name (str), not {value!r}")
    encoded = os.fsencode(value)
    # The kernel copies at most IF_NAMESIZE - 1 bytes and would silently cut a longer name.
    if not encoded or b"\0" in encoded or len(encoded) >= lib.IF_NAMESIZE or encoded in (b".", b".."):
        raise ValueError(f"{name} must be an interface name of 1..{lib.IF_NAMESIZE - 1} bytes, not {value!r}")
    if b"/" in encoded or any(c in encoded for c in b" \t\n\r:"):
        raise ValueError(f"no interface can be named {value!r}")
    return value


def _steer(name: str, value: object, none_ok: bool) -> object:
    if value is not None and (not isinstance(value, str) or value != "cpu"):
        raise ValueError(f'{name} must be None or "cpu", not {value!r}')
    return value


def _netns(name: str, value: object, none_ok: bool) -> object:
    return None if value is None else netns.check_path(value)


_CHECKS: dict[str, Callable[[str, object, bool], object]] = {
    "flag": _flag,
    "count": _count,
    "permissions": _permissions,
    "socket_type": _socket_type,
    "protocol": _protocol,
    "interface": _interface,
    "steer": _steer,
    "netns": _netns,
    "user": lambda name, value, none_ok: unix_files.resolve_owner(value),
    "group": lambda name, value, none_ok: unix_files.resolve_group(value),
}


def checked(profile: Profile, values: tuple[object, ...]) -> Options:
    """The values of ``profile``'s keywords (in signature order), each checked for type and range.

    Raises:
        TypeError: an option of the wrong type (`BadOptionType`, also a ValueError).
        ValueError: a value out of range (a negative backlog, mode bits beyond 0o7777,
            ``steer`` other than ``"cpu"`` or without ``reuse_port=True``...).
    """
    fields: dict[str, object] = {}
    for option, value in zip(_TAKEN[profile], values, strict=True):
        fields[option.field] = _CHECKS[option.check](option.name, value, option.default(profile) is None)
    if fields.get("steer") is not None and fields.get("reuse_port") is not True:
        raise ValueError('steer="cpu" steers a SO_REUSEPORT group: it needs reuse_port=True')
    return Options(profile, **fields)


_TAKEN = {profile: taken_by(profile) for profile in ("listen", "bind")}
#: Every keyword of a profile at its default: checked once.
DEFAULT_LISTEN = checked("listen", tuple(default(option, "listen") for option in _TAKEN["listen"]))
DEFAULT_BIND = checked("bind", tuple(default(option, "bind") for option in _TAKEN["bind"]))


def _fast_path(profile: Profile, default_options: Options) -> Callable[[tuple[object, ...]], Options]:
    """``checked`` for ``profile``, answering the usual call (every keyword at its default) at once.

    "At its default" means *the same object* (True, False, None, the cached small int
    128): 1 or 1.0 equal True but must be refused, so the test is ``is``. Written out
    as one chain of ``is`` from the table, once: a loop over the keywords
    (``map(operator.is_, ...)``) costs three times as much per listen, measured.
    """
    defaults = [default(option, profile) for option in _TAKEN[profile]]
    names = [f"v{i}" for i in range(len(defaults))]
    source = (
        f"def options({', '.join(f'd{i}=d{i}' for i in range(len(defaults)))}):\n"
        f"    def options(values):\n"
        f"        {', '.join(names)}, = values\n"
        f"        if {' and '.join(f'v{i} is d{i}' for i in range(len(defaults)))}:\n"
        f"            return default_options\n"
        f"        return checked(profile, values)\n"
        f"    return options\n"
    )
    namespace: dict[str, Any] = {f"d{i}": value for i, value in enumerate(defaults)}
    namespace.update(default_options=default_options, checked=checked, profile=profile)
    exec(compile(source, f"<{profile} options>", "exec"), namespace)
    made: Callable[[tuple[object, ...]], Options] = namespace["options"]()
    return made


def _on_first_call(profile: Profile, default_options: Options) -> Callable[[tuple[object, ...]], Options]:
    """A stand-in that builds `_fast_path` on the first call and puts it in its place.

    Compiling costs about as much as importing this module, so it is paid by the first
    listen or bind, not by ``import janus_net``. Callers look the function up on this
    module at each call (``option_checks.listen_values(...)``), so they reach the built
    one from then on; two threads racing here build two equal functions.
    """

    def first_call(values: tuple[object, ...]) -> Options:
        built = _fast_path(profile, default_options)
        globals()[f"{profile}_values"] = built
        return built(values)

    return first_call


#: ``listen*``'s and ``bind*``'s keywords, in signature order, as checked `Options`.
listen_values = _on_first_call("listen", DEFAULT_LISTEN)
bind_values = _on_first_call("bind", DEFAULT_BIND)


def listen_options(**given: Any) -> Options:
    """The options of ``listen*`` by keyword (the rest at their defaults), checked."""
    return listen_values(_in_order("listen", given))


def bind_options(**given: Any) -> Options:
    """The options of ``bind*`` by keyword (the rest at their defaults), checked."""
    return bind_values(_in_order("bind", given))


def _in_order(profile: Profile, given: dict[str, Any]) -> tuple[object, ...]:
    unknown = set(given) - {option.name for option in _TAKEN[profile]}
    if unknown:
        raise TypeError(f"{profile}() got unexpected keyword arguments {sorted(unknown)}")
    return tuple(given.get(option.name, default(option, profile)) for option in _TAKEN[profile])


# --- what can apply to this address, on this platform


def _applies(where: str, addr: Address, opts: Options) -> bool:
    ip = not isinstance(addr, UnixAddress)
    stream = opts.mode is Mode.STREAM
    if where == "ip":
        return ip
    if where == "ip6":
        return isinstance(addr, Ip6Address)
    if where == "path":
        return isinstance(addr, UnixAddress) and not addr.abstract
    if where == "tcp":
        return ip and stream
    if where == "udp":
        return ip and opts.mode is Mode.DGRAM and opts.protocol in (0, Protocol.UDP)
    if where == "ip_datagram":
        return ip and not stream
    if where == "datagram":
        return not stream
    return True


def validate(addr: Address, opts: Options) -> None:
    """Reject, before any syscall, every option that cannot apply to this address or platform."""
    if (opts is DEFAULT_LISTEN or opts is DEFAULT_BIND) and type(addr) is Ip4Address:
        return  # the usual call: no check below applies to an IPv4 address with the defaults
    text = str(addr)
    ip6 = isinstance(addr, Ip6Address)
    for option in _TAKEN[opts.kind]:
        if getattr(opts, option.field) == _UNSET[option.field]:
            continue  # not asked for: nothing to apply
        needs = option.needs6 if ip6 and option.needs6 else option.needs
        if any(not getattr(lib, name) for name in needs):
            raise SocketError.OptionUnsupported(None, f"this platform has no {option.name} option", address=text)
        if not _applies(option.where, addr, opts):
            why = f"{option.name} applies to {WHERE[option.where]} only"
            raise SocketError.OptionUnsupported(None, why, address=text)
    if opts.ip6_only and isinstance(addr, Ip6Address) and addr.is_ip4_mapped:
        # The kernel would say EINVAL, which the bind table treats as our bug.
        raise SocketError.AddressUnavailable(
            None, "an IPv4-mapped address cannot be bound with ip6_only=True", syscall="bind", address=text
        )
    # Two more EINVALs a user can reach with a well-formed IPv6 address (DESIGN §5 *).
    require_zone(addr, "bind")
    if isinstance(addr, Ip6Address) and addr.ip.is_multicast and opts.mode is Mode.STREAM:
        why = "an IPv6 multicast address cannot be bound by a stream socket"
        raise SocketError.AddressUnavailable(None, why, syscall="bind", address=text)


__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_LISTEN",
    "FIELDS",
    "NOT_TAKEN",
    "BadOptionType",
    "Options",
    "bind_options",
    "bind_values",
    "checked",
    "default",
    "listen_options",
    "listen_values",
    "validate",
]
