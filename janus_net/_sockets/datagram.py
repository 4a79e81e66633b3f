"""`Socket`: a bound socket, usually datagram; one datagram at a time here, the rest by the modules of their ideas.

The per-packet paths (``send``, ``receive``, ``receive_into``) are written out in this
module, because a frame or an attribute read more costs as much as the kernel's work
per datagram (docs/performance.md). Batches (`janus_net._sockets.batching`),
segmentation offload (`janus_net._sockets.segments`), control data
(`janus_net._sockets.ancillary`) and plain receives under GRO
(`janus_net._sockets.coalesced`) are each given the socket's `Endpoint`.
"""

from __future__ import annotations

from janus_net._kernel import cell_io, loop
from janus_net._policy import waiting
from janus_net._shim import ffi, lib
from janus_net._sockets import ancillary, batching, coalesced, segments
from janus_net._sockets.buffers import Buffer, Scratch, view_of
from janus_net._sockets.endpoint import Endpoint
from janus_net._sockets.owner import Bound
from janus_net._values.addresses import Address, as_address
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.reported import DECODED_SOURCES
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    import socket as _stdsocket
    from collections.abc import Iterable
    from typing import Any

    from janus_net._policy.context import Context
    from janus_net._sockets.owner import FileDuty


_SEND, _SENDTO = cell_io.SENDTO_CALL
_SEND_IP = cell_io.SEND_IP
_SEND_CHECK = cell_io.SEND_CHECK
_RECEIVE, _RECVFROM = cell_io.RECVFROM_CALL
_RECEIVE_RX = cell_io.RECEIVE_RX
_RX_SIZE = cell_io.RX_SIZE
_unpack = ffi.unpack
# A repeated IPv4 source is one dict look-up by the int jn_desc_receive wrote (0 for
# any other source, never a key: then `Endpoint.rx_source` decodes it).
_known_source = DECODED_SOURCES.get
_MSG_DONTWAIT = lib.MSG_DONTWAIT
# Every send is a per-call non-blocking attempt that never raises SIGPIPE.
_SEND_FLAGS = cell_io.SEND_FLAGS
_retry = loop.retry
_after_failure = loop.after_failure
# The address classes `as_address` passes through unchanged: checked by exact type.
_ADDRESS_TYPES = frozenset({Ip4Address, Ip6Address, UnixAddress})


class _NoValue:
    """No address is of this class: every send of a unix socket takes `Socket._send_slow`."""


class Socket(Bound):
    """A bound socket (from `janus_net.bind`), usually datagram: ``send`` to any address, ``receive`` from any.

    Besides one datagram at a time, it sends and receives in batches (``send_many``,
    ``receive_many``), with segmentation offload (``send_segments``, ``receive_segments``) and
    with control data (``receive_message``). ``close()`` from another thread wakes any call
    blocked in it.

    One datagram at a time is this class's own work (the per-packet path, written out
    here); every other method hands the socket's `Endpoint` to the module of its idea.
    """

    __slots__ = ("_dest_type", "_io")

    def __init__(self, desc: Any, address: Address, unix_file: FileDuty | None = None) -> None:
        # The handle the parts are given. Plain receives under GRO: not yet known (an
        # adopted or received socket: asked at its first plain receive) until the bind
        # profile says (`_made`).
        self._io = Endpoint(desc, address, coalesced.UNCHECKED)
        super().__init__(desc, address, unix_file)
        # The address class ``send`` hands to jn_desc_send_ip as it is: the socket's own
        # IP family's (another class, text, a unix socket: the checks of `_send_slow`).
        family = address.family
        self._dest_type: type = (
            Ip4Address if family == lib.AF_INET else Ip6Address if family == lib.AF_INET6 else _NoValue
        )

    def send(self, dest: str | Address, data: Buffer, source: str | Address | None = None) -> int:
        """Send one datagram to ``dest``; returns the bytes sent.

        Waits (with poll, woken by ``close()``) while the socket cannot take it, e.g.
        a unix datagram peer whose queue is full.

        Args:
            dest: the destination, an address or its text (parsed as `parse_address`
                does); port 0 is refused before the syscall (a peer can forge it).
            data: a bytes-like object: the datagram.
            source: None, or an address of this host with this socket's port or 0: the
                datagram leaves from that address (IP_PKTINFO / IPV6_PKTINFO), so a
                server bound to the wildcard replies from the address the client used
                (``Datagram.destination``). IP only.

        Raises:
            TypeError: ``data`` is not a bytes-like object.
            SocketError.InvalidAddress: ``dest`` is text that does not parse.
            SocketError.AddressUnavailable: port 0, or a source that is not this host's.
            SocketError.AddressFamilyUnsupported: ``dest`` is of another family than the socket.
            SocketError.MessageTooBig: more than one datagram can carry.
            SocketError.AccessDenied: a broadcast address without ``broadcast=True``, or a
                unix socket file you may not write.
            SocketError.ConnectionRefused: an earlier datagram was refused (ICMP).
            SocketError.NetworkUnreachable, SocketError.HostUnreachable,
                SocketError.NetworkSubsystemDown, SocketError.SystemResources: the network or memory.
            SocketError.FileNotFound, SocketError.NotDir, SocketError.SymLinkLoop: a unix path.
            SocketError.SocketModeUnsupported: a destination on a connected or stream socket.
            SocketError.SocketUnconnected: ``close()`` from another thread ended the wait.
        """
        if type(dest) is self._dest_type and type(data) is bytes and source is None:
            # The usual case, and the per-packet hot path: an IP address value of the
            # socket's family that owns its encoding (every value does after its first
            # send), and bytes. One native call (jn_desc_send_ip: the length from the
            # family, the flags fixed, port 0 left to Python's check) and one branch.
            encoded = dest._encoded  # type: ignore[union-attr]  # an IP value: checked by exact type
            if encoded is not None:
                if _SEND.fault is None:
                    sent = _SEND_IP(self._desc, data, len(data), encoded.pointer)
                    if sent >= 0:
                        return sent
                    if sent != _SEND_CHECK:
                        args = (self._desc, data, len(data), encoded.pointer)
                        return self._send_failed(dest, _SEND_IP, args)  # type: ignore[arg-type]  # as above
                elif dest._port:  # type: ignore[union-attr]  # port 0 goes to the slow path's check
                    # The fault seam armed: the same native call, through the one loop.
                    args = (self._desc, data, len(data), encoded.pointer)
                    sent = _retry(_SEND, _SEND_IP, args, None, dest, True)
                    return sent if sent >= 0 else self._send_wait(dest, _SEND_IP, args)  # type: ignore[arg-type]
        return self._send_slow(dest, data, source)

    def _send_slow(self, dest: str | Address, data: Buffer, source: str | Address | None) -> int:
        """`send` where its one native call was not enough: text, a new value, a view, a source, the seam."""
        if source is not None:
            return ancillary.send_from(self._desc, self.address, dest, data, source, lambda: self._closed_error("send"))
        # An address value passes as is (a type check, not as_address's call); text is parsed.
        target: Address = dest if type(dest) in _ADDRESS_TYPES else as_address(dest)  # type: ignore[assignment]
        encoded = target.destination(self._address.family)  # refuses port 0 and another family first
        view: Any = data if type(data) is bytes else view_of(data)  # cffi passes bytes to a const void * as is
        args = (self._desc, view, len(view), _SEND_FLAGS, encoded.pointer, encoded.length)
        if _SEND.fault is None:
            sent = _SENDTO(*args)
            if sent >= 0:
                return sent
            return self._send_failed(target, _SENDTO, args)
        sent = _retry(_SEND, _SENDTO, args, None, target, True)
        if sent >= 0:
            return sent
        return self._send_wait(target, _SENDTO, args)

    def _send_failed(self, target: Address, fn: Any, args: tuple[Any, ...]) -> int:
        """The loop after a send's inline attempt failed (errno is its errno): EINTR, an error, or a wait."""
        sent = _after_failure(_SEND, fn, args, None, target, True)
        if sent >= 0:
            return sent
        return self._send_wait(target, fn, args)

    def _send_wait(self, target: Address, fn: Any, args: tuple[Any, ...]) -> int:
        """Wait (poll, woken by ``close()``) until the socket takes the datagram."""
        return waiting.wait_for(
            self._desc,
            waiting.POLLOUT,
            None,
            lambda: _retry(_SEND, fn, args, None, target, True),
            lambda: self._closed_error("send"),
            tried=True,
        )

    def receive(self, size: int = 65536, ctx: Context | None = None) -> tuple[bytes, Address]:
        """Wait for one datagram; returns ``(data, source)``.

        Args:
            size: the most bytes to take, an int >= 0; the rest of a longer datagram
                is dropped.
            ctx: a `Context` whose cancel or deadline ends the wait; None waits until a
                datagram or ``close()``.

        Raises:
            ValueError, TypeError: ``size`` negative or not an int.
            SocketError.SocketUnconnected: ``close()`` from another thread ended the wait,
                or the socket was shut down.
            SocketError.Timeout: ``ctx`` was cancelled or its deadline passed.
            SocketError.ConnectionRefused: an earlier send was refused (ICMP).
            SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded: no
                descriptor left for the wake fd a wait needs (made once per object, by the
                first call that has to wait; with ``ctx``, the context's too).
            SocketError.NetworkSubsystemDown, SocketError.SystemResources: the network or memory.
        """
        io = self._io
        # The pool's take and give written out: list.pop and append are atomic, so
        # two threads never share a scratch (see `Pool`).
        idle = io.scratches
        try:
            scratch = idle.pop()
        except IndexError:
            scratch = Scratch()
        try:
            if ctx is None and io.gro is None and type(size) is int and _RECEIVE.fault is None:
                # The usual case, and the per-packet hot path: one native call that
                # also resets the source length and keys an IPv4 source
                # (jn_desc_receive), and one branch on success. Everything else --
                # a wait, an error, a size beyond the scratch, GRO, a context, an
                # armed fault seam -- is `_receive_slow`'s.
                got = _RECEIVE_RX(io.desc, scratch.rx, size)
                if got >= 0:
                    return _unpack(scratch.buf, got), _known_source(scratch.keys[0]) or io.rx_source(scratch)
                if got != _RX_SIZE:
                    got = io.receive_rx(scratch, size, None, True)
                    return _unpack(scratch.buf, got), io.rx_source(scratch)
            return self._receive_slow(scratch, size, ctx)
        finally:
            if not idle:
                idle.append(scratch)

    def _receive_slow(self, scratch: Scratch, size: int, ctx: Context | None) -> tuple[bytes, Address]:
        """`receive` where its one native call was not enough: GRO, ``ctx``, the fault seam, a new size."""
        io = self._io
        if io.gro is not None:  # GRO on, or not yet known (janus_net._sockets.coalesced)
            held = coalesced.receive(io, size, ctx)
            if held is not None:
                return held
        buf = scratch.buffer(size)  # checks size; grows the scratch's own buffer up to its limit
        if buf is scratch.buf:
            got = io.receive_rx(scratch, size, ctx, False)
            return _unpack(buf, got), io.rx_source(scratch)
        got, source = io.receive_from(buf, size, ctx, scratch)  # a one-off buffer, larger than kept
        return _unpack(buf, got), source

    def receive_into(self, buffer: Buffer, ctx: Context | None = None) -> tuple[int, Address]:
        """Wait for one datagram and write it into ``buffer``; returns ``(byte count, source)``.

        Args:
            buffer: a writable bytes-like object; the rest of a longer datagram is dropped.
            ctx: as for `receive`.

        Raises:
            TypeError: ``buffer`` is not a writable buffer.
            The members `receive` raises.
        """
        io = self._io
        if io.gro is not None:
            held = coalesced.receive_into(io, buffer, ctx)
            if held is not None:
                return held
        view = view_of(buffer, "buffer", writable=True)
        idle = io.scratches
        try:
            scratch = idle.pop()
        except IndexError:
            scratch = Scratch()
        try:
            return io.receive_from(view, len(view), ctx, scratch)
        finally:
            if not idle:
                idle.append(scratch)

    def send_many(self, messages: Iterable[tuple[str | Address, Buffer]]) -> int:
        """Send each ``(dest, data)`` datagram, in order; returns how many were sent.

        ``dest`` is an address or its text. Where the platform has sendmmsg the
        datagrams go in batches of up to `BATCH_MAX` per syscall, described by
        arrays this Socket keeps and reuses (`janus_net._sockets.batching`); each destination's sockaddr is the one
        its address owns, so nothing is encoded per message. Elsewhere it is one
        sendto per datagram.

        Every datagram is attempted: when the kernel takes only part of a batch, the
        rest goes in the next call. An error on the very first datagram raises its
        `SocketError` member (``MessageTooBig``, ``AddressFamilyUnsupported``, an
        ``InvalidAddress`` text...); an error on a later one stops there and returns
        the count, so ``messages[count]`` is the one that failed and is where to
        resume. (From an iterator, items after the failed one may have been taken.)
        An item that is not ``(address, bytes-like)`` raises TypeError once the
        datagrams before it have been sent.

        If iterating ``messages`` raises (a generator that fails after some items),
        every datagram taken from it before the failure is sent first, in order, and
        then the iterator's exception propagates, with a note saying how many were
        sent. So nothing taken is ever silently dropped: a datagram is either sent or
        reported by the count.

        Args:
            messages: an iterable (a list, a generator...) of ``(dest, data)`` pairs:
                ``dest`` an address or its text, ``data`` a bytes-like object.

        Raises:
            TypeError: an item is not ``(address, bytes-like)`` (after the datagrams before it
                were sent).
            The members `send` raises, for the first datagram.
        """
        return batching.send_many(self._io, messages, self.send)

    def receive_many(self, count: int, size: int = 2048, ctx: Context | None = None) -> list[tuple[bytes, Address]]:
        """Wait for at least one datagram, then take whatever else is queued, up to ``count``.

        Returns ``[(data, source), ...]`` in arrival order; each datagram longer than
        ``size`` bytes is cut to ``size`` (the rest is dropped, as `receive` does).
        Where the platform has recvmmsg this is one syscall per `BATCH_MAX`
        datagrams, into arrays this Socket keeps and reuses (a second thread
        receiving at the same moment gets arrays of its own). Without ``ctx`` it is
        one blocking recvmmsg with MSG_WAITFORONE; with ``ctx`` it waits with poll on
        the socket and the context, as `receive` does -- never with recvmmsg's own
        timeout, which is checked only after a datagram arrives (see BUGS in
        recvmmsg(2)). Sources are decoded once per peer (`from_sockaddr_cached`).

        Args:
            count: the most datagrams to return, an int >= 1.
            size: the most bytes kept of each datagram, an int >= 0.
            ctx: as for `receive`.

        Raises:
            ValueError, TypeError: ``count`` or ``size`` out of range or not an int.
            The members `receive` raises.
        """
        io = self._io
        if io.gro is not None:
            held = coalesced.receive_many(io, count, size, ctx)
            if held is not None:
                return held
        return batching.receive_many(io, count, size, ctx)

    def send_segments(self, dest: str | Address, data: Buffer, segment_size: int) -> int:
        """Send ``data`` to ``dest`` as datagrams of ``segment_size`` bytes (the last may be shorter).

        One sendmsg with a UDP_SEGMENT control message (GSO) carries them all; where
        the platform, the socket or the route cannot segment, one sendmmsg does,
        with the same datagrams on the wire. Returns the number of datagrams sent
        (an error after some went returns that count, as `send_many` does).

        Args:
            dest: the destination, an address or its text (not port 0).
            data: a bytes-like object: the datagrams' bytes, back to back.
            segment_size: the size of each datagram but the last, an int in 1..65507.

        Raises:
            ValueError: ``segment_size`` not an int in 1..65507 (before any syscall).
            SocketError.MessageTooBig: more data than one UDP send can carry (65,507
                bytes over IPv4, 65,527 over IPv6).
            SocketError.OptionUnsupported: not a UDP socket.
            SocketError.AddressUnavailable: port 0 as the destination.
            The other members `send` raises.
        """
        return segments.send_segments(self._io, dest, data, segment_size, self.send)

    def receive_segments(self, size: int = 65535, ctx: Context | None = None) -> tuple[bytes, int, Address]:
        """Coalesced datagrams of one source: ``(buffer, segment_size, source)``.

        With ``bind(..., gro=True)`` the kernel may hand over many datagrams at once;
        ``jn.split(buffer, segment_size)`` yields them. A datagram that was not
        coalesced comes alone, with ``segment_size == len(buffer)``.

        Args:
            size: the most bytes to take in one call, an int >= 0 (65535 holds the
                largest coalesced message).
            ctx: as for `receive`.

        Raises:
            SocketError.MessageTooBig: the message was longer than ``size`` (MSG_TRUNC;
                it is dropped), or its control data did not fit (MSG_CTRUNC).
            The members `receive` raises.
        """
        io = self._io
        if io.gro is not None:
            entry = coalesced.take_held(io)  # what a plain receive held comes first
            if entry is not None:
                return entry[0], len(entry[0]), entry[1]
        data, source, segment, _, _ = ancillary.receive(io, size, ctx)
        return data, len(data) if segment is None else segment, source

    def receive_message(self, size: int = 65536, ctx: Context | None = None) -> ancillary.Datagram:
        """One datagram with its destination address and kernel timestamp, as a `Datagram`.

        ``.destination`` needs ``bind(..., pktinfo=True)`` and ``.timestamp``
        ``bind(..., timestamps=True)``; each is None otherwise.

        Args:
            size: the most bytes to take, an int >= 0.
            ctx: as for `receive`.

        Raises:
            SocketError.MessageTooBig: the datagram was longer than ``size`` (it is
                dropped), or the control data did not fit.
            SocketError.ProtocolFailure: the kernel's control data was malformed.
            The members `receive` raises.
        """
        io = self._io
        if io.gro is not None:
            entry = coalesced.take_held(io)  # what a plain receive held comes first
            if entry is not None:
                return ancillary.Datagram(entry[0], entry[1], entry[2], entry[3], len(entry[0]))
        data, source, segment, destination, timestamp = ancillary.receive(io, size, ctx)
        return ancillary.Datagram(data, source, destination, timestamp, len(data) if segment is None else segment)

    @property
    def pending(self) -> int:
        """Datagrams of a coalesced buffer received and held for the next receives (``gro=True``); else 0.

        While any are held a receive returns the oldest at once, and ``to_socket()``
        refuses. A forked child holds none of its parent's.
        """
        return coalesced.pending(self._io)

    def to_socket(self) -> _stdsocket.socket:
        """Hand over the descriptor, as `Owner.to_socket` does.

        Raises:
            SocketError.SocketModeUnsupported: datagrams of a coalesced buffer are held
                (``pending``): receive them first, the stdlib socket could not deliver them.
            SocketError.Unexpected: closed or handed over already, or a call is using it.
        """
        coalesced.check_handover(self._io)
        return super().to_socket()

    def _made(self, gro: bool) -> None:
        """Called by the bind profiles on the socket they made: GRO is on exactly when asked."""
        self._io.gro = coalesced.Held() if gro else None

    def __enter__(self) -> Socket:
        return self


__all__ = ["Socket"]
