"""connect_host attacked where tests/test_connect_host.py does not look: each test here once failed.

The fd-limit tests run in a child process of their own (its RLIMIT_NOFILE lowered there
only); blackholed addresses are loopback listeners whose accept queue is full, so the
kernel drops their SYNs (no firewall). Descriptors are counted from /proc/self/fd.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _run_child(program: str, tmp_path: Path) -> str:
    env = dict(os.environ, JANUS_NET_HOSTS=str(tmp_path / "hosts"), JANUS_NET_RESOLV_CONF=str(tmp_path / "resolv"))
    (tmp_path / "resolv").write_text("nameserver 127.0.0.1\n")
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=_REPO, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# --- the fd limit reached by the race's own attempts


_AT_THE_FD_LIMIT = r"""
import os, resource, select, socket, sys
import janus_net as jn

good = socket.socket(); good.bind(("127.0.0.1", 0)); good.listen(16); port = good.getsockname()[1]
held = [good]
holes = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
for host in holes:  # listeners whose accept queue is full: SYNs to them are dropped
    hole = socket.socket(); hole.bind((host, port)); hole.listen(0); held.append(hole)
    for _ in range(16):
        filler = socket.socket(); filler.setblocking(False); filler.connect_ex((host, port)); held.append(filler)
        if not select.select([], [filler], [], 0.5)[1]:
            break
    else:
        raise SystemExit("the accept queue never filled")
with open(os.environ["JANUS_NET_HOSTS"], "w") as f:
    f.write("".join(f"{host} limit.test\n" for host in [*holes, "127.0.0.1"]))
jn.connect_host("127.0.0.1", port).close()  # warm up: imports, the signal wakeup pipe
ctx = jn.Context.with_timeout(float(sys.argv[1])); ctx._wake_fd()
ballast = os.open("/dev/null", os.O_RDONLY)  # closed once the good address has been turned away
# Every number below the limit taken but three: one per blackholed attempt, none for the fourth.
while True:
    fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
    if fds == list(range(len(fds))):
        break
    held.append(open("/dev/null"))  # fill the holes: the limit counts descriptor numbers
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) - 1 + 3, hard))
seen = []
def hook(event, args):
    if event == "janus_net.connect" and args[0] == f"127.0.0.1:{port}":
        seen.append(args[0])
        if len(seen) == 2:  # asked again after its EMFILE: a descriptor is free now
            os.close(ballast)
sys.addaudithook(hook)
before = len(os.listdir("/proc/self/fd"))
try:
    stream = jn.connect_host("limit.test", port, ctx=ctx, attempt_delay=0.05)
except jn.SocketError as exc:
    print("error", type(exc).__name__, [type(e).__name__ for e in getattr(exc, "exceptions", ())])
else:
    print("won", stream.address, len(os.listdir("/proc/self/fd")) - before)
    stream.close()
print("tries", len(seen))
"""


def test_the_fd_limit_reached_by_attempts_in_flight_defers_the_next_address_instead_of_failing_it(
    tmp_path: Path,
) -> None:
    # Three blackholed attempts take the last free descriptors; the good address's socket()
    # then fails with EMFILE. That is no verdict on the address: it is asked again when a
    # descriptor may be free (the next attempt's time, or when an attempt ends), and wins once
    # one is. It was counted as failed, and every address after it failed the same way at once.
    before = _fd_count()
    out = _run_child(_AT_THE_FD_LIMIT.replace("sys.argv[1]", "10"), tmp_path)
    assert "won 127.0.0.1:" in out, out
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["won"].endswith(" 0"), out  # the stream took the ballast's number: nothing else was left open
    assert lines["tries"] == "2", out
    assert _fd_count() == before
