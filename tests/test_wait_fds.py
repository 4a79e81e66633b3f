"""`waiting.wait_fds`: one poll of raw descriptors a call owns, with the context's wake fd and the signal fd."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
from peers import when_blocked

import janus_net as jn
from janus_net._cli.output import usage_status
from janus_net._policy import waiting


def test_revents_in_the_order_of_the_entries() -> None:
    a, b = socket.socketpair()
    try:
        b.send(b"x")
        revents = waiting.wait_fds(
            [(b.fileno(), waiting.POLLIN), (-1, waiting.POLLIN), (a.fileno(), waiting.POLLIN)], None, None
        )
        assert revents[0] == 0 and revents[1] == 0 and revents[2] & waiting.POLLIN
        revents = waiting.wait_fds([(a.fileno(), waiting.POLLOUT)], None, None)
        assert revents == [waiting.POLLOUT]
    finally:
        a.close()
        b.close()


def test_until_ends_the_wait_with_zeros() -> None:
    a, b = socket.socketpair()
    try:
        started = time.monotonic()
        assert waiting.wait_fds([(a.fileno(), waiting.POLLIN)], None, time.monotonic() + 0.05) == [0]
        assert time.monotonic() - started >= 0.049
        assert waiting.wait_fds([(a.fileno(), waiting.POLLIN)], None, time.monotonic() - 1) == [0]
        assert waiting.wait_fds([], jn.Context.with_timeout(30), time.monotonic() + 0.01) == []
    finally:
        a.close()
        b.close()


def test_the_context_ends_the_wait() -> None:
    a, b = socket.socketpair()
    try:
        done = jn.Context()
        done.cancel()
        with pytest.raises(jn.SocketError.Timeout):
            waiting.wait_fds([(a.fileno(), waiting.POLLIN)], done, None)
        ctx = jn.Context()
        timer = threading.Timer(0.1, ctx.cancel)
        timer.start()
        try:
            with pytest.raises(jn.SocketError.Timeout) as info:
                waiting.wait_fds([(a.fileno(), waiting.POLLIN)], ctx, None)
            assert info.value.reason == "cancelled"
        finally:
            timer.join()
        with pytest.raises(jn.SocketError.Timeout) as info:
            waiting.wait_fds([(a.fileno(), waiting.POLLIN)], jn.Context.with_timeout(0.05), None)
        assert info.value.reason == "deadline"
    finally:
        a.close()
        b.close()


def test_a_handled_signal_returns_zeros_and_a_raising_one_propagates() -> None:
    a, b = socket.socketpair()
    seen: list[int] = []

    def count(signum: int, frame: object) -> None:
        seen.append(signum)

    # The signal goes to this thread once it sleeps in the wait's poll, not on a timer: one that
    # fired before the wait began would run its handler outside it (the first wait would then
    # sit out its 10 s and the KeyboardInterrupt escape pytest.raises, ending the session).
    me = threading.get_ident()
    previous = signal.signal(signal.SIGALRM, count)
    try:
        sender = when_blocked(lambda: signal.pthread_kill(me, signal.SIGALRM))
        assert waiting.wait_fds([(a.fileno(), waiting.POLLIN)], None, time.monotonic() + 10) == [0]
        sender.join()
        assert seen == [signal.SIGALRM]

        def boom(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGALRM, boom)
        sender = when_blocked(lambda: signal.pthread_kill(me, signal.SIGALRM))
        with pytest.raises(KeyboardInterrupt):
            waiting.wait_fds([(a.fileno(), waiting.POLLIN)], jn.Context(), time.monotonic() + 10)
        sender.join()
    finally:
        signal.signal(signal.SIGALRM, previous)
        a.close()
        b.close()


def test_invalid_host_name_is_a_usage_error_for_the_command() -> None:
    assert usage_status(jn.SocketError.InvalidHostName(None, "x")) == 2
    assert usage_status(jn.SocketError.UnknownHostName(name="x")) == 1
    assert usage_status(jn.SocketError.NameServerFailure(name="x")) == 1


def test_new_members_pickle_with_their_attributes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(jn.SocketError.NameServerFailure(name="x.example", temporary=False)))
    assert type(error) is jn.SocketError.NameServerFailure and error.name == "x.example" and error.temporary is False
    unknown = pickle.loads(pickle.dumps(jn.SocketError.UnknownHostName(name="y.example")))
    assert unknown.name == "y.example" and "y.example" in str(unknown)
