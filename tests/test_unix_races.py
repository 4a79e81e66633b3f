"""Unix socket files against an adversary (DESIGN §7).

Each test tries hardest to make janus_net delete or touch a file that is not its own:
a socket bound but not listening, two processes taking over one stale file at once
(windows widened with `janus_net.testing.hold`), a file swapped between bind and
recording its identity, a forked child closing or exiting, a symlink swapped in
before the mode is widened. The oracles are the file system (``os.lstat``), stdlib
clients, ``strace`` and separate processes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from peers import in_poll

import janus_net as jn
from janus_net.testing import fail, hold

ROOT = os.geteuid() == 0


def assert_serves(path: Path, accept: jn.Server | socket.socket) -> None:
    """A stdlib client reaches the listener at ``path``, and bytes go through."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        if isinstance(accept, jn.Server):
            with accept.accept() as stream:
                client.sendall(b"ping")
                assert stream.read(4) == b"ping"
        else:
            conn, _ = accept.accept()
            with conn:
                client.sendall(b"ping")
                assert conn.recv(4) == b"ping"


def make_stale(path: Path) -> int:
    """A socket file nobody is bound to; a second link keeps its inode number from being reused."""
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        s.listen()
    os.link(path, path.with_name(path.name + ".keep"))
    return path.lstat().st_ino


def stop(child: subprocess.Popen[str]) -> None:
    """Kill ``child`` and close its pipes."""
    child.kill()
    child.wait()
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            stream.close()


@contextmanager
def in_thread(fn: object) -> Iterator[dict[str, object]]:
    """Run ``fn()`` in a thread; the dict gets "result" or "error" once it is joined."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = fn()  # type: ignore[operator]
        except BaseException as e:  # reported to the test
            out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield out
    finally:
        thread.join(30)
        assert not thread.is_alive(), "the listen thread is stuck"


# --- A live socket, listening or merely bound, is never removed


@pytest.mark.parametrize("kind", ["stream_bound", "dgram_bound", "stream_listening"])
def test_bound_but_not_listening_socket_is_never_taken_for_stale(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "live.sock"
    type_ = socket.SOCK_DGRAM if kind == "dgram_bound" else socket.SOCK_STREAM
    with socket.socket(socket.AF_UNIX, type_) as live:
        live.bind(str(path))
        if kind == "stream_listening":
            live.listen()
        inode = path.lstat().st_ino
        if kind == "stream_bound":
            # The trap: connect() to a bound, not yet listening socket is refused, as for a stale file.
            with socket.socket(socket.AF_UNIX) as c, pytest.raises(ConnectionRefusedError):
                c.connect(str(path))
        for _ in range(3):
            with pytest.raises(jn.SocketError.AddressInUse) as info:
                jn.listen(f"unix:{path}", unlink_stale=True)
            assert "live socket" in str(info.value)
            assert path.lstat().st_ino == inode
        if kind == "stream_bound":
            live.listen()  # the owner goes on to listen, at its own file
        if type_ == socket.SOCK_STREAM:
            assert_serves(path, live)
    # Judged under the lock, which stays behind as an empty regular file.
    lock = (tmp_path / "live.sock.lock").lstat()
    assert stat.S_ISREG(lock.st_mode) and lock.st_size == 0


def test_bound_socket_in_another_process_is_never_taken_for_stale(tmp_path: Path) -> None:
    path = tmp_path / "child.sock"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.bind({str(path)!r})
            print("bound", flush=True)
            sys.stdin.readline()
            s.listen()
            conn, _ = s.accept()
            conn.sendall(conn.recv(4))
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "bound\n"
        inode = path.lstat().st_ino
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen(f"unix:{path}", unlink_stale=True)
        assert path.lstat().st_ino == inode
        child.stdin.write("go\n")
        child.stdin.flush()
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(10)
            for _ in range(500):  # the child listens soon after reading the line
                try:
                    c.connect(str(path))
                    break
                except ConnectionRefusedError:
                    threading.Event().wait(0.01)
            c.sendall(b"echo")
            assert c.recv(4) == b"echo"
    finally:
        stop(child)


def test_listener_in_another_network_namespace_is_probed_and_left_alone(tmp_path: Path) -> None:
    # sock_diag lists the sockets of this network namespace only; a listener in another
    # one is still reached by connect() through the file, and that probe says "live".
    if not ROOT:
        pytest.skip("needs unshare -n (root)")
    path = tmp_path / "netns.sock"
    child = subprocess.Popen(
        ["unshare", "-n", sys.executable, "-c", textwrap.dedent(f"""
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.bind({str(path)!r})
            s.listen()
            print("listening", flush=True)
            sys.stdin.readline()
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "listening\n"
        inode = path.lstat().st_ino
        with pytest.raises(jn.SocketError.AddressInUse) as info:
            jn.listen(f"unix:{path}", unlink_stale=True)
        assert "listening there" in str(info.value)
        assert path.lstat().st_ino == inode
    finally:
        stop(child)


# --- Two processes taking over one stale file at once

_RACER = """
import json, sys, threading
import janus_net as jn
from janus_net.testing import hold

path, start, window = sys.argv[1], sys.argv[2], float(sys.argv[3])
while True:  # both racers start on the same signal: the start file appears
    try:
        open(start).close()
        break
    except FileNotFoundError:
        pass
# Park right after the stale probe returns ECONNREFUSED, between judging and unlinking.
with hold("connect") as parked:
    threading.Timer(window, parked.release).start()
    try:
        server = jn.listen("unix:" + path, unlink_stale=True)
    except jn.SocketError.AddressInUse as e:
        print(json.dumps({"ok": False, "error": str(e)}), flush=True)
        sys.exit(0)
import os
print(json.dumps({"ok": True, "ino": os.lstat(path).st_ino}), flush=True)
conn = server.accept()
conn.write_all(conn.read(4))
conn.close()
sys.stdin.readline()
server.close()
print(json.dumps({"closed": True}), flush=True)
"""


@pytest.mark.parametrize("round_", range(12))
def test_two_processes_taking_over_one_stale_file_end_with_one_listener(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "race.sock"
    start = tmp_path / "start"
    stale = make_stale(path)
    window = "0.05" if round_ % 2 else "0"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(path), str(start), window],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        start.touch()
        reports = []
        for racer in racers:
            assert racer.stdout is not None
            line = racer.stdout.readline()
            assert line, racer.stderr.read() if racer.stderr else ""
            reports.append(json.loads(line))
        winners = [(racer, report) for racer, report in zip(racers, reports, strict=True) if report["ok"]]
        assert len(winners) == 1, reports
        (winner, report), loser = winners[0], next(r for r in reports if not r["ok"])
        assert "live socket" in str(loser["error"]), loser
        # The winner's file is in place, it is not the stale one, and it serves.
        assert path.lstat().st_ino == report["ino"] != stale
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(20)
            client.connect(str(path))
            client.sendall(b"ours")
            assert client.recv(4) == b"ours"
        assert winner.stdin is not None and winner.stdout is not None
        winner.stdin.write("\n")
        winner.stdin.flush()
        assert json.loads(winner.stdout.readline()) == {"closed": True}
        assert not path.exists()
        # The lock file stays, as flock-based schemes leave it: a plain empty file.
        lock = (tmp_path / "race.sock.lock").lstat()
        assert stat.S_ISREG(lock.st_mode) and lock.st_size == 0
    finally:
        for racer in racers:
            stop(racer)


# --- A path taken between our unlink and our bind (by a process outside the lock)


def test_socket_bound_between_unlink_and_bind_is_judged_live_and_kept(tmp_path: Path) -> None:
    # The lock orders janus_net processes only while they judge; any process may bind the
    # path in the moment after the stale file is unlinked. That new socket is live.
    path = tmp_path / "taken.sock"
    make_stale(path)
    other = socket.socket(socket.AF_UNIX)
    try:
        with hold("connect") as parked, in_thread(lambda: jn.listen(f"unix:{path}", unlink_stale=True)) as out:
            assert parked.returned.wait(10)  # the stale probe was refused; unlink comes next
            os.unlink(path)
            other.bind(str(path))  # bound, not listening: still live
            parked.release()
        if isinstance(out.get("result"), jn.Server):
            out["result"].close()  # type: ignore[union-attr]
        error = out.get("error")
        assert isinstance(error, jn.SocketError.AddressInUse), out
        assert "live socket is bound" in str(error)
        assert path.lstat().st_ino == os.fstat(other.fileno()).st_ino or path.is_socket()
        other.listen()
        assert_serves(path, other)
    finally:
        other.close()


def test_socket_that_took_the_path_and_died_is_taken_over_on_the_next_judgement(tmp_path: Path) -> None:
    path = tmp_path / "died.sock"
    make_stale(path)
    with hold("connect") as parked, in_thread(lambda: jn.listen(f"unix:{path}", unlink_stale=True)) as out:
        assert parked.returned.wait(10)
        os.unlink(path)
        with socket.socket(socket.AF_UNIX) as brief:
            brief.bind(str(path))  # bound and closed: a stale file again, with a new inode
        os.link(path, tmp_path / "died.second")  # keeps that inode number from being reused
        second = path.lstat().st_ino
        parked.release()
    server = out.get("result")
    assert isinstance(server, jn.Server), out
    with server:
        assert path.lstat().st_ino != second
        assert_serves(path, server)
    assert not path.exists()


def test_a_path_retaken_every_time_ends_in_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "retaken.sock"
    make_stale(path)
    # Every bind after the first (lock-free) one finds the path taken again.
    with (
        fail("bind", errno.EADDRINUSE, after=1, times=10) as injected,
        pytest.raises(jn.SocketError.AddressInUse) as info,
    ):
        jn.listen(f"unix:{path}", unlink_stale=True)
    assert injected.failed == 3
    assert "taken again each time" in str(info.value)


def test_lock_holder_makes_a_cancellable_listen_wait_and_time_out(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "held.sock"
    stale = make_stale(path)
    fd = os.open(tmp_path / "held.sock.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(jn.SocketError.Timeout):
            jn.listen_with_context(f"unix:{path}", jn.Context.with_timeout(0.3), unlink_stale=True)
        assert path.lstat().st_ino == stale  # nothing judged or removed without the lock
        fcntl.flock(fd, fcntl.LOCK_UN)
        with jn.listen_with_context(f"unix:{path}", jn.Context.with_timeout(10), unlink_stale=True) as server:
            assert path.lstat().st_ino != stale
            assert_serves(path, server)
    finally:
        os.close(fd)


@pytest.mark.parametrize("planted", ["fifo", "symlink", "directory"])
def test_something_planted_at_the_lock_name_is_a_clear_error(tmp_path: Path, planted: str) -> None:
    path = tmp_path / "p.sock"
    lock = tmp_path / "p.sock.lock"
    stale = make_stale(path)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    if planted == "fifo":
        os.mkfifo(lock)  # an open for reading would block forever without O_NONBLOCK
    elif planted == "symlink":
        lock.symlink_to(victim)
    else:
        lock.mkdir()
    expected = jn.SocketError.SymLinkLoop if planted == "symlink" else jn.SocketError.AddressInUse
    with pytest.raises(expected):
        jn.listen(f"unix:{path}", unlink_stale=True)
    assert path.lstat().st_ino == stale
    assert victim.read_text() == "keep"


@pytest.mark.parametrize(
    ("syscall", "after"),
    [("open", 0), ("fstat", 0), ("flock", 0), ("sock_diag", 0), ("sock_diag", 2), ("connect", 0), ("bind", 1)],
)
def test_interrupt_at_each_step_of_a_takeover_leaves_no_fd_no_lock_and_the_stale_file(
    tmp_path: Path, syscall: str, after: int
) -> None:
    path = tmp_path / "ki.sock"
    stale = make_stale(path)
    with fail(syscall, KeyboardInterrupt, after=after) as injected, pytest.raises(KeyboardInterrupt):
        jn.listen(f"unix:{path}", unlink_stale=True)
    assert injected.failed == 1
    if syscall != "bind":
        assert path.lstat().st_ino == stale  # interrupted before the judgement was complete
    # The lock was released: a cancellable takeover gets it at once and succeeds.
    with jn.listen_with_context(f"unix:{path}", jn.Context.with_timeout(10), unlink_stale=True) as server:
        assert path.lstat().st_ino != stale
        assert_serves(path, server)
    assert not path.exists()


@pytest.mark.parametrize("error", [errno.EPROTONOSUPPORT, errno.ENOENT, errno.EACCES])
def test_without_sock_diag_a_file_is_never_taken_for_stale(tmp_path: Path, error: int) -> None:
    # Without the kernel's list, "bound but not listening" cannot be told from stale: leave it.
    path = tmp_path / "nd.sock"
    stale = make_stale(path)
    with fail("sock_diag", error), pytest.raises(jn.SocketError.AddressInUse) as info:
        jn.listen(f"unix:{path}", unlink_stale=True)
    assert "cannot tell" in str(info.value)
    assert path.lstat().st_ino == stale


@pytest.mark.parametrize("error", [errno.EPROTONOSUPPORT, errno.EACCES])
def test_without_sock_diag_the_identity_falls_back_to_the_path(tmp_path: Path, error: int) -> None:
    path = tmp_path / "fb.sock"
    with fail("sock_diag", error) as injected:
        server = jn.listen(f"unix:{path}")
    assert injected.failed == 1
    with server:
        assert_serves(path, server)
    assert not path.exists()


# --- Identity from the socket itself


def test_file_swapped_between_bind_and_record_is_never_claimed(tmp_path: Path) -> None:
    path = tmp_path / "swap.sock"
    moved = tmp_path / "ours-moved.sock"
    other = socket.socket(socket.AF_UNIX)
    try:
        with hold("bind") as parked, in_thread(lambda: jn.listen(f"unix:{path}")) as out:
            assert parked.returned.wait(10)
            os.rename(path, moved)  # another process takes the path over meanwhile
            other.bind(str(path))
            other.listen()
            parked.release()
        error = out.get("error")
        if isinstance(out.get("result"), jn.Server):
            out["result"].close()  # type: ignore[union-attr]
        assert isinstance(error, jn.SocketError.AddressInUse), out
        assert "replaced" in str(error)
        assert path.lstat().st_ino == os.fstat(other.fileno()).st_ino or path.is_socket()
        assert_serves(path, other)
        assert moved.is_socket()  # ours, renamed by someone else: not ours to chase
    finally:
        other.close()


@pytest.mark.parametrize("swapped", [False, True], ids=["ours-in-place", "swapped-meanwhile"])
def test_a_failed_look_after_bind_removes_exactly_our_file(tmp_path: Path, swapped: bool) -> None:
    """record asks the socket (sock_diag) before it looks at the path: when the look fails, the
    failing listen still removes its own file -- and never a socket another process put there."""
    path = tmp_path / "look.sock"
    moved = tmp_path / "ours-moved.sock"
    other = socket.socket(socket.AF_UNIX)
    try:
        theirs = None
        with (
            fail("lstat", errno.EACCES) as looked,
            hold("bind") as parked,
            in_thread(lambda: jn.listen(f"unix:{path}")) as out,
        ):
            assert parked.returned.wait(10)
            if swapped:
                os.rename(path, moved)  # another process takes the path over meanwhile
                other.bind(str(path))
                theirs = path.lstat().st_ino
            parked.release()
        assert looked.failed == 1
        error = out.get("error")
        assert isinstance(error, jn.SocketError.AccessDenied) and error.syscall == "lstat", out
        if swapped:
            assert path.lstat().st_ino == theirs  # theirs, left alone
            assert moved.is_socket()  # ours, under a name we never chose: not ours to chase
        else:
            assert not os.path.lexists(path)  # ours, removed although the look failed
    finally:
        other.close()


def test_close_removes_only_the_recorded_inode_after_a_later_swap(tmp_path: Path) -> None:
    path = tmp_path / "later.sock"
    server = jn.listen(f"unix:{path}")
    os.rename(path, tmp_path / "aside.sock")
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        server.close()
        assert_serves(path, other)
    assert (tmp_path / "aside.sock").is_socket()


# --- A forked child never removes the parent's file

_FORK = """
import gc, json, os, socket, sys
import janus_net as jn

path, how = sys.argv[1], sys.argv[2]
server = jn.listen("unix:" + path)
pid = os.fork()
if pid == 0:
    if how == "close":
        server.close()
        os._exit(0)
    if how == "gc":
        del server
        gc.collect()
        os._exit(0)
    sys.exit(0)  # "exit": the interpreter's own shutdown finalizes the Server
_, status = os.waitpid(pid, 0)
present = os.path.exists(path)
with socket.socket(socket.AF_UNIX) as client:
    client.connect(path)
    with server.accept() as stream:
        client.sendall(b"mine")
        served = stream.read(4) == b"mine"
server.close()
print(json.dumps({"status": status, "present": present, "served": served, "gone": not os.path.exists(path)}))
"""


@pytest.mark.parametrize("how", ["close", "gc", "exit"])
def test_forked_child_never_removes_the_parents_file(tmp_path: Path, how: str) -> None:
    path = tmp_path / "fork.sock"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c", _FORK, str(path), how],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report == {"status": 0, "present": True, "served": True, "gone": True}, (report, proc.stderr)


def test_forked_child_closing_in_process_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.sock"
    with jn.listen(f"unix:{path}") as server:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                server.close()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert path.is_socket()
        assert_serves(path, server)
    assert not path.exists()


# --- Widening the mode never follows a swapped path


@pytest.mark.parametrize("park_at", ["bind", "sock_diag"])
def test_mode_widening_never_follows_a_symlink_swapped_in(tmp_path: Path, park_at: str) -> None:
    path = tmp_path / "m.sock"
    victim = tmp_path / "victim"
    victim.write_text("secret")
    victim.chmod(0o600)
    old = os.umask(0o077)  # the umask narrows 0o666: janus_net must widen after bind
    try:
        with hold(park_at) as parked, in_thread(lambda: jn.listen(f"unix:{path}", mode=0o666)) as out:
            assert parked.returned.wait(10)
            os.rename(path, tmp_path / "moved.sock")
            path.symlink_to(victim)
            parked.release()
    finally:
        os.umask(old)
    if isinstance(out.get("result"), jn.Server):
        out["result"].close()  # type: ignore[union-attr]
    assert isinstance(out.get("error"), jn.SocketError.AddressInUse), out
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert victim.read_text() == "secret"
    assert path.is_symlink()


def test_mode_widening_goes_through_the_inode_not_the_name(tmp_path: Path) -> None:
    path = tmp_path / "w.sock"
    trace = tmp_path / "trace"
    program = f"import os, janus_net as jn\nos.umask(0o077)\njn.listen('unix:{path}', mode=0o666).close()\n"
    subprocess.run(
        ["strace", "-f", "-o", str(trace), "-e", "trace=fchmod,bind,openat,chmod,fchmodat", sys.executable, "-c",
         program],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    lines = trace.read_text().splitlines()
    widen = [line for line in lines if "/proc/self/fd/" in line and "chmod" in line]
    assert len(widen) == 1 and "0666" in widen[0] and "= 0" in widen[0], lines
    assert not [line for line in lines if "chmod" in line and str(path) in line], "chmod by name"
    assert any("O_PATH" in line and "O_NOFOLLOW" in line and str(path) in line for line in lines)


# --- owner= and group=


@pytest.mark.skipif(not ROOT, reason="changing a file's owner needs root")
@pytest.mark.parametrize("by", ["id", "name"])
def test_owner_and_group_are_applied(tmp_path: Path, by: str) -> None:
    import grp
    import pwd

    path = tmp_path / "own.sock"
    user, group = pwd.getpwnam("nobody"), grp.getgrnam("nogroup")
    owner: int | str = user.pw_uid if by == "id" else "nobody"
    grp_: int | str = group.gr_gid if by == "id" else "nogroup"
    with jn.listen(f"unix:{path}", owner=owner, group=grp_, mode=0o660) as server:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, group.gr_gid)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert_serves(path, server)
    assert not path.exists()


@pytest.mark.skipif(not ROOT, reason="changing a file's owner needs root")
def test_group_alone_keeps_the_default_mode_and_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "g.sock"
    old = os.umask(0o022)
    try:
        with jn.listen(f"unix:{path}", group=12345):
            st = path.lstat()
            assert (st.st_uid, st.st_gid) == (os.geteuid(), 12345)
            assert stat.S_IMODE(st.st_mode) == 0o755
    finally:
        os.umask(old)


@pytest.mark.skipif(not ROOT, reason="changing a file's owner needs root")
def test_owner_change_has_no_window_with_the_creators_group(tmp_path: Path) -> None:
    # The file is born with owner bits only, then chowned, then given its mode.
    path = tmp_path / "order.sock"
    trace = tmp_path / "trace"
    program = f"import janus_net as jn\njn.listen('unix:{path}', owner=65534, group=65534, mode=0o660).close()\n"
    subprocess.run(
        ["strace", "-f", "-o", str(trace), "-e", "trace=fchmod,bind,fchownat,chmod", sys.executable, "-c", program],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    lines = [
        line
        for line in trace.read_text().splitlines()
        if any(c in line for c in ("fchmod(", "bind(", "fchownat(", "chmod("))
    ]
    steps = [
        next(i for i, line in enumerate(lines) if name in line)
        for name in ("fchmod(", "bind(", "fchownat(", '"/proc/self/fd/')
    ]
    assert steps == sorted(steps), lines
    assert "0600" in lines[steps[0]], lines


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"owner": "no-such-user-janus"}, ValueError),
        ({"group": "no-such-group-janus"}, ValueError),
        ({"owner": "0"}, ValueError),  # a str is a name; ids are ints
        ({"owner": -1}, ValueError),
        ({"owner": 2**32 - 1}, ValueError),  # "unchanged" to chown, not an id
        ({"owner": True}, TypeError),
        ({"group": 1.0}, TypeError),
        ({"owner": b"root"}, TypeError),
        ({"owner": "ro\x00ot"}, ValueError),
    ],
)
def test_bad_owner_or_group_is_rejected_before_any_syscall(
    tmp_path: Path, options: dict[str, object], error: type
) -> None:
    path = tmp_path / "bad.sock"
    with fail("socket", KeyboardInterrupt) as tripwire, pytest.raises(error):
        jn.listen(f"unix:{path}", **options)  # type: ignore[arg-type]
    assert tripwire.calls == 0
    assert not path.exists()


def test_owner_and_group_apply_to_unix_paths_only() -> None:
    with pytest.raises(jn.SocketError.OptionUnsupported):
        jn.listen("127.0.0.1:0", owner=0)
    with pytest.raises(jn.SocketError.OptionUnsupported):
        jn.listen("unix:@janus-no-owner", group=0)
    with socket.socket(socket.AF_UNIX) as inherited:
        inherited.bind("")  # autobind: an abstract name
        inherited.listen()
        with pytest.raises(jn.SocketError.OptionUnsupported) as info:
            jn.listen(f"fd://{inherited.fileno()}", owner=0)
        assert "owner" in str(info.value)


# --- close() from two threads, and close against a concurrent takeover


def test_close_from_many_threads_removes_the_file_once(tmp_path: Path) -> None:
    for _ in range(20):
        path = tmp_path / "t.sock"
        server = jn.listen(f"unix:{path}")
        barrier = threading.Barrier(4)

        def close(server: jn.Server = server, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            server.close()

        threads = [threading.Thread(target=close) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not path.exists()


_TAKER = """
import json, os, sys
import janus_net as jn
path = sys.argv[1]
sys.stdin.readline()
try:
    server = jn.listen("unix:" + path, unlink_stale=True)
except jn.SocketError.AddressInUse:
    print(json.dumps({"ok": False}), flush=True)
    sys.exit(0)
print(json.dumps({"ok": True, "ino": os.lstat(path).st_ino, "present": os.path.exists(path)}), flush=True)
sys.stdin.readline()
server.close()
"""


def test_close_racing_a_takeover_never_removes_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    for _ in range(10):
        taker = subprocess.Popen(
            [sys.executable, "-c", _TAKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert taker.stdin is not None and taker.stdout is not None
            server = jn.listen(f"unix:{path}")
            taker.stdin.write("\n")
            taker.stdin.flush()
            server.close()
            report = json.loads(taker.stdout.readline())
            if report["ok"]:
                assert path.lstat().st_ino == report["ino"], "the new listener's file was removed"
            taker.stdin.write("\n")
            taker.stdin.flush()
            taker.wait(30)
        finally:
            stop(taker)
        assert not path.exists()


# --- A full descriptor table


@pytest.mark.parametrize("stale", [True, False])
def test_full_fd_table_at_every_step_leaves_no_fd_and_no_file(tmp_path: Path, stale: bool) -> None:
    # With k descriptors free, the listen runs out at a different step each time (the
    # socket, the lock, sock_diag, the O_PATH descriptor): each attempt either works or
    # raises a SocketError member, and leaves no descriptor and no file of its own.
    from peers import run_child

    report = run_child(f"""
        import json, os, socket
        import janus_net as jn
        base = {str(tmp_path)!r}
        os.umask(0o077)
        def fds():
            return set(os.listdir("/proc/self/fd"))
        outcomes = []
        for free in range(0, 7):
            path = os.path.join(base, f"f{{free}}.sock")
            if {stale!r}:
                old = socket.socket(socket.AF_UNIX)
                old.bind(path)
                old.close()
            before = fds()  # listed while a descriptor is free to list them
            filler = []
            try:
                while True:
                    filler.append(os.dup(0))
            except OSError:
                pass
            for fd in filler[len(filler) - free:]:
                os.close(fd)
            del filler[len(filler) - free:]
            try:
                server = jn.listen("unix:" + path, unlink_stale=True, mode=0o666)
            except jn.SocketError as e:
                what, detail = type(e).__name__, os.path.exists(path)
            else:
                what, detail = "ok", oct(os.stat(path).st_mode & 0o777)
                server.close()
            for fd in filler:
                os.close(fd)
            outcomes.append([free, what, sorted(fds() - before), detail])
            if os.path.exists(path):
                os.unlink(path)
        print(json.dumps(outcomes))
    """)
    outcomes = report if isinstance(report, list) else []
    assert len(outcomes) == 7, report
    for free, what, leaked, detail in outcomes:
        assert leaked == [], (free, what, leaked)
        if what == "ok":
            assert detail == "0o666", (free, detail)
        else:
            assert what in ("ProcessFdQuotaExceeded", "AddressInUse"), (free, what)
            # The stale file is still there; a file this listen made is gone.
            assert detail is stale, (free, what)
    assert outcomes[0][1] == "ProcessFdQuotaExceeded"
    assert outcomes[-1][1] == "ok"


# --- The PATH.lock wait: LOCK_NB attempts with janus_net naps (DESIGN §3 "One door")


@contextmanager
def lock_held_elsewhere(path: Path) -> Iterator[None]:
    """PATH.lock held by another open file description (the test's own flock: another holder)."""
    import fcntl

    fd = os.open(f"{path}.lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def napping_on_the_lock(tid: int, pid: int | str = "self") -> bool:
    """Thread ``tid`` sleeps in poll (a nap) while its process has PATH.lock open."""
    try:
        with open(f"/proc/{pid}/task/{tid}/wchan") as f:
            asleep = "poll" in f.read()
        names = []
        for n in os.listdir(f"/proc/{pid}/fd"):
            try:
                names.append(os.readlink(f"/proc/{pid}/fd/{n}"))
            except OSError:
                pass
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read (ESRCH)
        return False
    return asleep and any(name.endswith(".lock") for name in names)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_a_cancel_from_another_thread_ends_the_lock_wait_at_once(tmp_path: Path) -> None:
    path = tmp_path / "held.sock"
    stale = make_stale(path)
    ctx = jn.Context.with_timeout(60)
    with lock_held_elsewhere(path):
        with in_thread(lambda: jn.listen_with_context(f"unix:{path}", ctx, unlink_stale=True)) as out:
            wait_until(lambda: any(napping_on_the_lock(int(t)) for t in os.listdir("/proc/self/task")), "never napped")
            ctx.cancel()
        error = out.get("error")
        assert isinstance(error, jn.SocketError.Timeout) and error.reason == "cancelled", out
    assert path.lstat().st_ino == stale  # nothing judged or removed without the lock


def test_a_nap_is_a_janus_net_wait_a_cancel_ends_at_once() -> None:
    """A nap far longer than the test: only the cancel can end it."""
    from janus_net._policy import waiting

    ctx = jn.Context()
    with in_thread(lambda: waiting.pause(ctx, 10 * 60 * 1000)) as out:
        wait_until(lambda: any(in_poll(int(t)) for t in os.listdir("/proc/self/task")), "never napped")
        ctx.cancel()
    assert isinstance(out.get("error"), jn.SocketError.Timeout)


@pytest.mark.parametrize("handler", ["cancels", "raises"])
def test_a_python_handler_ends_the_lock_wait_on_the_main_thread(tmp_path: Path, handler: str) -> None:
    """The signal goes to another thread; the main thread naps on the lock and still runs the handler."""
    path = tmp_path / "held.sock"
    stale = make_stale(path)
    ctx = jn.Context.with_timeout(60)

    class Stop(Exception):
        pass

    def on_signal(signum: int, frame: object) -> None:
        if handler == "raises":
            raise Stop
        ctx.cancel()

    main = threading.main_thread().native_id
    assert main is not None

    def send() -> None:
        wait_until(lambda: napping_on_the_lock(main), "the main thread never napped on the lock")
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with lock_held_elsewhere(path):
            sender = threading.Thread(target=send)
            sender.start()
            with pytest.raises(Stop if handler == "raises" else jn.SocketError.Timeout):
                jn.listen_with_context(f"unix:{path}", ctx, unlink_stale=True)
            sender.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert path.lstat().st_ino == stale
    # and the lock is free again: janus_net's lock file descriptor was closed with its flock
    import fcntl

    probe = os.open(f"{path}.lock", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_the_command_stops_on_a_stop_signal_while_another_process_holds_the_lock(
    tmp_path: Path, sig: signal.Signals
) -> None:
    path = tmp_path / "held.sock"
    stale = make_stale(path)
    with lock_held_elsewhere(path):
        proc = subprocess.Popen(
            [sys.executable, "-m", "janus_net", "listen", f"unix:{path}", "--unlink-stale"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: napping_on_the_lock(proc.pid, proc.pid), "the command never napped on the lock")
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == -sig  # cleaned up, then died of the signal (DESIGN §12)
    assert err == f"janus-net: stopped by {sig.name}\n"
    assert out == ""
    assert path.lstat().st_ino == stale  # nothing judged or removed without the lock
