"""Independent peers for the tests: stdlib clients, and fresh interpreters for process-wide state."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import janus_net as jn
from janus_net._process.transfer import HEADER, LAST, MAGIC, VERSION


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


def nonblocking(fd: int) -> bool:
    """The open file description of ``fd`` is O_NONBLOCK (shared by every holder of it)."""
    return not os.get_blocking(fd)


@contextmanager
def sigint_raises() -> Iterator[None]:
    """SIGINT -> KeyboardInterrupt for the block, whatever handler was installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wchan(tid: int, pid: int | str = "self") -> str:
    """Where thread ``tid`` of process ``pid`` (this one by default) sleeps in the kernel.

    Its wchan; "" once it is gone.

    "poll" in it: a wait in poll (janus_net's waits); "accept": inside accept(2) itself.
    """
    try:
        with open(f"/proc/{pid}/task/{tid}/wchan") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read (ESRCH)
        return ""


def in_poll(tid: int) -> bool:
    """The thread sleeps in poll (a janus_net wait)."""
    return "poll" in wchan(tid)


def wait_until_blocked(
    thread: threading.Thread, where: Callable[[int], bool] = in_poll, outcome: object = None, timeout: float = 10
) -> int:
    """Return once ``where(tid)`` says ``thread`` sleeps in the kernel (by default: in poll); its tid.

    Fails if the thread ends first (``outcome`` is shown then) or never gets there within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while thread.native_id is None or not where(thread.native_id):
        assert thread.is_alive(), f"the call returned before blocking: {outcome}"
        assert time.monotonic() < deadline, f"the call never blocked: {outcome}"
        time.sleep(0.005)  # polls the thread's wchan; nothing is assumed from the time
    return thread.native_id


def when_blocked(action: Callable[[], object], tid: int | None = None, timeout: float = 10) -> threading.Thread:
    """Run ``action`` on another thread as soon as thread ``tid`` (the caller by default) waits in poll.

    For "cancel / close / send while the call waits": the call then really waits when it
    happens. Should the thread never wait within ``timeout``, the action runs anyway (nothing
    hangs; the caller's own assertions on what happened then fail).
    """
    waiter = threading.get_native_id() if tid is None else tid

    def run() -> None:
        deadline = time.monotonic() + timeout
        while not in_poll(waiter) and time.monotonic() < deadline:
            time.sleep(0.001)  # polls the thread's wchan
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until_process_blocked(pid: int, where: tuple[str, ...] = ("poll",), timeout: float = 10) -> None:
    """Return once the main thread of process ``pid`` sleeps in the kernel at one of ``where`` (wchan fragments)."""
    deadline = time.monotonic() + timeout
    while not any(w in wchan(pid, pid) for w in where):
        assert os.path.exists(f"/proc/{pid}"), "the process ended"
        assert time.monotonic() < deadline, f"process {pid} never slept in {where}: {wchan(pid, pid)!r}"
        time.sleep(0.005)  # polls its wchan


# --- Peers for descriptor passing: a unix stream pair, and the hostile sender's tools


@contextmanager
def channel(tag: str) -> Iterator[tuple[jn.Stream, jn.Stream]]:
    """A connected unix stream pair made by janus_net: (client side, accepted side)."""
    name = f"unix:@jn-{tag}-{os.getpid()}-{time.monotonic_ns()}"
    with jn.listen(name) as server:
        client = jn.connect(name)
        accepted = server.accept()
    try:
        yield client, accepted
    finally:
        client.close()
        accepted.close()


def raw(stream: jn.Stream) -> socket.socket:
    """A stdlib socket on a dup of ``stream``: the hostile sender's tool."""
    return socket.socket(fileno=os.dup(stream.fileno()))


def chunk(entries: list[tuple[int, str]], total: int, last: bool = True, count: int | None = None) -> bytes:
    """One names frame of the transfer protocol, built by hand (so a test can make it wrong)."""
    body = b"".join(struct.pack("!BB", kind, len(name)) + name.encode() for kind, name in entries)
    n = len(entries) if count is None else count
    return HEADER.pack(MAGIC, VERSION, LAST if last else 0, n, total, len(body)) + body


def rights(*fds: int) -> list[tuple[int, int, bytes]]:
    """The ancillary data that passes ``fds`` (SCM_RIGHTS), for socket.sendmsg."""
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]


def offer_in_thread(
    address: str, sockets: dict[str, jn.Server | jn.Socket | jn.Stream], ctx: jn.Context | None = None
) -> tuple[threading.Thread, list[BaseException]]:
    """``jn.handoff.offer`` running in a thread; the list gets what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            jn.handoff.offer(address, sockets, ctx=ctx)
        except BaseException as e:  # reported to the test
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors
