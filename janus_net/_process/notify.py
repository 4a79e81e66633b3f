"""systemd's notification protocol (sd_notify), both ways: `notify` and `watchdog_interval` send, `receive` reads.

A service manager (systemd with ``Type=notify``, ``janus-net run``) puts the path
of a unix datagram socket in ``$NOTIFY_SOCKET`` (``@name`` for an abstract
socket); the service sends it newline-separated ``KEY=VALUE`` lines. With
``FDSTORE=1`` the datagram also carries descriptors (SCM_RIGHTS) for the manager to
keep across restarts, named by ``FDNAME=``; systemd hands them back through
LISTEN_FDS/LISTEN_FDNAMES (`janus_net.listen_fds`).

Each call makes its own close-on-exec datagram socket, connects it to the
notify socket (so a missing or dead manager is a typed error: FileNotFound,
ConnectionRefused), sends, and closes it on every path.

The receiving side is a manager's (``janus-net run``): `notification_socket` binds
the abstract datagram socket it names in ``$NOTIFY_SOCKET``, with SO_PASSCRED so
each datagram says which process sent it, and `receive` reads one datagram as a
`Notification`: the sender's pid, the text, and what was dropped on the way. The
control buffer has room for the credentials only, so descriptors a service stores
with FDSTORE=1 never enter the manager.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from janus_net import platform
from janus_net._kernel import cell_io, cells, control, loop, socket_options, sockets
from janus_net._kernel import cells as kernel_cells
from janus_net._process.sending import RightsSend
from janus_net._process.transfer import AnySocket, sockets_to_send
from janus_net._profiles.addresses import parse_address
from janus_net._profiles.listen import bind
from janus_net._shim import ffi, lib
from janus_net._sockets.datagram import Socket
from janus_net._values.errors import SocketError
from janus_net._values.kinds import Mode
from janus_net._values.strict import flag
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


def _text(name: str, value: str) -> str:
    if type(value) is not str:
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\n" in value or "\0" in value:
        raise ValueError(f"{name} must not contain a newline or a NUL byte: {value!r}")
    return value


def notify_address() -> UnixAddress | None:
    """The address in ``$NOTIFY_SOCKET``, or None when it is unset or empty.

    Raises InvalidAddress for a value that is neither an absolute path nor ``@name``.
    """
    text = os.environ.get("NOTIFY_SOCKET")
    if not text:
        return None
    if "\0" in text:
        raise SocketError.InvalidAddress(None, "NOTIFY_SOCKET contains a NUL byte", address=repr(text))
    if text.startswith(("@", "/")):
        try:
            address = parse_address("unix:" + text)
        except SocketError as e:
            raise SocketError.InvalidAddress(None, f"NOTIFY_SOCKET is not usable: {e}", address=repr(text)) from e
        assert isinstance(address, UnixAddress)
        return address
    raise SocketError.InvalidAddress(
        None, "NOTIFY_SOCKET must be an absolute path or an @abstract name", address=repr(text)
    )


def notify(
    *,
    ready: bool = False,
    reloading: bool = False,
    stopping: bool = False,
    status: str | None = None,
    mainpid: int | None = None,
    watchdog: bool = False,
    fds: Mapping[str, AnySocket] | None = None,
    errno: int | None = None,
) -> bool:
    """Tell the service manager about this service's state (sd_notify).

    Args:
        ready: ``READY=1``: start-up is finished (``janus-net run`` stops the old
            process of a reload when its successor says this).
        reloading: ``RELOADING=1`` with ``MONOTONIC_USEC=`` (the time now on
            CLOCK_MONOTONIC, as systemd's ``Type=notify-reload`` wants).
        stopping: ``STOPPING=1``.
        status: ``STATUS=...``, free text for ``systemctl status`` (no newline, no NUL).
        mainpid: ``MAINPID=N``.
        watchdog: ``WATCHDOG=1``, the keep-alive ping (see `watchdog_interval`).
        fds: ``name -> socket``: ``FDSTORE=1`` and ``FDNAME=name`` with a copy of the
            socket's descriptor (SCM_RIGHTS), for the manager to keep. One datagram is
            sent per name (the protocol carries one FDNAME per datagram); the other
            fields go with the last one, so a single datagram is sent unless
            several names are stored.
        errno: ``ERRNO=N``, the error number of a failure (a failed reload, with ``status``).

    Returns:
        False when ``NOTIFY_SOCKET`` is not set (nothing was sent), True once sent.

    Raises:
        TypeError / ValueError: a bad value, or nothing to send (before any syscall).
        SocketError.InvalidAddress: ``NOTIFY_SOCKET`` is neither a path nor ``@name``.
        SocketError.FileNotFound / ConnectionRefused / AccessDenied: the manager's
            socket is missing, nobody reads it, or it is not ours to write.
        SocketError.MessageTooBig / SystemResources: the kernel refused the datagram.
    """
    lines = []
    if flag("ready", ready):
        lines.append("READY=1")
    if flag("reloading", reloading):
        lines.append("RELOADING=1")
        lines.append(f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
    if flag("stopping", stopping):
        lines.append("STOPPING=1")
    if status is not None:
        lines.append(f"STATUS={_text('status', status)}")
    if mainpid is not None:
        if type(mainpid) is not int:
            raise TypeError(f"mainpid must be an int, not {type(mainpid).__name__}")
        if mainpid <= 0:
            raise ValueError(f"mainpid must be a process id (> 0), not {mainpid}")
        lines.append(f"MAINPID={mainpid}")
    if flag("watchdog", watchdog):
        lines.append("WATCHDOG=1")
    if errno is not None:
        if type(errno) is not int:
            raise TypeError(f"errno must be an int, not {type(errno).__name__}")
        if errno <= 0:
            raise ValueError(f"errno must be an error number (> 0), not {errno}")
        lines.append(f"ERRNO={errno}")
    stored = [] if fds is None else sockets_to_send(fds)
    if not lines and not stored:
        raise ValueError("notify() needs at least one thing to say")
    messages: list[tuple[list[str], list[Any]]] = [
        (["FDSTORE=1", f"FDNAME={name}"], [(name, kind, cell)]) for name, kind, cell in stored
    ]
    if messages:
        messages[-1][0].extend(lines)
    else:
        messages.append((lines, []))

    address = notify_address()
    if address is None:
        return False
    desc = kernel_cells.new_desc()  # socket() writes the fd into the cell: no bytecode holds it alone
    try:
        fd = sockets.socket(desc, lib.AF_UNIX, lib.SOCK_DGRAM, 0)
        encoded = address.sockaddr
        sockets.connect(fd, encoded.pointer, encoded.length, address)
        for message_lines, message_sockets in messages:
            payload = ("\n".join(message_lines) + "\n").encode()
            RightsSend(desc, payload, message_sockets, platform.MSG_NOSIGNAL, address)()
    finally:
        kernel_cells.close_desc(desc)
    return True


def watchdog_interval() -> float | None:
    """The watchdog period the manager asked for, in seconds: ping with ``notify(watchdog=True)`` within it.

    Reads ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, which when set must be this
    process). Returns None when unset, or meant for another process (a parent's
    variables in a child's environment). systemd's advice: ping every half interval.

    Raises:
        ValueError: a variable that is not a positive decimal number.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if usec is None:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid is not None and _positive("WATCHDOG_PID", pid) != os.getpid():
        return None
    return _positive("WATCHDOG_USEC", usec) / 1_000_000


def _positive(variable: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) == 0:
        raise ValueError(f"{variable}={text!r} is not a positive decimal number")
    return int(text)


# --- The receiving side: a manager reading what its services say

#: The longest notification read; a longer datagram is cut off and counts as empty.
DATAGRAM_MAX = 4096
# Room for SCM_CREDENTIALS only: the kernel installs no descriptor a service attaches.
_CONTROL_SIZE: int = lib.jn_cmsg_space(ffi.sizeof("struct ucred"))


class Notification:
    """One datagram read from a notification socket.

    ``pid`` is the sender's, as the kernel vouches for it (SCM_CREDENTIALS; None if
    the datagram came without credentials); ``text`` its ``KEY=VALUE`` lines (empty
    when the datagram was refused); ``notes`` what was dropped or refused on the way,
    one sentence each, for the manager's log.
    """

    __slots__ = ("notes", "pid", "text")

    def __init__(self, pid: int | None, text: str, notes: tuple[str, ...] = ()) -> None:
        self.pid = pid
        self.text = text
        self.notes = notes


def notification_socket(name: str) -> Socket:
    """A datagram socket bound to the abstract ``@name``, with SO_PASSCRED: each datagram says who sent it."""
    sock = bind(f"unix:@{name}", mode=Mode.DGRAM)
    try:
        socket_options.setsockopt_int(sock.fileno(), lib.SOL_SOCKET, lib.JN_SO_PASSCRED, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def receive(fd: int) -> Notification | None:
    """One datagram from the notification socket ``fd``; None when none is queued.

    The control buffer has room for the credentials only: descriptors a service
    sends (FDSTORE=1) are dropped by the kernel (MSG_CTRUNC, noted) and never enter
    this process; any the walk still finds are closed at once. A datagram cut short
    (MSG_TRUNC) is noted and counts as an empty one. A datagram whose control data
    breaks `janus_net._kernel.control`'s rule counts as an empty one (noted).
    """
    data = ffi.new("char[]", DATAGRAM_MAX)
    iov = ffi.new("struct iovec *")
    iov.iov_base = data
    iov.iov_len = DATAGRAM_MAX
    # Zeroed, and closing on collection whatever descriptor it still holds (the last resort).
    buffer = cells.new_rights_buffer()
    msg = control.header(iov, 1, control=buffer, controllen=_CONTROL_SIZE)
    got = cell_io.recvmsg(fd, msg, lib.MSG_DONTWAIT | platform.MSG_CMSG_CLOEXEC, None, nonblocking=True)
    if got == loop.WOULD_BLOCK:
        return None
    try:
        cmsgs = control.walk(msg, "recvmsg")  # closes every descriptor it saw before it raises
    except SocketError.ProtocolFailure as e:
        return Notification(None, "", (f"ignored a notification: {e}",))
    control.close_all([cmsg.slots() for cmsg in cmsgs if cmsg.is_rights])
    pid = None
    for cmsg in cmsgs:
        if cmsg.level == lib.SOL_SOCKET and cmsg.kind == lib.JN_SCM_CREDENTIALS:
            pid = int(ffi.cast("struct ucred *", cmsg.data).pid)
    sender = "" if pid is None else f" from pid {pid}"
    notes = []
    if msg.msg_flags & lib.MSG_CTRUNC:  # truncation is reported, never silent
        notes.append(f"descriptors sent with a notification{sender} were dropped: this supervisor stores none")
    if msg.msg_flags & lib.MSG_TRUNC:
        notes.append(f"a notification{sender} longer than {DATAGRAM_MAX} bytes was cut off and ignored")
        return Notification(pid, "", tuple(notes))
    return Notification(pid, ffi.unpack(data, got).decode("utf-8", "replace"), tuple(notes))


__all__ = ["Notification", "notification_socket", "notify", "notify_address", "receive", "watchdog_interval"]
