"""``janus-net run`` under a service manager and a shell: sd_notify upward, process groups, no orphans.

The test is the manager: it binds the unix datagram socket ``NOTIFY_SOCKET`` names
(SO_PASSCRED, so each message carries its sender's pid) and checks what ``run`` says,
in order. The shell is a real ``bash -m`` in its own session, whose ``kill -HUP %1``
signals the whole job. Every command started is a real process; "no child alive" is
read from /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hammer import Hammer

HERE = Path(__file__).resolve().parent
SERVICE = str(HERE / "zero_downtime_service.py")
JANUS_NET = [sys.executable, "-m", "janus_net"]

# A command that serves nothing but speaks sd_notify: READY=1 then WATCHDOG=1 once
# ready, WATCHDOG=1 again when told to stop (the supervisor must not pass that one up:
# the command is no longer the serving one), and exits 3 at once, never ready, while
# the file argv[1] names exists (a broken deploy).
NOTIFYING = r"""
import os, signal, sys, time
import janus_net as jn
if os.path.exists(sys.argv[1]):
    sys.exit(3)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
assert os.environ["WATCHDOG_PID"] == str(os.getpid()), os.environ.get("WATCHDOG_PID")
assert jn.watchdog_interval() == 30.0
print(f"serving {os.getpid()}", flush=True)
jn.notify(ready=True)
jn.notify(watchdog=True)
while not stop:
    signal.pause()
jn.notify(watchdog=True)
"""


class Manager:
    """The manager's notify socket: each message as (sender pid, {field: value}) in arrival order."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(60)  # "did not hang", not a timing claim

    def next(self) -> tuple[int, dict[str, str]]:
        data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        [(level, kind, creds)] = ancdata
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
        pid, _, _ = struct.unpack("iII", creds)
        lines = data.decode().splitlines()
        return pid, dict(line.split("=", 1) for line in lines)

    def pending(self) -> list[tuple[int, dict[str, str]]]:
        got = []
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    got.append(self.next())
                except BlockingIOError:
                    return got
        finally:
            self.sock.settimeout(60)

    def close(self) -> None:
        self.sock.close()


def _children(pid: int) -> list[int]:
    """The live children of ``pid`` (from /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read (ESRCH)
        return False
    return state != "Z"


def _wait_for(proc: subprocess.Popen[str], text: str, log: list[str]) -> None:
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        log.append(line)
        assert line, f"the supervisor ended before {text!r}: {log}"
        if text in line:
            return


def test_the_manager_hears_ready_reloads_a_failed_reload_the_watchdog_and_stopping(tmp_path: Path) -> None:
    manager = Manager(tmp_path / "notify")
    broken = tmp_path / "broken"
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "30000000"}
    env.pop("WATCHDOG_PID", None)
    argv = [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--", sys.executable, "-c", NOTIFYING, str(broken)]
    sup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert sup.stdout is not None
    log: list[str] = []
    try:
        sup.stdout.readline()  # listening on ...
        first = int(sup.stdout.readline().split()[1])
        assert manager.next() == (sup.pid, {"READY": "1", "MAINPID": str(sup.pid), "STATUS": f"pid {first} serves"})
        assert manager.next() == (sup.pid, {"WATCHDOG": "1"})  # the command's, passed up

        # A good reload: RELOADING=1 with the time, then READY=1 naming the new pid.
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        sup.send_signal(signal.SIGHUP)
        pid, fields = manager.next()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert pid == sup.pid and fields.pop("RELOADING") == "1"
        assert before <= int(fields.pop("MONOTONIC_USEC")) <= after
        assert fields == {"STATUS": f"reloading; pid {first} serves"}
        second = int(sup.stdout.readline().split()[1])
        assert manager.next() == (sup.pid, {"READY": "1", "STATUS": f"pid {second} serves"})
        assert manager.next() == (sup.pid, {"WATCHDOG": "1"})
        # The replaced command pings as it stops: it no longer serves, nothing goes up.
        _wait_for(sup, f"pid {first} stopped (0)", log)
        assert manager.pending() == []

        # A failed reload: the new command exits before it is ready; READY=1 with ERRNO= ends it.
        broken.touch()
        sup.send_signal(signal.SIGHUP)
        pid, fields = manager.next()
        assert pid == sup.pid and fields["RELOADING"] == "1"
        assert manager.next() == (
            sup.pid,
            {"READY": "1", "STATUS": f"reload failed; pid {second} serves", "ERRNO": str(3)},  # ESRCH
        )
        assert _children(sup.pid) == [second]

        sup.send_signal(signal.SIGTERM)
        assert manager.next() == (sup.pid, {"STOPPING": "1", "STATUS": "stopping"})
        assert sup.wait(timeout=60) == -signal.SIGTERM
        assert manager.pending() == [], "the stopping command's WATCHDOG=1 is not passed up"
        assert not _alive(second)
    except TimeoutError:
        sup.kill()
        assert sup.stderr is not None
        raise AssertionError(f"the manager heard nothing more; run's log: {log + sup.stderr.readlines()}") from None
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        sup.stdout.close()
        assert sup.stderr is not None
        sup.stderr.close()
        manager.close()


def test_the_manager_check_is_real_systemd_notify_is_heard_as_run_is(tmp_path: Path) -> None:
    """The test manager reads a real sd_notify client as it reads ``run`` (when systemd-notify is installed)."""
    tool = "/usr/bin/systemd-notify"
    if not os.path.exists(tool):
        pytest.skip("systemd-notify is not installed (scripts/install-test-tools)")
    manager = Manager(tmp_path / "notify")
    try:
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
        proc = subprocess.run([tool, "--no-block", "--ready", "--status=up"], env=env, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        _, fields = manager.next()
        assert fields["READY"] == "1" and fields["STATUS"] == "up"
    finally:
        manager.close()


def test_without_a_manager_nothing_is_sent_and_the_command_gets_run_s_socket() -> None:
    """No NOTIFY_SOCKET: run tells nobody; its command's NOTIFY_SOCKET is run's own, never the manager's."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    script = "import os; print(os.environ['NOTIFY_SOCKET'], os.environ.get('WATCHDOG_USEC'))"
    proc = subprocess.run(
        [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--", sys.executable, "-c", script],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notify_socket, watchdog = proc.stdout.splitlines()[-1].split()
    assert notify_socket.startswith("@janus-net-run/") and watchdog == "None"


# bash with job control in its own session: the job is `janus-net run` in the background;
# each line the test writes on bash's stdin lets it go on (HUP the job, then TERM it).
JOB_SCRIPT = r"""
"$@" </dev/null &
read go
kill -HUP %1
read go
kill -TERM %1
wait %1
echo "status $?"
"""


def test_a_shells_kill_hup_of_the_job_reloads_gracefully_under_load(tmp_path: Path) -> None:
    """``kill -HUP %1`` signals the job's whole process group: only the supervisor may see it.

    A command in the supervisor's group would die of SIGHUP mid-request (129); in its
    own group it is replaced by a reload: no refused, reset or unanswered connection.
    """
    path = tmp_path / "echo.sock"
    run = [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--listen", f"u=unix:{path}", "--stop-timeout", "20"]
    run += ["--", sys.executable, SERVICE, "activation"]
    shell = subprocess.Popen(
        ["setsid", "bash", "-m", "-c", JOB_SCRIPT, "job", *run],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert shell.stdin is not None and shell.stdout is not None and shell.stderr is not None
    hammer = None
    log: list[str] = []
    try:
        assert shell.stdout.readline().startswith("listening on 127.0.0.1:")
        shell.stdout.readline()
        line = shell.stdout.readline()
        assert line.startswith("serving "), line
        first = int(line.split()[1])
        targets = [(socket.AF_INET, _host_port(line.split()[2])), (socket.AF_UNIX, str(path))]
        hammer = Hammer(targets).start()
        shell.stdin.write("go\n")
        shell.stdin.flush()
        second = int(shell.stdout.readline().split()[1])
        assert second != first
        _wait_for(shell, f"pid {second} is ready; stopping pid {first}", log)
        _wait_for(shell, f"pid {first} stopped", log)
        assert log[-1].endswith(f"pid {first} stopped (0)\n"), "the old command drained and exited by itself"
        counts = hammer.stop()
        bad = {k: v for k, v in counts.items() if k != "ok"}
        assert not bad and counts["ok"] > 0, (counts, hammer.errors[:3])
        shell.stdin.write("go\n")
        shell.stdin.flush()
        assert shell.stdout.readline() == f"status {128 + signal.SIGTERM}\n"
        assert shell.wait(timeout=60) == 0
        assert not _alive(second) and not path.exists()
        assert not any("129" in entry for entry in log + shell.stderr.readlines())
    finally:
        if hammer is not None:
            hammer.stop()
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)  # setsid: the session's leader is bash, group = its pid
            shell.wait()
        for stream in (shell.stdin, shell.stdout, shell.stderr):
            stream.close()


def _host_port(field: str) -> tuple[str, int]:
    host, _, port = field.partition("=")[2].rpartition(":")
    return host, int(port)


# Replaced on SIGTERM only after the test says so: a command that takes its time to stop.
SLOW_STOP = r"""
import os, signal, sys, time
import janus_net as jn
signal.signal(signal.SIGTERM, lambda *_: None)  # ignores the stop: only SIGKILL ends it
first = not os.path.exists(sys.argv[1])
open(sys.argv[1], "a").close()
print(f"serving {os.getpid()}", flush=True)
jn.notify(ready=True)
if first:
    while True:
        signal.pause()
sys.exit(5)  # the second command is ready, then exits on its own while the first still stops
"""


def test_run_never_exits_while_a_replaced_command_is_still_stopping(tmp_path: Path) -> None:
    """The new command exits on its own during the old one's stop: run waits for, SIGKILLs and reaps the old one."""
    marker = tmp_path / "started"
    argv = [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--stop-timeout", "1"]
    argv += ["--", sys.executable, "-c", SLOW_STOP, str(marker)]
    sup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sup.stdout is not None and sup.stderr is not None
    try:
        sup.stdout.readline()
        first = int(sup.stdout.readline().split()[1])
        log: list[str] = []
        _wait_for(sup, f"started pid {first}", log)
        sup.send_signal(signal.SIGHUP)
        assert sup.wait(timeout=60) == 5, "run exits with the status of the command that ended on its own"
        assert not _alive(first), "the replaced command outlived run"
        log += sup.stderr.readlines()
        assert any(f"pid {first} stopped ({128 + signal.SIGKILL})" in entry for entry in log), log
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        sup.stdout.close()
        sup.stderr.close()


SUPERVISED = r"""
import os, signal, sys
import janus_net as jn
print(f"serving {os.getpid()} {os.getpgrp()}", flush=True)
jn.notify(ready=True)
while True:
    signal.pause()
"""


@pytest.mark.parametrize("keep", [False, True])
def test_a_supervisor_killed_with_sigkill_takes_its_command_with_it(tmp_path: Path, keep: bool) -> None:
    """SIGKILL of run: the command gets SIGKILL too (PR_SET_PDEATHSIG) unless --keep-children.

    Either way the unix file run made is left behind (nothing ran to remove it), and the
    next start's stale rule (--unlink-stale) takes it over.
    """
    path = tmp_path / "s.sock"
    argv = [*JANUS_NET, "run", "--listen", f"u=unix:{path}", *(["--keep-children"] if keep else [])]
    argv += ["--", sys.executable, "-c", SUPERVISED]
    sup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sup.stdout is not None and sup.stderr is not None
    child = 0
    try:
        sup.stdout.readline()
        child, group = map(int, sup.stdout.readline().split()[1:])
        assert group == child != os.getpgrp(), "the command leads its own process group"
        sup.kill()
        assert sup.wait(timeout=60) == -signal.SIGKILL
        if keep:
            assert _alive(child)
            os.kill(child, signal.SIGKILL)
        else:
            deadline = time.monotonic() + 60
            while _alive(child):  # the kernel sends the signal as the parent exits: soon, not at once
                assert time.monotonic() < deadline, "the command outlived its supervisor"
                time.sleep(0.01)
        assert path.exists()
        again = subprocess.run(
            [*JANUS_NET, "run", "--listen", f"u=unix:{path}", "--unlink-stale", "--", "true"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert not path.exists()
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
        sup.stdout.close()
        sup.stderr.close()


def test_a_command_that_cannot_be_found_or_run_is_127_or_126(tmp_path: Path) -> None:
    missing = subprocess.run(
        [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 127, missing.stderr
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    denied = subprocess.run(
        [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--", str(plain)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert denied.returncode == 126, denied.stderr


def _lowest_free(count: int) -> list[int]:
    """The ``count`` lowest descriptor numbers free in this process (the next pipe gets them)."""
    free, fd = [], 0
    while len(free) < count:
        try:
            os.fstat(fd)
        except OSError:
            free.append(fd)
        fd += 1
    return free


def test_a_failed_exec_is_its_errno_even_when_the_report_pipe_sits_on_a_passed_number() -> None:
    """The native spawn's report pipe gets the lowest free numbers, which the sockets may be passed at.

    The child moves the pipe above every target before the dup2 steps; otherwise a dup2
    would close it, the exec failure would go unreported and a dead child would pass for
    a started one.
    """
    from janus_net import SocketError
    from janus_net._kernel import processes

    a, b = socket.socketpair()
    high_a, high_b = os.dup2(a.fileno(), 200), os.dup2(b.fileno(), 201)
    try:
        targets = _lowest_free(2)
        dups = list(zip((high_a, high_b), targets, strict=True))
        with pytest.raises(SocketError.FileNotFound):
            processes.spawn("/nonexistent/program", ["x"], {}, dups, [], signal.SIGKILL)
        with pytest.raises(SocketError.AccessDenied):
            processes.spawn("/etc/hostname", ["x"], {}, dups, [], signal.SIGKILL)
        assert processes.waitpid(-1, os.WNOHANG) is None, "the failed child was reaped by the call"
        # A good spawn on the same numbers: the child sees its sockets there, in its own group.
        probe = f"import os; os.write({targets[0]}, str(os.getpgrp()).encode())"
        pid = processes.spawn(sys.executable, [sys.executable, "-c", probe], dict(os.environ), dups, [])
        assert b.recv(64) == str(pid).encode()
        assert processes.waitpid(pid, 0) == (pid, 0)
    finally:
        os.close(high_a)
        os.close(high_b)
        a.close()
        b.close()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=lambda s: s.name)
def test_run_dies_of_the_signal_its_command_died_of(tmp_path: Path, sig: signal.Signals) -> None:
    """COMMAND killed by a signal (not a stop of run's): run closes its sockets and dies of the same one."""
    path = tmp_path / "s.sock"
    proc = subprocess.run(
        [*JANUS_NET, "run", "--listen", f"u=unix:{path}", "--", "sh", "-c", f"kill -{sig.name[3:]} $$"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -sig, proc.stderr
    assert f"exited ({128 + sig})" in proc.stderr and "Traceback" not in proc.stderr
    assert not path.exists(), "the sockets were closed and the file removed before run died"


# The first command serves until the second one starts (the file argv[1] appears), then
# exits 3 on its own; the second one says READY=1 only once the first is gone.
TAKE_OVER = r"""
import os, sys, time
import janus_net as jn
marker = sys.argv[1]
if not os.path.exists(marker):
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    jn.notify(ready=True)
    while os.path.getsize(marker) < 20:  # the second command appends its pid
        time.sleep(0.01)
    sys.exit(3)
first = open(marker).read()
with open(marker, "a") as f:
    f.write(" " + str(os.getpid()).rjust(20))
def alive(pid):
    try:  # reaped between two looks: gone, as a missing /proc entry says
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read (ESRCH)
        return False
while alive(first):
    time.sleep(0.01)
jn.notify(ready=True)
time.sleep(3600)
"""


def test_a_reload_whose_old_command_dies_first_still_ends_with_ready(tmp_path: Path) -> None:
    """The serving command exits on its own mid-reload: the new one takes over, and its READY=1 ends the reload."""
    manager = Manager(tmp_path / "notify")
    marker = tmp_path / "marker"
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    argv = [*JANUS_NET, "run", "--listen", "web=127.0.0.1:0", "--", sys.executable, "-c", TAKE_OVER, str(marker)]
    sup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first_ready = manager.next()
        assert first_ready[1]["READY"] == "1"
        sup.send_signal(signal.SIGHUP)
        assert manager.next()[1]["RELOADING"] == "1"
        pid, fields = manager.next()
        second = marker.read_text().split()[1]
        assert (pid, fields) == (sup.pid, {"READY": "1", "STATUS": f"pid {second} serves"})
        sup.send_signal(signal.SIGTERM)
        assert manager.next()[1]["STOPPING"] == "1"
        assert sup.wait(timeout=60) == -signal.SIGTERM
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        assert sup.stdout is not None and sup.stderr is not None
        sup.stdout.close()
        sup.stderr.close()
        manager.close()
