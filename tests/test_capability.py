"""The :sovereign profile: NetBind, the audit trail and its sinks, and the PEP 578 event.

The kernel is real; the stdlib ``socket`` module is the independent oracle for
"this port is bound / free again", and strace is the witness that a denied or
vetoed bind made no socket()/bind() syscall.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

import janus_net as jn
from janus_net import audit as audit_module
from janus_net._policy import capability as capability_module
from janus_net.audit import AuditRecord, JsonLinesSink, ListSink, LoggingSink
from tests.test_context import CountingContext, free_port, open_fds, port_is_free
from tests.tracing import MARK, calls_to, syscalls_after_mark

Denied = jn.SocketError.CapabilityDenied

# Abstract names are shared by every process of the network namespace: a fixed one would
# collide with the same test of another run on the machine (AddressInUse).
_ABSTRACT = f"unix:@janus-capability-{os.getpid()}"


def fields(record: AuditRecord) -> tuple[object, ...]:
    """A record without its time, for comparing sequences."""
    return (record.capability_id, record.operation, record.port, record.result, record.address)


# --- NetBind on its own


def test_defaults() -> None:
    cap = jn.NetBind("svc")
    assert cap.id == "svc"
    assert cap.grants == frozenset({"net.bind"})
    assert cap.ports == frozenset({8080, 3000, 8000})
    assert isinstance(cap.ports, frozenset)
    assert cap.allows("127.0.0.1:8080") and cap.allows("[::1]:3000") and cap.allows(":8000")
    assert not cap.allows("127.0.0.1:9000")
    assert not cap.allows("127.0.0.1:0")  # port 0 only when added explicitly
    assert cap.allows(jn.parse_address("unix:/tmp/x.sock"))
    assert cap.allows("unix:@abstract")


def test_allows_writes_no_record() -> None:
    sink = ListSink()
    cap = jn.NetBind("svc", audit=sink)
    cap.allows("127.0.0.1:8080")
    cap.allows("127.0.0.1:9")
    assert sink.records == []


def test_allow_port_mutates_and_returns_the_capability() -> None:
    cap = jn.NetBind("svc", ports=())
    assert cap.ports == frozenset()
    assert cap.allow_port(0).allow_port(65535) is cap
    assert cap.ports == {0, 65535}
    assert cap.allows("127.0.0.1:0")


@pytest.mark.parametrize("bad", [-1, 65536, 10**9, "80", 80.0, True, None])
def test_allow_port_rejects_what_is_not_a_port(bad: object) -> None:
    cap = jn.NetBind("svc")
    with pytest.raises(ValueError):
        cap.allow_port(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jn.NetBind("svc", ports=[8080, bad])  # type: ignore[list-item]
    assert cap.ports == {8080, 3000, 8000}


def test_ports_is_a_snapshot() -> None:
    cap = jn.NetBind("svc")
    before = cap.ports
    cap.allow_port(1234)
    assert 1234 not in before and 1234 in cap.ports


def test_allow_port_from_many_threads() -> None:
    cap = jn.NetBind("svc", ports=())
    threads = [threading.Thread(target=lambda b=b: [cap.allow_port(b * 100 + i) for i in range(100)]) for b in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cap.ports == set(range(800))


def test_revoke_denies_everything() -> None:
    sink = ListSink()
    cap = jn.NetBind("svc", audit=sink)
    cap.revoke()
    assert cap.grants == frozenset()
    assert not cap.allows("127.0.0.1:8080") and not cap.allows("unix:@x")
    cap.allow_port(9000)  # revocation is final
    assert not cap.allows("127.0.0.1:9000")
    with pytest.raises(Denied) as caught:
        jn.listen_with_capability("unix:@janus-revoked", cap)
    assert "revoked" in str(caught.value)
    assert [fields(r) for r in sink.records] == [("svc", "check_bind_address", None, "denied", "unix:@janus-revoked")]


def test_capability_is_required() -> None:
    with pytest.raises(TypeError):
        jn.listen_with_capability("127.0.0.1:0", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jn.NetBind("")


def test_audit_record_is_a_frozen_dataclass_with_six_fields() -> None:
    names = [f.name for f in dataclasses.fields(AuditRecord)]
    assert names == ["capability_id", "operation", "port", "result", "address", "time"]
    record = AuditRecord("c", "bind_socket", 1, "allowed", "127.0.0.1:1", 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.port = 2  # type: ignore[misc]
    assert jn.AuditRecord is AuditRecord


# --- the audit sequences


def test_denied_bind_writes_exactly_one_record_and_opens_nothing() -> None:
    sink = ListSink()
    cap = jn.NetBind("web", audit=sink)
    before = open_fds()
    start = time.time()
    with pytest.raises(Denied) as caught:
        jn.listen_with_capability("127.0.0.1:9", cap)
    assert open_fds() == before
    error = caught.value
    assert error.address == "127.0.0.1:9" and error.errno is None and error.syscall is None
    assert "'web'" in str(error) and "port 9" in str(error)
    assert str(error).startswith("CapabilityDenied: 127.0.0.1:9: ")
    [record] = sink.records
    assert fields(record) == ("web", "check_bind_address", 9, "denied", "127.0.0.1:9")
    assert start <= record.time <= time.time()


def test_default_ports_are_denied_elsewhere_for_datagrams_too() -> None:
    sink = ListSink()
    with pytest.raises(Denied):
        jn.bind_with_capability("[::1]:53", jn.NetBind("dns", audit=sink))
    assert [fields(r) for r in sink.records] == [("dns", "check_bind_address", 53, "denied", "[::1]:53")]


def test_a_denied_bind_makes_no_socket_or_bind_syscall(tmp_path: Path) -> None:
    program = (
        "import os, janus_net as jn\n"
        # The sink writes the mark: everything after it in the trace came after the check.
        f"cap = jn.NetBind('t', audit=lambda record: os.write(1, {MARK!r}))\n"
        "try:\n"
        "    jn.listen_with_capability('127.0.0.1:9', cap)\n"
        "except jn.SocketError.CapabilityDenied as e:\n"
        "    print('denied', e.address)\n"
    )
    after, stdout = syscalls_after_mark(program, tmp_path)
    assert "denied 127.0.0.1:9" in stdout
    assert calls_to(after, "socket", "bind") == []
    # The witness sees them when the bind is allowed (port 0 added).
    allowed, _ = syscalls_after_mark(program.replace("audit=", "ports=[9, 0], audit=").replace(":9'", ":0'"), tmp_path)
    assert len(calls_to(allowed, "socket")) == 1 and len(calls_to(allowed, "bind")) == 1


def test_allowed_sequence_records_the_real_port_for_port_zero() -> None:
    sink = ListSink()
    cap = jn.NetBind("api", audit=sink).allow_port(0)
    start = time.time()
    with jn.listen_with_capability("127.0.0.1:0", cap) as srv:
        port = srv.address.port
        assert port != 0
        assert not port_is_free(port)
    assert [fields(r) for r in sink.records] == [
        ("api", "check_bind_address", 0, "allowed", "127.0.0.1:0"),
        ("api", "bind_socket", port, "allowed", f"127.0.0.1:{port}"),
    ]
    assert start <= sink.records[0].time <= sink.records[1].time <= time.time()


def test_allowed_sequence_on_a_fixed_port_with_a_context() -> None:
    port = free_port()
    sink = ListSink()
    ctx = CountingContext()
    cap = jn.NetBind("api", ports=[port], audit=sink)
    with jn.listen_with_capability(f"127.0.0.1:{port}", cap, ctx=ctx, backlog=4) as srv:
        assert ctx.calls == 5
        assert srv.address.port == port
        with socket.create_connection(("127.0.0.1", port), timeout=5), srv.accept(ctx):
            pass
    assert [r.operation for r in sink.records] == ["check_bind_address", "bind_socket"]
    assert {r.port for r in sink.records} == {port}


def test_datagram_bind_with_capability() -> None:
    sink = ListSink()
    with jn.bind_with_capability("127.0.0.1:0", jn.NetBind("udp", ports=[0], audit=sink)) as udp:
        port = udp.address.port
        assert isinstance(udp, jn.Socket)
    assert [fields(r) for r in sink.records] == [
        ("udp", "check_bind_address", 0, "allowed", "127.0.0.1:0"),
        ("udp", "bind_socket", port, "allowed", f"127.0.0.1:{port}"),
    ]


def test_unix_path_records_carry_no_port(tmp_path: Path) -> None:
    sink = ListSink()
    path = tmp_path / "cap.sock"
    with jn.listen_with_capability(f"unix:{path}", jn.NetBind("local", ports=(), audit=sink)):
        assert path.exists()
    assert [fields(r) for r in sink.records] == [
        ("local", "check_bind_address", None, "allowed", f"unix:{path}"),
        ("local", "bind_socket", None, "allowed", f"unix:{path}"),
    ]


def test_os_bind_failure_writes_only_the_first_record() -> None:
    sink = ListSink()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cap = jn.NetBind("api", ports=[port], audit=sink)
        before = open_fds()
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen_with_capability(f"127.0.0.1:{port}", cap, reuse_address=False)
        assert open_fds() == before
    assert [fields(r) for r in sink.records] == [("api", "check_bind_address", port, "allowed", f"127.0.0.1:{port}")]


def test_a_context_that_ends_after_the_check_writes_only_the_first_record() -> None:
    sink = ListSink()
    ctx = CountingContext(cancel_at=4)
    with pytest.raises(jn.SocketError.Timeout):
        jn.listen_with_capability("127.0.0.1:0", jn.NetBind("api", ports=[0], audit=sink), ctx=ctx)
    assert [r.operation for r in sink.records] == ["check_bind_address"]


class SinkFailure(Exception):
    pass


@pytest.mark.parametrize("failing", ["check_bind_address", "bind_socket"])
def test_a_sink_that_raises_fails_the_bind_closed(failing: str) -> None:
    port = free_port()
    seen: list[str] = []

    def sink(record: AuditRecord) -> None:
        seen.append(record.operation)
        if record.operation == failing:
            raise SinkFailure(record.operation)

    before = open_fds()
    with pytest.raises(SinkFailure):
        jn.listen_with_capability(f"127.0.0.1:{port}", jn.NetBind("api", ports=[port], audit=sink))
    assert open_fds() == before
    assert port_is_free(port)
    assert seen == ["check_bind_address", "bind_socket"][: seen.index(failing) + 1]


@pytest.mark.parametrize("failing", ["check_bind_address", "bind_socket"])
def test_a_sink_that_raises_leaves_no_unix_socket_file(failing: str, tmp_path: Path) -> None:
    def sink(record: AuditRecord) -> None:
        if record.operation == failing:
            raise KeyboardInterrupt

    path = tmp_path / "fail.sock"
    before = open_fds()
    with pytest.raises(KeyboardInterrupt):
        jn.listen_with_capability(f"unix:{path}", jn.NetBind("api", audit=sink))
    assert open_fds() == before
    assert not os.path.lexists(path)


# --- sinks


def test_json_lines_sink_writes_one_object_per_line(tmp_path: Path) -> None:
    out = io.StringIO()
    cap = jn.NetBind("json", ports=[0], audit=JsonLinesSink(out))
    with jn.listen_with_capability("127.0.0.1:0", cap) as srv:
        port = srv.address.port
    with pytest.raises(Denied):
        jn.listen_with_capability("127.0.0.1:9", cap)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    objects = [json.loads(line) for line in lines]
    for obj in objects:
        assert set(obj) == {"capability_id", "operation", "port", "result", "address", "time"}
        assert isinstance(obj["time"], float)
    assert [(o["operation"], o["port"], o["result"], o["address"]) for o in objects] == [
        ("check_bind_address", 0, "allowed", "127.0.0.1:0"),
        ("bind_socket", port, "allowed", f"127.0.0.1:{port}"),
        ("check_bind_address", 9, "denied", "127.0.0.1:9"),
    ]


def test_json_lines_sink_on_a_real_file_is_flushed_per_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with path.open("a") as file:
        cap = jn.NetBind("file", audit=JsonLinesSink(file))
        with pytest.raises(Denied):
            jn.listen_with_capability("127.0.0.1:1", cap)
        # Still open: the line is on disk already.
        assert json.loads(path.read_text())["result"] == "denied"


def test_json_lines_unix_port_is_null(tmp_path: Path) -> None:
    out = io.StringIO()
    with jn.listen_with_capability(_ABSTRACT + "-json-null", jn.NetBind("u", audit=JsonLinesSink(out))):
        pass
    assert [json.loads(line)["port"] for line in out.getvalue().splitlines()] == [None, None]


def test_logging_sink_logs_info_and_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="janus_net.audit")
    cap = jn.NetBind("logged", ports=[0], audit=LoggingSink())
    with jn.listen_with_capability("127.0.0.1:0", cap):
        pass
    with pytest.raises(Denied):
        jn.listen_with_capability("127.0.0.1:9", cap)
    records = [r for r in caplog.records if r.name == "janus_net.audit"]
    assert [(r.levelno, r.getMessage().split(":")[0]) for r in records] == [
        (logging.INFO, "check_bind_address allowed"),
        (logging.INFO, "bind_socket allowed"),
        (logging.WARNING, "check_bind_address denied"),
    ]
    assert "'logged'" in records[2].getMessage() and "127.0.0.1:9" in records[2].getMessage()
    audit = records[2].audit  # type: ignore[attr-defined]
    assert isinstance(audit, AuditRecord) and audit.port == 9


def test_logging_sink_takes_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("my.service.audit")
    caplog.set_level(logging.WARNING, logger="my.service.audit")
    with pytest.raises(Denied):
        jn.listen_with_capability("127.0.0.1:9", jn.NetBind("x", audit=LoggingSink(logger)))
    assert [r.name for r in caplog.records] == ["my.service.audit"]


# --- PEP 578: sys.audit("janus_net.bind", address_text, capability_id_or_None)

_HOOK_PROGRAM = """
import json, os, sys, janus_net as jn

events = []
VETO = {veto!r}

def hook(event, args):
    if event == "janus_net.bind":
        events.append(list(args))
        if VETO:
            raise RuntimeError("vetoed by policy")

sys.addaudithook(hook)
fds = set(os.listdir("/proc/self/fd"))
os.write(1, {mark!r})
outcomes = []
calls = [
    lambda: jn.listen("127.0.0.1:0"),
    lambda: jn.bind("127.0.0.1:0"),
    lambda: jn.listen_with_context({abstract!r}, jn.Context()),
    lambda: jn.listen_with_capability("127.0.0.1:0", jn.NetBind("cap-1", ports=[0])),
    lambda: jn.bind_with_capability("127.0.0.1:0", jn.NetBind("cap-2", ports=[0]), ctx=jn.Context()),
]
for call in calls:
    try:
        call().close()
        outcomes.append("ok")
    except RuntimeError as e:
        outcomes.append(str(e))
leaked = set(os.listdir("/proc/self/fd")) - fds
print(json.dumps({{"events": events, "outcomes": outcomes, "leaked": len(leaked)}}))
"""


def _run_hook_program(veto: bool, tmp_path: Path) -> tuple[dict[str, object], list[str]]:
    program = _HOOK_PROGRAM.format(veto=veto, mark=MARK, abstract=_ABSTRACT + "-pep578")
    after, stdout = syscalls_after_mark(program, tmp_path)
    return json.loads(stdout.splitlines()[-1]), after


def test_pep578_event_is_raised_by_every_profile(tmp_path: Path) -> None:
    result, after = _run_hook_program(False, tmp_path)
    assert result["events"] == [
        ["127.0.0.1:0", None],
        ["127.0.0.1:0", None],
        [_ABSTRACT + "-pep578", None],
        ["127.0.0.1:0", "cap-1"],
        ["127.0.0.1:0", "cap-2"],
    ]
    assert result["outcomes"] == ["ok"] * 5
    assert len(calls_to(after, "socket")) == 5


def test_pep578_hook_can_veto_before_any_syscall(tmp_path: Path) -> None:
    result, after = _run_hook_program(True, tmp_path)
    assert result["outcomes"] == ["vetoed by policy"] * 5
    assert len(result["events"]) == 5  # type: ignore[arg-type]
    assert result["leaked"] == 0
    assert calls_to(after, "socket", "bind") == []


def test_pep578_event_comes_after_the_capability_check(tmp_path: Path) -> None:
    # A denied capability is decided first: the hook never hears of that bind.
    program = (
        "import sys, janus_net as jn\n"
        "seen = []\n"
        "sys.addaudithook(lambda e, a: seen.append(a) if e == 'janus_net.bind' else None)\n"
        "try:\n"
        "    jn.listen_with_capability('127.0.0.1:9', jn.NetBind('c'))\n"
        "except jn.SocketError.CapabilityDenied:\n"
        "    pass\n"
        "print(len(seen))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


# --- An exception landing at any line leaves nothing held (a `with lock:` block's
# exit line event can raise before __exit__ runs, which would leave the lock held for ever).

_GATE_FILES = {str(capability_module.__file__), str(audit_module.__file__)}


class _Inject:
    """A sys.settrace function counting line events in capability.py/audit.py; raises at the ``at``-th."""

    def __init__(self, at: int = 0) -> None:
        self.at = at
        self.seen = 0

    def __call__(self, frame: FrameType, event: str, arg: object) -> object:
        if frame.f_code.co_filename not in _GATE_FILES:
            return None
        if event == "line":
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt
        return self


def _finishes(call: Callable[[], object]) -> bool:
    """Run ``call`` on another thread; whether it ended within a generous time (a held lock never would).

    An exception it raises is raised here.
    """
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    finished = done.wait(30)
    if errors:
        raise errors[0]
    return finished


_SCENARIOS = {
    "allow_port": lambda cap: cap.allow_port(9000),
    "revoke": lambda cap: cap.revoke(),
    "authorize": lambda cap: cap.authorize(jn.parse_address("127.0.0.1:8080")),
    "authorize_denied": lambda cap: cap.authorize(jn.parse_address("127.0.0.1:9")),
    "record_bound": lambda cap: cap.record_bound(jn.parse_address("127.0.0.1:8080")),
    "ports": lambda cap: cap.ports,
}


def _sinks() -> dict[str, Callable[[AuditRecord], object]]:
    logger = logging.getLogger("janus_net.test.interrupts")
    logger.propagate = False
    return {"list": ListSink(), "json": JsonLinesSink(io.StringIO()), "logging": LoggingSink(logger)}


def _following(cap: jn.NetBind, sink: Callable[[AuditRecord], object]) -> None:
    """Every entry point, on the same capability and sink (run from another thread)."""
    cap.allow_port(9001)
    assert 9001 in cap.ports
    cap.authorize(jn.parse_address("127.0.0.1:9001"))
    cap.record_bound(jn.parse_address("127.0.0.1:9001"))
    sink(AuditRecord("direct", "bind_socket", 1, "allowed", "127.0.0.1:1", 0.0))


@pytest.mark.parametrize("scenario", sorted(_SCENARIOS))
@pytest.mark.parametrize("sink_kind", ["list", "json", "logging"])
def test_keyboard_interrupt_at_every_line_leaves_no_lock_held(scenario: str, sink_kind: str) -> None:
    sink = _sinks()[sink_kind]
    action = _SCENARIOS[scenario]
    count = _Inject()
    sys.settrace(count)
    try:
        action(jn.NetBind("probe", audit=sink))
    except Denied:
        pass
    finally:
        sys.settrace(None)
    assert count.seen > 0
    cap = jn.NetBind("shared", audit=sink)
    for at in range(1, count.seen + 1):
        sys.settrace(_Inject(at))
        try:
            action(cap)
        except (KeyboardInterrupt, Denied):
            pass
        finally:
            sys.settrace(None)
        if scenario == "revoke":
            cap = jn.NetBind("shared", audit=sink)

        assert _finishes(functools.partial(_following, cap, sink)), (
            f"{scenario}/{sink_kind}: a call after an interrupt at line event {at} hung"
        )
    if isinstance(sink, JsonLinesSink):
        text = sink.file.getvalue()  # type: ignore[attr-defined]
        assert text.endswith("\n")
        for line in text.splitlines():
            json.loads(line)  # every line whole, whatever was interrupted
