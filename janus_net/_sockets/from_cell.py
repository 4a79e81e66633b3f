"""The one place a descriptor cell becomes a `Server`, `Socket` or `Stream` of a kind named by text.

The adoption door, `connect`, `receive_sockets` and `handoff.take` build socket
objects only through `wrap`, so a change to those classes' constructors is adapted
here, once; `kind_of` is the way back, from an object to the name of its kind.
"""

from __future__ import annotations

from janus_net._sockets.datagram import Socket
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Literal

    from janus_net._values.addresses import Address

#: What a descriptor is: a listening stream, a bound (datagram) socket, a connected stream.
if TYPE_CHECKING:
    Kind = Literal["server", "socket", "stream"]
else:
    Kind = str

KINDS: tuple[Kind, ...] = ("server", "socket", "stream")


def wrap(desc: Any, kind: Kind, address: Address) -> Server | Socket | Stream:
    """Own the descriptor cell ``desc`` (`janus_net._kernel.cells`) as the object of ``kind``.

    ``address`` is the local one (the peer's for a stream).

    No unix socket file duty is passed: a wrapped descriptor never removes a file on
    close, since this process did not create it (a hand-over gives the duty with
    `janus_net._sockets.owner.give_unix_file`).
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


__all__ = ["KINDS", "Kind", "kind_of", "wrap"]
