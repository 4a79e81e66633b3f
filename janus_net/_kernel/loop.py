"""The one retry loop every wrapped syscall goes through, and one errno table per syscall.

Zig writes ``while (true) { checkCancel(); switch (errno(rc)) { ... } }`` once per
syscall. Here the loop is written once, in `retry`, and each syscall contributes
only data: a `Syscall` with its errno table. The loop:

1. calls the libc function (or, when a test armed the fault seam, the fault);
2. on success returns the result;
3. on EINTR runs the checkpoint (a context's ``check``) and calls again: a signal
   handler that raises, such as SIGINT's KeyboardInterrupt, runs here too, because
   the interpreter delivers pending signals at the loop's backward jump (PEP 475,
   https://peps.python.org/pep-0475/, is why os.* cannot do this: it retries inside C);
4. otherwise looks the errno up in the syscall's table: a mapped errno becomes its
   `SocketError` member; a bug errno becomes `ErrnoBug` (debug) or `Unexpected`
   (release); anything else becomes `Unexpected`.

The tables are looked at only on failure, so the success path costs one call and
one comparison. A table is data, one row per errno (a bug row carries the reason only
a bug can produce it), and it sits right above the wrapper that uses it, in the door's
module of its area (`sockets`, `cell_io`, `files`...); `janus_net._kernel.tables`
gathers them all, for the fault seam and the tests.
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from janus_net._shim import ffi
from janus_net._values import errors
from janus_net._values.errors import ErrnoBug, SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Protocol


Checkpoint = Callable[[], None]

#: Returned instead of raising when a ``nonblocking=True`` call would block.
WOULD_BLOCK = -1
_WOULD_BLOCK_ERRNOS = frozenset({E.EAGAIN, E.EWOULDBLOCK})


if TYPE_CHECKING:

    class Fault(Protocol):
        """What the fault seam (`janus_net.testing.fail`) arms on a syscall."""

        def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
            """Either call ``fn(*args)`` or set ``ffi.errno`` and return -1."""


class Syscall:
    """One syscall's errno table: which errno means which `SocketError` member.

    Attributes:
        name: the syscall's name as users see it in errors and in the fault seam.
        label: how the docs name the table (``"bind (unix)"``); ``name`` unless two share it.
        errors: errno -> member, for causes a caller can handle.
        bugs: errno -> why only a bug of janus_net can produce it. A row belongs here
            only if no input of a caller, no peer on the network and no other process
            can cause it; the reason says why (the docs print it, tests read it).
        retry_eintr: False only for close, whose fd is gone after EINTR on Linux.
        fault: set only while a test's fault seam is armed.
    """

    __slots__ = ("bugs", "errors", "fault", "label", "name", "retry_eintr")

    def __init__(
        self,
        name: str,
        errors: Mapping[int, type[SocketError]],
        bugs: Mapping[int, str] | Iterable[int] = MappingProxyType({}),
        *,
        retry_eintr: bool = True,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.label = name if label is None else label
        self.errors: Mapping[int, type[SocketError]] = MappingProxyType(dict(errors))
        # A bare errno (a table written before reasons were data) gets no reason, and
        # tests/test_errno_doc.py names the row until it has one.
        rows = bugs.items() if isinstance(bugs, Mapping) else ((err, "") for err in bugs)
        self.bugs: Mapping[int, str] = MappingProxyType(dict(rows))
        self.retry_eintr = retry_eintr
        self.fault: Fault | None = None

    def error(self, err: int, address: object = None) -> BaseException:
        """The exception for errno ``err`` from this syscall."""
        where = None if address is None else str(address)
        member = self.errors.get(err)
        if member is not None:
            return member(err, syscall=self.name, address=where)
        if err in self.bugs and errors.DEBUG:
            return ErrnoBug(err, self.name)
        return SocketError.Unexpected(err, syscall=self.name, address=where)

    def __repr__(self) -> str:
        return f"Syscall({self.label!r})"


def retry(
    syscall: Syscall,
    fn: Callable[..., int],
    args: tuple[Any, ...],
    checkpoint: Checkpoint | None = None,
    address: object = None,
    nonblocking: bool = False,
) -> int:
    """Call ``fn(*args)`` until it does not fail with EINTR; map any other failure.

    With ``nonblocking=True``, EAGAIN/EWOULDBLOCK return `WOULD_BLOCK` instead of
    raising, for callers that wait with poll and try again.
    """
    fault = syscall.fault
    rc = fn(*args) if fault is None else fault.call(fn, args)
    if rc >= 0:
        return rc
    return after_failure(syscall, fn, args, checkpoint, address, nonblocking)


def after_failure(
    syscall: Syscall,
    fn: Callable[..., int],
    args: tuple[Any, ...],
    checkpoint: Checkpoint | None = None,
    address: object = None,
    nonblocking: bool = False,
) -> int:
    """The loop of `retry`, entered after ``fn(*args)`` has just failed (errno is its errno).

    A hot path makes its first attempt inline, where the fault seam is unarmed, and
    comes here only when that attempt failed: the attempt is never made twice (a
    second sendto would consume the next pending error, or send twice).
    """
    while True:
        err = ffi.errno
        if err == E.EINTR and syscall.retry_eintr:
            if checkpoint is not None:
                checkpoint()
            fault = syscall.fault
            rc = fn(*args) if fault is None else fault.call(fn, args)
            if rc >= 0:
                return rc
            continue
        if nonblocking and err in _WOULD_BLOCK_ERRNOS:
            return WOULD_BLOCK
        raise syscall.error(err, address)


# --- Reasons shared by the tables of many calls (each table sits beside its wrapper, in
# the module of its area; `janus_net._kernel.tables` lists them all).

OUR_FD = "the descriptor is one janus_net owns and keeps open while the call runs; only a double close frees it"
OUR_SOCKET = "the descriptor is a socket janus_net made, or one it checked is a socket (fstat) before adopting it"
OUR_POINTER = "every pointer passed is memory janus_net allocated for this call"

# The adoption door's probes (janus_net._profiles.adoption) ask about a descriptor janus_net did not
# make. A number a caller names may be closed, or closed by another of its threads
# meanwhile; a descriptor a peer sends may be an O_PATH handle of a socket file (fstat
# says "socket", every socket call says EBADF), a pipe, or a socket of a family without
# getsockname (AF_XDP: EOPNOTSUPP). For those probes such errnos say what the descriptor
# is, so their ``ADOPT_*`` tables map them to this member, which the door words and, for a
# received descriptor, turns into ProtocolFailure; the plain tables keep them as bugs
# for janus_net's own fds.
NOT_ADOPTABLE = SocketError.InvalidAddress
