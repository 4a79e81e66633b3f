"""IP address values: `Ip4Address` and `Ip6Address`.

IP literal syntax is the stdlib `ipaddress` module's; no IP parser is written here.
Host names are never resolved: binding is about local addresses, and a DNS lookup
at bind time hides latency and failure.

A zone (``fe80::1%eth0``) given as an interface *name* needs the kernel's answer
(if_nametoindex), and values do no I/O: the address parser, which sits above the
kernel door, hands its lookup down at import (`hand_down_interface_index`), as the
door hands the platform facts their one question (`janus_net.platform.hand_up`).
Importing janus_net always does that first. A zone given as a number needs nobody.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from janus_net._shim import lib
from janus_net._values import sockaddr
from janus_net._values.errors import SocketError
from janus_net._values.value_base import (
    AF_INET,
    AF_INET6,
    AddressValue,
    check_port,
    other_family,
    port_zero,
    set_slot,
)

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

MAX_SCOPE_ID = 2**32 - 1


class Ip4Address(AddressValue):
    """An IPv4 address and port: ``Ip4Address("127.0.0.1", 9000)``."""

    # _host: the host's text, made by the first read of ``host`` (a decoded source is
    # shared from a cache, so a loop that reads it pays str() once per peer, not per datagram).
    __slots__ = ("_host", "_ip", "_port")
    family = lib.AF_INET
    _ip: ipaddress.IPv4Address
    _port: int
    _host: str

    def __init__(self, host: str | ipaddress.IPv4Address = "0.0.0.0", port: int = 0) -> None:
        if isinstance(host, ipaddress.IPv4Address):
            if type(host) is not ipaddress.IPv4Address:
                host = _exact_ip4(host)
        else:
            host = ip4_literal(host)
        set_slot(self, "_ip", host)
        set_slot(self, "_port", check_port(port))
        self._no_caches()

    @property
    def host(self) -> str:
        """Dotted-quad text: ``"127.0.0.1"``."""
        try:
            return self._host
        except AttributeError:  # the first read: no construction pays for a host nobody reads
            host = str(self._ip)
            set_slot(self, "_host", host)
            return host

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
        set_slot(copy, "_ip", self._ip)
        set_slot(copy, "_port", port)
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
            raise port_zero(self)
        if family and family != AF_INET and family != AF_INET6:
            raise other_family(self, family)
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


class Ip6Address(AddressValue):
    """An IPv6 address, port, flow label and scope (zone) id.

    ``scope_id`` is the interface index of a link-local address (0: none); its
    text form is ``[fe80::1%2]:443``. ``flowinfo`` rides along into the sockaddr
    but takes no part in equality or in the text form, which has no place for it.
    """

    __slots__ = ("_flowinfo", "_host", "_ip", "_port", "_scope_id")  # _host: as Ip4Address's
    family = lib.AF_INET6
    _ip: ipaddress.IPv6Address
    _port: int
    _flowinfo: int
    _scope_id: int
    _host: str

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
            host, zone = ip6_literal(host)
        elif host.scope_id is not None:
            zone = resolve_zone(host.scope_id, str(host))
            host = ipaddress.IPv6Address(host.packed)
        if zone is not None:
            # The zone in the text and the scope_id argument must not disagree, whichever form came.
            if scope_id not in (0, zone):
                raise SocketError.InvalidAddress(None, f"zone %{zone} contradicts scope_id={scope_id}")
            scope_id = zone
        for name, value in (("flowinfo", flowinfo), ("scope_id", scope_id)):
            if type(value) is not int or not 0 <= value <= MAX_SCOPE_ID:
                raise SocketError.InvalidAddress(None, f"{name} must be an int in 0..2**32-1, not {value!r}")
        set_slot(self, "_ip", host)
        set_slot(self, "_port", check_port(port))
        set_slot(self, "_flowinfo", flowinfo)
        set_slot(self, "_scope_id", scope_id)
        self._no_caches()

    @classmethod
    def from_ip4(cls, ip4: Ip4Address) -> Ip6Address:
        """The IPv4-mapped address ``::ffff:a.b.c.d`` with the same port."""
        return cls(ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip4.ip.packed), ip4.port)

    @property
    def host(self) -> str:
        """RFC 5952 text, ``::ffff:1.2.3.4`` for mapped addresses, ``%N`` for a zone."""
        try:
            return self._host
        except AttributeError:  # the first read (see Ip4Address.host)
            mapped = self._ip.ipv4_mapped
            text = f"::ffff:{mapped}" if mapped is not None else str(self._ip)
            host = f"{text}%{self._scope_id}" if self._scope_id else text
            set_slot(self, "_host", host)
            return host

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
        set_slot(copy, "_ip", self._ip)
        set_slot(copy, "_port", port)
        set_slot(copy, "_flowinfo", self._flowinfo)
        set_slot(copy, "_scope_id", self._scope_id)
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
            raise port_zero(self)
        if family and family != AF_INET6:
            raise other_family(self, family)
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


IpAddress = Ip4Address | Ip6Address


def require_zone(address: AddressValue, syscall: str) -> None:
    """AddressUnavailable for an IPv6 address that exists only on one link and names none.

    The one check of both paths where the kernel needs the zone: bind
    (`janus_net._profiles.option_checks.validate`) and connect (`janus_net.connect`). Both would answer
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


def ip4_literal(host: object) -> ipaddress.IPv4Address:
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


def ip6_literal(text: str) -> tuple[ipaddress.IPv6Address, int | None]:
    """The address and resolved zone (None when there is no zone) of IPv6 text."""
    try:
        ip = ipaddress.IPv6Address(text)
    except (ValueError, TypeError):
        raise SocketError.InvalidAddress(None, f"{text!r} is not an IPv6 literal") from None
    if ip.scope_id is None:
        return ip, None
    return ipaddress.IPv6Address(ip.packed), resolve_zone(ip.scope_id, text)


def _no_lookup(name: bytes) -> int:
    raise RuntimeError("the address parser has not handed its interface lookup down (import janus_net first)")


_interface_index: Callable[[bytes], int] = _no_lookup


def hand_down_interface_index(interface_index: Callable[[bytes], int]) -> None:
    """Called once by the address parser at import: how a zone's interface name becomes an index.

    ``interface_index(name)`` is the index of the interface called ``name`` (bytes
    without a NUL), or 0 when there is none.
    """
    global _interface_index
    _interface_index = interface_index


def resolve_zone(zone: str, text: str) -> int:
    """An interface index from a zone: digits are the index, a name is looked up (`hand_down_interface_index`).

    Raises:
        SocketError.InvalidAddress: the index is out of range, or no interface has that name.
    """
    if zone.isascii() and zone.isdigit():
        # Leading zeros are harmless; more than 10 significant digits is out of range,
        # and checking that first keeps int() away from its 4300-digit ValueError.
        significant = zone.lstrip("0") or "0"
        index = int(significant) if len(significant) <= 10 else MAX_SCOPE_ID + 1
        if index > MAX_SCOPE_ID:
            raise SocketError.InvalidAddress(None, f"zone index {zone} is out of range in {text!r}")
        return index
    try:
        name = os.fsencode(zone)
    except UnicodeError:
        name = b"\0"
    index = 0 if b"\0" in name else _interface_index(name)
    if index == 0:
        raise SocketError.InvalidAddress(None, f"unknown network interface {zone!r} in {text!r}")
    return int(index)
