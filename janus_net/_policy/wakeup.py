"""The interpreter's signal wakeup fd, which every janus_net wait on the main thread also polls.

CPython runs Python signal handlers on the main thread only, between bytecodes. The
kernel may deliver a process-directed signal (a SIGTERM from a supervisor, a SIGINT)
to any thread; CPython's C-level handler then only records it and writes one byte to
the wakeup fd (`signal.set_wakeup_fd`). A main thread asleep in poll would not notice
until the poll ended for another reason, so a ``cancel()`` made by the handler would
not land. Every janus_net wait on the main thread therefore also polls that fd: it
wakes, returns to Python (where the pending handlers run), and goes on waiting unless
a handler cancelled its context or raised.

Which fd:

* the program has none (the usual case): janus_net installs its own, once per process,
  at the first wait on the main thread -- a non-blocking, close-on-exec pipe in a
  native cell, with ``warn_on_full_buffer=False`` -- and empties it after each wake;
* the program has its own (asyncio's loop, a supervisor's self-pipe): it is watched,
  never read (its bytes are the program's). See `Watch` for how a wait avoids spinning
  on it while the program has not read it.

Finding out which needs ``signal.set_wakeup_fd`` itself (CPython has no getter): the
first wait on the main thread sets -1, sees what was there and puts it back. A
signal in the instant between loses its byte (not its handler, which CPython trips
separately); that happens once per process. A program that installs or clears its own
wakeup fd later replaces janus_net's choice without janus_net knowing: waits then wake
for signals as they did before this watch existed (only for a signal to the main
thread itself).

A forked child gets a fresh pipe: the inherited one is shared with the parent, whose
waits would drain the child's bytes (and the child the parent's).
"""

from __future__ import annotations

import _thread
import os
import signal

from janus_net import syscalls

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

#: How often a wait that stopped watching the program's own wakeup fd (see `Watch`)
#: returns to Python anyway, so that handlers of later signals still run (ms).
TICK_MS = 50

_own: tuple[Any, Any] | None = None  # janus_net's pipe: (waker cell, its closer)
_theirs = -1  # the program's wakeup fd, found at the first wait
_decided = False


def _main_thread_ident() -> int | None:
    import threading  # loaded by nearly every program already; not at janus_net's import

    return threading.main_thread().ident


def _decide() -> None:
    """Find the program's wakeup fd; install janus_net's own pipe when it has none."""
    global _own, _theirs, _decided
    previous = signal.set_wakeup_fd(-1)
    try:
        if previous != -1:
            _theirs = previous
        else:
            if _own is None:
                # Kept in the module before the interpreter is given it: whatever happens
                # next, the fd the interpreter writes to is never closed under it.
                _own = syscalls.new_waker_cell()
            # At the fd limit this raises (ProcessFdQuotaExceeded...), and the next wait asks again.
            _, write_end = syscalls.make_wakeup_pipe(_own[0])
            signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            _theirs = -1
        _decided = True
    finally:
        if previous != -1:
            signal.set_wakeup_fd(previous)


def install() -> None:
    """Decide now (on the main thread) what waits will watch, instead of at the first wait.

    For a process that counts its descriptors (a test suite), so that janus_net's pipe,
    if it makes one, exists before the first count. Does nothing off the main thread.
    """
    if not _decided and _thread.get_ident() == _main_thread_ident():
        _decide()


class Watch:
    """What one wait polls for pending Python signals: ``fd`` (-1: nothing) and ``drain``.

    Made at the start of each wait. On any thread but the main one there is nothing to
    watch (CPython runs handlers only there).

    janus_net's own pipe is watched for POLLIN and emptied after each wake. The
    program's own wakeup fd is never read, and is usually the *write* end of the
    program's self-pipe or socket pair (CPython writes to it), which poll cannot watch
    for new bytes; when it is readable itself, it may stay so until the program -- often
    this very thread, busy in the wait -- reads it. So it is watched for POLLIN until it
    first wakes the wait (an edge), and the wait also returns to Python every `TICK_MS`,
    where pending handlers run: a handler runs within that time whichever thread the
    kernel gave the signal to, and the wait costs a few wake-ups a second, never a
    spinning core.
    """

    __slots__ = ("drain", "fd", "tick")

    def __init__(self) -> None:
        self.fd = -1
        self.drain = False
        self.tick = False
        if _thread.get_ident() != _main_thread_ident():
            return
        if not _decided:
            _decide()
        if _theirs == -1 and _own is not None:
            self.fd = int(_own[0][0])
            self.drain = True
        elif _theirs != -1:
            self.fd = _theirs
            self.tick = True

    def timeout(self, timeout_ms: int) -> int:
        """The poll timeout for a wait that wants ``timeout_ms`` (-1: none)."""
        if not self.tick:
            return timeout_ms
        return TICK_MS if timeout_ms < 0 else min(timeout_ms, TICK_MS)

    def woke(self) -> None:
        """The fd fired: pending handlers run once the wait is back in Python; stop watching theirs."""
        if not self.drain:
            self.fd = -1


def _after_fork_in_child() -> None:
    global _own, _decided
    own = _own
    if own is None:
        return
    _own = None
    _decided = False
    cell = own[0]
    try:
        previous = signal.set_wakeup_fd(-1)
        if previous != cell[1]:
            signal.set_wakeup_fd(previous)  # the program's own since: leave it
    except ValueError:  # not the main thread here: the interpreter's fd is not ours to change
        _own, _decided = own, True  # keep it as it was: the interpreter may still write to it
        return
    # This process's copies of the parent's pipe; the next wait here makes a new one.
    syscalls.close_waker(cell)


os.register_at_fork(after_in_child=_after_fork_in_child)
