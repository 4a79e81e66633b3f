"""UDP segmentation offload (DESIGN §15): send_segments (GSO and its sendmmsg fallback), receive_segments, split.

The oracle for what arrived is the datagrams themselves: every test sends a
pattern in which each byte's position is recoverable, and checks every boundary.
The fallback is exercised for real: by the forced switch (traced with strace), by
a socket the kernel refuses to segment for (SO_NO_CHECK), by the fault seam, and
by a route whose MTU is smaller than the segment (a veth pair between two network
namespaces this test creates).
"""

from __future__ import annotations

import ast
import contextlib
import errno
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import janus_net as jn
from janus_net._kernel import control  # its own file: MODULE_FILES traces it
from janus_net._shim import lib
from janus_net._sockets import ancillary, coalesced, segments
from janus_net.testing import fail
from tests.peers import stdlib_view
from tests.tracing import MARK, calls_to, syscalls_after_mark

FAMILIES = {"ip4": ("127.0.0.1:0", socket.AF_INET, "127.0.0.1"), "ip6": ("[::1]:0", socket.AF_INET6, "::1")}
LIMITS = {"ip4": lib.JN_UDP_MAX_PAYLOAD_IP4, "ip6": lib.JN_UDP_MAX_PAYLOAD_IP6}
CTX = 10  # seconds: liveness only


def pattern(size: int) -> bytes:
    """Bytes whose every 4-byte word names its own offset: a lost, swapped or cut segment shows."""
    words = (size + 3) // 4
    return b"".join(i.to_bytes(4, "big") for i in range(words))[:size]


def expected_datagrams(data: bytes, segment_size: int) -> list[bytes]:
    return [data[i : i + segment_size] for i in range(0, len(data), segment_size)] or [b""]


def receive_all(sock: jn.Socket, count: int) -> list[bytes]:
    """``count`` datagrams via receive_segments + split, in order."""
    got: list[bytes] = []
    while len(got) < count:
        buffer, segment_size, _source = sock.receive_segments(ctx=jn.Context.with_timeout(CTX))
        got.extend(bytes(view) for view in jn.split(buffer, segment_size))
    return got


def roomy(sock: jn.Socket) -> jn.Socket:
    """Give ``sock`` a receive buffer that holds hundreds of small datagrams (the default drops them)."""
    with stdlib_view(sock) as view:
        # SO_RCVBUFFORCE (33, asm-generic/socket.h; not in the stdlib): root may pass rmem_max.
        view.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 16 << 20)
    return sock


def nothing_queued(sock: jn.Socket) -> bool:
    with stdlib_view(sock) as view:
        try:
            view.recv(1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
    return False


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("gro", [True, False], ids=["gro", "no-gro"])
@pytest.mark.parametrize(
    ("size", "segment_size"),
    [(51200, 1200), (48000, 1200), (1201, 1200), (1200, 1200), (7, 3), (60000, 100), ("limit", 1200)],
    ids=["short-last", "exact", "one-byte-last", "single", "tiny", "more-than-max-segments", "limit"],
)
def test_every_byte_and_boundary_arrives(family: str, gro: bool, size: int | str, segment_size: int) -> None:
    address = FAMILIES[family][0]
    total = LIMITS[family] if size == "limit" else size
    assert isinstance(total, int)
    data = pattern(total)
    want = expected_datagrams(data, segment_size)
    with jn.bind(address) as sender, roomy(jn.bind(address, gro=gro)) as receiver:
        assert sender.send_segments(receiver.address, data, segment_size) == len(want)
        got = receive_all(receiver, len(want))
        assert got == want
        assert nothing_queued(receiver)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_stdlib_receiver_sees_each_datagram_with_its_source(family: str) -> None:
    address, af, host = FAMILIES[family]
    data = pattern(10_000)
    with jn.bind(address) as sender, socket.socket(af, socket.SOCK_DGRAM) as peer:
        peer.bind((host, 0))
        peer.settimeout(CTX)
        dest = jn.parse_address(
            f"[{host}]:{peer.getsockname()[1]}" if family == "ip6" else f"{host}:{peer.getsockname()[1]}"
        )
        assert sender.send_segments(dest, data, 999) == 11
        for want in expected_datagrams(data, 999):
            got, source = peer.recvfrom(2048)
            assert got == want
            assert source[1] == sender.address.port


def test_gro_coalesces_many_datagrams_into_one_receive() -> None:
    data = pattern(64 * 1000)
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        sender.send_segments(receiver.address, data, 1000)
        buffer, segment_size, source = receiver.receive_segments()
        assert (len(buffer), segment_size, source) == (len(data), 1000, sender.address)
        views = list(jn.split(buffer, segment_size))
        assert all(isinstance(v, memoryview) for v in views)
        assert b"".join(views) == data


def test_without_gro_each_receive_is_one_segment_of_its_own_length() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0") as receiver:
        sender.send_segments(receiver.address, b"abcdefg", 3)
        assert [receiver.receive_segments()[:2] for _ in range(3)] == [(b"abc", 3), (b"def", 3), (b"g", 1)]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_more_than_one_send_can_carry_is_message_too_big_before_any_syscall(family: str) -> None:
    with jn.bind(FAMILIES[family][0]) as sender, jn.bind(FAMILIES[family][0]) as receiver:
        with fail("send", errno.EBADF) as injected, pytest.raises(jn.SocketError.MessageTooBig) as raised:
            sender.send_segments(receiver.address, bytes(LIMITS[family] + 1), 1200)
        assert injected.failed == 0
        assert raised.value.address == str(receiver.address)
        assert nothing_queued(receiver)


def test_ip4_mapped_destination_has_the_ip4_limit() -> None:
    with jn.bind("[::]:0", ip6_only=False) as sender, jn.bind("127.0.0.1:0") as receiver:
        mapped = jn.Ip6Address.from_ip4(receiver.address)  # type: ignore[arg-type]
        with pytest.raises(jn.SocketError.MessageTooBig):
            sender.send_segments(mapped, bytes(LIMITS["ip4"] + 1), 1200)
        assert sender.send_segments(mapped, pattern(LIMITS["ip4"]), 1200) == 55
        assert b"".join(receive_all(receiver, 55)) == pattern(LIMITS["ip4"])


@pytest.mark.parametrize("bad", [0, -1, 65508, True, 1.5, "1200", None])
def test_bad_segment_size_is_value_error_before_any_syscall(bad: object) -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0") as receiver:
        with fail("send", errno.EBADF) as injected, pytest.raises(ValueError, match="segment_size"):
            sender.send_segments(receiver.address, b"x" * 100, bad)  # type: ignore[arg-type]
        assert injected.failed == 0


def test_port_zero_destination_is_address_unavailable() -> None:
    with jn.bind("127.0.0.1:0") as sender, pytest.raises(jn.SocketError.AddressUnavailable):
        sender.send_segments("127.0.0.1:0", b"x" * 100, 10)


@pytest.mark.parametrize("dest", ["unix:/tmp/x", "unix:@abstract-name-longer-than-a-sockaddr-in"])
def test_a_unix_destination_is_address_family_unsupported(dest: str) -> None:
    refused = pytest.raises(jn.SocketError.AddressFamilyUnsupported)
    with jn.bind("127.0.0.1:0") as sender, fail("send", errno.EBADF) as injected, refused:
        sender.send_segments(dest, b"abcd", 2)
    assert injected.failed == 0


def test_empty_data_is_one_empty_datagram() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        assert sender.send_segments(receiver.address, b"", 1200) == 1
        buffer, segment_size, _ = receiver.receive_segments()
        assert (buffer, segment_size) == (b"", 0)
        assert [bytes(v) for v in jn.split(buffer, segment_size)] == [b""]


def test_send_segments_needs_a_udp_socket(tmp_path: Path) -> None:
    with jn.bind(f"unix:{tmp_path}/a.sock") as sock, pytest.raises(jn.SocketError.OptionUnsupported):
        sock.send_segments(f"unix:{tmp_path}/a.sock", b"abcd", 2)


def test_data_may_be_any_buffer() -> None:
    data = pattern(5000)
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0") as receiver:
        for buffer in (bytearray(data), memoryview(data), memoryview(bytearray(data))):
            assert sender.send_segments(str(receiver.address), buffer, 1000) == 5
            assert b"".join(receive_all(receiver, 5)) == data


# --- split


def test_split_yields_views_into_the_buffer() -> None:
    buffer = bytearray(b"abcdefgh")
    views = list(jn.split(buffer, 3))
    assert [bytes(v) for v in views] == [b"abc", b"def", b"gh"]
    buffer[0] = ord("z")
    assert bytes(views[0]) == b"zbc"  # no copy
    for v in views:
        v.release()


@pytest.mark.parametrize("bad", [0, -3, True, 2.0, None])
def test_split_rejects_a_bad_size_at_the_call(bad: object) -> None:
    with pytest.raises(ValueError, match="segment_size"):
        jn.split(b"abc", bad)  # type: ignore[arg-type]


# --- The fallback: the same datagrams by sendmmsg


def test_fallback_by_the_fault_seam_sends_the_same_datagrams() -> None:
    data = pattern(12_345)
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        with fail("send", errno.EIO) as injected:
            assert sender.send_segments(receiver.address, data, 1000) == 13
        assert injected.failed == 1
        assert receive_all(receiver, 13) == expected_datagrams(data, 1000)


# SO_NO_CHECK (asm-generic/socket.h; the stdlib has no name for it): a UDP socket that
# sends without checksums, for which the kernel refuses to segment (EINVAL).
SO_NO_CHECK = 11


def test_fallback_when_the_kernel_refuses_to_segment(tmp_path: Path) -> None:
    program = textwrap.dedent(
        f"""
        import os, socket, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        import janus_net as jn
        sender, receiver = jn.bind("127.0.0.1:0"), jn.bind("127.0.0.1:0")
        view = socket.socket(fileno=os.dup(sender.fileno()))
        view.setsockopt(socket.SOL_SOCKET, {SO_NO_CHECK}, 1)
        view.close()
        data = bytes(range(256)) * 40
        os.write(1, {MARK!r})
        n = sender.send_segments(receiver.address, data, 1000)
        got = b"".join(receiver.receive(2048)[0] for _ in range(n))
        print(n, got == data)
        """
    )
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,sendmsg,sendmmsg,sendto")
    assert out.split()[-2:] == ["11", "True"]
    sendmsg = calls_to(lines, "sendmsg")
    assert len(sendmsg) == 1 and carries_udp_segment(sendmsg[0]) and "EINVAL" in sendmsg[0], sendmsg
    assert len(calls_to(lines, "sendmmsg")) == 1


def carries_udp_segment(line: str) -> bool:
    """Whether an strace line of sendmsg shows a UDP_SEGMENT control message (strace prints its number)."""
    return "cmsg_level=SOL_UDP" in line and f"cmsg_type={lib.JN_UDP_SEGMENT:#x}" in line


def _traced_send(tmp_path: Path, env: dict[str, str]) -> tuple[list[str], str]:
    program = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        import janus_net as jn
        sender, receiver = jn.bind("127.0.0.1:0"), jn.bind("127.0.0.1:0", gro=True)
        data = bytes(range(256)) * 200
        os.write(1, {MARK!r})
        n = sender.send_segments(receiver.address, data, 1200)
        got = []
        while len(got) < n:
            buffer, size, _ = receiver.receive_segments()
            got.extend(bytes(v) for v in jn.split(buffer, size))
        print(n, b"".join(got) == data, all(len(d) == 1200 for d in got[:-1]))
        """
    )
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return syscalls_after_mark(program, tmp_path, trace="write,sendmsg,sendmmsg,sendto")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_gso_is_one_sendmsg_with_udp_segment(tmp_path: Path) -> None:
    lines, out = _traced_send(tmp_path, {"JANUS_NET_FORCE_GSO_FALLBACK": "0"})
    assert out.split()[-3:] == ["43", "True", "True"]
    sendmsg = calls_to(lines, "sendmsg")
    assert len(sendmsg) == 1, lines
    assert carries_udp_segment(sendmsg[0]) and sendmsg[0].rstrip().endswith("= 51200"), sendmsg
    assert not calls_to(lines, "sendmmsg", "sendto")


def test_forced_fallback_is_one_sendmmsg(tmp_path: Path) -> None:
    lines, out = _traced_send(tmp_path, {"JANUS_NET_FORCE_GSO_FALLBACK": "1"})
    assert out.split()[-3:] == ["43", "True", "True"]
    assert not calls_to(lines, "sendmsg", "sendto"), lines
    sendmmsg = calls_to(lines, "sendmmsg")
    assert len(sendmmsg) == 1 and sendmmsg[0].rstrip().endswith("= 43"), sendmmsg


# --- A route that cannot segment: the segment is larger than the path MTU.


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    """Namespaces ``a`` (10.77.0.1) and ``b`` (10.77.0.2) joined by a veth pair with MTU 1280."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    tag = uuid.uuid4().hex[:8]
    a, b = f"jn-gso-a-{tag}", f"jn-gso-b-{tag}"
    _ip("netns", "add", a)
    try:
        _ip("netns", "add", b)
        try:
            _ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
            for ns, dev, addr in ((a, "va", "10.77.0.1/24"), (b, "vb", "10.77.0.2/24")):
                _ip("-n", ns, "link", "set", dev, "mtu", "1280")
                _ip("-n", ns, "addr", "add", addr, "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            yield a, b
        finally:
            _ip("netns", "del", b)
    finally:
        _ip("netns", "del", a)


def _send_across(a: str, b: str, segment_size: int, tmp_path: Path) -> tuple[list[str], list[str]]:
    """From namespace ``a``, send_segments 7,680 bytes to a stdlib receiver in ``b``, under strace.

    Returns (the sender's trace lines after the mark, what the receiver printed: each
    datagram's length, then whether the bytes are the ones sent, in order).
    """
    count = -(-7680 // segment_size)
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", b, sys.executable, "-c", textwrap.dedent(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("10.77.0.2", 4777))
            s.settimeout(20)
            print("ready", flush=True)
            got = [s.recv(4096) for _ in range(int(sys.argv[1]))]
            print(" ".join(str(len(d)) for d in got), b"".join(got) == bytes(range(256)) * 30, flush=True)
            """
        ), str(count)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        program = textwrap.dedent(
            f"""
            import os, sys
            sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
            import janus_net as jn
            sender = jn.bind("10.77.0.1:0")
            os.write(1, {MARK!r})
            print(sender.send_segments("10.77.0.2:4777", bytes(range(256)) * 30, {segment_size}))
            """
        )
        out_file = tmp_path / "strace.out"
        done = subprocess.run(
            ["ip", "netns", "exec", a, "strace", "-f", "-qq", "-o", str(out_file), "-e", "trace=write,sendmsg,sendmmsg",
             sys.executable, "-c", program],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1:] == [str(count)]
        lines = out_file.read_text().splitlines()
        lines = lines[next(i for i, line in enumerate(lines) if "JANUS-MARK" in line) + 1 :]
        out, _ = receiver.communicate(timeout=30)
        return lines, out.split()
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()


def test_fallback_on_a_route_whose_mtu_is_below_the_segment(two_namespaces: tuple[str, str], tmp_path: Path) -> None:
    lines, received = _send_across(*two_namespaces, 1400, tmp_path)
    sendmsg = calls_to(lines, "sendmsg")
    # gso_size + headers > MTU: EMSGSIZE on newer kernels, EINVAL on older ones.
    assert len(sendmsg) == 1 and ("EMSGSIZE" in sendmsg[0] or "EINVAL" in sendmsg[0]), sendmsg
    assert len(calls_to(lines, "sendmmsg")) == 1
    # Sent one by one, each 1400-byte datagram is fragmented on the 1280 link and reassembled.
    assert received == ["1400", "1400", "1400", "1400", "1400", "680", "True"]


def test_a_device_without_checksum_offload_gets_the_same_datagrams(
    two_namespaces: tuple[str, str], tmp_path: Path
) -> None:
    # Older kernels refuse GSO through such a device (EIO) and janus_net falls back;
    # newer ones checksum in software and segment anyway. Either way the same datagrams arrive.
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool is not installed: it is the only way to turn checksum offload off (ethtool -K)")
    a, b = two_namespaces
    subprocess.run(["ip", "netns", "exec", a, "ethtool", "-K", "va", "tx", "off"], check=True, capture_output=True)
    lines, received = _send_across(a, b, 1200, tmp_path)
    assert received == ["1200"] * 6 + ["480", "True"]
    sendmsg = calls_to(lines, "sendmsg")
    assert len(sendmsg) == 1 and carries_udp_segment(sendmsg[0]), sendmsg
    if "EIO" in sendmsg[0]:
        assert len(calls_to(lines, "sendmmsg")) == 1  # the fallback ran
    else:
        assert sendmsg[0].rstrip().endswith("= 7680") and not calls_to(lines, "sendmmsg")


def test_module_constants_come_from_the_compiler() -> None:
    assert segments.MAX_SEGMENT_SIZE == lib.JN_UDP_MAX_PAYLOAD_IP4 == 65507
    assert lib.JN_UDP_MAX_PAYLOAD_IP6 == 65527
    assert segments.MAX_SEGMENTS == lib.JN_UDP_MAX_SEGMENTS


# --- Interrupted and cancelled calls leave the socket usable


@pytest.mark.parametrize("syscall", ["send", "receive"])
def test_keyboard_interrupt_in_the_syscall_leaves_the_socket_usable(syscall: str) -> None:
    data = pattern(6000)
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        if syscall == "receive":
            sender.send_segments(receiver.address, data, 1000)
        with fail(syscall, KeyboardInterrupt) as injected, pytest.raises(KeyboardInterrupt):
            if syscall == "send":
                sender.send_segments(receiver.address, data, 1000)
            else:
                receiver.receive_segments()
        assert injected.failed == 1
        if syscall == "send":
            sender.send_segments(receiver.address, data, 1000)
        assert receive_all(receiver, 6) == expected_datagrams(data, 1000)
        assert nothing_queued(receiver)


def test_receive_segments_with_a_deadline_times_out() -> None:
    with jn.bind("127.0.0.1:0", gro=True) as receiver, pytest.raises(jn.SocketError.Timeout):
        receiver.receive_segments(ctx=jn.Context.with_timeout(0.05))


def test_send_segments_on_a_closed_socket_names_send() -> None:
    sender = jn.bind("127.0.0.1:0")
    sender.close()
    with pytest.raises((jn.ErrnoBug, jn.SocketError)) as raised:
        sender.send_segments("127.0.0.1:9", b"abcd", 2)
    assert raised.value.syscall == "send"  # type: ignore[union-attr]


# --- KeyboardInterrupt at every line of the datagram modules


def _cleanup_lines(path: Path) -> set[int]:
    """Lines inside ``finally:`` blocks of a module.

    A trace function raises *before* a line runs, so a KeyboardInterrupt injected at a
    line of a ``finally`` block would skip that cleanup, whatever the code does: no
    Python cleanup survives that, and no test can ask it to. Every other line is fair game.
    """
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Try):
            for statement in node.finalbody:
                lines.update(range(statement.lineno, (statement.end_lineno or statement.lineno) + 1))
    return lines


class _InterruptAt:
    """A trace function that raises KeyboardInterrupt at the n-th line run in the given files."""

    def __init__(self, n: int, files: dict[str, set[int]]) -> None:
        self.n = n
        self.files = files
        self.seen = 0

    def __call__(self, frame: Any, event: str, arg: object) -> object:
        skip = self.files.get(frame.f_code.co_filename)
        if skip is None:
            return None

        def line(frame: Any, event: str, arg: object) -> object:
            if event == "line" and frame.f_lineno not in skip:
                self.seen += 1
                if self.seen == self.n:
                    raise KeyboardInterrupt
            return line

        return line


MODULE_FILES = {
    str(path): _cleanup_lines(path)
    for path in (Path(segments.__file__), Path(ancillary.__file__), Path(control.__file__), Path(coalesced.__file__))
}


def _interrupt_every_line(operation: Callable[[], object], check: Callable[[], None]) -> int:
    """Run ``operation`` with a KeyboardInterrupt at its 1st, 2nd, ... line; ``check`` after each."""
    n = 1
    while True:
        tracer = _InterruptAt(n, MODULE_FILES)
        sys.settrace(tracer)
        try:
            operation()
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        check()
        if not interrupted:
            return n
        n += 1


@pytest.mark.parametrize(
    "operation",
    ["send_segments", "send_segments_fallback", "receive_segments", "receive_message", "send_from", "receive"],
)
def test_keyboard_interrupt_at_every_line_leaves_the_sockets_whole(operation: str) -> None:
    data = pattern(3000)
    sender = jn.bind("127.0.0.1:0")
    receiver = jn.bind("127.0.0.1:0", gro=True, pktinfo=True, timestamps=True)
    try:
        roomy(receiver)

        def run() -> None:
            if operation == "send_segments":
                sender.send_segments(receiver.address, data, 1000)
            elif operation == "send_segments_fallback":
                with fail("send", errno.EIO):  # the UDP_SEGMENT sendmsg fails: the sendmmsg path runs
                    sender.send_segments(receiver.address, data, 1000)
            elif operation == "send_from":
                sender.send(receiver.address, data[:1000], source="127.0.0.1:0")
            else:
                sender.send_segments(receiver.address, data, 1000)
                if operation == "receive_segments":
                    receiver.receive_segments()
                elif operation == "receive":  # one datagram; the rest of the coalesced buffer is held
                    receiver.receive()
                else:
                    receiver.receive_message()

        def check() -> None:
            # Drain what this attempt left (held or queued), then prove a full round trip still works.
            while receiver.pending:
                receiver.receive()
            with stdlib_view(receiver) as view:
                view.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    while True:
                        view.recv(65536)
            assert sender.send_segments(receiver.address, data, 1000) == 3
            assert receive_all(receiver, 3) == expected_datagrams(data, 1000)

        lines = _interrupt_every_line(run, check)
        assert lines > 3
    finally:
        sender.close()
        receiver.close()
    # Both closed for real: no call is left registered on either descriptor.
    assert sender.fileno() == -1 and receiver.fileno() == -1


# --- Plain receives on a GRO socket (DESIGN §15): one datagram per entry, none merged, none lost


def coalesced_send(sender: jn.Socket, receiver: jn.Socket, count: int = 5, size: int = 1000) -> list[bytes]:
    """``count`` datagrams of ``size`` bytes in one UDP_SEGMENT send, which loopback GRO delivers as one buffer."""
    data = pattern(count * size)
    assert sender.send_segments(receiver.address, data, size) == count
    return expected_datagrams(data, size)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_plain_receive_on_a_gro_socket_delivers_each_datagram_and_drops_none(family: str) -> None:
    address = FAMILIES[family][0]
    with jn.bind(address) as sender, jn.bind(address, gro=True) as receiver:
        want = coalesced_send(sender, receiver)
        first, source = receiver.receive(1000)
        assert (first, source) == (want[0], sender.address)
        assert receiver.pending == 4  # the kernel really coalesced them: the rest is held
        assert [receiver.receive(1000)[0] for _ in range(4)] == want[1:]
        assert receiver.pending == 0
        assert nothing_queued(receiver)


def test_a_short_size_cuts_each_datagram_not_the_buffer() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        want = coalesced_send(sender, receiver)
        assert [receiver.receive(100)[0] for _ in range(5)] == [w[:100] for w in want]
        assert receiver.pending == 0


def test_receive_into_on_a_gro_socket_delivers_one_datagram_per_call() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        want = coalesced_send(sender, receiver)
        got = []
        for _ in range(5):
            buf = bytearray(4000)
            n, source = receiver.receive_into(buf, ctx=jn.Context.with_timeout(CTX))
            assert source == sender.address
            got.append(bytes(buf[:n]))
        assert got == want


def test_receive_many_on_a_gro_socket_gives_one_entry_per_datagram() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        want = coalesced_send(sender, receiver)
        first = receiver.receive_many(3)
        assert [d for d, _ in first] == want[:3] and receiver.pending == 2
        rest = receiver.receive_many(10)
        assert [d for d, _ in rest] == want[3:] and {s for _, s in rest} == {sender.address}


def test_held_datagrams_come_first_for_every_kind_of_receive_and_in_order() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True, pktinfo=True) as receiver:
        want = coalesced_send(sender, receiver)
        assert receiver.receive()[0] == want[0]
        assert receiver.receive_segments()[:2] == (want[1], len(want[1]))
        message = receiver.receive_message()
        assert message.data == want[2] and message.destination == jn.parse_address(f"127.0.0.1:{receiver.address.port}")
        assert receiver.receive()[0] == want[3]
        assert receiver.receive_many(5)[0][0] == want[4]


def test_a_receive_returns_at_once_while_datagrams_are_held() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        want = coalesced_send(sender, receiver)
        receiver.receive()
        assert nothing_queued(receiver)  # the kernel has nothing more: a wait would block
        with fail("receive", errno.EBADF) as injected:
            assert [receiver.receive(ctx=jn.Context.with_timeout(CTX))[0] for _ in range(4)] == want[1:]
        assert injected.calls == 0  # no syscall at all


def test_to_socket_refuses_while_datagrams_are_held() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        coalesced_send(sender, receiver, count=2)
        receiver.receive()
        with pytest.raises(jn.SocketError.SocketModeUnsupported, match="held"):
            receiver.to_socket()
        assert not receiver.closed
        receiver.receive()
        with receiver.to_socket() as handed:
            assert type(handed) is socket.socket


def test_a_forked_child_starts_with_no_held_datagram() -> None:
    with jn.bind("127.0.0.1:0") as sender, jn.bind("127.0.0.1:0", gro=True) as receiver:
        want = coalesced_send(sender, receiver)
        receiver.receive()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(r)
                try:
                    receiver.receive(ctx=jn.Context.with_timeout(0.2))
                    answer = b"received"
                except jn.SocketError.Timeout:
                    answer = b"timeout %d" % receiver.pending
                os.write(w, answer)
            finally:
                os._exit(0)
        os.close(w)
        try:
            answer = os.read(r, 64)
        finally:
            os.close(r)
            os.waitpid(pid, 0)
        assert answer == b"timeout 0"
        assert receiver.pending == 4
        assert [receiver.receive()[0] for _ in range(4)] == want[1:]


def test_an_adopted_socket_with_gro_on_refuses_plain_receives() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw, jn.bind("127.0.0.1:0") as sender:
        raw.setsockopt(lib.JN_SOL_UDP, lib.JN_UDP_GRO, 1)
        raw.bind(("127.0.0.1", 0))
        with jn.bind(f"fd://{os.dup(raw.fileno())}") as adopted:
            assert adopted.pending == 0
            sender.send(adopted.address, b"one")
            for plain in (
                lambda: adopted.receive(),
                lambda: adopted.receive_into(bytearray(9)),
                lambda: adopted.receive_many(2),
            ):
                with pytest.raises(jn.SocketError.SocketModeUnsupported, match="receive_segments"):
                    plain()
            assert adopted.receive_segments()[0] == b"one"


def test_a_received_gro_socket_refuses_plain_receives_and_a_plain_one_does_not() -> None:
    name = f"unix:@jn-gro-pass-{os.getpid()}"
    with jn.listen(name) as server, jn.connect(name) as tx, server.accept() as rx:  # noqa: SIM117
        with jn.bind("127.0.0.1:0", gro=True) as gro, jn.bind("127.0.0.1:0") as plain, jn.bind("127.0.0.1:0") as sender:
            jn.send_sockets(tx, {"gro": gro, "plain": plain})
            got = jn.receive_sockets(rx)
            try:
                sender.send(got["gro"].address, b"x")
                with pytest.raises(jn.SocketError.SocketModeUnsupported):
                    got["gro"].receive()  # type: ignore[union-attr]
                sender.send(got["plain"].address, b"y")
                assert got["plain"].receive(ctx=jn.Context.with_timeout(CTX))[0] == b"y"  # type: ignore[union-attr]
            finally:
                for sock in got.values():
                    sock.close()


def test_a_socket_bound_without_gro_receives_with_recvfrom_alone(tmp_path: Path) -> None:
    """The fast path is unchanged: no getsockopt, no recvmsg for a socket bind() made without gro."""
    script = textwrap.dedent(
        f"""
        import os, janus_net as jn
        with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0") as b:
            a.send(b.address, b"x")
            a.send(b.address, b"y")
            os.write(1, {MARK!r})
            b.receive()
            b.receive_many(1)
        """
    )
    lines, _ = syscalls_after_mark(script, tmp_path, trace="write,getsockopt,recvfrom,recvmsg,recvmmsg")
    assert calls_to(lines, "getsockopt", "recvmsg") == [], lines
    assert len(calls_to(lines, "recvfrom")) == 1 and len(calls_to(lines, "recvmmsg")) == 1, lines


def test_many_small_datagrams_mixed_with_single_ones_arrive_each_once_in_order() -> None:
    """Coalesced runs and lone datagrams interleaved: plain receives see the exact sequence sent."""
    with jn.bind("127.0.0.1:0") as sender, roomy(jn.bind("127.0.0.1:0", gro=True)) as receiver:
        sent: list[bytes] = []
        for run in range(6):
            batch = [b"%03d-%03d" % (run, i) + bytes(40) for i in range(30)]
            assert sender.send_segments(receiver.address, b"".join(batch), len(batch[0])) == 30
            single = b"single-%d" % run
            sender.send(receiver.address, single)
            sent += [*batch, single]
        got = []
        while len(got) < len(sent):
            got += [d for d, _ in receiver.receive_many(7, ctx=jn.Context.with_timeout(CTX))]
            if len(got) < len(sent):  # alternate the two plain receives
                got.append(receiver.receive(ctx=jn.Context.with_timeout(CTX))[0])
        assert got == sent
        assert receiver.pending == 0 and nothing_queued(receiver)


def test_threads_receiving_from_one_gro_socket_neither_lose_nor_repeat_a_datagram() -> None:
    import threading

    total = 40 * 25
    with jn.bind("127.0.0.1:0") as sender, roomy(jn.bind("127.0.0.1:0", gro=True)) as receiver:
        for run in range(40):
            batch = b"".join(b"%02d:%02d-----" % (run, i) for i in range(25))
            assert sender.send_segments(receiver.address, batch, 10) == 25
        got: list[bytes] = []
        lock = threading.Lock()

        def take() -> None:
            while True:
                with lock:
                    if len(got) >= total:
                        return
                try:
                    data, _ = receiver.receive(ctx=jn.Context.with_timeout(0.5))
                except jn.SocketError.Timeout:
                    return
                with lock:
                    got.append(data)

        threads = [threading.Thread(target=take) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        want = sorted(b"%02d:%02d-----" % (run, i) for run in range(40) for i in range(25))
        assert sorted(got) == want
