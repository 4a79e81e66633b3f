"""janus_net._kernel.control: one bounds rule for every control buffer, and received descriptors closed exactly once.

Two kinds of attack. Buffers the kernel would never write (a ``cmsg_len`` below its
header, past the end, a payload of the wrong size for its type) are crafted here
and handed to the walker, since no peer can make the kernel deliver them. Everything
a peer *can* do is done by a real peer over a real channel with raw ``socket.sendmsg``
ancillary data: more descriptors than announced, fewer, credentials where rights are
expected, a truncated control buffer, a peer that stalls mid-transfer, a transfer
larger than RLIMIT_NOFILE. ``strace`` proves what each recvmsg let in.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from peers import channel, chunk, in_poll, raw, rights, run_child

import janus_net as jn
from janus_net._kernel import control
from janus_net._process import supervisor
from janus_net._process.transfer import HEADER
from janus_net._shim import ffi, lib
from janus_net._sockets import ancillary

INT = ffi.sizeof("int")


# --- Crafted buffers: what the kernel never writes


def craft(parts: list[tuple[int, int, bytes, int | None]], controllen: int | None = None) -> tuple[Any, Any]:
    """A msghdr whose control buffer holds ``parts``: (level, type, payload, cmsg_len or None for the true one).

    Each message starts where CMSG_NXTHDR puts it (past the previous one's CMSG_SPACE).
    ``controllen`` defaults to the end of the last one. Returns (msghdr, buffer).
    """
    size = sum(lib.jn_cmsg_space(len(p)) for _, _, p, _ in parts) + 64
    buf = ffi.new("char[]", size)
    offset = 0
    for level, kind, payload, length in parts:
        cmsg = ffi.cast("struct cmsghdr *", buf + offset)
        cmsg.cmsg_len = lib.jn_cmsg_len(len(payload)) if length is None else length
        cmsg.cmsg_level = level
        cmsg.cmsg_type = kind
        ffi.memmove(lib.jn_cmsg_data(cmsg), payload, len(payload))
        offset += lib.jn_cmsg_space(len(payload))
    msg = control.header(ffi.NULL, 0, control=buf, controllen=offset if controllen is None else controllen)
    return msg, buf


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@contextmanager
def spare_fds(n: int) -> Iterator[list[int]]:
    """``n`` descriptors of our own (of /dev/null) to put in crafted SCM_RIGHTS slots; closed if still open."""
    fds = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(n)]
    try:
        yield fds
    finally:
        for fd in fds:
            if is_open(fd):
                os.close(fd)


def rights_payload(*fds: int) -> bytes:
    return struct.pack(f"{len(fds)}i", *fds)


PKTINFO = (socket.IPPROTO_IP, lib.JN_IP_PKTINFO, ffi.sizeof("struct in_pktinfo"))
TIMESTAMPNS = (socket.SOL_SOCKET, lib.JN_SCM_TIMESTAMPNS, ffi.sizeof("struct timespec"))
GRO = (lib.JN_SOL_UDP, lib.JN_UDP_GRO, INT)
KINDS = {"IP_PKTINFO": PKTINFO, "SCM_TIMESTAMPNS": TIMESTAMPNS, "UDP_GRO": GRO}


def test_a_well_formed_buffer_reads_every_message_in_order() -> None:
    payloads = [(level, kind, bytes(range(size)), None) for level, kind, size in KINDS.values()]
    unknown = (socket.IPPROTO_IP, 2, b"\x40\x00\x00\x00", None)  # IP_TTL: no known size, handed on
    msg, _buf = craft([*payloads, unknown])
    found = control.walk(msg)
    assert [(c.level, c.kind, c.size) for c in found] == [(lv, k, len(p)) for lv, k, p, _ in [*payloads, unknown]]
    assert ffi.buffer(found[0].data, found[0].size)[:] == payloads[0][2]


def test_an_empty_or_absent_control_buffer_is_no_message() -> None:
    assert control.walk(craft([])[0]) == []
    assert control.walk(control.header(ffi.NULL, 0)) == []


@pytest.mark.parametrize("length", [0, 1, control.HEADER - 1], ids=lambda n: f"cmsg_len={n}")
def test_a_length_below_the_header_is_protocol_failure(length: int) -> None:
    msg, _buf = craft([(*GRO[:2], b"\x01\x00\x00\x00", length)])
    with pytest.raises(jn.SocketError.ProtocolFailure, match="length"):
        control.walk(msg)


@pytest.mark.parametrize("excess", [1, 8, 1 << 20, (1 << 63) - 1])
def test_a_length_past_the_returned_controllen_is_protocol_failure(excess: int) -> None:
    msg, _buf = craft([(*GRO[:2], b"\x01\x00\x00\x00", None)])
    cmsg = ffi.cast("struct cmsghdr *", msg.msg_control)
    cmsg.cmsg_len = int(msg.msg_controllen) + excess
    with pytest.raises(jn.SocketError.ProtocolFailure, match="length"):
        control.walk(msg)


def test_a_controllen_that_cuts_a_header_in_two_is_protocol_failure() -> None:
    msg, _buf = craft([(*GRO[:2], b"\x01\x00\x00\x00", None), (*GRO[:2], b"\x02\x00\x00\x00", None)])
    msg.msg_controllen = lib.jn_cmsg_space(INT) + control.HEADER - 1  # the second header is cut short
    with pytest.raises(jn.SocketError.ProtocolFailure, match="cannot hold a header"):
        control.walk(msg)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("delta", [-1, 1, 4])
def test_a_payload_of_the_wrong_size_for_its_type_is_protocol_failure(kind: str, delta: int) -> None:
    level, type_, size = KINDS[kind]
    msg, _buf = craft([(level, type_, bytes(size + delta), None)])
    with pytest.raises(jn.SocketError.ProtocolFailure, match=f"{kind} carries {size + delta} bytes, needs {size}"):
        control.walk(msg)
    # The datagram reader goes through the same rule.
    with pytest.raises(jn.SocketError.ProtocolFailure):
        ancillary.parse(msg, jn.parse_address("127.0.0.1:9"))


def test_a_gro_segment_size_of_zero_is_protocol_failure() -> None:
    msg, _buf = craft([(*GRO[:2], struct.pack("i", 0), None)])
    with pytest.raises(jn.SocketError.ProtocolFailure, match="segment size 0"):
        ancillary.parse(msg, jn.parse_address("127.0.0.1:9"))


def test_rights_that_are_not_a_whole_number_of_ints_close_what_they_hold() -> None:
    with spare_fds(2) as fds:
        msg, _buf = craft([(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(*fds) + b"\x00", None)])
        with pytest.raises(jn.SocketError.ProtocolFailure, match="not a whole number"):
            control.walk(msg)
        assert not any(map(is_open, fds))
        assert control.close_received(msg) == 0  # each was closed once: the slots are empty now


@pytest.mark.parametrize(
    "bad",
    ["length_below_header", "length_past_end", "wrong_pktinfo_size", "odd_rights"],
)
def test_every_descriptor_seen_before_the_bad_message_is_closed_once(bad: str) -> None:
    with spare_fds(5) as fds:
        good = [
            (socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(*fds[:2]), None),
            (socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(*fds[2:4]), None),
        ]
        last: tuple[int, int, bytes, int | None] = {
            "length_below_header": (socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(fds[4]), 3),
            "length_past_end": (socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(fds[4]), 4096),
            "wrong_pktinfo_size": (PKTINFO[0], PKTINFO[1], bytes(PKTINFO[2] - 1), None),
            "odd_rights": (socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(fds[4]) + b"\x01\x02", None),
        }[bad]
        msg, _buf = craft([*good, last])
        with pytest.raises(jn.SocketError.ProtocolFailure):
            control.walk(msg)
        assert not any(map(is_open, fds[:4]))
        # A message whose length lies is never read: its slot is not trusted, not closed.
        assert is_open(fds[4]) == (bad in ("length_below_header", "length_past_end", "wrong_pktinfo_size"))
        assert control.close_received(msg) == 0


def test_the_kernel_s_last_message_may_end_without_its_padding() -> None:
    """put_cmsg caps the last message at msg_controllen: one descriptor in a CMSG_LEN(4) buffer is well formed."""
    a, b = socket.socketpair()
    with a, b, spare_fds(1) as fds:
        a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights_payload(fds[0]))])
        data = ffi.new("char[]", 1)
        iov = ffi.new("struct iovec *", {"iov_base": data, "iov_len": 1})
        buf = ffi.new("char[]", 64)
        msg = control.header(iov, 1, control=buf, controllen=control.rights_room(1))
        # A stdlib recvmsg would not fill our msghdr: the kernel's own answer comes through the shim's call.
        got = lib.recvmsg(b.fileno(), msg, lib.JN_MSG_CMSG_CLOEXEC)
        assert got == 1 and int(msg.msg_controllen) == control.rights_room(1)
        (cmsg,) = control.walk(msg)
        assert cmsg.is_rights and cmsg.slots()[1] == 1
        assert control.close_received(msg) == 1


# --- Real peers forging control messages against receive_sockets


def copies_of(sock: jn.Server) -> set[int]:
    """The descriptors of this process that are the peer's socket, other than ``sock``'s own."""
    inode = os.fstat(sock.fileno()).st_ino
    found = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd != sock.fileno() and os.fstat(fd).st_ino == inode:
                found.add(fd)
        except OSError:
            continue
    return found


def _forge_more(s: socket.socket, web: jn.Server) -> None:
    s.sendmsg([chunk([(1, "web")], 1)], rights(*[web.fileno()] * 40))


def _forge_fewer(s: socket.socket, web: jn.Server) -> None:
    s.sendmsg([chunk([(1, "a"), (1, "b"), (1, "c")], 3)], rights(web.fileno()))


def _forge_later(s: socket.socket, web: jn.Server) -> None:
    # The header announces one and brings it; the entries bring 253 more.
    whole = chunk([(1, "web")], 1)
    s.sendmsg([whole[: HEADER.size]], rights(web.fileno()))
    s.sendmsg([whole[HEADER.size : HEADER.size + 1]], rights(*[web.fileno()] * 253))
    s.sendall(whole[HEADER.size + 1 :])


def _forge_credentials(s: socket.socket, web: jn.Server) -> None:
    creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    s.sendmsg([chunk([(1, "web")], 1)], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds), *rights(web.fileno())])


def _forge_split_header(s: socket.socket, web: jn.Server) -> None:
    whole = chunk([(1, "web")], 1)
    s.sendmsg([whole[:5]], rights(web.fileno()))
    s.sendall(whole[5:])


FORGERIES = {
    "more_than_announced": _forge_more,
    "fewer_than_announced": _forge_fewer,
    "more_with_the_entries": _forge_later,
    "credentials_where_rights_are_expected": _forge_credentials,
    "header_split_from_its_descriptors": _forge_split_header,
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forging_peer_gets_protocol_failure_and_a_kept_exception_holds_nothing(case: str) -> None:
    """The error is kept with its traceback (logged, stored): no descriptor of the peer stays open."""
    kept: list[tuple[BaseException, Any]] = []
    with channel("control") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        sender = raw(tx)
        try:
            if case == "credentials_where_rights_are_expected":
                with socket.socket(fileno=os.dup(rx.fileno())) as view:
                    view.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            FORGERIES[case](sender, web)
            sender.shutdown(socket.SHUT_WR)
            gc.disable()  # nothing may depend on a collection
            try:
                jn.receive_sockets(rx, ctx=jn.Context.with_timeout(30))
            except jn.SocketError as e:
                kept.append((e, e.__traceback__))
            finally:
                gc.enable()
            assert kept, "the forged transfer was accepted"
            error = kept[0][0]
            assert isinstance(error, jn.SocketError.ProtocolFailure), repr(error)
            assert copies_of(web) == set()
        finally:
            sender.close()
    kept.clear()


def test_more_descriptors_than_announced_never_enter_the_process(tmp_path: Path) -> None:
    """strace: every recvmsg's control buffer had room for at most the one announced, and got at most that.

    The hostile sender is another process: it announces one socket, sends it with
    the header, then trickles 253-descriptor messages with the entries.
    """
    trace = tmp_path / "trace"
    child = textwrap.dedent(
        """
        import json, os, socket, struct
        import janus_net as jn
        from janus_net._process.transfer import HEADER, LAST, MAGIC, VERSION
        def chunk(entries, total):
            body = b"".join(struct.pack("!BB", kind, len(name)) + name.encode() for kind, name in entries)
            return HEADER.pack(MAGIC, VERSION, LAST, len(entries), total, len(body)) + body
        def rights(*fds):
            return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        name = f"unix:@jn-control-trickle-{os.getpid()}"
        server = jn.listen(name)
        tx = jn.connect(name)
        rx = server.accept()
        server.close()
        web = jn.listen("127.0.0.1:0")
        pid = os.fork()
        if pid == 0:
            s = socket.socket(fileno=os.dup(tx.fileno()))
            whole = chunk([(1, "web")], 1)
            s.sendmsg([whole[: HEADER.size]], rights(web.fileno()))
            for i in range(3):
                s.sendmsg([whole[HEADER.size + i : HEADER.size + i + 1]], rights(*[web.fileno()] * 253))
            s.sendall(whole[HEADER.size + 3 :])
            os._exit(0)
        os.waitpid(pid, 0)
        before = sorted(os.listdir("/proc/self/fd"))
        try:
            jn.receive_sockets(rx, ctx=jn.Context.with_timeout(60))
            error = None
        except jn.SocketError as e:
            error = type(e).__name__
        print(json.dumps({"error": error, "same": before == sorted(os.listdir("/proc/self/fd"))}))
        """
    )
    proc = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=recvmsg",
            "-e",
            "signal=none",
            "-o",
            str(trace),
            sys.executable,
            "-c",
            child,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads(proc.stdout.splitlines()[-1])
    assert result == {"error": "ProtocolFailure", "same": True}
    calls = [line for line in trace.read_text().splitlines() if "recvmsg(" in line and "resumed" not in line]
    assert calls, "no recvmsg was traced"
    installed = 0
    for line in calls:
        for data in re.findall(r"cmsg_type=SCM_RIGHTS, cmsg_data=\[([^\]]*)\]", line):
            installed += len(data.split(","))
        room = re.search(r"msg_controllen=(\d+)", line)
        assert room is None or int(room.group(1)) <= control.rights_room(1), line
    assert installed == 1, calls


def test_a_peer_that_stalls_mid_transfer_is_cancelled_and_what_came_is_closed() -> None:
    """Announced 5, sent 2, then waits: a cancel ends the wait with Timeout; the 2 are closed, even kept."""
    with channel("control") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the hostile sender
            try:
                os.close(go_w)
                s = raw(tx)
                whole = chunk([(1, f"s{i}") for i in range(5)], 5)
                s.sendmsg([whole[:20]], rights(web.fileno(), web.fileno()))
                os.read(go_r, 1)  # stall until told to go
            finally:
                os._exit(0)
        os.close(go_r)
        try:
            ctx = jn.Context()
            receiver = threading.get_native_id()

            def cancel_once_waiting() -> None:
                while not in_poll(receiver):
                    time.sleep(0.001)
                ctx.cancel()

            canceller = threading.Thread(target=cancel_once_waiting)
            canceller.start()
            kept: list[BaseException] = []
            try:
                jn.receive_sockets(rx, ctx=ctx)
            except jn.SocketError as e:
                kept.append(e)
            canceller.join()
            assert kept and isinstance(kept[0], jn.SocketError.Timeout)
            assert kept[0].__traceback__ is not None
            assert copies_of(web) == set()
            kept.clear()
        finally:
            os.close(go_w)
            os.waitpid(pid, 0)


def test_an_announced_total_above_rlimit_nofile_is_refused_before_any_descriptor_arrives() -> None:
    result = run_child(
        """
        import json, os, resource, socket, struct, janus_net as jn
        from janus_net._process.transfer import HEADER, MAGIC, VERSION
        name = f"unix:@jn-control-rlimit-{os.getpid()}"
        server = jn.listen(name)
        tx = jn.connect(name)
        rx = server.accept()
        server.close()
        web = jn.listen("127.0.0.1:0")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
        s = socket.socket(fileno=os.dup(tx.fileno()))
        body = struct.pack("!BB", 1, 3) + b"web"
        header = HEADER.pack(MAGIC, VERSION, 0, 1, 201, len(body))
        s.sendmsg([header + body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", web.fileno()))])
        inode = os.fstat(web.fileno()).st_ino
        try:
            jn.receive_sockets(rx)
            error = None
        except jn.SocketError as e:
            error = [type(e).__name__, e.errno, str(e)]
        copies = [fd for fd in map(int, os.listdir("/proc/self/fd"))
                  if fd != web.fileno() and os.path.exists(f"/proc/self/fd/{fd}") and os.fstat(fd).st_ino == inode]
        print(json.dumps({"error": error, "copies": copies}))
        """
    )
    error = result["error"]
    assert isinstance(error, list)
    assert error[0] == "ProcessFdQuotaExceeded" and error[1] == 24 and "RLIMIT_NOFILE 200" in error[2]
    assert result["copies"] == []


def test_the_fd_limit_check_lets_a_transfer_at_the_limit_through() -> None:
    result = run_child(
        """
        import json, os, resource, janus_net as jn
        name = f"unix:@jn-control-rlimit-ok-{os.getpid()}"
        server = jn.listen(name)
        tx = jn.connect(name)
        rx = server.accept()
        server.close()
        sockets = {f"s{i}": jn.listen("127.0.0.1:0") for i in range(30)}
        jn.send_sockets(tx, sockets)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))) + 40, hard))
        got = jn.receive_sockets(rx)
        print(json.dumps({"names": list(got)}))
        """
    )
    assert result["names"] == [f"s{i}" for i in range(30)]


# --- Datagram sockets and the supervisor's notify socket read through the same rule


def test_descriptors_a_unix_datagram_peer_attaches_are_closed_before_the_datagram_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "dgram.sock"
    with jn.bind(f"unix:{path}") as receiver, jn.listen("127.0.0.1:0") as web:  # noqa: SIM117
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:
            peer.sendmsg([b"hello"], rights(web.fileno(), web.fileno(), web.fileno()), 0, str(path))
            message = receiver.receive_message()
            assert message.data == b"hello"
            assert copies_of(web) == set()
            peer.sendmsg([b"again"], rights(*[web.fileno()] * 200), 0, str(path))
            with pytest.raises(jn.SocketError.MessageTooBig, match="MSG_CTRUNC"):
                receiver.receive_segments()
            assert copies_of(web) == set()


def test_the_supervisor_s_notify_socket_lets_no_descriptor_in(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, jn.listen("127.0.0.1:0") as web:
        notify.bind(f"\0jn-control-notify-{os.getpid()}")
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        notify.setblocking(False)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as child:
            child.connect(notify.getsockname())
            child.sendmsg([b"FDSTORE=1\nFDNAME=web\nREADY=1\n"], rights(*[web.fileno()] * 100))
            got = supervisor._receive_notification(notify.fileno())
        assert got == (os.getpid(), "FDSTORE=1\nFDNAME=web\nREADY=1\n")
        assert copies_of(web) == set()
        assert f"descriptors sent with a notification from pid {os.getpid()} were dropped" in capsys.readouterr().err
        assert supervisor._receive_notification(notify.fileno()) is None


def test_every_recvmsg_of_the_package_reads_its_control_buffer_through_the_one_walker() -> None:
    """No module but the door's control.py walks a control buffer by hand (CMSG_FIRSTHDR / CMSG_NXTHDR)."""
    package = Path(jn.__file__).parent
    walkers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path != package / "_kernel" / "control.py" and re.search(r"jn_cmsg_(firsthdr|nxthdr)", path.read_text())
    )
    assert walkers == []


def test_a_raising_signal_storm_over_forged_transfers_leaves_nothing() -> None:
    """SIGALRM raising wherever the receiver runs, over transfers that end in ProtocolFailure.

    An asynchronous exception may cut the receiver's own cleanup short; then the
    control buffer's collection is the last resort, so each round ends with a
    collection before the count. Every descriptor is closed exactly once (a double
    close would surface as an unraisable EBADF).
    """

    class Storm(Exception):
        pass

    def raise_storm(signum: int, frame: object) -> None:
        raise Storm

    stormed = 0
    previous = signal.signal(signal.SIGALRM, raise_storm)
    try:
        with channel("control") as (tx, rx), jn.listen("127.0.0.1:0") as web:
            sender = raw(tx)
            try:
                for rounds in range(200):
                    sender.sendmsg([chunk([(1, "a"), (1, "b")], 2)], rights(web.fileno()))
                    try:
                        signal.setitimer(signal.ITIMER_REAL, 0.00005 * (rounds % 9 + 1))
                        try:
                            jn.receive_sockets(rx, ctx=jn.Context.with_timeout(30))
                        finally:
                            signal.setitimer(signal.ITIMER_REAL, 0)
                    except Storm:
                        stormed += 1
                    except jn.SocketError.ProtocolFailure:
                        pass
                    _drain(rx)
                    gc.collect()
                    assert copies_of(web) == set(), f"round {rounds}"
            finally:
                sender.close()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert stormed > 0, "the storm never landed inside the receiver"


def _drain(rx: jn.Stream) -> None:
    """Read and drop what is left of a refused transfer (its descriptors are closed by the kernel's drop)."""
    with socket.socket(fileno=os.dup(rx.fileno())) as s:
        s.setblocking(False)
        while True:
            try:
                data, ancdata, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(253 * INT))
            except BlockingIOError:
                return
            for level, kind, payload in ancdata:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    for fd in struct.unpack(f"{len(payload) // INT}i", payload[: len(payload) // INT * INT]):
                        os.close(fd)
            if not data:
                return
