"""I/O on owned sockets: accept, send and receive, each one native call on the cell.

Each ``jn_desc_*`` call takes the cell's in-flight count, makes its one syscall and
gives the count back before it returns, so no Python bytecode runs while a count is
held (janus_net._kernel.cells); an accepted fd is written into its own cell before the
call returns. Every one still goes through `retry` with its table, so the fault seam
reaches it by the same name and rows as the plain call. These are the non-blocking
first attempts: `WOULD_BLOCK` sends the caller to wait (janus_net._kernel.waking).

The send tables: SEND, and for sendmsg with a control message the rows that message
adds (SEND_SEGMENTS, SEND_FROM, SENDMSG); all but SENDMSG are named "send", so the
fault seam's "send" reaches them all. recvmsg uses RECEIVE, whose causes are the same.
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned

from janus_net import platform
from janus_net._kernel.cells import close_desc
from janus_net._kernel.flags import set_cloexec
from janus_net._kernel.loop import OUR_FD, OUR_POINTER, OUR_SOCKET, Checkpoint, Syscall, retry
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


# --- accept: one connection into its own cell

ACCEPT = Syscall(
    "accept",
    {
        E.ECONNABORTED: SocketError.ConnectionAborted,
        # EINVAL: not listening, which is what shutdown() makes of a listener.
        E.EINVAL: SocketError.SocketNotListening,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.EPROTO: SocketError.ProtocolFailure,
        # EPERM: Linux firewall rules forbid the connection.
        E.EPERM: SocketError.BlockedByFirewall,
    },
    {
        E.EBADF: OUR_FD,
        E.EFAULT: OUR_POINTER,
        E.ENOTSOCK: OUR_SOCKET,
        E.EOPNOTSUPP: "a Server is always a stream socket (made by listen, or adopted only after SO_TYPE and "
        "SO_ACCEPTCONN said so), and no process can change a socket's type",
    },
)


_SOCKADDR_P = ffi.typeof("struct sockaddr *")


def kick_acceptor(desc: Any) -> None:
    """Signal (SIGURG) the thread sleeping inside accept(2) on ``desc``, if one is (see jn_desc_kick)."""
    lib.jn_desc_kick(desc)


def set_accept_gap(microseconds: int) -> None:
    """Test hook: sleep this long between the native accept's readiness check and accept(2)."""
    lib.jn_accept_gap_us = microseconds


def accept_into(
    desc: Any,
    storage: Any,
    size: Any,
    into: Any,
    checkpoint: Checkpoint | None = None,
    address: object = None,
    ctx_cell: Any = ffi.NULL,
) -> int:
    """One accept on ``desc``'s listener, the new fd written into the cell ``into``.

    Never blocks for a connection another thread of this process took: the attempt
    runs only when poll says one is queued, one thread at a time. Returns the fd, or
    `WOULD_BLOCK` when none is queued (or another thread is taking it right now, or
    ``ctx_cell`` -- a context's `new_waker_cell` -- says the context was cancelled).
    """
    sa = ffi.cast(_SOCKADDR_P, storage)
    flags = lib.JN_SOCK_CLOEXEC if platform.HAS_ACCEPT4 else -1
    conn = retry(ACCEPT, lib.jn_desc_accept, (desc, sa, size, flags, into, ctx_cell), checkpoint, address, True)
    if conn >= 0 and not platform.HAS_ACCEPT4:
        try:
            set_cloexec(conn, checkpoint)
        except BaseException:
            close_desc(into)
            raise
    return conn


# --- send

SEND = Syscall(
    "send",
    {
        E.EACCES: SocketError.AccessDenied,
        # ECONNREFUSED: an earlier datagram drew an ICMP port unreachable, or a unix
        # destination has no socket bound to it.
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.EMSGSIZE: SocketError.MessageTooBig,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.EHOSTUNREACH: SocketError.HostUnreachable,
        E.ENETUNREACH: SocketError.NetworkUnreachable,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
        E.EAFNOSUPPORT: SocketError.AddressFamilyUnsupported,
        # EINVAL: a destination the kernel rejects. The known ones (port 0, another
        # family) are refused before the syscall by address.check_destination.
        E.EINVAL: SocketError.AddressUnavailable,
        # EISCONN: a destination given to a connected connection-mode socket (an adopted,
        # connected unix stream); EOPNOTSUPP: to one that is not connected.
        E.EISCONN: SocketError.SocketModeUnsupported,
        E.EOPNOTSUPP: SocketError.SocketModeUnsupported,
        # EPIPE: the peer is gone (SIGPIPE is suppressed, so we see the errno).
        E.EPIPE: SocketError.SocketUnconnected,
        E.ENOTCONN: SocketError.SocketUnconnected,
        # A unix destination path: the file system's answers, as for bind.
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        # EPROTOTYPE: the unix destination is a socket of another type (a stream).
        E.EPROTOTYPE: SocketError.SocketModeUnsupported,
        # EPERM: the destination does not let this socket send to it. A unix datagram
        # socket connected to another socket takes datagrams from that peer only
        # (unix_may_send in unix_dgram_sendmsg, net/unix/af_unix.c): its owner, not the caller, decides. A
        # netfilter rule that drops the datagram on output, an LSM and Landlock's
        # abstract-unix scope answer EPERM too. AccessDenied, not ConnectionRefused:
        # the destination exists and listens; this sender is what it refuses.
        E.EPERM: SocketError.AccessDenied,
        # ECONNABORTED: another process destroyed the connection (ss -K, SOCK_DESTROY),
        # reported to the next write.
        E.ECONNABORTED: SocketError.ConnectionAborted,
        # ETIMEDOUT: the peer stopped acknowledging (retransmissions or TCP_USER_TIMEOUT ran
        # out, a keepalive went unanswered); the next write reports it.
        E.ETIMEDOUT: SocketError.ConnectionTimedOut,
    },
    {
        E.EBADF: OUR_FD,
        E.EDESTADDRREQ: "Socket.send and send_many always pass a destination, and Stream.write runs only on "
        "a connected stream",
        E.EFAULT: OUR_POINTER,
        E.ENOTSOCK: OUR_SOCKET,
    },
)


#: The flags of every janus_net send: never SIGPIPE (DESIGN §3), and never asleep in the
#: kernel, where close() from another thread cannot wake it: a full buffer is waited for
#: in janus_net's poll (janus_net._policy.waiting) instead.
SEND_FLAGS: int = platform.MSG_NOSIGNAL | lib.MSG_DONTWAIT

#: The native owned-descriptor calls with their tables, for the hot paths that hand
#: them to `retry` themselves (one Python frame less per datagram than a wrapper).
SENDTO_CALL = (SEND, lib.jn_desc_sendto)

#: sendto an encoded IP sockaddr, the per-packet send (`Socket.send`): SEND's table
#: and name. `SEND_CHECK` when the sockaddr needs Python's checks (no syscall made).
SEND_IP = lib.jn_desc_send_ip
SEND_CHECK = lib.JN_SEND_CHECK


def send_on(desc: Any, data: Any, size: int, flags: int, address: object = None) -> int:
    """send(2) on a connected owned socket; `WOULD_BLOCK` when ``flags`` say MSG_DONTWAIT and it would."""
    return retry(SEND, lib.jn_desc_send, (desc, data, size, flags), None, address, True)


#: sendmmsg and recvmmsg on an owned socket, for the batched paths that make their
#: first attempt inline (`janus_net._sockets.batching`): SEND's and RECEIVE's tables.
SENDMMSG_CALL = (SEND, lib.jn_desc_sendmmsg)


def sendmmsg_on(desc: Any, msgs: Any, count: int, flags: int, address: object = None) -> int:
    """sendmmsg(2) of ``count`` prepared ``struct mmsghdr``; returns how many went.

    The SEND table applies: the kernel reports an error only when the first message
    fails (a later failure ends the batch early and shows as a smaller count).
    `WOULD_BLOCK` when ``flags`` say MSG_DONTWAIT and nothing could go.
    """
    return retry(SEND, lib.jn_desc_sendmmsg, (desc, msgs, count, flags), None, address, True)


# sendmsg for UDP segmentation offload and for a reply from a chosen source address
# (DESIGN §15). Both are named "send", so the fault seam's "send" reaches them too; each
# is SEND with the rows its control message adds.

#: sendmsg with a UDP_SEGMENT control message. The added rows mean "this socket or
#: route cannot segment": `janus_net._sockets.segments` catches OptionUnsupported from this table
#: and sends the same datagrams with sendmmsg instead, so a user never sees these rows.
SEND_SEGMENTS = Syscall(
    "send",
    {
        **SEND.errors,
        # EIO: the route cannot segment: an IPsec (xfrm) route, or (kernels before 6.11)
        # a device without checksum offload.
        E.EIO: SocketError.OptionUnsupported,
        # EINVAL: SO_NO_CHECK on the socket, more segments than the kernel's
        # UDP_MAX_SEGMENTS, or (older kernels) a segment larger than the route's MTU.
        E.EINVAL: SocketError.OptionUnsupported,
        # EMSGSIZE: a segment larger than the route's MTU (newer kernels). The total was
        # checked against the UDP limit before the call, so this is the route, not the
        # data: sent one by one, such datagrams are fragmented (or refused, with
        # IP_PMTUDISC_DO, as MessageTooBig by the fallback's own SEND table).
        E.EMSGSIZE: SocketError.OptionUnsupported,
        # ENOPROTOOPT / EOPNOTSUPP: a kernel or socket type without UDP_SEGMENT.
        E.ENOPROTOOPT: SocketError.OptionUnsupported,
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
    },
    bugs={err: why for err, why in SEND.bugs.items() if err not in (E.EINVAL, E.EOPNOTSUPP)},
    label="send (segments)",
)


#: sendmsg with an IP_PKTINFO / IPV6_PKTINFO control message naming the source address.
SEND_FROM = Syscall(
    "send",
    {
        **SEND.errors,
        # EINVAL: the source address is not an address of this host (or not of the
        # interface a link-local one names): the caller chose it.
        E.EINVAL: SocketError.AddressUnavailable,
    },
    bugs={err: why for err, why in SEND.bugs.items() if err != E.EINVAL},
    label="send (from source)",
)


# sendmsg with SCM_RIGHTS (send_sockets, notify): send's causes, plus one of its own.
SENDMSG = Syscall(
    "sendmsg",
    {
        **SEND.errors,
        # ETOOMANYREFS: more descriptors in flight than the sender's RLIMIT_NOFILE allows.
        E.ETOOMANYREFS: SocketError.SystemResources,
    },
    bugs=SEND.bugs,
    label="sendmsg (descriptors)",
)


def sendmsg_on(
    desc: Any, msg: Any, flags: int, table: Syscall = SEND, address: object = None, checkpoint: Checkpoint | None = None
) -> int:
    """sendmsg(2) of a prepared ``struct msghdr *`` on an owned socket; `WOULD_BLOCK` when it would block.

    ``table`` is SEND, or the table of the control message it carries (SEND_SEGMENTS,
    SEND_FROM, SENDMSG for descriptors).
    """
    return retry(table, lib.jn_desc_sendmsg, (desc, msg, flags), checkpoint, address, True)


def sendmsg_rights_on(
    desc: Any, msg: Any, flags: int, cells: Any, slots: Any, count: int, closed_at: Any,
    address: object = None, checkpoint: Checkpoint | None = None,
) -> int:  # fmt: skip
    """`sendmsg_on` with SCM_RIGHTS for the sockets in ``cells``, each held in flight during the call.

    Their fds are written into ``slots`` (the message's SCM_RIGHTS data) by the native
    call itself. If one of them is closing already, nothing is sent: the SENDMSG
    table's EBADF row is raised and ``closed_at[0]`` is its index.
    """
    return retry(
        SENDMSG,
        lib.jn_desc_sendmsg_rights,
        (desc, msg, flags, cells, slots, count, closed_at),
        checkpoint,
        address,
        True,
    )


# --- receive

RECEIVE = Syscall(
    "receive",
    {
        E.ECONNREFUSED: SocketError.ConnectionRefused,
        E.ECONNRESET: SocketError.ConnectionResetByPeer,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOTCONN: SocketError.SocketUnconnected,
        # EINVAL: Linux's answer to a read on a unix stream socket that is not connected
        # (bind("unix:...", mode=Mode.STREAM) then receive), where TCP says ENOTCONN.
        E.EINVAL: SocketError.SocketUnconnected,
        E.ETIMEDOUT: SocketError.ConnectionTimedOut,
        E.ENETDOWN: SocketError.NetworkSubsystemDown,
    },
    {
        E.EBADF: OUR_FD,
        E.EFAULT: OUR_POINTER,
        E.ENOTSOCK: OUR_SOCKET,
        E.EOPNOTSUPP: "the only flags passed are MSG_DONTWAIT and MSG_WAITFORONE, which every IP and unix "
        "socket takes; only MSG_OOB and the like draw EOPNOTSUPP",
    },
)


RECVFROM_CALL = (RECEIVE, lib.jn_desc_recvfrom)

#: recvfrom into a `struct jn_rx` (janus_net.h), the per-packet receive: RECEIVE's
#: table and name, so the fault seam's "receive" reaches it as it reaches recvfrom.
#: `JN_RX_SIZE` when the size does not fit its buffer (no syscall made).
RECEIVE_RX = lib.jn_desc_receive
RX_SIZE = lib.JN_RX_SIZE


def recv_on(desc: Any, buf: Any, size: int, flags: int, checkpoint: Checkpoint | None = None) -> int:
    """recv(2) on an owned socket; 0 at end of stream, `WOULD_BLOCK` when it would block."""
    return retry(RECEIVE, lib.jn_desc_recv, (desc, buf, size, flags), checkpoint, None, True)


def recvmmsg_on(desc: Any, msgs: Any, count: int, flags: int, checkpoint: Checkpoint | None = None) -> int:
    """recvmmsg(2) into ``count`` prepared ``struct mmsghdr``; returns how many arrived.

    No timeout is ever passed (the shim passes NULL): recvmmsg checks its timeout only
    after a datagram arrives (BUGS in recvmmsg(2),
    https://man7.org/linux/man-pages/man2/recvmmsg.2.html), so callers wait with poll instead.
    `WOULD_BLOCK` when nothing is queued.
    """
    return retry(RECEIVE, lib.jn_desc_recvmmsg, (desc, msgs, count, flags), checkpoint, None, True)


#: recvmmsg into a `struct jn_rxm` (janus_net.h), receive_many's call: the headers are
#: restored from their pristine copy before it and what the datagrams share (one length,
#: one IPv4 source) is written after it; RECEIVE's table and name, so the fault seam's
#: "receive" reaches it as it reaches recvmmsg. MSG_DONTWAIT is its flag.
RECEIVE_MANY_CALL = (RECEIVE, lib.jn_desc_receive_many)


def receive_many_on(desc: Any, rx: Any, count: int, checkpoint: Checkpoint | None = None) -> int:
    """`jn_desc_receive_many` of ``count`` datagrams into ``rx``; `WOULD_BLOCK` when nothing is queued.

    recvmmsg's own timeout is never used, for the reason `recvmmsg_on` gives.
    """
    return retry(RECEIVE, lib.jn_desc_receive_many, (desc, rx, count), checkpoint, None, True)


def recvmsg_on(desc: Any, msg: Any, flags: int, checkpoint: Checkpoint | None = None) -> int:
    """recvmsg(2) into a prepared ``struct msghdr *`` on an owned socket; `WOULD_BLOCK` when nothing is there."""
    return retry(RECEIVE, lib.jn_desc_recvmsg, (desc, msg, flags), checkpoint, None, True)


def recvmsg(fd: int, msg: Any, flags: int, checkpoint: Checkpoint | None = None, nonblocking: bool = False) -> int:
    """recvmsg(2) into a prepared ``struct msghdr *`` (RECEIVE table); 0 means end of stream.

    `WOULD_BLOCK` when ``nonblocking`` and nothing is there.
    """
    return retry(RECEIVE, lib.recvmsg, (fd, msg, flags), checkpoint, None, nonblocking)
