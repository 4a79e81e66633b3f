"""What every address value shares: immutable slots, the sockaddr and the text made on first use.

`Ip4Address`, `Ip6Address` and `UnixAddress` (`janus_net._values.ip`,
`janus_net._values.unix`) are small immutable values, as CPython's `ipaddress`
values are: slots set once in ``__init__``, equality, hashing, pickling, and no I/O.
Each encodes its C sockaddr once, on first use, and keeps it, so sending many
datagrams to one destination encodes it once. The errors a destination check
raises are here too, so the three kinds word them alike.
"""

from __future__ import annotations

from abc import abstractmethod

from janus_net._shim import lib
from janus_net._values import sockaddr
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import ClassVar


#: Immutable values set their slots once, in __init__, past their own __setattr__.
set_slot = object.__setattr__


class AddressValue:
    """Immutable value with a lazily encoded sockaddr and a lazily formatted text.

    Both are derived from the fields, so filling them in later does not change the
    value; each is computed once, on first use (two threads may both compute it and
    store equal results, which is harmless).
    """

    __slots__ = ("_encoded", "_text")

    family: ClassVar[int]
    _encoded: sockaddr.Encoded | None
    _text: str | None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _no_caches(self) -> None:
        """Start with nothing derived yet: the one place the two caches are reset."""
        set_slot(self, "_encoded", None)
        set_slot(self, "_text", None)

    # Each concrete class defines these two. (abstractmethod without ABCMeta: it states
    # the rule for readers and mypy, and keeps isinstance() on the hot paths cheap.)
    @abstractmethod
    def _encode(self) -> sockaddr.Encoded: ...

    @abstractmethod
    def _format(self) -> str: ...

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._format()
            set_slot(self, "_text", text)
        return text

    @property
    def sockaddr(self) -> sockaddr.Encoded:
        """The encoded C struct (owned by this address, encoded on first use)."""
        encoded: sockaddr.Encoded | None = self._encoded
        if encoded is None:
            encoded = self._encode()
            set_slot(self, "_encoded", encoded)
        return encoded

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


def check_port(port: object) -> int:
    """``port`` if it is an int in 0..65535; else InvalidPort."""
    if type(port) is not int or not 0 <= port <= 65535:
        raise SocketError.InvalidPort(None, f"port must be an int in 0..65535, not {port!r}")
    return port


def invalid(text: str, why: str) -> SocketError:
    """InvalidAddress about the address text ``text``."""
    return SocketError.InvalidAddress(None, why, address=text)


AF_INET: int = lib.AF_INET
AF_INET6: int = lib.AF_INET6
AF_UNIX: int = lib.AF_UNIX
_FAMILY_NAMES = {AF_INET: "an IPv4", AF_INET6: "an IPv6", AF_UNIX: "a unix"}


def port_zero(target: AddressValue) -> SocketError:
    """AddressUnavailable: port 0 is no destination (sendto would say EINVAL, a bug's errno)."""
    return SocketError.AddressUnavailable(
        None, "port 0 is not a destination: the kernel sends nothing to it", syscall="send", address=str(target)
    )


def other_family(target: AddressValue, family: int) -> SocketError:
    """AddressFamilyUnsupported: a socket of ``family`` cannot send to ``target``."""
    sender = _FAMILY_NAMES.get(family, f"a family {family}")
    return SocketError.AddressFamilyUnsupported(
        None, f"{sender} socket cannot send to {_FAMILY_NAMES[target.family]} address", syscall="send",
        address=str(target),
    )  # fmt: skip
