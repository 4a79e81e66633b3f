"""Any address: the unions `Address` and `BindAddress`, `exact`, and `as_address`.

Three kinds of address can be bound (`Ip4Address`, `Ip6Address`, `UnixAddress`), and
one more names an inherited socket to adopt (`FdAddress`). Each value prints in one
canonical form and parses back to itself: ``parse_address(str(a)) == a``.

Text becomes a value in the address parser, which sits above the kernel door (it
asks the kernel for interface indexes); it hands itself down at import
(`hand_down_parser`), so `as_address` takes text wherever an address is taken.
"""

from __future__ import annotations

from collections.abc import Callable

from janus_net._values.errors import SocketError
from janus_net._values.fd import FdAddress
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.unix import UnixAddress
from janus_net._values.value_base import invalid

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

Address = Ip4Address | Ip6Address | UnixAddress
"""Any address janus_net can bind or report."""

BindAddress = Ip4Address | Ip6Address | UnixAddress | FdAddress
"""Anything ``listen*``/``bind*`` take: an address to bind, or an inherited socket to adopt."""


# The slots of the address types, read past any property a subclass defines.
_SLOTS: dict[type, tuple[Any, ...]] = {
    cls: tuple(cls.__dict__[name] for name in names)
    for cls, names in (
        (Ip4Address, ("_ip", "_port")),
        (Ip6Address, ("_ip", "_port", "_flowinfo", "_scope_id")),
        (UnixAddress, ("_path", "_abstract")),
        (FdAddress, ("_fd",)),
    )
}
EXACT_TYPES = frozenset(_SLOTS)


def exact(address: BindAddress) -> BindAddress:
    """``address`` as its exact base type: an instance of a subclass is rebuilt.

    A subclass can make ``.port`` or ``str()`` say one thing while the sockaddr says
    another. `listen*`, `bind*`, `send*` and the capability gate act on the value
    this returns (DESIGN §3 "Strict values"): it is built by the base type's own
    constructor from the fields the base type stored, so the gate, the audit record
    and the kernel all see the same address.

    Raises:
        SocketError.InvalidAddress: the instance was never initialised by its base type,
            or what it stored does not make a valid address.
    """
    cls = type(address)
    if cls in EXACT_TYPES:
        return address
    for base, slots in _SLOTS.items():
        if isinstance(address, base):
            try:
                fields = [slot.__get__(address, base) for slot in slots]
            except AttributeError:
                raise SocketError.InvalidAddress(
                    None, f"{cls.__name__} was not initialised as a {base.__name__}"
                ) from None
            rebuilt: BindAddress = base(*fields)
            return rebuilt
    raise TypeError(f"not an address: {cls.__name__}")


def _no_parser(text: str) -> BindAddress:
    raise RuntimeError("the address parser has not handed itself down (import janus_net first)")


_parse_address: Callable[[str], BindAddress] = _no_parser


def hand_down_parser(parse_address: Callable[[str], BindAddress]) -> None:
    """Called once by the address parser at import: how `as_address` turns text into a value."""
    global _parse_address
    _parse_address = parse_address


def as_address(address: str | Address) -> Address:
    """Accept either text or an address value wherever a socket address is taken.

    ``fd://N`` is rejected here: it names an inherited socket, not an address a
    datagram can be sent to (``as_bind_address`` takes it). An instance of a subclass
    of an address type is rebuilt as its base type (`exact`).

    Raises:
        SocketError.InvalidAddress, SocketError.InvalidPort: as ``parse_address``.
    """
    if isinstance(address, (Ip4Address, Ip6Address, UnixAddress)):
        return address if type(address) in EXACT_TYPES else exact(address)  # type: ignore[return-value]
    parsed = _parse_address(address)
    if isinstance(parsed, FdAddress):
        raise invalid(address, "fd://N names an inherited socket to adopt, not a socket address")
    return parsed
