"""DNS messages (RFC 1035): one query encoded, one reply read with every length and pointer checked.

The reader is the part of the resolver that strangers write to, so it trusts nothing:

* every length, count and offset is checked against the datagram before it is used;
  counts that could not fit in the data (each record takes at least 11 bytes) are
  refused before any record is read;
* a compression pointer must point backwards, before the pointer itself, and a name
  may follow at most `MAX_POINTERS` of them, so no loop and no forward trick can
  make the reader spin; a name longer than 255 bytes on the wire is refused;
* the reply must answer the question asked: the id, the response bit, the opcode,
  one question with the same name (case-insensitively), type and class;
* a CNAME chain is followed for at most `MAX_CHAIN` links, and the addresses counted
  are those of the type asked, owned by the chain's last name, of class IN, with
  the exact data length of their type; a CNAME loop or a longer chain is an answer
  with no address (the name has none that can be reached), as glibc reads it.

`parse_reply` never raises: anything malformed is None, and the caller ignores it as
if it had never arrived.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from collections.abc import Callable

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

#: The UDP payload advertised with EDNS0 (the DNS flag day 2020 value: no fragments).
EDNS0_PAYLOAD = 1232
#: The longest CNAME chain followed.
MAX_CHAIN = 16
#: The most compression pointers one name may follow.
MAX_POINTERS = 32
#: The longest name on the wire (RFC 1035 §3.1).
MAX_WIRE_NAME = 255
#: The largest message (a TCP length prefix is 16 bits).
MAX_MESSAGE = 65535

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_QUESTION_FIXED = struct.Struct("!HH")
_ADDRESS_LENGTH = {TYPE_A: 4, TYPE_AAAA: 16}

_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_OPCODE_MASK = 0x7800


class Malformed(Exception):
    """Inside the reader only: the reply breaks a rule (never leaves `parse_reply`)."""


def encode_name(name: str) -> bytes:
    """``name`` (checked ASCII, no trailing dot) as wire labels ending in the root label."""
    out = bytearray()
    if name:
        for label in name.encode("ascii").split(b"."):
            out.append(len(label))
            out += label
    out.append(0)
    return bytes(out)


def encode_query(qid: int, name: str, qtype: int, edns0: bool) -> bytes:
    """One recursive query (RD set) for ``name`` and ``qtype``, class IN, with an EDNS0 OPT record if asked.

    ``name`` is a checked host name (`janus_net._values.host_names`), without a trailing dot.
    """
    header = _HEADER.pack(qid, _FLAG_RD, 1, 0, 0, 1 if edns0 else 0)
    question = encode_name(name) + _QUESTION_FIXED.pack(qtype, CLASS_IN)
    if not edns0:
        return header + question
    # OPT (RFC 6891): root owner, the payload size in the class, extended rcode/version/flags 0.
    return header + question + b"\x00" + _RR_FIXED.pack(TYPE_OPT, EDNS0_PAYLOAD, 0, 0)


class Reply:
    """What a reply that answers the question says.

    Attributes:
        rcode: the response code (extended by EDNS0's upper bits when an OPT record has them).
        truncated: the TC bit: ask again over TCP.
        authoritative: the AA bit.
        addresses: the packed addresses (4 or 16 bytes) of the type asked, owned by the
            last name of the CNAME chain, in the order of the answer section.
        chain: the names the CNAME chain went through after the name asked (lower case).
        canonical_name: the chain's last name (the name asked when there is no chain),
            as text without a trailing dot.
    """

    __slots__ = ("addresses", "authoritative", "canonical_name", "chain", "rcode", "truncated")

    def __init__(
        self,
        rcode: int,
        truncated: bool,
        authoritative: bool,
        addresses: tuple[bytes, ...],
        chain: tuple[str, ...],
        canonical_name: str,
    ) -> None:
        self.rcode = rcode
        self.truncated = truncated
        self.authoritative = authoritative
        self.addresses = addresses
        self.chain = chain
        self.canonical_name = canonical_name

    def __repr__(self) -> str:
        return (
            f"Reply(rcode={self.rcode}, truncated={self.truncated}, addresses={len(self.addresses)}, "
            f"canonical_name={self.canonical_name!r})"
        )


def _read_name(data: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """The labels (lower case) of the name at ``offset`` and the offset just after it where it is written."""
    labels: list[bytes] = []
    size = len(data)
    end = -1  # where the name ends in place (after the first pointer, or the root label)
    jumps = 0
    wire = 0
    position = offset
    while True:
        if position >= size:
            raise Malformed("a name runs past the end")
        length = data[position]
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= size:
                raise Malformed("a pointer runs past the end")
            target = ((length & 0x3F) << 8) | data[position + 1]
            if target >= position:
                raise Malformed("a compression pointer that does not point backwards")
            jumps += 1
            if jumps > MAX_POINTERS:
                raise Malformed("too many compression pointers")
            if end < 0:
                end = position + 2
            position = target
            continue
        if kind:
            raise Malformed("an extended or reserved label type")
        if length == 0:
            wire += 1
            if wire > MAX_WIRE_NAME:
                raise Malformed("a name longer than 255 bytes")
            return tuple(labels), (position + 1 if end < 0 else end)
        if position + 1 + length > size:
            raise Malformed("a label runs past the end")
        wire += 1 + length
        if wire > MAX_WIRE_NAME:
            raise Malformed("a name longer than 255 bytes")
        labels.append(data[position + 1 : position + 1 + length].lower())
        position += 1 + length


def _text(labels: tuple[bytes, ...]) -> str:
    """A name as text: plain labels as they are, any other byte as ``\\DDD`` (zone-file style)."""
    parts = []
    for label in labels:
        if label.isascii() and all(c == 45 or c == 95 or 48 <= c <= 57 or 97 <= c <= 122 for c in label):
            parts.append(label.decode("ascii"))
        else:
            parts.append(
                "".join(chr(c) if (c in (45, 95) or 48 <= c <= 57 or 97 <= c <= 122) else f"\\{c:03d}" for c in label)
            )
    return ".".join(parts)


def _labels(name: str) -> tuple[bytes, ...]:
    return tuple(name.lower().encode("ascii").split(b".")) if name else ()


#: `parse_reply` runs its ``check`` after this many records: a 64 KiB answer over TCP holds
#: about 4000, tens of milliseconds of Python, and a cancel must not wait for all of them.
CHECK_EVERY = 128


def parse_reply(data: bytes, qid: int, name: str, qtype: int, check: Callable[[], None] | None = None) -> Reply | None:
    """Read ``data`` as the reply to query ``qid`` for ``name``/``qtype``; None unless it is a well-formed answer to it.

    Never raises for any ``data``: a malformed message, a reply to another question,
    or a query (QR clear) are all None. ``check`` (a context's checkpoint) is called
    every `CHECK_EVERY` records; what it raises ends the parse, and is the only
    exception that leaves it.
    """
    try:
        return _parse(bytes(data), qid, _labels(name), qtype, name.lower(), check)
    except (Malformed, IndexError, struct.error, ValueError, UnicodeError):
        return None


def _question_end(data: bytes, qid: int, asked: tuple[bytes, ...], qtype: int) -> int:
    """Where the question ends, if ``data`` is a response to query ``qid`` carrying that very question; else -1."""
    size = len(data)
    if size < _HEADER.size or size > MAX_MESSAGE:
        return -1
    rid, flags, qdcount = struct.unpack_from("!HHH", data, 0)
    if rid != qid or not flags & _FLAG_QR or flags & _OPCODE_MASK:
        return -1
    if qdcount != 1:
        return -1  # a reply must carry the question it answers
    qname, offset = _read_name(data, _HEADER.size)
    if offset + _QUESTION_FIXED.size > size:
        return -1
    rtype, rclass = _QUESTION_FIXED.unpack_from(data, offset)
    if qname != asked or rtype != qtype or rclass != CLASS_IN:
        return -1
    return offset + _QUESTION_FIXED.size


def answers_question(data: bytes, qid: int, name: str, qtype: int) -> bool:
    """Whether ``data`` is a response to query ``qid`` with its question (whatever follows); never raises.

    What tells a reply to this question that cannot be read (malformed) from one to
    another question, or a stray message, which are simply not replies to it.
    """
    try:
        return _question_end(bytes(data), qid, _labels(name), qtype) >= 0
    except (Malformed, IndexError, struct.error, ValueError, UnicodeError):
        return False


def _parse(
    data: bytes, qid: int, asked: tuple[bytes, ...], qtype: int, asked_text: str, check: Callable[[], None] | None
) -> Reply | None:
    size = len(data)
    offset = _question_end(data, qid, asked, qtype)
    if offset < 0:
        return None
    _rid, flags, _qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data, 0)
    rcode = flags & 0x000F
    truncated = bool(flags & _FLAG_TC)
    records = ancount + nscount + arcount
    if records * (1 + _RR_FIXED.size) > size - offset:
        if truncated:  # a truncated reply may stop anywhere: what it says beyond the header is not used
            return Reply(rcode, True, bool(flags & _FLAG_AA), (), (), asked_text)
        return None
    cnames: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}  # owner -> target (the first one an owner has)
    found: list[tuple[tuple[bytes, ...], bytes]] = []  # (owner, packed address) of the type asked
    for index in range(records):
        if check is not None and index % CHECK_EVERY == CHECK_EVERY - 1:
            check()
        owner, offset = _read_name(data, offset)
        if offset + _RR_FIXED.size > size:
            raise Malformed("a record's fixed part runs past the end")
        rr_type, rr_class, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += _RR_FIXED.size
        rdata_end = offset + rdlength
        if rdata_end > size:
            raise Malformed("a record's data runs past the end")
        if index >= ancount:
            if index >= ancount + nscount and rr_type == TYPE_OPT:
                if owner:
                    raise Malformed("an OPT record not owned by the root")
                rcode |= (ttl >> 24) << 4  # EDNS0's extended rcode
            offset = rdata_end
            continue
        if rr_class == CLASS_IN:
            if rr_type == TYPE_CNAME:
                target, after = _read_name(data, offset)
                if after != rdata_end:
                    raise Malformed("a CNAME's name does not fill its data")
                cnames.setdefault(owner, target)
            elif rr_type == qtype:
                if rdlength != _ADDRESS_LENGTH.get(qtype, -1):
                    raise Malformed("an address record of the wrong length")
                found.append((owner, data[offset:rdata_end]))
        offset = rdata_end
    current = asked
    chain: list[str] = []
    seen = {current}
    while True:
        link = cnames.get(current)
        if link is None:
            break
        if link in seen or len(chain) >= MAX_CHAIN:
            # A CNAME loop, or a chain longer than we follow: a well-formed answer that leads to
            # no address (glibc: EAI_NODATA at once), not a malformed reply to wait out.
            canonical = _text(current) if chain else asked_text
            return Reply(rcode, truncated, bool(flags & _FLAG_AA), (), tuple(chain), canonical)
        seen.add(link)
        chain.append(_text(link))
        current = link
    addresses = tuple(packed for owner, packed in found if owner == current)
    canonical = _text(current) if chain else asked_text  # the name asked is plain text already
    return Reply(rcode, truncated, bool(flags & _FLAG_AA), addresses, tuple(chain), canonical)


def reply_id(data: bytes) -> int:
    """The id of a message (its first two bytes), or -1 when it is too short to have one."""
    if len(data) < 2:
        return -1
    return (data[0] << 8) | data[1]


__all__ = [
    "CLASS_IN",
    "EDNS0_PAYLOAD",
    "MAX_CHAIN",
    "RCODE_FORMERR",
    "RCODE_NOERROR",
    "RCODE_NOTIMP",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "RCODE_SERVFAIL",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_CNAME",
    "Reply",
    "answers_question",
    "encode_query",
    "parse_reply",
    "reply_id",
]
