"""`Server`: a listening stream socket; ``accept()`` returns one `Stream` per connection."""

from __future__ import annotations

from janus_net import platform
from janus_net._kernel import cell_io, cells, flags, owners, socket_options, sockets
from janus_net._kernel import cells as kernel_cells
from janus_net._policy import waiting
from janus_net._shim import ffi, lib
from janus_net._sockets.buffers import PEER_FAMILIES, SA_FAMILY_END, STORAGE_SIZE, Pool, Scratch
from janus_net._sockets.owner import Bound
from janus_net._sockets.stream import PendingPeer, Stream
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._policy.context import Context
    from janus_net._sockets.owner import FileDuty
    from janus_net._values.addresses import Address


_NULL = ffi.NULL
_HOLD = cells.HOLD_DESC


def accepted_options(fd: int) -> None:
    """What a new connection's own description needs on this platform before it is handed out."""
    if platform.ACCEPT_INHERITS_O_NONBLOCK:
        # Our own new description: BSD kernels copy the listener's O_NONBLOCK into it.
        flags.set_nonblocking(fd, False)
    if platform.SO_NOSIGPIPE:
        socket_options.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1)


# Whether `accepted_options` has anything to do on this platform (read once: it is per accept).
_ACCEPTED_OPTIONS = bool(platform.ACCEPT_INHERITS_O_NONBLOCK or platform.SO_NOSIGPIPE)


class Server(Bound):
    """A listening stream socket (from `janus_net.listen`): ``accept()`` returns one `Stream` per connection.

    Use it as a context manager, or call ``close()``; ``.address`` is the bound address (with the
    real port when port 0 was asked), ``.fileno()`` the descriptor.

    ``accept`` never switches the listening description to O_NONBLOCK (another
    process may share it): it polls the socket and this object's wake fd, then
    accepts, one thread of this process at a time, only when poll says a connection
    is queued. So ``close()`` from another thread reaches a waiting accept. When
    another *process* sharing a *blocking* description takes the connection between
    the poll and the accept (the prefork race), the accept sleeps in the kernel:
    ``close()``, or a cancel of the accept's context, then wakes it with SIGURG (see
    docs/mechanism.md); a context's deadline reaches it only at the next connection.
    """

    __slots__ = ("_scratch",)

    def __init__(self, desc: Any, address: Address, unix_file: FileDuty | None = None, port: int = -1) -> None:
        # The address is built on first use: ``port`` > 0 is the port the kernel chose
        # for ``address`` (asked with port 0), and the copy with it is made by the first
        # ``address`` read (an Ip4Address is a fifth of what a listener would keep).
        # Until then the port waits in the cell (``desc.port``, in the struct's padding),
        # not in a Python int of 32 bytes: memory per listener (DESIGN §11).
        if port > 0:
            desc.port = port
        # Owner's and Bound's __init__, written out: two frames less per listen.
        _HOLD(desc)
        self._desc = desc
        self._address = address
        self._unix_file = unix_file
        # At most one idle Scratch (the peer's sockaddr and length), reused by the next accept.
        self._scratch: Pool | None = None
        if owners.REGISTRATION.on:  # only once the process has adopted an fd (the owner registry)
            owners.register(int(desc.fd), self)

    @property
    def address(self) -> Address:
        """The address the socket is bound to (with the port the kernel chose for port 0)."""
        address: Address = self._address  # a Server's is never pending
        desc = self._desc
        port = desc.port
        if port > 0:
            # Two threads may both build it; they store equal values (and _with_port of
            # the stored copy gives the copy back).
            address = address._with_port(port)  # type: ignore[union-attr]  # IP only (listen.py)
            self._address = address
            desc.port = 0
        return address

    def accept(self, ctx: Context | None = None) -> Stream:
        """Wait for a connection and return it.

        The new `Stream` is close-on-exec and blocking; its ``.address`` is the peer's.

        Args:
            ctx: a `Context` whose cancel or deadline ends the wait with
                `SocketError.Timeout`; None waits until a connection arrives or
                ``close()``/``shutdown()`` ends the wait.

        Raises:
            SocketError.SocketNotListening: after ``shutdown()``, or when ``close()``
                from another thread ended the wait.
            SocketError.Timeout: ``ctx`` was cancelled or its deadline passed.
            SocketError.ConnectionAborted: the client reset the connection while it was
                queued (accept again).
            SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded,
                SocketError.SystemResources: no descriptor or memory for the connection.
            SocketError.ProtocolFailure: a protocol error on the queued connection.
            SocketError.BlockedByFirewall: a firewall rule forbade the connection.
        """
        pool = self._scratch
        if pool is None:
            pool = self._scratch = Pool()
        idle = pool.idle  # `Pool.take`, written out (list.pop is atomic under the GIL)
        scratch = idle.pop() if idle else Scratch()
        conn_desc = kernel_cells.new_desc()  # the accepted fd lands here, inside the accept call
        try:
            size = scratch.length
            size[0] = STORAGE_SIZE
            desc = self._desc
            storage = scratch.storage
            if ctx is None:
                # The first attempt made here, not through `_accept_wait`'s closure and
                # `wait_for`: with a connection queued (a busy server), that is the whole
                # accept. The address names the listener in an error; it is built once.
                address = self.address if desc.port else self._address
                conn = cell_io.accept_into(desc, storage, size, conn_desc, None, address)
                if conn < 0:  # WOULD_BLOCK: nothing queued (or another thread is taking it)
                    conn = self._accept_wait(None, desc, storage, size, conn_desc, True)
            else:
                conn = self._accept_wait(ctx, desc, storage, size, conn_desc)
            # Copied out before the scratch goes back to the pool.
            length = size[0]
            family = scratch.sa.sa_family if length >= SA_FAMILY_END else None
            peer = PendingPeer(ffi.buffer(storage, min(length, STORAGE_SIZE))[:], length)
            if not idle:
                idle.append(scratch)  # `Pool.give`: at most one kept
            if _ACCEPTED_OPTIONS:
                accepted_options(conn)
            # Not a family the lazy decode is sure to handle: decode (and fail) now.
            return Stream(conn_desc, peer if family in PEER_FAMILIES else peer.decode())
        except BaseException:
            kernel_cells.close_desc(conn_desc)
            raise

    def _accept_wait(
        self, ctx: Context | None, desc: Any, storage: Any, size: Any, conn_desc: Any, tried: bool = False
    ) -> int:
        """`accept`'s wait; with a context, one whose cancel also reaches an accept(2) in the kernel.

        The native accept is given the context's native cell and reads its cancel mark
        once it has said it is inside accept(2); the context knows this listener while
        the wait lasts, and its ``cancel()`` signals the thread in accept(2) (see
        docs/mechanism.md). A deadline is checked at each wakeup, as for every wait.
        """
        address = self.address
        check = None if ctx is None else ctx.check
        ctx_cell = _NULL if ctx is None else getattr(ctx, "_waker", _NULL)
        # A subclass whose __init__ skipped Context's has no list: its cancel reaches the
        # waits only (the rare accept(2) sleep waits for the next connection or close()).
        accepting: list[Any] | None = None if ctx is None else getattr(ctx, "_accepting", None)
        if accepting is not None:
            accepting.append(desc)  # list.append: atomic under the GIL, as the removal
        try:
            return waiting.wait_for(
                desc,
                waiting.POLLIN,
                ctx,
                lambda: cell_io.accept_into(desc, storage, size, conn_desc, check, address, ctx_cell),
                self._not_listening,
                None,
                tried,
            )
        finally:
            if accepting is not None:
                accepting.remove(desc)

    def _not_listening(self) -> SocketError:
        return SocketError.SocketNotListening(
            None,
            "the server was closed by another thread while accept waited",
            syscall="accept",
            address=str(self._address),
        )

    def shutdown(self) -> None:
        """Stop listening, for every process that shares this socket.

        Threads blocked in ``accept`` (here and in every process sharing the
        description) wake with SocketNotListening, and so do later ``accept`` calls.
        The Server stays open until ``close()``; calling ``shutdown()`` again does nothing.
        Use it on purpose only: ``close()`` never does this.
        """
        try:
            sockets.shutdown_on(self._desc, lib.SHUT_RDWR, self._address)
        except SocketError.SocketUnconnected:
            pass  # already shut down: the listener is in the CLOSE state, which is the goal

    def __enter__(self) -> Server:
        return self


__all__ = ["Server", "accepted_options"]
