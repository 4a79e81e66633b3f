"""A load client for the zero-downtime tests: short connections in a loop, every reply checked."""

from __future__ import annotations

import itertools
import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Self


class Clients:
    """Client threads that run until `stop`, tallying outcomes in ``counts`` (errors kept in ``errors``).

    The shared frame of the load clients: a subclass names each thread's loop and its
    arguments; every loop checks ``_stop`` and reports through `_count`.
    """

    join_timeout = 30.0

    def __init__(self, loops: list[tuple[Callable[..., None], tuple[object, ...]]]) -> None:
        self.counts: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=run, args=args, daemon=True) for run, args in loops]

    def start(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Counter[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.join_timeout)
        return self.counts

    def _count(self, what: str, error: BaseException | None = None) -> None:
        with self._lock:
            self.counts[what] += 1
            if error is not None:
                self.errors.append(error)


class Hammer(Clients):
    """Threads that connect, send one line, check the echo and close, until `stop`.

    ``counts`` tallies ``ok``, ``refused``, ``reset``, ``eof`` (closed before the
    reply), ``wrong`` (a reply that is not the line sent) and ``other`` (with the
    exceptions kept in ``errors``).
    """

    def __init__(self, targets: list[tuple[int, object]], threads_per_target: int = 2) -> None:
        self.targets = targets
        super().__init__(
            [(self._run, (family, address, n)) for n in range(threads_per_target) for family, address in targets]
        )

    def _run(self, family: int, address: object, n: int) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            line = f"{family}-{n}-{i}-{'x' * (i % 50)}\n".encode()
            try:
                with socket.socket(family, socket.SOCK_STREAM) as sock:
                    sock.settimeout(20)
                    sock.connect(address)
                    sock.sendall(line)
                    reply = b""
                    while not reply.endswith(b"\n"):
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        reply += chunk
            except ConnectionRefusedError as e:
                self._count("refused", e)
                continue
            except (ConnectionResetError, BrokenPipeError) as e:
                self._count("reset", e)
                continue
            except OSError as e:
                self._count("other", e)
                continue
            if not reply:
                self._count("eof")
            elif reply != line:
                self._count("wrong")
            else:
                self._count("ok")
