"""close() from another thread while a many-step datagram send runs (DESIGN §3, Shared sockets).

``send_many`` and ``send_segments`` are loops of native calls (sendmmsg batches,
UDP_SEGMENT sendmsg calls, a getsockopt that checks the socket is UDP) with Python
between them. A ``close()`` from another thread can land before any of those steps;
each native call then finds the cell closing and reports EBADF. The woken call must
raise a `SocketError` member (SocketUnconnected) or return the count it sent, never
ErrnoBug; only a call *begun* on an object that was already closed keeps the EBADF row.

The race is started from inside the call: a profile hook on the sending thread says
when the function that takes the call's first look at the socket (is it closing?) has
taken it -- a call made from a line after that look -- and the main thread then closes after a random
spin, so every close provably lands after the call began, spread over its whole length.
A close landing before that look cannot be told from a close before the call (the
caller's use after close, the EBADF row), so the race does not count it.
"""

from __future__ import annotations

import collections
import functools
import inspect
import random
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest
from peers import in_poll

import janus_net as jn
from janus_net._sockets import batching, segments

_ROUNDS = 150


def _race(sock: jn.Socket, looks: Callable[..., object], call: Callable[[], object]) -> str:
    """Run ``call`` on a thread, close its socket once ``looks`` has looked whether it is closing; the outcome.

    ``looks`` is the function whose first lines read ``desc.closing`` (what the call
    knew when it began): the close is started by the first call made from a later line
    of it -- whatever is called, a collection's weakref callback or finalizer included.
    """
    code = looks.__code__  # type: ignore[attr-defined]
    lines, first = inspect.getsourcelines(looks)
    look = first + next(i for i, line in enumerate(lines) if ".closing" in line)
    began = threading.Event()
    outcome: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        caller = frame if event == "c_call" else frame.f_back if event == "call" else None
        if caller is not None and caller.f_code is code and caller.f_lineno > look:
            began.set()

    def run() -> None:
        sys.setprofile(profile)
        try:
            result = call()
            outcome.append("count" if type(result) is int else repr(result))
        except jn.ErrnoBug as e:
            outcome.append(f"ErrnoBug: {e}")
        except jn.SocketError as e:
            outcome.append(e.member)
        finally:
            sys.setprofile(None)

    thread = threading.Thread(target=run)
    thread.start()
    assert began.wait(30), "the call never began"
    for _ in range(random.randrange(3000)):  # spread the close over the call's length
        pass
    sock.close()
    thread.join(30)
    assert not thread.is_alive(), "the sending thread hung after close()"
    return outcome[0]


def test_close_racing_a_long_send_many_is_socket_unconnected_or_a_count() -> None:
    seen: collections.Counter[str] = collections.Counter()
    with jn.bind("127.0.0.1:0") as peer:
        messages = [(peer.address, b"x" * 64)] * 20000  # about 20 sendmmsg batches
        for _ in range(_ROUNDS):
            sock = jn.bind("127.0.0.1:0")
            seen[_race(sock, batching.send_many, functools.partial(sock.send_many, messages))] += 1
    assert set(seen) <= {"count", "SocketUnconnected"}, seen
    assert seen["SocketUnconnected"] > 0, seen  # the race was really run, not only lost


def test_close_racing_send_segments_is_socket_unconnected_or_a_count() -> None:
    seen: collections.Counter[str] = collections.Counter()
    data = bytes(range(256)) * 250  # 64,000 bytes: 64 segments of 1,000
    with jn.bind("127.0.0.1:0") as peer:
        for _ in range(_ROUNDS):
            sock = jn.bind("127.0.0.1:0")
            seen[
                _race(
                    sock,
                    segments.send_segments,
                    functools.partial(sock.send_segments, peer.address, data, 1000),
                )
            ] += 1
    assert set(seen) <= {"count", "SocketUnconnected"}, seen
    assert seen["SocketUnconnected"] > 0, seen


def test_close_wakes_send_many_waiting_for_a_full_unix_peer(tmp_path: Path) -> None:
    """A unix datagram peer that never reads: send_many waits in poll, and close() wakes it."""
    path = str(tmp_path / "peer.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:
        peer.bind(path)
        sock = jn.bind(f"unix:{tmp_path}/me.sock")
        messages = [(f"unix:{path}", b"x" * 512)] * 5000  # far more than the peer's queue holds
        box: list[BaseException | int] = []

        def run() -> None:
            try:
                box.append(sock.send_many(messages))
            except BaseException as e:
                box.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for _ in range(2000):
            if thread.native_id is not None and in_poll(thread.native_id):
                break
            thread.join(0.005)
        assert thread.native_id is not None and in_poll(thread.native_id), box
        sock.close()
        thread.join(30)
        assert not thread.is_alive()
    (result,) = box
    # The first batch went in part; the wait for the rest was woken: the count, or the member.
    assert type(result) is int or isinstance(result, jn.SocketError.SocketUnconnected), result


@pytest.mark.parametrize("which", ["send_many", "send_segments"])
def test_a_call_begun_on_a_closed_socket_keeps_the_ebadf_row(which: str) -> None:
    with jn.bind("127.0.0.1:0") as peer:
        sock = jn.bind("127.0.0.1:0")
        sock.close()
        with pytest.raises((jn.ErrnoBug, jn.SocketError.Unexpected)) as info:
            if which == "send_many":
                sock.send_many([(peer.address, b"x")])
            else:
                sock.send_segments(peer.address, b"x" * 100, 10)
        assert info.value.errno == 9  # EBADF: the caller's own mistake, not another thread's close
