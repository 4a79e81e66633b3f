"""``janus-net listen`` and ``janus-net demo``, run as a user runs them: in a child process.

The stdlib ``socket`` module is the client; the first stdout line tells it the port.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import janus_net as jn
from tests.test_context import free_port, local_address

COMMAND = [sys.executable, "-m", "janus_net"]
AUDIT_KEYS = {"capability_id", "operation", "port", "result", "address", "time"}


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout)


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], jn.Address]]:
    """Start ``janus-net listen ...``; yield the process and the address of its first line."""
    proc = subprocess.Popen([*COMMAND, "listen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "--json" in args:
            text = json.loads(first)["listening"]
        else:
            assert first.startswith("listening on "), first
            text = first.removeprefix("listening on ").strip()
        yield proc, jn.parse_address(text)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_listen_without_accept_serves_until_a_stop_signal(tmp_path: Path, sig: signal.Signals) -> None:
    """No --accept: it accepts (and echoes) connection after connection; a stop signal ends it, file removed."""
    path = tmp_path / "echo.sock"
    with serving(f"unix:{path}", "--echo") as (proc, _):
        for n in range(5):
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(path))
                client.sendall(b"round %d" % n)
                client.shutdown(socket.SHUT_WR)
                assert client.recv(100) == b"round %d" % n
        assert proc.poll() is None, "it went on serving"
        proc.send_signal(sig)
        code, out, err = finish(proc)
    assert code == -sig and err == f"janus-net: stopped by {sig.name}\n"
    assert out.count("accepted ") == 5
    assert not path.exists()


def test_version_prints_the_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout == f"janus-net {jn.__version__}\n", done


def test_listen_prints_the_bound_address_and_exits() -> None:
    done = run("listen", "--accept", "0", "127.0.0.1:0")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    addr = jn.parse_address(line.removeprefix("listening on "))
    assert isinstance(addr, jn.Ip4Address) and addr.host == "127.0.0.1" and addr.port != 0
    assert done.stderr == ""


def test_listen_accepts_and_echoes_through_a_real_client() -> None:
    with serving("127.0.0.1:0", "--accept", "2", "--echo") as (proc, addr):
        assert isinstance(addr, jn.Ip4Address)
        peers = []
        for payload in (b"hello janus", b"x" * 200_000):
            with socket.create_connection((addr.host, addr.port), timeout=10) as client:
                peers.append(str(local_address(client)))
                client.sendall(payload)
                client.shutdown(socket.SHUT_WR)
                echoed = b""
                while chunk := client.recv(65536):
                    echoed += chunk
                assert echoed == payload
        code, out, err = finish(proc)
    assert code == 0, err
    assert out.splitlines() == [
        f"accepted {peers[0]}",
        f"echoed 11 bytes to {peers[0]}",
        f"accepted {peers[1]}",
        f"echoed 200000 bytes to {peers[1]}",
    ]
    # Nothing listens there any more. (Not a bind probe: other processes on this machine may
    # hold the same number as an ephemeral client port meanwhile.)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addr.host, addr.port), timeout=10).close()


def test_listen_on_a_unix_path_removes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "cli.sock"
    with serving(f"unix:{path}", "--accept", "1", "--echo") as (proc, addr):
        assert addr == jn.parse_address(f"unix:{path}")
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(10)
            client.connect(str(path))
            client.sendall(b"over unix")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(64) == b"over unix"
        code, _out, err = finish(proc)
    assert code == 0, err
    assert not path.exists()


def test_listen_json_lines() -> None:
    with (
        serving("127.0.0.1:0", "--accept", "1", "--json") as (proc, addr),
        socket.create_connection((addr.host, addr.port), timeout=10) as client,  # type: ignore[union-attr]
    ):
        peer = str(local_address(client))
        code, out, err = finish(proc)
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [{"accepted": peer}]


def test_json_first_line_is_an_object() -> None:
    done = run("listen", "--accept", "0", "127.0.0.1:0", "--json")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    listening = json.loads(line)["listening"]
    assert jn.parse_address(listening).port != 0  # type: ignore[union-attr]


def test_capability_with_audit_to_stdout() -> None:
    port = free_port()
    done = run(
        "listen", "--accept", "0", f"127.0.0.1:{port}", "--capability", "cli", "--allow-port", str(port), "--audit", "-"
    )
    assert done.returncode == 0, done.stderr
    first, *records = done.stdout.splitlines()
    assert first == f"listening on 127.0.0.1:{port}"  # first, although the check record is written before bind
    parsed = [json.loads(line) for line in records]
    assert all(set(r) == AUDIT_KEYS for r in parsed)
    assert [(r["capability_id"], r["operation"], r["port"], r["result"], r["address"]) for r in parsed] == [
        ("cli", "check_bind_address", port, "allowed", f"127.0.0.1:{port}"),
        ("cli", "bind_socket", port, "allowed", f"127.0.0.1:{port}"),
    ]


def test_capability_port_zero_records_the_real_port(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text('{"earlier": "line"}\n')
    done = run(
        "listen", "--accept", "0", "127.0.0.1:0", "--capability", "c0", "--allow-port", "0", "--audit", str(audit)
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    port = jn.parse_address(line.removeprefix("listening on ")).port  # type: ignore[union-attr]
    earlier, check, bound = (json.loads(x) for x in audit.read_text().splitlines())
    assert earlier == {"earlier": "line"}  # appended, not overwritten
    assert (check["port"], bound["port"], bound["address"]) == (0, port, f"127.0.0.1:{port}")


def test_denied_bind_exits_1_with_one_error_line_and_the_audit_record() -> None:
    done = run("listen", "--accept", "0", "127.0.0.1:9", "--capability", "web", "--audit", "-")
    assert done.returncode == 1
    [error] = done.stderr.splitlines()
    assert error.startswith("janus-net: CapabilityDenied: ")
    assert "'web'" in error and "9" in error
    [record] = (json.loads(line) for line in done.stdout.splitlines())
    assert set(record) == AUDIT_KEYS
    assert (record["operation"], record["port"], record["result"]) == ("check_bind_address", 9, "denied")
    assert "Traceback" not in done.stderr


def test_denied_bind_with_a_default_port_list() -> None:
    # The defaults (8080, 3000, 8000) do not include 0.
    done = run("listen", "--accept", "0", "127.0.0.1:0", "--capability", "web")
    assert done.returncode == 1
    assert done.stderr.startswith("janus-net: CapabilityDenied: ")


def test_timeout_bounds_the_accepts() -> None:
    done = run("listen", "127.0.0.1:0", "--timeout", "0.3", "--accept", "1")
    assert done.returncode == 1
    assert done.stdout.startswith("listening on 127.0.0.1:")
    assert done.stderr.splitlines() == ["janus-net: Timeout: context deadline exceeded"]


def test_timeout_and_capability_together() -> None:
    args = ("127.0.0.1:0", "--timeout", "20", "--capability", "both", "--allow-port", "0", "--accept", "1")
    with serving(*args) as (proc, addr), socket.create_connection((addr.host, addr.port), timeout=10):  # type: ignore[union-attr]
        code, _out, err = finish(proc)
    assert code == 0, err


def test_socket_errors_are_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("listen", "--accept", "0", f"127.0.0.1:{port}")
    assert done.returncode == 1
    [error] = done.stderr.splitlines()
    assert error.startswith("janus-net: AddressInUse: bind 127.0.0.1:")
    done = run("listen", "--accept", "0", "127.0.0.1:99999")
    assert done.returncode == 2 and done.stderr.startswith("janus-net: InvalidPort: ")
    done = run("listen", "--accept", "0", "127.0.0.1:8_080")  # a refused value typed by the user: a usage error
    assert done.returncode == 2 and done.stderr.startswith("janus-net: InvalidPort: ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["127.0.0.1:0", "--allow-port", "80"],
        ["127.0.0.1:0", "--audit", "-"],
        ["127.0.0.1:0", "--capability", "c", "--allow-port", "70000"],
        ["127.0.0.1:0", "--capability", "c", "--allow-port", "-1"],
        ["127.0.0.1:0", "--capability", ""],
        ["127.0.0.1:0", "--timeout", "-1"],
        ["127.0.0.1:0", "--timeout", "soon"],
        ["127.0.0.1:0", "--accept", "-2"],
        ["127.0.0.1:0", "--echo"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = run("listen", "--accept", "0", *args)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_an_unwritable_audit_file_is_one_line(tmp_path: Path) -> None:
    done = run(
        "listen", "--accept", "0", "127.0.0.1:0", "--capability", "c", "--allow-port", "0", "--audit", str(tmp_path)
    )
    assert done.returncode == 1
    [error] = done.stderr.splitlines()
    assert error.startswith(f"janus-net: Unexpected: open {tmp_path}: [Errno 21] Is a directory")
    assert done.stdout == ""


def test_demo_exits_0_and_shows_the_three_profiles() -> None:
    done = run("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in (":core", ":service", ":sovereign", "sin_port", "reason='deadline'", "reason='cancelled'",
                   '"operation": "check_bind_address"', '"operation": "bind_socket"', '"result": "denied"',
                   "janus-net: CapabilityDenied: 127.0.0.1:9"):  # fmt: skip
        assert needle in out, needle
    records = [json.loads(line.split("audit ", 1)[1]) for line in out.splitlines() if line.startswith("  audit {")]
    assert [(r["operation"], r["result"]) for r in records] == [
        ("check_bind_address", "allowed"),
        ("bind_socket", "allowed"),
        ("check_bind_address", "denied"),
    ]
    assert records[0]["port"] == 0 and records[1]["port"] not in (0, None)
    # The new capabilities: a listener handed to a successor that then accepts on it, and
    # 54 datagrams in one segmented send, received whole.
    assert "the successor accepts on the same port: read b'still here'" in out
    assert "-> 54 datagrams in one call" in out
    assert "54 datagrams from 127.0.0.1:" in out and "every byte in order: True" in out
    # Names: the hosts file's two addresses in RFC 6724 order, a lookup of a silent server
    # ended by a cancel with no thread of its own and its socket closed, and Happy Eyeballs
    # past a blackholed [::1].
    assert "-> [::1]:8080, 127.0.0.1:8080 from 'files'" in out
    assert "Timeout: context cancelled" in out and "threads while it waited: 2" in out
    assert "the server was asked A and AAAA from 127.0.0.1:" in out and "its port binds again" in out
    # [::1] comes first (RFC 6724) and is blackholed: the connection is 127.0.0.1's.
    assert re.search(r"drops the SYN\n +\(its accept queue is full\) -> connected to 127\.0\.0\.1:\d+ after", out), out


def test_make_demo_runs_the_demo_command() -> None:
    # -n: show the recipe without running it (the demo itself is run above), so this
    # test can never set up or rebuild the venv.
    root = Path(__file__).resolve().parent.parent
    # --no-print-directory: under `make test` this make is nested and would print
    # "Entering/Leaving directory" lines around the recipe.
    command = ["make", "--no-print-directory", "-n", "demo"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ".venv/bin/janus-net demo"
