"""Every errno table of the door, in one tuple: what the fault seam and the tests iterate.

Each table sits beside the wrapper that uses it, in the module of its area; this
module only gathers them, once, by reading those modules: a `Syscall` defined at the
top level of an area module is a table, so a new one is listed as soon as it exists
(the fault seam reaches it by name, `tests/test_errno_tables.py` asks for a route to
it, and `bug_rows_markdown` prints its bug rows for docs/errno-tables.md).

The native step sequence's `Syscall` (janus_net._kernel.step_sequence) is not a table:
it maps nothing, and the seam arms the steps' own tables instead.
"""

from __future__ import annotations

from janus_net._kernel import cell_io, cells, confinement, files, flags, processes, socket_options, sockets, waking
from janus_net._kernel.loop import Syscall
from janus_net._values import errors

#: The modules whose tables the door has, in the order the tables are listed.
_AREAS = (sockets, socket_options, flags, cells, cell_io, waking, files, confinement, processes)


def _gather() -> tuple[Syscall, ...]:
    found: dict[int, Syscall] = {}  # by identity: a table one area imports from another counts once
    for area in _AREAS:
        for value in vars(area).values():
            if type(value) is Syscall:
                found.setdefault(id(value), value)
    return tuple(found.values())


#: Every table, for tests and the fault seam to iterate.
TABLES: tuple[Syscall, ...] = _gather()


def bug_rows_markdown(tables: tuple[Syscall, ...] | None = None) -> str:
    """The bug rows of ``tables`` (default: every table) as a Markdown table: syscall, errno, why.

    docs/errno-tables.md holds its output; a test keeps the two in step.
    """
    if tables is None:
        tables = TABLES
    lines = ["| syscall | errno | why only a bug of janus_net can produce it |", "| --- | --- | --- |"]
    for table in tables:
        for err, reason in sorted(table.bugs.items(), key=lambda row: errors.errno_name(row[0])):
            lines.append(f"| {table.label} | {errors.errno_name(err)} | {reason} |")
    return "\n".join(lines) + "\n"
