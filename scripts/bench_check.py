#!/usr/bin/env python3
"""An independent check of `make bench`'s UDP rows: the same workloads, written again.

Nothing here comes from scripts/bench: its own loops, its own clocks (nanosecond
counters, read around each sample), its own order (A B B A rounds: each pair of
implementations runs in both orders), its own statistics (median and quartiles of
the per-round ratios). What is measured is a user's loop, as DESIGN §11 words it:

* per-packet: ``s.send(dest, data)`` with ``dest`` an address value, then
  ``data, source = r.receive(2048)``; against ``sendto``/``recvfrom``;
* batched: ``s.send_many(list of 32 (dest, data))``, then ``receive_many`` until the 32
  are in, each ``(data, source)`` unpacked; against the same stdlib per-packet loop;
* send and receive apart: the other side (draining, filling) outside the clocks;
* segmented: 54 datagrams of 1200 bytes per ``send_segments``, ``receive_segments``
  on a ``gro=True`` socket, each buffer ``jn.split`` into its datagrams, every one
  visited; and counted from length and segment size without a view each; against
  stdlib per-packet of the same 1200-byte datagrams.

``--floor`` also measures the floor cffi allows: the shim's own calls with every
argument ready, no janus_net Python around them. ``--factors`` also measures what a
harness may do differently, one factor at a time, as ratios to the stdlib's loop
changed the same way (payload, receive size, the destination as text or a value made
per send, one send then one receive, the source's host read). ``--compare
build/bench.json`` (``make bench BENCH_ARGS="--json build/bench.json"``) prints both
harnesses' ratios side by side: they agree where their quartile ranges overlap.

    .venv/bin/python scripts/bench_check.py [--rounds 15] [--bursts 400] [--factors] [--floor] [--compare PATH]
"""

# The loops unpack (data, source) and read what they do not use: that is the user's loop being measured.
# ruff: noqa: RUF059, B007, B018
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import janus_net as jn  # noqa: E402 - after the path above

BURST = 32
SEGMENT, SEGMENTS = 1200, 54
Loop = Callable[[int], int]  # runs n bursts, returns datagrams


def udp_pair() -> tuple[jn.Socket, jn.Socket, socket.socket, socket.socket]:
    ja, jb = jn.bind("127.0.0.1:0"), jn.bind("127.0.0.1:0")
    sa, sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sa.bind(("127.0.0.1", 0))
    sb.bind(("127.0.0.1", 0))
    return ja, jb, sa, sb


def per_packet_loops(payload: bytes = b"p" * 64, size: int = 2048, dest_kind: str = "value", one_to_one: bool = False,
                     read_host: bool = False) -> tuple[Loop, Loop, Callable[[], None]]:  # fmt: skip
    """(janus loop, stdlib loop, close) for one shape of the per-packet workload."""
    ja, jb, sa, sb = udp_pair()
    port, sport = jb.address.port, sb.getsockname()[1]
    text = f"127.0.0.1:{port}"
    value = jn.parse_address(text)

    def janus(n: int) -> int:
        send, receive, made = ja.send, jb.receive, jn.Ip4Address
        for _ in range(n):
            for _ in range(BURST):
                dest = value if dest_kind == "value" else text if dest_kind == "text" else made("127.0.0.1", port)
                send(dest, payload)
                if one_to_one:
                    data, source = receive(size)
                    if read_host:
                        source.host
            if not one_to_one:
                for _ in range(BURST):
                    data, source = receive(size)
                    if read_host:
                        source.host
        return n * BURST

    def stdlib(n: int) -> int:
        sendto, recvfrom, to = sa.sendto, sb.recvfrom, ("127.0.0.1", sport)
        for _ in range(n):
            for _ in range(BURST):
                sendto(payload, to)
                if one_to_one:
                    data, source = recvfrom(size)
                    if read_host:
                        source[0]
            if not one_to_one:
                for _ in range(BURST):
                    data, source = recvfrom(size)
                    if read_host:
                        source[0]
        return n * BURST

    def close() -> None:
        for s in (ja, jb, sa, sb):
            s.close()

    return janus, stdlib, close


def batched_loop() -> tuple[Loop, Callable[[], None]]:
    ja, jb = jn.bind("127.0.0.1:0"), jn.bind("127.0.0.1:0")
    dest = jn.parse_address(f"127.0.0.1:{jb.address.port}")
    payloads = [b"b" * 64 for _ in range(BURST)]

    def janus(n: int) -> int:
        send_many, receive_many = ja.send_many, jb.receive_many
        for _ in range(n):
            send_many([(dest, p) for p in payloads])
            taken = 0
            while taken < BURST:
                for data, source in receive_many(BURST - taken):
                    taken += 1
        return n * BURST

    def close() -> None:
        ja.close()
        jb.close()

    return janus, close


class Apart:
    """Sends timed with the sink drained untimed; receives timed with the queue filled untimed."""

    def __init__(self) -> None:
        self.ja, self.jb, self.sa, self.sb = udp_pair()
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.sink.setblocking(False)
        self.helper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.helper.bind(("127.0.0.1", 0))
        self.spent = 0  # ns of the current sample, summed over the timed parts

    def timed_sends(self, send: Callable[[], object]) -> Loop:
        def run(n: int) -> int:
            for _ in range(n):
                t = time.thread_time_ns()
                send()
                self.spent += time.thread_time_ns() - t
                try:
                    while True:
                        self.sink.recv(2048)
                except BlockingIOError:
                    pass
            return n * BURST

        return run

    def timed_receives(self, receive: Callable[[], object], port: int) -> Loop:
        def run(n: int) -> int:
            for _ in range(n):
                for _ in range(BURST):
                    self.helper.sendto(b"r" * 64, ("127.0.0.1", port))
                t = time.thread_time_ns()
                receive()
                self.spent += time.thread_time_ns() - t
            return n * BURST

        return run

    def loops(self) -> dict[str, Loop]:
        jsend, ssend, jrecv, srecv = self.ja.send, self.sa.sendto, self.jb.receive, self.sb.recvfrom
        jdest = jn.parse_address(f"127.0.0.1:{self.sink.getsockname()[1]}")
        sdest = ("127.0.0.1", self.sink.getsockname()[1])

        def janus_send() -> None:
            for _ in range(BURST):
                jsend(jdest, b"s" * 64)

        def stdlib_send() -> None:
            for _ in range(BURST):
                ssend(b"s" * 64, sdest)

        def janus_receive() -> None:
            for _ in range(BURST):
                data, source = jrecv(2048)

        def stdlib_receive() -> None:
            for _ in range(BURST):
                data, source = srecv(2048)

        return {
            "janus send": self.timed_sends(janus_send),
            "stdlib send": self.timed_sends(stdlib_send),
            "janus receive": self.timed_receives(janus_receive, self.jb.address.port),
            "stdlib receive": self.timed_receives(stdlib_receive, self.sb.getsockname()[1]),
        }

    def close(self) -> None:
        for s in (self.ja, self.jb, self.sa, self.sb, self.sink, self.helper):
            s.close()


def segmented_loops() -> tuple[dict[str, Loop], Callable[[], None]]:
    sender, receiver = jn.bind("127.0.0.1:0"), jn.bind("127.0.0.1:0", gro=True)
    sa, sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sa.bind(("127.0.0.1", 0))
    sb.bind(("127.0.0.1", 0))
    dest = jn.parse_address(f"127.0.0.1:{receiver.address.port}")
    sdest = ("127.0.0.1", sb.getsockname()[1])
    block, one = b"g" * (SEGMENT * SEGMENTS), b"g" * SEGMENT

    def janus(split: bool) -> Loop:
        def run(n: int) -> int:
            send, receive, cut = sender.send_segments, receiver.receive_segments, jn.split
            for _ in range(n):
                send(dest, block, SEGMENT)
                seen = 0
                while seen < SEGMENTS:
                    buffer, size, source = receive()
                    if split:
                        for _datagram in cut(buffer, size):
                            seen += 1
                    else:
                        seen += (len(buffer) + size - 1) // size
            return n * SEGMENTS

        return run

    def stdlib(n: int) -> int:
        for _ in range(n):
            for _ in range(SEGMENTS):
                sa.sendto(one, sdest)
            for _ in range(SEGMENTS):
                data, source = sb.recvfrom(2048)
        return n * SEGMENTS

    def close() -> None:
        for s in (sender, receiver, sa, sb):
            s.close()

    return {"janus segmented + split": janus(True), "janus segmented": janus(False), "stdlib 1200 B": stdlib}, close


def floor_loops() -> tuple[dict[str, Loop], Callable[[], None]]:
    """The cffi floor: the shim's calls with everything ready, no janus_net Python around them.

    Per-packet: jn_desc_sendto with the sockaddr encoded once, jn_desc_recvfrom plus
    the bytes of each datagram (ffi.unpack), the source not decoded. Batched: one
    jn_desc_sendmmsg of 32 prepared headers, the receive headers restored from a copy,
    one jn_desc_recvmmsg, the bytes of each and a (data, source) pair each. Against
    the same loops of janus_net's API and of the stdlib.
    """
    from janus_net._shim import ffi, lib  # the floor is the shim itself

    ja, jb, sa, sb = udp_pair()
    dest = jb.address
    encoded, payload = dest.sockaddr, b"f" * 64
    flags = lib.JN_MSG_NOSIGNAL | lib.MSG_DONTWAIT
    buf, storage = ffi.new("char[2048]"), ffi.new("struct sockaddr_storage *")
    sockaddr, length = ffi.cast("struct sockaddr *", storage), ffi.new("socklen_t *")
    out = ffi.new("char[]", payload * BURST)
    smsgs, siov = ffi.new("struct mmsghdr[]", BURST), ffi.new("struct iovec[]", BURST)
    rmsgs, riov = ffi.new("struct mmsghdr[]", BURST), ffi.new("struct iovec[]", BURST)
    names, rbuf = ffi.new("struct sockaddr_storage[]", BURST), ffi.new("char[]", 2048 * BURST)
    for k in range(BURST):
        siov[k].iov_base, siov[k].iov_len = out + 64 * k, 64
        header = smsgs[k].msg_hdr
        header.msg_name, header.msg_namelen, header.msg_iov, header.msg_iovlen = (
            encoded.pointer,
            encoded.length,
            siov + k,
            1,
        )
        riov[k].iov_base, riov[k].iov_len = rbuf + 2048 * k, 2048
        header = rmsgs[k].msg_hdr
        header.msg_name, header.msg_namelen, header.msg_iov, header.msg_iovlen = (
            names + k,
            ffi.sizeof(storage[0]),
            riov + k,
            1,
        )
    pristine = ffi.buffer(rmsgs)[:]
    cut = ffi.buffer(rbuf).__getitem__
    cuts = [slice(2048 * k, 2048 * k + 64) for k in range(BURST)]
    sdest = sb.getsockname()

    def native(n: int) -> int:
        sendto, recvfrom, unpack, a, b = lib.jn_desc_sendto, lib.jn_desc_recvfrom, ffi.unpack, ja._desc, jb._desc
        for _ in range(n):
            for _ in range(BURST):
                sendto(a, payload, 64, flags, encoded.pointer, encoded.length)
            for _ in range(BURST):
                length[0] = 128
                _data = unpack(buf, recvfrom(b, buf, 2048, lib.MSG_DONTWAIT, sockaddr, length))
        return n * BURST

    # The headers point into these: the loop holds them, or they are freed when this function returns.
    held = (siov, riov, out, names, rbuf)

    def native_batched(n: int) -> int:
        sendmmsg, recvmmsg, a, b = lib.jn_desc_sendmmsg, lib.jn_desc_recvmmsg, ja._desc, jb._desc
        if held is None:  # never: the reference is what keeps them
            return 0
        for _ in range(n):
            sendmmsg(a, smsgs, BURST, flags)
            ffi.memmove(rmsgs, pristine, len(pristine))
            got = recvmmsg(b, rmsgs, BURST, lib.MSG_DONTWAIT)
            _pairs = list(zip(map(cut, cuts[:got]), [dest] * got, strict=True))
        return n * BURST

    def janus(n: int) -> int:
        send, receive = ja.send, jb.receive
        for _ in range(n):
            for _ in range(BURST):
                send(dest, payload)
            for _ in range(BURST):
                data, source = receive(2048)
        return n * BURST

    def janus_batched(n: int) -> int:
        send_many, receive_many, messages = ja.send_many, jb.receive_many, [(dest, payload)] * BURST
        for _ in range(n):
            send_many(messages)
            taken = 0
            while taken < BURST:
                taken += len(receive_many(BURST - taken))
        return n * BURST

    def stdlib(n: int) -> int:
        for _ in range(n):
            for _ in range(BURST):
                sa.sendto(payload, sdest)
            for _ in range(BURST):
                data, source = sb.recvfrom(2048)
        return n * BURST

    def close() -> None:
        for s in (ja, jb, sa, sb):
            s.close()

    loops = {
        "cffi floor per-packet": native,
        "cffi floor batched": native_batched,
        "janus per-packet (floor loop)": janus,
        "janus batched (floor loop)": janus_batched,
        "stdlib per-packet (floor loop)": stdlib,
    }
    return loops, close


def sample(loop: Loop, n: int, apart: Apart | None) -> float:
    """Nanoseconds per datagram of one run (thread CPU time; the apart loops time their own parts)."""
    if apart is not None:
        apart.spent = 0
        count = loop(n)
        return apart.spent / count
    t = time.thread_time_ns()
    count = loop(n)
    return (time.thread_time_ns() - t) / count


def rounds_of(loops: dict[str, Loop], pairs: list[tuple[str, str]], rounds: int, n: int,
              apart: Apart | None = None) -> dict[str, tuple[float, float, float]]:  # fmt: skip
    """Per round each loop once (A B ... then reversed the next round); ratios a/b per round; quartiles."""
    for loop in loops.values():
        loop(1)  # warm: first-use allocations are no round's
    ns: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            ns[name].append(sample(loops[name], n, apart))
    out = {}
    for a, b in pairs:
        # A segmented pair is a rate ratio (datagrams per second, as §11 words it): b's time / a's.
        rate = "segmented" in a
        ratios = [(y / x if rate else x / y) for x, y in zip(ns[a], ns[b], strict=True)]
        q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
        out[f"{a} / {b}{' (rate)' if rate else ''}"] = (q1, q2, q3)
    for name, values in ns.items():
        out[f"{name} (ns per datagram)"] = (min(values), statistics.median(values), max(values))
    return out


# The names scripts/bench gives the same ratios, for --compare.
BENCH_NAMES = {
    "janus per-packet / stdlib per-packet": "UDP per-packet / stdlib per-packet",
    "janus batched / stdlib per-packet": "UDP batched / stdlib per-packet",
    "janus send / stdlib send": "UDP send / stdlib sendto (timed apart)",
    "janus receive / stdlib receive": "UDP receive / stdlib recvfrom (timed apart)",
    "janus segmented / stdlib 1200 B (rate)": "UDP segmented (counted as C counts) / stdlib per-packet 1200 B",
    "janus segmented + split / stdlib 1200 B (rate)": (
        "UDP segmented + jn.split (a memoryview each) / stdlib per-packet 1200 B"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--bursts", type=int, default=400, help="bursts per sample (per-packet, batched)")
    parser.add_argument("--factors", action="store_true", help="also measure each harness factor alone")
    parser.add_argument("--floor", action="store_true", help="also measure the bare shim calls (the cffi floor)")
    parser.add_argument("--compare", type=Path, help="scripts/bench --json output to set beside")
    parser.add_argument("--json", type=Path, help="write the ratios here")
    args = parser.parse_args()
    results: dict[str, tuple[float, float, float]] = {}

    janus, stdlib, close = per_packet_loops()
    many, close_many = batched_loop()
    try:
        results |= rounds_of(
            {"janus per-packet": janus, "janus batched": many, "stdlib per-packet": stdlib},
            [("janus per-packet", "stdlib per-packet"), ("janus batched", "stdlib per-packet")],
            args.rounds, args.bursts,
        )  # fmt: skip
    finally:
        close()
        close_many()
    apart = Apart()
    try:
        results |= rounds_of(
            apart.loops(), [("janus send", "stdlib send"), ("janus receive", "stdlib receive")], args.rounds,
            args.bursts, apart,
        )  # fmt: skip
    finally:
        apart.close()
    seg, close_seg = segmented_loops()
    try:
        results |= rounds_of(
            seg, [("janus segmented", "stdlib 1200 B"), ("janus segmented + split", "stdlib 1200 B")], args.rounds,
            max(1, args.bursts // 2),
        )  # fmt: skip
    finally:
        close_seg()
    if args.floor:
        loops, close_floor = floor_loops()
        base = "stdlib per-packet (floor loop)"
        try:
            results |= rounds_of(
                loops, [(name, base) for name in loops if name != base], args.rounds, args.bursts
            )  # fmt: skip
        finally:
            close_floor()
    if args.factors:
        shapes: dict[str, dict[str, object]] = {
            "as above": {}, "1200-byte payload": {"payload": b"p" * 1200}, "receive(65536)": {"size": 65536},
            "dest as text": {"dest_kind": "text"}, "dest value made per send": {"dest_kind": "made"},
            "one send, one receive": {"one_to_one": True}, "source.host read": {"read_host": True},
        }  # fmt: skip
        for label, shape in shapes.items():
            janus, stdlib, close = per_packet_loops(**shape)  # type: ignore[arg-type]
            try:
                got = rounds_of(
                    {"janus": janus, "stdlib": stdlib}, [("janus", "stdlib")], args.rounds, args.bursts // 2
                )
            finally:
                close()
            results[f"factor: {label}: janus / stdlib per-packet"] = got["janus / stdlib"]

    bench: dict[str, dict[str, float]] = {}
    if args.compare is not None:
        for entry in json.loads(args.compare.read_text())["ratios"]:
            spread = entry.get("cpu")
            if spread is not None:
                bench[entry["name"]] = spread
    title = "ratio (thread CPU time; median [quartiles]; segmented: rates)"
    print(f"{title:<64} {'bench_check':>20} {'make bench (cpu)':>22}  agree")
    for name, (q1, q2, q3) in results.items():
        row = f"{name:<64} {q2:>8.3f} [{q1:.2f}-{q3:.2f}]"
        other = bench.get(BENCH_NAMES.get(name, ""))
        if other is not None:
            agree = q1 <= other["q3"] and other["q1"] <= q3
            row += f" {other['median']:>9.3f} [{other['q1']:.2f}-{other['q3']:.2f}]  {'yes' if agree else 'NO'}"
        print(row)
    if args.json is not None:
        named = {k: dict(zip(("q1", "median", "q3"), v, strict=True)) for k, v in results.items()}
        args.json.write_text(json.dumps(named, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
