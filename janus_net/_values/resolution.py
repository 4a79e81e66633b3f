"""`Resolution`: what `resolve` found for a name -- its addresses, canonical name and source.

A small immutable value, like the address values it holds: slots set once,
equality and hashing on all three fields, pickling (``__reduce__``) and a repr that
shows what it holds.
"""

from __future__ import annotations

from janus_net._values.ip import Ip4Address, Ip6Address

#: Where an answer came from (DESIGN §17), in the order the sources are asked.
SOURCES = ("literal", "localhost", "files", "dns")


class Resolution:
    """The answer of `janus_net.resolve`.

    Attributes:
        addresses: the addresses found, each an `Ip4Address` or `Ip6Address` carrying
            the port asked for, in the order to try them (RFC 6724 destination order).
        canonical_name: the name the addresses belong to: the end of a DNS CNAME chain,
            the first name of a hosts file line, the name asked for localhost, or the
            address text for a literal.
        source: ``"literal"``, ``"localhost"``, ``"files"`` or ``"dns"``.
    """

    __slots__ = ("addresses", "canonical_name", "source")

    addresses: tuple[Ip4Address | Ip6Address, ...]
    canonical_name: str
    source: str

    def __init__(self, addresses: tuple[Ip4Address | Ip6Address, ...], canonical_name: str, source: str) -> None:
        addresses = tuple(addresses)
        for address in addresses:
            if type(address) not in (Ip4Address, Ip6Address):
                raise TypeError(f"a Resolution holds Ip4Address/Ip6Address values, not {address!r}")
        if not isinstance(canonical_name, str):
            raise TypeError(f"canonical_name is a str, not {canonical_name!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        object.__setattr__(self, "addresses", addresses)
        object.__setattr__(self, "canonical_name", str.__str__(canonical_name))
        object.__setattr__(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Resolution is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Resolution is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Resolution:
            return NotImplemented
        return (self.addresses, self.canonical_name, self.source) == (
            other.addresses,
            other.canonical_name,
            other.source,
        )

    def __hash__(self) -> int:
        return hash((self.addresses, self.canonical_name, self.source))

    def __reduce__(self) -> tuple[object, ...]:
        return (Resolution, (self.addresses, self.canonical_name, self.source))

    def __copy__(self) -> Resolution:
        return self  # immutable

    def __deepcopy__(self, memo: object) -> Resolution:
        return self

    def __repr__(self) -> str:
        shown = ", ".join(repr(str(a)) for a in self.addresses)
        return (
            f"Resolution(({shown}{',' if len(self.addresses) == 1 else ''}), {self.canonical_name!r}, {self.source!r})"
        )


__all__ = ["SOURCES", "Resolution"]
