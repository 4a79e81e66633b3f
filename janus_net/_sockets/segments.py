"""UDP segmentation offload: many datagrams per syscall (GSO on send, GRO on receive), and `split`.

``send_segments`` hands the kernel one buffer and a segment size in a UDP_SEGMENT
control message; the kernel cuts it into datagrams of that size (the last may be
shorter) as late as it can -- in the network card, or just before the wire. Where
the platform, the socket or the route cannot segment, the same datagrams go out in
one sendmmsg instead: the result is the same, only the syscall differs.

On the receiving side, ``bind(..., gro=True)`` lets the kernel hand over several
datagrams of one source in one buffer, with their segment size in a UDP_GRO control
message; ``split`` cuts the buffer back into datagrams without copying.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable, Iterator

from janus_net import platform
from janus_net._kernel import cell_io, control, loop, socket_options
from janus_net._policy import waiting
from janus_net._shim import ffi, lib
from janus_net._sockets.buffers import Buffer, view_of
from janus_net._sockets.owner import closed_error, raise_woken
from janus_net._values.addresses import Address, as_address
from janus_net._values.caches import bounded_put
from janus_net._values.errors import ErrnoBug, SocketError
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._sockets.endpoint import Endpoint

#: The largest segment (and the largest datagram) an IPv4 UDP send can carry (DESIGN §15).
MAX_SEGMENT_SIZE: int = lib.JN_UDP_MAX_PAYLOAD_IP4
#: Segments per UDP_SEGMENT sendmsg; a send of more goes in several calls.
MAX_SEGMENTS: int = lib.JN_UDP_MAX_SEGMENTS
_MAX_PAYLOAD_IP4: int = lib.JN_UDP_MAX_PAYLOAD_IP4
_MAX_PAYLOAD_IP6: int = lib.JN_UDP_MAX_PAYLOAD_IP6
_SEND_SEGMENTS = cell_io.SEND_SEGMENTS
_SEND_FLAGS = cell_io.SEND_FLAGS
# The address classes `as_address` passes through unchanged: checked by exact type.
_ADDRESS_TYPES = frozenset({Ip4Address, Ip6Address, UnixAddress})


# Whether each socket is a UDP socket (SO_PROTOCOL), asked once per socket and keyed by
# its descriptor cell (identity: an entry keeps its key alive, so no other socket can take it
# over). Bounded: when full it starts over, and sockets are asked again.
_IS_UDP: dict[Any, bool] = {}
_IS_UDP_MAX = 1024

# One reusable UDP_SEGMENT message (one caller at a time).
_GSO_MESSAGES: list[control.Outgoing] = []
_GSO_PAYLOAD = ffi.sizeof("uint16_t")
# sendto on an owned socket, with its table, as the datagram hot path calls it.
_SENDTO_CALL = cell_io.SENDTO_CALL
_SEND = _SENDTO_CALL[0]


def _require_udp(io: Endpoint, syscall: str) -> None:
    """OptionUnsupported unless the socket of ``io`` is UDP (asked of the kernel once per socket).

    A raw IP socket would ignore the UDP_SEGMENT message and send all the data as one
    packet, so this is checked rather than left to the kernel.
    """
    desc = io.desc
    known = _IS_UDP.get(desc)
    if known is None:
        local = io.local
        known = False
        if isinstance(local, Ip4Address | Ip6Address):
            # On a closed cell getsockopt says EBADF; Socket.send_segments tells another
            # thread's close() from a call begun on a closed socket.
            known = (
                platform.HAS_SO_PROTOCOL
                and socket_options.getsockopt_int(desc, lib.SOL_SOCKET, lib.JN_SO_PROTOCOL) == lib.IPPROTO_UDP
            )
        bounded_put(_IS_UDP, _IS_UDP_MAX, desc, known)
    if not known:
        raise SocketError.OptionUnsupported(
            None, "segmented sends need a UDP socket (bind an IP address in Mode.DGRAM)", syscall=syscall,
            address=str(io.local),
        )  # fmt: skip


def send_segments(
    io: Endpoint, dest: str | Address, data: Buffer, segment_size: int, send_one: Callable[[Address, Buffer], int]
) -> int:
    """Send ``data`` to ``dest`` as datagrams of ``segment_size`` bytes; see `Socket.send_segments`.

    ``send_one`` is the socket's plain send, for data that fits in one datagram.
    """
    desc = io.desc
    if desc.closing:
        # Begun on a closed socket: the send table's EBADF row, as send_many's first
        # sendmmsg reports it (the checks before the send would name getsockopt).
        raise _SEND.error(errno.EBADF, io.local)
    try:
        return _send(io, desc, dest, data, segment_size, send_one)
    except (SocketError, ErrnoBug) as e:
        raise_woken(desc, e, "send", io.local)  # as in send_many


def _send(
    io: Endpoint,
    desc: Any,
    dest: str | Address,
    data: Buffer,
    segment_size: int,
    send_one: Callable[[Address, Buffer], int],
) -> int:
    if type(segment_size) is not int or not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment_size must be an int in 1..{MAX_SEGMENT_SIZE}, not {segment_size!r}")
    # An address value passes as is (a type check, not as_address's call); text is parsed.
    target: Address = dest if type(dest) in _ADDRESS_TYPES else as_address(dest)  # type: ignore[assignment]
    view = view_of(data)
    size = len(view)
    if _IS_UDP.get(desc) is not True:
        _require_udp(io, "send")
    if type(target) is Ip4Address or (type(target) is Ip6Address and target.is_ip4_mapped):
        limit = _MAX_PAYLOAD_IP4
    elif isinstance(target, UnixAddress):
        # The kernel would say EINVAL for a short unix sockaddr (shorter than a sockaddr_in),
        # a row that means a bug; a unix destination on a UDP socket is the caller's mistake.
        raise SocketError.AddressFamilyUnsupported(
            None, "a UDP socket cannot send to a unix address", syscall="send", address=str(target)
        )
    else:
        limit = _MAX_PAYLOAD_IP6
    if size > limit:
        raise SocketError.MessageTooBig(
            None, f"{size} bytes is more than one UDP send can carry ({limit})", syscall="send", address=str(target)
        )
    if target.port == 0:
        raise SocketError.AddressUnavailable(None, "cannot send to port 0", syscall="send", address=str(target))
    if size <= segment_size:
        send_one(target, data)  # one datagram: nothing to segment
        return 1
    count = -(-size // segment_size)
    # Each native call counts itself in flight on the socket's cell (janus_net._kernel.cells).
    sent = _send_gso(io, desc, target, view, size, segment_size) if platform.HAS_UDP_SEGMENT else 0
    if sent < count:
        sent += _send_mmsg(io, desc, target, view, size, segment_size, sent, sent > 0)
    return sent


def _wait_to_send(io: Endpoint, attempt: Callable[[], int]) -> int:
    """After a send that would block: janus_net's wait for room, then ``attempt`` again (see `waiting.wait_for`)."""
    local = io.local
    return waiting.wait_for(io.desc, waiting.POLLOUT, None, attempt, lambda: closed_error("send", local), tried=True)


def _send_gso(io: Endpoint, desc: Any, target: Address, view: Any, size: int, segment_size: int) -> int:
    """UDP_SEGMENT sendmsg calls of up to `MAX_SEGMENTS` segments; returns the datagrams sent.

    Stops early (returning what went) when the route cannot segment, so that the
    caller sends the rest with sendmmsg. An error on a later call returns the count
    so far; on the first call it raises. A full buffer is waited for (`_wait_to_send`).
    """
    try:
        out = _GSO_MESSAGES.pop()
    except IndexError:  # none idle (first call, or another thread has it): a fresh one
        out = control.Outgoing(lib.JN_SOL_UDP, lib.JN_UDP_SEGMENT, _GSO_PAYLOAD)
    try:
        out.segment(segment_size)
        chunk = segment_size * MAX_SEGMENTS
        sent = 0
        offset = 0
        msg = out.msg
        while offset < size:
            length = min(chunk, size - offset)
            out.point(target, view + offset if offset else view, length)
            try:
                # The hot path hands sendmsg to the retry loop itself, as Socket.send does.
                went = cell_io.sendmsg_on(desc, msg, _SEND_FLAGS, _SEND_SEGMENTS, target)
                if went < 0:
                    attempt = functools.partial(cell_io.sendmsg_on, desc, msg, _SEND_FLAGS, _SEND_SEGMENTS, target)
                    went = _wait_to_send(io, attempt)
            except SocketError.OptionUnsupported:
                # Not remembered: the next send may take another route. A kernel without
                # GSO at all (before 4.18) pays one failed sendmsg per send.
                return sent
            except SocketError:
                if sent == 0:
                    raise
                return sent
            if went != length:
                # UDP sends all or nothing; should a kernel ever report less, count only
                # the whole segments it took and let the caller send the rest one by one.
                return sent + went // segment_size
            sent += -(-length // segment_size)
            offset += length
        return sent
    finally:
        # (iov_base keeps no reference to the caller's buffer: nothing to unpin.)
        if not _GSO_MESSAGES:
            _GSO_MESSAGES.append(out)


def _send_mmsg(
    io: Endpoint, desc: Any, target: Address, view: Any, size: int, segment_size: int, first: int, started: bool
) -> int:
    """Datagrams ``first``.. of ``view`` in sendmmsg calls (or sendto where there is none).

    A full buffer is waited for (`_wait_to_send`), as in `_send_gso`.
    """
    count = -(-size // segment_size) - first
    encoded = target.sockaddr
    if not platform.HAS_MMSG:
        done = 0
        for index in range(first, first + count):
            start = index * segment_size
            length = min(segment_size, size - start)
            try:
                args = (desc, view + start, length, _SEND_FLAGS, encoded.pointer, encoded.length)
                if loop.retry(*_SENDTO_CALL, args, None, target, True) < 0:
                    _wait_to_send(io, functools.partial(loop.retry, *_SENDTO_CALL, args, None, target, True))
            except SocketError:
                if done == 0 and not started:
                    raise
                break
            done += 1
        return done
    msgs = ffi.new("struct mmsghdr[]", count)
    iov = ffi.new("struct iovec[]", count)
    for slot in range(count):
        start = (first + slot) * segment_size
        vector = iov[slot]
        vector.iov_base = view + start
        vector.iov_len = min(segment_size, size - start)
        header = msgs[slot].msg_hdr
        header.msg_name = encoded.pointer
        header.msg_namelen = encoded.length
        header.msg_iov = iov + slot
        header.msg_iovlen = 1
    done = 0
    while done < count:
        try:
            rest = (desc, msgs + done, count - done, _SEND_FLAGS, target)
            went = cell_io.sendmmsg_on(*rest)
            if went < 0:
                went = _wait_to_send(io, functools.partial(cell_io.sendmmsg_on, *rest))
        except SocketError:
            if done == 0 and not started:
                raise
            break
        if went == 0:
            break  # not expected after poll said writable; never spin on it
        done += went
    return done


def split(buffer: Buffer, segment_size: int) -> Iterator[memoryview]:
    """The datagrams in a coalesced ``buffer``, as memoryviews into it (no copy).

    Every view but the last is ``segment_size`` bytes; the last may be shorter. An
    empty buffer is one empty datagram (``receive_segments`` returns one only for a
    zero-length datagram, with ``segment_size`` 0).

    Args:
        buffer: what `Socket.receive_segments` (or ``receive_message``) returned, or
            any bytes-like object.
        segment_size: the segment size that came with it: an int >= 1 (0 only with
            an empty buffer).

    Raises:
        ValueError: a segment size that is not such an int (at the call, not at the
            first iteration).
    """
    view = memoryview(buffer)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    if type(segment_size) is not int or segment_size < (0 if total == 0 else 1):
        raise ValueError(f"segment_size must be an int >= 1, not {segment_size!r}")
    if total == 0:
        return iter((view,))
    # The slices for a (length, segment size) are made once: a steady stream of full
    # buffers then costs one memoryview per datagram and no Python step.
    key = (total, segment_size)
    cuts = _CUTS.get(key)
    if cuts is None:
        starts = range(0, total, segment_size)
        cuts = list(map(slice, starts, range(segment_size, total + segment_size, segment_size)))
        bounded_put(_CUTS, _CUTS_MAX, key, cuts)
    return map(view.__getitem__, cuts)


_CUTS: dict[tuple[int, int], list[slice]] = {}
_CUTS_MAX = 64


__all__ = ["MAX_SEGMENTS", "MAX_SEGMENT_SIZE", "send_segments", "split"]
