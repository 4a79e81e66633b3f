"""The :service profile: Context, the five checkpoints, and blocking calls that a context ends.

Every test runs against the real kernel; stdlib sockets are the independent peer
(the client that connects, the datagram sender, the "can this port be bound
again" oracle) and strace is the witness of which syscalls happened.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import nonblocking, wait_until_blocked, when_blocked

import janus_net as jn
from janus_net.testing import fail
from tests.conftest import open_fds as _listed_fds
from tests.tracing import MARK, calls_to, syscalls_after_mark

Timeout = jn.SocketError.Timeout


class CountingContext(jn.Context):
    """Counts checks; cancels itself just before check number ``cancel_at``."""

    def __init__(self, cancel_at: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.cancel_at = cancel_at

    def check(self) -> None:
        self.calls += 1
        if self.calls == self.cancel_at:
            self.cancel()
        super().check()


def open_fds() -> set[int]:
    """The open descriptors, without the one the listing itself used (gone by now)."""
    return {fd for fd in _listed_fds() if os.path.lexists(f"/proc/self/fd/{fd}")}


def free_port() -> int:
    """A TCP and UDP port nobody on 127.0.0.1 uses right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """The oracle for "nothing was left bound": a stdlib bind without SO_REUSEADDR."""
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def server() -> Iterator[jn.Server]:
    with jn.listen("127.0.0.1:0") as srv:
        yield srv


def local_address(sock: socket.socket) -> jn.Address:
    """A stdlib socket's own address, as janus_net spells it (for IPv4 sockets)."""
    host, port = sock.getsockname()
    return jn.parse_address(f"{host}:{port}")


def connect(srv: jn.Server) -> socket.socket:
    return socket.create_connection((srv.address.host, srv.address.port), timeout=5)


# --- Context on its own


def test_background_context_never_ends() -> None:
    ctx = jn.Context()
    assert not ctx.cancelled and not ctx.expired and not ctx.done
    assert ctx.remaining() is None
    ctx.check()


class Clock:
    """The monotonic clock of Context and its deadlines, moved by the test alone."""

    def __init__(self) -> None:
        self.now = 1000.0  # any fixed point will do; a fixed one makes the float arithmetic the same every run

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Context's clock, stopped: a real one would let a loaded machine pass a short deadline
    between two lines of a test that says it has not passed yet."""
    from janus_net._policy import context
    from janus_net._values import seconds

    stopped = Clock()
    monkeypatch.setattr(context, "time", stopped)
    monkeypatch.setattr(seconds, "time", stopped)
    return stopped


def test_timeout_counts_down_and_expires(clock: Clock) -> None:
    ctx = jn.Context.with_timeout(0.05)
    left = ctx.remaining()
    assert left is not None and 0 < left <= 0.05
    ctx.check()
    clock.now += 0.06  # the timeout elapsing is what is tested
    assert ctx.expired and ctx.done and not ctx.cancelled
    assert ctx.remaining() == 0.0  # never negative
    with pytest.raises(Timeout) as caught:
        ctx.check()
    assert caught.value.reason == "deadline"
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, jn.SocketError)


def test_deadline_is_on_the_monotonic_clock() -> None:
    now = time.monotonic()
    assert jn.Context.with_deadline(now - 1).expired
    future = jn.Context.with_deadline(now + 100)
    assert not future.expired
    left = future.remaining()
    assert left is not None and 99 < left <= 100


def test_cancel_ends_the_context_and_wins_over_the_deadline() -> None:
    ctx = jn.Context.with_deadline(time.monotonic() - 1)
    ctx.cancel()
    ctx.cancel()  # idempotent
    assert ctx.cancelled and ctx.done
    with pytest.raises(Timeout) as caught:
        ctx.check()
    assert caught.value.reason == "cancelled"


def test_with_timeout_builds_the_subclass() -> None:
    ctx = CountingContext.with_timeout(10)
    assert isinstance(ctx, CountingContext)
    ctx.check()
    assert ctx.calls == 1


def test_bad_timeouts_are_rejected() -> None:
    with pytest.raises(TypeError):
        jn.Context.with_timeout("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jn.Context.with_timeout(float("nan"))


NEVER = [10**400, float("inf"), 2**1024]


@pytest.mark.parametrize("never", NEVER, ids=["10**400", "inf", "2**1024"])
def test_a_timeout_or_deadline_beyond_the_float_range_means_never(never: float) -> None:
    made = [
        jn.Context.with_timeout(never),
        jn.Context.with_deadline(never),
        jn.Context().child(timeout=never),
        CountingContext.with_timeout(never),
    ]
    for ctx in made:
        assert ctx.deadline is None and ctx.remaining() is None
        assert not ctx.expired and not ctx.done
        ctx.check()
    # a child keeps the parent's real deadline: never is not earlier than anything
    parent = jn.Context.with_timeout(100)
    child = parent.child(timeout=never)
    assert child.deadline == parent.deadline


@pytest.mark.parametrize("long_ago", [-(10**400), float("-inf")], ids=["-10**400", "-inf"])
def test_a_timeout_or_deadline_below_the_float_range_has_passed(long_ago: float) -> None:
    for ctx in (jn.Context.with_timeout(long_ago), jn.Context.with_deadline(long_ago), jn.Context().child(long_ago)):
        assert ctx.expired and ctx.remaining() == 0.0
        with pytest.raises(Timeout) as caught:
            ctx.check()
        assert caught.value.reason == "deadline"


def test_nan_and_non_numbers_are_refused_everywhere_seconds_enter() -> None:
    makers = (jn.Context.with_timeout, jn.Context.with_deadline, jn.Context().child)
    for make in makers:
        with pytest.raises(ValueError):
            make(float("nan"))
        for bad in (True, "1", 1j):
            with pytest.raises(TypeError):
                make(bad)  # type: ignore[arg-type]


def test_the_largest_finite_timeout_waits_and_a_cancel_still_ends_it() -> None:
    """A deadline far beyond poll's int of milliseconds is cut into pieces, never overflowed."""
    import sys

    for timeout in (sys.float_info.max, 10**400):
        ctx = jn.Context.with_timeout(timeout)
        with jn.bind("127.0.0.1:0") as sock:
            when_blocked(ctx.cancel)
            with pytest.raises(Timeout) as caught:
                sock.receive(ctx=ctx)
        assert caught.value.reason == "cancelled"


def test_the_seconds_helper_is_the_one_conversion() -> None:
    from janus_net._values import seconds

    assert seconds.seconds(10**400) == float("inf") and seconds.seconds(-(10**400)) == float("-inf")
    assert seconds.seconds(3) == 3.0 and type(seconds.seconds(3)) is float
    assert seconds.deadline_after(10**400) is None and seconds.deadline_at(float("inf")) is None
    at = seconds.deadline_after(1)
    assert at is not None and 0 < at - time.monotonic() <= 1


def test_children_end_with_their_parent() -> None:
    parent = jn.Context()
    child = parent.child()
    grandchild = child.child(timeout=100)
    sibling = parent.child()
    child.cancel()
    assert child.cancelled and grandchild.cancelled
    assert not parent.cancelled and not sibling.cancelled
    parent.cancel()
    assert sibling.cancelled
    with pytest.raises(Timeout) as caught:
        sibling.check()
    assert caught.value.reason == "cancelled"
    assert parent.child().cancelled  # a child of a cancelled context starts cancelled


def test_child_deadline_is_the_earliest(clock: Clock) -> None:
    parent = jn.Context.with_timeout(0.05)
    longer = parent.child(timeout=100)
    shorter = parent.child(timeout=0.001)
    left = longer.remaining()
    assert left is not None and left <= 0.05
    clock.now += 0.01  # the deadlines elapsing, one after the other, are what is tested
    assert shorter.expired and not parent.expired
    clock.now += 0.05
    assert longer.expired
    with pytest.raises(Timeout) as caught:
        longer.check()
    assert caught.value.reason == "deadline"
    assert jn.Context().child(timeout=5).remaining() is not None
    assert jn.Context().child().remaining() is None


def test_unused_children_are_collected() -> None:
    parent = jn.Context()
    for _ in range(100):
        parent.child()
    gc.collect()
    assert len(parent._children) == 0


def test_cancel_from_many_threads_at_once() -> None:
    parent = jn.Context()
    children = [parent.child() for _ in range(50)]
    threads = [threading.Thread(target=c.cancel) for c in [parent, *children]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c.cancelled for c in children)


def test_wake_fd_is_lazy_close_on_exec_and_closed_with_the_context() -> None:
    before = open_fds()
    ctx = jn.Context.with_timeout(10)
    ctx.check()
    assert open_fds() == before  # no fd until someone waits
    fd = ctx._wake_fd()
    assert ctx._wake_fd() == fd  # one per context
    assert fd not in before
    assert "eventfd" in os.readlink(f"/proc/self/fd/{fd}") or "pipe" in os.readlink(f"/proc/self/fd/{fd}")
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    del ctx
    gc.collect()
    assert fd not in open_fds()


def test_wake_fd_made_after_cancel_is_already_readable() -> None:
    import select

    ctx = jn.Context()
    ctx.cancel()
    fd = ctx._wake_fd()
    assert select.select([fd], [], [], 0)[0] == [fd]


# --- listen_with_context / bind_with_context: the checkpoints


def test_successful_tcp_listen_checks_exactly_five_times() -> None:
    ctx = CountingContext()
    with jn.listen_with_context("127.0.0.1:0", ctx) as srv:
        assert ctx.calls == 5
        with connect(srv), srv.accept() as stream:
            assert stream.address.port != 0


def test_successful_unix_listen_checks_exactly_five_times(tmp_path: Path) -> None:
    ctx = CountingContext()
    with jn.listen_with_context(f"unix:{tmp_path / 's.sock'}", ctx):
        assert ctx.calls == 5


def test_datagram_bind_checks_four_times() -> None:
    ctx = CountingContext()
    with jn.bind_with_context("127.0.0.1:0", ctx) as udp:
        assert ctx.calls == 4
        assert isinstance(udp, jn.Socket)


def test_every_eintr_retry_checks_once_more() -> None:
    ctx = CountingContext()
    with fail("bind", errno.EINTR, times=2) as injected, jn.listen_with_context("127.0.0.1:0", ctx):
        assert injected.failed == 2
        assert ctx.calls == 7


def test_eintr_retry_ends_a_cancelled_listen() -> None:
    port = free_port()
    ctx = CountingContext(cancel_at=6)  # the first EINTR retry's check
    before = open_fds()
    with fail("bind", errno.EINTR), pytest.raises(Timeout) as caught:
        jn.listen_with_context(f"127.0.0.1:{port}", ctx)
    assert caught.value.reason == "cancelled"
    assert open_fds() == before
    assert port_is_free(port)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_cancel_at_each_tcp_checkpoint_leaves_nothing(k: int) -> None:
    port = free_port()
    ctx = CountingContext(cancel_at=k)
    before = open_fds()
    with pytest.raises(Timeout) as caught:
        jn.listen_with_context(f"127.0.0.1:{port}", ctx)
    assert caught.value.reason == "cancelled"
    assert ctx.calls == k
    assert open_fds() == before
    assert port_is_free(port)
    with jn.listen(f"127.0.0.1:{port}") as again:  # and janus_net itself can have it
        assert again.address.port == port


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_cancel_at_each_unix_checkpoint_leaves_nothing(k: int, tmp_path: Path) -> None:
    path = tmp_path / "ctx.sock"
    ctx = CountingContext(cancel_at=k)
    before = open_fds()
    with pytest.raises(Timeout) as caught:
        jn.listen_with_context(f"unix:{path}", ctx)
    assert caught.value.reason == "cancelled"
    assert ctx.calls == k
    assert open_fds() == before
    assert not os.path.lexists(path)
    with jn.listen(f"unix:{path}"):  # nothing in the way
        assert path.exists()


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_cancel_at_each_datagram_checkpoint_leaves_nothing(k: int) -> None:
    port = free_port()
    ctx = CountingContext(cancel_at=k)
    before = open_fds()
    with pytest.raises(Timeout):
        jn.bind_with_context(f"127.0.0.1:{port}", ctx)
    assert open_fds() == before
    assert port_is_free(port, socket.SOCK_DGRAM)


def test_an_expired_deadline_makes_no_socket_syscall(tmp_path: Path) -> None:
    program = (
        "import os, time, janus_net as jn\n"
        "ctx = jn.Context.with_deadline(time.monotonic() - 1)\n"
        f"os.write(1, {MARK!r})\n"
        "try:\n"
        "    jn.listen_with_context('127.0.0.1:0', ctx)\n"
        "except jn.SocketError.Timeout as e:\n"
        "    print('Timeout', e.reason)\n"
    )
    after, stdout = syscalls_after_mark(program, tmp_path)
    assert "Timeout deadline" in stdout
    assert calls_to(after, "socket", "bind") == []
    # The witness can see socket(): the same program with a live context makes one.
    live, _ = syscalls_after_mark(program.replace("time.monotonic() - 1", "time.monotonic() + 60"), tmp_path)
    assert len(calls_to(live, "socket")) == 1


def test_context_is_required() -> None:
    with pytest.raises(TypeError):
        jn.listen_with_context("127.0.0.1:0", None)  # type: ignore[arg-type]


# --- blocking calls with ctx=


def test_accept_deadline_raises_timeout_on_time_and_the_server_still_accepts(server: jn.Server) -> None:
    ctx = jn.Context.with_timeout(0.3)
    start = time.monotonic()
    with pytest.raises(Timeout) as caught:
        server.accept(ctx)
    elapsed = time.monotonic() - start
    assert caught.value.reason == "deadline"
    assert 0.25 <= elapsed <= 1.5
    assert not nonblocking(server.fileno())  # blocking again once no accept(ctx) waits
    with connect(server) as client, server.accept(jn.Context.with_timeout(5)) as stream:
        client.sendall(b"still here")
        assert stream.read(64) == b"still here"
    with connect(server), server.accept() as plain:
        assert plain.address.port != 0


def test_accept_with_a_pending_connection_returns_at_once(server: jn.Server) -> None:
    with connect(server) as client:
        ctx = jn.Context()
        before = open_fds()
        with server.accept(ctx) as stream:
            assert stream.address == local_address(client)
            assert open_fds() - before == {stream.fileno()}  # no wake fd was needed
        assert not nonblocking(server.fileno())


def test_the_accepted_stream_is_blocking(server: jn.Server) -> None:
    with connect(server), server.accept(jn.Context.with_timeout(5)) as stream:
        assert not nonblocking(stream.fileno())


def test_accept_with_a_done_context_waits_for_nothing(server: jn.Server) -> None:
    ctx = jn.Context()
    ctx.cancel()
    before = open_fds()
    with pytest.raises(Timeout):
        server.accept(ctx)
    assert open_fds() == before  # a done context has nothing to wait on: no wake fd


def test_cancel_from_another_thread_ends_a_blocked_accept_at_once(server: jn.Server) -> None:
    ctx = jn.Context()
    when_blocked(ctx.cancel)
    start = time.monotonic()
    with pytest.raises(Timeout) as caught:
        server.accept(ctx)
    assert caught.value.reason == "cancelled"
    assert time.monotonic() - start < 0.9


def test_cancelling_the_parent_wakes_an_accept_waiting_on_a_child(server: jn.Server) -> None:
    parent = jn.Context()
    child = parent.child(timeout=30).child()
    when_blocked(parent.cancel)
    start = time.monotonic()
    with pytest.raises(Timeout) as caught:
        server.accept(child)
    assert caught.value.reason == "cancelled"
    assert time.monotonic() - start < 0.9


def test_two_threads_racing_for_one_connection_do_not_hang(server: jn.Server) -> None:
    results: list[object] = []
    waiting = threading.Barrier(3)

    def accept_one() -> None:
        ctx = jn.Context.with_timeout(1.0)
        waiting.wait()
        try:
            stream = server.accept(ctx)
        except Timeout as e:
            results.append(e.reason)
        else:
            results.append(stream.address)
            stream.close()

    threads = [threading.Thread(target=accept_one) for _ in range(2)]
    for t in threads:
        t.start()
    waiting.wait()
    for t in threads:
        wait_until_blocked(t, outcome=results)  # both are in poll now
    with connect(server) as client:
        for t in threads:
            t.join(timeout=5)
        assert not any(t.is_alive() for t in threads)
        winner = local_address(client)
    assert sorted(map(str, results)) == sorted([str(winner), "deadline"])
    assert not nonblocking(server.fileno())


def test_plain_accept_meanwhile_never_sees_eagain(server: jn.Server) -> None:
    # An accept(ctx) waiting never switches the listener to O_NONBLOCK (the description
    # may be shared with other processes); a plain accept that starts while it waits
    # waits too (poll, then accept) and gets the connection.
    got: list[object] = []

    def plain() -> None:
        try:
            with server.accept() as stream:
                got.append(stream.address)
        except BaseException as e:  # reported below, in the test's thread
            got.append(e)

    ctx = jn.Context.with_timeout(0.5)

    def wait_in_vain() -> None:
        with pytest.raises(Timeout):
            server.accept(ctx)

    waiter = threading.Thread(target=wait_in_vain)
    waiter.start()
    wait_until_blocked(waiter)
    assert not nonblocking(server.fileno())
    plain_thread = threading.Thread(target=plain)
    plain_thread.start()
    waiter.join(timeout=5)
    assert not nonblocking(server.fileno())
    assert got == []  # no EAGAIN came out of the plain accept
    with connect(server) as client:
        plain_thread.join(timeout=5)
        assert got == [local_address(client)]


def test_a_signal_during_the_wait_keeps_the_deadline() -> None:
    # A signal whose handler returns: poll says EINTR, the wait goes on with the time
    # that is left, and the deadline still ends it.
    hits: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: hits.append(signum))
    try:
        with jn.listen("127.0.0.1:0") as srv:
            signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
            start = time.monotonic()
            with pytest.raises(Timeout) as caught:
                srv.accept(jn.Context.with_timeout(0.5))
            elapsed = time.monotonic() - start
            signal.setitimer(signal.ITIMER_REAL, 0)
            assert caught.value.reason == "deadline"
            assert 0.45 <= elapsed <= 1.5
            assert len(hits) >= 2
            assert not nonblocking(srv.fileno())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_an_exception_from_a_signal_handler_ends_the_wait_cleanly(server: jn.Server) -> None:
    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    me = threading.get_ident()
    try:
        # Once the accept waits, not on a timer: one that fired before pytest.raises was entered
        # would fail the test with the very exception it expects.
        sender = when_blocked(lambda: signal.pthread_kill(me, signal.SIGALRM))
        with pytest.raises(Interrupted):
            server.accept(jn.Context.with_timeout(5))
        sender.join()
    finally:
        signal.signal(signal.SIGALRM, old)
    assert not nonblocking(server.fileno())
    with connect(server), server.accept(jn.Context.with_timeout(5)):
        pass


def test_injected_eintr_in_poll_goes_back_to_the_context(server: jn.Server) -> None:
    ctx = CountingContext()
    when_blocked(ctx.cancel)
    with fail("poll", errno.EINTR, times=3) as injected, pytest.raises(Timeout):
        server.accept(ctx)
    assert injected.failed == 3
    assert ctx.calls >= 4  # the first turn, then one per EINTR


@pytest.mark.parametrize("shutdown_first_waiter", ["plain", "ctx"])
def test_shutdown_wakes_blocked_accepts_with_socket_not_listening(shutdown_first_waiter: str) -> None:
    with jn.listen("127.0.0.1:0") as srv:
        errors: list[BaseException] = []

        def wait(ctx: jn.Context | None) -> None:
            try:
                srv.accept(ctx)
            except BaseException as e:
                errors.append(e)

        threads = [
            threading.Thread(target=wait, args=(None,)),
            threading.Thread(target=wait, args=(jn.Context.with_timeout(30),)),
        ]
        if shutdown_first_waiter == "ctx":
            threads.reverse()
        for t in threads:
            t.start()
            wait_until_blocked(t, outcome=errors)  # one after the other: the order is the parameter
        start = time.monotonic()
        srv.shutdown()
        for t in threads:
            t.join(timeout=5)
        assert time.monotonic() - start < 1.0
        assert [type(e) for e in errors] == [jn.SocketError.SocketNotListening] * 2
        with pytest.raises(jn.SocketError.SocketNotListening):
            srv.accept(jn.Context.with_timeout(5))
        srv.shutdown()  # again: nothing to do, no error


def test_shutdown_wakes_an_accept_on_a_unix_listener(tmp_path: Path) -> None:
    with jn.listen(f"unix:{tmp_path / 'sd.sock'}") as srv:
        when_blocked(srv.shutdown)
        with pytest.raises(jn.SocketError.SocketNotListening):
            srv.accept(jn.Context.with_timeout(5))


def test_receive_deadline_and_cancel() -> None:
    with jn.bind("127.0.0.1:0") as udp:
        start = time.monotonic()
        with pytest.raises(Timeout) as caught:
            udp.receive(ctx=jn.Context.with_timeout(0.3))
        assert caught.value.reason == "deadline"
        assert 0.25 <= time.monotonic() - start <= 1.5

        ctx = jn.Context()
        when_blocked(ctx.cancel)
        start = time.monotonic()
        with pytest.raises(Timeout) as caught:
            udp.receive_into(bytearray(16), ctx=ctx)
        assert caught.value.reason == "cancelled"
        assert time.monotonic() - start < 0.9

        ctx = jn.Context()
        when_blocked(ctx.cancel)
        with pytest.raises(Timeout):
            udp.receive_many(4, ctx=ctx)


def test_receive_with_context_gets_datagrams() -> None:
    with jn.bind("127.0.0.1:0") as udp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind(("127.0.0.1", 0))
        source = local_address(sender)
        dest = (udp.address.host, udp.address.port)
        when_blocked(lambda: sender.sendto(b"late", dest))
        assert udp.receive(ctx=jn.Context.with_timeout(5)) == (b"late", source)
        sender.sendto(b"one", dest)
        buf = bytearray(8)
        assert udp.receive_into(buf, ctx=jn.Context.with_timeout(5)) == (3, source)
        assert buf[:3] == b"one"
        for data in (b"a", b"b", b"c"):
            sender.sendto(data, dest)
        time.sleep(0.05)  # loopback delivers at once; a margin so that receive_many finds all three queued
        got = udp.receive_many(8, ctx=jn.Context.with_timeout(5))
        assert got == [(b"a", source), (b"b", source), (b"c", source)]


def test_two_threads_racing_for_one_datagram_do_not_hang() -> None:
    with jn.bind("127.0.0.1:0") as udp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        results: list[object] = []

        def receive_one() -> None:
            try:
                results.append(udp.receive(ctx=jn.Context.with_timeout(1.0))[0])
            except Timeout as e:
                results.append(e.reason)

        threads = [threading.Thread(target=receive_one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            wait_until_blocked(t, outcome=results)
        sender.sendto(b"only one", (udp.address.host, udp.address.port))
        for t in threads:
            t.join(timeout=5)
        assert not any(t.is_alive() for t in threads)
        assert sorted(map(str, results)) == sorted(["b'only one'", "deadline"])


def test_read_deadline_cancel_and_data(server: jn.Server) -> None:
    with connect(server) as client, server.accept() as stream:
        start = time.monotonic()
        with pytest.raises(Timeout) as caught:
            stream.read(16, jn.Context.with_timeout(0.3))
        assert caught.value.reason == "deadline"
        assert 0.25 <= time.monotonic() - start <= 1.5

        ctx = jn.Context()
        when_blocked(ctx.cancel)
        start = time.monotonic()
        with pytest.raises(Timeout) as caught:
            stream.read_into(bytearray(16), ctx)
        assert caught.value.reason == "cancelled"
        assert time.monotonic() - start < 0.9

        when_blocked(lambda: client.sendall(b"hello"))
        assert stream.read(16, jn.Context.with_timeout(5)) == b"hello"
        client.sendall(b"again")
        buf = bytearray(16)
        assert stream.read_into(buf, jn.Context.with_timeout(5)) == 5
        assert buf[:5] == b"again"
        client.shutdown(socket.SHUT_WR)
        assert stream.read(16, jn.Context.with_timeout(5)) == b""  # end of stream, not a wait


def test_close_from_another_thread_wakes_a_context_read(server: jn.Server) -> None:
    with connect(server):
        stream = server.accept()
        when_blocked(stream.close)
        start = time.monotonic()
        with pytest.raises(jn.SocketError.SocketUnconnected):
            stream.read(16, jn.Context.with_timeout(30))
        assert time.monotonic() - start < 0.9
        assert stream.closed


def test_close_from_another_thread_ends_a_receive_as_a_plain_receive_ends() -> None:
    # After close() shuts a datagram socket down, poll says POLLHUP for ever while a
    # non-blocking recvfrom still says EAGAIN: the context wait must end at once with
    # whatever the plain blocking call gives there, not spin until the deadline.
    outcomes = []
    for ctx in (None, jn.Context.with_timeout(30)):
        udp = jn.bind("127.0.0.1:0")
        when_blocked(udp.close)
        start = time.monotonic()
        try:
            outcome: object = udp.receive(ctx=ctx)
        except (jn.SocketError, jn.ErrnoBug) as e:
            outcome = type(e)
        assert time.monotonic() - start < 0.9
        assert udp.closed
        outcomes.append(outcome)
    assert outcomes[0] == outcomes[1]
