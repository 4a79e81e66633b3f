"""RFC 6724 destination address order: which of a name's addresses to try first (DESIGN §17).

`sort_destinations` sorts the addresses a name resolved to, given for each the source
address the kernel would send from (learned by a UDP connect, `janus_net._profiles.
source_address`), or None when no route leads there. It applies the rules of RFC 6724
§6 that need nothing but the two addresses and their sources, in order, as one sort key
per destination (`_key`):

1. avoid unusable destinations (no source);
2. prefer matching scope (the destination's scope is its source's);
5. prefer matching label (policy table);
6. prefer higher precedence (policy table);
8. prefer smaller scope;
9. use the longest matching prefix with the source -- for IPv6 only, as Go does
   (golang/go#13283, #18518): for IPv4 it defeats DNS round robin (RFC 6724 §2.2 caps
   the prefix at the source's subnet; here at 64 bits, the interface-id boundary);
10. otherwise keep the order the answer had (the sort is stable).

Rules 3 (deprecated sources), 4 (home addresses) and 7 (native transport) need the
kernel's per-address state, which a UDP connect does not tell: they are left out, and
so is ``/etc/gai.conf`` (the default policy table of RFC 6724 §2.1 is the only one).
An IPv4 address takes part as its IPv4-mapped form (RFC 6724 §3.1), with the scopes of
§3.2: 127/8 and 169.254/16 are link-local, everything else global.

Pure: no I/O, the same answer for the same input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Protocol, TypeVar

    class _HasIp(Protocol):
        @property
        def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address: ...

    _D = TypeVar("_D", bound=_HasIp)


# RFC 6724 §3.1 scope values (multicast scopes come straight from the address bits).
SCOPE_LINK_LOCAL = 0x2
SCOPE_SITE_LOCAL = 0x5
SCOPE_GLOBAL = 0xE

# RFC 6724 §2.1, the default policy table: (prefix, precedence, label), longest prefix first
# so that the first match is the longest.
_POLICY_TABLE: tuple[tuple[ipaddress.IPv6Network, int, int], ...] = tuple(
    sorted(
        (
            (ipaddress.IPv6Network(prefix), precedence, label)
            for prefix, precedence, label in (
                ("::1/128", 50, 0),
                ("::/0", 40, 1),
                ("::ffff:0:0/96", 35, 4),
                ("2002::/16", 30, 2),
                ("2001::/32", 5, 5),
                ("fc00::/7", 3, 13),
                ("::/96", 1, 3),
                ("fec0::/10", 1, 11),
                ("3ffe::/16", 1, 12),
            )
        ),
        key=lambda row: -row[0].prefixlen,
    )
)

_LINK_LOCAL_4 = (ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv4Network("169.254.0.0/16"))
_SITE_LOCAL_6 = ipaddress.IPv6Network("fec0::/10")
_LINK_LOCAL_6 = ipaddress.IPv6Network("fe80::/10")
_MAPPED_BASE = int(ipaddress.IPv6Address("::ffff:0:0"))
# Rule 9 compares prefixes up to the interface identifier (RFC 6724 §2.2: "up to the
# length of A's prefix"); without the interface's prefix length, 64 bits as Go does.
_PREFIX_BITS_6 = 64


def _ip_of(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    ip = getattr(value, "ip", None)
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    raise TypeError(f"an IP address value or ipaddress address was expected, not {type(value).__name__}")


def as_mapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The address as RFC 6724 looks it up: IPv6 as is, IPv4 as ``::ffff:a.b.c.d``; a zone dropped."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(_MAPPED_BASE | int(ip))
    return ipaddress.IPv6Address(int(ip))  # int(): no scope id, so `in network` works


def policy(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
    """(precedence, label) of ``ip`` in the default policy table of RFC 6724 §2.1."""
    mapped = as_mapped(ip)
    for network, precedence, label in _POLICY_TABLE:
        if mapped in network:
            return precedence, label
    raise AssertionError("::/0 matches every address")  # pragma: no cover - the table ends with ::/0


def scope(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The scope of ``ip`` per RFC 6724 §3.1-3.2 (2 link-local, 5 site-local, 14 global; multicast its own)."""
    mapped = as_mapped(ip)
    ip4 = mapped.ipv4_mapped
    if ip4 is not None:
        return SCOPE_LINK_LOCAL if any(ip4 in network for network in _LINK_LOCAL_4) else SCOPE_GLOBAL
    if mapped.is_loopback or mapped in _LINK_LOCAL_6:
        return SCOPE_LINK_LOCAL
    if mapped.is_multicast:
        return int(mapped.packed[1]) & 0xF
    if mapped in _SITE_LOCAL_6:
        return SCOPE_SITE_LOCAL
    return SCOPE_GLOBAL


def common_prefix_length(source: ipaddress.IPv6Address, destination: ipaddress.IPv6Address) -> int:
    """Leading bits ``source`` and ``destination`` share, counted up to 64 (RFC 6724 §2.2, rule 9)."""
    shift = 128 - _PREFIX_BITS_6
    differ = (int(source) >> shift) ^ (int(destination) >> shift)
    return _PREFIX_BITS_6 - differ.bit_length()


class _Attrs:
    """What the rules read of one destination and its source, computed once per destination."""

    __slots__ = ("ip", "ip6_only", "label", "precedence", "scope", "source", "source_label", "source_scope")

    def __init__(self, destination: object, source: object | None) -> None:
        self.ip, self.ip6_only, self.scope, self.precedence, self.label = _classify(_ip_of(destination))
        self.source: ipaddress.IPv6Address | None = None
        self.source_scope = 0
        self.source_label = -1
        if source is not None:
            self.source, _, self.source_scope, _, self.source_label = _classify(_ip_of(source))


#: What `_classify` found per address: a pure function's results (the policy table is
#: fixed), bounded. The same few addresses come back at every lookup of a name; the
#: table walk and the `ipaddress` network tests are most of a sort's time.
_CLASSES: dict[object, tuple[ipaddress.IPv6Address, bool, int, int, int]] = {}
_MAX_CLASSES = 1024


def _classify(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[ipaddress.IPv6Address, bool, int, int, int]:
    """(the address as RFC 6724 sees it, whether it is IPv6 proper, scope, precedence, label)."""
    found = _CLASSES.get(ip)
    if found is None:
        mapped = as_mapped(ip)
        precedence, label = policy(mapped)
        found = (mapped, mapped.ipv4_mapped is None, scope(mapped), precedence, label)
        if len(_CLASSES) >= _MAX_CLASSES:
            _CLASSES.clear()
        _CLASSES[ip] = found
    return found


def _key(a: _Attrs) -> tuple[int, int, int, int, int, int]:
    """The rules as one sort key: comparing two keys is comparing the two destinations rule by rule.

    Rule 1: avoid unusable destinations. When neither has a source, the rules that compare
    with the source (2, 5, 9) cannot decide and the others still order them, as glibc does
    (an unreachable 2001:db8::1 before an unreachable 192.0.2.1): their places in the key
    are 0 then. Rule 9 (longest matching prefix, IPv6 only: for IPv4 it breaks DNS round
    robin) is 0 for IPv4 too; only IPv4 destinations share IPv4's precedence (35, the
    mapped prefix), so rule 9 never stands between an IPv4 and an IPv6 destination. A key,
    not a pairwise comparison: the sort runs in C, and the order is total.
    """
    if a.source is None:
        return (1, 0, 0, -a.precedence, a.scope, 0)
    prefix = common_prefix_length(a.source, a.ip) if a.ip6_only else 0
    return (
        0,
        a.scope != a.source_scope,  # rule 2: prefer matching scope
        a.label != a.source_label,  # rule 5: prefer matching label
        -a.precedence,  # rule 6: prefer higher precedence
        a.scope,  # rule 8: prefer smaller scope
        -prefix,  # rule 9
    )


#: `sort_destinations` runs its ``check`` after this many destinations: a hostile answer of
#: thousands of addresses must not hold a cancel for the whole of its ordering.
CHECK_EVERY = 64


def sort_destinations(
    destinations: Sequence[_D], sources: Sequence[object | None], check: Callable[[], None] | None = None
) -> list[_D]:
    """``destinations`` in RFC 6724 order (rules 1, 2, 5, 6, 8, 9 for IPv6, 10), a new list.

    Args:
        destinations: `Ip4Address`/`Ip6Address` values (anything with an ``ip`` that is an
            `ipaddress` address), in the order the answer gave them.
        sources: for each destination, the source address the kernel would use (an
            address value or an `ipaddress` address), or None when it has no route there.
        check: called every `CHECK_EVERY` destinations (a context's checkpoint); what it
            raises ends the sort.

    Returns:
        The same objects, reordered; equal ones keep their order (the sort is stable).

    Raises:
        ValueError: the two sequences differ in length.
        TypeError: an entry is not an IP address.
    """
    if len(destinations) != len(sources):
        raise ValueError(f"{len(destinations)} destinations but {len(sources)} sources")
    keys = []
    for count, (destination, source) in enumerate(zip(destinations, sources, strict=True), 1):
        keys.append(_key(_Attrs(destination, source)))
        if check is not None and count % CHECK_EVERY == 0:
            check()
    # sorted is stable: rule 10 is the sort keeping what compares equal in answer order.
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return [destinations[i] for i in order]


__all__ = ["CHECK_EVERY", "as_mapped", "common_prefix_length", "policy", "scope", "sort_destinations"]
