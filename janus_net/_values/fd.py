"""The fd:// value: `FdAddress`, an inherited socket named by its descriptor number."""

from __future__ import annotations

from janus_net._shim import ffi
from janus_net._values.errors import SocketError

#: The largest descriptor number: fds are C ints.
MAX_FD = 2 ** (8 * ffi.sizeof("int") - 1) - 1


class FdAddress:
    """An inherited socket named by its descriptor number: ``fd://3``.

    Not an address a socket has, but a way to say "the socket I was given" to
    ``listen``/``bind`` (and to `janus_net.listen_fds`): a supervisor such as systemd
    or a parent process opened and bound it, and janus_net adopts it. The socket's
    real address is known only once the descriptor has been looked at, so the
    adopted `Server`/`Socket` reports what getsockname says, never an `FdAddress`.

    Immutable and hashable; ``str(FdAddress(3)) == "fd://3"`` and
    ``parse_address(str(a)) == a``.
    """

    __slots__ = ("_fd",)
    _fd: int

    def __init__(self, fd: int) -> None:
        if type(fd) is not int or not 0 <= fd <= MAX_FD:
            raise SocketError.InvalidAddress(None, f"a descriptor number is an int in 0..{MAX_FD}, not {fd!r}")
        object.__setattr__(self, "_fd", fd)

    @property
    def fd(self) -> int:
        """The descriptor number."""
        return self._fd

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FdAddress is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("FdAddress is immutable")

    def __str__(self) -> str:
        return f"fd://{self._fd}"

    def __repr__(self) -> str:
        return f"FdAddress({str(self)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (FdAddress, (self._fd,))

    def __eq__(self, other: object) -> bool:
        if type(other) is not FdAddress:
            return NotImplemented
        return self._fd == other._fd

    def __hash__(self) -> int:
        return hash((FdAddress, self._fd))
