"""The attacker's round: crafted and random replies from the test server against jn.resolve.

Whatever a server (or anyone who can reach the client's port) sends, a lookup ends with an answer or with
one of the typed errors (UnknownHostName, NameServerFailure, Timeout), never another exception, never an
address the question did not ask for, and with every descriptor closed and no thread left. Replies are
hand-rolled bytes (tests/dns_server.py's wire pieces), so nothing of janus_net's codec judges itself.

Two shapes of test: a crafted reply ALONE (the lookup must end typed, within its timeout), and a crafted
reply FOLLOWED by the real one (the crafted one must be ignored: the answer is exactly the real one, and
quickly, which makes hundreds of hypothesis examples affordable).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dns_server import (
    DECOY_A,
    DECOY_AAAA,
    QUESTION_NAME,
    TYPES,
    DnsServer,
    address_rdata,
    encode_name,
    header,
    pointer,
    query_parts,
    record,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from names_fixtures import ResolverFiles, config_for, resolver_files, socket_fds, sockets_left

import janus_net as jn

__all__ = ["resolver_files"]  # a fixture, used by name

TYPED = (jn.SocketError.UnknownHostName, jn.SocketError.NameServerFailure, jn.SocketError.Timeout)
REAL = {TYPES["A"]: "192.0.2.200", TYPES["AAAA"]: "2001:db8::200"}
EVIL = {TYPES["A"]: DECOY_A, TYPES["AAAA"]: DECOY_AAAA}
Crafter = Callable[[bytes], "bytes | list[bytes]"]


def real_reply(query: bytes) -> bytes:
    """The honest answer, hand-rolled: the question echoed, one address record pointing at it."""
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question + record(QUESTION_NAME, qtype, address_rdata(qtype, REAL[qtype]))


def evil_record(qtype: int, owner: bytes = QUESTION_NAME, **lies: int) -> bytes:
    return record(owner, qtype, address_rdata(qtype, EVIL[qtype]), **lies)


def outcome(server: DnsServer, name: str = "h.example", **fields: object) -> object:
    """Resolve ``name`` against ``server``: the set of address texts, or the typed error's class.

    Anything else propagates (the test fails). A 20 s context guards against a lookup that never ends.
    """
    fields.setdefault("timeout", 1)
    config = config_for(server, **fields)
    before = socket_fds()
    threads = threading.active_count()
    try:
        resolution = jn.resolve(name, config=config, ctx=jn.Context.with_timeout(20))
        result: object = {a.host for a in resolution.addresses}
    except TYPED as error:
        result = type(error)
    assert sockets_left(before, server) == set(), "a socket of the lookup was left open"
    assert threading.active_count() == threads
    if isinstance(result, set):
        assert not result & {DECOY_A, DECOY_AAAA}, f"an address the question did not ask for: {result}"
    return result


# --- crafted replies, alone ------------------------------------------------------------------------


def _pointer_to_itself(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    at = 12 + len(question)
    return header(qid, an=1) + question + evil_record(qtype, owner=pointer(at))


def _pointer_pair_loop(query: bytes) -> bytes:
    # The answer's owner: a label then a pointer to the second record's owner, which points back.
    qid, question, qtype = query_parts(query)
    first = 12 + len(question)
    first_record = evil_record(qtype, owner=b"\x01a" + pointer(0))  # placeholder, patched below
    second = first + len(first_record)
    first_record = evil_record(qtype, owner=b"\x01a" + pointer(second))
    second_record = evil_record(qtype, owner=b"\x01b" + pointer(first))
    return header(qid, an=2) + question + first_record + second_record


def _forward_pointer(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    first = 12 + len(question)
    after = first + len(evil_record(qtype, owner=pointer(0)))
    body = evil_record(qtype, owner=pointer(after))  # points at the name that follows this record
    return header(qid, an=1) + question + body + encode_name("h.example")


def _pointer_past_the_end(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question + evil_record(qtype, owner=pointer(0x3FFF))


def _pointer_into_the_header(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question + evil_record(qtype, owner=pointer(2))


def _pointer_in_the_question(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + pointer(12) + question[-4:] + evil_record(qtype)


def _huge_counts(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=0xFFFF, ns=0xFFFF, ar=0xFFFF) + question + evil_record(qtype)


def _no_question(query: bytes) -> bytes:
    qid, _, qtype = query_parts(query)
    return header(qid, qd=0, an=1) + evil_record(qtype, owner=encode_name("h.example"))


def _two_questions(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, qd=2, an=1) + question + question + evil_record(qtype)


def _rdlength_past_the_end(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question + evil_record(qtype, rdlength=500)


def _rdlength_wrong_for_the_type(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    rdata = address_rdata(qtype, EVIL[qtype])
    return (
        header(qid, an=1) + question + record(QUESTION_NAME, qtype, rdata[:-1] + b"\x00\x00", rdlength=len(rdata) + 1)
    )


def _truncated_record(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return (header(qid, an=1) + question + evil_record(qtype))[:-3]


def _reserved_label_type(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question + evil_record(qtype, owner=b"\x41" + b"a" * 65 + b"\x00")


def _name_over_255(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    long_owner = (b"\x3f" + b"a" * 63) * 5 + b"\x00"
    return header(qid, an=1) + question + evil_record(qtype, owner=long_owner)


def _qr_unset(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, flags=0x0180, an=1) + question + evil_record(qtype)


def _opcode_notify(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, flags=0x8180 | (4 << 11), an=1) + question + evil_record(qtype)


def _other_question(query: bytes) -> bytes:
    qid, _, qtype = query_parts(query)
    question = encode_name("evil.example") + struct.pack("!HH", qtype, 1)
    return header(qid, an=1) + question + evil_record(qtype)


def _other_qtype(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    other = TYPES["AAAA"] if qtype == TYPES["A"] else TYPES["A"]
    return header(qid, an=1) + question[:-4] + struct.pack("!HH", other, 1) + evil_record(other)


def _other_class(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question[:-2] + struct.pack("!H", 3) + evil_record(qtype)


def _wrong_id(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    return header(qid ^ 0x8001, an=1) + question + evil_record(qtype)


def _answer_for_another_owner(query: bytes) -> bytes:
    # A well-formed reply whose only address belongs to a name outside the question and its chain.
    qid, question, qtype = query_parts(query)
    return header(qid, an=1) + question + evil_record(qtype, owner=encode_name("evil.example"))


def _wrong_type_in_the_answer(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    other = TYPES["AAAA"] if qtype == TYPES["A"] else TYPES["A"]
    return header(qid, an=1) + question + evil_record(other)


def _address_of_class_chaos(query: bytes) -> bytes:
    qid, question, qtype = query_parts(query)
    rr = QUESTION_NAME + struct.pack("!HHIH", qtype, 3, 60, 4 if qtype == 1 else 16) + address_rdata(qtype, EVIL[qtype])
    return header(qid, an=1) + question + rr


def _cname_to_itself(query: bytes) -> bytes:
    qid, question, _ = query_parts(query)
    return header(qid, an=1) + question + record(QUESTION_NAME, TYPES["CNAME"], QUESTION_NAME)


def _short_header(query: bytes) -> bytes:
    return query[:2] + b"\x81\x80\x00"


def _header_only(query: bytes) -> bytes:
    qid, _, _ = query_parts(query)
    return header(qid, qd=0)


def _trailing_garbage(query: bytes) -> bytes:
    return real_reply(query) + os.urandom(40)


#: Replies that break a rule of the wire or do not match the question: each must be ignored as if never sent.
MALFORMED: dict[str, Crafter] = {
    "pointer to itself": _pointer_to_itself,
    "pointer pair loop": _pointer_pair_loop,
    "forward pointer": _forward_pointer,
    "pointer past the end": _pointer_past_the_end,
    "pointer into the header": _pointer_into_the_header,
    "pointer in the question": _pointer_in_the_question,
    "counts of 65535": _huge_counts,
    "no question": _no_question,
    "two questions": _two_questions,
    "rdlength past the end": _rdlength_past_the_end,
    "truncated record": _truncated_record,
    "reserved label type": _reserved_label_type,
    "name over 255 bytes": _name_over_255,
    "QR unset": _qr_unset,
    "opcode NOTIFY": _opcode_notify,
    "another question": _other_question,
    "another qtype": _other_qtype,
    "another class": _other_class,
    "wrong id": _wrong_id,
    "short header": _short_header,
    "header only": _header_only,
    "empty datagram": lambda q: b"\x00",
}

#: Replies that match the question but carry nothing usable: a reader may count them as "no address" (an
#: empty answer) or drop them, but never take the record the question did not ask for.
USELESS: dict[str, Crafter] = {
    "an answer for another owner": _answer_for_another_owner,
    "the other address type": _wrong_type_in_the_answer,
    "class CHAOS": _address_of_class_chaos,
    "CNAME to itself": _cname_to_itself,
    "rdlength wrong for the type": _rdlength_wrong_for_the_type,
}

CRAFTED = {**MALFORMED, **USELESS}


@pytest.mark.parametrize("craft", list(CRAFTED.values()), ids=list(CRAFTED))
def test_a_crafted_reply_alone_ends_typed(resolver_files: ResolverFiles, craft: Crafter) -> None:
    with DnsServer() as server:
        server.on("h.example", udp_raw=craft)
        result = outcome(server)
        assert result in TYPED or isinstance(result, set)
        assert result != {DECOY_A} and result != {DECOY_AAAA}


@pytest.mark.parametrize("craft", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_reply_before_the_real_one_is_ignored(resolver_files: ResolverFiles, craft: Crafter) -> None:
    with DnsServer() as server:
        server.on("h.example", udp_raw=lambda q: [craft(q), real_reply(q)])
        assert outcome(server, timeout=5) == {REAL[1], REAL[28]}


@pytest.mark.parametrize("craft", list(USELESS.values()), ids=list(USELESS))
def test_a_useless_reply_before_the_real_one_gives_no_stray_address(
    resolver_files: ResolverFiles, craft: Crafter
) -> None:
    with DnsServer() as server:
        server.on("h.example", udp_raw=lambda q: [craft(q), real_reply(q)])
        result = outcome(server, timeout=5)
        assert result == jn.SocketError.UnknownHostName or (isinstance(result, set) and result <= {REAL[1], REAL[28]})


def test_trailing_garbage_after_a_real_reply_is_typed_or_the_real_answer(resolver_files: ResolverFiles) -> None:
    with DnsServer() as server:
        server.on("h.example", udp_raw=_trailing_garbage)
        assert outcome(server) in ({REAL[1], REAL[28]}, jn.SocketError.NameServerFailure)


def test_cname_loop_and_overlong_chain_from_the_zone(resolver_files: ResolverFiles) -> None:
    with DnsServer() as server:
        server.add_cname("loop-a.example", "loop-b.example")
        server.add_cname("loop-b.example", "loop-a.example")
        for i in range(40):
            server.add_cname(f"c{i}.example", f"c{i + 1}.example")
        server.add("c40.example", a=["192.0.2.201"])
        assert outcome(server, "loop-a.example") in TYPED
        assert outcome(server, "c0.example") in (*TYPED, {"192.0.2.201"})
        assert outcome(server, "c30.example") == {"192.0.2.201"}  # 10 links: within any sane bound


# --- TCP: length prefixes, drips, closes ----------------------------------------------------------


def _framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


TCP_CRAFTED: dict[str, Crafter] = {
    "a length of 65535 and 3 bytes": lambda q: b"\xff\xff" + real_reply(q)[:3],
    "a length of 0": lambda q: b"\x00\x00",
    "a length of 1": lambda q: b"\x00\x01\x00",
    "a length shorter than the message": lambda q: struct.pack("!H", 8) + real_reply(q),
    "a length-prefixed pointer loop": lambda q: _framed(_pointer_to_itself(q)),
    "a wrong id over TCP": lambda q: _framed(_wrong_id(q)),
    "two replies, the first one wrong": lambda q: _framed(_wrong_id(q)) + _framed(real_reply(q)),
    "random bytes": lambda q: os.urandom(300),
}


@pytest.mark.parametrize("craft", list(TCP_CRAFTED.values()), ids=list(TCP_CRAFTED))
def test_a_crafted_tcp_reply_ends_typed(resolver_files: ResolverFiles, craft: Crafter) -> None:
    with DnsServer() as server:
        server.on("h.example", truncate=True, tcp_raw=craft)
        result = outcome(server)
        assert result in TYPED or result == {REAL[1], REAL[28]}


def test_a_tcp_connection_closed_at_once_ends_typed(resolver_files: ResolverFiles) -> None:
    with DnsServer() as server:
        server.on("h.example", truncate=True, tcp_close=True)
        assert outcome(server) in TYPED


def test_a_truncated_reply_with_no_tcp_server_ends_typed(resolver_files: ResolverFiles) -> None:
    with DnsServer(tcp=False) as server:  # TCP connect is refused
        server.on("h.example", truncate=True)
        assert outcome(server) in TYPED


def test_a_slow_drip_does_not_stretch_the_timeout(resolver_files: ResolverFiles) -> None:
    # One byte every 0.5 s: a timer restarted by each byte would take a minute; timeout 1 s, attempts 1.
    with DnsServer() as server:
        server.on("h.example", truncate=True, tcp_drip=0.5)
        start = time.monotonic()
        result = outcome(server)
        assert result in TYPED
        assert time.monotonic() - start < 15  # the guard context is 20 s; a per-byte timer would be ~60 s


# --- random replies (hypothesis) ------------------------------------------------------------------

FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def test_random_bytes_then_the_real_reply(resolver_files: ResolverFiles) -> None:
    with DnsServer() as server:

        @FAST
        @given(st.binary(max_size=700))
        def check(garbage: bytes) -> None:
            server.on("h.example", udp_raw=lambda q: [garbage, real_reply(q)])
            assert outcome(server, timeout=5) == {REAL[1], REAL[28]}

        check()


def test_right_header_and_question_random_body_then_the_real_reply(resolver_files: ResolverFiles) -> None:
    # The id and the question match, so the reader goes deep into the records before refusing them.
    with DnsServer() as server:

        @FAST
        @given(
            st.integers(0, 0xFFFF),
            st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
            st.binary(max_size=500),
        )
        def check(flags: int, counts: tuple[int, int, int], body: bytes) -> None:
            def craft(query: bytes) -> list[bytes]:
                qid, question, _ = query_parts(query)
                an, ns, ar = counts
                hostile = header(qid, flags=flags | 0x8000, an=an, ns=ns, ar=ar) + question + body
                return [hostile, real_reply(query)]

            server.on("h.example", udp_raw=craft)
            result = outcome(server, timeout=5)
            # A body that happens to parse may answer first (NXDOMAIN, SERVFAIL, NODATA...): typed, or real.
            assert result in TYPED or isinstance(result, set)

        check()


def test_mutations_of_a_real_reply(resolver_files: ResolverFiles) -> None:
    with DnsServer() as server:

        @FAST
        @given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6), st.integers(12, 120))
        def check(flips: list[tuple[int, int]], cut: int) -> None:
            def craft(query: bytes) -> list[bytes]:
                reply = bytearray(real_reply(query))
                for at, value in flips:
                    if at < len(reply):
                        reply[at] = value
                return [bytes(reply[:cut]), real_reply(query)]  # the real one behind: no timeout to wait out

            server.on("h.example", udp_raw=craft)
            result = outcome(server, timeout=5)
            # A mutation that still reads as a matching reply may answer first (another address, an rcode).
            assert result in TYPED or isinstance(result, set)

        check()


# --- the parser itself: its fixed interface (janus_net._values.dns_message.parse_reply) -------------


@settings(max_examples=3000, deadline=None, database=None)
@given(st.binary(max_size=600), st.integers(0, 0xFFFF), st.sampled_from([1, 28]))
def test_parse_reply_never_raises_on_random_bytes(data: bytes, qid: int, qtype: int) -> None:
    from janus_net._values.dns_message import parse_reply

    reply = parse_reply(data, qid, "h.example", qtype)
    assert reply is None or hasattr(reply, "rcode")


@settings(max_examples=2000, deadline=None, database=None)
@given(st.binary(max_size=400), st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
def test_parse_reply_never_raises_past_a_matching_question(body: bytes, counts: tuple[int, int, int]) -> None:
    from janus_net._values.dns_message import parse_reply

    question = encode_name("h.example") + struct.pack("!HH", 1, 1)
    data = header(0x1234, an=counts[0], ns=counts[1], ar=counts[2]) + question + body
    reply = parse_reply(data, 0x1234, "h.example", 1)
    assert reply is None or hasattr(reply, "rcode")


@pytest.mark.parametrize("craft", list(CRAFTED.values()), ids=list(CRAFTED))
def test_parse_reply_on_crafted_replies_gives_no_evil_address(craft: Crafter) -> None:
    from janus_net._values.dns_message import parse_reply

    for qtype in (1, 28):
        query = header(0x4242, flags=0x0100) + encode_name("h.example") + struct.pack("!HH", qtype, 1)
        made = craft(query)
        for data in [made] if isinstance(made, bytes) else made:
            reply = parse_reply(data, 0x4242, "h.example", qtype)
            if reply is not None:
                assert EVIL[qtype] not in {getattr(a, "host", str(a)) for a in getattr(reply, "addresses", ())}


def test_a_flood_of_garbage_from_other_ports_during_a_lookup(resolver_files: ResolverFiles) -> None:
    # Spoofers aim at the client's port from everywhere while the real server is slow: the connected
    # socket filters them; the answer is the real one.
    with DnsServer() as server:
        server.on("h.example", delay=0.3, udp_raw=real_reply)
        stop = threading.Event()
        spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # made here: not counted as the lookup's

        def flood() -> None:
            queries = server.wait_for_queries(1)
            with spoofer:
                while not stop.is_set():
                    for query in queries:
                        try:
                            spoofer.sendto(_wrong_id(query.raw), query.source)
                            spoofer.sendto(os.urandom(64), query.source)
                        except OSError:
                            pass
                    queries = server.queries()

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            assert outcome(server, timeout=5) == {REAL[1], REAL[28]}
        finally:
            stop.set()
            flooder.join(10)


# --- the crafted replies are what their names say, by an independent reader (dnspython) ------------


#: dnspython compares the question sections as sets, so it takes a reply that repeats the one question;
#: janus_net wants exactly one question, as every resolver in practice sends.
_DNSPYTHON_LENIENT = {"two questions"}


@pytest.mark.parametrize(
    "craft",
    [c for n, c in MALFORMED.items() if n not in _DNSPYTHON_LENIENT],
    ids=[n for n in MALFORMED if n not in _DNSPYTHON_LENIENT],
)
def test_dnspython_too_refuses_or_mismatches_each_malformed_reply(craft: Crafter) -> None:
    import dns.exception
    import dns.message

    for qtype in ("A", "AAAA"):
        query = dns.message.make_query("h.example", qtype)
        made = craft(query.to_wire())
        data = made if isinstance(made, bytes) else made[0]
        try:
            reply = dns.message.from_wire(data)
        except dns.exception.DNSException:
            continue  # refused by the reader: malformed
        assert not query.is_response(reply), f"dnspython takes it as the answer: {reply}"


@pytest.mark.parametrize("craft", list(USELESS.values()), ids=list(USELESS))
def test_dnspython_reads_each_useless_reply_as_an_answer_without_the_address(craft: Crafter) -> None:
    import dns.exception
    import dns.message
    import dns.rdataclass
    import dns.rdatatype

    for qtype in ("A", "AAAA"):
        query = dns.message.make_query("h.example", qtype)
        data = craft(query.to_wire())
        assert isinstance(data, bytes)
        try:
            reply = dns.message.from_wire(data)
        except dns.exception.DNSException:
            # dnspython refuses the whole reply for a record it cannot read (an A of 5 bytes; a CHAOS "A",
            # which is a name and an address there): janus_net may drop it whole or skip the record.
            assert craft in (_rdlength_wrong_for_the_type, _address_of_class_chaos)
            continue
        assert query.is_response(reply)
        assert not reply.get_rrset(
            reply.answer, query.question[0].name, dns.rdataclass.IN, dns.rdatatype.from_text(qtype)
        )


# --- hostile files: resolv.conf and hosts are read, not trusted ------------------------------------

FILES = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

_CONF_WORDS = st.sampled_from(
    ["nameserver", "search", "domain", "options", "ndots:", "timeout:", "attempts:", "rotate", "edns0", "use-vc",
     "single-request", "127.0.0.1", "::1", "#", ";", "\t", " ", "\n", "\x00", "\xff", "ndots:-1",
     "ndots:99999999999999", "timeout:abc", "attempts:", "search .", "nameserver [::1]:53",
     "nameserver 999.1.1.1", "fe80::1%lo"]
)  # fmt: skip


@FILES
@given(st.one_of(st.binary(max_size=400), st.lists(_CONF_WORDS, max_size=40).map(lambda w: "".join(w).encode())))
def test_any_resolv_conf_loads_or_is_refused_typed(content: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".conf") as conf, tempfile.NamedTemporaryFile(suffix=".hosts") as hosts:
        conf.write(content)
        conf.flush()
        try:
            config = jn.ResolverConfig.load(conf.name, hosts.name)
        except jn.SocketError:
            return
        assert 1 <= len(config.nameservers) <= 3
        assert 0 <= config.ndots <= 15 and 1 <= config.timeout <= 30 and 1 <= config.attempts <= 5


_HOSTS_WORDS = st.sampled_from(
    ["192.0.2.1", "2001:db8::1", "fe80::1%lo", "h.example", "H.EXAMPLE", "#", " ", "\t", "\n", "\x00", "\xff",
     "999.1.1.1", "::ffff:1.2.3.4", "localhost", "a" * 70, "-", "..", "xn--", "bücher"]
)  # fmt: skip


@FILES
@given(st.one_of(st.binary(max_size=400), st.lists(_HOSTS_WORDS, max_size=40).map(lambda w: "".join(w).encode())))
def test_any_hosts_file_answers_or_falls_through_typed(content: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".conf") as conf, tempfile.NamedTemporaryFile(suffix=".hosts") as hosts:
        hosts.write(content)
        hosts.flush()
        conf.write(b"nameserver 127.0.0.1\n")
        conf.flush()
        with DnsServer() as server:  # asked when the hosts file has no answer: it knows nothing
            config = jn.ResolverConfig.load(conf.name, hosts.name).replace(
                nameservers=(server.nameserver,), timeout=1, attempts=1
            )
            try:
                resolution = jn.resolve("h.example", config=config)
            except (jn.SocketError.UnknownHostName, jn.SocketError.NameServerFailure):
                return
            assert resolution.source == "files"
            assert all(isinstance(a, (jn.Ip4Address, jn.Ip6Address)) for a in resolution.addresses)


def test_a_huge_hosts_file_is_refused_typed(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    hosts = tmp_path / "hosts"
    hosts.write_text(("192.0.2.1 " + "h" * 60 + "\n") * 140_000)  # about 10 MB
    with pytest.raises(jn.SocketError):
        config = jn.ResolverConfig.load(str(conf), str(hosts))
        jn.resolve("h.example", config=config)


# --- many lookups at once on many threads: no shared state between lookups -------------------------


def test_concurrent_lookups_on_many_threads(resolver_files: ResolverFiles) -> None:
    with DnsServer() as server:
        for i in range(16):
            server.add(f"n{i}.example", a=[f"192.0.2.{i + 1}"], aaaa=[f"2001:db8::{i + 1}"])
            server.on(f"n{i}.example", "AAAA", delay=0.05 * (i % 4))
        server.on("n3.example", decoys=("wrong_id", "wrong_question"))
        config = config_for(server, timeout=5, rotate=True)
        results: dict[int, object] = {}

        def lookup(i: int) -> None:
            try:
                results[i] = {a.host for a in jn.resolve(f"n{i}.example", config=config).addresses}
            except BaseException as error:  # recorded for the assertion below
                results[i] = error

        threads = [threading.Thread(target=lookup, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == {i: {f"192.0.2.{i + 1}", f"2001:db8::{i + 1}"} for i in range(16)}


# --- a TCP connect into a full accept queue (SYNs dropped): the try's timeout still holds ----------


@contextlib.contextmanager
def _full_tcp_queue(server: DnsServer) -> Iterator[None]:
    """A TCP listener on the UDP server's port whose accept queue is full: further SYNs are dropped."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((server.host, server.port))
        listener.listen(0)
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect((server.host, server.port))
            except BlockingIOError:
                pass
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_tcp_fallback_into_a_blackhole_ends_with_the_try(resolver_files: ResolverFiles) -> None:
    for _ in range(20):  # the UDP port's number may be taken for TCP (another test's connection): another one
        with DnsServer(tcp=False) as server, contextlib.ExitStack() as stack:
            server.on("h.example", truncate=True)
            try:
                stack.enter_context(_full_tcp_queue(server))
            except OSError:
                continue
            start = time.monotonic()
            result = outcome(server, timeout=1)  # counts the lookup's sockets left open, too
            assert result in (jn.SocketError.NameServerFailure, jn.SocketError.Timeout)
            assert time.monotonic() - start < 15  # the try's 1 s, not the kernel's minutes of SYN retries
            assert server.queries("udp"), "the lookup never asked"
            return
    pytest.fail("no port free for both UDP and TCP in 20 tries")


def test_a_stream_of_wrong_replies_from_the_server_does_not_stretch_the_try(resolver_files: ResolverFiles) -> None:
    # The server never answers, but a stream of wrong-id replies comes from its very address and port every
    # 10 ms: a try timer restarted by each datagram would never end (the 20 s guard of outcome() would).
    with DnsServer() as server:
        server.on("h.example", blackhole=True)
        stop = threading.Event()

        def stream() -> None:
            queries = server.wait_for_queries(1)
            while not stop.is_set():
                for query in queries:
                    try:
                        server.udp.sendto(_wrong_id(query.raw), query.source)
                    except OSError:
                        pass
                time.sleep(0.01)
                queries = server.queries()

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        try:
            start = time.monotonic()
            assert outcome(server, timeout=1) == jn.SocketError.NameServerFailure
            assert time.monotonic() - start < 15
        finally:
            stop.set()
            streamer.join(10)


def _syn_sent_to(port: int) -> set[str]:
    """The local ends of this machine's connections to 127.0.0.1:``port`` in SYN_SENT (/proc/net/tcp state 02)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return {row[1] for row in rows if row[2] == f"0100007F:{port:04X}" and row[3] == "02"}


def _cancel_in_syn_sent(port: int, ctx: jn.Context, known: set[str]) -> None:
    """Cancel ``ctx`` once a connection not in ``known`` (the fillers') waits in SYN_SENT: the lookup's."""
    deadline = time.monotonic() + 10
    while not _syn_sent_to(port) - known and time.monotonic() < deadline:
        time.sleep(0.005)  # polls the kernel's table; nothing is assumed from the time
    ctx.cancel()


def test_cancel_while_the_tcp_connect_hangs(resolver_files: ResolverFiles) -> None:
    from peers import when_blocked

    for _ in range(20):  # as above: another port when the UDP port's number is taken for TCP
        with DnsServer(tcp=False) as server, contextlib.ExitStack() as stack:
            server.on("h.example", truncate=True)
            try:
                stack.enter_context(_full_tcp_queue(server))
            except OSError:
                continue
            config = config_for(server, timeout=30)
            before = socket_fds()
            ctx = jn.Context()
            known = _syn_sent_to(server.port)
            canceller = when_blocked(functools.partial(_cancel_in_syn_sent, server.port, ctx, known))
            with pytest.raises(jn.SocketError.Timeout):
                jn.resolve("h.example", family=socket.AF_INET, config=config, ctx=ctx)
            canceller.join(10)
            assert sockets_left(before, server) == set()
            assert not _syn_sent_to(server.port) - known  # the lookup's half-open connection is gone too
            return
    pytest.fail("no port free for both UDP and TCP in 20 tries")


def test_a_deadline_between_the_a_and_the_aaaa_answer_is_a_timeout(resolver_files: ResolverFiles) -> None:
    # The A answer is in, the AAAA answer is late: the context ends the lookup; no half answer is returned.
    with DnsServer() as server:
        server.add("h.example", a=["192.0.2.170"], aaaa=["2001:db8::170"])
        server.on("h.example", "AAAA", delay=5)
        before = socket_fds()
        with pytest.raises(jn.SocketError.Timeout):
            jn.resolve("h.example", config=config_for(server, timeout=30), ctx=jn.Context.with_timeout(0.5))
        assert {q.qtype for q in server.queries()} == {"A", "AAAA"}
        assert sockets_left(before, server) == set()


def test_thousands_of_addresses_under_a_low_descriptor_limit(tmp_path: Path) -> None:
    # A 64 KB TCP answer of 4000 addresses, and RLIMIT_NOFILE at 64: ordering them (one UDP connect per
    # destination to learn its source) must not hold them all open at once, nor fail untyped.
    from peers import run_child

    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "hosts").write_text("")
    answer = run_child(f"""
        import json, os, resource, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        from dns_server import DnsServer
        import janus_net as jn
        with DnsServer() as server:
            server.add("many.example", a=[f"10.{{i // 250}}.{{i % 250}}.1" for i in range(2000)],
                       aaaa=[f"2001:db8::{{i:x}}" for i in range(2000)])
            config = jn.ResolverConfig.load({str(tmp_path / "resolv.conf")!r}, {str(tmp_path / "hosts")!r})
            config = config.replace(nameservers=(server.nameserver,), timeout=10)
            open_now = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 24, open_now + 24))
            try:
                resolution = jn.resolve("many.example", config=config)
                outcome = len(resolution.addresses)
            except jn.SocketError as error:
                outcome = type(error).__name__
            print(json.dumps({{"outcome": outcome, "tcp": len(server.queries("tcp"))}}))
    """)
    assert answer["outcome"] == 4000, f"the lookup held too many descriptors at once: {answer}"
    assert answer["tcp"] >= 1  # the answer came over TCP, as only TCP carries it


# --- any text as a host name: InvalidHostName, or asked of DNS as plain ASCII ----------------------

_NAME_PIECES = st.sampled_from(
    ["a", "Z", "0", "-", "_", ".", "..", "xn--", "xn--bcher-kva", "ü", "ß", "ς", "İ", "\u200d", "\u0300", "\u0660",
     "\uff41", "\u3002", "\x00", " ", "/", ":", "%", "[", "]", "\ud7ff", "\U0001f600", "localhost", "127", "1",
     "::", "ff", "a" * 63]
)  # fmt: skip


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=40), st.lists(_NAME_PIECES, max_size=12).map("".join)))
def test_any_text_is_an_invalid_host_name_or_a_plain_ascii_question(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        conf = Path(directory, "resolv.conf")
        hosts = Path(directory, "hosts")
        conf.write_text("nameserver 127.0.0.1\n")
        hosts.write_text("")
        with DnsServer() as server:  # NXDOMAIN for everything, at once
            config = jn.ResolverConfig.load(str(conf), str(hosts)).replace(
                nameservers=(server.nameserver,), timeout=1, attempts=1
            )
            try:
                resolution = jn.resolve(text, config=config)
            except jn.SocketError.InvalidHostName:
                assert server.queries() == []
                return
            except jn.SocketError.UnknownHostName as error:
                assert error.name == text
                resolution = None
            if resolution is not None:
                assert resolution.source in ("literal", "localhost")
            for query in server.queries():
                assert query.error is None and query.name is not None
                assert query.name.isascii() and len(query.name) <= 253, query.name


@pytest.mark.parametrize(
    "name",
    [
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # full-width "localhost"
        "LOCALHOST\u3002",  # an ideographic full stop: "localhost." once mapped
        "a\u3002localhost",
        "\u212aelvin.localhost",  # KELVIN SIGN, mapped to "k"
    ],
)
def test_a_name_that_maps_to_localhost_is_never_asked_of_dns(resolver_files: ResolverFiles, name: str) -> None:
    with DnsServer() as server:
        server.add("localhost", a=["192.0.2.180"])
        server.add("a.localhost", a=["192.0.2.180"])
        server.add("kelvin.localhost", a=["192.0.2.180"])
        try:
            resolution = jn.resolve(name, config=config_for(server))
        except jn.SocketError.InvalidHostName:
            resolution = None
        assert server.queries() == [], "a name under .localhost went to DNS (RFC 6761)"
        if resolution is not None:
            assert resolution.source == "localhost"
