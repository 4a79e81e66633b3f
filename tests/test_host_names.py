"""The host-name check and the strict literal test (DESIGN §17), and the `Resolution` value.

Everything here is decided before any I/O: a refused name raises before the audit event, and
no descriptor is opened (the autouse fixture counts them).
"""

from __future__ import annotations

import copy
import pickle
import socket
import sys
from collections.abc import Iterator

import pytest

import janus_net as jn
from janus_net._values.host_names import HostName, check_host_name, literal


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "example.com",
        "Example.COM.",
        "_dmarc.example.com",
        "xn--bcher-kva.example",
        "a-b.c_d.e",
        "1.2.3",  # digits alone are a name when they are no literal
        "127.1",  # inet_aton would take it; DESIGN §4 does not
        "0x7f.0.0.1",
        "010.0.0.1",
        "1.2.3.4.5",
        "a" * 63 + ".com",
    ],
)
def test_good_names_pass(text: str) -> None:
    name = check_host_name(text)
    assert name.name == text.rstrip(".")
    assert name.absolute == text.endswith(".")
    assert name.dots == text.rstrip(".").count(".")


def test_the_length_bound_is_253_bytes_without_the_trailing_dot() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    assert check_host_name(name).name == name
    assert check_host_name(name + ".").absolute
    with pytest.raises(jn.SocketError.InvalidHostName, match="253"):
        check_host_name(name + "e")
    with pytest.raises(jn.SocketError.InvalidHostName):
        check_host_name(name + "e.")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (".", "empty"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("a" * 64 + ".com", "63"),
        ("a b", "only letters"),
        ("a\0b", "only letters"),
        ("a\nb", "only letters"),
        ("a%b", "only letters"),
        ("a/b", "only letters"),
        ("a\\.b", "only letters"),
        ("[::1]", "IPv6"),
        ("a:b", "IPv6"),
        ("1.2.3.4:80", "IPv6"),
        ("fe80::1%no-such-interface-xyz", "interface"),
        ("\u2603.example", "IDNA"),  # a snowman: IDNA 2008 disallows symbols
    ],
)
def test_bad_names_are_invalid_host_name(text: str, why: str) -> None:
    with pytest.raises(jn.SocketError.InvalidHostName, match=why) as info:
        jn.resolve(text)
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, jn.SocketError)
    assert error.errno is None and error.address == text
    assert "\n" not in str(error) and "\0" not in str(error)


def test_non_ascii_names_are_idna_encoded_uts46() -> None:
    assert check_host_name("bücher.example").name == "xn--bcher-kva.example"
    # UTS 46 maps before encoding: upper case and full-width letters fold.
    assert check_host_name("BÜCHER.example.").name == "xn--bcher-kva.example"
    assert check_host_name("".join(chr(0xFEE0 + ord(c)) for c in "example") + ".com").name == "example.com"
    assert check_host_name("faß.de").name == "xn--fa-hia.de"  # non-transitional: ß stays


def test_idna_is_imported_only_for_a_non_ascii_name() -> None:
    import subprocess

    code = (
        "import sys, janus_net as jn\n"
        "jn.resolve('localhost'); jn.resolve('127.0.0.1')\n"
        "assert 'idna' not in sys.modules, 'idna loaded for an ASCII name'\n"
        "jn.resolve('b\\u00fccher.localhost')\n"
        "assert 'idna' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_non_str_is_a_type_error() -> None:
    for value in (b"example.com", None, 1, ["a"]):
        with pytest.raises(TypeError):
            jn.resolve(value)  # type: ignore[arg-type]


class _Evil(str):
    def lower(self) -> str:
        return "localhost"

    def __str__(self) -> str:
        return "localhost"


def test_a_str_subclass_is_checked_by_its_value() -> None:
    with pytest.raises(jn.SocketError.InvalidHostName):
        jn.resolve(_Evil("a b"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1:0"),
        ("0.0.0.0", "0.0.0.0:0"),
        ("::1", "[::1]:0"),
        ("::ffff:1.2.3.4", "[::ffff:1.2.3.4]:0"),
        ("fe80::1%1", "[fe80::1%1]:0"),
    ],
)
def test_literals_in_the_strict_forms(text: str, expected: str) -> None:
    found = literal(text)
    assert found is not None and str(found) == expected


@pytest.mark.parametrize("text", ["127.1", "010.0.0.1", "0x7f.0.0.1", "1.2.3.4.", "256.0.0.1", "localhost", "1e3"])
def test_not_literals(text: str) -> None:
    assert literal(text) is None


@pytest.fixture
def audit_events() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    seen: list[tuple[str, tuple[object, ...]]] = []
    active = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if active[0] and event == "janus_net.resolve":
            seen.append((event, args))

    sys.addaudithook(hook)
    yield seen
    active[0] = False  # audit hooks cannot be removed


def test_audit_event_after_the_check_and_before_any_io(audit_events: list[tuple[str, tuple[object, ...]]]) -> None:
    with pytest.raises(jn.SocketError.InvalidHostName):
        jn.resolve("bad name")
    assert audit_events == []
    jn.resolve("127.0.0.1", 80)
    jn.resolve("LocalHost.")
    assert audit_events == [("janus_net.resolve", ("127.0.0.1",)), ("janus_net.resolve", ("LocalHost.",))]


def test_literal_is_itself_with_no_io() -> None:
    r = jn.resolve("127.0.0.1", 8080)
    assert r.addresses == (jn.Ip4Address("127.0.0.1", 8080),)
    assert r.source == "literal" and r.canonical_name == "127.0.0.1"
    r6 = jn.resolve("fe80::1%1", 443, family=socket.AF_INET6)
    assert r6.addresses == (jn.Ip6Address("fe80::1", 443, scope_id=1),)
    with pytest.raises(jn.SocketError.UnknownHostName) as info:
        jn.resolve("127.0.0.1", family=socket.AF_INET6)
    assert info.value.name == "127.0.0.1"


@pytest.mark.parametrize("text", ["localhost", "LOCALHOST.", "a.b.localhost", "x.LocalHost"])
def test_localhost_is_loopback_with_no_io(text: str) -> None:
    r = jn.resolve(text, 9, config=jn.ResolverConfig(nameservers=(), hosts="/nonexistent/hosts"))
    assert r.source == "localhost"
    assert set(r.addresses) == {jn.Ip6Address("::1", 9), jn.Ip4Address("127.0.0.1", 9)}
    assert jn.resolve(text, family=socket.AF_INET).addresses == (jn.Ip4Address("127.0.0.1"),)
    assert jn.resolve(text, family=socket.AF_INET6).addresses == (jn.Ip6Address("::1"),)


def test_bad_arguments() -> None:
    with pytest.raises(jn.SocketError.InvalidPort):
        jn.resolve("localhost", 65536)
    with pytest.raises(jn.SocketError.InvalidPort):
        jn.resolve("localhost", True)
    with pytest.raises(ValueError):
        jn.resolve("localhost", family=socket.AF_UNIX)
    with pytest.raises(TypeError):
        jn.resolve("localhost", family=True)
    with pytest.raises(TypeError):
        jn.resolve("localhost", ctx=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        jn.resolve("localhost", config="resolv.conf")  # type: ignore[arg-type]


def test_a_done_context_ends_before_any_io() -> None:
    ctx = jn.Context()
    ctx.cancel()
    with pytest.raises(jn.SocketError.Timeout):
        jn.resolve("localhost", ctx=ctx)


# --- Resolution


def test_resolution_is_a_small_immutable_value() -> None:
    r = jn.Resolution((jn.Ip4Address("192.0.2.1", 80), jn.Ip6Address("2001:db8::1", 80)), "www.example.com", "dns")
    assert pickle.loads(pickle.dumps(r)) == r
    assert copy.copy(r) is r and copy.deepcopy(r) is r
    assert hash(r) == hash(jn.Resolution(r.addresses, "www.example.com", "dns"))
    assert r != jn.Resolution(r.addresses, "www.example.com", "files")
    assert repr(r) == "Resolution(('192.0.2.1:80', '[2001:db8::1]:80'), 'www.example.com', 'dns')"
    with pytest.raises(AttributeError):
        r.source = "files"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        r.other = 1  # type: ignore[attr-defined]
    assert not hasattr(r, "__dict__")
    with pytest.raises(ValueError):
        jn.Resolution((), "x", "cache")
    with pytest.raises(TypeError):
        jn.Resolution((jn.UnixAddress("/x"),), "x", "dns")  # type: ignore[arg-type]


def test_host_name_value() -> None:
    assert check_host_name("A.b.") == HostName("a.B", True)
    assert hash(check_host_name("A.b.")) == hash(HostName("a.b", True))
    assert repr(check_host_name("a.b.")) == "HostName('a.b.')"
