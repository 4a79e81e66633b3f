#!/usr/bin/env python3
"""Hand-over time: `jn.handoff.offer` -> `take` -> `ready()` for 1, 10 and 300 sockets.

One hand-over of ``n`` listening sockets is timed from the successor's ``take``
(connect, SO_PEERCRED both ways, the SCM_RIGHTS transfer in chunks of SCM_MAX_FD,
every descriptor checked and wrapped, the file list) to the end of ``ready()`` and
the predecessor's return (the ready/given exchange). Both sides run in this process
(the offer on a thread), so the figure is the protocol's cost without a process
start; the CPU clock is the process's (both threads).

`workloads` gives `make bench` (scripts/bench) its rows; ``bench_handover(n)`` is the
median seconds of one size, and run as a script this file prints one row per size.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import janus_net as jn

SIZES = (1, 10, 300)
ADDRESS = f"unix:@jn-bench-handover-{os.getpid()}"
#: Seconds after which a hand-over that did not happen fails the run instead of hanging it.
GIVE_UP = 30.0

# A measurement: run n hand-overs; return (hand-overs, wall seconds, cpu seconds).
Measure = Callable[[int], tuple[int, float, float]]
AnySocket = jn.Server | jn.Socket | jn.Stream


def hand_over(sockets: dict[str, AnySocket]) -> tuple[float, float]:
    """One complete hand-over of ``sockets``: (wall seconds, process CPU seconds); what was taken is closed."""
    ctx = jn.Context.with_timeout(GIVE_UP)
    failed: list[BaseException] = []

    def offer() -> None:
        try:
            jn.handoff.offer(ADDRESS, sockets, ctx=ctx)
        except BaseException as e:  # reported by the caller, not lost on the thread
            failed.append(e)

    offered = threading.Thread(target=offer, name="bench-handover-offer")
    offered.start()
    try:
        while True:  # until the offer listens (an abstract name shows no file to wait for)
            wall, cpu = time.perf_counter(), time.process_time()
            taken = jn.handoff.take(ADDRESS, ctx=ctx)
            if taken.pending:
                break
            if failed or ctx.expired:
                raise RuntimeError(f"no hand-over at {ADDRESS}: {failed[0] if failed else 'timed out'}")
            time.sleep(0.0002)  # let the offer's thread reach its listen
        try:
            taken.ready(ctx)
            offered.join()
            elapsed = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            _close_all(taken)
    finally:
        ctx.cancel()  # an offer still waiting (take failed) ends now
        offered.join()
    if failed:
        raise RuntimeError(f"hand-over at {ADDRESS} failed: {failed[0]!r}")
    return elapsed


def _listeners(n: int) -> dict[str, AnySocket]:
    sockets: dict[str, AnySocket] = {}
    try:
        for i in range(n):
            sockets[f"s{i}"] = jn.listen("127.0.0.1:0")
    except BaseException:
        _close_all(sockets)
        raise
    return sockets


def _close_all(sockets: dict[str, AnySocket]) -> None:
    for sock in sockets.values():
        sock.close()


def _measure(sockets: dict[str, AnySocket]) -> Measure:
    def measure(n: int) -> tuple[int, float, float]:
        wall = cpu = 0.0
        for _ in range(n):
            w, c = hand_over(sockets)
            wall, cpu = wall + w, cpu + c
        return n, wall, cpu

    return measure


def workloads(c_binary: Path | None) -> tuple[dict[str, tuple[Measure, int]], Callable[[], None]]:
    """The rows for scripts/bench: ``{"1 socket": (measure, hand-overs per round), ...}`` and a closer.

    ``c_binary`` (the compiled native/bench/bench.c) is not used: C has no hand-over protocol to compare.
    """
    del c_binary
    held: dict[int, dict[str, AnySocket]] = {}

    def close() -> None:
        for sockets in held.values():
            _close_all(sockets)

    try:
        for n in SIZES:
            held[n] = _listeners(n)
    except BaseException:
        close()
        raise
    # About 40-70 ms of hand-overs per row and round on this machine.
    per_round = {1: 50, 10: 40, 300: 8}
    rows = {f"{n} socket{'s' * (n > 1)}": (_measure(held[n]), per_round[n]) for n in SIZES}
    return rows, close


def bench_handover(n: int, rounds: int = 11) -> float:
    """Median seconds per hand-over of ``n`` listening sockets."""
    sockets = _listeners(n)
    try:
        return statistics.median(hand_over(sockets)[0] for _ in range(rounds))
    finally:
        _close_all(sockets)


def main() -> None:
    print(f"{'hand-over (offer -> take -> ready)':<40} {'sockets':>8} {'ms':>10}")
    for n in SIZES:
        print(f"{'':<40} {n:>8} {bench_handover(n) * 1000:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
