"""Host names: the check every name passes before any I/O, and the strict IP literal test (DESIGN §17).

A name given to `resolve` or `connect_host` is one of three things, told apart here
without a syscall:

* an IP literal in the strict forms of DESIGN §4 (``127.0.0.1``, ``::1``,
  ``fe80::1%eth0``): `literal` returns its address value. ``127.1``, ``0x7f.1`` and
  ``010.0.0.1`` are *not* literals (inet_aton would take them; the stdlib
  `ipaddress` does not), so they are names, and DNS is asked about them;
* a name that can be a DNS name: `check_host_name` returns a `HostName`;
* anything else: `SocketError.InvalidHostName`.

Non-ASCII names are encoded with IDNA (UTS 46, non-transitional, as browsers and
glibc's ``AI_IDN`` do) by the ``idna`` package, imported only when such a name comes:
most programs never pay for it.
"""

from __future__ import annotations

import ipaddress

from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address, ip6_literal

#: The longest name, in bytes without the trailing dot (RFC 1035 §2.3.4: 255 bytes on
#: the wire are 253 characters of text).
MAX_NAME = 253
#: The longest label (RFC 1035 §2.3.4).
MAX_LABEL = 63

# Letters, digits, hyphen, underscore (service labels, _dmarc...; glibc lets them
# through), and the dot. Nothing else reaches the wire: no space, no NUL, no
# backslash that a zone-file-minded server could read as an escape.
_ALLOWED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class HostName:
    """A checked host name: ASCII, its labels within bounds, and whether it ended with a dot.

    Attributes:
        name: the ASCII name without its trailing dot (IDNA-encoded if it was not ASCII).
        absolute: the name ended with a dot: it is tried as given only, never with
            the search domains.
        dots: how many dots ``name`` has (the ``ndots`` rule compares this).
    """

    __slots__ = ("absolute", "dots", "name")

    name: str
    absolute: bool
    dots: int

    def __init__(self, name: str, absolute: bool) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "absolute", absolute)
        object.__setattr__(self, "dots", name.count("."))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("HostName is immutable")

    @property
    def folded(self) -> str:
        """The name in lower case (ASCII only), for comparisons: DNS names are case-insensitive."""
        return self.name.lower()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HostName):
            return NotImplemented
        return self.folded == other.folded and self.absolute == other.absolute

    def __hash__(self) -> int:
        return hash((self.folded, self.absolute))

    def __repr__(self) -> str:
        return f"HostName({self.name + ('.' if self.absolute else '')!r})"


def _invalid(text: str, why: str) -> SocketError:
    return SocketError.InvalidHostName(None, f"not a valid host name: {why}", address=text)


def _idna(text: str) -> str:
    """``text`` encoded with IDNA (UTS 46); `InvalidHostName` if the package refuses it."""
    import idna  # only for non-ASCII names: most programs never load it

    try:
        return str(idna.encode(text, uts46=True, transitional=False).decode("ascii"))
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise _invalid(text, f"IDNA refuses it ({e})") from None


def check_host_name(text: str) -> HostName:
    """Check ``text`` as a host name (DESIGN §17), before any I/O.

    Returns:
        The `HostName`: ASCII, each label 1..63 bytes of letters, digits, hyphens and
        underscores, at most 253 bytes without the trailing dot.

    Raises:
        TypeError: ``text`` is not a str.
        SocketError.InvalidHostName: empty, too long, an empty or overlong label, a
            byte outside the allowed set (NUL, space, ``%``, ``:``...), or a non-ASCII
            name IDNA refuses.
    """
    if not isinstance(text, str):
        raise TypeError(f"a host name is a str, not {type(text).__name__}")
    text = str.__str__(text)  # a str subclass's overrides must not change what is checked
    name = text if text.isascii() else _idna(text)
    raw = name.encode("ascii")
    if not raw or raw == b".":
        raise _invalid(text, "it is empty")
    absolute = raw.endswith(b".")
    if absolute:
        raw = raw[:-1]
    if len(raw) > MAX_NAME:
        raise _invalid(text, f"it is longer than {MAX_NAME} bytes")
    bad = set(raw) - _ALLOWED
    if bad:
        raise _invalid(text, f"it holds {bytes([min(bad)])!r}; only letters, digits, '-', '_' and '.' may appear")
    for label in raw.split(b"."):
        if not label:
            raise _invalid(text, "it has an empty label (two dots in a row, or a leading dot)")
        if len(label) > MAX_LABEL:
            raise _invalid(text, f"a label is longer than {MAX_LABEL} bytes")
    return HostName(raw.decode("ascii"), absolute)


def literal(text: str) -> Ip4Address | Ip6Address | None:
    """The address ``text`` is, if it is an IP literal in the strict forms of DESIGN §4; else None.

    IPv4: four decimal octets, no leading zeros (``127.1`` is a name). IPv6: the
    stdlib's forms, optionally with a zone (a number, or an interface name looked up
    through the parser's hand-down), without brackets.

    Raises:
        SocketError.InvalidHostName: the text has a ``:`` (so it can only be an IPv6
            literal) but is not one, or its zone names no interface.
    """
    if ":" not in text:
        if not text[:1].isdigit():
            return None  # cheap: every IPv4 literal starts with a digit
        try:
            return Ip4Address(ipaddress.IPv4Address(text))
        except ValueError:
            return None
    try:
        ip, zone = ip6_literal(text)
    except SocketError as e:
        raise _invalid(text, str(e.args[0]) if e.args else "not an IPv6 literal") from None
    return Ip6Address(ip, 0, scope_id=zone or 0)


__all__ = ["MAX_LABEL", "MAX_NAME", "HostName", "check_host_name", "literal"]
