"""Every example in the README runs as written, and so does every example of the pages it sends readers to.

Each ```python block runs in a fresh interpreter, alone (as someone copying one example does) and all
in order in one interpreter (as someone pasting them one after another into one interpreter does: an
example must not lean on, or be broken by, a name an earlier one left behind). A block that cannot run
in a test says so on its first line, ``# not run: <why>``; there are few of them in the README. The
pages under docs/ whose examples are runnable (GUIDES) follow the same rules.

A block that resolves a host name (``resolve``, ``connect_host``, ``ResolverConfig``) runs in a network
namespace of its own where the test DNS server answers on 127.0.0.1:53 and ``JANUS_NET_RESOLV_CONF`` /
``JANUS_NET_HOSTS`` name test files (tests/names_sandbox.py): it resolves as a reader's would, the same
on every machine, and no query leaves the machine. So does the run of all blocks in one interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# Pages under docs/ that hold complete examples moved out of the README: they run as the README's do.
GUIDES = (ROOT / "docs" / "servers.md", ROOT / "docs" / "zero-downtime.md", ROOT / "docs" / "servers-under-run.md")
NOT_RUN = "# not run:"
NAMES = re.compile(r"\b(?:resolve|connect_host|ResolverConfig)\b")
SANDBOX = ROOT / "tests" / "names_sandbox.py"
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path = README) -> list[tuple[int, str]]:
    """(line number, source) of each ```python block."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def runnable(page: Path = README) -> list[tuple[int, str]]:
    return [(line, source) for line, source in python_blocks(page) if not source.startswith(NOT_RUN)]


def guide_examples() -> list[tuple[str, int, str]]:
    return [(page.name, line, source) for page in GUIDES for line, source in runnable(page)]


def in_names_sandbox(command: list[str]) -> list[str]:
    """``command`` inside a network namespace where the README's names resolve (tests/names_sandbox.py)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to resolve the README's names in a namespace of their own")
    user = [] if os.geteuid() == 0 else ["--map-root-user"]  # an unprivileged user namespace, where allowed
    return ["unshare", "--net", *user, sys.executable, str(SANDBOX), "--", *command]


def run_python(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # cwd: a scratch directory, so an example's files land there, not in the repository.
    command = [sys.executable, "-W", "error::ResourceWarning", "-c", source]
    return subprocess.run(
        in_names_sandbox(command) if NAMES.search(source) else command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_the_readme_has_examples_and_few_exceptions() -> None:
    blocks = python_blocks()
    skipped = [line for line, source in blocks if source.startswith(NOT_RUN)]
    assert len(blocks) >= 8
    assert len(skipped) <= 2, f"blocks marked {NOT_RUN!r} at lines {skipped}: keep them few"


@pytest.mark.parametrize(("line", "source"), runnable(), ids=[f"line-{line}" for line, _ in runnable()])
def test_each_example_runs_alone(line: int, source: str, tmp_path: Path) -> None:
    done = run_python(source, tmp_path)
    assert done.returncode == 0, f"README.md line {line}:\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_the_examples_run_in_order_in_one_interpreter(tmp_path: Path) -> None:
    done = run_python("\n".join(source for _, source in runnable()), tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("page", "line", "source"), guide_examples(), ids=[f"{page}-line-{line}" for page, line, _ in guide_examples()]
)
def test_each_example_of_the_guides_runs_alone(page: str, line: int, source: str, tmp_path: Path) -> None:
    done = run_python(source, tmp_path)
    assert done.returncode == 0, f"docs/{page} line {line}:\n{done.stderr}"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("page", GUIDES, ids=[page.name for page in GUIDES])
def test_the_examples_of_each_guide_run_in_order_in_one_interpreter(page: Path, tmp_path: Path) -> None:
    assert runnable(page), f"{page.name} has no runnable example left"
    done = run_python("\n".join(source for _, source in runnable(page)), tmp_path)
    assert done.returncode == 0, done.stderr


def test_names_resolve_in_the_sandbox_from_its_files_and_its_server(tmp_path: Path) -> None:
    # The README's names blocks go through tests/names_sandbox.py: there, the name comes from the test
    # server (not the machine's resolver), the hosts file is the sandbox's, and a name nobody serves is unknown.
    assert [line for line, source in runnable() if NAMES.search(source)], "the README has no names example"
    probe = """
import janus_net as jn
found = jn.resolve("www.example.com", 443)
assert found.source == "dns" and sorted(map(str, found.addresses)) == ["192.0.2.10:443", "[2001:db8::10]:443"], found
assert jn.resolve("intranet", 80).source == "files"
try:
    jn.resolve("elsewhere.invalid")
except jn.SocketError.UnknownHostName:
    pass
else:
    raise AssertionError("elsewhere.invalid resolved")
"""
    done = run_python(probe, tmp_path)
    assert done.returncode == 0, done.stderr


def test_first_screen_has_the_two_commands() -> None:
    first_screen = README.read_text().splitlines()[:24]
    for command in ("make demo", "make test"):
        [line] = [text for text in first_screen if text.startswith(command)]
        assert "#" in line, f"{command!r} needs its one-line explanation"


def test_links_stay_inside_the_repository() -> None:
    text = README.read_text()
    assert "](../" not in text and "shared/DESIGN" not in text
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_internal_anchors_exist() -> None:
    text = README.read_text()

    def anchor(heading: str) -> str:
        # GitHub's rule: lower case, drop punctuation except '-' and '_', spaces become '-'.
        return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")

    anchors = {anchor(h) for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, target
