"""NetBind.enforce(): the kernel (Landlock) enforces the capability's TCP ports for the whole process.

Enforcement cannot be undone, so every case runs in its own fresh interpreter
(`peers.run_child`) and reports JSON. The oracle is the stdlib ``socket`` module: code
that never goes through janus_net must be bound by the rule too.
"""

from __future__ import annotations

import errno
import json
import platform as host_platform
import socket
import struct
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
import errno
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
from janus_net._policy import landlock
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
from janus_net._policy import landlock
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
from janus_net._policy import landlock
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


_TRACE = "write,landlock_create_ruleset,landlock_add_rule,landlock_restrict_self,prctl,seccomp"


def test_strace_shows_the_ruleset_the_rules_and_the_restriction_in_order(tmp_path: Path) -> None:
    program = (
        f"import os, janus_net as jn\ncap = jn.NetBind('x', ports=(8080, 3000))\nos.write(1, {MARK!r})\ncap.enforce()\n"
    )
    lines, _ = syscalls_after_mark(program, tmp_path, trace=_TRACE)
    lines = [line for line in lines if " write(" not in f" {line}"]
    names = [line.split("(", 1)[0].split()[-1] for line in lines if "(" in line]
    assert names == [
        "landlock_create_ruleset",  # the ABI query
        "seccomp",  # can the filter be installed? (before anything changes)
        "landlock_create_ruleset",  # the ruleset
        "landlock_add_rule",
        "landlock_add_rule",
        "prctl",
        "landlock_restrict_self",
        "seccomp",  # the filter, on every thread
    ]
    assert "LANDLOCK_CREATE_RULESET_VERSION" in lines[0]
    assert "SECCOMP_GET_ACTION_AVAIL" in lines[1] and "SECCOMP_RET_ERRNO" in lines[1]
    assert "PR_SET_NO_NEW_PRIVS" in lines[5]
    assert "SECCOMP_SET_MODE_FILTER" in lines[7] and "SECCOMP_FILTER_FLAG_TSYNC" in lines[7]


def test_strace_shows_nothing_changed_without_the_rules(tmp_path: Path) -> None:
    program = (
        "import os, janus_net as jn\n"
        "from janus_net._policy import landlock\n"
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
import errno
import json
import janus_net as jn
jn.listen("127.0.0.1:0", netns="/proc/self/ns/net").close()
jn.NetBind("svc", ports=(8080,)).enforce()
print(json.dumps({"ok": True}))
"""
    )
    assert out == {"ok": True}


# --- Known gaps of Landlock's network rules (DESIGN §14), and the seccomp filter that closes some.
# Each test's name says whether the gap is closed (for all code) or open; README lists the open ones.

_MPTCP = """
import errno, socket
def mptcp(family=socket.AF_INET):
    # socket(family, SOCK_STREAM, IPPROTO_MPTCP) with the stdlib: "made", or the errno's name.
    try:
        s = socket.socket(family, socket.SOCK_STREAM, 262)   # IPPROTO_MPTCP (include/uapi/linux/in.h)
    except OSError as e:
        return errno.errorcode[e.errno]
    s.close()
    return "made"
"""


def _mptcp_here() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262).close()
    except OSError:
        return False
    return True


needs_mptcp = pytest.mark.skipif(not _mptcp_here(), reason="the kernel makes no MPTCP sockets (net.mptcp.enabled=0?)")


@needs_mptcp
def test_gap_shown_landlock_alone_lets_an_mptcp_socket_bind_a_forbidden_port_and_serve() -> None:
    """Why the filter exists: with the ruleset only, MPTCP binds any port and TCP clients reach it."""
    out = run_child(
        _FREE_PORT
        + """
import json, socket
import janus_net as jn
from janus_net._policy import landlock
allowed, forbidden = free_ports(2)
landlock._filtered = True          # testing switch: enforce the ruleset without installing the filter
jn.NetBind("svc", ports=(allowed,)).enforce()
tcp = None
try:
    socket.socket().bind(("127.0.0.1", forbidden))
except PermissionError:
    tcp = "refused"
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
try:
    server.bind(("127.0.0.1", forbidden))
except PermissionError:                  # kernels whose Landlock hooks took MPTCP for TCP
    print(json.dumps({"tcp": tcp, "served": None}))
    raise SystemExit
server.listen()
client = socket.create_connection(("127.0.0.1", forbidden), timeout=30)   # a plain TCP client
conn, _ = server.accept()
client.sendall(b"through")
print(json.dumps({"tcp": tcp, "served": conn.recv(7).decode()}))
"""
    )
    if out["served"] is None:
        pytest.skip("this kernel's Landlock refuses MPTCP binds too: no gap to show")
    assert out == {"tcp": "refused", "served": "through"}


@needs_mptcp
def test_gap_closed_mptcp_sockets_are_refused_for_all_code_after_enforce() -> None:
    """The filter: the stdlib, a thread started later and a child process all get EACCES for MPTCP."""
    out = run_child(
        _MPTCP
        + """
import json, socket, subprocess, sys, threading
import janus_net as jn
from janus_net._policy import landlock
before = mptcp()
jn.NetBind("svc", ports=(8080,)).enforce()
seen = {"before": before, "v4": mptcp(), "v6": mptcp(socket.AF_INET6), "filtered": landlock.filtered()}
box = []
worker = threading.Thread(target=lambda: box.append(mptcp()))
worker.start()
worker.join()
seen["thread"] = box[0]
probe = "import errno, socket\\ntry:\\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)\\n" \\
        "    print('made')\\nexcept OSError as e:\\n    print(errno.errorcode[e.errno])\\n"
seen["child"] = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True).stdout.strip()
# What the filter lets through: TCP, UDP and unix sockets, and socket() of other protocols.
for args in ((), (socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_UNIX, socket.SOCK_STREAM),
             (socket.AF_INET6, socket.SOCK_STREAM, 6)):
    socket.socket(*args).close()
with open("/proc/self/status") as f:
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k.startswith("Seccomp")}
seen["status"] = status
print(json.dumps(seen))
"""
    )
    assert out["before"] == "made"
    assert out["v4"] == out["v6"] == out["thread"] == out["child"] == "EACCES"
    assert out["filtered"] is True
    assert out["status"] == {"Seccomp": "2", "Seccomp_filters": "1"}  # mode filter, one filter


@needs_mptcp
def test_janus_net_refuses_mptcp_after_enforce_before_any_syscall() -> None:
    out = run_child(
        """
import errno, json
import janus_net as jn
from janus_net.testing import fail
before = jn.bind("127.0.0.1:0", mode=jn.Mode.STREAM, protocol=jn.Protocol.MPTCP)
seen = {"before": before.address.port > 0}
before.close()
jn.NetBind("svc", ports=(8080,)).enforce()
with fail("socket", errno.EIO, times=100) as made:
    for name, protocol in (("enum", jn.Protocol.MPTCP), ("int", 262), ("smc", 256)):
        for where in ("127.0.0.1:8080", "[::1]:0"):
            try:
                jn.bind(where, mode=jn.Mode.STREAM, protocol=protocol).close()
                seen[name + where] = "bound"
            except jn.SocketError.CapabilityDenied as e:
                seen[name + where] = [e.reason, e.errno, e.syscall, e.address]
seen["socket_calls"] = made.calls
print(json.dumps(seen))
"""
    )
    assert out.pop("before") is True
    assert out.pop("socket_calls") == 0
    for key, value in out.items():
        where = key.removeprefix("enum").removeprefix("int").removeprefix("smc")
        assert value == ["kernel", None, "socket", where], key
    assert len(out) == 6


def test_gap_closed_io_uring_setup_is_refused_after_enforce() -> None:
    """An io_uring makes and binds sockets without socket(2) (IORING_OP_SOCKET): io_uring_setup is refused."""
    if host_platform.machine() != "x86_64":
        pytest.skip("the oracle calls io_uring_setup by its x86_64 number")
    out = run_child(
        """
import ctypes, errno, json, os
import janus_net as jn
libc = ctypes.CDLL(None, use_errno=True)
def setup():
    params = ctypes.create_string_buffer(120)              # struct io_uring_params, zeroed
    fd = libc.syscall(425, 4, params)                      # io_uring_setup on x86_64
    if fd < 0:
        return errno.errorcode[ctypes.get_errno()]
    os.close(fd)
    return "made"
before = setup()
jn.NetBind("svc", ports=(8080,)).enforce()
print(json.dumps({"before": before, "after": setup()}))
"""
    )
    if out["before"] != "made":
        pytest.skip(f"io_uring is not available here before enforce() either: {out['before']}")
    assert out["after"] == "EPERM"


def test_gap_closed_syscalls_of_another_abi_are_refused_after_enforce() -> None:
    """x32 syscall numbers (and compat ones) would slip past a filter written for the native numbers."""
    if host_platform.machine() != "x86_64":
        pytest.skip("the x32 ABI is an x86_64 thing")
    out = run_child(
        """
import ctypes, errno, json, os
import janus_net as jn
libc = ctypes.CDLL(None, use_errno=True)
def x32_getpid():
    rc = libc.syscall(0x40000000 | 39)                     # __X32_SYSCALL_BIT | getpid
    return rc if rc >= 0 else errno.errorcode[ctypes.get_errno()]
before = x32_getpid()
jn.NetBind("svc", ports=(8080,)).enforce()
print(json.dumps({"before": before, "after": x32_getpid(), "pid": os.getpid(), "native": os.getpid() > 0}))
"""
    )
    assert out["before"] in (out["pid"], "ENOSYS")  # a kernel with or without x32 support
    assert out["after"] == "EPERM"
    assert out["native"] is True


def test_the_filter_checks_the_architecture_first_against_the_interpreters_elf_header() -> None:
    """The audit arch comes from the compiler; the oracle is the ELF header of this interpreter."""
    from janus_net._policy import seccomp

    with open(sys.executable, "rb") as exe:
        header = exe.read(20)
    assert header[:4] == b"\x7fELF"
    is64, little = header[4] == 2, header[5] == 1
    machine = int.from_bytes(header[18:20], "little" if little else "big")
    expected = machine | (0x80000000 if is64 else 0) | (0x40000000 if little else 0)  # linux/audit.h
    program = seccomp.filter_program()
    code, _, jump_false, arch = program[1]
    assert (code, arch) == (0x15, expected)  # BPF_JMP | BPF_JEQ | BPF_K (linux/bpf_common.h)
    # Instruction 0 loads seccomp_data.arch (offset 4); a mismatch jumps to a return of EPERM.
    assert program[0][3] == 4
    assert program[2 + jump_false][0] & 0x07 == 0x06  # BPF_RET
    assert program[2 + jump_false][3] & 0xFFFF == errno.EPERM


def test_enforcing_twice_installs_one_filter() -> None:
    out = run_child(
        """
import errno
import json
import janus_net as jn
jn.NetBind("a", ports=(8080, 3000)).enforce()
jn.NetBind("b", ports=(8080,)).enforce()
with open("/proc/self/status") as f:
    filters = next(line for line in f if line.startswith("Seccomp_filters:")).split()[1]
print(json.dumps({"filters": int(filters)}))
"""
    )
    assert out == {"filters": 1}


def test_no_seccomp_filters_is_option_unsupported_and_changes_nothing() -> None:
    """The kernel's answer for a build without seccomp filters (EINVAL), injected at the availability question."""
    out = run_child(
        """
import errno, json, socket
import janus_net as jn
from janus_net.testing import fail
with fail("seccomp", errno.EINVAL):
    try:
        jn.NetBind("svc", ports=(8080,)).enforce()
        error = None
    except jn.SocketError.OptionUnsupported as e:
        error = [e.member, e.errno, e.syscall]
s = socket.socket()
s.bind(("127.0.0.1", 0))                                  # no ruleset: any port binds
s.close()
with open("/proc/self/status") as f:
    status = {k: v.split()[0] for k, v in (line.split(":", 1) for line in f) if k in ("NoNewPrivs", "Seccomp")}
print(json.dumps({"error": error, "status": status}))
"""
    )
    assert out["error"] == ["OptionUnsupported", errno.EINVAL, "seccomp"]
    assert out["status"] == {"NoNewPrivs": "0", "Seccomp": "0"}


def test_gap_open_listen_on_an_unbound_tcp_socket_autobinds_a_port_nobody_allowed() -> None:
    """No bind hook runs for listen()'s autobind, and a filter cannot see whether a socket is bound."""
    out = run_child(
        _FREE_PORT
        + """
import json, socket
import janus_net as jn
allowed = free_port()
jn.NetBind("svc", ports=(allowed,)).enforce()           # port 0 not allowed: bind(0) is refused
zero = None
try:
    socket.socket().bind(("127.0.0.1", 0))
except PermissionError:
    zero = "refused"
unbound = socket.socket()
adopted = None
try:                                                     # janus_net adopts only bound or listening sockets
    jn.bind(f"fd://{unbound.fileno()}", mode=jn.Mode.STREAM)
except jn.SocketError.InvalidAddress:
    adopted = "refused"
unbound.close()
server = socket.socket()
server.listen()                                          # never bound: the kernel picks a port
port = server.getsockname()[1]
client = socket.create_connection(("127.0.0.1", port), timeout=30)
conn, _ = server.accept()
client.sendall(b"open")
print(json.dumps({"zero": zero, "served": conn.recv(4).decode(), "port": port, "allowed": allowed,
                  "adopted": adopted}))
"""
    )
    assert out["zero"] == "refused" and out["adopted"] == "refused"
    assert out["served"] == "open" and out["port"] != out["allowed"]


def test_gap_open_udp_binds_any_port_after_enforce() -> None:
    out = run_child(
        _FREE_PORT
        + """
import json, socket
import janus_net as jn
allowed, other = free_ports(2)
jn.NetBind("svc", ports=(allowed,)).enforce()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", other))
port = s.getsockname()[1]
s.close()
print(json.dumps({"bound": port == other}))
"""
    )
    assert out == {"bound": True}


def _run_filter(program: object, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run a classic BPF seccomp program over one ``struct seccomp_data`` (an oracle written from the BPF spec)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = program[pc]  # type: ignore[index]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            (acc,) = struct.unpack_from("=I", data, k)
            pc += 1
        elif code in (0x15, 0x35):  # BPF_JMP | BPF_JEQ / BPF_JGE, BPF_K
            taken = acc == k if code == 0x15 else acc >= k
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # BPF_RET | BPF_K
            return int(k)
        else:
            raise AssertionError(f"an instruction the filter should not use: {code:#x}")


def test_the_filter_decides_each_socket_family_and_protocol_as_documented() -> None:
    """Every decision of the program, run by an interpreter of the BPF spec (SMC included, which this kernel lacks)."""
    from janus_net._policy import seccomp
    from janus_net._shim import lib

    if host_platform.machine() != "x86_64":
        pytest.skip("the oracle's syscall numbers are x86_64's (socket 41, io_uring_setup 425, getpid 39)")
    program = seccomp.filter_program()
    arch = program[1][3]
    allow, eacces, eperm = 0x7FFF0000, 0x00050000 | errno.EACCES, 0x00050000 | errno.EPERM  # linux/seccomp.h
    af_smc, mptcp, smc = 43, 262, 256  # include/linux/socket.h, include/uapi/linux/in.h
    stream = socket.SOCK_STREAM | socket.SOCK_CLOEXEC
    cases = {
        (41, (socket.AF_INET, stream, mptcp)): eacces,
        (41, (socket.AF_INET6, socket.SOCK_STREAM, mptcp)): eacces,
        (41, (socket.AF_INET, socket.SOCK_STREAM, smc)): eacces,
        (41, (af_smc, socket.SOCK_STREAM, 0)): eacces,
        (41, (socket.AF_INET, stream, 0)): allow,
        (41, (socket.AF_INET6, socket.SOCK_STREAM, 6)): allow,
        (41, (socket.AF_INET, socket.SOCK_DGRAM, 17)): allow,
        (41, (socket.AF_UNIX, socket.SOCK_STREAM, mptcp)): allow,  # not an IP family: the kernel refuses it
        (41, (socket.AF_INET | (1 << 32), socket.SOCK_STREAM, mptcp | (1 << 32))): eacces,  # the kernel reads ints
        (425, ()): eperm,
        (39, ()): allow,
        (0x40000000 | 41, (socket.AF_INET, socket.SOCK_STREAM, 0)): eperm,  # x32
    }
    for (nr, args), expected in cases.items():
        assert _run_filter(program, nr, arch, args) == expected, (nr, args)
    assert _run_filter(program, 41, arch ^ 1, (socket.AF_INET, socket.SOCK_STREAM, 0)) == eperm  # another ABI
    assert lib.JN_SECCOMP_NR_SOCKETCALL == -1  # x86_64 has no socketcall: no such branch
