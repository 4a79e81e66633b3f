#!/usr/bin/env python3
"""The names rows of `make bench` (DESIGN §11, §17): resolve, cancel, Happy Eyeballs.

Everything runs in one child process made by ``unshare --net --mount``: there ``lo``
is brought up, test files are bind-mounted over /etc/resolv.conf (``nameserver
127.0.0.1``, ``options timeout:1 attempts:1``), /etc/hosts (localhost only) and
/etc/nsswitch.conf (``hosts: files dns``), and a real DNS server answers on
127.0.0.1:53 of that namespace: dnsmasq (Debian's ``dnsmasq-base``, installed by
scripts/install-test-tools) when it is there, else the test server of
tests/dns_server.py. The output says which. janus_net and glibc read the same files
and ask the same server; nothing leaves the namespace. The parent (scripts/bench,
or this file run alone) sends the child one line per measurement, so the rows are
measured in the same alternating rounds as every other workload. Rows:

* resolve: ``jn.resolve(NAME, 80)`` (A + AAAA, the files read on each call, as glibc
  does) and with a config loaded once, against ``socket.getaddrinfo(NAME, 80,
  type=SOCK_STREAM)`` (glibc asks A and AAAA at once too); lookups per second.
* cancel: ``jn.resolve`` of a name the server never answers (dnsmasq forwards it to a
  UDP socket that reads nothing) and ``jn.connect_host`` to a name whose one address
  is blackholed, ended by ``ctx.cancel()`` from another thread or by the context's
  deadline; milliseconds from the cancel (or the deadline) to the call's return, each
  one, for the p99; after every call the process's threads (/proc/self/task) and fds
  (/proc/self/fd) are counted against the count before it. Beside it, the thread
  pool's answer: asyncio's ``getaddrinfo`` cancelled by ``wait_for`` returns at once,
  and its worker thread stays busy until glibc gives up (timeout:1 here).
* happy eyeballs: a name with AAAA ::1 (a listener whose accept queue is full, so the
  kernel drops the SYN: a blackhole without a firewall) and A 127.0.0.1 (a listener
  that accepts), the same port: ``jn.connect_host`` (attempt_delay 0.25) against
  ``socket.create_connection`` (timeout T per address, as the stdlib applies it) and
  asyncio's ``open_connection(..., happy_eyeballs_delay=0.25)``; time from the last DNS
  answer used (the end of each one's lookup: glibc's getaddrinfo returns, janus_net's
  NameLookup is done) to connected.

Run alone: ``.venv/bin/python scripts/bench_names.py [--quick] [--rounds 11] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NAME = "www.bench.test"  # A 127.0.0.1 + AAAA ::1
HE_NAME = "he.bench.test"  # AAAA ::1 (blackholed) + A 127.0.0.1 (accepting), the same port
HOLE_NAME = "hole.bench.test"  # AAAA ::1 only: blackholed
SLOW_NAME = "x.slow.bench.test"  # the server forwards it to a socket that never answers
ATTEMPT_DELAY = 0.25
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
ZONE = {NAME: ("127.0.0.1", "::1"), HE_NAME: ("127.0.0.1", "::1"), HOLE_NAME: ("::1",)}

# A measurement: run n operations; return (operations, wall seconds, cpu seconds).
Measure = Callable[[int], tuple[int, float, float]]

# The rows, in the order of the table: (impl, kind, base_n). kind: rate (wall = the loop's time),
# latency (wall = the sum of each operation's latency, kept one by one for the percentiles).
ROWS = [
    ("janus resolve", "rate", 2000),
    ("janus resolve, config loaded once", "rate", 2000),
    ("glibc getaddrinfo", "rate", 2000),
    ("janus resolve cancelled", "latency", 20),
    ("janus resolve past its deadline", "latency", 20),
    ("janus connect_host cancelled", "latency", 20),
    ("janus connect_host past its deadline", "latency", 20),
    ("asyncio getaddrinfo cancelled (returned)", "latency", 1),
    ("janus connect_host, first address blackholed", "latency", 3),
    ("asyncio open_connection, happy_eyeballs_delay=0.25", "latency", 3),
    ("stdlib create_connection, timeout T", "latency", 1),
]
ENDED_ROWS = [impl for impl, _kind, _n in ROWS if impl.startswith("janus") and ("cancel" in impl or "deadline" in impl)]
HAPPY_ROWS = [impl for impl, _kind, _n in ROWS if "connect" in impl and impl not in ENDED_ROWS]
JANUS_DNS_ROWS = {impl for impl, _kind, _n in ROWS if impl.startswith("janus resolve")}
JANUS_CONNECT_ROWS = {impl for impl, _kind, _n in ROWS if impl.startswith("janus connect_host")}


# --- the child, inside the namespace


def _pdeathsig() -> None:
    # The server dies with the child that started it, whatever ends the child.
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_server(home: Path, blackhole_port: int, which: str) -> tuple[str, Callable[[], None]]:
    """A DNS server on 127.0.0.1:53 of this namespace: (what it is, stop). ``which``: auto, dnsmasq or test.

    dnsmasq keeps each forward of the blackholed name pending until its own timeout, and
    past ``--dns-forward-max`` (150 by default) it answers REFUSED: the cancel rows make
    hundreds, so the bound is raised far above what a run makes.
    """
    dnsmasq = shutil.which("dnsmasq") or next((p for p in ("/usr/sbin/dnsmasq",) if os.path.exists(p)), None)
    if which == "dnsmasq" and dnsmasq is None:
        raise RuntimeError("dnsmasq is not installed (scripts/install-test-tools installs dnsmasq-base)")
    if dnsmasq is not None and which != "test":
        zone = home / "zone"
        zone.write_text("".join(f"{a} {name}\n" for name, addrs in ZONE.items() for a in addrs))
        words = subprocess.run([dnsmasq, "--version"], capture_output=True, text=True).stdout.split()
        version = words[2] if len(words) > 2 else "version unknown"
        proc = subprocess.Popen(
            [dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             f"--addn-hosts={zone}", "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53",
             "--user=root", "--pid-file=", "--cache-size=0", "--dns-forward-max=10000",
             f"--server=/slow.bench.test/127.0.0.1#{blackhole_port}", f"--log-facility={home / 'dnsmasq.log'}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_pdeathsig,
        )  # fmt: skip

        def stop() -> None:
            proc.kill()
            proc.wait()

        return f"dnsmasq {version}", stop
    if not (REPO / "tests" / "dns_server.py").exists():
        raise RuntimeError("neither dnsmasq nor tests/dns_server.py is there (scripts/install-test-tools)")
    # Its own process, so that its thread does not share this one's GIL with the measurements.
    proc = subprocess.Popen([sys.executable, "-c", TEST_SERVER, json.dumps(ZONE), SLOW_NAME], cwd=REPO / "tests",
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, preexec_fn=_pdeathsig)  # fmt: skip

    def stop_test_server() -> None:
        assert proc.stdin is not None
        proc.stdin.close()  # it stops when its stdin ends
        proc.wait()

    why = " (dnsmasq is not installed)" if which == "auto" else ""
    return f"tests/dns_server.py{why}", stop_test_server


TEST_SERVER = """
import json, sys
sys.path.insert(0, ".")
from dns_server import DnsServer
with DnsServer(host="127.0.0.1", port=53) as server:
    for name, addrs in json.loads(sys.argv[1]).items():
        server.add(name, a=[a for a in addrs if ":" not in a], aaaa=[a for a in addrs if ":" in a])
    server.on(sys.argv[2], blackhole=True)
    sys.stdin.read()
"""


def wait_for_server() -> None:
    """Until 127.0.0.1:53 answers (a query for NAME over UDP), at most 5 s."""
    query = (
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + b"".join(bytes([len(p)]) + p.encode() for p in NAME.split("."))
        + b"\x00\x00\x01\x00\x01"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        for _ in range(50):
            try:
                s.sendto(query, ("127.0.0.1", 53))
                if s.recv(512)[:2] == b"\x12\x34":
                    return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError("the DNS server did not answer on 127.0.0.1:53")


def blackholed_listener(port: int) -> tuple[socket.socket, list[socket.socket]]:
    """[::1]:port listening with a full accept queue: the kernel drops every further SYN."""
    hole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    hole.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    hole.bind(("::1", port))
    hole.listen(0)  # Linux queues backlog + 1 connections: one filler fills it
    fillers = []
    while True:
        filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        filler.setblocking(False)
        fillers.append(filler)
        # Pending: wait to see whether it completes; it never does once this SYN is dropped.
        if filler.connect_ex(("::1", port)) != 0 and not socket_writable(filler, 0.2):
            return hole, fillers
        if len(fillers) > 8:
            raise RuntimeError("the accept queue never filled")


def socket_writable(s: socket.socket, timeout: float) -> bool:
    import select

    return bool(select.select([], [s], [], timeout)[1])


def counts() -> tuple[int, int]:
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


class Child:
    """The measurements, each run by name with a count; answers a dict per measurement."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.stdlib_timeout = 0.3 if quick else 1.0
        self.good = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.good.getsockname()[1]
        self.hole, self.fillers = blackholed_listener(self.port)
        self.orders: queue.Queue[tuple[Any, float, list[float]] | None] = queue.Queue()
        self.canceller = threading.Thread(target=self._cancel_loop, daemon=True)
        self.canceller.start()
        self.loop = asyncio.new_event_loop()
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(4))
        self.busy_after_cancel: list[float] = []
        self.janus, self.janus_missing = self._probe_janus()

    def _probe_janus(self) -> tuple[set[str], dict[str, str]]:
        """Which janus rows can run in this tree: (rows, {row: why not})."""
        missing: dict[str, str] = {}
        try:
            import janus_net as jn
        except Exception as e:
            return set(), dict.fromkeys(JANUS_DNS_ROWS | JANUS_CONNECT_ROWS, f"import janus_net: {e}")
        rows: set[str] = set()
        try:
            got = jn.resolve(NAME, 80)  # type: ignore[attr-defined]
            if sorted(str(a).rsplit(":", 1)[0].strip("[]") for a in got.addresses) != ["127.0.0.1", "::1"]:
                raise RuntimeError(f"resolve({NAME!r}) answered {got!r}")
            rows |= JANUS_DNS_ROWS
        except Exception as e:
            missing |= dict.fromkeys(JANUS_DNS_ROWS, f"jn.resolve over DNS: {type(e).__name__}: {e}")
        try:
            stream = jn.connect_host(HE_NAME, self.port, attempt_delay=0.01)  # type: ignore[attr-defined]
            stream.close()
            self.good.accept()[0].close()
            rows |= JANUS_CONNECT_ROWS
        except Exception as e:
            missing |= dict.fromkeys(JANUS_CONNECT_ROWS, f"jn.connect_host: {type(e).__name__}: {e}")
        return rows, missing

    def _cancel_loop(self) -> None:
        # One thread for the whole run (so the thread count is steady): cancels a context
        # after a delay and writes down the instant it did.
        while (order := self.orders.get()) is not None:
            ctx, delay, when = order
            time.sleep(delay)
            when.append(time.perf_counter())
            ctx.cancel()
            # Let go of the context before saying so: a context freed later, during the next call,
            # would close its wake pipe there and look like that call's doing.
            del ctx, order
            when.append(0.0)

    def profile(self, n: int) -> str:
        """cProfile of ``n`` janus resolves: where a lookup's time goes (``--profile``)."""
        import cProfile
        import io
        import pstats

        import janus_net as jn

        profiler = cProfile.Profile()
        profiler.runcall(lambda: [jn.resolve(NAME, 80) for _ in range(n)])  # type: ignore[attr-defined]
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        return out.getvalue()

    def run(self, impl: str, n: int) -> dict[str, Any]:
        if impl == "profile":
            return {"profile": self.profile(n)}
        if impl in JANUS_DNS_ROWS | JANUS_CONNECT_ROWS and impl not in self.janus:
            return {"missing": self.janus_missing[impl]}
        method = getattr(self, "m_" + "".join(c if c.isalnum() else "_" for c in impl.split(",")[0]))
        cpu = time.thread_time()
        wall = time.perf_counter()
        samples, left = method(impl, n)
        wall = time.perf_counter() - wall
        return {"ops": n, "wall": sum(samples) if samples else wall, "cpu": time.thread_time() - cpu,
                "samples": samples, "left": left}  # fmt: skip

    # resolve

    def m_janus_resolve(self, impl: str, n: int) -> tuple[list[float], int]:
        import janus_net as jn

        resolve = jn.resolve  # type: ignore[attr-defined]
        if impl.endswith("config loaded once"):
            config = jn.ResolverConfig.load()  # type: ignore[attr-defined]
            for _ in range(n):
                resolve(NAME, 80, config=config)
        else:
            for _ in range(n):
                resolve(NAME, 80)
        return [], 0

    def m_glibc_getaddrinfo(self, impl: str, n: int) -> tuple[list[float], int]:
        getaddrinfo, stream = socket.getaddrinfo, socket.SOCK_STREAM
        for _ in range(n):
            getaddrinfo(NAME, 80, type=stream)
        return [], 0

    # cancel and deadline

    def m_janus_resolve_cancelled(self, impl: str, n: int) -> tuple[list[float], int]:
        import janus_net as jn

        return self._ended(n, impl, lambda ctx: jn.resolve(SLOW_NAME, 80, ctx=ctx))  # type: ignore[attr-defined]

    m_janus_resolve_past_its_deadline = m_janus_resolve_cancelled

    def m_janus_connect_host_cancelled(self, impl: str, n: int) -> tuple[list[float], int]:
        import janus_net as jn

        return self._ended(n, impl, lambda ctx: jn.connect_host(HOLE_NAME, self.port, ctx=ctx))  # type: ignore[attr-defined]

    m_janus_connect_host_past_its_deadline = m_janus_connect_host_cancelled

    def _ended(self, n: int, impl: str, call: Callable[[Any], object]) -> tuple[list[float], int]:
        """Each call ended by a cancel from the canceller thread, or by its deadline, 5-15 ms in."""
        import janus_net as jn

        samples, left = [], 0
        for i in range(n):
            delay = 0.005 + 0.010 * (i % 11) / 10
            when: list[float] = []
            deadline = impl.endswith("deadline")
            ctx = jn.Context.with_deadline(time.monotonic() + delay) if deadline else jn.Context()
            # The context's own wake pipe (made on first use, closed with the context) is there before
            # and after: what the count sees is the call's.
            ctx._wake_fd()
            before = counts()
            if not deadline:
                self.orders.put((ctx, delay, when))
            try:
                got = call(ctx)
            except jn.SocketError.Timeout:
                end = time.monotonic() if deadline else time.perf_counter()
            else:
                close = getattr(got, "close", None)
                if close is not None:
                    close()
                raise RuntimeError(f"{impl}: answered {got!r} from a server that never answers")
            if deadline:
                samples.append(end - ctx.deadline)  # type: ignore[operator]
            else:
                while len(when) < 2:  # the canceller writes the instant before it cancels, then lets go
                    time.sleep(0.0001)
                samples.append(end - when[0])
            after = counts()
            if after != before:
                left += 1
                print(f"{impl}: (threads, fds) {before} before, {after} after", file=sys.stderr)
        return samples, left

    def m_asyncio_getaddrinfo_cancelled__returned_(self, impl: str, n: int) -> tuple[list[float], int]:
        """asyncio's getaddrinfo (a worker thread) ended by wait_for: it returns; the thread keeps waiting."""

        async def one(delay: float) -> float:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self.pool, socket.getaddrinfo, SLOW_NAME, 80, 0, socket.SOCK_STREAM)
            start = time.perf_counter()
            try:
                await asyncio.wait_for(future, delay)
            except (asyncio.TimeoutError, socket.gaierror):
                pass
            returned = time.perf_counter()
            # The worker is free again when a job queued behind the abandoned lookup runs.
            free = await loop.run_in_executor(self.pool, time.perf_counter)
            self.busy_after_cancel.append(free - returned)
            return returned - (start + delay)

        samples = []
        for i in range(n):
            samples.append(self.loop.run_until_complete(one(0.005 + 0.010 * (i % 11) / 10)))
        return samples, 0

    # happy eyeballs: from the last DNS answer used to connected

    def _accepted(self) -> None:
        conn, _peer = self.good.accept()
        conn.close()

    def m_janus_connect_host(self, impl: str, n: int) -> tuple[list[float], int]:
        import janus_net as jn
        from janus_net._profiles import connect_host as module  # type: ignore[attr-defined]

        done_at: list[float] = []
        real = getattr(module, "NameLookup", None)
        if real is not None:

            class Watched(real):  # type: ignore[misc, valid-type]
                def advance(self, revents: list[int], now: float) -> None:
                    super().advance(revents, now)
                    if not done_at and self.done():
                        done_at.append(time.perf_counter())

            module.NameLookup = Watched
        samples, left = [], 0
        try:
            for _ in range(n):
                done_at.clear()
                before = counts()
                start = time.perf_counter()
                stream = jn.connect_host(HE_NAME, self.port, attempt_delay=ATTEMPT_DELAY)  # type: ignore[attr-defined]
                end = time.perf_counter()
                stream.close()
                self._accepted()
                samples.append(end - (done_at[0] if done_at else start))
                left += counts() != before
        finally:
            if real is not None:
                module.NameLookup = real
        return samples, left

    def m_stdlib_create_connection(self, impl: str, n: int) -> tuple[list[float], int]:
        real = socket.getaddrinfo
        answered: list[float] = []

        def watched(*args: Any, **kwargs: Any) -> Any:
            got = real(*args, **kwargs)
            answered.append(time.perf_counter())
            return got

        samples = []
        socket.getaddrinfo = watched  # create_connection looks it up in socket's globals at each call
        try:
            for _ in range(n):
                answered.clear()
                s = socket.create_connection((HE_NAME, self.port), timeout=self.stdlib_timeout)
                end = time.perf_counter()
                s.close()
                self._accepted()
                samples.append(end - answered[0])
        finally:
            socket.getaddrinfo = real
        return samples, 0

    def m_asyncio_open_connection(self, impl: str, n: int) -> tuple[list[float], int]:
        async def one() -> float:
            loop = asyncio.get_running_loop()
            real = loop.getaddrinfo
            answered: list[float] = []

            async def watched(*args: Any, **kwargs: Any) -> Any:
                got = await real(*args, **kwargs)
                answered.append(time.perf_counter())
                return got

            loop.getaddrinfo = watched  # type: ignore[method-assign]
            try:
                _reader, writer = await asyncio.open_connection(HE_NAME, self.port, happy_eyeballs_delay=ATTEMPT_DELAY)
                end = time.perf_counter()
            finally:
                loop.getaddrinfo = real  # type: ignore[method-assign]
            writer.close()
            await writer.wait_closed()
            return end - answered[-1]

        samples = []
        for _ in range(n):
            samples.append(self.loop.run_until_complete(one()))
            self._accepted()
        return samples, 0

    def close(self) -> None:
        self.orders.put(None)
        self.canceller.join()
        self.pool.shutdown()
        self.loop.close()
        for s in [self.good, self.hole, *self.fillers]:
            s.close()


def child_main(quick: bool, which: str) -> int:
    """Inside ``unshare --net --mount``: the namespace, the files, the server; then serve the parent."""
    out = sys.stdout
    sys.stdout = sys.stderr  # the protocol owns the real stdout
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for var in ("JANUS_NET_RESOLV_CONF", "JANUS_NET_HOSTS", "LOCALDOMAIN", "RES_OPTIONS"):
        os.environ.pop(var, None)
    home = Path(tempfile.mkdtemp(prefix="jn-bench-names-"))
    files = {"resolv.conf": RESOLV_CONF, "hosts": "127.0.0.1 localhost\n::1 localhost\n",
             "nsswitch.conf": "hosts: files dns\n"}  # fmt: skip
    for name, text in files.items():
        (home / name).write_text(text)
        subprocess.run(["mount", "--bind", str(home / name), f"/etc/{name}"], check=True)
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # reads nothing, answers nothing
    blackhole.bind(("127.0.0.1", 0))
    server, stop = start_server(home, blackhole.getsockname()[1], which)
    child = None
    try:
        wait_for_server()
        child = Child(quick)
        ready = {"server": server, "missing": child.janus_missing, "stdlib_timeout": child.stdlib_timeout}
        print(json.dumps(ready), file=out, flush=True)
        for line in sys.stdin:
            order = json.loads(line)
            try:
                answer = child.run(order["impl"], order["n"])
            except Exception as e:
                answer = {"error": f"{type(e).__name__}: {e}"}
            if order.get("extra"):
                answer["busy_after_cancel"] = child.busy_after_cancel
            print(json.dumps(answer), file=out, flush=True)
    finally:
        if child is not None:
            child.close()
        stop()
        blackhole.close()
        shutil.rmtree(home, ignore_errors=True)
    return 0


# --- the parent: the hook protocol of scripts/bench


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float]:
    if len(values) == 1:
        return {"q1": values[0], "median": values[0], "q3": values[0]}
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"q1": q1, "median": q2, "q3": q3}


class Names:
    """The child in its namespace, and what it measured, round by round."""

    def __init__(self, quick: bool, which: str = "auto") -> None:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            raise RuntimeError("the names rows need root and unshare (a network namespace of their own)")
        options = ["--child", f"--server={which}", *(["--quick"] if quick else [])]
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", sys.executable, __file__, *options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"the names child ended before it was ready (exit {self.proc.returncode})")
        ready = json.loads(line)
        self.server: str = ready["server"]
        self.missing: dict[str, str] = ready["missing"]
        self.stdlib_timeout: float = ready["stdlib_timeout"]
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.busy_after_cancel: list[float] = []

    def ask(self, impl: str, n: int, extra: bool = False) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"impl": impl, "n": n, "extra": extra}) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"{impl}: {answer['error']}")
        return answer

    def measure(self, impl: str) -> Measure:
        def run(n: int) -> tuple[int, float, float]:
            answer = self.ask(impl, n, extra=impl.startswith("asyncio getaddrinfo"))
            self.results.setdefault(impl, []).append(answer)
            if "busy_after_cancel" in answer:
                self.busy_after_cancel = answer["busy_after_cancel"]
            return answer["ops"], answer["wall"], answer["cpu"]

        return run

    def rows(self, quick: bool) -> dict[str, tuple[Measure, int]]:
        rows = {}
        self.labels: list[str] = []
        for impl, _kind, base in ROWS:
            if impl in self.missing:
                continue
            if quick and impl.startswith("asyncio getaddrinfo"):
                continue  # each one waits out glibc's timeout (1 s)
            label = impl.replace("timeout T", f"timeout {self.stdlib_timeout:g} s")
            rows[label] = (self.measure(impl), base)
            self.labels.append(impl)
        return rows

    def samples(self, impl: str) -> list[float]:
        return [x for answer in self.results.get(impl, []) for x in answer["samples"]]

    def left(self, *impls: str) -> int:
        return sum(answer["left"] for impl in impls for answer in self.results.get(impl, []))

    def targets(self, clock: str = "wall") -> tuple[list[dict[str, Any]], list[str]]:
        """The three §11 rows (entries as scripts/bench's ratio_entry makes them) and notes."""
        entries: list[dict[str, Any]] = []
        notes = [f"names: the DNS server is {self.server} on 127.0.0.1:53 in the bench's own network namespace, "
                 "with /etc/resolv.conf, /etc/hosts and /etc/nsswitch.conf bind-mounted test files"]  # fmt: skip
        # 1. resolve rate / glibc rate, per round (paired), both clocks; beside it, with the config loaded once
        glibc = self.results.get("glibc getaddrinfo", [])
        for name, impl, target in ((RESOLVE_TARGET, "janus resolve", 1.0),
                                   (RESOLVE_LOADED, "janus resolve, config loaded once", None)):  # fmt: skip
            entry: dict[str, Any] = {"name": name, "target": target, "sense": "ge"}
            janus = self.results.get(impl, [])
            for c in ("wall", "cpu"):
                ratios = [(g[c] / g["ops"]) / (j[c] / j["ops"]) for j, g in zip(janus, glibc, strict=False)]
                entry[c] = spread(ratios) if ratios else None
            entry["value"] = entry[clock]["median"] if entry.get(clock) else None
            entry["met"] = None if entry["value"] is None or target is None else entry["value"] >= target
            if entry["value"] is None:
                if target is None:
                    continue
                entry["note"] = "not available"
            entries.append(entry)
        # 2. cancel/deadline → returned, p99 over every call, and what was left behind
        ended = ENDED_ROWS
        values = [x * 1000 for impl in ended for x in self.samples(impl)]
        left = self.left(*ended)
        entries.append(self._absolute(CANCEL_TARGET, p99(values) if values else None, 5.0, left))
        # 3. happy eyeballs: janus median from the last DNS answer used
        he = self.samples("janus connect_host, first address blackholed")
        he_left = self.left("janus connect_host, first address blackholed")
        target = (ATTEMPT_DELAY + 0.050) * 1000
        entries.append(self._absolute(HAPPY_TARGET, statistics.median(he) * 1000 if he else None, target, he_left))
        for why in sorted(set(self.missing.values())):
            impls = ", ".join(impl for impl in self.missing if self.missing[impl] == why)
            notes.append(f"names: not measured in this tree ({impls}): {why}")
        if values:
            notes.append(f"names: cancel/deadline → returned over {len(values)} calls: median "
                         f"{statistics.median(values):.3f} ms, p99 {p99(values):.3f} ms, max {max(values):.3f} ms; "
                         f"calls that left a thread or an fd: {left}")  # fmt: skip
        if self.busy_after_cancel:
            busy = statistics.median(self.busy_after_cancel)
            notes.append(f"names: asyncio's getaddrinfo cancelled after 5-15 ms returns at once, but its worker "
                         f"thread stays in glibc for a median {busy * 1000:.0f} ms more (timeout:1 attempts:1 here; "
                         "5 s x 2 by default): the next lookup on that pool waits that long")  # fmt: skip
        for impl in HAPPY_ROWS:
            got = self.samples(impl)
            if got:
                label = impl.replace("timeout T", f"timeout {self.stdlib_timeout:g} s")
                median, most = statistics.median(got) * 1000, max(got) * 1000
                notes.append(f"names: {label}: from the last DNS answer used to connected, median {median:.1f} ms, "
                             f"max {most:.1f} ms ({len(got)} calls)")  # fmt: skip
        return entries, notes

    @staticmethod
    def _absolute(name: str, value: float | None, target: float, left: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "target": target, "sense": "le", "value": value,
                                 "wall": None if value is None else {"q1": None, "median": value, "q3": None},
                                 "cpu": None}  # fmt: skip
        entry["met"] = None if value is None else (value <= target and left == 0)
        if value is None:
            entry["note"] = "not available"
        elif left:
            entry["note"] = f"MISSED: {left} calls left a thread or an fd"
        return entry

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


RESOLVE_TARGET = "resolve A+AAAA, a local DNS server / glibc getaddrinfo, lookups/s"
RESOLVE_LOADED = "resolve A+AAAA, config=ResolverConfig.load() once / glibc getaddrinfo"
CANCEL_TARGET = "cancel or deadline of a lookup or connect_host → returned, p99 ms"
HAPPY_TARGET = "connect_host, 1st address blackholed: last DNS answer → connected, ms"


def workloads(
    c_binary: Path | None, quick: bool = False, server: str = "auto"
) -> tuple[dict[str, tuple[Measure, int]], Callable[[], None], Callable[[str], tuple[list[dict[str, Any]], list[str]]]]:
    """The hook of scripts/bench: (rows, close, targets). ``c_binary`` is unused: no C row here."""
    names = Names(quick, server)
    return names.rows(quick), names.close, names.targets


def names_of(close: Callable[[], None]) -> Names:
    """The `Names` behind the ``close`` that `workloads` answered."""
    names: Names = close.__self__  # type: ignore[attr-defined]
    return names


def names_results(rows: dict[str, tuple[Measure, int]], close: Callable[[], None]) -> list[tuple[str, list[Any]]]:
    """(row label, the child's answers round by round), in the order of the rows."""
    names = names_of(close)
    return [
        (label, names.results[impl]) for label, impl in zip(rows, names.labels, strict=True) if impl in names.results
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description="the names rows of make bench (DESIGN §11, §17)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 11; --quick: 2)")
    parser.add_argument("--scale", type=float, default=None, help="multiply the counts (default 1; --quick: 0.03)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--json", metavar="PATH", help="also write the rows and targets as JSON")
    parser.add_argument("--server", choices=("auto", "dnsmasq", "test"), default="auto",
                        help="the DNS server: dnsmasq when installed (auto), or tests/dns_server.py")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="then print a cProfile of 2000 janus resolves in the same namespace")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.quick, args.server)
    rounds = args.rounds or (2 if args.quick else 11)
    scale = args.scale or (0.03 if args.quick else 1.0)
    rows, close, targets = workloads(None, quick=args.quick, server=args.server)
    try:
        for r in range(rounds):
            names = list(rows)
            shift = r % len(names)
            for impl in names[shift:] + names[:shift]:
                measure, base = rows[impl]
                measure(max(1, int(base * scale)))
        entries, notes = targets("wall")
        profile = names_of(close).ask("profile", 2000)["profile"] if args.profile else None
    finally:
        close()
    print(f"{'names (ms each, median [quartiles] of the rounds)':<60} {'wall':>24} {'cpu':>24}")
    for impl, answers in names_results(rows, close):
        per_op = {c: spread([a[c] / a["ops"] * 1000 for a in answers]) for c in ("wall", "cpu")}
        wall, cpu = (f"{s['median']:.3f} [{s['q1']:.3f}-{s['q3']:.3f}]" for s in per_op.values())
        print(f"  {impl:<58} {wall:>24} {cpu:>24}")
    print()
    for entry in entries:
        value = "n/a" if entry["value"] is None else f"{entry['value']:.3f}"
        met = entry.get("note") or {True: "met", False: "MISSED", None: ""}[entry["met"]]
        sign = ">=" if entry["sense"] == "ge" else "<="
        target = "" if entry["target"] is None else f"{sign} {entry['target']:g}"
        print(f"{entry['name']:<72} {value:>10}  {target:>8}  {met}")
    for note in notes:
        print(f"note: {note}")
    if profile is not None:
        print(profile)
    if args.json:
        Path(args.json).write_text(json.dumps({"targets": entries, "notes": notes}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
