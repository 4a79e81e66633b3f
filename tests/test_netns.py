"""netns=PATH: the socket is made inside another network namespace; the caller's thread never moves.

Each test that needs a namespace makes its own (`ip netns add jn-test-<random>`, loopback
up) and deletes it. The peers run inside it (`ip netns exec NAME python -c ...`), and the
stdlib socket module in the caller's namespace is the witness that it is elsewhere.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from peers import wchan

import janus_net as jn
from janus_net._kernel import cells
from janus_net._policy import netns
from janus_net.testing import fail


def _inside(name: str, source: str, *args: str) -> str:
    """Run ``source`` with this Python inside namespace ``name``; its stdout."""
    proc = subprocess.run(
        ["ip", "netns", "exec", name, sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _my_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def _pending(server: jn.Server) -> bool:
    readable, _, _ = select.select([server.fileno()], [], [], 0)
    return bool(readable)


_CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as c:
    c.sendall(b"hello from inside")
print("sent")
"""


def test_a_server_made_in_a_namespace_is_reachable_there_and_not_here(namespace: str) -> None:
    before = _my_netns()
    with jn.listen("127.0.0.1:0", netns=f"/run/netns/{namespace}") as server:
        assert _my_netns() == before  # the caller's thread never moved
        port = server.address.port
        # From the caller's namespace the port is not this server's: a connect made
        # here (refused, or reaching some other listener) never reaches it.
        probe = socket.socket()
        try:
            probe.settimeout(30)
            probe.connect_ex(("127.0.0.1", port))
        finally:
            probe.close()
        assert not _pending(server)
        # From inside the namespace it is.
        assert _inside(namespace, _CLIENT, str(port)) == "sent"
        with server.accept() as stream:
            assert stream.read(100) == b"hello from inside"
    assert _my_netns() == before


def test_bind_in_a_namespace_receives_datagrams_sent_there(namespace: str) -> None:
    with jn.bind("127.0.0.1:0", netns=Path(f"/run/netns/{namespace}")) as sock:
        source = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.sendto(b'dgram', ('127.0.0.1', int(sys.argv[1])))\n"
        )
        _inside(namespace, source, str(sock.address.port))
        data, _source = sock.receive(ctx=jn.Context.with_timeout(30))
        assert data == b"dgram"


def test_options_apply_inside_the_namespace(namespace: str) -> None:
    # SO_BINDTODEVICE resolves the name in the socket's namespace: its lo, not ours.
    with jn.listen("127.0.0.1:0", netns=f"/run/netns/{namespace}", device="lo") as server:
        assert server.options()["device"] == "lo"


def test_proc_pid_ns_net_works_too() -> None:
    with jn.listen("127.0.0.1:0", netns=f"/proc/{os.getpid()}/ns/net") as server:
        client = socket.create_connection(("127.0.0.1", server.address.port), timeout=30)
        client.close()


@pytest.mark.parametrize(
    ("path", "member"),
    [
        ("/nonexistent/jn-netns", jn.SocketError.FileNotFound),
        ("/proc/self/ns/mnt", jn.SocketError.InvalidAddress),  # a namespace, of another kind
        ("/proc/self/ns/uts", jn.SocketError.InvalidAddress),
        ("/etc/hostname", jn.SocketError.InvalidAddress),  # a regular file
        ("/dev/null", jn.SocketError.InvalidAddress),
        ("/proc", jn.SocketError.InvalidAddress),  # a directory
        ("/etc/hostname/x", jn.SocketError.NotDir),
    ],
)
def test_entering_errors_are_typed(path: str, member: type[jn.SocketError]) -> None:
    before = _my_netns()
    with pytest.raises(member) as info:
        jn.listen("127.0.0.1:0", netns=path)
    assert info.value.address is not None and path in info.value.address
    with pytest.raises(member):
        jn.bind("127.0.0.1:0", netns=path)
    assert _my_netns() == before


def test_entering_without_cap_sys_admin_is_access_denied(namespace: str) -> None:
    source = (
        "import janus_net as jn, sys\n"
        "try:\n"
        "    jn.listen('127.0.0.1:0', netns=sys.argv[1]).close()\n"
        "except jn.SocketError.AccessDenied as e:\n"
        "    print(e.syscall)\n"
    )
    proc = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_admin", sys.executable, "-c", source, f"/run/netns/{namespace}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "setns"


def test_a_crafted_path_is_escaped_in_the_message() -> None:
    with pytest.raises(jn.SocketError.FileNotFound) as info:
        jn.listen("127.0.0.1:0", netns="/nonexistent/\nFAKE LINE\x1b[31m")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "error"),
    [("", ValueError), ("/run/netns/a\0b", ValueError), (5, TypeError), (True, TypeError), (b"", ValueError)],
)
def test_bad_paths_are_rejected_before_any_syscall(value: object, error: type[Exception]) -> None:
    with fail("socket", errno.EMFILE) as injection, pytest.raises(error):
        jn.listen("127.0.0.1:0", netns=value)  # type: ignore[arg-type]
    assert injection.failed == 0


def test_the_adopted_socket_refuses_netns() -> None:
    with jn.listen("127.0.0.1:0") as server, pytest.raises(jn.SocketError.OptionUnsupported) as info:
        jn.listen(f"fd://{server.fileno()}", netns="/proc/self/ns/net")
    assert "netns" in str(info.value)


def _helpers_done() -> None:
    for thread in threading.enumerate():
        if thread.name == "janus_net-netns":
            thread.join(30)


def test_interrupted_while_waiting_the_helpers_descriptor_is_closed() -> None:
    """KeyboardInterrupt while the caller waits: the helper closes what it makes afterwards."""
    made: list[int] = []
    caller, caller_tid = threading.get_ident(), threading.get_native_id()

    def make() -> int:
        # The helper makes its descriptor only once the interrupted caller has abandoned the
        # hand-off (the _helper frame that calls make holds it): what it makes then has no owner
        # but the helper.
        handoff = sys._getframe(1).f_locals["handoff"]
        # The interrupt is sent from here, once the caller waits for the hand-off (a futex, not a
        # poll), rather than by a timer: a timer that fired before run_in started the helper would
        # interrupt the caller before make ran, or outside pytest.raises and end the whole session.
        deadline = time.monotonic() + 30
        while "futex" not in wchan(caller_tid):
            assert time.monotonic() < deadline, f"the caller never waited for the helper: {wchan(caller_tid)!r}"
            time.sleep(0.001)  # polls the caller's wchan
        signal.pthread_kill(caller, signal.SIGALRM)
        deadline = time.monotonic() + 30
        while not handoff.abandoned and time.monotonic() < deadline:
            time.sleep(0.001)  # polls the condition; the test never assumes it
        assert handoff.abandoned
        fd = socket.socket(socket.AF_INET, socket.SOCK_STREAM).detach()  # a raw fd the helper returns
        made.append(fd)
        return fd

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            netns.run_in("/proc/self/ns/net", make)
    finally:
        signal.signal(signal.SIGALRM, old)
        _helpers_done()
    assert len(made) == 1
    assert (
        not os.path.exists(f"/proc/self/fd/{made[0]}") or os.readlink(f"/proc/self/fd/{made[0]}").find("socket:") == -1
    )  # closed (the number may have been reused by something else, never by this socket)


def test_keyboard_interrupt_at_every_line_of_run_in_leaks_nothing() -> None:
    """sys.settrace raises KeyboardInterrupt at the n-th line of run_in, for every n."""
    code = netns.run_in.__code__
    n = 0
    while True:
        count = 0

        def tracer(frame, event, arg, at=n):  # type: ignore[no-untyped-def]
            nonlocal count
            if frame.f_code is code:
                if event == "line":
                    count += 1
                    if count == at:
                        raise KeyboardInterrupt
                return tracer
            return None

        before = set(os.listdir("/proc/self/fd"))
        sys.settrace(tracer)
        try:
            fd = netns.run_in("/proc/self/ns/net", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).detach())
        except KeyboardInterrupt:
            fd = -1
        finally:
            sys.settrace(None)
        _helpers_done()
        if fd >= 0:
            cells.close(fd)
        assert set(os.listdir("/proc/self/fd")) == before, f"leak with the interrupt at line {n}"
        if n > count:
            break  # the call ran to the end without reaching line n
        n += 1
    assert n > 3


def test_an_abstract_unix_name_lives_in_the_namespace(namespace: str) -> None:
    name = f"jn-netns-{uuid.uuid4().hex[:8]}"
    with jn.listen(f"unix:@{name}", netns=f"/run/netns/{namespace}") as server:
        here = socket.socket(socket.AF_UNIX)
        try:
            with pytest.raises(ConnectionRefusedError):
                here.connect("\0" + name)  # abstract names are per network namespace
        finally:
            here.close()
        source = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); print('ok')"
        assert _inside(namespace, source) == "ok"
        server.accept().close()


def test_strace_shows_setns_and_socket_on_a_helper_thread_only(tmp_path: Path) -> None:
    from tracing import MARK, syscalls_after_mark

    program = (
        "import os, janus_net as jn\n"
        f"os.write(1, {MARK!r})\n"
        "jn.listen('127.0.0.1:0', netns='/proc/self/ns/net').close()\n"
        "print(os.getpid())\n"
    )
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,setns,socket,bind")
    main = out.strip().splitlines()[-1]

    def tid(line: str) -> str:
        return line.split()[0]

    setns = [line for line in lines if "setns(" in line]
    sockets = [line for line in lines if "socket(AF_INET" in line]
    binds = [line for line in lines if "bind(" in line]
    assert len(setns) == 1 and "CLONE_NEWNET" in setns[0]
    assert len(sockets) == 1 and len(binds) == 1
    assert tid(setns[0]) == tid(sockets[0]) != main  # made by the helper, inside the namespace
    assert tid(binds[0]) == main  # bound by the caller's thread, which never entered it
