"""Independent peers for the tests: stdlib clients, and fresh interpreters for process-wide state."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import janus_net as jn


def dial(server: jn.Server) -> socket.socket:
    """A stdlib client connected to ``server`` (the independent peer)."""
    address = server.address
    assert isinstance(address, (jn.Ip4Address, jn.Ip6Address))
    return socket.create_connection((address.host, address.port))


@contextmanager
def stdlib_view(owner: jn.Server | jn.Socket | jn.Stream) -> Iterator[socket.socket]:
    """A stdlib socket on a dup of ``owner``'s fd: the independent oracle for getsockopt and friends."""
    dup = socket.socket(fileno=os.dup(owner.fileno()))
    try:
        yield dup
    finally:
        dup.close()


def run_child(source: str, timeout: float = 120) -> dict[str, object]:
    """Run ``source`` in a fresh interpreter; it prints one JSON object as its last line.

    For what changes the whole process (rlimits, signal handlers, audit hooks).
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def wchan(tid: int) -> str:
    """Where thread ``tid`` of this process sleeps in the kernel (its wchan; "" once it is gone).

    "poll" in it: a wait in poll (janus_net's waits); "accept": inside accept(2) itself.
    """
    try:
        with open(f"/proc/self/task/{tid}/wchan") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def in_poll(tid: int) -> bool:
    """The thread sleeps in poll (a janus_net wait)."""
    return "poll" in wchan(tid)
