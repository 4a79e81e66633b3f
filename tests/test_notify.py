"""jn.notify and jn.watchdog_interval: the test is the service manager.

It binds its own notify socket (stdlib, SO_PASSCRED, path and abstract), points
NOTIFY_SOCKET at it, and checks each datagram, the credentials the kernel
attached (our pid, uid, gid) and the descriptors that came with FDSTORE=1.
"""

from __future__ import annotations

import array
import errno
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interrupts import interrupt_at, live_fds

import janus_net as jn
from janus_net.testing import fail


class Manager:
    """A notify socket and what arrived on it."""

    def __init__(self, sock: socket.socket, env: str) -> None:
        self.sock = sock
        self.env = env

    def receive(self) -> tuple[list[str], tuple[int, int, int], list[int]]:
        """(lines, (pid, uid, gid), descriptors) of the next datagram; the caller closes the descriptors."""
        self.sock.settimeout(10)
        data, ancdata, flags, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(64) + socket.CMSG_SPACE(12))
        assert not flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC)
        creds = None
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                creds = tuple(array.array("i", payload[:12]))
            elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) // 4 * 4]))
        assert creds is not None, "SO_PASSCRED: the kernel always attaches the sender's credentials"
        assert data.endswith(b"\n")
        return data.decode().splitlines(), creds, fds  # type: ignore[return-value]

    def nothing_pending(self) -> bool:
        self.sock.settimeout(0)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        return False


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Manager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    if request.param == "path":
        env = str(tmp_path / "notify")
        sock.bind(env)
    else:
        env = f"@jn-notify-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + env[1:])
    monkeypatch.setenv("NOTIFY_SOCKET", env)
    with sock:
        yield Manager(sock, env)


ME = (os.getpid(), os.getuid(), os.getgid())


def test_unset_notify_socket_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with fail("socket", 5) as injection:
        assert jn.notify(ready=True) is False
        monkeypatch.setenv("NOTIFY_SOCKET", "")
        assert jn.notify(ready=True, status="x") is False
    assert injection.failed == 0


def test_each_field(manager: Manager) -> None:
    assert jn.notify(ready=True) is True
    assert manager.receive() == (["READY=1"], ME, [])
    assert jn.notify(status="serving 3 clients", mainpid=4242) is True
    assert manager.receive() == (["STATUS=serving 3 clients", "MAINPID=4242"], ME, [])
    assert jn.notify(stopping=True, watchdog=True)
    assert manager.receive() == (["STOPPING=1", "WATCHDOG=1"], ME, [])
    assert jn.notify(ready=True, status="reload failed", errno=errno.ETIMEDOUT)
    assert manager.receive() == (["READY=1", "STATUS=reload failed", f"ERRNO={errno.ETIMEDOUT}"], ME, [])
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert jn.notify(reloading=True)
    lines, creds, fds = manager.receive()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].split("=")[1]) <= after
    assert creds == ME and fds == []
    assert manager.nothing_pending()


def test_fdstore_sends_the_descriptors_with_their_names(manager: Manager) -> None:
    with jn.listen("127.0.0.1:0") as web, jn.bind("127.0.0.1:0") as udp:
        assert jn.notify(fds={"web": web}, ready=True)
        lines, creds, fds = manager.receive()
        assert lines == ["FDSTORE=1", "FDNAME=web", "READY=1"] and creds == ME
        assert len(fds) == 1
        with socket.socket(fileno=fds[0]) as stored:
            assert stored.getsockname() == (web.address.host, web.address.port)  # type: ignore[union-attr]
            assert stored.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        # Several names: one datagram each (one FDNAME per datagram); the state goes with the last.
        assert jn.notify(fds={"web": web, "dns": udp}, status="stored")
        first, second = manager.receive(), manager.receive()
        assert first[0] == ["FDSTORE=1", "FDNAME=web"] and len(first[2]) == 1
        assert second[0] == ["FDSTORE=1", "FDNAME=dns", "STATUS=stored"] and len(second[2]) == 1
        with socket.socket(fileno=first[2][0]) as a, socket.socket(fileno=second[2][0]) as b:
            assert a.type == socket.SOCK_STREAM and b.type == socket.SOCK_DGRAM
        # The sender's own sockets are untouched.
        assert not web.closed and not udp.closed


def test_bad_values_are_refused_before_any_syscall(manager: Manager) -> None:
    with jn.listen("127.0.0.1:0") as web, fail("socket", 5) as injection:
        for kwargs, error in [
            ({"status": "two\nlines"}, ValueError),
            ({"status": "nul\0"}, ValueError),
            ({"status": 3}, TypeError),
            ({"ready": 1}, TypeError),
            ({"mainpid": True}, TypeError),
            ({"mainpid": 0}, ValueError),
            ({"errno": 0}, ValueError),
            ({"errno": True}, TypeError),
            ({"errno": "110"}, TypeError),
            ({"fds": {"a:b": web}}, ValueError),
            ({"fds": {"ok": 3}}, TypeError),
            ({}, ValueError),
        ]:
            with pytest.raises(error):
                jn.notify(**kwargs)
    assert injection.failed == 0
    assert manager.nothing_pending()


def test_typed_errors_when_the_manager_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    with pytest.raises(jn.SocketError.FileNotFound):
        jn.notify(ready=True)
    monkeypatch.setenv("NOTIFY_SOCKET", f"@jn-notify-nobody-{os.getpid()}")
    with pytest.raises(jn.SocketError.ConnectionRefused):
        jn.notify(ready=True)
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.notify(ready=True)
    monkeypatch.setenv("NOTIFY_SOCKET", "/" + "x" * 200)
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.notify(ready=True)


def test_a_failing_send_closes_its_socket(manager: Manager) -> None:
    with fail("sendmsg", errno.ETOOMANYREFS), pytest.raises(jn.SocketError.SystemResources):
        jn.notify(ready=True)
    with fail("connect", KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        jn.notify(ready=True)
    # (the fd-leak fixture checks that neither left a descriptor open)


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert jn.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "2500000")
    assert jn.watchdog_interval() == 2.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert jn.watchdog_interval() == 2.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert jn.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-1", "1.5", "abc", ""):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        with pytest.raises(ValueError):
            jn.watchdog_interval()


def test_keyboard_interrupt_at_every_line_leaves_no_descriptor(manager: Manager) -> None:
    """A KeyboardInterrupt raised at each line of notify.py in turn: its socket is always closed."""
    files = {str(sys.modules[jn.notify.__module__].__file__)}  # the module that holds notify()
    with jn.listen("127.0.0.1:0") as web:
        n = 0
        while True:
            n += 1
            before = live_fds()
            sys.settrace(interrupt_at(n, files))
            try:
                jn.notify(ready=True, fds={"web": web})
            except KeyboardInterrupt:
                sys.settrace(None)
                assert live_fds() == before, f"leak after an interrupt at line event {n}"
                continue
            finally:
                sys.settrace(None)
            break
        assert n > 10
