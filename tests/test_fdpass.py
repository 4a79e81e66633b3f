"""send_sockets / receive_sockets: SCM_RIGHTS between real processes, and every way it can go wrong.

Hostile senders are stdlib sockets sending hand-made messages (`socket.sendmsg`
with SCM_RIGHTS): the receiver must raise a typed error and end with exactly the
descriptors it had before (checked through /proc/self/fd, around each call).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import open_fds as listed_fds
from interrupts import act_at
from peers import channel, chunk, in_poll, raw, rights, run_child, when_blocked

import janus_net as jn
from janus_net._kernel import control  # its own file: the tracer below runs in it
from janus_net._process import receiving, transfer
from janus_net._process import transfer as process_transfer
from janus_net._process.transfer import HEADER, LAST, MAGIC, VERSION
from janus_net.audit import ListSink
from janus_net.testing import fail

# The receiver's own lines, the transfer format's it checks chunks with, and those of the
# control-message module it reads its buffers with.
RECEIVER_FILES = frozenset({receiving.__file__, transfer.__file__, control.__file__})


def open_fds() -> set[int]:
    """The open descriptors, without the one the listing itself used."""
    fds = set()
    for fd in listed_fds():
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.add(fd)
    return fds


def cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


# --- The normal path


def test_300_sockets_in_one_call_with_names_order_kinds_and_cloexec() -> None:
    sent: dict[str, jn.Server | jn.Socket | jn.Stream] = {f"web-{i}": jn.listen("127.0.0.1:0") for i in range(300)}
    sent["udp"] = jn.bind("127.0.0.1:0")
    peer_server = jn.listen("127.0.0.1:0")
    client = jn.connect(str(peer_server.address))
    sent["conn"] = peer_server.accept()
    try:
        with channel("fdpass") as (tx, rx):
            before = open_fds()
            jn.send_sockets(tx, sent)
            got = jn.receive_sockets(rx)
            try:
                assert list(got) == list(sent)
                assert len(open_fds() - before) == len(sent)
                for name, sock in got.items():
                    assert type(sock) is type(sent[name])
                    assert cloexec(sock.fileno())
                    if not isinstance(sock, jn.Stream):
                        assert sock.address == sent[name].address
                # Copies: the sender closes its own; the receiver's still serve.
                sender_fds = {sock.fileno() for sock in sent.values()}
                for sock in sent.values():
                    sock.close()
                web = got["web-7"]
                assert isinstance(web, jn.Server)
                host, port = web.address.host, web.address.port  # type: ignore[union-attr]
                with socket.create_connection((host, port)) as dialer, web.accept() as conn:
                    dialer.sendall(b"ping")
                    assert conn.read(4) == b"ping"
                stream = got["conn"]
                assert isinstance(stream, jn.Stream)
                stream.write_all(b"over the passed stream")
                assert client.read(100) == b"over the passed stream"
            finally:
                for sock in got.values():
                    sock.close()
            assert open_fds() == before - sender_fds
    finally:
        for sock in sent.values():
            sock.close()
        client.close()
        peer_server.close()


def test_empty_mapping_is_a_valid_transfer() -> None:
    with channel("fdpass") as (tx, rx):
        jn.send_sockets(tx, {})
        assert jn.receive_sockets(rx) == {}


@pytest.mark.parametrize("emulated", [False, True])
def test_between_processes_and_strace_shows_msg_cmsg_cloexec(tmp_path: Path, emulated: bool) -> None:
    """A real second process receives; strace proves the flag on the recvmsg itself.

    With JANUS_NET_FORCE_CLOEXEC_EMULATION=1 (the path of platforms without the flag)
    the recvmsg has no MSG_CMSG_CLOEXEC and fcntl(F_SETFD, FD_CLOEXEC) follows it.
    """
    address = f"unix:@jn-fdpass-strace-{os.getpid()}-{int(emulated)}"
    receiver = f"""
import fcntl, json, janus_net as jn
with jn.connect({address!r}) as ch:
    got = jn.receive_sockets(ch)
web = got["web"]
flags = fcntl.fcntl(web.fileno(), fcntl.F_GETFD)
print(json.dumps({{"address": str(web.address), "fd": web.fileno(), "cloexec": bool(flags & 1)}}))
web.close()
"""
    trace = tmp_path / "trace"
    env = dict(os.environ, JANUS_NET_FORCE_CLOEXEC_EMULATION="1" if emulated else "0")
    with jn.listen(address) as channel_server, jn.listen("127.0.0.1:0") as web:
        proc = subprocess.Popen(
            ["strace", "-f", "-e", "trace=recvmsg,fcntl", "-o", str(trace), sys.executable, "-c", receiver],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        with channel_server.accept(jn.Context.with_timeout(60)) as ch:
            jn.send_sockets(ch, {"web": web})
            out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
    report = json.loads(out.splitlines()[-1])
    assert report["address"] == str(web.address) and report["cloexec"] is True
    lines = trace.read_text().splitlines()
    recvmsgs = [line for line in lines if "recvmsg(" in line and "SCM_RIGHTS" in line]
    assert len(recvmsgs) == 1, recvmsgs
    if emulated:
        assert "MSG_CMSG_CLOEXEC" not in recvmsgs[0]
        after = lines[lines.index(recvmsgs[0]) + 1 :]
        assert any(f"fcntl({report['fd']}, F_SETFD, FD_CLOEXEC)" in line for line in after), after[:5]
    else:
        assert "MSG_CMSG_CLOEXEC" in recvmsgs[0]


def test_sender_checks_everything_before_any_syscall() -> None:
    with channel("fdpass") as (tx, _), jn.listen("127.0.0.1:0") as web:
        closed = jn.listen("127.0.0.1:0")
        closed.close()
        with fail("sendmsg", errno.EIO) as injection:
            with pytest.raises(ValueError, match="closed"):
                jn.send_sockets(tx, {"a": closed})
            for bad in ("", "a:b", "new\nline", "é", "x" * 256):
                with pytest.raises(ValueError):
                    jn.send_sockets(tx, {bad: web})
            with pytest.raises(TypeError):
                jn.send_sockets(tx, {1: web})  # type: ignore[dict-item]
            with socket.socket() as stdlib, pytest.raises(TypeError):
                jn.send_sockets(tx, {"a": stdlib})  # type: ignore[dict-item]
            with pytest.raises(TypeError):
                jn.send_sockets(tx, [web])  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                jn.send_sockets(web, {"a": web})  # type: ignore[arg-type]
        assert injection.failed == 0
    with (
        jn.listen("127.0.0.1:0") as tcp,
        jn.connect(str(tcp.address)) as client,
        pytest.raises(jn.SocketError.AddressFamilyUnsupported),
    ):
        jn.send_sockets(client, {"a": tcp})


def test_receiver_gone_is_a_typed_error_for_the_sender() -> None:
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        rx.close()
        with pytest.raises((jn.SocketError.SocketUnconnected, jn.SocketError.ConnectionResetByPeer)):
            jn.send_sockets(tx, {"web": web})


# --- Hostile senders


def _hostile_cases() -> dict[str, Callable[[socket.socket, jn.Server, jn.Socket], None]]:
    def more_than_announced(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "web")], 1)], rights(web.fileno(), web.fileno()))

    def fewer_than_announced(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "a"), (1, "b")], 2)], rights(web.fileno()))

    def none_at_all(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendall(chunk([(1, "web")], 1))

    def garbage(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([os.urandom(16) + b"\x00" * 64], rights(web.fileno()))

    def pipe_instead_of_socket(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        r, w = os.pipe()
        try:
            s.sendmsg([chunk([(1, "web")], 1)], rights(r))
        finally:
            os.close(r)
            os.close(w)

    def wrong_kind(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "web")], 1)], rights(udp.fileno()))

    def stream_that_is_not_connected(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        with socket.socket() as lonely:
            s.sendmsg([chunk([(3, "conn")], 1)], rights(lonely.fileno()))

    def unbound_datagram(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unbound:
            s.sendmsg([chunk([(2, "udp")], 1)], rights(unbound.fileno()))

    def bad_name(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "a:b")], 1)], rights(web.fileno()))

    def duplicate_names(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "a"), (1, "a")], 2)], rights(web.fileno(), web.fileno()))

    def unknown_kind(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(9, "a")], 1)], rights(web.fileno()))

    def lying_length(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        body = struct.pack("!BB", 1, 200) + b"a"
        s.sendmsg([HEADER.pack(MAGIC, VERSION, LAST, 1, 1, len(body)) + body], rights(web.fileno()))

    def last_chunk_short_of_total(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "a")], 5)], rights(web.fileno()))

    def credentials_instead(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
        s.sendmsg([chunk([(1, "a")], 1)], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])

    def closes_mid_header(s: socket.socket, web: jn.Server, udp: jn.Socket) -> None:
        s.sendmsg([chunk([(1, "web")], 1)[:5]], rights(web.fileno()))
        s.shutdown(socket.SHUT_WR)

    return {f.__name__: f for f in locals().values() if callable(f)}


HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_sender_gets_a_typed_error_and_nothing_leaks(case: str) -> None:
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web, jn.bind("127.0.0.1:0") as udp:
        sender = raw(tx)
        try:
            before = open_fds()
            HOSTILE[case](sender, web, udp)
            if case != "closes_mid_header":
                sender.shutdown(socket.SHUT_WR)  # so a reader waiting for more sees the end
            with pytest.raises((jn.SocketError.ProtocolFailure, jn.SocketError.ConnectionResetByPeer)) as info:
                jn.receive_sockets(rx, ctx=jn.Context.with_timeout(30))
            assert not isinstance(info.value, jn.SocketError.Timeout)
            assert open_fds() == before
        finally:
            sender.close()


def test_truncated_control_message_when_the_fd_table_is_full() -> None:
    """MSG_CTRUNC (the kernel could not install every descriptor): all that came are closed."""
    result = run_child(
        """
        import json, os, resource, janus_net as jn
        from janus_net.testing import fail
        name = f"unix:@jn-ctrunc-{os.getpid()}"
        server = jn.listen(name)
        tx = jn.connect(name)
        rx = server.accept()
        server.close()
        sockets = {f"s{i}": jn.listen("127.0.0.1:0") for i in range(20)}
        jn.send_sockets(tx, sockets)
        before = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(before) + 6, hard))
        try:
            jn.receive_sockets(rx)
            error = None
        except jn.SocketError as e:
            error = [type(e).__name__, str(e)]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        after = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        print(json.dumps({"error": error, "same": before == after}))
        """
    )
    assert result["error"] is not None
    assert result["error"][0] == "ProtocolFailure" and "MSG_CTRUNC" in result["error"][1]  # type: ignore[index]
    assert result["same"] is True


# --- Peers that die, wait, or are someone else


def test_peer_sigkilled_mid_transfer() -> None:
    """The sender dies after the first chunk of a 300-socket transfer: the 253 received are closed."""
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                s = raw(tx)
                first = chunk([(1, f"s{i}") for i in range(process_transfer.CHUNK_MAX)], 300, last=False)
                s.sendmsg([first], rights(*[web.fileno()] * process_transfer.CHUNK_MAX))
            finally:
                os.kill(os.getpid(), signal.SIGKILL)
        tx.close()
        os.waitpid(pid, 0)
        before = open_fds()
        with pytest.raises(jn.SocketError.ConnectionResetByPeer):
            jn.receive_sockets(rx, ctx=jn.Context.with_timeout(30))
        assert open_fds() == before


@pytest.mark.parametrize("partial", [False, True])
def test_cancelled_context_ends_the_wait_and_closes_what_came(partial: bool) -> None:
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        sender = raw(tx)
        try:
            if partial:
                first = chunk([(1, f"s{i}") for i in range(10)], 20, last=False)
                sender.sendmsg([first], rights(*[web.fileno()] * 10))
            before = open_fds()
            ctx = jn.Context()
            before.add(ctx._wake_fd())
            timer = when_blocked(ctx.cancel)
            started = time.monotonic()
            with pytest.raises(jn.SocketError.Timeout) as info:
                jn.receive_sockets(rx, ctx=ctx)
            timer.join()
            assert info.value.reason == "cancelled"  # type: ignore[attr-defined]
            assert time.monotonic() - started < 20
            # The channel's own wake fd (made by its first wait, closed with it) is the one new fd.
            assert open_fds() - set(rx._desc.wake) == before
            del ctx
        finally:
            sender.close()


def test_deadline_ends_the_wait() -> None:
    with channel("fdpass") as (_, rx):
        with pytest.raises(jn.SocketError.Timeout) as info:
            jn.receive_sockets(rx, ctx=jn.Context.with_timeout(0.2))
        assert info.value.reason == "deadline"  # type: ignore[attr-defined]


def test_a_peer_of_another_uid_is_refused_unless_allowed() -> None:
    name = f"unix:@jn-fdpass-uid-{os.getpid()}"
    nobody = 65534
    with jn.listen(name) as server:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.setgid(nobody)
                os.setuid(nobody)
                for _ in range(2):
                    with jn.connect(name) as ch, jn.listen("127.0.0.1:0") as web:
                        try:
                            jn.send_sockets(ch, {"web": web})
                            ch.read(1)  # until the parent is done with this channel
                        except (jn.SocketError.ConnectionResetByPeer, jn.SocketError.SocketUnconnected):
                            pass  # the parent refused us first, with our message unread
                code = 0
            finally:
                os._exit(code)
        try:
            with server.accept(jn.Context.with_timeout(30)) as ch:
                before = open_fds()
                with pytest.raises(jn.SocketError.AccessDenied, match="uid 65534"):
                    jn.receive_sockets(ch)
                assert open_fds() == before
            with server.accept(jn.Context.with_timeout(30)) as ch:
                got = jn.receive_sockets(ch, allow_uids=[nobody])
                assert isinstance(got["web"], jn.Server)
                got["web"].close()
        finally:
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    with channel("fdpass") as (_, rx), pytest.raises(TypeError):
        jn.receive_sockets(rx, allow_uids=["nobody"])  # type: ignore[list-item]


def test_capability_checks_and_audits_each_received_address() -> None:
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        port = web.address.port  # type: ignore[union-attr]
        sink = ListSink()
        allowed = jn.NetBind("handover", ports=[port], audit=sink)
        jn.send_sockets(tx, {"web": web})
        got = jn.receive_sockets(rx, capability=allowed)
        got["web"].close()
        assert [(r.operation, r.result, r.port) for r in sink.records] == [("check_bind_address", "allowed", port)]
        denied = jn.NetBind("strict", ports=[1], audit=sink)
        jn.send_sockets(tx, {"web": web})
        before = open_fds()
        with pytest.raises(jn.SocketError.CapabilityDenied):
            jn.receive_sockets(rx, capability=denied)
        assert open_fds() == before
        assert sink.records[-1].result == "denied"


# --- Faults injected into the syscalls, and interrupts at every line


def test_connection_reset_mid_transfer_through_the_fault_seam() -> None:
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web:
        jn.send_sockets(tx, {"a": web, "b": web})
        before = open_fds()
        with fail("receive", errno.ECONNRESET, after=1), pytest.raises(jn.SocketError.ConnectionResetByPeer):
            jn.receive_sockets(rx)  # the header (and the descriptors) came; the entries fail
        assert open_fds() == before


def test_keyboard_interrupt_at_every_line_of_the_receiver() -> None:
    """A KeyboardInterrupt raised at each line fdpass runs in turn: never a leak, never a double close."""
    with channel("fdpass") as (tx, rx), jn.listen("127.0.0.1:0") as web, jn.bind("127.0.0.1:0") as udp:
        peer = jn.listen("127.0.0.1:0")
        client = jn.connect(str(peer.address))
        conn = peer.accept()
        sockets = {"web": web, "udp": udp, "conn": conn}
        try:
            n = 0
            while True:
                n += 1
                jn.send_sockets(tx, sockets)
                before = open_fds()
                sys.settrace(act_at(n, _interrupt, RECEIVER_FILES)[0])
                try:
                    got = jn.receive_sockets(rx)
                except KeyboardInterrupt:
                    sys.settrace(None)
                    assert open_fds() == before, f"leak after an interrupt at line event {n}"
                    _drain(rx)
                    continue
                finally:
                    sys.settrace(None)
                assert len(got) == 3
                for sock in got.values():
                    sock.close()
                assert open_fds() == before
                break
            assert n > 50  # the interrupt really walked through the receiver
        finally:
            conn.close()
            client.close()
            peer.close()


def _interrupt() -> None:
    raise KeyboardInterrupt


def _drain(rx: jn.Stream) -> None:
    """Read and close whatever is left of an interrupted transfer, so the next one starts clean."""
    s = raw(rx)
    try:
        while True:
            try:
                flags = socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT
                _, ancdata, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(4 * 253), flags)
            except BlockingIOError:
                return
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    for fd in struct.unpack(f"{len(data) // 4}i", data[: len(data) // 4 * 4]):
                        os.close(fd)
    finally:
        s.close()


def test_a_socket_closed_while_it_waits_to_be_sent_is_never_sent_as_its_old_number(tmp_path: Path) -> None:
    # send_sockets waits for room on the channel; meanwhile another thread closes the
    # socket being sent and the number is reused for a file. Read as a number up front,
    # the wrong descriptor -- the file -- would travel to the other process.
    secret = tmp_path / "secret"
    secret.write_text("not for the receiver")
    with channel("fdpass") as (client, accepted):
        filler = raw(client)
        filler.setblocking(False)
        filled = 0
        with pytest.raises(BlockingIOError):
            while True:
                filled += filler.send(b"x" * 65536)
        victim = jn.listen("127.0.0.1:0")
        outcome: list[BaseException | None] = []

        def send() -> None:
            try:
                jn.send_sockets(client, {"victim": victim}, ctx=jn.Context.with_timeout(30))
                outcome.append(None)
            except BaseException as e:
                outcome.append(e)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 10
        while not in_poll(sender.native_id or 0):
            assert sender.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.005)
        victim.close()
        reused = os.open(secret, os.O_RDONLY | os.O_CLOEXEC)  # the lowest free number: likely the old one
        try:
            drain = raw(accepted)
            drain.settimeout(10)
            got = 0
            while got < filled:  # room on the channel: the waiting send tries again
                got += len(drain.recv(1 << 20))
            sender.join(10)
            assert not sender.is_alive()
            assert isinstance(outcome[0], ValueError), outcome
            assert "closed by another thread while it was being sent" in str(outcome[0])
            drain.setblocking(False)
            with pytest.raises(BlockingIOError):  # nothing at all was sent: no header, no descriptor
                drain.recvmsg(4096, socket.CMSG_SPACE(16))
            assert os.read(reused, 64) == b"not for the receiver"
        finally:
            os.close(reused)
            drain.close()
            filler.close()
