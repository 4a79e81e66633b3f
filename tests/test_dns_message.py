"""The DNS wire: queries as dnspython reads them, replies read with every bound checked, never an exception.

The replies are built by dnspython (an encoder that is not janus_net's) or by hand, byte by byte, for
the hostile ones: pointer loops, forward pointers, counts larger than the data, every prefix of a
good reply, random bytes. `parse_reply` must answer each with a `Reply` or None, and nothing else.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dns_server import QUESTION_NAME, TYPES, address_rdata, encode_name, header, pointer, record
from hypothesis import given, settings
from hypothesis import strategies as st

from janus_net._values import dns_message
from janus_net._values.dns_message import TYPE_A, TYPE_AAAA, encode_query, parse_reply

NAME = "www.example.com"
QID = 0x1234


def question(name: str = NAME, qtype: int = TYPE_A) -> bytes:
    return encode_name(name) + struct.pack("!HH", qtype, 1)


def reply_for(query: bytes, *answers: tuple[str, str, str], rcode: int = 0, tc: bool = False) -> bytes:
    """dnspython's reply to ``query`` with ``answers`` (owner, type, value)."""
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if tc:
        r.flags |= dns.flags.TC
    for owner, rtype, value in answers:
        r.answer.append(dns.rrset.from_text(owner, 60, "IN", rtype, value))
    return bytes(r.to_wire())


# --- queries


@pytest.mark.parametrize("edns0", [False, True])
@pytest.mark.parametrize("qtype", [TYPE_A, TYPE_AAAA])
def test_query_as_dnspython_reads_it(edns0: bool, qtype: int) -> None:
    wire = encode_query(QID, "Www.Example.com", qtype, edns0)
    q = dns.message.from_wire(wire)
    assert q.id == QID
    assert q.flags & dns.flags.RD and not q.flags & dns.flags.QR
    assert len(q.question) == 1
    assert q.question[0].name == dns.name.from_text("www.example.com.")
    assert q.question[0].rdtype == qtype
    if edns0:
        assert q.edns == 0 and q.payload == 1232
        assert not q.ednsflags & dns.flags.DO
    else:
        assert q.edns == -1


# --- good replies


def test_a_and_aaaa_answers() -> None:
    query = encode_query(QID, NAME, TYPE_A, False)
    data = reply_for(query, (NAME + ".", "A", "192.0.2.1"), (NAME + ".", "A", "192.0.2.2"))
    reply = parse_reply(data, QID, NAME, TYPE_A)
    assert reply is not None
    assert reply.rcode == 0 and not reply.truncated
    assert reply.addresses == (bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    assert reply.canonical_name == NAME and reply.chain == ()
    query6 = encode_query(QID, NAME, TYPE_AAAA, True)
    data6 = reply_for(query6, (NAME + ".", "AAAA", "2001:db8::1"))
    reply6 = parse_reply(data6, QID, NAME, TYPE_AAAA)
    assert reply6 is not None and reply6.addresses == (address_rdata(TYPES["AAAA"], "2001:db8::1"),)


def test_the_question_is_matched_without_regard_to_case() -> None:
    query = encode_query(QID, "WWW.example.COM", TYPE_A, False)
    data = reply_for(query, ("www.EXAMPLE.com.", "A", "192.0.2.1"))
    reply = parse_reply(data, QID, "www.example.com", TYPE_A)
    assert reply is not None and len(reply.addresses) == 1


def test_cname_chain_in_any_order() -> None:
    query = encode_query(QID, "a.example", TYPE_A, False)
    data = reply_for(
        query,
        ("c.example.", "A", "192.0.2.9"),
        ("b.example.", "CNAME", "c.example."),
        ("a.example.", "CNAME", "b.example."),
        ("other.example.", "A", "192.0.2.66"),  # owned by no name of the chain: not an answer
        ("a.example.", "A", "192.0.2.67"),  # owned by an alias: not the final name
    )
    reply = parse_reply(data, QID, "a.example", TYPE_A)
    assert reply is not None
    assert reply.addresses == (bytes([192, 0, 2, 9]),)
    assert reply.chain == ("b.example", "c.example")
    assert reply.canonical_name == "c.example"


def test_cname_loop_and_overlong_chain_are_answers_without_an_address() -> None:
    # Not malformed: a prompt, definite answer that leads to no address (glibc: EAI_NODATA at
    # once); ignoring it would wait out every try's timeout.
    query = encode_query(QID, "a.example", TYPE_A, False)
    loop = reply_for(
        query,
        ("a.example.", "CNAME", "b.example."),
        ("b.example.", "CNAME", "a.example."),
        ("a.example.", "A", "192.0.2.1"),  # owned by a name the loop passes: still not an answer
    )
    reply = parse_reply(loop, QID, "a.example", TYPE_A)
    assert reply is not None and reply.addresses == () and reply.rcode == 0
    links = [(f"n{i}.example.", "CNAME", f"n{i + 1}.example.") for i in range(dns_message.MAX_CHAIN + 1)]
    query = encode_query(QID, "n0.example", TYPE_A, False)
    last = (f"n{dns_message.MAX_CHAIN + 1}.example.", "A", "192.0.2.1")
    reply = parse_reply(reply_for(query, *links, last), QID, "n0.example", TYPE_A)
    assert reply is not None and reply.addresses == ()
    ok = reply_for(query, *links[: dns_message.MAX_CHAIN], (f"n{dns_message.MAX_CHAIN}.example.", "A", "192.0.2.1"))
    reply = parse_reply(ok, QID, "n0.example", TYPE_A)
    assert reply is not None and reply.canonical_name == f"n{dns_message.MAX_CHAIN}.example"


@pytest.mark.parametrize("rcode", [1, 2, 3, 4, 5])
def test_rcodes(rcode: int) -> None:
    query = encode_query(QID, NAME, TYPE_A, False)
    reply = parse_reply(reply_for(query, rcode=rcode), QID, NAME, TYPE_A)
    assert reply is not None and reply.rcode == rcode and reply.addresses == ()


def test_extended_rcode_from_edns0() -> None:
    query = encode_query(QID, NAME, TYPE_A, True)
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.BADVERS)  # 16: the upper bits ride in the OPT record
    reply = parse_reply(r.to_wire(), QID, NAME, TYPE_A)
    assert reply is not None and reply.rcode == 16


def test_truncated_reply_stops_anywhere() -> None:
    query = encode_query(QID, NAME, TYPE_A, False)
    data = header(QID, flags=0x8380, an=5) + question()  # TC, five answers promised, none there
    reply = parse_reply(data, QID, NAME, TYPE_A)
    assert reply is not None and reply.truncated and reply.addresses == ()
    assert parse_reply(reply_for(query, tc=True), QID, NAME, TYPE_A) is not None


# --- replies that must be ignored


@pytest.mark.parametrize(
    "data",
    [
        header(QID + 1, an=1) + question() + record(QUESTION_NAME, 1, b"\xc0\x00\x02\x01"),  # wrong id
        header(QID, flags=0x0100, an=1) + question() + record(QUESTION_NAME, 1, b"\xc0\x00\x02\x01"),  # QR unset
        header(QID, flags=0x8980, an=1) + question() + record(QUESTION_NAME, 1, b"\xc0\x00\x02\x01"),  # opcode 1
        header(QID, an=1) + question("evil.example") + record(QUESTION_NAME, 1, b"\xc0\x00\x02\x01"),
        header(QID, an=1) + question(qtype=TYPE_AAAA) + record(QUESTION_NAME, 1, b"\xc0\x00\x02\x01"),
        header(QID, an=1) + encode_name(NAME) + struct.pack("!HH", 1, 3) + record(QUESTION_NAME, 1, b"\0" * 4),
        header(QID, qd=0, an=1) + record(encode_name(NAME), 1, b"\xc0\x00\x02\x01"),  # no question
        header(QID, qd=2) + question() + question(),
        header(QID, an=1) + question() + record(QUESTION_NAME, 1, b"\xc0\x00\x02"),  # A of 3 bytes
        header(QID, an=1) + question() + record(QUESTION_NAME, 1, b"\xc0\x00\x02\x01", rdlength=40),
        header(QID, an=60000) + question(),  # counts the data cannot hold
        header(QID, ar=1) + question() + b"\x01a" + struct.pack("!HHIH", 41, 1232, 0, 0),  # OPT not at root
        header(QID)[:11],
        b"",
    ],
    ids=[
        "wrong-id", "qr-unset", "opcode", "other-name", "other-type", "other-class", "no-question",
        "two-questions", "short-address", "rdlength-past-end", "huge-count", "opt-not-root", "short-header", "empty",
    ],
)  # fmt: skip
def test_malformed_or_foreign_replies_are_none(data: bytes) -> None:
    assert parse_reply(data, QID, NAME, TYPE_A) is None


def test_pointer_loops_and_forward_pointers_are_refused() -> None:
    q = question()
    # An answer owner pointing at itself, at a later offset, and two pointers pointing at each other.
    at = 12 + len(q)
    self_loop = header(QID, an=1) + q + record(pointer(at), 1, b"\0" * 4)
    forward = header(QID, an=1) + q + record(pointer(at + 2), 1, b"\0" * 4) + b"\x00"
    pair = header(QID, an=1) + q + pointer(at + 2) + pointer(at) + struct.pack("!HHIH", 1, 1, 0, 4) + b"\0" * 4
    for data in (self_loop, forward, pair):
        assert parse_reply(data, QID, NAME, TYPE_A) is None
    # A chain of backward pointers longer than the bound.
    chain = b"".join(pointer(at + 2 * i) if i else b"\x00" for i in range(40))
    long_chain = header(QID, an=1) + q + chain + record(pointer(at + 2 * 39), 1, b"\0" * 4)
    assert parse_reply(long_chain, QID, NAME, TYPE_A) is None


def test_a_name_over_255_bytes_is_refused() -> None:
    labels = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes
    data = header(QID, an=1) + question() + labels + struct.pack("!HHIH", 1, 1, 0, 4) + b"\0" * 4
    assert parse_reply(data, QID, NAME, TYPE_A) is None


def test_reserved_label_types_are_refused() -> None:
    for kind in (0x40, 0x80):
        data = header(QID, an=1) + question() + bytes([kind | 1, 0]) + struct.pack("!HHIH", 1, 1, 0, 4) + b"\0" * 4
        assert parse_reply(data, QID, NAME, TYPE_A) is None


def test_cname_data_must_be_exactly_its_name() -> None:
    bad = header(QID, an=1) + question() + record(QUESTION_NAME, 5, encode_name("x.example") + b"junk")
    assert parse_reply(bad, QID, NAME, TYPE_A) is None


def test_every_prefix_of_a_good_reply() -> None:
    query = encode_query(QID, "a.example", TYPE_A, True)
    data = reply_for(query, ("a.example.", "CNAME", "b.example."), ("b.example.", "A", "192.0.2.1"))
    assert parse_reply(data, QID, "a.example", TYPE_A) is not None
    for end in range(len(data)):
        reply = parse_reply(data[:end], QID, "a.example", TYPE_A)
        assert reply is None or reply.addresses in ((), (bytes([192, 0, 2, 1]),))


def test_every_single_byte_change_of_a_good_reply() -> None:
    query = encode_query(QID, "a.example", TYPE_A, False)
    data = bytearray(reply_for(query, ("a.example.", "CNAME", "b.example."), ("b.example.", "A", "192.0.2.1")))
    for at in range(len(data)):
        for value in (0x00, 0x3F, 0x40, 0xC0, 0xFF):
            changed = bytearray(data)
            changed[at] = value
            parse_reply(bytes(changed), QID, "a.example", TYPE_A)  # must not raise


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert parse_reply(data, QID, NAME, TYPE_A) is None or data[:2] == b"\x12\x34"


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400))
def test_random_bodies_after_a_matching_header_never_raise(body: bytes) -> None:
    prefix = header(QID, an=body[0] if body else 0) + question()
    parse_reply(prefix + body, QID, NAME, TYPE_A)
