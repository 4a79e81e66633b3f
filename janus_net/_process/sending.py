"""The sending side of a socket transfer: `send_sockets`, and `RightsSend`, one sendmsg with SCM_RIGHTS.

Each chunk (`janus_net._process.transfer` describes the format) goes as one
sendmsg whose first byte carries its descriptors; the rest of a short send follows
without them. Every attempt is non-blocking on the channel's owned cell; a send that
would block waits with poll (the channel, its wake fd, the context). The sockets
sent are held in flight inside the one native call that reads their descriptors,
so a socket another thread closes meanwhile is never sent as a number that may
already name something else. `RightsSend` is also what ``notify(fds=...)`` sends
its FDSTORE datagrams with.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from janus_net._kernel import cell_io, control, loop
from janus_net._policy import waiting
from janus_net._process.transfer import (
    CHUNK_MAX,
    AnySocket,
    check_channel,
    encode_chunk,
    sockets_to_send,
)
from janus_net._shim import ffi
from janus_net._sockets.from_cell import Kind
from janus_net._sockets.owner import raise_woken
from janus_net._sockets.stream import Stream
from janus_net._values.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._policy.context import Context

_SEND_FLAGS = cell_io.SEND_FLAGS


def _send_all(
    chan: Stream, payload: bytes, chunk: list[tuple[str, Kind, Any]], ctx: Context | None, address: object
) -> None:
    """One chunk: the descriptors go with the first byte sent; the rest of a short send follows.

    Each attempt is non-blocking (on the channel's owned cell, counted in flight); while
    it would block, the wait polls the channel, its wake fd (``close()`` from another
    thread) and the context. The sockets sent are held in flight too, inside the one
    native call, and their fds are read there: a socket another thread closes meanwhile
    is never sent as a number that may already name something else.
    """
    desc = chan._desc
    check = None if ctx is None else ctx.check
    attempt = RightsSend(desc, payload, chunk, _SEND_FLAGS, address, check)
    sent = waiting.wait_for(desc, waiting.POLLOUT, ctx, attempt, functools.partial(chan._closed_error, "send"))
    while sent < len(payload):
        # The descriptors went with the part already sent: the rest goes without them.
        msg, keep = control.rights_message(payload[sent:], [])
        rest = functools.partial(cell_io.sendmsg_on, desc, msg, _SEND_FLAGS, cell_io.SENDMSG, address, check)
        sent += waiting.wait_for(desc, waiting.POLLOUT, ctx, rest, functools.partial(chan._closed_error, "send"))
        del keep


class RightsSend:
    """One sendmsg of ``payload`` with the sockets of ``chunk`` (name, kind, cell) as SCM_RIGHTS.

    The object is the attempt (call it; `WOULD_BLOCK` as `syscalls.sendmsg_rights_on`
    says): each call is one native call that holds every sent socket in flight and
    writes its fd into the message itself, so a socket another thread closes meanwhile
    is never sent as a number that may already name something else (the close waits
    for the call; a socket already closing stops it with ValueError). It keeps alive
    the memory the message points into and the cells it sends.
    """

    __slots__ = ("address", "cells", "check", "closed_at", "desc", "flags", "keep", "msg", "names", "native", "slots")

    def __init__(
        self,
        desc: Any,
        payload: bytes,
        chunk: list[tuple[str, Kind, Any]],
        flags: int,
        address: object = None,
        check: loop.Checkpoint | None = None,
    ) -> None:
        self.desc, self.flags, self.address, self.check = desc, flags, address, check
        self.names = [name for name, _, _ in chunk]
        self.cells = [cell for _, _, cell in chunk]
        self.msg, self.keep = control.rights_message(payload, [-1] * len(self.cells))  # slots the native call fills
        self.native = ffi.new("struct jn_desc *[]", self.cells)
        self.slots = control.rights_slots(self.msg) if self.cells else ffi.NULL
        self.closed_at = ffi.new("int *", -1)

    def __call__(self) -> int:
        try:
            return cell_io.sendmsg_rights_on(
                self.desc, self.msg, self.flags, self.native, self.slots, len(self.cells), self.closed_at,
                self.address, self.check,
            )  # fmt: skip
        except (SocketError, ErrnoBug):
            at = self.closed_at[0]
            if at >= 0:
                raise ValueError(
                    f"socket {self.names[at]!r} was closed by another thread while it was being sent"
                ) from None
            raise


def send_sockets(channel: Stream, sockets: Mapping[str, AnySocket], *, ctx: Context | None = None) -> None:
    """Send copies of ``sockets`` (name -> `Server` | `Socket` | `Stream`) over a unix stream.

    The receiving process gets its own descriptors for the same sockets (as after
    fork): the sender's objects stay open and its own until it closes them, and
    closing them never affects the receiver. Names and order travel with the
    descriptors; any number of sockets goes in chunks of at most ``SCM_MAX_FD``.

    Args:
        channel: a connected unix `Stream` (``jn.connect("unix:...")`` or an accepted one).
        sockets: the sockets by name; names are 1..255 printable ASCII characters
            without ':' (systemd's FDNAME rule).
        ctx: a `Context`; a cancel or deadline ends a send that waits for buffer space
            with `SocketError.Timeout` (the receiver then sees a truncated transfer and
            refuses it, closing what it got).

    Raises:
        TypeError / ValueError: a bad channel, mapping, socket or name (before any syscall).
        SocketError.SocketUnconnected: the receiver is gone (EPIPE).
        SocketError.ConnectionResetByPeer: the receiver closed with data unread.
        SocketError.SystemResources: too many descriptors in flight (ETOOMANYREFS).
        SocketError.Timeout: the context ended.
    """
    chan = check_channel(channel)
    items = sockets_to_send(sockets)
    total = len(items)
    if chan.closed:
        raise ValueError("the channel is closed")
    start = 0
    try:
        while True:
            chunk = items[start : start + CHUNK_MAX]
            start += len(chunk)
            last = start >= total
            _send_all(chan, encode_chunk(chunk, last, total), chunk, ctx, chan.address)
            if last:
                return
    except (SocketError, ErrnoBug) as e:
        # The channel was open when the call began (just checked), so a step that finds
        # it closed -- the next chunk, or the rest of a short send, which begins without
        # waiting -- met another thread's close(): the closed member, as for every call
        # that close() ends (DESIGN §3), not the EBADF row.
        raise_woken(chan._desc, e, "send", chan.address)


__all__ = ["RightsSend", "send_sockets"]
