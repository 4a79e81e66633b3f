"""``janus-net listen`` keeps DESIGN §10's promises against hostile surroundings.

Each test runs the real command in a child process: outputs that cannot be written
(closed stdout, a pipe whose reader has gone, a full disk for ``--audit``), paths
that are not UTF-8 or carry a newline, stop signals, a client that never reads, a
client that resets. The contract: one line ``janus-net: <Member>: ...`` on stderr and
exit 1 (never a traceback); after a stop signal the unix socket file is gone and the
command dies of that signal (a shell shows 128+signal).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import janus_net as jn
from janus_net._values.errors import MEMBERS

COMMAND = [sys.executable, "-m", "janus_net"]
MEMBER_NAMES = {m.__name__ for m in MEMBERS}


def run(*args: str | bytes, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*COMMAND, *args], capture_output=True, timeout=timeout, **kwargs)  # type: ignore[call-overload, no-any-return]


def one_error_line(stderr: bytes, member: str) -> str:
    """The single stderr line, checked to be ``janus-net: <member>: ...`` with no traceback."""
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text and "Exception ignored" not in text, text
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert text.startswith(f"janus-net: {member}: "), text
    assert member in MEMBER_NAMES
    return text


@contextmanager
def started(*args: str | bytes, cwd: Path | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``janus-net listen ARGS`` running; yields it and its first stdout line (decoded)."""
    proc = subprocess.Popen([*COMMAND, "listen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first, proc.stderr.read() if proc.stderr else ""
        yield proc, first
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def tcp_port(first_line: str) -> int:
    return int(first_line.rstrip("\n").rsplit(":", 1)[1])


# --- outputs that cannot be written


def test_audit_to_a_full_disk_is_one_line_and_nothing_stays_bound() -> None:
    done = run(
        "listen", "--accept", "0", "127.0.0.1:0", "--capability", "c", "--allow-port", "0", "--audit", "/dev/full"
    )
    assert done.returncode == 1
    assert "SystemResources: write /dev/full: [Errno 28]" in one_error_line(done.stderr, "SystemResources")
    assert done.stdout == b""  # the bind failed closed: no "listening on" line


def test_an_audit_path_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    done = run(
        "listen", "--accept", "0", "127.0.0.1:0", "--capability", "c", "--allow-port", "0", "--audit", str(tmp_path)
    )
    assert done.returncode == 1
    assert f"open {tmp_path}: [Errno 21]" in one_error_line(done.stderr, "Unexpected")
    assert done.stdout == b""


def test_closed_stdout_is_one_line_before_anything_is_bound(tmp_path: Path) -> None:
    path = tmp_path / "never.sock"
    for args in (["listen", f"unix:{path}", "--accept", "1"], ["parse", ":80"], ["layout"], ["demo"]):
        # `>&-`: the command starts with descriptor 1 closed.
        done = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *COMMAND, *args], stderr=subprocess.PIPE, timeout=60)
        assert done.returncode == 1, (args, done.stderr)
        assert "write stdout: [Errno 9]" in one_error_line(done.stderr, "Unexpected")
        assert not path.exists()


def test_a_stdout_pipe_whose_reader_has_gone() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [*COMMAND, "listen", "127.0.0.1:0", "--accept", "1"], stdout=write_end, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    # One line: no second complaint when the interpreter flushes stdout at exit.
    assert "write stdout: [Errno 32] Broken pipe" in one_error_line(done.stderr, "SocketUnconnected")


def test_the_reader_leaving_mid_run_ends_the_run_with_one_line() -> None:
    with started("127.0.0.1:0", "--accept", "2") as (proc, first):
        assert proc.stdout is not None
        proc.stdout.close()  # the reader goes away after the first line
        socket.create_connection(("127.0.0.1", tcp_port(first)), timeout=10).close()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    one_error_line(err, "SocketUnconnected")


# --- text for people: paths escaped, JSON exact


def test_a_path_that_is_not_utf8_is_escaped_in_text_and_exact_in_json(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/bad\xff\nname.sock"
    done = run("listen", "--accept", "0", b"unix:" + raw)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.decode("ascii").splitlines()  # one line: the newline cannot forge a second
    assert line == "listening on unix:" + os.fsdecode(raw).replace("\udcff", "\\xff").replace("\n", "\\n")
    assert not os.path.lexists(raw)  # removed at close

    done = run("listen", "--accept", "0", b"unix:" + raw, "--json")
    assert done.returncode == 0, done.stderr
    listening = json.loads(done.stdout)["listening"]
    assert os.fsencode(listening.removeprefix("unix:")) == raw  # the exact bytes


def test_a_crafted_path_cannot_forge_an_error_line(tmp_path: Path) -> None:
    crafted = f"unix:{tmp_path}/missing\njanus-net: forged\xff/x.sock"
    done = run("listen", "--accept", "0", crafted)
    assert done.returncode == 1
    text = one_error_line(done.stderr, "FileNotFound")
    assert "missing\\njanus-net: forged" in text


def test_parse_escapes_its_human_fields() -> None:
    done = run("parse", "unix:/tmp/a\x1b[2Jb\nc")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "unix:/tmp/a\\x1b[2Jb\\nc"
    assert "  path      /tmp/a\\x1b[2Jb\\nc" in lines
    exact = json.loads(run("parse", "--json", "unix:/tmp/a\x1b[2Jb\nc").stdout)
    assert exact["path"] == "/tmp/a\x1b[2Jb\nc"


# --- stop signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("waiting_in", ["accept", "read"])
def test_stop_signals_remove_the_socket_file_and_die_of_the_signal(
    tmp_path: Path, sig: signal.Signals, waiting_in: str
) -> None:
    path = tmp_path / "served.sock"
    with started(f"unix:{path}", "--accept", "1", "--echo") as (proc, first):
        assert first == f"listening on unix:{path}\n"
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        client = None
        if waiting_in == "read":
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(path))
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith(b"accepted ")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        if client is not None:
            client.close()
    assert proc.returncode == -sig
    assert err.decode() == f"janus-net: stopped by {sig.name}\n"
    assert not path.exists()


# --- the deadline bounds writes; a reset ends one connection


def test_timeout_bounds_an_echo_to_a_client_that_never_reads() -> None:
    with started("127.0.0.1:0", "--timeout", "2", "--accept", "1", "--echo") as (proc, first):
        client = socket.create_connection(("127.0.0.1", tcp_port(first)), timeout=10)
        client.setblocking(False)
        # Fill both directions: the server's echo blocks on our full receive buffer.
        give_up = time.monotonic() + 60  # liveness only: the command must end by itself, long before this
        try:
            while proc.poll() is None:
                assert time.monotonic() < give_up, "--timeout 2 did not end the run"
                try:
                    client.send(b"x" * 65536)
                except BlockingIOError:
                    time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server ended (by its deadline) with our bytes unread: RST
        finally:
            client.close()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    one_error_line(err, "Timeout")


def _reset(port: int) -> None:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(b"abc")
    assert client.recv(3) == b"abc"
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST


def test_one_reset_ends_that_connection_only() -> None:
    with started("127.0.0.1:0", "--accept", "2", "--echo") as (proc, first):
        port = tcp_port(first)
        _reset(port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"still here")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"still here"
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("accepted ")
    assert lines[1].endswith(" ended by ConnectionResetByPeer after 3 bytes echoed")
    assert lines[2].startswith("accepted ") and lines[3].startswith("echoed 10 bytes to ")


def test_a_reset_in_json() -> None:
    with started("127.0.0.1:0", "--accept", "1", "--echo", "--json") as (proc, first):
        _reset(tcp_port(json.loads(first)["listening"]))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    accepted, ended = (json.loads(line) for line in out.decode().splitlines())
    assert ended == {"ended": accepted["accepted"], "error": "ConnectionResetByPeer", "echoed": 3}


# --- options passed through to listen


def test_mode_sets_the_socket_file_permissions(tmp_path: Path) -> None:
    path = tmp_path / "private.sock"
    with started(f"unix:{path}", "--mode", "600", "--accept", "1") as (_proc, _):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    path2 = tmp_path / "shared.sock"
    with started(f"unix:{path2}", "--mode", "0o666", "--accept", "1") as (_proc, _):
        assert stat.S_IMODE(os.lstat(path2).st_mode) == 0o666


def test_unlink_stale_passes_through(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening, then closed: a stale file
    done = run("listen", "--accept", "0", f"unix:{path}")
    assert done.returncode == 1
    one_error_line(done.stderr, "AddressInUse")
    done = run("listen", "--accept", "0", f"unix:{path}", "--unlink-stale")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"listening on unix:{path}\n"
    assert not path.exists()


def test_backlog_passes_through() -> None:
    with started("127.0.0.1:0", "--backlog", "7", "--accept", "1") as (_proc, first):
        port = tcp_port(first)
        # ss shows a listener's backlog as its Send-Q.
        shown = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=30)
        assert shown.stdout.split()[2] == "7", shown.stdout


def test_options_that_cannot_apply_are_typed_errors() -> None:
    done = run("listen", "--accept", "0", "127.0.0.1:0", "--mode", "600")
    assert done.returncode == 1
    one_error_line(done.stderr, "OptionUnsupported")


@pytest.mark.parametrize(
    "args",
    [["--mode", "999"], ["--mode", "rw"], ["--mode", "17777"], ["--backlog", "-1"], ["--backlog", "x"]],
)
def test_bad_option_values_are_usage_errors(args: list[str]) -> None:
    done = run("listen", "--accept", "0", "unix:@janus-cli-usage", *args)
    assert done.returncode == 2
    assert done.stdout == b"" and b"Traceback" not in done.stderr


def test_help_tells_the_truth_about_port_zero() -> None:
    done = run("listen", "--help")
    text = " ".join(done.stdout.decode().split())
    assert "0 = any" not in text
    assert "0 allows an ephemeral port" in text
    for option in ("--backlog", "--mode", "--unlink-stale", "SIGTERM"):
        assert option in text


def test_port_zero_allows_only_port_zero() -> None:
    # What the help says: --allow-port 0 does not open every port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run("listen", "--accept", "0", f"127.0.0.1:{port}", "--capability", "c", "--allow-port", "0")
    assert done.returncode == 1
    one_error_line(done.stderr, "CapabilityDenied")
    assert jn.NetBind("c").allow_port(0).allows(jn.parse_address("127.0.0.1:0"))


_STOP_DURING_BIND = """
import os, signal, sys, threading
from janus_net import _cli as cli, testing

path = sys.argv[1]
main = threading.main_thread().ident
with testing.hold("listen") as parked:
    def stop_while_parked() -> None:
        parked.returned.wait(30)               # the socket exists, bound, listen() has returned
        signal.pthread_kill(main, signal.SIGTERM)  # lands on the parked main thread
        parked.release()
    threading.Thread(target=stop_while_parked, daemon=True).start()
    cli.main(["listen", f"unix:{path}", "--accept", "1"])
print("survived the stop signal")
"""


def test_a_stop_signal_during_the_bind_still_closes_and_removes(tmp_path: Path) -> None:
    path = tmp_path / "early.sock"
    done = subprocess.run(
        [sys.executable, "-c", _STOP_DURING_BIND, str(path)], capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == -signal.SIGTERM, (done.stdout, done.stderr)
    assert done.stdout == ""  # cli.main did not return: the process died of the signal
    assert done.stderr == "janus-net: stopped by SIGTERM\n"
    assert not os.path.lexists(path)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("unix:/run/app.sock", "unix:/run/app.sock"),
        ("unix:/tmp/é/ü.sock", "unix:/tmp/é/ü.sock"),  # printable non-ASCII stays readable
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x00\x1b[2J\x7f\x85", "\\x00\\x1b[2J\\x7f\\x85"),  # C0, DEL, C1 (NEL)
        ("x\u2028y\u2029z", "x\\u2028y\\u2029z"),  # line and paragraph separators
        ("evil\u202etxt.sock", "evil\\u202etxt.sock"),  # a bidi override
        ("back\\slash", "back\\slash"),  # left as is: escaping stays idempotent (janus_net._values.escaping)
        (os.fsdecode(b"bad\xff\xfe"), "bad\\xff\\xfe"),  # undecodable path bytes
    ],
)
def test_escape_keeps_one_line_and_shows_what_is_there(text: str, shown: str) -> None:
    from janus_net._values.escaping import for_people as _escape

    assert _escape(text) == shown
    assert "\n" not in _escape(text) and _escape(text).isprintable()


# The demo parks in its first listen (testing.hold) and gets SIGTERM there: every step
# closes what it made in a `with` block, so the stop may land anywhere.
_STOP_DURING_DEMO = """
import signal, threading
from janus_net import _cli as cli, testing

main = threading.main_thread().ident
with testing.hold("listen") as parked:
    def stop_while_parked() -> None:
        parked.returned.wait(30)
        signal.pthread_kill(main, signal.SIGTERM)
        parked.release()
    threading.Thread(target=stop_while_parked, daemon=True).start()
    cli.main(["demo"])
print("survived the stop signal")
"""


def test_a_stop_signal_ends_the_demo_by_that_signal() -> None:
    done = subprocess.run([sys.executable, "-c", _STOP_DURING_DEMO], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGTERM, (done.stdout, done.stderr)
    assert "survived" not in done.stdout
    assert "Traceback" not in done.stderr and "ResourceWarning" not in done.stderr, done.stderr
    assert done.stderr == "janus-net: stopped by SIGTERM\n"
