"""A DNS server the tests run themselves: UDP and TCP on one port, a zone, per-name behaviours, a query log.

Independent of janus_net: replies are encoded with dnspython (or, for the hostile ones, hand-rolled
bytes), so a mistake in janus_net's codec cannot hide behind the same mistake in the server.

One thread runs a selector loop with a timer heap (delays, slow drips), so that a test can ask for an
AAAA answer 2 s late while the A answer leaves at once, without a thread per query::

    with DnsServer() as server:                      # 127.0.0.1, a free port, UDP + TCP
        server.add("www.example.com", a=["192.0.2.1"], aaaa=["2001:db8::1"])
        server.add_cname("alias.example.com", "www.example.com")
        server.on("slow.example.com", "AAAA", delay=2.0)
        server.on("gone.example.com", rcode="SERVFAIL")
        config = jn.ResolverConfig.load().replace(nameservers=(server.nameserver,))
        ...
        assert [q.name for q in server.log] == [...]

Behaviours (:class:`Behaviour`, given to :meth:`DnsServer.on` per name and optionally per qtype, or as
``default`` for names the zone lacks): an rcode (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ...), NODATA,
truncated UDP (the TCP reply is full), a delay, a blackhole, decoy replies sent before the real one
(wrong id, wrong source port or address, wrong question, QR bit unset) or instead of it, raw bytes for
UDP and TCP (malformed or random replies), a TCP reply dripped byte by byte, a TCP connection closed at
once. Decoys carry :data:`DECOY_A` / :data:`DECOY_AAAA`: a test asserts they never appear in a result.

The server can bind 127.0.0.1:53 inside a network namespace (the glibc oracle does, tests/glibc_oracle.py).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

#: The addresses every decoy reply carries: a result that contains one took a reply it should have ignored.
DECOY_A = "203.0.113.66"
DECOY_AAAA = "2001:db8:dead::66"

#: A raw-reply builder: given the query's bytes, the datagram(s) or TCP bytes to send (b"" or [] sends nothing).
RawReply = Callable[[bytes], "bytes | Sequence[bytes]"]

DECOY_KINDS = ("wrong_id", "wrong_source", "wrong_address", "wrong_question", "qr_unset")


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How the server answers one name (and qtype). The defaults answer from the zone at once.

    Attributes:
        rcode: the reply's rcode by name ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR",
            "NOTIMP"); anything but NOERROR carries no answer records.
        nodata: NOERROR with no answer records, whatever the zone holds.
        truncate: over UDP, a reply with the TC bit and no answers (the TCP reply is full).
        delay: seconds before the reply leaves (per qtype when given to ``on(name, qtype, ...)``).
        blackhole: never reply (UDP nor TCP).
        decoys: replies sent before the real one, each a kind of :data:`DECOY_KINDS`, carrying the decoy
            addresses; "wrong_address" comes from 127.0.0.2 (IPv4 loopback servers only; skipped otherwise).
        real: False sends only the decoys (the client must then time out on this server).
        udp_raw: builds the UDP datagram(s) sent instead of the real reply (malformed, random...).
        tcp_raw: builds the TCP bytes sent instead of the framed real reply (the length prefix included).
        tcp_drip: seconds between the single bytes of the TCP reply (a slow drip).
        tcp_close: close the TCP connection on this query, without a reply.
        ttl: the TTL of the answer records.
    """

    rcode: str = "NOERROR"
    nodata: bool = False
    truncate: bool = False
    delay: float = 0.0
    blackhole: bool = False
    decoys: tuple[str, ...] = ()
    real: bool = True
    udp_raw: RawReply | None = None
    tcp_raw: RawReply | None = None
    tcp_drip: float | None = None
    tcp_close: bool = False
    ttl: int = 60

    def __post_init__(self) -> None:
        dns.rcode.from_text(self.rcode)  # refuses a misspelt rcode at once
        for kind in self.decoys:
            if kind not in DECOY_KINDS:
                raise ValueError(f"unknown decoy kind {kind!r}; one of {DECOY_KINDS}")


@dataclasses.dataclass(frozen=True)
class Query:
    """One query as the server received it.

    Attributes:
        name: the question name, lowercased, without the trailing dot ("" for the root); None when the
            query did not parse (then ``error`` says why).
        qtype: "A", "AAAA", ... (None when it did not parse).
        transport: "udp" or "tcp".
        id: the query id.
        time: ``time.monotonic()`` when it arrived.
        source: the client's (host, port).
        server: this server's "host:port" (several servers' logs can be merged by time).
        edns: the EDNS0 payload size the query offered, or None without EDNS0.
        raw: the query's bytes.
        error: why it did not parse, or None.
    """

    name: str | None
    qtype: str | None
    transport: str
    id: int
    time: float
    source: tuple[str, int]
    server: str
    edns: int | None
    raw: bytes
    error: str | None = None


class Zone:
    """Names → records and behaviours; may be shared by several servers (each keeps its own log)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, list[str]]] = {}
        self._cnames: dict[str, str] = {}
        self._rules: dict[tuple[str, str | None], Behaviour] = {}
        self.default: Behaviour | None = None  # for names the zone lacks (None: NXDOMAIN)

    def add(self, name: str, *, a: Iterable[str] = (), aaaa: Iterable[str] = (), **other: Iterable[str]) -> None:
        """Add records to ``name`` (A, AAAA and any other type by keyword, e.g. ``mx=["10 mail.example."]``)."""
        with self._lock:
            records = self._records.setdefault(_key(name), {})
            for qtype, values in (("A", a), ("AAAA", aaaa), *((k.upper(), v) for k, v in other.items())):
                records.setdefault(qtype, []).extend(values)

    def add_cname(self, name: str, target: str) -> None:
        """``name`` is an alias of ``target`` (chains and loops allowed: the server follows 32 steps)."""
        with self._lock:
            self._cnames[_key(name)] = _key(target)

    def on(self, name: str, qtype: str | None = None, behaviour: Behaviour | None = None, **fields: object) -> None:
        """Answer ``name`` (for ``qtype`` only, or every qtype) with ``behaviour`` or ``Behaviour(**fields)``."""
        rule = behaviour if behaviour is not None else Behaviour(**fields)  # type: ignore[arg-type]
        with self._lock:
            self._rules[(_key(name), qtype.upper() if qtype else None)] = rule

    def rule(self, name: str, qtype: str) -> Behaviour | None:
        """The behaviour for (name, qtype): its own, else the name's, else None (answer from the zone)."""
        with self._lock:
            return self._rules.get((name, qtype)) or self._rules.get((name, None))

    def exists(self, name: str) -> bool:
        """Whether ``name`` has records, an alias or a rule (else it is NXDOMAIN)."""
        with self._lock:
            return name in self._records or name in self._cnames or any(key[0] == name for key in self._rules)

    def lookup(self, name: str, qtype: str) -> tuple[list[tuple[str, str]], list[str], bool]:
        """Follow CNAMEs from ``name``: ([(owner, target)...], values of qtype at the end, the end exists)."""
        chain: list[tuple[str, str]] = []
        with self._lock:
            current = name
            for _ in range(32):
                target = self._cnames.get(current)
                if target is None or qtype == "CNAME":
                    break
                chain.append((current, target))
                current = target
            values = list(self._records.get(current, {}).get(qtype, []))
            # The end of a chain exists if it has records or an alias; a name asked directly also by a rule.
            exists = current in self._records or current in self._cnames
            if not chain:
                exists = exists or any(key[0] == name for key in self._rules)
        return chain, values, exists


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class DnsServer:
    """UDP and TCP on ``host``:``port`` (port 0: a free one, the same for both), answering from a zone.

    Args:
        host: "127.0.0.1", "::1" or any local address.
        port: 0 for a free port; 53 inside a namespace.
        zone: a zone to share with other servers (default: a fresh one).
        tcp: also serve TCP on the same port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, zone: Zone | None = None, tcp: bool = True) -> None:
        self.host = host
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.zone = zone if zone is not None else Zone()
        self.log: list[Query] = []
        self._log_lock = threading.Lock()
        self._closers: list[socket.socket] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._tcp_conns: dict[socket.socket, bytearray] = {}
        self._stopping = False
        self._error: BaseException | None = None
        self.udp, self.tcp = self._bind(port, tcp)
        self.port = self.udp.getsockname()[1]
        # The decoy senders: another port on the same address, and (IPv4) another loopback address.
        self._other_port = self._socket(socket.SOCK_DGRAM)
        self._other_port.bind((host, 0))
        self._other_address: socket.socket | None = None
        if self.family == socket.AF_INET and host.startswith("127."):
            self._other_address = self._socket(socket.SOCK_DGRAM)
            self._other_address.bind(("127.0.0.2" if host != "127.0.0.2" else "127.0.0.3", 0))
        self._wake_r, self._wake_w = socket.socketpair()
        self._closers += [self._wake_r, self._wake_w]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.udp, selectors.EVENT_READ, self._on_udp)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        if self.tcp is not None:
            self._selector.register(self.tcp, selectors.EVENT_READ, self._on_accept)
        self._thread = threading.Thread(target=self._run, name=f"dns-server-{self.nameserver}", daemon=True)
        self._thread.start()

    # -- what tests use ---------------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """This server in the §4 grammar with its port: "127.0.0.1:5353" or "[::1]:5353"."""
        return f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.host}:{self.port}"

    def add(self, name: str, *, a: Iterable[str] = (), aaaa: Iterable[str] = (), **other: Iterable[str]) -> None:
        """See :meth:`Zone.add`."""
        self.zone.add(name, a=a, aaaa=aaaa, **other)

    def add_cname(self, name: str, target: str) -> None:
        """See :meth:`Zone.add_cname`."""
        self.zone.add_cname(name, target)

    def on(self, name: str, qtype: str | None = None, behaviour: Behaviour | None = None, **fields: object) -> None:
        """See :meth:`Zone.on`."""
        self.zone.on(name, qtype, behaviour, **fields)

    def queries(self, transport: str | None = None) -> list[Query]:
        """A copy of the log (only ``transport``'s queries when given)."""
        with self._log_lock:
            return [q for q in self.log if transport is None or q.transport == transport]

    def names(self) -> list[tuple[str | None, str | None]]:
        """(name, qtype) of every query, in arrival order."""
        return [(q.name, q.qtype) for q in self.queries()]

    def clear_log(self) -> None:
        """Forget the queries so far."""
        with self._log_lock:
            self.log.clear()

    def wait_for_queries(self, count: int, timeout: float = 10.0) -> list[Query]:
        """Block until the log holds ``count`` queries (polling; for tests driving a lookup from a thread)."""
        deadline = time.monotonic() + timeout
        while len(self.queries()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.queries())} queries of {count} after {timeout} s")
            time.sleep(0.005)
        return self.queries()

    def fds(self) -> set[int]:
        """The descriptors the server holds now (its accepted TCP connections included): a test counting the
        sockets a lookup left open leaves these out."""
        held = [self.udp, self.tcp, self._other_port, self._other_address, *self._closers, *list(self._tcp_conns)]
        return {sock.fileno() for sock in held if sock is not None and sock.fileno() >= 0}

    def close(self) -> None:
        """Stop the thread and close every socket the server opened (its TCP connections included)."""
        if self._stopping:
            return
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(10)
        assert not self._thread.is_alive(), "the DNS test server's thread did not stop"
        self._selector.close()
        for conn in list(self._tcp_conns):
            conn.close()
        self._tcp_conns.clear()
        for sock in [self.udp, self.tcp, self._other_port, self._other_address, *self._closers]:
            if sock is not None:
                sock.close()
        if self._error is not None:
            raise RuntimeError("the DNS test server failed") from self._error

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- sockets ----------------------------------------------------------------------------------

    def _socket(self, kind: int) -> socket.socket:
        sock = socket.socket(self.family, kind)
        if self.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return sock

    def _bind(self, port: int, tcp: bool) -> tuple[socket.socket, socket.socket | None]:
        # Port 0: the UDP port is the kernel's choice; TCP on the same number may be taken, so try again.
        for _ in range(50):
            udp = self._socket(socket.SOCK_DGRAM)
            try:
                udp.bind((self.host, port))
                if not tcp:
                    udp.setblocking(False)
                    return udp, None
                listener = self._socket(socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    listener.bind((self.host, udp.getsockname()[1]))
                    listener.listen(64)
                except OSError:
                    listener.close()
                    if port != 0:
                        raise
                    udp.close()
                    continue
                udp.setblocking(False)
                listener.setblocking(False)
                return udp, listener
            except BaseException:
                udp.close()
                raise
        raise OSError("no port free for both UDP and TCP")

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, action = heapq.heappop(self._timers)
                    action()
                timeout = max(0.0, self._timers[0][0] - now) if self._timers else None
                for key, _ in self._selector.select(timeout):
                    if self._stopping:
                        break
                    key.data(key.fileobj)
        except BaseException as error:  # surfaced by close(): a server bug must fail the test
            self._error = error

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        if delay <= 0:
            action()
        else:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), action))

    def _on_wake(self, sock: object) -> None:
        self._wake_r.recv(64)

    def _on_udp(self, sock: object) -> None:
        for _ in range(64):
            try:
                data, source = self.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket (a client gone): not ours to care
            self._handle(data, source, None)

    def _on_accept(self, sock: object) -> None:
        assert self.tcp is not None
        try:
            conn, _ = self.tcp.accept()
        except OSError:
            return
        conn.setblocking(False)
        self._tcp_conns[conn] = bytearray()
        self._selector.register(conn, selectors.EVENT_READ, self._on_tcp)

    def _on_tcp(self, sock: object) -> None:
        assert isinstance(sock, socket.socket)
        try:
            chunk = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(sock)
            return
        buffer = self._tcp_conns[sock]
        buffer += chunk
        while len(buffer) >= 2 and sock in self._tcp_conns:
            (length,) = struct.unpack("!H", buffer[:2])
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            try:
                peer = sock.getpeername()
            except OSError:  # reset by the client meanwhile
                self._drop(sock)
                return
            self._handle(message, peer, sock)

    def _drop(self, conn: socket.socket) -> None:
        if conn in self._tcp_conns:
            self._selector.unregister(conn)
            del self._tcp_conns[conn]
            conn.close()

    def _send_udp(self, datagrams: Sequence[tuple[socket.socket | None, bytes]], to: object, delay: float) -> None:
        def send() -> None:
            for sock, data in datagrams:
                try:
                    (sock or self.udp).sendto(data, to)  # type: ignore[arg-type]
                except OSError:
                    pass  # the client's port is gone (ECONNREFUSED from an earlier ICMP): nothing to do

        self._later(delay, send)

    def _send_tcp(self, conn: socket.socket, data: bytes, delay: float, drip: float | None) -> None:
        def send(rest: bytes) -> None:
            if conn not in self._tcp_conns:
                return
            if drip is not None:  # one byte now, the rest later
                if rest:
                    try:
                        conn.send(rest[:1])
                    except OSError:
                        self._drop(conn)
                        return
                    self._later(drip, lambda: send(rest[1:]))
                return
            try:
                conn.setblocking(True)
                conn.settimeout(5)
                conn.sendall(rest)
                conn.setblocking(False)
            except OSError:
                self._drop(conn)

        self._later(delay, lambda: send(data))

    # -- answering --------------------------------------------------------------------------------

    def _handle(self, data: bytes, source: tuple[str, int], conn: socket.socket | None) -> None:
        """Log the query and send what its behaviour says: over UDP to ``source``, else on ``conn``."""
        transport = "udp" if conn is None else "tcp"
        now = time.monotonic()
        peer = (str(source[0]), int(source[1]))
        try:
            query = dns.message.from_wire(data)
        except Exception as error:  # a malformed query is logged (a client bug a test must see)
            qid = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else -1
            self._log(Query(None, None, transport, qid, now, peer, self.nameserver, None, data, repr(error)))
            return
        if len(query.question) != 1:
            error = f"{len(query.question)} questions"
            self._log(Query(None, None, transport, query.id, now, peer, self.nameserver, None, data, error))
            return
        question = query.question[0]
        name = _key(question.name.to_text(omit_final_dot=True)) if question.name != dns.name.root else ""
        qtype = dns.rdatatype.to_text(question.rdtype)
        edns = query.payload if query.edns >= 0 else None
        self._log(Query(name, qtype, transport, query.id, now, peer, self.nameserver, edns, data))

        rule = self.zone.rule(name, qtype)
        if rule is None and not self.zone.exists(name) and self.zone.default is not None:
            rule = self.zone.default
        rule = rule or Behaviour()
        if rule.blackhole:
            return
        if conn is not None and rule.tcp_close:
            self._later(rule.delay, lambda: self._drop(conn))
            return
        out: list[tuple[socket.socket | None, bytes]] = self._decoys(query, qtype, rule) if conn is None else []
        if rule.real:
            raw = rule.udp_raw if conn is None else rule.tcp_raw
            if raw is not None:
                made = raw(data)
                pieces = [made] if isinstance(made, (bytes, bytearray)) else list(made)
                out += [(None, bytes(piece)) for piece in pieces if piece]
            else:
                wire = self._answer(query, name, qtype, rule, transport)
                out.append((None, wire if conn is None else struct.pack("!H", len(wire)) + wire))
        if not out:
            return
        if conn is None:
            self._send_udp(out, source, rule.delay)
        else:
            self._send_tcp(conn, b"".join(piece for _, piece in out), rule.delay, rule.tcp_drip)

    def _answer(self, query: dns.message.Message, name: str, qtype: str, rule: Behaviour, transport: str) -> bytes:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        rcode = dns.rcode.from_text(rule.rcode)
        if rcode == dns.rcode.NOERROR and not rule.nodata:
            chain, values, exists = self.zone.lookup(name, qtype)
            owner = question.name
            for _alias, target in chain:
                target_name = dns.name.from_text(target)
                response.answer.append(
                    dns.rrset.from_text(owner, rule.ttl, dns.rdataclass.IN, dns.rdatatype.CNAME, target_name.to_text())
                )
                owner = target_name
            if values:
                response.answer.append(dns.rrset.from_text_list(owner, rule.ttl, "IN", question.rdtype, values))
            if not exists:
                rcode = dns.rcode.NXDOMAIN
        response.set_rcode(rcode)
        if transport == "udp" and rule.truncate:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()
        limit = 65535 if transport == "tcp" else (max(512, query.payload) if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()  # too big for UDP: TC and no answers, as a server must
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _decoys(
        self, query: dns.message.Message, qtype: str, rule: Behaviour
    ) -> list[tuple[socket.socket | None, bytes]]:
        out: list[tuple[socket.socket | None, bytes]] = []
        question = query.question[0]
        for kind in rule.decoys:
            asked = question.name
            if kind == "wrong_question":
                asked = dns.name.from_text("decoy.invalid.")
            fake = dns.message.make_query(asked, question.rdtype)
            fake.id = query.id ^ 0x5A5A if kind == "wrong_id" else query.id
            if query.edns >= 0:
                fake.use_edns(0, 0, query.payload)
            response = dns.message.make_response(fake)
            response.flags |= dns.flags.AA
            decoy = DECOY_AAAA if qtype == "AAAA" else DECOY_A
            if qtype in ("A", "AAAA"):
                response.answer.append(dns.rrset.from_text_list(asked, 60, "IN", question.rdtype, [decoy]))
            wire = bytearray(response.to_wire())
            if kind == "qr_unset":
                wire[2] &= 0x7F
            sender: socket.socket | None = None
            if kind == "wrong_source":
                sender = self._other_port
            elif kind == "wrong_address":
                if self._other_address is None:
                    continue
                sender = self._other_address
            out.append((sender, bytes(wire)))
        return out

    def _log(self, query: Query) -> None:
        with self._log_lock:
            self.log.append(query)


# -- hand-rolled wire pieces (for crafted, malformed replies; no dnspython, no janus_net) -------------

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "OPT": 41}


def encode_name(name: str) -> bytes:
    """``name`` as uncompressed labels ending with the root label."""
    out = b""
    for label in name.rstrip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def header(qid: int, *, flags: int = 0x8180, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    """A 12-byte header (default flags: QR, RD, RA, NOERROR)."""
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def query_parts(query: bytes) -> tuple[int, bytes, int]:
    """(id, the question section's bytes as sent, qtype) of a well-formed single-question query."""
    qid = struct.unpack("!H", query[:2])[0]
    at = 12
    while query[at] != 0:
        at += 1 + query[at]
    end = at + 5
    qtype = struct.unpack("!H", query[at + 1 : at + 3])[0]
    return qid, query[12:end], qtype


def record(owner: bytes, rtype: int, rdata: bytes, *, ttl: int = 60, rdlength: int | None = None) -> bytes:
    """One resource record: ``owner`` already encoded (labels or a pointer); ``rdlength`` may lie."""
    length = len(rdata) if rdlength is None else rdlength
    return owner + struct.pack("!HHIH", rtype, 1, ttl, length) + rdata


def pointer(offset: int) -> bytes:
    """A compression pointer to ``offset``."""
    return struct.pack("!H", 0xC000 | offset)


QUESTION_NAME = pointer(12)  # the question's name, as answers usually point at it


def address_rdata(qtype: int, text: str) -> bytes:
    """The rdata of an A or AAAA record."""
    return socket.inet_pton(socket.AF_INET6 if qtype == TYPES["AAAA"] else socket.AF_INET, text)


def random_bytes(size: int) -> bytes:
    """``size`` random bytes (os.urandom: reproducibility is hypothesis's job where it matters)."""
    return os.urandom(size)
