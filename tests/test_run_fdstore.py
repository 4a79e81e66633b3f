"""``janus-net run --fdstore``: the listeners kept in the service manager's store across a restart.

The test is the manager: it binds the notify socket, keeps the descriptors ``run``
stores (SCM_RIGHTS), and passes them back to the next start as systemd does.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

from tests.test_run_manager import JANUS_NET, SERVICE, Manager

# Starts argv[3:] with the descriptors listed in argv[1] (comma-separated) moved to 3, 4, ...
# and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES (argv[2]) set for the process that execs it, as systemd does.
PASS_BACK = r"""
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]  # no dup2 below overwrites a source it needs
for n, fd in enumerate(high):
    os.dup2(fd, 3 + n)
os.closerange(3 + len(fds), 1024)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=sys.argv[2])
os.execvp(sys.argv[3], sys.argv[3:])
"""


def _stored(manager: Manager) -> tuple[int, dict[str, str], list[int]]:
    """One notification and the descriptors it carries (the manager's fd store)."""
    data, ancdata, _, _ = manager.sock.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 4))
    pid, fds = 0, []
    for _, kind, payload in ancdata:
        if kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload)[0]
        elif kind == socket.SCM_RIGHTS:
            fds += list(struct.unpack(f"{len(payload) // 4}i", payload))
    return pid, dict(line.split("=", 1) for line in data.decode().splitlines()), fds


def _echo(client: socket.socket, text: bytes) -> bytes:
    client.sendall(text)
    client.shutdown(socket.SHUT_WR)
    return client.recv(100)


def test_fdstore_keeps_the_listeners_in_the_manager_across_a_restart(tmp_path: Path) -> None:
    """--fdstore: the sockets go to the manager's store; the next start takes them back from LISTEN_FDS.

    Between the two runs nothing serves, yet a client's connection is queued, not
    refused (the stored socket still listens), and the next run answers it; the unix
    file stays in place.
    """
    manager = Manager(tmp_path / "notify")
    path = tmp_path / "echo.sock"
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    run = [*JANUS_NET, "run", "--fdstore", "--listen", "web=127.0.0.1:0", "--listen", f"u=unix:{path}"]
    run += ["--", sys.executable, SERVICE, "activation"]
    store: dict[str, int] = {}
    procs: list[subprocess.Popen[str]] = []
    queued = None
    try:
        procs.append(subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        assert procs[0].stdout is not None
        web = procs[0].stdout.readline().split()[2]
        for name in ("web", "u"):
            pid, fields, fds = _stored(manager)
            assert (pid, fields, len(fds)) == (procs[0].pid, {"FDSTORE": "1", "FDNAME": name}, 1)
            store[name] = fds[0]
        assert manager.next()[1]["READY"] == "1"
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(timeout=60) == -signal.SIGTERM
        assert path.exists(), "the stored socket still serves its file"

        host, port = web.rsplit(":", 1)
        queued = socket.create_connection((host, int(port)), timeout=60)  # nothing runs: queued in the backlog

        argv = [sys.executable, "-c", PASS_BACK, f"{store['web']},{store['u']}", "web:u", *run]
        procs.append(
            subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                pass_fds=tuple(store.values()),
            )
        )
        assert procs[1].stdout is not None
        first_line = procs[1].stdout.readline()
        assert first_line == f"listening on {web} as web\n", procs[1].communicate(timeout=60)
        assert procs[1].stdout.readline() == f"listening on unix:{path} as u\n"
        assert _echo(queued, b"queued while nothing ran\n") == b"queued while nothing ran\n"
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            assert _echo(client, b"by the file\n") == b"by the file\n"
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(timeout=60) == -signal.SIGTERM
    finally:
        if queued is not None:
            queued.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        for fd in store.values():
            os.close(fd)
        manager.close()


def test_fdstore_without_a_manager_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    proc = subprocess.run(
        [*JANUS_NET, "run", "--fdstore", "--listen", "web=127.0.0.1:0", "--", "true"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "NOTIFY_SOCKET" in proc.stderr and "Traceback" not in proc.stderr
