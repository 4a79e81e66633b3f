"""Unix socket files (DESIGN §7): never delete a live socket, remove only our own inode.

The file system and the stdlib are the oracles: ``os.stat`` for the mode and the
inode, a stdlib client for "still accepting", a stdlib socket closed without unlink
for a stale file, and strace for the order of fchmod and bind.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import janus_net as jn
from janus_net import platform
from janus_net.testing import fail


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "s.sock"


def assert_accepts(server: jn.Server, path: Path) -> None:
    """A stdlib client reaches ``server`` at ``path`` and they exchange bytes."""
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        with server.accept() as stream:
            client.sendall(b"still here")
            assert stream.read(20) == b"still here"


def make_stale(path: Path, type_: int = socket.SOCK_STREAM) -> None:
    """Leave a socket file nobody listens on: bound by the stdlib, closed without unlink."""
    s = socket.socket(socket.AF_UNIX, type_)
    s.bind(str(path))
    if type_ == socket.SOCK_STREAM:
        s.listen()
    s.close()
    assert path.is_socket()


@contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block is still running after ``seconds``."""

    def expire(signum: int, frame: object) -> None:
        raise AssertionError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- Never delete a live socket


@pytest.mark.parametrize("unlink_stale", [False, True])
def test_live_socket_is_never_removed(sock_path: Path, unlink_stale: bool) -> None:
    with jn.listen(f"unix:{sock_path}") as first:
        inode = sock_path.stat().st_ino
        with pytest.raises(jn.SocketError.AddressInUse) as info:
            jn.listen(f"unix:{sock_path}", unlink_stale=unlink_stale)
        assert info.value.address == f"unix:{sock_path}"
        assert sock_path.stat().st_ino == inode
        # The kernel's list of bound sockets said "live": the server was not even probed,
        # so the next connection it accepts is the real client's.
        assert_accepts(first, sock_path)


def test_live_stdlib_listener_is_never_removed(sock_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(sock_path))
        live.listen()
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen(f"unix:{sock_path}", unlink_stale=True)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(sock_path))
            live.accept()[0].close()


def test_live_socket_with_a_full_backlog_is_left_alone_without_blocking(sock_path: Path) -> None:
    # A blocking probe connect() would wait here until the server accepts: forever.
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(sock_path))
        live.listen(0)
        waiting: list[socket.socket] = []
        try:
            while True:  # fill the backlog until the kernel says it is full
                client = socket.socket(socket.AF_UNIX)
                client.setblocking(False)
                waiting.append(client)
                try:
                    client.connect(str(sock_path))
                except BlockingIOError:
                    break
            with no_hang(10), pytest.raises(jn.SocketError.AddressInUse) as info:
                jn.listen(f"unix:{sock_path}", unlink_stale=True)
            assert "live socket" in str(info.value)
            assert sock_path.is_socket()
        finally:
            for client in waiting:
                client.close()


def test_live_datagram_socket_at_the_path_is_left_alone(sock_path: Path) -> None:
    # A stream probe cannot connect to a datagram socket (EPROTOTYPE): not "stale".
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as live:
        live.bind(str(sock_path))
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen(f"unix:{sock_path}", unlink_stale=True)
        assert sock_path.is_socket()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"alive", str(sock_path))
            assert live.recv(10) == b"alive"


# --- Stale files


def test_stale_socket_is_address_in_use_by_default(sock_path: Path) -> None:
    make_stale(sock_path)
    inode = sock_path.stat().st_ino
    with pytest.raises(jn.SocketError.AddressInUse) as info:
        jn.listen(f"unix:{sock_path}")
    assert info.value.errno == errno.EADDRINUSE
    assert info.value.syscall == "bind"
    assert sock_path.stat().st_ino == inode


def test_stale_socket_is_replaced_with_unlink_stale(sock_path: Path) -> None:
    make_stale(sock_path)
    # A second link keeps the stale inode allocated, so its number cannot be reused by
    # the new socket file and "another inode" is a fair test.
    keep = sock_path.with_name("keep.sock")
    os.link(sock_path, keep)
    stale_inode = sock_path.stat().st_ino
    with jn.listen(f"unix:{sock_path}", unlink_stale=True) as server:
        assert sock_path.stat().st_ino != stale_inode
        assert keep.stat().st_ino == stale_inode
        assert_accepts(server, sock_path)
    assert not sock_path.exists()
    assert keep.is_socket()


def test_regular_file_is_left_untouched_even_with_unlink_stale(sock_path: Path) -> None:
    sock_path.write_bytes(b"precious data")
    for unlink_stale in (False, True):
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.listen(f"unix:{sock_path}", unlink_stale=unlink_stale)
        assert sock_path.read_bytes() == b"precious data"


def test_symlink_to_a_stale_socket_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "target.sock"
    make_stale(target)
    link = tmp_path / "link.sock"
    link.symlink_to(target)
    with pytest.raises(jn.SocketError.AddressInUse):
        jn.listen(f"unix:{link}", unlink_stale=True)
    assert link.is_symlink() and target.is_socket()


# --- mode


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660, 0o666])
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_mode_holds_whatever_the_umask(tmp_path: Path, mode: int, umask: int) -> None:
    path = tmp_path / f"m{mode:o}-{umask:o}.sock"
    old = os.umask(umask)
    try:
        server = jn.listen(f"unix:{path}", mode=mode)
    finally:
        os.umask(old)
    with server:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == mode
        assert_accepts(server, path)


def test_mode_is_applied_before_bind(tmp_path: Path) -> None:
    path = tmp_path / "ordered.sock"
    trace = tmp_path / "trace"
    program = f"import janus_net as jn\njn.listen('unix:{path}', mode=0o600).close()\n"
    subprocess.run(
        ["strace", "-f", "-o", str(trace), "-e", "trace=socket,fchmod,bind,listen", sys.executable, "-c", program],
        check=True, timeout=30, capture_output=True,
    )  # fmt: skip
    lines = [line for line in trace.read_text().splitlines() if str(path) in line or "fchmod(" in line]
    bind_at = next(i for i, line in enumerate(lines) if line.split(None, 1)[-1].startswith("bind("))
    fchmod_at = next(i for i, line in enumerate(lines) if "fchmod(" in line)
    assert fchmod_at < bind_at, lines
    assert "0600" in lines[fchmod_at] and "= 0" in lines[fchmod_at]


def test_mode_is_rejected_for_non_path_addresses() -> None:
    with pytest.raises(jn.SocketError.OptionUnsupported):
        jn.listen("127.0.0.1:0", mode=0o600)
    with pytest.raises(jn.SocketError.OptionUnsupported):
        jn.listen("unix:@janus-no-mode", mode=0o600)


# --- close


def test_close_removes_the_file(sock_path: Path) -> None:
    server = jn.listen(f"unix:{sock_path}")
    assert sock_path.is_socket()
    server.close()
    assert not sock_path.exists()
    server.close()  # idempotent, and nothing else to remove


def test_close_leaves_a_path_that_names_another_inode(sock_path: Path) -> None:
    server = jn.listen(f"unix:{sock_path}")
    os.unlink(sock_path)
    sock_path.write_text("someone else's file")
    server.close()
    assert sock_path.read_text() == "someone else's file"


def test_close_leaves_another_socket_at_the_path(sock_path: Path) -> None:
    server = jn.listen(f"unix:{sock_path}")
    os.unlink(sock_path)
    with jn.listen(f"unix:{sock_path}") as successor:
        server.close()
        assert_accepts(successor, sock_path)
    assert not sock_path.exists()


def test_to_socket_leaves_the_file_to_the_new_owner(sock_path: Path) -> None:
    server = jn.listen(f"unix:{sock_path}")
    sock = server.to_socket()
    try:
        server.close()
        assert sock_path.is_socket()
    finally:
        sock.close()
    assert sock_path.is_socket()


# --- Path length


@pytest.fixture
def deep_dir() -> Iterator[Path]:
    """A directory under /tmp deep enough that a socket path can be 107 or 108 bytes."""
    base = Path(tempfile.mkdtemp(prefix="jn-", dir="/tmp"))
    try:
        deep = base
        while len(os.fsencode(str(deep))) < platform.SUN_PATH_SIZE - 20:
            deep = deep / "d"
        deep.mkdir(parents=True)
        yield deep
    finally:
        shutil.rmtree(base)


def test_longest_path_fits_and_one_more_byte_is_invalid(deep_dir: Path) -> None:
    limit = platform.SUN_PATH_SIZE - 1  # 107 on Linux: sun_path keeps a NUL
    prefix = len(os.fsencode(str(deep_dir))) + 1
    longest = deep_dir / ("x" * (limit - prefix))
    assert len(os.fsencode(str(longest))) == limit
    with jn.listen(f"unix:{longest}") as server:
        assert longest.is_socket()
        assert_accepts(server, longest)
        with jn.bind(str(longest.with_name("y" * (limit - prefix)))) as dgram:
            assert dgram.address.path == str(longest.with_name("y" * (limit - prefix)))
    too_long = deep_dir / ("x" * (limit - prefix + 1))
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.listen(f"unix:{too_long}")
    assert not too_long.exists()


# --- Failure after bind


@pytest.mark.parametrize("error", [errno.EADDRINUSE, KeyboardInterrupt])
def test_failure_after_bind_removes_the_file_this_call_created(
    sock_path: Path, error: int | type[BaseException]
) -> None:
    # No real kernel failure of listen() follows a successful unix bind in :core, so the
    # fault seam makes listen fail (or a KeyboardInterrupt arrive) right after bind.
    expected: type[BaseException] = jn.SocketError.AddressInUse if error == errno.EADDRINUSE else KeyboardInterrupt
    with fail("listen", error) as injected, pytest.raises(expected):
        jn.listen(f"unix:{sock_path}")
    assert injected.failed == 1
    assert not sock_path.exists()


def test_failure_after_bind_keeps_a_file_this_call_did_not_create(sock_path: Path) -> None:
    sock_path.write_text("mine")
    with pytest.raises(jn.SocketError.AddressInUse):
        jn.listen(f"unix:{sock_path}")
    assert sock_path.read_text() == "mine"


# --- Relative paths


def test_relative_path_is_resolved_at_listen_and_removed_after_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = jn.listen("unix:relative.sock")
    try:
        assert server.address == jn.UnixAddress("relative.sock")
        assert (tmp_path / "relative.sock").is_socket()
        assert_accepts(server, tmp_path / "relative.sock")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "relative.sock").write_text("not ours")
        monkeypatch.chdir(elsewhere)
    finally:
        server.close()
    assert not (tmp_path / "relative.sock").exists()
    assert (tmp_path / "elsewhere" / "relative.sock").read_text() == "not ours"


# --- Datagram unix files follow the same rules


def test_datagram_bind_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    with jn.bind(f"unix:{path}") as sock:
        assert path.is_socket()
        with pytest.raises(jn.SocketError.AddressInUse):
            jn.bind(f"unix:{path}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"still bound", str(path))
            assert sock.receive()[0] == b"still bound"
    assert not path.exists()

    make_stale(path, socket.SOCK_DGRAM)
    with pytest.raises(jn.SocketError.AddressInUse):
        jn.bind(f"unix:{path}")
    assert path.is_socket()

    other = tmp_path / "o.sock"
    sock = jn.bind(f"unix:{other}")
    os.unlink(other)
    other.write_text("replaced")
    sock.close()
    assert other.read_text() == "replaced"


def test_datagram_bind_failure_after_bind_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "g.sock"
    with fail("getsockname", KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        jn.bind(f"unix:{path}")
    assert not path.exists()


def test_datagram_from_an_unbound_unix_sender_has_the_unnamed_address(tmp_path: Path) -> None:
    path = tmp_path / "u.sock"
    with jn.bind(f"unix:{path}") as sock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"anonymous", str(path))
        data, source = sock.receive()
        assert data == b"anonymous"
        assert source == jn.UnixAddress("")
        assert source.unnamed
        sender.sendto(b"again", str(path))
        buf = bytearray(16)
        n, source = sock.receive_into(buf)
        assert (bytes(buf[:n]), source) == (b"again", jn.UnixAddress(""))


@pytest.mark.parametrize("make", ["stale_socket", "regular_file"])
def test_address_in_use_on_an_existing_file_names_unlink_stale(sock_path: Path, make: str) -> None:
    # The error tells the caller the option exists, and what it never does.
    if make == "stale_socket":
        with socket.socket(socket.AF_UNIX) as old:
            old.bind(str(sock_path))
    else:
        sock_path.write_text("not a socket")
    for call in (jn.listen, jn.bind):
        with pytest.raises(jn.SocketError.AddressInUse) as info:
            call(f"unix:{sock_path}")
        error = info.value
        assert error.errno == errno.EADDRINUSE and error.syscall == "bind" and error.address == f"unix:{sock_path}"
        assert "unlink_stale=True removes it" in str(error) and "a live socket is never removed" in str(error)
    assert sock_path.exists()
    if make == "stale_socket":
        jn.listen(f"unix:{sock_path}", unlink_stale=True).close()  # and the hint is true
        assert not sock_path.exists()
