"""Passing open sockets to another process: `send_sockets` and `receive_sockets` (SCM_RIGHTS).

The channel is a connected unix stream (a `Stream` from `jn.connect("unix:...")`
or from a unix `Server.accept()`). Each call moves a mapping ``name -> socket`` as
one or more *chunks*; a chunk is one sendmsg carrying at most ``SCM_MAX_FD``
descriptors, with a payload that announces what they are::

    header  "!4sBBHII": magic b"JNfd", version 1, flags (bit 0: last chunk),
            descriptors in this chunk, descriptors in the whole transfer,
            length of the entries that follow
    entries one per descriptor, in order: kind (1 Server, 2 Socket, 3 Stream),
            name length (1..255), the name (printable ASCII without ':', as
            systemd's FDNAMES)

The receiver checks everything before it hands anything out: the magic, the
version, every count against the others and against the descriptors that really
arrived, every length against the bytes that really arrived, every name, and each
descriptor's real kind (the adoption door, `janus_net.adopt`, as for ``fd://``) against the
announced one. A chunk's descriptors must come with its header: the header is
peeked first (a peek installs no descriptor), its total checked against
RLIMIT_NOFILE, and each recvmsg then has room for exactly the descriptors the chunk
still announces, so the kernel drops any more a peer sends (MSG_CTRUNC) and this
process never holds more than was announced. Control buffers are read by
`janus_net.control` under its one bounds rule. Received descriptors are
close-on-exec from the first instant (MSG_CMSG_CLOEXEC; fcntl right after recvmsg
where the platform lacks it). Until the last check has passed, they are owned by
the control buffers the kernel wrote them into, and any failure -- a truncated
control message, a malformed payload, more or fewer descriptors than announced, a
pipe instead of a socket, a peer that dies or closes mid-transfer, a cancelled
context, a KeyboardInterrupt -- closes every one of them explicitly before the
error propagates (the buffers' collection is only the last resort), so an
exception the caller keeps holds no descriptor.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
from collections.abc import Iterable, Mapping

from janus_net import adopt, control, descriptor, platform, syscalls, waiting
from janus_net._shim import ffi, lib
from janus_net.address import UnixAddress
from janus_net.errors import ErrnoBug, SocketError
from janus_net.socket import Server, Socket, Stream
from janus_net.wrap import KINDS, Kind, kind_of

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from janus_net.capability import NetBind
    from janus_net.context import Context

AnySocket = Server | Socket | Stream

MAGIC = b"JNfd"
VERSION = 1
LAST = 0x01
HEADER = struct.Struct("!4sBBHII")
#: The longest name (systemd's FDNAME_MAX).
NAME_MAX = 255
#: The most descriptors one transfer may announce: far above any real use, low enough
#: that a hostile header cannot make the receiver allocate without bound.
TRANSFER_MAX = 1 << 16
#: Descriptors per chunk: the kernel's limit per SCM_RIGHTS message.
CHUNK_MAX: int = lib.JN_SCM_MAX_FD

_KIND_CODES: dict[Kind, int] = {kind: code for code, kind in enumerate(KINDS, start=1)}
_SEND_FLAGS = platform.MSG_NOSIGNAL | lib.MSG_DONTWAIT
_RECEIVE_FLAGS = platform.MSG_CMSG_CLOEXEC | lib.MSG_DONTWAIT


def check_name(name: object) -> str:
    """A descriptor name as systemd accepts it: 1..255 printable ASCII characters, no ':'.

    Raises TypeError for a non-str and ValueError for anything else, before any syscall.
    The same rule holds for LISTEN_FDNAMES (``janus-net run``) and FDSTORE names, so a
    name that travels here can travel there too.
    """
    if type(name) is not str:
        raise TypeError(f"a socket name must be a str, not {type(name).__name__}")
    if not 1 <= len(name) <= NAME_MAX:
        raise ValueError(f"a socket name must be 1 to {NAME_MAX} characters long, not {len(name)}: {name!r}")
    if not all(" " <= c <= "~" and c != ":" for c in name):
        raise ValueError(f"a socket name must be printable ASCII without ':': {name!r}")
    return name


def _items(sockets: Mapping[str, AnySocket]) -> list[tuple[str, Kind, Any]]:
    """(name, kind, descriptor cell) for each socket, checked before anything is sent."""
    if not isinstance(sockets, Mapping):
        raise TypeError(f"sockets must be a mapping of name -> socket, not {type(sockets).__name__}")
    items = []
    for name, sock in sockets.items():
        kind = kind_of(sock)
        if sock.fileno() < 0:
            raise ValueError(f"socket {check_name(name)!r} is closed")
        items.append((check_name(name), kind, sock._desc))
    if len(items) > TRANSFER_MAX:
        raise ValueError(f"at most {TRANSFER_MAX} sockets per transfer, not {len(items)}")
    return items


def _check_channel(channel: object) -> Stream:
    if not isinstance(channel, Stream):
        raise TypeError(f"the channel must be a connected unix janus_net Stream, not {type(channel).__name__}")
    if not isinstance(channel.address, UnixAddress):
        raise SocketError.AddressFamilyUnsupported(
            None, "descriptors travel only over a unix socket", address=str(channel.address)
        )
    return channel


def _send_all(
    chan: Stream, payload: bytes, chunk: list[tuple[str, Kind, Any]], ctx: Context | None, address: object
) -> None:
    """One chunk: the descriptors go with the first byte sent; the rest of a short send follows.

    Each attempt is non-blocking (on the channel's owned cell, counted in flight); while
    it would block, the wait polls the channel, its wake fd (``close()`` from another
    thread) and the context. The sockets sent are held in flight too, inside the one
    native call, and their fds are read there: a socket another thread closes meanwhile
    is never sent as a number that may already name something else.
    """
    desc = chan._desc
    check = None if ctx is None else ctx.check
    attempt = RightsSend(desc, payload, chunk, _SEND_FLAGS, address, check)
    sent = waiting.wait_for(desc, waiting.POLLOUT, ctx, attempt, functools.partial(chan._closed_error, "send"))
    while sent < len(payload):
        # The descriptors went with the part already sent: the rest goes without them.
        msg, keep = control.rights_message(payload[sent:], [])
        rest = functools.partial(syscalls.sendmsg_on, desc, msg, _SEND_FLAGS, syscalls.SENDMSG, address, check)
        sent += waiting.wait_for(desc, waiting.POLLOUT, ctx, rest, functools.partial(chan._closed_error, "send"))
        del keep


class RightsSend:
    """One sendmsg of ``payload`` with the sockets of ``chunk`` (name, kind, cell) as SCM_RIGHTS.

    The object is the attempt (call it; `WOULD_BLOCK` as `syscalls.sendmsg_rights_on`
    says): each call is one native call that holds every sent socket in flight and
    writes its fd into the message itself, so a socket another thread closes meanwhile
    is never sent as a number that may already name something else (the close waits
    for the call; a socket already closing stops it with ValueError). It keeps alive
    the memory the message points into and the cells it sends.
    """

    __slots__ = ("address", "cells", "check", "closed_at", "desc", "flags", "keep", "msg", "names", "native", "slots")

    def __init__(
        self,
        desc: Any,
        payload: bytes,
        chunk: list[tuple[str, Kind, Any]],
        flags: int,
        address: object = None,
        check: syscalls.Checkpoint | None = None,
    ) -> None:
        self.desc, self.flags, self.address, self.check = desc, flags, address, check
        self.names = [name for name, _, _ in chunk]
        self.cells = [cell for _, _, cell in chunk]
        self.msg, self.keep = control.rights_message(payload, [-1] * len(self.cells))  # slots the native call fills
        self.native = ffi.new("struct jn_desc *[]", self.cells)
        self.slots = control.rights_slots(self.msg) if self.cells else ffi.NULL
        self.closed_at = ffi.new("int *", -1)

    def __call__(self) -> int:
        try:
            return syscalls.sendmsg_rights_on(
                self.desc, self.msg, self.flags, self.native, self.slots, len(self.cells), self.closed_at,
                self.address, self.check,
            )  # fmt: skip
        except (SocketError, ErrnoBug):
            at = self.closed_at[0]
            if at >= 0:
                raise ValueError(
                    f"socket {self.names[at]!r} was closed by another thread while it was being sent"
                ) from None
            raise


def send_sockets(channel: Stream, sockets: Mapping[str, AnySocket], *, ctx: Context | None = None) -> None:
    """Send copies of ``sockets`` (name -> `Server` | `Socket` | `Stream`) over a unix stream.

    The receiving process gets its own descriptors for the same sockets (as after
    fork): the sender's objects stay open and its own until it closes them, and
    closing them never affects the receiver. Names and order travel with the
    descriptors; any number of sockets goes in chunks of at most ``SCM_MAX_FD``.

    Args:
        channel: a connected unix `Stream` (``jn.connect("unix:...")`` or an accepted one).
        sockets: the sockets by name; names are 1..255 printable ASCII characters
            without ':' (systemd's FDNAME rule).
        ctx: a `Context`; a cancel or deadline ends a send that waits for buffer space
            with `SocketError.Timeout` (the receiver then sees a truncated transfer and
            refuses it, closing what it got).

    Raises:
        TypeError / ValueError: a bad channel, mapping, socket or name (before any syscall).
        SocketError.SocketUnconnected: the receiver is gone (EPIPE).
        SocketError.ConnectionResetByPeer: the receiver closed with data unread.
        SocketError.SystemResources: too many descriptors in flight (ETOOMANYREFS).
        SocketError.Timeout: the context ended.
    """
    chan = _check_channel(channel)
    items = _items(sockets)
    total = len(items)
    if chan.closed:
        raise ValueError("the channel is closed")
    start = 0
    while True:
        chunk = items[start : start + CHUNK_MAX]
        start += len(chunk)
        last = start >= total
        entries = b"".join(
            struct.pack("!BB", _KIND_CODES[kind], len(name)) + name.encode("ascii") for name, kind, _ in chunk
        )
        header = HEADER.pack(MAGIC, VERSION, LAST if last else 0, len(chunk), total, len(entries))
        _send_all(chan, header + entries, chunk, ctx, chan.address)
        if last:
            return


# --- Receiving


class _Receiver:
    """Reads exact byte counts from the channel, keeping every descriptor that arrives on the way.

    Each recvmsg's control buffer has room for exactly the descriptors the peer still
    announced for the chunk being read (`control.rights_room`): the kernel installs
    every descriptor a message carries before recvmsg returns, and drops those past
    the room with MSG_CTRUNC, so a peer can never make this process hold more than
    it announced. Until claimed, the descriptors are owned by the control buffers
    (`control.RightsBuffer`); `close_all` closes them explicitly, and each buffer's
    collection is only the last resort.
    """

    def __init__(self, chan: Stream, ctx: Context | None) -> None:
        self.chan = chan
        self.ctx = ctx
        self.deliveries: list[control.RightsBuffer] = []
        #: Every received SCM_RIGHTS slot array, in arrival order: (int *, count).
        self.rights: list[tuple[Any, int]] = []

    def arrived(self, first: int = 0) -> int:
        """Descriptors received since slot array ``first``."""
        return sum(count for _, count in self.rights[first:])

    def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes at the head of the channel, left there, with no room for descriptors.

        A peek with no control buffer installs nothing (the kernel drops its copies of
        any descriptors and only sets MSG_CTRUNC). May return fewer bytes than asked
        (a shorter message at the head); b"" at end of stream.
        """
        buffer = control.RightsBuffer(size, 0)
        self.deliveries.append(buffer)
        got = self._recvmsg(buffer, lib.MSG_PEEK)
        return ffi.buffer(buffer.data, got)[:]

    def read(self, size: int, room: int) -> bytes:
        """Exactly ``size`` bytes; at most ``room`` descriptors may come with them."""
        out = bytearray()
        while len(out) < size:
            buffer = control.RightsBuffer(size - len(out), room)
            self.deliveries.append(buffer)  # owned before the kernel can put anything in it
            got = self._recvmsg(buffer, 0)
            came = self._collect(buffer)
            room -= came
            if buffer.msg.msg_flags & lib.MSG_CTRUNC:
                raise _protocol("the control message was truncated (MSG_CTRUNC): more descriptors than announced")
            if got == 0:
                raise SocketError.ConnectionResetByPeer(
                    None, "the peer closed the channel before the transfer was complete", syscall="recvmsg"
                )
            out += ffi.buffer(buffer.data, got)
        return bytes(out)

    def _collect(self, buffer: control.RightsBuffer) -> int:
        """Record the descriptors one recvmsg brought; ProtocolFailure for anything else in its control buffer."""
        cmsgs = control.walk(buffer.msg, "recvmsg")  # closes what it saw before it raises
        came = 0
        for cmsg in cmsgs:
            if not cmsg.is_rights:
                raise _protocol("the peer sent a control message that is not SCM_RIGHTS")
            slots, count = cmsg.slots()
            self.rights.append((slots, count))
            came += count
            if not platform.MSG_CMSG_CLOEXEC:
                for i in range(count):
                    syscalls.set_cloexec(slots[i])
        return came

    def _recvmsg(self, buffer: control.RightsBuffer, flags: int) -> int:
        desc = self.chan._desc
        msg = buffer.msg
        flags |= _RECEIVE_FLAGS
        check = None if self.ctx is None else self.ctx.check

        def attempt() -> int:
            buffer.reset()
            return syscalls.recvmsg_on(desc, msg, flags, check)

        # End of stream (0) after a hang-up is what the caller reads as "the peer is gone".
        return waiting.wait_for(desc, waiting.POLLIN, self.ctx, attempt, lambda: self.chan._closed_error("receive"))

    def slots(self, first: int = 0) -> list[tuple[Any, int]]:
        """Every (slot array, index) of the descriptors that arrived since slot array ``first``, in order."""
        return [(slots, i) for slots, count in self.rights[first:] for i in range(count)]

    def close_all(self) -> None:
        """Close every descriptor received and not claimed (each exactly once), before the error propagates."""
        control.close_all(self.rights)
        for buffer in self.deliveries:
            buffer.close()  # what the rule could read of a buffer whose walk was cut short


def _protocol(why: str) -> SocketError:
    return SocketError.ProtocolFailure(None, f"receive_sockets: {why}", syscall="recvmsg")


def _check_uids(allow_uids: Iterable[int] | None) -> frozenset[int]:
    if allow_uids is None:
        return frozenset()
    if isinstance(allow_uids, (str, bytes)) or not isinstance(allow_uids, Iterable):
        raise TypeError("allow_uids must be an iterable of user ids")
    uids = frozenset(allow_uids)
    for uid in uids:
        if type(uid) is not int or uid < 0:
            raise TypeError(f"allow_uids must hold user ids (int >= 0), not {uid!r}")
    return uids


def check_peer(fd: int | Any, allow_uids: frozenset[int], address: object = None) -> tuple[int, int, int]:
    """The peer's (pid, uid, gid) by SO_PEERCRED; AccessDenied unless the uid is ours or allowed."""
    pid, uid, gid = syscalls.peer_credentials(fd)
    if uid != os.getuid() and uid not in allow_uids:
        raise SocketError.AccessDenied(
            None,
            f"the peer (pid {pid}) runs as uid {uid}, not {os.getuid()}; pass allow_uids= to accept it",
            address=None if address is None else str(address),
        )
    return pid, uid, gid


def receive_sockets(
    channel: Stream,
    *,
    ctx: Context | None = None,
    capability: NetBind | None = None,
    allow_uids: Iterable[int] | None = None,
) -> dict[str, AnySocket]:
    """Receive the sockets one `send_sockets` call sent: ``{name: Server | Socket | Stream}``, in order.

    Nothing is half-given: either every socket is checked and returned, or every
    descriptor received is closed and an error is raised.

    Args:
        channel: a connected unix `Stream`.
        ctx: a `Context`; a cancel or deadline ends the wait with `SocketError.Timeout`.
        capability: a `NetBind`; each received `Server` and `Socket` has its real
            address checked and audited (``check_bind_address``), as ``fd://`` adoption
            does, and raises the ``janus_net.bind`` audit event with ``fd://N``. A
            connected `Stream` binds nothing and is not gated.
        allow_uids: user ids accepted besides this process's own (SO_PEERCRED).

    Raises:
        SocketError.AccessDenied: the peer runs as another user (nothing was read).
        SocketError.ProtocolFailure: a malformed or truncated message, more or fewer
            descriptors than announced, or a descriptor that is not the announced kind
            of socket (a pipe, an unbound datagram socket...).
        SocketError.ConnectionResetByPeer: the peer closed or died mid-transfer.
        SocketError.CapabilityDenied: the capability refuses a socket's address.
        SocketError.Timeout: the context ended.
    """
    chan = _check_channel(channel)
    uids = _check_uids(allow_uids)
    if chan.closed:
        raise ValueError("the channel is closed")
    check_peer(chan._desc, uids, chan.address)
    receiver = _Receiver(chan, ctx)
    result: dict[str, AnySocket] = {}
    try:
        entries = _receive_entries(receiver)
        refs = receiver.slots()
        # The adoption door judges each (ProtocolFailure for the whole transfer), gates it
        # with its real address, type and protocol, and only then owns any.
        verdicts = [
            adopt.judge_received(slots[i], kind, name, capability)
            for (name, kind), (slots, i) in zip(entries, refs, strict=True)
        ]
        for verdict in verdicts:
            adopt.announce(verdict.seen.target, capability)
        if ctx is not None:
            ctx.check()
        for (name, _), verdict, (slots, i) in zip(entries, verdicts, refs, strict=True):
            result[name] = adopt.own(verdict, slots + i)
        return result  # inside the try: an interrupt at this very line still closes everything
    except BaseException:
        for sock in result.values():
            sock.close()
        receiver.close_all()
        raise


def _receive_entries(receiver: _Receiver) -> list[tuple[str, Kind]]:
    """Read every chunk; check each against the descriptors that really came with it.

    Each header is peeked first (no room for descriptors: nothing is installed), so
    its count is known before the recvmsg that takes it, and the whole transfer's
    total is checked against RLIMIT_NOFILE before any descriptor can arrive.
    """
    entries: list[tuple[str, Kind]] = []
    names: set[str] = set()
    total: int | None = None
    while True:
        first = len(receiver.rights)
        peeked = receiver.peek(HEADER.size)
        room = 0
        if len(peeked) == HEADER.size:
            # The descriptors of a chunk come with its first byte: room for its count.
            room, total = _check_header(HEADER.unpack(peeked), total, len(entries), receiver)
        # A shorter head (a peer that split its header) leaves no room: a chunk whose
        # descriptors do not come with its header is refused below.
        header = HEADER.unpack(receiver.read(HEADER.size, room))
        count, total = _check_header(header, total, len(entries), receiver)
        length = header[5]
        body = receiver.read(length, count - receiver.arrived(first))
        arrived = receiver.arrived(first)
        if arrived != count:
            raise _protocol(f"{arrived} descriptors arrived where {count} were announced")
        entries.extend(_parse_entries(body, count, names))
        if header[2] & LAST:
            return entries


def _check_header(
    header: tuple[bytes, int, int, int, int, int], total: int | None, done: int, receiver: _Receiver
) -> tuple[int, int]:
    """(descriptors in this chunk, in the whole transfer) from a chunk header, each checked."""
    magic, version, flags, count, announced, length = header
    if magic != MAGIC:
        raise _protocol(f"not a janus_net socket transfer (magic {magic!r})")
    if version != VERSION:
        raise _protocol(f"unknown protocol version {version}")
    if flags & ~LAST:
        raise _protocol(f"unknown flags {flags:#x}")
    if total is None:
        if announced > TRANSFER_MAX:
            raise _protocol(f"{announced} sockets announced, more than {TRANSFER_MAX}")
        check = None if receiver.ctx is None else receiver.ctx.check
        limit = syscalls.nofile_limit(check)
        if announced > limit:
            raise SocketError.ProcessFdQuotaExceeded(
                errno.EMFILE,
                f"the peer announced {announced} sockets, more than this process may hold (RLIMIT_NOFILE {limit})",
                syscall="recvmsg",
            )
        total = announced
    elif announced != total:
        raise _protocol("the announced total changed between chunks")
    if count > CHUNK_MAX or done + count > total or (count == 0 and not flags & LAST):
        raise _protocol(f"a chunk of {count} descriptors does not fit a transfer of {total}")
    if flags & LAST and done + count != total:
        raise _protocol(f"the last chunk ends the transfer at {done + count} of {total} sockets")
    if not 3 * count <= length <= (2 + NAME_MAX) * count:
        raise _protocol(f"{length} bytes of entries cannot describe {count} sockets")
    return count, total


def _parse_entries(body: bytes, count: int, names: set[str]) -> list[tuple[str, Kind]]:
    entries: list[tuple[str, Kind]] = []
    pos = 0
    for _ in range(count):
        if pos + 2 > len(body):
            raise _protocol("an entry runs past the announced length")
        code, size = body[pos], body[pos + 1]
        pos += 2
        if not 1 <= code <= len(KINDS):
            raise _protocol(f"unknown socket kind {code}")
        raw = body[pos : pos + size]
        pos += size
        if len(raw) != size:
            raise _protocol("a name runs past the announced length")
        try:
            name = check_name(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise _protocol(f"invalid socket name {raw!r}") from None
        if name in names:
            raise _protocol(f"the name {name!r} is sent twice")
        names.add(name)
        entries.append((name, KINDS[code - 1]))
    if pos != len(body):
        raise _protocol("bytes left over after the announced entries")
    return entries


__all__ = ["check_name", "receive_sockets", "send_sockets"]
