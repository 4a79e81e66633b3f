"""Message headers and control messages: the one place a ``struct msghdr`` is built and a control buffer is read.

Every recvmsg in janus_net (datagrams with pktinfo, timestamps or GRO sizes; the
descriptors of `receive_sockets`; the notifications ``janus-net run`` reads) has its
control buffer read by `walk`, under one bounds rule:

    a control message is read only if its ``cmsg_len`` is at least ``CMSG_LEN(0)``,
    its header and its length lie inside the ``msg_controllen`` the kernel returned
    (and, but for the last message, its aligned length too: the kernel leaves out
    the padding after the last one when the buffer ends there), and its payload has
    the exact size its type requires (SCM_RIGHTS: a multiple of ``sizeof(int)``).

The first message that breaks the rule is `SocketError.ProtocolFailure`, raised
only after every descriptor seen in the buffer has been closed: a control buffer
is never left holding descriptors nobody will claim. Messages of a type with no
known size are handed on as they are (the reader decides whether it wanted them).
Truncation flags (MSG_TRUNC, MSG_CTRUNC) are the reader's to report: a datagram
socket calls them `MessageTooBig`, a transfer of descriptors `ProtocolFailure`.

Layout comes from the compiler: the ``CMSG_*`` macros through the shim's
``jn_cmsg_*`` functions and ``ffi.sizeof``; no size or alignment is written here.
"""

from __future__ import annotations

from janus_net import platform
from janus_net._kernel import cells
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

#: sizeof(int): an SCM_RIGHTS payload is a whole number of these, one per descriptor.
INT_SIZE: int = ffi.sizeof("int")
#: CMSG_LEN(0): a control message's header, the least a ``cmsg_len`` can be.
HEADER: int = lib.jn_cmsg_len(0)

_CHAR_P = ffi.typeof("char *")
_CMSG_P = ffi.typeof("struct cmsghdr *")
_INT_P = ffi.typeof("int *")
_RIGHTS = (lib.SOL_SOCKET, lib.SCM_RIGHTS)

#: The payload size each known (level, type) must have; SCM_RIGHTS is checked apart
#: (any multiple of sizeof(int)). Kinds the platform lacks are left out.
SIZES: dict[tuple[int, int], int] = {}
if platform.HAS_IP_PKTINFO:
    SIZES[(lib.IPPROTO_IP, lib.JN_IP_PKTINFO)] = ffi.sizeof("struct in_pktinfo")
if platform.HAS_IPV6_PKTINFO:
    SIZES[(lib.IPPROTO_IPV6, lib.JN_IPV6_PKTINFO)] = ffi.sizeof("struct in6_pktinfo")
if platform.HAS_TIMESTAMPNS:
    SIZES[(lib.SOL_SOCKET, lib.JN_SCM_TIMESTAMPNS)] = ffi.sizeof("struct timespec")
if platform.HAS_UDP_GRO:
    # The kernel's put_cmsg(..., UDP_GRO, sizeof(int), &gso_size) (udp(7)).
    SIZES[(lib.JN_SOL_UDP, lib.JN_UDP_GRO)] = INT_SIZE
if lib.JN_HAS_UCRED:
    SIZES[(lib.SOL_SOCKET, lib.JN_SCM_CREDENTIALS)] = ffi.sizeof("struct ucred")


class Cmsg:
    """One control message that passed the rule: ``level``, ``kind`` (cmsg_type), ``data`` (a
    ``unsigned char *`` to the payload) and ``size`` (the payload's bytes)."""

    __slots__ = ("data", "kind", "level", "size")

    def __init__(self, level: int, kind: int, data: Any, size: int) -> None:
        self.level = level
        self.kind = kind
        self.data = data
        self.size = size

    @property
    def is_rights(self) -> bool:
        return self.level == lib.SOL_SOCKET and self.kind == lib.SCM_RIGHTS

    def slots(self) -> tuple[Any, int]:
        """An SCM_RIGHTS message's descriptors: (``int *`` to the first slot, count)."""
        return ffi.cast(_INT_P, self.data), self.size // INT_SIZE


def scan(msg: Any) -> tuple[list[Cmsg], str | None, list[tuple[Any, int]]]:
    """Read ``msg``'s control buffer under the rule, without raising.

    Returns the messages that passed, in order; why the walk stopped early (None when
    the whole buffer was read); and every SCM_RIGHTS slot array seen, as (``int *``,
    count), including that of a rights message whose bounds hold but whose payload is
    not a whole number of ints (its whole ints are descriptors the kernel installed
    as far as anyone can tell, so they are closed, never read).
    """
    found: list[Cmsg] = []
    rights: list[tuple[Any, int]] = []
    controllen = int(msg.msg_controllen)
    if not controllen or msg.msg_control == ffi.NULL:
        return found, None, rights
    base = ffi.cast(_CHAR_P, msg.msg_control)
    offset = 0
    while offset < controllen:
        if offset + HEADER > controllen:
            return found, f"{controllen - offset} bytes at offset {offset} cannot hold a header ({HEADER})", rights
        cmsg = ffi.cast(_CMSG_P, base + offset)
        length = int(cmsg.cmsg_len)
        if length < HEADER or length > controllen - offset:
            why = f"length {length} at offset {offset} of a {controllen}-byte control buffer"
            return found, why, rights
        level = int(cmsg.cmsg_level)
        kind = int(cmsg.cmsg_type)
        size = length - HEADER
        data = lib.jn_cmsg_data(cmsg)
        if (level, kind) == _RIGHTS:
            if size // INT_SIZE:
                rights.append((ffi.cast(_INT_P, data), size // INT_SIZE))
            if size % INT_SIZE:
                return found, f"SCM_RIGHTS carries {size} bytes, not a whole number of descriptors", rights
        else:
            need = SIZES.get((level, kind))
            if need is not None and size != need:
                return found, f"{_name(level, kind)} carries {size} bytes, needs {need}", rights
        found.append(Cmsg(level, kind, data, size))
        # The next header is CMSG_NXTHDR's: past this message's aligned length.
        offset += lib.jn_cmsg_space(size)
    return found, None, rights


def walk(msg: Any, syscall: str = "receive") -> list[Cmsg]:
    """The control messages of ``msg`` (after recvmsg), each checked by the rule.

    Raises:
        SocketError.ProtocolFailure: the first message that breaks the rule, after
            every descriptor seen in the buffer was closed.
    """
    found, why, rights = scan(msg)
    if why is not None:
        close_all(rights)
        raise SocketError.ProtocolFailure(None, f"malformed control message: {why}", syscall=syscall)
    return found


def close_all(rights: list[tuple[Any, int]]) -> int:
    """Close every descriptor still in these SCM_RIGHTS slot arrays (each exactly once); returns how many."""
    closed = 0
    for slots, count in rights:
        closed += cells.close_slots(slots, count)
    return closed


def close_received(msg: Any) -> int:
    """Close every descriptor ``msg``'s control buffer still holds, as far as the rule can read it."""
    return close_all(scan(msg)[2])


def still_held(buffer: Any, size: int) -> list[int]:
    """The fds still in a received control buffer's SCM_RIGHTS slots (claimed ones read -1).

    For the owner registry (janus_net._kernel.owners), which must see every descriptor a
    buffer holds until it is claimed or closed. Walked as the native backstop that
    closes them walks it (jn_rights_close), not under the rule of `scan`: past what the
    kernel wrote the buffer is zero, and only a header that does not fit ends it.
    ``size`` is the buffer's whole size (`cells.RIGHTS_CONTROL_SIZE`).
    """
    msg = ffi.new("struct msghdr *")
    msg.msg_control = buffer
    msg.msg_controllen = size
    base = int(ffi.cast("uintptr_t", buffer))
    fds: list[int] = []
    cmsg = lib.jn_cmsg_firsthdr(msg)
    while cmsg != ffi.NULL:
        length = int(cmsg.cmsg_len)
        if length < HEADER or int(ffi.cast("uintptr_t", cmsg)) - base + length > size:
            break
        if (int(cmsg.cmsg_level), int(cmsg.cmsg_type)) == _RIGHTS:
            slots = ffi.cast(_INT_P, lib.jn_cmsg_data(cmsg))
            fds.extend(slots[i] for i in range((length - HEADER) // INT_SIZE))
        cmsg = lib.jn_cmsg_nxthdr(msg, cmsg)
    return fds


def _name(level: int, kind: int) -> str:
    for label, key in _NAMES:
        if key == (level, kind):
            return label
    return f"control message (level {level}, type {kind})"


_NAMES = (
    ("IP_PKTINFO", (lib.IPPROTO_IP, lib.JN_IP_PKTINFO)),
    ("IPV6_PKTINFO", (lib.IPPROTO_IPV6, lib.JN_IPV6_PKTINFO)),
    ("SCM_TIMESTAMPNS", (lib.SOL_SOCKET, lib.JN_SCM_TIMESTAMPNS)),
    ("UDP_GRO", (lib.JN_SOL_UDP, lib.JN_UDP_GRO)),
    ("SCM_CREDENTIALS", (lib.SOL_SOCKET, lib.JN_SCM_CREDENTIALS)),
)


# --- Building message headers


def header(
    iov: Any, iovlen: int = 1, name: Any = ffi.NULL, namelen: int = 0, control: Any = ffi.NULL, controllen: int = 0
) -> Any:
    """A new ``struct msghdr *`` pointing at these buffers (the caller keeps them alive)."""
    msg = ffi.new("struct msghdr *")
    msg.msg_name = name
    msg.msg_namelen = namelen
    msg.msg_iov = iov
    msg.msg_iovlen = iovlen
    msg.msg_control = control
    msg.msg_controllen = controllen
    return msg


def rights_message(payload: bytes, fds: list[int]) -> tuple[Any, list[Any]]:
    """A ``struct msghdr *`` sending ``payload`` with ``fds`` as one SCM_RIGHTS message.

    Returns the msghdr and the cffi objects it points into (keep them alive while it is used).
    """
    data = ffi.new("char[]", payload)
    iov = ffi.new("struct iovec *")
    iov.iov_base = data
    iov.iov_len = len(payload)
    keep: list[Any] = [data, iov]
    if not fds:
        return header(iov), keep
    space = lib.jn_cmsg_space(len(fds) * INT_SIZE)
    control = ffi.new("char[]", space)
    msg = header(iov, control=control, controllen=space)
    cmsg = lib.jn_cmsg_firsthdr(msg)
    cmsg.cmsg_level = lib.SOL_SOCKET
    cmsg.cmsg_type = lib.SCM_RIGHTS
    cmsg.cmsg_len = lib.jn_cmsg_len(len(fds) * INT_SIZE)
    slots = ffi.cast(_INT_P, lib.jn_cmsg_data(cmsg))
    for i, fd in enumerate(fds):
        slots[i] = fd
    keep.append(control)
    return msg, keep


def rights_slots(msg: Any) -> Any:
    """The ``int *`` slots of the SCM_RIGHTS message `rights_message` built in ``msg`` (for a native call to fill)."""
    return ffi.cast(_INT_P, lib.jn_cmsg_data(lib.jn_cmsg_firsthdr(msg)))


def rights_room(count: int) -> int:
    """The ``msg_controllen`` that lets the kernel install at most ``count`` descriptors.

    ``CMSG_LEN(count * sizeof(int))``, not ``CMSG_SPACE`` (cmsg(3)): the kernel fits as many
    descriptors as the length allows past the header, and CMSG_SPACE's padding
    would make room for one more when ``count`` is odd. 0 makes room for none
    (anything sent is dropped by the kernel, which sets MSG_CTRUNC).
    """
    return lib.jn_cmsg_len(count * INT_SIZE) if count > 0 else 0


class RightsBuffer:
    """The buffers of one recvmsg that may receive descriptors: data, iovec, a control buffer, the msghdr.

    The control buffer is zeroed and as large as one SCM_RIGHTS message of SCM_MAX_FD
    descriptors whatever room ``msg_controllen`` gives, and its collection closes
    whatever descriptor is still in it (`cells.new_rights_buffer`): the last
    resort when an asynchronous exception cuts a reader's own cleanup short. The
    reader's normal and error paths close explicitly (`close`).
    """

    __slots__ = ("control", "data", "iov", "msg", "room")

    def __init__(self, size: int, room: int, name: Any = ffi.NULL, namelen: int = 0) -> None:
        self.data = ffi.new("char[]", max(size, 1))
        self.iov = ffi.new("struct iovec *")
        self.iov.iov_base = self.data
        self.iov.iov_len = size
        self.control = cells.new_rights_buffer()
        self.room = rights_room(room)
        self.msg = header(self.iov, name=name, namelen=namelen, control=self.control, controllen=self.room)

    def reset(self) -> None:
        """Before each attempt: the kernel shortens ``msg_controllen`` to what it wrote."""
        self.msg.msg_controllen = self.room
        self.msg.msg_flags = 0

    def close(self) -> int:
        """Close every descriptor still in the control buffer (each once); returns how many."""
        return close_received(self.msg)


class Outgoing:
    """A ``struct msghdr`` for one send: destination, one iovec, and one control message."""

    __slots__ = ("control", "iov", "msg", "payload", "target", "value")

    def __init__(self, level: int, type_: int, payload_size: int) -> None:
        space = lib.jn_cmsg_space(payload_size)
        self.control = ffi.new("char[]", space)
        self.iov = ffi.new("struct iovec *")
        msg = header(self.iov, control=self.control, controllen=space)
        cmsg = lib.jn_cmsg_firsthdr(msg)
        if cmsg == ffi.NULL:  # the macros disagree with the space they computed: never on a sane libc
            raise SocketError.Unexpected(None, "CMSG_FIRSTHDR found no room for a control message")
        cmsg.cmsg_level = level
        cmsg.cmsg_type = type_
        cmsg.cmsg_len = lib.jn_cmsg_len(payload_size)
        self.payload = lib.jn_cmsg_data(cmsg)
        self.msg = msg
        self.target: Any = None
        self.value = -1

    def segment(self, size: int) -> None:
        """Write a UDP_SEGMENT payload (a u16, udp(7)), unless it already holds ``size``."""
        if size != self.value:
            self.value = -1  # recorded only once written (an exception may stop us in between)
            ffi.cast("uint16_t *", self.payload)[0] = size
            self.value = size

    def point(self, target: Any, data: Any, size: int) -> None:
        """Aim at ``target`` (an address value, whose sockaddr it owns) with ``size`` bytes of ``data``."""
        if target is not self.target:  # the sockaddr is the address's own: rewritten only on a change
            self.target = None  # recorded only once written (an exception may stop us in between)
            encoded = target.sockaddr
            self.msg.msg_name = encoded.pointer
            self.msg.msg_namelen = encoded.length
            self.target = target
        self.iov.iov_base = data
        self.iov.iov_len = size


__all__ = [
    "HEADER",
    "INT_SIZE",
    "SIZES",
    "Cmsg",
    "Outgoing",
    "RightsBuffer",
    "close_all",
    "close_received",
    "header",
    "rights_message",
    "rights_room",
    "rights_slots",
    "scan",
    "still_held",
    "walk",
]
