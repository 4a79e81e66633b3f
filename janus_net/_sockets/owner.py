"""What every socket object shares: one owned descriptor cell, and the ways to end it.

`Owner` holds the cell (`janus_net._kernel.cells`) that the syscall making the socket
filled, so there is no moment when the fd is held by neither: ``close()`` (or a
``with`` block), ``fileno()``, ``closed``, ``to_socket()``, and, when an owner is
forgotten, its collection with a `ResourceWarning`, as stdlib sockets do. `Bound`
adds what a socket this process bound may carry: the duty to remove the unix socket
file its bind created. The socket does not know how it was made: the duty is handed
to it as a small object with a ``remove()`` method (`FileDuty`), and a hand-over moves
it between processes (`unix_file_of`, `give_unix_file`).

Closing while another thread is blocked in any call on the same object is safe:
``close()`` signals the object's wake fd, which the blocked call polls, so it wakes
and raises a `SocketError` member; the descriptor is released only once no call is
using it, so its number cannot be reused under a syscall (see `janus_net._kernel.cells`
and `janus_net._policy.waiting`). ``close()`` never calls shutdown(), so a socket shared
with other processes keeps working for them.
"""

from __future__ import annotations

import functools
import warnings

from janus_net._kernel import cells, owners
from janus_net._kernel import cells as kernel_cells
from janus_net._sockets import options_in_force
from janus_net._values.errors import ErrnoBug, SocketError
from janus_net._values.escaping import for_people

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    import socket as _stdsocket
    from typing import Any, NoReturn, Protocol

    from janus_net._values.addresses import Address

    class FileDuty(Protocol):
        """The unix socket file a bound socket removes when it closes (what made the socket hands it over)."""

        def remove(self) -> None:
            """Remove the file, if it is still the one the bind created, in the process that created it."""


_HOLD = cells.HOLD_DESC
_UNHOLD = cells.UNHOLD_DESC
_DEAD = cells.DEAD_DESC
_DETACH = cells.DETACH


def closed_error(syscall: str, address: object) -> SocketError:
    """What a call woken by another thread's ``close()`` raises: SocketUnconnected.

    Closing from another thread is the documented way to stop a loop, not a bug,
    so it gets a catchable member (the socket can no longer send or receive), not
    the EBADF row that a call *started* on a closed socket reports.
    """
    return SocketError.SocketUnconnected(
        None,
        "the socket was closed by another thread while this call waited",
        syscall=syscall,
        address=str(address),
    )


def later_call_error(desc: Any, error: BaseException, syscall: str, address: object) -> BaseException:
    """A call after the first of a loop (write_all, send_many...) found the object closed:
    that is another thread's ``close()``, not the caller's bug, so it is `closed_error`."""
    if kernel_cells.closed_under(desc, error):
        return closed_error(syscall, address)
    return error


def raise_woken(desc: Any, error: BaseException, syscall: str, address: object, began_open: bool = True) -> NoReturn:
    """Raise the error of a many-step call (send_many, send_segments, a socket transfer).

    Each native call enters the descriptor cell for its syscall and finds EBADF once
    ``close()`` has marked the cell closing. If the object was open when the call
    began, that close came from another thread while the call ran -- between two
    batches or chunks, before its first syscall, in a getsockopt of its checks -- so
    it raises `closed_error`, as every woken call does. A call begun on an object
    already closed raises ``error``, the EBADF row (a bug of the caller).
    """
    if began_open and kernel_cells.closed_under(desc, error):
        raise closed_error(syscall, address) from None
    raise error


class Owner:
    """What Server, Stream and Socket share: one owned descriptor cell and the ways to end it.

    The cell (`janus_net._kernel.cells`) is the ownership: it is made before the
    syscall that fills it and handed to this object as is, so there is no moment
    when the fd is held by neither.
    """

    __slots__ = ("__weakref__", "_address", "_desc")

    # Only a Stream's peer is ever anything but an Address: a `PendingPeer`, decoded by
    # the first ``address`` read (`janus_net._sockets.stream`).
    _address: Any

    def __init__(self, desc: Any, address: Any) -> None:
        # The hold comes first: an interrupt between the two lines costs the cell's
        # memory, never a read of freed memory in __del__ (which releases only a cell it holds).
        _HOLD(desc)
        self._desc = desc
        self._address = address
        if owners.REGISTRATION.on:  # only once the process has adopted an fd (the owner registry)
            owners.register(int(desc.fd), self)

    @property
    def address(self) -> Address:
        """The address: a Server's or Socket's bound address, a Stream's peer."""
        address: Address = self._address
        return address

    @property
    def closed(self) -> bool:
        """Whether ``close()`` (or ``to_socket()``) has ended this object."""
        return bool(self._desc.closing)

    def fileno(self) -> int:
        """The descriptor, or -1 once closed (as stdlib sockets report)."""
        desc = self._desc
        return -1 if desc.closing else int(desc.fd)

    def close(self) -> None:
        """Close the socket. Idempotent; safe while another thread is blocked in it.

        A call blocked in this object wakes and raises its `SocketError` member
        (``SocketNotListening`` for ``accept``, ``SocketUnconnected`` for the others);
        the fd is closed at once, or by that call on its way out. Never shutdown(): a
        socket shared with other processes goes on working for them. A call *started*
        after ``close()`` is the caller's bug: its table's EBADF row (``ErrnoBug`` in
        debug mode, ``SocketError.Unexpected`` in release mode).

        Raises:
            SocketError.Unexpected: close(2) reported an errno (EIO on some file systems);
                the descriptor is released all the same and the object is closed.
        """
        kernel_cells.close_desc(self._desc)

    def to_socket(self) -> _stdsocket.socket:
        """Hand the descriptor to a plain `socket.socket` and leave this object closed.

        ``type(result) is socket.socket``, so trio's ``from_stdlib_socket`` and
        asyncio's ``sock=`` parameters take it. The stdlib socket owns the descriptor
        from then on: this object never closes it.

        Returns:
            A blocking `socket.socket` on the same descriptor.

        Raises:
            SocketError.Unexpected: the object is closed or was handed over already
                (errno EBADF), or a call in another thread is using it (EBUSY);
                ``.syscall`` is ``"to_socket"``.
        """
        import socket as _stdsocket  # here: most programs never hand over (import time)

        desc = self._desc
        cells.check_detachable(desc, str(self.address))
        # The fd leaves the cell inside the stdlib socket's C constructor, with no
        # bytecode in between: it reads ``fileno`` through ``__index__``, and this one
        # is the native hand-over itself (a partial of a C function, so no Python frame
        # runs). `_DETACH(desc)` called here instead returned the number to this frame,
        # and an exception landing there (a signal handler's, a KeyboardInterrupt)
        # leaked it: a raising signal storm lost 150 descriptors in 4 300 hand-overs.
        handover = type("_HandOver", (), {"__slots__": (), "__index__": functools.partial(_DETACH, desc)})
        return _stdsocket.socket(fileno=handover())

    def _closed_error(self, syscall: str) -> SocketError:
        """What a call woken by another thread's ``close()`` raises (`closed_error`)."""
        return closed_error(syscall, self.address)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        desc = getattr(self, "_desc", None)
        if desc is None or desc is _DEAD:
            return  # __init__ cut short before the cell was ours, or a second __del__
        try:
            # fd < 0 with ``collected``: in a reference cycle the cell's own collection
            # ran first and closed it; the owner was still never closed.
            if not desc.closing and (desc.fd >= 0 or desc.collected):
                warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
                self.close()
        finally:
            # Done with the cell: later reads (another __del__ in the same cycle) see a
            # closed one, and the memory goes once the cell's own collection has run too.
            self._desc = _DEAD
            _UNHOLD(desc)

    def __repr__(self) -> str:
        # getattr: __del__ may print an object whose __init__ an exception cut short.
        desc = getattr(self, "_desc", None)
        state = "closed" if desc is None or desc.closing else f"fd={desc.fd}"
        try:
            text = str(self.address)
        except AttributeError:
            text = "?"
        return f"<janus_net.{type(self).__name__} {for_people(text)} {state}>"


class Bound(Owner):
    """What Server and Socket share: a socket this process bound (or adopted), maybe to a unix socket file."""

    __slots__ = ("_unix_file",)

    def __init__(self, desc: Any, address: Address, unix_file: FileDuty | None = None) -> None:
        super().__init__(desc, address)
        self._unix_file = unix_file

    def close(self) -> None:
        """Close the socket, and remove the unix socket file if this bind created it.

        Idempotent, and safe while another thread is blocked in it (see `Owner.close`'s
        rules, which are the same). The file is removed only if this object created it, in
        this process (a forked child never removes its parent's file), and the path still
        names the inode bind created: a file someone else put there since is left alone.
        """
        # getattr: an exception may have cut __init__ short before the unix file was
        # set (then the step sequence that made the socket removes the file).
        unix_file = getattr(self, "_unix_file", None)
        if unix_file is None:
            kernel_cells.close_desc(self._desc)
            return
        state = cells.begin_close(self._desc)
        try:
            if state & cells.CLOSE_FIRST:
                # Before the socket closes: while it is bound, no janus_net process takes
                # the file for stale, so nothing can replace it under this unlink.
                unix_file.remove()
        finally:
            if state & cells.CLOSE_FINISH:
                cells.finish_close(self._desc)

    def options(self) -> dict[str, object]:
        """The options the kernel holds on this socket, keyed by the listen/bind keyword names.

        Read with getsockopt each time (`janus_net._sockets.options_in_force`), so it
        shows what is in force, not what was asked: always ``reuse_address`` and
        ``incoming_cpu``, ``reuse_port`` where the platform has it, ``ip6_only`` for
        IPv6, ``broadcast`` for datagram sockets, ``freebind``, ``transparent`` and
        ``device`` for IP, ``fastopen`` and ``defer_accept`` for TCP.

        Returns:
            A new dict, keyword name → value.

        Raises:
            SocketError.SocketUnconnected: the object was closed (by this or another thread).
        """
        if self._desc.closing:
            raise self._closed_error("getsockopt")
        try:
            return options_in_force.read(self._desc)
        except (SocketError, ErrnoBug) as e:
            # ``address``, not ``_address``: a Server's holds port 0 until the first read.
            raise later_call_error(self._desc, e, "getsockopt", self.address) from None

    def to_socket(self) -> _stdsocket.socket:
        """Hand over the descriptor, as `Owner.to_socket` does.

        A unix socket file stays where it is: it is the new owner's now, and this
        object will never remove it.

        Raises:
            SocketError.Unexpected: closed or handed over already, or a call is using it.
        """
        sock = super().to_socket()
        self._unix_file = None
        return sock


owners.owners_are(Owner)


# A hand-over moves a bound socket's unix file duty between processes: code outside
# this module reaches ``Bound._unix_file`` only through these two functions.


def unix_file_of(sock: object) -> FileDuty | None:
    """The socket file ``sock`` removes when it closes, if any (None for a Stream)."""
    return getattr(sock, "_unix_file", None) if isinstance(sock, Bound) else None


def give_unix_file(sock: Bound, unix_file: FileDuty | None) -> None:
    """Make ``sock`` the one that removes ``unix_file`` on close (None: it removes nothing)."""
    sock._unix_file = unix_file


__all__ = ["Bound", "Owner", "closed_error", "give_unix_file", "later_call_error", "raise_woken", "unix_file_of"]
