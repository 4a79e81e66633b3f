#!/usr/bin/env python3
"""Reloads under load, side by side: what each way of restarting a real server costs its clients.

One run, one fresh-connection HTTP load on loopback (tests/http_load.py: two client
threads, a new connection per request), and for each scheme N reloads (default 20)
one after another, each waited out (the new server answers, the old one is gone):

- ``janus-net run + gunicorn sync``: SIGHUP to `janus-net run` (docs/servers-under-run.md's recipe);
- ``janus-net run + uvicorn``: the same with the page's uvicorn recipe;
- ``gunicorn USR2 + QUIT``: gunicorn's own binary upgrade: USR2 to the master, and once
  a worker of the new master answers, QUIT to the old master;
- ``gunicorn stop + start``: TERM, wait, start again on the same port.

Prints requests, refused, reset, no reply (eof) and non-2xx per scheme; ``--json PATH`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from http_load import HttpLoad, get  # noqa: E402
from test_servers_under_run import RECIPES, alive, argv, children  # noqa: E402

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
GIVE_UP = 60.0


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GIVE_UP
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(title: str, where: Path) -> list[str]:
    files, words = RECIPES[title]
    for name, source in files.items():
        (where / name).write_text(source)
    return argv(words)


class Scheme:
    """Start a server, reload it once (returning when the new one serves and the old one is gone), stop."""

    address: tuple[str, int]

    def start(self) -> None: ...
    def reload(self) -> None: ...
    def stop(self) -> None: ...


class UnderRun(Scheme):
    def __init__(self, title: str, where: Path) -> None:
        self.command, self.where = _write(title, where), where

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command, cwd=self.where, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        host, port = self.proc.stdout.readline().split()[2].rsplit(":", 1)
        self.address = (host, int(port))
        _until(lambda: get(self.address)[0] == "ok", "the first reply")

    def reload(self) -> None:
        [old] = children(self.proc.pid)
        self.proc.send_signal(signal.SIGHUP)
        _until(lambda: not alive(old) and len(children(self.proc.pid)) == 1, f"pid {old} to be replaced")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(GIVE_UP)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class Gunicorn(Scheme):
    def __init__(self, where: Path, upgrade: bool) -> None:
        _write("gunicorn (sync workers)", where)
        self.where, self.upgrade = where, upgrade
        self.address = ("127.0.0.1", _free_port())
        self.master = 0
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self) -> None:
        bind = f"{self.address[0]}:{self.address[1]}"
        command = [GUNICORN, "--preload", "--workers", "2", "--graceful-timeout", "10", "--bind", bind, "wsgi_app:app"]
        proc = subprocess.Popen(command, cwd=self.where, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        self.master = proc.pid
        _until(lambda: get(self.address)[0] == "ok", "gunicorn's first reply")

    def start(self) -> None:
        self._spawn()

    def reload(self) -> None:
        old = self.master
        if not self.upgrade:
            os.kill(old, signal.SIGTERM)
            _until(lambda: not alive(old), "the old gunicorn to exit")
            self._spawn()
            return
        # A master that was itself started by USR2 ignores USR2 until it notices (about once a second) that
        # its parent is gone and it is promoted: ask again until a new master is there.
        asked = [0.0]

        def new_master_started() -> bool:
            if time.monotonic() - asked[0] > 0.5:
                os.kill(old, signal.SIGUSR2)
                asked[0] = time.monotonic()
            return len(children(old)) > 2  # the two workers and the new master

        _until(new_master_started, "the new master")

        def new_master_serves() -> bool:
            masters = [pid for pid in children(old) if children(pid)]
            return bool(masters) and get(self.address)[1] == masters[0]

        _until(new_master_serves, "a worker of the new master to answer")
        [self.master] = [pid for pid in children(old) if children(pid)]
        os.kill(old, signal.SIGQUIT)
        _until(lambda: not alive(old), "the old master to exit")

    def stop(self) -> None:
        if alive(self.master):
            os.kill(self.master, signal.SIGTERM)
            _until(lambda: not alive(self.master), "gunicorn to stop")
        for proc in self.procs:
            proc.wait(GIVE_UP)


def measure(scheme: Scheme, reloads: int) -> dict[str, int]:
    scheme.start()
    load = None
    try:
        load = HttpLoad(scheme.address).start()
        for _ in range(reloads):
            scheme.reload()
        counts = load.stop()
    finally:
        if load is not None:
            load.stop()
        scheme.stop()
    return {k: counts.get(k, 0) for k in ("ok", "refused", "reset", "eof", "non_2xx", "other")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        schemes: dict[str, Callable[[], Scheme]] = {
            "janus-net run + gunicorn sync": lambda: UnderRun("gunicorn (sync workers)", where),
            "janus-net run + uvicorn": lambda: UnderRun("uvicorn", where),
            "gunicorn USR2 + QUIT": lambda: Gunicorn(where, upgrade=True),
            "gunicorn stop + start": lambda: Gunicorn(where, upgrade=False),
        }
        print(
            f"{'scheme':<32} {'reloads':>7} {'requests':>9} {'refused':>8} {'reset':>6} {'no reply':>9} {'non-2xx':>8}"
        )
        for name, make in schemes.items():
            c = results[name] = measure(make(), args.reloads)
            total = sum(c.values())
            print(f"{name:<32} {args.reloads:>7} {total:>9} {c['refused']:>8} {c['reset']:>6} {c['eof']:>9} "
                  f"{c['non_2xx'] + c['other']:>8}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"reloads": args.reloads, "schemes": results}, indent=2))


if __name__ == "__main__":
    main()
