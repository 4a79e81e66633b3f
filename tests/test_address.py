"""The address grammar of DESIGN §4, rule by rule, and the value classes it returns.

The oracle for IP text is the stdlib `ipaddress` module, never a table typed in
here: what `ipaddress` accepts, the parser accepts (as a host); what it prints,
``.host`` prints (except the IPv4-mapped form, which RFC 5952 §5 writes dotted).
Interface indexes come from `socket.if_nametoindex`, sizes from the compiled shim.

The hypothesis properties at the end are the fuzzing half of the reliability
promise: whatever text goes in, only `InvalidAddress` or `InvalidPort` comes out,
or an address that prints and parses back to itself.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import string
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import janus_net as jn
from janus_net import platform
from janus_net._profiles import addresses
from janus_net._profiles.addresses import parse_address
from janus_net._values.addresses import Address
from janus_net._values.fd import FdAddress
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.unix import UnixAddress

InvalidAddress = jn.SocketError.InvalidAddress
InvalidPort = jn.SocketError.InvalidPort

#: Bytes a unix path (or abstract name) may use: sun_path minus the NUL.
LIMIT = platform.SUN_PATH_SIZE - 1


def fails(text: str) -> jn.SocketError:
    """The error parsing ``text`` raises, checked to be one of the two parse errors."""
    with pytest.raises(jn.SocketError) as info:
        parse_address(text)
    assert info.type in (InvalidAddress, InvalidPort), info.value
    err = info.value
    # A parse error names the text it was given and comes from no syscall.
    assert err.address == text
    assert err.errno is None and err.syscall is None
    return err


def invalid_address(text: str) -> jn.SocketError:
    err = fails(text)
    assert type(err) is InvalidAddress, f"{text!r}: {err!r}"
    return err


def invalid_port(text: str) -> jn.SocketError:
    err = fails(text)
    assert type(err) is InvalidPort, f"{text!r}: {err!r}"
    return err


def each(cases: Iterable[Any], check: Callable[..., object]) -> None:
    """Run ``check`` on every case (a tuple is spread into arguments), then report all failures.

    One test per table instead of one per row: the suite's leak fixture costs two
    full garbage collections per test, and a table that fails still names every
    failing row.
    """
    failures = []
    for case in cases:
        try:
            check(*case) if isinstance(case, tuple) else check(case)
        except (Exception, pytest.fail.Exception) as err:
            failures.append(f"{case!r:.120}: {err!r:.300}")
    assert not failures, "\n".join(failures)


def mapped_text(ip: ipaddress.IPv6Address) -> str:
    """The oracle's canonical IPv6 text: `ipaddress`, except ``::ffff:a.b.c.d`` (RFC 5952 §5)."""
    return f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped is not None else str(ip)


def assert_round_trips(address: Address | FdAddress) -> None:
    again = parse_address(str(address))
    assert again == address and type(again) is type(address)
    assert str(again) == str(address)


# --- The forms of §4, in the table's order


def test_port_only_is_the_ipv4_wildcard() -> None:
    a = parse_address(":8080")
    assert type(a) is Ip4Address
    assert (a.host, a.port, str(a)) == ("0.0.0.0", 8080, "0.0.0.0:8080")
    assert a == Ip4Address("0.0.0.0", 8080)


def test_ipv4_literal_and_port() -> None:
    a = parse_address("127.0.0.1:9000")
    assert type(a) is Ip4Address
    assert (a.host, a.port, str(a)) == ("127.0.0.1", 9000, "127.0.0.1:9000")
    assert a.ip == ipaddress.IPv4Address("127.0.0.1")


def test_bracketed_ipv6() -> None:
    a = parse_address("[::1]:443")
    assert type(a) is Ip6Address
    assert (a.host, a.port, a.scope_id, a.flowinfo, str(a)) == ("::1", 443, 0, 0, "[::1]:443")


def test_zone_name_resolves_through_if_nametoindex() -> None:
    a = parse_address("[fe80::1%lo]:443")
    assert isinstance(a, Ip6Address)
    index = socket.if_nametoindex("lo")
    assert a.scope_id == index
    # The name is not kept: the canonical text carries the index.
    assert (a.host, str(a)) == (f"fe80::1%{index}", f"[fe80::1%{index}]:443")
    assert a == parse_address(f"[fe80::1%{index}]:443")


def test_every_interface_name_is_its_index() -> None:
    def check(index: int, name: str) -> None:
        a = parse_address(f"[fe80::abcd%{name}]:1")
        assert isinstance(a, Ip6Address) and a.scope_id == index

    each(socket.if_nameindex(), check)


def test_numeric_zone() -> None:
    a = parse_address("[fe80::1%2]:443")
    assert isinstance(a, Ip6Address)
    assert (a.scope_id, a.host, str(a)) == (2, "fe80::1%2", "[fe80::1%2]:443")


UNIX_FORMS = [
    ("unix:/tmp/janus.sock", "/tmp/janus.sock", False),
    ("unix:relative.sock", "relative.sock", False),
    ("/tmp/janus.sock", "/tmp/janus.sock", False),
    ("unix:@name", "name", True),
    # Rule 1 comes before the others: what follows `unix:` or `/` is a path, whatever it looks like.
    ("unix:[::1]:80", "[::1]:80", False),
    ("unix:127.0.0.1:80", "127.0.0.1:80", False),
    ("/1.2.3.4:80", "/1.2.3.4:80", False),
    ("unix:fd://3", "fd://3", False),
    ("unix:@", None, True),
    ("/", "/", False),
    ("unix:@@x", "@x", True),
    ("unix:/tmp/sp ace\n", "/tmp/sp ace\n", False),
]


def test_unix_forms() -> None:
    def check(text: str, path: str | None, abstract: bool) -> None:
        if path is None:
            invalid_address(text)  # `unix:@`: an empty abstract name
            return
        a = parse_address(text)
        assert type(a) is UnixAddress
        assert (a.path, a.abstract, a.port, a.unnamed) == (path, abstract, None, False)
        assert str(a) == ("unix:@" if abstract else "unix:") + path
        assert_round_trips(a)

    each(UNIX_FORMS, check)


# --- Rule 0: fd://


def test_malformed_fd_forms_are_invalid_address() -> None:
    each(["fd://", "fd://x", "fd://-1", "fd://+3", "fd:// 3", "fd://\u0663", "fd://3:80", "fd://3 "], invalid_address)


# --- Rule 1: unix paths


def test_empty_unix_path() -> None:
    each(["unix:", "unix:@"], lambda text: _has("empty", invalid_address(text)))


def test_nul_in_unix_path() -> None:
    each(["unix:/tmp/a\0b", "/tmp/\0", "unix:\0", "unix:@a\0b", "unix:@\0"], lambda t: _has("NUL", invalid_address(t)))


def _has(word: str, err: jn.SocketError) -> None:
    assert word in str(err), err


def test_sun_path_size_is_linux_108() -> None:
    assert platform.SUN_PATH_SIZE == 108
    assert platform.HAS_ABSTRACT_UNIX


def test_sun_path_limit_exactly() -> None:
    def check(prefix: str) -> None:
        # The bytes counted exclude `unix:` and `@`, but include a path's leading `/`.
        lead = "/" if prefix.endswith("/") else ""
        fits = prefix + "a" * (LIMIT - len(lead))
        a = parse_address(fits)
        assert isinstance(a, UnixAddress) and len(os.fsencode(a.path)) == LIMIT
        assert_round_trips(a)
        _has(f"at most {LIMIT}", invalid_address(fits + "a"))

    each(["unix:/", "/", "unix:@", "unix:"], check)


def test_sun_path_limit_counts_fsencoded_bytes() -> None:
    def check(abstract: bool) -> None:
        # "é" is two bytes in UTF-8: 53 of them after a one-byte lead fill 107 bytes.
        lead = "@x" if abstract else "/"
        name = lead + "é" * ((LIMIT - 1) // 2)
        assert len(os.fsencode(name.removeprefix("@"))) == LIMIT
        a = parse_address("unix:" + name)
        assert isinstance(a, UnixAddress) and a.abstract is abstract
        assert_round_trips(a)
        # One more byte: still only 55 characters, far under 107, but 108 bytes.
        over = "unix:" + name + "x"
        assert len(over) < LIMIT
        invalid_address(over)

    each([False, True], check)


def test_unix_path_with_undecodable_bytes_round_trips() -> None:
    # A non-UTF-8 file name arrives as a surrogateescape'd str; it is one byte.
    a = parse_address("unix:/tmp/\udcff")
    assert isinstance(a, UnixAddress) and os.fsencode(a.path) == b"/tmp/\xff"
    assert_round_trips(a)


def test_unencodable_unix_path_is_invalid_address() -> None:
    # A lone surrogate outside the surrogateescape range has no bytes: UnicodeError must not escape.
    each(["unix:/tmp/\ud800", "unix:@\udfff\ud800", "/\ud83d"], lambda t: _has("encoded", invalid_address(t)))


# --- Rule 2: brackets


BRACKET_ERRORS = [
    ("[::1", "]"),
    ("[", "]"),
    ("[::1]", "port"),
    ("[::1]443", "port"),
    ("[::1]]:443", "port"),
    ("[::1] :443", "port"),
    ("[]:443", "IPv6"),
    ("[1.2.3.4]:443", "IPv6"),
    ("[localhost]:443", "IPv6"),
    ("[[::1]]:443", "port"),
    ("[::1 ]:443", "IPv6"),
    ("[:::1]:443", "IPv6"),
    ("[fe80::1%nosuchif0]:443", "interface"),
    ("[fe80::1%" + "a" * 40 + "]:443", "interface"),
    ("[fe80::1%lo" + "x" * 20 + "]:443", "interface"),
    ("[fe80::1%%]:443", "IPv6"),
    ("[fe80::1%]:443", "IPv6"),
    ("[fe80::1%lo%]:443", "IPv6"),
    ("[fe80::1% lo]:443", "interface"),
    ("[fe80::1%lo ]:443", "interface"),
    ("[fe80::1%+1]:443", "interface"),
    ("[fe80::1%-1]:443", "interface"),
    ("[fe80::1%0x1]:443", "interface"),
    ("[fe80::1%\u0662]:443", "interface"),  # Arabic-Indic 2 is not an index
    ("[fe80::1%\uff12]:443", "interface"),  # fullwidth 2 neither
    ("[fe80::1%lo\0]:443", "interface"),
    ("[fe80::1%\ud800]:443", "interface"),
    ("[fe80::1%4294967296]:443", "range"),
    ("[fe80::1%" + "9" * 30 + "]:443", "range"),
    # int() refuses more than 4300 digits with ValueError; that must not escape.
    ("[fe80::1%" + "1" * 5000 + "]:443", "range"),
]


def test_bracket_errors() -> None:
    each(BRACKET_ERRORS, lambda text, why: _has(why, invalid_address(text)))


def test_numeric_zone_values() -> None:
    def check(zone: str, index: int) -> None:
        a = parse_address(f"[fe80::1%{zone}]:443")
        assert isinstance(a, Ip6Address) and a.scope_id == index
        # Zone 0 is "no zone" (RFC 4007's default zone) and prints as none.
        assert str(a) == (f"[fe80::1%{index}]:443" if index else "[fe80::1]:443")
        assert_round_trips(a)

    each([("0", 0), ("00", 0), ("02", 2), ("0000000000000000000002", 2), ("4294967295", 2**32 - 1)], check)


def test_zone_zero_equals_no_zone() -> None:
    assert parse_address("[fe80::1%0]:443") == parse_address("[fe80::1]:443")


# --- Rule 3: HOST:PORT


def test_no_colon() -> None:
    each(["", "8080", "127.0.0.1", "localhost", "@name", "relative.sock", "\u0668\u0660"], invalid_address)


def test_unbracketed_ipv6() -> None:
    texts = ["::1:443", "::443", "fe80::1:80", "::ffff:1.2.3.4:80", "1:2:80", "a:b:c"]
    each(texts, lambda text: _has("brackets", invalid_address(text)))


def test_host_names_are_not_resolved() -> None:
    def check(text: str) -> None:
        message = str(invalid_address(text))
        assert "IP literal" in message and "not resolved" in message

    each(["localhost:80", "example.com:443", "foo:bar", "my-host:8080", "x:0"], check)


# fmt: off
NOT_DOTTED_QUADS = [
    "01.2.3.4", "1.02.3.4", "1.2.3.004", "00.0.0.0", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-1", "1..2.3",
    "1.2.3.4.", ".1.2.3", "0x7f.0.0.1", "127.1", "2130706433", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n",
    "\u0661.2.3.4", "\uff11.2.3.4", "1.2.3.4%lo", "1_0.2.3.4", "+1.2.3.4",
]
# fmt: on


def test_strict_dotted_quad() -> None:
    def check(host: str) -> None:
        with pytest.raises(ValueError):
            ipaddress.IPv4Address(host)  # the oracle rejects it too
        invalid_address(f"{host}:80")
        with pytest.raises(InvalidAddress):
            Ip4Address(host)

    each(NOT_DOTTED_QUADS, check)


# --- Rule 4: the port


# fmt: off
PORT_TRAPS = [
    "8_080", " 80", "80 ", "+80", "-1", "0x50", "65536", "99999", "123456", "000000", "", "\u0668\u0660",
    "\uff18\uff10", "\u0968\u0966", "8\u00a00", "80\n", "1e3", "80.0", "\u00b2", "\U0001d7ce",
]
# fmt: on


def test_port_traps() -> None:
    # int() accepts several of these ("8_080", " 80", "+80", non-ASCII digits); the grammar does not.
    def check(port: str) -> None:
        for text in (f":{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"[fe80::1%lo]:{port}"):
            _has(repr(port), invalid_port(text))

    each(PORT_TRAPS, check)


def test_valid_ports() -> None:
    def check(port: str, value: int) -> None:
        a = parse_address(f"1.2.3.4:{port}")
        assert isinstance(a, Ip4Address) and a.port == value and str(a) == f"1.2.3.4:{value}"

    each([("0", 0), ("1", 1), ("00080", 80), ("65535", 65535), ("08080", 8080)], check)


def test_host_errors_come_before_port_errors() -> None:
    texts = ["foo:bar", "foo:", "01.2.3.4:x", "::1:x", "[foo]:bar", "[::1:x", "[fe80::1%nosuchif]:+1", "[::1]x:y"]
    each(texts, invalid_address)


def test_non_text_is_invalid_address() -> None:
    for value in (b"127.0.0.1:80", 8080, None, ("127.0.0.1", 80)):
        with pytest.raises(InvalidAddress):
            parse_address(value)  # type: ignore[arg-type]


# --- Canonical text


CANONICAL = [
    ("0.0.0.0:0", "0.0.0.0", "0.0.0.0:0"),
    ("255.255.255.255:65535", "255.255.255.255", "255.255.255.255:65535"),
    ("[0:0:0:0:0:0:0:1]:1", "::1", "[::1]:1"),
    ("[::]:1", "::", "[::]:1"),
    ("[2001:DB8::1]:1", "2001:db8::1", "[2001:db8::1]:1"),
    ("[2001:0db8:0000:0000:0001:0000:0000:0001]:1", "2001:db8::1:0:0:1", "[2001:db8::1:0:0:1]:1"),
    ("[2001:db8:0:1:1:1:1:1]:1", "2001:db8:0:1:1:1:1:1", "[2001:db8:0:1:1:1:1:1]:1"),
    ("[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", "[::ffff:1.2.3.4]:1"),
    ("[::FFFF:0102:0304]:1", "::ffff:1.2.3.4", "[::ffff:1.2.3.4]:1"),
    ("[0:0:0:0:0:ffff:7f00:1]:1", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]:1"),
    ("[::1.2.3.4]:1", "::102:304", "[::102:304]:1"),  # IPv4-compatible is not mapped
    ("[fe80::1%02]:443", "fe80::1%2", "[fe80::1%2]:443"),
    ("[::ffff:1.2.3.4%3]:1", "::ffff:1.2.3.4%3", "[::ffff:1.2.3.4%3]:1"),
]


def test_canonical_ip_text() -> None:
    def check(text: str, host: str, canonical: str) -> None:
        a = parse_address(text)
        assert isinstance(a, (Ip4Address, Ip6Address))
        assert (a.host, str(a)) == (host, canonical)
        assert_round_trips(a)

    each(CANONICAL, check)


def test_ip6_host_is_the_oracles_text() -> None:
    a = parse_address("[2001:db8:0:0:1:0:0:1]:1")
    assert isinstance(a, Ip6Address)
    assert a.host == str(ipaddress.IPv6Address("2001:db8:0:0:1:0:0:1")) == str(a.ip)


def test_from_ip4() -> None:
    a = Ip6Address.from_ip4(Ip4Address("192.0.2.7", 5353))
    assert (a.host, a.port, str(a)) == ("::ffff:192.0.2.7", 5353, "[::ffff:192.0.2.7]:5353")
    assert a.is_ip4_mapped and a.ip.ipv4_mapped == ipaddress.IPv4Address("192.0.2.7")
    assert a == parse_address("[::ffff:192.0.2.7]:5353")
    assert_round_trips(a)


def test_unix_values() -> None:
    a = UnixAddress("/run/app.sock")
    assert (a.path, a.abstract, a.port, a.unnamed) == ("/run/app.sock", False, None, False)
    assert str(a) == "unix:/run/app.sock"
    b = UnixAddress("name", abstract=True)
    assert (b.path, b.abstract, b.port, b.unnamed, str(b)) == ("name", True, None, False, "unix:@name")
    assert b == parse_address("unix:@name")
    unnamed = UnixAddress("")
    assert unnamed.unnamed and str(unnamed) == "unix:"


def test_reprs_show_the_canonical_text() -> None:
    assert repr(parse_address(":1")) == "Ip4Address('0.0.0.0:1')"
    assert repr(parse_address("[::1]:1")) == "Ip6Address('[::1]:1')"
    assert repr(parse_address("/a")) == "UnixAddress('unix:/a')"


# --- Value semantics


SAMPLES = ["127.0.0.1:9000", "[::1]:443", "[fe80::1%2]:443", "unix:/tmp/a.sock", "unix:@name"]


def test_immutable() -> None:
    def check(text: str) -> None:
        a = parse_address(text)
        for name in ("host", "port", "path", "abstract", "scope_id", "_port", "_path", "anything"):
            with pytest.raises(AttributeError):
                setattr(a, name, 1)
            with pytest.raises(AttributeError):
                delattr(a, name)
        assert str(a) == str(parse_address(text))

    each(SAMPLES, check)


def test_hashable_and_equal_by_value() -> None:
    # Two parses of one text may share a value (parse_address caches); what is promised
    # is equality and hashing by value, checked here also between separately built ones.
    def check(text: str) -> None:
        a, b = parse_address(text), parse_address(text)
        assert a == b and hash(a) == hash(b)
        assert len({a, b}) == 1 and {a: 1}[b] == 1
        assert a != text  # never equal to its text

    each(SAMPLES, check)
    pairs = [
        (Ip4Address("1.2.3.4", 80), Ip4Address("1.2.3.4", 80)),
        (Ip6Address("fe80::1", 443, scope_id=2), Ip6Address("fe80::1%2", 443)),
        (UnixAddress("/tmp/a.sock"), UnixAddress("/tmp/a.sock")),
        (UnixAddress("name", abstract=True), UnixAddress("name", abstract=True)),
    ]
    for a, b in pairs:
        assert a is not b and a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_parse_cache_is_bounded_and_keeps_values_right() -> None:
    limit = addresses._PARSED_MAX
    texts = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:{i % 65536}" for i in range(limit + 300)]
    for text in texts:
        parse_address(text)
    assert len(addresses._PARSED) <= limit
    # Whatever was evicted or kept, every text still parses to the oracle's value.
    for text in texts[:5] + texts[-5:]:
        host, port = text.rsplit(":", 1)
        assert parse_address(text) == Ip4Address(ipaddress.IPv4Address(host), int(port))


def test_parse_errors_are_not_cached() -> None:
    for text in ("127.0.0.1:99999", "localhost:80", "[::1]:x"):
        for _ in range(2):
            fails(text)
        assert text not in addresses._PARSED


def test_named_zone_is_not_cached_but_numeric_zone_may_be() -> None:
    index = socket.if_nametoindex("lo")
    named, numeric = "[fe80::1%lo]:443", f"[fe80::1%{index}]:443"
    a, b = parse_address(named), parse_address(named)
    assert a == b and a is not b  # resolved afresh each time: the index of a name can change
    assert named not in addresses._PARSED
    assert parse_address(numeric) == a and numeric in addresses._PARSED


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_named_zone_is_resolved_by_the_kernel_on_every_parse() -> None:
    # if_nametoindex asks the kernel (ioctl SIOCGIFINDEX) each time the text is parsed.
    program = "import janus_net as jn\nfor _ in range(3): jn.parse_address('[fe80::1%lo]:443')"
    traced = subprocess.run(
        ["strace", "-f", "-e", "trace=ioctl", sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
    )
    assert traced.stderr.count("SIOCGIFINDEX") == 3, traced.stderr[-2000:]


def test_inequality() -> None:
    distinct = [
        Ip4Address("1.2.3.4", 80),
        Ip4Address("1.2.3.4", 81),
        Ip4Address("1.2.3.5", 80),
        Ip6Address.from_ip4(Ip4Address("1.2.3.4", 80)),
        Ip6Address("fe80::1", 80),
        Ip6Address("fe80::1", 80, scope_id=1),
        Ip6Address("fe80::1", 80, scope_id=2),
        UnixAddress("name"),
        UnixAddress("name", abstract=True),
        UnixAddress("/name"),
    ]
    for i, a in enumerate(distinct):
        for j, b in enumerate(distinct):
            assert (a == b) is (i == j), (a, b)
            assert (a != b) is (i != j), (a, b)
    assert len(set(distinct)) == len(distinct)


def test_flowinfo_is_not_part_of_equality() -> None:
    a, b = Ip6Address("::1", 1, flowinfo=5), Ip6Address("::1", 1)
    assert a == b and hash(a) == hash(b) and a.flowinfo == 5


def test_constructors_validate() -> None:
    for port in (-1, 65536, True, 80.0, "80", None):
        with pytest.raises(InvalidPort):
            Ip4Address("1.2.3.4", port)  # type: ignore[arg-type]
        with pytest.raises(InvalidPort):
            Ip6Address("::1", port)  # type: ignore[arg-type]
    for bad in ({"scope_id": -1}, {"scope_id": 2**32}, {"flowinfo": 2**32}, {"scope_id": True}):
        with pytest.raises(InvalidAddress):
            Ip6Address("fe80::1", 1, **bad)
    with pytest.raises(InvalidAddress):
        Ip6Address("fe80::1%2", 1, scope_id=3)  # the zone and scope_id disagree
    assert Ip6Address("fe80::1%2", 1, scope_id=2).scope_id == 2
    with pytest.raises(InvalidAddress):
        Ip6Address("1.2.3.4")
    with pytest.raises(InvalidAddress):
        UnixAddress(b"/tmp/a")  # type: ignore[arg-type]
    lo = socket.if_nametoindex("lo")
    assert Ip6Address(ipaddress.IPv6Address("fe80::1%lo")).scope_id == lo
    assert Ip6Address(ipaddress.IPv6Address("fe80::1%lo")) == Ip6Address("fe80::1", scope_id=lo)
    # The zone of an ipaddress value is held to the same rule as the zone in text.
    with pytest.raises(InvalidAddress):
        Ip6Address(ipaddress.IPv6Address("fe80::1%lo"), scope_id=lo + 1)
    assert Ip6Address(ipaddress.IPv6Address("fe80::1%2"), scope_id=2).scope_id == 2
    with pytest.raises(InvalidAddress):
        Ip6Address(ipaddress.IPv6Address("fe80::1%nosuchif0"))


def test_unencodable_unix_value_raises_instead_of_overflowing() -> None:
    """A UnixAddress built directly obeys the parser's rules when it is encoded.

    Unchecked, a 500-byte path would be memmoved into the 108-byte sun_path: a heap
    overflow that aborts the interpreter (``malloc(): invalid size``).
    """

    def check(address: UnixAddress) -> None:
        with pytest.raises(InvalidAddress) as info:
            _ = address.sockaddr
        assert info.value.address == str(address)

    values = [
        UnixAddress("x" * (LIMIT + 1)),
        UnixAddress("x" * 500, abstract=True),
        UnixAddress("a\0b"),
        UnixAddress(""),
        UnixAddress("/tmp/\ud800"),
    ]
    each(values, check)


# --- Hypothesis: nothing but the two parse errors, and round trips

PARSE_ERRORS = (InvalidAddress, InvalidPort)

#: Pieces that steer random text towards the grammar's corners.
# fmt: off
TOKENS = [
    *string.digits, *"abcdefABCDEF", ":", "::", "[", "]", "%", ".", "@", "/", "unix:", "fd://", "lo", "eth0",
    "ffff", "255", "256", "65535", "65536", "0x", "_", "+", "-", " ", "\n", "\0", "\u0668", "\uff18", "\u0663",
    "\u00e9", "\ud800", "\udcff", "\U0001f600", "1.2.3.4", "::1", "fe80::1", "%0", "%lo", "9" * 12,
]
# fmt: on

address_like = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)


def check_parse(text: str) -> None:
    try:
        a = parse_address(text)
    except PARSE_ERRORS as err:
        assert type(err) in PARSE_ERRORS  # and nothing derived from ValueError/UnicodeError
        str(err)  # the message itself must format
        return
    assert_round_trips(a)
    if isinstance(a, FdAddress):
        # Rule 0: an inherited descriptor, which has no sockaddr.
        assert text.startswith("fd://")
        return
    assert type(a) in (Ip4Address, Ip6Address, UnixAddress)
    # Whatever parses can be encoded (no sun_path overflow, no bad field).
    assert a.sockaddr.length > 0


FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_arbitrary_text_only_raises_parse_errors(text: str) -> None:
    check_parse(text)


@settings(max_examples=2000, deadline=None)
@given(address_like)
def test_address_like_text_only_raises_parse_errors(text: str) -> None:
    check_parse(text)


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(["", "unix:", "unix:@", "/", "[", "[fe80::1%", ":", "1.2.3.4:"]), st.text())
def test_prefixed_text_only_raises_parse_errors(prefix: str, rest: str) -> None:
    check_parse(prefix + rest)


ports = st.integers(0, 65535)
mapped = st.ip_addresses(v=4).map(lambda ip: ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed))


@settings(max_examples=600, deadline=None)
@given(st.ip_addresses(v=4), ports)
def test_random_ipv4_matches_the_oracle(ip: ipaddress.IPv4Address, port: int) -> None:
    a = parse_address(f"{ip}:{port}")
    assert isinstance(a, Ip4Address)
    assert (a.host, a.port, a.ip) == (str(ip), port, ip)
    assert_round_trips(a)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.ip_addresses(v=6), mapped), ports, st.sampled_from(["compressed", "exploded", "upper", "dotted"]))
def test_random_ipv6_matches_the_oracle(ip: ipaddress.IPv6Address, port: int, spelling: str) -> None:
    text = {
        "compressed": ip.compressed,
        "exploded": ip.exploded,
        "upper": ip.exploded.upper(),
        "dotted": mapped_text(ip),
    }[spelling]
    a = parse_address(f"[{text}]:{port}")
    assert isinstance(a, Ip6Address)
    assert (a.host, a.port, a.ip, a.scope_id) == (mapped_text(ip), port, ip, 0)
    assert a.is_ip4_mapped is (ip.ipv4_mapped is not None)
    assert_round_trips(a)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=6), ports, st.sampled_from([i for i, _ in socket.if_nameindex()]))
def test_random_ipv6_with_zone(ip: ipaddress.IPv6Address, port: int, index: int) -> None:
    name = socket.if_indextoname(index)
    by_name, by_index = parse_address(f"[{ip}%{name}]:{port}"), parse_address(f"[{ip}%{index}]:{port}")
    assert by_name == by_index
    assert isinstance(by_name, Ip6Address) and by_name.host == f"{mapped_text(ip)}%{index}"
    assert_round_trips(by_name)


@st.composite
def mutated(draw: st.DrawFn, literal: st.SearchStrategy[str], alphabet: str) -> str:
    """A valid literal with a few random insertions, deletions and replacements."""
    text = draw(literal)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(alphabet))
        if edit == "insert":
            text = text[:at] + char + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    return text


def oracle_accepts(cls: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str) -> bool:
    try:
        cls(text)
    except ValueError:
        return False
    return True


IP4_NOISE = string.digits + "..0 x+-_\n\u0668\uff18\u00b2a"
IP6_NOISE = string.hexdigits + "::..0 gx+-_\n\u0668\uff18\u00b2"


@settings(max_examples=800, deadline=None)
@given(mutated(st.ip_addresses(v=4).map(str), IP4_NOISE))
def test_mutated_ipv4_accepted_iff_the_oracle_accepts(host: str) -> None:
    if not host:
        return  # the empty host is the wildcard, a rule of its own
    accepted = oracle_accepts(ipaddress.IPv4Address, host)
    try:
        a = parse_address(f"{host}:80")
    except InvalidAddress:
        assert not accepted, host
    else:
        assert accepted, host
        assert isinstance(a, Ip4Address) and a.host == str(ipaddress.IPv4Address(host))


@settings(max_examples=800, deadline=None)
@given(mutated(st.one_of(st.ip_addresses(v=6).map(str), mapped.map(mapped_text)), IP6_NOISE))
def test_mutated_ipv6_accepted_iff_the_oracle_accepts(host: str) -> None:
    accepted = oracle_accepts(ipaddress.IPv6Address, host)
    try:
        a = parse_address(f"[{host}]:80")
    except InvalidAddress:
        assert not accepted, host
    else:
        assert accepted, host
        assert isinstance(a, Ip6Address) and a.host == mapped_text(ipaddress.IPv6Address(host))


octet_like = st.one_of(
    st.integers(0, 999).map(str),
    st.integers(0, 255).map(lambda n: f"0{n}"),
    st.sampled_from(["", "256", "-1", "+1", " 1", "1 ", "0x1", "\u0661", "\uff11", "1_0", "00", "1e1"]),
)
dotted_like = st.lists(octet_like, min_size=1, max_size=6).map(".".join)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(dotted_like, st.text()))
def test_anything_the_oracle_rejects_is_invalid_address_as_a_host(host: str) -> None:
    if not host or host.startswith(("unix:", "/", "[", "fd://")):
        return  # those are rules 0-2 and the wildcard, not a host
    if oracle_accepts(ipaddress.IPv4Address, host):
        a = parse_address(f"{host}:80")
        assert isinstance(a, Ip4Address) and a.ip == ipaddress.IPv4Address(host)
        return
    with pytest.raises(InvalidAddress):
        parse_address(f"{host}:80")
    with pytest.raises(InvalidAddress):
        Ip4Address(host)


# --- Well-formed IPv6 addresses that bind only with a zone (the kernel's EINVAL)


def kernel_bind_errno(ip: ipaddress.IPv6Address, kind: int = socket.SOCK_DGRAM) -> int:
    """What Linux says to a stdlib socket binding ``ip`` with no scope id (0: it bound)."""
    with socket.socket(socket.AF_INET6, kind) as s:
        try:
            s.bind((str(ip), 0, 0, 0))
        except OSError as err:
            return err.errno or -1
    return 0


link_scoped = st.one_of(
    st.ip_addresses(v=6),
    st.ip_addresses(network="fe80::/10"),
    st.ip_addresses(network="ff00::/8"),
    st.tuples(st.integers(0, 15), st.integers(0, 15), st.binary(min_size=14, max_size=14)).map(
        lambda t: ipaddress.IPv6Address(bytes([0xFF, t[0] << 4 | t[1]]) + t[2])
    ),
)


@settings(max_examples=300, deadline=None)
@given(link_scoped)
def test_needs_zone_agrees_with_the_kernel(ip: ipaddress.IPv6Address) -> None:
    a = Ip6Address(ip, 0)
    assert a.needs_zone is (kernel_bind_errno(ip) == errno.EINVAL), ip


def test_zoneless_link_local_is_address_unavailable_not_errno_bug() -> None:
    """Binding fe80::1 without a zone is EINVAL from the kernel: a user's mistake, not our bug."""
    assert kernel_bind_errno(ipaddress.IPv6Address("fe80::1")) == errno.EINVAL  # the cause is real
    for text in ("[fe80::1]:0", "[fe80::1%0]:0", "[ff02::1]:0"):
        for open_ in (jn.listen, jn.bind):
            with pytest.raises(jn.SocketError.AddressUnavailable) as info:
                open_(text)
            err = info.value
            assert (err.errno, err.syscall) == (None, "bind")  # refused before any syscall
            assert "%eth0" in str(err)  # and the message shows how to name the interface


def test_ipv6_multicast_stream_is_address_unavailable_not_errno_bug() -> None:
    group = ipaddress.IPv6Address("ff05::1")
    assert kernel_bind_errno(group, socket.SOCK_STREAM) == errno.EINVAL  # the cause is real
    assert kernel_bind_errno(group, socket.SOCK_DGRAM) == 0
    for attempt in (lambda: jn.listen("[ff05::1]:0"), lambda: jn.bind("[ff05::1]:0", mode=jn.Mode.STREAM)):
        with pytest.raises(jn.SocketError.AddressUnavailable) as info:
            attempt()
        assert info.value.errno is None and "multicast" in str(info.value)
    with jn.bind("[ff05::1]:0") as udp:  # a datagram socket may bind a group
        assert isinstance(udp.address, Ip6Address) and udp.address.ip == group
