"""Every recipe of docs/servers-under-run.md runs under ``janus-net run`` as written and reloads cleanly.

For each server (uvicorn, gunicorn with sync workers, hypercorn, aiohttp, asyncio,
anyio on trio) the page's files are written out as they are and its command is run
as it is (the port changed to 0, ``python3``/``gunicorn`` taken from this venv). A
client opening a fresh connection per HTTP request runs throughout; one SIGHUP
reload must refuse no connection, end with the new command answering and the old
one gone, and lose no request; SIGTERM then stops everything. Whether each server
gets the socket's real family is checked with strace: asyncio sets TCP_NODELAY on
every accepted connection only when the listening socket object says AF_INET.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_load import HttpLoad, get

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "servers-under-run.md"
BIN = Path(sys.executable).parent
#: Generous bounds that only prove "did not hang" on a loaded 2-core machine.
HANG = 60.0
#: Servers that, when stopped, close connections they accepted whose request had not arrived yet (measured:
#: about one such request per reload under a fresh-connection load; the page says so).
CLOSE_UNREAD_ON_STOP = {"uvicorn", "hypercorn", "aiohttp"}


def recipes() -> dict[str, tuple[dict[str, str], list[str]]]:
    """Section title -> ({file name: source}, the command line's words), from the page."""
    found: dict[str, tuple[dict[str, str], list[str]]] = {}
    for section in PAGE.read_text().split("\n## ")[1:]:
        title = section.splitlines()[0].strip()
        files = {
            m.group(1): m.group(0)
            for m in re.finditer(r"^# not run: (\S+\.py) \(.*?(?=^```)", section, re.DOTALL | re.MULTILINE)
        }
        commands = re.findall(r"^```sh\n(janus-net run .*)\n```", section, re.MULTILINE)
        if files:
            assert len(commands) == 1, f"{title}: one janus-net run command per recipe"
            found[title] = files, shlex.split(commands[0])
    return found


RECIPES = recipes()


def argv(words: list[str]) -> list[str]:
    """The page's command with this venv's programs and a free port."""
    programs = {"janus-net": [sys.executable, "-m", "janus_net"], "python3": [sys.executable]}
    out: list[str] = []
    for word in words:
        if word in programs:
            out += programs[word]
        elif word == "gunicorn":
            out.append(str(BIN / "gunicorn"))
        else:
            out.append(word.replace("=127.0.0.1:8000", "=127.0.0.1:0"))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie is not: it serves nothing and only waits for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read (ESRCH)
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError):  # the task ended between the glob and the read
            pass
    return found


def descendants(pid: int) -> set[int]:
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()) - seen:
            seen.add(child)
            todo.append(child)
    return seen


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + HANG
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"still waiting after {HANG} s: {what}"
        time.sleep(0.02)


def start(title: str, tmp_path: Path, *prefix: str) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    files, words = RECIPES[title]
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    log = (tmp_path / "server.log").open("w")
    command = [*prefix, *argv(words)]
    run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    assert run.stdout is not None
    line = run.stdout.readline()
    found = re.match(r"listening on (127\.0\.0\.1):(\d+) as web$", line.strip())
    assert found, f"{line!r}; log: {(tmp_path / 'server.log').read_text()}"
    return run, (found.group(1), int(found.group(2)))


def stop(run: subprocess.Popen[str], seen: set[int]) -> None:
    """Stop run and everything it started, whatever state the test left them in; reap run."""
    seen |= descendants(run.pid)
    if run.poll() is None:
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(HANG)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
    for pid in seen:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if run.stdout is not None:
        run.stdout.close()


def test_the_page_has_every_server() -> None:
    assert set(RECIPES) == {"uvicorn", "gunicorn (sync workers)", "hypercorn", "aiohttp", "asyncio", "trio and anyio"}


@pytest.mark.parametrize("title", sorted(RECIPES))
def test_recipe_serves_reloads_and_stops(title: str, tmp_path: Path) -> None:
    run, address = start(title, tmp_path)
    seen: set[int] = set()
    load = None
    try:
        outcome, first = get(address, timeout=HANG)  # queued in the backlog until the command accepts
        assert outcome == "ok", outcome
        [command] = children(run.pid)
        assert first == command, f"the reply names pid {first}, the command is pid {command}"
        seen |= descendants(run.pid)
        load = HttpLoad(address).start()
        wait_for(lambda: load.total() >= 20, "the load's first requests")
        run.send_signal(signal.SIGHUP)
        wait_for(lambda: any(pid not in (first,) for pid in load.served_by), "a reply from the new command")
        seen |= descendants(run.pid)
        wait_for(lambda: not alive(first), f"the old command {first} to exit")
        after = load.total()
        wait_for(lambda: load.total() >= after + 20, "requests after the reload")
        counts = load.stop()
        [new] = children(run.pid)
        assert new != first and set(load.served_by) == {first, new}, (first, new, load.served_by)
        outcome, pid = get(address)
        assert (outcome, pid) == ("ok", new)
        # Never refused (one listening socket throughout), never a wrong answer. The servers whose own stop
        # closes the connections they accepted before a request arrived lose those (reset or no reply).
        lost = {"eof", "reset"} if title in CLOSE_UNREAD_ON_STOP else set()
        bad = {k: v for k, v in counts.items() if k != "ok" and k not in lost}
        assert not bad, f"{title}: {bad} in {sum(counts.values())} requests; {load.errors[:3]}"
        seen |= descendants(run.pid)
        run.send_signal(signal.SIGTERM)
        assert run.wait(HANG) == -signal.SIGTERM
        assert not [pid for pid in seen if alive(pid)], "a process the command started outlived run"
    finally:
        if load is not None:
            load.stop()
        stop(run, seen)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (make tools installs it)")
@pytest.mark.parametrize("title", ["uvicorn", "hypercorn", "aiohttp", "asyncio"])
def test_asyncio_servers_set_tcp_nodelay_on_each_connection(title: str, tmp_path: Path) -> None:
    # What `uvicorn --fd 3` loses: asyncio sets TCP_NODELAY on an accepted connection only when the
    # listening socket object's family is AF_INET/AF_INET6. strace sees the server's own setsockopt.
    trace = tmp_path / "trace"
    run, address = start(title, tmp_path, "strace", "-f", "-qq", "-e", "trace=setsockopt,accept4", "-o", str(trace))
    seen: set[int] = set()
    try:
        for _ in range(3):
            assert get(address, timeout=HANG)[0] == "ok"
        seen |= descendants(run.pid)
        [supervisor] = children(run.pid)  # strace's child: janus-net run; strace ends with it
        os.kill(supervisor, signal.SIGTERM)
        assert run.wait(HANG) == -signal.SIGTERM  # strace dies of the signal its tracee died of
    finally:
        stop(run, seen)
    lines = trace.read_text().splitlines()
    accepted = [line for line in lines if re.search(r"accept4\(\d+, \{sa_family=AF_INET,", line)]
    nodelay = [line for line in lines if "TCP_NODELAY, [1]" in line]
    assert len(accepted) >= 3, lines
    assert len(nodelay) >= len(accepted), lines
