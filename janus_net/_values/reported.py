"""Address values for the sockaddrs the kernel writes (getsockname, accept, recvfrom).

`from_sockaddr` decodes one; `reported` answers getsockname after a bind from what was
asked when only the port differs; `from_sockaddr_cached` decodes a repeated peer once.
"""

from __future__ import annotations

import ipaddress
import os

from janus_net._shim import ffi, lib
from janus_net._values import sockaddr
from janus_net._values.addresses import Address
from janus_net._values.caches import bounded_put
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


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
