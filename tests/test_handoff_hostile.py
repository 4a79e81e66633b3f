"""The hand-over's frames against hostile peers that speak the wire protocol with raw stdlib sockets.

A hostile *predecessor* (a thread with a stdlib listener at the hand-over path) sends
real sockets by SCM_RIGHTS in `fdpass`'s chunk format, then a crafted ``files``
frame; `take` must answer every bound with `ProtocolFailure` and hold no descriptor
while the exception lives. A hostile *successor* (stdlib client) sends a crafted
ready frame; `offer` must drop it and hand over to the next honest successor. A
forged ``files`` frame must never make a successor remove another live socket's
file, and `offer` must refuse at once a path that holds anything but a stale socket.
The limits come from `janus_net._process.frames`; the bytes on the wire are built here, with
`json` and `struct`, independently of its encoder.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from peers import offer_in_thread

import janus_net as jn
from janus_net._process import frames
from tests.conftest import open_fds

#: A generous "did not hang" bound for joins and socket reads; never a timing assertion.
HANG = 30.0

_CHUNK = struct.Struct("!4sBBHII")


def frame(body: bytes | str | object) -> bytes:
    """A frame as the wire carries it: 4-byte big-endian length, then the body."""
    if isinstance(body, str):
        data = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    return struct.pack("!I", len(data)) + data


def send_chunk(conn: socket.socket, sockets: dict[str, socket.socket]) -> None:
    """One `send_sockets` chunk, written by hand: header, entries (kind 1 = Server), SCM_RIGHTS."""
    entries = b"".join(struct.pack("!BB", 1, len(name)) + name.encode() for name in sockets)
    header = _CHUNK.pack(b"JNfd", 1, 1, len(sockets), len(sockets), len(entries))
    fds = array.array("i", [s.fileno() for s in sockets.values()])
    conn.sendmsg([header + entries], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def read_frame(conn: socket.socket) -> bytes:
    """A frame's body, read by hand (b"" if the channel ends first)."""
    head = _recv_exact(conn, 4)
    if len(head) < 4:
        return b""
    return _recv_exact(conn, struct.unpack("!I", head)[0])


def drain(conn: socket.socket) -> None:
    """Read until the other side closes (a close with our bytes unread is a reset: closed too)."""
    try:
        while conn.recv(65536):
            pass
    except ConnectionResetError:
        pass


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    out = b""
    while len(out) < size:
        chunk = conn.recv(size - len(out))
        if not chunk:
            break
        out += chunk
    return out


class Predecessor:
    """A stdlib listener at ``path`` playing the old process for one successor.

    It sends ``sockets`` (name -> listening stdlib socket), then ``wire`` as it is
    (the files frame, or a crafted/truncated one), then, with ``answer``, reads the
    ready frame and sends ``answer`` (the given frame) before closing.
    """

    def __init__(self, path: Path, sockets: dict[str, socket.socket], wire: bytes, answer: bytes | None = None) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen()
        self.sockets, self.wire, self.answer = sockets, wire, answer
        self.ready_body: bytes | None = None
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.listener.settimeout(HANG)
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(HANG)
                send_chunk(conn, self.sockets)
                conn.sendall(self.wire)
                if self.answer is not None:
                    self.ready_body = read_frame(conn)
                    if self.ready_body:  # else take() refused the transfer and closed
                        conn.sendall(self.answer)
                else:
                    conn.shutdown(socket.SHUT_WR)
                    drain(conn)
        except BaseException as e:  # reported to the test
            self.errors.append(e)
        finally:
            self.listener.close()

    def join(self) -> None:
        self.thread.join(HANG)
        assert not self.thread.is_alive(), "the hostile predecessor hung"


def _listener(path: Path | None = None) -> socket.socket:
    s = socket.socket(socket.AF_UNIX if path is not None else socket.AF_INET)
    s.bind(str(path) if path is not None else ("127.0.0.1", 0))
    s.listen()
    return s


def _entry(path: str, **extra: object) -> dict[str, object]:
    return {"path": path, **extra}


# Every bound of the files frame, as the bytes a hostile predecessor sends after the
# socket "web". Each must end take() with ProtocolFailure.
def _hostile_files_frames(own: str) -> dict[str, bytes]:
    big = frames.FRAME_MAX + 1
    too_many = {f"n{i}": _entry(own) for i in range(frames.FILES_MAX + 1)}
    return {
        "size just over the limit": struct.pack("!I", big) + b"{" * 64,
        "size far over the limit": struct.pack("!I", 0xFFFFFFFF),
        "nesting just over": frame('{"files":{"web":{"path":{}}}}'),
        "nesting of ten thousand objects": frame('{"a":' * 10_000 + "1" + "}" * 10_000),
        "nesting of a hundred thousand arrays": frame("[" * 100_000 + "]" * 100_000),
        "an array where the list goes": frame({"files": []}),
        "files is a number": frame({"files": 1}),
        "files is null": frame({"files": None}),
        "files is a string": frame({"files": "web"}),
        "files is true": frame({"files": True}),
        "no files key": frame({"ready": True}),
        "an extra top-level key": frame({"files": {}, "more": 1}),
        "the frame is a list": frame([1]),
        "the frame is a string": frame("files"),
        "an entry that is a string": frame({"files": {"web": own}}),
        "an entry without a path": frame({"files": {"web": {"dev": 1, "ino": 1}}}),
        "an entry with an unknown key": frame({"files": {"web": _entry(own, mode=1)}}),
        "a path that is a number": frame({"files": {"web": {"path": 7}}}),
        "a path that is a bool": frame({"files": {"web": {"path": True}}}),
        "a path that is null": frame({"files": {"web": {"path": None}}}),
        "a dev that is a bool": frame({"files": {"web": _entry(own, dev=True, ino=1)}}),
        "an ino that is a float": frame({"files": {"web": _entry(own, dev=1, ino=1.0)}}),
        "an ino that is a string": frame({"files": {"web": _entry(own, dev=1, ino="1")}}),
        "a negative dev": frame({"files": {"web": _entry(own, dev=-1, ino=1)}}),
        "an ino of 2**64": frame({"files": {"web": _entry(own, dev=1, ino=1 << 64)}}),
        "dev without ino": frame({"files": {"web": _entry(own, dev=1)}}),
        "an integer of 5000 digits": frame('{"files":{"web":{"path":"/x","dev":' + "9" * 5000 + ',"ino":1}}}'),
        "NaN": frame('{"files":{"web":{"path":"/x","dev":NaN,"ino":1}}}'),
        "Infinity": frame('{"files":{"web":{"path":"/x","dev":Infinity,"ino":1}}}'),
        "a key twice": frame('{"files":{},"files":{"web":{"path":"/x"}}}'),
        "a NUL in the path": frame({"files": {"web": _entry(own + "\0x")}}),
        "a lone surrogate in the path": frame('{"files":{"web":{"path":"/tmp/\\ud800"}}}'),
        "a raw lone surrogate (not UTF-8)": frame('{"files":{"web":{"path":"/tmp/\ud800"}}}'),
        "a relative path": frame({"files": {"web": _entry("web.sock")}}),
        "an empty path": frame({"files": {"web": _entry("")}}),
        "a path one byte over sun_path": frame({"files": {"web": _entry("/" + "a" * frames.PATH_MAX)}}),
        "a name with a colon": frame({"files": {"a:b": _entry(own)}}),
        "a name of 256 characters": frame({"files": {"w" * 256: _entry(own)}}),
        "an empty name": frame({"files": {"": _entry(own)}}),
        "a name no socket came with": frame({"files": {"other": _entry(own)}}),
        "one entry more than allowed": frame({"files": too_many}),
        "garbage": frame(b"\x00\x01garbage\xff"),
        "not UTF-8": frame(b'{"files":{"web":{"path":"/\xff"}}}'),
        "UTF-16 JSON": frame('{"files":{}}'.encode("utf-16")),
        "JSON with trailing bytes": frame(b'{"files":{}} {}'),
        "an empty body": frame(b""),
        "a truncated frame": struct.pack("!I", 100) + b'{"files":{',
        "end of stream inside the length": b"\x00\x00",
    }


_OWN = "/nonexistent/jn-hostile/web.sock"  # the paths name no file: the frame is refused before any look


@pytest.mark.parametrize("case", sorted(_hostile_files_frames(_OWN)))
def test_a_hostile_files_frame_is_a_protocol_failure_and_take_holds_nothing(tmp_path: Path, case: str) -> None:
    wire = _hostile_files_frames(_OWN)[case]
    handoff = tmp_path / "handoff"
    with _listener(tmp_path / "web.sock") as web:
        before = open_fds()
        peer = Predecessor(handoff, {"web": web}, wire)
        # No context (its wake fd would live as long as the exception refers to it):
        # the peer's own socket timeouts bound the test if take() ever waited for more.
        with pytest.raises(jn.SocketError.ProtocolFailure) as info:
            jn.handoff.take(f"unix:{handoff}")
        peer.join()
        assert not peer.errors
        # While the exception lives (pytest keeps it in `info`), no descriptor is held:
        # neither the channel nor any received socket.
        assert info.value is not None
        assert open_fds() <= before
        assert "hand-over" in str(info.value)


def test_a_frame_of_exactly_the_size_limit_is_read(tmp_path: Path) -> None:
    body = b'{"files":{}}'
    body += b" " * (frames.FRAME_MAX - len(body))  # JSON whitespace up to the limit
    handoff = tmp_path / "handoff"
    with _listener(tmp_path / "web.sock") as web:
        peer = Predecessor(handoff, {"web": web}, frame(body), answer=frame({"given": True}))
        try:
            taken = jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
            try:
                assert list(taken) == ["web"]
                taken.ready(jn.Context.with_timeout(HANG))
            finally:
                for sock in taken.values():
                    sock.close()
        finally:
            peer.join()
        assert not peer.errors


def test_the_limits_are_what_the_documentation_says() -> None:
    assert frames.FRAME_MAX == 1 << 20 and frames.DEPTH_MAX == 3 and frames.FILES_MAX == 512
    # PATH_MAX is what sun_path holds besides its NUL: the stdlib binds that and refuses one more.
    with socket.socket(socket.AF_UNIX) as s, pytest.raises(OSError):
        s.bind("/" + "a" * frames.PATH_MAX)
    guide = Path(__file__).resolve().parent.parent / "docs" / "zero-downtime.md"
    for doc in (frames.__doc__ or "", guide.read_text()):
        for text in ("1 MiB", "3", "512", "NUL", "surrogate", "sun_path", "ProtocolFailure"):
            assert text in doc, text


def test_the_longest_honest_files_frame_fits_and_parses() -> None:
    # Names and paths as long and as escaped as the rules allow: '"' and '\\' in names,
    # undecodable bytes (surrogateescape) in paths, 20-digit dev and ino.
    name_chars = '"\\' * 127 + "x"
    path = os.fsdecode(b"/" + bytes(range(0x80, 0x80 + frames.PATH_MAX - 1)))
    entries = {
        name_chars[:-4] + f"{i:04d}"[-4:]: (path, ((1 << 64) - 1, (1 << 64) - 1)) for i in range(frames.FILES_MAX)
    }
    wire = frames.files_frame(entries)
    assert len(wire) - 4 <= frames.FRAME_MAX
    parsed = frames.files(wire[4:])
    assert len(parsed) == frames.FILES_MAX
    assert all(e.path == path and e.hint == ((1 << 64) - 1, (1 << 64) - 1) for e in parsed.values())
    with pytest.raises(ValueError):
        frames.files_frame({**entries, "one more": (path, (1, 1))})


# --- A hostile predecessor that tries to make the successor remove another service's file


def _forged_take(
    tmp_path: Path, own: socket.socket, victim: Path, hint: bool, expect: type[BaseException] | None
) -> None:
    st = victim.stat()
    extra = {"dev": st.st_dev, "ino": st.st_ino} if hint else {}
    wire = frame({"files": {"web": _entry(str(victim), **extra)}})
    handoff = tmp_path / "handoff"
    peer = Predecessor(handoff, {"web": own}, wire, answer=frame({"given": True}))
    try:
        if expect is not None:
            with pytest.raises(expect):
                jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
            return
        taken = jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
        taken.ready(jn.Context.with_timeout(HANG))
        assert peer.ready_body == b'{"ready":true}'
        for sock in taken.values():
            sock.close()
    finally:
        peer.join()
    assert not peer.errors


def _assert_alive(victim: Path, listener: socket.socket) -> None:
    assert victim.is_socket(), "the live socket's file was removed"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(HANG)
        client.connect(str(victim))
        listener.settimeout(HANG)
        conn, _ = listener.accept()
        conn.close()


@pytest.mark.parametrize("hint", [True, False], ids=["with-dev-ino", "without"])
def test_a_forged_path_naming_another_live_socket_is_refused(tmp_path: Path, hint: bool) -> None:
    victim = tmp_path / "victim.sock"
    with _listener(victim) as other_service, _listener(tmp_path / "own.sock") as own:
        _forged_take(tmp_path, own, victim, hint, jn.SocketError.ProtocolFailure)
        _assert_alive(victim, other_service)


@pytest.mark.parametrize("hint", [True, False], ids=["with-dev-ino", "without"])
def test_a_socket_whose_file_was_replaced_by_another_live_socket_never_removes_it(tmp_path: Path, hint: bool) -> None:
    # The predecessor's socket really is bound to the path (getsockname says so), but its
    # file was unlinked and another service now listens there: the inode is not the socket's.
    victim = tmp_path / "victim.sock"
    with _listener(victim) as own:
        victim.unlink()
        with _listener(victim) as other_service:
            _forged_take(tmp_path, own, victim, hint, None)
            _assert_alive(victim, other_service)


def test_a_tcp_socket_cannot_carry_a_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim.sock"
    with _listener(victim) as other_service, _listener() as tcp:
        _forged_take(tmp_path, tcp, victim, True, jn.SocketError.ProtocolFailure)
        _assert_alive(victim, other_service)


def test_a_socket_bound_to_a_relative_path_never_removes_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # getsockname says "victim.sock": where that is cannot be proven from another cwd.
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim.sock"
    with socket.socket(socket.AF_UNIX) as own:
        own.bind("victim.sock")
        own.listen()
        _forged_take(tmp_path, own, victim, True, None)
        _assert_alive(victim, own)


def test_an_honest_frame_still_gives_the_file_to_the_successor(tmp_path: Path) -> None:
    service = tmp_path / "service.sock"
    with _listener(service) as own:
        _forged_take(tmp_path, own, service, True, None)
    # The successor's close removed it: the received socket was bound there, and the
    # file was that socket's inode.
    assert not service.exists()


@pytest.mark.parametrize(
    "given",
    [frame({"given": False}), frame({"given": True, "x": 1}), frame("[" * 50_000), struct.pack("!I", 9) + b"{"],
    ids=["false", "extra-key", "deep", "truncated"],
)
def test_a_bad_given_frame_is_a_protocol_failure_and_the_file_stays_unowned(tmp_path: Path, given: bytes) -> None:
    service = tmp_path / "service.sock"
    handoff = tmp_path / "handoff"
    with _listener(service) as own:
        st = service.stat()
        wire = frame({"files": {"web": _entry(str(service), dev=st.st_dev, ino=st.st_ino)}})
        peer = Predecessor(handoff, {"web": own}, wire, answer=given)
        try:
            taken = jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
            try:
                with pytest.raises(jn.SocketError.ProtocolFailure):
                    taken.ready(jn.Context.with_timeout(HANG))
            finally:
                for sock in taken.values():
                    sock.close()
        finally:
            peer.join()
        assert service.is_socket()  # the successor never took the file


# --- Hostile successors: offer drops each and hands over to the next honest one


def _hostile_ready_frames() -> dict[str, bytes]:
    return {
        "size just over": struct.pack("!I", frames.FRAME_MAX + 1),
        "nesting of a hundred thousand arrays": frame("[" * 100_000 + "]" * 100_000),
        "nesting just over": frame('{"ready":' + "{" * frames.DEPTH_MAX + "}" * frames.DEPTH_MAX + "}"),
        "ready is 1": frame({"ready": 1}),
        "ready is a string": frame({"ready": "true"}),
        "ready is false": frame({"ready": False}),
        "ready is a lone surrogate": frame('{"ready":"\\udc00\\ud800"}'),
        "ready with a NUL": frame('{"ready":"\\u0000"}'),
        "an extra key": frame({"ready": True, "files": {}}),
        "a key twice": frame('{"ready":true,"ready":true}'),
        "the given frame": frame({"given": True}),
        "garbage": frame(b"\xff\xfe\x00garbage"),
        "a truncated frame": struct.pack("!I", 50) + b'{"ready":',
        "end of stream inside the length": b"\x00",
        "nothing at all": b"",
    }


def _hostile_successor(path: Path, wire: bytes) -> None:
    """Connect, receive the sockets (closing them), send ``wire``, end the stream, wait until dropped."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(HANG)
        conn.connect(str(path))
        _, fds, _, _ = socket.recv_fds(conn, 65536, 16)
        for fd in fds:
            os.close(fd)
        conn.sendall(wire)
        conn.shutdown(socket.SHUT_WR)
        drain(conn)  # the rest of the transfer and the files frame, then end of stream: dropped


def _wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(HANG * 100)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("did not happen")


def test_offer_survives_every_hostile_successor_then_hands_over_to_an_honest_one(tmp_path: Path) -> None:
    handoff = tmp_path / "handoff"
    service = tmp_path / "service.sock"
    web = jn.listen(f"unix:{service}")
    ctx = jn.Context.with_timeout(120)
    thread, errors = offer_in_thread(f"unix:{handoff}", {"web": web}, ctx)
    try:
        # The file appears at bind, a moment before listen; bound_but_refusing -> wait.
        _wait_until(lambda: handoff.is_socket() and _accepts(handoff))
        rounds = 0
        baseline: set[int] = set()
        for lap in range(3):
            for wire in _hostile_ready_frames().values():
                _hostile_successor(handoff, wire)  # returns once offer closed the channel
                rounds += 1
                assert thread.is_alive() and not errors
            if lap == 0:
                baseline = open_fds()  # after one lap every lazily made fd exists
            else:
                assert open_fds() == baseline  # no descriptor kept per dropped successor
        assert rounds == 3 * len(_hostile_ready_frames())
        taken = jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
        new_web = taken["web"]
        assert isinstance(new_web, jn.Server)
        with socket.socket(socket.AF_UNIX) as client:  # the honest successor serves
            client.settimeout(HANG)
            client.connect(str(service))
            with new_web.accept(jn.Context.with_timeout(HANG)) as conn:
                conn.write_all(b"served")
            assert client.recv(16) == b"served"
        taken.ready(jn.Context.with_timeout(HANG))
        thread.join(HANG)
        assert not thread.is_alive() and not errors
        web.close()
        assert service.is_socket()  # the old one gave it up
        new_web.close()
        assert not service.exists()  # the successor owned it: its socket was bound there
    finally:
        ctx.cancel()
        thread.join(HANG)
        web.close()


def _accepts(path: Path) -> bool:
    # A plain connect, then close: offer takes it for a successor that left (dropped).
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


# --- Anything but a stale socket at the offer path: AddressInUse at once


def _plant(kind: str, path: Path, keep: list[socket.socket]) -> None:
    if kind == "regular file":
        path.write_text("data")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling symlink":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "symlink to a stale socket":
        stale = path.parent / "stale.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(stale))
        path.symlink_to(stale)
    elif kind == "live listener":
        keep.append(_listener(path))
    elif kind == "bound, not listening":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        keep.append(s)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "regular file",
        "directory",
        "fifo",
        "dangling symlink",
        "symlink to a stale socket",
        "live listener",
        "bound, not listening",
    ],
)
def test_offer_at_a_path_that_holds_anything_but_a_stale_socket_is_address_in_use_at_once(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "handoff"
    keep: list[socket.socket] = []
    try:
        _plant(kind, path, keep)
        before = os.lstat(path)
        web = jn.listen("127.0.0.1:0")
        ctx = jn.Context()
        thread, errors = offer_in_thread(f"unix:{path}", {"web": web}, ctx)
        thread.join(HANG)
        hung = thread.is_alive()
        ctx.cancel()  # if it did hang, end it so the test can report
        thread.join(HANG)
        web.close()
        assert not hung, "offer did not raise at once"
        assert len(errors) == 1 and isinstance(errors[0], jn.SocketError.AddressInUse), errors
        after = os.lstat(path)
        assert (after.st_dev, after.st_ino, after.st_mode) == (before.st_dev, before.st_ino, before.st_mode)
        if keep and kind == "live listener":
            _assert_alive(path, keep[0])
    finally:
        for s in keep:
            s.close()


def test_offer_at_an_abstract_name_another_socket_holds_is_address_in_use_at_once() -> None:
    name = f"jn-hostile-offer-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as holder, jn.listen("127.0.0.1:0") as web:
        holder.bind("\0" + name)
        holder.listen()
        ctx = jn.Context()
        thread, errors = offer_in_thread(f"unix:@{name}", {"web": web}, ctx)
        thread.join(HANG)
        hung = thread.is_alive()
        ctx.cancel()
        thread.join(HANG)
        assert not hung, "offer did not raise at once"
        assert len(errors) == 1 and isinstance(errors[0], jn.SocketError.AddressInUse), errors


def test_offer_replaces_a_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "handoff"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # closed without unlink: stale
    web = jn.listen("127.0.0.1:0")
    ctx = jn.Context()
    thread, errors = offer_in_thread(f"unix:{path}", {"web": web}, ctx)
    try:
        _wait_until(lambda: _accepts(path))
        taken = jn.handoff.take(f"unix:{path}", ctx=jn.Context.with_timeout(HANG))
        taken.ready(jn.Context.with_timeout(HANG))
        thread.join(HANG)
        assert not thread.is_alive() and not errors
        for sock in taken.values():
            sock.close()
    finally:
        ctx.cancel()
        thread.join(HANG)
        web.close()


# --- Honest frames at the edges of the bounds still pass


def test_an_honest_hand_over_of_a_file_whose_path_looks_like_json(tmp_path: Path) -> None:
    # Braces, brackets, quotes and backslashes inside a string are no nesting; an
    # undecodable byte travels as surrogateescape; the successor owns and removes the file.
    service = os.fsdecode(os.fsencode(str(tmp_path)) + b'/{["\\\xff\xe9]}"\\')
    handoff = tmp_path / "handoff"
    web = jn.listen(jn.UnixAddress(service))
    ctx = jn.Context.with_timeout(120)
    thread, errors = offer_in_thread(f"unix:{handoff}", {"web": web}, ctx)
    try:
        _wait_until(lambda: handoff.is_socket() and _accepts(handoff))
        taken = jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
        taken.ready(jn.Context.with_timeout(HANG))
        thread.join(HANG)
        assert not thread.is_alive() and not errors
        web.close()
        assert os.path.exists(os.fsencode(service))
        taken["web"].close()
        assert not os.path.lexists(os.fsencode(service))  # the successor owned it
    finally:
        ctx.cancel()
        thread.join(HANG)
        web.close()


def test_offer_refuses_more_unix_files_than_a_frame_may_name_before_it_listens(tmp_path: Path) -> None:
    servers = {f"s{i}": jn.listen(f"unix:{tmp_path}/{i}") for i in range(frames.FILES_MAX + 1)}
    try:
        with pytest.raises(ValueError, match=str(frames.FILES_MAX)):
            jn.handoff.offer(f"unix:{tmp_path}/handoff", servers)
        assert not (tmp_path / "handoff").exists()
    finally:
        for server in servers.values():
            server.close()


def test_a_file_bound_by_a_relative_path_is_removed_by_neither_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The successor cannot prove where "rel.sock" is; the predecessor gave it up. The
    # file a live socket is bound to is never removed under it (a later unlink_stale
    # listen replaces it once it is stale).
    monkeypatch.chdir(tmp_path)
    handoff = tmp_path / "handoff"
    web = jn.listen("unix:rel.sock")
    ctx = jn.Context.with_timeout(120)
    thread, errors = offer_in_thread(f"unix:{handoff}", {"web": web}, ctx)
    try:
        _wait_until(lambda: handoff.is_socket() and _accepts(handoff))
        taken = jn.handoff.take(f"unix:{handoff}", ctx=jn.Context.with_timeout(HANG))
        taken.ready(jn.Context.with_timeout(HANG))
        thread.join(HANG)
        assert not thread.is_alive() and not errors
        web.close()
        assert (tmp_path / "rel.sock").is_socket()  # the old one gave it up
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(tmp_path / "rel.sock"))
            new_web = taken["web"]
            assert isinstance(new_web, jn.Server)
            new_web.accept(jn.Context.with_timeout(HANG)).close()
        new_web.close()
        assert (tmp_path / "rel.sock").is_socket()
    finally:
        ctx.cancel()
        thread.join(HANG)
        web.close()
