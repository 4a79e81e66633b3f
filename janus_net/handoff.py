"""Zero-downtime upgrades: the running process offers its sockets (`offer`), its successor takes them (`take`).

The protocol, over a unix stream at an address both agree on (the *hand-over
address*, not one of the service's own sockets)::

    old: offer(address, sockets)             new: take(address)
      listen at address (mode 0600)
      accept <------------------------------  connect (no one there -> {};
                                              bound, not yet listening -> again)
      SO_PEERCRED: same uid, else drop him    SO_PEERCRED: same uid, else AccessDenied
      send_sockets(sockets) ----------------> receive_sockets (checked, close-on-exec)
      frame {"files": {...}} ---------------> which unix socket files the old one owned
                                              ... the new one starts serving ...
      <-------------------------------------- frame {"ready": true}      (handoff.ready())
      stop removing the files on close
      stop listening at the hand-over address
      frame {"given": true} ----------------> now the new one removes them on close,
                                              and may offer at the address in turn
      offer returns: stop accepting, drain,
      close (the sockets live on in the new one)

Both processes hold the *same* listening sockets (one file description, not two
SO_REUSEPORT listeners), so connections queued while the old one stops accepting
are accepted by the new one: none is refused or reset. The old process must stop
accepting without ``Server.shutdown()`` (which stops the socket for every holder):
cancel the context of its ``accept(ctx)`` and close.

Unix socket files: exactly one process removes a service's socket file, the last
owner. Before the hand-over that is the old process (it created the file); from
the moment it receives the successor's ready message it no longer removes it, and
the successor does, once told so (``{"given": true}``) -- or once the old process
is gone without saying anything, since a process that stopped before giving up the
file never removes it again either. A successor that fails before ``ready()``
never removes the file: the old one goes on serving and still owns it. The
successor trusts nothing the old process says about files: the ``files`` frame only
says which files are given up, and a file is removed only if the received socket
itself is bound to that path and the file is that socket's inode (`janus_net._process.handoff.files_to_own`).

Every frame either side reads is parsed with bounds by `janus_net._process.frames` (size,
nesting, shapes, types, names, paths, entries); anything else is
`SocketError.ProtocolFailure`.

`offer` returns only after a successful hand-over. A successor that is not of our
user id, or that fails, misbehaves (any frame but its ready message) or disappears
before its ready message, is dropped and `offer` waits for the next one; only the
context (cancel, deadline) or an error of the hand-over address itself ends `offer`
with an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from janus_net._process import handoff as _handoff
from janus_net._process.transfer import AnySocket
from janus_net._profiles.unix_files import UnixFile
from janus_net._sockets.stream import Stream
from janus_net._values.unix import UnixAddress

if TYPE_CHECKING:
    from janus_net._policy.capability import NetBind
    from janus_net._policy.context import Context


# --- The old process


def offer(address: str | UnixAddress, sockets: Mapping[str, AnySocket], *, ctx: Context | None = None) -> None:
    """Wait at ``address`` for a successor, give it ``sockets``, return once it serves.

    Call it (often on a thread of its own) while serving; when it returns, stop
    accepting (cancel the context of your ``accept(ctx)`` calls -- never
    ``Server.shutdown()``, which would stop the sockets for the successor too),
    finish the connections in progress and close. The successor holds the same
    sockets, so no connection is refused or reset meanwhile.

    Args:
        address: the hand-over address, a unix path (``"unix:/run/app/handoff"``,
            created with mode 0600, a stale file replaced, removed on return) or an
            abstract name (``"unix:@app-handoff"``).
        sockets: ``name -> Server | Socket | Stream``; names as for `send_sockets`.
            The unix socket files these sockets created are removed by the successor
            from then on, never by this process.
        ctx: a `Context` ending the wait (`SocketError.Timeout`).

    Raises:
        SocketError.AddressInUse: at once, when the path holds anything but a stale
            socket (another offer's live socket, a regular file, a directory, a FIFO,
            a symlink), left alone; or when another process holds the abstract name.
        SocketError.Timeout: the context ended before a successor was ready.
        TypeError / ValueError: a bad mapping or name, or more unix socket files
            than a frame may name (`frames.FILES_MAX`), before any syscall.
    """
    _handoff.offer(address, sockets, ctx)


# --- The successor


class HandOff(dict[str, AnySocket]):
    """The sockets `take` received, by name, plus `ready`.

    An empty HandOff (no predecessor) has a ``ready()`` that does nothing, so a
    service's start-up code is the same on a first start and on an upgrade.
    """

    def __init__(
        self, sockets: Mapping[str, AnySocket], channel: Stream | None, files: dict[str, UnixFile] | None = None
    ) -> None:
        super().__init__(sockets)
        self._channel = channel
        self._files = files or {}

    @property
    def pending(self) -> bool:
        """True until `ready` (or `abandon`) was called on a hand-over that happened."""
        return self._channel is not None

    def ready(self, ctx: Context | None = None) -> None:
        """Tell the predecessor this process serves now: it stops accepting and drains.

        Call it once the sockets are in use (the accept loops run). From then on the
        unix socket files among them are this process's to remove on close.
        Idempotent. A predecessor that vanished meanwhile is not an error.

        Raises:
            SocketError.ProtocolFailure: the predecessor answered with anything but
                ``{"given": true}`` (or cut it short); its files stay unowned.
            SocketError.Timeout: ``ctx`` ended first; the files stay unowned.
        """
        channel, self._channel = self._channel, None
        if channel is None:
            return
        files, self._files = self._files, {}
        _handoff.ready(channel, files, self, ctx)

    def abandon(self) -> None:
        """Give up the hand-over without serving: the predecessor keeps serving and keeps its files.

        The received sockets stay open (close them yourself); none removes a file.
        """
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


def take(address: str | UnixAddress, *, ctx: Context | None = None, capability: NetBind | None = None) -> HandOff:
    """Receive the sockets a predecessor `offer`s at ``address``; an empty `HandOff` when none does.

    Typical start-up::

        sockets = jn.handoff.take("unix:/run/app/handoff")
        web = sockets.get("web") or jn.listen(":8080")
        ... start serving on web ...
        sockets.ready()

    Args:
        address: the hand-over address (a unix path or ``@name``).
        ctx: a `Context` ending the connect and the transfer (`SocketError.Timeout`).
        capability: checks and audits each received Server/Socket's real address, as
            ``fd://`` adoption does (see `receive_sockets`).

    Raises:
        SocketError.AccessDenied: the process at ``address`` runs as another user.
        SocketError.ProtocolFailure / ConnectionResetByPeer: the transfer failed,
            or a frame broke a bound of `janus_net._process.frames`, or named a file its socket
            is not bound to; nothing received is left open, none held by the exception.
        SocketError.Timeout: the context ended.
    """
    sockets, channel, files = _handoff.take(address, ctx, capability)
    return HandOff(sockets, channel, files)


__all__ = ["HandOff", "offer", "take"]
