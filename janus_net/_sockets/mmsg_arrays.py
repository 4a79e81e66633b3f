"""The sendmmsg/recvmmsg arrays a datagram socket keeps and reuses: `SendBatch`, `ReceiveBatch`.

Filled and read by `janus_net._sockets.batching` (``send_many``, ``receive_many``); each
field write from Python costs about what the kernel spends per datagram, so the arrays
are rewritten only where something changed since the last call.
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Sequence

from janus_net import platform
from janus_net._shim import ffi
from janus_net._sockets.buffers import (
    IP4_KEY_OK,
    SOCKADDR_IN_SIZE,
    STORAGE_SIZE,
    UNNAMED_UNIX,
    Buffer,
    uncleared,
    view_of,
)
from janus_net._values.addresses import Address, as_address
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.reported import DECODED_SOURCES, from_sockaddr_cached

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


#: Datagrams per sendmmsg/recvmmsg call: Linux caps a call at UIO_MAXIOV (1024)
#: messages; larger requests are served by several calls.
BATCH_MAX = 1024
# A send batch for an iterator of unknown length starts this big and grows on demand.
_BATCH_DEFAULT = 64
_MMSGHDR_SIZE = ffi.sizeof("struct mmsghdr")
# recvmmsg's results are read through a view of the header array as 4-byte unsigned
# ints (platform.USE_MMSG says whether that holds; otherwise: the loop path).
_WORD = struct.calcsize("I")
USE_MMSG = platform.USE_MMSG
_MSG_LEN_WORD = ffi.offsetof("struct mmsghdr", "msg_len") // _WORD
_MSG_NAMELEN_WORD = (ffi.offsetof("struct mmsghdr", "msg_hdr") + ffi.offsetof("struct msghdr", "msg_namelen")) // _WORD
_MMSGHDR_WORDS = _MMSGHDR_SIZE // _WORD
# Message containers send_many slices into batches instead of iterating.
SEQUENCES = frozenset({list, tuple})
# Data types the send fast path joins directly (len() is their byte count).
_JOINABLE = frozenset({bytes, bytearray})
_BYTES = frozenset({bytes})
_STORAGE_QWORDS = STORAGE_SIZE // 8
# A batch's payloads are copied into a staging buffer the batch keeps, up to this
# many bytes; a bigger batch is sent from a one-off buffer instead.
_STAGING_KEEP = 256 * 1024
# No destination: what `SendBatch.uniform_dest` holds when no value may skip its checks.
_NO_DEST = object()
_memmove = ffi.memmove


def batch_capacity(messages: object) -> int:
    """Slots for a send: the message count when it is known, capped at `BATCH_MAX`."""
    try:
        known = len(messages)  # type: ignore[arg-type]
    except TypeError:
        return _BATCH_DEFAULT
    return max(1, min(known, BATCH_MAX))


class SendBatch:
    """Reused ``struct mmsghdr[]`` + ``struct iovec[]`` for sendmmsg, and a staging buffer.

    Each header's msg_iov points at its own iovec once and for all. What changes
    per call is written only where it changed since the last call, because each
    field write from Python costs about as much as the kernel's per-datagram work
    we are trying to save:

    * destinations: msg_name/msg_namelen point at the address's own encoded
      sockaddr (``encodings`` keeps it alive); a slot is rewritten only when its
      destination differs from last time, so a stream of batches to one peer
      writes no header at all after the first;
    * data: the payloads are joined (one C-level copy) into a staging buffer this
      batch keeps, and the iovecs point into it; they are rewritten only when the
      sequence of lengths changes. Batches too big to keep a copy of
      (`_STAGING_KEEP`) point at a one-off joined buffer instead.

    Anything the fast path does not cover (an item that is not a 2-tuple, data that
    is not bytes/bytearray) goes through `_fill_each`, one item at a time, which
    also places an error exactly after the items before it.
    """

    __slots__ = (
        "buffers", "capacity", "encodings", "headers", "iov", "layout", "msgs", "staging", "targets", "uniform",
        "uniform_count", "uniform_dest", "vectors",
    )  # fmt: skip

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.msgs = ffi.new("struct mmsghdr[]", capacity)
        self.iov = ffi.new("struct iovec[]", capacity)
        self.headers = [self.msgs[i].msg_hdr for i in range(capacity)]
        self.vectors = [self.iov[i] for i in range(capacity)]
        for i, header in enumerate(self.headers):
            header.msg_iov = self.iov + i
            header.msg_iovlen = 1
        self.encodings: list[Any] = [None] * capacity
        self.targets: list[Any] = [None] * capacity
        # The sockaddr that slots [0, uniform_count) all point at, if any: a batch to
        # one destination that fits there needs no look at the slots at all.
        self.uniform: Any = None
        self.uniform_count = 0
        # The IP value that ``uniform`` is the sockaddr of (`_NO_DEST` when none or not one to trust).
        self.uniform_dest: object = _NO_DEST
        # What pins the data of the current call (caller buffers, a one-off join).
        self.buffers: list[Any] = []
        self.staging: Any = uncleared("char[]", 0)
        # The lengths the iovecs currently describe, in staging order ([] = unknown).
        self.layout: list[int] = []

    def fill(self, items: Sequence[tuple[str | Address, Buffer]]) -> tuple[int, Exception | None]:
        """Describe ``items`` (at most ``capacity``); returns (slots filled, what stopped it early)."""
        if not items:
            return 0, None
        try:
            dests, datas = zip(*items, strict=True)
        except (TypeError, ValueError):
            return self._fill_each(items)
        if not _BYTES.issuperset(map(type, datas)):
            if not _JOINABLE.issuperset(map(type, datas)):
                return self._fill_each(items)
            # Another thread may resize a bytearray between any two bytecodes of this
            # call, e.g. between the join and the lengths the iovecs are given: each
            # payload is taken as bytes once, so both are of one moment.
            datas = tuple(map(bytes, datas))
        count = len(dests)
        first = dests[0]
        if (
            first is self.uniform_dest
            and count <= self.uniform_count
            and dests[-1] is first
            and dests.count(first) == count
            and (type(first) is not Ip6Address or all(map(operator.is_, dests, itertools.repeat(first))))
        ):
            # The usual case, written out: the very IP value whose sockaddr the first
            # ``uniform_count`` slots already point at (so its checks passed already),
            # and payloads that fit the staging buffer in the lengths the iovecs describe.
            joined = b"".join(datas)
            size = len(joined)
            if size <= len(self.staging):
                _memmove(self.staging, joined, size)
                lengths = list(map(len, datas))  # bytes and bytearray: len is the byte count
                layout = self.layout
                if layout != lengths and layout[:count] != lengths:
                    self._set_layout(self.staging, lengths)
                return count, None
        filled, failure = self._set_destinations(dests)
        if filled < len(datas):
            datas = datas[:filled]
        self._set_data(datas)
        return filled, failure

    def _set_destinations(self, dests: tuple[str | Address, ...]) -> tuple[int, Exception | None]:
        encodings = self.encodings
        first = dests[0]
        # tuple.count compares by identity before equality, so a batch to one value is
        # counted in C without a call per item (the last item is looked at first, so a
        # batch to many peers rarely pays count's equality calls). An equal value is as
        # good as the same one (same sockaddr), but for an IPv6 flow label, which
        # equality ignores: there the values themselves must be the same.
        if (
            dests[-1] is first
            and dests.count(first) == len(dests)
            and (type(first) is not Ip6Address or all(map(operator.is_, dests, itertools.repeat(first))))
        ):
            # One destination for the whole batch: the usual case, checked in C.
            try:
                target = as_address(first)
                encoded = target.destination()  # port 0 is refused before the syscall
            except SocketError as failure:
                return 0, failure
            count = len(dests)
            if encoded is not self.uniform or count > self.uniform_count:
                # Forgotten first and recorded last, the count before the sockaddr it
                # counts (see _set_destination).
                self.uniform_dest = _NO_DEST
                self.uniform = None
                for slot in range(count):
                    if encodings[slot] is not encoded:
                        self._set_destination(slot, target, encoded)
                self.uniform_count = count
                self.uniform = encoded
            # An exact IP value is immutable: the next batch to this very object may skip
            # its checks (`fill`). Text or a subclass goes through them each time.
            self.uniform_dest = first if type(first) is Ip4Address or type(first) is Ip6Address else _NO_DEST
            return count, None
        last: object = None
        for slot, dest in enumerate(dests):
            if dest is not last:
                try:
                    target = as_address(dest)
                    encoded = target.destination()  # port 0 is refused before the syscall
                except SocketError as failure:
                    return slot, failure
                last = dest
            if encodings[slot] is not encoded:
                self._set_destination(slot, target, encoded)
        return len(dests), None

    def _set_destination(self, slot: int, target: Address, encoded: Any) -> None:
        # What the fields say the arrays hold is what the next call trusts instead of
        # looking: an exception from a signal handler can land between any two of
        # these lines, so the record is dropped before a header is written and made
        # only after it, never left saying more than the header holds.
        self.uniform_dest = _NO_DEST
        self.uniform = None
        encodings = self.encodings
        encodings[slot] = None
        header = self.headers[slot]
        header.msg_name = encoded.pointer
        header.msg_namelen = encoded.length
        self.targets[slot] = target
        encodings[slot] = encoded

    def _set_data(self, datas: tuple[Buffer, ...]) -> None:
        joined = b"".join(datas)
        lengths = list(map(len, datas))  # bytes and bytearray: len is the byte count
        if len(joined) > _STAGING_KEEP:
            base = ffi.from_buffer(joined)
            self.buffers.append(base)
            self.layout = []  # the iovecs now point at memory that will not be there next time
        else:
            if len(joined) > len(self.staging):
                self.layout = []  # before the old buffer, which the iovecs point into, goes
                self.staging = uncleared("char[]", max(len(joined), 2 * len(self.staging)))
            base = self.staging
            ffi.memmove(base, joined, len(joined))
            layout = self.layout
            if layout == lengths or layout[: len(lengths)] == lengths:
                return
        self._set_layout(base, lengths)

    def _set_layout(self, base: Any, lengths: list[int]) -> None:
        """Point the iovecs at consecutive payloads of ``lengths`` from ``base``."""
        self.layout = []  # unknown until every iovec is written (see _set_destination)
        offset = 0
        for vector, length in zip(self.vectors, lengths, strict=False):  # more slots than messages
            vector.iov_base = base + offset
            vector.iov_len = length
            offset += length
        if base is self.staging:
            self.layout = lengths

    def _fill_each(self, items: Sequence[Any]) -> tuple[int, Exception | None]:
        """The general path: each item unpacked, addressed and pinned on its own."""
        vectors = self.vectors
        self.layout = []
        filled = 0
        last: object = None
        try:
            for dest, data in items:
                if dest is not last:
                    target = as_address(dest)
                    encoded = target.destination()  # port 0 is refused before the syscall
                    last = dest
                if self.encodings[filled] is not encoded:
                    self._set_destination(filled, target, encoded)
                view = view_of(data)
                self.buffers.append(view)
                vector = vectors[filled]
                vector.iov_base = view
                vector.iov_len = len(view)
                filled += 1
        except Exception as failure:  # a bad address or item; the ones before it still go
            return filled, failure
        return filled, None

    def drop_buffers(self) -> None:
        """Unpin the call's buffers (a pinned bytearray could not be resized)."""
        self.buffers.clear()


class ReceiveBatch:
    """Reused ``struct mmsghdr[]``, iovecs, source sockaddrs and one data buffer for recvmmsg.

    Slot ``i`` receives into bytes ``[i*size, (i+1)*size)`` of the buffer and its
    source into sockaddr_storage ``i``. The kernel overwrites msg_namelen, msg_flags
    and msg_len, so the native call (`jn_desc_receive_many`, through ``rx``) restores
    the headers from a pristine copy before each recvmmsg, and after it says whether
    the datagrams share one length and one IPv4 source: then nothing is read per
    datagram; otherwise the lengths and sources are read at once through views of the
    headers and names. The per-datagram work left is what the result is made of: a
    bytes object, and the source looked up in `DECODED_SOURCES`.
    """

    __slots__ = (
        "buf", "capacity", "cut", "cut_shape", "cuts", "data", "iov", "ip4", "msgs", "name_words", "names",
        "pristine", "raw_names", "rx", "size", "words",
    )  # fmt: skip

    def __init__(self, capacity: int, size: int, ip4: bool) -> None:
        self.capacity = capacity
        self.size = size
        # Sources of an IPv4 socket are keyed by an int, not by bytes (see collect).
        self.ip4 = ip4 and IP4_KEY_OK
        self.msgs = ffi.new("struct mmsghdr[]", capacity)
        self.iov = ffi.new("struct iovec[]", capacity)
        self.names = uncleared("struct sockaddr_storage[]", capacity)
        self.buf = uncleared("char[]", capacity * size)
        for i in range(capacity):
            header = self.msgs[i].msg_hdr
            header.msg_name = self.names + i
            header.msg_namelen = STORAGE_SIZE
            header.msg_iov = self.iov + i
            header.msg_iovlen = 1
            vector = self.iov[i]
            vector.iov_base = self.buf + i * size
            vector.iov_len = size
        # What jn_desc_receive_many restores the headers from before each call, and
        # where it says what the datagrams of a call have in common.
        self.pristine = ffi.new("struct mmsghdr[]", capacity)
        ffi.memmove(self.pristine, self.msgs, capacity * _MMSGHDR_SIZE)
        self.rx = ffi.new("struct jn_rxm *")
        self.rx.msgs = self.msgs
        self.rx.pristine = self.pristine
        self.words = memoryview(ffi.buffer(self.msgs)).cast("I")
        self.data = ffi.buffer(self.buf)
        self.raw_names = ffi.buffer(self.names)
        self.name_words = memoryview(self.raw_names).cast("Q")
        # ``cut(cuts[i])`` is datagram i as bytes; ``cuts`` are slices of the data
        # buffer for the lengths ``cut_shape`` says ((count, length) when the datagrams
        # were all one length, else the list of lengths), rebuilt only when that changes.
        self.cut = self.data.__getitem__
        self.cuts: list[slice] = []
        self.cut_shape: object = None

    def collect(self, got: int, out: list[tuple[bytes, Address]]) -> None:
        """Append the first ``got`` datagrams of the last `jn_desc_receive_many` and their sources to ``out``."""
        if got <= 0:
            return
        rx = self.rx
        # The usual case, a stream from one peer in datagrams of one size: the native
        # call said so in two integers, and nothing is read per datagram.
        length = rx.length
        shape: object = (got, length)
        if length < 0:
            shape = self.words[_MSG_LEN_WORD : got * _MMSGHDR_WORDS : _MMSGHDR_WORDS].tolist()
        if shape != self.cut_shape:
            # Made in C, with no Python step per datagram. The shape is forgotten
            # while the cuts change: an exception from a signal handler between the
            # two must not leave an older shape naming these cuts.
            self.cut_shape = None
            size = self.size
            starts = range(0, got * size, size) if size else [0] * got  # read twice below
            lengths = itertools.repeat(length, got) if length >= 0 else shape
            self.cuts = list(map(slice, starts, map(operator.add, starts, lengths)))  # type: ignore[call-overload]
            self.cut_shape = shape
        payloads = map(self.cut, self.cuts)
        key = rx.key
        if key:
            # One IPv4 peer sent the whole batch: one look-up for all of it.
            source = DECODED_SOURCES.get(key) or self._decode(0, SOCKADDR_IN_SIZE, key)
            out.extend(zip(payloads, itertools.repeat(source, got), strict=True))
            return
        words = self.words
        name_lengths = words[_MSG_NAMELEN_WORD : got * _MMSGHDR_WORDS : _MMSGHDR_WORDS].tolist()
        keys: list[Any]
        if self.ip4 and name_lengths.count(SOCKADDR_IN_SIZE) == got:
            # The first 8 bytes of a sockaddr_in hold everything that identifies it
            # (family, port, address; the rest is sin_zero, which the kernel zeroes):
            # read them for every slot at once as ints, instead of one bytes per slot.
            keys = self.name_words[0 : got * _STORAGE_QWORDS : _STORAGE_QWORDS].tolist()
        else:
            raw_names = self.raw_names
            name_starts = range(0, got * STORAGE_SIZE, STORAGE_SIZE)
            keys = [raw_names[start : start + length] for start, length in zip(name_starts, name_lengths, strict=True)]
        sources: list[Any] = list(map(DECODED_SOURCES.get, keys))
        if not all(sources):  # addresses are always true; None marks a peer not seen yet
            for slot, source in enumerate(sources):
                if source is None:
                    sources[slot] = self._decode(slot, name_lengths[slot], keys[slot])
        out.extend(zip(payloads, sources, strict=True))

    def _decode(self, slot: int, length: int, key: bytes | int) -> Address:
        if length == 0:
            return UNNAMED_UNIX  # an unbound unix sender: the kernel writes no address
        return from_sockaddr_cached(self.names + slot, length, key)


__all__ = ["BATCH_MAX", "SEQUENCES", "USE_MMSG", "ReceiveBatch", "SendBatch", "batch_capacity"]
