"""Addresses: `parse_address` and the small immutable values it returns.

Three kinds of address can be bound:

* `Ip4Address` (``127.0.0.1:9000``, ``:8080`` for the wildcard),
* `Ip6Address` (``[::1]:443``, ``[fe80::1%eth0]:443``),
* `UnixAddress` (``unix:/run/app.sock``, ``/run/app.sock``, ``unix:@name``).

Each value prints in one canonical form and parses back to itself:
``parse_address(str(a)) == a``. IP literal syntax is the stdlib `ipaddress`
module's; no IP parser is written here. Host names are never resolved: binding
is about local addresses, and a DNS lookup at bind time hides latency and failure.

Each address encodes its C sockaddr once, on first use, and keeps it, so sending
many datagrams to one destination encodes it once.
"""

from __future__ import annotations

import ipaddress
import os
from abc import abstractmethod

from janus_net import platform, sockaddr
from janus_net._shim import ffi, lib
from janus_net.caches import bounded_put
from janus_net.errors import SocketError
from janus_net.escaping import for_people as for_people  # re-exported: the one escape for text for people

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, ClassVar


_ASCII_DIGITS = frozenset("0123456789")
_MAX_SCOPE_ID = 2**32 - 1


# Immutable values set their slots once, in __init__, past their own __setattr__.
_set = object.__setattr__


class _Value:
    """Immutable value with a lazily encoded sockaddr and a lazily formatted text.

    Both are derived from the fields, so filling them in later does not change the
    value; each is computed once, on first use (two threads may both compute it and
    store equal results, which is harmless).
    """

    __slots__ = ("_encoded", "_text")

    family: ClassVar[int]
    _encoded: sockaddr.Encoded | None
    _text: str | None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _no_caches(self) -> None:
        """Start with nothing derived yet: the one place the two caches are reset."""
        _set(self, "_encoded", None)
        _set(self, "_text", None)

    # Each concrete class defines these two. (abstractmethod without ABCMeta: it states
    # the rule for readers and mypy, and keeps isinstance() on the hot paths cheap.)
    @abstractmethod
    def _encode(self) -> sockaddr.Encoded: ...

    @abstractmethod
    def _format(self) -> str: ...

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._format()
            _set(self, "_text", text)
        return text

    @property
    def sockaddr(self) -> sockaddr.Encoded:
        """The encoded C struct (owned by this address, encoded on first use)."""
        encoded: sockaddr.Encoded | None = self._encoded
        if encoded is None:
            encoded = self._encode()
            _set(self, "_encoded", encoded)
        return encoded

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


def _check_port(port: object) -> int:
    if type(port) is not int or not 0 <= port <= 65535:
        raise SocketError.InvalidPort(None, f"port must be an int in 0..65535, not {port!r}")
    return port


class Ip4Address(_Value):
    """An IPv4 address and port: ``Ip4Address("127.0.0.1", 9000)``."""

    __slots__ = ("_ip", "_port")
    family = lib.AF_INET
    _ip: ipaddress.IPv4Address
    _port: int

    def __init__(self, host: str | ipaddress.IPv4Address = "0.0.0.0", port: int = 0) -> None:
        if isinstance(host, ipaddress.IPv4Address):
            if type(host) is not ipaddress.IPv4Address:
                host = _exact_ip4(host)
        else:
            host = _ip4_literal(host)
        _set(self, "_ip", host)
        _set(self, "_port", _check_port(port))
        self._no_caches()

    @property
    def host(self) -> str:
        """Dotted-quad text: ``"127.0.0.1"``."""
        return str(self._ip)

    @property
    def port(self) -> int:
        return self._port

    @property
    def ip(self) -> ipaddress.IPv4Address:
        """The host as an `ipaddress.IPv4Address`."""
        return self._ip

    def _encode(self) -> sockaddr.Encoded:
        return sockaddr.encode_ip4(self._ip.packed, self._port)

    def _with_port(self, port: int) -> Ip4Address:
        """This address with another port (trusted: a port the kernel reported); shares ``ip``."""
        if port == self._port:
            return self
        copy = Ip4Address.__new__(Ip4Address)
        _set(copy, "_ip", self._ip)
        _set(copy, "_port", port)
        copy._no_caches()
        return copy

    def _format(self) -> str:
        return f"{self._ip}:{self._port}"

    def destination(self, family: int = 0) -> sockaddr.Encoded:
        """The encoded sockaddr to send a datagram to, once the kernel would take it as one.

        Checked here, before any syscall, because the kernel answers both with an errno
        that could also mean a bug: port 0 is no destination (sendto says EINVAL), and
        a socket of another family cannot send to it.

        Args:
            family: the sending socket's family (0: do not check).

        Raises:
            SocketError.AddressUnavailable: the port is 0 (a peer whose source port is 0,
                which is legal on the wire, cannot be answered).
            SocketError.AddressFamilyUnsupported: ``family`` cannot send to an IPv4 address.
        """
        if self._port == 0:
            raise _port_zero(self)
        if family and family != _AF_INET and family != _AF_INET6:
            raise _other_family(self, family)
        encoded = self._encoded
        return encoded if encoded is not None else self.sockaddr

    def __reduce__(self) -> tuple[object, ...]:
        return (Ip4Address, (self._ip, self._port))

    def __eq__(self, other: object) -> bool:
        if type(other) is not Ip4Address:
            return NotImplemented
        return self._ip == other._ip and self._port == other._port

    def __hash__(self) -> int:
        return hash((Ip4Address, self._ip, self._port))


class Ip6Address(_Value):
    """An IPv6 address, port, flow label and scope (zone) id.

    ``scope_id`` is the interface index of a link-local address (0: none); its
    text form is ``[fe80::1%2]:443``. ``flowinfo`` rides along into the sockaddr
    but takes no part in equality or in the text form, which has no place for it.
    """

    __slots__ = ("_flowinfo", "_ip", "_port", "_scope_id")
    family = lib.AF_INET6
    _ip: ipaddress.IPv6Address
    _port: int
    _flowinfo: int
    _scope_id: int

    def __init__(
        self,
        host: str | ipaddress.IPv6Address = "::",
        port: int = 0,
        flowinfo: int = 0,
        scope_id: int = 0,
    ) -> None:
        zone: int | None = None
        if isinstance(host, ipaddress.IPv6Address) and type(host) is not ipaddress.IPv6Address:
            host = _exact_ip6(host)
        if not isinstance(host, ipaddress.IPv6Address):
            host, zone = _ip6_literal(host)
        elif host.scope_id is not None:
            zone = _resolve_zone(host.scope_id, str(host))
            host = ipaddress.IPv6Address(host.packed)
        if zone is not None:
            # The zone in the text and the scope_id argument must not disagree, whichever form came.
            if scope_id not in (0, zone):
                raise SocketError.InvalidAddress(None, f"zone %{zone} contradicts scope_id={scope_id}")
            scope_id = zone
        for name, value in (("flowinfo", flowinfo), ("scope_id", scope_id)):
            if type(value) is not int or not 0 <= value <= _MAX_SCOPE_ID:
                raise SocketError.InvalidAddress(None, f"{name} must be an int in 0..2**32-1, not {value!r}")
        _set(self, "_ip", host)
        _set(self, "_port", _check_port(port))
        _set(self, "_flowinfo", flowinfo)
        _set(self, "_scope_id", scope_id)
        self._no_caches()

    @classmethod
    def from_ip4(cls, ip4: Ip4Address) -> Ip6Address:
        """The IPv4-mapped address ``::ffff:a.b.c.d`` with the same port."""
        return cls(ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip4.ip.packed), ip4.port)

    @property
    def host(self) -> str:
        """RFC 5952 text, ``::ffff:1.2.3.4`` for mapped addresses, ``%N`` for a zone."""
        mapped = self._ip.ipv4_mapped
        text = f"::ffff:{mapped}" if mapped is not None else str(self._ip)
        return f"{text}%{self._scope_id}" if self._scope_id else text

    @property
    def port(self) -> int:
        return self._port

    @property
    def flowinfo(self) -> int:
        return self._flowinfo

    @property
    def scope_id(self) -> int:
        return self._scope_id

    @property
    def ip(self) -> ipaddress.IPv6Address:
        """The host as an `ipaddress.IPv6Address` (without the zone)."""
        return self._ip

    @property
    def is_ip4_mapped(self) -> bool:
        return self._ip.ipv4_mapped is not None

    @property
    def needs_zone(self) -> bool:
        """True for an address that exists only on one link, so the kernel binds it only with a zone.

        That is link-local unicast (``fe80::/10``) and interface- or link-local
        multicast (``ff01::``, ``ff02::`` and the other scope 1 and 2 groups): the
        addresses Linux calls "needs scope id". Without a zone, bind says EINVAL.
        """
        scope = self._ip.packed[1] & 0x0F
        return self._ip.is_link_local or (self._ip.is_multicast and scope in (1, 2))

    def _encode(self) -> sockaddr.Encoded:
        return sockaddr.encode_ip6(self._ip.packed, self._port, self._flowinfo, self._scope_id)

    def _with_port(self, port: int) -> Ip6Address:
        """This address with another port (trusted: a port the kernel reported); shares ``ip``."""
        if port == self._port:
            return self
        copy = Ip6Address.__new__(Ip6Address)
        _set(copy, "_ip", self._ip)
        _set(copy, "_port", port)
        _set(copy, "_flowinfo", self._flowinfo)
        _set(copy, "_scope_id", self._scope_id)
        copy._no_caches()
        return copy

    def _format(self) -> str:
        return f"[{self.host}]:{self._port}"

    def destination(self, family: int = 0) -> sockaddr.Encoded:
        """The encoded sockaddr to send a datagram to (see `Ip4Address.destination`).

        Raises:
            SocketError.AddressUnavailable: the port is 0. (A link-local address without
                a zone is a destination: a socket bound to an interface sends on that
                link, and sendto answers ENETUNREACH where no link has a route to it.)
            SocketError.AddressFamilyUnsupported: ``family`` (an IPv4 or unix socket)
                cannot send to an IPv6 address.
        """
        if self._port == 0:
            raise _port_zero(self)
        if family and family != _AF_INET6:
            raise _other_family(self, family)
        encoded = self._encoded
        return encoded if encoded is not None else self.sockaddr

    def __reduce__(self) -> tuple[object, ...]:
        return (Ip6Address, (self._ip, self._port, self._flowinfo, self._scope_id))

    def __eq__(self, other: object) -> bool:
        if type(other) is not Ip6Address:
            return NotImplemented
        return self._ip == other._ip and self._port == other._port and self._scope_id == other._scope_id

    def __hash__(self) -> int:
        return hash((Ip6Address, self._ip, self._port, self._scope_id))


class UnixAddress(_Value):
    """A unix-domain socket address: a file system path, or (Linux) an abstract name.

    ``UnixAddress("/run/app.sock")`` prints ``unix:/run/app.sock``;
    ``UnixAddress("name", abstract=True)`` prints ``unix:@name``. A peer that never
    bound (the usual client) has the empty path and prints ``unix:``; that form is
    what the kernel reports, not something that can be bound, so it does not parse.
    """

    __slots__ = ("_abstract", "_path")
    family = lib.AF_UNIX
    port: ClassVar[None] = None
    _path: str
    _abstract: bool

    def __init__(self, path: str, abstract: bool = False) -> None:
        if not isinstance(path, str):
            raise SocketError.InvalidAddress(None, f"unix path must be str, not {type(path).__name__}")
        _set(self, "_path", path if type(path) is str else str.__str__(path))
        _set(self, "_abstract", bool(abstract))
        self._no_caches()

    @property
    def path(self) -> str:
        """The path (or, for an abstract address, the name without the ``@``)."""
        return self._path

    @property
    def abstract(self) -> bool:
        return self._abstract

    @property
    def unnamed(self) -> bool:
        """True for an unbound peer (the kernel gave no path)."""
        return not self._path and not self._abstract

    def _encode(self) -> sockaddr.Encoded:
        return sockaddr.encode_unix(_unix_bytes(self._path, self._abstract, str(self)), self._abstract)

    def _format(self) -> str:
        return f"unix:@{self._path}" if self._abstract else f"unix:{self._path}"

    def destination(self, family: int = 0) -> sockaddr.Encoded:
        """The encoded sockaddr to send a datagram to (see `Ip4Address.destination`).

        Raises:
            SocketError.InvalidAddress: the address cannot be encoded (an unnamed peer,
                a NUL byte, too long).
            SocketError.AddressFamilyUnsupported: ``family`` (an IP socket) cannot send
                to a unix address.
        """
        if family and family != _AF_UNIX:
            raise _other_family(self, family)
        encoded = self._encoded
        return encoded if encoded is not None else self.sockaddr

    def __reduce__(self) -> tuple[object, ...]:
        return (UnixAddress, (self._path, self._abstract))

    def __eq__(self, other: object) -> bool:
        if type(other) is not UnixAddress:
            return NotImplemented
        return self._path == other._path and self._abstract == other._abstract

    def __hash__(self) -> int:
        return hash((UnixAddress, self._path, self._abstract))


Address = Ip4Address | Ip6Address | UnixAddress
"""Any address janus_net can bind or report."""

_AF_INET = lib.AF_INET
_AF_INET6 = lib.AF_INET6
_AF_UNIX = lib.AF_UNIX
_FAMILY_NAMES = {_AF_INET: "an IPv4", _AF_INET6: "an IPv6", _AF_UNIX: "a unix"}


def _port_zero(target: Address) -> SocketError:
    return SocketError.AddressUnavailable(
        None, "port 0 is not a destination: the kernel sends nothing to it", syscall="send", address=str(target)
    )


def require_zone(address: Address, syscall: str) -> None:
    """AddressUnavailable for an IPv6 address that exists only on one link and names none.

    The one check of both paths where the kernel needs the zone: bind
    (`janus_net.options.validate`) and connect (`janus_net.connect`). Both would answer
    EINVAL, a row that otherwise means a bug, so the address is refused before any
    syscall. A datagram's destination is not checked: a socket bound to an interface
    (``device=``, or a zoned local address) sends to ``[fe80::2]:53`` on that link.

    Args:
        address: any address; only an IPv6 one whose `Ip6Address.needs_zone` holds and
            whose ``scope_id`` is 0 is refused.
        syscall: the call the error stands for (``"bind"``, ``"connect"``, ``"send"``).

    Raises:
        SocketError.AddressUnavailable: ``errno`` None, naming ``syscall`` and the address.
    """
    if isinstance(address, Ip6Address) and not address.scope_id and address.needs_zone:
        why = f"{address.ip} exists only on one link: name the interface, as in [{address.ip}%eth0]:{address.port}"
        raise SocketError.AddressUnavailable(None, why, syscall=syscall, address=str(address))


def _other_family(target: Address, family: int) -> SocketError:
    sender = _FAMILY_NAMES.get(family, f"a family {family}")
    return SocketError.AddressFamilyUnsupported(
        None, f"{sender} socket cannot send to {_FAMILY_NAMES[target.family]} address", syscall="send",
        address=str(target),
    )  # fmt: skip


IpAddress = Ip4Address | Ip6Address

# The largest descriptor number: fds are C ints.
_MAX_FD = 2 ** (8 * ffi.sizeof("int") - 1) - 1


class FdAddress:
    """An inherited socket named by its descriptor number: ``fd://3``.

    Not an address a socket has, but a way to say "the socket I was given" to
    ``listen``/``bind`` (and to `janus_net.listen_fds`): a supervisor such as systemd
    or a parent process opened and bound it, and janus_net adopts it. The socket's
    real address is known only once the descriptor has been looked at, so the
    adopted `Server`/`Socket` reports what getsockname says, never an `FdAddress`.

    Immutable and hashable; ``str(FdAddress(3)) == "fd://3"`` and
    ``parse_address(str(a)) == a``.
    """

    __slots__ = ("_fd",)
    _fd: int

    def __init__(self, fd: int) -> None:
        if type(fd) is not int or not 0 <= fd <= _MAX_FD:
            raise SocketError.InvalidAddress(None, f"a descriptor number is an int in 0..{_MAX_FD}, not {fd!r}")
        object.__setattr__(self, "_fd", fd)

    @property
    def fd(self) -> int:
        """The descriptor number."""
        return self._fd

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FdAddress is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("FdAddress is immutable")

    def __str__(self) -> str:
        return f"fd://{self._fd}"

    def __repr__(self) -> str:
        return f"FdAddress({str(self)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (FdAddress, (self._fd,))

    def __eq__(self, other: object) -> bool:
        if type(other) is not FdAddress:
            return NotImplemented
        return self._fd == other._fd

    def __hash__(self) -> int:
        return hash((FdAddress, self._fd))


BindAddress = Ip4Address | Ip6Address | UnixAddress | FdAddress
"""Anything ``listen*``/``bind*`` take: an address to bind, or an inherited socket to adopt."""


# The slots `ipaddress` stores an address in, read past any property a subclass defines.
_IP4_SLOT: Any = ipaddress.IPv4Address.__dict__["_ip"]
_IP6_SLOT: Any = ipaddress.IPv6Address.__dict__["_ip"]
_IP6_SCOPE_SLOT: Any = ipaddress.IPv6Address.__dict__["_scope_id"]


def _exact_ip4(host: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """An `ipaddress.IPv4Address` (exactly) with the value a subclass instance stored."""
    return ipaddress.IPv4Address(int(_IP4_SLOT.__get__(host, ipaddress.IPv4Address)))


def _exact_ip6(host: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """An `ipaddress.IPv6Address` (exactly) with the value and zone a subclass instance stored."""
    ip = ipaddress.IPv6Address(int(_IP6_SLOT.__get__(host, ipaddress.IPv6Address)))
    scope = _IP6_SCOPE_SLOT.__get__(host, ipaddress.IPv6Address)
    return ip if scope is None else ipaddress.IPv6Address(f"{ip}%{str.__str__(scope)}")


def _invalid(text: str, why: str) -> SocketError:
    return SocketError.InvalidAddress(None, why, address=text)


def _ip4_literal(host: object) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(host)
    except (ValueError, TypeError):
        pass
    text = str(host)
    if any(c.isalpha() for c in text):
        why = (
            f"{text!r} is not an IPv4 literal; host names are not resolved at bind time, "
            "use an IP literal such as 127.0.0.1"
        )
    else:
        why = f"{text!r} is not a dotted-quad IPv4 literal (four decimal octets, no leading zeros)"
    raise SocketError.InvalidAddress(None, why)


def _ip6_literal(text: str) -> tuple[ipaddress.IPv6Address, int | None]:
    """The address and resolved zone (None when there is no zone) of IPv6 text."""
    try:
        ip = ipaddress.IPv6Address(text)
    except (ValueError, TypeError):
        raise SocketError.InvalidAddress(None, f"{text!r} is not an IPv6 literal") from None
    if ip.scope_id is None:
        return ip, None
    return ipaddress.IPv6Address(ip.packed), _resolve_zone(ip.scope_id, text)


def _resolve_zone(zone: str, text: str) -> int:
    """An interface index from a zone: digits are the index, a name goes through if_nametoindex."""
    if zone.isascii() and zone.isdigit():
        # Leading zeros are harmless; more than 10 significant digits is out of range,
        # and checking that first keeps int() away from its 4300-digit ValueError.
        significant = zone.lstrip("0") or "0"
        index = int(significant) if len(significant) <= 10 else _MAX_SCOPE_ID + 1
        if index > _MAX_SCOPE_ID:
            raise SocketError.InvalidAddress(None, f"zone index {zone} is out of range in {text!r}")
        return index
    try:
        name = os.fsencode(zone)
    except UnicodeError:
        name = b"\0"
    index = 0 if b"\0" in name else lib.if_nametoindex(name)
    if index == 0:
        raise SocketError.InvalidAddress(None, f"unknown network interface {zone!r} in {text!r}")
    return int(index)


def _parse_port(text: str, port: str) -> int:
    # int() would accept "+80", " 80", "8_080" and non-ASCII digits; the grammar does not.
    if not 1 <= len(port) <= 5 or not set(port) <= _ASCII_DIGITS or int(port) > 65535:
        raise SocketError.InvalidPort(
            None, f"port {port!r} must be 1 to 5 ASCII digits with a value in 0..65535", address=text
        )
    return int(port)


def _unix_bytes(name: str, abstract: bool, text: str) -> bytes:
    """The bytes of a path or abstract name that fits in sun_path, else InvalidAddress.

    Both the parser and the encoder go through here: a `UnixAddress` built directly
    (or reported by the kernel) must never write past the end of its sockaddr_un.
    """
    kind = "abstract name" if abstract else "unix socket path"
    if abstract and not platform.HAS_ABSTRACT_UNIX:
        raise _invalid(text, "abstract unix socket names are not supported on this platform")
    if not name:
        raise _invalid(text, f"empty {kind}")
    try:
        encoded = os.fsencode(name)
    except UnicodeError:
        # A lone surrogate that is not a surrogateescape'd byte has no file system bytes.
        raise _invalid(text, f"{kind} cannot be encoded to file system bytes") from None
    if b"\0" in encoded:
        raise _invalid(text, f"{kind} contains a NUL byte")
    limit = platform.SUN_PATH_SIZE - 1
    if len(encoded) > limit:
        raise _invalid(text, f"{kind} is {len(encoded)} bytes; this platform allows at most {limit}")
    return encoded


def _parse_unix(text: str) -> UnixAddress:
    path = text[len("unix:") :] if text.startswith("unix:") else text
    abstract = path.startswith("@")
    name = path[1:] if abstract else path
    _unix_bytes(name, abstract, text)
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
            raise _invalid(text, "missing ']' after the IPv6 address")
        if text[close + 1 : close + 2] != ":":
            raise _invalid(text, "expected ':' and a port after ']'")
        try:
            ip6, zone = _ip6_literal(text[1:close])
        except SocketError as e:
            e.address = text
            raise
        return Ip6Address(ip6, _parse_port(text, text[close + 2 :]), scope_id=zone or 0)
    colon = text.rfind(":")
    if colon < 0:
        raise _invalid(text, "expected HOST:PORT, ':PORT', [IPv6]:PORT or a unix path")
    host = text[:colon]
    if ":" in host:
        raise _invalid(text, "an IPv6 address must be written in brackets: [::1]:443")
    try:
        ip4 = _ip4_literal(host) if host else ipaddress.IPv4Address(0)
    except SocketError as e:
        e.address = text
        raise
    return Ip4Address(ip4, _parse_port(text, text[colon + 1 :]))


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
_EXACT_TYPES = frozenset(_SLOTS)


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
    if cls in _EXACT_TYPES:
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


def as_address(address: str | Address) -> Address:
    """Accept either text or an address value wherever a socket address is taken.

    ``fd://N`` is rejected here: it names an inherited socket, not an address a
    datagram can be sent to (`as_bind_address` takes it). An instance of a subclass
    of an address type is rebuilt as its base type (`exact`).
    """
    if isinstance(address, (Ip4Address, Ip6Address, UnixAddress)):
        return address if type(address) in _EXACT_TYPES else exact(address)  # type: ignore[return-value]
    parsed = parse_address(address)
    if isinstance(parsed, FdAddress):
        raise _invalid(address, "fd://N names an inherited socket to adopt, not a socket address")
    return parsed


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
            _unix_bytes(address.path, address.abstract, text)
        return address
    return parse_address(address)


def _parse_fd(text: str) -> FdAddress:
    """Rule 0 of DESIGN §4: ``fd://`` then 1+ ASCII digits naming a descriptor."""
    digits = text[len("fd://") :]
    if not digits:
        raise _invalid(text, "fd:// needs a descriptor number, as in fd://3")
    if not set(digits) <= _ASCII_DIGITS:
        # str.isdigit() would take '³' and '٣'; int() would take '+3', ' 3' and '3_0'.
        raise _invalid(text, f"{digits!r} is not a descriptor number: fd:// takes ASCII digits 0-9 only")
    significant = digits.lstrip("0") or "0"
    # Checking the length first keeps int() away from its 4300-digit ValueError.
    if len(significant) > len(str(_MAX_FD)) or int(significant) > _MAX_FD:
        raise _invalid(text, f"the descriptor number is out of range (at most {_MAX_FD})")
    return FdAddress(int(significant))


def from_sockaddr(storage: Any, length: int) -> Address:
    """The address value for a sockaddr the kernel filled in (getsockname, accept, recvfrom)."""
    fields = sockaddr.decode(storage, length)
    if fields.family == lib.AF_INET:
        return Ip4Address(ipaddress.IPv4Address(fields.packed), fields.port)
    if fields.family == lib.AF_INET6:
        return Ip6Address(ipaddress.IPv6Address(fields.packed), fields.port, fields.flowinfo, fields.scope_id)
    return UnixAddress(os.fsdecode(fields.packed), abstract=fields.abstract)


def reported(requested: Address, storage: Any, length: int) -> Address:
    """The address the kernel reports (getsockname) for a socket bound to ``requested``.

    Usually it is ``requested`` with, at most, the real port in place of 0: then the
    answer is built from ``requested`` (same ``ipaddress`` object) instead of being
    decoded into new objects. Anything else that differs is decoded in full. A unix
    path comes back as the caller spelled it (the kernel reports it as given).
    """
    if isinstance(requested, UnixAddress):
        bound = from_sockaddr(storage, length)
        return requested if isinstance(bound, UnixAddress) else bound
    port = sockaddr.port_if_same_host(storage, length, requested.sockaddr)
    if port is not None:
        return requested._with_port(port)
    return from_sockaddr(storage, length)


#: Decoded source addresses, keyed by the raw sockaddr bytes the kernel wrote.
#: A server hears the same few peers again and again; with this cache a repeated
#: peer costs one dict lookup instead of a decode (two `ipaddress` objects and an
#: address), and the address handed back already owns its encoded sockaddr, so
#: replying to it encodes nothing. Addresses are immutable, so sharing them between
#: sockets and threads is safe. Read by the batched receive path (which has the key
#: in hand); written only by `from_sockaddr_cached`.
DECODED_SOURCES: dict[bytes | int, Address] = {}
_DECODED_SOURCES_MAX = 512


def from_sockaddr_cached(storage: Any, length: int, key: bytes | int | None = None) -> Address:
    """`from_sockaddr` through `DECODED_SOURCES`: repeated peers are decoded once.

    ``key`` identifies the sockaddr: by default its ``length`` bytes at ``storage``;
    a caller that already holds a key (the bytes, or for IPv4 the first 8 bytes
    read as an int, which is what identifies a sockaddr_in) passes it. The cache is
    bounded: when full, the oldest entry goes.
    """
    if key is None:
        key = ffi.buffer(storage, length)[:]
    found = DECODED_SOURCES.get(key)
    if found is not None:
        return found
    decoded = from_sockaddr(storage, length)
    bounded_put(DECODED_SOURCES, _DECODED_SOURCES_MAX, key, decoded)
    return decoded


def sockaddr_size() -> int:
    """Bytes to reserve for any sockaddr the kernel may write."""
    return int(ffi.sizeof("struct sockaddr_storage"))
