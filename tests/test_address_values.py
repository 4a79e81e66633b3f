"""Address values (DESIGN §4): they pickle and copy, and print back to themselves.

``parse_address(str(a)) == a`` for every address `parse_address` can return, checked
with hypothesis over every form: IPv4 (wildcard, literals), IPv6 (any address, the
IPv4-mapped spelling, numeric zones up to 2**32-1), unix paths of any characters that
fit (non-ASCII, undecodable bytes, control characters), abstract names, and fd://N.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import janus_net as jn
from janus_net import platform
from janus_net._shim import ffi
from janus_net._values.fd import FdAddress

LIMIT = platform.SUN_PATH_SIZE - 1
ports = st.integers(0, 65535)


def _fits(name: str) -> bool:
    try:
        encoded = os.fsencode(name)
    except UnicodeError:
        return False
    return 0 < len(encoded) <= LIMIT and b"\0" not in encoded


path_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=40)
undecodable = st.binary(min_size=1, max_size=30).filter(lambda b: b"\0" not in b).map(os.fsdecode)

texts = st.one_of(
    st.builds(lambda ip, port: f"{ip}:{port}", st.ip_addresses(v=4), ports),
    ports.map(lambda port: f":{port}"),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6), ports),
    st.builds(lambda ip, port: f"[::ffff:{ip}]:{port}", st.ip_addresses(v=4), ports),
    st.builds(lambda ip, zone, port: f"[{ip}%{zone}]:{port}", st.ip_addresses(v=6), st.integers(1, 2**32 - 1), ports),
    st.one_of(path_text, undecodable).map(lambda p: "/" + p).filter(_fits),
    st.one_of(path_text, undecodable).filter(lambda p: _fits(p) and not p.startswith("@")).map(lambda p: "unix:" + p),
    st.one_of(path_text, undecodable).filter(_fits).map(lambda p: "unix:@" + p),
    st.integers(0, 2**31 - 1).map(lambda fd: f"fd://{fd}"),
)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_every_parsed_address_prints_back_to_itself(text: str) -> None:
    addr = jn.parse_address(text)
    again = jn.parse_address(str(addr))
    assert again == addr and type(again) is type(addr) and hash(again) == hash(addr)
    assert str(again) == str(addr)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_every_address_pickles_and_copies_to_an_equal_exact_value(text: str) -> None:
    addr = jn.parse_address(text)
    for clone in (pickle.loads(pickle.dumps(addr, protocol)) for protocol in range(pickle.HIGHEST_PROTOCOL + 1)):
        assert clone == addr and type(clone) is type(addr) and str(clone) == str(addr)
    assert copy.copy(addr) == addr and copy.deepcopy(addr) == addr


def test_pickling_keeps_every_field() -> None:
    six = jn.Ip6Address("fe80::1", 443, flowinfo=7, scope_id=1)
    back = pickle.loads(pickle.dumps(six))
    assert (back.flowinfo, back.scope_id, back.port, back.ip) == (7, 1, 443, ipaddress.IPv6Address("fe80::1"))
    unnamed = jn.UnixAddress("")  # what the kernel reports for an unbound peer
    assert pickle.loads(pickle.dumps(unnamed)) == unnamed and pickle.loads(pickle.dumps(unnamed)).unnamed
    assert pickle.loads(pickle.dumps(FdAddress(3))) == FdAddress(3)


def test_a_pickled_address_does_not_carry_its_caches() -> None:
    addr = jn.parse_address("127.0.0.1:9")
    addr.sockaddr  # noqa: B018 - fills the cache
    state = pickle.dumps(addr)
    assert b"_encoded" not in state and len(state) < 200
    back = pickle.loads(state)
    assert _encoding(back) == _encoding(addr)


def _encoding(addr: jn.Ip4Address) -> bytes:
    encoded = addr.sockaddr
    return ffi.buffer(encoded.pointer, encoded.length)[:]


@pytest.mark.parametrize("text", ["127.0.0.1:0", "[::1]:0", "unix:@janus-tables-pickle"])
def test_bound_addresses_pickle_too(text: str) -> None:
    if text.startswith("unix:@"):  # this process's own name: abstract names are shared by the namespace
        text += f"-{os.getpid()}"
    with jn.bind(text) as sock:
        assert pickle.loads(pickle.dumps(sock.address)) == sock.address
