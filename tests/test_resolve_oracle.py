"""glibc's getaddrinfo is the oracle: jn.resolve must ask the same names in the same order and find the same set.

Each case runs in a child in ``unshare --net --mount`` (tests/glibc_oracle.py): resolv.conf, hosts and
nsswitch.conf bind-mounted over /etc, the test DNS server on 127.0.0.1:53, glibc asked first, janus_net
second with its default configuration (so /etc/resolv.conf and /etc/hosts are read from their default
paths too). Compared: the address set, the error kind, the names queried in order, the canonical name, the
transports and whether EDNS0 was offered. The machine's own /etc is never touched.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from glibc_oracle import Case, Outcome, Result, run_case, unshare_problem

_PROBLEM = unshare_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=f"no namespaces here: {_PROBLEM}")

#: glibc's error kinds and the SocketError member that means the same.
SAME_ERROR = {
    None: None,
    "EAI_NONAME": "UnknownHostName",
    "EAI_NODATA": "UnknownHostName",
    "EAI_AGAIN": "NameServerFailure",
    "EAI_FAIL": "NameServerFailure",
}

BOTH = {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]}
SEARCH_AB = "nameserver 127.0.0.1\nsearch a.example b.example\n"
TWO = "nameserver 127.0.0.2\nnameserver 127.0.0.3\n"

CASES: dict[str, Case] = {
    "search first, found in the second domain": Case("www", SEARCH_AB, {"www.b.example": BOTH}),
    "the hosts file is asked the name as given, not with the search domains": Case(
        "www", SEARCH_AB, {"www.b.example": BOTH}, hosts="192.0.2.9 www.a.example\n"
    ),
    "a short name in the hosts file": Case("www", SEARCH_AB, {"www.a.example": BOTH}, hosts="192.0.2.9 www\n"),
    "two name servers, the first answers": Case(
        "www.x", "nameserver 127.0.0.2\nnameserver 127.0.0.3\n", {"www.x": BOTH}
    ),
    "the first server SERVFAILs, the second answers": Case(
        "www.x", TWO, {"www.x": BOTH}, server_rules={"127.0.0.2": {"www.x": {"rcode": "SERVFAIL"}}}
    ),
    "the first server REFUSEs, the second answers": Case(
        "www.x", TWO, {"www.x": BOTH}, server_rules={"127.0.0.2": {"www.x": {"rcode": "REFUSED"}}}
    ),
    "the first server is silent, the second answers": Case(
        "www.x",
        TWO + "options timeout:1 attempts:1\n",
        {"www.x": BOTH},
        family=socket.AF_INET,
        server_rules={"127.0.0.2": {"www.x": {"blackhole": True}}},
    ),
    "AAAA never answered, A answered": Case(
        "www.x",
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        {"www.x": BOTH},
        rules={"www.x AAAA": {"blackhole": True}},
    ),
    "AAAA SERVFAIL, A answered": Case(
        "www.x", "nameserver 127.0.0.1\n", {"www.x": BOTH}, rules={"www.x AAAA": {"rcode": "SERVFAIL"}}
    ),
    "AAAA NXDOMAIN, A answered": Case(
        "www.x", "nameserver 127.0.0.1\n", {"www.x": BOTH}, rules={"www.x AAAA": {"rcode": "NXDOMAIN"}}
    ),
    "the first server says NXDOMAIN: final": Case(
        "www.x", TWO, {"www.x": BOTH}, server_rules={"127.0.0.2": {"www.x": {"rcode": "NXDOMAIN"}}}
    ),
    "search first, found nowhere": Case("www", SEARCH_AB),
    "single label found as given last": Case("www", SEARCH_AB, {"www": BOTH}),
    "dotted name as given first": Case("www.x", SEARCH_AB, {"www.x": BOTH}),
    "dotted name falls back to the search list": Case("www.x", SEARCH_AB, {"www.x.b.example": BOTH}),
    "dotted name found nowhere": Case("www.x", SEARCH_AB),
    "ndots 2: search first for one dot": Case("www.x", SEARCH_AB + "options ndots:2\n", {"www.x": BOTH}),
    "ndots 0: as given first even without dots": Case("www", SEARCH_AB + "options ndots:0\n", {"www.b.example": BOTH}),
    "ndots 15 clamped": Case("a.b.c", SEARCH_AB + "options ndots:40\n", {"a.b.c": BOTH}),
    "trailing dot: as given only": Case("www.x.", SEARCH_AB, {"www.x.a.example": BOTH}),
    "trailing dot found": Case("www.x.", SEARCH_AB, {"www.x": BOTH}),
    "LOCALDOMAIN replaces the search list": Case(
        "www", SEARCH_AB, {"www.c.example": BOTH}, env={"LOCALDOMAIN": "d.example c.example"}
    ),
    "RES_OPTIONS ndots": Case("www.x", SEARCH_AB, {"www.x": BOTH}, env={"RES_OPTIONS": "ndots:2"}),
    "domain after search wins": Case(
        "www", "nameserver 127.0.0.1\nsearch a.example\ndomain d.example\n", {"www.d.example": BOTH}
    ),
    "search after domain wins": Case(
        "www", "nameserver 127.0.0.1\ndomain d.example\nsearch a.example\n", {"www.d.example": BOTH}
    ),
    "no nameserver line: loopback": Case("www", "search a.example\n", {"www.a.example": BOTH}),
    "seven search domains": Case(
        "www", "nameserver 127.0.0.1\nsearch " + " ".join(f"d{i}.example" for i in range(7)) + "\n", {"www": BOTH}
    ),
    "the root in the search list": Case("www", "nameserver 127.0.0.1\nsearch a.example .\n"),
    "search domains with trailing dots": Case("www", "nameserver 127.0.0.1\nsearch a.example. b.example\n"),
    "a search domain twice": Case("www", "nameserver 127.0.0.1\nsearch a.example a.example\n"),
    "search line with tabs and comments": Case(
        "www", "nameserver 127.0.0.1 # the local one\nsearch\ta.example\tb.example # two\n", {"www.b.example": BOTH}
    ),
    "options on two lines add up": Case(
        "www.x", "nameserver 127.0.0.1\nsearch a.example\noptions ndots:3\noptions edns0\n", {"www.x": BOTH}
    ),
    "uppercase name and search": Case("WWW", "nameserver 127.0.0.1\nsearch A.Example\n", {"www.a.example": BOTH}),
    "NODATA for the family does not stop the search": Case(
        "www",
        SEARCH_AB,
        {"www.a.example": {"AAAA": ["2001:db8::2"]}, "www.b.example": {"A": ["192.0.2.2"]}},
        family=socket.AF_INET,
    ),
    "AAAA only": Case("www.x", SEARCH_AB, {"www.x": BOTH}, family=socket.AF_INET6),
    "no address of the family": Case("www.x", SEARCH_AB, {"www.x": {"A": ["192.0.2.3"]}}, family=socket.AF_INET6),
    "SERVFAIL on a candidate": Case(
        "www", SEARCH_AB, {"www.b.example": BOTH}, rules={"www.a.example": {"rcode": "SERVFAIL"}}
    ),
    "SERVFAIL everywhere": Case("www.x", "nameserver 127.0.0.1\n", rules={"www.x": {"rcode": "SERVFAIL"}}),
    "CNAME chain": Case(
        "alias.example",
        "nameserver 127.0.0.1\n",
        {
            "alias.example": {"CNAME": "mid.example"},
            "mid.example": {"CNAME": "real.example"},
            "real.example": BOTH,
        },
    ),
    "hosts file: alias, any case": Case(
        "ALIAS.example",
        SEARCH_AB,
        {"alias.example": {"A": ["192.0.2.99"]}},
        hosts="192.0.2.5 Files.Example alias.example\n2001:db8::5 files.example\n",
    ),
    "hosts file: both families of the canonical name": Case(
        "files.example", SEARCH_AB, hosts="192.0.2.5 Files.Example alias.example\n2001:db8::5 files.example\n"
    ),
    "hosts file has the name for the other family only": Case(
        "files.example",
        SEARCH_AB,
        {"files.example": BOTH},
        hosts="192.0.2.5 files.example\n",
        family=socket.AF_INET6,
    ),
    "hosts file has the name for one family, both asked": Case(
        "files.example", SEARCH_AB, {"files.example": BOTH}, hosts="192.0.2.5 files.example\n"
    ),
    "hosts file misses: DNS": Case("dns.example", SEARCH_AB, {"dns.example": BOTH}, hosts="192.0.2.5 other.example\n"),
    "truncated UDP, then TCP": Case(
        "tc.example", "nameserver 127.0.0.1\n", {"tc.example": BOTH}, rules={"tc.example": {"truncate": True}}
    ),
    "an answer only TCP carries": Case(
        "big.example",
        "nameserver 127.0.0.1\n",
        {"big.example": {"A": [f"10.3.{i // 200}.{i % 200 + 1}" for i in range(300)]}},
        family=socket.AF_INET,
    ),
    "edns0": Case("www.x", "nameserver 127.0.0.1\noptions edns0\n", {"www.x": BOTH}),
    "use-vc": Case("www.x", "nameserver 127.0.0.1\noptions use-vc\n", {"www.x": BOTH}),
    "IPv6 nameserver": Case("www.x", "nameserver ::1\n", {"www.x": BOTH}),
}


def _judge(result: Result) -> tuple[Outcome, Outcome]:
    assert result.janus is not None
    return result.glibc, result.janus


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_janus_net_asks_and_finds_what_glibc_does(case: Case) -> None:
    glibc, janus = _judge(run_case(case))
    assert janus.names == glibc.names, (janus.queries, glibc.queries)
    assert janus.error == SAME_ERROR[glibc.error], (janus.error, glibc.error)
    assert janus.addresses == glibc.addresses
    if glibc.error is None:
        assert (janus.canonical_name or "").lower() == (glibc.canonical_name or "").lower()
        assert janus.source == ("files" if not glibc.queries else "dns")
    # The servers asked, in the order first asked, for each type (A and AAAA may interleave; glibc asks a
    # duplicate search domain again and re-asks a large answer over TCP with a bigger buffer, janus_net does
    # neither; rounds and retries are compared by test_the_servers_asked_in_glibcs_order).
    for qtype in ("A", "AAAA"):
        asked_by_janus = list(dict.fromkeys(s for t, s in janus.servers if t == qtype))
        asked_by_glibc = list(dict.fromkeys(s for t, s in glibc.servers if t == qtype))
        assert asked_by_janus == asked_by_glibc, qtype
    assert {q[2] for q in janus.queries} == {q[2] for q in glibc.queries}  # udp / tcp
    assert {q[3] is None for q in janus.queries} == {q[3] is None for q in glibc.queries}  # EDNS0 offered or not


def test_the_documented_differences_from_glibc() -> None:
    # §17 on purpose: "127.1" is a name (glibc takes inet_aton's forms as literals), and a localhost entry
    # of the hosts file does not win over loopback (glibc reads it).
    numeric = run_case(Case("127.1", "nameserver 127.0.0.1\n", {"127.1": BOTH}))
    assert numeric.glibc.addresses == {"127.0.0.1"} and numeric.glibc.queries == ()
    assert numeric.janus is not None and numeric.janus.addresses == {"192.0.2.1", "2001:db8::1"}
    assert numeric.janus.source == "dns"
    local = run_case(Case("localhost", hosts="192.0.2.50 localhost\n", family=socket.AF_INET))
    assert local.glibc.addresses == {"192.0.2.50"}
    assert local.janus is not None and local.janus.addresses == {"127.0.0.1"} and local.janus.source == "localhost"


#: test_resolve.py's search-order table, checked against glibc itself (janus_net not involved): the contract
#: tests' expectations are glibc's.
SEARCH_TABLE = [
    ("", "www", None, ["www.a.example", "www.b.example", "www"]),
    ("ndots:2", "www.x", None, ["www.x.a.example", "www.x.b.example", "www.x"]),
    ("", "www.x", None, ["www.x", "www.x.a.example", "www.x.b.example"]),
    ("", "www.x", "www.x.b.example", ["www.x", "www.x.a.example", "www.x.b.example"]),
    ("ndots:0", "www", None, ["www", "www.a.example", "www.b.example"]),
    ("ndots:2", "www.x.y", "www.x.y.a.example", ["www.x.y", "www.x.y.a.example"]),
    ("ndots:5", "www.x.", "www.x.a.example", ["www.x"]),
]


@pytest.mark.parametrize(("options", "name", "exists", "asked"), SEARCH_TABLE)
def test_glibc_agrees_with_the_contract_tests_table(
    options: str, name: str, exists: str | None, asked: list[str]
) -> None:
    conf = SEARCH_AB + (f"options {options}\n" if options else "")
    result = run_case(Case(name, conf, {exists: BOTH} if exists else {}, janus=False))
    assert result.janus is None
    assert result.glibc.names == asked
    assert (result.glibc.error is None) == (exists is not None and exists in asked)


def test_the_oracle_leaves_the_machines_files_alone() -> None:
    before = {name: Path("/etc", name).read_bytes() for name in ("resolv.conf", "hosts", "nsswitch.conf")}
    run_case(Case("www", SEARCH_AB, {"www.a.example": BOTH}, hosts="192.0.2.1 evil\n", janus=False))
    after = {name: Path("/etc", name).read_bytes() for name in ("resolv.conf", "hosts", "nsswitch.conf")}
    assert after == before


LOOPBACKS = {"A": ["127.0.0.1"], "AAAA": ["::1"]}
MIXED = {"A": ["192.0.2.1", "127.0.0.1"], "AAAA": ["2001:db8::1", "::1"]}


@pytest.mark.parametrize(
    "zone",
    [
        pytest.param(LOOPBACKS, id="loopbacks"),
        # Neither unreachable one has a source: rule 6 (precedence, ::/0 40 over ::ffff:0:0/96 35)
        # still puts 2001:db8::1 before 192.0.2.1, as glibc does.
        pytest.param(MIXED, id="reachable and unreachable"),
    ],
)
def test_the_order_is_glibcs_with_the_default_policy(zone: dict[str, list[str]]) -> None:
    # In the namespace only lo is up: ::1 and 127.0.0.1 are reachable, 2001:db8::1 and 192.0.2.1 are not.
    default_policy = "# the RFC 6724 default table: glibc's built-in one\n"
    result = run_case(Case("o.example", "nameserver 127.0.0.1\n", {"o.example": zone}, gai_conf=default_policy))
    assert result.janus is not None
    assert result.janus.ordered == result.glibc.ordered
    assert result.janus.ordered[0] == "::1"


def test_gai_conf_is_not_read() -> None:
    if not Path("/etc/gai.conf").exists():
        pytest.skip("no /etc/gai.conf to mount over")
    prefer_v4 = "precedence ::ffff:0:0/96 100\n"
    result = run_case(Case("o.example", "nameserver 127.0.0.1\n", {"o.example": LOOPBACKS}, gai_conf=prefer_v4))
    assert result.glibc.ordered == ("127.0.0.1", "::1")  # glibc obeys the file
    assert result.janus is not None and result.janus.ordered == ("::1", "127.0.0.1")  # janus_net does not read it


FOUR = "".join(f"nameserver 127.0.0.{i}\n" for i in range(1, 5))


@pytest.mark.parametrize(
    ("options", "rcode"),
    [("", "SERVFAIL"), ("", "REFUSED"), ("options attempts:2\n", "SERVFAIL"), ("options attempts:3\n", "REFUSED")],
)
def test_the_servers_asked_in_glibcs_order(options: str, rcode: str) -> None:
    # Four nameserver lines (the fourth ignored), every server failing at once: the servers asked, in order.
    case = Case("f.example", FOUR + options, rules={"f.example": {"rcode": rcode}}, family=socket.AF_INET)
    result = run_case(case)
    assert result.janus is not None
    assert result.glibc.error == "EAI_AGAIN" and result.janus.error == "NameServerFailure"
    assert "127.0.0.4" not in {server for _, server in result.glibc.servers}
    assert result.janus.servers == result.glibc.servers
