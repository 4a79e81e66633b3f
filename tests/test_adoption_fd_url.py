"""fd://N: parsing, and adopting inherited sockets with listen/bind (DESIGN §4 rule 0).

The headline test runs where adoption really happens: in a child process that
inherited the descriptor (subprocess pass_fds). The rejection tests run in this
process on descriptors the test made, and check that a refused descriptor is
left exactly as it was: still open, its close-on-exec flag untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import janus_net as jn
from janus_net.audit import ListSink

# --- parsing


@pytest.mark.parametrize(
    ("text", "fd"), [("fd://0", 0), ("fd://3", 3), ("fd://003", 3), ("fd://2147483647", 2**31 - 1)]
)
def test_parse_fd_address(text: str, fd: int) -> None:
    addr = jn.parse_address(text)
    assert type(addr) is jn.FdAddress
    assert addr.fd == fd
    assert str(addr) == f"fd://{fd}"
    assert repr(addr) == f"FdAddress('fd://{fd}')"
    assert jn.parse_address(str(addr)) == addr
    assert hash(addr) == hash(jn.FdAddress(fd))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("fd://", "needs a descriptor number"),
        ("fd://x", "ASCII digits"),
        ("fd://-1", "ASCII digits"),
        ("fd://+3", "ASCII digits"),
        ("fd:// 3", "ASCII digits"),
        ("fd://3 ", "ASCII digits"),
        ("fd://3_0", "ASCII digits"),
        ("fd://\u0663", "ASCII digits"),  # ARABIC-INDIC DIGIT THREE: isdigit() but not ASCII
        ("fd://0x3", "ASCII digits"),
        ("fd://3:80", "ASCII digits"),
        ("fd://2147483648", "out of range"),
        ("fd://" + "9" * 5000, "out of range"),  # longer than int()'s 4300-digit limit
    ],
)
def test_parse_fd_address_rejects(text: str, why: str) -> None:
    with pytest.raises(jn.SocketError.InvalidAddress, match=why) as info:
        jn.parse_address(text)
    assert info.value.address == text


def test_fd_address_is_immutable_and_hashable() -> None:
    addr = jn.FdAddress(3)
    with pytest.raises(AttributeError):
        addr._fd = 4
    with pytest.raises(AttributeError):
        del addr._fd
    assert {addr, jn.FdAddress(3), jn.FdAddress(4)} == {jn.FdAddress(3), jn.FdAddress(4)}
    assert addr != 3 and addr != "fd://3"


@pytest.mark.parametrize("bad", [-1, 2**31, True, 3.0, "3"])
def test_fd_address_constructor_rejects(bad: object) -> None:
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.FdAddress(bad)  # type: ignore[arg-type]


def test_fd_address_is_no_destination() -> None:
    with jn.bind("127.0.0.1:0") as udp, pytest.raises(jn.SocketError.InvalidAddress, match="inherited socket"):
        udp.send("fd://3", b"x")


# --- the headline: adopt in a child that inherited the descriptor

_CHILD = textwrap.dedent(
    """
    import fcntl, json, os, sys
    import janus_net as jn

    fd = int(sys.argv[1])
    srv = jn.listen(f"fd://{fd}")
    print(json.dumps({
        "address": str(srv.address),
        "fileno": srv.fileno(),
        "cloexec": bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
        "blocking": os.get_blocking(fd),
    }), flush=True)
    with srv, srv.accept() as stream:
        stream.write_all(stream.read(100).upper())
    """
)


@pytest.mark.parametrize("nonblocking", [False, True])
def test_listen_adopts_inherited_listener_in_child(nonblocking: bool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as parent_sock:
        parent_sock.setblocking(not nonblocking)  # a supervisor may hand it over non-blocking
        fd = parent_sock.fileno()
        assert not os.get_inheritable(fd)  # pass_fds, not inheritance by accident, carries it over
        with subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(fd)], pass_fds=(fd,), stdout=subprocess.PIPE, text=True
        ) as child:
            assert child.stdout is not None
            report = json.loads(child.stdout.readline())
            host, port = parent_sock.getsockname()
            # O_NONBLOCK belongs to the shared description: adoption leaves it as handed over.
            assert report == {"address": f"{host}:{port}", "fileno": fd, "cloexec": True, "blocking": not nonblocking}
            with socket.create_connection((host, port), timeout=30) as client:
                client.sendall(b"hello over an inherited socket")
                client.shutdown(socket.SHUT_WR)
                assert _read_all(client) == b"HELLO OVER AN INHERITED SOCKET"
            assert child.wait(timeout=30) == 0


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


# --- adoption in this process (the test made the descriptor, so it may lend it)


def _cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


@pytest.fixture
def lent() -> Iterator[list[int]]:
    """Descriptors lent to janus_net: cleared of FD_CLOEXEC, so a refusal that touched them shows."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def _lend(fds: list[int], sock: socket.socket) -> int:
    fd = os.dup(sock.fileno())
    os.set_inheritable(fd, True)
    fds.append(fd)
    return fd


def _assert_untouched(fd: int) -> None:
    os.fstat(fd)  # still open
    assert not _cloexec(fd)  # and not made close-on-exec: it was never ours


def test_listen_adopts_tcp_listener() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as sock:
        fd = os.dup(sock.fileno())
        os.set_inheritable(fd, True)
        with jn.listen(f"fd://{fd}") as srv:
            assert srv.fileno() == fd
            assert srv.address == jn.Ip6Address("::1", sock.getsockname()[1])
            assert _cloexec(fd)
            with socket.create_connection(("::1", srv.address.port), timeout=10) as client, srv.accept() as stream:
                stream.write_all(b"pong")
                assert client.recv(4) == b"pong"
        with pytest.raises(OSError):  # adopted means owned: close() closed it
            os.fstat(fd)


def test_listen_adopts_unix_listener_and_leaves_its_file(tmp_path: pytest.TempPathFactory) -> None:
    path = os.path.join(str(tmp_path), "inherited.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)
        sock.listen()
        srv = jn.listen(jn.FdAddress(os.dup(sock.fileno())))
        assert srv.address == jn.UnixAddress(path)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            with srv.accept() as stream:
                client.sendall(b"unix")
                assert stream.read(4) == b"unix"
        srv.close()
        assert os.path.exists(path)  # janus_net did not create the file, so close leaves it


def test_bind_adopts_bound_datagram_socket() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer,
    ):
        sock.bind(("127.0.0.1", 0))
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(10)
        with jn.bind(f"fd://{os.dup(sock.fileno())}") as udp:
            assert str(udp.address) == f"127.0.0.1:{sock.getsockname()[1]}"
            peer.sendto(b"ping", sock.getsockname())
            data, source = udp.receive()
            assert (data, source) == (b"ping", jn.Ip4Address(*peer.getsockname()))
            udp.send(source, b"pong")
            assert peer.recvfrom(16) == (b"pong", sock.getsockname())


def test_bind_mode_and_protocol_say_what_the_socket_must_be(lent: list[int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        fd = _lend(lent, tcp)
        with pytest.raises(
            jn.SocketError.InvalidAddress, match=r"stream socket, not a datagram socket as mode=Mode\.DGRAM asks"
        ):
            jn.bind(f"fd://{fd}")
        with pytest.raises(jn.SocketError.InvalidAddress, match="protocol 6, not 17"):
            jn.bind(f"fd://{fd}", mode=jn.Mode.STREAM, protocol=jn.Protocol.UDP)
        _assert_untouched(fd)
        with jn.bind(f"fd://{os.dup(fd)}", mode=jn.Mode.STREAM, protocol=jn.Protocol.TCP) as bound:
            assert bound.address.port == tcp.getsockname()[1]


def test_reject_pipe(lent: list[int]) -> None:
    r, w = os.pipe()
    os.set_inheritable(r, True)
    lent += [r, w]
    with pytest.raises(jn.SocketError.InvalidAddress, match=f"fd {r} is not a socket \\(it is a pipe or FIFO\\)"):
        jn.listen(f"fd://{r}")
    with pytest.raises(jn.SocketError.InvalidAddress, match="not a socket"):
        jn.bind(f"fd://{w}")
    _assert_untouched(r)


def test_reject_regular_file(lent: list[int], tmp_path: pytest.TempPathFactory) -> None:
    fd = os.open(os.path.join(str(tmp_path), "f"), os.O_CREAT | os.O_RDWR)
    lent.append(fd)
    with pytest.raises(jn.SocketError.InvalidAddress, match="not a socket \\(it is a regular file\\)"):
        jn.listen(f"fd://{fd}")


def test_reject_closed_descriptor() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(jn.SocketError.InvalidAddress, match=f"fd {r} is not open") as info:
        jn.listen(f"fd://{r}")
    assert info.value.address == f"fd://{r}" and info.value.errno is None


def test_reject_non_listening_stream(lent: list[int]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        fd = _lend(lent, sock)
        with pytest.raises(jn.SocketError.InvalidAddress, match="stream socket that is not listening"):
            jn.listen(f"fd://{fd}")
        _assert_untouched(fd)


def test_reject_datagram_for_listen(lent: list[int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        fd = _lend(lent, sock)
        with pytest.raises(
            jn.SocketError.InvalidAddress, match="is a datagram socket; listen adopts a listening stream"
        ):
            jn.listen(f"fd://{fd}")
        _assert_untouched(fd)


def test_reject_listener_for_bind(lent: list[int]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        fd = _lend(lent, sock)
        with pytest.raises(
            jn.SocketError.InvalidAddress, match=f"listening stream socket; adopt it with listen\\('fd://{fd}'\\)"
        ):
            jn.bind(f"fd://{fd}", mode=jn.Mode.STREAM)


def test_reject_unbound_datagram_for_bind(lent: list[int]) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        fd = _lend(lent, sock)
        with pytest.raises(jn.SocketError.InvalidAddress, match="not bound to an address"):
            jn.bind(f"fd://{fd}")
        _assert_untouched(fd)


def test_reject_socket_of_unknown_family(lent: list[int]) -> None:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
    except (AttributeError, OSError):
        pytest.skip("no AF_NETLINK here")  # not Linux: the family this test needs does not exist
    with sock:
        sock.bind((0, 0))
        fd = _lend(lent, sock)
        with pytest.raises(jn.SocketError.InvalidAddress, match="cannot adopt: address family"):
            jn.bind(f"fd://{fd}")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"backlog": 5}, "backlog"),
        ({"reuse_address": False}, "reuse_address"),
        ({"reuse_port": True}, "reuse_port"),
        ({"ip6_only": True}, "ip6_only"),
        ({"mode": 0o600}, "mode"),
        ({"unlink_stale": True, "backlog": 1}, "backlog, unlink_stale"),
    ],
)
def test_listen_options_that_cannot_apply_are_refused(lent: list[int], options: dict[str, object], named: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        fd = _lend(lent, sock)
        with pytest.raises(
            jn.SocketError.OptionUnsupported, match=f"^OptionUnsupported: fd://{fd}: {named} cannot apply"
        ):
            jn.listen(f"fd://{fd}", **options)  # type: ignore[arg-type]
        _assert_untouched(fd)
        # The defaults, even spelled out, are what "no option" means.
        jn.listen(f"fd://{os.dup(fd)}", backlog=128, reuse_address=True, reuse_port=False).close()


@pytest.mark.parametrize(("options", "named"), [({"broadcast": True}, "broadcast"), ({"ip6_only": False}, "ip6_only")])
def test_bind_options_that_cannot_apply_are_refused(lent: list[int], options: dict[str, object], named: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        fd = _lend(lent, sock)
        with pytest.raises(jn.SocketError.OptionUnsupported, match=f"{named} cannot apply"):
            jn.bind(f"fd://{fd}", **options)  # type: ignore[arg-type]
        _assert_untouched(fd)


# --- the other profiles


def test_capability_checks_and_audits_the_real_address(lent: list[int]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
        fd = _lend(lent, sock)
        sink = ListSink()
        cap = jn.NetBind("adopter", ports=(), audit=sink)
        with pytest.raises(jn.SocketError.CapabilityDenied):
            jn.listen_with_capability(f"fd://{fd}", cap)
        _assert_untouched(fd)  # denied: the inherited socket is left as it was, open
        cap.allow_port(port)
        with jn.listen_with_capability(f"fd://{os.dup(fd)}", cap) as srv:
            assert srv.address.port == port
        got = [(r.capability_id, r.operation, r.port, r.result, r.address) for r in sink.records]
        assert got == [
            ("adopter", "check_bind_address", port, "denied", f"127.0.0.1:{port}"),
            # Nothing was bound, so no bind_socket record follows.
            ("adopter", "check_bind_address", port, "allowed", f"127.0.0.1:{port}"),
        ]


def test_cancelled_context_leaves_descriptor_untouched(lent: list[int]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        fd = _lend(lent, sock)
        ctx = jn.Context()
        ctx.cancel()
        with pytest.raises(jn.SocketError.Timeout):
            jn.listen_with_context(f"fd://{fd}", ctx)
        _assert_untouched(fd)
        with jn.listen_with_context(f"fd://{os.dup(fd)}", jn.Context()) as srv:
            assert srv.address.port == sock.getsockname()[1]


_AUDIT_CHILD = textwrap.dedent(
    """
    import json, socket, sys
    import janus_net as jn

    events = []
    sys.addaudithook(lambda event, args: events.append(args) if event == "janus_net.bind" else None)
    sock = socket.create_server(("127.0.0.1", 0))
    srv = jn.listen(f"fd://{sock.detach()}")
    srv.close()

    def veto(event, args):
        if event == "janus_net.bind":
            raise PermissionError("vetoed")
    sys.addaudithook(veto)
    sock = socket.create_server(("127.0.0.1", 0))
    vetoed = False
    try:
        jn.listen(f"fd://{sock.fileno()}")
    except PermissionError:
        vetoed = sock.getsockname()[1] > 0  # still open, still the caller's
    sock.close()
    print(json.dumps({"events": events, "vetoed": vetoed}))
    """
)


def test_pep578_event_names_the_fd() -> None:
    out = subprocess.run([sys.executable, "-c", _AUDIT_CHILD], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["vetoed"] is True
    first, second = report["events"]
    assert first[0].startswith("fd://") and first[1] is None
    assert second[0].startswith("fd://")
