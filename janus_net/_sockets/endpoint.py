"""`Endpoint`: one datagram socket's working state, the small handle its parts take.

`janus_net._sockets.datagram.Socket` is the public face; what it does besides one
datagram at a time lives in modules of their own (`batching`, `segments`,
`ancillary`, `coalesced`), and each of them is handed this object, never the Socket:
the cell, the bound address, the memory kept for the next call and the state of GRO
receives. Its methods are the pieces every receive path shares: one datagram into a
buffer (``receive_from``), the wait after a would-block (``wait_receive``), and the
errors of a call woken by ``close()`` or by a shutdown.
"""

from __future__ import annotations

from janus_net._kernel import cell_io, loop
from janus_net._policy import waiting
from janus_net._shim import lib
from janus_net._sockets.buffers import IP4_KEY_OK, SOCKADDR_IN_SIZE, STORAGE_SIZE, UNNAMED_UNIX, Scratch
from janus_net._sockets.owner import closed_error
from janus_net._values.errors import SocketError
from janus_net._values.reported import DECODED_SOURCES, from_sockaddr_cached

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._policy.context import Context
    from janus_net._values.addresses import Address


_RECEIVE, _RECVFROM = cell_io.RECVFROM_CALL
_RECEIVE_RX = cell_io.RECEIVE_RX
_MSG_DONTWAIT = lib.MSG_DONTWAIT
_retry = loop.retry
_after_failure = loop.after_failure


class Endpoint:
    """What the parts of one datagram socket share (one per Socket, made with it).

    Attributes:
        desc: the socket's descriptor cell (`janus_net._kernel.cells`).
        local: the bound address.
        gro: the state of plain receives under GRO (`janus_net._sockets.coalesced`):
            None (off: the hot path), a ``Held``, or a mark not yet resolved.
        ip4_keys: an AF_INET socket hears only IPv4 peers, whose sources are keyed by an int.
        scratches: at most one idle `Scratch`, reused by the next receive (``list.pop``
            and ``append`` are atomic, so two threads never share one).
        send_batches, receive_batches: at most one idle batch each (`janus_net._sockets.batching`),
            made by the first call that needs one.
    """

    __slots__ = ("desc", "gro", "ip4_keys", "local", "receive_batches", "scratches", "send_batches")

    def __init__(self, desc: Any, local: Address, gro: object) -> None:
        self.desc = desc
        self.local = local
        self.gro = gro
        self.ip4_keys = IP4_KEY_OK and local.family == lib.AF_INET
        self.scratches: list[Scratch] = []
        self.send_batches: Any = None
        self.receive_batches: Any = None

    def closed_error(self, syscall: str) -> SocketError:
        """What a call woken by another thread's ``close()`` raises (`janus_net._sockets.owner.closed_error`)."""
        return closed_error(syscall, self.local)

    def hung_up(self) -> int:
        """Some holder of the description shut it down: no datagram will come again."""
        raise SocketError.SocketUnconnected(
            None, "the socket was shut down; no datagram can arrive", syscall="receive", address=str(self.local)
        )

    def receive_from(
        self, buf: Any, size: int, ctx: Context | None, scratch: Scratch, nonblocking: bool = False
    ) -> tuple[int, Address]:
        """One recvfrom into ``buf``: (byte count, source); with ``nonblocking``, (-1, local) when none is queued."""
        length = scratch.length
        length[0] = STORAGE_SIZE
        args = (self.desc, buf, size, _MSG_DONTWAIT, scratch.sa, length)
        if ctx is None:
            got = _retry(_RECEIVE, _RECVFROM, args, None, None, True)
            if got < 0 and not nonblocking:
                got = self.wait_receive(args, None, True)
        else:
            got = self.wait_receive(args, ctx, False)
        if got < 0:
            return got, self.local  # nonblocking and nothing queued
        named = length[0]
        if self.ip4_keys and named == SOCKADDR_IN_SIZE:
            key = scratch.words[0]  # type: ignore[index]  # ip4_keys implies words
            return got, DECODED_SOURCES.get(key) or from_sockaddr_cached(scratch.storage, named, key)
        return got, source(scratch, named)

    def receive_rx(self, scratch: Scratch, size: int, ctx: Context | None, failed: bool) -> int:
        """One datagram into ``scratch`` by `jn_desc_receive` (``Socket.receive``): its byte count.

        ``failed``: the caller's inline attempt with these arguments has just failed
        (errno is its errno): the loop goes on from there, never making it twice.
        Otherwise the attempt is made here, through `retry` (the fault seam's path).
        ``size`` must fit the scratch's buffer (`Scratch.buffer`).
        """
        args = (self.desc, scratch.rx, size)
        if ctx is not None:
            return self.wait_receive(args, ctx, False, _RECEIVE_RX)
        if failed:
            got = _after_failure(_RECEIVE, _RECEIVE_RX, args, None, None, True)
        else:
            got = _retry(_RECEIVE, _RECEIVE_RX, args, None, None, True)
        if got < 0:
            got = self.wait_receive(args, None, True, _RECEIVE_RX)
        return got

    def rx_source(self, scratch: Scratch) -> Address:
        """The source `jn_desc_receive` wrote into ``scratch``: from the cache by its key, else decoded."""
        rx = scratch.rx
        key = rx.key
        if key:
            return DECODED_SOURCES.get(key) or from_sockaddr_cached(scratch.storage, SOCKADDR_IN_SIZE, key)
        return source(scratch, rx.len)

    def wait_receive(self, args: tuple[Any, ...], ctx: Context | None, tried: bool, fn: Any = _RECVFROM) -> int:
        """``fn`` (recvfrom, or `jn_desc_receive`) with ``args`` after a would-block: poll, then try again.

        The wait is `janus_net._policy.waiting`'s. recvfrom's source length is reset
        before each attempt; `jn_desc_receive` resets its own.
        """
        check = None if ctx is None else ctx.check
        if fn is _RECVFROM:
            length = args[5]

            def attempt() -> int:
                length[0] = STORAGE_SIZE
                return _retry(_RECEIVE, _RECVFROM, args, check, None, True)

        else:

            def attempt() -> int:
                return _retry(_RECEIVE, fn, args, check, None, True)

        return waiting.wait_for(
            self.desc, waiting.POLLIN, ctx, attempt, lambda: self.closed_error("receive"), self.hung_up, tried
        )


def source(scratch: Scratch, named: int) -> Address:
    """The sender's address, from the sockaddr recvfrom wrote into ``scratch`` (``named`` bytes)."""
    if named == 0:
        # An unbound AF_UNIX sender: recvfrom reports no address at all, not even a family.
        return UNNAMED_UNIX
    return from_sockaddr_cached(scratch.storage, named)


__all__ = ["Endpoint", "source"]
