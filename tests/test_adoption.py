"""The adoption door (janus_net._profiles.adoption): every kind of descriptor, through every door.

A descriptor janus_net did not make reaches it by four doors: ``fd://N`` in
``listen``/``bind``, ``listen_fds`` (socket activation), ``receive_sockets``
(SCM_RIGHTS) and ``handoff.take``. The zoo below hands each of them every kind of
descriptor a process can hold -- a closed number, an O_PATH handle of a socket file
(fstat says "socket", every socket call says EBADF), an AF_XDP socket (no
getsockname), netlink and packet sockets, a pipe, epoll, eventfd, pidfd, signalfd,
memfd, a directory, /dev/null -- and checks, per door:

* the typed refusal: ``InvalidAddress`` naming what the descriptor is for ``fd://``
  and ``listen_fds``; ``ProtocolFailure`` for ``receive_sockets`` and ``take``;
* a descriptor the caller named is still open afterwards, the same file with the
  same flags; a received one is closed exactly once (the fd table ends as it began);
* a descriptor a janus_net owner holds (any kind, or a cell still being set up) is
  refused and never touched: the owner still works; a dup of it is adopted.

And the capability is judged with the socket's real protocol (UDP-Lite, MPTCP).
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import errno
import fcntl
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import open_fds as listed_fds
from peers import dial, run_child

import janus_net as jn
from janus_net._kernel import owners as kernel_owners
from janus_net._process.transfer import HEADER, LAST, MAGIC, VERSION
from janus_net.audit import ListSink
from janus_net.testing import hold

PACKAGE = Path(jn.__file__).resolve().parent
IPPROTO_UDPLITE = 136
IPPROTO_MPTCP = 262
AF_XDP = 44

# --- The zoo: each maker returns the descriptor and what must be closed after (the fd included).


def _signalfd() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.create_string_buffer(128)  # sigset_t, empty: the descriptor is what matters
    fd = libc.signalfd(-1, mask, os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "signalfd")
    return int(fd)


class Zoo:
    """Makes the descriptors of one test and closes them (and only them) at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.owned: list[int] = []
        self.keep: list[object] = []

    def _fd(self, fd: int) -> int:
        self.owned.append(fd)
        return fd

    def _sock(self, sock: socket.socket) -> int:
        return self._fd(sock.detach())

    def make(self, kind: str) -> int:
        if kind == "closed":
            fd = os.open(os.devnull, os.O_RDONLY)
            os.close(fd)
            return fd
        if kind == "O_PATH socket file":
            path = str(self.tmp / f"s{len(self.owned)}.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            sock.listen()
            self._sock(sock)  # a live, listening socket: the handle names a real one
            return self._fd(os.open(path, os.O_PATH))
        if kind == "AF_XDP":
            return self._sock(socket.socket(AF_XDP, socket.SOCK_RAW))
        if kind == "netlink":
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
            sock.bind((0, 0))
            return self._sock(sock)
        if kind == "packet":
            return self._sock(socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0))
        if kind == "pipe":
            r, w = os.pipe()
            self._fd(w)
            return self._fd(r)
        if kind == "epoll":
            with select.epoll() as ep:
                return self._fd(os.dup(ep.fileno()))
        if kind == "eventfd":
            return self._fd(os.eventfd(0))
        if kind == "pidfd":
            return self._fd(os.pidfd_open(os.getpid()))
        if kind == "signalfd":
            return self._fd(_signalfd())
        if kind == "memfd":
            return self._fd(os.memfd_create("jn-zoo"))
        if kind == "directory":
            return self._fd(os.open(str(self.tmp), os.O_RDONLY | os.O_DIRECTORY))
        if kind == "/dev/null":
            return self._fd(os.open(os.devnull, os.O_RDWR))
        raise AssertionError(kind)

    def close(self) -> None:
        for fd in self.owned:
            os.close(fd)


#: kind -> what the refusal says it is.
KINDS = {
    "closed": "is not open",
    "O_PATH socket file": "O_PATH handle of a socket file",
    "AF_XDP": "cannot adopt: address family 44",
    "netlink": "cannot adopt: address family 16",
    "packet": "cannot adopt: address family 17",
    "pipe": r"not a socket \(it is a pipe or FIFO\)",
    "epoll": "not a socket .it is an anonymous inode",
    "eventfd": "not a socket .it is an anonymous inode",
    "pidfd": "not a socket .it is an anonymous inode",
    "signalfd": "not a socket .it is an anonymous inode",
    "memfd": r"not a socket \(it is a regular file\)",
    "directory": r"not a socket \(it is a directory\)",
    "/dev/null": r"not a socket \(it is a character device\)",
}
SENDABLE = [kind for kind in KINDS if kind != "closed"]


@pytest.fixture
def zoo(tmp_path: Path) -> Iterator[Zoo]:
    made = Zoo(tmp_path)
    try:
        yield made
    finally:
        made.close()


def open_fds() -> set[int]:
    """The open descriptors, without the one the listing itself used."""
    return {fd for fd in listed_fds() if identity(fd) is not None}


def identity(fd: int) -> tuple[int, int, int, int] | None:
    """What the fd is (device, inode, file type and mode, status flags), None when it is not open."""
    try:
        st = os.fstat(fd)
    except OSError as e:
        assert e.errno == errno.EBADF
        return None
    return (st.st_dev, st.st_ino, st.st_mode, fcntl.fcntl(fd, fcntl.F_GETFL))


# --- Door 1: fd://N in listen and bind


@pytest.mark.parametrize("door", ["listen", "bind", "bind STREAM"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_fd_door_refuses_every_kind_and_leaves_it_as_it_was(zoo: Zoo, kind: str, door: str) -> None:
    fd = zoo.make(kind)
    before, was = open_fds(), identity(fd)
    adopt: Callable[[], object] = {
        "listen": lambda: jn.listen(f"fd://{fd}"),
        "bind": lambda: jn.bind(f"fd://{fd}"),
        "bind STREAM": lambda: jn.bind(f"fd://{fd}", mode=jn.Mode.STREAM),
    }[door]
    with pytest.raises(jn.SocketError.InvalidAddress, match=KINDS[kind]) as info:
        adopt()
    assert type(info.value) is jn.SocketError.InvalidAddress
    assert info.value.address == f"fd://{fd}" and f"fd {fd} " in str(info.value)
    assert identity(fd) == was  # the caller's descriptor: still open (or still closed), untouched
    assert open_fds() == before


# --- Door 2: listen_fds, as a service manager starts a service (the fd at 3, LISTEN_PID ours)

_LISTEN_FDS_ZOO = """
import ctypes, fcntl, json, os, select, socket, sys, tempfile
sys.path.insert(0, {tests!r})
from pathlib import Path
import janus_net as jn
from test_adoption import Zoo, identity

assert not os.path.exists("/proc/self/fd/3"), "fd 3 must be free for the passed descriptor"
report = {{}}
with tempfile.TemporaryDirectory() as tmp:
    for kind in {kinds!r}:
        assert os.open(os.devnull, os.O_RDONLY) == 3  # held while the zoo is made, so none of it lands at 3
        zoo = Zoo(Path(tmp))
        fd = zoo.make(kind)
        if kind == "closed":
            os.close(3)
        else:
            os.dup2(fd, 3)
        was = identity(3)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
        try:
            got = jn.listen_fds()
            outcome = ["adopted", sorted(got)]
            for sock in got.values():
                sock.close()
        except jn.SocketError as e:
            outcome = [type(e).__name__, str(e), e.address]
        report[kind] = {{"outcome": outcome, "untouched": identity(3) == was, "env": "LISTEN_FDS" in os.environ}}
        if kind != "closed":
            os.close(3)
        zoo.close()
print(json.dumps(report))
"""


def test_listen_fds_door_refuses_every_kind_and_leaves_it_open() -> None:
    report = run_child(_LISTEN_FDS_ZOO.format(tests=str(Path(__file__).parent), kinds=list(KINDS)))
    for kind, why in KINDS.items():
        got = report[kind]
        assert isinstance(got, dict)
        name, message, _address = got["outcome"]
        assert name == "InvalidAddress", (kind, got)
        assert re.search(why, message) and "fd 3 " in message, (kind, message)
        assert got["untouched"] and not got["env"], (kind, got)


# --- Door 3: receive_sockets from a hostile sender (a valid frame, a raw descriptor)


@contextmanager
def channel() -> Iterator[tuple[socket.socket, jn.Stream]]:
    """(the hostile sender's stdlib end, the receiver's janus_net end) of a unix stream."""
    name = f"unix:@jn-adoption-{os.getpid()}-{time.monotonic_ns()}"
    with jn.listen(name) as server:
        tx = jn.connect(name)
        rx = server.accept()
    sender = socket.socket(fileno=os.dup(tx.fileno()))
    tx.close()
    try:
        yield sender, rx
    finally:
        sender.close()
        rx.close()


def frame(kind_code: int, name: str = "it") -> bytes:
    body = struct.pack("!BB", kind_code, len(name)) + name.encode()
    return HEADER.pack(MAGIC, VERSION, LAST, 1, 1, len(body)) + body


def send_raw(sender: socket.socket, fd: int, kind_code: int) -> None:
    sender.sendmsg([frame(kind_code)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])


@pytest.mark.parametrize("announced", [1, 2, 3], ids=["server", "socket", "stream"])
@pytest.mark.parametrize("kind", SENDABLE)
def test_receive_door_refuses_every_kind_and_closes_what_it_received_once(zoo: Zoo, kind: str, announced: int) -> None:
    fd = zoo.make(kind)
    was = identity(fd)
    with channel() as (sender, rx):
        before = open_fds()
        send_raw(sender, fd, announced)
        with pytest.raises(jn.SocketError.ProtocolFailure, match=KINDS[kind]) as info:
            jn.receive_sockets(rx)
        assert type(info.value) is jn.SocketError.ProtocolFailure
        # The received copy is closed (and only it: the table is as before the send).
        assert open_fds() == before
    assert identity(fd) == was  # the sender's own descriptor is untouched


def test_receive_refusal_closes_the_received_copy_exactly_once(zoo: Zoo) -> None:
    # A double close would free a number twice: the second close would hit whatever took
    # the number in between. Sentinels take the lowest free numbers after the refusal,
    # and they must all still be open and theirs.
    fd = zoo.make("pidfd")
    with channel() as (sender, rx):
        send_raw(sender, fd, 1)
        before = open_fds()
        with pytest.raises(jn.SocketError.ProtocolFailure):
            jn.receive_sockets(rx)
        sentinels = [os.open(os.devnull, os.O_RDONLY) for _ in range(8)]
        try:
            import gc

            gc.collect()  # any backstop of a received descriptor has run now
            assert all(identity(s) is not None for s in sentinels)
            assert open_fds() == before | set(sentinels)
        finally:
            for s in sentinels:
                os.close(s)


# --- Door 4: handoff.take from a hostile predecessor


@contextmanager
def hostile_predecessor(fd: int, kind_code: int) -> Iterator[str]:
    """A stdlib process-alike at an abstract address that sends ``fd`` with a valid frame to whoever connects."""
    name = f"@jn-adoption-take-{os.getpid()}-{time.monotonic_ns()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name[1:])
    listener.listen()
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            send_raw(conn, fd, kind_code)
            done.wait(30)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield "unix:" + name
    finally:
        done.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize("kind", SENDABLE)
def test_take_door_refuses_every_kind(zoo: Zoo, kind: str) -> None:
    fd = zoo.make(kind)
    was = identity(fd)
    before = open_fds()
    with hostile_predecessor(fd, 1) as address, pytest.raises(jn.SocketError.ProtocolFailure, match=KINDS[kind]):
        jn.handoff.take(address)
    assert open_fds() == before  # the received copy and the channel are closed
    assert identity(fd) == was


# --- The number changes under the door: another thread closes it or dup2s a pipe over it


@pytest.mark.parametrize("change", ["closed", "a pipe dup2'd over it"])
def test_a_number_changed_between_the_probes_is_a_typed_refusal(change: str) -> None:
    # fstat said "socket"; then the caller's other thread changes what the number is
    # before the next probe. The kernel's EBADF/ENOTSOCK there is the caller's doing:
    # a typed refusal, never ErrnoBug.
    server = socket.create_server(("127.0.0.1", 0))
    fd = server.detach()
    r, w = os.pipe()
    outcome: list[BaseException | object] = []
    try:
        with hold("fstat") as held:
            thread = threading.Thread(target=lambda: outcome.append(_attempt(lambda: jn.listen(f"fd://{fd}"))))
            thread.start()
            assert held.returned.wait(30)
            if change == "closed":
                os.close(fd)
            else:
                os.dup2(r, fd)
            held.release()
            thread.join()
        [error] = outcome
        assert type(error) is jn.SocketError.InvalidAddress, error
        expected = "is not open .fcntl: EBADF" if change == "closed" else "is not a socket .getsockopt: ENOTSOCK"
        assert re.search(expected, str(error)), error
        if change != "closed":
            assert identity(fd) == identity(r)  # the pipe the caller put there, untouched
    finally:
        if change != "closed":
            os.close(fd)
        os.close(r)
        os.close(w)


def _attempt(op: Callable[[], object]) -> BaseException | object:
    try:
        return op()
    except BaseException as e:
        return e


# --- Owners: never two for one descriptor; dups are allowed


def _serves(server: jn.Server) -> None:
    with dial(server) as client, server.accept() as conn:
        client.sendall(b"still mine")
        assert conn.read(10) == b"still mine"


def test_a_live_streams_fd_is_refused_by_bind_stream_and_the_stream_still_works() -> None:
    with jn.listen("127.0.0.1:0") as server, dial(server) as client, server.accept() as stream:
        fd = stream.fileno()
        with pytest.raises(jn.SocketError.InvalidAddress, match="already owned by"):
            jn.bind(f"fd://{fd}", mode=jn.Mode.STREAM)
        assert kernel_owners.owner_of(fd) is stream
        stream.write_all(b"after the refusal")
        assert client.recv(100) == b"after the refusal"
        client.sendall(b"both ways")
        assert stream.read(9) == b"both ways"


def test_an_accepted_fd_in_flight_before_its_stream_exists_is_refused() -> None:
    # accept(2) has written the new fd into its cell; the Stream is not made yet.
    with jn.listen("127.0.0.1:0") as server, dial(server) as client:
        before = open_fds()
        got: list[jn.Stream] = []
        with hold("accept") as held:
            thread = threading.Thread(target=lambda: got.append(server.accept()))
            thread.start()
            assert held.returned.wait(30)
            [fd] = open_fds() - before
            holder = kernel_owners.owner_of(fd)
            assert isinstance(holder, kernel_owners.InFlight)
            with pytest.raises(jn.SocketError.InvalidAddress, match="already owned by janus_net"):
                jn.bind(f"fd://{fd}", mode=jn.Mode.STREAM)
            held.release()
            thread.join()
        with got[0] as stream:
            assert stream.fileno() == fd
            client.sendall(b"in flight")
            assert stream.read(9) == b"in flight"


def test_a_received_fd_not_claimed_yet_is_refused() -> None:
    # recvmsg has put the fd in the control buffer; the receive has not judged or
    # claimed it yet. Naming that number with fd:// must not make a second owner.
    name = f"unix:@jn-adoption-flight-{os.getpid()}-{time.monotonic_ns()}"
    with jn.listen("127.0.0.1:0") as web, jn.listen(name) as hub, jn.connect(name) as tx, hub.accept() as rx:
        jn.send_sockets(tx, {"web": web})
        before = open_fds()
        got: list[dict[str, jn.Server | jn.Socket | jn.Stream]] = []
        # The first recvmsg peeks at the chunk's header with no room for descriptors;
        # the second brings the descriptor into the control buffer: park that one.
        with hold("receive", after=1) as held:
            thread = threading.Thread(target=lambda: got.append(jn.receive_sockets(rx)))
            thread.start()
            assert held.returned.wait(30)
            [fd] = open_fds() - before
            assert isinstance(kernel_owners.owner_of(fd), kernel_owners.InFlight)
            with pytest.raises(jn.SocketError.InvalidAddress, match="already owned by janus_net"):
                jn.listen(f"fd://{fd}")
            held.release()
            thread.join()
        with got[0]["web"] as received:
            assert received.fileno() == fd
            assert isinstance(received, jn.Server)
            _serves(received)


def test_two_threads_adopting_one_number_at_once_make_one_owner() -> None:
    # Both pass every probe (held at getsockname, the last one) before either owns the
    # number; released together, exactly one becomes the owner, each round.
    for _ in range(20):
        fd = socket.create_server(("127.0.0.1", 0)).detach()
        outcomes = _adopt_twice_at_once(fd)
        owners = [o for o in outcomes if isinstance(o, jn.Server)]
        refused = [o for o in outcomes if isinstance(o, jn.SocketError.InvalidAddress)]
        with owners[0] if owners else contextlib.nullcontext() as server:
            assert len(owners) == 1 and len(refused) == 1, outcomes
            # The loser is refused either at the owner check (the winner owns it already) or
            # at its claim (the winner is taking it at that moment): both refuse a second owner.
            assert re.search(r"already owned by|being adopted by another thread", str(refused[0])), refused[0]
            _serves(server)
        assert identity(fd) is None  # closed once, by its one owner


def _adopt_twice_at_once(fd: int) -> list[object]:
    outcomes: list[object] = []

    def adopt() -> None:
        outcomes.append(_attempt(lambda: jn.listen(f"fd://{fd}")))

    with hold("getsockname") as held:
        threads = [threading.Thread(target=adopt) for _ in range(2)]
        for t in threads:
            t.start()
        while held.calls < 2:
            time.sleep(0.001)  # until both are parked in the hold (a count, not a guess)
        held.release()
        for t in threads:
            t.join()
    return outcomes


def test_a_dup_of_an_owned_fd_is_adopted_and_both_work() -> None:
    with jn.listen("127.0.0.1:0") as server:
        copy = os.dup(server.fileno())
        with jn.listen(f"fd://{copy}") as adopted:
            assert adopted.fileno() == copy and adopted.address == server.address
            _serves(adopted)
        _serves(server)  # closing the dup's owner left the original alone


def test_a_received_copy_of_a_socket_this_process_owns_is_adopted() -> None:
    # Sent to itself, a Server arrives as a new number for the same socket: a dup, not a
    # second owner of the same descriptor, so the door adopts it.
    name = f"unix:@jn-adoption-self-{os.getpid()}-{time.monotonic_ns()}"
    with jn.listen("127.0.0.1:0") as server, jn.listen(name) as hub, jn.connect(name) as tx, hub.accept() as rx:
        jn.send_sockets(tx, {"web": server})
        with jn.receive_sockets(rx)["web"] as copy:
            assert isinstance(copy, jn.Server)
            assert copy.fileno() != server.fileno() and copy.address == server.address
            assert kernel_owners.owner_of(copy.fileno()) is copy
            _serves(copy)
        _serves(server)


_TWICE = """
import json, os, socket
import janus_net as jn
fd = socket.create_server(("127.0.0.1", 0)).detach()
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
report = {}
first = jn.listen_fds(unset_environment=False)["3"] if {first_door!r} == "listen_fds" else jn.listen("fd://3")
try:
    jn.listen_fds(unset_environment=False)
    report["second"] = "adopted"
except jn.SocketError as e:
    report["second"] = [type(e).__name__, str(e)]
# The first owner still serves, and its close is the only close of fd 3.
client = socket.create_connection((first.address.host, first.address.port))
with first.accept() as conn:
    client.sendall(b"one")
    report["served"] = conn.read(3).decode()
client.close()
sentinel_before = os.path.exists("/proc/self/fd/3")
first.close()
report["open after close"] = os.path.exists("/proc/self/fd/3")
report["open before close"] = sentinel_before
print(json.dumps(report))
"""


@pytest.mark.parametrize("first_door", ["listen_fds", "fd://3"])
def test_listen_fds_refuses_a_descriptor_an_earlier_adoption_owns(first_door: str) -> None:
    report = run_child(_TWICE.replace("{first_door!r}", repr(first_door)))
    second = report["second"]
    assert isinstance(second, list) and second[0] == "InvalidAddress", report
    assert "fd 3 is already owned by" in second[1]
    assert report["served"] == "one"
    assert report["open before close"] is True and report["open after close"] is False


# --- The capability is judged with the socket's real protocol


@contextmanager
def lent(sock: socket.socket) -> Iterator[int]:
    """``sock``'s descriptor, closed by the test at the end unless janus_net owns it by then."""
    fd = sock.detach()
    try:
        yield fd
    finally:
        if kernel_owners.owner_of(fd) is None:
            os.close(fd)


def _udplite() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, IPPROTO_UDPLITE)
    sock.bind(("127.0.0.1", 0))
    return sock


def _mptcp() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    except OSError as e:
        pytest.skip(f"the kernel refuses MPTCP sockets here ({e})")
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _denied(sink: ListSink, port: int) -> None:
    [record] = sink.records
    assert (record.operation, record.result, record.port) == ("check_bind_address", "denied", None)
    assert record.address == f"127.0.0.1:{port}"


@pytest.mark.parametrize("proto", ["udplite", "mptcp"])
def test_fd_adoption_judges_the_real_protocol(proto: str) -> None:
    sock = _udplite() if proto == "udplite" else _mptcp()
    port = sock.getsockname()[1]
    sink = ListSink()
    cap = jn.NetBind("real-protocol", ports=(port,), audit=sink)
    mode, number = (jn.Mode.DGRAM, IPPROTO_UDPLITE) if proto == "udplite" else (jn.Mode.STREAM, IPPROTO_MPTCP)
    assert not cap.allows(f"127.0.0.1:{port}", mode=mode, protocol=number)
    with lent(sock) as fd:
        was = identity(fd)
        with pytest.raises(jn.SocketError.CapabilityDenied):
            if proto == "udplite":
                jn.bind_with_capability(f"fd://{fd}", cap)
            else:
                jn.listen_with_capability(f"fd://{fd}", cap)
        _denied(sink, port)
        assert identity(fd) == was


@pytest.mark.parametrize("proto", ["udplite", "mptcp"])
def test_received_sockets_are_judged_with_the_real_protocol(proto: str) -> None:
    sock = _udplite() if proto == "udplite" else _mptcp()
    port = sock.getsockname()[1]
    sink = ListSink()
    cap = jn.NetBind("real-protocol", ports=(port,), audit=sink)
    with lent(sock) as fd, channel() as (sender, rx):
        before = open_fds()
        send_raw(sender, fd, 2 if proto == "udplite" else 1)
        with pytest.raises(jn.SocketError.CapabilityDenied):
            jn.receive_sockets(rx, capability=cap)
        assert open_fds() == before
        _denied(sink, port)


def test_a_plain_udp_socket_is_still_allowed_by_the_same_capability() -> None:
    # The control: the capability refuses UDP-Lite for its protocol, not for its port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sink = ListSink()
    with jn.bind_with_capability(f"fd://{sock.detach()}", jn.NetBind("udp", ports=(port,), audit=sink)):
        assert [r.result for r in sink.records] == ["allowed"]


# --- One door: nothing but janus_net._profiles.adoption turns a descriptor it did not make into an owner


def _calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call, list[str]]]:
    """(called name, the call, the names of the functions around it) for every call in ``tree``."""

    def walk(node: ast.AST, scope: list[str]) -> Iterator[tuple[str, ast.Call, list[str]]]:
        for child in ast.iter_child_nodes(node):
            inner = [*scope, child.name] if isinstance(child, (ast.FunctionDef, ast.ClassDef)) else scope
            if isinstance(child, ast.Call):
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                yield name, child, scope
            yield from walk(child, inner)

    return walk(tree, [])


def test_only_the_adoption_module_owns_a_descriptor_it_did_not_make() -> None:
    # adopt_into (an fd the caller named) and take_into (a received fd) put a foreign
    # descriptor into a cell; the adoption tables ask what it is. Only the adoption module does
    # either (what nobody claimed is closed by janus_net._kernel.control, which owns nothing).
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, _call, _scope in _calls(tree):
            if name in ("adopt_into", "take_into"):
                found.setdefault(name, set()).add(module)
        in_the_door = path.relative_to(PACKAGE).parts[0] == "_kernel"  # where the ADOPT_* tables are defined
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("ADOPT_") and not in_the_door:
                found.setdefault("ADOPT_*", set()).add(module)
    assert found == {
        "adopt_into": {"_profiles/adoption.py"},
        "take_into": {"_profiles/adoption.py"},
        "ADOPT_*": {"_profiles/adoption.py"},
    }


def test_every_door_goes_through_the_adoption_module() -> None:
    # The doors ask adopt for the judgement and the owner; none looks at a descriptor itself.
    for module, door_calls in {
        "_profiles/sequence.py": {"adopt_listener", "adopt_bound"},
        "_process/activation.py": {"examine", "admit", "own"},
        "_process/receiving.py": {"judge_received", "own"},
    }.items():
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        called = {name for name, _call, _scope in _calls(tree)}
        assert door_calls <= called, module
        if module != "_profiles/sequence.py":  # the step sequence makes sockets of its own, and asks them
            looks = {"fstat", "getsockopt_int", "getsockname", "getpeername", "from_sockaddr", "wrap"}
            assert not called & looks, f"{module} looks at a descriptor itself: {called & looks}"
