"""The bug rows say why (DESIGN §2, §5): every reason is data, and docs/errno-tables.md prints them."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from janus_net._kernel import cell_io, loop, tables

DOC = Path(__file__).resolve().parent.parent / "docs" / "errno-tables.md"


@pytest.mark.parametrize("table", tables.TABLES, ids=lambda t: t.label)
def test_every_bug_row_has_a_reason(table: loop.Syscall) -> None:
    for err, reason in table.bugs.items():
        assert err in errno.errorcode, f"{table.label}: {err} is not an errno"
        assert isinstance(reason, str) and len(reason.split()) >= 4, f"{table.label} {err}: {reason!r}"
        assert "\n" not in reason and "|" not in reason, "a reason must fit in one Markdown table cell"
        assert err not in table.errors, f"{table.label}: {err} is both a member row and a bug row"


def test_the_doc_prints_the_tables_as_they_are() -> None:
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- bug-rows:begin -->\n", "<!-- bug-rows:end -->"
    assert begin in text and end in text
    rendered = text[text.index(begin) + len(begin) : text.index(end)]
    assert rendered == tables.bug_rows_markdown(), "docs/errno-tables.md is stale: regenerate it (see the doc)"


def test_the_rendering_names_each_row_once() -> None:
    rows = tables.bug_rows_markdown().splitlines()[2:]
    expected = sum(len(t.bugs) for t in tables.TABLES)
    assert len(rows) == expected
    assert len({tuple(r.split(" | ")[:2]) for r in rows}) == expected  # (label, errno) is unique
    assert any("| accept | EOPNOTSUPP |" in r for r in rows)  # the man page's name, not ENOTSUP


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        cell_io.SEND.bugs[errno.EIO] = "no"  # type: ignore[index]
    with pytest.raises(TypeError):
        cell_io.SEND.errors[errno.EIO] = None  # type: ignore[index]
