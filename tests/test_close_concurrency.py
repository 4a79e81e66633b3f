"""close() while another thread is blocked in the same socket.

The rule (janus_net._kernel.cells): ``close()`` marks the object closed and signals
its wake fd, which every waiting call polls (never shutdown(): a shared socket keeps
working for its other holders); the descriptor number is released only when the
last native call using it has returned. So a blocked call never hangs, and the
number is never reused under a syscall that is still using it.

What the woken call reports:
  * ``Server.accept`` -> ``SocketError.SocketNotListening``;
  * ``Stream.read`` -> ``SocketError.SocketUnconnected`` (not ``b""``, the
    end-of-stream: the peer did not end the stream, so saying so would be a lie);
  * ``Socket.receive`` / ``receive_many`` -> ``SocketError.SocketUnconnected`` (a
    catchable member: closing from another thread is how a receive loop is stopped;
    a call *started* on a closed object still gets the EBADF row).

The in-flight count is taken and given back inside each native call, so no Python
code ever holds it: `janus_net.testing.hold` parks a woken call after its poll
returned, and by then the number is already closed.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from peers import dial, in_poll, wait_until_blocked

import janus_net as jn
from janus_net.testing import hold


@dataclass
class Blocked:
    """A thread running one blocking call: what it returned or raised, and when."""

    thread: threading.Thread
    result: list[object] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)


@contextmanager
def blocked_in(call: Callable[[], object], wait: Callable[[int], bool]) -> Iterator[Blocked]:
    """Run ``call`` in a thread and return once ``wait(native_id)`` says it is blocked."""
    box = Blocked(threading.Thread())

    def run() -> None:
        try:
            box.result.append(call())
        except BaseException as e:
            box.error.append(e)
        finally:
            box.ended.append(time.monotonic())

    box.thread = threading.Thread(target=run, daemon=True)
    box.thread.start()
    wait_until_blocked(box.thread, wait, outcome=box)
    try:
        yield box
    finally:
        box.thread.join(10)
        assert not box.thread.is_alive(), "the blocked call hung"


def in_syscall_on(fd: int) -> Callable[[int], bool]:
    """The thread sleeps in the kernel, in a syscall whose first argument is ``fd``."""

    def check(tid: int) -> bool:
        try:
            with open(f"/proc/self/task/{tid}/syscall") as f:
                fields = f.read().split()
            with open(f"/proc/self/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):  # gone, or going while read (ESRCH)
            return False
        return len(fields) > 1 and fields[0] != "running" and int(fields[1], 16) == fd and state == "S"

    return check


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# --- Each blocking call: woken within a second, with the documented outcome.


def test_close_wakes_a_blocked_accept() -> None:
    server = jn.listen("127.0.0.1:0")
    fd = server.fileno()
    with blocked_in(server.accept, in_poll) as call:
        closed_at = time.monotonic()
        server.close()
        call.thread.join(5)
    assert type(call.error[0]) is jn.SocketError.SocketNotListening
    assert call.ended[0] - closed_at < 1.0
    assert server.closed and not fd_is_open(fd)


def test_close_wakes_a_blocked_stream_read() -> None:
    with jn.listen("127.0.0.1:0") as server, dial(server) as client:
        stream = server.accept()
        fd = stream.fileno()
        with blocked_in(lambda: stream.read(16), in_poll) as call:
            closed_at = time.monotonic()
            stream.close()
            call.thread.join(5)
        assert not call.result and type(call.error[0]) is jn.SocketError.SocketUnconnected
        assert call.ended[0] - closed_at < 1.0
        client.settimeout(5)
        assert client.recv(1) == b""  # the peer sees the connection end
    assert not fd_is_open(fd)


def test_close_wakes_a_blocked_datagram_receive() -> None:
    sock = jn.bind("127.0.0.1:0")
    fd = sock.fileno()
    with blocked_in(sock.receive, in_poll) as call:
        closed_at = time.monotonic()
        sock.close()
        call.thread.join(5)
    # Not a fake empty datagram from a fake address, and not a bug: a catchable member.
    assert not call.result, f"a closed socket returned {call.result}"
    assert type(call.error[0]) is jn.SocketError.SocketUnconnected and call.error[0].syscall == "receive"
    assert call.ended[0] - closed_at < 1.0
    assert not fd_is_open(fd)


def test_close_wakes_a_blocked_receive_many() -> None:
    sock = jn.bind("127.0.0.1:0")
    fd = sock.fileno()
    with blocked_in(lambda: sock.receive_many(8), in_poll) as call:
        sock.close()
        call.thread.join(5)
    assert not call.result and type(call.error[0]) is jn.SocketError.SocketUnconnected
    assert not fd_is_open(fd)


@pytest.mark.parametrize("kind", ["accept", "receive", "read"])
def test_close_wakes_a_context_wait(kind: str) -> None:
    """With ctx=, the wait is a poll on the socket and the context: close wakes it too."""
    server = jn.listen("127.0.0.1:0")
    sock = jn.bind("127.0.0.1:0")
    client = dial(server)
    stream = server.accept()
    ctx = jn.Context()
    target: jn.Server | jn.Socket | jn.Stream
    call_fn: Callable[[], object]
    try:
        if kind == "accept":
            target, call_fn = server, (lambda: server.accept(ctx=ctx))
        elif kind == "receive":
            target, call_fn = sock, (lambda: sock.receive(ctx=ctx))
        else:
            target, call_fn = stream, (lambda: stream.read(4, ctx=ctx))
        fd = target.fileno()
        with blocked_in(call_fn, in_poll) as call:
            target.close()
            call.thread.join(5)
        assert not fd_is_open(fd)
        if kind == "accept":
            assert type(call.error[0]) is jn.SocketError.SocketNotListening
        else:
            assert type(call.error[0]) is jn.SocketError.SocketUnconnected
    finally:
        for owner in (stream, server, sock):
            owner.close()
        client.close()


# --- The in-flight count lives inside the native call: none is held by Python code.


@pytest.mark.parametrize("kind", ["accept", "receive", "read"])
def test_the_woken_call_has_given_its_count_back_before_python_sees_the_result(kind: str) -> None:
    server = jn.listen("127.0.0.1:0")
    sock = jn.bind("127.0.0.1:0")
    client = dial(server)
    stream = server.accept()
    try:
        target: jn.Server | jn.Socket | jn.Stream
        call_fn: Callable[[], object]
        if kind == "accept":
            target, call_fn = server, server.accept
        elif kind == "receive":
            target, call_fn = sock, sock.receive
        else:
            target, call_fn = stream, (lambda: stream.read(16))
        fd = target.fileno()
        with hold("poll") as held, blocked_in(call_fn, in_poll) as call:
            try:
                target.close()
                # Woken by the wake fd, back from the kernel, parked before janus_net
                # has seen the result: the native call already left, the last one out.
                assert held.returned.wait(5)
                assert target.closed and target.fileno() == -1
                assert not fd_is_open(fd), "the last native call out did not close the fd"
                assert call.thread.is_alive()
            finally:
                held.release()  # before blocked_in joins the thread, pass or fail
            call.thread.join(5)
        assert isinstance(call.error[0], jn.SocketError)
    finally:
        for owner in (stream, server, sock):
            owner.close()
        client.close()


def _race_closes(server: jn.Server, threads: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def closer() -> None:
        start.wait()
        try:
            server.close()
        except BaseException as e:
            errors.append(e)

    pool = [threading.Thread(target=closer) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def test_close_from_many_threads_closes_once() -> None:
    """Racing closes: exactly one close(2), the others are no-ops (no EBADF ErrnoBug)."""
    for _ in range(50):
        server = jn.listen("127.0.0.1:0")
        fd = server.fileno()
        assert _race_closes(server, 4) == []
        assert server.closed and not fd_is_open(fd)


def _race_accepts(server: jn.Server, threads: int, connections: int) -> list[str]:
    outcomes: list[str] = []
    lock = threading.Lock()

    def acceptor() -> None:
        while True:
            try:
                server.accept().close()
                outcome = "accepted"
            except jn.SocketError.SocketNotListening:
                outcome = "woken"
            except jn.ErrnoBug as e:  # accept began after close: the EBADF row
                outcome = "closed" if e.errno == errno.EBADF else repr(e)
            with lock:
                outcomes.append(outcome)
            if outcome != "accepted":
                return

    pool = [threading.Thread(target=acceptor) for _ in range(threads)]
    for t in pool:
        t.start()
    for _ in range(connections):
        with dial(server):
            pass
    time.sleep(0.01)  # the race under test: the close may land before, among or after the accepts
    server.close()
    for t in pool:
        t.join(5)
        assert not t.is_alive(), "an accepting thread hung after close()"
    return outcomes


def test_accepting_threads_and_a_closer_race_without_leaks_or_hangs() -> None:
    """4 threads accept in a loop while a client connects; then the main thread closes."""
    for _ in range(10):
        outcomes = _race_accepts(jn.listen("127.0.0.1:0"), 4, 5)
        ends = [o for o in outcomes if o != "accepted"]
        assert len(ends) == 4 and set(ends) <= {"woken", "closed"}, outcomes


# --- close() after the wait's poll returned, before the call's next attempt.


@pytest.mark.parametrize("kind", ["accept", "read", "receive", "receive_into", "receive_many", "send"])
def test_a_close_landing_between_the_wake_and_the_next_attempt_is_a_wake(kind: str, tmp_path: Path) -> None:
    """The call was waiting when close() came, so it raises the closed member, never the EBADF row.

    The socket becomes ready (a connection, bytes, a datagram; for the send, a full unix
    datagram peer, which polls writable without being so), the wait's poll returns, and
    `hold` parks the call there; then another thread closes it, and the call's next
    attempt finds the cell closing. That is a close during the call, as a wake by the
    wake fd is: the documented way to stop a loop, not a call begun on a closed object.
    """
    server = jn.listen("127.0.0.1:0")
    sock = jn.bind("127.0.0.1:0")
    client = dial(server)
    stream = server.accept()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix_peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix_peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    unix_peer.bind(str(tmp_path / "peer.sock"))
    sender = jn.bind(f"unix:{tmp_path}/sender.sock")
    owners: list[jn.Server | jn.Socket | jn.Stream] = [stream, server, sock, sender]
    dialled: list[socket.socket] = []
    try:
        target: jn.Server | jn.Socket | jn.Stream
        ready: Callable[[], object]
        if kind == "accept":
            target, call_fn, ready = server, server.accept, (lambda: dialled.append(dial(server)))
        elif kind == "read":
            target, call_fn, ready = stream, (lambda: stream.read(16)), (lambda: client.sendall(b"late"))
        elif kind == "send":
            dest = f"unix:{tmp_path}/peer.sock"

            def flood() -> object:
                while True:
                    sender.send(dest, b"x" * 512)

            target, call_fn, ready = sender, flood, (lambda: None)  # the full peer's queue polls writable
        else:
            address = (sock.address.host, sock.address.port)  # type: ignore[attr-defined]
            call_fn = {
                "receive": sock.receive,
                "receive_into": lambda: sock.receive_into(bytearray(16)),
                "receive_many": lambda: sock.receive_many(4),
            }[kind]
            target, ready = sock, (lambda: peer.sendto(b"late", address))
        with hold("poll") as held:
            # The send's first poll returns at once (the full peer polls writable): parked there.
            waiting = (lambda _tid: held.returned.is_set()) if kind == "send" else in_poll
            with blocked_in(call_fn, waiting) as call:
                ready()  # the socket becomes ready: the wait's poll returns, and is parked
                assert held.returned.wait(5), "the wait's poll never returned"
                target.close()  # from this thread, while the call is parked after its poll
                held.release()
                call.thread.join(5)
        expected = jn.SocketError.SocketNotListening if kind == "accept" else jn.SocketError.SocketUnconnected
        assert not call.result and [type(e) for e in call.error] == [expected], call.error
    finally:
        for owner in owners:
            owner.close()
        for plain in (client, peer, unix_peer, *dialled):
            plain.close()


# --- close() between two steps of a socket transfer, each of which begins without waiting.


def test_receive_sockets_closed_between_its_peek_and_its_read_raises_the_closed_member(tmp_path: Path) -> None:
    """receive_sockets peeks the header, then reads it with a recvmsg that begins without a wait.

    A close() from another thread that lands between the two was a close during the call
    (it began on an open channel: a closed one is ValueError at once), so the call raises
    SocketUnconnected, never the EBADF row (ErrnoBug in debug mode).
    """
    from janus_net._process.transfer import HEADER, LAST, MAGIC, VERSION

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "chan.sock"))
    listener.listen()
    chan = jn.connect(f"unix:{tmp_path}/chan.sock")
    peer, _ = listener.accept()
    try:
        # The first recvmsg is the peek that would block; the one after it is parked.
        with hold("receive", after=1) as held, blocked_in(lambda: jn.receive_sockets(chan), in_poll) as call:
            peer.sendall(HEADER.pack(MAGIC, VERSION, LAST, 0, 0, 0))  # an empty transfer: peek, read
            assert held.returned.wait(5), "the peek never returned"
            chan.close()
            held.release()
            call.thread.join(5)
        assert not call.result and [type(e) for e in call.error] == [jn.SocketError.SocketUnconnected], call.error
    finally:
        chan.close()
        for plain in (peer, listener):
            plain.close()


def test_send_sockets_closed_between_two_chunks_raises_the_closed_member(tmp_path: Path) -> None:
    """More sockets than one chunk carries go as two sendmsgs; the second begins without a wait.

    A close() from another thread after the first chunk went is a close during the call,
    so the call raises SocketUnconnected, never the EBADF row (ErrnoBug in debug mode).
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "chan.sock"))
    listener.listen()
    chan = jn.connect(f"unix:{tmp_path}/chan.sock")
    peer, _ = listener.accept()
    sock = jn.bind("127.0.0.1:0")
    try:
        with hold("sendmsg") as held:
            sent = blocked_in(
                lambda: jn.send_sockets(chan, {f"s{i}": sock for i in range(300)}), lambda _tid: held.returned.is_set()
            )
            with sent as call:  # parked after the first chunk's sendmsg
                chan.close()
                held.release()
                call.thread.join(5)
        assert not call.result and [type(e) for e in call.error] == [jn.SocketError.SocketUnconnected], call.error
    finally:
        for owner in (chan, sock):
            owner.close()
        for plain in (peer, listener):
            plain.close()
