"""Load and signal storms against the real kernel: nothing lost, nothing raised, nothing leaked.

Process-wide state (interval timers, rlimits) changes only in child processes,
which print one JSON object of figures; the tests assert on it and print the
figures (``pytest -s`` shows them; the README's reliability table quotes them).
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from peers import dial, run_child

import janus_net as jn


def figures(name: str, result: dict[str, object]) -> None:
    print(f"\n[reliability] {name}: {json.dumps(result, sort_keys=True)}")


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # minus listdir's own


def test_signal_storm_while_accepting_300_connections() -> None:
    """SIGALRM every 0.5 ms; a client process makes 300 connections, 4 bytes each."""
    result = run_child(
        """
        import errno, json, os, signal, subprocess, sys
        import janus_net as jn
        from janus_net._policy import wakeup
        from janus_net.testing import fail

        wakeup.install()  # the signal wakeup pipe janus_net keeps for the process's life (docs/mechanism.md)
        FDS_AT_START = len(os.listdir("/proc/self/fd"))

        N = 300
        CLIENT = '''
        import socket, sys, time
        port, n = int(sys.argv[1]), int(sys.argv[2])
        for i in range(n):
            with socket.create_connection(("127.0.0.1", port)) as c:
                data = b"%04d" % i
                if i % 3 == 0:
                    # Split, with a pause: the server's read blocks between the halves.
                    c.sendall(data[:2]); time.sleep(0.001); c.sendall(data[2:])
                else:
                    c.sendall(data)
            if i % 10 == 0:
                time.sleep(0.002)  # and its accept blocks now and then
        '''
        delivered = 0
        def on_alarm(signum, frame):
            global delivered
            delivered += 1
        signal.signal(signal.SIGALRM, on_alarm)

        server = jn.listen("127.0.0.1:0", backlog=512)
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(server.address.port), str(N)])
        received, errors = [], []
        with fail("accept", errno.EIO, after=10**9) as accepts, fail("receive", errno.EIO, after=10**9) as reads:
            signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
            try:
                for _ in range(N):
                    try:
                        with server.accept() as stream:
                            data = b""
                            while len(data) < 4:
                                chunk = stream.read(4 - len(data))
                                if not chunk:
                                    break
                                data += chunk
                            received.append(data)
                    except Exception as e:
                        errors.append(repr(e))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0, 0)
        client.wait(timeout=60)
        server.close()
        intact = sum(data == b"%04d" % i for i, data in enumerate(received))
        print(json.dumps({
            "connections": len(received), "intact": intact, "errors": errors, "signals": delivered,
            "accept_retries": accepts.calls - len(received), "read_calls": reads.calls,
            "client_rc": client.returncode, "fds_left": len(os.listdir("/proc/self/fd")) - FDS_AT_START,
        }))
        """
    )
    figures("signal storm / accept", result)
    assert result["errors"] == [] and result["client_rc"] == 0
    assert result["connections"] == result["intact"] == 300
    assert isinstance(result["signals"], int) and result["signals"] > 0
    assert isinstance(result["accept_retries"], int) and result["accept_retries"] >= 0
    assert result["fds_left"] == 0


def test_signal_storm_while_receiving_500_datagrams_with_a_context() -> None:
    """SIGALRM every 0.5 ms; 500 datagrams received with receive(ctx=Context())."""
    result = run_child(
        """
        import errno, json, os, signal, subprocess, sys
        import janus_net as jn
        from janus_net._policy import wakeup
        from janus_net.testing import fail

        wakeup.install()  # the signal wakeup pipe janus_net keeps for the process's life (docs/mechanism.md)
        FDS_AT_START = len(os.listdir("/proc/self/fd"))

        N, WINDOW = 500, 25
        # The sender waits for an acknowledgement every WINDOW datagrams, so the receive
        # queue never overflows (UDP would drop, silently) and the receiver often waits.
        CLIENT = '''
        import socket, sys, time
        port, n, window = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(30)
            for i in range(n):
                s.sendto(b"%05d" % i, ("127.0.0.1", port))
                if i % window == window - 1:
                    assert s.recv(16) == b"ack"
                    time.sleep(0.001)
        '''
        delivered = 0
        def on_alarm(signum, frame):
            global delivered
            delivered += 1
        signal.signal(signal.SIGALRM, on_alarm)

        sock = jn.bind("127.0.0.1:0")
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(sock.address.port), str(N), str(WINDOW)])
        ctx = jn.Context()
        received, errors = [], []
        with fail("poll", errno.EIO, after=10**9) as polls, fail("receive", errno.EIO, after=10**9) as recvs:
            signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
            try:
                while len(received) < N and len(errors) < 5:
                    try:
                        data, source = sock.receive(64, ctx=ctx)
                        received.append(data)
                        if len(received) % WINDOW == 0:
                            sock.send(source, b"ack")
                    except Exception as e:
                        errors.append(repr(e))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0, 0)
        client.wait(timeout=60)
        sock.close()
        del ctx
        intact = sum(data == b"%05d" % i for i, data in enumerate(received))
        print(json.dumps({
            "datagrams": len(received), "intact": intact, "errors": errors, "signals": delivered,
            "polls": polls.calls, "receive_attempts": recvs.calls, "client_rc": client.returncode,
            "fds_left": len(os.listdir("/proc/self/fd")) - FDS_AT_START,
        }))
        """
    )
    figures("signal storm / datagrams", result)
    assert result["errors"] == [] and result["client_rc"] == 0
    assert result["datagrams"] == result["intact"] == 500
    assert isinstance(result["signals"], int) and result["signals"] > 0
    assert result["fds_left"] == 0


def test_six_threads_for_three_seconds() -> None:
    """listen / connect / accept / close and bind / close, from 6 threads at once."""
    baseline = open_fd_count()
    stop = time.monotonic() + 3.0
    ops = [0] * 6
    errors: list[str] = []

    def tcp(slot: int) -> None:
        while time.monotonic() < stop:
            with jn.listen("127.0.0.1:0") as server, dial(server) as client, server.accept() as stream:
                client.sendall(b"x")
                assert stream.read(1) == b"x"
            ops[slot] += 4  # listen, connect, accept, close

    def udp(slot: int) -> None:
        while time.monotonic() < stop:
            with jn.bind("127.0.0.1:0") as sock:
                assert sock.address.port != 0
            ops[slot] += 2  # bind, close

    def guarded(work: object, slot: int) -> None:
        try:
            work(slot)  # type: ignore[operator]
        except BaseException as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=guarded, args=(tcp if i % 2 == 0 else udp, i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures("threads", {"threads": 6, "seconds": 3, "ops": sum(ops), "errors": len(errors)})
    assert errors == []
    assert all(n > 0 for n in ops)
    assert open_fd_count() == baseline


def test_two_thousand_listeners_at_once() -> None:
    """2000 simultaneous listeners on distinct ports, all closed cleanly."""
    result = run_child(
        """
        import json, os, resource, time
        import janus_net as jn
        def fds(): return len(os.listdir("/proc/self/fd")) - 1
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
        baseline = fds()
        started = time.perf_counter()
        # reuse_address=False: with SO_REUSEADDR the kernel's search for a free port 0 gets
        # slower as listeners pile up (the stdlib measures the same); the count is the point.
        servers = [jn.listen("127.0.0.1:0", reuse_address=False) for _ in range(2000)]
        opened = time.perf_counter() - started
        ports = {s.address.port for s in servers}
        peak = fds()
        # Each one really listens: a connection to the last one is accepted.
        import socket
        with socket.create_connection(("127.0.0.1", servers[-1].address.port)):
            servers[-1].accept().close()
        started = time.perf_counter()
        for s in servers:
            s.close()
        closed = time.perf_counter() - started
        print(json.dumps({"listeners": len(servers), "distinct_ports": len(ports), "peak_fds": peak - baseline,
                          "fds_left": fds() - baseline, "open_s": round(opened, 3), "close_s": round(closed, 3),
                          "closed": all(s.closed for s in servers)}))
        """
    )
    figures("scale", result)
    assert result["listeners"] == result["distinct_ports"] == result["peak_fds"] == 2000
    assert result["closed"] is True and result["fds_left"] == 0


_RAISING_STORM = """
import gc, json, os, signal, socket, sys, tempfile, time, warnings
import janus_net as jn

warnings.simplefilter("ignore", ResourceWarning)  # the interrupted objects are collected unclosed
PACKAGE = os.path.dirname(jn.__file__) + os.sep

class Interrupted(Exception):
    pass

# A close that fails in __del__ is "Exception ignored": an EBADF there (ErrnoBug) is
# a descriptor closed twice. The interrupts themselves landing in __del__ are expected.
unraisable = []
def hook(u):
    if not isinstance(u.exc_value, Interrupted):
        unraisable.append(repr(u.exc_value))
sys.unraisablehook = hook

landed = {"janus": 0, "elsewhere": 0}
def on_alarm(signum, frame):
    # Only inside janus_net: the test's own except blocks never see one.
    if frame is not None and frame.f_code.co_filename.startswith(PACKAGE):
        landed["janus"] += 1
        raise Interrupted()
    landed["elsewhere"] += 1

def fds():
    return {int(n): os.readlink(f"/proc/self/fd/{n}") for n in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{n}")}

tmp = tempfile.mkdtemp()
ROUND
gc.collect()
before = fds()
rounds = interrupted = 0
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
end = time.monotonic() + 1.5
try:
    while time.monotonic() < end:
        rounds += 1
        try:
            one_round(rounds)
        except Interrupted:
            interrupted += 1
        except jn.SocketError:
            pass  # e.g. a peer whose other end was interrupted mid-way
finally:
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
signal.signal(signal.SIGALRM, signal.SIG_DFL)
gc.collect()
after = fds()
print(json.dumps({
    "rounds": rounds, "interrupted": interrupted, "landed": landed,
    "left_open": sorted(set(after.items()) - set(before.items())), "unraisable": unraisable,
}))
"""

_STORM_ROUNDS = {
    "sockets": """
def one_round(i):
    with jn.listen("127.0.0.1:0") as server:
        with socket.create_connection(("127.0.0.1", server.address.port)) as client:
            with server.accept() as stream:
                client.sendall(b"ping")
                stream.read(4)
                stream.write_all(b"pong")
    with jn.bind("127.0.0.1:0") as a, jn.bind("127.0.0.1:0") as b:
        a.send(b.address, b"x")
        b.receive(ctx=jn.Context.with_timeout(5))
        a.send_many([(b.address, b"y")] * 4)
        b.receive_many(4, ctx=jn.Context.with_timeout(5))
    with jn.listen(f"unix:{tmp}/s{i % 4}.sock", unlink_stale=True, mode=0o660):
        pass
""",
    "hand-over": """
def fdpass(i):
    with jn.listen("127.0.0.1:0") as server, jn.listen(f"unix:@jn-storm-{os.getpid()}-{i}") as rendezvous:
        with jn.connect(rendezvous.address, ctx=jn.Context.with_timeout(5)) as tx, rendezvous.accept() as rx:
            jn.send_sockets(tx, {"web": server})
            for sock in jn.receive_sockets(rx, ctx=jn.Context.with_timeout(5)).values():
                sock.close()

def adoption(i):
    with jn.listen("127.0.0.1:0") as server:
        lent = os.dup(server.fileno())
        try:
            jn.listen(f"fd://{lent}").close()
        finally:
            # Adopted, it was closed by close() or, after an interrupt, by the collection;
            # not adopted (the interrupt came first), it is still the lender's. (No
            # janus_net call here: the handler would interrupt this cleanup too.)
            gc.collect()
            if os.path.exists(f"/proc/self/fd/{lent}"):
                os.close(lent)

def segments(i):
    with jn.bind("127.0.0.1:0", gro=True, pktinfo=True, timestamps=True) as a:
        a.send_segments(a.address, b"z" * 300, 100)
        a.receive_segments(ctx=jn.Context.with_timeout(5))
        a.send(a.address, b"m")
        a.receive_message(ctx=jn.Context.with_timeout(5))
        a.send_segments(a.address, b"p" * 300, 100)
        a.receive(ctx=jn.Context.with_timeout(5))  # one datagram; the other two are held
        a.receive_many(4, ctx=jn.Context.with_timeout(5))

def handed_to_the_stdlib(i):
    jn.listen("127.0.0.1:0").to_socket().close()

def one_round(i):
    (fdpass, adoption, segments, handed_to_the_stdlib)[i % 4](i)  # each gets a quarter of the rounds
""",
}


@pytest.mark.parametrize("kind", list(_STORM_ROUNDS))
def test_a_raising_signal_handler_storm_leaks_nothing_and_closes_nothing_twice(kind: str) -> None:
    """SIGALRM every 0.2 ms whose handler raises wherever janus_net code is running.

    The exception lands at random bytecodes of listen, accept, read/write, send/receive,
    the hand-over calls, adoption, close (and the owners' __del__): afterwards no
    descriptor may be left open and none closed twice (a double close of a cell is an
    EBADF, reported as ErrnoBug).
    """
    result = run_child(_RAISING_STORM.replace("ROUND", _STORM_ROUNDS[kind]))
    figures(f"raising signal storm ({kind})", result)
    assert result["left_open"] == []
    assert result["unraisable"] == []
    assert isinstance(result["interrupted"], int) and result["interrupted"] > 10
