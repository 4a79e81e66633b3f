"""Every row of every errno table, injected through the fault seam on the production path.

The parametrisation is derived from `syscalls.TABLES` itself, so a row added to a
table is tested the moment it exists. What cannot be derived is *how* to reach a
syscall from a public operation: `ROUTES` says that, explicitly, per table, and
`test_every_table_has_a_route` fails for a table nobody taught this file to drive.

Each route builds real objects against the real kernel, arms `janus_net.testing.fail`
at the one step under test, runs the public operation and reports what it raised.
The checks: the member (or `ErrnoBug` for a bug errno in debug mode), ``.errno``,
``.syscall``, no descriptor leaked (the autouse fixture, and an explicit count in
subprocesses), and no unix socket file left behind.

Release mode (``JANUS_NET_DEBUG=0``) and the forced CLOEXEC emulation are read at
import, so those rows run in subprocesses: each runs its whole matrix in one go and
reports JSON, to stay fast.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from peers import dial

import janus_net as jn
from janus_net._cli.stop_signals import Stopped
from janus_net._kernel import cell_io, cells, files, loop, processes, socket_options, sockets
from janus_net._kernel import tables as kernel_tables
from janus_net._shim import lib
from janus_net._values import errors
from janus_net._values.errors import ErrnoBug, SocketError
from janus_net.testing import Injection, fail

HERE = Path(__file__).resolve().parent

# An errno none of the tables maps or marks as a bug: it must come out Unexpected.
_UNMAPPED_CANDIDATES = (errno.ENOTRECOVERABLE, errno.EOWNERDEAD, errno.EKEYREVOKED, errno.EKEYREJECTED)


def ip_port(owner: jn.Socket) -> tuple[str, int]:
    address = owner.address
    assert isinstance(address, jn.Ip4Address)
    return address.host, address.port


def unmapped_errno(table: loop.Syscall) -> int:
    return next(e for e in _UNMAPPED_CANDIDATES if e not in table.errors and e not in table.bugs)


def table_label(table: loop.Syscall) -> str:
    """The table's name in its module of the kernel door (``BIND_UNIX``): unique, unlike ``.name``."""
    for area in kernel_tables._AREAS:
        for name, value in vars(area).items():
            if value is table:
                return name
    raise AssertionError(f"{table!r} is in TABLES but not a module attribute of the kernel door")


TABLES = {table_label(t): t for t in kernel_tables.TABLES}


# --- Routes: how each table's syscall is reached from a public operation.


@dataclass
class Outcome:
    """What a route saw: the exception the operation raised (None: it succeeded)."""

    error: BaseException | None
    injection: Injection
    #: Unix socket files the library left behind (must be empty).
    leftover: list[str] = field(default_factory=list)
    #: The address text the error should carry, where the route knows it.
    address: str | None = None


Route = Callable[[Any, Path], Outcome]


def _run(op: Callable[[], object]) -> BaseException | None:
    """Run ``op``; close whatever it returned (it must not have succeeded, usually)."""
    try:
        result = op()
    except BaseException as e:  # KeyboardInterrupt is a legitimate injected outcome
        return e
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return None


def _text(sockname: tuple[str, int]) -> str:
    """``host:port`` from a stdlib IPv4 sockname."""
    return f"{sockname[0]}:{sockname[1]}"


def _leftovers(tmp: Path, expected: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    return sorted(p.name for p in tmp.iterdir() if p.name not in expected)


@contextmanager
def _tcp_pair() -> Iterator[tuple[jn.Server, socket.socket, jn.Stream]]:
    server = jn.listen("127.0.0.1:0")
    try:
        client = dial(server)
        try:
            stream = server.accept()
            try:
                yield server, client, stream
            finally:
                stream.close()
        finally:
            client.close()
    finally:
        server.close()


@contextmanager
def _udp_pair() -> Iterator[tuple[jn.Socket, socket.socket]]:
    sock = jn.bind("127.0.0.1:0")
    try:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            peer.bind(("127.0.0.1", 0))
            yield sock, peer
        finally:
            peer.close()
    finally:
        sock.close()


def listen_ip(name: str) -> Route:
    """listen("127.0.0.1:0") with ``name`` armed: reaches socket .. getsockname."""

    def route(err: Any, tmp: Path) -> Outcome:
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen("127.0.0.1:0"))
        return Outcome(error, inj, _leftovers(tmp), "127.0.0.1:0")

    route.__name__ = "listen_ip"
    return route


def listen_unix(name: str, **options: Any) -> Route:
    """listen("unix:PATH") with ``name`` armed: a file bind created must be gone after."""

    def route(err: Any, tmp: Path) -> Outcome:
        path = str(tmp / "s.sock")
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen("unix:" + path, **options))
        return Outcome(error, inj, _leftovers(tmp), "unix:" + path)

    route.__name__ = "listen_unix" + ("_mode" if options else "")
    return route


def bind_udp(name: str, **options: Any) -> Route:
    """bind("127.0.0.1:0") (datagram) with ``name`` armed."""

    def route(err: Any, tmp: Path) -> Outcome:
        with fail(name, err) as inj:
            error = _run(lambda: jn.bind("127.0.0.1:0", **options))
        return Outcome(error, inj, _leftovers(tmp), "127.0.0.1:0")

    route.__name__ = "bind_udp" + ("_" + "_".join(options) if options else "")
    return route


def bind_unix_dgram(name: str) -> Route:
    """bind("unix:PATH") (datagram) with ``name`` armed."""

    def route(err: Any, tmp: Path) -> Outcome:
        path = str(tmp / "d.sock")
        with fail(name, err) as inj:
            error = _run(lambda: jn.bind("unix:" + path))
        return Outcome(error, inj, _leftovers(tmp), "unix:" + path)

    route.__name__ = "bind_unix_dgram"
    return route


def listen_ip6_only(name: str) -> Route:
    """listen("[::1]:0", ip6_only=True): one more setsockopt (IPV6_V6ONLY)."""

    def route(err: Any, tmp: Path) -> Outcome:
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen("[::1]:0", ip6_only=True))
        return Outcome(error, inj, _leftovers(tmp), "[::1]:0")

    route.__name__ = "listen_ip6_only"
    return route


def accept_tcp(err: Any, tmp: Path) -> Outcome:
    """accept with a real connection pending; afterwards the same connection is accepted."""
    with jn.listen("127.0.0.1:0") as server, dial(server) as client:
        with fail("accept", err) as inj:
            error = _run(server.accept)
        # The injected failure never reached the kernel: the connection is still queued.
        with server.accept() as stream:
            client.sendall(b"ok")
            assert stream.read(2) == b"ok"
    return Outcome(error, inj, _leftovers(tmp), str(server.address))


def accept_unix(err: Any, tmp: Path) -> Outcome:
    """accept on a unix socket file; the file goes when the server closes."""
    path = str(tmp / "a.sock")
    with jn.listen("unix:" + path) as server, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(path)
        with fail("accept", err) as inj:
            error = _run(server.accept)
        server.accept().close()
    return Outcome(error, inj, _leftovers(tmp), "unix:" + path)


def accept_fcntl(err: Any, tmp: Path) -> Outcome:
    """Emulated CLOEXEC: accept() then fcntl fails: the accepted fd must be closed."""
    with jn.listen("127.0.0.1:0") as server, dial(server) as client:
        with fail("fcntl", err) as inj:
            error = _run(server.accept)
        if error is not None:
            # The connection was accepted and then closed by janus_net: the peer sees EOF.
            client.settimeout(5)
            assert client.recv(1) == b""
    return Outcome(error, inj, _leftovers(tmp))


def send_udp(err: Any, tmp: Path) -> Outcome:
    """Socket.send to a real peer; the injected send puts nothing on the wire."""
    with _udp_pair() as (sock, peer):
        dest = _text(peer.getsockname())
        with fail("send", err) as inj:
            error = _run(lambda: sock.send(dest, b"x"))
        sock.send(dest, b"y")
        peer.settimeout(5)
        assert peer.recv(8) == b"y"  # not b"x": the failed send never reached the kernel
    return Outcome(error, inj, _leftovers(tmp), dest)


def send_segments_udp(err: Any, tmp: Path) -> Outcome:
    """Socket.send_segments: the UDP_SEGMENT sendmsg fails; the fallback rows resend with sendmmsg."""
    with _udp_pair() as (sock, peer):
        dest = _text(peer.getsockname())
        with fail("send", err) as inj:
            error = _run(lambda: sock.send_segments(dest, b"ab", 1))
        peer.settimeout(5)
        if error is None:  # a fallback row: both datagrams went by sendmmsg
            assert [peer.recv(8), peer.recv(8)] == [b"a", b"b"]
    return Outcome(error, inj, _leftovers(tmp), dest)


def send_from_udp(err: Any, tmp: Path) -> Outcome:
    """Socket.send(source=...): sendmsg with IP_PKTINFO."""
    with _udp_pair() as (sock, peer):
        dest = _text(peer.getsockname())
        with fail("send", err) as inj:
            error = _run(lambda: sock.send(dest, b"x", source="127.0.0.1:0"))
    return Outcome(error, inj, _leftovers(tmp), dest)


def write_stream(err: Any, tmp: Path) -> Outcome:
    """Stream.write on an accepted connection."""
    with _tcp_pair() as (_server, client, stream):
        with fail("send", err) as inj:
            error = _run(lambda: stream.write(b"x"))
        stream.write_all(b"y")
        client.settimeout(5)
        assert client.recv(8) == b"y"
        address = str(stream.address)
    return Outcome(error, inj, _leftovers(tmp), address)


def receive_udp(err: Any, tmp: Path) -> Outcome:
    """Socket.receive with a datagram queued; it is still there after the failure."""
    with _udp_pair() as (sock, peer):
        peer.sendto(b"x", ip_port(sock))
        with fail("receive", err) as inj:
            error = _run(sock.receive)
        data, source = sock.receive()
        assert (data, source) == (b"x", jn.parse_address(_text(peer.getsockname())))
    return Outcome(error, inj, _leftovers(tmp))


def read_stream(err: Any, tmp: Path) -> Outcome:
    """Stream.read with bytes queued; they are still there after the failure."""
    with _tcp_pair() as (_server, client, stream):
        client.sendall(b"x")
        with fail("receive", err) as inj:
            error = _run(lambda: stream.read(1))
        assert stream.read(1) == b"x"
    return Outcome(error, inj, _leftovers(tmp))


def close_server(err: Any, tmp: Path) -> Outcome:
    """Server.close with close(2) failing: never retried, the Server is closed regardless.

    The injected failure did not reach the kernel, so the fd is still open: we
    prove it with fstat and close it ourselves.
    """
    path = str(tmp / "c.sock")
    server = jn.listen("unix:" + path)
    fd = server.fileno()
    try:
        with fail("close", err) as inj:
            error = _run(server.close)
        assert server.closed and server.fileno() == -1
        assert inj.calls == 1, "close must not be retried"
        server.close()  # idempotent: no second close(2) of a number that may be reused
        assert inj.calls == 1
    finally:
        os.fstat(fd)
        os.close(fd)
    return Outcome(error, inj, _leftovers(tmp))


def shutdown_server(err: Any, tmp: Path) -> Outcome:
    """Server.shutdown (idempotent: it swallows ENOTCONN, an already shut down listener)."""
    with jn.listen("127.0.0.1:0") as server, fail("shutdown", err) as inj:
        error = _run(server.shutdown)
    return Outcome(error, inj, _leftovers(tmp))


def shutdown_fd(err: Any, tmp: Path) -> Outcome:
    """The shutdown wrapper itself, on a real connection: every row as the table says."""
    with _tcp_pair() as (_server, _client, stream), fail("shutdown", err) as inj:
        error = _run(lambda: sockets.shutdown(stream.fileno(), lib.SHUT_RDWR))
    return Outcome(error, inj, _leftovers(tmp))


def send_many_udp(err: Any, tmp: Path) -> Outcome:
    """Socket.send_many: sendmmsg (or sendto) failing on the first datagram raises."""
    with _udp_pair() as (sock, peer):
        dest = _text(peer.getsockname())
        with fail("send", err) as inj:
            error = _run(lambda: sock.send_many([(dest, b"x"), (dest, b"x")]))
        assert sock.send_many([(dest, b"y")]) == 1
        peer.settimeout(5)
        assert peer.recv(8) == b"y"
    return Outcome(error, inj, _leftovers(tmp), dest)


def receive_many_udp(err: Any, tmp: Path) -> Outcome:
    """Socket.receive_many: recvmmsg (or recvfrom) failing; the datagrams stay queued."""
    with _udp_pair() as (sock, peer):
        for data in (b"a", b"b"):
            peer.sendto(data, ip_port(sock))
        with fail("receive", err) as inj:
            error = _run(lambda: sock.receive_many(2))
        got: list[bytes] = []
        while len(got) < 2:
            got += [data for data, _ in sock.receive_many(2)]
        assert got == [b"a", b"b"]
    return Outcome(error, inj, _leftovers(tmp))


def receive_wake_fd(err: Any, tmp: Path) -> Outcome:
    """Socket.receive(ctx=...) with nothing queued: the first wait makes the socket's wake fd."""
    with jn.bind("127.0.0.1:0") as sock, fail("eventfd", err) as inj:
        error = _run(lambda: sock.receive(ctx=jn.Context.with_timeout(10)))
    return Outcome(error, inj, _leftovers(tmp))


def stale_probe(err: Any, tmp: Path) -> Outcome:
    """listen(unix, unlink_stale=True) over a stale file: connect() is the probe.

    Only ECONNREFUSED means stale (the bind then takes the path over); any other
    mapped error leaves the file alone and reports AddressInUse, caused by the
    probe's error, which is what this route returns.
    """
    path = tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as old:
        old.bind(str(path))
    stale_inode = path.stat().st_ino
    with fail("connect", err) as inj:
        error = _run(lambda: jn.listen(f"unix:{path}", unlink_stale=True))
    if isinstance(error, SocketError.AddressInUse) and error.__cause__ is not None:
        assert path.stat().st_ino == stale_inode, "a file that was not proven stale was replaced"
        error = error.__cause__
    if error is None:
        assert not path.exists()  # taken over, then removed by close
    else:
        path.unlink()
    return Outcome(error, inj, _leftovers(tmp, {"stale.sock.lock"}))


def stale_takeover(name: str) -> Route:
    """listen(unix, unlink_stale=True) over a stale file, ``name`` armed (janus_net._profiles.unix_files).

    Reaches the lock (open, fstat, flock) and the kernel's list of bound sockets
    (sock_diag). A failure leaves the stale file as it was; an error while judging the
    file is reported as AddressInUse caused by it (unwrapped here, as for the probe).
    """

    def route(err: Any, tmp: Path) -> Outcome:
        path = tmp / "stale.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as old:
            old.bind(str(path))
        stale_inode = path.stat().st_ino
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen(f"unix:{path}", unlink_stale=True))
        if isinstance(error, SocketError.AddressInUse) and error.__cause__ is not None:
            error = error.__cause__
        if error is None:
            assert not path.exists()  # taken over, then removed by close
        else:
            assert path.stat().st_ino == stale_inode, "a file that was not proven stale was replaced"
            path.unlink()
        return Outcome(error, inj, _leftovers(tmp, {"stale.sock.lock"}), f"unix:{path}")

    route.__name__ = "stale_takeover"
    return route


def listen_unix_widen(name: str) -> Route:
    """listen(unix, mode=0o666) under umask 0o077: the mode is widened after bind, through the inode."""

    def route(err: Any, tmp: Path) -> Outcome:
        path = str(tmp / "w.sock")
        old = os.umask(0o077)
        try:
            with fail(name, err) as inj:
                error = _run(lambda: jn.listen("unix:" + path, mode=0o666))
        finally:
            os.umask(old)
        return Outcome(error, inj, _leftovers(tmp), "unix:" + path)

    route.__name__ = "listen_unix_widen"
    return route


def listen_unix_owner(name: str) -> Route:
    """listen(unix, owner=, group=): fchownat on the verified inode after bind."""

    def route(err: Any, tmp: Path) -> Outcome:
        path = str(tmp / "o.sock")
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen("unix:" + path, owner=os.getuid(), group=os.getgid()))
        return Outcome(error, inj, _leftovers(tmp), "unix:" + path)

    route.__name__ = "listen_unix_owner"
    return route


def getsockopt_fd(err: Any, tmp: Path) -> Outcome:
    """Internal step without a public operation yet: the wrapper on a real listener."""
    with jn.listen("127.0.0.1:0") as server, fail("getsockopt", err) as inj:
        error = _run(lambda: socket_options.getsockopt_int(server.fileno(), lib.SOL_SOCKET, lib.SO_TYPE))
    return Outcome(error, inj, _leftovers(tmp))


def getpeername_fd(err: Any, tmp: Path) -> Outcome:
    """Internal step without a public operation yet: the wrapper on a real connection."""
    with _tcp_pair() as (_server, _client, stream), fail("getpeername", err) as inj:
        error = _run(lambda: sockets.getpeername(stream.fileno()))
    return Outcome(error, inj, _leftovers(tmp))


def accept_with_context(err: Any, tmp: Path) -> Outcome:
    """accept(ctx=...) with nothing pending: it waits in poll, which fails."""
    with jn.listen("127.0.0.1:0") as server, fail("poll", err) as inj:
        error = _run(lambda: server.accept(ctx=jn.Context.with_timeout(10)))
    return Outcome(error, inj, _leftovers(tmp))


def receive_with_context(err: Any, tmp: Path) -> Outcome:
    """Socket.receive(ctx=...) with nothing queued: it waits in poll, which fails."""
    with jn.bind("127.0.0.1:0") as sock, fail("poll", err) as inj:
        error = _run(lambda: sock.receive(ctx=jn.Context.with_timeout(10)))
    return Outcome(error, inj, _leftovers(tmp))


def send_sockets_unix(err: Any, tmp: Path) -> Outcome:
    """jn.send_sockets over a unix stream: the sendmsg carrying the descriptor fails."""
    name = f"unix:@jn-errno-sendmsg-{os.getpid()}"
    with jn.listen(name) as server, jn.connect(name) as tx, server.accept(), jn.listen("127.0.0.1:0") as web:  # noqa: SIM117
        with fail("sendmsg", err) as inj:
            error = _run(lambda: jn.send_sockets(tx, {"web": web}))
    return Outcome(error, inj, _leftovers(tmp))


def receive_sockets_unix(err: Any, tmp: Path) -> Outcome:
    """jn.receive_sockets: the RLIMIT_NOFILE question asked before any descriptor can arrive fails."""
    name = f"unix:@jn-errno-getrlimit-{os.getpid()}"
    with jn.listen(name) as server, jn.connect(name) as tx, server.accept() as rx, jn.listen("127.0.0.1:0") as web:
        jn.send_sockets(tx, {"web": web})
        with fail("getrlimit", err) as inj:
            error = _run(lambda: [sock.close() for sock in jn.receive_sockets(rx).values()])
    return Outcome(error, inj, _leftovers(tmp))


#: How each table is reached. A new table without an entry fails the suite.
ROUTES: dict[str, tuple[Route, ...]] = {
    "SOCKET": (listen_ip("socket"), bind_unix_dgram("socket")),
    "SETSOCKOPT": (listen_ip("setsockopt"), listen_ip6_only("setsockopt"), bind_udp("setsockopt", broadcast=True)),
    "GETSOCKOPT": (getsockopt_fd,),
    "FCNTL": (listen_ip("fcntl"), accept_fcntl),
    "BIND_IP": (listen_ip("bind"), bind_udp("bind")),
    "BIND_UNIX": (listen_unix("bind"), bind_unix_dgram("bind")),
    "LISTEN": (listen_ip("listen"), listen_unix("listen")),
    "GETSOCKNAME": (listen_ip("getsockname"), listen_unix("getsockname"), bind_unix_dgram("getsockname")),
    "GETPEERNAME": (getpeername_fd,),
    "ACCEPT": (accept_tcp, accept_unix),
    "SEND": (send_udp, write_stream, send_many_udp),
    "SEND_SEGMENTS": (send_segments_udp,),
    "SEND_FROM": (send_from_udp,),
    "RECEIVE": (receive_udp, read_stream, receive_many_udp),
    "CLOSE": (close_server,),
    "SHUTDOWN": (shutdown_server, shutdown_fd),
    "CONNECT": (stale_probe,),
    "FCHMOD": (listen_unix("fchmod", mode=0o600),),
    "POLL": (accept_with_context, receive_with_context),
    "OPEN": (stale_takeover("open"), listen_unix_widen("open")),
    "FSTAT": (stale_takeover("fstat"), listen_unix("fstat")),
    "LSTAT": (stale_takeover("lstat"), listen_unix("lstat")),
    "UNLINK": (stale_takeover("unlink"),),
    "CHMOD": (listen_unix_widen("chmod"),),
    "FCHOWN": (listen_unix_owner("fchown"),),
    "FLOCK": (stale_takeover("flock"),),
    "SOCK_DIAG": (stale_takeover("sock_diag"), listen_unix("sock_diag")),
    "SENDMSG": (send_sockets_unix,),
    "EVENTFD": (receive_wake_fd,),
    "GETRLIMIT": (receive_sockets_unix,),
}

# --- The adoption door's probes (janus_net._profiles.adoption): fd://N, and a received stream


def adopt_fd(name: str) -> Route:
    """listen("fd://N") of a lent listening socket with ``name`` armed: the door's first call of it fails.

    The fd is the lender's until adopted: a refusal leaves it open, and the route closes it.
    """

    def route(err: Any, tmp: Path) -> Outcome:
        lent = socket.create_server(("127.0.0.1", 0)).detach()
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen(f"fd://{lent}"))
        if error is not None:
            os.close(lent)
        return Outcome(error, inj, _leftovers(tmp), f"fd://{lent}")

    route.__name__ = "adopt_fd"
    return route


def receive_stream(err: Any, tmp: Path) -> Outcome:
    """receive_sockets of a connected stream: the door asks its peer (getpeername), which fails."""
    name = f"unix:@jn-errno-adopt-{os.getpid()}"
    with jn.listen(name) as server, jn.connect(name) as tx, server.accept() as rx, _tcp_pair() as (_s, _c, stream):
        jn.send_sockets(tx, {"conn": stream})
        with fail("getpeername", err) as inj:
            error = _run(lambda: jn.receive_sockets(rx))
    return Outcome(error, inj, _leftovers(tmp))


ROUTES.update(
    {
        "ADOPT_FSTAT": (adopt_fd("fstat"),),
        "ADOPT_FCNTL": (adopt_fd("fcntl"),),
        "ADOPT_GETSOCKOPT": (adopt_fd("getsockopt"),),
        "ADOPT_GETSOCKNAME": (adopt_fd("getsockname"),),
        "ADOPT_GETPEERNAME": (receive_stream,),
    }
)

#: The door's refusals: a probe's InvalidAddress row (SocketUnconnected for a stream's
#: peer) is worded as what the descriptor is, InvalidAddress for fd://N and
#: ProtocolFailure for a received one, with no errno (the message names it).
_ADOPTION = {"ADOPT_FSTAT", "ADOPT_FCNTL", "ADOPT_GETSOCKOPT", "ADOPT_GETSOCKNAME", "ADOPT_GETPEERNAME"}
_REFUSALS = (SocketError.InvalidAddress, SocketError.SocketUnconnected)


# --- DESIGN §14/§16 (janus_net._policy.netns, janus_net._profiles.socket_options, janus_net._policy.landlock)


def listen_netns(name: str) -> Route:
    """listen(..., netns="/proc/self/ns/net"): the helper thread opens, checks and enters the namespace."""

    def route(err: Any, tmp: Path) -> Outcome:
        with fail(name, err) as inj:
            error = _run(lambda: jn.listen("127.0.0.1:0", netns="/proc/self/ns/net"))
        return Outcome(error, inj, _leftovers(tmp))

    route.__name__ = "listen_netns"
    return route


@dataclass
class _ChildInjection:
    failed: int


# Landlock's last steps (no_new_privs, restrict_self) cannot be undone, so enforce()
# runs with the fault armed in a fresh interpreter, which sends back what it raised.
_ENFORCE_CHILD = """
import base64, pickle, sys
import janus_net as jn
from janus_net.testing import fail
name, err, after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with fail(name, err, after=after) as inj:
    try:
        jn.NetBind("errno-tables", ports=(8080,)).enforce()
        error = None
    except BaseException as exc:
        error = exc
print(base64.b64encode(pickle.dumps((error, inj.failed))).decode())
"""


def enforce_in_child(name: str, after: int = 0) -> Route:
    """NetBind.enforce() in a subprocess with ``name`` armed (``after`` skips the ABI query)."""

    def route(err: Any, tmp: Path) -> Outcome:
        import base64
        import pickle

        proc = subprocess.run(
            [sys.executable, "-c", _ENFORCE_CHILD, name, str(int(err)), str(after)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        error, failed = pickle.loads(base64.b64decode(proc.stdout.splitlines()[-1]))
        return Outcome(error, _ChildInjection(failed), _leftovers(tmp))  # type: ignore[arg-type]

    route.__name__ = "enforce_in_child"
    return route


ROUTES.update(
    {
        "NS_OPEN": (listen_netns("open"),),
        "NS_GET_NSTYPE": (listen_netns("ioctl"),),
        "SETNS": (listen_netns("setns"),),
        "SETSOCKOPT_SERVER": (bind_udp("setsockopt", freebind=True),),
        "LANDLOCK_CREATE_RULESET": (enforce_in_child("landlock_create_ruleset", after=1),),
        "LANDLOCK_ADD_RULE": (enforce_in_child("landlock_add_rule"),),
        "PRCTL": (enforce_in_child("prctl"),),
        "LANDLOCK_RESTRICT_SELF": (enforce_in_child("landlock_restrict_self"),),
        # The filter's availability is asked before anything changes; the filter goes last.
        "SECCOMP_ACTION_AVAIL": (enforce_in_child("seccomp"),),
        "SECCOMP_SET_FILTER": (enforce_in_child("seccomp", after=1),),
    }
)

# --- janus-net run's process calls (janus_net._process.supervisor): the supervisor runs in a fresh
# interpreter, since it reaps any child (waitpid(-1)) and takes over signal handlers.
_SUPERVISE_CHILD = """
import base64, os, pickle, signal, sys
import janus_net as jn
from janus_net._cli.stop_signals import StopSignals
from janus_net._process.supervisor import STOP_SIGNALS, Supervisor
from janus_net.testing import fail

name, err, times, command = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
before = set(os.listdir("/proc/self/fd"))
server = jn.listen("127.0.0.1:0")
sup = Supervisor([("web", server)], command, 60.0, 10.0)
error = status = None
with fail(name, err, times=times) as inj:
    try:
        with StopSignals(STOP_SIGNALS) as stops:
            status = sup.run(stops.fired)
    except BaseException as exc:
        error = exc
server.close()
for pid in (sup.current, sup.pending, *sup.stopping):  # what a failed kill left running
    if pid:
        os.kill(pid, signal.SIGKILL)
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
leaked = sorted(fd for fd in set(os.listdir("/proc/self/fd")) - before if os.path.exists(f"/proc/self/fd/{fd}"))
print(base64.b64encode(pickle.dumps((error, inj.failed, leaked, status))).decode())
"""

#: A command that stops its supervisor (SIGTERM) at once: the supervisor then kills it.
_STOPS_ITS_SUPERVISOR = ["sh", "-c", "kill -TERM $PPID; exec sleep 30"]


def _supervise(name: str, err: int, command: tuple[str, ...], times: int = 1) -> tuple[Any, int, Any]:
    """Run the supervisor child; (what run() raised, calls failed, its status); no descriptor left."""
    import base64
    import pickle

    proc = subprocess.run(
        [sys.executable, "-c", _SUPERVISE_CHILD, name, str(int(err)), str(times), *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    error, failed, leaked, status = pickle.loads(base64.b64decode(proc.stdout.splitlines()[-1]))
    assert not leaked, f"descriptors left open by the supervisor: {leaked}"
    return error, failed, status


def supervise_in_child(name: str, command: tuple[str, ...] = ("true",)) -> Route:
    """`janus-net run`'s supervisor (one --listen socket) in a subprocess with ``name`` armed.

    Reaches the wake pipe, the random notify name, the copies of the sockets, the spawn,
    and (while the command runs or ends) read, waitpid and kill.
    """

    def route(err: Any, tmp: Path) -> Outcome:
        error, failed, _status = _supervise(name, err, command)
        return Outcome(error, _ChildInjection(failed), _leftovers(tmp))  # type: ignore[arg-type]

    route.__name__ = "supervise_in_child" + ("_stopped" if command != ("true",) else "")
    return route


def dup2_fd(err: Any, tmp: Path) -> Outcome:
    """The dup2 wrapper (janus-net points stdout at /dev/null with it after a failed write) on real fds."""
    source = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    target = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with fail("dup2", err) as inj:
            error = _run(lambda: processes.dup2(source, target))
    finally:
        os.close(source)
        os.close(target)
    return Outcome(error, inj, _leftovers(tmp))


ROUTES.update(
    {
        "RANDOM": (supervise_in_child("getrandom"),),
        "PIPE": (supervise_in_child("pipe"),),
        "DUP_ABOVE": (supervise_in_child("fcntl"),),
        "SPAWN": (supervise_in_child("spawn"),),
        "READ": (supervise_in_child("read"),),
        "WAITPID": (supervise_in_child("waitpid"),),
        "KILL": (supervise_in_child("kill", tuple(_STOPS_ITS_SUPERVISOR)),),
        "DUP2": (dup2_fd,),
    }
)


def load_resolv_conf(name: str) -> Route:
    """`ResolverConfig.load` of a named resolv.conf: the small-file read (open, read) with ``name`` armed."""

    def route(err: Any, tmp: Path) -> Outcome:
        conf = tmp / "resolv.conf"
        conf.write_text("nameserver 127.0.0.1\noptions ndots:2\n")
        with fail(name, err) as inj:
            error = _run(lambda: jn.ResolverConfig.load(resolv_conf=str(conf), hosts=str(conf)))
        return Outcome(error, inj, _leftovers(tmp, {"resolv.conf"}))

    route.__name__ = f"load_resolv_conf_{name}"
    return route


ROUTES.update({"OPEN_READ": (load_resolv_conf("open"),), "READ_FILE": (load_resolv_conf("read"),)})

#: Routes this process never reaches, because CLOEXEC is native here: they run in a
#: subprocess with JANUS_NET_FORCE_CLOEXEC_EMULATION=1 (socket()+fcntl, accept()+fcntl).
EMULATED = {("FCNTL", "listen_ip"), ("FCNTL", "accept_fcntl")}


def expected(label: str, err: int, debug: bool, route: str) -> type[BaseException] | None:
    """What ``route`` must raise for ``err`` from table ``label`` (None: nothing)."""
    table = TABLES[label]
    if err in table.bugs:
        return ErrnoBug if debug else SocketError.Unexpected
    if label in _ADOPTION and table.errors.get(err) in _REFUSALS:
        return SocketError.ProtocolFailure if route == "receive_stream" else SocketError.InvalidAddress
    if table is cells.CLOSE:
        return None  # close ignores every error but the bug errnos
    if table is sockets.CONNECT and err == errno.ECONNREFUSED:
        return None  # the probe's "stale": the bind takes the path over and succeeds
    if table is cell_io.SEND_SEGMENTS and table.errors.get(err) is SocketError.OptionUnsupported:
        return None  # the route cannot segment: send_segments falls back to sendmmsg
    if table in (files.LSTAT, files.UNLINK) and route == "stale_takeover" and err == errno.ENOENT:
        # "The file is gone already" needs nothing: the bind that follows finds the real
        # (still stale) file, which is judged again and taken over.
        return None
    if route == "shutdown_server" and err == errno.ENOTCONN:
        return None  # Server.shutdown() is idempotent: ENOTCONN means "already shut down"
    if (
        table is files.SOCK_DIAG
        and route == "listen_unix"
        and table.errors.get(err) in (SocketError.ProtocolUnsupportedBySystem, SocketError.AccessDenied)
    ):
        return None  # no sock_diag: the identity falls back to the path (docs/unix-files.md)
    return table.errors.get(err, SocketError.Unexpected)


def check(label: str, err: int, route: str, outcome: Outcome, debug: bool) -> None:
    """The assertions shared by the in-process and subprocess runs."""
    table = TABLES[label]
    want = expected(label, err, debug, route)
    assert outcome.injection.failed == 1, f"the fault was not reached: {outcome.injection!r}"
    assert not outcome.leftover, f"unix socket files left behind: {outcome.leftover}"
    if want is None:
        assert outcome.error is None, f"expected success, got {outcome.error!r}"
        return
    error = outcome.error
    assert type(error) is want, f"expected {want.__name__}, got {error!r}"
    assert isinstance(error, (SocketError, ErrnoBug))
    if label in _ADOPTION and table.errors.get(err) in _REFUSALS:
        # A refusal of the adoption door: no errno of its own, the kernel's answer in words.
        assert error.errno is None and f"{table.name}: {errors.errno_name(err)}" in str(error), str(error)
        return
    assert error.errno == err
    assert error.syscall == table.name
    if want is ErrnoBug:
        assert not isinstance(error, OSError)
        assert str(error).startswith(f"programmer bug caused syscall error: {errors.errno_name(err)}")
    elif outcome.address is not None and table.name in ("bind", "listen", "accept", "send"):
        assert isinstance(error, SocketError) and error.address == outcome.address


# --- The matrices, derived from TABLES.


def _cases(kind: str) -> list[tuple[str, int, str]]:
    cases = []
    for label, table in TABLES.items():
        errnos = {
            "mapped": sorted(table.errors),
            "bug": sorted(table.bugs),
            "unmapped": [unmapped_errno(table)],
        }[kind]
        for err in errnos:
            for route in ROUTES.get(label, ()):
                cases.append((label, err, route.__name__))
    return cases


def _route(label: str, name: str) -> Route:
    return next(r for r in ROUTES[label] if r.__name__ == name)


MAPPED = _cases("mapped")
BUGS = _cases("bug")
UNMAPPED = _cases("unmapped")


def _in_process(cases: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    return [c for c in cases if (c[0], c[2]) not in EMULATED]


def _emulated(cases: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    return [c for c in cases if (c[0], c[2]) in EMULATED]


def _by_table(cases: list[tuple[str, int, str]]) -> dict[str, list[tuple[str, int, str]]]:
    """One test per table, running every (errno, route) of it and reporting each failure.

    Per case it would be some 300 tests, and the autouse fd check's full gc per test
    would then cost several times the cases themselves.
    """
    tables: dict[str, list[tuple[str, int, str]]] = {}
    for case in _in_process(cases):
        tables.setdefault(case[0], []).append(case)
    return tables


def _run_table(cases: list[tuple[str, int, str]], debug: bool) -> None:
    failures = []
    for label, err, name in cases:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                check(label, err, name, _route(label, name)(err, Path(tmp)), debug)
            except AssertionError as e:
                failures.append(f"{errors.errno_name(err)} via {name}: {e}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("label", _by_table(MAPPED))
def test_mapped_errnos(label: str) -> None:
    _run_table(_by_table(MAPPED)[label], debug=True)


@pytest.mark.parametrize("label", _by_table(BUGS))
def test_bug_errnos_are_errnobug_in_debug_mode(label: str) -> None:
    assert errors.DEBUG, "the suite runs in debug mode; release mode runs in a subprocess"
    _run_table(_by_table(BUGS)[label], debug=True)


@pytest.mark.parametrize("label", _by_table(UNMAPPED))
def test_unmapped_errno_is_unexpected(label: str) -> None:
    _run_table(_by_table(UNMAPPED)[label], debug=True)


# DESIGN §5, transcribed: the public tables must say exactly this (the internal ones,
# getsockopt .. poll, are the library's own and only need a route).
_RESOURCES = {"ENOBUFS": "SystemResources", "ENOMEM": "SystemResources"}
_BIND = {
    "EACCES": "AccessDenied",
    "EADDRINUSE": "AddressInUse",
    "EAFNOSUPPORT": "AddressFamilyUnsupported",
    "EADDRNOTAVAIL": "AddressUnavailable",
    "ENOMEM": "SystemResources",
    "ENODEV": "AddressUnavailable",  # added row: a zone naming no interface
}
DESIGN_5: dict[str, tuple[dict[str, str], set[str]]] = {
    "SOCKET": (
        {
            "EAFNOSUPPORT": "AddressFamilyUnsupported",
            "EINVAL": "ProtocolUnsupportedBySystem",
            "EMFILE": "ProcessFdQuotaExceeded",
            "ENFILE": "SystemFdQuotaExceeded",
            **_RESOURCES,
            "EPROTONOSUPPORT": "ProtocolUnsupportedByAddressFamily",
            "EPROTOTYPE": "SocketModeUnsupported",
            "ESOCKTNOSUPPORT": "SocketModeUnsupported",  # added row
            "EACCES": "AccessDenied",
        },
        set(),
    ),
    "SETSOCKOPT": (
        {"ENOPROTOOPT": "OptionUnsupported", "EOPNOTSUPP": "OptionUnsupported", **_RESOURCES},  # added row
        {"EBADF", "ENOTSOCK", "EINVAL", "EFAULT"},
    ),
    "FCNTL": ({}, {"EBADF"}),
    "BIND_IP": (_BIND, {"EBADF", "ENOTSOCK", "EFAULT", "EINVAL"}),
    "BIND_UNIX": (
        {
            **_BIND,
            "ELOOP": "SymLinkLoop",
            "ENOENT": "FileNotFound",
            "ENOTDIR": "NotDir",
            "EROFS": "ReadOnlyFileSystem",
            "EPERM": "AccessDenied",
        },
        {"EBADF", "ENOTSOCK", "EFAULT", "EINVAL", "ENAMETOOLONG"},
    ),
    "LISTEN": ({"EADDRINUSE": "AddressInUse", "EOPNOTSUPP": "SocketModeUnsupported"}, {"EBADF", "ENOTSOCK"}),
    "GETSOCKNAME": ({"ENOBUFS": "SystemResources"}, {"EBADF", "EFAULT", "EINVAL", "ENOTSOCK"}),
    "ACCEPT": (
        {
            "ECONNABORTED": "ConnectionAborted",
            "EINVAL": "SocketNotListening",
            "EMFILE": "ProcessFdQuotaExceeded",
            "ENFILE": "SystemFdQuotaExceeded",
            **_RESOURCES,
            "EPROTO": "ProtocolFailure",
            "EPERM": "BlockedByFirewall",
        },
        {"EBADF", "EFAULT", "ENOTSOCK", "EOPNOTSUPP"},
    ),
    "SEND": (
        {
            "EACCES": "AccessDenied",
            "ECONNREFUSED": "ConnectionRefused",
            "ECONNRESET": "ConnectionResetByPeer",
            "EMSGSIZE": "MessageTooBig",
            **_RESOURCES,
            "EHOSTUNREACH": "HostUnreachable",
            "ENETUNREACH": "NetworkUnreachable",
            "ENETDOWN": "NetworkSubsystemDown",
            "EAFNOSUPPORT": "AddressFamilyUnsupported",
            "EPIPE": "SocketUnconnected",
            "ENOTCONN": "SocketUnconnected",
            # Added rows: a destination the kernel rejects, a socket of the wrong kind,
            # and a unix destination's file system answers.
            "EINVAL": "AddressUnavailable",
            "EISCONN": "SocketModeUnsupported",
            "EOPNOTSUPP": "SocketModeUnsupported",
            "ENOENT": "FileNotFound",
            "ENOTDIR": "NotDir",
            "ELOOP": "SymLinkLoop",
            "EPROTOTYPE": "SocketModeUnsupported",
            # Added rows a peer or another process causes: a unix destination connected
            # to someone else, a connection destroyed from outside, a peer gone silent.
            "EPERM": "AccessDenied",
            "ECONNABORTED": "ConnectionAborted",
            "ETIMEDOUT": "ConnectionTimedOut",
        },
        {"EBADF", "EDESTADDRREQ", "EFAULT", "ENOTSOCK"},
    ),
    "RECEIVE": (
        {
            "ECONNREFUSED": "ConnectionRefused",
            "ECONNRESET": "ConnectionResetByPeer",
            **_RESOURCES,
            "ENOTCONN": "SocketUnconnected",
            "EINVAL": "SocketUnconnected",  # added row: a read on an unconnected unix stream
            "ETIMEDOUT": "ConnectionTimedOut",
            "ENETDOWN": "NetworkSubsystemDown",
        },
        {"EBADF", "EFAULT", "ENOTSOCK", "EOPNOTSUPP"},
    ),
    "CLOSE": ({}, {"EBADF"}),
}


@pytest.mark.parametrize("label", sorted(DESIGN_5))
def test_public_tables_are_design_section_5(label: str) -> None:
    table = TABLES[label]
    mapped, bugs = DESIGN_5[label]
    # EOPNOTSUPP and ENOTSUP are one number on Linux: compare numbers, not names.
    assert {e: m.__name__ for e, m in table.errors.items()} == {getattr(errno, n): m for n, m in mapped.items()}
    assert set(table.bugs) == {getattr(errno, name) for name in bugs}
    assert table.retry_eintr is (table is not cells.CLOSE)


def test_every_table_has_a_route() -> None:
    """A new syscall table needs a route here, or its rows would go untested."""
    missing = sorted(set(TABLES) - set(ROUTES))
    assert not missing, f"tables without a route in test_errno_tables.ROUTES: {missing}"
    assert not set(ROUTES) - set(TABLES), "routes for tables that no longer exist"


def test_every_row_is_covered() -> None:
    """The (table, errno) pairs exercised are exactly the rows of TABLES, mapped and bug."""
    rows = {(label, err) for label, t in TABLES.items() for err in (*t.errors, *t.bugs)}
    covered = {(label, err) for label, err, _ in MAPPED + BUGS}
    assert covered == rows
    # Each route of a table runs each of its rows.
    for label, table in TABLES.items():
        per_route = {name for lab, _, name in MAPPED + BUGS if lab == label}
        if table.errors or table.bugs:
            assert per_route == {r.__name__ for r in ROUTES[label]}


# --- Subprocess matrices: release mode, and the emulated CLOEXEC path.


def _child(cases: list[tuple[str, int, str]], env: dict[str, str]) -> list[dict[str, Any]]:
    script = f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_errno_tables as t; t.child_main()"
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def child_main() -> None:
    """Run the cases in argv[1] in this process and print one JSON result per case."""
    # The signal wakeup pipe lasts for the process (made by the first wait on the main
    # thread): made here, as the conftest does, not inside whichever case waits first.
    from janus_net._policy import wakeup

    wakeup.install()
    results = []
    wakeup.install()  # the signal wakeup pipe janus_net keeps once made: made before the first count
    # gc.collect only when an fd seems left over (a Context's wake fd is closed when the
    # context is collected, and a traceback may hold it): collecting after every case
    # would cost more than the cases. The autouse fixture does the same in-process.
    for label, err, name in json.loads(sys.argv[1]):
        before = set(os.listdir("/proc/self/fd"))
        with tempfile.TemporaryDirectory() as tmp:
            try:
                check(label, err, name, _route(label, name)(err, Path(tmp)), debug=errors.DEBUG)
                failure = None
            except BaseException as e:  # report, do not stop the matrix
                failure = f"{type(e).__name__}: {e}"
        leaked = _new_fds(before)
        if leaked:
            gc.collect()
            leaked = _new_fds(before)
        results.append({"case": [label, err, name], "failure": failure, "leaked": leaked})
    print(json.dumps(results))


def _new_fds(before: set[str]) -> list[str]:
    fds = sorted(set(os.listdir("/proc/self/fd")) - before)
    return [fd for fd in fds if os.path.exists(f"/proc/self/fd/{fd}")]  # not listdir's own fd


def _assert_child_results(results: list[dict[str, Any]], cases: list[tuple[str, int, str]]) -> None:
    assert [tuple(r["case"]) for r in results] == [tuple(c) for c in cases]
    bad = [r for r in results if r["failure"] or r["leaked"]]
    assert not bad, json.dumps(bad, indent=1)


def test_bug_errnos_are_unexpected_in_release_mode() -> None:
    """JANUS_NET_DEBUG=0: every bug row becomes SocketError.Unexpected; nothing leaks."""
    cases = _in_process(BUGS)
    results = _child(cases, {"JANUS_NET_DEBUG": "0"})
    _assert_child_results(results, cases)


@pytest.mark.parametrize("debug", ["1", "0"])
def test_fcntl_rows_under_forced_cloexec_emulation(debug: str) -> None:
    """fcntl(F_SETFD) after socket() and accept(): a failure closes the new fd, every row."""
    cases = _emulated(MAPPED + BUGS + UNMAPPED)
    assert cases, "the fcntl table has rows to run"
    results = _child(cases, {"JANUS_NET_DEBUG": debug, "JANUS_NET_FORCE_CLOEXEC_EMULATION": "1"})
    _assert_child_results(results, cases)


# --- EINTR and the checkpoints.


def test_eintr_is_retried_transparently() -> None:
    with fail("bind", errno.EINTR, times=3) as inj, jn.listen("127.0.0.1:0") as server:
        assert server.address.port != 0
    assert (inj.calls, inj.failed) == (4, 3)


def test_eintr_in_bind_runs_the_checkpoint_each_time() -> None:
    """Five checkpoints, plus one per EINTR retry: 5 + 3, and the listen succeeds."""

    class Counting(jn.Context):
        checks = 0

        def check(self) -> None:
            type(self).checks += 1
            super().check()

    ctx = Counting()
    with fail("bind", errno.EINTR, times=3) as inj, jn.listen_with_context("127.0.0.1:0", ctx) as server:
        assert server.address.port != 0
    assert inj.failed == 3
    assert Counting.checks == 5 + 3


def test_close_eintr_is_not_retried_and_leaves_the_server_closed(tmp_path: Path) -> None:
    outcome = close_server(errno.EINTR, tmp_path)
    assert outcome.error is None and outcome.injection.calls == 1
    assert not outcome.leftover


@pytest.mark.parametrize("name", ["getrandom", "pipe", "fcntl", "spawn", "read", "waitpid"])
def test_eintr_in_the_process_calls_is_retried(name: str) -> None:
    """os.* retried EINTR inside CPython; the door's loop retries it (running the checkpoint) instead."""
    error, failed, status = _supervise(name, errno.EINTR, ("sh", "-c", "exit 7"), times=3)
    assert error is None and failed == 3
    assert status == 7  # the command ran and its status came back


def test_eintr_in_kill_is_retried() -> None:
    error, failed, _ = _supervise("kill", errno.EINTR, tuple(_STOPS_ITS_SUPERVISOR), times=3)
    assert failed == 3
    assert isinstance(error, Stopped) and error.signum == signal.SIGTERM  # stopped, reaped, then raised
