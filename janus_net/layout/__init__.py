"""The sockaddr layout inspection tool: the C structs as this platform's compiler laid them out.

``janus-net layout [ADDRESS ...] [--json]`` (also ``python -m janus_net.layout`` and
``scripts/sockaddr-layout``) prints, in the spirit of pahole, every socket address
struct janus_net uses — its size, alignment, each declared field's offset, size and C
type, and the bytes no declared field covers — and then, for each ADDRESS, the bytes
janus_net would hand to bind(), field by field::

    [::1]:443  struct sockaddr_in6, 28 bytes
      offset  field          bytes                                            value
           2  sin6_port      01 bb                                            = 443

Every number comes from the compiled shim (``ffi.sizeof``, ``ffi.alignof``,
``ffi.offsetof`` and ``ffi.typeof(...).fields``), so the output is what the C compiler
decided on the machine where the shim was built: BSD's ``sin_len``, Darwin's 104-byte
``sun_path``, Linux's 108. Nothing here knows a size or an offset.

The structs are declared to cffi with ``...;``, so members janus_net never touches
(Linux's ``sin_zero``, glibc's ``__ss_padding``) are not declared and cannot be told
apart from compiler padding. Such ranges are reported as holes labelled
``padding/undeclared``: honest about what the tool can and cannot know.

This package is a library (`describe`, `render`, `render_address`, `struct_layouts`,
`encoded_address`); the command line -- argument parsing, printing, the one-line error
contract -- lives in `janus_net._cli`, and ``python -m janus_net.layout`` is the small
``__main__`` module beside this one that hands its arguments to it.
"""

from __future__ import annotations

import ipaddress
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from janus_net._shim import ffi, lib
from janus_net._values.addresses import Address, as_address

#: The structs the tool describes, in the order it prints them.
STRUCTS: tuple[str, ...] = ("sockaddr", "sockaddr_in", "sockaddr_in6", "sockaddr_un", "sockaddr_storage")

#: What the tool calls a range of bytes no declared field covers.
HOLE_LABEL = "padding/undeclared"

# cffi resolves `typedef int... sa_family_t;` to the integer type the compiler chose
# (uint16_t on Linux, uint8_t on the BSDs), so the typedef's name is lost. These are
# the names the native/ declarations use; a name is shown only when it still resolves
# to exactly the field's type, otherwise the resolved type is shown. Sizes and offsets
# never come from here.
_DECLARED_TYPES: dict[str, str] = {
    "sa_family": "sa_family_t",
    "ss_family": "sa_family_t",
    "sin_family": "sa_family_t",
    "sin6_family": "sa_family_t",
    "sun_family": "sa_family_t",
    "sin_port": "in_port_t",
    "sin6_port": "in_port_t",
}

_FAMILY_NAMES: dict[int, str] = {
    lib.AF_UNSPEC: "AF_UNSPEC",
    lib.AF_INET: "AF_INET",
    lib.AF_INET6: "AF_INET6",
    lib.AF_UNIX: "AF_UNIX",
}


@dataclass(frozen=True)
class Field:
    """One declared member: where it starts, how many bytes it spans, its C type."""

    name: str
    offset: int
    size: int
    type: str


@dataclass(frozen=True)
class Hole:
    """A byte range no declared member covers: compiler padding or an undeclared member."""

    offset: int
    size: int


@dataclass(frozen=True)
class StructLayout:
    """A struct as the compiler laid it out: size, alignment, members, holes."""

    name: str
    size: int
    align: int
    fields: tuple[Field, ...]
    holes: tuple[Hole, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "align": self.align,
            "fields": [{"name": f.name, "offset": f.offset, "size": f.size, "type": f.type} for f in self.fields],
            "holes": [{"offset": h.offset, "size": h.size} for h in self.holes],
        }


def _type_name(field_name: str, ctype: Any) -> str:
    declared = _DECLARED_TYPES.get(field_name)
    if declared is not None:
        try:
            if ffi.typeof(declared) == ctype:
                return declared
        except ffi.error:
            pass  # the typedef is not known to this shim: fall back to what the compiler resolved
    return str(ctype.cname)


def _holes(size: int, fields: Iterable[Field]) -> tuple[Hole, ...]:
    """The ranges of [0, size) that no field covers, between fields and at the end."""
    holes: list[Hole] = []
    cursor = 0
    for f in sorted(fields, key=lambda f: f.offset):
        if f.offset > cursor:
            holes.append(Hole(cursor, f.offset - cursor))
        cursor = max(cursor, f.offset + f.size)
    if size > cursor:
        holes.append(Hole(cursor, size - cursor))
    return tuple(holes)


def struct_layout(name: str) -> StructLayout:
    """The layout of ``struct <name>`` as compiled into the shim.

    Args:
        name: a struct name without ``struct``, e.g. ``"sockaddr_in6"``; any struct the
            shim declares works, `STRUCTS` lists the ones the tool prints.

    Returns:
        Its size, alignment, declared fields (offset, size, C type) and holes.

    Raises:
        ffi.error: if the shim declares no such struct.
    """
    ctype = ffi.typeof(f"struct {name}")
    fields = tuple(
        Field(field_name, ffi.offsetof(ctype, field_name), ffi.sizeof(f.type), _type_name(field_name, f.type))
        for field_name, f in ctype.fields
    )
    size = ffi.sizeof(ctype)
    return StructLayout(name, size, ffi.alignof(ctype), fields, _holes(size, fields))


def struct_layouts() -> dict[str, StructLayout]:
    """Every struct of `STRUCTS`, by name."""
    return {name: struct_layout(name) for name in STRUCTS}


# How a field's bytes read as a value. Each decoder gets the owned cffi struct (so
# integers are read the way C reads them: host order, through the compiler's layout)
# and the field's bytes as they sit in the encoding.
_Decoder = Callable[[Any, bytes], str]


def _family(sa: Any, field: str) -> str:
    value = int(getattr(sa, field))
    return f"{_FAMILY_NAMES.get(value, 'unknown family')} ({value})"


def _unix_path(sa: Any, data: bytes) -> str:
    if data[:1] == b"\0":
        return f"abstract name {data[1:]!r} (leading NUL, no trailing NUL)"
    if data.endswith(b"\0"):
        return f"path {data[:-1]!r} + NUL"
    return f"path {data!r}"


_DECODERS: dict[str, _Decoder] = {
    "sin_family": lambda sa, _: _family(sa, "sin_family"),
    "sin6_family": lambda sa, _: _family(sa, "sin6_family"),
    "sun_family": lambda sa, _: _family(sa, "sun_family"),
    "sin_port": lambda sa, _: str(lib.ntohs(sa.sin_port)),
    "sin6_port": lambda sa, _: str(lib.ntohs(sa.sin6_port)),
    "sin_addr": lambda _, data: str(ipaddress.IPv4Address(data)),
    "sin6_addr": lambda _, data: str(ipaddress.IPv6Address(data)),
    "sin6_flowinfo": lambda sa, _: str(lib.ntohl(sa.sin6_flowinfo)),
    "sin6_scope_id": lambda sa, _: str(int(sa.sin6_scope_id)),
    "sun_path": _unix_path,
}


@dataclass(frozen=True)
class Part:
    """A slice of an encoded address: a field (or a hole, ``name`` None) and its bytes."""

    name: str | None
    offset: int
    data: bytes
    value: str


@dataclass(frozen=True)
class EncodedAddress:
    """An address's owned sockaddr: which struct, how many bytes count, and those bytes."""

    text: str
    struct: str
    length: int
    data: bytes
    parts: tuple[Part, ...]

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "struct": self.struct, "length": self.length, "hex": self.data.hex()}


def encoded_address(address: str | Address) -> EncodedAddress:
    """Parse ``address`` (if text) and split its encoded sockaddr into fields and holes.

    Only the first ``length`` bytes are shown: that is what bind() is given, so for a
    unix path the unused tail of ``sun_path`` is not part of the address.

    Args:
        address: address text in any form `parse_address` takes (not ``fd://``), or an
            address value.

    Returns:
        The struct's name, the encoded length and bytes, and one part per field or hole
        with its decoded value (``= 443``).

    Raises:
        SocketError.InvalidAddress, SocketError.InvalidPort: ``address`` does not parse
            (or is ``fd://N``, which has no sockaddr of its own).
    """
    addr = as_address(address)
    encoded = addr.sockaddr
    struct = str(ffi.typeof(encoded.struct).item.cname).removeprefix("struct ")
    layout = struct_layout(struct)
    data = bytes(ffi.buffer(encoded.struct))[: encoded.length]
    pieces: list[tuple[str | None, int, int]] = [(f.name, f.offset, f.size) for f in layout.fields]
    pieces += [(None, h.offset, h.size) for h in layout.holes]
    parts = []
    for name, offset, size in sorted(pieces, key=lambda p: p[1]):
        chunk = data[offset : offset + size]
        if not chunk:
            continue  # beyond the encoded length
        decoder = _DECODERS.get(name) if name is not None else None
        value = decoder(encoded.struct, chunk) if decoder is not None else (HOLE_LABEL if name is None else "")
        parts.append(Part(name, offset, chunk, value))
    return EncodedAddress(str(addr), struct, encoded.length, data, tuple(parts))


def platform_name() -> str:
    """The platform the shim was built for, e.g. ``linux-x86_64``."""
    return sysconfig.get_platform()


def describe(addresses: Iterable[str | Address] = ()) -> dict[str, object]:
    """The ``--json`` object: platform, every struct's layout, each address's encoding.

    Args:
        addresses: addresses whose encoding to include (text or values); all are parsed
            before anything is built, so one bad address leaves no partial result.

    Returns:
        ``{"platform": str, "structs": {NAME: {...}}, "addresses": [{...}]}`` as DESIGN
        in docs/design.md ("The layout tool").

    Raises:
        SocketError.InvalidAddress, SocketError.InvalidPort: an address does not parse.
    """
    return {
        "platform": platform_name(),
        "structs": {name: layout.to_json() for name, layout in struct_layouts().items()},
        "addresses": [encoded_address(a).to_json() for a in addresses],
    }


_BYTES_PER_LINE = 16


def _hex_lines(data: bytes) -> list[str]:
    return [
        " ".join(f"{b:02x}" for b in data[i : i + _BYTES_PER_LINE]) for i in range(0, len(data), _BYTES_PER_LINE)
    ] or [""]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _render_struct(layout: StructLayout) -> list[str]:
    declared = sum(f.size for f in layout.fields)
    unfilled = sum(h.size for h in layout.holes)
    holes = f"{_count(len(layout.holes), 'hole')} ({unfilled} bytes)" if layout.holes else "no holes"
    lines = [
        f"struct {layout.name}: size {layout.size}, align {layout.align}; "
        f"{_count(len(layout.fields), 'declared field')} ({declared} bytes), {holes}"
    ]
    rows: list[tuple[int, int, str, str]] = [(f.offset, f.size, f.type, f.name) for f in layout.fields]
    rows += [(h.offset, h.size, "(hole)", HOLE_LABEL) for h in layout.holes]
    rows.sort()
    width = max(len("type"), *(len(r[2]) for r in rows))
    lines.append(f"  {'offset':>6}  {'size':>4}  {'type':<{width}}  field")
    lines += [f"  {o:>6}  {s:>4}  {t:<{width}}  {n}" for o, s, t, n in rows]
    return lines


def render_address(enc: EncodedAddress) -> list[str]:
    """One encoded address as lines of text: a title line, then offset, field, bytes (hex) and value per part.

    Args:
        enc: what `encoded_address` returned.

    Returns:
        The lines, without newlines; long byte runs continue on extra lines.
    """
    lines = [f"{enc.text}  struct {enc.struct}, {enc.length} bytes"]
    name_width = max(len("field"), *(len(p.name or "(hole)") for p in enc.parts))
    hex_width = max(len("bytes"), *(len(line) for p in enc.parts for line in _hex_lines(p.data)))
    lines.append(f"  {'offset':>6}  {'field':<{name_width}}  {'bytes':<{hex_width}}  value")
    for p in enc.parts:
        first, *rest = _hex_lines(p.data)
        value = f"= {p.value}" if p.name is not None else f"({p.value})"
        lines.append(f"  {p.offset:>6}  {p.name or '(hole)':<{name_width}}  {first:<{hex_width}}  {value}".rstrip())
        lines += [f"  {'':>6}  {'':<{name_width}}  {line}" for line in rest]
    return lines


def render(addresses: Iterable[str | Address] = ()) -> str:
    """The human report: every struct's table, then each address's bytes, field by field.

    Args:
        addresses: addresses whose encoding to show after the structs.

    Returns:
        The report as one string without a final newline (``janus-net layout`` prints it
        with control characters escaped).

    Raises:
        SocketError.InvalidAddress, SocketError.InvalidPort: an address does not parse;
            nothing is rendered then.
    """
    encodings = [encoded_address(a) for a in addresses]  # parse everything before printing anything
    blocks = [_render_struct(layout) for layout in struct_layouts().values()]
    blocks += [render_address(enc) for enc in encodings]
    header = f"sockaddr layouts on {platform_name()} (from the compiled shim)"
    return "\n\n".join([header] + ["\n".join(block) for block in blocks])
