"""RFC 6724 destination order (janus_net._values.address_order) and the sources it is fed (source_address).

The ordering is checked with the RFC's own examples (section 10.2: every one that needs
only rules 1, 2, 5, 6, 8 and 9), the default policy table row by row, the scopes of
§3.1-3.2, and stability (rule 10). The source learning runs against the real kernel.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import subprocess
import sys

import pytest

from janus_net import Context, SocketError
from janus_net._profiles.source_address import learn
from janus_net._values.address_order import common_prefix_length, policy, scope, sort_destinations
from janus_net._values.ip import Ip4Address, Ip6Address


def _addr(text: str, port: int = 443) -> Ip4Address | Ip6Address:
    return Ip6Address(text, port) if ":" in text else Ip4Address(text, port)


def _sorted(destinations: list[str], sources: list[str | None]) -> list[str]:
    values = [_addr(d) for d in destinations]
    srcs = [None if s is None else _addr(s, 0) for s in sources]
    return [v.host for v in sort_destinations(values, srcs)]


# RFC 6724 §10.2. Each case: (destination, its source) pairs in the expected order, and
# the rule the RFC names. Rules 3 (deprecated) and 4 (home address) need kernel state a
# UDP connect does not tell, so their two examples are not here.
RFC_EXAMPLES = [
    ([("2001:db8:1::1", "2001:db8:1::2"), ("198.51.100.121", "169.254.13.78")], "prefer matching scope"),
    ([("198.51.100.121", "198.51.100.117"), ("2001:db8:1::1", "fe80::1")], "prefer matching scope"),
    ([("2001:db8:1::1", "2001:db8:1::2"), ("10.1.2.3", "10.1.2.4")], "prefer higher precedence"),
    ([("fe80::1", "fe80::2"), ("2001:db8:1::1", "2001:db8:1::2")], "prefer smaller scope"),
    ([("2001:db8:1::1", "2001:db8:1::2"), ("2001:db8:3ffe::1", "2001:db8:3f44::2")], "longest matching prefix"),
    ([("2002:c633:6401::1", "2002:c633:6401::2"), ("2001:db8:1::1", "2002:c633:6401::2")], "prefer matching label"),
    ([("2001:db8:1::1", "2001:db8:1::2"), ("2002:c633:6401::1", "2002:c633:6401::2")], "prefer higher precedence"),
]


@pytest.mark.parametrize(("expected", "rule"), RFC_EXAMPLES, ids=[f"{i}-{r}" for i, (_, r) in enumerate(RFC_EXAMPLES)])
def test_rfc_6724_section_10_2_examples_in_every_starting_order(expected: list[tuple[str, str]], rule: str) -> None:
    want = [d for d, _ in expected]
    for start in itertools.permutations(expected):
        assert _sorted([d for d, _ in start], [s for _, s in start]) == want, (rule, start)


def test_rule_1_unreachable_destinations_go_last_in_their_order() -> None:
    got = _sorted(["::1", "127.0.0.1", "2001:db8::1", "192.0.2.1"], [None, "127.0.0.1", None, "192.0.2.9"])
    assert got == ["127.0.0.1", "192.0.2.1", "::1", "2001:db8::1"]
    # Neither usable: rule 1 cannot decide, rules 6 and 8 still do (as glibc): ::1 (precedence 50)
    # before 2001:db8::1 (40), 2001:db8::1 before 192.0.2.1 (IPv4, 35); equal ones keep their order.
    assert _sorted(["2001:db8::1", "::1"], [None, None]) == ["::1", "2001:db8::1"]
    assert _sorted(["192.0.2.1", "2001:db8::1"], [None, None]) == ["2001:db8::1", "192.0.2.1"]
    assert _sorted(["192.0.2.2", "192.0.2.1"], [None, None]) == ["192.0.2.2", "192.0.2.1"]


def test_loopback_ip6_before_loopback_ip4_as_glibc_orders_localhost() -> None:
    # ::1 has precedence 50, IPv4 (mapped) 35: both usable, so ::1 first whatever the answer's order.
    assert _sorted(["127.0.0.1", "::1"], ["127.0.0.1", "::1"]) == ["::1", "127.0.0.1"]


def test_rule_9_is_not_applied_to_ip4_round_robin_stays() -> None:
    # golang/go#13283: a 10/8 source must not reorder a round-robin answer of global IPv4 addresses.
    dests = ["54.83.193.112", "184.72.238.214", "23.23.172.185", "75.101.148.21", "23.23.134.56", "23.21.50.150"]
    assert _sorted(dests, ["10.2.3.4"] * len(dests)) == dests


def test_rule_10_keeps_equal_destinations_in_answer_order() -> None:
    dests = [f"2001:db8:1::{i}" for i in range(1, 9)]
    assert _sorted(dests, ["2001:db8:1::100"] * 8) == dests
    assert _sorted(dests[::-1], ["2001:db8:1::100"] * 8) == dests[::-1]


def test_the_same_objects_come_back() -> None:
    values = [_addr("127.0.0.1", 80), _addr("::1", 80)]
    out = sort_destinations(values, [values[0], values[1]])
    assert out[0] is values[1] and out[1] is values[0]
    assert sort_destinations([], []) == []


def test_mismatched_lengths_and_non_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="2 destinations but 1 sources"):
        sort_destinations([_addr("::1"), _addr("::2")], [None])
    with pytest.raises(TypeError):
        sort_destinations(["::1"], [None])  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("text", "precedence", "label"),
    [
        ("::1", 50, 0),
        ("2001:db8::1", 40, 1),
        ("2601:645:8002:a500:986f:1db8:c836:bd65", 40, 1),
        ("127.0.0.1", 35, 4),
        ("::ffff:192.0.2.1", 35, 4),
        ("2002::ab12", 30, 2),
        ("2001::1", 5, 5),
        ("fd00::1", 3, 13),
        ("fc00::1", 3, 13),
        ("::192.0.2.1", 1, 3),
        ("fec0::1", 1, 11),
        ("3ffe::1", 1, 12),
        ("fe80::1", 40, 1),
    ],
)
def test_default_policy_table(text: str, precedence: int, label: int) -> None:
    assert policy(ipaddress.ip_address(text)) == (precedence, label)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1", 0x2),
        ("127.255.0.9", 0x2),
        ("169.254.1.2", 0x2),
        ("::1", 0x2),
        ("fe80::1", 0x2),
        ("fe80::1%3", 0x2),
        ("fec0::1", 0x5),
        ("8.8.8.8", 0xE),
        ("10.0.0.1", 0xE),  # RFC 6724 §3.2: private IPv4 is global scope
        ("::ffff:127.0.0.1", 0x2),
        ("2001:db8::1", 0xE),
        ("ff02::1", 0x2),
        ("ff05::1", 0x5),
        ("ff04::1", 0x4),
        ("ff0e::1", 0xE),
        ("224.0.0.1", 0xE),
    ],
)
def test_scopes(text: str, want: int) -> None:
    assert scope(ipaddress.ip_address(text)) == want


def test_common_prefix_length_stops_at_64_bits() -> None:
    ip6 = ipaddress.IPv6Address
    assert common_prefix_length(ip6("fe80::1"), ip6("fe80::2")) == 64
    assert common_prefix_length(ip6("fe81::1"), ip6("fe80::2")) == 15
    assert common_prefix_length(ip6("2001:db8:3f44::2"), ip6("2001:db8:3ffe::1")) == 40
    assert common_prefix_length(ip6("::"), ip6("8000::")) == 0


# --- the sources, learned from the kernel


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_learn_asks_the_kernel_and_closes_every_probe() -> None:
    before = _fd_count()
    dests = [_addr("127.0.0.1", 80), _addr("::1", 0), _addr("127.0.0.2", 9), _addr("fe80::1", 80)]
    sources = learn(dests)
    assert _fd_count() == before
    assert isinstance(sources[0], Ip4Address) and sources[0].host == "127.0.0.1"
    assert isinstance(sources[1], Ip6Address) and sources[1].host == "::1"
    assert isinstance(sources[2], Ip4Address) and sources[2].host == "127.0.0.1"  # lo answers for 127/8
    assert sources[3] is None  # link-local without a zone: the kernel will not choose a route


def test_learn_in_a_namespace_with_only_loopback_finds_no_route_elsewhere() -> None:
    script = """
import os, sys
sys.path.insert(0, os.getcwd())
from janus_net._profiles.source_address import learn
from janus_net._values.ip import Ip4Address, Ip6Address
before = len(os.listdir('/proc/self/fd'))
got = learn([Ip4Address('192.0.2.1', 80), Ip6Address('2001:db8::1', 80), Ip4Address('127.0.0.1', 80)])
assert len(os.listdir('/proc/self/fd')) == before
print([None if g is None else g.host for g in got])
"""
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", f'ip link set lo up && exec {sys.executable} -c "$0"', script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[None, None, '127.0.0.1']"


def test_learn_is_cancelled_by_its_context() -> None:
    ctx = Context()
    ctx.cancel()
    before = _fd_count()
    with pytest.raises(SocketError.Timeout):
        learn([_addr("127.0.0.1", 80)], ctx=ctx)
    assert _fd_count() == before


def test_one_probe_socket_for_every_destination_gives_each_its_own_source() -> None:
    # learn() connects one socket to each destination in turn (an IPv6 socket for both
    # families): a UDP connect binds the source it chose, so without the AF_UNSPEC
    # connect between two destinations the second would report the first one's source.
    # Here every destination has a different source (a subnet each), and
    # the stdlib's fresh socket per destination is the oracle, in every order (the subnets
    # sit on lo: this kernel may have no dummy links).
    script = """
import itertools, os, socket, sys
sys.path.insert(0, os.getcwd())
from janus_net._profiles.source_address import learn
from janus_net._values.ip import Ip4Address, Ip6Address
def oracle(d):
    s = socket.socket(d.family, socket.SOCK_DGRAM)
    try:
        s.connect((d.host, d.port))
        return s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
dests = [Ip4Address('10.1.0.5', 80), Ip4Address('10.2.0.5', 80), Ip6Address('fd01::5', 80),
         Ip6Address('fd02::5', 80), Ip4Address('192.0.2.9', 80), Ip6Address('2001:db8::9', 80)]
before = len(os.listdir('/proc/self/fd'))
checked = 0
for n in (1, 2, 3, 6):
    for order in itertools.permutations(dests, n):
        got = [None if g is None else g.host for g in learn(list(order))]
        assert got == [oracle(d) for d in order], (order, got)
        checked += 1
assert len(os.listdir('/proc/self/fd')) == before
print(checked, sorted({g for d in dests for g in [oracle(d)] if g}))
"""
    setup = (
        "ip link set lo up && ip addr add 10.1.0.1/24 dev lo && ip addr add 10.2.0.1/24 dev lo"
        " && ip -6 addr add fd01::1/64 dev lo && ip -6 addr add fd02::1/64 dev lo"
    )
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", f'{setup} && exec {sys.executable} -c "$0"', script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    count, sources = out.stdout.split(" ", 1)
    assert int(count) == 6 + 30 + 120 + 720
    assert sources.strip() == "['10.1.0.1', '10.2.0.1', 'fd01::1', 'fd02::1']"
