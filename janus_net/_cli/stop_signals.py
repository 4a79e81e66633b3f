"""How a stop signal ends every ``janus-net`` subcommand (DESIGN §12).

The rule: after a stop signal N (SIGINT, SIGTERM, and SIGHUP where it does not mean
"reload") the command cleans up -- its sockets, the unix socket files it created,
the commands it started -- then restores N's default action and dies of N, so a
shell shows 128+N and a service manager sees a clean stop.

`StopSignals` records the first stop signal and cancels a `Context`, so a bind, a
lock wait or an accept that takes that context ends at once. Whether the handler
also raises `Stopped` (which unwinds through ``with`` and ``finally`` blocks like
KeyboardInterrupt) is the caller's choice: while *held*, nothing is raised, and the
caller asks `check` at points where every object it made is already owned by a
``with`` block or a list its ``finally`` closes. `die_of` is the last step. (`Stopped` itself is the process
wing's: the supervisor behind ``janus-net run`` raises it too.)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable
from types import FrameType

from janus_net._kernel import processes
from janus_net._policy.context import Context
from janus_net._process.stopped import Stopped


class StopSignals:
    """While installed (a ``with`` block), the ``signals`` stop the command; the first one wins.

    Each records its number and cancels `context` (every blocking call given that
    context wakes). Raised as `Stopped` at once only while not held; while held
    (from installation until `deliver`) it waits for `check` or `deliver`. Later
    signals are ignored: the command is stopping already.
    """

    def __init__(self, signals: Iterable[int], *, held: bool = True, ignored: Iterable[int] = ()) -> None:
        self.signals = tuple(signals)
        # Signals that would end the process by default but stop nothing here (SIGHUP
        # before `run` has a command to reload). Caught by a handler that does nothing,
        # never SIG_IGN: an ignored signal would stay ignored in every command started.
        self.ignored = tuple(ignored)
        self.context = Context()
        self.fired: list[int] = []
        self._held = held
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.fired:
            return
        self.fired.append(signum)
        self.context.cancel()
        if not self._held:
            raise Stopped(signum)

    def check(self) -> None:
        """Raise `Stopped` if a stop signal arrived (while held, this is where it lands)."""
        if self.fired:
            raise Stopped(self.fired[0])

    def deliver(self) -> None:
        """From now on a stop signal raises at once; one that arrived while held raises here."""
        self._held = False
        self.check()

    def __enter__(self) -> StopSignals:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        for sig in self.ignored:
            self._previous[sig] = signal.signal(sig, _nothing)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._held = True  # a signal from here on is recorded, never raised into the caller
        if self.fired:
            return  # stopping: the handlers stay (they ignore later signals) until `die_of`
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def _nothing(signum: int, frame: FrameType | None) -> None:
    pass


def die_of(signum: int) -> int:
    """Restore ``signum``'s default action and kill this process with it.

    Returns 128 + ``signum`` only if the process is still alive afterwards (the
    signal is blocked in every thread): the status a shell would show.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()  # dying by a signal skips the interpreter's final flush
        except (OSError, ValueError):
            pass
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    processes.kill(os.getpid(), signum)
    return 128 + signum


__all__ = ["StopSignals", "Stopped", "die_of"]
