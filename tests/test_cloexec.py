"""Close-on-exec, atomic and emulated (DESIGN §3, §8), proven with strace.

On Linux janus_net asks for SOCK_CLOEXEC in socket() and calls accept4(). The
Darwin path -- socket() without the flag, then fcntl(F_SETFD, FD_CLOEXEC), and
accept() then fcntl -- is forced with ``JANUS_NET_FORCE_CLOEXEC_EMULATION=1``,
read at import, so each case runs in a child interpreter under strace. A marker
write brackets the code under test, so Python's own start-up syscalls are ignored,
and the lines are matched by the descriptor numbers the child reports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_CHILD = """
import fcntl, os, socket, janus_net as jn
from janus_net import platform

def cloexec(fd):
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)

os.write(1, b"JN-BEGIN\\n")
server = jn.listen("127.0.0.1:0")
client = socket.create_connection(("127.0.0.1", server.address.port))
stream = server.accept()
udp = jn.bind("127.0.0.1:0")
os.write(1, b"JN-END\\n")
print("emulated", not platform.HAS_SOCK_CLOEXEC, not platform.HAS_ACCEPT4)
print("fds", server.fileno(), stream.fileno(), udp.fileno())
print("cloexec", cloexec(server.fileno()), cloexec(stream.fileno()), cloexec(udp.fileno()))
client.sendall(b"x")
print("works", stream.read(1) == b"x")
for s in (stream, server, udp, client):
    s.close()
"""


def traced(tmp_path: Path, force: bool) -> tuple[dict[str, list[str]], list[str]]:
    """Run the child under strace; return its report (by first word) and the traced lines."""
    trace = tmp_path / ("forced" if force else "native")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_NET_")}
    if force:
        env["JANUS_NET_FORCE_CLOEXEC_EMULATION"] = "1"
    done = subprocess.run(
        ["strace", "-f", "-o", str(trace), "-e", "trace=socket,fcntl,accept,accept4,write",
         sys.executable, "-c", textwrap.dedent(_CHILD)],
        capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}
    lines = trace.read_text().splitlines()
    begin = next(i for i, line in enumerate(lines) if "JN-BEGIN" in line)
    end = next(i for i, line in enumerate(lines) if "JN-END" in line)
    # Drop the pid column strace -f adds, and the padding it puts before "= result".
    return report, [re.sub(r"\s+=", " =", re.sub(r"^\d+\s+", "", line)) for line in lines[begin + 1 : end]]


def returning(lines: list[str], call: str, fd: str) -> str:
    """The one traced ``call`` that returned ``fd``."""
    found = [line for line in lines if line.startswith(call + "(") and line.rstrip().endswith(f"= {fd}")]
    assert len(found) == 1, (call, fd, lines)
    return found[0]


def test_forced_emulation_uses_socket_then_fcntl_and_accept(tmp_path: Path) -> None:
    report, lines = traced(tmp_path, force=True)
    assert report["emulated"] == ["True", "True"]
    assert report["cloexec"] == ["True", "True", "True"]
    assert report["works"] == ["True"]
    server, stream, udp = report["fds"]

    listen_socket = returning(lines, "socket", server)
    assert "SOCK_CLOEXEC" not in listen_socket
    assert listen_socket.startswith("socket(AF_INET, SOCK_STREAM,")
    udp_socket = returning(lines, "socket", udp)
    assert "SOCK_CLOEXEC" not in udp_socket
    accepted = returning(lines, "accept", stream)
    assert not any(line.startswith("accept4(") for line in lines), lines

    for fd, made_by in ((server, listen_socket), (stream, accepted), (udp, udp_socket)):
        setfd = f"fcntl({fd}, F_SETFD, FD_CLOEXEC) = 0"
        assert setfd in lines, (setfd, lines)
        # ...right after the call that made the fd, before anything else touches it.
        assert lines.index(setfd) == lines.index(made_by) + 1, lines


def test_native_path_uses_sock_cloexec_and_accept4(tmp_path: Path) -> None:
    report, lines = traced(tmp_path, force=False)
    assert report["emulated"] == ["False", "False"]
    assert report["cloexec"] == ["True", "True", "True"]
    server, stream, udp = report["fds"]
    assert "SOCK_STREAM|SOCK_CLOEXEC" in returning(lines, "socket", server)
    assert "SOCK_DGRAM|SOCK_CLOEXEC" in returning(lines, "socket", udp)
    assert "SOCK_CLOEXEC" in returning(lines, "accept4", stream)
    assert not any(line.startswith("accept(") for line in lines), lines
    assert not any(line.startswith("fcntl(") and "F_SETFD" in line for line in lines), lines


_FCNTL_FAILS = """
import errno, os, janus_net as jn
from janus_net.testing import fail

def fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))

before = fds()
# EINTR is retried (one EINTR, then the real fcntl): the listen succeeds.
with fail("fcntl", errno.EINTR) as injected:
    jn.listen("127.0.0.1:0").close()
print("eintr", injected.failed)
# A failing fcntl closes the fresh socket before the error propagates.
with fail("fcntl", KeyboardInterrupt) as injected:
    try:
        jn.listen("127.0.0.1:0")
    except KeyboardInterrupt:
        print("interrupted", injected.failed)
print("leaked", sorted(set(fds()) - set(before)))
"""


def test_emulated_fcntl_failure_closes_the_socket() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_NET_")}
    env["JANUS_NET_FORCE_CLOEXEC_EMULATION"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _FCNTL_FAILS],
        capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["eintr 1", "interrupted 1", "leaked []"]


@pytest.mark.parametrize("force", ["0", "", "yes"])
def test_only_the_value_1_forces_emulation(force: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_NET_")}
    env["JANUS_NET_FORCE_CLOEXEC_EMULATION"] = force
    done = subprocess.run(
        [sys.executable, "-c", "from janus_net import platform; print(platform.HAS_SOCK_CLOEXEC)"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "True"
