"""The keyword options of ``listen*`` and ``bind*``: checked for type and range before any syscall.

Every option is validated here, once, before the first syscall of a listen or bind
(DESIGN §3 "Strict values"): a wrong type or a value that cannot apply to the
address raises before anything exists, so nothing has to be undone.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from janus_net import platform, unixfile
from janus_net.address import Address, Ip6Address, UnixAddress
from janus_net.errors import SocketError
from janus_net.socket import Mode, Protocol


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
    owner: int | None = None  # uid for the unix socket file (janus_net.unixfile)
    group: int | None = None  # gid for the unix socket file


def listen_options(
    backlog: int = 128,
    reuse_address: bool = True,
    reuse_port: bool = False,
    ip6_only: bool | None = None,
    mode: int | None = None,
    unlink_stale: bool = False,
    owner: int | str | None = None,
    group: int | str | None = None,
) -> Options:
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
    ):
        return _DEFAULT_LISTEN  # the usual call: validated and built once
    if type(backlog) is not int or not 0 <= backlog <= _C_INT_MAX:
        raise ValueError(f"backlog must be an int in 0..{_C_INT_MAX}, not {backlog!r}")
    _check_ip6_only(ip6_only)
    if mode is not None and (type(mode) is not int or not 0 <= mode <= 0o7777):
        raise ValueError(f"mode must be file permission bits (0..0o7777), not {mode!r}")
    return Options(
        "listen", Mode.STREAM, 0, backlog, bool(reuse_address), bool(reuse_port), ip6_only, False, mode,
        bool(unlink_stale), unixfile.resolve_owner(owner), unixfile.resolve_group(group),
    )  # fmt: skip


def bind_options(
    mode: Mode = Mode.DGRAM,
    protocol: Protocol | int | None = None,
    ip6_only: bool | None = None,
    reuse_address: bool = False,
    broadcast: bool = False,
) -> Options:
    mode = Mode(mode)
    proto = 0 if protocol is None else int(protocol)
    if not 0 <= proto <= _C_INT_MAX:
        raise ValueError(f"protocol must be an IANA protocol number, not {protocol!r}")
    _check_ip6_only(ip6_only)
    return Options("bind", mode, proto, 0, bool(reuse_address), False, ip6_only, bool(broadcast), None, False)


# backlog and protocol are C ints: a larger value would fail in cffi after the socket exists.
_C_INT_MAX = 2**31 - 1
_DEFAULT_LISTEN = Options("listen", Mode.STREAM, 0, 128, True, False, None, False, None, False)


def _check_ip6_only(ip6_only: object) -> None:
    # A truthy string such as "false" must not quietly set IPV6_V6ONLY to 1.
    if ip6_only is not None and type(ip6_only) is not bool:
        raise ValueError(f"ip6_only must be None, True or False, not {ip6_only!r}")


def validate(addr: Address, opts: Options) -> None:
    """Reject, before any syscall, every option that cannot apply to this address."""
    text = str(addr)
    if opts.ip6_only is not None and not isinstance(addr, Ip6Address):
        raise SocketError.OptionUnsupported(None, "ip6_only applies to IPv6 addresses only", address=text)
    if opts.ip6_only and isinstance(addr, Ip6Address) and addr.is_ip4_mapped:
        # The kernel would say EINVAL, which the bind table treats as our bug.
        raise SocketError.AddressUnavailable(
            None, "an IPv4-mapped address cannot be bound with ip6_only=True", syscall="bind", address=text
        )
    # Two more EINVALs a user can reach with a well-formed IPv6 address (DESIGN §5 *).
    if isinstance(addr, Ip6Address) and addr.needs_zone and not addr.scope_id:
        why = f"{addr.ip} exists only on one link: name the interface, as in [{addr.ip}%eth0]:{addr.port}"
        raise SocketError.AddressUnavailable(None, why, syscall="bind", address=text)
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
