"""The memory the fast paths keep between calls, attacked where they trust it.

`SendBatch` and `ReceiveBatch` (janus_net/_sockets/mmsg_arrays.py) keep C arrays from
one call to the next and rewrite only what changed, trusting a few Python fields that
say what the arrays hold (the destination every slot points at, the payload lengths
the iovecs describe, the slices a result is cut with); the per-packet receive's
`Scratch` (janus_net/_sockets/buffers.py) keeps a buffer that its native struct names
too. These tests make the two
things that can come between a C write and the field that records it happen at every
line of those modules:

* an exception from a signal handler (a KeyboardInterrupt raised by ``sys.settrace``
  at the n-th line event, as tests/interrupts.py does), after which the next call on
  the same socket must still be exact;
* another thread resizing a caller's bytearray between two bytecodes of the call.

The oracle is the kernel and stdlib sockets: every datagram's bytes, boundaries and
destination (or source) are what a stdlib receiver sees.
"""

from __future__ import annotations

import select
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from interrupts import act_at, live_fds

import janus_net as jn
from janus_net._sockets import batching, buffers, datagram, endpoint, mmsg_arrays

FILES = frozenset({mmsg_arrays.__file__, batching.__file__})
PER_PACKET_FILES = frozenset({datagram.__file__, endpoint.__file__, buffers.__file__})


class Injected(KeyboardInterrupt):
    """The interrupt these tests raise (a subclass, told apart from a real one)."""


def at_line(n: int, action: Callable[[], None], files: frozenset[str] = FILES) -> tuple[Callable[..., Any], list[bool]]:
    """A sys.settrace function running ``action`` at the ``n``-th line event in ``files``; and whether it ran."""
    return act_at(n, action, files)


def traced(tracer: Callable[..., Any], call: Callable[[], object]) -> None:
    sys.settrace(tracer)
    try:
        call()
    except Injected:
        pass
    finally:
        sys.settrace(None)


def every_line(run: Callable[[int], bool]) -> int:
    """``run(n)`` for n = 1, 2, ... until it says its action was not reached; returns how many ran."""
    n = 1
    while run(n):
        n += 1
    assert n > 20, "the traced call ran too few lines to be the path under attack"
    return n - 1


def interrupt() -> None:
    raise Injected


def udp_receiver() -> socket.socket:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    return receiver


def drain(receiver: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(receiver.recv(70_000))
        except BlockingIOError:
            return got


@pytest.fixture
def peers() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = udp_receiver(), udp_receiver()
    before = live_fds()
    yield a, b
    assert live_fds() == before
    a.close()
    b.close()


def value_of(receiver: socket.socket) -> jn.Ip4Address:
    return jn.Ip4Address("127.0.0.1", receiver.getsockname()[1])


# --- receive


def test_an_interrupt_anywhere_in_a_receive_that_grows_the_kept_buffer_leaves_it_exact(
    peers: tuple[socket.socket, socket.socket],
) -> None:
    # The kept Scratch's buffer is replaced by a larger one: the native receive must
    # never be left writing into the old one (freed) while the result is read from
    # the new one.
    sender = peers[0]

    def run(n: int) -> bool:
        with jn.bind("127.0.0.1:0") as receiver:
            to = ("127.0.0.1", receiver.address.port)
            sender.sendto(b"\1" * 10, to)
            receiver.receive(10)  # the kept buffer: 10 bytes
            sender.sendto(b"\2" * 3000, to)
            tracer, ran = at_line(n, interrupt, PER_PACKET_FILES)
            traced(tracer, lambda: receiver.receive(4000))
            while select.select([receiver], [], [], 0)[0]:  # at the same small size
                receiver.receive(10)
            for tag in b"\3\4":
                sender.sendto(bytes([tag]) * 10, to)
                assert receiver.receive(10)[0] == bytes([tag]) * 10, f"interrupted at line event {n}"
        return ran[0]

    every_line(run)


# --- send_many


def test_a_bytearray_resized_by_another_thread_mid_call_never_sends_foreign_bytes(
    peers: tuple[socket.socket, socket.socket],
) -> None:
    # A thread switch can land between any two bytecodes of fill: there the
    # bytearray grows or shrinks. Each datagram must be its payload as it was
    # before or after the change -- never bytes beyond the copy the batch made
    # (heap memory on the wire) nor a boundary of another moment.
    receiver = peers[0]
    dest = value_of(receiver)
    for change in (lambda b: b.extend(b"Z" * 3000), lambda b: b.__delitem__(slice(2, None))):
        with jn.bind("127.0.0.1:0") as sender:
            sender.send_many([(dest, b"w" * 10)] * 4)  # the kept batch, uniform to dest
            drain(receiver)

            def run(n: int) -> bool:
                data = bytearray(b"y" * 10)
                before = bytes(data)
                tracer, ran = at_line(n, lambda: change(data))  # noqa: B023  # called within this iteration
                traced(tracer, lambda: sender.send_many([(dest, b"q" * 10), (dest, data), (dest, b"r" * 10)]))
                got = drain(receiver)
                assert got[0::2] == [b"q" * 10, b"r" * 10], (n, got)
                assert got[1] in (before, bytes(data)), (n, got[1][:32])
                return ran[0]

            every_line(run)


def _batch(dest: jn.Ip4Address, lengths: list[int], tag: int) -> list[tuple[jn.Ip4Address, bytes]]:
    return [(dest, bytes([tag]) * length) for length in lengths]


# (calls that leave the kept batch in a state, the interrupted call, the call checked after it)
SEND_SCENARIOS: dict[str, Callable[[jn.Ip4Address, jn.Ip4Address], tuple[list[Any], list[Any], list[Any]]]] = {
    # One destination, then another: the slots' sockaddrs and the one-destination summary.
    "another destination": lambda a, b: ([_batch(a, [5] * 6, 1)], _batch(b, [7, 8], 2), _batch(a, [5] * 6, 3)),
    "fewer, then more, to one destination": lambda a, b: (
        [_batch(a, [5] * 6, 1), _batch(b, [5] * 6, 1)],
        _batch(a, [5, 5], 2) + _batch(b, [5], 2),
        _batch(a, [5], 3) + _batch(b, [5] * 5, 3),
    ),
    # The staging buffer outgrown: the iovecs pointed into the old one.
    "staging outgrown": lambda a, b: ([_batch(a, [5] * 6, 1)], _batch(a, [5000] * 6, 2), _batch(a, [5] * 6, 3)),
    # New lengths: the iovecs rewritten.
    "new lengths": lambda a, b: (
        [_batch(a, [5] * 6, 1)],
        _batch(a, [9, 1, 9, 1, 9, 1], 2),
        _batch(a, [9, 1, 9, 1, 9, 1], 3),
    ),
    "two destinations": lambda a, b: (
        [_batch(a, [5] * 3, 1) + _batch(b, [5] * 3, 1)],
        _batch(b, [5] * 3, 2) + _batch(a, [5] * 3, 2),
        _batch(a, [5] * 3, 3) + _batch(b, [5] * 3, 3),
    ),
    # Views go item by item (_fill_each), which rewrites slots too.
    "views": lambda a, b: ([_batch(a, [5] * 6, 1)], [(b, memoryview(b"m" * 5))] * 6, _batch(a, [5] * 6, 3)),
}


@pytest.mark.parametrize("name", list(SEND_SCENARIOS))
def test_an_interrupt_anywhere_in_send_many_leaves_the_kept_batch_exact(
    name: str, peers: tuple[socket.socket, socket.socket]
) -> None:
    a, b = peers
    warm, interrupted, checked = SEND_SCENARIOS[name](value_of(a), value_of(b))
    expected = {
        port: [data for dest, data in checked if dest.port == port] for port in (value_of(a).port, value_of(b).port)
    }

    def run(n: int) -> bool:
        with jn.bind("127.0.0.1:0") as sender:
            for call in warm:
                sender.send_many(call)
            tracer, ran = at_line(n, interrupt)
            traced(tracer, lambda: sender.send_many(interrupted))
            drain(a)
            drain(b)
            assert sender.send_many(checked) == len(checked)
            got = {value_of(a).port: drain(a), value_of(b).port: drain(b)}
            assert got == expected, f"interrupted at line event {n}"
        return ran[0]

    every_line(run)


# --- receive_many


@pytest.mark.parametrize("lengths", [[5, 5], [3, 9]])
def test_an_interrupt_anywhere_in_receive_many_leaves_the_kept_batch_exact(
    lengths: list[int], peers: tuple[socket.socket, socket.socket]
) -> None:
    one, other = peers
    source = ("127.0.0.1", one.getsockname()[1])

    def run(n: int) -> bool:
        with jn.bind("127.0.0.1:0") as receiver:
            to = ("127.0.0.1", receiver.address.port)
            for _ in range(4):
                one.sendto(b"\1" * 10, to)
            assert len(receiver.receive_many(8)) == 4  # the kept batch, cut for 4 x 10 bytes
            for length in lengths:
                other.sendto(b"\2" * length, to)
            tracer, ran = at_line(n, interrupt)
            traced(tracer, lambda: receiver.receive_many(8))
            while select.select([receiver], [], [], 0)[0]:  # what the interrupted call left queued
                receiver.receive_many(8)
            for _ in range(4):
                one.sendto(b"\3" * 10, to)
            got = [(data, (str(source.host), source.port)) for data, source in receiver.receive_many(8)]
            assert got == [(b"\3" * 10, source)] * 4, f"interrupted at line event {n}"
        return ran[0]

    every_line(run)
