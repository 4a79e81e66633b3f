"""The address parser: `parse_address` turns text into an address value (DESIGN §4).

The forms::

    127.0.0.1:9000   :8080   [::1]:443   [fe80::1%eth0]:443   [fe80::1%2]:443
    unix:/run/app.sock   /run/app.sock   unix:@name   fd://3

IP literal syntax is the stdlib `ipaddress` module's. The parser sits above the
kernel door, not among the values, because a zone given as an interface *name* is
looked up in the kernel (if_nametoindex); at import it hands that lookup down to the
IP values (`Ip6Address("fe80::1%eth0")` takes a name too) and itself down to
`as_address`, so the values below it take text without doing I/O of their own.

The last 1024 texts parsed are cached: servers and clients name the same few
addresses again and again.
"""

from __future__ import annotations

import ipaddress

from janus_net._shim import lib
from janus_net._values import addresses, ip
from janus_net._values.addresses import BindAddress, exact
from janus_net._values.caches import bounded_put
from janus_net._values.errors import SocketError
from janus_net._values.fd import MAX_FD, FdAddress
from janus_net._values.ip import Ip4Address, Ip6Address, ip4_literal, ip6_literal
from janus_net._values.unix import UnixAddress, unix_bytes
from janus_net._values.value_base import invalid

_ASCII_DIGITS = frozenset("0123456789")


def _interface_index(name: bytes) -> int:
    """The index of the interface called ``name``; 0 when there is none.

    Resolving an interface name is part of parsing an address; glibc asks the kernel
    through a throwaway socket and has no errno the caller could act on (0 is the
    only failure, and it is InvalidAddress).
    """
    return int(lib.if_nametoindex(name))


ip.hand_down_interface_index(_interface_index)


def _parse_port(text: str, port: str) -> int:
    # int() would accept "+80", " 80", "8_080" and non-ASCII digits; the grammar does not.
    if not 1 <= len(port) <= 5 or not set(port) <= _ASCII_DIGITS or int(port) > 65535:
        raise SocketError.InvalidPort(
            None, f"port {port!r} must be 1 to 5 ASCII digits with a value in 0..65535", address=text
        )
    return int(port)


def _parse_unix(text: str) -> UnixAddress:
    path = text[len("unix:") :] if text.startswith("unix:") else text
    abstract = path.startswith("@")
    name = path[1:] if abstract else path
    unix_bytes(name, abstract, text)
    return UnixAddress(name, abstract=abstract)


#: Parsed texts: text -> the address value it parses to. Servers and clients name the
#: same few addresses again and again (a listen cycle, every ``send("host:port")``);
#: a hit skips the `ipaddress` constructors and hands back a value that already owns
#: its encoded sockaddr and its text. Addresses are immutable, so one value may be
#: shared by every caller and thread. Never cached: errors (they propagate) and a zone
#: given as an interface *name*, whose index can change while the process runs.
_PARSED: dict[str, BindAddress] = {}
_PARSED_MAX = 1024


def parse_address(text: str) -> BindAddress:
    """Parse a bind address (DESIGN §4). Raises InvalidAddress or InvalidPort, nothing else.

    >>> parse_address(":8080")
    Ip4Address('0.0.0.0:8080')
    >>> parse_address("[fe80::1%1]:443").scope_id
    1
    >>> str(parse_address("/tmp/app.sock"))
    'unix:/tmp/app.sock'

    Parsing the same text again may return the same (immutable) value.
    """
    if isinstance(text, str) and type(text) is not str:
        text = str.__str__(text)  # a str subclass may override what parsing relies on: use its value
    if type(text) is str:
        found = _PARSED.get(text)
        if found is not None:
            return found
        parsed = _parse(text)
        if not _names_a_zone(text):
            bounded_put(_PARSED, _PARSED_MAX, text, parsed)
        return parsed
    return _parse(text)


def _names_a_zone(text: str) -> bool:
    """True for a parsed ``[addr%zone]:port`` whose zone is an interface name, not an index."""
    if not text.startswith("[") or "%" not in text:
        return False
    zone = text[text.index("%") + 1 : text.index("]")]
    return not (zone.isascii() and zone.isdigit())


def _parse(text: str) -> BindAddress:
    if not isinstance(text, str):
        raise SocketError.InvalidAddress(None, f"an address is text, not {type(text).__name__}")
    if text.startswith("fd://"):
        return _parse_fd(text)
    if text.startswith(("unix:", "/")):
        return _parse_unix(text)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise invalid(text, "missing ']' after the IPv6 address")
        if text[close + 1 : close + 2] != ":":
            raise invalid(text, "expected ':' and a port after ']'")
        try:
            ip6, zone = ip6_literal(text[1:close])
        except SocketError as e:
            e.address = text
            raise
        return Ip6Address(ip6, _parse_port(text, text[close + 2 :]), scope_id=zone or 0)
    colon = text.rfind(":")
    if colon < 0:
        raise invalid(text, "expected HOST:PORT, ':PORT', [IPv6]:PORT or a unix path")
    host = text[:colon]
    if ":" in host:
        raise invalid(text, "an IPv6 address must be written in brackets: [::1]:443")
    try:
        ip4 = ip4_literal(host) if host else ipaddress.IPv4Address(0)
    except SocketError as e:
        e.address = text
        raise
    return Ip4Address(ip4, _parse_port(text, text[colon + 1 :]))


def as_bind_address(address: str | BindAddress) -> BindAddress:
    """Accept text or an address value where ``listen*``/``bind*`` take one (``fd://N`` too).

    The value returned is exactly what will be gated, audited and bound: a subclass
    instance is rebuilt as its base type (`exact`), and a `UnixAddress` built directly
    is checked as the parser checks text (no NUL byte, not empty, fits in sun_path),
    so an address that cannot be bound never reaches the gate or a syscall.

    Raises:
        SocketError.InvalidAddress, SocketError.InvalidPort: as `parse_address`.
    """
    if type(address) is str:
        found = _PARSED.get(address)  # parse_address's cache, read here first: the usual call
        if found is not None:
            return found
    if isinstance(address, (Ip4Address, Ip6Address, UnixAddress, FdAddress)):
        address = exact(address)
        if type(address) is UnixAddress:
            text = str(address)
            unix_bytes(address.path, address.abstract, text)
        return address
    return parse_address(address)


def _parse_fd(text: str) -> FdAddress:
    """Rule 0 of DESIGN §4: ``fd://`` then 1+ ASCII digits naming a descriptor."""
    digits = text[len("fd://") :]
    if not digits:
        raise invalid(text, "fd:// needs a descriptor number, as in fd://3")
    if not set(digits) <= _ASCII_DIGITS:
        # str.isdigit() would take '³' and '٣'; int() would take '+3', ' 3' and '3_0'.
        raise invalid(text, f"{digits!r} is not a descriptor number: fd:// takes ASCII digits 0-9 only")
    significant = digits.lstrip("0") or "0"
    # Checking the length first keeps int() away from its 4300-digit ValueError.
    if len(significant) > len(str(MAX_FD)) or int(significant) > MAX_FD:
        raise invalid(text, f"the descriptor number is out of range (at most {MAX_FD})")
    return FdAddress(int(significant))


addresses.hand_down_parser(parse_address)
