"""`make bench` works: scripts/bench in --quick mode runs every workload and reports every target.

A smoke test only: it checks that the script runs to the end, that its JSON names
every DESIGN §11 target with a ratio, and that the hooks (scripts/bench_segments.py,
scripts/bench_handover.py, scripts/bench_names.py) load and report their rows; never
how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import janus_net as jn

REPO = Path(__file__).resolve().parent.parent

TARGETS = {
    "listen cycle :core / stdlib socket sequence",
    "listen cycle :core / socket.create_server",
    "listen cycle :service / :core",
    "listen cycle :sovereign / :core",
    "UDP per-packet / stdlib per-packet",
    "UDP batched / C sendmmsg+recvmmsg",
    "UDP batched / stdlib per-packet",
    "UDP segmented (counted as C counts) / stdlib per-packet 1200 B",
    "accept rate / stdlib",
    "import janus_net / import socket (installed, fresh interpreter)",
    "memory per open listener / stdlib socket (tracemalloc + C heap)",
    "fault seam unarmed: listen cycle time with / without the seam",
    "resolve A+AAAA, a local DNS server / glibc getaddrinfo, lookups/s",
    "cancel or deadline of a lookup or connect_host → returned, p99 ms",
    "connect_host, 1st address blackholed: last DNS answer → connected, ms",
}
HAPPY_EYEBALLS = "janus connect_host, first address blackholed"


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
    broken = ("failed to load", "not available", "stopped in round", "were not found")
    # The seam is measured on the loop's own source: a change to the loop must keep it measurable.
    assert ratios["fault seam unarmed: listen cycle time with / without the seam"]["value"] is not None
    assert not [note for note in result["notes"] if any(b in note for b in broken)], result["notes"]
    # The hooks' rows, measured in the same rounds as the rest.
    segmented = result["ops_per_second"]["udp segmented"]
    expected = {"janus segmented", "janus segmented + split", "stdlib per-packet"}
    if not [note for note in result["notes"] if note.startswith("C baseline skipped")]:
        expected.add("C segmented")
    assert expected <= set(segmented), segmented
    assert all(rate["wall"] > 0 and rate["cpu"] > 0 for rate in segmented.values()), segmented
    assert ratios["UDP segmented (counted as C counts) / stdlib per-packet 1200 B"]["value"] is not None
    assert ratios["UDP segmented + jn.split (a memoryview each) / stdlib per-packet 1200 B"]["value"] is not None
    handover = result["seconds_per_operation"]["hand-over"]
    assert set(handover) == {"1 socket", "10 sockets", "300 sockets"}
    for clocks in handover.values():
        assert 0 < clocks["wall"]["q1"] <= clocks["wall"]["median"] <= clocks["wall"]["q3"], clocks
    assert "hand-over (ms each, median [quartiles])" in done.stdout
    assert "the target row is 'janus segmented'" in done.stdout
    assert result["import_seconds"]["janus_net"]["median"] > 0
    assert result["tracemalloc_bytes_per_listener"]["janus"]["median"] > 0
    assert "ratios (decided on the wall clock)" in done.stdout
    check_names(result["seconds_per_operation"]["names"], result["notes"])


def check_names(names: dict[str, object], notes: list[str]) -> None:
    # The baselines run in every tree; janus_net's rows wherever it has resolve / connect_host.
    assert {"glibc getaddrinfo", "asyncio open_connection, happy_eyeballs_delay=0.25"} <= set(names), names
    assert [impl for impl in names if impl.startswith("stdlib create_connection, timeout")], names
    assert [note for note in notes if "the DNS server is dnsmasq" in note or "tests/dns_server.py" in note], notes
    if hasattr(jn, "resolve"):
        assert {"janus resolve", "janus resolve cancelled", "janus resolve past its deadline"} <= set(names), notes
    if hasattr(jn, "connect_host"):
        assert {HAPPY_EYEBALLS, "janus connect_host cancelled"} <= set(names), notes
    assert not [note for note in notes if "left a thread or an fd" in note and not note.endswith(": 0")], notes


@pytest.mark.parametrize("server", ["auto", "test"])
def test_names_bench_alone_reports_its_three_targets(server: str, tmp_path: Path) -> None:
    # scripts/bench_names.py run alone (its --quick: two rounds, a few seconds), against dnsmasq where it is
    # installed, and against tests/dns_server.py (what a machine without dnsmasq gets).
    out = tmp_path / "names.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_names.py"), "--quick", f"--server={server}",
                           "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    targets = {t["name"]: t for t in result["targets"]}
    assert set(targets) >= {name for name in TARGETS if "DNS" in name or "lookup" in name}, targets
    for entry in targets.values():
        assert entry["value"] is not None or entry.get("note") == "not available", entry
    assert "glibc getaddrinfo" in done.stdout
    if server == "test":
        assert "the DNS server is tests/dns_server.py" in done.stdout


def test_reload_bench_reports_every_scheme(tmp_path: Path) -> None:
    # A smoke run of scripts/bench_reload.py (make bench's reload table): one reload per scheme.
    out = tmp_path / "reload.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_reload.py"), "--reloads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    schemes = result["schemes"]
    assert set(schemes) == {"janus-net run + gunicorn sync", "janus-net run + uvicorn", "gunicorn USR2 + QUIT",
                            "gunicorn stop + start"}  # fmt: skip
    for name in ("janus-net run + gunicorn sync", "janus-net run + uvicorn"):
        assert schemes[name]["refused"] == 0 and schemes[name]["ok"] > 0, schemes
    assert "refused" in done.stdout.splitlines()[0]
