"""The per-packet paths' one native call (jn_desc_send_ip, jn_desc_receive), and each case it sends elsewhere.

``Socket.send`` and ``Socket.receive`` make one native call and, on success, one
branch (docs/performance.md). These tests aim at what those calls decide for
themselves or leave to the slow path. Receive: the size refused without a syscall
(too big for the kept buffer, negative), the key written for an IPv4 source and the 0
for every other source (IPv6, a named and an unnamed unix sender), the fault seam and
EINTR reaching it by the name "receive", the source cache the batched receive shares.
Send: a value that owns its encoding with port 0 (refused by Python's check, nothing
sent), the other family, views, the kernel's own errors on the one-call path.
"""

from __future__ import annotations

import errno
import os
import pickle
import socket
import threading
from collections.abc import Iterator

import pytest
from peers import when_blocked

import janus_net as jn
from janus_net._kernel import cell_io
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
    sender.sendto(b"x", dest(receiver))
    receiver.receive(8)  # the scratch and its buffer exist: the next calls are the one-call path
    late = when_blocked(lambda: sender.sendto(b"late", dest(receiver)))
    assert receiver.receive(64)[0] == b"late"  # the attempt would block, the wait ends with the datagram
    late.join()
    closer = when_blocked(receiver.close)
    with pytest.raises(jn.SocketError.SocketUnconnected):
        receiver.receive(64)
    closer.join()


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


# --- send


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    yield peer
    peer.close()


def test_port_zero_is_refused_even_when_the_value_owns_its_encoding(receiver: socket.socket) -> None:
    zero = jn.Ip4Address("127.0.0.1", 0)
    zero.sockaddr  # noqa: B018 - encoded now, as a bound address's is
    with jn.bind("127.0.0.1:0") as sender:
        for _ in range(2):
            with pytest.raises(jn.SocketError.AddressUnavailable):
                sender.send(zero, b"nowhere")
        # The socket still sends, and nothing went before.
        to = jn.Ip4Address("127.0.0.1", receiver.getsockname()[1])
        assert sender.send(to, b"one") == 3
        assert receiver.recvfrom(64)[0] == b"one"


def test_ip6_values_on_an_ip6_socket_and_port_zero() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with jn.bind("[::1]:0") as a, jn.bind("[::1]:0") as b:
        for _ in range(2):  # a fresh value, then the same value owning its encoding
            assert a.send(b.address, b"six") == 3
            assert b.receive(64) == (b"six", a.address)
        zero = jn.parse_address("[::1]:0")
        zero.sockaddr  # noqa: B018
        with pytest.raises(jn.SocketError.AddressUnavailable):
            a.send(zero, b"nowhere")


def test_the_other_family_is_refused_or_carried_as_before(receiver: socket.socket) -> None:
    with jn.bind("127.0.0.1:0") as four:
        six = jn.parse_address("[::1]:9")
        six.sockaddr  # noqa: B018
        with pytest.raises(jn.SocketError.AddressFamilyUnsupported):
            four.send(six, b"x")
    if not socket.has_ipv6:
        return
    with jn.bind("[::]:0") as dual:  # an IPv4 value to a dual-stack socket: the kernel takes it
        to = jn.Ip4Address("127.0.0.1", receiver.getsockname()[1])
        for _ in range(2):
            assert dual.send(to, b"mapped") == 6
            assert receiver.recvfrom(64)[0] == b"mapped"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_views_and_text_destinations(receiver: socket.socket, kind: type) -> None:
    port = receiver.getsockname()[1]
    with jn.bind("127.0.0.1:0") as sender:
        for dest in (jn.Ip4Address("127.0.0.1", port), f"127.0.0.1:{port}"):
            assert sender.send(dest, kind(b"data")) == 4
            assert receiver.recvfrom(64)[0] == b"data"
        with pytest.raises(TypeError):
            sender.send(jn.Ip4Address("127.0.0.1", port), "text")  # type: ignore[arg-type]


def test_the_kernels_errors_on_the_one_call_path(receiver: socket.socket) -> None:
    to = jn.Ip4Address("127.0.0.1", receiver.getsockname()[1])
    with jn.bind("127.0.0.1:0") as sender:
        sender.send(to, b"warm")  # the value owns its encoding: the next sends are the one-call path
        with pytest.raises(jn.SocketError.MessageTooBig):
            sender.send(to, b"x" * 70_000)  # EMSGSIZE from the kernel, mapped by SEND's table
        with fail("send", errno.EINTR, times=2) as injected:
            assert sender.send(to, b"after EINTR") == 11
        assert (injected.calls, injected.failed) == (3, 2)
        with fail("send", errno.ENOBUFS) as injected, pytest.raises(jn.SocketError.SystemResources):
            sender.send(to, b"lost")
        assert injected.failed == 1
    assert [receiver.recvfrom(64)[0] for _ in range(2)] == [b"warm", b"after EINTR"]


def test_send_after_close_is_the_ebadf_row(receiver: socket.socket) -> None:
    to = jn.Ip4Address("127.0.0.1", receiver.getsockname()[1])
    sender = jn.bind("127.0.0.1:0")
    sender.send(to, b"warm")
    sender.close()
    # A call begun after close() is the caller's bug: SEND's EBADF row (janus_net._sockets.owner).
    with pytest.raises((jn.ErrnoBug, jn.SocketError.Unexpected)) as info:
        sender.send(to, b"closed")
    assert info.value.errno == errno.EBADF


def test_a_sources_host_is_made_once_and_right(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    hosts = []
    for _ in range(3):
        sender.sendto(b"h", dest(receiver))
        _data, source = receiver.receive(8)
        hosts.append(source.host)
    assert hosts == ["127.0.0.1"] * 3
    assert hosts[0] is hosts[1] is hosts[2]  # the cached source keeps its text
    for text, host in [("[::ffff:1.2.3.4]:5", "::ffff:1.2.3.4"), ("[fe80::1%7]:5", "fe80::1%7"), ("[::1]:5", "::1")]:
        value = jn.parse_address(text)
        assert value.host == host and value.host is value.host
    with pytest.raises(AttributeError):
        jn.Ip4Address("1.2.3.4", 5)._host = "5.6.7.8"  # type: ignore[misc]  # immutable, the cache too
    assert pickle.loads(pickle.dumps(source)) == source


def test_send_many_to_equal_values_and_to_many_peers(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    with jn.bind("127.0.0.1:0") as sender:
        # Equal values that are not the same object: one batch, every datagram there.
        equal = [(jn.Ip4Address("127.0.0.1", port), b"%d" % i) for i in range(8)]
        assert sender.send_many(equal) == 8
        assert sorted(receiver.recvfrom(64)[0] for _ in range(8)) == sorted(b"%d" % i for i in range(8))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.1", 0))
            other.settimeout(5)
            there = jn.Ip4Address("127.0.0.1", other.getsockname()[1])
            mixed = [(equal[0][0], b"a"), (there, b"b"), (equal[1][0], b"c")]  # the last equals the first
            assert sender.send_many(mixed) == 3
            assert other.recvfrom(64)[0] == b"b"
        assert [receiver.recvfrom(64)[0] for _ in range(2)] == [b"a", b"c"]


class _Recorder:
    """A fault that fails nothing and notes which native function the loop handed it."""

    def __init__(self) -> None:
        self.functions: list[object] = []

    def call(self, fn: object, args: tuple[object, ...]) -> int:
        self.functions.append(fn)
        return fn(*args)  # type: ignore[operator, no-any-return]


def test_the_armed_seam_reaches_the_same_native_functions(pair: tuple[jn.Socket, socket.socket]) -> None:
    receiver, sender = pair
    me = jn.Ip4Address("127.0.0.1", sender.getsockname()[1])
    with jn.bind("127.0.0.1:0") as out:
        out.send(receiver.address, b"warm")  # the value owns its encoding now
        receiver.receive(64)
        recorder = _Recorder()
        cell_io.SEND.fault = recorder
        try:
            assert out.send(receiver.address, b"seen") == 4
        finally:
            cell_io.SEND.fault = None
        assert recorder.functions == [cell_io.SEND_IP]
        cell_io.RECEIVE.fault = recorder
        try:
            assert receiver.receive(64)[0] == b"seen"
            sender.sendto(b"again", dest(receiver))
            assert receiver.receive(64) == (b"again", me)
        finally:
            cell_io.RECEIVE.fault = None
        assert recorder.functions == [cell_io.SEND_IP, cell_io.RECEIVE_RX, cell_io.RECEIVE_RX]
