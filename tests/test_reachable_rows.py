"""DESIGN §5's added rows, each produced from its real cause: a caller, a peer or another process.

A user- or peer-reachable errno is never a bug row (`ErrnoBug` is an AssertionError that
``except jn.SocketError`` does not catch: one forged datagram would end a server's loop).
Each test below makes the kernel (or the check janus_net does in its place, before the
syscall) see the real input: a datagram forged with a raw socket on loopback, a mode
the family lacks, a zone naming no interface, an option the family lacks, a socket of
the wrong kind.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import janus_net as jn
from janus_net._kernel import cells, socket_options, sockets, tables
from janus_net._values.errors import ErrnoBug
from janus_net._values.unix import UnixAddress
from janus_net.testing import fail

E = jn.SocketError

# Abstract names are shared by every process of the network namespace: another test run on
# the same machine binding the same name would make these tests fail with AddressInUse.
_PID = os.getpid()


def _own(address: str) -> str:
    """``address`` made this process's own if it is an abstract name (the test ids stay the same)."""
    return f"{address}-{_PID}" if address.startswith("unix:@") else address


def _forge_udp4(dest_port: int, payload: bytes, source_port: int = 0) -> None:
    """Send one UDP datagram from 127.0.0.1:``source_port`` to 127.0.0.1:``dest_port`` (loopback only).

    A raw IPPROTO_UDP socket lets us write the UDP header ourselves; the kernel adds the
    IP header. Checksum 0 means "none", which IPv4 allows.
    """
    header = struct.pack("!HHHH", source_port, dest_port, 8 + len(payload), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as raw:
        raw.sendto(header + payload, ("127.0.0.1", 0))


def _forge_udp6(dest_port: int, payload: bytes, source_port: int = 0) -> None:
    """As `_forge_udp4`, from [::1]:``source_port`` to [::1]:``dest_port``; the kernel computes the checksum."""
    header = struct.pack("!HHHH", source_port, dest_port, 8 + len(payload), 0)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP) as raw:
        raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)  # offset of the UDP checksum
        raw.sendto(header + payload, ("::1", 0))


@pytest.fixture
def no_sendto() -> Iterator[object]:
    """Arms the fault seam on every "send" table: any sendto/sendmmsg that happens is counted (and fails)."""
    with fail("send", errno.EIO, times=1_000_000) as injection:
        yield injection


@pytest.mark.parametrize(("where", "forge"), [("127.0.0.1:0", _forge_udp4), ("[::1]:0", _forge_udp6)])
def test_reply_to_a_forged_port_0_source_is_address_unavailable_and_the_loop_survives(
    where: str, forge: Callable[[int, bytes], None]
) -> None:
    family = socket.AF_INET6 if where.startswith("[") else socket.AF_INET
    with jn.bind(where) as srv, socket.socket(family, socket.SOCK_DGRAM) as honest:
        local = srv.address
        assert isinstance(local, (jn.Ip4Address, jn.Ip6Address))
        forge(local.port, b"forged")
        honest.bind((local.host, 0))
        honest.sendto(b"honest", (local.host, local.port))
        served, refused = [], []
        # A server loop as a user writes it: only SocketError is handled.
        for _ in range(2):
            data, src = srv.receive(ctx=jn.Context.with_timeout(30))
            try:
                srv.send(src, data.upper())
                served.append(src)
            except jn.SocketError as e:
                assert type(e) is E.AddressUnavailable
                assert e.errno is None and e.syscall == "send" and e.address == str(src)
                refused.append((src, data))
        assert [a.port for a in served] == [honest.getsockname()[1]]
        assert [(src.port, data) for src, data in refused] == [(0, b"forged")]
        honest.settimeout(30)
        assert honest.recv(100) == b"HONEST"
        # The batched path refuses it the same way.
        with pytest.raises(E.AddressUnavailable):
            srv.send_many([(refused[0][0], b"x")])


def test_port_0_is_refused_before_the_syscall(no_sendto) -> None:  # type: ignore[no-untyped-def]
    with jn.bind("127.0.0.1:0") as srv:
        for send in (
            lambda: srv.send("127.0.0.1:0", b"x"),
            lambda: srv.send(jn.Ip4Address("127.0.0.1", 0), b"x"),
            lambda: srv.send_many([("127.0.0.1:0", b"x")]),
            lambda: srv.send_many([(jn.Ip4Address("127.0.0.1", 0), b"x"), ("127.0.0.1:0", b"y")]),
            lambda: srv.send_many(iter([("127.0.0.1:0", b"x")])),
        ):
            with pytest.raises(E.AddressUnavailable, match="port 0"):
                send()
    assert no_sendto.calls == 0  # type: ignore[attr-defined]


def test_send_many_counts_what_went_before_a_port_0_destination() -> None:
    with jn.bind("127.0.0.1:0") as srv, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        to = f"127.0.0.1:{peer.getsockname()[1]}"
        assert srv.send_many([(to, b"1"), (to, b"2"), ("127.0.0.1:0", b"3"), (to, b"4")]) == 2
        peer.settimeout(30)
        assert [peer.recv(10), peer.recv(10)] == [b"1", b"2"]


def test_another_family_is_refused_before_the_syscall(no_sendto) -> None:  # type: ignore[no-untyped-def]
    with jn.bind("127.0.0.1:0") as udp4, jn.bind(f"unix:@janus-tables-fam-{_PID}") as local:
        with pytest.raises(E.AddressFamilyUnsupported):
            udp4.send("[::1]:9", b"x")
        with pytest.raises(E.AddressFamilyUnsupported):
            udp4.send(f"unix:@janus-tables-none-{_PID}", b"x")
        with pytest.raises(E.AddressFamilyUnsupported):
            local.send("127.0.0.1:9", b"x")
    assert no_sendto.calls == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sender", "dest"),
    [("127.0.0.1:0", "unix:@janus-tables-x"), ("[::1]:0", "unix:/x"), ("unix:@janus-tables-s", "127.0.0.1:9")],
)
def test_batched_send_to_another_family_is_a_member_not_a_bug(sender: str, dest: str) -> None:
    # The batch does not know its socket's family: the kernel answers (EINVAL or EAFNOSUPPORT).
    with jn.bind(_own(sender)) as sock:
        with pytest.raises(jn.SocketError) as caught:
            sock.send_many([(_own(dest), b"x")])
        assert type(caught.value) in (E.AddressUnavailable, E.AddressFamilyUnsupported)


@pytest.mark.parametrize("mode", [jn.Mode.SEQPACKET, jn.Mode.RDM])
@pytest.mark.parametrize("where", ["127.0.0.1:0", "[::1]:0"])
def test_a_mode_ip_lacks_is_socket_mode_unsupported(mode: jn.Mode, where: str) -> None:
    with pytest.raises(E.SocketModeUnsupported) as caught:
        jn.bind(where, mode=mode)
    assert caught.value.errno == errno.ESOCKTNOSUPPORT and caught.value.syscall == "socket"


def test_a_zone_naming_no_interface_is_address_unavailable() -> None:
    index = 9999
    while True:
        try:
            socket.if_indextoname(index)
        except OSError:
            break
        index += 1
    for make in (jn.bind, jn.listen):
        with pytest.raises(E.AddressUnavailable) as caught:
            make(f"[fe80::1%{index}]:0")
        assert caught.value.errno == errno.ENODEV and caught.value.syscall == "bind"


def test_reuse_port_on_unix_is_refused_before_the_socket(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    for where in (f"unix:@janus-tables-rp-{_PID}", f"unix:{tmp_path}/rp.sock"):
        with pytest.raises(E.OptionUnsupported, match="reuse_port"):
            jn.listen(where, reuse_port=True)
    assert set(os.listdir("/proc/self/fd")) == before
    assert not list(tmp_path.iterdir())


def test_setsockopt_eopnotsupp_from_the_kernel_is_option_unsupported() -> None:
    # The kernel's own answer, for a caller that reaches setsockopt some other way.
    desc = cells.new_desc()
    fd = sockets.socket(desc, socket.AF_UNIX, socket.SOCK_STREAM, 0)
    try:
        with pytest.raises(E.OptionUnsupported) as caught:
            socket_options.setsockopt_int(fd, socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        assert caught.value.errno == errno.EOPNOTSUPP
    finally:
        cells.close_desc(desc)


def test_send_with_a_destination_on_an_unconnected_unix_stream_is_socket_mode_unsupported() -> None:
    with (
        jn.bind(f"unix:@janus-tables-st-{_PID}", mode=jn.Mode.STREAM) as stream,
        jn.bind(f"unix:@janus-tables-dg-{_PID}") as dg,
    ):
        with pytest.raises(E.SocketModeUnsupported) as caught:
            stream.send(dg.address, b"x")
        assert caught.value.errno == errno.EOPNOTSUPP
        with pytest.raises(E.SocketUnconnected) as unconnected:
            stream.receive()
        assert unconnected.value.errno == errno.EINVAL  # Linux's answer where TCP says ENOTCONN


def test_send_with_a_destination_on_an_adopted_connected_stream_is_socket_mode_unsupported() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener, socket.socket(socket.AF_UNIX) as client:
        listener.bind(f"\0janus-tables-conn-{_PID}")
        listener.listen()
        client.bind(f"\0janus-tables-client-{_PID}")
        client.connect(f"\0janus-tables-conn-{_PID}")
        conn, _ = listener.accept()
        with conn, jn.bind(f"fd://{os.dup(client.fileno())}", mode=jn.Mode.STREAM) as adopted:
            with pytest.raises(E.SocketModeUnsupported) as caught:
                adopted.send(f"unix:@janus-tables-conn-{_PID}", b"x")
            assert caught.value.errno == errno.EISCONN
            with pytest.raises(E.SocketModeUnsupported):
                adopted.send_many([(f"unix:@janus-tables-conn-{_PID}", b"x")])


def test_send_on_an_unconnected_tcp_socket_is_socket_unconnected() -> None:
    with jn.bind("127.0.0.1:0", mode=jn.Mode.STREAM) as tcp, pytest.raises(E.SocketUnconnected):
        tcp.send("127.0.0.1:9", b"x")


def test_unix_destinations_give_file_system_members(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    cases = {
        f"unix:{tmp_path}/missing.sock": E.FileNotFound,
        f"unix:{tmp_path}/file/x.sock": E.NotDir,
        f"unix:{tmp_path}/loop/x.sock": E.SymLinkLoop,
        f"unix:{tmp_path}/file": E.ConnectionRefused,  # a file, not a socket
        f"unix:@janus-tables-nobody-{_PID}": E.ConnectionRefused,
    }
    with jn.bind(f"unix:@janus-tables-fs-{_PID}") as sock:
        for dest, member in cases.items():
            with pytest.raises(member):
                sock.send(dest, b"x")


def test_a_unix_destination_connected_to_another_socket_is_access_denied() -> None:
    """A unix datagram socket connected to a partner takes datagrams from it only: EPERM, a peer's choice."""
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as target,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as partner,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as oracle,
        jn.bind(f"unix:@janus-eperm-me-{_PID}") as me,
    ):
        target.bind(f"\0janus-eperm-target-{_PID}")
        partner.bind(f"\0janus-eperm-partner-{_PID}")
        target.connect(f"\0janus-eperm-partner-{_PID}")
        with pytest.raises(PermissionError) as stdlib:
            oracle.sendto(b"x", f"\0janus-eperm-target-{_PID}")
        assert stdlib.value.errno == errno.EPERM  # what the kernel says to anyone but the partner
        with pytest.raises(E.AccessDenied) as one:
            me.send(f"unix:@janus-eperm-target-{_PID}", b"x")
        assert (one.value.errno, one.value.syscall) == (errno.EPERM, "send")
        with pytest.raises(E.AccessDenied) as many:
            me.send_many([(f"unix:@janus-eperm-target-{_PID}", b"x"), (f"unix:@janus-eperm-target-{_PID}", b"y")])
        assert many.value.errno == errno.EPERM
        # A later datagram refused this way ends the batch with the count, as any error does.
        assert (
            me.send_many([(f"unix:@janus-eperm-partner-{_PID}", b"a"), (f"unix:@janus-eperm-target-{_PID}", b"b")]) == 1
        )
        assert partner.recv(10) == b"a"


def test_a_connection_another_process_destroys_is_connection_aborted() -> None:
    """``ss -K`` (SOCK_DESTROY) kills the connection from outside: the next write says ECONNABORTED."""
    with jn.listen("127.0.0.1:0") as server:
        port = server.address.port
        with jn.connect(f"127.0.0.1:{port}") as client, server.accept() as accepted:
            killed = subprocess.run(
                ["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(port)], capture_output=True, text=True, timeout=30
            )
            if killed.returncode != 0 or f":{port}" not in killed.stdout:
                pytest.skip(f"ss -K cannot destroy sockets here: {killed.stderr.strip()}")
            with pytest.raises(E.ConnectionAborted) as aborted:
                client.write(b"x")
            assert (aborted.value.errno, aborted.value.syscall) == (errno.ECONNABORTED, "send")
            with pytest.raises(E.ConnectionResetByPeer):
                accepted.read(10)  # the destroyed socket sent its peer a reset


@pytest.fixture
def linked_namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces the test makes, ``a`` (10.78.0.1) and ``b`` (10.78.0.2), joined by a veth pair."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    tag = uuid.uuid4().hex[:8]
    a, b = f"jn-rows-a-{tag}", f"jn-rows-b-{tag}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    ip("netns", "add", a)
    try:
        ip("netns", "add", b)
        try:
            ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
            for ns, dev, addr in ((a, "va", "10.78.0.1/24"), (b, "vb", "10.78.0.2/24")):
                ip("-n", ns, "addr", "add", addr, "dev", dev)
                ip("-n", ns, "link", "set", dev, "up")
                ip("-n", ns, "link", "set", "lo", "up")
            yield a, b
        finally:
            ip("netns", "del", b)
    finally:
        ip("netns", "del", a)


def test_a_peer_that_stops_acknowledging_is_connection_timed_out(linked_namespaces: tuple[str, str]) -> None:
    """The peer's link goes down; TCP_USER_TIMEOUT runs out; the next write says ETIMEDOUT."""
    a, b = linked_namespaces
    with (
        jn.listen("10.78.0.2:0", netns=f"/run/netns/{b}") as server,
        jn.connect(f"10.78.0.2:{server.address.port}", netns=f"/run/netns/{a}") as client,
        server.accept() as accepted,
    ):
        with socket.socket(fileno=os.dup(client.fileno())) as view:
            view.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 200)  # milliseconds
        subprocess.run(["ip", "-n", b, "link", "set", "vb", "down"], check=True, timeout=30)
        deadline = time.monotonic() + 60  # only "did not hang": the timeout is 200 ms
        with pytest.raises(E.ConnectionTimedOut) as timed_out:
            while time.monotonic() < deadline:
                client.write(b"x")  # queued until the retransmissions give up
                time.sleep(0.05)
        assert (timed_out.value.errno, timed_out.value.syscall) == (errno.ETIMEDOUT, "send")
        assert accepted.address.host == "10.78.0.1"


def test_no_errno_a_peer_can_cause_is_a_bug_row() -> None:
    # The rows this module produces from real causes are members, never bug rows.
    reachable = {
        "socket": {errno.ESOCKTNOSUPPORT},
        "setsockopt": {errno.EOPNOTSUPP},
        "bind": {errno.ENODEV},
        "send": {
            errno.EINVAL,
            errno.EISCONN,
            errno.EOPNOTSUPP,
            errno.ENOENT,
            errno.ENOTDIR,
            errno.ELOOP,
            errno.EPERM,
            errno.ECONNABORTED,
            errno.ETIMEDOUT,
        },
        "receive": {errno.EINVAL},
    }
    for table in tables.TABLES:
        for err in reachable.get(table.name, ()):
            assert err in table.errors and err not in table.bugs, (table.label, errno.errorcode[err])


def test_an_unnamed_unix_peer_cannot_be_answered_but_is_a_socket_error() -> None:
    with jn.bind(f"unix:@janus-tables-srv-{_PID}") as srv, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as anon:
        anon.sendto(b"hi", f"\0janus-tables-srv-{_PID}")
        data, src = srv.receive(ctx=jn.Context.with_timeout(30))
        assert src == UnixAddress("") and data == b"hi"
        with pytest.raises(E.InvalidAddress):
            srv.send(src, b"reply")
        with pytest.raises(E.InvalidAddress):
            srv.send_many([(src, b"reply")])


def test_errnobug_is_still_raised_for_a_real_bug() -> None:
    # A double close is ours alone: still ErrnoBug in debug mode.
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    with pytest.raises(ErrnoBug):
        cells.close(fd)
