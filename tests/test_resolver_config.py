"""resolv.conf and hosts as glibc reads them: parsing, clamps, the environment, files named and missing.

`parse` is tested on text (it never raises, whatever the content); `ResolverConfig.load` on real
files in a tmp dir, through the kernel door; `replace` on every field's checks. The hosts file's
reader on real files too, through `jn.resolve`.
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import janus_net as jn
from janus_net._profiles import hosts_file
from janus_net._profiles.resolver_config import ResolverConfig, parse

NO_ENV: dict[str, str] = {}


def servers(config: ResolverConfig) -> list[str]:
    return [str(a) for a in config.nameservers]


def test_defaults_of_an_empty_file() -> None:
    config = parse("", NO_ENV)
    assert servers(config) == ["127.0.0.1:53"]
    assert config.search == ()
    assert (config.ndots, config.timeout, config.attempts) == (1, 5.0, 2)
    assert not (config.rotate or config.edns0 or config.use_vc or config.single_request)


def test_nameservers_up_to_three_bad_ones_skipped() -> None:
    text = (
        "nameserver 192.0.2.1\n"
        "nameserver not-an-address\n"
        "nameserver 127.1\n"  # inet_pton refuses it, so does janus_net
        "nameserver 2001:db8::53 # comment\n"
        "nameserver\tfe80::1%1\n"
        "nameserver 192.0.2.4\n"
        "nameserver1.2.3.4\n"  # no blank after the keyword: not a nameserver line
    )
    assert servers(parse(text, NO_ENV)) == ["192.0.2.1:53", "[2001:db8::53]:53", "[fe80::1%1]:53"]


def test_search_and_domain_the_last_wins() -> None:
    assert parse("search a.example b.example\ndomain c.example\n", NO_ENV).search == ("c.example",)
    assert parse("domain c.example\nsearch a.example b.example.\n", NO_ENV).search == ("a.example", "b.example")
    assert parse("search a.example\nsearch\n", NO_ENV).search == ("a.example",)  # an empty line changes nothing
    assert parse("search a..b ok.example bad_dom@in\n", NO_ENV).search == ("ok.example",)


def test_comments() -> None:
    text = "# nameserver 192.0.2.1\n; nameserver 192.0.2.2\nnameserver 192.0.2.3 ; trailing\noptions ndots:4 # x\n"
    config = parse(text, NO_ENV)
    assert servers(config) == ["192.0.2.3:53"] and config.ndots == 4


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ("ndots:0", "ndots", 0),
        ("ndots:15", "ndots", 15),
        ("ndots:16", "ndots", 15),
        ("ndots:99999999999999999999", "ndots", 15),
        ("ndots:-3", "ndots", 0),
        ("ndots:abc", "ndots", 0),
        ("ndots:3x", "ndots", 3),
        ("timeout:0", "timeout", 1.0),
        ("timeout:31", "timeout", 30.0),
        ("timeout:7", "timeout", 7.0),
        ("attempts:0", "attempts", 1),
        ("attempts:6", "attempts", 5),
        ("attempts:3", "attempts", 3),
        ("rotate", "rotate", True),
        ("edns0", "edns0", True),
        ("use-vc", "use_vc", True),
        ("single-request", "single_request", True),
        ("single-request-reopen", "single_request", False),
        ("inet6 trust-ad", "ndots", 1),
    ],
)
def test_options_and_their_clamps(options: str, field: str, value: object) -> None:
    assert getattr(parse(f"options {options}\n", NO_ENV), field) == value


def test_options_lines_add_up() -> None:
    config = parse("options ndots:2\noptions rotate timeout:3\n", NO_ENV)
    assert (config.ndots, config.rotate, config.timeout) == (2, True, 3.0)


def test_environment_overrides_as_glibc() -> None:
    text = "search a.example\noptions ndots:2 attempts:3\n"
    env = {"LOCALDOMAIN": "x.example  y.example", "RES_OPTIONS": "ndots:5 rotate attempts:0"}
    config = parse(text, env)
    assert config.search == ("x.example", "y.example")
    assert (config.ndots, config.rotate, config.attempts) == (5, True, 1)
    assert parse(text, {"LOCALDOMAIN": ""}).search == ()  # set but empty: no search list


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_never_raises(text: str) -> None:
    config = parse(text, NO_ENV)
    assert 1 <= len(config.nameservers) <= 3
    assert 0 <= config.ndots <= 15 and 1 <= config.timeout <= 30 and 1 <= config.attempts <= 5


# --- load: real files, the environment


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("JANUS_NET_RESOLV_CONF", "JANUS_NET_HOSTS", "LOCALDOMAIN", "RES_OPTIONS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_load_a_named_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.1\nsearch corp.example\noptions ndots:2\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    config = ResolverConfig.load(str(conf), str(hosts))
    assert servers(config) == ["192.0.2.1:53"] and config.search == ("corp.example",) and config.ndots == 2
    assert config.hosts == str(hosts)
    clean_env.setenv("JANUS_NET_RESOLV_CONF", str(conf))
    clean_env.setenv("JANUS_NET_HOSTS", str(hosts))
    clean_env.setenv("RES_OPTIONS", "ndots:7")
    config = ResolverConfig.load()
    assert config.ndots == 7 and config.hosts == str(hosts)


def test_a_file_named_explicitly_must_exist(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(jn.SocketError.FileNotFound) as missing_conf:
        ResolverConfig.load(missing)
    clean_env.setenv("JANUS_NET_RESOLV_CONF", missing)
    with pytest.raises(jn.SocketError.FileNotFound):
        ResolverConfig.load()
    conf = tmp_path / "resolv.conf"
    conf.write_text("")
    with pytest.raises(jn.SocketError.FileNotFound) as missing_hosts:
        ResolverConfig.load(str(conf), missing)
    # Each error names the file that is missing.
    for error in (missing_conf.value, missing_hosts.value):
        assert error.address == missing and missing in str(error)


def test_files_that_are_not_small_regular_files_are_refused(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.conf"
    big.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(jn.SocketError.SystemResources, match="larger"):
        ResolverConfig.load(str(big))
    with pytest.raises(jn.SocketError.SystemResources, match="directory"):
        ResolverConfig.load(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a FIFO with no writer: the open must not wait for one
    with pytest.raises(jn.SocketError.SystemResources, match="pipe"):
        ResolverConfig.load(str(fifo))


def test_undecodable_bytes_do_not_break_the_parse(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_bytes(b"\xff\xfe nameserver\nnameserver 192.0.2.8\r\nsearch \xc3\x28.example ok.example\n")
    config = ResolverConfig.load(str(conf))
    assert servers(config) == ["192.0.2.8:53"] and config.search == ("ok.example",)


# --- replace


def test_replace_nameservers_in_the_address_grammar() -> None:
    config = ResolverConfig().replace(
        nameservers=("127.0.0.1:5353", "[::1]:5353", "192.0.2.1", "::1", jn.Ip4Address("192.0.2.2"))
    )
    assert servers(config) == ["127.0.0.1:5353", "[::1]:5353", "192.0.2.1:53", "[::1]:53", "192.0.2.2:53"]
    for bad in ("example.com:53", "unix:/x", "127.0.0.1:99999", "[::1]"):
        with pytest.raises((jn.SocketError.InvalidAddress, jn.SocketError.InvalidPort)):
            ResolverConfig().replace(nameservers=(bad,))
    with pytest.raises(TypeError):
        ResolverConfig().replace(nameservers="127.0.0.1:53")
    with pytest.raises(TypeError):
        ResolverConfig().replace(nameservers=(53,))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("ndots", 16, ValueError),
        ("ndots", -1, ValueError),
        ("ndots", True, TypeError),
        ("ndots", 1.0, TypeError),
        ("attempts", 0, ValueError),
        ("attempts", 6, ValueError),
        ("timeout", 0, ValueError),
        ("timeout", -1.5, ValueError),
        ("timeout", float("nan"), ValueError),
        ("timeout", "5", TypeError),
        ("timeout", True, TypeError),
        ("rotate", 1, TypeError),
        ("edns0", "yes", TypeError),
        ("search", "example.com", TypeError),
        ("search", ("bad name",), jn.SocketError.InvalidHostName),
        ("hosts", None, TypeError),
        ("no_such_field", 1, TypeError),
    ],
)
def test_replace_checks_every_field(field: str, value: object, error: type[BaseException]) -> None:
    with pytest.raises(error):
        ResolverConfig().replace(**{field: value})


def test_config_is_an_immutable_value() -> None:
    config = ResolverConfig().replace(search=("a.example",), timeout=0.25, rotate=True)
    assert config.timeout == 0.25
    assert pickle.loads(pickle.dumps(config)) == config
    assert hash(config) == hash(ResolverConfig().replace(search=("a.example",), timeout=0.25, rotate=True))
    assert config != ResolverConfig()
    with pytest.raises(AttributeError):
        config.ndots = 3  # type: ignore[misc]
    assert "search=('a.example',)" in repr(config)


# --- the hosts file


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(
        "# comment\n"
        "127.0.0.1 localhost\n"
        "192.0.2.10  Web.Example  web alias.example # trailing comment\n"
        "2001:db8::10 web.example\n"
        "192.0.2.11 web.example\n"
        "not-an-address web.example\n"
        "192.0.2.12\n"
        "127.1 short.example\n"
        "::ffff:192.0.2.13 mapped.example\n"
        "fe80::1%1 linklocal.example\n"
        "\n"
    )
    return path


def config_with(hosts: Path) -> ResolverConfig:
    # No name server at all: a name the hosts file lacks fails without any packet.
    return ResolverConfig(nameservers=(), hosts=str(hosts))


def test_hosts_lookup(hosts: Path) -> None:
    config = config_with(hosts)
    r = jn.resolve("WEB.example", 80, config=config)
    assert r.source == "files" and r.canonical_name == "Web.Example"
    assert r.addresses == (
        jn.Ip4Address("192.0.2.10", 80),
        jn.Ip4Address("192.0.2.11", 80),
        jn.Ip6Address("2001:db8::10", 80),
    )
    assert jn.resolve("alias.example", config=config).canonical_name == "Web.Example"
    six = jn.resolve("web.example.", family=socket.AF_INET6, config=config)
    assert six.addresses == (jn.Ip6Address("2001:db8::10"),)
    assert jn.resolve("mapped.example", config=config).addresses == (jn.Ip6Address("::ffff:192.0.2.13"),)
    assert jn.resolve("linklocal.example", config=config).addresses == (jn.Ip6Address("fe80::1", scope_id=1),)


def test_hosts_misses_go_on_to_dns(hosts: Path) -> None:
    config = config_with(hosts)
    for name, family in (("short.example", None), ("nothing.example", None), ("web", socket.AF_INET6)):
        with pytest.raises(jn.SocketError.NameServerFailure) as info:
            jn.resolve(name, family=family, config=config)
        assert info.value.temporary is False  # no name server configured: asking again will not help


def test_a_localhost_line_does_not_win(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("192.0.2.99 localhost evil.localhost\n")
    r = jn.resolve("localhost", config=config_with(path))
    assert r.source == "localhost" and jn.Ip4Address("192.0.2.99") not in r.addresses


def test_a_missing_hosts_file_has_no_names(tmp_path: Path) -> None:
    assert hosts_file.lookup(str(tmp_path / "none"), "web.example", None, 0) == ("", ())
    with pytest.raises(jn.SocketError.NameServerFailure):
        jn.resolve("web.example", config=config_with(tmp_path / "none"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["web.example", "a", "x-y.z"]))
def test_hosts_parse_never_raises(content: bytes, name: str) -> None:
    entry = hosts_file.find(content, name, 0)
    assert entry is None or isinstance(entry.canonical_name, str)
