"""``janus-net run``: what the command sees, exit statuses, usage errors, a reload that never gets ready.

(The load test through 20 SIGHUP reloads is in test_zero_downtime.py.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

JANUS_NET = [sys.executable, "-m", "janus_net"]

# Prints what a command started by `janus-net run` finds: its environment, its
# descriptors (each one's flags and socket address), then exits with argv[1].
REPORTER = r"""
import fcntl, json, os, socket, sys
fds = {}
for name in os.listdir("/proc/self/fd"):
    fd = int(name)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        continue  # the listing's own descriptor
    entry = {"cloexec": bool(flags & fcntl.FD_CLOEXEC)}
    if fd > 2:
        with socket.socket(fileno=os.dup(fd)) as s:
            entry["address"] = str(s.getsockname())
            entry["listening"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    fds[fd] = entry
env = {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET")}
print(json.dumps({"pid": os.getpid(), "env": env, "fds": fds}), flush=True)
sys.exit(int(sys.argv[1]))
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JANUS_NET, "run", *args], capture_output=True, text=True, timeout=timeout)


def test_the_command_sees_its_sockets_as_systemd_passes_them(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    proc = run(
        "--listen", "web=127.0.0.1:0", "--listen", f"admin=unix:{path}", "--", sys.executable, "-c", REPORTER, "0"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    web = lines[0].removeprefix("listening on ").removesuffix(" as web")
    assert lines[1] == f"listening on unix:{path} as admin"
    report = json.loads(lines[2])
    env = report["env"]
    assert env["LISTEN_PID"] == str(report["pid"])  # the command's own pid, set between spawn and exec
    assert env["LISTEN_FDS"] == "2" and env["LISTEN_FDNAMES"] == "web:admin"
    assert env["NOTIFY_SOCKET"].startswith("@janus-net-run/")
    fds = {int(fd): entry for fd, entry in report["fds"].items()}
    assert sorted(fds) == [0, 1, 2, 3, 4], "only stdio and the passed sockets cross the exec"
    host, port = web.rsplit(":", 1)
    assert fds[3] == {"cloexec": False, "address": str((host, int(port))), "listening": 1}
    assert fds[4] == {"cloexec": False, "address": str(path), "listening": 1}
    assert not path.exists(), "janus-net run removes the file it created when it ends"


def test_the_command_exit_status_is_the_supervisors(tmp_path: Path) -> None:
    proc = run("--listen", "web=127.0.0.1:0", "--", sys.executable, "-c", REPORTER, "3")
    assert proc.returncode == 3
    assert "exited (3)" in proc.stderr


def test_listen_fds_adopts_what_run_passes() -> None:
    script = (
        "import janus_net as jn, json; s = jn.listen_fds(); "
        "print(json.dumps({k: str(v.address) for k, v in s.items()}))"
    )
    proc = run("--listen", "a=127.0.0.1:0", "--bind", "b=127.0.0.1:0", "--", sys.executable, "-c", script)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    got = json.loads(lines[-1])
    assert got == {
        "a": lines[0].removeprefix("listening on ").removesuffix(" as a"),
        "b": lines[1].removeprefix("listening on ").removesuffix(" as b"),
    }


def test_usage_errors_exit_2_without_a_traceback() -> None:
    for args in (
        ["--listen", "web=127.0.0.1:0"],
        ["--listen", "web=127.0.0.1:0", "--"],
        ["--listen", "bad:name=127.0.0.1:0", "--", "true"],
        ["--listen", "novalue", "--", "true"],
        ["--listen", "a=127.0.0.1:0", "--listen", "a=127.0.0.1:0", "--", "true"],
        ["--allow-port", "80", "--", "true"],
    ):
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_bind_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = run("--listen", "web=127.0.0.1:99999", "--", "true")
    assert proc.returncode == 1 and proc.stderr.startswith("janus-net: InvalidPort")
    audit = tmp_path / "audit.jsonl"
    proc = run("--listen", "web=127.0.0.1:9", "--capability", "svc", "--audit", str(audit), "--", "true")
    assert proc.returncode == 1 and proc.stderr.startswith("janus-net: CapabilityDenied")
    assert "Traceback" not in proc.stderr
    record = json.loads(audit.read_text().splitlines()[-1])
    assert record["result"] == "denied" and record["port"] == 9 and record["capability_id"] == "svc"
    proc = run("--listen", "web=127.0.0.1:0", "--capability", "svc", "--allow-port", "0", "--", "true")
    assert proc.returncode == 0, proc.stderr


def test_a_reload_that_never_gets_ready_leaves_the_old_command_serving(tmp_path: Path) -> None:
    """The new command never sends READY=1: it is stopped after --ready-timeout; the old one goes on.

    A READY=1 forged by another process (this test, naming the new pid in MAINPID=)
    does not count: the supervisor believes only the kernel's SCM_CREDENTIALS.
    """
    marker = tmp_path / "generation"
    script = (
        "import os, signal, sys, time, janus_net as jn\n"
        f"path = {str(marker)!r}\n"
        "first = not os.path.exists(path)\n"
        "open(path, 'a').write('x')\n"
        "print('started', os.getpid(), os.environ['NOTIFY_SOCKET'], flush=True)\n"
        "if first: jn.notify(ready=True)\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "while True: time.sleep(1)\n"
    )
    argv = [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--ready-timeout", "0.5", "--"]
    sup = subprocess.Popen(
        [*argv, sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert sup.stdout is not None and sup.stderr is not None
    try:
        sup.stdout.readline()
        old = int(sup.stdout.readline().split()[1])
        sup.send_signal(signal.SIGHUP)
        _, new_text, notify_socket = sup.stdout.readline().split()
        new = int(new_text)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as forger:
            forger.sendto(f"READY=1\nMAINPID={new}\n".encode(), "\0" + notify_socket[1:])
        deadline = time.monotonic() + 30
        log = []
        while not any(f"pid {new} stopped (0)" in entry for entry in log):
            assert time.monotonic() < deadline, log
            log.append(sup.stderr.readline())
        assert any(f"pid {new} was not ready in time" in entry for entry in log)
        assert not any("is ready; stopping" in entry for entry in log), log
        assert any(f"ignored READY=1 from pid {os.getpid()}" in entry for entry in log), log
        os.kill(old, 0)  # the old command still runs
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        sup.stdout.close()
        sup.stderr.close()
