"""DESIGN §18 from this machine: the smoke suite qemu-user runs, and the cross-compiled layout check.

`make qemu-smoke` and `make cross` run these on the other platforms; here the smoke suite runs on
the host's own Python (so an API change that breaks it shows in `make test`, not only under
emulation), and scripts/cross runs where the `cross` extra is installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_qemu_smoke_suite_passes_on_this_machine_and_says_why_it_skips() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "qemu_smoke_suite.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].endswith(" ok, 0 failed"), lines[-1]
    assert not [line for line in lines if line.startswith("FAIL")]
    skips = [line for line in lines if line.startswith("SKIP")]
    # Every skip carries its reason in parentheses.
    assert skips and all(line.rstrip().endswith(")") and "  (" in line for line in skips), skips


@pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="the cross extra (ziglang) is not installed")
def test_make_cross_compiles_every_target_cleanly_and_every_fact_matches_its_citation() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cross")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(": 0 errors, 0 warnings") == 7, done.stderr
    assert done.stderr.rstrip().endswith(", 0 failures"), done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("macos", "freebsd", "netbsd", "openbsd"))]
    assert len(rows) == 7 * 19, len(rows)  # every target, every fact
    assert all("  ok  " in line and "FAIL" not in line for line in rows)
