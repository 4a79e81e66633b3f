"""jn.connect: TCP (v4, v6) and unix (path, abstract) client streams, typed errors, cancellation, no leaks."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from interrupts import interrupt_at, live_fds
from peers import when_blocked

import janus_net as jn
from janus_net.testing import fail


def _round_trip(server: jn.Server, client: jn.Stream) -> None:
    with server.accept() as conn:
        client.write_all(b"hello")
        assert conn.read(5) == b"hello"
        conn.write_all(b"back")
        assert client.read(4) == b"back"


def _blocking_and_cloexec(fd: int) -> None:
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK


@pytest.mark.parametrize("where", ["127.0.0.1:0", "[::1]:0", "unix-path", "unix:@jn-connect-test"])
@pytest.mark.parametrize("with_context", [False, True])
def test_connects_and_talks(where: str, with_context: bool, tmp_path: Path) -> None:
    address = f"unix:{tmp_path}/s.sock" if where == "unix-path" else where
    with jn.listen(address) as server:
        ctx = jn.Context.with_timeout(30) if with_context else None
        with jn.connect(str(server.address), ctx=ctx) as client:
            assert client.address == server.address
            _blocking_and_cloexec(client.fileno())
            _round_trip(server, client)
        with jn.connect(server.address) as client:  # an address value works too
            _round_trip(server, client)


def test_refused_and_missing_are_typed(tmp_path: Path) -> None:
    with socket.socket() as reserved:  # bound, not listening: connects to it are refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        with pytest.raises(jn.SocketError.ConnectionRefused) as info:
            jn.connect(f"127.0.0.1:{port}")
        assert info.value.syscall == "connect" and info.value.address == f"127.0.0.1:{port}"
    with pytest.raises(jn.SocketError.FileNotFound):
        jn.connect(f"unix:{tmp_path}/nothing.sock")
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(str(stale))
    with pytest.raises(jn.SocketError.ConnectionRefused):
        jn.connect(f"unix:{stale}")
    with pytest.raises(jn.SocketError.ConnectionRefused):
        jn.connect("unix:@jn-connect-nobody-listens-here")
    with pytest.raises(jn.SocketError.NotDir):
        jn.connect(f"unix:{stale}/below")


def test_bad_addresses_before_any_syscall() -> None:
    with fail("socket", errno.EIO) as injection:
        for bad in ("fd://3", "localhost:80", "127.0.0.1:99999", "unix:"):
            with pytest.raises((jn.SocketError.InvalidAddress, jn.SocketError.InvalidPort)):
                jn.connect(bad)
        with pytest.raises(jn.SocketError.InvalidAddress):
            jn.connect(jn.UnixAddress(""))
    assert injection.failed == 0


# Addresses that exist only on one link, without a zone: never dialled (no traffic to link-local).
_NEEDS_ZONE = ("[fe80::1]:9", "[fe80::abcd]:443", "[ff02::1]:9")


@pytest.mark.parametrize("where", _NEEDS_ZONE)
def test_link_local_without_a_zone_is_refused_before_any_syscall_as_listen_does(where: str) -> None:
    events: list[str] = []

    def hook(name: str, args: tuple[object, ...]) -> None:
        if name == "janus_net.connect":
            events.append(str(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed; it records only this test's addresses
    # Armed for any number of calls: a socket() or connect() reaching the seam would be counted
    # (and fail there, so nothing could leave even if the check were missing).
    with fail("socket", errno.EIO, times=100) as made, fail("connect", errno.EIO, times=100) as dialled:
        with pytest.raises(jn.SocketError.AddressUnavailable) as refused:
            jn.connect(where)
        with pytest.raises(jn.SocketError.AddressUnavailable) as bound:
            jn.listen(where)
    assert made.calls == 0 and dialled.calls == 0
    assert where not in events  # refused before the audit event, too
    error = refused.value
    assert (error.errno, error.syscall, error.address) == (None, "connect", where)
    assert "exists only on one link" in str(error)
    # One check serves both: the same words, only the syscall differs.
    assert bound.value.syscall == "bind" and str(bound.value.args[-1]) == str(error.args[-1])


def test_link_local_without_a_zone_makes_no_socket_and_no_connect_under_strace(tmp_path: Path) -> None:
    from tracing import MARK, calls_to, syscalls_after_mark

    program = (
        "import os, janus_net as jn\n"
        f"os.write(1, {MARK!r})\n"
        f"for where in {_NEEDS_ZONE!r}:\n"
        "    try:\n"
        "        jn.connect(where)\n"
        "    except jn.SocketError.AddressUnavailable:\n"
        "        print('refused')\n"
    )
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,socket,connect")
    assert out.split().count("refused") == len(_NEEDS_ZONE)
    assert calls_to(lines, "socket", "connect") == []


@contextmanager
def full_tcp_backlog() -> Iterator[str]:
    """A TCP listener whose accept queue is full: the kernel drops new SYNs, so a connect waits."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(server.getsockname())
                fillers.append(filler)
            time.sleep(0.1)  # a margin for the fillers' handshakes (no thread of ours waits on them)
            host, port = server.getsockname()
            yield f"{host}:{port}"
        finally:
            for filler in fillers:
                filler.close()


@contextmanager
def full_unix_backlog(name: str) -> Iterator[socket.socket]:
    """A unix listener with backlog 0 and one pending connection: a non-blocking connect says EAGAIN."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("\0" + name)
        server.listen(0)
        with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as second:
            first.connect("\0" + name)
            second.setblocking(False)
            try:
                second.connect("\0" + name)
            except BlockingIOError:
                pass
            yield server


def test_cancel_from_another_thread_ends_a_pending_tcp_connect() -> None:
    with full_tcp_backlog() as address:
        ctx = jn.Context()
        timer = when_blocked(ctx.cancel)
        started = time.monotonic()
        with pytest.raises(jn.SocketError.Timeout) as info:
            jn.connect(address, ctx=ctx)
        timer.join()
        assert info.value.reason == "cancelled"  # type: ignore[attr-defined]
        assert time.monotonic() - started < 10


def test_deadline_ends_a_pending_tcp_connect() -> None:
    with full_tcp_backlog() as address, pytest.raises(jn.SocketError.Timeout) as info:
        jn.connect(address, ctx=jn.Context.with_timeout(0.2))
    assert info.value.reason == "deadline"  # type: ignore[attr-defined]


def test_unix_backlog_full_waits_cancellably_then_connects_when_room_is_made() -> None:
    name = f"jn-connect-backlog-{os.getpid()}"
    with full_unix_backlog(name) as server:
        with pytest.raises(jn.SocketError.Timeout):
            jn.connect(f"unix:@{name}", ctx=jn.Context.with_timeout(0.2))
        # Room is made while connect waits: it retries and gets in.
        when_blocked(lambda: server.accept()[0].close())
        with jn.connect(f"unix:@{name}", ctx=jn.Context.with_timeout(30)) as client:
            _blocking_and_cloexec(client.fileno())


@pytest.mark.parametrize("step", ["socket", "fcntl", "connect", "poll", "getsockopt"])
def test_interrupt_at_each_step_closes_the_socket(step: str) -> None:
    """KeyboardInterrupt at each syscall (the fault seam raises it there): nothing stays open."""
    with full_tcp_backlog() if step == "poll" else jn.listen("127.0.0.1:0") as server:
        address = server if isinstance(server, str) else str(server.address)
        with fail(step, KeyboardInterrupt) as injection, pytest.raises(KeyboardInterrupt):
            jn.connect(address, ctx=jn.Context.with_timeout(30))
        assert injection.failed == 1


def test_audit_event_names_the_address() -> None:
    seen: list[tuple[object, ...]] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "janus_net.connect":
            seen.append(args)

    sys.addaudithook(hook)  # stays for the process: it only records this event
    with jn.listen("127.0.0.1:0") as server, jn.connect(str(server.address)):
        pass
    assert (str(server.address),) in seen


def test_keyboard_interrupt_at_every_line_closes_the_socket() -> None:
    """A KeyboardInterrupt raised at each line of connect.py/waiting.py in turn: no descriptor stays open."""
    files = {str(sys.modules[name].__file__) for name in ("janus_net._profiles.connect", "janus_net._policy.waiting")}
    with jn.listen("127.0.0.1:0") as server:
        ctx = jn.Context.with_timeout(60)
        ctx._wake_fd()  # made once, before the baseline
        assert _connect_interrupted_at_every_line(lambda: jn.connect(str(server.address), ctx=ctx), files) > 10


def test_netns_connects_inside_the_namespace_and_not_here(namespace: str) -> None:
    path = f"/run/netns/{namespace}"
    before = os.readlink("/proc/thread-self/ns/net")
    with jn.listen("127.0.0.1:0", netns=path) as server:
        address = str(server.address)
        with jn.connect(address, netns=path, ctx=jn.Context.with_timeout(30)) as client:
            assert os.readlink("/proc/thread-self/ns/net") == before  # the caller's thread never moved
            _blocking_and_cloexec(client.fileno())
            assert client.address == server.address
            _round_trip(server, client)
        # The same text from the caller's namespace names another host's loopback: the
        # server inside never sees it (refused, or some other listener of this namespace).
        try:
            jn.connect(address).close()
        except jn.SocketError.ConnectionRefused:
            pass
        readable, _, _ = select.select([server.fileno()], [], [], 0.2)
        assert not readable, "a connect from the caller's namespace reached the server inside"
    # An abstract unix name is per namespace too.
    name = f"unix:@jn-conn-{namespace}"
    with jn.listen(name, netns=path) as server:
        with jn.connect(name, netns=path) as client:
            _round_trip(server, client)
        with pytest.raises(jn.SocketError.ConnectionRefused):
            jn.connect(name)


def test_netns_errors_are_typed(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a namespace")
    with fail("connect", errno.EIO) as injection:
        with pytest.raises(jn.SocketError.FileNotFound):
            jn.connect("127.0.0.1:1", netns=tmp_path / "missing")
        with pytest.raises(jn.SocketError.InvalidAddress):
            jn.connect("127.0.0.1:1", netns=plain)
        with pytest.raises(jn.SocketError.InvalidAddress):
            jn.connect("127.0.0.1:1", netns="/proc/self/ns/uts")  # a namespace, not a network one
        for bad, kind in (("", ValueError), ("a\0b", ValueError), (3, TypeError), (True, TypeError)):
            with pytest.raises(kind):
                jn.connect("127.0.0.1:1", netns=bad)  # type: ignore[arg-type]
    assert injection.failed == 0  # none of them got as far as connect(2)


def test_netns_access_denied_without_the_right_to_enter(namespace: str) -> None:
    # A child that dropped every capability (capset: version 3 header, empty sets) may
    # open the file but not setns into it.
    source = (
        "import ctypes, sys, janus_net as jn\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)\n"
        "data = (ctypes.c_uint32 * 6)()\n"
        "assert libc.capset(hdr, data) == 0\n"
        "try:\n"
        "    jn.connect('127.0.0.1:1', netns=sys.argv[1])\n"
        "except jn.SocketError.AccessDenied:\n"
        "    print('AccessDenied')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", source, f"/run/netns/{namespace}"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "AccessDenied"


def test_keyboard_interrupt_at_every_line_of_a_netns_connect_closes_the_socket(namespace: str) -> None:
    """connect(netns=): an interrupt at each line of connect.py/waiting.py/netns.py (the caller's thread)."""
    path = f"/run/netns/{namespace}"
    files = {
        str(sys.modules[name].__file__)
        for name in ("janus_net._profiles.connect", "janus_net._policy.waiting", "janus_net._policy.netns")
    }
    with jn.listen("127.0.0.1:0", netns=path) as server:
        assert _connect_interrupted_at_every_line(lambda: jn.connect(str(server.address), netns=path), files) > 10


def _connect_interrupted_at_every_line(connect: Callable[[], jn.Stream], files: set[str]) -> int:
    """Run ``connect`` with a KeyboardInterrupt at line event 1, 2, ... of ``files`` until one
    run completes; after each interrupted run no fd may be left. Returns the runs made."""
    n = 0
    while True:
        n += 1
        before = live_fds()
        sys.settrace(interrupt_at(n, files))
        try:
            client = connect()
        except KeyboardInterrupt:
            sys.settrace(None)
            assert live_fds() == before, f"leak after an interrupt at line event {n}"
            continue
        finally:
            sys.settrace(None)
        client.close()
        return n


# --- ICMP errors during the handshake: a router or the peer can send them, so each is a member.

_ICMP_DURING_CONNECT = r"""
import json, socket, struct, subprocess, sys, threading, time
import janus_net as jn
icmp_type, icmp_code = int(sys.argv[1]), int(sys.argv[2])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)        # a namespace of this process's own
# A listener with a full accept queue drops new SYNs: the connect stays in SYN_SENT.
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(0)
port = server.getsockname()[1]
fillers = []
for _ in range(4):
    filler = socket.socket()
    filler.setblocking(False)
    filler.connect_ex(("127.0.0.1", port))
    fillers.append(filler)
time.sleep(0.2)  # a margin for the fillers' handshakes (no thread waits on them)
filler_ports = {f.getsockname()[1] for f in fillers}
tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))   # sees the SYN on lo
tap.bind(("lo", 0x0800))
tap.settimeout(30)
outcome = []
def dial():
    try:
        jn.connect(f"127.0.0.1:{port}", ctx=jn.Context.with_timeout(60)).close()
        outcome.append(["connected"])
    except jn.SocketError as e:
        outcome.append([e.member, e.errno, e.syscall])
    except BaseException as e:
        outcome.append([type(e).__name__, str(e)])
thread = threading.Thread(target=dial)
thread.start()
while True:
    packet = tap.recv(65535)
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != 6 or packet[ihl + 13] != 0x02:                     # TCP, SYN only
        continue
    source, dest = struct.unpack("!HH", packet[ihl : ihl + 4])
    if dest == port and source not in filler_ports:
        break
# The ICMP error quotes the SYN's IP header and first 8 bytes (ports, sequence), as a router would.
body = struct.pack("!BBHI", icmp_type, icmp_code, 0, 0) + packet[: ihl + 8]
total = sum(struct.unpack(f"!{len(body) // 2}H", body))
total = (total >> 16) + (total & 0xFFFF)
total += total >> 16
body = body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
    raw.sendto(body, ("127.0.0.1", 0))
thread.join(60)
print(json.dumps(outcome[0]))
"""


@pytest.mark.parametrize(
    ("icmp_type", "icmp_code", "member", "err"),
    [
        (3, 7, "HostUnreachable", errno.EHOSTDOWN),  # destination host unknown
        (3, 8, "NetworkUnreachable", errno.ENONET),  # source host isolated
        (3, 2, "ProtocolFailure", errno.ENOPROTOOPT),  # protocol unreachable
        (12, 0, "ProtocolFailure", errno.EPROTO),  # parameter problem
    ],
)
def test_an_icmp_error_during_the_handshake_is_a_member(icmp_type: int, icmp_code: int, member: str, err: int) -> None:
    """Forged on the loopback of a namespace the test makes, quoting the real SYN: never Unexpected."""
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _ICMP_DURING_CONNECT, str(icmp_type), str(icmp_code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [member, err, "connect"]
