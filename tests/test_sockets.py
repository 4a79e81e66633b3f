"""The socket objects (Server, Stream, Socket from listen and bind; DESIGN §3), the :core profile
against the real kernel, with the stdlib `socket` module as the peer.

Every claim is checked by something janus_net did not write: a stdlib client that
connects, a stdlib socket wrapped around a ``dup`` of our descriptor for
getsockopt, ``fcntl`` for the descriptor flags, ``/proc/net/unix`` for what the
kernel recorded, an exec'd child for close-on-exec.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from peers import stdlib_view

import janus_net as jn
from tests.conftest import open_fds


def connect_stdlib(server: jn.Server) -> socket.socket:
    address = server.address
    if isinstance(address, jn.UnixAddress):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect("\0" + address.path if address.abstract else address.path)
        return client
    return socket.create_connection((address.host, address.port), timeout=5)


def echo_once(server: jn.Server) -> None:
    """A stdlib client talks to the Server both ways."""
    with connect_stdlib(server) as client, server.accept() as stream:
        client.sendall(b"hello from stdlib")
        assert stream.read(100) == b"hello from stdlib"
        stream.write_all(b"hello from janus_net")
        assert client.recv(100) == b"hello from janus_net"
        client.shutdown(socket.SHUT_WR)
        assert stream.read(10) == b""


# --- Round trips


def test_tcp_ipv4_round_trip() -> None:
    with jn.listen("127.0.0.1:0") as server:
        assert isinstance(server.address, jn.Ip4Address)
        assert server.address.host == "127.0.0.1"
        assert server.address.port > 0
        echo_once(server)


def test_tcp_ipv6_round_trip() -> None:
    with jn.listen("[::1]:0") as server:
        assert isinstance(server.address, jn.Ip6Address)
        assert server.address.host == "::1"
        with stdlib_view(server) as dup:
            assert dup.family == socket.AF_INET6
            assert dup.getsockname()[1] == server.address.port
        echo_once(server)


def test_accepted_stream_address_is_the_stdlib_clients_address() -> None:
    with jn.listen("[::1]:0") as server, connect_stdlib(server) as client, server.accept() as stream:
        host, port = client.getsockname()[:2]
        assert stream.address == jn.Ip6Address(host, port)


def test_accepted_peer_addresses_of_every_family(tmp_path: Path) -> None:
    # The peer is decoded on first use, from the bytes accept wrote: each family, the
    # repr before any use, and several connections accepted before any is looked at.
    with jn.listen("127.0.0.1:0") as server:
        clients = [connect_stdlib(server) for _ in range(3)]
        try:
            streams = [server.accept() for _ in clients]
            for stream in streams:
                port = int(repr(stream).split()[1].rsplit(":", 1)[1])
                assert any(c.getsockname()[1] == port for c in clients)
            for client, stream in zip(clients, streams, strict=True):
                assert stream.address == jn.Ip4Address(*client.getsockname())
                assert stream.address is stream.address  # decoded once
                stream.close()
        finally:
            for client in clients:
                client.close()
    with jn.listen("[::]:0") as server:
        client = socket.create_connection(("127.0.0.1", server.address.port))
        with client, server.accept() as stream:
            assert stream.address == jn.Ip6Address.from_ip4(jn.Ip4Address(*client.getsockname()))
    named, unnamed = tmp_path / "l.sock", tmp_path / "client.sock"
    with jn.listen(f"unix:{named}") as server:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(named))
            with server.accept() as stream:
                assert stream.address == jn.UnixAddress("") and stream.address.unnamed
        with socket.socket(socket.AF_UNIX) as client:
            client.bind(str(unnamed))
            client.connect(str(named))
            with server.accept() as stream:
                assert f"unix:{unnamed}" in repr(stream)
                assert stream.address == jn.UnixAddress(str(unnamed))


def test_an_error_names_the_peer_not_yet_decoded() -> None:
    with jn.listen("127.0.0.1:0") as server, connect_stdlib(server) as client, server.accept() as stream:
        peer = "{}:{}".format(*client.getsockname())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # with RST: the write below fails, and its error names the peer
        with pytest.raises((jn.SocketError.ConnectionResetByPeer, jn.SocketError.SocketUnconnected)) as info:
            stream.write(b"x")
        assert info.value.address == peer and info.value.syscall == "send"


def test_unix_path_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with jn.listen(f"unix:{path}") as server:
        assert server.address == jn.UnixAddress(str(path))
        assert path.is_socket()
        echo_once(server)
    assert not path.exists()


def test_unix_bare_path_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "bare.sock"
    with jn.listen(str(path)) as server:
        assert server.address == jn.UnixAddress(str(path))
        echo_once(server)


def test_unix_abstract_round_trip_has_no_trailing_nul() -> None:
    name = "janus-test-" + secrets.token_hex(8)
    with jn.listen(f"unix:@{name}") as server:
        assert str(server.address) == f"unix:@{name}"
        # The kernel's own record: exactly "@name" (a trailing NUL would print as "@name@").
        with open("/proc/net/unix") as table:
            paths = [line.split()[-1] for line in table if name in line]
        assert paths == [f"@{name}"]
        with stdlib_view(server) as dup:
            assert dup.getsockname() == b"\0" + name.encode()
        echo_once(server)  # the stdlib connects to "\0name"
        # A name with a trailing NUL is another name: nobody listens there.
        with socket.socket(socket.AF_UNIX) as wrong, pytest.raises(ConnectionRefusedError):
            wrong.connect("\0" + name + "\0")
    assert name not in Path("/proc/net/unix").read_text()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_both_directions(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    text = f"[{host}]:0" if ":" in host else f"{host}:0"
    with jn.bind(text) as sock, socket.socket(family, socket.SOCK_DGRAM) as peer:
        peer.bind((host, 0))
        peer.settimeout(5)
        port = peer.getsockname()[1]
        peer_address = jn.Ip6Address(host, port) if ":" in host else jn.Ip4Address(host, port)
        assert sock.send(peer_address, b"to stdlib") == 9
        data, source = peer.recvfrom(100)
        assert data == b"to stdlib"
        assert source[1] == sock.address.port
        peer.sendto(b"to janus_net", source)
        got, origin = sock.receive()
        assert got == b"to janus_net"
        assert origin == peer_address
        buf = bytearray(64)
        peer.sendto(b"into a buffer", source)
        n, origin = sock.receive_into(buf)
        assert bytes(buf[:n]) == b"into a buffer"
        assert origin == peer_address


def test_udp_send_many_and_receive_many_keep_content_and_order() -> None:
    with jn.bind("127.0.0.1:0") as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        dest = jn.parse_address("{}:{}".format(*peer.getsockname()))
        messages = [(dest, b"message %d" % i) for i in range(20)]
        assert sock.send_many(messages) == 20
        assert [peer.recvfrom(100)[0] for _ in range(20)] == [m for _, m in messages]
        for i in range(20):
            peer.sendto(b"reply %d" % i, ("127.0.0.1", sock.address.port))
        received: list[bytes] = []
        while len(received) < 20:
            batch = sock.receive_many(8)
            assert 1 <= len(batch) <= 8
            assert all(source == dest for _, source in batch)
            received += [data for data, _ in batch]
        assert received == [b"reply %d" % i for i in range(20)]


def test_receive_reuses_its_buffer_without_mixing_datagrams() -> None:
    # receive keeps one buffer and source sockaddr per Socket between calls: sizes that
    # grow, shrink and exceed what it keeps must each give exactly their datagram.
    with jn.bind("127.0.0.1:0") as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        origin = jn.Ip4Address("127.0.0.1", peer.getsockname()[1])
        dest = ("127.0.0.1", sock.address.port)
        for size, payload in [(2048, b"a" * 100), (10, b"b" * 100), (0, b"c"), (65536, b"d" * 3000),
                              (100_000, b"e" * 60_000), (5, b"fgh"), (2048, b"")]:  # fmt: skip
            peer.sendto(payload, dest)
            assert sock.receive(size) == (payload[:size], origin)
        buf = bytearray(4)
        peer.sendto(b"into", dest)
        assert sock.receive_into(buf) == (4, origin) and buf == b"into"
        with pytest.raises(ValueError):
            sock.receive(-1)


def test_concurrent_receives_each_get_whole_datagrams_and_their_sources() -> None:
    # Two receivers on one Socket at once never share the reused buffer or sockaddr.
    with jn.bind("127.0.0.1:0") as sock:
        peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            for peer in peers:
                peer.bind(("127.0.0.1", 0))
            senders = {jn.Ip4Address("127.0.0.1", p.getsockname()[1]): i for i, p in enumerate(peers)}
            per_peer = 400
            got: list[list[tuple[bytes, jn.Address]]] = [[], []]

            def drain(k: int) -> None:
                while sum(map(len, got)) < 2 * per_peer:
                    try:
                        got[k].append(sock.receive(64, ctx=jn.Context.with_timeout(0.2)))
                    except jn.SocketError.Timeout:
                        continue

            threads = [threading.Thread(target=drain, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            for n in range(per_peer):
                for i, peer in enumerate(peers):
                    peer.sendto(b"%d:%d:" % (i, n) + b"x" * (n % 50), ("127.0.0.1", sock.address.port))
                # Loopback drops datagrams only when the receive queue is full: keep it short.
                while sum(map(len, got)) < 2 * (n + 1) - 40 and time.monotonic() < deadline:
                    time.sleep(0.001)
            for t in threads:
                t.join(timeout=30)
            received = got[0] + got[1]
            assert len(received) == 2 * per_peer
            for data, source in received:
                i, n, pad = data.split(b":")
                assert senders[source] == int(i) and pad == b"x" * (int(n) % 50)
            assert sorted(received, key=lambda r: r[0]) == sorted(
                ((b"%d:%d:" % (i, n) + b"x" * (n % 50), s) for s, i in senders.items() for n in range(per_peer)),
                key=lambda r: r[0],
            )
        finally:
            for peer in peers:
                peer.close()


def test_unix_datagram_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    with jn.bind(f"unix:{path}") as sock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:
        peer.bind(str(tmp_path / "peer.sock"))
        peer.sendto(b"over a path", str(path))
        data, source = sock.receive()
        assert data == b"over a path"
        assert source == jn.UnixAddress(str(tmp_path / "peer.sock"))
        sock.send(source, b"back")
        assert peer.recv(10) == b"back"


# --- getsockopt oracles


def test_listen_ip_socket_options_by_default() -> None:
    with jn.listen("127.0.0.1:0") as server, stdlib_view(server) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == jn.Mode.STREAM == socket.SOCK_STREAM


def test_reuse_address_false_leaves_it_off() -> None:
    with jn.listen("127.0.0.1:0", reuse_address=False) as server, stdlib_view(server) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0


def test_reuse_port_true_sets_it_and_two_servers_share_the_port() -> None:
    with jn.listen("127.0.0.1:0", reuse_port=True) as first, stdlib_view(first) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        with jn.listen(f"127.0.0.1:{first.address.port}", reuse_port=True) as second:
            assert second.address == first.address


def test_unix_listen_does_not_set_reuse_address(tmp_path: Path) -> None:
    with jn.listen(f"unix:{tmp_path / 'r.sock'}") as server, stdlib_view(server) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


@pytest.mark.parametrize(("ip6_only", "expected"), [(True, 1), (False, 0)])
def test_ip6_only_sets_ipv6_v6only(ip6_only: bool, expected: int) -> None:
    # The seed set 0 for True; the stdlib reads back what the kernel really has. The
    # wildcard, because Linux forces V6ONLY to 1 when a specific IPv6 address (::1) is bound.
    with jn.listen("[::]:0", ip6_only=ip6_only) as server, stdlib_view(server) as dup:
        assert dup.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == expected
    with jn.bind("[::]:0", ip6_only=ip6_only) as sock, stdlib_view(sock) as dup:
        assert dup.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == expected


def test_ip6_only_none_leaves_the_system_default() -> None:
    default = int(Path("/proc/sys/net/ipv6/bindv6only").read_text())
    with jn.listen("[::]:0") as server, stdlib_view(server) as dup:
        assert dup.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == default


def test_ip6_only_false_on_the_wildcard_is_dual_stack() -> None:
    with (
        jn.listen("[::]:0", ip6_only=False) as server,
        socket.create_connection(("127.0.0.1", server.address.port), timeout=5) as client,
        server.accept() as stream,
    ):
        assert stream.address == jn.Ip6Address.from_ip4(jn.Ip4Address(*client.getsockname()))
        client.sendall(b"v4 into v6")
        assert stream.read(20) == b"v4 into v6"


def test_ip6_only_true_on_the_wildcard_refuses_ipv4() -> None:
    # The port comes from an IPv4 socket bound (not listening) on 127.0.0.1 and held during
    # the connect, so no other process on the machine can be listening at 127.0.0.1:P then.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with jn.listen(f"[::]:{port}", ip6_only=True) as server:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            holder.close()
            # ...and a plain IPv4 listener can take the same port number beside it.
            with jn.listen(f"127.0.0.1:{server.address.port}") as beside:
                assert beside.address.port == server.address.port


def test_ip4_mapped_with_ip6_only_true_is_address_unavailable_without_a_socket() -> None:
    before = open_fds()
    with pytest.raises(jn.SocketError.AddressUnavailable) as info:
        jn.listen("[::ffff:127.0.0.1]:0", ip6_only=True)
    assert open_fds() == before
    assert info.value.address == "[::ffff:127.0.0.1]:0"
    with pytest.raises(jn.SocketError.AddressUnavailable):
        jn.bind("[::ffff:127.0.0.1]:0", ip6_only=True)


def test_ip4_mapped_with_ip6_only_true_makes_no_socket_syscall(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    program = (
        "import os, janus_net as jn\n"
        "os.write(1, b'MARK\\n')\n"
        "try:\n"
        "    jn.listen('[::ffff:127.0.0.1]:0', ip6_only=True)\n"
        "except jn.SocketError.AddressUnavailable as e:\n"
        "    print('AddressUnavailable', e.errno)\n"
        "os.write(1, b'MARK\\n')\n"
    )
    out = subprocess.run(
        ["strace", "-f", "-o", str(trace), "-e", "trace=write,socket,bind", sys.executable, "-c", program],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "AddressUnavailable None" in out.stdout
    lines = trace.read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if "MARK" in line]
    assert len(marks) == 2
    between = lines[marks[0] : marks[1]]
    assert not any("socket(" in line or "bind(" in line for line in between), between


def test_ip4_mapped_with_ip6_only_false_listens_dual_stack() -> None:
    with jn.listen("[::ffff:127.0.0.1]:0", ip6_only=False) as server, stdlib_view(server) as dup:
        assert dup.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        assert server.address.host == "::ffff:127.0.0.1"
        with socket.create_connection(("127.0.0.1", server.address.port), timeout=5), server.accept() as stream:
            assert isinstance(stream.address, jn.Ip6Address)
            assert stream.address.is_ip4_mapped


def test_bind_is_not_listening_and_mode_is_its_type() -> None:
    with jn.bind("127.0.0.1:0") as udp, stdlib_view(udp) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    with jn.bind("127.0.0.1:0", mode=jn.Mode.STREAM) as tcp, stdlib_view(tcp) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP


def test_bind_options_broadcast_and_reuse_address() -> None:
    with jn.bind("127.0.0.1:0", broadcast=True, reuse_address=True) as udp, stdlib_view(udp) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1


def test_bind_protocol_is_passed_to_socket() -> None:
    with jn.bind("127.0.0.1:0", protocol=jn.Protocol.UDP) as udp, stdlib_view(udp) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_UDP


def test_bind_seqpacket_on_unix(tmp_path: Path) -> None:
    with jn.bind(f"unix:{tmp_path / 'sp.sock'}", mode=jn.Mode.SEQPACKET) as sock, stdlib_view(sock) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_SEQPACKET


def test_backlog_zero_still_accepts() -> None:
    with jn.listen("127.0.0.1:0", backlog=0) as server:
        echo_once(server)


# --- Descriptor flags


def _cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def _nonblocking(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:0", "unix:@janus-flags-{token}"])
def test_server_and_accepted_stream_are_cloexec_and_blocking(address: str) -> None:
    with jn.listen(address.format(token=secrets.token_hex(6))) as server:
        assert _cloexec(server.fileno())
        assert not _nonblocking(server.fileno())
        with connect_stdlib(server) as _client, server.accept() as stream:
            assert _cloexec(stream.fileno())
            assert not _nonblocking(stream.fileno())


def test_bound_socket_is_cloexec_and_blocking() -> None:
    with jn.bind("127.0.0.1:0") as sock:
        assert _cloexec(sock.fileno())
        assert not _nonblocking(sock.fileno())


_CHILD_REPORTS_FD = """
import os, sys
fd = int(sys.argv[1])
try:
    os.fstat(fd)
except OSError:
    print("absent")
else:
    print("present", os.readlink(f"/proc/self/fd/{fd}"))
"""


def test_listening_fd_is_not_inherited_by_an_exec_child() -> None:
    with jn.listen("127.0.0.1:0") as server:
        fd = server.fileno()
        child = subprocess.run(
            [sys.executable, "-c", _CHILD_REPORTS_FD, str(fd)],
            close_fds=False, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert child.stdout.strip() == "absent"
        # The control: the same child does see an fd that is not close-on-exec.
        inheritable = os.dup(fd)
        try:
            os.set_inheritable(inheritable, True)
            child = subprocess.run(
                [sys.executable, "-c", _CHILD_REPORTS_FD, str(inheritable)],
                close_fds=False, capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            assert child.stdout.startswith("present socket:")
        finally:
            os.close(inheritable)


# --- Lifecycle


def test_close_is_idempotent_and_fileno_is_minus_one() -> None:
    server = jn.listen("127.0.0.1:0")
    fd = server.fileno()
    server.close()
    server.close()
    assert server.closed
    assert server.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(fd)


def test_to_socket_hands_over_a_plain_stdlib_socket() -> None:
    server = jn.listen("127.0.0.1:0")
    port = server.address.port
    sock = server.to_socket()
    try:
        assert type(sock) is socket.socket
        assert server.closed
        assert sock.getsockname() == ("127.0.0.1", port)
        server.close()  # must not close the handed-over fd
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        sock.close()


def test_port_zero_gets_the_real_port_from_the_kernel() -> None:
    with jn.listen(":0") as server, stdlib_view(server) as dup:
        assert server.address == jn.Ip4Address("0.0.0.0", dup.getsockname()[1])


def _link_local() -> str | None:
    """``fe80::…%index`` of an interface that has a link-local address, from /proc/net/if_inet6."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hexaddr, index, _, scope, *_ = line.split()
        if int(scope, 16) == 0x20:  # IPV6_ADDR_LINKLOCAL
            return f"{ipaddress.IPv6Address(bytes.fromhex(hexaddr))}%{int(index, 16)}"
    return None


def _expected_from_stdlib(dup: socket.socket) -> jn.Ip4Address | jn.Ip6Address:
    name = dup.getsockname()
    if dup.family == socket.AF_INET:
        return jn.Ip4Address(name[0], name[1])
    host, port, flowinfo, scope_id = name
    return jn.Ip6Address(ipaddress.IPv6Address(host.split("%")[0]), port, flowinfo, scope_id)


REPORTED_CASES: list[str | jn.Ip6Address] = [
    "127.0.0.1:0",
    ":0",
    "[::1]:0",
    "[::]:0",
    "[::ffff:127.0.0.1]:0",
    # A flow label is not something getsockname reports: the kernel's answer (0) wins.
    jn.Ip6Address("::1", 0, flowinfo=5),
]
LINK_LOCAL = _link_local()
if LINK_LOCAL is not None:
    REPORTED_CASES.append(f"[{LINK_LOCAL}]:0")


@pytest.mark.parametrize("requested", REPORTED_CASES, ids=str)
@pytest.mark.parametrize("opener", [jn.listen, jn.bind], ids=["listen", "bind"])
def test_bound_address_is_what_getsockname_says(requested: str | jn.Ip6Address, opener: Any) -> None:
    with opener(requested) as owner, stdlib_view(owner) as dup:
        expected = _expected_from_stdlib(dup)
        got = owner.address
        assert got == expected and type(got) is type(expected) and str(got) == str(expected)
        assert got.port != 0
        if isinstance(got, jn.Ip6Address):
            assert isinstance(expected, jn.Ip6Address)
            assert (got.flowinfo, got.scope_id) == (expected.flowinfo, expected.scope_id)
        assert got.sockaddr.length > 0 and got == jn.parse_address(str(got))


def test_bound_address_with_an_explicit_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A UDP port is free again as soon as its socket is closed.
    with jn.bind(f"127.0.0.1:{port}") as owner, stdlib_view(owner) as dup:
        assert owner.address == _expected_from_stdlib(dup) == jn.Ip4Address("127.0.0.1", port)
        assert str(owner.address) == f"127.0.0.1:{port}"


# --- Options are validated before any syscall


@pytest.mark.parametrize(
    "options",
    [
        {"backlog": -1},
        {"backlog": 2**31},  # a C int: larger would fail inside cffi after the socket exists
        {"backlog": True},
        {"ip6_only": "false"},  # truthy: must not quietly mean IPV6_V6ONLY=1
        {"ip6_only": 1},
        {"mode": 0o10000},
    ],
)
def test_bad_listen_options_are_value_errors_before_any_socket(options: dict[str, object]) -> None:
    before = open_fds()
    with pytest.raises(ValueError):
        jn.listen("[::1]:0", **options)  # type: ignore[arg-type]
    assert open_fds() == before


@pytest.mark.parametrize("options", [{"protocol": 2**40}, {"protocol": -1}, {"mode": 99}, {"ip6_only": "yes"}])
def test_bad_bind_options_are_value_errors(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        jn.bind("[::1]:0", **options)  # type: ignore[arg-type]


def test_largest_backlog_is_accepted() -> None:
    with jn.listen("127.0.0.1:0", backlog=2**31 - 1) as server:
        echo_once(server)


@pytest.mark.parametrize(
    ("address", "options"),
    [
        ("127.0.0.1:0", {"ip6_only": True}),
        ("unix:@janus-opt", {"ip6_only": False}),
        ("127.0.0.1:0", {"mode": 0o600}),
        ("127.0.0.1:0", {"unlink_stale": True}),
        ("unix:@janus-opt", {"unlink_stale": True}),
    ],
)
def test_options_that_do_not_apply_are_option_unsupported_without_a_socket(
    address: str, options: dict[str, object]
) -> None:
    before = open_fds()
    with pytest.raises(jn.SocketError.OptionUnsupported):
        jn.listen(address, **options)  # type: ignore[arg-type]
    assert open_fds() == before


# --- Forgotten sockets


@pytest.mark.parametrize("opener", [lambda: jn.listen("127.0.0.1:0"), lambda: jn.bind("127.0.0.1:0")])
def test_unclosed_socket_is_closed_by_gc_with_a_resource_warning(opener: object) -> None:
    import gc

    sock = opener()  # type: ignore[operator]
    fd = sock.fileno()
    with pytest.warns(ResourceWarning, match="unclosed"):
        del sock
        gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
