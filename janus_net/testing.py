"""The fault seam: make one wrapped syscall fail on purpose, on the production code path.

Every syscall janus_net makes goes through the one retry loop of the kernel door
(`janus_net._kernel.loop`), and every `Syscall` table has a ``fault`` slot the loop
looks at before calling libc. `fail` fills that slot for the length of a ``with``
block, so a test can see exactly what a user would see if the kernel had said
EMFILE, EINTR or EBADF at that step -- without a mock anywhere else: only the
libc call itself is replaced, everything around it (the EINTR retry, the
checkpoints, the errno table, the cleanup of a half-built socket) is the code
that runs in production::

    import errno
    from janus_net.testing import fail

    with fail("bind", errno.EADDRINUSE) as injected:
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen("127.0.0.1:0")
    assert injected.failed == 1

Names are the ``name`` of the tables in `janus_net._kernel.tables.TABLES`: socket,
setsockopt, fcntl, bind, listen, getsockname, accept (accept4 or accept), send
(send and sendto), receive (recv and recvfrom), close, and the internal steps
getsockopt, getpeername, shutdown, connect, fchmod, poll (every wait: poll on the
socket and the wake fds), eventfd (making a socket's or a context's wake fd). On an
owned socket each name still reaches its one syscall: the native call that takes
the in-flight count, makes the syscall and gives the count back stands in for the
plain libc function, with the same table. A name arms every
table that carries it: ``"bind"`` arms both the IP and the unix bind table, and
the two share one counter.

Rules (read these before writing a test with threads or nesting):

* **Counting.** Calls are counted from the moment the block is entered, in every
  thread of the process (the tables are process-wide, like the kernel they stand
  in for). Calls ``1..after`` reach libc, the next ``times`` calls fail, and later
  calls reach libc again. The counter is locked, so concurrent callers each get a
  distinct number and exactly ``times`` of them fail.
* **No nesting.** Arming a syscall that is already armed raises `RuntimeError`
  and arms nothing: two overlapping plans for one syscall would make the outcome
  depend on the order of ``with`` blocks, which a reader of the test cannot see.
  Different syscalls may be armed at the same time (nest one ``with`` per name).
* **Errno or exception.** ``error`` is an errno (a positive int): the call sets
  ``ffi.errno`` and returns -1, which the loop reads exactly as a kernel failure.
  Or it is an exception class or instance (``KeyboardInterrupt``): the call raises
  it instead, as a signal handler would if the signal arrived during that
  syscall -- the way to prove that setup cleans up after a KeyboardInterrupt at
  any step.
* **close.** An injected close failure does not reach the kernel either, so the
  descriptor really stays open: a test that injects into close must close it
  itself (``os.close``) -- which also proves the injection did not touch it.
* **Cost when unarmed.** Nothing: the loop reads one attribute that is None.

`hold` is the seam's other tool, for races: the call does reach the kernel, but
the caller is parked right after the kernel returned, before janus_net sees the
result, until the test lets it go. (On an owned socket the native call has given
its in-flight count back by then: no Python code ever holds one, see
`janus_net._kernel.cells`.) It follows the same rules (counted in every thread, no
nesting with `fail` or `hold` on the same name).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from janus_net._kernel import cell_io, tables
from janus_net._shim import ffi

__all__ = ["Hold", "Injection", "accept_gap", "fail", "hold", "syscall_names"]

#: What ``fail`` can inject: an errno, or an exception (class or instance) to raise.
Error = int | type[BaseException] | BaseException


def syscall_names() -> tuple[str, ...]:
    """Every name `fail` accepts, sorted."""
    return tuple(sorted({table.name for table in tables.TABLES}))


class Injection:
    """One armed fault: its plan and what it has done so far.

    Attributes:
        syscall: the name armed.
        error: the errno (int) or the exception injected.
        after: calls let through before the first failure.
        times: how many calls fail.
        calls: calls counted so far (passed through or failed).
        failed: calls failed so far (at most ``times``).
    """

    __slots__ = ("_lock", "after", "calls", "error", "failed", "syscall", "times")

    def __init__(self, syscall: str, error: Error, after: int, times: int) -> None:
        self.syscall = syscall
        self.error = error
        self.after = after
        self.times = times
        self.calls = 0
        self.failed = 0
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
        """Called by the retry loop in place of ``fn(*args)`` while armed."""
        with self._lock:
            self.calls += 1
            inject = self.after < self.calls <= self.after + self.times
            if inject:
                self.failed += 1
        if not inject:
            return fn(*args)
        if isinstance(self.error, int):
            # Thread-local, like the real errno: the loop reads it on this thread.
            ffi.errno = self.error
            return -1
        raise self.error

    def __repr__(self) -> str:
        return (
            f"<Injection {self.syscall} {self.error!r} after={self.after} times={self.times}"
            f" calls={self.calls} failed={self.failed}>"
        )


class Hold:
    """A held syscall: calls reach the kernel, then wait for `release` before returning.

    Attributes:
        syscall: the name held.
        after: calls let through unparked before the first held one.
        calls: calls that came back from the kernel so far (those let through included).
        returned: set once the first held call came back from the kernel.
    """

    __slots__ = ("_go", "_lock", "after", "calls", "returned", "syscall")

    def __init__(self, syscall: str, after: int = 0) -> None:
        self.syscall = syscall
        self.after = after
        self.calls = 0
        self.returned = threading.Event()
        self._go = threading.Event()
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
        """Called by the retry loop in place of ``fn(*args)`` while held."""
        rc = fn(*args)
        err = ffi.errno
        with self._lock:
            self.calls += 1
            passing = self.calls <= self.after
        if passing:
            ffi.errno = err
            return rc
        self.returned.set()
        self._go.wait()
        ffi.errno = err  # waiting may have run code that touched errno on this thread
        return rc

    def release(self) -> None:
        """Let every held call (and every later one) return."""
        self._go.set()

    def __repr__(self) -> str:
        return f"<Hold {self.syscall} calls={self.calls} released={self._go.is_set()}>"


_arming = threading.Lock()


@contextmanager
def _armed(syscall: str, fault: Injection | Hold) -> Iterator[None]:
    armed = [table for table in tables.TABLES if table.name == syscall]
    with _arming:
        if any(table.fault is not None for table in armed):
            raise RuntimeError(f"{syscall} is already armed; the fault seam does not nest one syscall")
        for table in armed:
            table.fault = fault
    try:
        yield
    finally:
        with _arming:
            for table in armed:
                table.fault = None


def _check_name(syscall: str) -> None:
    if not any(table.name == syscall for table in tables.TABLES):
        raise ValueError(f"unknown syscall {syscall!r}; valid names: {', '.join(syscall_names())}")


@contextmanager
def hold(syscall: str, *, after: int = 0) -> Iterator[Hold]:
    """Park every call of ``syscall`` after the kernel returns, until ``.release()``.

    Args:
        after: calls to let through unparked first (>= 0), to park a later step
            of an operation that makes the same syscall several times.

    Leaving the block releases any call still parked, so a failing test cannot
    leave a thread stuck.

    Raises:
        ValueError: an unknown name, or a negative ``after``.
        RuntimeError: the syscall is already armed.
    """
    _check_name(syscall)
    if type(after) is not int or after < 0:
        raise ValueError(f"after must be an int >= 0, not {after!r}")
    held = Hold(syscall, after)
    try:
        with _armed(syscall, held):
            yield held
    finally:
        held.release()


@contextmanager
def fail(syscall: str, error: Error, *, after: int = 0, times: int = 1) -> Iterator[Injection]:
    """Make ``syscall`` fail with ``error`` for ``times`` calls after the first ``after``.

    Args:
        syscall: a name from `syscall_names` (``"bind"``, ``"accept"``...).
        error: a positive errno (the call returns -1 with that errno, without
            reaching the kernel), or an exception class or instance to raise in
            place of the call (e.g. ``KeyboardInterrupt``).
        after: calls to let through first (>= 0).
        times: calls to fail (>= 1).

    Yields:
        The `Injection`, whose ``.calls`` and ``.failed`` tell what happened.

    Raises:
        ValueError: an unknown name or a bad ``error``/``after``/``times``.
        RuntimeError: the syscall is already armed (no nesting of one name).
    """
    _check_name(syscall)
    if isinstance(error, bool) or not (
        (isinstance(error, int) and error > 0)
        or isinstance(error, BaseException)
        or (isinstance(error, type) and issubclass(error, BaseException))
    ):
        raise ValueError(f"error must be a positive errno or an exception, not {error!r}")
    if type(after) is not int or after < 0:
        raise ValueError(f"after must be an int >= 0, not {after!r}")
    if type(times) is not int or times < 1:
        raise ValueError(f"times must be an int >= 1, not {times!r}")
    injection = Injection(syscall, error, after, times)
    with _armed(syscall, injection):
        yield injection


@contextmanager
def accept_gap(seconds: float) -> Iterator[None]:
    """Widen the window between the native accept's readiness check and accept(2).

    For the length of the block, every accept of a janus_net Server sleeps ``seconds``
    after poll said a connection is queued and before it calls accept(2), so a test
    can have another holder of the listener (a child process, a stdlib socket on a
    dup) take the connection there -- the race every prefork server has -- and see
    that the accept that then sleeps in the kernel is still woken by ``close()``.

    Raises:
        ValueError: ``seconds`` is not a number in 0..60.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 60:
        raise ValueError(f"seconds must be a number in 0..60, not {seconds!r}")
    cell_io.set_accept_gap(int(seconds * 1_000_000))
    try:
        yield
    finally:
        cell_io.set_accept_gap(0)
