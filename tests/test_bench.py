"""`make bench` works: scripts/bench in --quick mode runs every workload and reports every target.

A smoke test only: it checks that the script runs to the end and that its JSON names
every DESIGN §11 target with a ratio (or "not available" for a workload another
module provides), never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TARGETS = {
    "listen cycle :core / stdlib socket sequence",
    "listen cycle :core / socket.create_server",
    "listen cycle :service / :core",
    "listen cycle :sovereign / :core",
    "UDP per-packet / stdlib per-packet",
    "UDP batched / C sendmmsg+recvmmsg",
    "UDP segmented / stdlib per-packet (datagrams/s)",
    "accept rate / stdlib",
    "import janus_net / import socket (installed, fresh interpreter)",
    "memory per open listener / stdlib socket (tracemalloc)",
    "fault seam unarmed: listen cycle time with / without the seam",
}


def test_quick_bench_reports_every_target(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench"), "--quick", "--rounds", "2", "--scale", "0.01", "--json",
         str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    ratios = {r["name"]: r for r in result["ratios"]}
    assert set(ratios) >= TARGETS, TARGETS - set(ratios)
    for name in TARGETS:
        entry = ratios[name]
        assert entry["target"] is not None
        assert entry["value"] is not None or entry.get("note") == "not available", entry
        if entry["value"] is not None:
            assert entry["met"] in (True, False)
    for workload in ("listen cycle", "udp", "parse_address"):
        assert result["ops_per_second"][workload], workload
    assert result["import_seconds"]["janus_net"]["median"] > 0
    assert result["tracemalloc_bytes_per_listener"]["janus"]["median"] > 0
    assert "ratios (decided on the wall clock)" in done.stdout
