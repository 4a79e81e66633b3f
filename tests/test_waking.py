"""Waking without breaking shared sockets (DESIGN §3 "Shared sockets"), and the ownership edges.

``close()`` wakes a call blocked on the object through the object's wake fd, never
by shutdown(): a description shared with another process (fork, fd://, systemd)
keeps working for it. janus_net never toggles O_NONBLOCK on a description. Every
woken call raises a `SocketError` member, never ErrnoBug.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from peers import dial, in_poll, nonblocking, run_child, wait_until_blocked, wait_until_process_blocked, wchan

import janus_net as jn
from janus_net._sockets.batching import send_each


def run_blocked(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``call`` in a thread and return once it waits in poll; the list gets its outcome."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until_blocked(thread, outcome=outcome)
    return thread, outcome


# --- A shared listener goes on working for its other holders.


def test_closing_an_adopter_of_a_shared_listener_wakes_its_accept_and_leaves_the_listener_working() -> None:
    with jn.listen("127.0.0.1:0") as server:
        lent = os.dup(server.fileno())  # the same description, as fd:// or systemd hands it over
        adopter = jn.listen(f"fd://{lent}")
        thread, outcome = run_blocked(adopter.accept)
        adopter.close()
        thread.join(5)
        assert not thread.is_alive()
        assert type(outcome[0]) is jn.SocketError.SocketNotListening, outcome
        # close() never shuts the shared description down: the lender's listener still accepts.
        with dial(server) as client, server.accept(jn.Context.with_timeout(5)) as stream:
            client.sendall(b"still listening")
            assert stream.read(64) == b"still listening"


def in_gap(tid: int) -> bool:
    """The thread sleeps in the accept gap `testing.accept_gap` widens (nanosleep, clock_nanosleep)."""
    try:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            return f.read().split()[0] in ("35", "230")  # x86-64 numbers; elsewhere the test skips
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read (ESRCH)
        return False


def in_accept(tid: int) -> bool:
    """The thread sleeps inside accept(2) itself (not in poll): its wchan is the accept wait."""
    return "accept" in wchan(tid)


@pytest.mark.parametrize("how", ["close", "close with ctx", "cancel", "cancel the parent"])
def test_an_accept_that_lost_the_connection_to_another_holder_is_woken(how: str) -> None:
    # The prefork race: poll says a connection is queued, another holder of the same
    # (blocking) description takes it first, and our accept(2) sleeps in the kernel,
    # where the wake fd does not reach. close(), and a cancel of the accept's context
    # (or of its parent), must still wake it, without changing the description for
    # the other holder.
    from janus_net.testing import accept_gap

    if os.uname().machine != "x86_64":
        pytest.skip("reads x86-64 syscall numbers from /proc/self/task/*/syscall")
    parent = jn.Context()
    ctx = parent.child()
    with jn.listen("127.0.0.1:0") as server:
        other = socket.socket(fileno=os.dup(server.fileno()))  # the other holder
        try:
            with accept_gap(0.5):
                call = server.accept if how == "close" else (lambda: server.accept(ctx))
                thread, outcome = run_blocked(call)
                client = socket.create_connection((server.address.host, server.address.port))  # type: ignore[union-attr]
                deadline = time.monotonic() + 10
                while not in_gap(thread.native_id or 0):  # poll said "queued"; ours sleeps before accept(2)
                    assert thread.is_alive() and time.monotonic() < deadline, outcome
                    time.sleep(0.005)
                stolen, _ = other.accept()  # inside our accept's gap: ours then blocks in accept(2)
                while not in_accept(thread.native_id or 0):
                    assert thread.is_alive() and time.monotonic() < deadline, outcome
                    time.sleep(0.005)
            {"close": server.close, "close with ctx": server.close, "cancel": ctx.cancel,
             "cancel the parent": parent.cancel}[how]()  # fmt: skip
            thread.join(5)
            if thread.is_alive():  # not woken: let it go (a connection) so the test can end
                rescue = socket.create_connection(other.getsockname())
                thread.join(5)
                rescue.close()
                pytest.fail(f"{how} did not wake the accept sleeping in accept(2)")
            if how.startswith("close"):
                assert type(outcome[0]) is jn.SocketError.SocketNotListening, outcome
            else:
                assert type(outcome[0]) is jn.SocketError.Timeout, outcome
                assert outcome[0].reason == "cancelled"  # type: ignore[union-attr]
                assert not server.closed  # the listener goes on: another accept works
                with socket.create_connection(other.getsockname()) as again, server.accept() as stream:
                    again.sendall(b"y")
                    assert stream.read(1) == b"y"
            assert os.get_blocking(other.fileno())  # the description is as it was
            with socket.create_connection(other.getsockname()) as late:  # and still listens
                conn, _ = other.accept()
                late.sendall(b"x")
                assert conn.recv(1) == b"x"
                conn.close()
            stolen.close()
            client.close()
        finally:
            other.close()


_CHILD_CLOSES = textwrap.dedent(
    """
    import sys, threading, time
    import janus_net as jn
    srv = jn.listen(f"fd://{sys.argv[1]}")
    box = []
    t = threading.Thread(target=lambda: box.append(_try(srv)))
    def _try(s):
        try:
            s.accept()
        except jn.SocketError as e:
            return type(e).__name__
        return "accepted"
    t.start()
    while "poll" not in open(f"/proc/self/task/{t.native_id}/wchan").read():
        time.sleep(0.005)  # until the accept waits in poll (its wchan says so)
    srv.close()
    t.join(5)
    print(box[0] if box else "hung", flush=True)
    """
)


def test_a_child_process_closing_its_copy_does_not_stop_the_parents_listener() -> None:
    with jn.listen("127.0.0.1:0") as server:
        fd = server.fileno()
        os.set_inheritable(fd, True)
        try:
            out = subprocess.run(
                [sys.executable, "-c", _CHILD_CLOSES, str(fd)],
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            os.set_inheritable(fd, False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["SocketNotListening"]
        with dial(server) as client, server.accept(jn.Context.with_timeout(5)) as stream:
            client.sendall(b"x")
            assert stream.read(1) == b"x"


def test_shutdown_is_still_the_way_to_stop_every_holder() -> None:
    with jn.listen("127.0.0.1:0") as server:
        lent = os.dup(server.fileno())
        with jn.listen(f"fd://{lent}") as adopter:
            adopter.shutdown()
            with pytest.raises(jn.SocketError.SocketNotListening):
                server.accept(jn.Context.with_timeout(5))


# --- O_NONBLOCK belongs to the description: never touched.


@pytest.mark.parametrize("blocking", [True, False])
def test_accept_with_a_context_never_changes_o_nonblock(blocking: bool) -> None:
    with jn.listen("127.0.0.1:0") as server:
        os.set_blocking(server.fileno(), blocking)
        with pytest.raises(jn.SocketError.Timeout):
            server.accept(jn.Context.with_timeout(0.1))
        assert nonblocking(server.fileno()) is not blocking
        with dial(server):
            server.accept(jn.Context.with_timeout(5)).close()
        with dial(server):
            server.accept().close()  # a plain accept works on a non-blocking description too
        assert nonblocking(server.fileno()) is not blocking


def test_a_sigkilled_child_waiting_in_accept_leaves_the_description_as_it_was() -> None:
    with jn.listen("127.0.0.1:0") as server:
        fd = server.fileno()
        os.set_inheritable(fd, True)
        try:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys, janus_net as jn\n"
                    "s = jn.listen(f'fd://{sys.argv[1]}')\n"
                    "print('ready', flush=True)\n"
                    "s.accept(jn.Context.with_timeout(60))\n",
                    str(fd),
                ],
                pass_fds=(fd,),
                stdout=subprocess.PIPE,
                text=True,
            )
        finally:
            os.set_inheritable(fd, False)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            wait_until_process_blocked(child.pid)  # waiting in poll now
            assert not nonblocking(fd)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            if child.stdout is not None:
                child.stdout.close()
        assert not nonblocking(fd)  # accept(ctx) never leaves the shared description O_NONBLOCK for its holders
        with dial(server):
            server.accept().close()


def test_adoption_leaves_a_non_blocking_description_non_blocking_and_works() -> None:
    lender = socket.create_server(("127.0.0.1", 0))
    lender.setblocking(False)
    with jn.listen(f"fd://{lender.detach()}") as server:
        assert nonblocking(server.fileno())
        thread, outcome = run_blocked(server.accept)  # a blocking call still waits
        with dial(server):
            thread.join(5)
            assert isinstance(outcome[0], jn.Stream)
            outcome[0].close()
        assert nonblocking(server.fileno())


# --- close() wakes every blocking call, with a SocketError member.


@pytest.fixture
def full_unix_peer(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram receiver that never reads, with a small queue."""
    path = str(tmp_path / "peer.sock")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.bind(path)
    try:
        yield peer, "unix:" + path
    finally:
        peer.close()


def _flood(sender: jn.Socket, dest: str) -> Callable[[], object]:
    def flood() -> object:
        while True:
            sender.send(dest, b"x" * 512)

    return flood


def test_close_wakes_send_on_a_full_unix_datagram_peer(
    full_unix_peer: tuple[socket.socket, str], tmp_path: Path
) -> None:
    _, dest = full_unix_peer
    sender = jn.bind(f"unix:{tmp_path}/sender.sock")
    thread, outcome = run_blocked(_flood(sender, dest))
    sender.close()
    thread.join(5)
    assert not thread.is_alive()
    error = outcome[0]
    assert type(error) is jn.SocketError.SocketUnconnected and error.syscall == "send", error


def test_close_wakes_send_many_on_a_full_unix_datagram_peer(
    full_unix_peer: tuple[socket.socket, str], tmp_path: Path
) -> None:
    _, dest = full_unix_peer
    sender = jn.bind(f"unix:{tmp_path}/sender.sock")
    target = jn.parse_address(dest)

    def flood() -> object:
        while True:
            sent = sender.send_many([(target, b"x" * 512)] * 8)
            if sent < 8:
                return sent  # woken after some of the batch went: the count says how many

    thread, outcome = run_blocked(flood)
    sender.close()
    thread.join(5)
    assert not thread.is_alive()
    # Woken with nothing sent: the closed member (never ErrnoBug); after some: the count.
    assert type(outcome[0]) is jn.SocketError.SocketUnconnected or outcome[0] in range(1, 8), outcome


def test_close_wakes_write_all_on_a_full_stream() -> None:
    with jn.listen("127.0.0.1:0") as server, dial(server) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stream = server.accept()
        thread, outcome = run_blocked(lambda: stream.write_all(b"x" * (64 << 20)))
        stream.close()
        thread.join(5)
        assert not thread.is_alive()
        error = outcome[0]
        # A send cut short by close() is a catchable member, never ErrnoBug (EBADF from the next write).
        assert type(error) is jn.SocketError.SocketUnconnected and error.syscall == "send", error


@pytest.mark.parametrize("call", ["accept", "read", "receive", "receive_into", "receive_many"])
def test_close_wakes_every_receiving_call(call: str) -> None:
    with jn.listen("127.0.0.1:0") as server, dial(server):
        stream = server.accept()
        sock = jn.bind("127.0.0.1:0")
        target: jn.Server | jn.Stream | jn.Socket
        fn: Callable[[], object]
        if call == "accept":
            target, fn = server, server.accept
        elif call == "read":
            target, fn = stream, (lambda: stream.read(8))
        elif call == "receive":
            target, fn = sock, sock.receive
        elif call == "receive_into":
            target, fn = sock, (lambda: sock.receive_into(bytearray(8)))
        else:
            target, fn = sock, (lambda: sock.receive_many(4))
        try:
            thread, outcome = run_blocked(fn)
            target.close()
            thread.join(5)
            assert not thread.is_alive()
            want = jn.SocketError.SocketNotListening if call == "accept" else jn.SocketError.SocketUnconnected
            assert type(outcome[0]) is want, outcome
        finally:
            stream.close()
            sock.close()


def open_fds() -> set[int]:
    """Open descriptors, without the one os.listdir used to list them."""
    return {int(n) for n in os.listdir("/proc/self/fd") if _is_open(int(n))}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_the_wake_fd_is_made_only_when_a_call_waits_and_closed_with_the_object() -> None:
    before = open_fds()
    sock = jn.bind("127.0.0.1:0")
    assert open_fds() - before == {sock.fileno()}  # no wake fd for an object nobody waited on
    thread, _ = run_blocked(sock.receive)
    assert len(open_fds() - before) == 2  # the socket and its one wake fd
    sock.close()
    thread.join(5)
    assert open_fds() - before == set()


# --- Context: cancel() from a signal handler, and the wake fd at the fd limit.


def test_cancel_from_a_signal_handler_never_deadlocks() -> None:
    """A handler that cancels lands while the main thread is inside Context's own code."""
    contexts: list[jn.Context] = []
    fired = [0]

    def handler(signum: int, frame: object) -> None:
        fired[0] += 1
        for ctx in contexts[-3:]:
            ctx.cancel()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            parent = jn.Context()
            contexts.append(parent)
            child = parent.child(timeout=10)
            contexts.append(child)
            child._wake_fd()
            parent.cancel()
            assert child.cancelled
            del contexts[:-6]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired[0] > 10


def test_receive_with_a_context_at_the_fd_limit_is_a_typed_error() -> None:
    result = run_child(
        """
        import json, os, resource
        import janus_net as jn
        sock = jn.bind("127.0.0.1:0")
        ctx = jn.Context.with_timeout(5)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        held = []
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        outcomes = []
        for call in (lambda: sock.receive(ctx=ctx), lambda: sock.receive_many(4, ctx=ctx), lambda: ctx._wake_fd()):
            try:
                call()
                outcomes.append("returned")
            except jn.SocketError as e:
                outcomes.append(f"{type(e).__name__} {e.syscall}")
            except BaseException as e:
                outcomes.append(f"untyped {e!r}")
        for fd in held:
            os.close(fd)
        print(json.dumps(outcomes))
        """
    )
    assert result == [  # type: ignore[comparison-overlap]
        "ProcessFdQuotaExceeded eventfd",
        "ProcessFdQuotaExceeded eventfd",
        "ProcessFdQuotaExceeded eventfd",
    ]


# --- Ownership edges: fd:// twice, send_many from a failing generator.


def test_adopting_a_descriptor_janus_net_already_owns_is_invalid_address() -> None:
    with jn.listen("127.0.0.1:0") as server:
        with pytest.raises(jn.SocketError.InvalidAddress, match="already owned"):
            jn.listen(f"fd://{server.fileno()}")
        assert not server.closed
        lent = socket.create_server(("127.0.0.1", 0)).detach()
        first = jn.listen(f"fd://{lent}")
        with pytest.raises(jn.SocketError.InvalidAddress, match="already owned"):
            jn.listen(f"fd://{lent}")
        first.close()
    with jn.bind("127.0.0.1:0") as udp, pytest.raises(jn.SocketError.InvalidAddress, match="already owned"):
        jn.bind(f"fd://{udp.fileno()}")


def test_send_many_from_a_generator_that_fails_sends_what_it_took_then_raises() -> None:
    with jn.bind("127.0.0.1:0") as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        host, port = peer.getsockname()
        dest = jn.parse_address(f"{host}:{port}")

        def messages() -> Iterator[tuple[jn.Ip4Address, bytes]]:
            for i in range(3):
                yield dest, b"m%d" % i  # type: ignore[misc]
            raise ValueError("the source failed")

        with pytest.raises(ValueError, match="the source failed") as caught:
            sock.send_many(messages())
        assert "3 datagrams taken before this error were sent" in "".join(getattr(caught.value, "__notes__", []))
        assert [peer.recv(16) for _ in range(3)] == [b"m0", b"m1", b"m2"]
        assert send_each(sock._io, messages_list := [(dest, b"a")], sock.send) == 1 and messages_list
        with pytest.raises(ValueError):
            send_each(sock._io, messages(), sock.send)
        assert [peer.recv(16) for _ in range(4)] == [b"a", b"m0", b"m1", b"m2"]


# --- strace as the witness: no shutdown() from close, no F_SETFL anywhere.

_STRACE_WAKE = """
import os, threading, time, janus_net as jn
server = jn.listen("127.0.0.1:0")
lent = os.dup(server.fileno())
os.write(1, MARK)
adopter = jn.listen(f"fd://{lent}")
try:
    adopter.accept(jn.Context.with_timeout(0.05))
except jn.SocketError.Timeout:
    pass
box = []
t = threading.Thread(target=lambda: box.append(_try()))
def _try():
    try:
        adopter.accept()
    except jn.SocketError as e:
        return type(e).__name__
t.start()
while "poll" not in open(f"/proc/self/task/{t.native_id}/wchan").read():
    time.sleep(0.005)  # until the accept waits in poll (its wchan says so)
adopter.close()
t.join(5)
server.close()
os.write(1, (repr(box) + "\\n").encode())
"""


def test_strace_close_wakes_without_shutdown_and_nothing_touches_o_nonblock(tmp_path: Path) -> None:
    from tracing import MARK, calls_to, syscalls_after_mark

    program = f"MARK = {MARK!r}\n" + _STRACE_WAKE
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,shutdown,fcntl,poll,accept4,eventfd2,close")
    assert "['SocketNotListening']" in out
    assert not calls_to(lines, "shutdown"), calls_to(lines, "shutdown")
    assert not [line for line in calls_to(lines, "fcntl") if "F_SETFL" in line]
    assert calls_to(lines, "eventfd2"), "the waiting accept made its wake fd"


def test_a_send_waiting_on_a_full_unix_peer_goes_on_once_the_peer_reads(
    full_unix_peer: tuple[socket.socket, str], tmp_path: Path
) -> None:
    """Liveness of the wait's naps: once the peer drains its queue, the blocked send goes on."""
    peer, dest = full_unix_peer
    sender = jn.bind(f"unix:{tmp_path}/sender.sock")
    sent = [0]

    def flood() -> object:
        while sent[0] < 10_000:
            sender.send(dest, b"x" * 512)
            sent[0] += 1
        return sent[0]

    try:
        thread, outcome = run_blocked(flood)
        stuck_at = sent[0]
        time.sleep(0.3)  # a window in which no send may complete: what is tested, not a wait for the thread
        assert sent[0] == stuck_at  # really blocked
        peer.setblocking(False)
        deadline = time.monotonic() + 10
        while sent[0] <= stuck_at + 20 and time.monotonic() < deadline:
            try:
                while True:
                    peer.recv(1024)
            except BlockingIOError:
                time.sleep(0.01)
        assert sent[0] > stuck_at + 20, "the send did not go on after the peer read"
    finally:
        # Close where it is a wake, not a race: with nobody reading, the flood blocks again
        # (or has sent all it meant to). A send *begun* after close() is the caller's bug, its
        # EBADF row, which a close landing between two sends of the loop would provoke.
        deadline = time.monotonic() + 10
        while thread.is_alive() and not in_poll(thread.native_id or 0) and time.monotonic() < deadline:
            time.sleep(0.005)  # polls the thread's wchan
        sender.close()
        thread.join(5)
    assert not thread.is_alive()
    assert outcome and (outcome[0] == 10_000 or type(outcome[0]) is jn.SocketError.SocketUnconnected), outcome


_SIGURG_DISPOSITION = textwrap.dedent(
    """
    import json, os, signal, socket, sys
    import janus_net as jn

    def masks():
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        bit = 1 << (signal.SIGURG - 1)
        return {"caught": bool(int(status["SigCgt"], 16) & bit), "ignored": bool(int(status["SigIgn"], 16) & bit)}

    seen = []
    if sys.argv[1] == "python-handler":
        signal.signal(signal.SIGURG, lambda *_: seen.append("user"))
    elif sys.argv[1] == "ignored":
        signal.signal(signal.SIGURG, signal.SIG_IGN)
    before = masks()
    with jn.listen("127.0.0.1:0") as server:
        client = socket.create_connection((server.address.host, server.address.port))
        server.accept().close()  # a queued connection: the native accept ran
        client.close()
    after = masks()
    if sys.argv[1] == "python-handler":
        os.kill(os.getpid(), signal.SIGURG)
    print(json.dumps({"before": before, "after": after, "seen": seen}), flush=True)
    """
)


@pytest.mark.parametrize("setting", ["default", "python-handler", "ignored"])
def test_the_sigurg_handler_is_installed_only_where_sigurg_has_its_default(setting: str) -> None:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _SIGURG_DISPOSITION, setting], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    if setting == "default":
        assert got["before"] == {"caught": False, "ignored": False}
        assert got["after"] == {"caught": True, "ignored": False}  # janus_net's no-op handler
    elif setting == "python-handler":
        assert got["after"] == got["before"] == {"caught": True, "ignored": False}
        assert got["seen"] == ["user"]  # still the program's own handler
    else:
        assert got["after"] == got["before"] == {"caught": False, "ignored": True}


# --- Python signal handlers during a wait on the main thread (DESIGN §3 "One door": waking).
# CPython runs handlers on the main thread only; the kernel may give a process-directed
# signal to any thread. Each test below makes that happen on purpose: the main thread
# waits (its wchan says poll), and another thread signals *itself*, so its C-level
# handler records the signal and the main thread must notice through the wakeup fd.


@contextmanager
def python_handler(signum: int, handler: Callable[[int, object], None]) -> Iterator[None]:
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def signal_another_thread_once_main_waits(
    signum: int, times: int = 1, between: Callable[[], None] | None = None
) -> threading.Thread:
    """A thread that waits until the main thread sleeps in poll, then sends itself ``signum``."""
    main = threading.main_thread().native_id
    assert main is not None

    def run() -> None:
        for _ in range(times):
            deadline = time.monotonic() + 10
            while not in_poll(main):
                assert time.monotonic() < deadline, f"the main thread never waited: {wchan(main)!r}"
                time.sleep(0.005)
            signal.pthread_kill(threading.get_ident(), signum)
            if between is not None:
                between()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_kinds() -> dict[str, Callable[[jn.Context], Iterator[Callable[[], object]]]]:
    @contextmanager
    def accept(ctx: jn.Context) -> Iterator[Callable[[], object]]:
        with jn.listen("127.0.0.1:0") as server:
            yield lambda: server.accept(ctx)

    @contextmanager
    def receive(ctx: jn.Context) -> Iterator[Callable[[], object]]:
        with jn.bind("127.0.0.1:0") as sock:
            yield lambda: sock.receive(ctx=ctx)

    @contextmanager
    def read(ctx: jn.Context) -> Iterator[Callable[[], object]]:
        with jn.listen("127.0.0.1:0") as server, dial(server), server.accept() as stream:
            yield lambda: stream.read(1, ctx=ctx)

    @contextmanager
    def connect(ctx: jn.Context) -> Iterator[Callable[[], object]]:
        # A unix listener whose backlog is full: connect naps (waiting.pause) until it drains.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "full.sock")
            with jn.listen("unix:" + path, backlog=0) as server:
                fillers = []
                try:
                    while True:
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        fillers.append(s)
                        s.setblocking(False)
                        try:
                            s.connect(path)
                        except BlockingIOError:
                            break
                    yield lambda: jn.connect("unix:" + path, ctx=ctx)
                finally:
                    for s in fillers:
                        s.close()
                    server.close()

    return {"accept": accept, "receive": receive, "read": read, "connect": connect}


WAITS = _wait_kinds()


@pytest.mark.parametrize("kind", sorted(WAITS))
def test_a_cancel_from_a_handler_lands_when_another_thread_got_the_signal(kind: str) -> None:
    ctx = jn.Context.with_timeout(20)
    with WAITS[kind](ctx) as call, python_handler(signal.SIGUSR1, lambda *_: ctx.cancel()):
        sender = signal_another_thread_once_main_waits(signal.SIGUSR1)
        with pytest.raises(jn.SocketError.Timeout) as caught:
            call()
        sender.join()
    assert caught.value.reason == "cancelled"  # not "deadline": the handler's cancel ended it


class _Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


@pytest.mark.parametrize("kind", sorted(WAITS))
def test_a_handler_that_raises_ends_the_wait_with_its_exception(kind: str) -> None:
    ctx = jn.Context.with_timeout(20)
    with WAITS[kind](ctx) as call, python_handler(signal.SIGUSR1, _raise_stop):
        sender = signal_another_thread_once_main_waits(signal.SIGUSR1)
        with pytest.raises(_Stop):
            call()
        sender.join()
    # nothing left open: the suite's fd check runs after this test


def test_a_wait_without_a_context_also_runs_the_handler() -> None:
    with jn.listen("127.0.0.1:0") as server, python_handler(signal.SIGUSR1, _raise_stop):
        sender = signal_another_thread_once_main_waits(signal.SIGUSR1)
        with pytest.raises(_Stop):
            server.accept()
        sender.join()


def test_a_handler_that_neither_cancels_nor_raises_lets_the_wait_go_on() -> None:
    ran: list[int] = []
    with jn.listen("127.0.0.1:0") as server, python_handler(signal.SIGUSR1, lambda signum, _: ran.append(signum)):
        main = threading.main_thread().native_id
        assert main is not None

        def connect_once_handled() -> None:
            deadline = time.monotonic() + 10
            while not ran or not in_poll(main):  # handled, and waiting again
                assert time.monotonic() < deadline, "the handler never ran, or the wait did not resume"
                time.sleep(0.005)
            dial(server).close()

        sender = signal_another_thread_once_main_waits(signal.SIGUSR1, between=connect_once_handled)
        with server.accept(jn.Context.with_timeout(20)) as stream:
            assert stream.read(1) == b""
        sender.join()
    assert ran == [signal.SIGUSR1]


def test_offer_stops_on_sigterm_given_to_another_thread(tmp_path: Path) -> None:
    """The README's hand-over recipe: the main thread offers, SIGTERM's handler cancels its context."""
    stopped = jn.Context()
    with jn.listen("127.0.0.1:0") as web, python_handler(signal.SIGTERM, lambda *_: stopped.cancel()):
        sender = signal_another_thread_once_main_waits(signal.SIGTERM)
        with pytest.raises(jn.SocketError.Timeout) as caught:
            jn.handoff.offer(f"unix:{tmp_path}/app.handoff", {"web": web}, ctx=stopped)
        sender.join()
    assert caught.value.reason == "cancelled"
    assert not (tmp_path / "app.handoff").exists()


def test_janus_net_installs_its_own_wakeup_pipe_for_each_wait_when_the_program_has_none() -> None:
    # During a wait on the main thread the interpreter's wakeup fd is janus_net's pipe
    # (seen from a handler that runs inside the wait); after it, the slot is empty
    # again, so a library that installs its own later (trio warns otherwise) finds it so.
    result = run_child(
        """
        import fcntl, json, os, signal, stat, threading, time
        import janus_net as jn

        seen = []
        waits = []

        def look(signum, frame):
            fd = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
            if fd >= 0:
                st = os.fstat(fd)
                seen.append({"fifo": stat.S_ISFIFO(st.st_mode), "nonblocking": not os.get_blocking(fd),
                             "cloexec": bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
                             "name": os.readlink(f"/proc/self/fd/{fd}")})
            else:
                seen.append(None)
            waits[-1].cancel()

        main = threading.get_native_id()

        def alarm_once_main_waits():
            # Once the receive sleeps in poll, not after a fixed delay: a signal that came
            # before the wait would run its handler outside it, where the slot is empty.
            while "poll" not in open(f"/proc/self/task/{main}/wchan").read():
                time.sleep(0.005)
            os.kill(os.getpid(), signal.SIGALRM)  # process-directed, as the timer it replaces

        def wait_once():
            with jn.bind("127.0.0.1:0") as sock:
                waits.append(jn.Context.with_timeout(60))
                alarm = threading.Thread(target=alarm_once_main_waits, daemon=True)
                alarm.start()
                try:
                    sock.receive(ctx=waits[-1])
                except jn.SocketError.Timeout:
                    pass
                alarm.join()

        signal.signal(signal.SIGALRM, look)
        def pipes():
            names = []
            for n in os.listdir("/proc/self/fd"):
                try:
                    names.append(os.readlink(f"/proc/self/fd/{n}"))
                except OSError:
                    pass  # the listing's own fd
            return sum(name.startswith("pipe:") for name in names)

        before = pipes()  # stdout and stderr are the test's pipes
        wait_once()
        between = signal.set_wakeup_fd(-1)
        wait_once()
        after = signal.set_wakeup_fd(-1)
        print(json.dumps({"seen": seen, "between": between, "after": after, "pipes": pipes() - before}))
        """
    )
    first, second = result["seen"]
    assert first == second  # one pipe, made once and kept
    assert {k: first[k] for k in ("fifo", "nonblocking", "cloexec")} == {
        "fifo": True,
        "nonblocking": True,
        "cloexec": True,
    }
    assert first["name"].startswith("pipe:")
    assert (result["between"], result["after"], result["pipes"]) == (-1, -1, 2)


def test_the_programs_own_wakeup_fd_is_watched_and_never_read() -> None:
    """Its bytes stay for the program; a second signal, after the first left the fd readable, still lands."""
    result = run_child(
        """
        import json, os, signal, threading, time
        import janus_net as jn

        def in_poll(tid):
            with open(f"/proc/self/task/{tid}/wchan") as f:
                return "poll" in f.read()

        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w)
        ran = []
        ctx = jn.Context.with_timeout(20)

        def handler(signum, frame):
            ran.append(signum)
            if len(ran) == 2:
                ctx.cancel()

        signal.signal(signal.SIGUSR1, handler)
        main = threading.main_thread().native_id

        def sender():
            for n in (1, 2):
                while len(ran) < n - 1 or not in_poll(main):
                    time.sleep(0.005)
                signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

        threading.Thread(target=sender, daemon=True).start()
        reason = None
        with jn.listen("127.0.0.1:0") as server:
            try:
                server.accept(ctx)
            except jn.SocketError.Timeout as e:
                reason = e.reason
        print(json.dumps({"reason": reason, "ran": len(ran), "bytes": list(os.read(r, 100)),
                          "still_theirs": signal.set_wakeup_fd(-1) == w}))
        """
    )
    assert result == {"reason": "cancelled", "ran": 2, "bytes": [signal.SIGUSR1] * 2, "still_theirs": True}


def test_a_signal_in_the_instant_janus_net_looks_at_the_slot_still_reaches_the_programs_wakeup_fd() -> None:
    # The program has its own wakeup fd (as asyncio's loop or janus-net run's supervisor
    # do). A wait puts janus_net's pipe in the slot to see what was there; a signal in
    # that instant is made to happen (the program sends itself SIGUSR1 right after the
    # swap): its byte must reach the program's fd exactly once, and nothing else may.
    result = run_child(
        """
        import functools, json, os, signal
        import janus_net as jn
        from janus_net._policy import wakeup

        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGUSR1, lambda *_: None)
        signal.set_wakeup_fd(w)
        real = signal.set_wakeup_fd
        fired = []

        def swap_then_signal(fd, **kw):
            previous = real(fd, **kw)
            if not fired and fd != w:
                fired.append(1)
                os.kill(os.getpid(), signal.SIGUSR1)  # the C handler writes to the fd in the slot now
            return previous

        quiet = wakeup._SWAP  # the swap's own callable (made once, at import)
        wakeup._SWAP = functools.partial(swap_then_signal, warn_on_full_buffer=False)
        with jn.bind("127.0.0.1:0") as sock:
            try:
                sock.receive(ctx=jn.Context.with_timeout(0.05))
            except jn.SocketError.Timeout:
                pass
        wakeup._SWAP = quiet
        try:
            got = list(os.read(r, 100))
        except BlockingIOError:
            got = []
        print(json.dumps({"got": got, "slot": signal.set_wakeup_fd(-1) == w, "usr1": int(signal.SIGUSR1)}))
        """
    )
    assert result["slot"], "the program's wakeup fd was not put back"
    assert result["got"] == [result["usr1"]]


def test_a_forked_child_gets_its_own_wakeup_pipe() -> None:
    result = run_child(
        """
        import json, os, signal, threading, time
        import janus_net as jn

        seen = []
        waits = []

        def look(signum, frame):
            fd = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
            seen.append(os.readlink(f"/proc/self/fd/{fd}") if fd >= 0 else None)
            waits[-1].cancel()

        def alarm_once_waiting(main):
            # Once the receive sleeps in poll, not after a fixed delay: a signal that came
            # before the wait would run its handler outside it, where the slot is empty.
            while "poll" not in open(f"/proc/self/task/{main}/wchan").read():
                time.sleep(0.005)
            os.kill(os.getpid(), signal.SIGALRM)  # process-directed, as the timer it replaces

        def wait_once():
            with jn.bind("127.0.0.1:0") as sock:
                waits.append(jn.Context.with_timeout(60))
                main = threading.get_native_id()  # the forked child's thread has an id of its own
                alarm = threading.Thread(target=alarm_once_waiting, args=(main,), daemon=True)
                alarm.start()
                try:
                    sock.receive(ctx=waits[-1])
                except jn.SocketError.Timeout:
                    pass
                alarm.join()  # gone before the fork: the child is made from a process of one thread
            return seen.pop()

        signal.signal(signal.SIGALRM, look)
        parent_pipe = wait_once()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, json.dumps(wait_once()).encode())
            os._exit(0)
        os.close(w)
        child_pipe = json.loads(os.read(r, 1000))
        os.waitpid(pid, 0)
        print(json.dumps({"parent": parent_pipe, "child": child_pipe, "again": wait_once()}))
        """
    )
    assert isinstance(result["child"], str) and result["child"].startswith("pipe:")
    assert result["child"] != result["parent"]
    assert result["again"] == result["parent"]


_RECIPE_APP = """
import os, signal, sys, threading
import janus_net as jn

HANDOFF = sys.argv[1]
web = jn.listen("127.0.0.1:0")
serving = jn.Context()
stopped = jn.Context()
signal.signal(signal.SIGTERM, lambda *_: stopped.cancel())

def accept_loop():
    while True:
        try:
            with web.accept(serving) as conn:
                conn.write_all(b"pid %d" % os.getpid())
        except jn.SocketError.Timeout:
            return

loop = threading.Thread(target=accept_loop)
loop.start()
print(threading.main_thread().native_id, flush=True)
try:
    jn.handoff.offer(HANDOFF, {"web": web}, ctx=stopped)
except jn.SocketError.Timeout:
    print("stopped", flush=True)
serving.cancel()
loop.join()
web.close()
"""


def test_the_readme_hand_over_recipe_stops_on_a_sigterm_the_kernel_gave_to_its_accept_thread(tmp_path: Path) -> None:
    """SIGTERM sent with tgkill to the accepting thread, as the kernel may pick it under load."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECIPE_APP, f"unix:{tmp_path}/app.handoff"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        main = int(proc.stdout.readline())
        deadline = time.monotonic() + 20

        def thread_wchan(tid: int) -> str:
            with open(f"/proc/{proc.pid}/task/{tid}/wchan") as f:
                return f.read()

        while True:  # both threads asleep in poll: main in offer, the other in accept
            others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != main]
            if "poll" in thread_wchan(main) and others and all("poll" in thread_wchan(t) for t in others):
                break
            assert time.monotonic() < deadline, "the recipe never settled into its waits"
            time.sleep(0.005)
        for tid in others:
            assert libc.tgkill(proc.pid, tid, signal.SIGTERM) == 0, ctypes.get_errno()  # glibc 2.30's tgkill(2)
            break
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert out.splitlines() == ["stopped"]
