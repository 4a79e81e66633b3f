"""`Descriptor`: one owned fd, handed out to calls and closed exactly once when none uses it."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from janus_net import syscalls
from janus_net._shim import lib
from janus_net.errors import SocketError

if TYPE_CHECKING:
    pass


class Descriptor:
    """Owns one fd: hands it out to calls, and closes it once no call is using it.

    Lock-free on the hot path: ``list.append``/``list.pop`` are atomic under the GIL.
    A call registers itself *before* checking for closure and ``close`` marks closure
    *before* counting calls, so either the call sees the closure or ``close`` sees
    the call; whoever is last out closes the fd, claimed once through ``_close_token``.
    """

    __slots__ = ("_close_token", "_inflight", "closing", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closing = False
        self._inflight: list[None] = []
        self._close_token: list[None] = [None]

    def acquire(self, syscall: syscalls.Syscall, address: object = None) -> int:
        """The fd for one call; a closed descriptor gives that syscall's EBADF error."""
        self._inflight.append(None)
        if self.closing:
            self.release()
            raise syscall.error(errno.EBADF, address)
        return self.fd

    def release(self) -> None:
        self._inflight.pop()
        if self.closing and not self._inflight:
            self._close_now()

    def close(self) -> bool:
        """Close now, or (a call is in flight) shut down now and close when it returns.

        Returns False if the descriptor was already closed.
        """
        if self.closing:
            return False
        self.closing = True
        if self._inflight:
            try:
                syscalls.shutdown(self.fd, lib.SHUT_RDWR)
            except SocketError:
                pass  # unconnected sockets say ENOTCONN but are woken all the same
            if self._inflight:
                return True
        self._close_now()
        return True

    def detach(self) -> int:
        """Give the fd away without closing it."""
        if self._inflight:
            raise SocketError.Unexpected(None, "cannot hand over a socket while a call is using it")
        self.closing = True
        self._close_token.clear()
        return self.fd

    def _close_now(self) -> None:
        try:
            self._close_token.pop()
        except IndexError:
            return  # someone else closed it
        syscalls.close(self.fd)
