#!/usr/bin/env python3
"""The UDP segmented workload of `make bench` (DESIGN §11, §15): datagrams per second.

Three implementations move the same traffic over loopback, 54 datagrams of 1200
bytes per burst (64,800 bytes: one send of at most 64 KiB):

* janus segmented: one ``send_segments`` (one sendmsg with UDP_SEGMENT), then
  ``receive_segments`` on a ``gro=True`` socket until the burst has arrived; the
  datagrams in each buffer are counted from its length and segment size, exactly as
  the C baseline counts them (an application that parses the buffer in place);
* janus segmented + split: the same, and every datagram visited as a memoryview
  from ``jn.split`` (one Python object per datagram, as the stdlib's bytes are);
* stdlib per-packet: 54 ``sendto`` then 54 ``recvfrom`` (what Python offers without
  GSO: CPython has no UDP_SEGMENT constant);
* C segmented: ``native/bench/bench.c segmented N``, the same syscalls with no
  interpreter in the way.

The target (§11) is janus segmented / stdlib per-packet (both rows of this file:
the same 1200-byte datagrams) >= 10x. ``scripts/bench`` calls `workloads` (the
hook protocol it shares with scripts/bench_handover.py) and puts the rows in its
table; run alone, this file prints its own medians of alternating rounds::

    .venv/bin/python scripts/bench_segments.py [--rounds 11] [--c build/bench/bench]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import janus_net as jn  # noqa: E402 - after the path above, as scripts/bench does

SEGMENT = 1200
SEGMENTS = 54
PAYLOAD = b"x" * (SEGMENT * SEGMENTS)
DATAGRAM = PAYLOAD[:SEGMENT]

# A measurement: run n bursts; return (datagrams, wall seconds, cpu seconds).
Measure = Callable[[int], tuple[int, float, float]]


def _timed(body: Callable[[int], int]) -> Measure:
    def measure(n: int) -> tuple[int, float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        ops = body(n)
        return ops, time.perf_counter() - wall, time.thread_time() - cpu

    return measure


class JanusSegmented:
    """send_segments + receive_segments (gro=True) + split."""

    def __init__(self) -> None:
        self.sender = jn.bind("127.0.0.1:0")
        try:
            self.receiver = jn.bind("127.0.0.1:0", gro=True)
        except BaseException:
            self.sender.close()
            raise

    def run(self, n: int) -> int:
        send, receive, dest = self.sender.send_segments, self.receiver.receive_segments, self.receiver.address
        for _ in range(n):
            send(dest, PAYLOAD, SEGMENT)
            got = 0
            while got < SEGMENTS:
                buffer, size, _source = receive()
                got += -(-len(buffer) // size) if size else 1
        return n * SEGMENTS

    def run_split(self, n: int) -> int:
        send, receive, split, dest = (
            self.sender.send_segments,
            self.receiver.receive_segments,
            jn.split,
            self.receiver.address,
        )
        for _ in range(n):
            send(dest, PAYLOAD, SEGMENT)
            got = 0
            while got < SEGMENTS:
                buffer, size, _source = receive()
                for _view in split(buffer, size):
                    got += 1
        return n * SEGMENTS

    def close(self) -> None:
        self.sender.close()
        self.receiver.close()


class StdlibPerPacket:
    """sendto + recvfrom, one datagram per call."""

    def __init__(self) -> None:
        self.a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.a.bind(("127.0.0.1", 0))
            self.b.bind(("127.0.0.1", 0))
        except BaseException:
            self.close()
            raise

    def run(self, n: int) -> int:
        sendto, recvfrom, dest = self.a.sendto, self.b.recvfrom, self.b.getsockname()
        for _ in range(n):
            for _ in range(SEGMENTS):
                sendto(DATAGRAM, dest)
            for _ in range(SEGMENTS):
                recvfrom(2048)
        return n * SEGMENTS

    def close(self) -> None:
        self.a.close()
        self.b.close()


def c_segmented(binary: Path) -> Measure:
    """``bench segmented N`` (N bursts of 54 datagrams); its own timing of the loop."""

    def measure(n: int) -> tuple[int, float, float]:
        out = subprocess.run([str(binary), "segmented", str(n)], capture_output=True, text=True, check=True).stdout
        ops, wall, cpu = out.split()
        return int(ops), float(wall), float(cpu)

    return measure


def workloads(c_binary: Path | None) -> tuple[dict[str, tuple[Measure, int]], Callable[[], None]]:
    """The rows for scripts/bench: ``{name: (measure, bursts per round)}``, and a closer for the sockets.

    ``c_binary`` is the compiled native/bench/bench.c, or None when there is no C today.
    """
    janus = JanusSegmented()
    try:
        stdlib = StdlibPerPacket()
    except BaseException:
        janus.close()
        raise
    # Bursts per round: about 50 ms of each row on this machine (a shorter sample is mostly noise).
    rows: dict[str, tuple[Measure, int]] = {
        "janus segmented": (_timed(janus.run), 3000),
        "janus segmented + split": (_timed(janus.run_split), 2000),
        "stdlib per-packet": (_timed(stdlib.run), 300),
    }
    if c_binary is not None:
        rows["C segmented"] = (c_segmented(c_binary), 8000)

    def close() -> None:
        janus.close()
        stdlib.close()

    return rows, close


def _per_datagram(sample: tuple[int, float, float], clock: str) -> float:
    ops, wall, cpu = sample
    return (wall if clock == "wall" else cpu) / ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--c", type=Path, default=REPO / "build" / "bench" / "bench", help="compiled bench.c")
    args = parser.parse_args()
    rows, close = workloads(args.c if args.c.exists() else None)
    samples: dict[str, list[tuple[int, float, float]]] = {name: [] for name in rows}
    try:
        names = list(rows)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                measure, bursts = rows[name]
                samples[name].append(measure(bursts))
    finally:
        close()
    for name, got in samples.items():
        rate = 1 / statistics.median(_per_datagram(s, args.clock) for s in got)
        print(f"{name:24} {rate / 1e6:8.3f} M datagrams/s")

    def ratio(a: str, b: str) -> str:
        if a not in samples or b not in samples:
            return "n/a"
        per_round = [
            _per_datagram(y, args.clock) / _per_datagram(x, args.clock)
            for x, y in zip(samples[a], samples[b], strict=True)
        ]
        q = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else [per_round[0]] * 3
        return f"{statistics.median(per_round):.2f}x (quartiles {q[0]:.2f}-{q[2]:.2f})"

    print(
        f"janus segmented / stdlib per-packet:         {ratio('janus segmented', 'stdlib per-packet')}  (target >= 10x)"
    )
    print(f"janus segmented + split / stdlib per-packet: {ratio('janus segmented + split', 'stdlib per-packet')}")
    print(f"janus segmented / C segmented:               {ratio('janus segmented', 'C segmented')}")
    print(f"C segmented / stdlib per-packet:             {ratio('C segmented', 'stdlib per-packet')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
