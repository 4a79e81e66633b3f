"""The interpreter's signal wakeup fd, which every janus_net wait on the main thread also polls.

CPython runs Python signal handlers on the main thread only, between bytecodes. The
kernel may deliver a process-directed signal (a SIGTERM from a supervisor, a SIGINT)
to any thread; CPython's C-level handler then only records it and writes one byte to
the wakeup fd (`signal.set_wakeup_fd`). A main thread asleep in poll would not notice
until the poll ended for another reason, so a ``cancel()`` made by the handler would
not land. Every janus_net wait on the main thread therefore also polls that fd: it
wakes, returns to Python (where the pending handlers run), and goes on waiting unless
a handler cancelled its context or raised.

Which fd, decided afresh at the start of every wait on the main thread:

* the program has none (the usual case): janus_net's own -- a non-blocking,
  close-on-exec pipe in a native cell, made once per process and kept -- is installed
  for the length of the wait only (``warn_on_full_buffer=False``) and emptied after
  each wake; when the wait ends the interpreter has no wakeup fd again, so a library
  that installs its own later (trio, asyncio) finds the slot empty, as it expects;
* the program has its own (asyncio's loop, trio, a supervisor's self-pipe): it is
  watched, never read (its bytes are the program's). See `Watch` for how a wait avoids
  spinning on it while the program has not read it.

CPython has no getter for the wakeup fd, so the wait puts janus_net's pipe in the slot
and looks at what was there: a program's own is put back at once, and the bytes of any
signal that came in that instant are moved on to it, so the program's own loop (the
supervisor's, asyncio's) still wakes, once per signal. The slot is never left empty
while a program's fd is there.

A forked child gets a fresh pipe: the inherited one is shared with the parent, whose
waits would drain the child's bytes (and the child the parent's).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
from functools import partial  # loaded by nearly every program already (re, threading)

from janus_net._kernel import flags, processes, waking

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

#: How often a wait that stopped watching the program's own wakeup fd (see `Watch`)
#: returns to Python anyway, so that handlers of later signals still run (ms).
TICK_MS = 50

_own: tuple[Any, Any] | None = None  # janus_net's pipe: (waker cell, its closer)
# The main thread's ident, asked of `threading` once: it changes only in a forked child
# (the forking thread is the child's main thread), where the fork hook below forgets it.
_main_ident: int | None = None


def _main_thread_ident() -> int | None:
    global _main_ident
    ident = _main_ident
    if ident is None:
        import threading  # loaded by nearly every program already; not at janus_net's import

        ident = _main_ident = threading.main_thread().ident
    return ident


def _own_pipe() -> tuple[int, int]:
    """janus_net's pipe (read end, write end), made on first use and kept for the life of the process."""
    global _own
    if _own is None:
        # Kept in the module before the interpreter is given it: whatever happens next,
        # the fd the interpreter writes to is never closed under it.
        _own = waking.new_waker_cell()
    # At the fd limit this raises (ProcessFdQuotaExceeded...), and the next wait asks again.
    return waking.make_wakeup_pipe(_own[0])


def install() -> None:
    """Make janus_net's pipe now (on the main thread) instead of at the first wait.

    For a process that counts its descriptors (a test suite), so that the pipe exists
    before the first count. Does nothing off the main thread.
    """
    if _thread.get_ident() == _main_thread_ident():
        _own_pipe()


class Watch:
    """What one wait polls for pending Python signals: ``fd`` (-1: nothing) and ``drain``.

    Used as ``with Watch() as watch``: the slot is swapped in ``__enter__`` and given
    back in ``__exit__``. On any thread but the main one there is nothing to watch
    (CPython runs handlers only there).

    janus_net's own pipe is watched for POLLIN and emptied after each wake. The
    program's own wakeup fd is never read, and is usually the *write* end of the
    program's self-pipe or socket pair (CPython writes to it), which poll cannot watch
    for new bytes; when it is readable itself, it may stay so until the program -- often
    this very thread, busy in the wait -- reads it. So it is watched for POLLIN until it
    first wakes the wait (an edge), and the wait also returns to Python every `TICK_MS`,
    where pending handlers run: a handler runs within that time whichever thread the
    kernel gave the signal to, and the wait costs a few wake-ups a second, never a
    spinning core.

    A handler runs between any two bytecodes of the wait, and may raise or wait itself:

    * what each swap returns is stored by C (``list.extend`` pulling from ``map``), so a
      handler raising as the swap returns cannot lose the fd that was in the slot; the
      give-back (`_give_back`) works from those stored values and may run again after an
      interruption without undoing what it did;
    * a wait inside a handler that runs while an enclosing wait holds the slot shares
      the pipe and leaves the slot to that wait (emptying it would leave the enclosing
      wait deaf to signals the kernel gives other threads). The wait that put the pipe
      in the slot is named in ``_holders``, and counts as enclosing only while a frame
      on the stack holds it: a handler raising as ``__exit__`` begins (before any of its
      lines, where no Python code can answer) leaves the pipe in the slot, and the next
      wait, finding no enclosing one, takes it out as if it had put it there.
    """

    __slots__ = ("drain", "fd", "found", "tick", "write_end")

    def __init__(self) -> None:
        self.fd = -1
        self.drain = False
        self.tick = False
        # What the slot held when this wait looked ([0]) and when it gave it back ([1]).
        self.found: list[int] = []
        self.write_end = -1  # janus_net's, once this wait swapped it in

    def __enter__(self) -> Watch:
        if _thread.get_ident() != (_main_ident or _main_thread_ident()):
            return self
        read_end, write_end = _own_pipe()
        # janus_net's pipe takes the slot, so it is never empty while we look: a signal
        # in the instant before a program's own fd is put back writes to our pipe, and
        # that byte is moved on to the program's fd (its loop -- asyncio's reads the
        # signal numbers -- sees each signal once). Bytes left from an earlier wait were
        # wakes already served: dropped first.
        waking.forward_wakeup(read_end, -1)
        found = self.found
        self.write_end = write_end
        try:
            found.extend(map(_SWAP, (write_end,)))
            previous = found[0]
            if previous not in (-1, write_end):
                signal.set_wakeup_fd(previous)  # the program's own: put back at once, then watched
                waking.forward_wakeup(read_end, previous)
                self.fd = previous
                self.tick = True
                return self
            self.fd = read_end
            self.drain = True
            if not (previous == write_end and _enclosing_holder()):
                _holders.append(self)
            return self  # in the try: an exception here would skip __exit__ too
        except BaseException:
            self._give_back()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._give_back()
        except BaseException:
            self._give_back()  # a handler raised in the middle: finish, then let its exception go on
            raise

    def _give_back(self) -> None:
        """Leave the slot as this wait found it, unless a handler installed the program's own meanwhile.

        Each step is done at most once or is harmless to repeat, so a second run after
        an interruption finishes the first.
        """
        found = self.found
        if not found:
            return  # never swapped (off the main thread, or interrupted before the swap)
        write_end = self.write_end
        previous = found[0]
        if previous not in (-1, write_end):
            if not self.tick:  # swapped in, not yet put back
                signal.set_wakeup_fd(previous)
                waking.forward_wakeup(_own_read_end(), previous)
            return
        if previous == write_end and self not in _holders and _enclosing_holder():
            return  # an enclosing wait holds the slot and gives it back
        if len(found) == 1:
            found.extend(map(_SWAP, (-1,)))
        left = found[1]
        if left not in (-1, write_end):
            signal.set_wakeup_fd(left)  # a handler installed the program's own meanwhile: keep it
        if self in _holders:
            _holders.remove(self)

    def timeout(self, timeout_ms: int) -> int:
        """The poll timeout for a wait that wants ``timeout_ms`` (-1: none)."""
        if not self.tick:
            return timeout_ms
        return TICK_MS if timeout_ms < 0 else min(timeout_ms, TICK_MS)

    def woke(self) -> None:
        """The fd fired: pending handlers run once the wait is back in Python; stop watching theirs."""
        if not self.drain:
            self.fd = -1


#: The waits on the main thread that put janus_net's pipe in the slot: one, as a wait
#: inside a handler finds it there and shares it (two only if a handler emptied the
#: slot inside the first, and then waited).
_holders: list[Watch] = []


def _enclosing_holder() -> bool:
    """Whether a wait that put janus_net's pipe in the slot is on this thread's stack.

    It then runs the signal handler this wait runs in. Only the wait that janus_net's
    pipe is found in the slot asks (a wait inside a handler, or after a skipped
    give-back), so the walk costs the usual wait nothing. A holder no frame refers to
    any more had its give-back skipped: forgotten, so the caller takes the pipe out.
    """
    held = {id(watch) for watch in _holders}  # alive: the list holds them
    frame: Any = sys._getframe(1)
    while frame is not None:
        for value in frame.f_locals.values():
            # A wait whose swap has just put the pipe in an empty slot holds it before it
            # can say so in _holders: an eval-breaker check follows the swap's call, and a
            # handler run there must not take the pipe out from under it. Its ``found``,
            # written by C in the swap, says it until its give-back extends it.
            if id(value) in held or (type(value) is Watch and value.found == _LENT):
                return True
        frame = frame.f_back
    _holders.clear()
    return False


#: A `Watch`'s ``found`` once its swap put janus_net's pipe in an empty slot, until its give-back.
_LENT = [-1]

#: The swap: janus_net's pipe in the slot never warns (its bytes are only wakes).
_SWAP = partial(signal.set_wakeup_fd, warn_on_full_buffer=False)


def _own_read_end() -> int:
    own = _own
    return -1 if own is None else int(own[0][0])


def _renew_in_place(cell: Any) -> None:
    """In a forked child: a pipe of this process's own under the two numbers ``cell`` holds.

    Those numbers are the child's copies of the parent's pipe, which a wait going on in
    the child still polls and the slot still names: they must stay open, but not shared
    with the parent. A new pipe is moved onto them (dup2 closes each copy in the same
    call), and the cell counts as this process's, so the next wait keeps it.
    """
    read_end, write_end = int(cell[0]), int(cell[1])
    fresh, _closer = waking.new_waker_cell()
    try:
        new_read, new_write = waking.make_wakeup_pipe(fresh)  # O_NONBLOCK is the pipe's: dup2 keeps it
        processes.dup2(new_read, read_end)
        processes.dup2(new_write, write_end)
        flags.set_cloexec(read_end)  # close-on-exec is the number's, and dup2 clears it
        flags.set_cloexec(write_end)
    finally:
        waking.close_waker(fresh)
    waking.claim_waker(cell)


def _after_fork_in_child() -> None:
    global _own, _main_ident
    _main_ident = None  # asked again at the next wait, once threading has named the child's main thread
    own = _own
    if own is not None and _enclosing_holder():
        # Forked by a handler that runs during a wait on this very thread (a fork-based
        # restart whose child returns into the wait): that wait goes on here, polling
        # the read end it was given, with the write end in the slot. Closed, the read
        # end would be POLLNVAL at once (a spinning core; or a later fd under its number,
        # drained); shared, each process would drain the other's wakes. So the child
        # gets a pipe of its own under the same numbers, and the wait gives it back.
        try:
            _renew_in_place(own[0])
            return
        except Exception:  # no pipe to be had (the fd limit): forgotten as below, as before
            pass
    _holders.clear()  # a wait of the parent's main thread, forked from another thread: not this process's
    if own is None:
        return
    _own = None
    cell = own[0]
    try:
        previous = signal.set_wakeup_fd(-1)
        if previous != cell[1]:
            signal.set_wakeup_fd(previous)  # not janus_net's: leave it
    except ValueError:  # not the main thread here: the interpreter's fd is not ours to change
        _own = own  # keep it as it was: the interpreter may still write to it
        return
    # This process's copies of the parent's pipe; the next wait here makes a new one.
    waking.close_waker(cell)


os.register_at_fork(after_in_child=_after_fork_in_child)
