"""The native step sequence: listen/bind's raw calls in one C call, driven by the one loop.

jn_steps (native/jn_steps.py; DESIGN §2 "Native fast paths") makes the raw calls of
listen/bind -- socket, setsockopt..., bind, listen, getsockname -- in one C call and
stops at the first failure, EINTR included, with the failed step in ``io.at``. The
rules are the loop's (janus_net._kernel.loop): `retry` runs it (a negative start tells
C to resume at ``io.at``, so the loop's plain "call again" after EINTR resumes at the
failed step, after the checkpoint), and any other errno is mapped through the table of
the step that failed. While a test has armed the fault seam on any of the steps'
tables, every step runs alone through `retry` with its own table instead, so
`testing.fail`/`hold` see the same names, the same counts and the same rows as on the
plain path. (Every table a step can have is checked, not just this plan's: six
reads, and stepping singly gives the same results.)
"""

from __future__ import annotations

from janus_net._kernel.loop import Checkpoint, Syscall, after_failure, retry
from janus_net._kernel.socket_options import SETSOCKOPT
from janus_net._kernel.sockets import BIND_IP, BIND_UNIX, GETSOCKNAME, LISTEN, SOCKET
from janus_net._shim import lib

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


class _StepFailed(Exception):
    """A step failed with ``err``: the caller maps it with that step's table."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


class _Sequence(Syscall):
    """The loop's view of a native step sequence: no table of its own, no fault seam.

    Not in `TABLES`: the seam arms the steps' own tables, never this one.
    """

    __slots__ = ()

    def error(self, err: int, address: object = None) -> BaseException:
        return _StepFailed(err)


_SEQUENCE = _Sequence("steps", {})
_JN_STEPS = lib.jn_steps

# The plain path names the address in bind's and listen's errors only (its socket,
# setsockopt and getsockname wrappers take none); the steps' errors say the same.
_NAMES_ADDRESS = frozenset({BIND_IP, BIND_UNIX, LISTEN})
# Every table a step can have, whichever plan runs: what `steps_armed` looks at.
_STEP_TABLES = (SOCKET, SETSOCKOPT, BIND_IP, BIND_UNIX, LISTEN, GETSOCKNAME)


def steps(
    tables: tuple[Syscall | None, ...],
    plan: Any,
    io: Any,
    sa: Any,
    salen: int,
    start: int,
    stop: int,
    checkpoint: Checkpoint | None = None,
    address: object = None,
) -> None:
    """Run native steps ``start .. stop-1`` of ``plan`` (see native/jn_steps.py).

    Args:
        tables: the errno table of each step by index (None: a step this plan skips).
        plan, io: the ``struct jn_steps_plan *`` and ``struct jn_steps_io *``; the fd
            is in the cell ``io.desc`` from the moment socket() returned.
        sa, salen: the sockaddr to bind.
        checkpoint: run on every EINTR before the failed step is tried again.

    Raises:
        SocketError: the failed step's member (or ErrnoBug), from that step's table.
    """
    if not steps_armed():
        if _SEQUENCE.fault is None:
            # The usual case: one native call from ``start``, and the loop only after a
            # failure (C left ``io.at`` at the failed step, where -1 resumes).
            if _JN_STEPS(plan, io, sa, salen, start, stop) >= 0:
                return
            loop = after_failure  # the attempt just made failed; later passes make their own
        else:
            io.at = start
            loop = retry  # a test stands in for C (tests/test_steps.py)
        args = (plan, io, sa, salen, -1, stop)
        while True:
            try:
                loop(_SEQUENCE, lib.jn_steps, args, checkpoint, address)
                return
            except _StepFailed as failed:
                if io.expired:
                    # C stopped at a checkpoint past a stock context's deadline: the
                    # context's check() raises its Timeout (or, if not, C resumes there).
                    io.expired = 0
                    if checkpoint is not None:
                        checkpoint()
                    loop = retry
                    continue
                table = tables[io.at]
                assert table is not None  # a skipped step makes no call, so cannot fail
                raise table.error(failed.err, address if table in _NAMES_ADDRESS else None) from None
    for k in range(start, stop):  # the fault seam is armed: one step per pass of the loop
        table = tables[k]
        if table is not None:
            named = address if table in _NAMES_ADDRESS else None
            retry(table, lib.jn_steps, (plan, io, sa, salen, k, k + 1), checkpoint, named)


def steps_armed() -> bool:
    """Whether the fault seam is armed on any table a native step can have."""
    return any(table.fault is not None for table in _STEP_TABLES)
