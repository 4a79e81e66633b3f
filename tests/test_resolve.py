"""DESIGN §17, resolve's contract: sources in order, search order, DNS behaviour, errors, audit, cancellation.

Every DNS answer comes from tests/dns_server.py (dnspython's encoder, not janus_net's); resolv.conf and the
hosts file are tmp files named by JANUS_NET_RESOLV_CONF / JANUS_NET_HOSTS (tests/names_fixtures.py). What
the server logged is the witness of what janus_net asked, in which order, over which transport. Cancellation
is checked structurally (no thread appears, every socket closed, the wait really was in poll), with
generous time bounds only (the 5 ms promise is measured by `make bench`).
"""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import signal
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest
from dns_server import DECOY_A, DECOY_AAAA, DnsServer
from names_fixtures import (
    ResolverFiles,
    config_for,
    dns_server,
    resolv_conf_text,
    resolver_files,
    socket_fds,
    sockets_left,
)
from peers import run_child, sigint_raises, when_blocked
from tracing import MARK, calls_to, syscalls_after_mark

import janus_net as jn

__all__ = ["dns_server", "resolver_files"]  # fixtures, used by name

TESTS = Path(__file__).resolve().parent


def hosts_of(resolution: object) -> set[str]:
    return {address.host for address in resolution.addresses}  # type: ignore[attr-defined]


def tasks() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def names_asked(server: DnsServer) -> list[str | None]:
    """The names queried, in order, each once."""
    seen: list[str | None] = []
    for query in server.queries():
        if query.name not in seen:
            seen.append(query.name)
    return seen


# --- the value and the basic call ----------------------------------------------------------------


def test_dns_answer_carries_port_family_and_source(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("www.example.com", a=["192.0.2.1", "192.0.2.2"], aaaa=["2001:db8::1"])
    config = config_for(dns_server)
    both = jn.resolve("www.example.com", 8443, config=config)
    assert hosts_of(both) == {"192.0.2.1", "192.0.2.2", "2001:db8::1"}
    assert all(isinstance(a, (jn.Ip4Address, jn.Ip6Address)) and a.port == 8443 for a in both.addresses)
    assert both.source == "dns" and both.canonical_name.rstrip(".") == "www.example.com"
    v4 = jn.resolve("www.example.com", family=socket.AF_INET, config=config)
    assert hosts_of(v4) == {"192.0.2.1", "192.0.2.2"} and all(isinstance(a, jn.Ip4Address) for a in v4.addresses)
    assert all(a.port == 0 for a in v4.addresses)
    dns_server.clear_log()
    v6 = jn.resolve("www.example.com", family=socket.AF_INET6, config=config)
    assert [a.host for a in v6.addresses] == ["2001:db8::1"] and isinstance(v6.addresses[0], jn.Ip6Address)
    assert [q.qtype for q in dns_server.queries()] == ["AAAA"]  # AF_INET6 asks AAAA only


def test_resolution_is_a_value(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("v.example", a=["192.0.2.3"], aaaa=["2001:db8::3"])
    one = jn.resolve("v.example", 80, config=config_for(dns_server))
    two = jn.resolve("v.example", 80, config=config_for(dns_server))
    assert isinstance(one, jn.Resolution)
    assert isinstance(one.addresses, tuple) and isinstance(one.canonical_name, str)
    assert one == two and hash(one) == hash(two)
    assert pickle.loads(pickle.dumps(one)) == one and copy.deepcopy(one) == one and copy.copy(one) == one
    assert "Resolution" in repr(one)
    with pytest.raises(AttributeError):
        one.source = "files"  # type: ignore[misc]


def test_rfc6724_puts_ipv6_loopback_before_ipv4_loopback(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    # Both reachable over lo; rule 6 (precedence: ::1 50, ::ffff:0:0/96 35) decides, whatever the answers' order.
    dns_server.add("loop.example", a=["127.0.0.1"], aaaa=["::1"])
    resolution = jn.resolve("loop.example", config=config_for(dns_server))
    assert [a.host for a in resolution.addresses] == ["::1", "127.0.0.1"]


# --- sources, in order: literal, localhost, hosts, DNS --------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "host"),
    [
        ("192.0.2.1", jn.Ip4Address, "192.0.2.1"),
        ("2001:db8::1", jn.Ip6Address, "2001:db8::1"),
        ("2001:DB8:0:0::1", jn.Ip6Address, "2001:db8::1"),
        ("::ffff:192.0.2.1", jn.Ip6Address, "::ffff:192.0.2.1"),
        ("fe80::1%1", jn.Ip6Address, "fe80::1%1"),
    ],
)
def test_a_literal_is_itself_without_dns(
    resolver_files: ResolverFiles, dns_server: DnsServer, text: str, kind: type, host: str
) -> None:
    # A hosts entry naming the literal and a zone record for it: neither may be consulted.
    resolver_files.write(hosts=f"192.0.2.200 {text}\n" if "%" not in text else "")
    dns_server.add(text, a=["192.0.2.201"])
    resolution = jn.resolve(text, 99, config=config_for(dns_server))
    assert resolution.source == "literal"
    assert len(resolution.addresses) == 1 and isinstance(resolution.addresses[0], kind)
    assert resolution.addresses[0].host == host and resolution.addresses[0].port == 99
    assert dns_server.queries() == []


@pytest.mark.parametrize("text", ["127.1", "010.0.0.1", "1.2.3", "0x7f000001", "4294967295"])
def test_non_strict_numeric_forms_are_names(resolver_files: ResolverFiles, dns_server: DnsServer, text: str) -> None:
    # §4: only the strict forms are literals; inet_aton's forms are asked of DNS like any name.
    dns_server.add(text, a=["192.0.2.77"])
    resolution = jn.resolve(text, config=config_for(dns_server))
    assert resolution.source == "dns" and hosts_of(resolution) == {"192.0.2.77"}
    assert text in names_asked(dns_server)


def test_a_zone_literal_with_an_interface_name(resolver_files: ResolverFiles) -> None:
    resolution = jn.resolve("fe80::1%lo", config=jn.ResolverConfig.load())
    assert resolution.source == "literal" and resolution.addresses[0].scope_id == socket.if_nametoindex("lo")


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST", "localhost.", "a.localhost", "x.y.LocalHost"])
def test_localhost_is_loopback_before_hosts_and_dns(
    resolver_files: ResolverFiles, dns_server: DnsServer, name: str
) -> None:
    # A localhost entry in the hosts file does not win (on purpose), nor does DNS.
    resolver_files.write(hosts=f"192.0.2.50 localhost {name.rstrip('.')}\n")
    dns_server.add(name, a=["192.0.2.51"])
    config = config_for(dns_server)
    resolution = jn.resolve(name, 7, config=config)
    assert resolution.source == "localhost" and hosts_of(resolution) == {"127.0.0.1", "::1"}
    assert {a.port for a in resolution.addresses} == {7}
    assert hosts_of(jn.resolve(name, family=socket.AF_INET, config=config)) == {"127.0.0.1"}
    assert hosts_of(jn.resolve(name, family=socket.AF_INET6, config=config)) == {"::1"}
    assert dns_server.queries() == []


def test_a_name_merely_starting_with_localhost_is_asked(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("localhost.example", a=["192.0.2.52"])
    resolution = jn.resolve("localhost.example", config=config_for(dns_server))
    assert resolution.source == "dns" and hosts_of(resolution) == {"192.0.2.52"}


def test_literals_and_localhost_make_no_socket_and_open_no_file(tmp_path: Path) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    hosts = tmp_path / "hosts"
    resolv_conf.write_text("nameserver 127.0.0.1\n")
    hosts.write_text("192.0.2.9 h\n")
    program = textwrap.dedent(f"""
        import os
        os.environ["JANUS_NET_RESOLV_CONF"] = {str(resolv_conf)!r}
        os.environ["JANUS_NET_HOSTS"] = {str(hosts)!r}
        import janus_net as jn
        os.write(1, {MARK!r})
        for host in ("192.0.2.1", "2001:db8::1", "localhost", "a.localhost"):
            jn.resolve(host, 80)
        os.write(1, b"done\\n")
    """)
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,socket,connect,openat,open,sendto,sendmmsg")
    assert out.endswith("done\n")
    assert calls_to(lines, "socket", "connect", "sendto", "sendmmsg") == []
    assert [line for line in lines if str(tmp_path) in line] == []


def test_hosts_file_case_aliases_canonical_and_wins_over_dns(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    resolver_files.write(
        hosts=textwrap.dedent("""\
            # a comment line 192.0.2.99 commented
            192.0.2.10   Canonical.Example   alias-one  ALIAS-TWO   # trailing comment 192.0.2.98 x
            2001:db8::10 canonical.example
            not-an-address broken.example
            192.0.2.300  broken.example
            192.0.2.12
            \t192.0.2.11\tTabbed.Example
        """)
    )
    dns_server.add("alias-one", a=["192.0.2.60"])
    dns_server.add("canonical.example", a=["192.0.2.61"])
    config = config_for(dns_server)
    for name in ("alias-one", "ALIAS-one", "alias-two", "canonical.example", "CANONICAL.EXAMPLE"):
        resolution = jn.resolve(name, 22, config=config)
        assert resolution.source == "files", name
        assert resolution.canonical_name.lower() == "canonical.example", name
        assert hosts_of(resolution) <= {"192.0.2.10", "2001:db8::10"} and "192.0.2.10" in hosts_of(resolution)
    both = jn.resolve("canonical.example", config=config)
    assert hosts_of(both) == {"192.0.2.10", "2001:db8::10"}
    assert hosts_of(jn.resolve("tabbed.example", config=config)) == {"192.0.2.11"}
    assert hosts_of(jn.resolve("canonical.example", family=socket.AF_INET, config=config)) == {"192.0.2.10"}
    assert dns_server.queries() == []
    for name in ("commented", "x"):  # words of comments are not names: asked of DNS, which knows nothing
        with pytest.raises(jn.SocketError.UnknownHostName):
            jn.resolve(name, config=config)
    assert set(names_asked(dns_server)) == {"commented", "x"}


def test_bad_hosts_lines_do_not_hide_the_good_ones_nor_answer(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    resolver_files.write(hosts="garbage line here\n192.0.2.300 broken.example\n192.0.2.13 good.example\n")
    dns_server.add("broken.example", a=["192.0.2.62"])
    config = config_for(dns_server)
    assert hosts_of(jn.resolve("good.example", config=config)) == {"192.0.2.13"}
    broken = jn.resolve("broken.example", config=config)
    assert broken.source == "dns" and hosts_of(broken) == {"192.0.2.62"}


def test_hosts_file_by_replace_and_by_argument(tmp_path: Path, dns_server: DnsServer) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    first.write_text("192.0.2.20 named.example\n")
    second.write_text("192.0.2.21 named.example\n")
    empty = tmp_path / "resolv.conf"
    empty.write_text("")
    config = jn.ResolverConfig.load(str(empty), str(first)).replace(nameservers=(dns_server.nameserver,))
    assert hosts_of(jn.resolve("named.example", config=config)) == {"192.0.2.20"}
    assert hosts_of(jn.resolve("named.example", config=config.replace(hosts=str(second)))) == {"192.0.2.21"}
    assert dns_server.queries() == []


# --- ResolverConfig -------------------------------------------------------------------------------


def test_load_reads_the_files_the_environment_names(resolver_files: ResolverFiles) -> None:
    resolver_files.write(
        "# comment\n; other comment\nnameserver 192.0.2.53\nnameserver ::1\nnameserver 192.0.2.54\n"
        "nameserver 192.0.2.55\nsearch a.example b.example\n"
        "options ndots:3 timeout:7 attempts:4 rotate edns0 use-vc single-request\n"
    )
    config = jn.ResolverConfig.load()
    assert [(a.host, a.port) for a in config.nameservers] == [("192.0.2.53", 53), ("::1", 53), ("192.0.2.54", 53)]
    assert isinstance(config.nameservers[0], jn.Ip4Address) and isinstance(config.nameservers[1], jn.Ip6Address)
    assert tuple(config.search) == ("a.example", "b.example")
    assert (config.ndots, config.timeout, config.attempts) == (3, 7, 4)
    assert config.rotate is True and config.edns0 is True and config.use_vc is True and config.single_request is True
    assert Path(config.hosts) == resolver_files.hosts


def test_load_defaults_of_a_file_with_only_a_nameserver(resolver_files: ResolverFiles) -> None:
    config = jn.ResolverConfig.load()
    assert [str(a) for a in config.nameservers] == ["127.0.0.1:53"]
    assert (config.ndots, config.timeout, config.attempts) == (1, 5, 2)
    assert not (config.rotate or config.edns0 or config.use_vc or config.single_request)
    assert tuple(config.search) == ()


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ("ndots:0", "ndots", 0),
        ("ndots:15", "ndots", 15),
        ("ndots:16", "ndots", 15),
        ("ndots:99", "ndots", 15),
        ("timeout:0", "timeout", 1),
        ("timeout:30", "timeout", 30),
        ("timeout:31", "timeout", 30),
        ("timeout:1000", "timeout", 30),
        ("attempts:0", "attempts", 1),
        ("attempts:5", "attempts", 5),
        ("attempts:6", "attempts", 5),
        ("attempts:100", "attempts", 5),
    ],
)
def test_options_are_clamped(resolver_files: ResolverFiles, options: str, field: str, value: int) -> None:
    resolver_files.write(resolv_conf_text(options=[options]))
    assert getattr(jn.ResolverConfig.load(), field) == value


@pytest.mark.parametrize(
    ("lines", "search"),
    [
        ("search a.example b.example\ndomain c.example\n", ("c.example",)),
        ("domain c.example\nsearch a.example b.example\n", ("a.example", "b.example")),
        ("search a.example\nsearch d.example e.example\n", ("d.example", "e.example")),
        ("domain c.example\n", ("c.example",)),
    ],
)
def test_search_and_domain_the_last_line_wins(resolver_files: ResolverFiles, lines: str, search: tuple[str]) -> None:
    resolver_files.write("nameserver 127.0.0.1\n" + lines)
    assert tuple(s.rstrip(".") for s in jn.ResolverConfig.load().search) == search


def test_localdomain_and_res_options_override_the_file(
    resolver_files: ResolverFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver_files.write(resolv_conf_text(search=["a.example"], options=["ndots:1", "attempts:2"]))
    monkeypatch.setenv("LOCALDOMAIN", "x.example y.example")
    monkeypatch.setenv("RES_OPTIONS", "ndots:4 attempts:3 rotate")
    config = jn.ResolverConfig.load()
    assert tuple(config.search) == ("x.example", "y.example")
    assert (config.ndots, config.attempts, config.rotate) == (4, 3, True)
    monkeypatch.setenv("RES_OPTIONS", "ndots:40")
    assert jn.ResolverConfig.load().ndots == 15  # clamped as from the file


def test_explicit_paths_win_over_the_environment(resolver_files: ResolverFiles, tmp_path: Path) -> None:
    other = tmp_path / "other.conf"
    other.write_text("nameserver 192.0.2.99\noptions ndots:2\n")
    hosts = tmp_path / "other.hosts"
    hosts.write_text("")
    config = jn.ResolverConfig.load(str(other), str(hosts))
    assert [a.host for a in config.nameservers] == ["192.0.2.99"] and config.ndots == 2
    assert Path(config.hosts) == hosts


def test_load_takes_path_like_paths(tmp_path: Path) -> None:
    # The stdlib's convention for a path argument (open, os.stat...): str or os.PathLike.
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.98\noptions ndots:3\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.97 pathlike.example\n")
    config = jn.ResolverConfig.load(conf, hosts)
    assert config.ndots == 3 and Path(config.hosts) == hosts
    assert hosts_of(jn.resolve("pathlike.example", config=config.replace(hosts=hosts))) == {"192.0.2.97"}


def test_an_explicitly_named_missing_file_is_file_not_found(tmp_path: Path) -> None:
    present = tmp_path / "resolv.conf"
    present.write_text("nameserver 127.0.0.1\n")
    with pytest.raises(jn.SocketError.FileNotFound):
        jn.ResolverConfig.load(str(tmp_path / "missing.conf"))
    with pytest.raises(jn.SocketError.FileNotFound):
        jn.ResolverConfig.load(str(present), str(tmp_path / "missing.hosts"))


def test_a_huge_resolv_conf_is_refused_typed(resolver_files: ResolverFiles) -> None:
    resolver_files.write(("# " + "x" * 1000 + "\n") * 8192 + "nameserver 192.0.2.1\n")  # 8 MiB
    with pytest.raises(jn.SocketError):
        jn.ResolverConfig.load()


def test_missing_default_files_give_loopback_and_the_defaults(tmp_path: Path) -> None:
    # /etc hidden by an empty tmpfs in a private mount namespace: /etc/resolv.conf and /etc/hosts do not exist.
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent("""
            import json, os
            for name in ("JANUS_NET_RESOLV_CONF", "JANUS_NET_HOSTS", "LOCALDOMAIN", "RES_OPTIONS"):
                os.environ.pop(name, None)
            import janus_net as jn
            assert not os.path.exists("/etc/resolv.conf") and not os.path.exists("/etc/hosts")
            config = jn.ResolverConfig.load()
            local = jn.resolve("localhost")
            print(json.dumps({
                "nameservers": [str(a) for a in config.nameservers],
                "values": [config.ndots, config.timeout, config.attempts], "search": list(config.search),
                "localhost": sorted(a.host for a in local.addresses),
            }))
        """)
    )
    import subprocess
    import sys

    script = f"mount -t tmpfs tmpfs /etc && exec {sys.executable} {probe}"
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0 and "unshare" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip("no mount namespace here")
    assert done.returncode == 0, done.stderr
    import json

    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer == {
        "nameservers": ["127.0.0.1:53"],
        "values": [1, 5, 2],
        "search": [],
        "localhost": ["127.0.0.1", "::1"],
    }


def test_replace_takes_nameservers_with_ports_and_checks_fields(resolver_files: ResolverFiles) -> None:
    config = jn.ResolverConfig.load()
    other = config.replace(nameservers=("127.0.0.1:5353", "[::1]:5354", "192.0.2.1"), ndots=3, search=("s.example",))
    assert [(type(a), a.host, a.port) for a in other.nameservers] == [
        (jn.Ip4Address, "127.0.0.1", 5353),
        (jn.Ip6Address, "::1", 5354),
        (jn.Ip4Address, "192.0.2.1", 53),
    ]
    assert other.ndots == 3 and tuple(other.search) == ("s.example",)
    assert config.ndots == 1 and [str(a) for a in config.nameservers] == ["127.0.0.1:53"]  # unchanged
    assert other.replace() == other
    with pytest.raises(AttributeError):
        config.ndots = 4  # type: ignore[misc]
    with pytest.raises(jn.SocketError.InvalidAddress):
        config.replace(nameservers=("dns.example:53",))
    with pytest.raises(jn.SocketError.InvalidPort):
        config.replace(nameservers=("127.0.0.1:65536",))
    with pytest.raises(TypeError):
        config.replace(no_such_field=1)
    for bad in ({"ndots": "2"}, {"rotate": "yes"}, {"attempts": True}, {"nameservers": "127.0.0.1:53"}):
        with pytest.raises((TypeError, ValueError, jn.SocketError)):
            config.replace(**bad)


# --- search order (glibc's; tests/test_resolve_oracle.py asks glibc itself) ------------------------


@pytest.mark.parametrize(
    ("options", "name", "exists", "asked"),
    [
        # fewer dots than ndots: the search domains first, the name as given last
        ("", "www", None, ["www.a.example", "www.b.example", "www"]),
        ("", "www", "www.b.example", ["www.a.example", "www.b.example"]),
        ("", "www", "www", ["www.a.example", "www.b.example", "www"]),
        (["ndots:2"], "www.x", None, ["www.x.a.example", "www.x.b.example", "www.x"]),
        (["ndots:3"], "www.x.y", "www.x.y.a.example", ["www.x.y.a.example"]),
        # at least ndots dots: as given first, then the search domains
        ("", "www.x", None, ["www.x", "www.x.a.example", "www.x.b.example"]),
        ("", "www.x", "www.x", ["www.x"]),
        ("", "www.x", "www.x.b.example", ["www.x", "www.x.a.example", "www.x.b.example"]),
        (["ndots:0"], "www", None, ["www", "www.a.example", "www.b.example"]),
        (["ndots:2"], "www.x.y", "www.x.y.a.example", ["www.x.y", "www.x.y.a.example"]),
        # a trailing dot: the name as given only
        ("", "www.", None, ["www"]),
        ("", "www.x.", None, ["www.x"]),
        (["ndots:5"], "www.x.", "www.x.a.example", ["www.x"]),
    ],
)
def test_search_order(
    resolver_files: ResolverFiles,
    dns_server: DnsServer,
    options: list[str] | str,
    name: str,
    exists: str | None,
    asked: list[str],
) -> None:
    resolver_files.write(resolv_conf_text(search=["a.example", "b.example"], options=list(options)))
    if exists is not None:
        dns_server.add(exists, a=["192.0.2.80"], aaaa=["2001:db8::80"])
    config = config_for(dns_server)
    if exists is not None and exists in asked:
        resolution = jn.resolve(name, config=config)
        assert hosts_of(resolution) == {"192.0.2.80", "2001:db8::80"}
        assert resolution.canonical_name.rstrip(".") == exists
    else:
        with pytest.raises(jn.SocketError.UnknownHostName) as caught:
            jn.resolve(name, config=config)
        assert caught.value.name == name
    assert names_asked(dns_server) == asked
    for candidate in asked:  # A and AAAA for each name tried
        assert {q.qtype for q in dns_server.queries() if q.name == candidate} == {"A", "AAAA"}


def test_search_from_localdomain_and_ndots_from_res_options(
    resolver_files: ResolverFiles, dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver_files.write(resolv_conf_text(search=["a.example"]))
    monkeypatch.setenv("LOCALDOMAIN", "c.example")
    monkeypatch.setenv("RES_OPTIONS", "ndots:2")
    with pytest.raises(jn.SocketError.UnknownHostName):
        jn.resolve("www.x", family=socket.AF_INET, config=config_for(dns_server))
    assert names_asked(dns_server) == ["www.x.c.example", "www.x"]
    assert {q.qtype for q in dns_server.queries()} == {"A"}


def test_no_search_list_asks_the_name_alone(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    with pytest.raises(jn.SocketError.UnknownHostName):
        jn.resolve("single", config=config_for(dns_server))
    assert names_asked(dns_server) == ["single"]


# --- DNS ------------------------------------------------------------------------------------------


def test_a_and_aaaa_are_asked_at_once(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    # Both replies held back 1 s: asked together, both queries arrive before either reply leaves.
    dns_server.add("both.example", a=["192.0.2.90"], aaaa=["2001:db8::90"])
    dns_server.on("both.example", delay=1.0)
    resolution = jn.resolve("both.example", config=config_for(dns_server, timeout=10))
    assert hosts_of(resolution) == {"192.0.2.90", "2001:db8::90"}
    first, second = dns_server.queries()
    assert {first.qtype, second.qtype} == {"A", "AAAA"}
    assert second.time - first.time < 1.0
    assert first.source == second.source  # one socket for the server: the same source port


def test_single_request_asks_one_after_the_other(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("seq.example", a=["192.0.2.91"], aaaa=["2001:db8::91"])
    dns_server.on("seq.example", delay=0.5)
    resolution = jn.resolve("seq.example", config=config_for(dns_server, timeout=10, single_request=True))
    assert hosts_of(resolution) == {"192.0.2.91", "2001:db8::91"}
    first, second = dns_server.queries()
    assert {first.qtype, second.qtype} == {"A", "AAAA"}
    assert second.time - first.time >= 0.5  # the second waited for the first reply (a floor, not a bound)


def test_dns_sockets_are_connected_one_per_server_of_its_own_family(tmp_path: Path) -> None:
    program = textwrap.dedent(f"""
        import os, socket, sys
        sys.path.insert(0, {str(TESTS)!r})
        from dns_server import DnsServer
        import janus_net as jn
        with DnsServer("127.0.0.1") as v4, DnsServer("::1") as v6:
            for server in (v4, v6):
                server.on("x.example", rcode="SERVFAIL")
            v6.add("x.example", a=["192.0.2.1"])
            config = jn.ResolverConfig.load({str(tmp_path / "resolv.conf")!r}, {str(tmp_path / "hosts")!r}).replace(
                nameservers=(v4.nameserver, v6.nameserver), timeout=5, attempts=1)
            os.write(1, {MARK!r})
            try:
                jn.resolve("x.example", config=config)
            except jn.SocketError.NameServerFailure:
                pass
            os.write(1, b"ports %d %d %d\\n" % (v4.port, v6.port, os.getpid()))
    """)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "hosts").write_text("")
    lines, out = syscalls_after_mark(program, tmp_path, trace="write,socket,connect,sendto,sendmsg,sendmmsg")
    v4_port, v6_port, pid = (int(p) for p in out.split("ports ")[1].split())
    lines = [line for line in lines if line.startswith(f"{pid} ")]  # the lookup's thread, not the server's
    dns_sockets = [line for line in calls_to(lines, "socket") if "SOCK_DGRAM" in line]
    assert len([s for s in dns_sockets if "AF_INET," in s]) == 1, dns_sockets
    assert len([s for s in dns_sockets if "AF_INET6," in s]) == 1, dns_sockets
    connects = calls_to(lines, "connect")
    assert any(f"htons({v4_port})" in c and "AF_INET," in c for c in connects), connects
    assert any(f"htons({v6_port})" in c and "AF_INET6," in c for c in connects), connects
    assert not any("::ffff:" in line for line in lines), "an IPv4 server reached through an IPv6 socket"
    for line in calls_to(lines, "sendto", "sendmsg", "sendmmsg"):  # connected: no destination per datagram
        assert "sin_port" not in line and "sin6_port" not in line, line


def test_query_ids_and_source_ports_vary(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("ids.example", a=["192.0.2.92"])
    config = config_for(dns_server)
    for _ in range(24):
        jn.resolve("ids.example", family=socket.AF_INET, config=config)
    queries = dns_server.queries()
    ids = [q.id for q in queries]
    ports = {q.source[1] for q in queries}
    assert len(set(ids)) >= 22, ids  # 24 draws from 65536: a repeat or two by chance at most
    steps = {(b - a) % 65536 for a, b in itertools.pairwise(ids)}
    assert len(steps) > 10, ids  # not a counter
    assert len(ports) >= 20, ports  # a fresh kernel-chosen port per lookup


@pytest.mark.parametrize("kind", ["wrong_id", "wrong_source", "wrong_address", "wrong_question", "qr_unset"])
def test_a_reply_not_matching_is_ignored(resolver_files: ResolverFiles, dns_server: DnsServer, kind: str) -> None:
    dns_server.add("real.example", a=["192.0.2.93"], aaaa=["2001:db8::93"])
    dns_server.on("real.example", decoys=(kind, kind, kind))
    resolution = jn.resolve("real.example", config=config_for(dns_server, timeout=5))
    assert hosts_of(resolution) == {"192.0.2.93", "2001:db8::93"}
    assert DECOY_A not in hosts_of(resolution) and DECOY_AAAA not in hosts_of(resolution)


def test_only_mismatched_replies_fail(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.on("decoy.example", decoys=("wrong_id", "wrong_source", "wrong_question", "qr_unset"), real=False)
    with pytest.raises(jn.SocketError.NameServerFailure):
        jn.resolve("decoy.example", config=config_for(dns_server, timeout=1, attempts=1))


def test_an_icmp_refusal_ends_that_servers_try_at_once(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    # A closed port first, a 30 s timeout per try, and a context of 10 s: only a try ended by the refusal
    # (ECONNREFUSED on the connected socket) gets to the second server, or to NameServerFailure, in time.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    dns_server.add("up.example", a=["192.0.2.94"])
    config = jn.ResolverConfig.load().replace(nameservers=(dead, dns_server.nameserver), timeout=30, attempts=1)
    outcomes: list[object] = []
    for servers in ((dead, dns_server.nameserver), (dead,)):
        try:
            resolution = jn.resolve("up.example", config=config.replace(nameservers=servers), ctx=_guard())
            outcomes.append(hosts_of(resolution))
        except jn.SocketError as error:  # kept as a name only: the traceback would keep the guard's fd alive
            outcomes.append(type(error).__name__)
    assert outcomes == [{"192.0.2.94"}, "NameServerFailure"], "the refusal did not end the try"


def _guard() -> jn.Context:
    """A 10 s context: a test of "at once" fails in 10 s rather than waiting out a 30 s DNS timeout."""
    return jn.Context.with_timeout(10)


def test_timeout_per_try_and_attempts_rounds_over_the_servers(resolver_files: ResolverFiles) -> None:
    with DnsServer() as one, DnsServer() as two:
        for server in (one, two):
            server.on("silent.example", blackhole=True)
        start = time.monotonic()
        with pytest.raises(jn.SocketError.NameServerFailure) as caught:
            jn.resolve("silent.example", family=socket.AF_INET, config=config_for(one, two, timeout=1, attempts=2))
        assert time.monotonic() - start >= 4 * 0.99  # 2 rounds x 2 servers x 1 s (a floor)
        assert caught.value.temporary is True
        log = sorted(one.queries() + two.queries(), key=lambda q: q.time)
        assert [q.server for q in log] == [one.nameserver, two.nameserver] * 2


def test_rotate_spreads_the_first_query_over_the_servers(resolver_files: ResolverFiles) -> None:
    with DnsServer() as one, DnsServer() as two:
        for server in (one, two):
            server.add("rr.example", a=["192.0.2.95"])
        plain = config_for(one, two)
        for _ in range(6):
            jn.resolve("rr.example", family=socket.AF_INET, config=plain)
        assert len(one.queries()) == 6 and two.queries() == []
        one.clear_log()
        for _ in range(12):
            jn.resolve("rr.example", family=socket.AF_INET, config=plain.replace(rotate=True))
        assert len(one.queries()) >= 1 and len(two.queries()) >= 1
        assert len(one.queries()) + len(two.queries()) == 12


@pytest.mark.parametrize("rcode", ["SERVFAIL", "REFUSED"])
def test_servfail_and_refused_move_to_the_next_server(resolver_files: ResolverFiles, rcode: str) -> None:
    with DnsServer() as bad, DnsServer() as good:
        bad.on("next.example", rcode=rcode)
        good.add("next.example", a=["192.0.2.96"])
        resolution = jn.resolve("next.example", family=socket.AF_INET, config=config_for(bad, good, timeout=5))
        assert hosts_of(resolution) == {"192.0.2.96"}
        assert len(bad.queries()) == 1 and len(good.queries()) == 1  # once each: no resend without bound


def test_a_silent_server_moves_to_the_next_after_its_timeout(resolver_files: ResolverFiles) -> None:
    with DnsServer() as silent, DnsServer() as good:
        silent.on("next.example", blackhole=True)
        good.add("next.example", a=["192.0.2.97"])
        resolution = jn.resolve("next.example", family=socket.AF_INET, config=config_for(silent, good, timeout=1))
        assert hosts_of(resolution) == {"192.0.2.97"}


@pytest.mark.parametrize(("rcode", "temporary"), [("SERVFAIL", True), ("REFUSED", False)])
def test_failure_everywhere_is_nameserverfailure(resolver_files: ResolverFiles, rcode: str, temporary: bool) -> None:
    with DnsServer() as one, DnsServer() as two:
        for server in (one, two):
            server.on("fail.example", rcode=rcode)
        with pytest.raises(jn.SocketError.NameServerFailure) as caught:
            jn.resolve("fail.example", config=config_for(one, two, attempts=2))
        assert caught.value.temporary is temporary
        assert isinstance(caught.value, jn.SocketError)


def test_truncated_udp_is_asked_again_over_tcp(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("tc.example", a=["192.0.2.100"], aaaa=["2001:db8::100"])
    dns_server.on("tc.example", truncate=True)
    dns_server.add("big.example", a=[f"10.1.{i // 200}.{i % 200 + 1}" for i in range(300)])
    config = config_for(dns_server, timeout=5)
    assert hosts_of(jn.resolve("tc.example", config=config)) == {"192.0.2.100", "2001:db8::100"}
    assert {(q.qtype, q.transport) for q in dns_server.queries()} == {
        ("A", "udp"), ("AAAA", "udp"), ("A", "tcp"), ("AAAA", "tcp")
    }  # fmt: skip
    big = jn.resolve("big.example", family=socket.AF_INET, config=config)
    assert len(big.addresses) == 300  # over 512 bytes, and over any EDNS0 size: only TCP carries it


def test_use_vc_asks_over_tcp_only(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("vc.example", a=["192.0.2.101"], aaaa=["2001:db8::101"])
    resolution = jn.resolve("vc.example", config=config_for(dns_server, use_vc=True, timeout=5))
    assert hosts_of(resolution) == {"192.0.2.101", "2001:db8::101"}
    assert {q.transport for q in dns_server.queries()} == {"tcp"}


def test_edns0_offers_1232_bytes_only_when_asked(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("e.example", a=["192.0.2.102"])
    jn.resolve("e.example", family=socket.AF_INET, config=config_for(dns_server))
    jn.resolve("e.example", family=socket.AF_INET, config=config_for(dns_server, edns0=True))
    assert [q.edns for q in dns_server.queries()] == [None, 1232]


def test_edns0_lets_a_large_udp_answer_through(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    # 60 A records: about 1 KB, over 512 bytes, under 1232: one UDP answer with EDNS0, TCP without it.
    dns_server.add("mid.example", a=[f"10.2.0.{i}" for i in range(1, 61)])
    with_edns = jn.resolve("mid.example", family=socket.AF_INET, config=config_for(dns_server, edns0=True))
    assert len(with_edns.addresses) == 60
    assert [q.transport for q in dns_server.queries()] == ["udp"]


def test_cname_chain_sets_the_canonical_name(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    for i in range(6):
        dns_server.add_cname(f"hop{i}.example", f"hop{i + 1}.example")
    dns_server.add("hop6.example", a=["192.0.2.103"], aaaa=["2001:db8::103"])
    resolution = jn.resolve("hop0.example", config=config_for(dns_server))
    assert hosts_of(resolution) == {"192.0.2.103", "2001:db8::103"}
    assert resolution.canonical_name.rstrip(".") == "hop6.example"


def test_idna_names_are_encoded_first(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("xn--bcher-kva.example", a=["192.0.2.104"])
    config = config_for(dns_server)
    for name in ("bücher.example", "BÜCHER.example", "xn--bcher-kva.example"):
        resolution = jn.resolve(name, family=socket.AF_INET, config=config)
        assert hosts_of(resolution) == {"192.0.2.104"}, name
    assert set(names_asked(dns_server)) == {"xn--bcher-kva.example"}


def test_no_answer_cache(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("nc.example", a=["192.0.2.105"])
    config = config_for(dns_server)
    jn.resolve("nc.example", family=socket.AF_INET, config=config)
    dns_server.zone.add("nc.example", a=["192.0.2.106"])
    second = jn.resolve("nc.example", family=socket.AF_INET, config=config)
    assert hosts_of(second) == {"192.0.2.105", "192.0.2.106"} and len(dns_server.queries()) == 2


def test_underscores_and_boundary_lengths_are_names(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    label63 = "a" * 63
    name253 = ".".join([label63, label63, label63, "b" * 61])
    assert len(name253) == 253
    for name in ("_srv._tcp.example", f"{label63}.example", name253, name253 + ".", "-x-.example"):
        dns_server.add(name, a=["192.0.2.107"])
        assert hosts_of(jn.resolve(name, family=socket.AF_INET, config=config_for(dns_server))) == {"192.0.2.107"}


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 254,
        ".".join(["a" * 63] * 4),  # 255 bytes
        "a" * 64 + ".example",
        "x." + "a" * 64,
        "a b.example",
        "a\x00b.example",
        "a/b",
        "a*b.example",
        "a,b.example",
        "a@b.example",
        "[::1]",
        "tab\t.example",
        "new\nline.example",
        "☃.example",
        "a\u200db.example",
    ],
)
def test_invalid_host_names_before_any_io(resolver_files: ResolverFiles, dns_server: DnsServer, name: str) -> None:
    resolver_files.write(hosts=f"192.0.2.1 {name}\n" if name.strip() and "\n" not in name else None)
    before = socket_fds()
    with pytest.raises(jn.SocketError.InvalidHostName):
        jn.resolve(name, config=config_for(dns_server))
    assert dns_server.queries() == [] and socket_fds() == before


def test_unknown_host_name_carries_the_name_as_asked(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    resolver_files.write(resolv_conf_text(search=["a.example"]))
    dns_server.add("v4only.example", a=["192.0.2.109"])
    config = config_for(dns_server)
    for name in ("nope", "nope.example.", "Nope.Example", "bücher-nope.example"):
        with pytest.raises(jn.SocketError.UnknownHostName) as caught:
            jn.resolve(name, config=config)
        assert caught.value.name == name
        assert isinstance(caught.value, jn.SocketError)
    with pytest.raises(jn.SocketError.UnknownHostName) as nodata:  # the name exists, no address of the family
        jn.resolve("v4only.example", family=socket.AF_INET6, config=config)
    assert nodata.value.name == "v4only.example"


def test_a_nodata_candidate_does_not_stop_the_search(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    resolver_files.write(resolv_conf_text(search=["a.example", "b.example"]))
    dns_server.add("www.a.example", aaaa=["2001:db8::110"])
    dns_server.add("www.b.example", a=["192.0.2.110"])
    resolution = jn.resolve("www", family=socket.AF_INET, config=config_for(dns_server))
    assert hosts_of(resolution) == {"192.0.2.110"}
    assert names_asked(dns_server) == ["www.a.example", "www.b.example"]


def test_audit_event_before_any_io(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "hosts").write_text("")
    answer = run_child(f"""
        import json, os, sys
        sys.path.insert(0, {str(TESTS)!r})
        from dns_server import DnsServer
        import janus_net as jn

        def sockets():
            return sum(os.readlink(f"/proc/self/fd/{{n}}").startswith("socket:")
                       for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{{n}}"))

        seen = []
        def hook(event, args):
            if event == "janus_net.resolve":
                seen.append([list(args), sockets(), len(server.queries())])
                if args[0] == "refused.example":
                    raise RuntimeError("refused by the audit hook")

        with DnsServer() as server:
            server.add("www.example", a=["192.0.2.1"])
            config = jn.ResolverConfig.load({str(tmp_path / "resolv.conf")!r}, {str(tmp_path / "hosts")!r})
            config = config.replace(nameservers=(server.nameserver,))
            baseline = sockets()
            sys.addaudithook(hook)
            jn.resolve("www.example", config=config)
            jn.resolve("192.0.2.7", config=config)
            try:
                jn.resolve("refused.example", config=config)
                refused = False
            except RuntimeError:
                refused = True
            print(json.dumps({{"seen": seen, "baseline": baseline, "refused": refused,
                               "names": [q.name for q in server.queries()]}}))
    """)
    baseline = answer["baseline"]
    assert answer["seen"] == [
        [["www.example"], baseline, 0],
        [["192.0.2.7"], baseline, 2],  # www.example's A and AAAA before it
        [["refused.example"], baseline, 2],
    ]
    assert answer["refused"] is True
    assert "refused.example" not in answer["names"]


# --- cancellation: Timeout, every socket closed, no thread ----------------------------------------


def _blocked_lookup(
    server: DnsServer, ctx: jn.Context, action: object | None, name: str = "hole.example", family: int | None = None
) -> tuple[BaseException | None, dict[str, object]]:
    """Resolve ``name`` on this thread; when it waits in poll, record sockets/threads and run ``action``."""
    config = config_for(server, timeout=30, attempts=1)  # a broken cancel fails in 30 s, not hangs
    seen: dict[str, object] = {}
    sockets_before = socket_fds()
    tasks_before = tasks()

    def at_the_wait() -> None:
        seen["sockets"] = socket_fds() - sockets_before - server.fds()
        seen["tasks"] = tasks() - tasks_before - {str(threading.get_native_id())}
        seen["at"] = time.monotonic()
        if callable(action):
            action()

    watcher = when_blocked(at_the_wait)
    error: BaseException | None = None
    try:
        jn.resolve(name, family=family, config=config, ctx=ctx)
    except BaseException as caught:  # what the lookup raised, for the test to judge
        error = caught
    seen["returned"] = time.monotonic()
    watcher.join(30)
    seen["sockets_after"] = sockets_left(sockets_before, server)
    return error, seen


def test_cancel_ends_a_lookup_with_every_socket_closed_and_no_thread(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    dns_server.on("hole.example", blackhole=True)
    ctx = jn.Context()
    error, seen = _blocked_lookup(dns_server, ctx, ctx.cancel)
    assert isinstance(error, jn.SocketError.Timeout) and error.reason == "cancelled", error
    assert len(seen["sockets"]) == 1  # type: ignore[arg-type]  # one connected socket for the one server
    assert seen["tasks"] == set()  # no thread made for the lookup
    assert seen["sockets_after"] == set()
    assert seen["returned"] - seen["at"] < 1.0  # type: ignore[operator]  # generous: the 5 ms is make bench's
    assert {q.qtype for q in dns_server.queries()} == {"A", "AAAA"}


def test_a_deadline_ends_a_lookup_sockets_closed(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.on("hole.example", blackhole=True)
    start = time.monotonic()
    error, seen = _blocked_lookup(dns_server, jn.Context.with_timeout(0.3), None)
    assert isinstance(error, jn.SocketError.Timeout) and error.reason == "deadline", error
    assert 0.3 <= seen["returned"] - start < 5  # type: ignore[operator]  # not the 30 s of the config
    assert seen["tasks"] == set() and seen["sockets_after"] == set()


def test_cancel_during_the_tcp_exchange_closes_udp_and_tcp(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    dns_server.add("hole.example", a=["192.0.2.120"])
    dns_server.on("hole.example", truncate=True, tcp_drip=5.0)  # TCP answers one byte every 5 s
    ctx = jn.Context()

    def cancel_once_over_tcp() -> None:
        dns_server.wait_for_queries(1)
        deadline = time.monotonic() + 10
        while not dns_server.queries("tcp") and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.cancel()

    error, seen = _blocked_lookup(dns_server, ctx, cancel_once_over_tcp, family=socket.AF_INET)
    assert isinstance(error, jn.SocketError.Timeout), error
    assert dns_server.queries("tcp"), "the lookup never went to TCP"
    assert seen["sockets_after"] == set()


def test_keyboard_interrupt_in_a_lookup_closes_every_socket(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    dns_server.on("hole.example", blackhole=True)
    with sigint_raises():
        error, seen = _blocked_lookup(dns_server, jn.Context(), lambda: os.kill(os.getpid(), signal.SIGINT))
    assert isinstance(error, KeyboardInterrupt), error
    assert seen["sockets_after"] == set()


def test_an_already_ended_context_is_a_timeout_without_a_socket_left(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    dns_server.add("x.example", a=["192.0.2.121"])
    ctx = jn.Context()
    ctx.cancel()
    before = socket_fds()
    with pytest.raises(jn.SocketError.Timeout):
        jn.resolve("x.example", config=config_for(dns_server), ctx=ctx)
    assert socket_fds() == before


def test_lookups_of_every_outcome_leave_no_fd(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    dns_server.add("ok.example", a=["192.0.2.122"], aaaa=["2001:db8::122"])
    dns_server.on("fail.example", rcode="SERVFAIL")
    dns_server.on("tc.example", truncate=True)
    dns_server.add("tc.example", a=["192.0.2.123"])
    config = config_for(dns_server)
    before = set(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    outcomes = []
    for _ in range(5):
        for name in ("ok.example", "fail.example", "tc.example", "nx.example", "localhost", "192.0.2.1"):
            try:
                outcomes.append(jn.resolve(name, config=config).source)
            except (jn.SocketError.NameServerFailure, jn.SocketError.UnknownHostName) as error:
                outcomes.append(type(error).__name__)
    assert set(outcomes) == {"dns", "NameServerFailure", "UnknownHostName", "localhost", "literal"}
    assert set(os.listdir("/proc/self/fd")) == before and threading.active_count() == threads


def test_resolve_on_another_thread_and_the_server_thread_only(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    # A lookup may run on any thread; it still makes no thread of its own.
    dns_server.add("t.example", a=["192.0.2.124"])
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(jn.resolve("t.example", config=config_for(dns_server))))
    worker.start()
    worker.join(30)
    assert len(results) == 1 and hosts_of(results[0]) == {"192.0.2.124"}


# --- structure, seen by strace: each socket closed exactly once, no thread, idna only when needed ---


def test_every_socket_closed_exactly_once_and_no_thread_started(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "hosts").write_text("")
    program = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(TESTS)!r})
        from dns_server import DnsServer
        import janus_net as jn
        with DnsServer() as bad, DnsServer() as good:
            bad.on("x.example", rcode="SERVFAIL")
            good.add("x.example", a=["192.0.2.1"], aaaa=["2001:db8::1"])
            good.on("x.example", truncate=True)
            good.on("hole.example", blackhole=True)
            config = jn.ResolverConfig.load({str(tmp_path / "resolv.conf")!r}, {str(tmp_path / "hosts")!r})
            config = config.replace(nameservers=(bad.nameserver, good.nameserver), timeout=5, attempts=1)
            os.write(1, {MARK!r})
            jn.resolve("x.example", config=config)
            try:
                jn.resolve("hole.example", config=config.replace(nameservers=(good.nameserver,)),
                           ctx=jn.Context.with_timeout(0.2))
            except jn.SocketError.Timeout:
                pass
            os.write(1, b"pid %d\\n" % os.getpid())
    """)
    trace = "write,socket,close,clone,clone3,fork,vfork,openat,eventfd2,pipe2,accept4,accept,dup,dup2,dup3,socketpair"
    lines, out = syscalls_after_mark(program, tmp_path, trace=trace)
    pid = int(out.split("pid ")[1])
    assert calls_to(lines, "clone", "clone3", "fork", "vfork") == []  # no thread, no process: not even one
    # Walk the trace in order: a socket() of the lookup (the main thread) opens a number; a close of that
    # number by the main thread ends it; any other call returning the number hands it to someone else.
    lookup_open: set[int] = set()
    made = 0
    for tid, name, arguments, result in _joined_calls(lines):
        if name == "close":
            fd = int(arguments.split(")", 1)[0].split()[0])
            if tid == pid:
                assert "EBADF" not in result, f"fd {fd} closed twice"
                lookup_open.discard(fd)
            continue
        number = result.split()[0] if result else "?"
        if not number.isdigit():
            continue
        if name == "socket" and tid == pid:
            lookup_open.add(int(number))
            made += 1
        else:
            assert int(number) not in lookup_open, f"a socket of the lookup was still open when {name} got {number}"
    assert made >= 3  # a UDP socket per server, then TCP for the truncated answer
    assert lookup_open == set(), f"sockets never closed: {lookup_open}"


def _joined_calls(lines: list[str]) -> list[tuple[int, str, str, str]]:
    """strace -f lines as (tid, call, its arguments, its result), an unfinished call joined to its resumption."""
    calls: list[tuple[int, str, str, str]] = []
    pending: dict[int, tuple[str, str]] = {}
    for line in lines:
        tid_text, text = line.split(None, 1)
        tid = int(tid_text)
        if text.startswith("<... "):  # "<... close resumed>) = 0"
            name = text[5:].split()[0]
            started, arguments = pending.pop(tid, (name, ""))
            calls.append((tid, started, arguments, text.rsplit("= ", 1)[-1] if "= " in text else ""))
        elif "(" in text:
            name, rest = text.split("(", 1)
            if rest.endswith("<unfinished ...>"):
                pending[tid] = (name, rest)
            else:
                calls.append((tid, name, rest, rest.rsplit("= ", 1)[-1] if "= " in rest else ""))
    return calls


def test_idna_is_imported_only_for_a_non_ascii_name(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("192.0.2.1 plain.example xn--bcher-kva.example\n")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    answer = run_child(f"""
        import json, sys
        import janus_net as jn
        config = jn.ResolverConfig.load({str(tmp_path / "resolv.conf")!r}, {str(tmp_path / "hosts")!r})
        jn.resolve("plain.example", config=config)
        jn.resolve("xn--bcher-kva.example", config=config)
        before = "idna" in sys.modules
        jn.resolve("bücher.example", config=config)
        print(json.dumps({{"before": before, "after": "idna" in sys.modules}}))
    """)
    assert answer == {"before": False, "after": True}


def test_an_ipv6_nameserver(resolver_files: ResolverFiles) -> None:
    with DnsServer("::1") as server:
        server.add("six.example", a=["192.0.2.130"], aaaa=["2001:db8::130"])
        resolution = jn.resolve("six.example", config=config_for(server))
        assert hosts_of(resolution) == {"192.0.2.130", "2001:db8::130"}
        assert {q.source[0] for q in server.queries()} == {"::1"}


@pytest.mark.parametrize(
    "arguments",
    [
        {"port": -1},
        {"port": 65536},
        {"port": True},
        {"port": "80"},
        {"port": 80.0},
        {"family": socket.AF_UNIX},
        {"family": "inet"},
        {"family": True},
    ],
)
def test_bad_port_and_family_are_refused_before_any_io(
    resolver_files: ResolverFiles, dns_server: DnsServer, arguments: dict[str, object]
) -> None:
    dns_server.add("x.example", a=["192.0.2.131"])
    with pytest.raises((TypeError, ValueError, jn.SocketError)) as caught:
        jn.resolve("x.example", config=config_for(dns_server), **arguments)  # type: ignore[arg-type]
    assert not isinstance(caught.value, (jn.SocketError.UnknownHostName, jn.SocketError.NameServerFailure))
    assert dns_server.queries() == []


def test_a_signal_handler_cancelling_ends_the_lookup(resolver_files: ResolverFiles, dns_server: DnsServer) -> None:
    # §3: every wait on the main thread wakes for a pending Python signal, so a cancel from a handler lands.
    dns_server.on("hole.example", blackhole=True)
    ctx = jn.Context()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: ctx.cancel())
    try:
        error, seen = _blocked_lookup(dns_server, ctx, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert isinstance(error, jn.SocketError.Timeout) and error.reason == "cancelled", error
    assert seen["sockets_after"] == set()


def test_a_signal_that_cancels_nothing_lets_the_lookup_go_on(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    # §3: a wake with no cancel and no exception resumes the wait; the answer still comes.
    dns_server.add("slow.example", a=["192.0.2.140"])
    dns_server.on("slow.example", delay=0.5)
    returned: list[bool] = []
    handled: list[bool] = []  # whether the lookup had returned when the handler ran
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(bool(returned)))
    try:
        kicker = when_blocked(lambda: os.kill(os.getpid(), signal.SIGUSR1))
        resolution = jn.resolve("slow.example", family=socket.AF_INET, config=config_for(dns_server, timeout=10))
        returned.append(True)
        kicker.join(10)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert hosts_of(resolution) == {"192.0.2.140"}
    assert handled == [False]  # the handler ran inside the wait, which then went on to the answer


def test_without_a_config_resolve_reads_the_files_the_environment_names(resolver_files: ResolverFiles) -> None:
    resolver_files.write(hosts="192.0.2.150 env-named.example\n")
    resolution = jn.resolve("env-named.example", 5)
    assert resolution.source == "files" and [str(a) for a in resolution.addresses] == ["192.0.2.150:5"]


# --- KeyboardInterrupt at every line of the lookup's modules: nothing left open --------------------


def _interrupt_at(n: int, files: set[str], where: list[str]) -> object:
    """tests/interrupts.py's interrupt_at, also telling ``where`` (file:line in function) it raised."""
    from interrupts import cleanup_lines

    skip = {path: cleanup_lines(path) for path in files}
    seen = 0

    def tracer(frame: object, event: str, arg: object) -> object:
        nonlocal seen
        code = frame.f_code  # type: ignore[attr-defined]
        if code.co_filename not in skip:
            return None
        if event == "line" and frame.f_lineno not in skip[code.co_filename]:  # type: ignore[attr-defined]
            seen += 1
            if seen == n:
                where.append(f"{Path(code.co_filename).name}:{frame.f_lineno} in {code.co_name}")  # type: ignore[attr-defined]
                raise KeyboardInterrupt
        return tracer

    return tracer


@pytest.mark.parametrize("shape", ["udp", "tcp"])
def test_keyboard_interrupt_at_every_line_leaves_no_socket(
    resolver_files: ResolverFiles, dns_server: DnsServer, shape: str
) -> None:
    import importlib
    import sys

    modules = [f"janus_net._profiles.{name}" for name in ("resolve", "name_lookup", "dns_exchange", "source_address")]
    files = {str(importlib.import_module(name).__file__) for name in [*modules, "janus_net._policy.waiting"]}
    dns_server.add("every.example", a=["192.0.2.160"], aaaa=["2001:db8::160"])
    if shape == "tcp":
        dns_server.on("every.example", truncate=True)
    config = config_for(dns_server, timeout=5)
    runs = 0
    leaks: list[str] = []
    while True:
        runs += 1
        before = socket_fds()
        where: list[str] = []
        sys.settrace(_interrupt_at(runs, files, where))  # type: ignore[arg-type]
        try:
            resolution = jn.resolve("every.example", config=config)
        except KeyboardInterrupt:
            sys.settrace(None)
            left = sockets_left(before, dns_server)
            if left:
                leaks.append(f"line event {runs} ({where}): {sorted(left)}")
                for fd in left:  # closed here so that one leak does not hide the next
                    os.close(fd)
            continue
        finally:
            sys.settrace(None)
        assert hosts_of(resolution) == {"192.0.2.160", "2001:db8::160"}
        assert sockets_left(before, dns_server) == set()
        break
    assert leaks == [], "sockets left after a KeyboardInterrupt:\n" + "\n".join(leaks)
    assert runs > 50  # the lookup really ran through those modules


def test_every_query_is_a_plain_recursive_question_by_an_independent_reader(
    resolver_files: ResolverFiles, dns_server: DnsServer
) -> None:
    import dns.flags
    import dns.message
    import dns.opcode
    import dns.rdataclass

    dns_server.add("q.example", a=["192.0.2.190"], aaaa=["2001:db8::190"])
    dns_server.on("tc.example", truncate=True)
    dns_server.add("tc.example", a=["192.0.2.191"])
    for fields in ({}, {"edns0": True}, {"use_vc": True}, {"single_request": True}):
        jn.resolve("q.example", config=config_for(dns_server, **fields))
    jn.resolve("tc.example", family=socket.AF_INET, config=config_for(dns_server, edns0=True))
    queries = dns_server.queries()
    assert len(queries) >= 10
    for query in queries:
        assert query.error is None, query
        message = dns.message.from_wire(query.raw)
        assert message.opcode() == dns.opcode.QUERY and message.flags & dns.flags.RD
        assert not message.flags & dns.flags.QR
        assert len(message.question) == 1 and message.question[0].rdclass == dns.rdataclass.IN
        assert not message.answer and not message.authority
        if message.edns >= 0:
            assert message.payload == 1232 and not message.ednsflags & dns.flags.DO
    assert {q.edns for q in queries} == {None, 1232}
