"""The ``janus-net`` command: ``parse``, ``layout``, ``listen``, ``demo``, ``run``: `main`.

The error contract, for every subcommand:

* A failure prints one line on stderr, ``janus-net: <Member>: ...`` (the `SocketError`
  member's name first), never a traceback, and exits with the one status rule
  (`janus_net._cli.output`): 2 for a value given on the command line that was refused
  (argparse's usage errors, ``InvalidAddress``, ``InvalidPort``, ``ValueError``,
  ``TypeError``), 1 for every other failure. That covers output that cannot be
  written: a closed stdout, a stdout pipe whose reader has gone (EPIPE), an
  ``--audit`` file on a full disk.
* A stop signal -- SIGINT, SIGTERM, and SIGHUP but for ``run`` (its reload) -- ends
  every subcommand alike (`janus_net._cli.stop_signals`): what it made is closed (a unix socket
  file it created is removed, the commands ``run`` started are stopped and reaped),
  then the process dies of that signal, so a shell shows 128 + its number.

Text for people shows addresses and paths with control characters (and bytes that are
not UTF-8) escaped, so a crafted unix path cannot forge a line; ``--json`` carries the
exact text.
"""

from __future__ import annotations

import argparse
import io
import signal
import sys
from collections.abc import Callable, Sequence

from janus_net._cli import describe, output
from janus_net._cli.listen import listen
from janus_net._cli.parsers import build_parser
from janus_net._cli.stop_signals import Stopped, StopSignals, die_of
from janus_net._values.errors import SocketError

Command = Callable[[argparse.Namespace, StopSignals], int]

#: The signals that end every subcommand but ``run`` (whose SIGHUP reloads) the way Ctrl-C does.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``janus-net`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    After a stop signal it does not return: once everything is cleaned up, the
    process dies of that signal (`janus_net._cli.stop_signals.die_of`).
    """
    words = list(sys.argv[1:] if argv is None else argv)
    signals: tuple[int, ...] = STOP_SIGNALS
    ignored: tuple[int, ...] = ()
    if words[:1] == ["run"]:
        from janus_net._cli import run  # loaded only for this command

        signals, ignored = run.STOP_SIGNALS, run.IGNORED_AT_START_UP
    status, signum = 1, None
    with StopSignals(signals, ignored=ignored) as stops:
        try:
            status = _main(words, stops)
        except Stopped as stop:
            signum = stop.signum  # run's own handlers record its stops: they come this way only
    if signum is None and stops.fired:
        signum = stops.fired[0]  # a stop held until the end of a command that had finished
    if signum is not None:
        output.error_line(f"stopped by {signal.Signals(signum).name}")
        return die_of(signum)
    if status < 0:
        # run's COMMAND died of signal -status: run, cleaned up, dies of the same one.
        return die_of(-status)
    return status


def _main(words: list[str], stops: StopSignals) -> int:
    if words[:1] == ["run"]:
        from janus_net._cli import run

        return run.main(words[1:], stops)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A character stdout cannot encode is shown as an escape, never a UnicodeEncodeError.
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(words)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    try:
        return _subcommand(args.command)(args, stops)
    except (SocketError, ValueError, TypeError) as e:
        stops.check()  # an error the stop caused (its cancelled context) is the stop
        output.error_line(str(e) if isinstance(e, SocketError) else f"{type(e).__name__}: {e}")
        return output.usage_status(e)
    except OSError as e:  # an output the command could not write, not already typed (the demo's)
        stops.check()
        output.discard_stdout()
        output.error_line(str(output.output_error(e, "write", "stdout")))
        return 1


def _subcommand(name: str) -> Command:
    if name == "demo":
        from janus_net._cli import demo  # loaded only for this command

        return demo.command
    return _SUBCOMMANDS[name]


_SUBCOMMANDS: dict[str, Command] = {"parse": describe.parse, "layout": describe.layout_command, "listen": listen}


__all__ = ["STOP_SIGNALS", "main"]
