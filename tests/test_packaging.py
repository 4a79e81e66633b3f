"""Packaging: the wheel installs and runs from a clean venv; ``python -m janus_net`` is ``janus-net``.

test_wheel_installs_and_runs builds the sdist and the wheel and creates a venv
(scripts/check-wheel): about 20-40 s, the one slow test of the suite, run once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JANUS_NET = Path(sys.executable).parent / "janus-net"  # the console script of the venv running the tests


def test_wheel_installs_and_runs_from_a_clean_venv() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check-wheel")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("round trip on 127.0.0.1:") and "/venv/" in line for line in lines), done.stdout
    assert lines[-1].startswith("check-wheel: ok: janus_net-"), done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["parse", "[fe80::1%1]:443"],
        ["parse", "--json", "fd://3"],
        ["parse", "nonsense"],  # exit 1, one line on stderr
        ["layout", "--json", "127.0.0.1:80"],
        ["--help"],
        ["no-such-command"],  # usage error: exit 2
    ],
)
def test_python_m_janus_net_is_the_janus_net_command(argv: list[str]) -> None:
    assert JANUS_NET.exists()
    script = subprocess.run([str(JANUS_NET), *argv], capture_output=True, text=True, timeout=60)
    module = subprocess.run([sys.executable, "-m", "janus_net", *argv], capture_output=True, text=True, timeout=60)
    assert (module.returncode, module.stdout) == (script.returncode, script.stdout)
    # argparse names the program in usage lines; everything else must match exactly.
    assert module.stderr.replace("__main__.py", "janus-net") == script.stderr
    assert script.stdout or script.stderr  # each said something
