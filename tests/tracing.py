"""strace as the witness of which syscalls a piece of code made (used by the profile tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Programs write this (``os.write(1, MARK)``) right before the code under test.
MARK = b"JANUS-MARK\n"


def syscalls_after_mark(program: str, tmp_path: Path, *, trace: str = "write,socket,bind") -> tuple[list[str], str]:
    """Run ``program`` under ``strace -f``; return (trace lines after the first mark, stdout).

    The program is run with this interpreter and must write `MARK` to fd 1 right
    before the part whose syscalls matter; everything the interpreter did to start
    up is before that line and is ignored. The program must exit 0.
    """
    out_file = tmp_path / "strace.out"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(out_file), "-e", f"trace={trace}", sys.executable, "-c", program],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = out_file.read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if "JANUS-MARK" in line]
    assert marks, f"the program never wrote the mark: {lines[-20:]}"
    return lines[marks[0] + 1 :], done.stdout


def calls_to(lines: list[str], *names: str) -> list[str]:
    """The trace lines that are calls to any of ``names`` (``socket(``, ``bind(``)."""
    return [line for line in lines if any(f" {name}(" in f" {line.split(' ', 1)[-1]}" for name in names)]
