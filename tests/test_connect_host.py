"""jn.connect_host: Happy Eyeballs v2 (RFC 8305) against the real kernel, on loopback and in namespaces.

A blackholed address is a listener whose accept queue is full: Linux drops further SYNs,
so a connect to it stays in SYN_SENT (no firewall needed). Names come from a hosts file
(both families at once, no DNS) or from the test DNS server (tests/dns_server.py) where
the timing of the A and AAAA answers matters. Times are checked with generous bounds
only; the exact figures are measured by ``make bench``.
"""

# The fixtures of names_fixtures are imported here and named again as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import errno
import math
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from interrupts import interrupt_at, live_fds
from names_fixtures import ResolverFiles, config_for, dns_server, resolver_files  # noqa: F401 (fixtures)
from peers import nonblocking, when_blocked
from tracing import syscalls_after_mark

import janus_net as jn
import janus_net._profiles.connect_host  # the interrupt test names its file
from janus_net.testing import fail

_REPO = Path(__file__).resolve().parent.parent


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def _bound(host: str, port: int) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        yield sock


@contextmanager
def _full(server: socket.socket) -> Iterator[None]:
    """Fill the accept queue of ``server`` (listening with backlog 0): the kernel then drops every new SYN."""
    target = server.getsockname()[:2]
    with ExitStack() as fillers:
        for _ in range(16):
            filler = fillers.enter_context(socket.socket(server.family))
            filler.setblocking(False)
            filler.connect_ex(target)
            _, ready, _ = select.select([], [filler], [], 0.5)
            if not ready:
                break  # this SYN was dropped: the queue is full
        else:
            pytest.fail("the accept queue never filled")
        yield


@contextmanager
def _one_port(*roles: tuple[str, str]) -> Iterator[tuple[int, dict[str, socket.socket]]]:
    """One port on several loopback hosts, each in its role; the port, and the sockets by host.

    Roles: "listen" (accepts), "blackhole" (a listener whose accept queue is full: SYNs are
    dropped), "refuse" (bound, not listening: a SYN gets a RST). Another port is tried when
    one of the hosts has it taken already (tests run in parallel).
    """
    for _ in range(50):
        with ExitStack() as stack:
            port = 0
            servers: dict[str, socket.socket] = {}
            try:
                for _role, host in roles:
                    servers[host] = stack.enter_context(_bound(host, port))
                    port = servers[host].getsockname()[1]
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            for role, host in roles:
                if role == "listen":
                    servers[host].listen(16)
                elif role == "blackhole":
                    servers[host].listen(0)
                    stack.enter_context(_full(servers[host]))
                else:
                    assert role == "refuse", role
            yield port, servers
            return
    pytest.fail("no port was free on every host")


@contextmanager
def _refusing(*hosts: str) -> Iterator[int]:
    """A port where every host answers a SYN with a RST (bound, not listening)."""
    with _one_port(*(("refuse", host) for host in hosts)) as (port, _):
        yield port


@contextmanager
def _listener(host: str, backlog: int = 16) -> Iterator[socket.socket]:
    with _bound(host, 0) as server:
        server.listen(backlog)
        yield server


def _hosts(files: ResolverFiles, name: str, *addresses: str) -> None:
    files.write(hosts="".join(f"{address} {name}\n" for address in addresses))


def _accepts(server: socket.socket) -> bool:
    readable, _, _ = select.select([server], [], [], 10)
    if not readable:
        return False
    server.accept()[0].close()
    return True


# --- the race on loopback


def test_connects_to_the_best_address_and_hands_a_blocking_cloexec_stream(resolver_files: ResolverFiles) -> None:
    # The hosts file lists 127.0.0.1 first; RFC 6724 puts ::1 (precedence 50) before it (35).
    _hosts(resolver_files, "both.test", "127.0.0.1", "::1")
    with _one_port(("listen", "127.0.0.1"), ("listen", "::1")) as (port, servers):
        v6 = servers["::1"]
        before = _fd_count()
        with jn.connect_host("both.test", port) as stream:
            assert str(stream.address) == f"[::1]:{port}"
            assert not nonblocking(stream.fileno())
            assert os.get_inheritable(stream.fileno()) is False
            assert _fd_count() == before + 1  # the stream, nothing else
            assert _accepts(v6)
        assert _fd_count() == before


def test_an_ip_literal_needs_no_name(resolver_files: ResolverFiles) -> None:
    with _listener("127.0.0.1") as v4, jn.connect_host("127.0.0.1", v4.getsockname()[1]) as stream:
        assert stream.address == jn.Ip4Address("127.0.0.1", v4.getsockname()[1])


def test_a_blackholed_first_address_loses_to_the_second_after_the_attempt_delay(resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "bh.test", "::1", "127.0.0.1")
    with _one_port(("listen", "127.0.0.1"), ("blackhole", "::1")) as (port, _):
        before = _fd_count()
        started = time.monotonic()
        with jn.connect_host("bh.test", port, attempt_delay=0.3) as stream:
            took = time.monotonic() - started
            assert str(stream.address) == f"127.0.0.1:{port}"
            assert _fd_count() == before + 1  # the losing ::1 attempt is closed already
        assert 0.3 <= took < 5, took  # the second attempt waited for the delay, and no more than that


def test_a_refused_first_address_starts_the_next_attempt_at_once(resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "rst.test", "::1", "127.0.0.1")
    with _one_port(("listen", "127.0.0.1"), ("refuse", "::1")) as (port, _):
        started = time.monotonic()
        with jn.connect_host("rst.test", port, attempt_delay=30) as stream:
            took = time.monotonic() - started
            assert str(stream.address) == f"127.0.0.1:{port}"
        assert took < 15, took  # with 30 s between attempts, only a failure can start the second this soon


def test_every_attempt_failing_raises_the_first_addresss_error_with_all_of_them(resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "none.test", "127.0.0.1", "127.0.0.2", "::1")
    before = _fd_count()
    with _refusing("127.0.0.1", "127.0.0.2", "::1") as port, pytest.raises(jn.SocketError.ConnectionRefused) as info:
        jn.connect_host("none.test", port, attempt_delay=30)
    assert _fd_count() == before
    errors = info.value.exceptions  # type: ignore[attr-defined]
    assert errors[0] is info.value
    assert [e.address for e in errors] == [f"[::1]:{port}", f"127.0.0.1:{port}", f"127.0.0.2:{port}"]
    assert all(isinstance(e, jn.SocketError.ConnectionRefused) for e in errors)


def test_fifty_refusing_addresses_each_fail_once_and_leave_nothing(resolver_files: ResolverFiles) -> None:
    hosts = [f"127.0.0.{i}" for i in range(1, 51)]
    _hosts(resolver_files, "many.test", *hosts)
    before = _fd_count()
    with _refusing(*hosts) as port, pytest.raises(jn.SocketError.ConnectionRefused) as info:
        jn.connect_host("many.test", port, attempt_delay=30)
    assert _fd_count() == before
    assert [e.address for e in info.value.exceptions] == [f"{h}:{port}" for h in hosts]  # type: ignore[attr-defined]


def test_a_link_local_address_without_a_zone_is_tried_last_and_fails_without_a_packet(
    resolver_files: ResolverFiles,
) -> None:
    # fe80::1 with no interface: no source (RFC 6724 rule 1 puts it last) and refused before any
    # syscall as jn.connect refuses it -- one attempt's error among the others, never a packet.
    _hosts(resolver_files, "ll.test", "fe80::1", "127.0.0.1")
    with _refusing("127.0.0.1") as port, pytest.raises(jn.SocketError.ConnectionRefused) as info:
        jn.connect_host("ll.test", port, attempt_delay=30)
    errors = info.value.exceptions  # type: ignore[attr-defined]
    assert [type(e) for e in errors] == [jn.SocketError.ConnectionRefused, jn.SocketError.AddressUnavailable]
    assert errors[1].address == f"[fe80::1]:{port}"
    with _listener("127.0.0.1") as v4, jn.connect_host("ll.test", v4.getsockname()[1]) as stream:
        assert str(stream.address) == f"127.0.0.1:{v4.getsockname()[1]}"


def test_families_interleave_and_the_audit_event_names_each_attempt(resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "mix.test", "127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")
    seen: list[tuple[str, object]] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in ("janus_net.connect", "janus_net.resolve"):
            seen.append((event, args[0]))

    sys.addaudithook(hook)  # stays for the process: it only records these two events
    addresses = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")
    with _refusing(*addresses) as port, pytest.raises(jn.SocketError.ConnectionRefused):
        jn.connect_host("mix.test", port)
    mine = seen[[i for i, (e, a) in enumerate(seen) if e == "janus_net.resolve" and a == "mix.test"][-1] :]
    assert mine[0] == ("janus_net.resolve", "mix.test")
    attempts = [a for e, a in mine[1:] if e == "janus_net.connect"]
    assert attempts == [f"[::1]:{port}", f"127.0.0.1:{port}", f"127.0.0.2:{port}", f"127.0.0.3:{port}"]


_INTERLEAVE_IN_A_NAMESPACE = r"""
import os, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for i in (1, 2, 3):
    subprocess.run(["ip", "addr", "add", f"2001:db8::{i}/128", "dev", "lo", "nodad"], check=True)
hosts, resolv = sys.argv[1], sys.argv[2]
with open(hosts, "w") as f:
    f.write("".join(f"127.0.0.{i} il.test\n" for i in (1, 2, 3)))
    f.write("".join(f"2001:db8::{i} il.test\n" for i in (1, 2, 3)))
with open(resolv, "w") as f:
    f.write("nameserver 127.0.0.1\n")
os.environ["JANUS_NET_HOSTS"], os.environ["JANUS_NET_RESOLV_CONF"] = hosts, resolv
import janus_net as jn
import janus_net._profiles.connect_host  # the interrupt test names its file
seen = []
sys.addaudithook(lambda event, args: seen.append(args[0]) if event == "janus_net.connect" else None)
try:
    jn.connect_host("il.test", 9, attempt_delay=30)
except jn.SocketError.ConnectionRefused as exc:
    assert [e.address for e in exc.exceptions] == seen, (exc.exceptions, seen)
print(" ".join(seen))
"""


def test_families_interleave_in_rfc_6724_order_in_a_namespace(tmp_path: Path) -> None:
    # v6 global (precedence 40) sorts before v4 (35) whatever the hosts file's order; then v6, v4, v6...
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _INTERLEAVE_IN_A_NAMESPACE, f"{tmp_path}/h", f"{tmp_path}/r"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=_REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "[2001:db8::1]:9",
        "127.0.0.1:9",
        "[2001:db8::2]:9",
        "127.0.0.2:9",
        "[2001:db8::3]:9",
        "127.0.0.3:9",
    ]


def test_family_limits_the_race_to_one_family(resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "fam.test", "::1", "127.0.0.1")
    with _one_port(("listen", "127.0.0.1"), ("listen", "::1")) as (port, _):
        with jn.connect_host("fam.test", port, family=socket.AF_INET) as stream:
            assert str(stream.address) == f"127.0.0.1:{port}"
        with jn.connect_host("fam.test", port, family=socket.AF_INET6) as stream:
            assert str(stream.address) == f"[::1]:{port}"


@pytest.mark.parametrize("bad", [0.009, 0.0, -1.0, math.nan, -math.inf])
def test_attempt_delay_below_10_ms_or_nan_is_refused_before_any_io(bad: float, resolver_files: ResolverFiles) -> None:
    seen: list[str] = []
    sys.addaudithook(lambda event, args: seen.append(event) if event.startswith("janus_net.") else None)
    with pytest.raises(ValueError, match="attempt_delay"):
        jn.connect_host("127.0.0.1", 80, attempt_delay=bad)
    assert "janus_net.resolve" not in seen and "janus_net.connect" not in seen


@pytest.mark.parametrize("bad", [True, "0.25", None, [0.25]])
def test_attempt_delay_of_another_type_is_a_type_error(bad: object, resolver_files: ResolverFiles) -> None:
    with pytest.raises(TypeError, match="attempt_delay"):
        jn.connect_host("127.0.0.1", 80, attempt_delay=bad)  # type: ignore[arg-type]


def test_an_infinite_attempt_delay_moves_on_only_when_an_attempt_fails(resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "inf.test", "::1", "127.0.0.1")
    with _refusing("::1", "127.0.0.1") as port, pytest.raises(jn.SocketError.ConnectionRefused) as info:
        jn.connect_host("inf.test", port, attempt_delay=math.inf)
    assert len(info.value.exceptions) == 2  # type: ignore[attr-defined]


# --- cancel and deadline in the middle of the race: Timeout, nothing left


def test_a_deadline_mid_race_raises_timeout_and_leaves_no_fd_and_no_thread(resolver_files: ResolverFiles) -> None:
    with _one_port(("blackhole", "127.0.0.1"), ("blackhole", "::1")) as (port, _):
        _hosts(resolver_files, "dead.test", "::1", "127.0.0.1")
        ctx = jn.Context.with_timeout(0.4)
        ctx._wake_fd()  # made before the count
        threads, before = threading.active_count(), _fd_count()
        started = time.monotonic()
        with pytest.raises(jn.SocketError.Timeout) as info:
            jn.connect_host("dead.test", port, attempt_delay=0.05, ctx=ctx)
        assert info.value.reason == "deadline"  # type: ignore[attr-defined]
        assert time.monotonic() - started < 5
        assert _fd_count() == before
        assert threading.active_count() == threads


def test_a_cancel_from_another_thread_mid_race_raises_timeout_at_once(resolver_files: ResolverFiles) -> None:
    with _one_port(("blackhole", "127.0.0.1"), ("blackhole", "::1")) as (port, _):
        _hosts(resolver_files, "cancel.test", "::1", "127.0.0.1")
        ctx = jn.Context()
        ctx._wake_fd()  # made before the count
        before = _fd_count()
        timer = when_blocked(ctx.cancel)
        with pytest.raises(jn.SocketError.Timeout) as info:
            jn.connect_host("cancel.test", port, attempt_delay=0.05, ctx=ctx)
        timer.join()
        assert info.value.reason == "cancelled"  # type: ignore[attr-defined]
        assert _fd_count() == before


def test_a_context_already_cancelled_makes_no_socket(resolver_files: ResolverFiles) -> None:
    ctx = jn.Context()
    ctx.cancel()
    before = _fd_count()
    with pytest.raises(jn.SocketError.Timeout):
        jn.connect_host("127.0.0.1", 80, ctx=ctx)
    assert _fd_count() <= before + 1  # at most the context's own wake fd


# --- every losing attempt closed exactly once, as strace sees it

_EXACTLY_ONCE = r"""
import os, select, socket, sys, time
hosts, resolv = "{tmp}/hosts", "{tmp}/resolv.conf"
os.environ["JANUS_NET_HOSTS"], os.environ["JANUS_NET_RESOLV_CONF"] = hosts, resolv
import janus_net as jn
v4 = socket.socket(); v4.bind(("127.0.0.1", 0)); v4.listen(16); port = v4.getsockname()[1]
bh = []
for host in ("::1", "127.0.0.2"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if ":" in host:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port)); s.listen(0); bh.append(s)
    for _ in range(16):
        f = socket.socket(s.family); f.setblocking(False); f.connect_ex((host, port)); bh.append(f)
        if not select.select([], [f], [], 0.5)[1]:
            break
with open(hosts, "w") as f:
    f.write(f"127.0.0.2 once.test\n::1 once.test\n127.0.0.1 once.test\n")
with open(resolv, "w") as f:
    f.write("nameserver 127.0.0.1\n")
config = jn.ResolverConfig.load()
jn.connect_host("127.0.0.1", port).close()   # warm up: imports, the wakeup pipe
os.write(1, b"JANUS-MARK\n")
stream = jn.connect_host("once.test", port, config=config, attempt_delay=0.05)
print("winner", stream.address, stream.fileno(), flush=True)
stream.close()
os.write(1, b"JANUS-END\n")
"""


def test_every_losing_attempt_is_closed_exactly_once_under_strace(tmp_path: Path) -> None:
    lines, out = syscalls_after_mark(
        _EXACTLY_ONCE.replace("{tmp}", str(tmp_path)),
        tmp_path,
        trace="write,socket,close,openat,pipe2,eventfd2,dup,dup2,dup3,accept4",
    )
    end = next(i for i, line in enumerate(lines) if "JANUS-END" in line)
    lines = lines[:end]
    assert "winner 127.0.0.1:" in out
    made_by = ("socket", "openat", "pipe2", "eventfd2", "dup", "dup2", "dup3", "accept4")
    live: dict[int, dict[str, object]] = {}  # fd -> the socket made there, while it is open
    sockets_made: list[dict[str, object]] = []
    winner_at = None
    for index, line in enumerate(lines):
        call = line.split(" ", 1)[-1].strip()
        if call.startswith('write(1, "winner'):
            winner_at = index
        if "= -1" in call or "<unfinished" in call or call.startswith("<..."):
            continue  # one thread here: nothing is split, and a failed call makes or closes nothing
        name = call.split("(", 1)[0]
        if name in made_by:
            fd = int(call.rsplit("= ", 1)[1].split()[0])
            assert fd not in live, f"fd {fd} made again while open: {call}"
            entry: dict[str, object] = {"call": call, "made": index, "closes": []}
            live[fd] = entry
            if name == "socket":
                sockets_made.append(entry)
        elif name == "close":
            fd = int(call.split("(", 1)[1].split(")", 1)[0])
            entry = live.pop(fd, {"closes": []})
            entry["closes"].append(index)  # type: ignore[attr-defined]
    streams = [e for e in sockets_made if "SOCK_STREAM" in str(e["call"])]
    probes = [e for e in sockets_made if "SOCK_DGRAM" in str(e["call"])]
    # ::1 and 127.0.0.2 blackholed, then 127.0.0.1 wins; one source probe per address before them.
    assert [str(e["call"]).split("(")[1].split(",")[0] for e in streams] == ["AF_INET6", "AF_INET", "AF_INET"]
    assert len(probes) == 3
    assert winner_at is not None
    for entry in [*probes, *streams]:
        assert len(entry["closes"]) == 1, f"closed {len(entry['closes'])} times: {entry['call']}"  # type: ignore[arg-type]
    for loser in [*probes, *streams[:2]]:
        assert loser["closes"][0] < winner_at  # type: ignore[index]  # closed before connect_host returned
    assert streams[2]["closes"][0] > winner_at  # type: ignore[index]  # the winner: by stream.close()


# --- DNS: the timing of the A and AAAA answers


def test_a_slow_aaaa_answer_does_not_delay_the_ipv4_attempt_beyond_the_resolution_delay(dns_server, resolver_files):  # type: ignore[no-untyped-def]
    with _listener("127.0.0.1") as v4:
        port = v4.getsockname()[1]
        dns_server.add("slow6.test", a=["127.0.0.1"], aaaa=["::1"])
        dns_server.on("slow6.test", "AAAA", delay=10.0)
        started = time.monotonic()
        with jn.connect_host("slow6.test", port, config=config_for(dns_server, timeout=30)) as stream:
            took = time.monotonic() - started
            assert str(stream.address) == f"127.0.0.1:{port}"
        assert took < 5, took  # the AAAA answer (10 s late) was not waited for...
        assert took >= 0.05, took  # ...but for the resolution delay (50 ms after the A answer)
        queries = [(q.qtype, q.time) for q in dns_server.log if q.name == "slow6.test"]
        kinds = sorted(qtype for qtype, _ in queries)
        assert kinds == ["A", "AAAA"]  # asked together: both sent before the first attempt
        assert abs(queries[0][1] - queries[1][1]) < 1.0


def test_a_slow_a_answer_does_not_delay_the_ipv6_attempt(dns_server, resolver_files):  # type: ignore[no-untyped-def]
    with _listener("::1") as v6:
        port = v6.getsockname()[1]
        dns_server.add("slow4.test", a=["127.0.0.1"], aaaa=["::1"])
        dns_server.on("slow4.test", "A", delay=10.0)
        started = time.monotonic()
        with jn.connect_host("slow4.test", port, config=config_for(dns_server, timeout=30)) as stream:
            took = time.monotonic() - started
            assert str(stream.address) == f"[::1]:{port}"
        assert took < 5, took  # the A answer (10 s late) was not waited for


def test_an_aaaa_answer_after_the_race_began_joins_it(dns_server, resolver_files):  # type: ignore[no-untyped-def]
    # A at once -> 127.0.0.1 (blackholed) is tried after 50 ms; AAAA comes 0.3 s later -> ::1 joins and wins.
    with _one_port(("listen", "::1"), ("blackhole", "127.0.0.1")) as (port, _):
        dns_server.add("late6.test", a=["127.0.0.1"], aaaa=["::1"])
        dns_server.on("late6.test", "AAAA", delay=0.3)
        before = _fd_count()
        with jn.connect_host("late6.test", port, attempt_delay=0.5, config=config_for(dns_server)) as stream:
            assert str(stream.address) == f"[::1]:{port}"
            assert _fd_count() == before + 1


def test_the_lookup_errors_come_through(dns_server, resolver_files):  # type: ignore[no-untyped-def]
    dns_server.on("gone.test", rcode="NXDOMAIN")
    before = _fd_count()
    with pytest.raises(jn.SocketError.UnknownHostName):
        jn.connect_host("gone.test", 80, config=config_for(dns_server))
    with pytest.raises(jn.SocketError.InvalidHostName):
        jn.connect_host("bad..name", 80, config=config_for(dns_server))
    assert _fd_count() == before


def test_a_deadline_during_the_lookup_closes_its_sockets(dns_server, resolver_files):  # type: ignore[no-untyped-def]
    dns_server.on("hole.test", blackhole=True)
    before, threads = _fd_count(), threading.active_count()
    with pytest.raises(jn.SocketError.Timeout):
        jn.connect_host("hole.test", 80, config=config_for(dns_server, timeout=10), ctx=jn.Context.with_timeout(0.2))
    assert _fd_count() == before
    assert threading.active_count() == threads


# --- netns=


def test_netns_connects_inside_the_namespace_and_joins_its_helper(
    namespace: str, resolver_files: ResolverFiles
) -> None:
    path = f"/run/netns/{namespace}"
    mine = os.readlink("/proc/thread-self/ns/net")
    _hosts(resolver_files, "inside.test", "::1", "127.0.0.1")
    with jn.listen("127.0.0.1:0", netns=path) as server:
        port = server.address.port
        threads = threading.active_count()
        with jn.connect_host("inside.test", port, netns=path, ctx=jn.Context.with_timeout(30)) as client:
            # ::1 is refused inside the namespace (nothing there), 127.0.0.1 is the server's.
            assert str(client.address) == f"127.0.0.1:{port}"
            with server.accept() as conn:
                client.write_all(b"hi")
                assert conn.read(2) == b"hi"
        assert threading.active_count() == threads  # the helper is joined
        assert os.readlink("/proc/thread-self/ns/net") == mine


def test_netns_sources_are_learned_inside_the_namespace(namespace: str, resolver_files: ResolverFiles) -> None:
    # Inside the namespace only lo exists: 2001:db8::1 has no route there, so RFC 6724 rule 1
    # puts it after 127.0.0.1 (which it would otherwise precede, 40 > 35), and it is never tried.
    path = f"/run/netns/{namespace}"
    _hosts(resolver_files, "where.test", "2001:db8::1", "127.0.0.1")
    seen: list[object] = []
    sys.addaudithook(lambda event, args: seen.append(args[0]) if event == "janus_net.connect" else None)
    with jn.listen("127.0.0.1:0", netns=path) as server:
        port = server.address.port
        with jn.connect_host("where.test", port, netns=path, ctx=jn.Context.with_timeout(30)) as client:
            assert str(client.address) == f"127.0.0.1:{port}"
            server.accept().close()
    assert seen[-1:] == [f"127.0.0.1:{port}"]


def test_keyboard_interrupt_at_every_line_of_a_netns_connect_host_closes_everything(
    namespace: str, resolver_files: ResolverFiles
) -> None:
    path = f"/run/netns/{namespace}"
    files = {
        str(sys.modules[name].__file__)
        for name in (
            "janus_net._profiles.connect_host",
            "janus_net._profiles.source_address",
            "janus_net._policy.netns",
        )
    }
    _hosts(resolver_files, "nskbd.test", "::1", "127.0.0.1")
    config = jn.ResolverConfig.load()
    with jn.listen("127.0.0.1:0", netns=path, backlog=4096) as server:
        port = server.address.port
        threads = threading.active_count()
        ctx = jn.Context.with_timeout(120)
        ctx._wake_fd()
        runs = _interrupted_at_every_line(
            lambda: jn.connect_host("nskbd.test", port, config=config, ctx=ctx, netns=path), files
        )
        assert runs > 30
        # A helper whose Maker was dropped without a close (an interrupt inside close) ends
        # on its own within a second or so; every other one was joined.
        deadline = time.monotonic() + 30
        while threading.active_count() != threads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == threads


def test_netns_errors_are_typed(tmp_path: Path, resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "x.test", "127.0.0.1")
    threads = threading.active_count()
    with pytest.raises(jn.SocketError.FileNotFound):
        jn.connect_host("x.test", 9, netns=tmp_path / "missing")
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.connect_host("x.test", 9, netns="/proc/self/ns/uts")
    with pytest.raises(ValueError):
        jn.connect_host("x.test", 9, netns="")
    assert threading.active_count() == threads


# --- interrupts


def _described(fds: set[int]) -> dict[int, str]:
    described = {}
    for fd in fds:
        try:
            described[fd] = os.readlink(f"/proc/self/fd/{fd}")
            with socket.socket(fileno=os.dup(fd)) as sock:
                described[fd] += f" {sock.type!r} {sock.getsockname()}"
        except OSError:
            described[fd] = described.get(fd, "closed")
    return described


def _interrupted_at_every_line(call: Callable[[], jn.Stream], files: set[str]) -> int:
    n = 0
    while True:
        n += 1
        before = live_fds()
        sys.settrace(interrupt_at(n, files))
        try:
            client = call()
        except KeyboardInterrupt:
            sys.settrace(None)
            after = live_fds()
            assert after == before, f"leak after an interrupt at line event {n}: {_described(after ^ before)}"
            continue
        finally:
            sys.settrace(None)
        client.close()
        return n


def test_keyboard_interrupt_at_every_line_closes_every_attempt(resolver_files: ResolverFiles) -> None:
    files = {
        str(sys.modules[name].__file__)
        for name in (
            "janus_net._profiles.connect_host",
            "janus_net._profiles.connect",
            "janus_net._profiles.source_address",
        )
    }
    _hosts(resolver_files, "kbd.test", "127.0.0.2", "::1", "127.0.0.1")
    config = jn.ResolverConfig.load()
    # A backlog for every run's connection (none is accepted): a full queue would blackhole the winner.
    with _listener("127.0.0.1", backlog=4096) as v4:
        port = v4.getsockname()[1]
        ctx = jn.Context.with_timeout(120)
        ctx._wake_fd()
        # ::1 and 127.0.0.2 refused, 127.0.0.1 wins: every path of the race runs.
        runs = _interrupted_at_every_line(lambda: jn.connect_host("kbd.test", port, config=config, ctx=ctx), files)
        assert runs > 30


@pytest.mark.parametrize("step", ["socket", "connect", "getsockopt", "fcntl"])
def test_interrupt_at_each_syscall_closes_every_attempt(step: str, resolver_files: ResolverFiles) -> None:
    _hosts(resolver_files, "step.test", "::1", "127.0.0.1")
    with _listener("127.0.0.1") as v4:
        port = v4.getsockname()[1]
        before = _fd_count()
        with fail(step, KeyboardInterrupt) as injection, pytest.raises(KeyboardInterrupt):
            jn.connect_host("step.test", port, ctx=jn.Context.with_timeout(30))
        assert injection.failed == 1
        assert _fd_count() <= before + 1  # the context's wake fd at most
