"""Plain receives on a GRO socket: one datagram per entry, never a coalesced buffer, never a loss.

With UDP_GRO on, the kernel may hand one recvmsg several datagrams of one source,
back to back, with their segment size in a UDP_GRO control message (DESIGN §15).
`Socket.receive_segments` returns that buffer as it is; the plain receives
(``receive``, ``receive_into``, ``receive_many``) of a socket made with
``bind(..., gro=True)`` come here instead: each call receives one coalesced buffer
through `janus_net._sockets.ancillary` (whose control messages `janus_net._kernel.control` reads),
delivers its first datagram, and holds the rest, in order, for the next calls, of
any receive kind. While datagrams are held a receive returns at once, without a
syscall; ``Socket.pending`` counts them; ``to_socket()`` refuses (the stdlib socket
could not deliver them); ``close()`` drops them. A forked child starts with none
(the held datagrams are the parent's: a child that delivered them too would
duplicate them).

A socket janus_net did not make with ``gro=True`` -- adopted by ``fd://``,
``listen_fds``, received by ``receive_sockets`` or ``handoff.take`` -- is asked once,
at its first plain receive, whether UDP_GRO is on (getsockopt). If it is, plain
receives raise `SocketError.SocketModeUnsupported`: its datagrams may come merged,
and ``receive_segments`` is the call that says where they split.
"""

from __future__ import annotations

import collections
import os

from janus_net import platform
from janus_net._kernel import socket_options
from janus_net._shim import ffi, lib
from janus_net._sockets import ancillary
from janus_net._sockets.buffers import size_argument, view_of
from janus_net._values.addresses import Address
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from janus_net._policy.context import Context
    from janus_net._sockets.endpoint import Endpoint

#: Enough for any coalesced buffer (the kernel stops coalescing at 64 KiB) and any UDP datagram.
BUFFER = 65536

#: One held datagram: data, source, destination (pktinfo), timestamp.
Entry = tuple[bytes, Address, "Address | None", "float | None"]

# Bumped in every forked child: a Held from before the fork is seen as empty there.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


class Held:
    """The datagrams of coalesced buffers received and not yet delivered, in order (one per GRO socket)."""

    __slots__ = ("entries", "generation")

    def __init__(self) -> None:
        self.entries: collections.deque[Entry] = collections.deque()
        self.generation = _generation

    def count(self) -> int:
        """How many are held in this process (none in a forked child)."""
        if self.generation != _generation:
            self.entries.clear()
            self.generation = _generation
        return len(self.entries)

    def take(self) -> Entry | None:
        """The oldest held datagram, or None (deque.popleft: two threads never get the same one)."""
        if not self.count():
            return None
        try:
            return self.entries.popleft()
        except IndexError:  # another thread took the last one
            return None


#: The state of a socket not made with ``gro=True``, until its first plain receive asks the kernel.
UNCHECKED = object()
#: The state of a socket that has UDP_GRO on but was not made by janus_net with ``gro=True``.
FOREIGN = object()


def state(io: Endpoint) -> object:
    """``io.gro`` resolved: None (GRO off), a `Held` (made with ``gro=True``), or `FOREIGN`."""
    found = io.gro
    if found is UNCHECKED:
        found = FOREIGN if _gro_on(io) else None
        io.gro = found
    return found


def _gro_on(io: Endpoint) -> bool:
    if not platform.HAS_UDP_GRO or not isinstance(io.local, Ip4Address | Ip6Address):
        return False
    desc = io.desc
    if desc.closing:
        return False  # closed: the plain receive reports it as it reports any call on a closed socket
    try:
        return socket_options.getsockopt_int(desc, lib.JN_SOL_UDP, lib.JN_UDP_GRO) != 0
    except SocketError.OptionUnsupported:
        return False  # not a UDP socket (raw IP), or a kernel that cannot say: no UDP_GRO either way


def _refuse(io: Endpoint) -> SocketError:
    return SocketError.SocketModeUnsupported(
        None,
        "this socket has UDP_GRO on but was not made with bind(..., gro=True): its datagrams may come "
        "coalesced; use receive_segments()",
        syscall="receive",
        address=str(io.local),
    )


def _next(io: Endpoint, held: Held, ctx: Context | None) -> Entry:
    """The next datagram: a held one at once, else the first of a new coalesced buffer (the rest held)."""
    entry = held.take()
    if entry is not None:
        return entry
    data, source, segment, destination, timestamp = ancillary.receive(io, BUFFER, ctx)
    if segment is None or segment >= len(data):
        return data, source, destination, timestamp
    view = memoryview(data)
    held.count()  # a fork since the last call: start from empty
    held.entries.extend(
        (bytes(view[start : start + segment]), source, destination, timestamp)
        for start in range(segment, len(data), segment)
    )
    return data[:segment], source, destination, timestamp


def _held_of(io: Endpoint) -> Held:
    found = state(io)
    if found is FOREIGN:
        raise _refuse(io)
    assert isinstance(found, Held)
    return found


def receive(io: Endpoint, size: int, ctx: Context | None) -> tuple[bytes, Address] | None:
    """`Socket.receive` on a socket whose ``gro`` is not None; None when GRO turns out off (receive plainly)."""
    size = size_argument("size", size)
    if state(io) is None:
        return None
    data, source, _, _ = _next(io, _held_of(io), ctx)
    return data[:size], source


def receive_into(io: Endpoint, buffer: object, ctx: Context | None) -> tuple[int, Address] | None:
    """`Socket.receive_into` on a socket whose ``gro`` is not None; None when GRO turns out off."""
    view = view_of(buffer, "buffer", writable=True)
    if state(io) is None:
        return None
    data, source, _, _ = _next(io, _held_of(io), ctx)
    n = min(len(view), len(data))
    ffi.memmove(view, data, n)
    return n, source


def receive_many(io: Endpoint, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]] | None:
    """`Socket.receive_many` on a socket whose ``gro`` is not None: the held datagrams first.

    Waits only when none is held; then takes the datagrams of one coalesced buffer,
    up to ``count`` (the rest stay held). None when GRO turns out off (receive plainly).
    """
    count = size_argument("count", count, 1)
    size = size_argument("size", size)
    if state(io) is None:
        return None
    held = _held_of(io)
    data, source, _, _ = _next(io, held, ctx)
    out = [(data[:size], source)]
    while len(out) < count:
        entry = held.take()
        if entry is None:
            break
        out.append((entry[0][:size], entry[1]))
    return out


def take_held(io: Endpoint) -> Entry | None:
    """A held datagram for ``receive_segments`` / ``receive_message``, so none is skipped; or None."""
    found = io.gro
    return found.take() if isinstance(found, Held) else None


def pending(io: Endpoint) -> int:
    """`Socket.pending`."""
    found = io.gro
    return found.count() if isinstance(found, Held) else 0


def check_handover(io: Endpoint) -> None:
    """`to_socket` refuses while datagrams are held: the stdlib socket could not deliver them."""
    held = pending(io)
    if held:
        raise SocketError.SocketModeUnsupported(
            None,
            f"{held} datagrams of a coalesced buffer are held; receive them before to_socket() (Socket.pending)",
            syscall="to_socket",
            address=str(io.local),
        )


__all__ = [
    "BUFFER", "FOREIGN", "UNCHECKED", "Held", "check_handover", "pending", "receive", "receive_into", "receive_many",
    "state", "take_held",
]  # fmt: skip
