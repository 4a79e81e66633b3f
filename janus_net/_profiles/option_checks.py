"""The keyword options of ``listen*`` and ``bind*``: checked for type and range before any syscall.

Every option is validated here, once, before the first syscall of a listen or bind
(DESIGN §3 "Strict values"): a wrong type or a value that cannot apply to the
address raises before anything exists, so nothing has to be undone.
"""

from __future__ import annotations

from janus_net import platform, sockopts, unixfile
from janus_net.address import Address, Ip4Address, Ip6Address, UnixAddress, require_zone
from janus_net.errors import SocketError
from janus_net.socket import Mode, Protocol
from janus_net.values import BadOptionType, flag, integer

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Literal, NamedTuple
else:
    from janus_net.typing_runtime import NamedTuple


class Options(NamedTuple):
    kind: Literal["listen", "bind"]
    mode: Mode
    protocol: int
    backlog: int
    reuse_address: bool
    reuse_port: bool
    ip6_only: bool | None
    broadcast: bool
    file_mode: int | None
    unlink_stale: bool
    # DESIGN §15 (bind only): UDP_GRO, IP_PKTINFO / IPV6_RECVPKTINFO, SO_TIMESTAMPNS.
    gro: bool = False
    pktinfo: bool = False
    timestamps: bool = False
    extra: sockopts.Extra = sockopts.NO_EXTRA  # DESIGN §14/§16: netns, freebind, device...
    owner: int | None = None  # uid for the unix socket file (janus_net.unixfile)
    group: int | None = None  # gid for the unix socket file


def _check_ip6_only(ip6_only: object) -> None:
    # None leaves the system default; a truthy string must not quietly set IPV6_V6ONLY to 1.
    if ip6_only is not None and type(ip6_only) is not bool:
        raise BadOptionType(f"ip6_only must be None, True or False, not {ip6_only!r}")


def listen_options(
    backlog: int = 128,
    reuse_address: bool = True,
    reuse_port: bool = False,
    ip6_only: bool | None = None,
    mode: int | None = None,
    unlink_stale: bool = False,
    owner: int | str | None = None,
    group: int | str | None = None,
    extra: sockopts.Extra = sockopts.NO_EXTRA,
) -> Options:
    """The options of ``listen*``, each checked for type and range (DESIGN §3 "Strict values").

    Raises:
        TypeError: an option of the wrong type (`BadOptionType`, also a ValueError).
        ValueError: a value out of range (a negative backlog, mode bits beyond 0o7777).
    """
    if (
        reuse_address is True
        and reuse_port is False
        and ip6_only is None
        and mode is None
        and unlink_stale is False
        and owner is None
        and group is None
        and backlog == 128
        and type(backlog) is int
        and extra is sockopts.NO_EXTRA
    ):
        return _DEFAULT_LISTEN  # the usual call: validated and built once
    backlog = integer("backlog", backlog)
    _check_ip6_only(ip6_only)
    if mode is not None:
        mode = integer("mode", mode, 0, 0o7777, "of file permission bits (0..0o7777)")
    return Options(
        "listen", Mode.STREAM, 0, backlog, flag("reuse_address", reuse_address), flag("reuse_port", reuse_port),
        ip6_only, False, mode, flag("unlink_stale", unlink_stale), extra=extra,
        owner=unixfile.resolve_owner(owner), group=unixfile.resolve_group(group),
    )  # fmt: skip


_MODES = frozenset(int(m) for m in Mode)


def bind_options(
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
    gro: bool = False,
    pktinfo: bool = False,
    timestamps: bool = False,
    extra: sockopts.Extra = sockopts.NO_EXTRA,
) -> Options:
    """The options of ``bind*``, each checked for type and range (DESIGN §3 "Strict values").

    ``mode`` is a `Mode` or the int of one; ``protocol`` None (the family's default),
    a `Protocol` or any protocol number as an int.

    Raises:
        TypeError: an option of the wrong type (`BadOptionType`, also a ValueError).
        ValueError: a mode that is no `Mode`, a protocol number out of range.
    """
    if type(mode) is not Mode:
        number = integer("mode", mode, what="naming a janus_net.Mode")
        if number not in _MODES:
            raise ValueError(f"mode must be a janus_net.Mode ({', '.join(m.name for m in Mode)}), not {mode!r}")
        mode = Mode(number)
    proto = 0 if protocol is None else integer("protocol", protocol)
    _check_ip6_only(ip6_only)
    return Options(
        "bind", mode, proto, 0, flag("reuse_address", reuse_address), False, ip6_only,
        flag("broadcast", broadcast), None, False, flag("gro", gro), flag("pktinfo", pktinfo),
        flag("timestamps", timestamps), extra=extra,
    )  # fmt: skip


# backlog and protocol are C ints: a larger value would fail in cffi after the socket exists.
_DEFAULT_LISTEN = Options("listen", Mode.STREAM, 0, 128, True, False, None, False, None, False)
#: `listen_options()` with every argument at its default (the same object it returns).
DEFAULT_LISTEN = _DEFAULT_LISTEN


def validate(addr: Address, opts: Options) -> None:
    """Reject, before any syscall, every option that cannot apply to this address."""
    if opts is _DEFAULT_LISTEN and type(addr) is Ip4Address:
        return  # the usual call: no check below applies to an IPv4 address with listen's defaults
    text = str(addr)
    if opts.ip6_only is not None and not isinstance(addr, Ip6Address):
        raise SocketError.OptionUnsupported(None, "ip6_only applies to IPv6 addresses only", address=text)
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
    path_socket = isinstance(addr, UnixAddress) and not addr.abstract
    if opts.file_mode is not None and not path_socket:
        raise SocketError.OptionUnsupported(None, "mode applies to unix socket paths only", address=text)
    if (opts.owner is not None or opts.group is not None) and not path_socket:
        raise SocketError.OptionUnsupported(None, "owner and group apply to unix socket paths only", address=text)
    if opts.unlink_stale and not path_socket:
        raise SocketError.OptionUnsupported(None, "unlink_stale applies to unix socket paths only", address=text)
    if opts.reuse_port and not platform.SO_REUSEPORT:
        raise SocketError.OptionUnsupported(None, "this platform has no SO_REUSEPORT", address=text)
    if opts.reuse_port and isinstance(addr, UnixAddress):
        # Linux answers setsockopt with EOPNOTSUPP (older kernels took it and did nothing):
        # refused here, before the socket exists, the same on every kernel.
        raise SocketError.OptionUnsupported(None, "reuse_port applies to IP addresses only", address=text)
    _validate_datagram_options(addr, opts, text)
    sockopts.validate(addr, opts.extra, opts.mode is Mode.STREAM)


def _validate_datagram_options(addr: Address, opts: Options, text: str) -> None:
    """gro, pktinfo, timestamps (DESIGN §15): only where they can apply, checked before the socket exists."""
    ip = not isinstance(addr, UnixAddress)
    udp = ip and opts.mode is Mode.DGRAM and opts.protocol in (0, Protocol.UDP)
    if opts.gro and not (udp and platform.HAS_UDP_GRO):
        why = "gro applies to UDP sockets only" if not udp else "this platform has no UDP_GRO"
        raise SocketError.OptionUnsupported(None, why, address=text)
    if opts.pktinfo:
        if not ip or opts.mode is Mode.STREAM:
            raise SocketError.OptionUnsupported(None, "pktinfo applies to IP datagram sockets only", address=text)
        has = platform.HAS_IPV6_PKTINFO if isinstance(addr, Ip6Address) else platform.HAS_IP_PKTINFO
        if not has:
            raise SocketError.OptionUnsupported(None, "this platform has no pktinfo for this family", address=text)
    if opts.timestamps:
        if opts.mode is Mode.STREAM:
            raise SocketError.OptionUnsupported(None, "timestamps apply to datagram sockets only", address=text)
        if not platform.HAS_TIMESTAMPNS:
            raise SocketError.OptionUnsupported(None, "this platform has no SO_TIMESTAMPNS", address=text)
