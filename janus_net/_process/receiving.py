"""The receiving side of a socket transfer: `receive_sockets` (SCM_RIGHTS), and `check_peer`.

The receiver checks everything before it hands anything out: the magic, the
version, every count against the others and against the descriptors that really
arrived, every length against the bytes that really arrived, every name (the
format and its bounds: `janus_net._process.transfer`), and each descriptor's real
kind (the adoption door, `janus_net._profiles.adoption`, as for ``fd://``) against the
announced one. A chunk's descriptors must come with its header: the header is
peeked first (a peek installs no descriptor), its total checked against
RLIMIT_NOFILE, and each recvmsg then has room for exactly the descriptors the chunk
still announces, so the kernel drops any more a peer sends (MSG_CTRUNC) and this
process never holds more than was announced. Control buffers are read by
`janus_net._kernel.control` under its one bounds rule. Received descriptors are
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
import os
from collections.abc import Callable, Iterable

from janus_net import platform
from janus_net._kernel import cell_io, confinement, control, socket_options
from janus_net._kernel import flags as kernel_flags
from janus_net._policy import waiting
from janus_net._process.transfer import (
    HEADER,
    LAST,
    AnySocket,
    check_channel,
    check_header,
    parse_entries,
    protocol,
)
from janus_net._profiles import adoption
from janus_net._shim import ffi, lib
from janus_net._sockets.from_cell import Kind
from janus_net._sockets.owner import raise_woken
from janus_net._sockets.stream import Stream
from janus_net._values.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._policy.capability import NetBind
    from janus_net._policy.context import Context

_RECEIVE_FLAGS = platform.MSG_CMSG_CLOEXEC | lib.MSG_DONTWAIT


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
                raise protocol("the control message was truncated (MSG_CTRUNC): more descriptors than announced")
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
                raise protocol("the peer sent a control message that is not SCM_RIGHTS")
            slots, count = cmsg.slots()
            self.rights.append((slots, count))
            came += count
            if not platform.MSG_CMSG_CLOEXEC:
                for i in range(count):
                    kernel_flags.set_cloexec(slots[i])
        return came

    def _recvmsg(self, buffer: control.RightsBuffer, flags: int) -> int:
        desc = self.chan._desc
        msg = buffer.msg
        flags |= _RECEIVE_FLAGS
        check = None if self.ctx is None else self.ctx.check

        def attempt() -> int:
            buffer.reset()
            return cell_io.recvmsg_on(desc, msg, flags, check)

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
    pid, uid, gid = socket_options.peer_credentials(fd)
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
    chan = check_channel(channel)
    uids = _check_uids(allow_uids)
    if chan.closed:
        raise ValueError("the channel is closed")
    try:
        return _receive_checked(chan, uids, ctx, capability)
    except (SocketError, ErrnoBug) as e:
        # The channel was open when the call began (just checked), so a step that finds
        # it closed -- SO_PEERCRED, or a recvmsg after the peek or after a chunk, which
        # begins without waiting -- met another thread's close(): the closed member, as
        # for every call that close() ends (DESIGN §3), not the EBADF row.
        raise_woken(chan._desc, e, "receive", chan.address)


def _receive_checked(
    chan: Stream, uids: frozenset[int], ctx: Context | None, capability: NetBind | None
) -> dict[str, AnySocket]:
    """`receive_sockets` once its arguments are checked and the channel found open."""
    check_peer(chan._desc, uids, chan.address)
    receiver = _Receiver(chan, ctx)
    result: dict[str, AnySocket] = {}
    try:
        entries = _receive_entries(receiver)
        refs = receiver.slots()
        # The adoption door judges each (ProtocolFailure for the whole transfer), gates it
        # with its real address, type and protocol, and only then owns any.
        verdicts = [
            adoption.judge_received(slots[i], kind, name, capability)
            for (name, kind), (slots, i) in zip(entries, refs, strict=True)
        ]
        for verdict in verdicts:
            adoption.announce(verdict.seen.target, capability)
        if ctx is not None:
            ctx.check()
        for (name, _), verdict, (slots, i) in zip(entries, verdicts, refs, strict=True):
            result[name] = adoption.own(verdict, slots + i)
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
    admit = _fd_limit_check(receiver)
    while True:
        first = len(receiver.rights)
        peeked = receiver.peek(HEADER.size)
        room = 0
        if len(peeked) == HEADER.size:
            # The descriptors of a chunk come with its first byte: room for its count.
            room, total = check_header(HEADER.unpack(peeked), total, len(entries), admit)
        # A shorter head (a peer that split its header) leaves no room: a chunk whose
        # descriptors do not come with its header is refused below.
        header = HEADER.unpack(receiver.read(HEADER.size, room))
        count, total = check_header(header, total, len(entries), admit)
        length = header[5]
        body = receiver.read(length, count - receiver.arrived(first))
        arrived = receiver.arrived(first)
        if arrived != count:
            raise protocol(f"{arrived} descriptors arrived where {count} were announced")
        entries.extend(parse_entries(body, count, names))
        if header[2] & LAST:
            return entries


def _fd_limit_check(receiver: _Receiver) -> Callable[[int], None]:
    """What `check_header` asks about the first announced total: more than RLIMIT_NOFILE allows is refused."""

    def admit(announced: int) -> None:
        check = None if receiver.ctx is None else receiver.ctx.check
        limit = confinement.nofile_limit(check)
        if announced > limit:
            raise SocketError.ProcessFdQuotaExceeded(
                errno.EMFILE,
                f"the peer announced {announced} sockets, more than this process may hold (RLIMIT_NOFILE {limit})",
                syscall="recvmsg",
            )

    return admit


__all__ = ["check_peer", "receive_sockets"]
