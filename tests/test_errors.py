"""Errors from real causes, and the error objects themselves (DESIGN §5).

Each member here is produced by the kernel for the reason its name says: a port
that is taken, an address that is not local, a capability the process lacks, a
descriptor closed behind the library's back. Modes that are fixed at import
(``python -O``, ``JANUS_NET_DEBUG``) are checked in child interpreters.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import janus_net as jn
from janus_net._values import errors

MEMBERS = [
    "InvalidAddress",
    "InvalidPort",
    "Timeout",
    "CapabilityDenied",
    "AddressInUse",
    "AddressUnavailable",
    "AddressFamilyUnsupported",
    "AccessDenied",
    "SystemResources",
    "ProcessFdQuotaExceeded",
    "SystemFdQuotaExceeded",
    "NetworkSubsystemDown",
    "ProtocolUnsupportedBySystem",
    "ProtocolUnsupportedByAddressFamily",
    "SocketModeUnsupported",
    "OptionUnsupported",
    "SocketNotListening",
    "ConnectionAborted",
    "ProtocolFailure",
    "BlockedByFirewall",
    "MessageTooBig",
    "NetworkUnreachable",
    "HostUnreachable",
    "ConnectionRefused",
    "ConnectionResetByPeer",
    "ConnectionTimedOut",
    "SocketUnconnected",
    "SymLinkLoop",
    "FileNotFound",
    "NotDir",
    "ReadOnlyFileSystem",
    "Unexpected",
    "InvalidHostName",
    "UnknownHostName",
    "NameServerFailure",
]

BUILTIN_MIXINS = {
    "Timeout": TimeoutError,
    "AccessDenied": PermissionError,
    "ConnectionRefused": ConnectionRefusedError,
    "ConnectionAborted": ConnectionAbortedError,
    "ConnectionResetByPeer": ConnectionResetError,
    "FileNotFound": FileNotFoundError,
}


def run_python(program: str, *flags: str, env: dict[str, str] | None = None) -> str:
    """Run ``program`` in a fresh interpreter (janus_net importable) and return its stdout."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_NET_")}
    child_env.update(env or {})
    done = subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(program)],
        capture_output=True, text=True, timeout=60, env=child_env, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- Real causes


def test_address_in_use_from_a_second_listener_even_with_reuse_address() -> None:
    # SO_REUSEADDR lets a listener take a port in TIME_WAIT, never a port someone listens on.
    with jn.listen("127.0.0.1:0", reuse_address=True) as first:
        port = first.address.port
        with pytest.raises(jn.SocketError.AddressInUse) as info:
            jn.listen(f"127.0.0.1:{port}", reuse_address=True)
    e = info.value
    assert isinstance(e, jn.SocketError) and isinstance(e, OSError)
    assert e.errno == errno.EADDRINUSE
    assert e.syscall == "bind"
    assert e.address == f"127.0.0.1:{port}"
    assert str(e) == f"AddressInUse: bind 127.0.0.1:{port}: [Errno 98] Address already in use"
    assert e.member == "AddressInUse"


def test_address_in_use_for_udp_bind() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(jn.SocketError.AddressInUse) as info:
            jn.bind(f"127.0.0.1:{port}")
    assert info.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize("opener", [jn.listen, jn.bind])
def test_address_unavailable_on_test_net(opener: object) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never on a local interface, never contacted.
    with pytest.raises(jn.SocketError.AddressUnavailable) as info:
        opener("192.0.2.1:0")  # type: ignore[operator]
    e = info.value
    assert e.errno == errno.EADDRNOTAVAIL
    assert e.syscall == "bind"
    assert e.address == "192.0.2.1:0"
    assert str(e) == "AddressUnavailable: bind 192.0.2.1:0: [Errno 99] Cannot assign requested address"


def _free_privileged_port() -> int:
    for port in range(1023, 900, -1):
        try:
            jn.listen(f"127.0.0.1:{port}").close()
        except jn.SocketError:
            continue
        return port
    pytest.fail("no free port in 901..1023")


_ACCESS_DENIED_CHILD = """
import janus_net as jn
try:
    jn.listen("127.0.0.1:{port}")
except jn.SocketError.AccessDenied as e:
    assert isinstance(e, PermissionError), type(e).__mro__
    assert e.errno == 13 and e.syscall == "bind", (e.errno, e.syscall)
    print("ACCESS_DENIED", e)
else:
    print("LISTENED")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping CAP_NET_BIND_SERVICE with capsh needs root")
@pytest.mark.skipif(shutil.which("capsh") is None, reason="capsh (libcap2-bin) is not installed")
def test_access_denied_below_1024_without_cap_net_bind_service() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start == 0:
        pytest.skip("net.ipv4.ip_unprivileged_port_start is 0: every port is unprivileged here")
    # We are root, so the port is free and bindable when we hold the capability...
    port = _free_privileged_port()
    assert port < start
    program = _ACCESS_DENIED_CHILD.format(port=port)
    command = f"{sys.executable} -c '{program}'"
    # ...and denied once the capability is dropped from the bounding set before exec.
    done = subprocess.run(
        ["capsh", "--drop=cap_net_bind_service", "--", "-c", command],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"ACCESS_DENIED AccessDenied: bind 127.0.0.1:{port}: [Errno 13] Permission denied")


def _close_behind_the_back(server: jn.Server) -> int:
    """Close the Server's fd with os.close and return its number."""
    fd = server.fileno()
    os.close(fd)
    return fd


def _refill(fd: int) -> None:
    """Put a placeholder at ``fd`` so the Server's own close() closes that, not a stranger."""
    placeholder = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    if placeholder != fd:
        os.dup2(placeholder, fd)
        os.close(placeholder)


@pytest.mark.skipif(not errors.DEBUG, reason="the parent runs in release mode; the child test covers it")
def test_ebadf_from_accept_is_errno_bug_in_debug_mode() -> None:
    server = jn.listen("127.0.0.1:0")
    fd = _close_behind_the_back(server)
    try:
        with pytest.raises(jn.ErrnoBug) as info:
            server.accept()
    finally:
        _refill(fd)
        server.close()  # closes the placeholder
    e = info.value
    assert isinstance(e, AssertionError)
    assert not isinstance(e, OSError)  # no `except OSError` swallows it
    assert str(e).startswith("programmer bug caused syscall error: EBADF")
    assert "accept" in str(e)
    assert e.errno == errno.EBADF
    assert e.syscall == "accept"


def test_ebadf_from_accept_is_unexpected_in_release_mode() -> None:
    out = run_python(
        """
        import os, janus_net as jn
        server = jn.listen("127.0.0.1:0")
        os.close(server.fileno())
        try:
            server.accept()
        except jn.SocketError.Unexpected as e:
            print(type(e).__name__, e.errno, e.syscall, isinstance(e, OSError))
        os._exit(0)  # the Server's fd is gone; do not let its close() run
        """,
        env={"JANUS_NET_DEBUG": "0"},
    )
    assert out.split() == ["Unexpected", str(errno.EBADF), "accept", "True"]


_MODE_PROBE = """
import os, janus_net as jn
from janus_net._values import errors
server = jn.listen("127.0.0.1:0")
os.close(server.fileno())
try:
    server.accept()
except BaseException as e:
    print(errors.DEBUG, type(e).__name__)
os._exit(0)
"""


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ((), {}, "True ErrnoBug"),
        (("-O",), {}, "False Unexpected"),
        (("-O",), {"JANUS_NET_DEBUG": "1"}, "True ErrnoBug"),
        ((), {"JANUS_NET_DEBUG": "0"}, "False Unexpected"),
        ((), {"JANUS_NET_DEBUG": "1"}, "True ErrnoBug"),
    ],
)
def test_debug_mode_follows_python_o_and_the_override(
    flags: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    assert run_python(_MODE_PROBE, *flags, env=env).strip() == expected


def test_no_fd_left_behind_by_failed_listens(tmp_path: Path) -> None:
    from tests.conftest import open_fds

    before = open_fds()
    with jn.listen("127.0.0.1:0") as taken:
        for _ in range(20):
            with pytest.raises(jn.SocketError.AddressInUse):
                jn.listen(str(taken.address))
            with pytest.raises(jn.SocketError.AddressUnavailable):
                jn.bind("192.0.2.1:0")
            with pytest.raises(jn.SocketError.FileNotFound):
                jn.listen(f"unix:{tmp_path}/missing/dir.sock")
    assert open_fds() == before


def test_file_not_found_and_not_dir_for_unix_paths(tmp_path: Path) -> None:
    with pytest.raises(jn.SocketError.FileNotFound) as info:
        jn.listen(f"unix:{tmp_path}/missing/s.sock")
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.errno == errno.ENOENT
    (tmp_path / "file").write_text("x")
    with pytest.raises(jn.SocketError.NotDir) as not_dir:
        jn.listen(f"unix:{tmp_path}/file/s.sock")
    assert not_dir.value.errno == errno.ENOTDIR


def test_protocol_unsupported_by_address_family_for_tcp_over_datagrams() -> None:
    with pytest.raises(jn.SocketError.ProtocolUnsupportedByAddressFamily) as info:
        jn.bind("127.0.0.1:0", mode=jn.Mode.DGRAM, protocol=jn.Protocol.TCP)
    assert info.value.syscall == "socket"
    assert info.value.errno == errno.EPROTONOSUPPORT


# --- The error objects


def test_every_member_is_reachable_as_an_attribute_of_socket_error() -> None:
    for name in MEMBERS:
        member = getattr(jn.SocketError, name)
        assert member.__name__ == name
        assert issubclass(member, jn.SocketError)
        assert issubclass(member, OSError)
    assert set(MEMBERS) == {m.__name__ for m in errors.MEMBERS}


def test_builtin_mixins() -> None:
    for name in MEMBERS:
        member = getattr(jn.SocketError, name)
        builtin = BUILTIN_MIXINS.get(name)
        if builtin is not None:
            assert issubclass(member, builtin), name
    assert not issubclass(jn.SocketError.AddressInUse, PermissionError)


def test_errno_bug_is_an_assertion_error_and_not_an_os_error() -> None:
    assert issubclass(jn.ErrnoBug, AssertionError)
    assert not issubclass(jn.ErrnoBug, OSError)
    assert str(jn.ErrnoBug(errno.EBADF, "accept")).startswith("programmer bug caused syscall error: EBADF")


def test_error_without_errno_has_a_readable_message() -> None:
    with pytest.raises(jn.SocketError.InvalidPort) as info:
        jn.listen("127.0.0.1:99999")
    e = info.value
    assert e.errno is None
    assert e.syscall is None
    assert str(e).startswith("InvalidPort: ")


def test_pickle_keeps_member_errno_syscall_address() -> None:
    with jn.listen("127.0.0.1:0") as first, pytest.raises(jn.SocketError.AddressInUse) as info:
        jn.listen(str(first.address))
    original = info.value
    clone = pickle.loads(pickle.dumps(original))
    assert type(clone) is jn.SocketError.AddressInUse
    assert (clone.errno, clone.syscall, clone.address) == (original.errno, original.syscall, original.address)
    assert clone.strerror == original.strerror
    assert str(clone) == str(original)


@pytest.mark.parametrize(
    "error",
    [
        jn.SocketError.InvalidAddress(None, "no such form", address="bogus"),
        jn.SocketError.AccessDenied(errno.EACCES, syscall="bind", address="127.0.0.1:80"),
        jn.SocketError.Timeout("deadline", address="127.0.0.1:1"),
        jn.SocketError.Unexpected(errno.EBADF, syscall="accept", address="127.0.0.1:2"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_round_trip_of_each_kind(error: jn.SocketError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert (clone.errno, clone.syscall, clone.address, str(clone)) == (
        error.errno, error.syscall, error.address, str(error),
    )  # fmt: skip
    if isinstance(error, jn.SocketError.Timeout):
        assert clone.reason == error.reason  # type: ignore[attr-defined]


def test_pickle_round_trip_of_errno_bug() -> None:
    clone = pickle.loads(pickle.dumps(jn.ErrnoBug(errno.EBADF, "accept")))
    assert type(clone) is jn.ErrnoBug
    assert (clone.errno, clone.syscall) == (errno.EBADF, "accept")
    assert str(clone).startswith("programmer bug caused syscall error: EBADF")


def test_except_clauses_that_never_heard_of_janus_net_still_work() -> None:
    with jn.listen("127.0.0.1:0") as first:
        try:
            jn.listen(str(first.address))
        except OSError as e:
            assert e.errno == errno.EADDRINUSE
        else:
            pytest.fail("no error")
