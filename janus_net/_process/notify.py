"""systemd's notification protocol (sd_notify): `notify` and `watchdog_interval`.

A service manager (systemd with ``Type=notify``, ``janus-net run``) puts the path
of a unix datagram socket in ``$NOTIFY_SOCKET`` (``@name`` for an abstract
socket); the service sends it newline-separated ``KEY=VALUE`` lines. With
``FDSTORE=1`` the datagram also carries descriptors (SCM_RIGHTS) for the manager to
keep across restarts, named by ``FDNAME=``; systemd hands them back through
LISTEN_FDS/LISTEN_FDNAMES (`janus_net.listen_fds`).

Each call makes its own close-on-exec datagram socket, connects it to the
notify socket (so a missing or dead manager is a typed error: FileNotFound,
ConnectionRefused), sends, and closes it on every path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from janus_net import descriptor, platform, syscalls
from janus_net._shim import lib
from janus_net.address import UnixAddress, parse_address
from janus_net.errors import SocketError
from janus_net.fdpass import AnySocket, RightsSend, _items
from janus_net.values import flag

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
    stored = [] if fds is None else _items(fds)
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
    desc = descriptor.new()  # socket() writes the fd into the cell: no bytecode holds it alone
    try:
        fd = syscalls.open_socket(desc, lib.AF_UNIX, lib.SOCK_DGRAM, 0)
        encoded = address.sockaddr
        syscalls.connect(fd, encoded.pointer, encoded.length, address)
        for message_lines, message_sockets in messages:
            payload = ("\n".join(message_lines) + "\n").encode()
            RightsSend(desc, payload, message_sockets, platform.MSG_NOSIGNAL, address)()
    finally:
        descriptor.close(desc)
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


__all__ = ["notify", "watchdog_interval"]
