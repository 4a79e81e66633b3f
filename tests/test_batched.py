"""Batched datagram I/O: `Socket.send_many` and `Socket.receive_many`, against the real kernel.

Correctness only (timing lives in ``make bench``): order per sender, no loss on
loopback, partial results, truncation, typed errors, unix datagrams, contexts,
concurrent receivers, and -- through strace -- that a batch really is one
sendmmsg / recvmmsg on Linux. The stdlib `socket` module is the independent peer.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import wait_until_blocked, when_blocked

import janus_net as jn
from janus_net import platform
from janus_net._profiles.addresses import parse_address
from janus_net._sockets.batching import receive_each, send_each
from janus_net._values.ip import Ip4Address
from janus_net._values.unix import UnixAddress
from tests.tracing import MARK, calls_to, syscalls_after_mark

# A receive buffer big enough that no test burst is dropped (rmem_max permitting).
_BIG_RCVBUF = 4 * 1024 * 1024


def _grow_receive_buffer(sock: jn.Socket) -> None:
    """SO_RCVBUF through a stdlib dup of the fd: janus_net has no setter, and needs none."""
    dup = socket.socket(fileno=os.dup(sock.fileno()))
    try:
        dup.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BIG_RCVBUF)
    finally:
        dup.close()


@pytest.fixture
def receiver() -> Iterator[jn.Socket]:
    sock = jn.bind("127.0.0.1:0")
    _grow_receive_buffer(sock)
    with sock:
        yield sock


@pytest.fixture
def sender() -> Iterator[jn.Socket]:
    with jn.bind("127.0.0.1:0") as sock:
        yield sock


def _receive_exactly(sock: jn.Socket, n: int, count: int = 64) -> list[tuple[bytes, jn.Address]]:
    """Receive until ``n`` datagrams arrived; a deadline turns a loss into a Timeout, not a hang."""
    ctx = jn.Context.with_timeout(10)
    got: list[tuple[bytes, jn.Address]] = []
    while len(got) < n:
        got.extend(sock.receive_many(count, ctx=ctx))
    assert len(got) == n
    return got


def _nothing_queued(sock: jn.Socket) -> bool:
    try:
        sock.receive_many(1, ctx=jn.Context.with_timeout(0.05))
    except jn.SocketError.Timeout:
        return True
    return False


def test_three_senders_order_kept_and_nothing_lost(receiver: jn.Socket) -> None:
    senders = [jn.bind("127.0.0.1:0") for _ in range(3)]
    try:
        received: list[tuple[bytes, jn.Address]] = []
        # Four rounds of 50 per sender: 600 datagrams, each round well inside the buffer.
        for round_ in range(4):
            for k, s in enumerate(senders):
                batch = [(receiver.address, b"%d:%03d" % (k, round_ * 50 + i)) for i in range(50)]
                assert s.send_many(batch) == 50
            received.extend(_receive_exactly(receiver, 150))
        by_sender: dict[jn.Address, list[int]] = {s.address: [] for s in senders}
        for data, source in received:
            who, _, seq = data.partition(b":")
            assert source == senders[int(who)].address
            by_sender[source].append(int(seq))
        for seqs in by_sender.values():
            assert seqs == list(range(200))  # every datagram, in the order it was sent
        assert _nothing_queued(receiver)
    finally:
        for s in senders:
            s.close()


def test_stdlib_peer_both_ways(receiver: jn.Socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BIG_RCVBUF)
        here = receiver.address
        assert isinstance(here, Ip4Address)
        for i in range(40):
            peer.sendto(b"std%02d" % i, (here.host, here.port))
        got = _receive_exactly(receiver, 40)
        assert [d for d, _ in got] == [b"std%02d" % i for i in range(40)]
        assert {src for _, src in got} == {Ip4Address(*peer.getsockname())}
        # Reply to the decoded source: the address object carries its own sockaddr.
        assert receiver.send_many([(got[0][1], b"re%02d" % i) for i in range(40)]) == 40
        peer.settimeout(5)
        replies = [peer.recvfrom(100) for _ in range(40)]
        assert [d for d, _ in replies] == [b"re%02d" % i for i in range(40)]
        assert {a for _, a in replies} == {("127.0.0.1", here.port)}


def test_partial_result_returns_what_is_queued(receiver: jn.Socket, sender: jn.Socket) -> None:
    assert sender.send_many([(receiver.address, b"a"), (receiver.address, b"b"), (receiver.address, b"c")]) == 3
    time.sleep(0.05)  # loopback delivery is synchronous; this is only belt and braces
    got = receiver.receive_many(count=10)
    assert got == [(b"a", sender.address), (b"b", sender.address), (b"c", sender.address)]


def test_count_limits_the_batch(receiver: jn.Socket, sender: jn.Socket) -> None:
    sender.send_many([(receiver.address, b"%d" % i) for i in range(5)])
    assert [d for d, _ in receiver.receive_many(2)] == [b"0", b"1"]
    assert [d for d, _ in receiver.receive_many(10)] == [b"2", b"3", b"4"]


def test_each_datagram_truncated_to_size(receiver: jn.Socket, sender: jn.Socket) -> None:
    long, short = bytes(range(100)), b"xyz"
    sender.send_many([(receiver.address, long), (receiver.address, short), (receiver.address, b"")])
    got = receiver.receive_many(5, size=10)
    # The rest of a long datagram is dropped; the next datagram is whole, and empty stays empty.
    assert [d for d, _ in got] == [long[:10], short, b""]


def test_size_zero_receives_empty_datagrams(receiver: jn.Socket, sender: jn.Socket) -> None:
    sender.send_many([(receiver.address, b"abc"), (receiver.address, b"de")])
    assert receiver.receive_many(5, size=0) == [(b"", sender.address), (b"", sender.address)]


def test_send_many_takes_address_objects_and_text(sender: jn.Socket) -> None:
    with jn.bind("127.0.0.1:0") as r1, jn.bind("127.0.0.1:0") as r2:
        messages: list[Any] = [
            (r1.address, b"1a"),
            (str(r2.address), b"2a"),
            (str(r1.address), b"1b"),
            (r2.address, b"2b"),
            (parse_address(str(r1.address)), bytearray(b"1c")),
            (r2.address, memoryview(b"2c")),
        ]
        assert sender.send_many(messages) == 6
        assert [d for d, _ in _receive_exactly(r1, 3)] == [b"1a", b"1b", b"1c"]
        assert [d for d, _ in _receive_exactly(r2, 3)] == [b"2a", b"2b", b"2c"]


def test_send_many_from_a_generator_in_several_batches(receiver: jn.Socket, sender: jn.Socket) -> None:
    # More than one kernel batch (1024) and an iterator of unknown length.
    n = 1500
    assert sender.send_many((receiver.address, b"%04d" % i) for i in range(n)) == n
    got = _receive_exactly(receiver, n, count=2000)
    assert [d for d, _ in got] == [b"%04d" % i for i in range(n)]


def test_send_many_of_nothing() -> None:
    with jn.bind("127.0.0.1:0") as s:
        assert s.send_many([]) == 0
        assert s.send_many(iter(())) == 0


def test_message_too_big_on_first_raises(receiver: jn.Socket, sender: jn.Socket) -> None:
    with pytest.raises(jn.SocketError.MessageTooBig) as info:
        sender.send_many([(receiver.address, b"x" * 70000), (receiver.address, b"after")])
    assert info.value.errno == errno.EMSGSIZE
    assert info.value.syscall == "send"
    assert info.value.address == str(receiver.address)
    assert _nothing_queued(receiver)


def test_error_after_some_were_sent_returns_the_count(receiver: jn.Socket, sender: jn.Socket) -> None:
    messages = [(receiver.address, b"one"), (receiver.address, b"two"), (receiver.address, b"x" * 70000)]
    messages.append((receiver.address, b"four"))
    assert sender.send_many(messages) == 2
    assert [d for d, _ in _receive_exactly(receiver, 2)] == [b"one", b"two"]
    assert _nothing_queued(receiver)  # nothing after the failed one went out


def test_ipv6_destination_on_ipv4_socket_is_typed(receiver: jn.Socket, sender: jn.Socket) -> None:
    with pytest.raises(jn.SocketError.AddressFamilyUnsupported) as info:
        sender.send_many([("[::1]:9", b"v6")])
    assert info.value.errno == errno.EAFNOSUPPORT
    mixed = [(receiver.address, b"v4"), ("[::1]:9", b"v6"), (receiver.address, b"never")]
    assert sender.send_many(mixed) == 1
    assert [d for d, _ in _receive_exactly(receiver, 1)] == [b"v4"]
    assert _nothing_queued(receiver)


def test_ipv4_destination_from_dual_stack_ipv6_socket() -> None:
    # The other direction is allowed: a dual-stack IPv6 socket reaches IPv4 as ::ffff:a.b.c.d.
    with jn.bind("[::]:0", ip6_only=False) as s6, jn.bind("127.0.0.1:0") as r4:
        assert isinstance(r4.address, Ip4Address) and isinstance(s6.address, jn.Ip6Address)
        assert s6.send_many([(r4.address, b"mapped")]) == 1
        [(data, source)] = r4.receive_many(4, ctx=jn.Context.with_timeout(5))
        assert data == b"mapped" and source == Ip4Address("127.0.0.1", s6.address.port)
        r4.send(f"127.0.0.1:{s6.address.port}", b"back")
        [(data, source)] = s6.receive_many(4, ctx=jn.Context.with_timeout(5))
        assert data == b"back" and source == jn.Ip6Address.from_ip4(r4.address)


def test_invalid_text_address_is_typed_and_placed(receiver: jn.Socket, sender: jn.Socket) -> None:
    with pytest.raises(jn.SocketError.InvalidAddress):
        sender.send_many([("localhost:9", b"x")])
    assert sender.send_many([(receiver.address, b"ok"), ("localhost:9", b"x")]) == 1
    assert [d for d, _ in _receive_exactly(receiver, 1)] == [b"ok"]


def test_bad_item_raises_type_error_after_the_earlier_ones(receiver: jn.Socket, sender: jn.Socket) -> None:
    with pytest.raises(TypeError):
        sender.send_many([(receiver.address, b"first"), (receiver.address, "not bytes")])  # type: ignore[list-item]
    assert [d for d, _ in _receive_exactly(receiver, 1)] == [b"first"]


def test_bytearray_is_not_pinned_after_send(receiver: jn.Socket, sender: jn.Socket) -> None:
    # The send path must let go of the caller's buffers: a pinned bytearray cannot grow.
    data = bytearray(b"grow me")
    sender.send_many([(receiver.address, data), (receiver.address, memoryview(b"x"))])
    data.extend(b" please")
    assert [d for d, _ in _receive_exactly(receiver, 2)] == [b"grow me", b"x"]


def test_count_and_size_are_checked() -> None:
    with jn.bind("127.0.0.1:0") as s:
        with pytest.raises(ValueError):
            s.receive_many(0)
        with pytest.raises(ValueError):
            s.receive_many(-3)
        with pytest.raises(ValueError):
            s.receive_many(1, size=-1)
        with pytest.raises(TypeError):
            s.receive_many(1.5)  # type: ignore[arg-type]


def test_receive_many_with_deadline_times_out(receiver: jn.Socket) -> None:
    started = time.monotonic()
    with pytest.raises(jn.SocketError.Timeout) as info:
        receiver.receive_many(8, ctx=jn.Context.with_timeout(0.2))
    elapsed = time.monotonic() - started
    assert info.value.reason == "deadline"
    assert 0.15 <= elapsed < 3  # on time, generously


def test_receive_many_with_context_is_woken_by_cancel(receiver: jn.Socket) -> None:
    ctx = jn.Context()
    when_blocked(ctx.cancel)
    with pytest.raises(jn.SocketError.Timeout) as info:
        receiver.receive_many(8, ctx=ctx)
    assert info.value.reason == "cancelled"


def test_receive_many_with_context_returns_data(receiver: jn.Socket, sender: jn.Socket) -> None:
    when_blocked(lambda: sender.send_many([(receiver.address, b"late")] * 3))
    got = receiver.receive_many(8, ctx=jn.Context.with_timeout(10))
    if len(got) < 3:  # the three may be seen in one wakeup or in more
        got += _receive_exactly(receiver, 3 - len(got))
    assert got == [(b"late", sender.address)] * 3


def test_blocking_receive_many_waits_for_the_first(receiver: jn.Socket, sender: jn.Socket) -> None:
    when_blocked(lambda: sender.send_many([(receiver.address, b"w")]))
    assert receiver.receive_many(8) == [(b"w", sender.address)]


def test_close_wakes_a_blocked_receive_many() -> None:
    sock = jn.bind("127.0.0.1:0")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            sock.receive_many(4)
        except BaseException as e:  # the test inspects it
            outcome.append(e)

    t = threading.Thread(target=wait)
    t.start()
    wait_until_blocked(t, outcome=outcome)
    sock.close()
    t.join(5)
    assert not t.is_alive()
    # Closing from another thread stops a receive loop: a catchable member, not a bug.
    assert len(outcome) == 1 and type(outcome[0]) is jn.SocketError.SocketUnconnected


def test_two_threads_receiving_on_one_socket(receiver: jn.Socket, sender: jn.Socket) -> None:
    total = 400
    seen: list[list[bytes]] = [[], []]
    ctx = jn.Context.with_timeout(20)
    stop = threading.Event()

    def drain(k: int) -> None:
        while not stop.is_set():
            try:
                got = receiver.receive_many(16, ctx=ctx.child(timeout=0.2))
            except jn.SocketError.Timeout:
                continue
            seen[k].extend(d for d, _ in got)

    threads = [threading.Thread(target=drain, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    try:
        for start in range(0, total, 50):
            assert sender.send_many([(receiver.address, b"%03d" % i) for i in range(start, start + 50)]) == 50
        deadline = time.monotonic() + 10
        while len(seen[0]) + len(seen[1]) < total and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    everything = seen[0] + seen[1]
    # Each datagram went to exactly one thread, none lost, none duplicated or mixed up.
    assert sorted(everything) == [b"%03d" % i for i in range(total)]
    assert seen[0] == sorted(seen[0]) and seen[1] == sorted(seen[1])


def test_sources_are_decoded_once_and_reused(receiver: jn.Socket, sender: jn.Socket) -> None:
    sender.send_many([(receiver.address, b"a"), (receiver.address, b"b")])
    (_, first), (_, second) = _receive_exactly(receiver, 2)
    assert first is second  # the cached address, which already owns its sockaddr for a reply
    sender.send_many([(receiver.address, b"c")])
    [(_, third)] = _receive_exactly(receiver, 1)
    assert third is first


@pytest.mark.skipif(not platform.HAS_ABSTRACT_UNIX, reason="abstract unix names are Linux only")
def test_unix_datagrams_named_and_unnamed_senders() -> None:
    name = f"janus-batched-{os.getpid()}-{time.monotonic_ns()}"
    with jn.bind(f"unix:@{name}") as r, jn.bind(f"unix:@{name}-s") as s:
        assert s.send_many([(r.address, b"u1"), (f"unix:@{name}", b"u2")]) == 2
        assert r.receive_many(8, ctx=jn.Context.with_timeout(5)) == [(b"u1", s.address), (b"u2", s.address)]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unnamed:
            unnamed.sendto(b"anon", b"\0" + name.encode())
            [(data, source)] = r.receive_many(8, ctx=jn.Context.with_timeout(5))
        assert data == b"anon" and source == UnixAddress("")
        assert isinstance(source, UnixAddress) and source.unnamed


def test_unix_path_datagrams(tmp_path: Path) -> None:
    with jn.bind(f"unix:{tmp_path}/r.sock") as r, jn.bind(f"unix:{tmp_path}/s.sock") as s:
        assert s.send_many([(r.address, b"p%d" % i) for i in range(5)]) == 5
        got = r.receive_many(8, ctx=jn.Context.with_timeout(5))
        assert got == [(b"p%d" % i, UnixAddress(f"{tmp_path}/s.sock")) for i in range(5)]


_STRACE_PROGRAM = """
import os, janus_net as jn
a = jn.bind("127.0.0.1:0"); b = jn.bind("127.0.0.1:0")
messages = [(b.address, b"x" * 64)] * 32
os.write(1, MARK)
sent = a.send_many(messages)
got = b.receive_many(32)
os.write(1, b"sent=%d got=%d\\n" % (sent, len(got)))
a.close(); b.close()
"""


@pytest.mark.skipif(not platform.HAS_MMSG, reason="sendmmsg/recvmmsg are what this test traces")
def test_one_syscall_per_batch(tmp_path: Path) -> None:
    program = f"MARK = {MARK!r}\n" + _STRACE_PROGRAM
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,sendto,sendmsg,sendmmsg,recvfrom,recvmsg,recvmmsg")
    assert "sent=32 got=32" in out
    sends = calls_to(lines, "sendmmsg")
    receives = calls_to(lines, "recvmmsg")
    assert len(sends) == 1 and sends[0].rstrip().endswith("= 32"), sends
    # Per-call non-blocking attempts (the description's O_NONBLOCK is never touched);
    # the datagrams were queued, so no poll was needed between them.
    assert "MSG_NOSIGNAL" in sends[0] and "MSG_DONTWAIT" in sends[0]
    assert len(receives) == 1 and receives[0].rstrip().endswith("= 32"), receives
    assert "MSG_DONTWAIT" in receives[0]
    assert not calls_to(lines, "sendto", "sendmsg", "recvfrom", "recvmsg")


def test_per_call_path_matches(receiver: jn.Socket, sender: jn.Socket) -> None:
    # The loop used where sendmmsg/recvmmsg do not exist gives the same results here.
    assert send_each(sender._io, [(receiver.address, b"l%d" % i) for i in range(4)], sender.send) == 4
    assert receive_each(receiver._io, 10, 2048, None) == [(b"l%d" % i, sender.address) for i in range(4)]
    messages = [(receiver.address, b"ok"), (receiver.address, b"x" * 70000)]
    assert send_each(sender._io, messages, sender.send) == 1
    with pytest.raises(jn.SocketError.MessageTooBig):
        send_each(sender._io, messages[1:], sender.send)
    assert receive_each(receiver._io, 10, 2048, jn.Context.with_timeout(5)) == [(b"ok", sender.address)]


# --- The fast paths of the reused arrays: each shortcut against the general path's answer.


def test_send_many_list_and_tuple_longer_than_a_batch(receiver: jn.Socket, sender: jn.Socket) -> None:
    # A list or tuple is cut into kernel batches by slicing: 1024 + 1024 + 452, in order.
    n = 2500
    assert sender.send_many([(receiver.address, b"%04d" % i) for i in range(n)]) == n
    assert [d for d, _ in _receive_exactly(receiver, n, count=3000)] == [b"%04d" % i for i in range(n)]
    exact = tuple((receiver.address, b"%04d" % i) for i in range(1024))  # exactly one full batch
    assert sender.send_many(exact) == 1024
    assert [d for d, _ in _receive_exactly(receiver, 1024, count=2000)] == [d for _, d in exact]


def test_send_many_bad_item_in_a_later_slice_of_a_list(receiver: jn.Socket, sender: jn.Socket) -> None:
    messages: list[Any] = [(receiver.address, b"%04d" % i) for i in range(1030)]
    messages[1027] = "not a pair"
    with pytest.raises((TypeError, ValueError)):
        sender.send_many(messages)
    # The 1024 of the first batch and the 3 before the bad item of the second went out.
    assert [d for d, _ in _receive_exactly(receiver, 1027, count=2000)] == [b"%04d" % i for i in range(1027)]
    assert _nothing_queued(receiver)


def test_send_many_switching_between_one_and_many_destinations(sender: jn.Socket) -> None:
    # The reused headers remember which destination they point at; every switch must be seen.
    with jn.bind("127.0.0.1:0") as r1, jn.bind("127.0.0.1:0") as r2:
        _grow_receive_buffer(r1)
        _grow_receive_buffer(r2)
        rounds: list[list[tuple[Any, bytes]]] = [
            [(r1.address, b"1-%d" % i) for i in range(8)],  # all to r1
            [(r1.address if i % 2 else r2.address, b"m-%d" % i) for i in range(8)],  # alternating
            [(r1.address, b"1b-%d" % i) for i in range(8)],  # all to r1 again
            [(r2.address, b"2-%d" % i) for i in range(4)],  # fewer, all to r2
            [(r2.address, b"2b-%d" % i) for i in range(8)],  # more than last time, all to r2
        ]
        to_r1: list[bytes] = []
        to_r2: list[bytes] = []
        for messages in rounds:
            assert sender.send_many(messages) == len(messages)
            for dest, data in messages:
                (to_r1 if dest is r1.address else to_r2).append(data)
        assert [d for d, _ in _receive_exactly(r1, len(to_r1))] == to_r1
        assert [d for d, _ in _receive_exactly(r2, len(to_r2))] == to_r2


def test_receive_many_lengths_changing_between_batches(receiver: jn.Socket, sender: jn.Socket) -> None:
    # Equal lengths reuse the previous batch's cuts of the buffer; other lengths recut it.
    for sizes in ([5, 5, 5], [5, 5, 5], [1, 300, 0], [5, 5], [5, 5, 5, 5]):
        payloads = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
        sender.send_many([(receiver.address, p) for p in payloads])
        assert _receive_exactly(receiver, len(payloads)) == [(p, sender.address) for p in payloads]


def test_receive_many_one_new_peer_for_the_whole_batch(receiver: jn.Socket) -> None:
    # A batch from a single peer is looked up once; a peer never seen must still be decoded.
    with jn.bind("127.0.0.1:0") as fresh:
        fresh.send_many([(receiver.address, b"%d" % i) for i in range(5)])
        got = _receive_exactly(receiver, 5)
        assert [d for d, _ in got] == [b"%d" % i for i in range(5)]
        assert all(source == fresh.address for _, source in got)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:  # the stdlib's view of the source
            peer.bind(("127.0.0.1", 0))
            for i in range(3):
                peer.sendto(b"s%d" % i, (receiver.address.host, receiver.address.port))
            got = _receive_exactly(receiver, 3)
            host, port = peer.getsockname()
            assert [(str(s.host), s.port) for _, s in got] == [(host, port)] * 3


def test_receive_many_what_a_batch_shares_is_never_assumed(receiver: jn.Socket, sender: jn.Socket) -> None:
    # The native receive says when every datagram of a call has one length and one IPv4
    # peer; a batch that differs only in its last datagram, or that has the count of the
    # batch before it but other lengths, must be read datagram by datagram, not guessed.
    with jn.bind("127.0.0.1:0") as other:
        shapes: list[list[tuple[jn.Socket, int]]] = [
            [(sender, 7)] * 4,
            [(sender, 7)] * 3 + [(sender, 8)],  # same count, the last length differs
            [(sender, 8)] + [(sender, 7)] * 3,
            [(sender, 7)] * 3 + [(other, 7)],  # same lengths, the last peer differs
            [(other, 7)] + [(sender, 7)] * 3,
            [(sender, 7)] * 4,
        ]
        for shape in shapes:
            sent = []
            for i, (peer, n) in enumerate(shape):
                data = bytes([97 + i]) * n
                peer.send(receiver.address, data)
                sent.append((data, peer.address))
            assert _receive_exactly(receiver, len(sent)) == sent


def test_receive_many_ipv6_peer(sender: jn.Socket) -> None:
    # An IPv6 source is no IPv4 key: the batch's sources are looked up by their bytes.
    with jn.bind("[::1]:0") as six, jn.bind("[::1]:0") as peer:
        peer.send_many([(six.address, b"x%d" % i) for i in range(6)])
        got = _receive_exactly(six, 6)
        assert got == [(b"x%d" % i, peer.address) for i in range(6)]


def test_count_and_size_are_checked_on_a_socket_with_kept_arrays(receiver: jn.Socket, sender: jn.Socket) -> None:
    # Once a socket keeps arrays, the usual call skips the general checks: a count or
    # size that does not fit them must still go through those checks, not past them.
    sender.send(receiver.address, b"warm")
    assert receiver.receive_many(4) == [(b"warm", sender.address)]
    for count, size, error in ((0, 2048, ValueError), (-1, 2048, ValueError), (True, 2048, TypeError),
                               (1.0, 2048, TypeError), (4, -1, ValueError), (4, 2048.0, TypeError),
                               (4, False, TypeError)):  # fmt: skip
        with pytest.raises(error):
            receiver.receive_many(count, size)  # type: ignore[arg-type]
    # A count beyond the kept arrays and another size take new arrays, with the same results.
    sender.send_many([(receiver.address, b"%d" % i) for i in range(40)])
    assert [d for d, _ in _receive_exactly(receiver, 40, count=100)] == [b"%d" % i for i in range(40)]
    sender.send(receiver.address, b"abcdef")
    assert receiver.receive_many(4, size=3) == [(b"abc", sender.address)]


def test_send_many_failures_on_a_socket_with_kept_arrays(receiver: jn.Socket, sender: jn.Socket) -> None:
    # Once a socket keeps arrays, a list that fits them takes the short path; every way
    # that path can end early must end as the general one does (the cases above, on a
    # fresh socket, take the general path from the start).
    def warm() -> None:
        assert sender.send_many([(receiver.address, b"warm")] * 4) == 4
        assert [d for d, _ in _receive_exactly(receiver, 4)] == [b"warm"] * 4

    warm()
    with pytest.raises(jn.SocketError.MessageTooBig) as info:
        sender.send_many([(receiver.address, b"x" * 70000), (receiver.address, b"after")])
    assert (info.value.syscall, info.value.address) == ("send", str(receiver.address))
    assert _nothing_queued(receiver)
    warm()
    too_big = [(receiver.address, b"one"), (receiver.address, b"two"), (receiver.address, b"x" * 70000)]
    assert sender.send_many([*too_big, (receiver.address, b"four")]) == 2
    assert [d for d, _ in _receive_exactly(receiver, 2)] == [b"one", b"two"]
    assert _nothing_queued(receiver)
    warm()
    assert sender.send_many([(receiver.address, b"ok"), ("localhost:9", b"x")]) == 1
    assert [d for d, _ in _receive_exactly(receiver, 1)] == [b"ok"]
    warm()
    with pytest.raises(TypeError):
        sender.send_many([(receiver.address, b"first"), (receiver.address, "not bytes")])  # type: ignore[list-item]
    assert [d for d, _ in _receive_exactly(receiver, 1)] == [b"first"]
    warm()
    with pytest.raises(ValueError):
        sender.send_many([(receiver.address, b"a"), (receiver.address, b"b", b"extra")])  # type: ignore[list-item]
    assert [d for d, _ in _receive_exactly(receiver, 1)] == [b"a"]
    sender.close()  # used after its own close: what the general path says (an EBADF of this program's own)
    with pytest.raises(jn.ErrnoBug):
        sender.send_many([(receiver.address, b"closed")] * 4)
    assert _nothing_queued(receiver)
