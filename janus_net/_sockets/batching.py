"""Batched datagram I/O: `Socket.send_many` and `receive_many`, one syscall per batch.

Where the platform has sendmmsg/recvmmsg the datagrams go through the arrays of
`janus_net._sockets.mmsg_arrays`, which the socket keeps for its next call; elsewhere
the same calls go one datagram at a time (`send_each`, `receive_each`), with the same
results.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator

from janus_net._kernel import cell_io, loop
from janus_net._policy import waiting
from janus_net._shim import ffi, lib
from janus_net._sockets.buffers import SIZE_MAX, Buffer, Pool, Scratch, size_argument, uncleared
from janus_net._sockets.mmsg_arrays import (
    BATCH_MAX,
    SEQUENCES,
    USE_MMSG,
    ReceiveBatch,
    SendBatch,
    batch_capacity,
)
from janus_net._sockets.owner import later_call_error, raise_woken
from janus_net._values.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from janus_net._policy.context import Context
    from janus_net._sockets.endpoint import Endpoint
    from janus_net._values.addresses import Address

    _T = TypeVar("_T")


_MSG_DONTWAIT = lib.MSG_DONTWAIT
# Every send is a per-call non-blocking attempt that never raises SIGPIPE.
_SEND_FLAGS = cell_io.SEND_FLAGS
_WOULD_BLOCK = loop.WOULD_BLOCK
_after_failure = loop.after_failure
# The first attempt of a batch is made inline when the fault seam is unarmed (one
# call, no retry frame); after a failure the loop goes on from that attempt.
_SEND, _SENDMMSG = cell_io.SENDMMSG_CALL
_RECEIVE, _RECEIVE_MANY = cell_io.RECEIVE_MANY_CALL


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
    pool = io.send_batches
    if type(messages) is list and pool is not None and _SEND.fault is None:
        # The usual call, in as few steps as it takes: a list that fits a kept batch,
        # every item described (`SendBatch.fill`), one sendmmsg that takes them all.
        # Anything else -- an item it could not describe, a kernel that took fewer or
        # failed -- goes on exactly as `_send_many` would from the same point.
        idle = pool.idle
        try:
            batch = idle.pop()
        except IndexError:
            batch = None
        if batch is not None:
            try:
                count = len(messages)
                if 0 < count <= batch.capacity:
                    filled, _failure = batch.fill(messages)
                    if filled == count:  # so nothing failed
                        whole = (desc, batch.msgs, count, _SEND_FLAGS)
                        went = _SENDMMSG(*whole)
                        if went == count:
                            return count
                        try:
                            return _send_filled(io, batch, count, whole, went)
                        except (SocketError, ErrnoBug) as e:
                            raise_woken(desc, e, "send", io.local, began_open)
                    # Not all described: `_send_many` describes them again, one by one.
            finally:
                if batch.buffers:
                    batch.drop_buffers()
                if not idle:
                    idle.append(batch)
    return _send_many(io, messages, send_one, began_open)


def _send_many(
    io: Endpoint, messages: Iterable[tuple[str | Address, Buffer]], send_one: Callable[..., int], began_open: bool
) -> int:
    """`send_many`'s general path: an iterator, more items than a batch, an item it must refuse, the seam armed."""
    desc = io.desc
    try:
        if not USE_MMSG:
            return send_each(io, messages, send_one)
        # The batched path, written here rather than in a function of its own: one frame per call.
        sequence = type(messages) in SEQUENCES
        if sequence:
            wanted = len(messages)  # type: ignore[arg-type]
            if not 0 < wanted <= BATCH_MAX:
                wanted = 1 if wanted < 1 else BATCH_MAX
        else:
            wanted = batch_capacity(messages)
        pool = io.send_batches
        if pool is None:
            pool = io.send_batches = Pool()
        # The pool's take and give written out (atomic list.pop and append, see `Pool`).
        idle = pool.idle
        try:
            batch = idle.pop()
        except IndexError:
            batch = None
        if batch is None or batch.capacity < wanted:
            batch = SendBatch(wanted)
        try:
            sent = 0
            capacity = batch.capacity
            # A list or tuple is cut into batches by slicing (none at all when it fits
            # in one), so no iterator is made and no empty read ends the last batch.
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
                        if _SEND.fault is None:
                            # The usual case's one call, inline (see _send_filled).
                            whole = (desc, batch.msgs, filled, _SEND_FLAGS)
                            went = _SENDMMSG(*whole)
                            done = filled if went == filled else _send_filled(io, batch, filled, whole, went)
                        else:
                            done = _send_filled(io, batch, filled)
                    except (SocketError, ErrnoBug) as e:
                        if sent == 0 or isinstance(later_call_error(desc, e, "send", io.local), ErrnoBug):
                            raise
                        return sent
                    finally:
                        if batch.buffers:
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
            if not idle:
                idle.append(batch)
    except (SocketError, ErrnoBug) as e:
        raise_woken(desc, e, "send", io.local, began_open)


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


def _send_filled(
    io: Endpoint, batch: SendBatch, filled: int, whole: tuple[Any, Any, int, int] | None = None, went: int = 0
) -> int:
    """sendmmsg the first ``filled`` slots, again from where the kernel stopped.

    ``whole`` and ``went``: the first attempt, made by the caller with the fault seam
    unarmed (``whole`` its arguments, ``went`` what it returned), which this goes on from.
    """
    targets = batch.targets
    desc = io.desc
    done = 0
    if whole is not None:
        # After a failure the loop goes on from that very attempt (never made twice:
        # it would consume a pending error, or send twice).
        if went < 0:
            went = _after_failure(_SEND, _SENDMMSG, whole, None, targets[0], True)  # the first one's error raises
            if went < 0:
                went = waiting.wait_for(
                    desc,
                    waiting.POLLOUT,
                    None,
                    functools.partial(cell_io.sendmmsg_on, *whole, targets[0]),
                    lambda: io.closed_error("send"),
                    tried=True,
                )
        if went == 0:
            return 0  # not expected after poll said writable; never spin on it
        done = went
    while done < filled:
        args = (desc, batch.msgs + done, filled - done, _SEND_FLAGS, targets[done])
        try:
            went = cell_io.sendmmsg_on(*args)  # first attempt inline; wait only after EAGAIN
            if went < 0:
                went = waiting.wait_for(
                    desc,
                    waiting.POLLOUT,
                    None,
                    functools.partial(cell_io.sendmmsg_on, *args),
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
    pool = io.receive_batches
    if pool is not None and ctx is None and type(count) is int and type(size) is int and _RECEIVE.fault is None:
        # The usual call, in as few steps as it takes: a kept batch of this size (checked
        # when it was made) that holds ``count`` (so one recvmmsg answers the call
        # whatever it takes: all that was asked, or all that was queued), no context,
        # the fault seam unarmed. Anything else: `_receive_many`.
        idle = pool.idle
        try:
            batch = idle.pop()
        except IndexError:
            batch = None
        if batch is not None:
            if 0 < count <= batch.capacity and size == batch.size:
                try:
                    args = (io.desc, batch.rx, count)
                    got = _RECEIVE_MANY(*args)
                    if got > 0:
                        received: list[tuple[bytes, Address]] = []
                        batch.collect(got, received)
                        return received
                    return _receive_with(io, batch, count, ctx, args, got)
                finally:
                    if not idle:
                        idle.append(batch)
            if not idle:
                idle.append(batch)  # back, for _receive_many to take
    return _receive_many(io, count, size, ctx)


def _receive_many(io: Endpoint, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
    """`receive_many` with its checks: the first call on a socket, a new size or count, a context, the seam armed."""
    # The checks of size_argument, its frame only for a value it must refuse or convert.
    if type(count) is not int or not 1 <= count <= SIZE_MAX:
        count = size_argument("count", count, 1)
    if type(size) is not int or not 0 <= size <= SIZE_MAX:
        size = size_argument("size", size)
    if not USE_MMSG:
        return receive_each(io, count, size, ctx)
    wanted = min(count, BATCH_MAX)
    pool = io.receive_batches
    if pool is None:
        pool = io.receive_batches = Pool()
    idle = pool.idle  # the pool's take and give written out, as in send_many
    try:
        batch = idle.pop()
    except IndexError:
        batch = None
    if batch is None or batch.size != size or batch.capacity < wanted:
        batch = ReceiveBatch(wanted, size, io.local.family == lib.AF_INET)
    try:
        if ctx is None and _RECEIVE.fault is None:
            # The usual case's one call, inline: without a context, the fault seam
            # unarmed, and done when it took all that was asked or all that was queued.
            capacity = batch.capacity
            args = (io.desc, batch.rx, count if count < capacity else capacity)
            got = _RECEIVE_MANY(*args)
            if got > 0 and (got == count or got < capacity):
                received: list[tuple[bytes, Address]] = []
                batch.collect(got, received)
                return received
            return _receive_with(io, batch, count, ctx, args, got)
        return _receive_with(io, batch, count, ctx)
    finally:
        if not idle:
            idle.append(batch)


def receive_each(io: Endpoint, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
    """`receive_many` one recvfrom at a time: the path for platforms without recvmmsg."""
    buf = uncleared("char[]", size)
    scratch = Scratch()
    got, source = io.receive_from(buf, size, ctx, scratch)  # waits for the first
    received = [(ffi.unpack(buf, got), source)]
    while len(received) < count:
        got, source = io.receive_from(buf, size, None, scratch, nonblocking=True)
        if got == loop.WOULD_BLOCK:
            break
        received.append((ffi.unpack(buf, got), source))
    return received


def _receive_with(
    io: Endpoint,
    batch: ReceiveBatch,
    count: int,
    ctx: Context | None,
    first: tuple[Any, Any, int] | None = None,
    got: int = 0,
) -> list[tuple[bytes, Address]]:
    """`receive_many`'s calls; ``first`` and ``got``: the first attempt, if the caller made it, and its result."""
    received: list[tuple[bytes, Address]] = []
    rx = batch.rx  # the native call restores the headers itself before each attempt
    want = min(count, batch.capacity)
    desc = io.desc
    check = None if ctx is None else ctx.check
    # Without a context the first attempt is inline (without the retry frame when the
    # fault seam is unarmed); the wait loop only after EAGAIN.
    if ctx is not None:
        got = _WOULD_BLOCK
    elif first is not None:
        if got < 0:  # the loop goes on from that very attempt (errno is still its errno)
            got = _after_failure(_RECEIVE, _RECEIVE_MANY, first, None, None, True)
    elif _RECEIVE.fault is None:
        args = (desc, rx, want)
        got = _RECEIVE_MANY(*args)
        if got < 0:
            got = _after_failure(_RECEIVE, _RECEIVE_MANY, args, None, None, True)
    else:
        got = cell_io.receive_many_on(desc, rx, want, None)
    if got < 0:
        got = waiting.wait_for(
            desc,
            waiting.POLLIN,
            ctx,
            lambda: cell_io.receive_many_on(desc, rx, want, check),
            lambda: io.closed_error("receive"),
            io.hung_up,
            tried=ctx is None,
        )
    batch.collect(got, received)
    # A full batch may mean more is queued: keep taking it without waiting.
    while got == want and len(received) < count:
        want = min(count - len(received), batch.capacity)
        try:
            got = cell_io.receive_many_on(desc, rx, want, check)
        except (SocketError, ErrnoBug):
            break  # keep what was already taken off the queue; the next call reports
        if got == _WOULD_BLOCK:
            break
        batch.collect(got, received)
    return received


__all__ = ["receive_each", "receive_many", "send_each", "send_many"]
