"""Zero downtime under load: 20 upgrades by jn.handoff and 20 SIGHUP reloads of ``janus-net run``.

A real echo service (tests/zero_downtime_service.py) serves a TCP and a unix path
socket while a load client (tests/hammer.py) makes short connections to both, each
reply checked. Through every upgrade: no connection refused, none reset, every
reply correct; the unix socket file stays in place and is removed only by the last
owner.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hammer import Hammer

HERE = Path(__file__).resolve().parent
SERVICE = str(HERE / "zero_downtime_service.py")
UPGRADES = 20


def _targets(line: str) -> list[tuple[int, object]]:
    """The hammer's targets from a ``serving PID web=HOST:PORT u=unix:PATH`` line."""
    targets: list[tuple[int, object]] = []
    for field in line.split()[2:]:
        _, _, address = field.partition("=")
        if address.startswith("unix:"):
            targets.append((socket.AF_UNIX, address[len("unix:") :]))
        else:
            host, _, port = address.rpartition(":")
            targets.append((socket.AF_INET, (host, int(port))))
    return targets


def _serving_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("serving "), f"unexpected output {line!r}; exit {proc.poll()}"
    return line


def _assert_clean(counts: dict[str, int], errors: list[BaseException]) -> None:
    bad = {k: v for k, v in counts.items() if k != "ok"}
    assert not bad, f"failures under load: {bad}; first errors: {errors[:3]}"
    assert counts["ok"] >= UPGRADES, f"too little traffic went through: {counts}"


def test_twenty_handoff_upgrades_under_load(tmp_path: Path) -> None:
    handoff = f"unix:{tmp_path}/handoff"
    path = tmp_path / "echo.sock"
    argv = [sys.executable, SERVICE, "handoff", handoff, "web=127.0.0.1:0", f"u=unix:{path}"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)]
    hammer = None
    try:
        hammer = Hammer(_targets(_serving_line(procs[0]))).start()
        inode = path.stat().st_ino
        for _ in range(UPGRADES):
            procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
            _serving_line(procs[-1])
            # The predecessor returns from offer() once its successor is ready, drains, exits.
            assert procs[-2].wait(timeout=30) == 0
            assert path.stat().st_ino == inode, "the unix socket file was replaced or removed during an upgrade"
            time.sleep(0.05)  # the load runs a moment between upgrades: the pace of the test
        counts = hammer.stop()
        _assert_clean(counts, hammer.errors)
        assert path.exists()
        # The last owner removes the file (and its hand-over file) when it stops.
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(timeout=30) == 0
        assert not path.exists()
        assert list(tmp_path.iterdir()) == []
    finally:
        if hammer is not None:
            hammer.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def test_twenty_sighup_reloads_of_janus_net_run_under_load(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    janus_net = [sys.executable, "-m", "janus_net"]
    argv = [*janus_net, "run", "--listen", "web=127.0.0.1:0", "--listen", f"u=unix:{path}", "--stop-timeout", "20"]
    argv += ["--", sys.executable, SERVICE, "activation"]
    sup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sup.stdout is not None and sup.stderr is not None
    hammer = None
    try:
        assert sup.stdout.readline().startswith("listening on 127.0.0.1:")
        assert sup.stdout.readline() == f"listening on unix:{path} as u\n"
        line = _serving_line(sup)  # the child shares the supervisor's stdout
        first_pid = int(line.split()[1])
        hammer = Hammer(_targets(line)).start()
        inode = path.stat().st_ino
        log = []
        for _ in range(UPGRADES):
            sup.send_signal(signal.SIGHUP)
            new_pid = int(_serving_line(sup).split()[1])
            # Wait for the supervisor's word that the new one is ready and the old one is told to stop.
            while True:
                entry = sup.stderr.readline()
                log.append(entry)
                assert entry, f"the supervisor ended: {log}"
                if f"pid {new_pid} is ready; stopping" in entry:
                    break
            assert path.stat().st_ino == inode
            time.sleep(0.05)  # the load runs a moment between upgrades: the pace of the test
        counts = hammer.stop()
        _assert_clean(counts, hammer.errors)
        assert new_pid != first_pid
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == -signal.SIGTERM
        log += sup.stderr.readlines()
        # Every replaced command drained and exited by itself on SIGTERM (never SIGKILLed).
        # (The last one is stopped by the final SIGTERM and is reported too; an old one may
        # still be draining then, so it may be reported after the SIGTERM.)
        stopped = [entry for entry in log if " stopped (" in entry and f"pid {new_pid} " not in entry]
        assert len(stopped) == UPGRADES and all(entry.endswith(" stopped (0)\n") for entry in stopped), stopped
        assert not path.exists(), "janus-net run created the file: it removes it when it stops"
    finally:
        if hammer is not None:
            hammer.stop()
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        sup.stdout.close()
        sup.stderr.close()
