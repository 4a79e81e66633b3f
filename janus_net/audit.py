"""The audit trail of the :sovereign profile: `AuditRecord` and the sinks that receive it.

A `NetBind` capability writes one record when it checks an address
(``check_bind_address``, allowed or denied) and one more when the OS bind it allowed
has succeeded (``bind_socket``, with the port actually bound). A *sink* is any
callable taking an `AuditRecord`; three are provided:

- `ListSink` keeps the records in ``.records`` (tests, in-process inspection);
- `JsonLinesSink` writes one JSON object per line to a text file;
- `LoggingSink` logs through the `logging` module (WARNING for a denial).

A sink is part of the operation it records: if it raises, the operation fails
with that exception, and nothing it opened is left open ("fail closed"). An
audit trail that can silently lose records is not one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from typing import IO, Literal

from janus_net._values.escaping import for_people

Operation = Literal["check_bind_address", "bind_socket", "enforce"]
Result = Literal["allowed", "denied"]


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One decision or event of a capability.

    Attributes:
        capability_id: the ``id`` of the `NetBind` that made it.
        operation: ``"check_bind_address"`` (the gate, before any syscall),
            ``"bind_socket"`` (after the OS bind succeeded), or ``"enforce"`` (the
            kernel now enforces the capability: `NetBind.enforce`; port None, address
            ``"landlock tcp-bind 8000,8080"``, the ports the kernel allows).
        port: the port asked for (check) or actually bound (bind_socket); None for
            unix sockets, which have none.
        result: ``"allowed"`` or ``"denied"``.
        address: the canonical text of the address (for bind_socket: as bound).
        time: when, in Unix seconds (`time.time()`).
    """

    capability_id: str
    operation: Operation
    port: int | None
    result: Result
    address: str
    time: float

    def as_dict(self) -> dict[str, object]:
        """The six fields, in declaration order: what `JsonLinesSink` writes."""
        return dataclasses.asdict(self)


#: Anything that takes a record. Raising fails the audited operation.
Sink = Callable[[AuditRecord], object]


class ListSink:
    """Keeps every record, in order, in ``.records``."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def __call__(self, record: AuditRecord) -> None:
        self.records.append(record)  # list.append is atomic: no lock needed

    def __repr__(self) -> str:
        return f"<ListSink {len(self.records)} records>"


class JsonLinesSink:
    """Writes each record as one JSON object on its own line, flushed at once.

    ``file`` is an open text file (``sys.stdout``, ``open(path, "a")``...); the sink
    does not close it. Lines from several threads never interleave.

    The lock that keeps them apart cannot be left held by an exception landing in
    the sink (a KeyboardInterrupt, a signal handler's exception): it is taken and
    released by one ``with`` statement written on one line, so no line event and
    no bytecode outside the statement's protected range lies between the acquire and
    the release. (A ``with`` block over several lines has one: the line event at its
    exit, before ``__exit__`` runs; an exception raised there leaves the lock held.)
    """

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self._lock = threading.Lock()

    def __call__(self, record: AuditRecord) -> None:
        line = json.dumps(record.as_dict()) + "\n"
        with self._lock: self._write(line)  # noqa: E701 - one line on purpose (see the class docstring)  # fmt: skip

    def _write(self, line: str) -> None:
        self.file.write(line)
        self.file.flush()


class LoggingSink:
    """Logs each record: INFO when allowed, WARNING when denied.

    The message is text for people: the address is escaped (`for_people`), so a unix
    path holding a newline or a terminal escape cannot forge a log line. The record
    itself, exact, rides along as ``extra={"audit": record}``, so a handler or filter
    can get at the fields without parsing the message.
    """

    def __init__(self, logger: logging.Logger | str = "janus_net.audit") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def __call__(self, record: AuditRecord) -> None:
        level = logging.WARNING if record.result == "denied" else logging.INFO
        self.logger.log(
            level,
            "%s %s: capability %r, address %s, port %s",
            record.operation,
            record.result,
            record.capability_id,
            for_people(record.address),
            record.port,
            extra={"audit": record},
        )


__all__ = ["AuditRecord", "JsonLinesSink", "ListSink", "LoggingSink", "Sink"]
