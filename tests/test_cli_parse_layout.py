"""The ``janus-net`` command contract for ``parse`` and ``layout`` (DESIGN §10).

Run as a user runs it: a subprocess, ``python -m janus_net`` and the installed
console script. Errors are one line on stderr, never a traceback, and exit 1; a refused
value given on the command line (InvalidAddress, InvalidPort) and argparse's usage
errors exit 2. Expected IP texts come from the stdlib `ipaddress`.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

JANUS_NET = [sys.executable, "-m", "janus_net"]


def janus_net(*args: str, command: list[str] = JANUS_NET) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)


def parse_json(text: str) -> dict[str, Any]:
    result = janus_net("parse", "--json", text)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


LOOPBACK_INDEX = socket.if_nametoindex("lo")

# (text, canonical, kind, host, port) for every form of DESIGN §4 that parses.
IP_FORMS = [
    (":8080", "0.0.0.0:8080", "Ip4Address", str(ipaddress.IPv4Address(0)), 8080),
    ("127.0.0.1:9000", "127.0.0.1:9000", "Ip4Address", "127.0.0.1", 9000),
    ("[::1]:443", "[::1]:443", "Ip6Address", str(ipaddress.IPv6Address("::1")), 443),
    ("[2001:DB8:0:0::1]:80", "[2001:db8::1]:80", "Ip6Address", str(ipaddress.IPv6Address("2001:DB8:0:0::1")), 80),
    ("[::ffff:1.2.3.4]:1", "[::ffff:1.2.3.4]:1", "Ip6Address", "::ffff:1.2.3.4", 1),
    ("[fe80::1%lo]:443", f"[fe80::1%{LOOPBACK_INDEX}]:443", "Ip6Address", f"fe80::1%{LOOPBACK_INDEX}", 443),
    ("[fe80::1%2]:443", "[fe80::1%2]:443", "Ip6Address", "fe80::1%2", 443),
]

# (text, canonical, path, abstract)
UNIX_FORMS = [
    ("unix:/tmp/janus.sock", "unix:/tmp/janus.sock", "/tmp/janus.sock", False),
    ("unix:relative.sock", "unix:relative.sock", "relative.sock", False),
    ("/tmp/janus.sock", "unix:/tmp/janus.sock", "/tmp/janus.sock", False),
    ("unix:@name", "unix:@name", "name", True),
]


@pytest.mark.parametrize(("text", "canonical", "kind", "host", "port"), IP_FORMS)
def test_parse_ip_forms(text: str, canonical: str, kind: str, host: str, port: int) -> None:
    result = janus_net("parse", text)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == canonical  # the canonical form comes first, alone on its line
    fields = dict(line.split(None, 1) for line in lines[1:])
    assert fields["kind"] == kind
    assert fields["host"] == host
    assert fields["port"] == str(port)

    data = parse_json(text)
    assert data["canonical"] == canonical
    assert (data["kind"], data["host"], data["port"]) == (kind, host, port)
    if kind == "Ip6Address":
        expected_scope = int(host.partition("%")[2] or 0)
        assert (data["flowinfo"], data["scope_id"]) == (0, expected_scope)


@pytest.mark.parametrize(("text", "canonical", "path", "abstract"), UNIX_FORMS)
def test_parse_unix_forms(text: str, canonical: str, path: str, abstract: bool) -> None:
    result = janus_net("parse", text)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == canonical
    fields = dict(line.split(None, 1) for line in lines[1:])
    assert (fields["kind"], fields["path"], fields["abstract"]) == ("UnixAddress", path, str(abstract))

    data = parse_json(text)
    assert data == {"canonical": canonical, "kind": "UnixAddress", "path": path, "abstract": abstract, "port": None}


# DESIGN §12: a value given on the command line that is refused is a usage error (2).
USAGE_MEMBERS = frozenset({"InvalidAddress", "InvalidPort"})


def assert_one_error_line(result: subprocess.CompletedProcess[str], member: str) -> None:
    assert result.returncode == (2 if member in USAGE_MEMBERS else 1), (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert result.stderr.startswith(f"janus-net: {member}: ")


@pytest.mark.parametrize(
    ("text", "member"),
    [
        (":8_080", "InvalidPort"),
        (": 80", "InvalidPort"),
        (":+80", "InvalidPort"),
        (":٨٠", "InvalidPort"),  # Arabic-Indic digits: int() would take them
        (":65536", "InvalidPort"),
        (":", "InvalidPort"),
        ("localhost:80", "InvalidAddress"),
        ("::1:80", "InvalidAddress"),
        ("[::1]443", "InvalidAddress"),
        ("unix:", "InvalidAddress"),
        ("fd://3x", "InvalidAddress"),
        ("1.2.3:80", "InvalidAddress"),
    ],
)
def test_parse_errors_are_one_line_and_exit_2(text: str, member: str) -> None:
    assert_one_error_line(janus_net("parse", text), member)


def test_parse_error_names_the_address() -> None:
    result = janus_net("parse", ":8_080")
    assert_one_error_line(result, "InvalidPort")
    assert "8_080" in result.stderr


def test_json_errors_keep_stdout_empty() -> None:
    assert_one_error_line(janus_net("parse", "--json", ":8_080"), "InvalidPort")
    assert_one_error_line(janus_net("layout", "--json", "[::1]:8_080"), "InvalidPort")


def test_layout_error_contract() -> None:
    assert_one_error_line(janus_net("layout", "localhost:80"), "InvalidAddress")
    # Host errors are reported before port errors, and the first bad address stops the command.
    assert_one_error_line(janus_net("layout", "[::1]:443", "nohost:x", ":8_080"), "InvalidAddress")


@pytest.mark.parametrize(
    "args",
    [
        [],  # no command
        ["frobnicate"],  # unknown command
        ["parse"],  # missing ADDRESS
        ["parse", ":80", ":81"],  # one ADDRESS only
        ["parse", "--bogus", ":80"],
        ["layout", "--bogus"],
    ],
    ids=[
        "no-command",
        "unknown-command",
        "parse-missing-address",
        "parse-two-addresses",
        "parse-bad-option",
        "layout-bad-option",
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = janus_net(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "usage: janus-net" in result.stderr
    assert "Traceback" not in result.stderr


def test_layout_without_addresses_shows_the_structs() -> None:
    result = janus_net("layout")
    assert result.returncode == 0, result.stderr
    for name in ("sockaddr", "sockaddr_in", "sockaddr_in6", "sockaddr_un", "sockaddr_storage"):
        assert f"struct {name}: size " in result.stdout
    data = json.loads(janus_net("layout", "--json").stdout)
    assert data["addresses"] == []


def test_console_script_is_the_same_command() -> None:
    script = Path(sys.executable).parent / "janus-net"
    assert script.exists(), "the package install provides the janus-net console script beside this python"
    ok = janus_net("parse", "--json", "[::1]:443", command=[str(script)])
    assert ok.returncode == 0 and json.loads(ok.stdout)["canonical"] == "[::1]:443"
    assert_one_error_line(janus_net("parse", ":8_080", command=[str(script)]), "InvalidPort")
    assert janus_net(command=[str(script)]).returncode == 2
