"""The fault seam itself, KeyboardInterrupt at every step of setup, and real faults.

Real faults: the process fd quota (EMFILE, with RLIMIT_NOFILE lowered in a child
process) and SIGINT while blocked in accept (PEP 475: the retry loop lets the
signal handler's KeyboardInterrupt through, and the server survives it).
"""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from peers import dial, run_child, sigint_raises, wait_until_process_blocked, when_blocked

import janus_net as jn
from janus_net._kernel import sockets, tables
from janus_net.testing import fail, syscall_names

# --- The seam's own contract.


def test_names_are_the_documented_ones() -> None:
    documented = {"socket", "setsockopt", "fcntl", "bind", "listen", "getsockname", "accept", "send", "receive"}
    documented.add("close")
    assert documented <= set(syscall_names())
    assert set(syscall_names()) == {t.name for t in tables.TABLES}


def test_unknown_name_is_a_value_error_listing_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown syscall 'bnid'") as info, fail("bnid", errno.EACCES):
        pass
    for name in ("bind", "accept", "receive"):
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("error", "after", "times"),
    [
        (0, 0, 1),
        (-1, 0, 1),
        (True, 0, 1),
        ("EACCES", 0, 1),
        (errno.EACCES, -1, 1),
        (errno.EACCES, 0, 0),
        (errno.EACCES, 1.0, 1),
    ],
)
def test_bad_arguments_are_value_errors(error: object, after: object, times: object) -> None:
    with pytest.raises(ValueError), fail("bind", error, after=after, times=times):  # type: ignore[arg-type]
        pass
    assert sockets.BIND_IP.fault is None and sockets.BIND_UNIX.fault is None


def test_arming_one_syscall_twice_raises_and_keeps_the_first_plan() -> None:
    with fail("bind", errno.EACCES) as first:
        with pytest.raises(RuntimeError, match="already armed"), fail("bind", errno.EADDRINUSE):
            pass
        assert sockets.BIND_IP.fault is first and sockets.BIND_UNIX.fault is first
        with pytest.raises(jn.SocketError.AccessDenied):
            jn.listen("127.0.0.1:0")
    assert sockets.BIND_IP.fault is None


def test_different_syscalls_can_be_armed_together() -> None:
    with fail("listen", errno.EADDRINUSE, after=1) as listen_fault, fail("bind", errno.EINTR, times=2) as bind_fault:
        jn.listen("127.0.0.1:0").close()  # bind: EINTR twice, retried; listen: let through
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen("127.0.0.1:0")
    assert (bind_fault.calls, bind_fault.failed) == (4, 2)
    assert (listen_fault.calls, listen_fault.failed) == (2, 1)


def test_after_and_times_select_which_calls_fail() -> None:
    outcomes = []
    with fail("bind", errno.EADDRNOTAVAIL, after=2, times=2) as inj:
        for _ in range(6):
            try:
                jn.bind("127.0.0.1:0").close()
                outcomes.append("ok")
            except jn.SocketError.AddressUnavailable:
                outcomes.append("fail")
    assert outcomes == ["ok", "ok", "fail", "fail", "ok", "ok"]
    assert (inj.calls, inj.failed) == (6, 2)


def test_one_name_arms_every_table_with_one_counter(tmp_path: Path) -> None:
    """The name "bind" covers the IP and the unix table; the count runs across both."""
    with fail("bind", errno.EACCES, after=1) as inj:
        jn.listen("127.0.0.1:0").close()  # call 1: IP table, let through
        with pytest.raises(jn.SocketError.AccessDenied):
            jn.listen(f"unix:{tmp_path}/s.sock")  # call 2: unix table, failed
    assert (inj.calls, inj.failed) == (2, 1)
    assert not list(tmp_path.iterdir())


def test_the_seam_is_disarmed_after_an_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"), fail("socket", errno.EMFILE):
        raise RuntimeError("boom")
    assert all(t.fault is None for t in tables.TABLES)
    jn.listen("127.0.0.1:0").close()


def test_calls_from_every_thread_are_counted_and_exactly_times_fail() -> None:
    threads, per_thread, times = 4, 25, 30
    failures: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(per_thread):
            try:
                jn.bind("127.0.0.1:0").close()
            except jn.SocketError as e:  # any member: a wrong one fails the set check below
                with lock:
                    failures.append(e.errno or 0)

    with fail("bind", errno.ENOMEM, after=10, times=times) as inj:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    assert inj.calls == threads * per_thread
    assert inj.failed == len(failures) == times
    assert set(failures) == {errno.ENOMEM}


def test_an_injected_failure_never_reaches_the_kernel(tmp_path: Path) -> None:
    """strace proves it: two listens, the first with bind failed by the seam: one bind(2)."""
    log = tmp_path / "strace.log"
    child = textwrap.dedent(
        """
        import errno, janus_net as jn
        from janus_net.testing import fail
        with fail("bind", errno.EADDRINUSE):
            try:
                jn.listen("127.0.0.1:0")
            except jn.SocketError.AddressInUse:
                pass
        jn.listen("127.0.0.1:0").close()
        """
    )
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=bind,listen", "-o", str(log), sys.executable, "-c", child],
        check=True,
        timeout=60,
    )
    calls = [line for line in log.read_text().splitlines() if "bind(" in line or "listen(" in line]
    assert sum("bind(" in line for line in calls) == 1, calls
    assert sum("listen(" in line for line in calls) == 1, calls


def test_an_exception_instance_is_raised_as_is() -> None:
    marker = KeyboardInterrupt("from the seam")
    with fail("getsockname", marker) as inj, pytest.raises(KeyboardInterrupt) as info:
        jn.listen("127.0.0.1:0")
    assert info.value is marker and inj.failed == 1


# --- KeyboardInterrupt in the middle of setup: nothing is left behind.

IP_STEPS = ["socket", "setsockopt", "bind", "listen", "getsockname"]
UNIX_STEPS = ["socket", "fchmod", "bind", "listen", "getsockname"]


@pytest.mark.parametrize("step", IP_STEPS)
def test_keyboard_interrupt_at_each_ip_step_leaves_no_fd(step: str) -> None:
    with fail(step, KeyboardInterrupt) as inj, pytest.raises(KeyboardInterrupt):
        jn.listen("127.0.0.1:0")
    assert inj.failed == 1
    # The autouse fixture checks the fd count; the port is free again too.


@pytest.mark.parametrize("step", UNIX_STEPS)
def test_keyboard_interrupt_at_each_unix_step_leaves_no_fd_and_no_file(step: str, tmp_path: Path) -> None:
    with fail(step, KeyboardInterrupt) as inj, pytest.raises(KeyboardInterrupt):
        jn.listen(f"unix:{tmp_path}/k.sock", mode=0o600)
    assert inj.failed == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("step", ["socket", "bind", "getsockname"])
def test_keyboard_interrupt_at_each_datagram_step(step: str, tmp_path: Path) -> None:
    with fail(step, KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        jn.bind(f"unix:{tmp_path}/d.sock")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("step", ["accept"])
def test_keyboard_interrupt_in_accept_keeps_the_connection_queued(step: str) -> None:
    """KeyboardInterrupt in accept(ctx) (which never toggles O_NONBLOCK: no fcntl step)."""
    with jn.listen("127.0.0.1:0") as server, dial(server) as client:
        with fail(step, KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
            server.accept(ctx=jn.Context())
        with server.accept() as stream:
            client.sendall(b"!")
            assert stream.read(1) == b"!"


@pytest.mark.parametrize("checkpoint", [1, 2, 3, 4, 5])
def test_real_sigint_between_steps_leaves_nothing(checkpoint: int, tmp_path: Path) -> None:
    """A real SIGINT, raised deterministically at the n-th checkpoint of listen_with_context.

    The signal is sent to this thread and its handler runs as the checkpoint returns,
    exactly where a signal arriving between two steps would be handled.
    """

    class SignalAt(jn.Context):
        seen = 0

        def check(self) -> None:
            super().check()
            type(self).seen += 1
            if type(self).seen == checkpoint:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    with sigint_raises(), pytest.raises(KeyboardInterrupt):
        jn.listen_with_context(f"unix:{tmp_path}/sig.sock", SignalAt(), mode=0o600)
    assert SignalAt.seen == checkpoint
    assert not list(tmp_path.iterdir())


# --- Real faults.


def test_emfile_under_a_low_rlimit_then_recovery() -> None:
    """RLIMIT_NOFILE=48: listen until ProcessFdQuotaExceeded (EMFILE), close all, listen again."""
    result = run_child(
        """
        import errno, json, os, resource
        import janus_net as jn
        def fds(): return len(os.listdir("/proc/self/fd")) - 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        baseline = fds()
        servers, error = [], None
        while error is None:
            try:
                servers.append(jn.listen("127.0.0.1:0"))
            except jn.SocketError.ProcessFdQuotaExceeded as e:
                error = e
        for s in servers:
            s.close()
        after_close = fds()
        again = jn.listen("127.0.0.1:0")
        again_port = again.address.port
        again.close()
        print(json.dumps({"opened": len(servers), "errno": error.errno, "syscall": error.syscall,
                          "baseline": baseline, "after_close": after_close,
                          "final": fds(), "again_port": again_port}))
        """
    )
    assert result["errno"] == errno.EMFILE and result["syscall"] == "socket"
    # Every one of the 48 slots was in use when socket() said EMFILE.
    assert result["opened"] == 48 - result["baseline"]  # type: ignore[operator]
    assert result["after_close"] == result["baseline"] == result["final"]
    assert result["again_port"] != 0


def test_sigint_while_blocked_in_accept_then_the_server_still_accepts() -> None:
    """A thread sends SIGINT to the main thread blocked in accept: KeyboardInterrupt, quickly."""
    main = threading.get_ident()
    with sigint_raises(), jn.listen("127.0.0.1:0") as server:
        started = time.monotonic()
        sender = when_blocked(lambda: signal.pthread_kill(main, signal.SIGINT))
        try:
            with pytest.raises(KeyboardInterrupt):
                server.accept()
        finally:
            sender.join()
        assert time.monotonic() - started < 1.5
        with dial(server) as client, server.accept() as stream:
            client.sendall(b"still")
            assert stream.read(5) == b"still"


def test_sigint_from_another_process_while_blocked_in_accept() -> None:
    """The same with a process-directed SIGINT (kill(1) from the parent)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import json, socket, sys, time
                import janus_net as jn
                server = jn.listen("127.0.0.1:0")
                print(server.address.port, flush=True)
                try:
                    server.accept()
                    outcome = "returned"
                except KeyboardInterrupt:
                    outcome = "KeyboardInterrupt"
                woke = time.monotonic()
                with socket.create_connection(("127.0.0.1", server.address.port)) as c:
                    with server.accept() as s:
                        c.sendall(b"ok")
                        data = s.read(2)
                server.close()
                print(json.dumps({"outcome": outcome, "woke": woke, "data": data.decode()}))
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        # It is listening; once its accept waits in the kernel, interrupt it.
        wait_until_process_blocked(proc.pid, ("poll", "accept"))
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    result = json.loads(out.splitlines()[-1])
    assert port > 0 and result["outcome"] == "KeyboardInterrupt" and result["data"] == "ok"
    assert result["woke"] - sent < 1.5  # time.monotonic is system-wide on Linux
    assert proc.returncode == 0
