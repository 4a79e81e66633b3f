#!/usr/bin/env python3
"""Hand-over time (issue 12): `jn.handoff.offer` -> `take` -> `ready()` for 1, 10 and 300 sockets.

``bench_handover(n)`` returns the median seconds one complete hand-over of ``n``
listening sockets takes (connect, SO_PEERCRED both ways, the SCM_RIGHTS transfer
in chunks of SCM_MAX_FD, every descriptor checked and wrapped, the file list, the
ready/given exchange). Both sides run in this process (the offer on a thread), so
the figure is the protocol's cost without a process start. Run it as a script to
print one row per size; `make bench` (scripts/bench) may import and call it.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import janus_net as jn


def bench_handover(n: int, rounds: int = 11) -> float:
    """Median seconds per hand-over of ``n`` listening sockets."""
    address = f"unix:@jn-bench-handover-{os.getpid()}"
    sockets: dict[str, jn.Server | jn.Socket | jn.Stream] = {f"s{i}": jn.listen("127.0.0.1:0") for i in range(n)}
    times = []
    try:
        for _ in range(rounds):
            offered = threading.Thread(target=jn.handoff.offer, args=(address, sockets))
            offered.start()
            while True:  # until the offer listens (an abstract name shows no file to wait for)
                started = time.perf_counter()
                taken = jn.handoff.take(address)
                if taken.pending:
                    break
            taken.ready()
            offered.join()
            times.append(time.perf_counter() - started)
            for sock in taken.values():
                sock.close()
    finally:
        for sock in sockets.values():
            sock.close()
    return statistics.median(times)


def main() -> None:
    print(f"{'hand-over (offer -> take -> ready)':<40} {'sockets':>8} {'ms':>10}")
    for n in (1, 10, 300):
        print(f"{'':<40} {n:>8} {bench_handover(n) * 1000:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
