"""connect_host attacked where tests/test_connect_host.py does not look: each test here once failed.

Each runs a child process in a network namespace of its own (`unshare --net`: its RLIMIT_NOFILE,
its port range, its forged ICMP stay there); blackholed addresses are loopback listeners whose
accept queue is full, so the kernel drops their SYNs (no firewall). Descriptors are counted
from /proc/self/fd around each child.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _run_child(program: str, tmp_path: Path, *, args: tuple[str, ...] = ()) -> str:
    """Run ``program`` in a fresh interpreter, in a network namespace of its own; its stdout."""
    env = dict(os.environ, JANUS_NET_HOSTS=str(tmp_path / "hosts"), JANUS_NET_RESOLV_CONF=str(tmp_path / "resolv"))
    (tmp_path / "resolv").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "hosts").touch()
    command = ["unshare", "--net", sys.executable, "-c", program, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=_REPO, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# --- the fd limit reached by the race's own attempts


# The children's one way to leave exactly ``free`` descriptor numbers below RLIMIT_NOFILE.
_LEAVE_FREE = r"""
import os, resource


def leave_free(free, held):
    while True:
        fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        if fds == list(range(len(fds))):
            break
        held.append(open("/dev/null"))  # fill the holes: the limit counts descriptor numbers
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) - 1 + free, hard))
"""


_AT_THE_FD_LIMIT = (
    _LEAVE_FREE
    + r"""
import os, resource, select, socket, subprocess, sys
import janus_net as jn
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # a namespace of its own: every port is free

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
leave_free(3, held)  # one per blackholed attempt, none for the fourth
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
)


def test_the_fd_limit_reached_by_attempts_in_flight_defers_the_next_address_instead_of_failing_it(
    tmp_path: Path,
) -> None:
    # Three blackholed attempts take the last free descriptors; the good address's socket()
    # then fails with EMFILE. That is no verdict on the address: it is asked again when a
    # descriptor may be free (the next attempt's time, or when an attempt ends), and wins once
    # one is. It was counted as failed, and every address after it failed the same way at once.
    before = _fd_count()
    out = _run_child(_AT_THE_FD_LIMIT, tmp_path, args=("10",))
    assert "won 127.0.0.1:" in out, out
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["won"].endswith(" 0"), out  # the stream took the ballast's number: nothing else was left open
    assert lines["tries"] == "2", out
    assert _fd_count() == before


_LATE_AAAA_AT_THE_FD_LIMIT = (
    _LEAVE_FREE
    + r"""
import os, resource, select, socket, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
sys.path.insert(0, "tests")
from dns_server import DnsServer
import janus_net as jn

good = socket.socket(socket.AF_INET6); good.bind(("::1", 0)); good.listen(16); port = good.getsockname()[1]
held = [good]
hole = socket.socket(); hole.bind(("127.0.0.2", port)); hole.listen(0); held.append(hole)
for _ in range(16):  # the accept queue filled: SYNs to 127.0.0.2 are dropped
    filler = socket.socket(); filler.setblocking(False); filler.connect_ex(("127.0.0.2", port)); held.append(filler)
    if not select.select([], [filler], [], 0.5)[1]:
        break
else:
    raise SystemExit("the accept queue never filled")
server = DnsServer(tcp=False)
# ::1 listens; 2001:db8::1 has no route in this namespace (refused at once, no packet).
server.add("late.test", a=["127.0.0.2"], aaaa=["::1", "2001:db8::1"])
server.on("late.test", "AAAA", delay=0.3)  # after the IPv4 attempt has taken the last descriptor
config = jn.ResolverConfig.load().replace(nameservers=(server.nameserver,), timeout=5, attempts=1)
jn.connect_host("::1", port).close()  # warm up: imports, the signal wakeup pipe
ctx = jn.Context.with_timeout(10); ctx._wake_fd()
ballast = os.open("/dev/null", os.O_RDONLY)  # closed when an IPv6 address is asked again
leave_free(2, held)  # the lookup's UDP socket and the IPv4 attempt; none for a source probe
seen = []
def hook(event, args):
    if event == "janus_net.connect" and args[0].startswith("["):
        seen.append(args[0])
        if len(seen) == 2:
            os.close(ballast)
sys.addaudithook(hook)
try:
    stream = jn.connect_host("late.test", port, ctx=ctx, config=config, attempt_delay=0.05)
except jn.SocketError as exc:
    print("error", type(exc).__name__)
else:
    print("won", stream.address)
    stream.close()
server.close()
"""
)


def test_a_late_answer_sorted_at_the_fd_limit_joins_the_race_instead_of_ending_it(tmp_path: Path) -> None:
    # The AAAA answer comes while the IPv4 attempt in flight holds the last descriptor: its
    # two addresses cannot be sorted (the source probe's socket() fails with EMFILE). That
    # ended the whole call with ProcessFdQuotaExceeded, the attempt in flight closed with it;
    # the addresses now join in the lookup's order, and ::1 wins once a descriptor is free.
    before = _fd_count()
    out = _run_child(_LATE_AAAA_AT_THE_FD_LIMIT, tmp_path)
    assert out.startswith("won [::1]:"), out
    assert _fd_count() == before


# --- an ICMP error while an attempt's SYN is out


def test_an_icmp_source_route_failed_during_an_attempt_is_host_unreachable_not_unexpected() -> None:
    # ICMP destination unreachable, code 5 (source route failed), is fatal to a connect in
    # SYN_SENT: tcp_v4_err makes EOPNOTSUPP the socket's error. SO_ERROR read it back as
    # SocketError.Unexpected: no row of the connect table named it. Forged as test_connect's
    # ICMP tests forge theirs, quoting the attempt's real SYN, in a namespace of the child's own.
    from test_connect import _ICMP_DURING_CONNECT

    program = _ICMP_DURING_CONNECT.replace('jn.connect(f"127.0.0.1:{port}", ', 'jn.connect_host("127.0.0.1", port, ')
    assert program != _ICMP_DURING_CONNECT
    before = _fd_count()
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", program, "3", "5"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["HostUnreachable", errno.EOPNOTSUPP, "connect"]
    assert _fd_count() == before


# --- a connect that meets its own socket


_ONE_EPHEMERAL_PORT = r"""
import subprocess, sys
import janus_net as jn
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:  # this namespace's own: one port to pick
    f.write("40000 40000")
with open(jn.ResolverConfig.load().hosts, "w") as f:
    f.write("::1 self.test\n127.0.0.1 self.test\n")
try:
    stream = jn.connect_host(sys.argv[1], 40000, ctx=jn.Context.with_timeout(30), attempt_delay=30)
except jn.SocketError as exc:
    print("error", type(exc).__name__, *[type(e).__name__ + "@" + str(e.address) for e in exc.exceptions])
else:
    stream.write_all(b"x")
    print("connected to", stream.address, "and read back", stream.read(1))
"""


def test_an_attempt_that_connects_to_its_own_socket_is_refused_not_the_winner(tmp_path: Path) -> None:
    # Nothing listens on port 40000, the one port the kernel may pick as a source: each attempt's
    # SYN meets its own socket and TCP's simultaneous open "connects" it. That won the race, a
    # Stream talking to itself; it is the refusal it stands for, and the race goes on.
    before = _fd_count()
    out = _run_child(_ONE_EPHEMERAL_PORT, tmp_path, args=("self.test",))
    refused = ["ConnectionRefused@[::1]:40000", "ConnectionRefused@127.0.0.1:40000"]
    assert out.split() == ["error", "ConnectionRefused", *refused], out
    # 0.0.0.0 and :: connect to loopback: the socket meets itself under another name than the one asked.
    for host in ("0.0.0.0", "::"):
        shown = f"[{host}]" if ":" in host else host
        out = _run_child(_ONE_EPHEMERAL_PORT, tmp_path, args=(host,))
        assert out.split() == ["error", "ConnectionRefused", f"ConnectionRefused@{shown}:40000"], out
    assert _fd_count() == before


# --- every attempt's error names its address


_NO_DESCRIPTOR_LEFT = r"""
import os, resource
import janus_net as jn
ctx = jn.Context.with_timeout(30); ctx._wake_fd()
try:
    jn.connect_host("127.0.0.1", 9, ctx=ctx)  # warm up: imports, the signal wakeup pipe
except jn.SocketError:
    pass
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass  # every number below the limit taken
try:
    jn.connect_host("127.0.0.1", 9, ctx=ctx)
except jn.SocketError as exc:
    print(type(exc).__name__, exc.address, *[e.address for e in exc.exceptions])
"""


def test_an_attempt_whose_socket_cannot_be_made_names_its_address(tmp_path: Path) -> None:
    # socket(2) fails with EMFILE before the attempt has a descriptor: the error came from a
    # step that is given no address, so the raised error and its entry in .exceptions had
    # .address None, where connect_host promises each attempt's error names its address.
    before = _fd_count()
    out = _run_child(_NO_DESCRIPTOR_LEFT, tmp_path)
    assert out.split() == ["ProcessFdQuotaExceeded", "127.0.0.1:9", "127.0.0.1:9"], out
    assert _fd_count() == before
