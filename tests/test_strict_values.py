"""Strict values (DESIGN §3): every option is checked for type before any syscall.

Booleans must be `bool`; integers `int` (not bool, float or str); ``mode`` of ``bind``
a `Mode` or the int of one; ``protocol`` None, a `Protocol` or an int. A wrong type is
a TypeError (`BadOptionType`, also a ValueError for handlers written before); a value
out of range a ValueError. Nothing is opened either way.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import janus_net as jn
from janus_net._profiles.option_checks import BadOptionType
from tests.tracing import MARK, calls_to, syscalls_after_mark

NOT_BOOL = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.none(), st.binary(max_size=3),
    st.sampled_from(["false", "no", "0", "", "False", 0, 1, 0.0, 1.0]),
)  # fmt: skip
NOT_INT = st.one_of(
    st.booleans(), st.floats(allow_nan=False), st.text(max_size=5), st.binary(max_size=3),
    st.sampled_from(["6", "0x11", b"6", 6.0, True, False, 1 + 0j]),
)  # fmt: skip


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def nothing_opened() -> Iterator[None]:
    before = _fds()
    yield
    assert _fds() == before


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["reuse_address", "reuse_port", "unlink_stale"]), value=NOT_BOOL)
def test_listen_booleans_must_be_bool(name: str, value: object) -> None:
    before = _fds()
    with pytest.raises(TypeError, match=name):
        jn.listen("127.0.0.1:0", **{name: value})
    assert _fds() == before


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["reuse_address", "broadcast"]), value=NOT_BOOL)
def test_bind_booleans_must_be_bool(name: str, value: object) -> None:
    before = _fds()
    with pytest.raises(TypeError, match=name):
        jn.bind("127.0.0.1:0", **{name: value})
    assert _fds() == before


@settings(max_examples=60, deadline=None)
@given(value=NOT_BOOL.filter(lambda v: v is not None))
def test_ip6_only_must_be_none_or_bool(value: object) -> None:
    before = _fds()
    for call in (jn.listen, jn.bind):
        with pytest.raises(TypeError, match="ip6_only"):
            call("[::1]:0", ip6_only=value)  # type: ignore[operator]
    assert _fds() == before


@settings(max_examples=60, deadline=None)
@given(value=NOT_INT)
def test_integers_must_be_int(value: object) -> None:
    before = _fds()
    with pytest.raises(TypeError, match="backlog"):
        jn.listen("127.0.0.1:0", backlog=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mode"):
        jn.listen("unix:@janus-strict", mode=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mode"):
        jn.bind("127.0.0.1:0", mode=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="protocol"):
        jn.bind("127.0.0.1:0", protocol=value)  # type: ignore[arg-type]
    assert _fds() == before


@pytest.mark.parametrize(
    ("call", "options"),
    [
        (jn.bind, {"mode": 1.0}),
        (jn.bind, {"protocol": "6"}),
        (jn.listen, {"reuse_port": "false"}),
        (jn.listen, {"reuse_address": "no"}),
        (jn.bind, {"broadcast": "no"}),
        (jn.bind, {"mode": True}),
    ],
)
def test_the_issue_examples_are_type_errors_and_value_errors(
    call: Any, options: dict[str, object], nothing_opened: None
) -> None:
    with pytest.raises(BadOptionType) as caught:
        call("127.0.0.1:0", **options)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    name = next(iter(options))
    assert name in str(caught.value) and repr(options[name]) in str(caught.value)


def test_no_socket_syscall_for_a_bad_type(tmp_path: Path) -> None:
    program = (
        "import os, janus_net as jn\n"
        f"os.write(1, {MARK!r})\n"
        "for kw in ({'mode': 1.0}, {'protocol': '6'}, {'broadcast': 'no'}):\n"
        "    try:\n"
        "        jn.bind('127.0.0.1:0', **kw)\n"
        "    except TypeError:\n"
        "        print('refused')\n"
    )
    after, stdout = syscalls_after_mark(program, tmp_path)
    assert stdout.count("refused") == 3
    assert calls_to(after, "socket", "bind") == []


@pytest.mark.parametrize(
    ("call", "options"),
    [
        (jn.bind, {"mode": 99}),
        (jn.bind, {"protocol": -1}),
        (jn.bind, {"protocol": 2**31}),
        (jn.listen, {"backlog": -1}),
    ],
)
def test_out_of_range_is_a_value_error_not_a_type_error(
    call: Any, options: dict[str, object], nothing_opened: None
) -> None:
    with pytest.raises(ValueError) as caught:
        call("127.0.0.1:0", **options)
    assert not isinstance(caught.value, TypeError)


class Kind(enum.IntEnum):
    DGRAM = socket.SOCK_DGRAM


def test_valid_ints_and_int_enums_are_accepted(tmp_path: Path) -> None:
    for mode in (jn.Mode.DGRAM, int(jn.Mode.DGRAM), socket.SOCK_DGRAM, Kind.DGRAM):
        with jn.bind("127.0.0.1:0", mode=mode) as sock:
            assert sock.fileno() >= 0
    for protocol in (None, 0, 17, jn.Protocol.UDP, socket.IPPROTO_UDP):
        with jn.bind("127.0.0.1:0", protocol=protocol):
            pass
    with jn.listen(f"unix:{tmp_path}/ok.sock", backlog=5, mode=0o600, unlink_stale=False, reuse_port=False):
        assert (tmp_path / "ok.sock").stat().st_mode & 0o777 == 0o600


class SneakyContext:
    def check(self) -> None:
        pass


@pytest.mark.parametrize("bad", [object(), "ctx", 5, SneakyContext()])
def test_a_context_must_be_a_context(bad: object, nothing_opened: None) -> None:
    with pytest.raises(TypeError, match="Context"):
        jn.listen_with_context("127.0.0.1:0", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Context"):
        jn.bind_with_context("127.0.0.1:0", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [object(), "cap", 5, jn.Context()])
def test_a_capability_must_be_a_net_bind(bad: object, nothing_opened: None) -> None:
    with pytest.raises(TypeError, match="NetBind"):
        jn.listen_with_capability("127.0.0.1:0", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NetBind"):
        jn.bind_with_capability("127.0.0.1:0", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [object(), "ctx", 5])
def test_the_ctx_of_the_sovereign_profile_must_be_a_context_or_none(bad: object, nothing_opened: None) -> None:
    cap = jn.NetBind("c", ports=(0,))
    with pytest.raises(TypeError, match="Context"):
        jn.listen_with_capability("127.0.0.1:0", cap, ctx=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Context"):
        jn.bind_with_capability("127.0.0.1:0", cap, ctx=bad)  # type: ignore[arg-type]


# --- Sizes and counts of receives and reads: the same rule for arguments


def _sized_calls(sock: jn.Socket, stream: jn.Stream, value: object) -> dict[str, Any]:
    ctx = jn.Context.with_timeout(5)  # a missing check would wait here, and time out
    return {
        "Socket.receive": lambda: sock.receive(value, ctx),  # type: ignore[arg-type]
        "Socket.receive_many count": lambda: sock.receive_many(value, ctx=ctx),  # type: ignore[arg-type]
        "Socket.receive_many size": lambda: sock.receive_many(1, value, ctx=ctx),  # type: ignore[arg-type]
        "Socket.receive_segments": lambda: sock.receive_segments(value, ctx),  # type: ignore[arg-type]
        "Socket.receive_message": lambda: sock.receive_message(value, ctx),  # type: ignore[arg-type]
        "Stream.read": lambda: stream.read(value, ctx),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize(
    ("value", "error"),
    [(True, BadOptionType), (False, BadOptionType), (1.5, BadOptionType), ("10", BadOptionType), (b"1", BadOptionType),
     (None, BadOptionType), (-1, ValueError), (2**31, ValueError), (2**64, ValueError)],
)  # fmt: skip
def test_sizes_and_counts_are_ints_in_range_before_any_wait(value: object, error: type[Exception]) -> None:
    # receive(True) once meant a 1-byte receive; 2**62 asked for the memory of a buffer that size.
    with jn.bind("127.0.0.1:0") as sock, jn.listen("127.0.0.1:0") as server:
        client = socket.create_connection((server.address.host, server.address.port))  # type: ignore[union-attr]
        with client, server.accept() as stream:
            for name, call in _sized_calls(sock, stream, value).items():
                with pytest.raises(error) as caught:
                    call()
                assert isinstance(caught.value, (TypeError, ValueError)), name
                assert "must be an int in" in str(caught.value), (name, caught.value)


def test_data_and_buffers_of_the_wrong_kind_are_type_errors_that_say_so() -> None:
    with jn.bind("127.0.0.1:0") as sock, jn.bind("127.0.0.1:0") as peer:
        for call in (
            lambda: sock.send(peer.address, "text"),  # type: ignore[arg-type]
            lambda: sock.send_many([(peer.address, "text")]),  # type: ignore[list-item]
            lambda: sock.send_segments(peer.address, "text", 1),  # type: ignore[arg-type]
            lambda: sock.send(peer.address, None),  # type: ignore[arg-type]
        ):
            with pytest.raises(TypeError, match="data must be a bytes-like object, not"):
                call()
        for call in (lambda: peer.receive_into(b"read-only"), lambda: peer.receive_into("text")):  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="buffer must be a writable bytes-like object"):
                call()
