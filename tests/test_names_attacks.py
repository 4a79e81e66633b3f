"""The names code attacked where the other name tests do not look: each test here once failed.

Real kernel, real files, real sockets; descriptors counted from /proc/self/fd around each call.
"""

from __future__ import annotations

import errno
import gc
import math
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from dns_server import DnsServer

import janus_net as jn


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- connect_host: the error raised when every attempt fails ------------------------------------------


@contextmanager
def _blackholed_and_refusing(blackholed: str, refusing: str) -> Iterator[tuple[int, socket.socket]]:
    """One port: a listener on ``blackholed`` whose accept queue is full (the kernel drops new SYNs), and a
    socket bound on ``refusing`` without listening (a SYN gets a RST). The port and the listener."""
    for _ in range(50):
        with ExitStack() as stack:
            listener = stack.enter_context(socket.socket())
            listener.bind((blackholed, 0))
            port = listener.getsockname()[1]
            refuser = stack.enter_context(socket.socket())
            try:
                refuser.bind((refusing, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue  # another test holds that port on the second host
            listener.listen(0)
            for _ in range(16):
                filler = stack.enter_context(socket.socket())
                filler.setblocking(False)
                filler.connect_ex((blackholed, port))
                if not select.select([], [filler], [], 0.5)[1]:
                    break  # this SYN was dropped: the queue is full
            else:
                pytest.fail("the accept queue never filled")
            yield port, listener
            return
    pytest.fail("no port was free on both hosts")


def test_all_attempts_failing_out_of_order_raise_the_first_attempts_error_first(tmp_path: Path) -> None:
    # The first address is blackholed: its attempt is still in SYN_SENT when the second
    # address refuses at once. The blackhole then closes, so the first attempt's SYN
    # retransmit (about 1 s later) is refused too: the errors come in the reverse order of
    # the attempts, and the first attempt's error must still be the one raised, first.
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.2 order.test\n127.0.0.3 order.test\n")
    config = jn.ResolverConfig(nameservers=("127.0.0.1:9",), hosts=str(hosts))
    audited: list[str] = []
    with _blackholed_and_refusing("127.0.0.2", "127.0.0.3") as (port, listener):

        def hook(event: str, args: tuple[object, ...]) -> None:
            if event == "janus_net.connect" and listener.fileno() >= 0:
                audited.append(str(args[0]))
                if len(audited) == 2:
                    listener.close()  # the first attempt's next SYN meets no listener: refused

        sys.addaudithook(hook)
        before = _fd_count() - 1  # the listener, closed by the hook during the call
        with pytest.raises(jn.SocketError.ConnectionRefused) as info:
            jn.connect_host("order.test", port, config=config, attempt_delay=0.05)
        assert _fd_count() == before
    assert audited == [f"127.0.0.2:{port}", f"127.0.0.3:{port}"]  # the order the attempts were made
    errors = info.value.exceptions  # type: ignore[attr-defined]
    assert errors[0] is info.value
    assert [e.address for e in errors] == audited


# --- ResolverConfig: extreme values --------------------------------------------------------------------


def test_a_timeout_beyond_the_float_range_is_never_and_its_negative_a_value_error() -> None:
    # DESIGN §3: a timeout beyond the float range means never; it is no OverflowError.
    config = jn.ResolverConfig()
    assert config.replace(timeout=10**400).timeout == math.inf
    with pytest.raises(ValueError):
        config.replace(timeout=-(10**400))


# --- the hosts file: a cancel is honoured while a large one is scanned -------------------------------


def test_a_cancel_during_the_scan_of_a_large_hosts_file_is_a_timeout(tmp_path: Path) -> None:
    # An ad-blocking hosts file of some 10 MB, every line holding the name asked as a part of a
    # longer one (each line must be read), the name itself on the last line. The scan takes
    # tens of milliseconds: a cancel 20 ms in must end it with Timeout, not with the answer.
    hosts = tmp_path / "hosts"
    with open(hosts, "w") as f:
        f.writelines(f"0.0.0.0 ads{i}.wanted.example\n" for i in range(400_000))
        f.write("192.0.2.7 wanted.example\n")
    config = jn.ResolverConfig(nameservers=("127.0.0.1:9",), hosts=str(hosts))
    ctx = jn.Context()
    timer = threading.Timer(0.02, ctx.cancel)
    before = _fd_count()
    timer.start()
    try:
        with pytest.raises(jn.SocketError.Timeout):
            jn.resolve("wanted.example", config=config, ctx=ctx)
    finally:
        timer.join()
    assert _fd_count() == before
    assert jn.resolve("wanted.example", config=config).addresses == (jn.Ip4Address("192.0.2.7"),)


# --- the hosts file: a path that names nothing readable has no names (glibc goes on to DNS) ------------


@pytest.mark.parametrize("kind", ["symlink loop", "directory", "fifo", "device"])
def test_a_hosts_path_that_is_no_readable_file_falls_through_to_dns(tmp_path: Path, kind: str) -> None:
    hosts = tmp_path / "hosts"
    if kind == "symlink loop":
        hosts.symlink_to(tmp_path / "other")
        (tmp_path / "other").symlink_to(hosts)
    elif kind == "directory":
        hosts.mkdir()
    elif kind == "fifo":
        os.mkfifo(hosts)
    else:
        hosts.symlink_to("/dev/zero")
    with DnsServer() as server:
        server.add("name.example", a=["192.0.2.5"])
        config = jn.ResolverConfig(nameservers=(server.nameserver,), hosts=str(hosts), timeout=1, attempts=1)
        before = _fd_count()
        resolution = jn.resolve("name.example", family=socket.AF_INET, config=config)
        assert _fd_count() == before
    assert resolution.source == "dns"
    assert resolution.addresses == (jn.Ip4Address("192.0.2.5"),)


# --- DNS: a name server written as an IPv4-mapped address is asked from an IPv4 socket ----------------

_MAPPED_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from dns_server import DnsServer
import janus_net as jn
with DnsServer() as server:
    server.add("m.example", a=["192.0.2.1"])
    config = jn.ResolverConfig(
        nameservers=(f"[::ffff:127.0.0.1]:{server.port}",), hosts="/nonexistent", timeout=1, attempts=1
    )
    resolution = jn.resolve("m.example", config=config)
    print(resolution.addresses[0], server.queries()[0].source[0])
"""


def test_an_ipv4_mapped_name_server_is_asked_from_an_ipv4_socket() -> None:
    # DESIGN §17: never an IPv6 socket sending to IPv4-mapped addresses. Where IPv6 sockets are
    # IPv6-only (net.ipv6.bindv6only=1, here in a namespace of the test's own) such a socket
    # cannot reach ::ffff:127.0.0.1 at all: the server would be unreachable.
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    script = 'ip link set lo up && sysctl -qw net.ipv6.bindv6only=1 && exec "$1" -c "$2" "$3"'
    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", sys.executable, _MAPPED_CHILD, tests],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["192.0.2.1:0", "127.0.0.1"]


# --- thousands of addresses: their ordering is cancellable too ----------------------------------------


class _CancelAfter(jn.Context):
    """A context cancelled at its ``calls``-th checkpoint: a cancel landing at a chosen point of the work."""

    __slots__ = ("calls", "left")

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.left = calls
        self.calls = 0

    def check(self) -> None:
        self.calls += 1
        self.left -= 1
        if self.left == 0:
            self.cancel()
        super().check()


def test_a_cancel_while_thousands_of_addresses_are_ordered_is_a_timeout(tmp_path: Path) -> None:
    # A hosts file (or a hostile DNS answer) with 4000 addresses: their sources are learned
    # with a checkpoint per destination, then RFC 6724 sorts them (tens of milliseconds of
    # Python). The cancel lands at the first checkpoint after the last source is learned:
    # the sort must see it, not return the answer it was told to give up.
    count = 4000
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"10.{i // 250}.{i % 250}.1 many.test\n" for i in range(count // 2)))
    with open(hosts, "a") as f:
        f.writelines(f"2001:db8::{i:x} many.test\n" for i in range(count // 2))
    config = jn.ResolverConfig(nameservers=("127.0.0.1:9",), hosts=str(hosts))
    assert len(jn.resolve("many.test", config=config).addresses) == count
    # 1: the lookup's own check before any I/O; then one per destination learned.
    ctx = _CancelAfter(1 + count + 1)
    before = _fd_count()
    with pytest.raises(jn.SocketError.Timeout):
        jn.resolve("many.test", config=config, ctx=ctx)
    assert _fd_count() == before
    assert ctx.calls == 1 + count + 1  # raised at that very checkpoint, in the sort


# --- DNS: a 64 KiB answer of thousands of addresses is cancellable while it is read -----------------


class _CancelIn(jn.Context):
    """A context cancelled at its first checkpoint called from ``function``: a cancel landing inside it."""

    __slots__ = ("code", "landed")

    def __init__(self, function: object) -> None:
        super().__init__()
        self.code = function.__code__  # type: ignore[attr-defined]
        self.landed = False

    def check(self) -> None:
        if not self.landed and sys._getframe(1).f_code is self.code:
            self.landed = True
            self.cancel()
        super().check()


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(("janus_net._values.dns_message", "_parse"), id="parse"),
        pytest.param(("janus_net._profiles.name_lookup", "NameLookup._addresses"), id="address-values"),
    ],
)
def test_a_cancel_while_a_huge_answer_is_read_is_a_timeout(where: tuple[str, str]) -> None:
    # 4000 A records fill a TCP answer (the UDP one says TC): reading them and making their
    # values is tens of milliseconds of Python, which a cancel must not wait for (DESIGN §17:
    # within 5 ms). The cancel lands at a checkpoint inside that very work.
    import importlib

    module, qualified = where
    function: object = importlib.import_module(module)
    for part in qualified.split("."):
        function = getattr(function, part)
    many = [f"10.{i // 250}.{i % 250}.7" for i in range(4000)]
    with DnsServer() as server:
        server.add("huge.example", a=many)
        server.on("huge.example", "A", truncate=True)
        config = jn.ResolverConfig(nameservers=(server.nameserver,), hosts="/nonexistent")
        found = jn.resolve("huge.example", family=socket.AF_INET, config=config)
        assert sorted(str(a.host) for a in found.addresses) == sorted(many)
        ctx = _CancelIn(function)
        before = _fd_count()
        with pytest.raises(jn.SocketError.Timeout):
            jn.resolve("huge.example", family=socket.AF_INET, config=config, ctx=ctx)
        assert ctx.landed
        # The test's own context holds a wake fd (made for the lookup's wait) until it is
        # collected; the traceback the Timeout carried is a cycle through its frames.
        del ctx
        gc.collect()
        assert _fd_count() == before


# --- DNS: a CNAME loop is a prompt answer without an address -----------------------------------------


def test_a_cname_loop_is_unknown_host_name_at_once_not_a_wait_for_every_timeout() -> None:
    # glibc answers EAI_NODATA after the one query; a reply taken for malformed would be waited
    # out (timeout x attempts) and end as a permanent NameServerFailure.
    with DnsServer() as server:
        server.add_cname("loop-a.example", "loop-b.example")
        server.add_cname("loop-b.example", "loop-a.example")
        config = jn.ResolverConfig(nameservers=(server.nameserver,), hosts="/nonexistent", timeout=2, attempts=2)
        # Waited out, the tries would end as NameServerFailure: the type shows it was answered.
        with pytest.raises(jn.SocketError.UnknownHostName):
            jn.resolve("loop-a.example", family=socket.AF_INET, config=config)
        assert len(server.queries()) == 1


# --- DNS over TCP: an empty message is malformed, not a lost server ----------------------------------


def test_a_tcp_reply_of_length_0_is_malformed_not_a_server_lost() -> None:
    # Malformed replies say "asking again will not help" (.temporary False); a connection lost
    # mid-reply says it may (True). A length prefix of 0 is a message, an empty one.
    with DnsServer() as server:
        server.on("empty.example", truncate=True, tcp_raw=lambda query: b"\x00\x00")
        config = jn.ResolverConfig(nameservers=(server.nameserver,), hosts="/nonexistent", attempts=1)
        with pytest.raises(jn.SocketError.NameServerFailure) as failed:
            jn.resolve("empty.example", family=socket.AF_INET, config=config)
        assert failed.value.temporary is False
        assert [q.transport for q in server.queries()] == ["udp", "tcp"]
