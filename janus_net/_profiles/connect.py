"""`connect`: a client stream to a TCP or unix address, with listen's discipline.

The steps::

    parse -> audit event -> [check] -> socket (close-on-exec, non-blocking) -> [check]
          -> connect -> wait (poll: the socket, the context's wake fd) -> SO_ERROR
          -> getsockname (TCP: not connected to itself) -> blocking again -> Stream

With ``netns=PATH`` the socket is made inside that network namespace by
`janus_net._policy.netns` (a helper thread writes the fd straight into this call's cell) and
connected from the caller's thread, which never changes namespace: a socket belongs
to the namespace it was made in, so the connect, its route and its peer are there.

The socket is non-blocking only while it connects: janus_net made it and nobody else
holds it yet, so the flag is nobody else's business, and every janus_net socket is
blocking once handed out. Waiting with poll is what makes the connect cancellable
(another thread's ``ctx.cancel()`` wakes it at once) and keeps EINTR simple (a
blocking connect interrupted by a signal goes on in the background, and calling it
again would report EALREADY/EISCONN). Any failure -- a kernel error, a checkpoint's
Timeout, a KeyboardInterrupt -- closes the socket before it propagates.
"""

from __future__ import annotations

import errno
import sys

from janus_net import platform
from janus_net._kernel import cells, flags, socket_options, sockets
from janus_net._policy import netns as policy_netns
from janus_net._policy import waiting
from janus_net._policy.netns import Maker, NamespacePath
from janus_net._shim import lib
from janus_net._sockets.from_cell import wrap
from janus_net._sockets.stream import Stream
from janus_net._values import sockaddr
from janus_net._values.addresses import Address, as_address
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address, require_zone
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from janus_net._kernel.loop import Checkpoint
    from janus_net._policy.context import Context

# A unix listener with a full backlog makes a non-blocking connect fail with EAGAIN
# without starting anything, and a unconnected unix socket polls writable: so the
# connect is retried after this pause (cancellable: the pause polls the wake fd).
_BACKLOG_PAUSE_MS = 10


def connect(address: str | Address, *, ctx: Context | None = None, netns: NamespacePath | None = None) -> Stream:
    """Connect a stream socket to ``address`` (TCP over IPv4/IPv6, or a unix path or ``@name``).

    The result is a blocking, close-on-exec `Stream` whose ``.address`` is the peer.

    Args:
        address: ``"127.0.0.1:8080"``, ``"[::1]:443"``, ``"unix:/run/app.sock"``,
            ``"unix:@name"`` or an address value. ``fd://N`` is refused (it names a
            socket to adopt, not a peer).
        ctx: a `Context`; its ``check()`` runs before the socket is made, before the
            connect and on every wakeup, so a cancel or an expired deadline ends the
            connect at once with `SocketError.Timeout`.
        netns: a network namespace file (``/run/netns/NAME``, ``/proc/PID/ns/net``):
            the socket is made inside it (`janus_net._policy.netns`) and connects to
            ``address`` as seen from there. The caller's thread never changes namespace.

    Raises:
        ValueError / TypeError: a bad ``netns`` (empty, NUL byte, not a path), before any syscall.
        SocketError.FileNotFound / AccessDenied: the namespace file is missing, or
            cannot be opened or entered.
        SocketError.InvalidAddress: the ``netns`` file is not a network namespace.
        SocketError.InvalidAddress / InvalidPort: bad address text.
        SocketError.ConnectionRefused: nothing listens there (TCP RST, a TCP connect
            that met its own socket, or a unix socket file nobody listens on).
        SocketError.FileNotFound / AccessDenied / NotDir: the unix path's lookup failed.
        SocketError.NetworkUnreachable / HostUnreachable / ConnectionTimedOut /
            AddressUnavailable: the route or the peer failed.
        SocketError.AddressUnavailable: a link-local address without a zone
            (``[fe80::1]:9``), before the audit event and any syscall, as `listen` does.
        SocketError.Timeout: the context was cancelled or its deadline passed.

    The PEP 578 audit event ``janus_net.connect`` (address text) is raised before the
    socket is made, so an audit hook can veto it.
    """
    addr = as_address(address)
    if isinstance(addr, UnixAddress) and addr.unnamed:
        raise SocketError.InvalidAddress(None, "cannot connect to an unnamed unix address", address=str(addr))
    require_zone(addr, "connect")  # listen's check: fe80::1 without a link is refused before any syscall
    if netns is not None:
        policy_netns.check_path(netns)  # ValueError/TypeError before any syscall or audit event
    sys.audit("janus_net.connect", str(addr))
    check = None if ctx is None else ctx.check
    if check is not None:
        check()
    # The cell exists before the socket: socket() writes the fd into it, so from the
    # syscall's return on, the except below (or the cell's collection) closes it.
    desc = cells.new_desc()
    try:
        fd = open_socket(desc, addr, netns, check)
        _connect(desc, fd, addr, ctx)
        return finish(desc, fd, addr, check)
    except BaseException:
        cells.close_desc(desc)  # claim-once: a Stream made just before is lost with the exception anyway
        raise


# The steps every client stream goes through, here once: `connect` runs them for one
# address, `janus_net._profiles.connect_host` for each attempt of its race.


def open_socket(desc: Any, addr: Address, netns: NamespacePath | Maker | None, check: Checkpoint | None) -> int:
    """A close-on-exec, non-blocking stream socket for ``addr`` in the cell ``desc``; its fd.

    Made inside the namespace of ``netns`` when one is given (a path: a helper thread for
    this socket; a `Maker`: its one thread). The caller owns ``desc`` and closes it on
    failure; ``check`` (a context's) runs after the socket exists, before any connect.
    """
    fd = policy_netns.socket(netns, desc, addr.family, lib.SOCK_STREAM | lib.JN_SOCK_NONBLOCK, 0, check)
    if not lib.JN_SOCK_NONBLOCK:
        flags.set_nonblocking(fd, True, check)
    if check is not None:
        check()
    return fd


def start(fd: int, addr: Address, check: Checkpoint | None) -> int:
    """The non-blocking connect(2) of ``fd`` to ``addr``: 0 connected, `sockets.IN_PROGRESS`, or WOULD_BLOCK.

    After `sockets.IN_PROGRESS`, wait for POLLOUT (or POLLERR/POLLHUP) and read the
    outcome with `sockets.connect_result` (SO_ERROR).

    Raises:
        The CONNECT table's members (ConnectionRefused, NetworkUnreachable...), at once.
    """
    encoded = addr.sockaddr
    return sockets.connect_start(fd, encoded.pointer, encoded.length, check, addr)


def refuse_self(fd: int, addr: Address) -> None:
    """Raise ConnectionRefused when a TCP connect reached its own socket, not a peer.

    With nothing listening on a port of the ephemeral range, the kernel may pick that very
    port as the source of a connect to it: the SYN then meets its own socket, and TCP's
    simultaneous open "connects" it to itself. No port a listener holds is ever picked, so
    nobody listens there: it is the refusal the peer would have sent (Go's net does the same).
    Only IP addresses can meet themselves. One getsockname after the connect, and a
    getpeername only when the ports match: the peer's name, not the address asked, for
    0.0.0.0 and :: connect to a loopback address.
    """
    if not isinstance(addr, (Ip4Address, Ip6Address)):
        return
    storage, length = sockets.getsockname(fd)
    local = sockaddr.decode(storage, length)
    if local.port != addr.port:
        return
    storage, length = sockets.getpeername(fd)
    peer = sockaddr.decode(storage, length)
    if peer.port == local.port and peer.packed == local.packed:
        why = "the connection reached its own socket: nothing listens there"
        raise SocketError.ConnectionRefused(errno.ECONNREFUSED, why, syscall="connect", address=str(addr))


def finish(desc: Any, fd: int, addr: Address, check: Checkpoint | None) -> Stream:
    """A connected socket made into its `Stream`: blocking again, SO_NOSIGPIPE where that is the way.

    Ownership of ``desc`` passes to the Stream when this returns; until then the caller
    still closes it on failure.
    """
    # Blocking from here on, as every janus_net socket: nobody else holds it yet.
    flags.set_nonblocking(fd, False, check)
    if platform.SO_NOSIGPIPE:
        socket_options.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1, check)
    stream = wrap(desc, "stream", addr)
    assert isinstance(stream, Stream)  # wrap makes the owner its kind names
    return stream


def _connect(desc: Any, fd: int, addr: Address, ctx: Context | None) -> None:
    check = None if ctx is None else ctx.check
    while True:
        rc = start(fd, addr, check)
        if rc == 0:
            refuse_self(fd, addr)
            return
        if rc == sockets.IN_PROGRESS:
            # POLLOUT, or POLLERR/POLLHUP on failure: SO_ERROR says which.
            waiting.wait_ready(desc, waiting.POLLOUT, ctx)
            sockets.connect_result(fd, addr)
            refuse_self(fd, addr)
            return
        # WOULD_BLOCK: a unix listener's full backlog. Pause (watching only the context), then retry.
        waiting.pause(ctx, _BACKLOG_PAUSE_MS)


__all__ = ["connect", "finish", "open_socket", "refuse_self", "start"]
