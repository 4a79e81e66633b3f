"""Owned C socket addresses: encode an address into its struct, decode any struct back.

The structs are allocated by cffi with the layout the C compiler chose (BSD's
``sin_len``, the size of ``sun_path``), so this module never computes an offset
by hand. An `Encoded` owns its memory; keep it alive as long as the pointer is used.
"""

from __future__ import annotations

from janus_net import platform
from janus_net._shim import ffi, lib

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


_SOCKADDR_P = ffi.typeof("struct sockaddr *")


class Encoded:
    """An encoded sockaddr: the owning cffi struct, a ``struct sockaddr *`` view, its length.

    Made once per address and kept by it; nothing changes it after it is made.
    """

    __slots__ = ("length", "pointer", "struct")

    def __init__(self, struct: Any, pointer: Any, length: int) -> None:
        self.struct = struct
        self.pointer = pointer
        self.length = length

    def __repr__(self) -> str:
        return f"Encoded(family={int(self.pointer.sa_family)}, length={self.length})"


def _owned(struct: Any, length: int) -> Encoded:
    return Encoded(struct, ffi.cast(_SOCKADDR_P, struct), length)


def encode_ip4(packed: bytes, port: int) -> Encoded:
    """A ``struct sockaddr_in`` for a 4-byte address and a host-order port."""
    sa = ffi.new("struct sockaddr_in *")
    sa.sin_family = lib.AF_INET
    sa.sin_port = lib.htons(port)
    ffi.memmove(ffi.addressof(sa.sin_addr), packed, 4)
    return _owned(sa, ffi.sizeof("struct sockaddr_in"))


def encode_ip6(packed: bytes, port: int, flowinfo: int, scope_id: int) -> Encoded:
    """A ``struct sockaddr_in6``; flowinfo goes in network order, scope_id in host order."""
    sa = ffi.new("struct sockaddr_in6 *")
    sa.sin6_family = lib.AF_INET6
    sa.sin6_port = lib.htons(port)
    sa.sin6_flowinfo = lib.htonl(flowinfo)
    ffi.memmove(sa.sin6_addr.s6_addr, packed, 16)
    sa.sin6_scope_id = scope_id
    return _owned(sa, ffi.sizeof("struct sockaddr_in6"))


def encode_unix(path: bytes, abstract: bool) -> Encoded:
    """A ``struct sockaddr_un``.

    A path is NUL-terminated and its length counts the NUL. An abstract name starts
    with a NUL byte and has no trailing NUL: every byte up to the length is the name.
    """
    if len(path) > platform.SUN_PATH_SIZE - 1:
        # ffi.memmove does not bound-check: this guard is all that stands between a
        # long path and a heap overflow. Callers validate first (InvalidAddress).
        raise ValueError(f"{len(path)} bytes do not fit in sun_path ({platform.SUN_PATH_SIZE} bytes)")
    sa = ffi.new("struct sockaddr_un *")
    sa.sun_family = lib.AF_UNIX
    if abstract:
        ffi.memmove(ffi.addressof(sa.sun_path, 1), path, len(path))
        length = platform.SUN_PATH_OFFSET + 1 + len(path)
    else:
        ffi.memmove(sa.sun_path, path, len(path))
        length = platform.SUN_PATH_OFFSET + len(path) + 1
    return _owned(sa, length)


_SOCKADDR_IN_P = ffi.typeof("struct sockaddr_in *")
_SOCKADDR_IN6_P = ffi.typeof("struct sockaddr_in6 *")
_SOCKADDR_IN_SIZE = ffi.sizeof("struct sockaddr_in")
_SOCKADDR_IN6_SIZE = ffi.sizeof("struct sockaddr_in6")


def port_if_same_host(storage: Any, length: int, encoded: Encoded) -> int | None:
    """The port in a sockaddr the kernel wrote, if all its other fields equal ``encoded``'s.

    For an IP sockaddr ``encoded`` (ours): the same family and address bytes, and for
    IPv6 the same flow label and scope id. None when anything but the port differs
    (or the sockaddr is not IP): the caller then decodes it in full. This lets a
    caller that knows what it asked for (getsockname after bind) skip a decode.
    """
    family = ffi.cast(_SOCKADDR_P, storage).sa_family
    if family != encoded.pointer.sa_family:
        return None
    if family == lib.AF_INET and length >= _SOCKADDR_IN_SIZE:
        sa = ffi.cast(_SOCKADDR_IN_P, storage)
        if sa.sin_addr.s_addr != encoded.struct.sin_addr.s_addr:
            return None
        return int(lib.ntohs(sa.sin_port))
    if family == lib.AF_INET6 and length >= _SOCKADDR_IN6_SIZE:
        sa6 = ffi.cast(_SOCKADDR_IN6_P, storage)
        want = encoded.struct
        if (
            sa6.sin6_scope_id != want.sin6_scope_id
            or sa6.sin6_flowinfo != want.sin6_flowinfo
            or ffi.buffer(sa6.sin6_addr.s6_addr, 16)[:] != ffi.buffer(want.sin6_addr.s6_addr, 16)[:]
        ):
            return None
        return int(lib.ntohs(sa6.sin6_port))
    return None


class Decoded:
    """The fields of a decoded sockaddr, before they become an address object.

    ``packed`` holds the IP address bytes, or the unix path / abstract name bytes.
    """

    __slots__ = ("abstract", "family", "flowinfo", "packed", "port", "scope_id")

    def __init__(self, family: int, packed: bytes, port: int, flowinfo: int, scope_id: int, abstract: bool) -> None:
        self.family = family
        self.packed = packed
        self.port = port
        self.flowinfo = flowinfo
        self.scope_id = scope_id
        self.abstract = abstract

    def __eq__(self, other: object) -> bool:
        if type(other) is not Decoded:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def _fields(self) -> tuple[int, bytes, int, int, int, bool]:
        return (self.family, self.packed, self.port, self.flowinfo, self.scope_id, self.abstract)

    def __repr__(self) -> str:
        family, packed, port, flowinfo, scope_id, abstract = self._fields()
        return f"Decoded({family=}, {packed=}, {port=}, {flowinfo=}, {scope_id=}, {abstract=})"


def sockaddr_size() -> int:
    """Bytes to reserve for any sockaddr the kernel may write."""
    return _SOCKADDR_STORAGE_SIZE


_SOCKADDR_STORAGE_SIZE = int(ffi.sizeof("struct sockaddr_storage"))


def decode(storage: Any, length: int) -> Decoded:
    """Decode what the kernel wrote into a sockaddr buffer of ``length`` bytes.

    Raises ValueError for a family janus_net has no address type for; the caller
    turns that into an error that names it (never a fake IPv4 default).
    """
    family = ffi.cast(_SOCKADDR_P, storage).sa_family
    if family == lib.AF_INET:
        sa = ffi.cast("struct sockaddr_in *", storage)
        packed = bytes(ffi.buffer(ffi.addressof(sa.sin_addr), 4))
        return Decoded(family, packed, lib.ntohs(sa.sin_port), 0, 0, False)
    if family == lib.AF_INET6:
        sa6 = ffi.cast("struct sockaddr_in6 *", storage)
        packed = bytes(ffi.buffer(sa6.sin6_addr.s6_addr, 16))
        return Decoded(family, packed, lib.ntohs(sa6.sin6_port), lib.ntohl(sa6.sin6_flowinfo), sa6.sin6_scope_id, False)
    if family == lib.AF_UNIX:
        sun = ffi.cast("struct sockaddr_un *", storage)
        size = max(0, min(length, ffi.sizeof("struct sockaddr_un")) - platform.SUN_PATH_OFFSET)
        raw = bytes(ffi.buffer(sun.sun_path, size))
        if platform.HAS_ABSTRACT_UNIX and raw[:1] == b"\0":
            return Decoded(family, raw[1:], 0, 0, 0, True)
        # A pathname (or an unnamed socket, size 0): the kernel may or may not count a NUL.
        return Decoded(family, raw.split(b"\0", 1)[0], 0, 0, 0, False)
    raise ValueError(f"address family {family} has no janus_net address type")
