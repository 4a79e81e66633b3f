"""The source address the kernel would use for each destination: RFC 6724's Source(D), learned, not guessed.

`learn` asks the kernel, for each destination, the way Go and glibc do: a UDP socket of
the destination's family is connected to it -- a UDP connect sends no packet, it only
picks the route and the source address -- and getsockname reads the source back. A
destination the kernel has no route to (ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL for an
IPv6 host with no IPv6 address, EAFNOSUPPORT for a kernel without IPv6, EINVAL for a
link-local address without its zone...) has no source: None, which RFC 6724 rule 1
sorts last (`janus_net._values.address_order`).

One probe socket serves every destination of a call (`_Probes`: an IPv6 socket with
IPV6_V6ONLY cleared when both families are asked, as glibc does); every probe socket is a
janus_net socket in its own cell, all closed in one call when `learn` returns, on every
path; a `Context`'s cancel or deadline ends the learning with
`SocketError.Timeout` (the checkpoint of each syscall's retry loop). With a
`janus_net._policy.netns.Maker` the probes are made inside its namespace, where the
connections they stand for will be made.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Sequence

from janus_net._kernel import cells, socket_options, sockets
from janus_net._policy import netns as policy_netns
from janus_net._shim import ffi, lib
from janus_net._values import sockaddr
from janus_net._values.address_order import sort_destinations
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.reported import from_sockaddr

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._kernel.loop import Checkpoint
    from janus_net._policy.context import Context

IpAddress = Ip4Address | Ip6Address

# The kernel's answers that mean "no route from here", or "not a destination this host
# can reach at all": the destination is unusable (rule 1), not the lookup a failure.
# Timeout (the context) and ErrnoBug are never among them; resource errors (EMFILE,
# ENOBUFS) are not either: they would fail the connection too, so they are raised.
_UNUSABLE = (
    SocketError.NetworkUnreachable,
    SocketError.HostUnreachable,
    SocketError.AddressUnavailable,
    SocketError.AddressFamilyUnsupported,
    SocketError.NetworkSubsystemDown,
    SocketError.AccessDenied,
)


def learn(
    destinations: Sequence[IpAddress],
    *,
    ctx: Context | None = None,
    netns: policy_netns.Maker | None = None,
) -> list[IpAddress | None]:
    """For each destination, the source address a connection to it would have, or None without a route.

    Args:
        destinations: the addresses to probe (their port is used as is; 0 is fine: no
            packet is sent).
        ctx: a `Context`; its ``check()`` runs before each probe and in every syscall's
            retry loop.
        netns: a `janus_net._policy.netns.Maker` whose namespace the probes are made in.

    Returns:
        One entry per destination, in order: the source as an address value (its port
        the kernel's ephemeral choice), or None.

    Raises:
        SocketError.Timeout: the context was cancelled or its deadline passed.
        SocketError.ProcessFdQuotaExceeded / SystemFdQuotaExceeded / SystemResources:
            no socket could be made for a probe.
    """
    check = None if ctx is None else ctx.check
    held: list[Any] = []
    # The probes are a function of their own, not a try nested in this one: CPython 3.11
    # skips an enclosing finally when an exception is raised at a nested ``try:`` line (a
    # trace function's), and this finally must close every probe socket whatever happens.
    try:
        return _Probes(destinations, check, netns, held).learn(destinations)
    finally:
        cells.close_all(held)


def in_rfc6724_order(
    destinations: Sequence[IpAddress],
    *,
    ctx: Context | None = None,
    netns: policy_netns.Maker | None = None,
) -> list[IpAddress]:
    """``destinations`` sorted by RFC 6724 (`janus_net._values.address_order`), each source learned here; the
    context checked while sorting too.

    One address, or none, needs no sorting and no probe. Arguments and errors as `learn`.
    """
    if len(destinations) < 2:
        return list(destinations)
    sources = learn(destinations, ctx=ctx, netns=netns)
    return sort_destinations(destinations, sources, None if ctx is None else ctx.check)


class _Probes:
    """The probe sockets of one `learn`: one for every destination when it can, made on first use.

    Making and closing a socket costs the kernel far more than a connect (about 15 us
    here against 1), so one UDP socket serves every destination, as glibc's getaddrinfo
    does: an IPv6 socket with IPV6_V6ONLY cleared when both families are asked (an IPv4
    destination connected as ``::ffff:a.b.c.d`` takes the IPv4 route and source; the
    source reads back mapped), else a socket of the one family. Before each connect but
    the first, a connect to AF_UNSPEC dissolves the last one: a UDP connect binds the
    source it chose, and the next connect would keep it. Without IPv6 (the socket cannot
    be made) or without the option, IPv4 destinations get a socket of their own.
    """

    __slots__ = ("check", "dual", "fds", "held", "last", "maker")

    def __init__(
        self,
        destinations: Sequence[IpAddress],
        check: Checkpoint | None,
        maker: policy_netns.Maker | None,
        held: list[Any],
    ) -> None:
        self.check = check
        self.maker = maker
        self.held = held
        families = {destination.family for destination in destinations}
        self.dual = len(families) > 1
        self.fds: dict[int, int] = {}  # family -> fd, -1 when this host cannot make it
        self.last = -1  # the fd connected last (dissolved before its next connect)

    def learn(self, destinations: Sequence[IpAddress]) -> list[IpAddress | None]:
        found: list[IpAddress | None] = []
        for destination in destinations:
            if self.check is not None:
                self.check()
            found.append(self.source(destination))
        return found

    def _socket(self, family: int) -> int:
        fd = self.fds.get(family)
        if fd is not None:
            return fd
        desc = cells.new_desc()
        self.held.append(desc)
        try:
            fd = policy_netns.socket(self.maker, desc, family, lib.SOCK_DGRAM, 0, self.check)
        except SocketError.AddressFamilyUnsupported:
            fd = -1  # a kernel without IPv6: no source, no route
        if fd >= 0 and family == AF_INET6 and self.dual:
            try:
                socket_options.setsockopt_int(fd, lib.IPPROTO_IPV6, lib.IPV6_V6ONLY, 0, self.check)
            except SocketError.Timeout:
                raise
            except SocketError:
                self.dual = False  # IPv4 destinations get a socket of their own
        self.fds[family] = fd
        return fd

    def source(self, destination: IpAddress) -> IpAddress | None:
        family = destination.family
        encoded = None
        if family == AF_INET and self.dual:
            fd = self._socket(AF_INET6)
            if fd >= 0 and self.dual:
                encoded = sockaddr.encode_ip6(_MAPPED_PREFIX + destination.ip.packed, destination.port, 0, 0)
            else:
                self.dual = False
                fd = self._socket(AF_INET)
        else:
            fd = self._socket(family)
        if fd < 0:
            return None
        if fd == self.last:
            sockets.connect(fd, _UNSPEC, _UNSPEC_SIZE, destination)  # forget the last destination and its source
        self.last = fd
        if encoded is None:
            encoded = destination.sockaddr
        try:
            sockets.connect(fd, encoded.pointer, encoded.length, destination)
        except _UNUSABLE:
            return None
        except SocketError.Unexpected as exc:
            if exc.errno == errno.EINVAL:
                return None  # an IPv6 link-local destination without its zone: no route to choose
            raise
        storage, length = sockets.getsockname(fd)
        if family == AF_INET and self.dual:
            # Reached through the IPv6 socket: the source reads back as ::ffff:a.b.c.d.
            fields = sockaddr.decode(storage, length)
            return Ip4Address(ipaddress.IPv4Address(fields.packed[12:]), fields.port)
        source = from_sockaddr(storage, length)
        assert isinstance(source, (Ip4Address, Ip6Address))  # a socket of an IP family has an IP name
        return source


AF_INET: int = lib.AF_INET
AF_INET6: int = lib.AF_INET6
# connect(AF_UNSPEC) dissolves a UDP socket's association (and the source it bound).
_UNSPEC = ffi.new("struct sockaddr *")
_UNSPEC.sa_family = lib.AF_UNSPEC
_UNSPEC_SIZE: int = ffi.sizeof("struct sockaddr")
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


__all__ = ["in_rfc6724_order", "learn"]
