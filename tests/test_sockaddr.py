"""The C side of addresses: encoding into sockaddr structs and decoding what the kernel wrote.

Encoding is checked twice, each time against something janus_net did not write:
the bytes, field by field, against `socket.inet_pton` and `struct.pack` in network
order at the offsets the C compiler chose; and the kernel itself, by binding or
connecting a *stdlib* socket with janus_net's encoded struct and asking the stdlib
what it got (``getsockname``/``getpeername``). Decoding is checked by binding and
accepting with janus_net and comparing ``.address`` with the stdlib's view of the
same descriptor.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peers import stdlib_view

import janus_net as jn
from janus_net import platform
from janus_net._kernel import sockets
from janus_net._profiles.addresses import parse_address
from janus_net._shim import ffi, lib
from janus_net._values import sockaddr
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.reported import from_sockaddr
from janus_net._values.unix import UnixAddress

LIMIT = platform.SUN_PATH_SIZE - 1


# --- Helpers


def parse(text: str) -> jn.Address:
    """`parse_address` for text that names a socket address (never fd://)."""
    address = parse_address(text)
    assert isinstance(address, (Ip4Address, Ip6Address, UnixAddress))
    return address


def raw(encoded: sockaddr.Encoded) -> bytes:
    """The bytes of an encoded sockaddr, exactly ``length`` of them."""
    return bytes(ffi.buffer(encoded.struct, encoded.length))


def field(encoded: sockaddr.Encoded, struct_name: str, name: str) -> bytes:
    """One field's bytes, at the offset and size the C compiler gave it."""
    fields = dict(ffi.typeof(f"struct {struct_name}").fields)
    offset, size = fields[name].offset, ffi.sizeof(fields[name].type)
    return raw(encoded)[offset : offset + size]


def family_of(encoded: sockaddr.Encoded, struct_name: str, name: str) -> int:
    return int.from_bytes(field(encoded, struct_name, name), sys.byteorder)


@contextmanager
def stdlib_bound(family: int, kind: int, address: jn.Address) -> Iterator[socket.socket]:
    """A stdlib socket bound through janus_net's encoded sockaddr (the kernel judges the bytes)."""
    s = socket.socket(family, kind)
    try:
        encoded = address.sockaddr
        sockets.bind(s.fileno(), encoded.pointer, encoded.length, unix=family == socket.AF_UNIX)
        yield s
    finally:
        s.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path, so sun_path's limit is reachable with room to spare."""
    with tempfile.TemporaryDirectory(prefix="jn", dir="/tmp") as d:
        yield Path(d)


def link_local() -> tuple[str, int, str] | None:
    """A usable link-local address of this host, from the kernel's own table (not janus_net)."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hexaddr, index, _prefix, scope, flags, name = line.split()
        if scope == "20" and not int(flags, 16) & 0x40:  # link scope, not tentative
            return str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))), int(index, 16), name
    return None


# --- Encoding: bytes


def test_ip4_bytes() -> None:
    a = Ip4Address("192.0.2.33", 0x1234)
    enc = a.sockaddr
    assert enc.length == ffi.sizeof("struct sockaddr_in")
    assert family_of(enc, "sockaddr_in", "sin_family") == socket.AF_INET
    assert field(enc, "sockaddr_in", "sin_port") == struct.pack("!H", 0x1234) == b"\x12\x34"
    assert field(enc, "sockaddr_in", "sin_addr") == socket.inet_pton(socket.AF_INET, "192.0.2.33")


def test_ip6_bytes() -> None:
    a = Ip6Address("2001:db8::1:2", 443, flowinfo=0xABCDE, scope_id=0x01020304)
    enc = a.sockaddr
    assert enc.length == ffi.sizeof("struct sockaddr_in6")
    assert family_of(enc, "sockaddr_in6", "sin6_family") == socket.AF_INET6
    assert field(enc, "sockaddr_in6", "sin6_port") == b"\x01\xbb"
    assert field(enc, "sockaddr_in6", "sin6_addr") == socket.inet_pton(socket.AF_INET6, "2001:db8::1:2")
    # flowinfo travels in network order; the scope id is an interface index in host order.
    assert field(enc, "sockaddr_in6", "sin6_flowinfo") == struct.pack("!I", 0xABCDE)
    assert field(enc, "sockaddr_in6", "sin6_scope_id") == struct.pack("=I", 0x01020304)


def test_unix_path_bytes() -> None:
    enc = UnixAddress("/tmp/a.sock").sockaddr
    offset = ffi.offsetof("struct sockaddr_un", "sun_path")
    assert family_of(enc, "sockaddr_un", "sun_family") == socket.AF_UNIX
    # The path and its NUL, and the length counts the NUL.
    assert enc.length == offset + len(b"/tmp/a.sock") + 1
    assert raw(enc)[offset:] == b"/tmp/a.sock\0"


def test_abstract_bytes_have_no_trailing_nul() -> None:
    enc = UnixAddress("name", abstract=True).sockaddr
    offset = ffi.offsetof("struct sockaddr_un", "sun_path")
    assert enc.length == offset + 1 + len(b"name")
    assert raw(enc)[offset:] == b"\0name"


def test_unix_at_the_limit_fills_sun_path() -> None:
    enc = UnixAddress("p" * LIMIT).sockaddr
    assert enc.length == ffi.sizeof("struct sockaddr_un")
    enc = UnixAddress("n" * LIMIT, abstract=True).sockaddr
    assert enc.length == ffi.sizeof("struct sockaddr_un")


def test_encode_unix_refuses_what_does_not_fit() -> None:
    # The last guard before ffi.memmove, which does not bound-check.
    for abstract in (False, True):
        assert sockaddr.encode_unix(b"x" * LIMIT, abstract).length == ffi.sizeof("struct sockaddr_un")
        with pytest.raises(ValueError):
            sockaddr.encode_unix(b"x" * (LIMIT + 1), abstract)


# --- Encoding: the kernel and the stdlib judge it


def test_ip4_encoding_binds_and_connects() -> None:
    with stdlib_bound(socket.AF_INET, socket.SOCK_STREAM, Ip4Address("127.0.0.2", 0)) as s:
        assert s.getsockname()[0] == "127.0.0.2"
        s.listen()
        port = s.getsockname()[1]
        # A port in the wrong byte order would connect elsewhere (or be refused).
        with socket.socket() as client:
            target = Ip4Address("127.0.0.2", port).sockaddr
            sockets.connect(client.fileno(), target.pointer, target.length)
            assert client.getpeername() == ("127.0.0.2", port)
            conn, peer = s.accept()
            conn.close()
            assert peer == client.getsockname()


def test_ip6_encoding_binds_and_connects() -> None:
    with stdlib_bound(socket.AF_INET6, socket.SOCK_STREAM, Ip6Address("::1", 0)) as s:
        assert s.getsockname()[:1] == ("::1",)
        s.listen()
        port = s.getsockname()[1]
        with socket.socket(socket.AF_INET6) as client:
            target = parse(f"[::1]:{port}").sockaddr
            sockets.connect(client.fileno(), target.pointer, target.length)
            assert client.getpeername() == ("::1", port, 0, 0)
            s.accept()[0].close()


def test_ip4_mapped_encoding_reaches_an_ipv4_peer() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.socket(socket.AF_INET6) as client:
            client.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            target = Ip6Address.from_ip4(Ip4Address("127.0.0.1", port)).sockaddr
            sockets.connect(client.fileno(), target.pointer, target.length)
            assert client.getpeername()[:2] == ("::ffff:127.0.0.1", port)
            server.accept()[0].close()


def test_scope_id_encoding_binds_a_link_local_address() -> None:
    found = link_local()
    if found is None:
        pytest.skip("this host has no usable link-local IPv6 address")
    host, index, name = found
    for text in (f"[{host}%{name}]:0", f"[{host}%{index}]:0"):
        with stdlib_bound(socket.AF_INET6, socket.SOCK_DGRAM, parse(text)) as s:
            got_host, _port, _flow, scope = s.getsockname()
            assert (got_host.split("%")[0], scope) == (host, index)


def test_unix_path_encoding_binds_at_the_limit(short_dir: Path) -> None:
    path = str(short_dir) + "/" + "p" * (LIMIT - len(str(short_dir)) - 1)
    assert len(os.fsencode(path)) == LIMIT
    with stdlib_bound(socket.AF_UNIX, socket.SOCK_STREAM, parse("unix:" + path)) as s:
        assert s.getsockname() == path
        s.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            s.accept()[0].close()


def test_abstract_encoding_binds_without_a_trailing_nul() -> None:
    name = f"jn-sockaddr-{os.getpid()}"
    with stdlib_bound(socket.AF_UNIX, socket.SOCK_STREAM, parse(f"unix:@{name}")) as s:
        # A counted trailing NUL would make the kernel's name b"\0name\0".
        assert s.getsockname() == b"\0" + name.encode()
        s.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect("\0" + name)
            s.accept()[0].close()


def test_abstract_encoding_at_the_limit() -> None:
    name = (f"jn{os.getpid()}-" + "n" * LIMIT)[:LIMIT]
    with stdlib_bound(socket.AF_UNIX, socket.SOCK_DGRAM, parse(f"unix:@{name}")) as s:
        assert s.getsockname() == b"\0" + name.encode()


# --- Decoding what the kernel wrote, compared with the stdlib's view


def test_decode_ip4_listener_and_peer() -> None:
    with jn.listen("127.0.0.1:0") as server, stdlib_view(server) as view:
        assert server.address == Ip4Address(*view.getsockname())
        assert server.address.port != 0
        port = server.address.port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port)) as client, server.accept() as stream:
            assert stream.address == Ip4Address(*client.getsockname())


def test_decode_ip4_datagram_source() -> None:
    with jn.bind("127.0.0.1:0") as udp, stdlib_view(udp) as view:
        assert udp.address == Ip4Address(*view.getsockname())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind(("127.0.0.1", 0))
            sender.sendto(b"x", ("127.0.0.1", udp.address.port))
            data, source = udp.receive()
            assert (data, source) == (b"x", Ip4Address(*sender.getsockname()))


def test_decode_ip6_listener_and_peer() -> None:
    with jn.listen("[::1]:0") as server, stdlib_view(server) as view:
        host, port, flowinfo, scope = view.getsockname()
        assert server.address == Ip6Address(host, port, flowinfo, scope)
        assert isinstance(server.address, Ip6Address)
        assert (server.address.flowinfo, server.address.scope_id) == (flowinfo, scope)
        with socket.create_connection(("::1", port)) as client, server.accept() as stream:
            host, port, flowinfo, scope = client.getsockname()
            assert stream.address == Ip6Address(host, port, flowinfo, scope)


def test_decode_ip4_mapped_peer() -> None:
    with jn.listen("[::]:0", ip6_only=False) as server:
        port = server.address.port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port)) as client, server.accept() as stream:
            address = stream.address
            assert isinstance(address, Ip6Address) and address.is_ip4_mapped
            assert address == Ip6Address.from_ip4(Ip4Address(*client.getsockname()))
            with stdlib_view(stream) as view:
                assert view.getpeername()[:2] == (address.host, address.port)


def test_decode_link_local_scope() -> None:
    found = link_local()
    if found is None:
        pytest.skip("this host has no usable link-local IPv6 address")
    host, index, name = found
    with jn.bind(f"[{host}%{name}]:0") as udp, stdlib_view(udp) as view:
        assert isinstance(udp.address, Ip6Address) and udp.address.scope_id == index
        _host, port, flowinfo, scope = view.getsockname()
        assert (udp.address.port, udp.address.flowinfo, scope) == (port, flowinfo, index)
        assert str(udp.address) == f"[{host}%{index}]:{port}"


def test_decode_unix_path_and_named_peer(short_dir: Path) -> None:
    path, peer_path = str(short_dir / "s"), str(short_dir / "peer")
    with jn.listen("unix:" + path) as server, stdlib_view(server) as view:
        assert server.address == UnixAddress(view.getsockname()) == UnixAddress(path)
        with socket.socket(socket.AF_UNIX) as client:
            client.bind(peer_path)
            client.connect(path)
            with server.accept() as stream:
                assert stream.address == UnixAddress(peer_path)
                assert isinstance(stream.address, UnixAddress) and not stream.address.unnamed


def test_decode_undecodable_path(short_dir: Path) -> None:
    path = os.fsdecode(os.fsencode(str(short_dir)) + b"/\xff\xfe")
    with jn.listen("unix:" + path) as server, stdlib_view(server) as view:
        assert isinstance(server.address, UnixAddress)
        assert os.fsencode(server.address.path) == os.fsencode(view.getsockname())
        assert parse_address(str(server.address)) == server.address


def test_decode_unnamed_peer() -> None:
    name = f"jn-unnamed-{os.getpid()}"
    with jn.listen(f"unix:@{name}") as server, stdlib_view(server) as view:
        assert server.address == UnixAddress(name, abstract=True)
        assert view.getsockname() == b"\0" + name.encode()
        with socket.socket(socket.AF_UNIX) as client:  # never bound
            client.connect("\0" + name)
            with server.accept() as stream:
                assert stream.address == UnixAddress("")
                assert isinstance(stream.address, UnixAddress) and stream.address.unnamed
                assert (stream.address.path, stream.address.abstract) == ("", False)
                with stdlib_view(stream) as stream_view:
                    assert stream_view.getpeername() in ("", b"")  # the stdlib agrees: no name


def test_decode_autobound_peer() -> None:
    # bind("") asks Linux for an autobind: an abstract name of five hex digits.
    name = f"jn-autobind-{os.getpid()}"
    with jn.listen(f"unix:@{name}") as server, socket.socket(socket.AF_UNIX) as client:
        client.bind("")
        client.connect("\0" + name)
        with server.accept() as stream:
            kernel_name = client.getsockname()
            assert isinstance(kernel_name, bytes) and kernel_name[:1] == b"\0"
            assert stream.address == UnixAddress(kernel_name[1:].decode(), abstract=True)


def test_decode_unknown_family_raises_value_error() -> None:
    for family in (socket.AF_APPLETALK, socket.AF_UNSPEC, socket.AF_PACKET):
        storage = ffi.new("struct sockaddr_storage *")
        ffi.cast("struct sockaddr *", storage).sa_family = family
        with pytest.raises(ValueError, match=f"family {int(family)}"):
            sockaddr.decode(storage, ffi.sizeof("struct sockaddr_storage"))
        with pytest.raises(ValueError):
            from_sockaddr(storage, ffi.sizeof("struct sockaddr_storage"))


def test_decode_a_real_netlink_sockaddr_raises_value_error() -> None:
    # A family the kernel really hands back, which has no janus_net address type.
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.bind((0, 0))
        storage, length = sockets.getsockname(nl.fileno())
        assert ffi.cast("struct sockaddr *", storage).sa_family == socket.AF_NETLINK
        with pytest.raises(ValueError):
            from_sockaddr(storage, length)


def test_decode_unix_lengths() -> None:
    offset = platform.SUN_PATH_OFFSET
    storage = ffi.new("struct sockaddr_storage *")
    un = ffi.cast("struct sockaddr_un *", storage)
    un.sun_family = lib.AF_UNIX
    ffi.memmove(un.sun_path, b"/a/b\0garbage", 12)
    # The kernel may or may not count the NUL; bytes beyond the length are never read.
    assert from_sockaddr(storage, offset + 4) == UnixAddress("/a/b")
    assert from_sockaddr(storage, offset + 5) == UnixAddress("/a/b")
    assert from_sockaddr(storage, offset + 2) == UnixAddress("/a")
    assert from_sockaddr(storage, offset) == UnixAddress("")
    # A length past the struct (a truncated report) is clamped to sun_path.
    ffi.memmove(un.sun_path, b"x" * platform.SUN_PATH_SIZE, platform.SUN_PATH_SIZE)
    long = from_sockaddr(storage, ffi.sizeof("struct sockaddr_storage"))
    assert isinstance(long, UnixAddress) and long.path == "x" * platform.SUN_PATH_SIZE
    # Abstract: every byte up to the length is the name, NULs included.
    ffi.memmove(un.sun_path, b"\0ab\0c", 5)
    assert from_sockaddr(storage, offset + 5) == UnixAddress("ab\0c", abstract=True)


# --- Round trip through the structs, and ownership


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_encode_decode_round_trip(ip: Any, port: int, flowinfo: int, scope_id: int) -> None:
    if ip.version == 4:
        address: Ip4Address | Ip6Address = Ip4Address(ip, port)
    else:
        address = Ip6Address(ip, port, flowinfo=flowinfo, scope_id=scope_id)
    enc = address.sockaddr
    decoded = from_sockaddr(enc.struct, enc.length)
    assert decoded == address and type(decoded) is type(address)
    if isinstance(decoded, Ip6Address):
        assert decoded.flowinfo == flowinfo
    assert raw(decoded.sockaddr) == raw(enc)


def test_address_owns_its_encoding() -> None:
    for text in ("127.0.0.1:9", "[::1]:9", "[fe80::1%1]:9", "unix:/tmp/x", "unix:@x"):
        a = parse(text)
        first = a.sockaddr
        assert a.sockaddr is first  # encoded once, kept
        assert a.sockaddr.struct is first.struct and a.sockaddr.pointer is first.pointer
        # An equal address built separately has its own struct with the same bytes.
        # (Parsing the same text again may hand back the very same value: parse_address caches.)
        b: Ip4Address | Ip6Address | UnixAddress
        if isinstance(a, Ip4Address):
            b = Ip4Address(a.ip, a.port)
        elif isinstance(a, Ip6Address):
            b = Ip6Address(a.ip, a.port, a.flowinfo, a.scope_id)
        else:
            assert isinstance(a, UnixAddress)
            b = UnixAddress(a.path, abstract=a.abstract)
        assert b == a and b is not a
        assert b.sockaddr.struct is not first.struct and raw(b.sockaddr) == raw(first)


def test_decoded_address_owns_its_encoding() -> None:
    with jn.listen("127.0.0.1:0") as server:
        address = server.address
        assert address.sockaddr is address.sockaddr
        with stdlib_view(server) as view:
            assert field(address.sockaddr, "sockaddr_in", "sin_port") == struct.pack("!H", view.getsockname()[1])
