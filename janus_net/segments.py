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

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from janus_net import ancillary, platform, syscalls
from janus_net._shim import ffi, lib
from janus_net.address import Address, Ip4Address, Ip6Address, as_address
from janus_net.errors import SocketError
from janus_net.scratch import Buffer

if TYPE_CHECKING:
    from janus_net.socket import Socket

#: The largest segment (and the largest datagram) an IPv4 UDP send can carry (DESIGN §15).
MAX_SEGMENT_SIZE: int = lib.JN_UDP_MAX_PAYLOAD_IP4
#: Segments per UDP_SEGMENT sendmsg; a send of more goes in several calls.
MAX_SEGMENTS: int = lib.JN_UDP_MAX_SEGMENTS


# Whether each Socket is a UDP socket (SO_PROTOCOL), asked once per socket.
_IS_UDP: weakref.WeakKeyDictionary[Socket, bool] = weakref.WeakKeyDictionary()

# One reusable UDP_SEGMENT message (one caller at a time).
_GSO_MESSAGES: list[ancillary.Outgoing] = []
_GSO_PAYLOAD = ffi.sizeof("uint16_t")
_UINT16_P = ffi.typeof("uint16_t *")


def _check_segment_size(segment_size: object) -> int:
    if type(segment_size) is not int or not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment_size must be an int in 1..{MAX_SEGMENT_SIZE}, not {segment_size!r}")
    return segment_size


def _payload_limit(target: Address) -> int:
    if isinstance(target, Ip6Address) and not target.is_ip4_mapped:
        return int(lib.JN_UDP_MAX_PAYLOAD_IP6)
    return int(lib.JN_UDP_MAX_PAYLOAD_IP4)


def _require_udp(sock: Socket, syscall: str) -> None:
    """OptionUnsupported unless ``sock`` is a UDP socket (asked of the kernel once per socket)."""
    known = _IS_UDP.get(sock)
    if known is None:
        local = sock._address
        known = False
        if isinstance(local, Ip4Address | Ip6Address):
            fd = sock._descriptor.acquire(syscalls.GETSOCKOPT, local)
            try:
                known = syscalls.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_PROTOCOL) == lib.IPPROTO_UDP
            finally:
                sock._descriptor.release()
        _IS_UDP[sock] = known
    if not known:
        raise SocketError.OptionUnsupported(
            None, "segmented sends need a UDP socket (bind an IP address in Mode.DGRAM)", syscall=syscall,
            address=str(sock._address),
        )  # fmt: skip


def send_segments(sock: Socket, dest: str | Address, data: Buffer, segment_size: int) -> int:
    """Send ``data`` to ``dest`` as datagrams of ``segment_size`` bytes; see `Socket.send_segments`."""
    segment_size = _check_segment_size(segment_size)
    target = as_address(dest)
    view = ffi.from_buffer(data)
    size = len(view)
    _require_udp(sock, "send")
    limit = _payload_limit(target)
    if size > limit:
        raise SocketError.MessageTooBig(
            None, f"{size} bytes is more than one UDP send can carry ({limit})", syscall="send", address=str(target)
        )
    if isinstance(target, Ip4Address | Ip6Address) and target.port == 0:
        raise SocketError.AddressUnavailable(None, "cannot send to port 0", syscall="send", address=str(target))
    if size <= segment_size:
        sock.send(target, data)  # one datagram: nothing to segment
        return 1
    count = -(-size // segment_size)
    descriptor = sock._descriptor
    fd = descriptor.acquire(syscalls.SEND, target)
    try:
        sent = 0
        if platform.HAS_UDP_SEGMENT:
            sent = _send_gso(fd, target, view, size, segment_size)
        if sent < count:
            sent += _send_mmsg(fd, target, view, size, segment_size, sent, sent > 0)
        return sent
    finally:
        descriptor.release()


def _send_gso(fd: int, target: Address, view: Any, size: int, segment_size: int) -> int:
    """UDP_SEGMENT sendmsg calls of up to `MAX_SEGMENTS` segments; returns the datagrams sent.

    Stops early (returning what went) when the route cannot segment, so that the
    caller sends the rest with sendmmsg. An error on a later call returns the count
    so far; on the first call it raises.
    """
    out = _GSO_MESSAGES.pop() if _GSO_MESSAGES else ancillary.Outgoing(lib.JN_SOL_UDP, lib.JN_UDP_SEGMENT, _GSO_PAYLOAD)
    try:
        ffi.cast(_UINT16_P, out.payload)[0] = segment_size
        chunk = segment_size * MAX_SEGMENTS
        sent = 0
        offset = 0
        while offset < size:
            length = min(chunk, size - offset)
            out.point(target, view + offset, length)
            try:
                syscalls.sendmsg(fd, out.msg, platform.MSG_NOSIGNAL, syscalls.SEND_SEGMENTS, target)
            except SocketError.OptionUnsupported:
                # Not remembered: the next send may take another route. A kernel without
                # GSO at all (before 4.18) pays one failed sendmsg per send.
                return sent
            except SocketError:
                if sent == 0:
                    raise
                return sent
            sent += -(-length // segment_size)
            offset += length
        return sent
    finally:
        out.iov.iov_base = ffi.NULL  # do not pin the caller's buffer
        if not _GSO_MESSAGES:
            _GSO_MESSAGES.append(out)


def _send_mmsg(fd: int, target: Address, view: Any, size: int, segment_size: int, first: int, started: bool) -> int:
    """Datagrams ``first``.. of ``view`` in sendmmsg calls (or sendto where there is none)."""
    count = -(-size // segment_size) - first
    encoded = target.sockaddr
    if not platform.HAS_MMSG:
        done = 0
        for index in range(first, first + count):
            start = index * segment_size
            length = min(segment_size, size - start)
            try:
                syscalls.retry(
                    syscalls.SEND, lib.sendto, (fd, view + start, length, platform.MSG_NOSIGNAL, encoded.pointer,
                    encoded.length), None, target,
                )  # fmt: skip
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
            went = syscalls.sendmmsg(fd, msgs + done, count - done, platform.MSG_NOSIGNAL, target)
        except SocketError:
            if done == 0 and not started:
                raise
            break
        if went == 0:
            break  # not expected from a blocking socket; never spin on it
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
    view = memoryview(buffer).cast("B")
    total = len(view)
    if type(segment_size) is not int or segment_size < (0 if total == 0 else 1):
        raise ValueError(f"segment_size must be an int >= 1, not {segment_size!r}")
    if total == 0:
        return iter((view,))
    return (view[start : start + segment_size] for start in range(0, total, segment_size))


__all__ = ["MAX_SEGMENTS", "MAX_SEGMENT_SIZE", "send_segments", "split"]
