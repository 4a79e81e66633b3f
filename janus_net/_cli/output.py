"""What the ``janus-net`` subcommands write, and the one rule for their exit status (DESIGN §12).

* `Output` is stdout for status lines: each flushed at once, escaped for people
  (control characters, lone surrogates from undecodable path bytes, and ``\\``
  itself), or exact JSON objects with ``--json``.
* An output that cannot be written (a closed stdout, a reader gone from a pipe, an
  ``--audit`` file on a full disk) is the `SocketError` member a socket write with that
  errno would raise, so the error line always starts with a member's name.
* `usage_status`: 2 for a value given on the command line that was refused
  (`InvalidAddress`, `InvalidPort`, `InvalidHostName`, `ValueError`, `TypeError`),
  whether or not the kernel was asked; 1 for every other failure.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import TextIO

from janus_net._kernel import cells, files, processes
from janus_net._shim import lib
from janus_net._values.errors import SocketError
from janus_net._values.escaping import for_people
from janus_net.audit import AuditRecord, JsonLinesSink, Sink

# An output error is reported as the member a socket write with that errno would raise.
_OUTPUT_MEMBERS: dict[int, type[SocketError]] = {
    errno.EPIPE: SocketError.SocketUnconnected,  # the reader of a pipe has gone
    errno.ECONNRESET: SocketError.ConnectionResetByPeer,
    errno.ENOSPC: SocketError.SystemResources,
    errno.EDQUOT: SocketError.SystemResources,
    errno.EFBIG: SocketError.SystemResources,
    errno.ENOMEM: SocketError.SystemResources,
    errno.EACCES: SocketError.AccessDenied,
    errno.EPERM: SocketError.AccessDenied,
    errno.ENOENT: SocketError.FileNotFound,
    errno.ENOTDIR: SocketError.NotDir,
    errno.ELOOP: SocketError.SymLinkLoop,
    errno.EROFS: SocketError.ReadOnlyFileSystem,
}

#: Refusals of a value the user typed: a usage error (exit 2), like argparse's own.
USAGE_ERRORS: tuple[type[BaseException], ...] = (
    SocketError.InvalidAddress,
    SocketError.InvalidPort,
    SocketError.InvalidHostName,
    ValueError,
    TypeError,
)


def usage_status(error: BaseException) -> int:
    """The exit status for ``error``: 2 for a refused command-line value, else 1."""
    return 2 if isinstance(error, USAGE_ERRORS) else 1


def output_error(error: OSError, syscall: str, where: str) -> SocketError:
    """``error`` (from writing or opening an output) as the `SocketError` member it stands for."""
    number = error.errno if error.errno is not None else errno.EIO
    member = _OUTPUT_MEMBERS.get(number, SocketError.Unexpected)
    return member(number, error.strerror or os.strerror(number), syscall=syscall, address=where)


def discard_stdout() -> None:
    """Point fd 1 at /dev/null after a failed write.

    What is still buffered would fail again when the interpreter flushes stdout at
    exit, printing a second error line. Errors here are ignored (there is nowhere
    left to report them), but a bug row's.
    """
    cell = cells.new_desc()
    try:
        null = files.open_path(cell, b"/dev/null", lib.O_WRONLY, 0)
        processes.dup2(null, 1)
    except SocketError:
        pass
    finally:
        cells.close_desc(cell)


class FileSink:
    """`JsonLinesSink` to a named file; a record that cannot be written is a typed error naming the file."""

    def __init__(self, file: TextIO, name: str) -> None:
        self._sink = JsonLinesSink(file)
        self._name = name

    def __call__(self, record: AuditRecord) -> None:
        try:
            self._sink(record)
        except OSError as e:
            raise output_error(e, "write", self._name) from None


def open_audit_file(path: str) -> TextIO:
    """Open ``path`` for appending audit records; a typed error when it cannot be."""
    try:
        return open(path, "a", encoding="utf-8")  # closed by the command, with close_quietly
    except OSError as e:
        raise output_error(e, "open", path) from None


def close_quietly(file: TextIO) -> None:
    """Close an output whose every write was flushed, or whose failure was reported, when it was made.

    What a failed write left in the buffer fails again here, after the descriptor is
    closed: that second report is dropped.
    """
    try:
        file.close()
    except OSError:
        pass


def error_line(text: str) -> None:
    """Print ``janus-net: TEXT`` (escaped for people) on stderr, if stderr can still be written."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(for_people(f"janus-net: {text}") + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass  # nowhere left to say it; the exit status still does


class Output:
    """Where status lines go (stdout): each line is flushed at once; a failed write is a typed error."""

    def __init__(self, json_lines: bool) -> None:
        stream = sys.stdout
        if stream is None:  # started with stdout closed (`>&-`): Python sets it to None
            raise output_error(OSError(errno.EBADF, os.strerror(errno.EBADF)), "write", "stdout")
        self.file: TextIO = stream
        self.json = json_lines

    def line(self, text: str, **fields: object) -> None:
        """Print ``text`` (escaped) or, with --json, ``fields`` as one JSON object (exact)."""
        self.write(json.dumps(fields) + "\n" if self.json else for_people(text) + "\n")

    def write(self, text: str) -> None:
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as e:
            discard_stdout()
            raise output_error(e, "write", "stdout") from None


def for_people_lines(text: str) -> str:
    """Escape each line of a multi-line report, keeping its line breaks."""
    return "\n".join(for_people(line) for line in text.split("\n"))


class HeldSink:
    """Holds audit records until ``release()``, then passes them and every later one on.

    ``--audit -`` shares stdout with the ``listening on`` line, which must come first;
    the check_bind_address record is written before the bind, so it waits here.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._held: list[AuditRecord] | None = []

    def __call__(self, record: AuditRecord) -> None:
        if self._held is None:
            self._sink(record)
        else:
            self._held.append(record)

    def release(self) -> None:
        held, self._held = self._held, None
        for record in held or ():
            self._sink(record)


def stdout_sink(out: Output) -> Sink:
    """Audit records as JSON lines among the status lines of ``out`` (``--audit -``)."""

    def sink(record: AuditRecord) -> None:
        out.write(json.dumps(record.as_dict()) + "\n")

    return sink


__all__ = [
    "FileSink",
    "HeldSink",
    "Output",
    "close_quietly",
    "discard_stdout",
    "error_line",
    "for_people_lines",
    "open_audit_file",
    "output_error",
    "stdout_sink",
    "usage_status",
]
