"""``janus-net listen`` with the DESIGN §14/§16 flags: --enforce, --netns and the server options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import janus_net as jn

COMMAND = [sys.executable, "-m", "janus_net", "listen", "--accept", "0"]  # bind, report, exit


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(jn.platform.landlock_abi() < 4, reason="no Landlock network rules")
def test_enforce_writes_its_audit_record_first() -> None:
    # Port 0 is not allowed, so the gate denies it after the kernel took the ruleset.
    done = run("127.0.0.1:0", "--capability", "svc", "--enforce", "--audit", "-")
    assert done.returncode == 1
    assert "CapabilityDenied" in done.stderr and "Traceback" not in done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["operation"], r["result"]) for r in records] == [
        ("enforce", "allowed"),
        ("check_bind_address", "denied"),
    ]
    assert records[0]["address"] == "landlock tcp-bind 3000,8000,8080"


@pytest.mark.skipif(jn.platform.landlock_abi() < 4, reason="no Landlock network rules")
def test_enforce_with_an_allowed_port_listens() -> None:
    done = run("127.0.0.1:0", "--capability", "svc", "--allow-port", "0", "--enforce", "--audit", "-")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("listening on 127.0.0.1:")
    assert [json.loads(line)["operation"] for line in lines[1:]] == ["enforce", "check_bind_address", "bind_socket"]


def test_netns_and_device_flags(namespace: str) -> None:
    proc = subprocess.Popen(
        [*COMMAND, "127.0.0.1:0", "--netns", f"/run/netns/{namespace}", "--device", "lo", "--accept", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = jn.parse_address(json.loads(proc.stdout.readline())["listening"]).port
        source = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=30).close()"
        subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", source], check=True, timeout=60)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "accepted" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_server_option_flags_reach_the_socket() -> None:
    done = run("127.0.0.1:0", "--freebind", "--fastopen", "4", "--defer-accept", "2", "--incoming-cpu", "0", "--json")
    assert done.returncode == 0, done.stderr
    # The options themselves are read back in tests/test_sockopts.py; here: accepted, no error.
    assert json.loads(done.stdout.splitlines()[0])["listening"].startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--enforce"], "--enforce needs --capability"),
        (["--steer", "cpu"], "reuse_port"),
        (["--device", "x" * 16], "device must be"),
        (["--steer", "hash", "--reuse-port"], "invalid choice"),
        (["--fastopen", "-1"], "not a count"),
    ],
)
def test_bad_flags_are_usage_errors(args: list[str], message: str) -> None:
    done = run("127.0.0.1:0", *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_netns_errors_are_one_line() -> None:
    done = run("127.0.0.1:0", "--netns", "/proc/self/ns/uts")
    assert done.returncode == 2  # a refused command-line value, though the kernel was asked
    assert done.stderr.startswith("janus-net: InvalidAddress: ") and done.stderr.count("\n") == 1
