"""Unix-domain address values: `UnixAddress`, a file system path or (Linux) an abstract name.

`unix_bytes` is the one rule of what fits in a ``sun_path``: the parser checks text
with it and the value checks itself with it before encoding, so a `UnixAddress`
built directly (or reported by the kernel) never writes past its sockaddr_un.
"""

from __future__ import annotations

import os

from janus_net import platform
from janus_net._shim import lib
from janus_net._values import sockaddr
from janus_net._values.errors import SocketError
from janus_net._values.value_base import AF_UNIX, AddressValue, invalid, other_family, set_slot

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import ClassVar


class UnixAddress(AddressValue):
    """A unix-domain socket address: a file system path, or (Linux) an abstract name.

    ``UnixAddress("/run/app.sock")`` prints ``unix:/run/app.sock``;
    ``UnixAddress("name", abstract=True)`` prints ``unix:@name``. A peer that never
    bound (the usual client) has the empty path and prints ``unix:``; that form is
    what the kernel reports, not something that can be bound, so it does not parse.
    """

    __slots__ = ("_abstract", "_path")
    family = lib.AF_UNIX
    port: ClassVar[None] = None
    _path: str
    _abstract: bool

    def __init__(self, path: str, abstract: bool = False) -> None:
        if not isinstance(path, str):
            raise SocketError.InvalidAddress(None, f"unix path must be str, not {type(path).__name__}")
        set_slot(self, "_path", path if type(path) is str else str.__str__(path))
        set_slot(self, "_abstract", bool(abstract))
        self._no_caches()

    @property
    def path(self) -> str:
        """The path (or, for an abstract address, the name without the ``@``)."""
        return self._path

    @property
    def abstract(self) -> bool:
        return self._abstract

    @property
    def unnamed(self) -> bool:
        """True for an unbound peer (the kernel gave no path)."""
        return not self._path and not self._abstract

    def _encode(self) -> sockaddr.Encoded:
        return sockaddr.encode_unix(unix_bytes(self._path, self._abstract, str(self)), self._abstract)

    def _format(self) -> str:
        return f"unix:@{self._path}" if self._abstract else f"unix:{self._path}"

    def destination(self, family: int = 0) -> sockaddr.Encoded:
        """The encoded sockaddr to send a datagram to (see `Ip4Address.destination`).

        Raises:
            SocketError.InvalidAddress: the address cannot be encoded (an unnamed peer,
                a NUL byte, too long).
            SocketError.AddressFamilyUnsupported: ``family`` (an IP socket) cannot send
                to a unix address.
        """
        if family and family != AF_UNIX:
            raise other_family(self, family)
        encoded = self._encoded
        return encoded if encoded is not None else self.sockaddr

    def __reduce__(self) -> tuple[object, ...]:
        return (UnixAddress, (self._path, self._abstract))

    def __eq__(self, other: object) -> bool:
        if type(other) is not UnixAddress:
            return NotImplemented
        return self._path == other._path and self._abstract == other._abstract

    def __hash__(self) -> int:
        return hash((UnixAddress, self._path, self._abstract))


def unix_bytes(name: str, abstract: bool, text: str) -> bytes:
    """The bytes of a path or abstract name that fits in sun_path, else InvalidAddress.

    Both the parser and the encoder go through here: a `UnixAddress` built directly
    (or reported by the kernel) must never write past the end of its sockaddr_un.
    """
    kind = "abstract name" if abstract else "unix socket path"
    if abstract and not platform.HAS_ABSTRACT_UNIX:
        raise invalid(text, "abstract unix socket names are not supported on this platform")
    if not name:
        raise invalid(text, f"empty {kind}")
    try:
        encoded = os.fsencode(name)
    except UnicodeError:
        # A lone surrogate that is not a surrogateescape'd byte has no file system bytes.
        raise invalid(text, f"{kind} cannot be encoded to file system bytes") from None
    if b"\0" in encoded:
        raise invalid(text, f"{kind} contains a NUL byte")
    limit = platform.SUN_PATH_SIZE - 1
    if len(encoded) > limit:
        raise invalid(text, f"{kind} is {len(encoded)} bytes; this platform allows at most {limit}")
    return encoded
