"""Helpers for the KeyboardInterrupt-at-every-line tests of the hand-over modules."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any


def cleanup_lines(path: str) -> set[int]:
    """The lines of ``except`` handlers and ``finally`` blocks in ``path``.

    An exception raised at one of them, before its first statement runs, skips the
    cleanup itself: no Python code survives that, so these tests do not inject there
    (they do inject at every line of the normal path, returns included).
    """
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for block in [*(h.body for h in node.handlers), node.finalbody]:
                for statement in block:
                    for inner in ast.walk(statement):
                        if hasattr(inner, "lineno"):
                            lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def interrupt_at(n: int, files: set[str]) -> Callable[[FrameType, str, Any], Any]:
    """A sys.settrace function raising KeyboardInterrupt at the ``n``-th line event in ``files``."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    return act_at(n, interrupt, files, skip_cleanup=True)[0]


def act_at(
    n: int, action: Callable[[], None], files: Iterable[str], *, skip_cleanup: bool = False
) -> tuple[Callable[[FrameType, str, Any], Any], list[bool]]:
    """A sys.settrace function running ``action`` at the ``n``-th line event in ``files``, and whether it ran.

    ``skip_cleanup``: do not count the lines of ``except`` handlers and ``finally`` blocks
    (`cleanup_lines`), where an exception would skip the cleanup itself.
    """
    skip = {path: cleanup_lines(path) if skip_cleanup else set() for path in files}
    ran = [False]
    seen = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        path = frame.f_code.co_filename
        if path not in skip:
            return None
        if event == "line" and frame.f_lineno not in skip[path]:
            seen += 1
            if seen == n:
                ran[0] = True
                action()
        return tracer

    return tracer, ran


def live_fds() -> set[int]:
    """The open descriptors, without the one the listing itself used."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        fds.add(int(name))
    return fds
