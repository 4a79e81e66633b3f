"""Ancillary data (control messages) of datagrams: destination address, kernel timestamp, GRO segment size.

The message headers are built and the control messages read by `janus_net._kernel.control`,
under its one bounds rule; a truncation is never silent (DESIGN §15):

* MSG_TRUNC (the datagram was longer than the buffer; the rest is gone) and
  MSG_CTRUNC (the control messages did not fit: someone enabled more of them on
  this socket than janus_net reserves room for) raise `SocketError.MessageTooBig`.
  The datagram has left the queue by then: the next receive gets the next one.
* A control message that breaks the rule (a length below its header, past the
  control buffer, or a payload of the wrong size for its type) raises
  `SocketError.ProtocolFailure`: the kernel never writes one, so a reader must not guess.

Messages of a level/type janus_net does not know are skipped (another holder of a
shared socket may have enabled, say, IP_RECVTTL). Descriptors a unix datagram peer
attached (SCM_RIGHTS) are closed before the datagram is returned: nobody asked for them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from janus_net import platform
from janus_net._kernel import cell_io, control, loop
from janus_net._policy import waiting
from janus_net._shim import ffi, lib
from janus_net._sockets.buffers import (
    SIZE_MAX,
    SOCKADDR_IN_SIZE,
    STORAGE_P,
    STORAGE_SIZE,
    UNNAMED_UNIX,
    Buffer,
    size_argument,
    uncleared,
    view_of,
)
from janus_net._values.addresses import Address, as_address
from janus_net._values.caches import bounded_put
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.reported import DECODED_SOURCES, from_sockaddr_cached
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from janus_net._policy.context import Context
    from janus_net._sockets.endpoint import Endpoint


class Datagram:
    """One received datagram and what the kernel said about it (`Socket.receive_message`).

    Attributes:
        data: the payload. With ``gro=True`` it may hold several datagrams of one
            source, coalesced: ``jn.split(data, segment_size)`` cuts them apart.
        source: who sent it.
        destination: the local address it was sent to (the socket's port, and the
            IP the client used even when the socket is bound to the wildcard), or
            None when the socket was bound without ``pktinfo=True``.
        timestamp: when the kernel received it, in Unix seconds, or None when the
            socket was bound without ``timestamps=True``.
        segment_size: the size of each coalesced datagram (the last may be shorter);
            ``len(data)`` when the message is one datagram.
    """

    # A frozen dataclass's behaviour (fields, ==, hash, repr, pickling, match), written out:
    # `dataclasses` (with `inspect`, `ast`, `dis`) cost a sixth of `import janus_net`.
    __slots__ = ("data", "destination", "segment_size", "source", "timestamp")
    __match_args__ = ("data", "source", "destination", "timestamp", "segment_size")

    data: bytes
    source: Address
    destination: Address | None
    timestamp: float | None
    segment_size: int

    def __init__(
        self,
        data: bytes,
        source: Address,
        destination: Address | None,
        timestamp: float | None,
        segment_size: int,
    ) -> None:
        _set = object.__setattr__
        _set(self, "data", data)
        _set(self, "source", source)
        _set(self, "destination", destination)
        _set(self, "timestamp", timestamp)
        _set(self, "segment_size", segment_size)

    def _fields(self) -> tuple[bytes, Address, Address | None, float | None, int]:
        return (self.data, self.source, self.destination, self.timestamp, self.segment_size)

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError  # the exception a frozen dataclass raises

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Datagram)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Datagram(data={self.data!r}, source={self.source!r}, destination={self.destination!r}, "
            f"timestamp={self.timestamp!r}, segment_size={self.segment_size!r})"
        )

    def __reduce__(self) -> tuple[type[Datagram], tuple[bytes, Address, Address | None, float | None, int]]:
        return (Datagram, self._fields())


# --- Layout, from the compiler.

_INT_SIZE = ffi.sizeof("int")
_IN_PKTINFO_SIZE = ffi.sizeof("struct in_pktinfo")
_IN6_PKTINFO_SIZE = ffi.sizeof("struct in6_pktinfo")
_TIMESPEC_SIZE = ffi.sizeof("struct timespec")

#: Room for every control message janus_net can ask for at once (GRO, either pktinfo,
#: the timestamp), so enabling them together never truncates.
CONTROL_SPACE: int = (
    lib.jn_cmsg_space(_INT_SIZE)
    + lib.jn_cmsg_space(_IN_PKTINFO_SIZE)
    + lib.jn_cmsg_space(_IN6_PKTINFO_SIZE)
    + lib.jn_cmsg_space(_TIMESPEC_SIZE)
)

_IP_PKTINFO = (lib.IPPROTO_IP, lib.JN_IP_PKTINFO) if platform.HAS_IP_PKTINFO else None
_IPV6_PKTINFO = (lib.IPPROTO_IPV6, lib.JN_IPV6_PKTINFO) if platform.HAS_IPV6_PKTINFO else None
_TIMESTAMPNS = (lib.SOL_SOCKET, lib.JN_SCM_TIMESTAMPNS) if platform.HAS_TIMESTAMPNS else None
# UDP_GRO is compared field by field (the hot case); -1 never matches a level.
_SOL_UDP = lib.JN_SOL_UDP if platform.HAS_UDP_GRO else -1
_SEND_FROM_FLAGS = cell_io.SEND_FLAGS
_UDP_GRO_TYPE = lib.JN_UDP_GRO

_IN_PKTINFO_P = ffi.typeof("struct in_pktinfo *")
_IN6_PKTINFO_P = ffi.typeof("struct in6_pktinfo *")
_TIMESPEC_P = ffi.typeof("struct timespec *")
_INT_P = ffi.typeof("int *")
_IN6_ADDR_SIZE = ffi.sizeof("struct in6_addr")

# A receive buffer up to this size is kept for the next call (65536 is receive_message's default).
_KEEP = 65536


class Message:
    """A reusable ``struct msghdr`` with one iovec, a source sockaddr and a control buffer.

    One caller at a time (taken from and given back to `_MESSAGES`). Before each call
    one memmove from ``pristine`` restores what the kernel overwrites (the name and
    control lengths, the flags); the iovec is rewritten only when the size changes.
    ``words`` reads the source as 8-byte words: for an IPv4 source the first word
    identifies it (the key `DECODED_SOURCES` uses for IPv4, as `ReceiveBatch` does).
    """

    __slots__ = ("buf", "capacity", "control", "iov", "msg", "name", "pristine", "size", "words")

    def __init__(self) -> None:
        self.name = uncleared(STORAGE_P)
        self.words = memoryview(ffi.buffer(self.name)).cast("Q") if platform.IP4_KEY_OK else None
        self.iov = ffi.new("struct iovec *")
        # Cleared: CMSG_NXTHDR reads the next header's length before deciding it is past the end.
        self.control = ffi.new("char[]", CONTROL_SPACE)
        msg = control.header(self.iov, 1, self.name, STORAGE_SIZE, self.control, CONTROL_SPACE)
        self.msg = msg
        self.pristine = ffi.buffer(msg)[:]
        self.buf: Any = None
        self.capacity = -1
        self.size = -1

    def receive_buffer(self, size: int) -> Any:
        """Point the iovec at a buffer of ``size`` bytes (this message's own, up to `_KEEP`).

        ``size`` is recorded last: ``self.size == n`` always means "the iovec points at
        ``self.buf`` with length n", even if an exception (KeyboardInterrupt) stops this
        half-way -- a stale record would have the kernel write into a freed buffer.
        """
        self.size = -1
        if size > _KEEP:
            buf = uncleared("char[]", size)
        elif size > self.capacity:
            buf = uncleared("char[]", max(size, 1))
        else:
            buf = self.buf
        self.iov.iov_base = buf
        self.iov.iov_len = size
        if size <= _KEEP:
            if buf is not self.buf:
                self.buf = buf
                self.capacity = size
            self.size = size
        return buf


# At most one idle Message, shared by every socket of the process (a list: atomic pop/append).
_MESSAGES: list[Message] = []
_MSGHDR_SIZE = ffi.sizeof("struct msghdr")
_CUT = lib.MSG_TRUNC | lib.MSG_CTRUNC
# Descriptors a unix datagram peer attaches are close-on-exec from the first instant (closed at once).
_RECEIVE_FLAGS = lib.MSG_DONTWAIT | platform.MSG_CMSG_CLOEXEC


# --- Receiving


def receive(
    io: Endpoint,
    size: int,
    ctx: Context | None,
) -> tuple[bytes, Address, int | None, Address | None, float | None]:
    """One recvmsg on the socket of ``io``: (data, source, GRO segment size, destination, timestamp).

    The last three are None when their control message did not come (the socket's
    own port completes the destination address). Waits as `Socket.receive` does: a
    non-blocking attempt first, then poll on the socket, its wake fd (``close()`` from
    another thread) and the context.
    """
    if type(size) is not int or not 0 <= size <= SIZE_MAX:
        size = size_argument("size", size)
    try:
        message = _MESSAGES.pop()
    except IndexError:  # none idle (first call, or another thread has it): a fresh one
        message = Message()
    try:
        buf = message.buf if size == message.size else message.receive_buffer(size)
        msg = message.msg
        desc = io.desc
        args = (desc, msg, _RECEIVE_FLAGS)
        check = None if ctx is None else ctx.check

        def attempt() -> int:
            # The kernel rewrites the lengths and flags of the header it fills.
            ffi.memmove(msg, message.pristine, _MSGHDR_SIZE)
            return cell_io.recvmsg_on(*args, check)

        got = attempt() if ctx is None else loop.WOULD_BLOCK
        if got < 0:
            got = waiting.wait_for(
                desc,
                waiting.POLLIN,
                ctx,
                attempt,
                lambda: io.closed_error("receive"),
                io.hung_up,
                tried=ctx is None,
            )
        named = msg.msg_namelen
        words = message.words
        if named == SOCKADDR_IN_SIZE and words is not None:
            key = words[0]
            source = DECODED_SOURCES.get(key) or from_sockaddr_cached(message.name, named, key)
        elif named == 0:
            source = UNNAMED_UNIX  # an unbound unix sender
        else:
            source = from_sockaddr_cached(message.name, min(named, STORAGE_SIZE))
        if msg.msg_flags & _CUT:
            control.close_received(msg)  # descriptors a unix peer attached, before the error
            check_truncation(msg.msg_flags, size, source)
        if msg.msg_controllen:
            segment, destination, timestamp = parse(msg, io.local)
        else:
            segment = destination = timestamp = None
        return ffi.unpack(buf, got), source, segment, destination, timestamp
    finally:
        if not _MESSAGES:
            _MESSAGES.append(message)


def check_truncation(flags: int, size: int, source: object) -> None:
    """Raise `SocketError.MessageTooBig` if recvmsg's ``flags`` say anything was cut."""
    if flags & lib.MSG_TRUNC:
        raise SocketError.MessageTooBig(
            None,
            f"the datagram was longer than size={size} bytes and was dropped (MSG_TRUNC); receive with a larger size",
            syscall="receive",
            address=str(source),
        )
    if flags & lib.MSG_CTRUNC:
        raise SocketError.MessageTooBig(
            None,
            "the control messages did not fit (MSG_CTRUNC): options other than gro, pktinfo and timestamps "
            "are enabled on this socket; the datagram was dropped",
            syscall="receive",
            address=str(source),
        )


def parse(msg: Any, local: Address) -> tuple[int | None, Address | None, float | None]:
    """(GRO segment size, destination address, timestamp) from ``msg``'s control messages.

    Each is None when its message is absent. ``local`` gives the destination its port.
    Descriptors found (SCM_RIGHTS from a unix datagram peer) are closed.

    Raises:
        SocketError.ProtocolFailure: a control message that breaks `janus_net._kernel.control`'s
            rule, or a UDP_GRO segment size below 1.
    """
    segment: int | None = None
    destination: Address | None = None
    timestamp: float | None = None
    rights = None
    for cmsg in control.walk(msg):
        level = cmsg.level
        kind = cmsg.kind
        if level == _SOL_UDP and kind == _UDP_GRO_TYPE:
            segment = ffi.cast(_INT_P, cmsg.data)[0]
        elif (level, kind) == _IP_PKTINFO:
            info = ffi.cast(_IN_PKTINFO_P, cmsg.data)
            destination = _ip4_destination(lib.ntohl(info.ipi_addr.s_addr), local.port or 0)
        elif (level, kind) == _IPV6_PKTINFO:
            info6 = ffi.cast(_IN6_PKTINFO_P, cmsg.data)
            packed = ffi.buffer(info6.ipi6_addr.s6_addr, _IN6_ADDR_SIZE)[:]
            destination = _ip6_destination(packed, int(info6.ipi6_ifindex), local.port or 0)
        elif (level, kind) == _TIMESTAMPNS:
            ts = ffi.cast(_TIMESPEC_P, cmsg.data)
            timestamp = ts.tv_sec + ts.tv_nsec / 1e9
        elif cmsg.is_rights:
            rights = [] if rights is None else rights
            rights.append(cmsg.slots())
    if rights is not None:
        control.close_all(rights)
    if segment is not None and segment <= 0:
        raise SocketError.ProtocolFailure(
            None, f"malformed control message: UDP_GRO segment size {segment}", syscall="receive"
        )
    return segment, destination, timestamp


# Destination addresses are few (the host's own); each is built once.
_DESTINATIONS: dict[tuple[int, int, int], Address] = {}
_DESTINATIONS_MAX = 256


def _ip4_destination(host: int, port: int) -> Address:
    key = (host, 0, port)
    found = _DESTINATIONS.get(key)
    if found is None:
        found = Ip4Address(ipaddress.IPv4Address(host), port)
        bounded_put(_DESTINATIONS, _DESTINATIONS_MAX, key, found)
    return found


def _ip6_destination(packed: bytes, ifindex: int, port: int) -> Address:
    ip = ipaddress.IPv6Address(packed)
    key = (int(ip), ifindex, port | 1 << 16)
    found = _DESTINATIONS.get(key)
    if found is None:
        # Only a link-local address needs the interface to name it; elsewhere the index
        # is where the datagram came in, not part of the address.
        scope = ifindex if ip.is_link_local else 0
        found = Ip6Address(ip, port, scope_id=scope)
        bounded_put(_DESTINATIONS, _DESTINATIONS_MAX, key, found)
    return found


# --- Sending


def source_control(local: Address, source: str | Address) -> tuple[int, int, bytes]:
    """The (level, type, payload) of the control message that sends from ``source``.

    Raises (before any syscall):
        SocketError.OptionUnsupported: the socket is not IP, or the platform has no pktinfo.
        SocketError.AddressFamilyUnsupported: an IPv6 source on an IPv4 socket.
        SocketError.AddressUnavailable: a source port other than the socket's own (or 0).
    """
    address = as_address(source)
    text = str(address)
    if isinstance(local, UnixAddress) or isinstance(address, UnixAddress):
        raise SocketError.OptionUnsupported(None, "source= applies to IP sockets only", syscall="send", address=text)
    if isinstance(local, Ip6Address) and isinstance(address, Ip4Address):
        address = Ip6Address.from_ip4(address)
    if type(address) is not type(local):
        raise SocketError.AddressFamilyUnsupported(
            None, f"an IPv6 source cannot be used on the IPv4 socket {local}", syscall="send", address=text
        )
    if address.port not in (0, local.port):
        raise SocketError.AddressUnavailable(
            None,
            f"a reply leaves from this socket's port {local.port}, not {address.port}",
            syscall="send",
            address=text,
        )
    if isinstance(address, Ip4Address):
        if _IP_PKTINFO is None:
            raise SocketError.OptionUnsupported(None, "this platform has no IP_PKTINFO", syscall="send", address=text)
        info = ffi.new("struct in_pktinfo *")
        info.ipi_spec_dst.s_addr = lib.htonl(int(address.ip))
        return lib.IPPROTO_IP, lib.JN_IP_PKTINFO, ffi.buffer(info)[:]
    assert isinstance(address, Ip6Address)
    if _IPV6_PKTINFO is None:
        raise SocketError.OptionUnsupported(None, "this platform has no IPV6_PKTINFO", syscall="send", address=text)
    info6 = ffi.new("struct in6_pktinfo *")
    ffi.memmove(info6.ipi6_addr.s6_addr, address.ip.packed, _IN6_ADDR_SIZE)
    info6.ipi6_ifindex = address.scope_id
    return lib.IPPROTO_IPV6, lib.JN_IPV6_PKTINFO, ffi.buffer(info6)[:]


Outgoing = control.Outgoing


# Replies from a chosen source: the control message for each (local, source) pair is
# built once, and one Outgoing per message kind is kept for the next call.
_SOURCES: dict[tuple[Address, Address], tuple[int, int, bytes]] = {}
_SOURCES_MAX = 256
_OUTGOING: dict[tuple[int, int, int], list[Outgoing]] = {}


def send_from(
    desc: Any,
    local: Address,
    dest: str | Address,
    data: Buffer,
    source: str | Address,
    closed: Callable[[], SocketError],
) -> int:
    """One datagram to ``dest`` that leaves from the local address ``source`` (sendmsg + pktinfo).

    Waits as `Socket.send` does while the send buffer is full: non-blocking attempts,
    and poll on the socket and its wake fd between them (``closed``: what a ``close()``
    from another thread ends the wait with).

    Raises:
        SocketError.AddressUnavailable: ``source`` is not an address of this host (IPv6),
            or its port is not the socket's.
        SocketError.NetworkUnreachable: an IPv4 ``source`` that is not local (no route from it).
    """
    chosen = as_address(source)  # text is parsed (and cached) here; anything else unhashable fails here
    key = (local, chosen)
    control = _SOURCES.get(key)
    if control is None:
        control = source_control(local, chosen)
        bounded_put(_SOURCES, _SOURCES_MAX, key, control)
    level, type_, payload = control
    target = as_address(dest)
    if isinstance(target, UnixAddress):  # the kernel's EINVAL would read as a bad source
        raise SocketError.AddressFamilyUnsupported(
            None, "an IP socket cannot send to a unix address", syscall="send", address=str(target)
        )
    view = view_of(data)
    kind = (level, type_, len(payload))
    idle = _OUTGOING.setdefault(kind, [])
    try:
        out = idle.pop()
    except IndexError:
        out = Outgoing(level, type_, len(payload))
    try:
        ffi.memmove(out.payload, payload, len(payload))
        out.point(target, view, len(view))
        # MSG_DONTWAIT, as every send: without it a full buffer slept in the kernel (on a
        # blocking description), where close() cannot wake the call, or came back as -1
        # "bytes sent" (on a non-blocking one).
        attempt = functools.partial(cell_io.sendmsg_on, desc, out.msg, _SEND_FROM_FLAGS, cell_io.SEND_FROM, target)
        sent = attempt()
        if sent >= 0:
            return sent
        return waiting.wait_for(desc, waiting.POLLOUT, None, attempt, closed, tried=True)
    finally:
        if not idle:
            idle.append(out)


__all__ = ["CONTROL_SPACE", "Datagram", "Message", "Outgoing", "parse", "receive", "send_from"]
