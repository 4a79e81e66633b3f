"""listen_fds: systemd socket activation, run as systemd runs a service.

The child is started the way a service manager starts a service: its sockets are
moved to descriptors 3, 4, ... (dup2) and LISTEN_PID names the very process that
reads them. The parent cannot know a child's pid before it exists, so a small
"manager" runs first in the child: it does the dup2s, sets LISTEN_PID to its own
pid and execs the service, which keeps that pid.

Cases that return or fail before any descriptor is looked at run in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import janus_net as jn
from tests.peers import run_child

# The child: listen_fds(), then a report of what it got and of the environment after.
_CHILD = textwrap.dedent(
    """
    import fcntl, json, os, sys
    import janus_net as jn

    unset = sys.argv[1] == "unset"
    try:
        got = jn.listen_fds(unset_environment=unset)
    except jn.SocketError as e:
        got, error = {}, f"{e.member}: {e}"
    else:
        error = None
    report = {
        "error": error,
        "sockets": {name: [type(s).__name__, str(s.address), s.fileno()] for name, s in got.items()},
        "environment": {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")},
        "cloexec": {fd: bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC) for fd in (3, 4)
                    if os.path.exists(f"/proc/self/fd/{fd}")},
    }
    print(json.dumps(report), flush=True)
    for name, sock in sorted(got.items()):
        if isinstance(sock, jn.Server):
            with sock.accept() as stream:
                stream.write_all(name.encode() + b":" + stream.read(100))
        else:
            data, source = sock.receive()
            sock.send(source, name.encode() + b":" + data)
        sock.close()
    """
)


# The manager's part, in the child before exec: move the passed fds to 3, 4, ... (dup2) and
# set LISTEN_PID to the pid that exec keeps (or to the one the test names), then exec the service.
_MANAGER = textwrap.dedent(
    """
    import fcntl, os, sys
    fds = [int(fd) for fd in sys.argv[1].split(",")]
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]  # out of the way of 3, 4...
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(parked):
        os.dup2(fd, 3 + i)  # inheritable, as a manager leaves it
    os.environ["LISTEN_PID"] = sys.argv[2] or str(os.getpid())
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[3], sys.argv[4]])
    """
)


def _activate(fds: list[int], env: dict[str, str], *, pid: str = "", unset: bool = True) -> subprocess.Popen[str]:
    """Start the child with ``fds`` moved to 3, 4, ... and LISTEN_PID=``pid`` (empty: its own)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")} | env
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _MANAGER,
            ",".join(map(str, fds)),
            pid,
            _CHILD,
            "unset" if unset else "keep",
        ],
        pass_fds=fds,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def _report(child: subprocess.Popen[str]) -> dict[str, object]:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"child said nothing (exit {child.wait(timeout=30)})"
    report: dict[str, object] = json.loads(line)
    return report


def _tcp_round_trip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := client.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def test_named_listener_on_fd_3() -> None:
    with socket.create_server(("127.0.0.1", 0)) as web:
        port = web.getsockname()[1]
        with _activate([web.fileno()], {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}) as child:
            report = _report(child)
            assert report["error"] is None
            assert report["sockets"] == {"web": ["Server", f"127.0.0.1:{port}", 3]}
            assert report["environment"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
            assert report["cloexec"] == {"3": True}  # adopted sockets do not leak into exec'd programs
            assert _tcp_round_trip(port, b"hello") == b"web:hello"
            assert child.wait(timeout=30) == 0


def test_stream_and_datagram_without_names() -> None:
    with socket.create_server(("127.0.0.1", 0)) as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        with _activate([tcp.fileno(), udp.fileno()], {"LISTEN_FDS": "2"}) as child:
            report = _report(child)
            assert report["sockets"] == {
                "3": ["Server", f"127.0.0.1:{tcp_port}", 3],
                "4": ["Socket", f"127.0.0.1:{udp_port}", 4],
            }
            assert _tcp_round_trip(tcp_port, b"t") == b"3:t"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(30)
                client.sendto(b"u", ("127.0.0.1", udp_port))
                assert client.recvfrom(100)[0] == b"4:u"
            assert child.wait(timeout=30) == 0


def test_repeated_names_get_the_fd_appended() -> None:
    # systemd names every fd of a unit after the unit unless FileDescriptorName= says otherwise.
    with socket.create_server(("127.0.0.1", 0)) as a, socket.create_server(("127.0.0.1", 0)) as b:
        env = {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "app.socket:app.socket"}
        with _activate([a.fileno(), b.fileno()], env) as child:
            sockets = _report(child)["sockets"]
            assert isinstance(sockets, dict) and sorted(sockets) == ["app.socket", "app.socket:4"]
            assert _tcp_round_trip(a.getsockname()[1], b"1") == b"app.socket:1"
            assert _tcp_round_trip(b.getsockname()[1], b"2") == b"app.socket:4:2"
            assert child.wait(timeout=30) == 0


def test_another_process_pid_gives_nothing_and_touches_nothing() -> None:
    with socket.create_server(("127.0.0.1", 0)) as web:
        env = {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}
        with _activate([web.fileno()], env, pid=str(os.getpid())) as child:
            report = _report(child)
            assert report["sockets"] == {} and report["error"] is None
            assert report["environment"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
            assert report["cloexec"] == {"3": False}  # not adopted, so not made close-on-exec
            assert child.wait(timeout=30) == 0


def test_unset_environment_false_keeps_the_variables() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}
    with socket.create_server(("127.0.0.1", 0)) as web, _activate([web.fileno()], env, unset=False) as child:
        report = _report(child)
        environment = report["environment"]
        assert isinstance(environment, dict)
        assert environment["LISTEN_FDS"] == "1" and environment["LISTEN_FDNAMES"] == "web"
        assert environment["LISTEN_PID"] is not None and environment["LISTEN_PID"].isdigit()
        assert _tcp_round_trip(web.getsockname()[1], b"x") == b"web:x"
        assert child.wait(timeout=30) == 0


def test_one_bad_descriptor_adopts_none() -> None:
    r, w = os.pipe()
    try:
        env = {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:pipe"}
        with socket.create_server(("127.0.0.1", 0)) as web, _activate([web.fileno(), r], env) as child:
            report = _report(child)
            assert (
                report["error"] == "InvalidAddress: InvalidAddress: fd://4: fd 4 is not a socket (it is a pipe or FIFO)"
            )
            assert report["sockets"] == {}
            # All or nothing: the good listener on 3 was looked at but not taken.
            assert report["cloexec"] == {"3": False, "4": False}
            assert report["environment"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
            assert child.wait(timeout=30) == 0
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="needs systemd-socket-activate")
def test_under_systemd_socket_activate(tmp_path: Path) -> None:
    # systemd's own tool for running a socket-activated service by hand: it binds the
    # socket, and on the first connection execs the service with LISTEN_* set.
    path = str(tmp_path / "web.sock")
    tool = ["systemd-socket-activate", "-l", path, "--fdname=web", sys.executable, "-c", _CHILD, "unset"]
    with subprocess.Popen(tool, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as manager:
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(path):
                assert manager.poll() is None and time.monotonic() < deadline, "the socket never appeared"
                time.sleep(0.01)
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(30)
                while True:  # the path appears at bind(), a moment before the tool's listen()
                    try:
                        client.connect(path)  # this connection makes the tool exec the service
                        break
                    except ConnectionRefusedError:
                        assert time.monotonic() < deadline, "the socket never listened"
                        time.sleep(0.01)
                client.sendall(b"activated")
                client.shutdown(socket.SHUT_WR)
                report = _report(manager)
                assert report["sockets"] == {"web": ["Server", f"unix:{path}", 3]}
                assert report["environment"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
                assert client.recv(100) == b"web:activated"
            assert manager.wait(timeout=30) == 0
        finally:
            if manager.poll() is None:
                manager.kill()


# --- in this process: answered from the environment alone


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _listen_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}


def test_nothing_passed(environ: pytest.MonkeyPatch) -> None:
    assert jn.listen_fds() == {}
    environ.setenv("LISTEN_FDS", "1")  # LISTEN_PID missing: not for us
    assert jn.listen_fds(unset_environment=False) == {}
    assert _listen_variables() == {"LISTEN_FDS": "1"}


def test_zero_fds(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("LISTEN_PID", str(os.getpid()))
    environ.setenv("LISTEN_FDS", "0")
    assert jn.listen_fds() == {}
    assert _listen_variables() == {}


def test_wrong_pid(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("LISTEN_PID", str(os.getpid() + 1))
    environ.setenv("LISTEN_FDS", "1")
    environ.setenv("LISTEN_FDNAMES", "web")
    assert jn.listen_fds() == {}
    assert _listen_variables() == {}


@pytest.mark.parametrize("names", ["", "web:metrics", "a:b:c"])
def test_count_mismatch(environ: pytest.MonkeyPatch, names: str) -> None:
    environ.setenv("LISTEN_PID", str(os.getpid()))
    environ.setenv("LISTEN_FDS", "2" if names == "" else "1")
    environ.setenv("LISTEN_FDNAMES", names)
    with pytest.raises(jn.SocketError.InvalidAddress, match=r"LISTEN_FDNAMES=.* has .* names for LISTEN_FDS="):
        jn.listen_fds()
    assert _listen_variables() == {}  # unset whatever the outcome, as sd_listen_fds does


@pytest.mark.parametrize(("variable", "value"), [("LISTEN_FDS", "x"), ("LISTEN_FDS", "-1"), ("LISTEN_PID", " 1")])
def test_malformed_variables(environ: pytest.MonkeyPatch, variable: str, value: str) -> None:
    environ.setenv("LISTEN_PID", str(os.getpid()))
    environ.setenv("LISTEN_FDS", "1")
    environ.setenv(variable, value)
    with pytest.raises(jn.SocketError.InvalidAddress, match=f"{variable}=.* is not a decimal number"):
        jn.listen_fds(unset_environment=False)
    assert variable in _listen_variables()


# --- a huge LISTEN_FDS: the work is bounded by what is really open

_HUGE_COUNT_CHILD = """
import json, os, resource, socket, tracemalloc
import janus_net as jn
from tests.peers import run_child

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), min(hard, 4096)))
report = {}
for name, count, fd3 in [
    ("beyond the limit", "30000000", "socket"),
    ("at the limit, fd 3 a pipe", str(4096 - 3), "pipe"),
    ("at the limit, fd 4 closed", str(4096 - 3), "socket"),
]:
    if fd3 == "socket":
        fd = socket.create_server(("127.0.0.1", 0)).detach()
        if fd != 3:
            os.dup2(fd, 3)
            os.close(fd)
    else:
        r, w = os.pipe()
        if r != 3:
            os.dup2(r, 3)
            os.close(r)
        os.close(w)
    try:
        os.close(4)
    except OSError:
        pass
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=count)
    tracemalloc.start()
    try:
        jn.listen_fds()
        outcome = "no error"
    except jn.SocketError.InvalidAddress as e:
        outcome = str(e)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    report[name] = {"error": outcome, "peak": peak, "fd3_open": os.path.exists("/proc/self/fd/3")}
    os.close(3)
print(json.dumps(report))
"""


def test_a_huge_listen_fds_is_refused_before_any_allocation() -> None:
    report = run_child(_HUGE_COUNT_CHILD)
    beyond = report["beyond the limit"]
    assert isinstance(beyond, dict)
    assert "LISTEN_FDS='30000000' is more descriptors than this process can have (4096)" in beyond["error"]
    pipe = report["at the limit, fd 3 a pipe"]
    closed = report["at the limit, fd 4 closed"]
    assert isinstance(pipe, dict) and isinstance(closed, dict)
    assert "fd 3 is not a socket (it is a pipe" in pipe["error"]
    assert "fd 4 is not open" in closed["error"]
    for case in (beyond, pipe, closed):
        # Not a list of 4,093 (or 30 million) names: a few KiB at most.
        assert case["peak"] < 64 * 1024, case
        assert case["fd3_open"], "the passed descriptors are the manager's: left open"
