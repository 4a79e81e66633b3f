"""A socket transfer's format, shared by the sending side and the receiving side (SCM_RIGHTS).

The channel is a connected unix stream (a `Stream` from `jn.connect("unix:...")`
or from a unix `Server.accept()`). Each transfer moves a mapping ``name -> socket``
as one or more *chunks*; a chunk is one sendmsg carrying at most ``SCM_MAX_FD``
descriptors, with a payload that announces what they are::

    header  "!4sBBHII": magic b"JNfd", version 1, flags (bit 0: last chunk),
            descriptors in this chunk, descriptors in the whole transfer,
            length of the entries that follow
    entries one per descriptor, in order: kind (1 Server, 2 Socket, 3 Stream),
            name length (1..255), the name (printable ASCII without ':', as
            systemd's FDNAMES)

This module holds what both sides agree on: the channel they accept
(`check_channel`), the names (`check_name`), the sockets a sender may send
(`sockets_to_send`), how a chunk is written (`encode_chunk`) and how one is read
back with bounds (`check_header`, `parse_entries`): anything a peer could get wrong
is `SocketError.ProtocolFailure`. The sending side is `janus_net._process.sending`,
the receiving side `janus_net._process.receiving`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from janus_net._shim import lib
from janus_net._sockets.datagram import Socket
from janus_net._sockets.from_cell import KINDS, Kind, kind_of
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream
from janus_net._values.errors import SocketError
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

AnySocket = Server | Socket | Stream

MAGIC = b"JNfd"
VERSION = 1
LAST = 0x01
HEADER = struct.Struct("!4sBBHII")
#: The longest name (systemd's FDNAME_MAX).
NAME_MAX = 255
#: The most descriptors one transfer may announce: far above any real use, low enough
#: that a hostile header cannot make the receiver allocate without bound.
TRANSFER_MAX = 1 << 16
#: Descriptors per chunk: the kernel's limit per SCM_RIGHTS message.
CHUNK_MAX: int = lib.JN_SCM_MAX_FD

_KIND_CODES: dict[Kind, int] = {kind: code for code, kind in enumerate(KINDS, start=1)}


def check_name(name: object) -> str:
    """A descriptor name as systemd accepts it: 1..255 printable ASCII characters, no ':'.

    Raises TypeError for a non-str and ValueError for anything else, before any syscall.
    The same rule holds for LISTEN_FDNAMES (``janus-net run``) and FDSTORE names, so a
    name that travels here can travel there too.
    """
    if type(name) is not str:
        raise TypeError(f"a socket name must be a str, not {type(name).__name__}")
    if not 1 <= len(name) <= NAME_MAX:
        raise ValueError(f"a socket name must be 1 to {NAME_MAX} characters long, not {len(name)}: {name!r}")
    if not all(" " <= c <= "~" and c != ":" for c in name):
        raise ValueError(f"a socket name must be printable ASCII without ':': {name!r}")
    return name


def sockets_to_send(sockets: Mapping[str, AnySocket]) -> list[tuple[str, Kind, Any]]:
    """(name, kind, descriptor cell) for each socket, checked before anything is sent."""
    if not isinstance(sockets, Mapping):
        raise TypeError(f"sockets must be a mapping of name -> socket, not {type(sockets).__name__}")
    items = []
    for name, sock in sockets.items():
        kind = kind_of(sock)
        if sock.fileno() < 0:
            raise ValueError(f"socket {check_name(name)!r} is closed")
        items.append((check_name(name), kind, sock._desc))
    if len(items) > TRANSFER_MAX:
        raise ValueError(f"at most {TRANSFER_MAX} sockets per transfer, not {len(items)}")
    return items


def check_channel(channel: object) -> Stream:
    """``channel`` if it is a janus_net `Stream` on a unix socket: descriptors travel only there."""
    if not isinstance(channel, Stream):
        raise TypeError(f"the channel must be a connected unix janus_net Stream, not {type(channel).__name__}")
    if not isinstance(channel.address, UnixAddress):
        raise SocketError.AddressFamilyUnsupported(
            None, "descriptors travel only over a unix socket", address=str(channel.address)
        )
    return channel


def encode_chunk(chunk: list[tuple[str, Kind, Any]], last: bool, total: int) -> bytes:
    """The payload of one chunk: its header, then one entry per descriptor it carries."""
    entries = b"".join(
        struct.pack("!BB", _KIND_CODES[kind], len(name)) + name.encode("ascii") for name, kind, _ in chunk
    )
    return HEADER.pack(MAGIC, VERSION, LAST if last else 0, len(chunk), total, len(entries)) + entries


def protocol(why: str) -> SocketError:
    """The error for anything a peer got wrong in a transfer."""
    return SocketError.ProtocolFailure(None, f"receive_sockets: {why}", syscall="recvmsg")


def check_header(
    header: tuple[bytes, int, int, int, int, int], total: int | None, done: int, admit_total: Callable[[int], None]
) -> tuple[int, int]:
    """(descriptors in this chunk, in the whole transfer) from a chunk header, each checked.

    ``total`` is what the first chunk announced (None while reading the first), ``done``
    how many entries earlier chunks brought. ``admit_total`` is asked once, about the
    first chunk's announced total, after the format's own bound: the receiver checks it
    against what the process may hold (RLIMIT_NOFILE) before any descriptor can arrive.
    """
    magic, version, flags, count, announced, length = header
    if magic != MAGIC:
        raise protocol(f"not a janus_net socket transfer (magic {magic!r})")
    if version != VERSION:
        raise protocol(f"unknown protocol version {version}")
    if flags & ~LAST:
        raise protocol(f"unknown flags {flags:#x}")
    if total is None:
        if announced > TRANSFER_MAX:
            raise protocol(f"{announced} sockets announced, more than {TRANSFER_MAX}")
        admit_total(announced)
        total = announced
    elif announced != total:
        raise protocol("the announced total changed between chunks")
    if count > CHUNK_MAX or done + count > total or (count == 0 and not flags & LAST):
        raise protocol(f"a chunk of {count} descriptors does not fit a transfer of {total}")
    if flags & LAST and done + count != total:
        raise protocol(f"the last chunk ends the transfer at {done + count} of {total} sockets")
    if not 3 * count <= length <= (2 + NAME_MAX) * count:
        raise protocol(f"{length} bytes of entries cannot describe {count} sockets")
    return count, total


def parse_entries(body: bytes, count: int, names: set[str]) -> list[tuple[str, Kind]]:
    """The ``count`` entries of a chunk's body, each name new to the transfer (``names``, updated)."""
    entries: list[tuple[str, Kind]] = []
    pos = 0
    for _ in range(count):
        if pos + 2 > len(body):
            raise protocol("an entry runs past the announced length")
        code, size = body[pos], body[pos + 1]
        pos += 2
        if not 1 <= code <= len(KINDS):
            raise protocol(f"unknown socket kind {code}")
        raw = body[pos : pos + size]
        pos += size
        if len(raw) != size:
            raise protocol("a name runs past the announced length")
        try:
            name = check_name(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise protocol(f"invalid socket name {raw!r}") from None
        if name in names:
            raise protocol(f"the name {name!r} is sent twice")
        names.add(name)
        entries.append((name, KINDS[code - 1]))
    if pos != len(body):
        raise protocol("bytes left over after the announced entries")
    return entries


__all__ = [
    "CHUNK_MAX",
    "HEADER",
    "LAST",
    "MAGIC",
    "NAME_MAX",
    "TRANSFER_MAX",
    "VERSION",
    "AnySocket",
    "check_channel",
    "check_header",
    "check_name",
    "encode_chunk",
    "parse_entries",
    "protocol",
    "sockets_to_send",
]
