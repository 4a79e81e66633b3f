"""The capability gate cannot be fooled (DESIGN §3 "Strict values", §6).

- A capability speaks of ports: RAW and RDM sockets (and protocols other than TCP,
  UDP, SCTP) on IP are denied unless ``NetBind(..., raw=True)``; their records say
  ``port: null``. strace shows no socket() after a denial.
- An instance of a subclass of an address type is rebuilt as its base type before the
  gate sees it: gate, audit record and kernel see one address.
- A `UnixAddress` built directly that cannot be bound (NUL byte, too long, empty) is
  InvalidAddress before the gate audits it and before any syscall.
"""

from __future__ import annotations

import ipaddress
import os
import pickle
import socket
from pathlib import Path

import pytest

import janus_net as jn
from janus_net import platform
from janus_net._values.addresses import exact
from janus_net.audit import AuditRecord, ListSink
from tests.peers import stdlib_view
from tests.tracing import MARK, calls_to, syscalls_after_mark

E = jn.SocketError


def fields(record: AuditRecord) -> tuple[object, ...]:
    return (record.capability_id, record.operation, record.port, record.result, record.address)


PORTLESS = [
    {"mode": jn.Mode.RAW, "protocol": jn.Protocol.TCP},
    {"mode": jn.Mode.RAW, "protocol": jn.Protocol.UDP},
    {"mode": jn.Mode.RAW, "protocol": jn.Protocol.ICMP},
    {"mode": jn.Mode.RDM},
    {"mode": jn.Mode.DGRAM, "protocol": jn.Protocol.ICMP},  # a ping socket: its "port" is an ICMP id
    {"mode": jn.Mode.STREAM, "protocol": 262},  # not TCP, UDP or SCTP
]


@pytest.mark.parametrize("options", PORTLESS, ids=lambda o: "-".join(str(v) for v in o.values()))
@pytest.mark.parametrize("where", ["127.0.0.1:8080", "127.0.0.1:6", "127.0.0.1:0", "[::1]:8080"])
def test_sockets_without_ports_are_denied_on_ip(where: str, options: dict[str, int]) -> None:
    sink = ListSink()
    cap = jn.NetBind("svc", ports=(0, 1, 6, 17, 8080), audit=sink)
    assert not cap.allows(where, **options)
    with pytest.raises(E.CapabilityDenied, match=r"raw=True"):
        jn.bind_with_capability(where, cap, **options)  # type: ignore[arg-type]
    assert [fields(r) for r in sink.records] == [("svc", "check_bind_address", None, "denied", where)]


def test_ported_kinds_are_judged_by_port() -> None:
    cap = jn.NetBind("svc", ports=(8080,))
    for mode in (jn.Mode.STREAM, jn.Mode.DGRAM, jn.Mode.SEQPACKET):
        for protocol in (0, 6, 17, 132):
            assert cap.allows("127.0.0.1:8080", mode=mode, protocol=protocol)
            assert not cap.allows("127.0.0.1:8081", mode=mode, protocol=protocol)
    # Unix sockets have no port: any mode is a unix matter, allowed while net.bind is granted.
    assert cap.allows("unix:@x", mode=jn.Mode.RAW)


def test_a_denied_raw_bind_makes_no_socket_syscall(tmp_path: Path) -> None:
    program = (
        "import os, janus_net as jn\n"
        f"cap = jn.NetBind('t', ports=[6, 8080], audit=lambda record: os.write(1, {MARK!r}))\n"
        "try:\n"
        "    jn.bind_with_capability('127.0.0.1:8080', cap, mode=jn.Mode.RAW, protocol=jn.Protocol.TCP)\n"
        "except jn.SocketError.CapabilityDenied as e:\n"
        "    print('denied', e.address)\n"
    )
    after, stdout = syscalls_after_mark(program, tmp_path)
    assert "denied 127.0.0.1:8080" in stdout
    assert calls_to(after, "socket", "bind") == []


def test_raw_true_allows_them_with_port_null_in_both_records() -> None:
    sink = ListSink()
    cap = jn.NetBind("sniffer", ports=(), audit=sink, raw=True)
    assert cap.raw and not jn.NetBind("x").raw
    with jn.bind_with_capability("127.0.0.1:0", cap, mode=jn.Mode.RAW, protocol=jn.Protocol.UDP) as raw:
        # The kernel reports the protocol in the port field: not a port, so not audited as one.
        assert raw.address.port == jn.Protocol.UDP
    assert [fields(r) for r in sink.records] == [
        ("sniffer", "check_bind_address", None, "allowed", "127.0.0.1:0"),
        ("sniffer", "bind_socket", None, "allowed", "127.0.0.1:17"),
    ]
    with pytest.raises(TypeError):
        jn.NetBind("x", raw=1)  # type: ignore[arg-type]


def test_an_adopted_raw_socket_is_denied_too() -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    raw.bind(("127.0.0.1", 0))
    fd = raw.detach()
    sink = ListSink()
    try:
        with pytest.raises(E.CapabilityDenied):
            jn.bind_with_capability(f"fd://{fd}", jn.NetBind("a", ports=(6,), audit=sink), mode=jn.Mode.RAW)
        assert [fields(r)[2:4] for r in sink.records] == [(None, "denied")]
    finally:
        os.close(fd)


class LyingIp4(jn.Ip4Address):
    """Says 8080 (an allowed port) wherever Python code looks; stores 2222."""

    __slots__ = ()

    @property
    def port(self) -> int:
        return 8080

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def __str__(self) -> str:
        return "127.0.0.1:8080"

    def _format(self) -> str:
        return "127.0.0.1:8080"


class LyingIp6(jn.Ip6Address):
    __slots__ = ()

    @property
    def port(self) -> int:
        return 8080

    def __str__(self) -> str:
        return "[::1]:8080"


def test_a_subclass_whose_port_lies_is_gated_audited_and_bound_as_what_it_stores() -> None:
    for liar, real in ((LyingIp4("127.0.0.1", 0), "127.0.0.1:0"), (LyingIp6("::1", 0), "[::1]:0")):
        assert liar.port == 8080
        sink = ListSink()
        cap = jn.NetBind("api", ports=(8080,), audit=sink)
        assert not cap.allows(liar)
        with pytest.raises(E.CapabilityDenied):
            jn.listen_with_capability(liar, cap)
        assert [fields(r) for r in sink.records] == [("api", "check_bind_address", 0, "denied", real)]
        # Allowed on what it stores: the kernel binds exactly what the audit says.
        cap.allow_port(0)
        with jn.bind_with_capability(liar, cap) as sock, stdlib_view(sock) as view:
            assert type(sock.address) in (jn.Ip4Address, jn.Ip6Address)
            bound = sink.records[-1]
            assert bound.operation == "bind_socket" and bound.port == view.getsockname()[1] == sock.address.port
            assert bound.address == str(sock.address)


class LyingIPv4Address(ipaddress.IPv4Address):
    @property
    def packed(self) -> bytes:
        return bytes([10, 0, 0, 1])

    def __str__(self) -> str:
        return "10.0.0.1"


def test_a_lying_ipaddress_host_is_rebuilt_from_its_value() -> None:
    addr = jn.Ip4Address(LyingIPv4Address("127.0.0.1"), 9)
    assert type(addr.ip) is ipaddress.IPv4Address and str(addr) == "127.0.0.1:9"
    with jn.bind(jn.Ip4Address(LyingIPv4Address("127.0.0.1"), 0)) as sock, stdlib_view(sock) as view:
        assert view.getsockname()[0] == "127.0.0.1"


def test_exact_returns_exact_values_unchanged_and_rebuilds_subclasses() -> None:
    plain = jn.parse_address("127.0.0.1:9")
    assert exact(plain) is plain
    rebuilt = exact(LyingIp4("127.0.0.1", 2222))
    assert type(rebuilt) is jn.Ip4Address and rebuilt == jn.Ip4Address("127.0.0.1", 2222)

    class Half(jn.Ip4Address):
        def __init__(self) -> None:  # never calls the base __init__
            pass

    with pytest.raises(E.InvalidAddress):
        jn.bind(Half())


class SneakyStr(str):
    def startswith(self, *args: object) -> bool:  # type: ignore[override]
        return False


def test_a_str_subclass_is_parsed_as_its_value() -> None:
    assert jn.parse_address(SneakyStr("unix:@x")) == jn.UnixAddress("x", abstract=True)


@pytest.mark.parametrize(
    "bad",
    [
        jn.UnixAddress("/tmp/a\0b"),
        jn.UnixAddress("a\0b", abstract=True),
        jn.UnixAddress("/" + "x" * platform.SUN_PATH_SIZE),
        jn.UnixAddress(""),
    ],
    ids=["nul", "abstract-nul", "too-long", "unnamed"],
)
def test_an_unbindable_unix_address_built_directly_never_reaches_the_gate(bad: jn.UnixAddress) -> None:
    sink = ListSink()
    cap = jn.NetBind("u", audit=sink)
    before = set(os.listdir("/proc/self/fd"))
    for call in (
        lambda: jn.listen_with_capability(bad, cap),
        lambda: jn.bind_with_capability(bad, cap),
        lambda: jn.listen(bad),
        lambda: jn.bind(bad),
    ):
        with pytest.raises(E.InvalidAddress):
            call()
    assert sink.records == []
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_nul_unix_address_makes_no_syscall(tmp_path: Path) -> None:
    program = (
        "import os, janus_net as jn\n"
        "cap = jn.NetBind('t', audit=lambda record: print('audited', record))\n"
        f"os.write(1, {MARK!r})\n"
        "try:\n"
        "    jn.listen_with_capability(jn.UnixAddress('/tmp/janus-a\\0b'), cap)\n"
        "except jn.SocketError.InvalidAddress as e:\n"
        "    print('invalid')\n"
    )
    after, stdout = syscalls_after_mark(program, tmp_path)
    assert "invalid" in stdout and "audited" not in stdout
    assert calls_to(after, "socket", "bind") == []


def test_pickled_addresses_are_exact_values() -> None:
    liar = LyingIp4("127.0.0.1", 2222)
    # Pickling goes through __reduce__, which names the base type: what comes back cannot lie.
    back = pickle.loads(pickle.dumps(liar))
    assert type(back) is jn.Ip4Address and back.port == 2222
