"""`Stream`: an accepted, connected stream (from `Server.accept`, `connect`, or adopted): read and write."""

from __future__ import annotations

from janus_net._kernel import cell_io
from janus_net._policy import waiting
from janus_net._shim import ffi, lib
from janus_net._sockets.buffers import SIZE_MAX, STORAGE_P, Buffer, size_argument, uncleared, view_of
from janus_net._sockets.owner import Owner, later_call_error
from janus_net._values.addresses import Address
from janus_net._values.errors import ErrnoBug, SocketError
from janus_net._values.reported import from_sockaddr

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._policy.context import Context


_MSG_DONTWAIT = lib.MSG_DONTWAIT
# Every send is a per-call non-blocking attempt that never raises SIGPIPE.
_SEND_FLAGS = cell_io.SEND_FLAGS


class PendingPeer:
    """An accepted peer's sockaddr, as accept wrote it, until someone asks for the address.

    Many servers never look at the peer address, and a peer's port is new for every
    connection, so no cache would help: decoding it (an `ipaddress` object and an
    address value) is left to the first use. Errors and ``repr`` print it through
    ``__str__``, which decodes it the same way.
    """

    __slots__ = ("length", "raw")

    def __init__(self, raw: bytes, length: int) -> None:
        self.raw = raw  # the bytes accept wrote (at most a sockaddr_storage)
        self.length = length  # the length accept reported

    def decode(self) -> Address:
        # A zeroed storage holding exactly what the kernel wrote: what from_sockaddr
        # would have seen had it decoded at once.
        storage = ffi.new(STORAGE_P)
        ffi.memmove(storage, self.raw, len(self.raw))
        return from_sockaddr(storage, self.length)

    def __str__(self) -> str:
        return str(self.decode())


class Stream(Owner):
    """An accepted, connected stream (from `Server.accept`). ``.address`` is the peer's address.

    ``read``/``read_into`` and ``write``/``write_all`` are blocking; ``read`` takes a `Context`
    for a deadline or a cancel, and ``close()`` from another thread wakes any of them.
    """

    __slots__ = ()

    @property
    def address(self) -> Address:
        """The peer's address (decoded on first read: many servers never look at it)."""
        address = self._address
        if isinstance(address, PendingPeer):
            # Two threads may both decode; they store equal values.
            decoded = address.decode()
            self._address = decoded
            return decoded
        known: Address = address
        return known

    def read(self, n: int, ctx: Context | None = None) -> bytes:
        """Read up to ``n`` bytes; ``b""`` at end of stream (the peer closed its side).

        Args:
            n: the most bytes to return, an int >= 0.
            ctx: a `Context` whose cancel or deadline ends the wait; None waits until
                data, the end of the stream or ``close()``.

        Raises:
            ValueError, TypeError: ``n`` negative or not an int.
            SocketError.SocketUnconnected: ``close()`` from another thread ended the wait.
            SocketError.Timeout: ``ctx`` was cancelled or its deadline passed.
            SocketError.ConnectionResetByPeer: the peer reset the connection.
            SocketError.ConnectionTimedOut: the connection timed out (keepalive, retransmissions).
            SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded: no
                descriptor left for the wake fd a wait needs (as in `Socket.receive`).
            SocketError.NetworkSubsystemDown, SocketError.SystemResources: the network or memory.
        """
        if type(n) is not int or not 0 <= n <= SIZE_MAX:
            n = size_argument("n", n)
        buf = uncleared("char[]", n)
        got = self._receive(buf, n, ctx)
        return ffi.unpack(buf, got)

    def read_into(self, buffer: Buffer, ctx: Context | None = None) -> int:
        """Read into a writable buffer; returns the byte count (0 at end of stream).

        Args:
            buffer: a writable bytes-like object (``bytearray``, ``memoryview``...);
                at most ``len(buffer)`` bytes are read.
            ctx: as for `read`.

        Raises:
            TypeError: ``buffer`` is not a writable buffer.
            The members `read` raises.
        """
        view = view_of(buffer, "buffer", writable=True)
        return self._receive(view, len(view), ctx)

    def _receive(self, buf: Any, size: int, ctx: Context | None) -> int:
        desc = self._desc
        if ctx is None:
            # First attempt inline; the wait loop only after EAGAIN.
            got = cell_io.recv_on(desc, buf, size, _MSG_DONTWAIT)
            if got >= 0:
                return got
        check = None if ctx is None else ctx.check
        return waiting.wait_for(
            desc,
            waiting.POLLIN,
            ctx,
            lambda: cell_io.recv_on(desc, buf, size, _MSG_DONTWAIT, check),
            lambda: self._closed_error("receive"),
            tried=ctx is None,
        )

    def write(self, data: Buffer) -> int:
        """Send some of ``data``; returns how many bytes went (a short write is possible).

        Waits (with poll, woken by ``close()``) while the send buffer is full. Never
        raises SIGPIPE.

        Args:
            data: a bytes-like object.

        Raises:
            TypeError: ``data`` is not a bytes-like object (a ``str`` included).
            SocketError.SocketUnconnected: the peer is gone (EPIPE), or ``close()`` from
                another thread ended the wait.
            SocketError.ConnectionResetByPeer: the peer reset the connection.
            SocketError.NetworkSubsystemDown, SocketError.NetworkUnreachable,
                SocketError.HostUnreachable, SocketError.SystemResources: the network or memory.
        """
        view = view_of(data)
        desc = self._desc
        size = len(view)
        address = self._address
        sent = cell_io.send_on(desc, view, size, _SEND_FLAGS, address)
        if sent >= 0:
            return sent
        return waiting.wait_for(
            desc,
            waiting.POLLOUT,
            None,
            lambda: cell_io.send_on(desc, view, size, _SEND_FLAGS, address),
            lambda: self._closed_error("send"),
            tried=True,
        )

    def write_all(self, data: Buffer) -> None:
        """Send all of ``data``, looping over short writes.

        A ``close()`` from another thread between two writes ends it with
        SocketUnconnected too (how much went before is unknown to the caller).

        Args:
            data: a bytes-like object.

        Raises:
            The errors of `write`.
        """
        view = memoryview(data).cast("B")
        first = True
        while view:
            try:
                went = self.write(view)
            except (SocketError, ErrnoBug) as e:
                if first:
                    raise
                raise later_call_error(self._desc, e, "send", self._address) from None
            first = False
            view = view[went:]

    def __enter__(self) -> Stream:
        return self


__all__ = ["PendingPeer", "Stream"]
