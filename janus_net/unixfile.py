"""The unix socket file rules (DESIGN §7): never delete a live socket, remove only our own inode.

bind() on a path creates a socket file. janus_net removes that file again in exactly
two cases: the Server/Socket that created it closes (and the path still names the
inode bind created), or setup fails after bind. A file already at the path is an
AddressInUse; with ``unlink_stale=True`` it is removed only if it is a socket
nobody listens on (connect says ECONNREFUSED).
"""

from __future__ import annotations

import os
import stat

from janus_net import syscalls
from janus_net.address import UnixAddress
from janus_net.errors import SocketError


class UnixFile:
    """The socket file one bind created: its absolute path and (st_dev, st_ino)."""

    __slots__ = ("identity", "path")

    def __init__(self, path: str) -> None:
        # Absolute, so a later chdir cannot make close() look somewhere else.
        self.path = os.path.abspath(path)
        self.identity: tuple[int, int] | None = None

    def record(self) -> None:
        """Remember which inode bind created (called right after bind)."""
        st = os.lstat(self.path)
        self.identity = (st.st_dev, st.st_ino)

    def remove(self) -> None:
        """Unlink the path if it still names our socket inode; otherwise leave it alone."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return
        if self.identity is not None and (st.st_dev, st.st_ino) != self.identity:
            return
        if not stat.S_ISSOCK(st.st_mode):
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass


def refuses_connections(address: UnixAddress, type_: int) -> bool:
    """Whether the socket file at ``address`` is stale: a socket that refuses connect().

    Raises AddressInUse, naming what is there, when the path holds anything else.
    """
    text = str(address)
    try:
        st = os.lstat(address.path)
    except FileNotFoundError:
        return False  # gone meanwhile: the retried bind will tell
    except OSError as e:
        raise SocketError.AddressInUse(e.errno, f"cannot inspect {address.path!r}: {e.strerror}", address=text) from e
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketError.AddressInUse(None, "the path exists and is not a socket; it was left alone", address=text)
    probe = syscalls.socket(address.family, type_, 0)
    try:
        # Non-blocking: a blocking connect to a live server whose backlog is full waits
        # until that server accepts -- forever, if it is stuck.
        syscalls.set_nonblocking(probe, True)
        encoded = address.sockaddr
        rc = syscalls.connect(probe, encoded.pointer, encoded.length, address, nonblocking=True)
    except SocketError.ConnectionRefused:
        return True
    except SocketError as e:
        raise SocketError.AddressInUse(
            None, f"the socket file is not stale ({e.member} on probe); it was left alone", address=text
        ) from e
    finally:
        syscalls.close(probe)
    if rc == syscalls.WOULD_BLOCK:
        raise SocketError.AddressInUse(
            None, "a live socket with a full backlog is listening there; it was left alone", address=text
        )
    raise SocketError.AddressInUse(None, "a live socket is listening there; it was left alone", address=text)
