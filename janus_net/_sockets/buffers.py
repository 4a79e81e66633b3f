"""Memory reused across calls (what a receive or accept fills), and the checks of a caller's buffer or size."""

from __future__ import annotations

from janus_net import platform
from janus_net._shim import ffi, lib
from janus_net._values.strict import INT_MAX, integer
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

#: Anything with the buffer protocol (bytes, bytearray, memoryview, array...).
Buffer = bytes | bytearray | memoryview

STORAGE_SIZE = ffi.sizeof("struct sockaddr_storage")
STORAGE_P = ffi.typeof("struct sockaddr_storage *")
SOCKADDR_IN_SIZE = ffi.sizeof("struct sockaddr_in")
_SOCKADDR_P = ffi.typeof("struct sockaddr *")
_SOCKLEN_P = ffi.typeof("socklen_t *")
_RX_P = ffi.typeof("struct jn_rx *")
# Where sa_family ends in a sockaddr: a shorter one from accept has no family to read.
SA_FAMILY_END = ffi.offsetof("struct sockaddr", "sa_family") + ffi.sizeof("sa_family_t")
PEER_FAMILIES = frozenset({lib.AF_INET, lib.AF_INET6, lib.AF_UNIX})
# Receive buffers are filled by the kernel before they are read; clearing them first
# would only cost a memset of up to 64 KiB per call.
uncleared = ffi.new_allocator(should_clear_after_alloc=False)
#: The source of a datagram from an unbound unix socket (the kernel gives length 0).
UNNAMED_UNIX = UnixAddress("")
# An IPv4 source can be keyed by its first 8 bytes when they cover the address.
IP4_KEY_OK = platform.IP4_KEY_OK
# A receive buffer up to this size is kept by the Socket for the next receive
# (65536 is receive()'s default size).
_SCRATCH_KEEP = 65536

#: The most bytes (or datagrams) one receive asks for: a C int, and more than one
#: recv(2) returns on Linux (it caps a transfer just below 2 GiB).
SIZE_MAX = INT_MAX


def view_of(data: object, name: str = "data", writable: bool = False) -> Any:
    """A cffi view of a caller's bytes-like object, or a TypeError that says what was expected.

    (cffi's own message for a str is "from_buffer() cannot return the address of a
    unicode object", and a read-only buffer where one is written is its BufferError.)
    """
    try:
        return ffi.from_buffer(data, require_writable=writable)  # type: ignore[arg-type]  # checked by cffi
    except (TypeError, BufferError):
        kind = "a writable bytes-like object (bytearray, memoryview...)" if writable else "a bytes-like object"
        raise TypeError(f"{name} must be {kind}, not {type(data).__name__}") from None


def size_argument(name: str, value: object, low: int = 0) -> int:
    """``value``, checked as the size or count a receive or read asks for (`janus_net._values.strict.integer`).

    Raises:
        BadOptionType: not an int, or a bool (``receive(True)`` would mean one byte).
        ValueError: outside ``low``..`SIZE_MAX`.
    """
    return integer(name, value, low, SIZE_MAX)


class Pool:
    """At most one idle object (scratch memory, batch arrays) kept for the next call.

    Lock-free: ``list.pop`` and ``list.append`` are atomic under the GIL, so two
    threads never share an object: the second finds the pool empty and makes its
    own, and when both give theirs back only one is kept. ``idle`` is the list itself,
    for the per-packet paths that write the take and the give out.
    """

    __slots__ = ("idle",)

    def __init__(self) -> None:
        self.idle: list[Any] = []

    def take(self) -> Any:
        """The idle object, or None: the caller makes a fresh one."""
        try:
            return self.idle.pop()
        except IndexError:
            return None

    def give(self, item: object) -> None:
        """Keep ``item`` for the next call, unless another one is already kept."""
        if not self.idle:
            self.idle.append(item)


class Scratch:
    """What one ``receive`` needs besides the caller's data: reused, one caller at a time.

    The source sockaddr_storage and its length (value-result: reset before each
    call), and a data buffer for ``receive`` that grows to the largest ``size``
    asked, up to `_SCRATCH_KEEP` bytes (a larger receive gets a one-off buffer).
    ``words`` reads the storage as 8-byte words: for an IPv4 source the first word
    identifies it (see `ReceiveBatch.collect`), a key for `DECODED_SOURCES` that
    costs no bytes object. A datagram socket keeps one idle `Scratch`; a caller takes it out
    of the pool (atomic ``list.pop``), so concurrent callers never share one.
    """

    __slots__ = ("buf", "capacity", "keys", "length", "rx", "sa", "storage", "words")

    def __init__(self) -> None:
        self.storage = uncleared(STORAGE_P)
        self.sa = ffi.cast(_SOCKADDR_P, self.storage)
        self.length = ffi.new(_SOCKLEN_P)
        self.words = memoryview(ffi.buffer(self.storage)).cast("Q") if IP4_KEY_OK else None
        self.buf: Any = None
        self.capacity = -1
        # What `jn_desc_receive` reads and writes (``Socket.receive``): the same
        # storage and buffer; ``keys[0]`` is its ``key`` field, an IPv4 source's key
        # or 0 (the struct begins with it, and its size is a multiple of 8).
        self.rx = rx = ffi.new(_RX_P)
        rx.sa = self.sa
        rx.cap = -1
        self.keys = memoryview(ffi.buffer(rx)).cast("Q")

    def buffer(self, size: int) -> Any:
        """A buffer of at least ``size`` bytes: this scratch's own when it may keep one that big.

        Raises:
            TypeError, ValueError: ``size`` is not an int in 0..`SIZE_MAX` (`size_argument`).
        """
        if type(size) is not int or not 0 <= size <= _SCRATCH_KEEP:
            return uncleared("char[]", size_argument("size", size))
        if size > self.capacity:
            # ``rx`` must never name memory ``buf`` no longer keeps (the native receive
            # would write into it), and an exception from a signal handler can land
            # between any two of these lines: until the last, the scratch says it has
            # no buffer (the next call makes one) and rx refuses every size.
            rx = self.rx
            self.capacity = -1
            rx.cap = -1
            self.buf = buf = uncleared("char[]", size)
            rx.buf = buf
            rx.cap = size
            self.capacity = size
        return self.buf


__all__ = [
    "IP4_KEY_OK", "PEER_FAMILIES", "SA_FAMILY_END", "SIZE_MAX", "SOCKADDR_IN_SIZE", "STORAGE_P", "STORAGE_SIZE",
    "UNNAMED_UNIX", "Buffer", "Pool", "Scratch", "size_argument", "uncleared", "view_of",
]  # fmt: skip
