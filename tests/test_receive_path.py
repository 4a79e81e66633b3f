"""`Socket.receive`'s one native call (jn_desc_receive): every case its single branch sends elsewhere.

The per-packet receive makes one native call and, on success, one branch
(docs/performance.md). These tests aim at what that call decides for itself or
leaves to the slow path: the size it refuses without a syscall (too big for the
kept buffer, negative), the key it writes for an IPv4 source and the 0 it writes for
every other source (IPv6, a named and an unnamed unix sender), the fault seam and
EINTR reaching it by the name "receive", and the source cache that the batched
receive shares with it.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator

import pytest

import janus_net as jn
from janus_net._values.reported import DECODED_SOURCES
from janus_net.testing import fail


@pytest.fixture
def pair() -> Iterator[tuple[jn.Socket, socket.socket]]:
    receiver = jn.bind("127.0.0.1:0")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    yield receiver, sender
    receiver.close()
    sender.close()


def dest(sock: jn.Socket) -> tuple[str, int]:
    return ("127.0.0.1", sock.address.port)


def test_sizes_across_the_kept_buffer(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    me = jn.Ip4Address("127.0.0.1", sender.getsockname()[1])
    big = os.urandom(65507)
    for size, payload, expected in [
        (10, b"a" * 64, b"a" * 10),  # a fresh scratch: the first call brings its buffer
        (2048, b"b" * 64, b"b" * 64),  # a larger size: the buffer grows, no syscall wasted
        (0, b"c" * 64, b""),  # zero: the datagram is consumed
        (65536, big, big),  # the largest kept buffer
        (70_000, big, big),  # beyond it: a one-off buffer
        (5, b"d" * 64, b"d" * 5),  # back to a small size with the big buffer kept
    ]:
        sender.sendto(payload, dest(receiver))
        data, source = receiver.receive(size)
        assert data == expected
        assert source == me
    # Nothing was lost or duplicated on the way: the queue is empty.
    sender.sendto(b"last", dest(receiver))
    assert receiver.receive(16)[0] == b"last"


@pytest.mark.parametrize("size", [True, False, 1.5, "10", None])
def test_a_size_of_another_type_is_refused_and_nothing_is_consumed(
    pair: tuple[jn.Socket, socket.socket], size: object
) -> None:
    receiver, sender = pair
    sender.sendto(b"kept", dest(receiver))
    with pytest.raises(TypeError):
        receiver.receive(size)  # type: ignore[arg-type]
    assert receiver.receive(64)[0] == b"kept"


@pytest.mark.parametrize("size", [-1, -(2**40), 2**31])
def test_a_size_out_of_range_is_refused_and_nothing_is_consumed(
    pair: tuple[jn.Socket, socket.socket], size: int
) -> None:
    receiver, sender = pair
    receiver.receive  # noqa: B018 - the bound method, as a caller holds it
    sender.sendto(b"kept", dest(receiver))
    with pytest.raises(ValueError):
        receiver.receive(size)
    assert receiver.receive(64)[0] == b"kept"


def test_ip4_sources_are_keyed_by_family_port_and_address(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, first = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
        second.bind(("127.0.0.2", 0))
        second_port = second.getsockname()[1]
        for _ in range(3):
            first.sendto(b"1", dest(receiver))
            second.sendto(b"2", dest(receiver))
        got = [receiver.receive(8) for _ in range(6)]
    ones = [source for data, source in got if data == b"1"]
    twos = [source for data, source in got if data == b"2"]
    assert ones == [jn.Ip4Address("127.0.0.1", first.getsockname()[1])] * 3
    assert twos == [jn.Ip4Address("127.0.0.2", second_port)] * 3
    # A repeated peer is the same object, from the cache the batched receive shares.
    assert ones[0] is ones[1] is ones[2]
    first.sendto(b"3", dest(receiver))
    [(_data, source)] = receiver.receive_many(1)
    assert source is ones[0]


def test_ip6_sources_are_decoded_not_keyed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with jn.bind("[::1]:0") as receiver, socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sender:
        sender.bind(("::1", 0))
        for _ in range(2):
            sender.sendto(b"six", ("::1", receiver.address.port))
            data, source = receiver.receive(64)
            assert data == b"six"
            assert source == jn.parse_address(f"[::1]:{sender.getsockname()[1]}")


def test_unix_sources_named_and_unnamed(tmp_path: object) -> None:
    path = f"{tmp_path}/r.sock"
    with jn.bind(f"unix:{path}") as receiver:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unnamed:
            unnamed.sendto(b"anon", path)
            assert receiver.receive(64) == (b"anon", jn.UnixAddress(""))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as named:
            named.bind(f"{tmp_path}/s.sock")
            named.sendto(b"named", path)
            data, source = receiver.receive(64)
            assert data == b"named"
            assert source == jn.UnixAddress(f"{tmp_path}/s.sock")


def test_the_fault_seam_reaches_the_native_receive(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    receiver.receive  # noqa: B018
    sender.sendto(b"x", dest(receiver))
    receiver.receive(8)  # the scratch and its buffer exist: the next call is the one-call path
    sender.sendto(b"refused?", dest(receiver))
    with fail("receive", errno.ECONNREFUSED) as injected, pytest.raises(jn.SocketError.ConnectionRefused):
        receiver.receive(64)
    assert injected.failed == 1
    # The datagram was never taken: the seam failed the call in place of the kernel.
    assert receiver.receive(64)[0] == b"refused?"


def test_eintr_is_retried_through_the_loop(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    sender.sendto(b"x", dest(receiver))
    receiver.receive(8)
    sender.sendto(b"after EINTR", dest(receiver))
    with fail("receive", errno.EINTR, times=2) as injected:
        data, source = receiver.receive(64)
    assert (data, source.port) == (b"after EINTR", sender.getsockname()[1])
    assert (injected.calls, injected.failed) == (3, 2)


def test_a_would_block_waits_and_close_wakes_it(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    receiver.receive  # noqa: B018
    sender.sendto(b"x", dest(receiver))
    receiver.receive(8)
    got: list[object] = []

    def wait() -> None:
        try:
            got.append(receiver.receive(64))
        except jn.SocketError as e:
            got.append(e)

    waiter = threading.Thread(target=wait)
    waiter.start()
    sender.sendto(b"late", dest(receiver))
    waiter.join(5)
    assert got and got[0][0] == b"late"  # type: ignore[index]
    got.clear()
    waiter = threading.Thread(target=wait)
    waiter.start()
    receiver.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert isinstance(got[0], jn.SocketError.SocketUnconnected)


def test_two_threads_never_share_a_scratch(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    count = 2000
    seen: list[bytes] = []
    lock = threading.Lock()

    def take(n: int) -> None:
        for _ in range(n):
            data, source = receiver.receive(16)
            assert source.port == sender.getsockname()[1]
            with lock:
                seen.append(data)

    threads = [threading.Thread(target=take, args=(count // 2,)) for _ in range(2)]
    for t in threads:
        t.start()
    # In steps of 100, each taken before the next goes: a full receive queue would drop datagrams.
    for step in range(0, count, 100):
        for i in range(step, step + 100):
            sender.sendto(b"%08d" % i, dest(receiver))
        for _ in range(10_000):
            with lock:
                if len(seen) >= step + 100:
                    break
            threading.Event().wait(0.001)
    for t in threads:
        t.join(30)
    assert sorted(seen) == [b"%08d" % i for i in range(count)]
    assert len(DECODED_SOURCES) <= 512
