#!/usr/bin/env python3
"""What each step of the batched UDP loop costs (docs/performance.md, "Batched").

Each side of the loop is built up one step at a time, from the bare native call to the
user's loop, and each step is timed alone: thread CPU time of a burst of 32, the other
side of the socket outside the clock (a stdlib socket drains the sends, fills the queue
for the receives), the steps in A B ... then reversed order per round, medians and
quartiles of each step's ns per datagram and of its difference to the step before it
within the same round.

    .venv/bin/python scripts/bench_batched_steps.py [--rounds 15] [--bursts 300]
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import janus_net as jn
from janus_net._kernel import cell_io
from janus_net._shim import ffi, lib
from janus_net._sockets.mmsg_arrays import ReceiveBatch, SendBatch

BURST = 32
Step = Callable[[], int]  # one burst; returns the nanoseconds it timed


def send_steps() -> dict[str, Step]:
    """From a bare sendmmsg of 32 prepared headers to send_many of a list built per burst."""
    sender = jn.bind("127.0.0.1:0")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    dest = jn.parse_address(f"127.0.0.1:{sink.getsockname()[1]}")
    payloads = [b"b" * 64 for _ in range(BURST)]
    items = [(dest, p) for p in payloads]
    batch = SendBatch(BURST)
    batch.fill(items)
    desc, msgs, flags = sender._io.desc, batch.msgs, lib.JN_MSG_NOSIGNAL | lib.MSG_DONTWAIT
    sendmmsg, clock, send_many, fill = lib.jn_desc_sendmmsg, time.thread_time_ns, sender.send_many, batch.fill

    def drain() -> None:
        for _ in range(BURST):
            sink.recv(2048)

    def bare() -> int:
        t = clock()
        sendmmsg(desc, msgs, BURST, flags)
        t = clock() - t
        drain()
        return t

    def filled() -> int:
        t = clock()
        fill(items)
        sendmmsg(desc, msgs, BURST, flags)
        t = clock() - t
        drain()
        return t

    def whole() -> int:
        t = clock()
        send_many(items)
        t = clock() - t
        drain()
        return t

    def users() -> int:
        t = clock()
        send_many([(dest, p) for p in payloads])
        t = clock() - t
        drain()
        return t

    return {
        "send: bare jn_desc_sendmmsg of 32 prepared headers": bare,
        "send: + SendBatch.fill of a ready list": filled,
        "send: send_many of a ready list (the rest of send_many)": whole,
        "send: + the list the user's loop builds": users,
    }


def receive_steps() -> dict[str, Step]:
    """From a bare recvmmsg and its (data, source) pairs to receive_many, the queue filled untimed."""
    receiver = jn.bind("127.0.0.1:0")
    feeder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    feeder.bind(("127.0.0.1", 0))
    there = ("127.0.0.1", receiver.address.port)
    payload = b"r" * 64
    source = jn.parse_address(f"127.0.0.1:{feeder.getsockname()[1]}")
    batch = ReceiveBatch(BURST, 2048, True)
    desc, rx, clock = receiver._io.desc, batch.rx, time.thread_time_ns
    recvmmsg, receive_many_native = lib.jn_desc_recvmmsg, lib.jn_desc_receive_many
    cut = ffi.buffer(batch.buf).__getitem__
    cuts = [slice(2048 * k, 2048 * k + 64) for k in range(BURST)]
    pristine, size = ffi.buffer(batch.pristine)[:], ffi.sizeof("struct mmsghdr") * BURST
    receive_many, collect = receiver.receive_many, batch.collect

    def fill() -> None:
        for _ in range(BURST):
            feeder.sendto(payload, there)

    def bare() -> int:
        fill()
        t = clock()
        ffi.memmove(batch.msgs, pristine, size)
        got = recvmmsg(desc, batch.msgs, BURST, lib.MSG_DONTWAIT)
        _ = list(zip(map(cut, cuts[:got]), itertools.repeat(source, got), strict=True))
        return clock() - t

    def native() -> int:
        fill()
        t = clock()
        got = receive_many_native(desc, rx, BURST)
        _ = list(zip(map(cut, cuts[:got]), itertools.repeat(source, got), strict=True))
        return clock() - t

    def collected() -> int:
        fill()
        t = clock()
        got = receive_many_native(desc, rx, BURST)
        out: list[object] = []
        collect(got, out)
        return clock() - t

    def whole() -> int:
        fill()
        t = clock()
        receive_many(BURST)
        return clock() - t

    assert cell_io.RECEIVE_MANY_CALL[1] is receive_many_native  # the call the library makes
    return {
        "receive: bare recvmmsg (headers restored by memmove) + the (data, source) pairs": bare,
        "receive: jn_desc_receive_many (restores, receives, summarises) + the pairs": native,
        "receive: + ReceiveBatch.collect (the cuts, the source looked up)": collected,
        "receive: receive_many (the rest: checks, pool, the branch)": whole,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--bursts", type=int, default=300)
    args = parser.parse_args()
    for steps in (send_steps(), receive_steps()):
        names = list(steps)
        for step in steps.values():
            step()  # warm
        ns: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                step = steps[name]
                ns[name].append(sum(step() for _ in range(args.bursts)) / (args.bursts * BURST))
        before: list[float] | None = None
        for name in names:
            q1, q2, q3 = statistics.quantiles(ns[name], n=4, method="inclusive")
            row = f"{name:<82} {q2:8.1f} [{q1:.1f}-{q3:.1f}]"
            if before is not None:
                d1, d2, d3 = statistics.quantiles(
                    [b - a for a, b in zip(before, ns[name], strict=True)], n=4, method="inclusive"
                )
                row += f"  {d2:+7.1f} [{d1:+.1f} {d3:+.1f}]"
            print(row)
            before = ns[name]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
