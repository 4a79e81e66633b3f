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

import pytest

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


def test_bind_errors_are_one_line_with_the_status_rule(tmp_path: Path) -> None:
    proc = run("--listen", "web=127.0.0.1:99999", "--", "true")
    assert proc.returncode == 2 and proc.stderr.startswith("janus-net: InvalidPort")
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
        assert sup.wait(timeout=30) == -signal.SIGTERM  # cleaned up, then died of the signal
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        sup.stdout.close()
        sup.stderr.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The command started under --enforce: a stdlib bind to a port the capability does not
# allow fails in the kernel; one it allows works; what it inherited on fd 3 is there.
ENFORCED_CHILD = r"""
import socket, sys
denied, allowed = int(sys.argv[1]), int(sys.argv[2])
result = {}
with socket.socket() as s:
    try:
        s.bind(("127.0.0.1", denied))
        result["denied"] = "bound"
    except PermissionError:
        result["denied"] = "PermissionError"
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", allowed))
    result["allowed"] = "bound"
with socket.socket(fileno=3) as inherited:
    result["inherited"] = inherited.getsockname()[1]
    inherited.detach()
print(result["denied"], result["allowed"], result["inherited"], flush=True)
"""


def test_enforce_holds_the_command_to_the_capabilitys_tcp_ports(tmp_path: Path) -> None:
    """Landlock is irreversible: it is applied in the `janus-net run` child process only."""
    web, spare, denied = _free_port(), _free_port(), _free_port()
    audit = tmp_path / "audit.jsonl"
    proc = run(
        "--capability", "svc", "--allow-port", str(web), "--allow-port", str(spare), "--audit", str(audit),
        "--enforce", "--listen", f"web=127.0.0.1:{web}",
        "--", sys.executable, "-c", ENFORCED_CHILD, str(denied), str(spare),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"PermissionError bound {web}"
    operations = [json.loads(line)["operation"] for line in audit.read_text().splitlines()]
    # The kernel enforces the ports before anything is bound.
    assert operations == ["enforce", "check_bind_address", "bind_socket"]


def test_enforce_needs_a_capability_and_other_flags_are_checked_before_binding() -> None:
    for args, message in (
        (["--enforce", "--listen", "web=127.0.0.1:0"], "--enforce needs --capability"),
        (["--listen", "web=127.0.0.1:0", "--steer", "cpu"], "reuse_port"),
        (["--listen", "web=127.0.0.1:0", "--device", "x" * 16], "device must be"),
        (["--bind", "u=127.0.0.1:0", "--defer-accept", "3"], "--defer-accept applies to --listen sockets"),
        (["--listen", "web=127.0.0.1:0", "--mode", "9"], "not octal"),
    ):
        proc = run(*args, "--", "true")
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr


# Reads back, through a stdlib socket on a dup of each passed fd, what the kernel holds.
OPTIONS_CHILD = r"""
import json, os, socket
from janus_net._shim import lib  # IP_FREEBIND as the C headers define it (the stdlib lacks it)
with socket.socket(fileno=os.dup(3)) as web:
    got = {
        "defer_accept": web.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT),
        "reuse_port": web.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
        "freebind": web.getsockopt(socket.IPPROTO_IP, lib.JN_IP_FREEBIND),
    }
    port = web.getsockname()[1]
# ss shows a listener's backlog in its Send-Q column.
import subprocess
row = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
got["backlog"] = int(row.split()[2])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, fileno=os.dup(4)) as udp:
    got["udp_freebind"] = udp.getsockopt(socket.IPPROTO_IP, lib.JN_IP_FREEBIND)
print(json.dumps(got), flush=True)
"""

MODE_CHILD = r"""
import os, socket, stat
with socket.socket(socket.AF_UNIX, fileno=os.dup(3)) as admin:
    print(oct(stat.S_IMODE(os.stat(admin.getsockname()).st_mode)), flush=True)
"""


def test_listen_option_flags_reach_the_commands_sockets(tmp_path: Path) -> None:
    with socket.socket() as oracle:  # the kernel rounds TCP_DEFER_ACCEPT to retransmissions
        oracle.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
        expected_defer = oracle.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)
    proc = run(
        "--listen", "web=127.0.0.1:0", "--bind", "udp=127.0.0.1:0",
        "--defer-accept", "5", "--reuse-port", "--freebind", "--backlog", "7",
        "--", sys.executable, "-c", OPTIONS_CHILD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got == {"defer_accept": expected_defer, "reuse_port": 1, "freebind": 1, "backlog": 7, "udp_freebind": 1}
    path = tmp_path / "admin.sock"
    proc = run("--listen", f"admin=unix:{path}", "--mode", "600", "--", sys.executable, "-c", MODE_CHILD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0o600"


def test_an_option_that_cannot_apply_to_a_socket_is_the_librarys_error(tmp_path: Path) -> None:
    """Each flag applies to every socket of its kind; one that cannot is refused before COMMAND starts."""
    for args, message in (
        (["--listen", "web=127.0.0.1:0", "--mode", "600"], "OptionUnsupported"),
        (["--listen", f"admin=unix:{tmp_path}/a.sock", "--defer-accept", "5"], "OptionUnsupported"),
    ):
        proc = run(*args, "--", "touch", str(tmp_path / "started"))
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith(f"janus-net: {message}") and "Traceback" not in proc.stderr
    assert not (tmp_path / "started").exists()


# Accepts one connection on the passed listener and prints what the peer sent.
ACCEPT_ONE = r"""
import socket
with socket.socket(fileno=3) as web:
    web.settimeout(60)
    conn, _ = web.accept()
    with conn:
        conn.settimeout(60)
        print("got", conn.recv(100).decode(), flush=True)
"""

CLIENT = r"""
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as c:
    c.sendall(b"inside")
"""


def test_netns_makes_the_commands_sockets_inside_the_namespace(namespace: str) -> None:
    argv = [*JANUS_NET, "run", "--netns", f"/run/netns/{namespace}", "--listen", "web=127.0.0.1:0", "--"]
    sup = subprocess.Popen(
        [*argv, sys.executable, "-c", ACCEPT_ONE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert sup.stdout is not None
    try:
        port = int(sup.stdout.readline().split()[2].rsplit(":", 1)[1])
        # From the caller's namespace the port is not the command's: nothing reaches it here.
        with socket.socket() as outside:
            assert outside.connect_ex(("127.0.0.1", port)) != 0 or port_is_someone_elses(port)
        subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", CLIENT, str(port)], check=True, timeout=60
        )
        out, err = sup.communicate(timeout=60)
        assert sup.returncode == 0, err
        assert out.strip() == "got inside"
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.communicate(timeout=10)


def port_is_someone_elses(port: int) -> bool:
    """A listener of the caller's namespace (another test's) happens to hold the same port number."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_netns_errors_are_one_line(tmp_path: Path) -> None:
    proc = run("--netns", "/proc/self/ns/uts", "--listen", "web=127.0.0.1:0", "--", "true")
    # A value given on the command line, refused once the kernel was asked: still a usage error (2).
    assert proc.returncode == 2 and proc.stderr.startswith("janus-net: InvalidAddress"), proc.stderr
    proc = run("--netns", str(tmp_path / "missing"), "--listen", "web=127.0.0.1:0", "--", "true")
    assert proc.returncode == 1 and proc.stderr.startswith("janus-net: FileNotFound"), proc.stderr


# --- The exit rule and stop signals (DESIGN §12): an output that cannot be written is one
# line; a stop signal at start-up or while serving cleans up, then the command dies of it.


def test_an_audit_file_on_a_full_disk_is_one_line_and_exit_1() -> None:
    proc = run(
        "--capability", "c", "--allow-port", "0", "--listen", "web=127.0.0.1:0", "--audit", "/dev/full", "--", "true"
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("janus-net: SystemResources: write /dev/full: [Errno 28]")
    assert proc.stdout == ""  # nothing was bound: the first record could not be written


# The run parks in bind(2) of its --listen socket (testing.hold); the stop signal is sent to
# the parked main thread itself, so its handler runs while the bind is under way.
_STOP_AT_START_UP = """
import signal, sys, threading
from janus_net import _cli as cli, testing

path, marker, signum = sys.argv[1], sys.argv[2], int(sys.argv[3])
main = threading.main_thread().ident
with testing.hold("bind") as parked:
    def stop_while_parked() -> None:
        parked.returned.wait(30)
        signal.pthread_kill(main, signum)
        parked.release()
    threading.Thread(target=stop_while_parked, daemon=True).start()
    cli.main(["run", "--listen", f"web=unix:{path}", "--", "sh", "-c", f"touch {marker}; exec sleep 30"])
print("survived the stop signal")
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_signal_at_start_up_cleans_up_and_dies_of_it(tmp_path: Path, sig: signal.Signals) -> None:
    path, marker = tmp_path / "web.sock", tmp_path / "started"
    proc = subprocess.run(
        [sys.executable, "-c", _STOP_AT_START_UP, str(path), str(marker), str(int(sig))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == -sig, (proc.stdout, proc.stderr)
    assert proc.stdout == ""  # not "listening on" (the bind was cancelled), not "survived"
    assert proc.stderr == f"janus-net: stopped by {sig.name}\n"
    assert not os.path.lexists(path), "the socket file the bind created is removed"
    assert not marker.exists(), "no command was started"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_signal_while_serving_stops_and_reaps_the_command_then_dies_of_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    path = tmp_path / "web.sock"
    sup = subprocess.Popen(
        [*JANUS_NET, "run", "--listen", f"web=unix:{path}", "--", "sleep", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sup.stderr is not None
        started = sup.stderr.readline()
        assert started.startswith("janus-net run: started pid "), started
        child = int(started.split()[-1])
        os.kill(child, 0)  # the command runs (sh exec'ed sleep under the same pid)
        assert path.is_socket()
        sup.send_signal(sig)
        out, err = sup.communicate(timeout=60)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.communicate()
    assert sup.returncode == -sig, err
    assert out == f"listening on unix:{path} as web\n"
    assert "Traceback" not in err
    assert err.splitlines()[-2:] == [f"janus-net run: pid {child} stopped (143)", f"janus-net: stopped by {sig.name}"]
    assert not os.path.lexists(path)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # stopped and reaped by the supervisor before it died


def test_a_sighup_at_start_up_reloads_nothing_and_kills_nothing(tmp_path: Path) -> None:
    """SIGHUP is run's reload; before a command runs there is nothing to reload, and it must not kill."""
    path, marker = tmp_path / "web.sock", tmp_path / "started"
    sup = subprocess.Popen(
        [sys.executable, "-c", _STOP_AT_START_UP, str(path), str(marker), str(int(signal.SIGHUP))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sup.stderr is not None and sup.stdout is not None
        started = sup.stderr.readline()  # the SIGHUP came and went during the bind
        assert started.startswith("janus-net run: started pid "), started + sup.stderr.read()
        assert sup.stdout.readline() == f"listening on unix:{path} as web\n"
        sup.send_signal(signal.SIGTERM)
        _, err = sup.communicate(timeout=60)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.communicate()
    assert sup.returncode == -signal.SIGTERM, err
    assert "reload" not in err and "Traceback" not in err
    assert not os.path.lexists(path)


# A descriptor table that fills up at each step of the start-up: the bound socket, the
# wake pipe, the notify socket, the copy of the socket above the numbers it gets in the
# command. RLIMIT_NOFILE is lowered in the child after janus_net is loaded.
_FD_LIMITED = """
import os, resource, shutil, sys  # shutil: argparse imports it when it builds a parser
from janus_net import _cli as cli
from janus_net._cli import run  # loaded before the limit: nothing left to open
extra = int(sys.argv[1])
open_fds = {int(fd) for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")}
limit, free = 0, 0
while free < extra or limit in open_fds:  # exactly `extra` free numbers below the limit
    free += limit not in open_fds
    limit += 1
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.exit(cli.main(["run", "--listen", "web=127.0.0.1:0", "--", "true"]))
"""


def test_a_full_descriptor_table_at_each_start_up_step_is_one_typed_line() -> None:
    """With N free descriptor numbers, start-up stops at the syscall that needs the N+1th.

    The order is the start-up's: the --listen socket, the wake pipe (two fds), the notify
    socket, the copy of the listen socket, the spawn's close-on-exec pipe that reports a
    failed exec (two fds); with seven free numbers the command runs.
    """
    stopped_at = []
    for extra in range(8):
        proc = subprocess.run(
            [sys.executable, "-c", _FD_LIMITED, str(extra)], capture_output=True, text=True, timeout=60
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 0:
            stopped_at.append(None)
            continue
        assert proc.returncode == 1, proc.stderr
        [line] = proc.stderr.splitlines()
        member, syscall = line.split(": ")[1:3]
        assert member == "ProcessFdQuotaExceeded", line
        stopped_at.append(syscall.split()[0])
    assert stopped_at == ["socket", "pipe", "pipe", "socket", "fcntl", "spawn", "spawn", None]
