"""The one exit-status rule (DESIGN §12), every subcommand against it, as a shell sees it.

0 success; 2 a usage error (argparse's, or a command-line value refused, whether or not
the kernel was asked); 1 every other failure; ``run``: its COMMAND's status (127/126
when COMMAND cannot be found/executed). Death by a stop signal is covered per
subcommand in test_cli_listen.py, test_cli_run.py and test_run_manager.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

JANUS_NET = [sys.executable, "-m", "janus_net"]

CASES = [
    # (words, status)
    (["--version"], 0),
    ([], 2),
    (["nosuch"], 2),
    (["parse", "127.0.0.1:80"], 0),
    (["parse", "localhost:80"], 2),  # InvalidAddress
    (["parse", "127.0.0.1:99999"], 2),  # InvalidPort
    (["layout"], 0),
    (["layout", "unix:"], 2),
    (["listen", "--accept", "0", "127.0.0.1:0"], 0),
    (["listen", "127.0.0.1:8_080"], 2),  # refused before any syscall
    (["listen", "--accept", "0", "--netns", "/proc/self/ns/uts", "127.0.0.1:0"], 2),  # refused by the kernel
    (["listen", "--accept", "0", "--echo", "127.0.0.1:0"], 2),
    (["listen", "--accept", "-1", "127.0.0.1:0"], 2),
    (["listen", "--accept", "0", "--capability", "c", "127.0.0.1:9"], 1),  # CapabilityDenied
    (["run", "--listen", "w=127.0.0.1:0", "--", "true"], 0),
    (["run", "--listen", "w=127.0.0.1:0", "--", "false"], 1),
    (["run", "--listen", "w=127.0.0.1:0", "--", "sh", "-c", "exit 42"], 42),
    (["run", "--listen", "w=127.0.0.1:0", "--", "/nonexistent/command"], 127),
    (["run", "--listen", "w=127.0.0.1:0", "--", "./not-executable"], 126),
    (["run", "--listen", "w=127.0.0.1:8_080", "--", "true"], 2),
    (["run", "--listen", "w=127.0.0.1:9", "--capability", "c", "--", "true"], 1),
    (["run", "--listen", "w=127.0.0.1:0"], 2),  # no COMMAND
]


@pytest.mark.parametrize(("words", "status"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_each_subcommand_follows_the_one_rule(words: list[str], status: int, tmp_path: Path) -> None:
    (tmp_path / "not-executable").write_text("not a program\n")  # mode 0644: exec answers EACCES
    done = subprocess.run([*JANUS_NET, *words], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    if status == 2 or (status == 1 and words[:1] != ["run"]):  # run's 1 here is COMMAND's own
        assert done.stderr.strip(), "a failure says why on stderr"


def test_help_states_the_rule() -> None:
    for words in (["--help"], ["run", "--help"]):
        done = subprocess.run([*JANUS_NET, *words], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0
        assert "exit status (every subcommand):" in done.stdout and "127/126" in done.stdout
