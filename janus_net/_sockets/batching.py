"""Batched datagram I/O: `Socket.send_many` and `receive_many`, over sendmmsg/recvmmsg arrays reused per socket.

Where the platform has no sendmmsg/recvmmsg, the same calls go one datagram at a
time (`send_each`, `receive_each`), with the same results.
"""

from __future__ import annotations

import functools
import itertools
import operator
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence

from janus_net import platform, syscalls, waiting
from janus_net._shim import ffi, lib
from janus_net._sockets.buffers import (
    IP4_KEY_OK,
    SOCKADDR_IN_SIZE,
    STORAGE_SIZE,
    UNNAMED_UNIX,
    Buffer,
    Pool,
    Scratch,
    size_argument,
    uncleared,
    view_of,
)
from janus_net._sockets.owner import closed_during, later_call_error
from janus_net.address import (
    DECODED_SOURCES,
    Address,
    as_address,
    from_sockaddr_cached,
)
from janus_net.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from janus_net._sockets.endpoint import Endpoint
    from janus_net.context import Context

    _T = TypeVar("_T")


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
_STORAGE_QWORDS = STORAGE_SIZE // 8
# A batch's payloads are copied into a staging buffer the batch keeps, up to this
# many bytes; a bigger batch is sent from a one-off buffer instead.
_STAGING_KEEP = 256 * 1024


_MSG_DONTWAIT = lib.MSG_DONTWAIT
# Every send is a per-call non-blocking attempt that never raises SIGPIPE.
_SEND_FLAGS = platform.MSG_NOSIGNAL | lib.MSG_DONTWAIT
_WOULD_BLOCK = syscalls.WOULD_BLOCK


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
        "uniform_count", "vectors",
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
        if not _JOINABLE.issuperset(map(type, datas)):
            return self._fill_each(items)
        filled, failure = self._set_destinations(dests)
        if filled < len(datas):
            datas = datas[:filled]
        self._set_data(datas)
        return filled, failure

    def _set_destinations(self, dests: tuple[str | Address, ...]) -> tuple[int, Exception | None]:
        encodings = self.encodings
        first = dests[0]
        if all(map(operator.is_, dests, itertools.repeat(first))):
            # One destination for the whole batch: the usual case, checked in C.
            try:
                target = as_address(first)
                encoded = target.destination()  # port 0 is refused before the syscall
            except SocketError as failure:
                return 0, failure
            count = len(dests)
            if encoded is not self.uniform or count > self.uniform_count:
                for slot in range(count):
                    if encodings[slot] is not encoded:
                        self._set_destination(slot, target, encoded)
                self.uniform = encoded
                self.uniform_count = count
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
        header = self.headers[slot]
        header.msg_name = encoded.pointer
        header.msg_namelen = encoded.length
        self.encodings[slot] = encoded
        self.targets[slot] = target
        self.uniform = None

    def _set_data(self, datas: tuple[Buffer, ...]) -> None:
        joined = b"".join(datas)
        lengths = list(map(len, datas))  # bytes and bytearray: len is the byte count
        if len(joined) > _STAGING_KEEP:
            base = ffi.from_buffer(joined)
            self.buffers.append(base)
            self.layout = []  # the iovecs now point at memory that will not be there next time
        else:
            if len(joined) > len(self.staging):
                self.staging = uncleared("char[]", max(len(joined), 2 * len(self.staging)))
                self.layout = []
            base = self.staging
            ffi.memmove(base, joined, len(joined))
            layout = self.layout
            if layout == lengths or layout[: len(lengths)] == lengths:
                return
            self.layout = lengths
        offset = 0
        for vector, length in zip(self.vectors, lengths, strict=False):  # more slots than messages
            vector.iov_base = base + offset
            vector.iov_len = length
            offset += length

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
    and msg_len, so before each call the headers are restored from a pristine copy
    with one memmove instead of one field write per slot; after it, every length is
    read at once through an unsigned-int view of the headers. The per-datagram work
    left is what the result is made of: a bytes object, and the source looked up by
    its raw sockaddr bytes in `DECODED_SOURCES`.
    """

    __slots__ = (
        "buf", "capacity", "cut", "cut_lengths", "cuts", "data", "iov", "ip4", "msgs", "name_words", "names",
        "pristine", "raw_names", "size", "words",
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
        self.pristine = ffi.buffer(self.msgs)[:]
        self.words = memoryview(ffi.buffer(self.msgs)).cast("I")
        self.data = ffi.buffer(self.buf)
        self.raw_names = ffi.buffer(self.names)
        self.name_words = memoryview(self.raw_names).cast("Q")
        # ``cut(cuts[i])`` is datagram i as bytes; ``cuts`` are slices of the data
        # buffer for the lengths in ``cut_lengths``, rebuilt only when those change.
        self.cut = self.data.__getitem__
        self.cuts: list[slice] = []
        self.cut_lengths: list[int] = []

    def reset(self, count: int) -> None:
        ffi.memmove(self.msgs, self.pristine, count * _MMSGHDR_SIZE)

    def collect(self, got: int, out: list[tuple[bytes, Address]]) -> None:
        """Append the first ``got`` datagrams and their sources to ``out``."""
        words = self.words
        end = got * _MMSGHDR_WORDS
        lengths = words[_MSG_LEN_WORD:end:_MMSGHDR_WORDS].tolist()
        name_lengths = words[_MSG_NAMELEN_WORD:end:_MMSGHDR_WORDS].tolist()
        if lengths != self.cut_lengths:
            # Datagrams of the same lengths as last time (a steady stream) reuse the
            # slices; otherwise they are made in C, with no Python step per datagram.
            size = self.size
            starts = range(0, got * size, size) if size else [0] * got  # read twice below
            self.cuts = list(map(slice, starts, map(operator.add, starts, lengths)))
            self.cut_lengths = lengths
        payloads = map(self.cut, self.cuts)
        keys: list[Any]
        if self.ip4 and name_lengths.count(SOCKADDR_IN_SIZE) == got:
            # The first 8 bytes of a sockaddr_in hold everything that identifies it
            # (family, port, address; the rest is sin_zero, which the kernel zeroes):
            # read them for every slot at once as ints, instead of one bytes per slot.
            keys = self.name_words[0 : got * _STORAGE_QWORDS : _STORAGE_QWORDS].tolist()
            first = keys[0]
            if keys.count(first) == got:
                # One peer sent the whole batch (compared in C): one lookup for all.
                source = DECODED_SOURCES.get(first) or self._decode(0, SOCKADDR_IN_SIZE, first)
                out.extend(zip(payloads, itertools.repeat(source, got), strict=True))
                return
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


# --- Sending


def send_many(io: Endpoint, messages: Iterable[tuple[str | Address, Buffer]], send_one: Callable[..., int]) -> int:
    """`Socket.send_many` (its docstring says what it promises); ``send_one`` is the plain send.

    Batched where the platform has sendmmsg, into arrays the socket keeps for its next
    call; elsewhere one datagram at a time through ``send_one`` (`send_each`).
    """
    desc = io.desc
    # A close() from another thread can land between any two steps of the loop:
    # what the call knew when it began decides whether an EBADF is that close or a bug.
    began_open = not desc.closing
    try:
        if not USE_MMSG:
            return send_each(io, messages, send_one)
        # The batched path, written here rather than in a function of its own: one frame per call.
        wanted = batch_capacity(messages)
        pool = io.send_batches
        if pool is None:
            pool = io.send_batches = Pool()
        batch = pool.take()
        if batch is None or batch.capacity < wanted:
            batch = SendBatch(wanted)
        try:
            sent = 0
            capacity = batch.capacity
            # A list or tuple is cut into batches by slicing (none at all when it fits
            # in one), so no iterator is made and no empty read ends the last batch.
            sequence = type(messages) in SEQUENCES
            iterator = None if sequence else iter(messages)
            start = 0
            taking: Exception | None = None  # what the caller's iterator raised
            while True:
                if iterator is None:
                    count = len(messages)  # type: ignore[arg-type]  # a list or tuple
                    items: Any = messages
                    if start or count > capacity:
                        items = items[start : start + capacity]
                    start += capacity
                    last = start >= count
                else:
                    items, taking = _take(iterator, capacity)
                    last = taking is not None or len(items) < capacity
                filled, failure = batch.fill(items)
                if filled:
                    try:
                        done = _send_filled(io, batch, filled)
                    except (SocketError, ErrnoBug) as e:
                        if sent == 0 or isinstance(later_call_error(desc, e, "send", io.local), ErrnoBug):
                            raise
                        return sent
                    finally:
                        batch.drop_buffers()
                    sent += done
                    if done < filled:
                        return sent
                if failure is not None:
                    if sent and isinstance(failure, SocketError):
                        return sent
                    raise failure
                if taking is not None:
                    _note(taking, f"send_many: {sent} datagrams taken before this error were sent")
                    raise taking
                if last:
                    return sent
        finally:
            pool.give(batch)
    except (SocketError, ErrnoBug) as e:
        woken = closed_during(desc, e, "send", began_open, io.local)
        if woken is e:
            raise
        raise woken from None


def send_each(io: Endpoint, messages: Iterable[tuple[str | Address, Buffer]], send_one: Callable[..., int]) -> int:
    """`send_many` one datagram at a time through ``send_one``: the path for platforms without sendmmsg."""
    sent = 0
    iterator = iter(messages)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return sent
        except Exception as e:
            _note(e, f"send_many: {sent} datagrams taken before this error were sent")
            raise
        dest, data = item
        try:
            send_one(dest, data)
        except (SocketError, ErrnoBug) as e:
            if sent == 0:
                raise
            if isinstance(later_call_error(io.desc, e, "send", io.local), ErrnoBug):
                raise
            return sent
        sent += 1


def _send_filled(io: Endpoint, batch: SendBatch, filled: int) -> int:
    """sendmmsg the first ``filled`` slots, again from where the kernel stopped."""
    targets = batch.targets
    desc = io.desc
    done = 0
    while done < filled:
        args = (desc, batch.msgs + done, filled - done, _SEND_FLAGS, targets[done])
        try:
            went = syscalls.sendmmsg_on(*args)  # first attempt inline; wait only after EAGAIN
            if went < 0:
                went = waiting.wait_for(
                    desc,
                    waiting.POLLOUT,
                    None,
                    functools.partial(syscalls.sendmmsg_on, *args),
                    lambda: io.closed_error("send"),
                    tried=True,
                )
        except (SocketError, ErrnoBug):
            if done == 0:
                raise
            break
        if went == 0:
            break  # not expected after poll said writable; never spin on it
        done += went
    return done


def _note(error: BaseException, text: str) -> None:
    # BaseException.add_note is Python 3.11+; without it the error goes as it is.
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(text)


def _take(iterator: Iterator[_T], count: int) -> tuple[list[_T], Exception | None]:
    """Up to ``count`` items, and what the iterator raised (None if it did not)."""
    items: list[_T] = []
    try:
        for item in itertools.islice(iterator, count):
            items.append(item)
    except Exception as e:
        return items, e
    return items, None


# --- Receiving


def receive_many(io: Endpoint, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
    """`Socket.receive_many` on a socket without GRO (its docstring says what it promises)."""
    count = size_argument("count", count, 1)
    size = size_argument("size", size)
    if not USE_MMSG:
        return receive_each(io, count, size, ctx)
    wanted = min(count, BATCH_MAX)
    pool = io.receive_batches
    if pool is None:
        pool = io.receive_batches = Pool()
    batch = pool.take()
    if batch is None or batch.size != size or batch.capacity < wanted:
        batch = ReceiveBatch(wanted, size, io.local.family == lib.AF_INET)
    try:
        return _receive_with(io, batch, count, ctx)
    finally:
        pool.give(batch)


def receive_each(io: Endpoint, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
    """`receive_many` one recvfrom at a time: the path for platforms without recvmmsg."""
    buf = uncleared("char[]", size)
    scratch = Scratch()
    got, source = io.receive_from(buf, size, ctx, scratch)  # waits for the first
    received = [(ffi.unpack(buf, got), source)]
    while len(received) < count:
        got, source = io.receive_from(buf, size, None, scratch, nonblocking=True)
        if got == syscalls.WOULD_BLOCK:
            break
        received.append((ffi.unpack(buf, got), source))
    return received


def _receive_with(io: Endpoint, batch: ReceiveBatch, count: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
    received: list[tuple[bytes, Address]] = []
    msgs = batch.msgs
    want = min(count, batch.capacity)
    desc = io.desc
    check = None if ctx is None else ctx.check
    batch.reset(want)
    # Without a context the first attempt is inline; the wait loop only after EAGAIN.
    got = _WOULD_BLOCK if ctx is not None else syscalls.recvmmsg_on(desc, msgs, want, _MSG_DONTWAIT, None)
    if got < 0:
        got = waiting.wait_for(
            desc,
            waiting.POLLIN,
            ctx,
            lambda: syscalls.recvmmsg_on(desc, msgs, want, _MSG_DONTWAIT, check),
            lambda: io.closed_error("receive"),
            io.hung_up,
            tried=ctx is None,
        )
    batch.collect(got, received)
    # A full batch may mean more is queued: keep taking it without waiting.
    while got == want and len(received) < count:
        want = min(count - len(received), batch.capacity)
        batch.reset(want)
        try:
            got = syscalls.recvmmsg_on(desc, msgs, want, _MSG_DONTWAIT, check)
        except (SocketError, ErrnoBug):
            break  # keep what was already taken off the queue; the next call reports
        if got == _WOULD_BLOCK:
            break
        batch.collect(got, received)
    return received


__all__ = [
    "BATCH_MAX", "USE_MMSG", "ReceiveBatch", "SendBatch", "batch_capacity", "receive_each", "receive_many",
    "send_each", "send_many",
]  # fmt: skip
