"""The hosts file (hosts(5)): which addresses a name has there, read as glibc's ``files`` source reads it.

Each line is an address, its canonical name and any aliases, separated by blanks;
``#`` starts a comment. Names match without regard to ASCII case, and a name's
addresses are gathered from every line that names it (glibc's ``multi on``, its
default), in file order; the canonical name is the first name of the first line that
matched. A line whose address is not an IP literal in the strict forms of DESIGN §4
is skipped, as glibc skips it. The file is stat'ed at each lookup and read again, through
the kernel door, whenever its version changed (`janus_net._profiles.file_versions`:
its content, never an answer, is kept); a missing or unreadable file has no names: a
path that is missing, forbidden, a symlink loop, or no regular file (a directory, a FIFO,
a device), as glibc's ``files`` source then says UNAVAIL and DNS is asked. A file over
`MAX_HOSTS_BYTES` is refused (`SocketError.SystemResources`).

A name found only with addresses of the other family is not an answer: the lookup
goes on to DNS, as glibc's ``hosts: files dns`` does (files says NOTFOUND).
"""

from __future__ import annotations

import errno
import ipaddress

from janus_net._profiles import file_versions
from janus_net._shim import lib
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address, ip6_literal

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from janus_net._kernel.loop import Checkpoint

#: A hosts file larger than this is refused (`SocketError.SystemResources`): ad-blocking
#: lists run to a few MiB, so the bound is generous, yet finite.
MAX_HOSTS_BYTES = 16 * 1024 * 1024
#: The file is scanned in pieces of about this size (whole lines), the context checked between
#: two: a list of several MiB takes tens of milliseconds to scan, and a cancel must not wait for
#: all of it (DESIGN §17). A piece is folded to lower case only when it is scanned, so a file
#: too large to keep (`file_versions.MAX_KEPT_BYTES`) is not folded whole at every lookup either.
PIECE_BYTES = 256 * 1024


class HostsEntry:
    """What the hosts file says about one name: its canonical name and addresses of each family."""

    __slots__ = ("canonical_name", "ip4", "ip6")

    def __init__(self, canonical_name: str) -> None:
        self.canonical_name = canonical_name
        self.ip4: list[Ip4Address] = []
        self.ip6: list[Ip6Address] = []


def read(path: str) -> bytes:
    """The hosts file's bytes; empty when it is missing or cannot be read (glibc goes on to DNS then)."""
    return _read_folded(path)[0]


def _folded(content: bytes) -> tuple[bytes, bytes | None]:
    # A file that will be kept is folded once for all the lookups of its version; a larger one,
    # read at every lookup, piece by piece as it is scanned.
    return content, (content.lower() if len(content) <= file_versions.MAX_KEPT_BYTES else None)


def _read_folded(path: str) -> tuple[bytes, bytes | None]:
    """(content, content in lower case or None for a large file): read again only when the file's version
    changed (`file_versions`)."""
    try:
        found: tuple[bytes, bytes | None] = file_versions.read_kept(path, MAX_HOSTS_BYTES, None, _folded)
    except (SocketError.FileNotFound, SocketError.AccessDenied, SocketError.NotDir, SocketError.SymLinkLoop):
        return b"", b""
    except SocketError.SystemResources as exc:
        if exc.errno != errno.EINVAL:
            raise  # too large (EFBIG), or the kernel out of memory: refused, typed
        return b"", b""  # not a regular file (a directory, a FIFO, a device): nothing to read there
    return found


def _address(text: bytes, port: int) -> Ip4Address | Ip6Address | None:
    try:
        word = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    if ":" in word:
        try:
            ip, zone = ip6_literal(word)
        except SocketError:
            return None
        return Ip6Address(ip, port, scope_id=zone or 0)
    try:
        return Ip4Address(ipaddress.IPv4Address(word), port)
    except ValueError:
        return None


def find(content: bytes, name: str, port: int) -> HostsEntry | None:
    """The entry for ``name`` (ASCII, no trailing dot) in hosts file ``content``; None if no line names it."""
    return _find(content, content.lower(), name, port)


def _find(
    content: bytes, folded: bytes | None, name: str, port: int, check: Checkpoint | None = None
) -> HostsEntry | None:
    wanted = name.lower().encode("ascii")
    if folded is not None and wanted not in folded:
        return None  # the usual case, answered without splitting a line
    entry: HostsEntry | None = None
    size = len(content)
    start = 0
    while start < size:
        end = content.find(b"\n", min(start + PIECE_BYTES, size))
        end = size if end < 0 else end + 1
        raw = content[start:end]  # the whole content itself when it is one piece (no copy)
        line = raw.lower() if folded is None else folded[start:end]
        if wanted in line:
            entry = _scan(raw, line, wanted, port, entry)
        start = end
        if check is not None and start < size:
            check()  # SocketError.Timeout when the context ended meanwhile
    return entry


def _scan(content: bytes, folded: bytes, wanted: bytes, port: int, entry: HostsEntry | None) -> HostsEntry | None:
    """The lines of one piece that name ``wanted``, added to ``entry`` (made at the first one)."""
    for raw, line in zip(content.split(b"\n"), folded.split(b"\n"), strict=True):
        if wanted not in line:
            continue
        hash_at = line.find(b"#")
        fields = (line if hash_at < 0 else line[:hash_at]).split()
        if len(fields) < 2 or wanted not in fields[1:]:
            continue
        address = _address(fields[0], port)
        if address is None:
            continue
        if entry is None:
            original = (raw if hash_at < 0 else raw[:hash_at]).split()
            entry = HostsEntry(original[1].decode("ascii", "replace"))
        if isinstance(address, Ip4Address):
            entry.ip4.append(address)
        else:
            entry.ip6.append(address)
    return entry


def lookup(
    path: str, name: str, family: int | None, port: int, check: Checkpoint | None = None
) -> tuple[str, tuple[Ip4Address | Ip6Address, ...]]:
    """The hosts file's answer for ``name``: (canonical name, addresses of the families asked).

    ``family`` None asks for both: the IPv4 addresses, then the IPv6 ones, each in
    file order (the RFC 6724 sort orders them afterwards). An empty tuple: no line
    names ``name`` with an address of the families asked (then DNS is asked).
    ``check``: a context's checkpoint, run between the pieces of a large file's scan.
    """
    content, folded = _read_folded(path)
    entry = _find(content, folded, name, port, check)
    if entry is None:
        return "", ()
    found: list[Ip4Address | Ip6Address] = []
    if family != lib.AF_INET6:
        found.extend(entry.ip4)
    if family != lib.AF_INET:
        found.extend(entry.ip6)
    return entry.canonical_name, tuple(found)


__all__ = ["MAX_HOSTS_BYTES", "HostsEntry", "find", "lookup", "read"]
