"""The hosts file (hosts(5)): which addresses a name has there, read as glibc's ``files`` source reads it.

Each line is an address, its canonical name and any aliases, separated by blanks;
``#`` starts a comment. Names match without regard to ASCII case, and a name's
addresses are gathered from every line that names it (glibc's ``multi on``, its
default), in file order; the canonical name is the first name of the first line that
matched. A line whose address is not an IP literal in the strict forms of DESIGN §4
is skipped, as glibc skips it. The file is read again at each lookup (no cache, as
glibc), through the kernel door; a missing or unreadable file has no names.

A name found only with addresses of the other family is not an answer: the lookup
goes on to DNS, as glibc's ``hosts: files dns`` does (files says NOTFOUND).
"""

from __future__ import annotations

import ipaddress

from janus_net._kernel import files
from janus_net._shim import lib
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address, ip6_literal

#: A hosts file larger than this is refused (`SocketError.SystemResources`): ad-blocking
#: lists run to a few MiB, so the bound is generous, yet finite.
MAX_HOSTS_BYTES = 16 * 1024 * 1024


class HostsEntry:
    """What the hosts file says about one name: its canonical name and addresses of each family."""

    __slots__ = ("canonical_name", "ip4", "ip6")

    def __init__(self, canonical_name: str) -> None:
        self.canonical_name = canonical_name
        self.ip4: list[Ip4Address] = []
        self.ip6: list[Ip6Address] = []


def read(path: str) -> bytes:
    """The hosts file's bytes; empty when it is missing or cannot be read (glibc goes on to DNS then)."""
    try:
        return files.read_small_file(path, MAX_HOSTS_BYTES)
    except (SocketError.FileNotFound, SocketError.AccessDenied, SocketError.NotDir):
        return b""


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
    wanted = name.lower().encode("ascii")
    folded = content.lower()
    if wanted not in folded:
        return None  # the usual case, answered without splitting a line
    entry: HostsEntry | None = None
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


def lookup(path: str, name: str, family: int | None, port: int) -> tuple[str, tuple[Ip4Address | Ip6Address, ...]]:
    """The hosts file's answer for ``name``: (canonical name, addresses of the families asked).

    ``family`` None asks for both: the IPv4 addresses, then the IPv6 ones, each in
    file order (the RFC 6724 sort orders them afterwards). An empty tuple: no line
    names ``name`` with an address of the families asked (then DNS is asked).
    """
    entry = find(read(path), name, port)
    if entry is None:
        return "", ()
    found: list[Ip4Address | Ip6Address] = []
    if family != lib.AF_INET6:
        found.extend(entry.ip4)
    if family != lib.AF_INET:
        found.extend(entry.ip6)
    return entry.canonical_name, tuple(found)


__all__ = ["MAX_HOSTS_BYTES", "HostsEntry", "find", "lookup", "read"]
