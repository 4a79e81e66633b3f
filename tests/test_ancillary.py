"""Ancillary data (DESIGN §15): pktinfo (destination address, reply from a chosen source), timestamps,
the Datagram value, and truncation / malformed control messages reported, never silent.

The destination-address tests run in a network namespace this module creates, with
two addresses on one interface, so "which address did the client use" and "which
address did the reply leave from" have two possible answers; stdlib sockets are the
client (the independent oracle).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import wait_until_blocked

import janus_net as jn
from janus_net._shim import ffi, lib
from janus_net._sockets import ancillary
from janus_net.testing import fail
from tests.peers import stdlib_view

REPO = Path(__file__).resolve().parent.parent
# IP_RECVTTL / IP_RECVTOS (linux/in.h): not in the stdlib's socket module on every version.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
IP_RECVORIGDSTADDR = getattr(socket, "IP_RECVORIGDSTADDR", 20)


def ctx() -> jn.Context:
    return jn.Context.with_timeout(10)  # liveness only


# --- Datagram


def test_datagram_is_an_immutable_slotted_value() -> None:
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0") as b:
        a.send(b.address, b"hi")
        d = b.receive_message(ctx=ctx())
    assert d == jn.Datagram(b"hi", a.address, None, None, 2)
    assert not hasattr(d, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.data = b"x"  # type: ignore[misc]
    assert hash(d) == hash(jn.Datagram(b"hi", a.address, None, None, 2))


def test_without_options_destination_and_timestamp_are_none() -> None:
    with jn.bind("[::1]:0") as a, jn.bind("[::1]:0") as b:
        a.send(b.address, b"x" * 1000)
        d = b.receive_message()
    assert (d.data, d.source, d.destination, d.timestamp, d.segment_size) == (b"x" * 1000, a.address, None, None, 1000)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:0"])
def test_pktinfo_on_a_specific_address_reports_it(address: str) -> None:
    with jn.bind(address) as a, jn.bind(address, pktinfo=True) as b:
        a.send(b.address, b"x")
        assert b.receive_message(ctx=ctx()).destination == b.address


def test_pktinfo_on_a_dual_stack_socket_reports_ip4_mapped() -> None:
    with (
        jn.bind("[::]:0", ip6_only=False, pktinfo=True) as b,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.sendto(b"x", ("127.0.0.1", b.address.port))
        d = b.receive_message(ctx=ctx())
    assert d.destination == jn.parse_address(f"[::ffff:127.0.0.1]:{b.address.port}")


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:0", "unix"])
def test_timestamps_are_close_to_time_time(address: str, tmp_path: Path) -> None:
    where = f"unix:{tmp_path}/ts.sock" if address == "unix" else address
    with (
        jn.bind(where, timestamps=True) as b,
        jn.bind(f"unix:{tmp_path}/a.sock" if address == "unix" else address) as a,
    ):
        before = time.time()
        a.send(b.address, b"tick")
        d = b.receive_message(ctx=ctx())
        after = time.time()
    assert d.timestamp is not None
    assert before - 1 <= d.timestamp <= after + 1  # generous: liveness of the clock, not speed
    assert d.destination is None


def test_options_reach_the_kernel() -> None:
    with jn.bind("127.0.0.1:0", gro=True, pktinfo=True, timestamps=True) as v4, jn.bind("[::1]:0", pktinfo=True) as v6:
        with stdlib_view(v4) as view:
            assert view.getsockopt(lib.JN_SOL_UDP, lib.JN_UDP_GRO) == 1
            assert view.getsockopt(socket.IPPROTO_IP, lib.JN_IP_PKTINFO) == 1
            assert view.getsockopt(socket.SOL_SOCKET, lib.JN_SO_TIMESTAMPNS) == 1
        with stdlib_view(v6) as view:
            assert view.getsockopt(socket.IPPROTO_IPV6, lib.JN_IPV6_RECVPKTINFO) == 1
    with jn.bind("127.0.0.1:0") as plain, stdlib_view(plain) as view:
        assert view.getsockopt(lib.JN_SOL_UDP, lib.JN_UDP_GRO) == 0
        assert view.getsockopt(socket.IPPROTO_IP, lib.JN_IP_PKTINFO) == 0
        assert view.getsockopt(socket.SOL_SOCKET, lib.JN_SO_TIMESTAMPNS) == 0


@pytest.mark.parametrize("name", ["gro", "pktinfo", "timestamps"])
@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0])
def test_options_are_strict_bools_checked_before_any_syscall(name: str, bad: object) -> None:
    with fail("socket", errno.EMFILE) as injected, pytest.raises(ValueError, match=name):
        jn.bind("127.0.0.1:0", **{name: bad})  # type: ignore[arg-type]
    assert injected.failed == 0


@pytest.mark.parametrize(
    ("address", "options"),
    [
        ("unix", {"gro": True}),
        ("unix", {"pktinfo": True}),
        ("127.0.0.1:0", {"gro": True, "mode": jn.Mode.RAW, "protocol": jn.Protocol.ICMP}),
        ("127.0.0.1:0", {"gro": True, "mode": jn.Mode.STREAM}),
        ("127.0.0.1:0", {"pktinfo": True, "mode": jn.Mode.STREAM}),
        ("127.0.0.1:0", {"timestamps": True, "mode": jn.Mode.STREAM}),
    ],
)
def test_options_where_they_cannot_apply_are_option_unsupported(
    address: str, options: dict[str, object], tmp_path: Path
) -> None:
    where = f"unix:{tmp_path}/x.sock" if address == "unix" else address
    with fail("socket", errno.EMFILE) as injected, pytest.raises(jn.SocketError.OptionUnsupported):
        jn.bind(where, **options)  # type: ignore[arg-type]
    assert injected.failed == 0
    assert not (tmp_path / "x.sock").exists()


def test_options_cannot_apply_to_an_adopted_socket() -> None:
    with jn.bind("127.0.0.1:0") as original, pytest.raises(jn.SocketError.OptionUnsupported, match="gro"):
        jn.bind(f"fd://{original.fileno()}", gro=True)


# --- Truncation is reported


def test_a_datagram_longer_than_size_is_message_too_big() -> None:
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0", pktinfo=True) as b:
        a.send(b.address, b"x" * 100)
        a.send(b.address, b"next")
        with pytest.raises(jn.SocketError.MessageTooBig, match="MSG_TRUNC") as raised:
            b.receive_message(size=10)
        assert raised.value.address == str(a.address)
        assert b.receive_message().data == b"next"  # the cut one is gone, the next is whole


def test_a_coalesced_buffer_longer_than_size_is_message_too_big() -> None:
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0", gro=True) as b:
        a.send_segments(b.address, b"x" * 5000, 1000)
        with pytest.raises(jn.SocketError.MessageTooBig):
            b.receive_segments(size=4999)


def test_control_data_that_does_not_fit_is_message_too_big() -> None:
    # Another holder of the socket turns on control messages janus_net reserves no room
    # for (TTL, TOS, the original destination: 80 bytes with their headers, more than the
    # unused IPv6 pktinfo and GRO room): the kernel sets MSG_CTRUNC.
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0", gro=True, pktinfo=True, timestamps=True) as b:
        with stdlib_view(b) as view:
            view.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            view.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
            view.setsockopt(socket.IPPROTO_IP, IP_RECVORIGDSTADDR, 1)
        a.send(b.address, b"x")
        with pytest.raises(jn.SocketError.MessageTooBig, match="MSG_CTRUNC"):
            b.receive_message(ctx=ctx())


def test_unknown_control_messages_that_fit_are_skipped() -> None:
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0", pktinfo=True) as b:
        with stdlib_view(b) as view:
            view.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        a.send(b.address, b"x")
        d = b.receive_message(ctx=ctx())
    assert (d.data, d.destination) == (b"x", b.address)


# --- Crafted control buffers: parse() must check every length before reading.


def crafted(entries: list[tuple[int, int, bytes, int | None]], controllen: int | None = None) -> object:
    """A msghdr whose control buffer holds ``(level, type, payload, cmsg_len override)`` entries."""
    space = sum(lib.jn_cmsg_space(len(p)) for _, _, p, _ in entries) or 64
    control = ffi.new("char[]", space)
    msg = ffi.new("struct msghdr *")
    msg.msg_control = control
    msg.msg_controllen = space
    cmsg = lib.jn_cmsg_firsthdr(msg)
    for level, type_, payload, length in entries:
        cmsg.cmsg_level = level
        cmsg.cmsg_type = type_
        cmsg.cmsg_len = lib.jn_cmsg_len(len(payload)) if length is None else length
        ffi.memmove(lib.jn_cmsg_data(cmsg), payload, len(payload))
        if length is None:
            cmsg = lib.jn_cmsg_nxthdr(msg, cmsg)
    if controllen is not None:
        msg.msg_controllen = controllen
    crafted.keep = (control, msg)  # type: ignore[attr-defined]
    return msg


LOCAL = jn.parse_address("127.0.0.1:5353")


def int_bytes(value: int) -> bytes:
    return bytes(ffi.buffer(ffi.new("int *", value)))


def test_parse_reads_well_formed_messages() -> None:
    info = ffi.new("struct in_pktinfo *")
    info.ipi_addr.s_addr = lib.htonl(0x0A000002)
    ts = ffi.new("struct timespec *")
    ts.tv_sec, ts.tv_nsec = 1_700_000_000, 500_000_000
    msg = crafted(
        [
            (lib.JN_SOL_UDP, lib.JN_UDP_GRO, int_bytes(1200), None),
            (socket.IPPROTO_IP, socket.IP_TTL, int_bytes(64), None),  # unknown here: skipped
            (socket.IPPROTO_IP, lib.JN_IP_PKTINFO, bytes(ffi.buffer(info)), None),
            (socket.SOL_SOCKET, lib.JN_SCM_TIMESTAMPNS, bytes(ffi.buffer(ts)), None),
        ]
    )
    assert ancillary.parse(msg, LOCAL) == (1200, jn.parse_address("10.0.0.2:5353"), 1_700_000_000.5)


def test_parse_of_no_control_data_is_nothing() -> None:
    assert ancillary.parse(crafted([], controllen=0), LOCAL) == (None, None, None)


@pytest.mark.parametrize(
    ("entries", "controllen"),
    [
        ([(lib.JN_SOL_UDP, lib.JN_UDP_GRO, b"\1\0", None)], None),  # 2 bytes: too short for an int
        ([(socket.IPPROTO_IP, lib.JN_IP_PKTINFO, b"\0" * 4, None)], None),  # too short for in_pktinfo
        ([(socket.SOL_SOCKET, lib.JN_SCM_TIMESTAMPNS, b"\0" * 8, None)], None),  # too short for timespec
        ([(lib.JN_SOL_UDP, lib.JN_UDP_GRO, int_bytes(1200), 4096)], None),  # cmsg_len past the buffer
        ([(lib.JN_SOL_UDP, lib.JN_UDP_GRO, int_bytes(1200), 2)], None),  # cmsg_len shorter than a header
        ([(lib.JN_SOL_UDP, lib.JN_UDP_GRO, int_bytes(0), None)], None),  # a zero segment size
        ([(lib.JN_SOL_UDP, lib.JN_UDP_GRO, int_bytes(-5), None)], None),  # a negative one
    ],
    ids=["gro-short", "pktinfo-short", "timestamp-short", "past-the-end", "below-header", "gro-zero", "gro-negative"],
)
def test_parse_reports_malformed_messages(
    entries: list[tuple[int, int, bytes, int | None]], controllen: int | None
) -> None:
    with pytest.raises(jn.SocketError.ProtocolFailure, match="malformed control message"):
        ancillary.parse(crafted(entries, controllen), LOCAL)


def test_parse_reports_a_message_cut_by_controllen() -> None:
    info = bytes(ffi.sizeof("struct in_pktinfo"))
    msg = crafted([(socket.IPPROTO_IP, lib.JN_IP_PKTINFO, info, None)])
    msg.msg_controllen = lib.jn_cmsg_len(len(info)) - 1  # type: ignore[attr-defined]
    with pytest.raises(jn.SocketError.ProtocolFailure):
        ancillary.parse(msg, LOCAL)


# --- send(source=...) checks, before any syscall


def test_source_checks() -> None:
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0") as b:
        with fail("send", errno.EBADF) as injected:
            with pytest.raises(jn.SocketError.AddressUnavailable, match="port"):
                a.send(b.address, b"x", source="127.0.0.1:1")
            with pytest.raises(jn.SocketError.AddressFamilyUnsupported):
                a.send(b.address, b"x", source="[::1]:0")
            with pytest.raises(jn.SocketError.InvalidAddress):
                a.send(b.address, b"x", source="nonsense")
            with pytest.raises(jn.SocketError.AddressFamilyUnsupported):
                a.send("unix:/tmp/x", b"x", source="127.0.0.1:0")
        assert injected.failed == 0
        assert a.send(b.address, b"ok", source=f"127.0.0.1:{a.address.port}") == 2
        assert b.receive(ctx=ctx()) == (b"ok", a.address)


def test_source_on_a_unix_socket_is_option_unsupported(tmp_path: Path) -> None:
    with jn.bind(f"unix:{tmp_path}/a.sock") as a, pytest.raises(jn.SocketError.OptionUnsupported):
        a.send(f"unix:{tmp_path}/a.sock", b"x", source="127.0.0.1:0")


def test_a_source_that_is_not_local_is_refused() -> None:
    # IPv6 says EINVAL (the SEND_FROM row: AddressUnavailable); IPv4 finds no route from
    # a source that is not local (ENETUNREACH: NetworkUnreachable). Never Unexpected or a bug.
    with jn.bind("[::]:0") as a, jn.bind("[::1]:0") as b:
        with pytest.raises(jn.SocketError.AddressUnavailable) as raised:
            a.send(b.address, b"x", source="[2001:db8::1]:0")  # documentation prefix: never local
        assert raised.value.errno == errno.EINVAL
    refused = (jn.SocketError.AddressUnavailable, jn.SocketError.NetworkUnreachable)
    with jn.bind("0.0.0.0:0") as a, jn.bind("127.0.0.1:0") as b, pytest.raises(refused):
        a.send(b.address, b"x", source="192.0.2.1:0")  # TEST-NET-1: never an address of this host


def test_close_from_another_thread_wakes_receive_message() -> None:
    sock = jn.bind("127.0.0.1:0", pktinfo=True)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            sock.receive_message()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until_blocked(thread, outcome=errors)
    sock.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], jn.SocketError.SocketUnconnected), errors


def test_receive_message_with_a_cancelled_context_times_out() -> None:
    with jn.bind("127.0.0.1:0", pktinfo=True) as sock:
        c = jn.Context()
        c.cancel()
        with pytest.raises(jn.SocketError.Timeout):
            sock.receive_message(ctx=c)


def test_bad_size_is_value_error() -> None:
    with jn.bind("127.0.0.1:0") as sock:
        for bad in (-1, 1.5, "10", True):
            with pytest.raises(ValueError, match="size"):
                sock.receive_message(size=bad)  # type: ignore[arg-type]


# --- A server on the wildcard, in a namespace whose interface has two addresses.


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def two_address_namespace() -> Iterator[str]:
    """A namespace with an interface (one end of a veth pair) holding 10.88.0.1, 10.88.0.2, fd88::1 and fd88::2."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    name = f"jn-pktinfo-{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        _ip("-n", name, "link", "set", "d1", "up")
        for addr in ("10.88.0.1/24", "10.88.0.2/24"):
            _ip("-n", name, "addr", "add", addr, "dev", "d0")
        for addr in ("fd88::1/64", "fd88::2/64"):
            _ip("-n", name, "addr", "add", addr, "dev", "d0", "nodad")
        _ip("-n", name, "link", "set", "d0", "up")
        yield name
    finally:
        _ip("netns", "del", name)


CHILD = """
import json, socket, sys
sys.path.insert(0, {repo!r})
import janus_net as jn

def ctx():
    return jn.Context.with_timeout(10)

result = {{}}
for wildcard, family, hosts, fmt in (
    (":0", socket.AF_INET, ("10.88.0.1", "10.88.0.2"), "{{}}:{{}}"),
    ("[::]:0", socket.AF_INET6, ("fd88::1", "fd88::2"), "[{{}}]:{{}}"),
):
    with jn.bind(wildcard, pktinfo=True, timestamps=True) as server:
        port = server.address.port
        for used in hosts:
            for reply_from in hosts:
                with socket.socket(family, socket.SOCK_DGRAM) as client:
                    client.settimeout(10)
                    client.sendto(b"ask", (used, port))
                    d = server.receive_message(ctx=ctx())
                    server.send(d.source, b"answer", source=jn.parse_address(fmt.format(reply_from, 0)))
                    data, seen = client.recvfrom(100)
                    key = f"{{used}} -> {{reply_from}}"
                    result[key] = [str(d.destination), seen[0], seen[1] == port, data.decode()]
# A dual-stack socket: IPv4 clients, destinations and sources in their IPv4-mapped form.
with jn.bind("[::]:0", ip6_only=False, pktinfo=True) as server:
    port = server.address.port
    for used in ("10.88.0.1", "10.88.0.2"):
        for reply_from in ("10.88.0.1", "10.88.0.2"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(10)
                client.sendto(b"ask", (used, port))
                d = server.receive_message(ctx=ctx())
                server.send(d.source, b"answer", source=jn.Ip6Address.from_ip4(jn.Ip4Address(reply_from, 0)))
                data, seen = client.recvfrom(100)
                key = f"mapped {{used}} -> {{reply_from}}"
                result[key] = [str(d.destination), seen[0], seen[1] == port, data.decode()]
print(json.dumps(result))
"""


def run_in_namespace(namespace: str, template: str, **fields: object) -> Any:
    """Run a child program (``template`` filled with the repository and ``fields``) in ``namespace``;
    the JSON it prints last."""
    program = textwrap.dedent(template.format(repo=str(REPO), **fields))
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", program],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_pktinfo_destination_and_reply_source_on_the_wildcard(two_address_namespace: str) -> None:
    result = run_in_namespace(two_address_namespace, CHILD)
    for used, reply_from, fmt in [
        (u, r, "{}:" if "." in u else "[{}]:")
        for u in ("10.88.0.1", "10.88.0.2", "fd88::1", "fd88::2")
        for r in (("10.88.0.1", "10.88.0.2") if "." in u else ("fd88::1", "fd88::2"))
    ]:
        destination, seen_host, same_port, data = result[f"{used} -> {reply_from}"]
        assert destination.startswith(fmt.format(used)), (used, destination)  # the address the client used
        assert seen_host == reply_from  # the client sees the reply come from the chosen source
        assert same_port and data == "answer"
    for used in ("10.88.0.1", "10.88.0.2"):
        for reply_from in ("10.88.0.1", "10.88.0.2"):
            destination, seen_host, same_port, data = result[f"mapped {used} -> {reply_from}"]
            assert destination.startswith(f"[::ffff:{used}]:")
            assert seen_host == reply_from and same_port and data == "answer"


FULL_BUFFER_CHILD = """
import json, os, socket, sys, threading, time
sys.path.insert(0, {repo!r})
import janus_net as jn

# 10.88.0.77 is on d0's link, where d1 (the veth's other end, up, no address) never
# answers ARP: each datagram waits in the neighbour queue, charged to the sender's
# buffer, until resolution fails (seconds) -- a UDP send that finds its buffer full.
std = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
std.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the minimum: a few datagrams
std.bind(("10.88.0.1", 0))
std.setblocking({blocking})  # on the description, which the adopting socket shares
port = std.getsockname()[1]
sock = jn.bind(f"fd://{{os.dup(std.fileno())}}")
std.close()
returned = []
outcome = []

def flood():
    try:
        while len(returned) < 10_000:
            returned.append({call})
    except BaseException as e:
        outcome.append(type(e).__qualname__)

def in_poll(tid):
    with open(f"/proc/self/task/{{tid}}/wchan") as f:
        return "poll" in f.read()

thread = threading.Thread(target=flood, daemon=True)
thread.start()
deadline = time.monotonic() + 20
while thread.is_alive() and not in_poll(thread.native_id or 0) and time.monotonic() < deadline:
    time.sleep(0.005)  # ended, if the sends came back at once (as -1)
waited = thread.is_alive()
sock.close()
thread.join(10)
print(json.dumps({{"waited": waited, "alive": thread.is_alive(), "sizes": sorted(set(returned)), "outcome": outcome}}))
"""


# The sends whose message carries a control message, and what each call returns.
_CONTROL_SENDS = {
    "send_from": ('sock.send("10.88.0.77:9", b"x" * 1400, source=f"10.88.0.1:{port}")', 1400),
    "send_segments": ('sock.send_segments("10.88.0.77:9", b"x" * 14000, 1400)', 10),
}


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "nonblocking"])
@pytest.mark.parametrize("kind", list(_CONTROL_SENDS))
def test_a_send_with_a_control_message_waits_for_buffer_space_and_is_woken_by_close(
    kind: str, blocking: bool, two_address_namespace: str
) -> None:
    """send(source=...) and send_segments on a full send buffer wait in janus_net's poll, as send does.

    Both sent without MSG_DONTWAIT: on a blocking description (janus_net's own) the call
    slept in the kernel, where close() from another thread cannot reach it; on a
    non-blocking one (adopted from a server that set O_NONBLOCK) send(source=...) came
    back as -1 "bytes sent" and send_segments as a short count. Every datagram stays
    inside the test's own namespace.
    """
    call, returns = _CONTROL_SENDS[kind]
    result = run_in_namespace(two_address_namespace, FULL_BUFFER_CHILD, call=call, blocking=blocking)
    assert result["waited"] and not result["alive"], result
    assert result["sizes"] == [returns], result
    assert result["outcome"] == ["SocketError.SocketUnconnected"], result
