"""DESIGN §16 options: checked before any syscall, set, read back by getsockopt through a dup'ed stdlib socket.

The oracle is the stdlib socket module on a dup of the descriptor (`peers.stdlib_view`).
freebind binds an address no interface has (192.0.2.1, TEST-NET-1) and never sends;
SO_REUSEPORT steering runs in a namespace the test makes, on loopback.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from peers import stdlib_view

import janus_net as jn
from janus_net._policy import netns
from janus_net._shim import lib
from janus_net.testing import fail

TCP = socket.IPPROTO_TCP
SOL = socket.SOL_SOCKET


def _int(view: socket.socket, level: int, option: int) -> int:
    return view.getsockopt(level, option)


def test_each_option_is_set_and_read_back_on_ipv4() -> None:
    with jn.listen(
        "127.0.0.1:0", freebind=True, transparent=True, device="lo", fastopen=16, defer_accept=5, incoming_cpu=1
    ) as server:
        with stdlib_view(server) as view:
            assert _int(view, socket.IPPROTO_IP, lib.JN_IP_FREEBIND) == 1
            assert _int(view, socket.IPPROTO_IP, lib.JN_IP_TRANSPARENT) == 1
            assert view.getsockopt(SOL, socket.SO_BINDTODEVICE, 16).rstrip(b"\0") == b"lo"
            assert _int(view, TCP, socket.TCP_FASTOPEN) == 16
            defer = _int(view, TCP, socket.TCP_DEFER_ACCEPT)
            assert defer >= 5  # the kernel keeps retransmissions, and rounds the seconds up
            assert _int(view, SOL, lib.JN_SO_INCOMING_CPU) == 1
        assert server.options() == {
            "reuse_address": True,
            "reuse_port": False,
            "freebind": True,
            "transparent": True,
            "device": "lo",
            "fastopen": 16,
            "defer_accept": defer,
            "incoming_cpu": 1,
        }


def test_each_option_is_set_and_read_back_on_ipv6() -> None:
    with jn.listen("[::1]:0", freebind=True, transparent=True, ip6_only=True, reuse_port=True) as server:
        with stdlib_view(server) as view:
            assert _int(view, socket.IPPROTO_IPV6, lib.JN_IPV6_FREEBIND) == 1
            assert _int(view, socket.IPPROTO_IPV6, lib.JN_IPV6_TRANSPARENT) == 1
        options = server.options()
        assert options["ip6_only"] is True and options["reuse_port"] is True
        assert options["freebind"] is True and options["transparent"] is True
        assert options["device"] is None and options["fastopen"] == 0 and options["incoming_cpu"] is None


def test_defaults_are_what_the_kernel_holds() -> None:
    with jn.listen("127.0.0.1:0") as server, stdlib_view(server) as view:
        options = server.options()
        assert options["freebind"] is bool(_int(view, socket.IPPROTO_IP, lib.JN_IP_FREEBIND)) is False
        assert options["reuse_address"] is bool(_int(view, SOL, socket.SO_REUSEADDR)) is True
        assert options["defer_accept"] == _int(view, TCP, socket.TCP_DEFER_ACCEPT) == 0


def test_datagram_and_unix_sockets_report_their_own_keys(tmp_path: Path) -> None:
    with jn.bind("127.0.0.1:0", broadcast=True, freebind=True, device="lo", incoming_cpu=0) as sock:
        assert sock.options() == {
            "reuse_address": False,
            "reuse_port": False,
            "broadcast": True,
            "freebind": True,
            "transparent": False,
            "device": "lo",
            "incoming_cpu": 0,
        }
    with jn.listen(f"unix:{tmp_path / 's.sock'}") as server:
        assert set(server.options()) == {"reuse_address", "reuse_port", "incoming_cpu"}


def test_freebind_binds_an_address_no_interface_has() -> None:
    # 192.0.2.1 is TEST-NET-1, on no interface here. Only bound: nothing is ever sent.
    with pytest.raises(jn.SocketError.AddressUnavailable):
        jn.listen("192.0.2.1:0")
    with jn.listen("192.0.2.1:0", freebind=True) as server:
        assert server.address.host == "192.0.2.1" and server.address.port > 0
    with jn.bind("[2001:db8::1]:0", freebind=True) as sock:
        assert sock.address.host == "2001:db8::1"


def test_device_that_does_not_exist_is_address_unavailable() -> None:
    with pytest.raises(jn.SocketError.AddressUnavailable) as info:
        jn.listen("127.0.0.1:0", device="jn-nosuchdev")
    assert info.value.errno == errno.ENODEV and info.value.syscall == "setsockopt"
    assert "device" in str(info.value) and info.value.address == "127.0.0.1:0"


def test_transparent_without_cap_net_admin_is_access_denied() -> None:
    source = (
        "import janus_net as jn\n"
        "try:\n"
        "    jn.listen('127.0.0.1:0', transparent=True).close()\n"
        "except jn.SocketError.AccessDenied as e:\n"
        "    print(e.errno, e.syscall, 'transparent' in str(e))\n"
    )
    proc = subprocess.run(
        ["setpriv", "--bounding-set", "-net_admin,-net_raw", sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(errno.EPERM), "setsockopt", "True"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"freebind": 1}, TypeError),
        ({"transparent": "yes"}, TypeError),
        ({"device": b"lo"}, TypeError),
        ({"device": ""}, ValueError),
        ({"device": "x" * 16}, ValueError),  # IF_NAMESIZE is 16: 15 bytes at most
        ({"device": "l\0o"}, ValueError),
        ({"device": "a/b"}, ValueError),
        ({"fastopen": True}, TypeError),
        ({"fastopen": 1.0}, TypeError),
        ({"fastopen": -1}, ValueError),
        ({"defer_accept": "5"}, TypeError),
        ({"defer_accept": 2**31}, ValueError),
        ({"incoming_cpu": -1}, ValueError),
        ({"incoming_cpu": False}, TypeError),
        ({"steer": "hash", "reuse_port": True}, ValueError),
        ({"steer": "cpu"}, ValueError),  # needs reuse_port=True
        ({"steer": "cpu", "reuse_port": 1}, ValueError),
    ],
)
def test_bad_values_raise_before_any_syscall(options: dict[str, Any], error: type[Exception]) -> None:
    with fail("socket", errno.EMFILE) as injection, pytest.raises(error):
        jn.listen("127.0.0.1:0", **options)
    assert injection.failed == 0


@pytest.mark.parametrize(
    "options",
    [
        {"freebind": True},
        {"transparent": True},
        {"device": "lo"},
        {"fastopen": 5},
        {"defer_accept": 1},
        {"steer": "cpu", "reuse_port": True},
    ],
)
def test_ip_options_on_a_unix_socket_are_option_unsupported_before_any_syscall(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    with fail("socket", errno.EMFILE) as injection, pytest.raises(jn.SocketError.OptionUnsupported):
        jn.listen(f"unix:{tmp_path / 's.sock'}", **options)
    assert injection.failed == 0
    assert not (tmp_path / "s.sock").exists()


def test_bind_takes_only_the_options_that_apply() -> None:
    with pytest.raises(TypeError):
        jn.bind("127.0.0.1:0", fastopen=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        jn.bind("127.0.0.1:0", steer="cpu")  # type: ignore[call-arg]


def test_the_capability_profile_takes_them_too() -> None:
    cap = jn.NetBind("x", ports=(0,))
    with jn.listen_with_capability("127.0.0.1:0", cap, defer_accept=3) as server:
        assert server.options()["defer_accept"] >= 3
    with jn.bind_with_context("127.0.0.1:0", jn.Context(), incoming_cpu=0) as sock:
        assert sock.options()["incoming_cpu"] == 0


# --- steer="cpu": a SO_REUSEPORT group whose members are chosen by the receiving CPU


def _pending(servers: list[jn.Server]) -> list[int]:
    readable, _, _ = select.select([s.fileno() for s in servers], [], [], 5)
    return [i for i, s in enumerate(servers) if s.fileno() in readable]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_steer_cpu_places_each_connection_on_the_worker_of_its_cpu(namespace: str) -> None:
    path = f"/run/netns/{namespace}"
    first = jn.listen("127.0.0.1:0", netns=path, reuse_port=True, steer="cpu")
    workers = [first]
    try:
        port = first.address.port
        for _ in range(3):
            workers.append(jn.listen(f"127.0.0.1:{port}", netns=path, reuse_port=True, steer="cpu"))
        cpus = sorted(os.sched_getaffinity(0))[:2]
        saved = os.sched_getaffinity(0)
        try:
            for cpu in cpus * 4:
                os.sched_setaffinity(0, {cpu})  # this thread only: the SYN is handled on this CPU
                fd = netns.run_in(path, lambda: socket.socket().detach())
                client = socket.socket(fileno=fd)
                try:
                    client.connect(("127.0.0.1", port))
                    assert _pending(workers) == [cpu], f"connection from CPU {cpu}"
                    with workers[cpu].accept() as stream, stdlib_view(stream) as view:
                        assert view.getsockopt(SOL, lib.JN_SO_INCOMING_CPU) == cpu
                finally:
                    client.close()
        finally:
            os.sched_setaffinity(0, saved)
    finally:
        for worker in workers:
            worker.close()
