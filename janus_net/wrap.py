"""The one place where the hand-over modules turn a descriptor into a `Server`, `Socket` or `Stream`.

`connect`, `receive_sockets` and `handoff.take` build socket objects only through
`wrap`, so a change to those classes' constructors is adapted here, once.
"""

from __future__ import annotations

from janus_net.address import Address
from janus_net.socket import Server, Socket, Stream

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Literal


if TYPE_CHECKING:
    from janus_net.unixfile import UnixFile

#: What a descriptor is: a listening stream, a bound (datagram) socket, a connected stream.
if TYPE_CHECKING:
    Kind = Literal["server", "socket", "stream"]
else:
    Kind = str

KINDS: tuple[Kind, ...] = ("server", "socket", "stream")


def wrap(desc: Any, kind: Kind, address: Address) -> Server | Socket | Stream:
    """Own the descriptor cell ``desc`` (`janus_net.descriptor`) as the object of ``kind``.

    ``address`` is the local one (the peer's for a stream).

    No unix socket file handle is passed: a wrapped descriptor never removes a file on
    close, since this process did not create it.
    """
    if kind == "server":
        return Server(desc, address)
    if kind == "socket":
        return Socket(desc, address)
    return Stream(desc, address)


def kind_of(sock: object) -> Kind:
    """The kind of a janus_net socket object; TypeError for anything else."""
    if isinstance(sock, Server):
        return "server"
    if isinstance(sock, Socket):
        return "socket"
    if isinstance(sock, Stream):
        return "stream"
    raise TypeError(f"expected a janus_net Server, Socket or Stream, not {type(sock).__name__}")


# The unix socket file a bound socket removes on close (DESIGN §7) is kept by the socket
# layer in ``_Bound._unix_file``; a hand-over moves that duty between processes, and
# these three functions are the only places outside socket.py that touch it.


def unix_file_of(sock: Server | Socket | Stream) -> UnixFile | None:
    """The socket file ``sock`` removes when it closes, if any."""
    return getattr(sock, "_unix_file", None) if isinstance(sock, (Server, Socket)) else None


def give_unix_file(sock: Server | Socket, unix_file: UnixFile | None) -> None:
    """Make ``sock`` the one that removes ``unix_file`` on close (None: it removes nothing)."""
    sock._unix_file = unix_file
