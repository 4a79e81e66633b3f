"""NetBind.enforce(): the kernel (Landlock) enforces the capability's TCP ports for the whole process.

Enforcement cannot be undone, so every case runs in its own fresh interpreter
(`peers.run_child`) and reports JSON. The oracle is the stdlib ``socket`` module: code
that never goes through janus_net must be bound by the rule too.
"""

from __future__ import annotations

import json
import platform as host_platform
import subprocess
import sys
from pathlib import Path

import pytest
from peers import run_child
from tracing import MARK, syscalls_after_mark

import janus_net as jn

pytestmark = pytest.mark.skipif(jn.platform.landlock_abi() < 4, reason="the kernel has no Landlock network rules")

# A free TCP port, found before enforcing (binding port 0 afterwards is what is denied).
_FREE_PORT = """
import socket
def free_ports(n):
    # All held open until all are chosen, so the kernel cannot hand out one port twice.
    held = [socket.socket() for _ in range(n)]
    for s in held:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports
def free_port():
    return free_ports(1)[0]
def no_new_privs():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("NoNewPrivs:")).split()[1])
"""


def test_landlock_abi_is_the_kernels() -> None:
    abi = jn.platform.landlock_abi()
    assert type(abi) is int and abi >= 4
    if host_platform.machine() == "x86_64":
        # Independent oracle: the raw syscall (444 is landlock_create_ruleset on x86_64).
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(444, None, 0, 1) == abi


def test_stdlib_bind_outside_the_capability_is_refused_and_inside_works() -> None:
    out = run_child(
        _FREE_PORT
        + """
import json, socket
import janus_net as jn
port = free_port()
jn.NetBind("svc", ports=(port,)).enforce()
denied = None
try:
    socket.socket().bind(("127.0.0.1", 0))          # port 0 was not allowed explicitly
except PermissionError as e:
    denied = e.errno
other = None
try:
    socket.socket(socket.AF_INET6).bind(("::1", port + 1 if port < 65535 else port - 1))
except PermissionError as e:
    other = e.errno
s = socket.socket()
s.bind(("127.0.0.1", port))
s.listen()
allowed = s.getsockname()[1]
s.close()
print(json.dumps({"denied": denied, "other": other, "allowed": allowed, "port": port, "nnp": no_new_privs()}))
"""
    )
    assert out["denied"] == 13 and out["other"] == 13
    assert out["allowed"] == out["port"]
    assert out["nnp"] == 1


def test_janus_net_reports_capability_denied_with_reason_kernel_in_every_profile() -> None:
    out = run_child(
        _FREE_PORT
        + """
import json
import janus_net as jn
from janus_net.audit import ListSink
port, other = free_ports(2)
jn.NetBind("svc", ports=(port,)).enforce()
seen = {}
def attempt(name, fn):
    try:
        fn().close()
        seen[name] = "bound"
    except jn.SocketError.CapabilityDenied as e:
        seen[name] = [e.reason, e.errno, e.syscall, e.address, isinstance(e, PermissionError)]
    except jn.SocketError as e:
        seen[name] = e.member
attempt("core", lambda: jn.listen(f"127.0.0.1:{other}"))
attempt("service", lambda: jn.listen_with_context(f"127.0.0.1:{other}", jn.Context()))
sink = ListSink()
wide = jn.NetBind("wide", ports=(other,), audit=sink)   # janus_net's own gate allows it; the kernel not
attempt("sovereign", lambda: jn.listen_with_capability(f"127.0.0.1:{other}", wide))
attempt("stream_bind", lambda: jn.bind(f"[::1]:{other}", mode=jn.Mode.STREAM))
attempt("allowed", lambda: jn.listen(f"127.0.0.1:{port}"))
attempt("udp", lambda: jn.bind("127.0.0.1:0"))           # Landlock does not restrict UDP
held = jn.listen(f"127.0.0.1:{port}")
attempt("in_use", lambda: jn.listen(f"127.0.0.1:{port}", reuse_address=False))
held.close()
records = [(r.operation, r.result) for r in sink.records]
print(json.dumps({"seen": seen, "records": records, "other": other}))
"""
    )
    other = out["other"]
    for profile in ("core", "service", "sovereign"):
        assert out["seen"][profile] == ["kernel", 13, "bind", f"127.0.0.1:{other}", False], profile
    assert out["seen"]["stream_bind"] == ["kernel", 13, "bind", f"[::1]:{other}", False]
    assert out["seen"]["allowed"] == "bound"
    assert out["seen"]["udp"] == "bound"
    assert out["seen"]["in_use"] == "AddressInUse"
    # The in-process gate allowed it; the OS bind failed, so no bind_socket record (DESIGN §6).
    assert out["records"] == [["check_bind_address", "allowed"]]


def test_a_child_started_afterwards_is_restricted_too() -> None:
    out = run_child(
        _FREE_PORT
        + """
import json, subprocess, sys
import janus_net as jn
port = free_port()
jn.NetBind("svc", ports=(port,)).enforce()
probe = "import socket, sys\\n" \\
        "try:\\n    socket.socket().bind(('127.0.0.1', int(sys.argv[1])))\\n    print('bound')\\n" \\
        "except PermissionError:\\n    print('denied')\\n"
def child(p):
    return subprocess.run([sys.executable, "-c", probe, str(p)], capture_output=True, text=True,
                          check=True).stdout.strip()
print(json.dumps({"zero": child(0), "allowed": child(port)}))
"""
    )
    assert out == {"zero": "denied", "allowed": "bound"}


def test_port_zero_only_when_allowed_explicitly() -> None:
    out = run_child(
        """
import json, socket
import janus_net as jn
jn.NetBind("svc", ports=()).allow_port(0).enforce()
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
server = jn.listen("127.0.0.1:0")
print(json.dumps({"stdlib": port > 0, "janus": server.address.port > 0}))
server.close()
"""
    )
    assert out == {"stdlib": True, "janus": True}


def test_enforce_is_audited_once_with_the_ports_and_raises_an_audit_event() -> None:
    out = run_child(
        """
import io, json, sys
import janus_net as jn
from janus_net.audit import JsonLinesSink
events = []
sys.addaudithook(lambda name, args: events.append([name, list(args[1])]) if name == "janus_net.enforce" else None)
buf = io.StringIO()
cap = jn.NetBind("api", ports=(8080, 3000), audit=JsonLinesSink(buf))
cap.enforce()
print(json.dumps({"lines": buf.getvalue().splitlines(), "events": events}))
"""
    )
    (line,) = out["lines"]
    record = json.loads(line)
    assert set(record) == {"capability_id", "operation", "port", "result", "address", "time"}
    assert record["capability_id"] == "api"
    assert record["operation"] == "enforce"
    assert record["port"] is None
    assert record["result"] == "allowed"
    assert record["address"] == "landlock tcp-bind 3000,8080"
    assert out["events"] == [["janus_net.enforce", [3000, 8080]]]


def test_a_kernel_without_the_rules_is_option_unsupported_and_changes_nothing() -> None:
    out = run_child(
        """
import json, socket
import janus_net as jn
from janus_net import landlock
from janus_net.audit import ListSink
landlock.MINIMUM_ABI = jn.platform.landlock_abi() + 1   # ask for an ABI this kernel lacks
sink = ListSink()
try:
    jn.NetBind("svc", ports=(8080,), audit=sink).enforce()
    error = None
except jn.SocketError.OptionUnsupported as e:
    error = [e.member, e.errno, str(e)]
s = socket.socket()
s.bind(("127.0.0.1", 0))                                  # any port still binds
s.close()
with open("/proc/self/status") as f:
    nnp = int(next(line for line in f if line.startswith("NoNewPrivs:")).split()[1])
print(json.dumps({"error": error, "records": len(sink.records), "nnp": nnp, "enforced": landlock.enforced_ports()}))
"""
    )
    assert out["error"][0] == "OptionUnsupported" and out["error"][1] is None
    assert "Landlock ABI" in out["error"][2]
    assert out["records"] == 0 and out["nnp"] == 0 and out["enforced"] is None


def test_other_threads_running_is_refused_and_changes_nothing() -> None:
    out = run_child(
        """
import json, socket, threading
import janus_net as jn
from janus_net import landlock
stop = threading.Event()
worker = threading.Thread(target=stop.wait)
worker.start()
try:
    jn.NetBind("svc", ports=(8080,)).enforce()
    error = None
except jn.SocketError.OptionUnsupported as e:
    error = str(e)
stop.set()
worker.join()
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.close()
with open("/proc/self/status") as f:
    nnp = int(next(line for line in f if line.startswith("NoNewPrivs:")).split()[1])
# Once the thread is gone, enforcing works.
jn.NetBind("svc", ports=(8080,)).enforce()
print(json.dumps({"error": error, "nnp": nnp, "tsync": jn.platform.landlock_abi() >= 8}))
"""
    )
    if out["tsync"]:
        assert out["error"] is None  # ABI 8 restricts every thread at once
    else:
        assert out["error"] is not None and "2 threads" in out["error"]
        assert out["nnp"] == 0


def test_enforcing_again_narrows_and_a_revoked_capability_allows_nothing() -> None:
    out = run_child(
        _FREE_PORT
        + """
import json, socket
import janus_net as jn
from janus_net import landlock
a, b = free_ports(2)
jn.NetBind("wide", ports=(a, b)).enforce()
jn.NetBind("narrow", ports=(a,)).enforce()                # rulesets stack: both must allow
def binds(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except PermissionError:
        return False
    finally:
        s.close()
first = [binds(a), binds(b), sorted(landlock.enforced_ports())]
cap = jn.NetBind("gone", ports=(a,))
cap.revoke()
cap.enforce()
print(json.dumps({"first": first, "after_revoked": binds(a), "enforced": sorted(landlock.enforced_ports()),
                  "a": a}))
"""
    )
    assert out["first"] == [True, False, [out["a"]]]
    assert out["after_revoked"] is False
    assert out["enforced"] == []


_TRACE = "write,landlock_create_ruleset,landlock_add_rule,landlock_restrict_self,prctl"


def test_strace_shows_the_ruleset_the_rules_and_the_restriction_in_order(tmp_path: Path) -> None:
    program = (
        f"import os, janus_net as jn\ncap = jn.NetBind('x', ports=(8080, 3000))\nos.write(1, {MARK!r})\ncap.enforce()\n"
    )
    lines, _ = syscalls_after_mark(program, tmp_path, trace=_TRACE)
    lines = [line for line in lines if " write(" not in f" {line}"]
    names = [line.split("(", 1)[0].split()[-1] for line in lines if "(" in line]
    assert names == [
        "landlock_create_ruleset",  # the ABI query
        "landlock_create_ruleset",  # the ruleset
        "landlock_add_rule",
        "landlock_add_rule",
        "prctl",
        "landlock_restrict_self",
    ]
    assert "LANDLOCK_CREATE_RULESET_VERSION" in lines[0]
    assert "PR_SET_NO_NEW_PRIVS" in lines[4]


def test_strace_shows_nothing_changed_without_the_rules(tmp_path: Path) -> None:
    program = (
        "import os, janus_net as jn\n"
        "from janus_net import landlock\n"
        "landlock.MINIMUM_ABI = 99\n"
        f"os.write(1, {MARK!r})\n"
        "try:\n"
        "    jn.NetBind('x').enforce()\n"
        "except jn.SocketError.OptionUnsupported:\n"
        "    pass\n"
    )
    lines, _ = syscalls_after_mark(program, tmp_path, trace=_TRACE)
    lines = [line for line in lines if " write(" not in f" {line}"]
    assert len(lines) == 1 and "LANDLOCK_CREATE_RULESET_VERSION" in lines[0]  # only the question


def test_a_low_port_the_ruleset_allows_stays_access_denied_without_cap_net_bind_service() -> None:
    """EACCES the ruleset did not cause (no CAP_NET_BIND_SERVICE) is AccessDenied, not CapabilityDenied."""
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 81:
        pytest.skip("port 81 needs no privilege here")
    source = (
        "import json, janus_net as jn\n"
        "jn.NetBind('low', ports=(81,)).enforce()\n"
        "seen = {}\n"
        "for port in (81, 82):\n"
        "    try:\n"
        "        jn.listen(f'127.0.0.1:{port}').close()\n"
        "        seen[port] = 'bound'\n"
        "    except jn.SocketError as e:\n"
        "        seen[port] = [e.member, getattr(e, 'reason', None), e.errno]\n"
        "print(json.dumps(seen))\n"
    )
    proc = subprocess.run(
        ["setpriv", "--bounding-set", "-net_bind_service", sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["81"] == ["AccessDenied", None, 13]  # allowed by the ruleset; refused for the privilege
    assert seen["82"] == ["CapabilityDenied", "kernel", 13]


def test_enforce_right_after_a_netns_socket_is_not_refused() -> None:
    """The helper thread of netns= is gone once the call returns: enforce() sees one thread."""
    out = run_child(
        """
import json
import janus_net as jn
jn.listen("127.0.0.1:0", netns="/proc/self/ns/net").close()
jn.NetBind("svc", ports=(8080,)).enforce()
print(json.dumps({"ok": True}))
"""
    )
    assert out == {"ok": True}
