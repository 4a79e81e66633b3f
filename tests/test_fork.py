"""A forked child and the objects it inherited (DESIGN §3 "One door": fork).

Each descriptor cell and each context's waker records the pid that made it. In a
forked child the in-flight counts the parent's threads held at fork do not exist
(the child has only the forking thread), so the child's ``close()`` closes its copy
at once; and the wake fds are the parent's too, so the child closes its copies and
never signals them (a signal would wake the parent's waiting thread, which never
drains it: it spun at full CPU).

Each test forks while a parent thread is blocked on the object (in poll, checked by
its wchan), lets the child close or cancel, and then checks the child's descriptor
table, that the parent's thread still sleeps in poll without burning CPU, and that the
parent's own close() or cancel() still wakes it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from peers import dial, in_poll, wait_until_blocked, wait_until_process_blocked, wchan

import janus_net as jn

# A thread that spins in a loop of polls burns a whole core: hundreds of clock ticks
# a second. A sleeping one burns none; this allows for scheduling noise on a loaded machine.
_SPIN_TICKS = 5
_WINDOW_S = 0.5


def fds_of(pid: int | str = "self") -> dict[int, str]:
    """The open descriptors of a process and what each names."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass  # the listing's own fd, closed meanwhile
    return out


def cpu_ticks(tid: int) -> int:
    """utime + stime of thread ``tid`` of this process, in clock ticks."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after the comm


class Blocked:
    """A thread blocked in ``call``; `outcome` gets what it returned or raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()
        self.tid: int = wait_until_blocked(self.thread, outcome=self.outcome)

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self.outcome.append(call())
        except BaseException as e:
            self.outcome.append(e)

    def assert_sleeping(self) -> None:
        """Still blocked, still in poll, and not spinning over a short window."""
        before = cpu_ticks(self.tid)
        time.sleep(_WINDOW_S)
        spent = cpu_ticks(self.tid) - before
        assert self.thread.is_alive() and not self.outcome, self.outcome
        assert in_poll(self.tid), wchan(self.tid)
        assert spent <= _SPIN_TICKS, f"the waiting thread burned {spent} clock ticks in {_WINDOW_S}s: it spins"

    def result(self) -> object:
        self.thread.join(10)
        assert not self.thread.is_alive(), "not woken"
        return self.outcome[0]


@contextmanager
def forked(child: Callable[[], dict[str, object]]) -> Iterator[tuple[int, dict[str, object], Callable[[], None]]]:
    """Fork; the child runs ``child`` and reports its dict, then waits to be released.

    Yields (child pid, its report, release). The child stays alive until released,
    so the parent can look at its descriptor table.
    """
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists here
        status = 0
        try:
            os.close(report_r)
            os.close(go_w)
            try:
                report = child()
            except BaseException as e:
                report = {"error": repr(e)}
                status = 1
            os.write(report_w, json.dumps(report).encode())
            os.close(report_w)
            os.read(go_r, 1)
        finally:
            os._exit(status)
    os.close(report_w)
    os.close(go_r)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            os.close(go_w)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0

    try:
        chunks = []
        while chunk := os.read(report_r, 65536):
            chunks.append(chunk)
        os.close(report_r)
        report = json.loads(b"".join(chunks))
        assert "error" not in report, report["error"]
        yield pid, report, release
    finally:
        release()


def child_closes(owner: jn.Server | jn.Socket | jn.Stream) -> Callable[[], dict[str, object]]:
    def run() -> dict[str, object]:
        fd = owner.fileno()
        before = fds_of()
        owner.close()
        after = fds_of()
        return {
            "fd": fd,
            "closed": sorted(set(before) - set(after)),
            "what": [before[n] for n in set(before) - set(after)],
        }

    return run


def eventfd_count(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["eventfd-count"].strip(), 16)


def socket_inode(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def stream_pair() -> Iterator[tuple[jn.Stream, socket.socket]]:
    with jn.listen("127.0.0.1:0") as server, dial(server) as client, server.accept() as stream:
        yield stream, client


OWNERS = ["accept", "receive", "read"]


@contextmanager
def blocked_owner(kind: str) -> Iterator[tuple[jn.Server | jn.Socket | jn.Stream, Blocked, type[jn.SocketError]]]:
    if kind == "accept":
        with jn.listen("127.0.0.1:0") as server:
            yield server, Blocked(server.accept), jn.SocketError.SocketNotListening
    elif kind == "receive":
        with jn.bind("127.0.0.1:0") as sock:
            yield sock, Blocked(sock.receive), jn.SocketError.SocketUnconnected
    else:
        with jn.listen("127.0.0.1:0") as server, dial(server) as client, server.accept() as stream:
            yield stream, Blocked(lambda: stream.read(1)), jn.SocketError.SocketUnconnected
            client.close()


@pytest.mark.parametrize("kind", OWNERS)
def test_a_childs_close_closes_its_copy_and_never_wakes_the_parent(kind: str) -> None:
    with blocked_owner(kind) as (owner, blocked, woken_by_close):
        fd = owner.fileno()
        sock_name = socket_inode(fd)
        wake = {n: what for n, what in fds_of().items() if "eventfd" in what}
        with forked(child_closes(owner)) as (pid, report, release):
            # The child closed its copy of the socket (and of the parent's wake fd),
            # nothing else; and nothing in it names the socket any more.
            assert fd in report["closed"]
            assert set(report["closed"]) - {fd} <= set(wake), report
            assert sock_name not in fds_of(pid).values()
            blocked.assert_sleeping()
            release()
        blocked.assert_sleeping()
        owner.close()
        assert isinstance(blocked.result(), woken_by_close), blocked.outcome


def test_the_listener_stops_once_the_parent_closes_too() -> None:
    """The child's copy is really gone: with both closed, nothing accepts (before, the child's copy kept listening)."""
    with jn.listen("127.0.0.1:0") as server:
        address = server.address
        assert isinstance(address, jn.Ip4Address)
        blocked = Blocked(server.accept)
        with forked(child_closes(server)) as (_pid, _report, _release):
            server.close()
            assert isinstance(blocked.result(), jn.SocketError.SocketNotListening)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address.host, address.port), timeout=5).close()


def test_a_childs_cancel_never_wakes_the_parents_wait_on_that_context() -> None:
    with jn.listen("127.0.0.1:0") as server:
        ctx = jn.Context()
        blocked = Blocked(lambda: server.accept(ctx))
        waker = {n: what for n, what in fds_of().items() if "eventfd" in what}

        def child() -> dict[str, object]:
            before = fds_of()
            ctx.cancel()
            after = fds_of()
            return {"closed": sorted(set(before) - set(after)), "cancelled": ctx.cancelled}

        with forked(child) as (_pid, report, _release):
            assert report["cancelled"] is True
            assert set(report["closed"]) <= set(waker), report  # its copies of the parent's pairs only
            blocked.assert_sleeping()
        blocked.assert_sleeping()
        assert not ctx.cancelled  # the child's cancel was the child's
        ctx.cancel()
        error = blocked.result()
        assert isinstance(error, jn.SocketError.Timeout) and error.reason == "cancelled", error


def test_a_child_waits_on_an_inherited_context_with_its_own_wake_fd() -> None:
    """A wait in the child never uses the parent's pair: the parent's cancel does not wake it (it would spin)."""
    with jn.bind("127.0.0.1:0") as sock:
        ctx = jn.Context()
        parent_pairs = {n for n, what in fds_of().items() if "eventfd" in what}
        blocked = Blocked(lambda: sock.receive(ctx=ctx))
        parent_pairs = {n for n, what in fds_of().items() if "eventfd" in what} - parent_pairs

        def child() -> dict[str, object]:
            started = time.process_time()
            try:
                sock.receive(ctx=ctx.child(timeout=0.3))
            except jn.SocketError.Timeout as e:
                reason = e.reason
            return {"reason": reason, "cpu": time.process_time() - started}

        with forked(child) as (_pid, report, _release):
            assert report["reason"] == "deadline"
            assert isinstance(report["cpu"], float) and report["cpu"] < 0.25  # it slept, did not spin
            # The child's wait neither used nor signalled the parent's pairs.
            assert all(eventfd_count(n) == 0 for n in parent_pairs)
            blocked.assert_sleeping()
        ctx.cancel()
        assert isinstance(blocked.result(), jn.SocketError.Timeout)


def test_a_child_closes_every_object_the_parents_threads_wait_on() -> None:
    with jn.bind("127.0.0.1:0") as sock, jn.listen("127.0.0.1:0") as server:
        blocked_accept = Blocked(server.accept)
        blocked_receive = Blocked(sock.receive)

        def child() -> dict[str, object]:
            before = fds_of()
            server.close()
            sock.close()
            return {"closed": sorted(set(before) - set(fds_of()))}

        fds = {server.fileno(), sock.fileno()}
        with forked(child) as (_pid, report, _release):
            assert fds <= set(report["closed"])
            blocked_accept.assert_sleeping()
            blocked_receive.assert_sleeping()
        server.close()
        sock.close()
        assert isinstance(blocked_accept.result(), jn.SocketError.SocketNotListening)
        assert isinstance(blocked_receive.result(), jn.SocketError.SocketUnconnected)


def test_a_childs_to_socket_takes_the_descriptor_despite_the_parents_call_in_flight() -> None:
    with jn.listen("127.0.0.1:0") as server:
        blocked = Blocked(server.accept)

        def child() -> dict[str, object]:
            plain = server.to_socket()
            with plain:
                return {
                    "type": type(plain).__name__,
                    "listening": plain.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
                }

        with forked(child) as (_pid, report, _release):
            assert report == {"type": "socket", "listening": 1}
            blocked.assert_sleeping()
        server.close()
        assert isinstance(blocked.result(), jn.SocketError.SocketNotListening)


def test_a_child_forked_by_another_thread_watches_the_wakeup_fd_on_its_new_main_thread() -> None:
    """In a child forked by a thread other than the main one, that thread is the main one, and its waits watch signals.

    janus_net remembers which thread is the main one (a wait asks at every start). The
    parent's answer must not outlive a fork made by a worker thread: the child's waits
    would then leave the wakeup fd out, and a signal the kernel gives another thread of
    the child would run its handler only once the wait ended for another reason (here:
    its 5 s deadline, instead of the handler's cancel at once).
    """
    with jn.bind("127.0.0.1:0") as sock:
        with pytest.raises(jn.SocketError.Timeout):  # a wait on the main thread first: it is known
            sock.receive(ctx=jn.Context.with_timeout(0.01))
        pids: list[int] = []

        def fork_here() -> None:
            pid = os.fork()
            if pid != 0:
                pids.append(pid)
                return
            status = 1
            try:
                ctx = jn.Context.with_timeout(5)
                signal.signal(signal.SIGUSR1, lambda *_: ctx.cancel())

                waiter = threading.get_native_id()

                def raise_signal() -> None:  # the only thread of the child that takes SIGUSR1
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
                    # Once the receive waits, not after a nap: a signal that came before the wait
                    # would cancel the context before it began, and the test would pass whether the
                    # wait watches the wakeup fd or not.
                    wait_until_process_blocked(waiter)
                    os.kill(os.getpid(), signal.SIGUSR1)

                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # never this one
                threading.Thread(target=raise_signal, daemon=True).start()
                started = time.monotonic()
                try:
                    sock.receive(ctx=ctx)
                except jn.SocketError.Timeout as e:
                    status = 0 if e.reason == "cancelled" and time.monotonic() - started < 4 else 2
            finally:
                os._exit(status)

        forker = threading.Thread(target=fork_here)
        forker.start()
        forker.join()
        _, status = os.waitpid(pids[0], 0)
        assert os.waitstatus_to_exitcode(status) == 0
