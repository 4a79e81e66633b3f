"""The DNS engine against the test server (tests/dns_server.py): servers, tries, transports, search order, leaks.

Every test runs a real server on loopback and a real lookup through janus_net's own sockets; what the
server logged says what was asked, in which order, over which transport, from which socket. The
autouse fixture of conftest counts descriptors around each test; the interrupt tests inject
KeyboardInterrupt at each kernel call of the lookup through the fault seam.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_server import DECOY_A, DECOY_AAAA, DECOY_KINDS, DnsServer
from peers import when_blocked
from tracing import syscalls_after_mark

import janus_net as jn
from janus_net._policy import waiting
from janus_net._profiles.name_lookup import NameLookup
from janus_net.testing import fail

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6


def config(*servers: DnsServer, **fields: object) -> jn.ResolverConfig:
    fields.setdefault("timeout", 1)
    fields.setdefault("attempts", 1)
    fields.setdefault("hosts", "/nonexistent/hosts")
    return jn.ResolverConfig().replace(nameservers=tuple(s.nameserver for s in servers), **fields)


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer() as s:
        s.add("www.example.com", a=["192.0.2.1"], aaaa=["2001:db8::1"])
        yield s


def texts(resolution: jn.Resolution) -> list[str]:
    return [str(a) for a in resolution.addresses]


def test_a_and_aaaa_from_one_connected_socket(server: DnsServer) -> None:
    r = jn.resolve("www.example.com", 443, config=config(server))
    assert texts(r) == ["192.0.2.1:443", "[2001:db8::1]:443"]
    assert r.source == "dns" and r.canonical_name == "www.example.com"
    log = server.queries()
    assert sorted(q.qtype or "" for q in log) == ["A", "AAAA"]
    assert len({q.source for q in log}) == 1, "A and AAAA must share the server's one socket"
    assert log[0].id != log[1].id
    assert all(q.edns is None and q.transport == "udp" for q in log)


def test_both_queries_leave_before_the_first_answer(server: DnsServer) -> None:
    server.on("www.example.com", "A", delay=0.5)
    jn.resolve("www.example.com", config=config(server))
    a, aaaa = sorted(server.queries(), key=lambda q: q.qtype or "")
    assert aaaa.time < a.time + 0.5  # AAAA did not wait for A's answer


def test_single_request_asks_aaaa_after_the_a_answer(server: DnsServer) -> None:
    server.on("www.example.com", "A", delay=0.3)
    r = jn.resolve("www.example.com", config=config(server, single_request=True))
    assert len(r.addresses) == 2
    log = server.queries()
    assert [q.qtype for q in log] == ["A", "AAAA"]
    assert log[1].time - log[0].time >= 0.29


def test_family_asks_only_its_type(server: DnsServer) -> None:
    assert texts(jn.resolve("www.example.com", config=config(server), family=AF_INET6)) == ["[2001:db8::1]:0"]
    assert [q.qtype for q in server.queries()] == ["AAAA"]


def test_cname_chain_gives_the_canonical_name(server: DnsServer) -> None:
    server.add_cname("alias.example.com", "mid.example.com")
    server.add_cname("mid.example.com", "www.example.com")
    r = jn.resolve("alias.example.com", config=config(server))
    assert r.canonical_name == "www.example.com" and len(r.addresses) == 2


def test_nxdomain_and_nodata_are_unknown_host_name(server: DnsServer) -> None:
    with pytest.raises(jn.SocketError.UnknownHostName) as info:
        jn.resolve("nothing.example.com", config=config(server))
    assert info.value.name == "nothing.example.com"
    server.add("v4only.example.com", a=["192.0.2.4"])
    with pytest.raises(jn.SocketError.UnknownHostName):
        jn.resolve("v4only.example.com", family=AF_INET6, config=config(server))
    assert texts(jn.resolve("v4only.example.com", config=config(server))) == ["192.0.2.4:0"]


@pytest.mark.parametrize("rcode", ["SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"])
def test_a_failing_server_passes_to_the_next(rcode: str) -> None:
    with DnsServer() as bad, DnsServer() as good:
        bad.on("www.example.com", rcode=rcode)
        good.add("www.example.com", a=["192.0.2.1"])
        r = jn.resolve("www.example.com", family=AF_INET, config=config(bad, good, timeout=5))
        assert texts(r) == ["192.0.2.1:0"]
        assert len(bad.queries()) == 1 and len(good.queries()) == 1


def test_failure_everywhere_and_temporary() -> None:
    with DnsServer() as one, DnsServer() as two:
        for s, rcode in ((one, "REFUSED"), (two, "REFUSED")):
            s.on("x.example", rcode=rcode)
        with pytest.raises(jn.SocketError.NameServerFailure) as info:
            jn.resolve("x.example", config=config(one, two))
        assert info.value.temporary is False and info.value.name == "x.example"
        two.on("x.example", rcode="SERVFAIL")
        with pytest.raises(jn.SocketError.NameServerFailure) as info:
            jn.resolve("x.example", config=config(one, two))
        assert info.value.temporary is True


def test_timeouts_attempts_rounds_and_rotate() -> None:
    with DnsServer() as one, DnsServer() as two:
        for s in (one, two):
            s.on("hole.example", blackhole=True)
        cfg = config(one, two, timeout=0.1, attempts=2)
        with pytest.raises(jn.SocketError.NameServerFailure) as info:
            jn.resolve("hole.example", family=AF_INET, config=cfg)
        assert info.value.temporary is True
        merged = sorted(one.queries() + two.queries(), key=lambda q: q.time)
        assert [q.server for q in merged] == [one.nameserver, two.nameserver] * 2
        assert len({q.id for q in merged}) == 4, "every try has its own id"
        firsts = []
        for _ in range(2):
            one.clear_log()
            two.clear_log()
            with pytest.raises(jn.SocketError.NameServerFailure):
                jn.resolve("hole.example", family=AF_INET, config=cfg.replace(rotate=True, attempts=1))
            merged = sorted(one.queries() + two.queries(), key=lambda q: q.time)
            firsts.append(merged[0].server)
        assert set(firsts) == {one.nameserver, two.nameserver}, "rotate starts each lookup at the next server"


def test_an_icmp_refusal_ends_the_try_at_once(server: DnsServer) -> None:
    closed = socket.socket(AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    cfg = config(server, timeout=10).replace(nameservers=(f"127.0.0.1:{port}", server.nameserver))
    started = time.monotonic()
    r = jn.resolve("www.example.com", config=cfg)
    assert len(r.addresses) == 2
    assert time.monotonic() - started < 5, "the refused server's try waited for its timeout"
    with pytest.raises(jn.SocketError.NameServerFailure) as info:
        jn.resolve("www.example.com", config=cfg.replace(nameservers=(f"127.0.0.1:{port}",)))
    assert info.value.temporary is True


def test_truncated_udp_asks_again_over_tcp(server: DnsServer) -> None:
    many = [f"192.0.2.{i}" for i in range(1, 101)]
    server.add("big.example", a=many)
    r = jn.resolve("big.example", family=AF_INET, config=config(server))
    assert sorted(a.host for a in r.addresses) == sorted(many)
    assert [q.transport for q in server.queries()] == ["udp", "tcp"]
    server.on("tc.example", truncate=True)
    server.add("tc.example", a=["192.0.2.7"])
    assert texts(jn.resolve("tc.example", family=AF_INET, config=config(server))) == ["192.0.2.7:0"]


def test_edns0_gets_a_big_answer_over_udp(server: DnsServer) -> None:
    many = [f"192.0.2.{i}" for i in range(1, 51)]  # too big for 512 bytes, fits in 1232
    server.add("big.example", a=many)
    r = jn.resolve("big.example", family=AF_INET, config=config(server, edns0=True))
    assert len(r.addresses) == 50
    log = server.queries()
    assert [(q.transport, q.edns) for q in log] == [("udp", 1232)]


def test_use_vc_asks_over_tcp_only(server: DnsServer) -> None:
    r = jn.resolve("www.example.com", config=config(server, use_vc=True))
    assert len(r.addresses) == 2
    assert {q.transport for q in server.queries()} == {"tcp"}


@pytest.mark.parametrize("behaviour", ["tcp_close", "tcp_drip", "tcp_raw"])
def test_tcp_failures_end_the_try(server: DnsServer, behaviour: str) -> None:
    if behaviour == "tcp_close":
        server.on("www.example.com", tcp_close=True)
    elif behaviour == "tcp_drip":
        server.on("www.example.com", tcp_drip=0.05)  # ~40 bytes: longer than the timeout
    else:
        server.on("www.example.com", tcp_raw=lambda q: b"\x00\x05" + os.urandom(5))
    with pytest.raises(jn.SocketError.NameServerFailure):
        jn.resolve("www.example.com", family=AF_INET, config=config(server, use_vc=True, timeout=0.5))


@pytest.mark.parametrize("kind", DECOY_KINDS)
def test_decoys_are_ignored(server: DnsServer, kind: str) -> None:
    server.on("www.example.com", decoys=(kind,), delay=0.05)
    r = jn.resolve("www.example.com", config=config(server))
    assert texts(r) == ["192.0.2.1:0", "[2001:db8::1]:0"]
    assert DECOY_A not in texts(r) and DECOY_AAAA not in str(r)


def test_only_decoys_and_malformed_replies_fail(server: DnsServer) -> None:
    server.on("www.example.com", decoys=DECOY_KINDS, real=False)
    with pytest.raises(jn.SocketError.NameServerFailure) as info:
        jn.resolve("www.example.com", config=config(server, timeout=0.2))
    assert info.value.temporary is True  # nothing answered: a timeout
    # The question asked, then five answers promised and three bytes of them: unreadable.
    server.on(
        "www.example.com", udp_raw=lambda q: q[:2] + b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00" + q[12:] + b"abc"
    )
    with pytest.raises(jn.SocketError.NameServerFailure) as info:
        jn.resolve("www.example.com", config=config(server, timeout=0.2))
    assert info.value.temporary is False  # malformed only
    server.on("www.example.com", udp_raw=lambda q: q[:2] + os.urandom(40))
    with pytest.raises(jn.SocketError.NameServerFailure) as info:
        jn.resolve("www.example.com", config=config(server, timeout=0.2))
    assert info.value.temporary is True  # random bytes are no reply to the question: a timeout


def test_an_ipv6_server_is_asked_from_an_ipv6_socket() -> None:
    with DnsServer("::1") as six, DnsServer() as four:
        six.on("x.example", rcode="SERVFAIL")
        four.add("x.example", a=["192.0.2.1"])
        r = jn.resolve("x.example", family=AF_INET, config=config(six, four))
        assert texts(r) == ["192.0.2.1:0"]
        assert six.queries()[0].source[0] == "::1"
        assert four.queries()[0].source[0] == "127.0.0.1"


# --- the search list


@pytest.mark.parametrize(
    ("name", "ndots", "expected"),
    [
        ("host", 1, ["host.a.test", "host.b.test", "host"]),
        ("x.y", 1, ["x.y", "x.y.a.test", "x.y.b.test"]),
        ("x.y", 2, ["x.y.a.test", "x.y.b.test", "x.y"]),
        ("x.y.", 5, ["x.y"]),
        ("host", 0, ["host", "host.a.test", "host.b.test"]),
    ],
)
def test_search_order_as_glibc(server: DnsServer, name: str, ndots: int, expected: list[str]) -> None:
    with pytest.raises(jn.SocketError.UnknownHostName):
        jn.resolve(name, family=AF_INET, config=config(server, search=("a.test", "b.test"), ndots=ndots))
    assert [q.name for q in server.queries()] == expected


def test_search_stops_at_the_first_name_with_an_address(server: DnsServer) -> None:
    server.add("host.b.test", aaaa=["2001:db8::b"])
    server.on("host.a.test", rcode="SERVFAIL")  # SERVFAIL passes on to the next name, as glibc
    r = jn.resolve("host", config=config(server, search=("a.test", "b.test")))
    assert texts(r) == ["[2001:db8::b]:0"] and r.canonical_name == "host.b.test"
    assert [q.name for q in server.queries() if q.qtype == "A"] == ["host.a.test", "host.b.test"]


def test_a_timeout_ends_the_search(server: DnsServer) -> None:
    server.on("host.a.test", blackhole=True)
    server.add("host.b.test", a=["192.0.2.2"])
    with pytest.raises(jn.SocketError.NameServerFailure):
        jn.resolve("host", family=AF_INET, config=config(server, search=("a.test", "b.test"), timeout=0.2))
    assert [q.name for q in server.queries()] == ["host.a.test"]


# --- answers per family, for Happy Eyeballs


def test_each_family_is_known_as_soon_as_its_answer_is(server: DnsServer) -> None:
    server.on("www.example.com", "A", delay=0.4)
    lookup = NameLookup("www.example.com", 80, None, config(server), None)
    try:
        seen_six_first = False
        while not lookup.done():
            six, four = lookup.answer(AF_INET6), lookup.answer(AF_INET)
            if six is not None and four is None:
                seen_six_first = True
                assert [str(a) for a in six] == ["[2001:db8::1]:80"]
            revents = waiting.wait_fds(lookup.poll_entries(), None, lookup.next_deadline())
            lookup.advance(revents, time.monotonic())
        assert seen_six_first
        assert [str(a) for a in lookup.answer(AF_INET) or ()] == ["192.0.2.1:80"]
        assert len(lookup.result().addresses) == 2
    finally:
        lookup.close()
        lookup.close()  # idempotent


# --- cancellation, deadlines, interrupts: nothing left open


def test_cancel_from_another_thread_ends_the_lookup_at_once(server: DnsServer) -> None:
    server.on("hole.example", blackhole=True)
    ctx = jn.Context()
    timer = threading.Timer(0.2, ctx.cancel)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(jn.SocketError.Timeout) as info:
            jn.resolve("hole.example", ctx=ctx, config=config(server, timeout=30))
    finally:
        timer.join()
    assert info.value.reason == "cancelled"
    assert time.monotonic() - started < 1.5


def test_a_deadline_ends_the_lookup(server: DnsServer) -> None:
    server.on("hole.example", blackhole=True)
    with pytest.raises(jn.SocketError.Timeout) as info:
        jn.resolve("hole.example", ctx=jn.Context.with_timeout(0.1), config=config(server, timeout=30))
    assert info.value.reason == "deadline"


@pytest.mark.parametrize(
    ("syscall", "after", "single"),
    [
        ("socket", 0, False), ("connect", 0, False), ("send", 0, False), ("poll", 0, False),
        ("receive", 0, False), ("receive", 1, False),
        # A and AAAA leave in one sendmmsg ("send"); with single-request, in two sends.
        ("send", 0, True), ("send", 1, True),
    ],
)  # fmt: skip
def test_keyboard_interrupt_at_any_call_leaves_nothing_open(
    server: DnsServer, syscall: str, after: int, single: bool
) -> None:
    with fail(syscall, KeyboardInterrupt, after=after) as injection, pytest.raises(KeyboardInterrupt):
        jn.resolve("www.example.com", config=config(server, single_request=single))
    assert injection.failed == 1
    # the autouse fixture checks that every descriptor the lookup made is closed


@pytest.mark.parametrize(("syscall", "after"), [("socket", 0), ("connect", 0), ("send", 0), ("receive", 0)])
def test_keyboard_interrupt_over_tcp(server: DnsServer, syscall: str, after: int) -> None:
    with fail(syscall, KeyboardInterrupt, after=after) as injection, pytest.raises(KeyboardInterrupt):
        jn.resolve("www.example.com", family=AF_INET, config=config(server, use_vc=True))
    assert injection.failed == 1


class _Alarm(Exception):
    pass


def test_a_signal_handler_that_raises_ends_the_wait(server: DnsServer) -> None:
    server.on("hole.example", blackhole=True)

    def handler(signum: int, frame: object) -> None:
        raise _Alarm

    previous = signal.signal(signal.SIGALRM, handler)
    me = threading.get_ident()
    try:
        # Once the lookup waits, not on a timer: one that fired before pytest.raises was entered
        # would fail the test with the very exception it expects.
        sender = when_blocked(lambda: signal.pthread_kill(me, signal.SIGALRM))
        with pytest.raises(_Alarm):
            jn.resolve("hole.example", config=config(server, timeout=30))
        sender.join()
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_many_lookups_leave_no_descriptor(server: DnsServer) -> None:
    before = len(os.listdir("/proc/self/fd"))
    server.on("hole.example", blackhole=True)
    cfg = config(server, timeout=0.05)
    for _ in range(20):
        # The answered lookup gets a timeout it never needs: 50 ms is short enough for the
        # server's thread to miss on a loaded machine, and then the test fails for no leak.
        jn.resolve("www.example.com", config=cfg.replace(timeout=5))
        with pytest.raises(jn.SocketError.NameServerFailure):
            jn.resolve("hole.example", config=cfg)
        with pytest.raises(jn.SocketError.Timeout):
            jn.resolve("hole.example", ctx=jn.Context.with_timeout(0.01), config=cfg.replace(timeout=5))
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_server_of_a_family_this_host_lacks_is_skipped(server: DnsServer) -> None:
    import errno

    cfg = config(server).replace(nameservers=("[2001:db8::53]:53", server.nameserver))
    with fail("socket", errno.EAFNOSUPPORT) as injection:
        r = jn.resolve("www.example.com", config=cfg)
    assert injection.failed == 1 and len(r.addresses) == 2
    with fail("socket", errno.EAFNOSUPPORT, times=10), pytest.raises(jn.SocketError.NameServerFailure) as info:
        jn.resolve("www.example.com", config=cfg)
    assert info.value.temporary is True


def test_a_and_aaaa_leave_in_one_sendmmsg_and_each_is_answered(tmp_path: Path) -> None:
    # As glibc's: the two questions of a name go in one syscall (the server wakes once for
    # both); each keeps its own CSPRNG id, and single-request still sends them one by one.
    tests = str(Path(__file__).resolve().parent)
    program = f"""
import os, sys
sys.path.insert(0, {tests!r})
from dns_server import DnsServer
import janus_net as jn
with DnsServer() as server:
    server.add("both.example", a=["192.0.2.1"], aaaa=["2001:db8::1"])
    config = jn.ResolverConfig().replace(nameservers=(server.nameserver,), hosts="/nonexistent/hosts", attempts=1)
    os.write(1, b"JANUS-MARK\\n")
    together = jn.resolve("both.example", config=config)
    os.write(1, b"JANUS-SINGLE\\n")
    apart = jn.resolve("both.example", config=config.replace(single_request=True))
    ids = [q.id for q in server.queries() if q.name == "both.example"]
    print(sorted(str(a) for a in together.addresses) == sorted(str(a) for a in apart.addresses), len(set(ids)))
"""
    lines, out = syscalls_after_mark(program, tmp_path, trace="sendmmsg,sendto,write")
    split = next(i for i, line in enumerate(lines) if "JANUS-SINGLE" in line)
    first = [line for line in lines[:split] if " sendmmsg(" in line or " sendto(" in line]
    second = [line for line in lines[split:] if " sendmmsg(" in line or " sendto(" in line]
    # The test server answers with sendto from its own thread: only the lookup's sends are counted.
    lookup_first = [line for line in first if "MSG_DONTWAIT" in line]
    lookup_second = [line for line in second if "MSG_DONTWAIT" in line]
    assert len(lookup_first) == 1 and "sendmmsg(" in lookup_first[0] and lookup_first[0].rstrip().endswith("= 2")
    assert len(lookup_second) == 2 and all("sendto(" in line for line in lookup_second)
    assert out.split()[-2:] == ["True", "4"]  # the same answers; four queries, four ids
