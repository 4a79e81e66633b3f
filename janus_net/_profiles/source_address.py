"""The source address the kernel would use for each destination: RFC 6724's Source(D), learned, not guessed.

`learn` asks the kernel, for each destination, the way Go and glibc do: a UDP socket of
the destination's family is connected to it -- a UDP connect sends no packet, it only
picks the route and the source address -- and getsockname reads the source back. A
destination the kernel has no route to (ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL for an
IPv6 host with no IPv6 address, EAFNOSUPPORT for a kernel without IPv6, EINVAL for a
link-local address without its zone...) has no source: None, which RFC 6724 rule 1
sorts last (`janus_net._values.address_order`).

Every probe socket is a janus_net socket in its own cell, closed before the next one is
made, on every path; a `Context`'s cancel or deadline ends the learning with
`SocketError.Timeout` (the checkpoint of each syscall's retry loop). With a
`janus_net._policy.netns.Maker` the probes are made inside its namespace, where the
connections they stand for will be made.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from janus_net._kernel import cells, sockets
from janus_net._policy import netns as policy_netns
from janus_net._shim import lib
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
    return [_probe(destination, check, netns) for destination in destinations]


def in_rfc6724_order(
    destinations: Sequence[IpAddress],
    *,
    ctx: Context | None = None,
    netns: policy_netns.Maker | None = None,
) -> list[IpAddress]:
    """``destinations`` sorted by RFC 6724 (`janus_net._values.address_order`), each source learned here.

    One address, or none, needs no sorting and no probe. Arguments and errors as `learn`.
    """
    if len(destinations) < 2:
        return list(destinations)
    return sort_destinations(destinations, learn(destinations, ctx=ctx, netns=netns))


def _probe(destination: IpAddress, checkpoint: Checkpoint | None, maker: policy_netns.Maker | None) -> IpAddress | None:
    if checkpoint is not None:
        checkpoint()
    desc = cells.new_desc()
    # The probe's steps are a function of their own, not a try nested in this one: CPython
    # 3.11 skips an enclosing finally when an exception is raised at a nested ``try:``
    # line (a trace function's), and this finally must close the probe whatever happens.
    try:
        return _source(desc, destination, checkpoint, maker)
    finally:
        cells.close_desc(desc)


def _source(
    desc: Any, destination: IpAddress, checkpoint: Checkpoint | None, maker: policy_netns.Maker | None
) -> IpAddress | None:
    try:
        fd = policy_netns.socket(maker, desc, destination.family, lib.SOCK_DGRAM, 0, checkpoint)
    except SocketError.AddressFamilyUnsupported:
        return None  # a kernel without IPv6: no source, no route
    encoded = destination.sockaddr
    try:
        sockets.connect(fd, encoded.pointer, encoded.length, str(destination))
    except _UNUSABLE:
        return None
    except SocketError.Unexpected as exc:
        if exc.errno == errno.EINVAL:
            return None  # an IPv6 link-local destination without its zone: no route to choose
        raise
    storage, length = sockets.getsockname(fd)
    source = from_sockaddr(storage, length)
    assert isinstance(source, (Ip4Address, Ip6Address))  # a socket of an IP family has an IP name
    return source


__all__ = ["in_rfc6724_order", "learn"]
