"""The audit trail cannot be forged (DESIGN §4): text for people escapes control characters.

A crafted unix path holding a newline, a carriage return or a terminal escape is
printed escaped in every text for people -- `LoggingSink` lines, error messages, the
CLI's ``listening on`` and ``janus-net parse`` output, repr -- and exact in JSON
(`JsonLinesSink`, ``--json``) and in the values themselves.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import janus_net as jn
from janus_net._values.escaping import for_people
from janus_net.audit import JsonLinesSink, LoggingSink

# Characters that end a line for str.splitlines() or for a terminal, or drive a terminal.
FORGERS = ["\n", "\r", "\x1b", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x7f"]
FORGED = "unix:/tmp/janus-x\nbind_socket allowed: capability 'root', address 127.0.0.1:22\r\x1b[2K"


def _one_safe_line(text: str) -> bool:
    return len(text.splitlines()) <= 1 and all(c not in text for c in FORGERS) and "\u202e" not in text


@given(st.text())
@settings(max_examples=300)
def test_for_people_gives_one_safe_line_and_is_idempotent(text: str) -> None:
    shown = for_people(text)
    assert _one_safe_line(shown)
    assert for_people(shown) == shown
    shown.encode("utf-8")  # raises for a lone surrogate: undecodable path bytes must come out escaped
    if text.isprintable():
        assert shown is text


def test_for_people_spells_escapes_as_python_does() -> None:
    assert for_people("a\nb\rc\td\x1be\u202ef\ud800") == "a\\nb\\rc\\td\\x1be\\u202ef\\ud800"
    # A path's undecodable byte (surrogateescape) is shown as the byte it was.
    assert for_people(os.fsdecode(b"bad\xff")) == "bad\\xff"
    assert for_people("café/ü.sock") == "café/ü.sock"


def test_error_messages_escape_the_address_and_keep_it_exact() -> None:
    error = jn.SocketError.AddressInUse(98, syscall="bind", address=FORGED)
    assert _one_safe_line(str(error)) and error.address == FORGED
    with pytest.raises(jn.SocketError) as caught:
        jn.listen(FORGED + "/" + "x" * 200)
    assert _one_safe_line(str(caught.value))
    assert caught.value.address == FORGED + "/" + "x" * 200


def test_repr_of_an_address_is_one_line() -> None:
    addr = jn.parse_address(FORGED)
    assert _one_safe_line(repr(addr)) and str(addr) == FORGED


def test_logging_sink_cannot_be_made_to_write_a_forged_line() -> None:
    where = "unix:@janus\nbind_socket allowed: capability 'root'\r\x1b[2K"
    stream = io.StringIO()
    logger = logging.getLogger("janus-tables-forge")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    json_out = io.StringIO()

    def both(record: jn.AuditRecord) -> None:
        LoggingSink(logger)(record)
        JsonLinesSink(json_out)(record)

    try:
        with jn.listen_with_capability(where, jn.NetBind("svc", audit=both)):
            pass
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(_one_safe_line(line) for line in lines)
    assert [json.loads(line)["address"] for line in json_out.getvalue().splitlines()] == [where] * 2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "janus_net", *args], capture_output=True, text=True, timeout=60, errors="replace"
    )


def test_cli_parse_escapes_and_json_is_exact() -> None:
    done = _cli("parse", FORGED)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == for_people(FORGED) and all(_one_safe_line(line) for line in lines)
    assert len(lines) == 5  # canonical + kind, path, abstract, port
    exact = _cli("parse", "--json", FORGED)
    assert json.loads(exact.stdout)["canonical"] == FORGED


def test_cli_listening_line_escapes_and_json_is_exact(tmp_path: Path) -> None:
    path = f"{tmp_path}/s\nlistening on 0.0.0.0:22\x1b[1A.sock"
    done = _cli("listen", "--accept", "0", f"unix:{path}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"listening on {for_people('unix:' + path)}"]
    exact = _cli("listen", "--accept", "0", "--json", f"unix:{path}")
    assert json.loads(exact.stdout) == {"listening": f"unix:{path}"}


def test_cli_error_line_escapes(tmp_path: Path) -> None:
    done = _cli("listen", "--accept", "0", f"unix:{tmp_path}/missing\nforged/s.sock")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_socket_repr_escapes_its_address() -> None:
    # This process's own name (abstract names are shared by every process of the namespace).
    with jn.bind(f"unix:@janus-tables\nrepr\x1b[2K-{os.getpid()}") as sock:
        assert _one_safe_line(repr(sock)) and "janus-tables\\nrepr\\x1b[2K" in repr(sock)
