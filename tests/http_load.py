"""A fresh-connection HTTP load for the reload tests and the reload bench: one GET per connection.

Each request connects anew to a loopback address, sends ``GET /`` with
``Connection: close``, reads to EOF and sorts the outcome: ``ok`` (a 2xx reply),
``refused`` (ECONNREFUSED), ``reset`` (ECONNRESET or EPIPE), ``eof`` (closed before
a complete reply), ``non_2xx``, ``other`` (any other OSError, kept in ``errors``).
The replies' bodies name the serving process (``pid N`` or ``worker W of pid N``);
``served_by`` counts them by N.
"""

from __future__ import annotations

import re
import socket
from collections import Counter

from hammer import Clients

REQUEST = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"  # 1.0: a plain body (no chunks), then EOF
SERVER_PID = re.compile(rb"(?:^|\s)pid (\d+)\n$")


def get(address: tuple[str, int], timeout: float = 30) -> tuple[str, int | None]:
    """One request: (outcome, the pid named by a 2xx reply or None)."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(REQUEST)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    except ConnectionRefusedError:
        return "refused", None
    except (ConnectionResetError, BrokenPipeError):
        return "reset", None
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or not body:
        return "eof", None
    if head.split(b" ", 2)[1][:1] != b"2":
        return "non_2xx", None
    found = SERVER_PID.search(body)
    return ("ok", int(found.group(1))) if found else ("non_2xx", None)


class HttpLoad(Clients):
    """``threads`` clients requesting ``address`` in a loop until `stop` or ``limit`` requests in all."""

    join_timeout = 60.0

    def __init__(self, address: tuple[str, int], threads: int = 2, limit: int = 1_000_000) -> None:
        self.address = address
        self.served_by: Counter[int] = Counter()
        self._limit = limit
        super().__init__([(self._run, ()) for _ in range(threads)])

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def _run(self) -> None:
        while not self._stop.is_set() and self.total() < self._limit:
            try:
                outcome, pid = get(self.address)
            except OSError as e:
                self._count("other", e)
                continue
            with self._lock:
                if pid is not None:
                    self.served_by[pid] += 1
            self._count(outcome)
