"""The test DNS server itself (tests/dns_server.py), checked with dnspython's client and stdlib sockets.

Every name test trusts this server's replies; here each behaviour is shown to be what it claims, with no
janus_net code involved.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from dns_server import DECOY_A, Behaviour, DnsServer, Zone, header, query_parts


def ask(
    server: DnsServer, name: str, qtype: str = "A", *, tcp: bool = False, timeout: float = 5
) -> dns.message.Message:
    query = dns.message.make_query(name, qtype)
    if tcp:
        return dns.query.tcp(query, server.host, port=server.port, timeout=timeout)
    return dns.query.udp(query, server.host, port=server.port, timeout=timeout, ignore_unexpected=True)


def addresses(reply: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in reply.answer if rrset.rdtype in (1, 28) for rd in rrset}


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_zone_answers_over_udp_and_tcp_on_one_port(host: str) -> None:
    with DnsServer(host) as server:
        server.add("www.example.com", a=["192.0.2.1", "192.0.2.2"], aaaa=["2001:db8::1"])
        assert addresses(ask(server, "www.example.com", "A")) == {"192.0.2.1", "192.0.2.2"}
        assert addresses(ask(server, "WWW.Example.COM.", "AAAA", tcp=True)) == {"2001:db8::1"}
        assert server.names() == [("www.example.com", "A"), ("www.example.com", "AAAA")]
        assert [q.transport for q in server.queries()] == ["udp", "tcp"]
        assert server.nameserver == (f"[::1]:{server.port}" if host == "::1" else f"127.0.0.1:{server.port}")


def test_rcodes_nodata_and_nxdomain() -> None:
    with DnsServer() as server:
        server.add("v4only.example", a=["192.0.2.7"])
        server.on("fail.example", rcode="SERVFAIL")
        server.on("refused.example", rcode="REFUSED")
        server.on("empty.example", nodata=True)
        nodata = ask(server, "v4only.example", "AAAA")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert ask(server, "missing.example").rcode() == dns.rcode.NXDOMAIN
        assert ask(server, "fail.example").rcode() == dns.rcode.SERVFAIL
        assert ask(server, "refused.example").rcode() == dns.rcode.REFUSED
        assert ask(server, "empty.example").answer == []


def test_cname_chain_and_nxdomain_at_its_end() -> None:
    with DnsServer() as server:
        server.add_cname("a.example", "b.example")
        server.add_cname("b.example", "c.example")
        server.add("c.example", a=["192.0.2.3"])
        server.add_cname("dangling.example", "nowhere.example")
        reply = ask(server, "a.example")
        assert [rrset.rdtype for rrset in reply.answer] == [5, 5, 1]
        assert addresses(reply) == {"192.0.2.3"}
        dangling = ask(server, "dangling.example")
        assert dangling.rcode() == dns.rcode.NXDOMAIN and dangling.answer[0].rdtype == 5


def test_truncated_udp_then_full_tcp_and_natural_truncation() -> None:
    with DnsServer() as server:
        server.add("tc.example", a=["192.0.2.9"])
        server.on("tc.example", truncate=True)
        server.add("big.example", a=[f"10.0.{i // 250}.{i % 250}" for i in range(100)])  # > 512 bytes
        udp = ask(server, "tc.example")
        assert udp.flags & dns.flags.TC and not udp.answer
        assert addresses(ask(server, "tc.example", tcp=True)) == {"192.0.2.9"}
        assert ask(server, "big.example").flags & dns.flags.TC
        assert len(addresses(ask(server, "big.example", tcp=True))) == 100


def test_delay_per_qtype_blackhole_and_log_times() -> None:
    with DnsServer() as server:
        server.add("slow.example", a=["192.0.2.1"], aaaa=["2001:db8::1"])
        server.on("slow.example", "AAAA", delay=0.3)
        server.on("hole.example", blackhole=True)
        start = time.monotonic()
        ask(server, "slow.example", "A")
        fast = time.monotonic() - start
        ask(server, "slow.example", "AAAA")
        slow = time.monotonic() - start - fast
        assert slow >= 0.3  # the delay is a floor; no upper bound asserted (the machine is shared)
        with pytest.raises(dns.exception.Timeout):
            ask(server, "hole.example", timeout=0.3)
        log = server.queries()
        assert log[0].time <= log[1].time <= log[2].time


def test_decoys_reach_an_unconnected_socket_but_the_real_reply_follows() -> None:
    with DnsServer() as server:
        server.add("d.example", a=["192.0.2.5"])
        server.on("d.example", decoys=("wrong_id", "wrong_source", "wrong_address", "wrong_question", "qr_unset"))
        query = dns.message.make_query("d.example", "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(query.to_wire(), (server.host, server.port))
            received = [client.recvfrom(4096) for _ in range(6)]
        sources = [source for _, source in received]
        assert sources.count((server.host, server.port)) == 4  # wrong id, wrong question, QR unset, real
        assert any(host == "127.0.0.2" for host, _ in sources)
        assert any(host == server.host and port != server.port for host, port in sources)
        real = dns.message.from_wire(received[-1][0])
        assert real.id == query.id and addresses(real) == {"192.0.2.5"}
        first = dns.message.from_wire(received[0][0])
        assert first.id != query.id and addresses(first) == {DECOY_A}
        assert not received[4][0][2] & 0x80  # QR unset


def test_decoys_only_and_connected_socket_filters_the_other_ports() -> None:
    with DnsServer() as server:
        server.on("x.example", decoys=("wrong_source", "wrong_id"), real=False)
        query = dns.message.make_query("x.example", "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(1)
            client.connect((server.host, server.port))
            client.send(query.to_wire())
            data = client.recv(4096)
            assert dns.message.from_wire(data).id != query.id  # only the wrong id got through the filter
            with pytest.raises(TimeoutError):
                client.recv(4096)


def test_raw_udp_and_tcp_bytes_drip_and_close() -> None:
    def crafted(query: bytes) -> bytes:
        qid, question, _ = query_parts(query)
        return header(qid, an=9) + question  # claims 9 answers, has none

    with DnsServer() as server:
        server.on("raw.example", udp_raw=crafted, tcp_raw=lambda q: b"\xff\xff\x00")
        server.on("drip.example", tcp_drip=0.01)
        server.on("closed.example", tcp_close=True)
        query = dns.message.make_query("raw.example", "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(query.to_wire(), (server.host, server.port))
            data, _ = client.recvfrom(4096)
        assert struct.unpack("!HHHH", data[:8])[3] == 9
        with socket.create_connection((server.host, server.port), timeout=5) as conn:
            wire = dns.message.make_query("raw.example", "A").to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)
            assert conn.recv(100) == b"\xff\xff\x00"
        drip = ask(server, "drip.example", tcp=True)
        assert drip.rcode() == dns.rcode.NOERROR
        with socket.create_connection((server.host, server.port), timeout=5) as conn:
            wire = dns.message.make_query("closed.example", "A").to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)
            assert conn.recv(100) == b""


def test_shared_zone_default_and_malformed_query_logged() -> None:
    zone = Zone()
    zone.default = Behaviour(rcode="SERVFAIL")  # names the zone lacks
    zone.add("shared.example", a=["192.0.2.4"])
    with DnsServer(zone=zone) as one, DnsServer(zone=zone) as two:
        assert addresses(ask(one, "shared.example")) == addresses(ask(two, "shared.example")) == {"192.0.2.4"}
        two.on("other.example", rcode="REFUSED")
        assert ask(one, "other.example").rcode() == dns.rcode.REFUSED  # rules live in the zone
        assert ask(two, "unknown.example").rcode() == dns.rcode.SERVFAIL
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"\x12\x34garbage", (one.host, one.port))
        one.wait_for_queries(3)
        assert one.queries()[-1].name is None and one.queries()[-1].id == 0x1234


def test_close_stops_the_thread_and_closes_every_socket() -> None:
    before = {t.ident for t in threading.enumerate()}
    server = DnsServer()
    server.on("slow.example", delay=30)
    conn = socket.create_connection((server.host, server.port), timeout=5)
    wire = dns.message.make_query("slow.example", "A").to_wire()
    conn.sendall(struct.pack("!H", len(wire)) + wire)
    server.wait_for_queries(1)
    server.close()
    assert conn.recv(10) == b""  # the server's end of the connection was closed
    conn.close()
    assert {t.ident for t in threading.enumerate()} == before


def test_behaviour_refuses_unknown_decoys_and_rcodes() -> None:
    with pytest.raises(ValueError):
        Behaviour(decoys=("nonsense",))
    with pytest.raises(dns.rcode.UnknownRcode):
        Behaviour(rcode="NOSUCH")
