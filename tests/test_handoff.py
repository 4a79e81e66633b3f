"""jn.handoff.offer / take: the upgrade protocol, in-process and across users.

(The load test through 20 upgrades is in test_zero_downtime.py.)
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from peers import offer_in_thread, wait_until_blocked

import janus_net as jn


def _wait_for_listener(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _take_when_offered(address: str) -> jn.handoff.HandOff:
    """take() once the offering thread listens (an abstract address shows no file to wait for)."""
    deadline = time.monotonic() + 10
    while True:
        taken = jn.handoff.take(address, ctx=jn.Context.with_timeout(10))
        if taken.pending:
            return taken
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_take_without_predecessor_is_an_empty_handoff(tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(str(stale))
    for address in (f"unix:{tmp_path}/missing", f"unix:{stale}", f"unix:@jn-handoff-none-{os.getpid()}"):
        taken = jn.handoff.take(address)
        assert taken == {} and not taken.pending
        taken.ready()  # does nothing, so start-up code is the same on a first start
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.handoff.take("127.0.0.1:9")


def test_offer_and_take_move_the_sockets_and_the_unix_file(tmp_path: Path) -> None:
    handoff = tmp_path / "handoff"
    service = tmp_path / "service.sock"
    old_unix = jn.listen(f"unix:{service}")
    old_tcp = jn.listen("127.0.0.1:0")
    thread, errors = offer_in_thread(f"unix:{handoff}", {"unix": old_unix, "tcp": old_tcp})
    try:
        _wait_for_listener(handoff)
        assert stat.S_IMODE(handoff.stat().st_mode) == 0o600  # only our user may connect
        # The file appears at bind, a moment before listen: take() until the offer listens.
        taken = _take_when_offered(f"unix:{handoff}")
        assert list(taken) == ["unix", "tcp"] and taken.pending
        assert taken["tcp"].address == old_tcp.address
        assert thread.is_alive()  # offer waits for ready()
        taken.ready()
        thread.join(10)
        assert not thread.is_alive() and not errors
        assert not handoff.exists()  # the hand-over address is free for the successor's own offer
        # The old process closes: the file stays, the socket still serves in the successor.
        old_unix.close()
        old_tcp.close()
        assert service.exists()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(service))
            new_unix = taken["unix"]
            assert isinstance(new_unix, jn.Server)
            new_unix.accept().close()
        # The successor is the last owner: its close removes the file.
        for sock in taken.values():
            sock.close()
        assert not service.exists()
    finally:
        old_unix.close()
        old_tcp.close()
        thread.join(10)


def test_an_abandoned_successor_leaves_everything_to_the_predecessor(tmp_path: Path) -> None:
    handoff = f"unix:@jn-handoff-abandon-{os.getpid()}"
    service = tmp_path / "service.sock"
    old = jn.listen(f"unix:{service}")
    ctx = jn.Context.with_timeout(30)
    thread, errors = offer_in_thread(handoff, {"svc": old}, ctx)
    try:
        first = _take_when_offered(handoff)
        first.abandon()  # e.g. the new version failed its start-up checks
        first["svc"].close()
        assert service.exists()  # never removed by a successor that did not serve
        assert thread.is_alive()  # offer waits for the next successor
        second = _take_when_offered(handoff)
        second.ready()
        thread.join(10)
        assert not errors
        old.close()
        assert service.exists()
        second["svc"].close()
        assert not service.exists()
    finally:
        ctx.cancel()
        thread.join(10)
        old.close()


def test_cancelled_offer_removes_its_hand_over_file(tmp_path: Path) -> None:
    handoff = tmp_path / "handoff"
    with jn.listen("127.0.0.1:0") as web:
        ctx = jn.Context()
        thread, errors = offer_in_thread(f"unix:{handoff}", {"web": web}, ctx)
        _wait_for_listener(handoff)
        ctx.cancel()
        thread.join(10)
        assert len(errors) == 1 and isinstance(errors[0], jn.SocketError.Timeout)
        assert not handoff.exists()


def test_offer_checks_its_sockets_before_waiting() -> None:
    with jn.listen("127.0.0.1:0") as web, pytest.raises(ValueError):
        jn.handoff.offer("unix:@jn-handoff-bad", {"a:b": web})
    with pytest.raises(jn.SocketError.InvalidAddress):
        jn.handoff.offer("127.0.0.1:0", {})


def test_a_successor_of_another_user_is_refused_and_the_offer_goes_on() -> None:
    handoff = f"unix:@jn-handoff-uid-{os.getpid()}"
    nobody = 65534
    with jn.listen("127.0.0.1:0") as web:
        ctx = jn.Context.with_timeout(30)
        thread, errors = offer_in_thread(handoff, {"web": web}, ctx)
        probe = _take_when_offered(handoff)  # the offer listens; this successor gives up
        probe.abandon()
        probe["web"].close()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.setgid(nobody)
                os.setuid(nobody)
                try:
                    jn.handoff.take(handoff, ctx=jn.Context.with_timeout(10))
                except jn.SocketError.AccessDenied:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the foreign successor was not refused"
        assert thread.is_alive()
        taken = jn.handoff.take(handoff, ctx=jn.Context.with_timeout(10))
        taken.ready()
        thread.join(10)
        assert not errors
        taken["web"].close()


def test_take_while_the_offer_is_between_bind_and_listen_waits_for_it(tmp_path: Path) -> None:
    # The hand-over path exists from bind; a take in the moment before listen waits
    # for it rather than returning {} while an offer is coming.
    from janus_net.testing import hold

    handoff = tmp_path / "handoff"
    old_tcp = jn.listen("127.0.0.1:0")
    taken: list[jn.handoff.HandOff] = []
    with hold("bind") as parked:  # the offer's bind returns, then parks before listen
        thread, errors = offer_in_thread(f"unix:{handoff}", {"tcp": old_tcp})
        assert parked.returned.wait(10)
        assert handoff.is_socket()  # bound, not listening: a connect now is refused
        taker = threading.Thread(target=lambda: taken.append(jn.handoff.take(f"unix:{handoff}")))
        taker.start()
        wait_until_blocked(taker, outcome=taken)  # refused, the take naps in poll before it tries again
        assert not taken
        parked.release()
        taker.join(10)
    try:
        assert not taker.is_alive() and len(taken) == 1
        assert list(taken[0]) == ["tcp"] and taken[0]["tcp"].address == old_tcp.address
        taken[0].ready()
        thread.join(10)
        assert not thread.is_alive() and not errors
    finally:
        for sock in taken[0].values() if taken else ():
            sock.close()
        old_tcp.close()
        thread.join(10)


def test_take_gives_up_on_a_path_bound_but_never_listening(tmp_path: Path) -> None:
    path = tmp_path / "handoff"
    with socket.socket(socket.AF_UNIX) as squatter:
        squatter.bind(str(path))  # bound and live, never listening: no offer is coming
        started = time.monotonic()
        taken = jn.handoff.take(f"unix:{path}")
        waited = time.monotonic() - started
    assert taken == {} and not taken.pending
    assert 1.5 <= waited < 30  # the documented bound (2 s of pauses), not forever
    with socket.socket(socket.AF_UNIX) as squatter2:
        path.unlink()
        squatter2.bind(str(path))
        with pytest.raises(jn.SocketError.Timeout):
            jn.handoff.take(f"unix:{path}", ctx=jn.Context.with_timeout(0.1))  # a context ends it sooner
