"""The DNS exchange: questions asked of the configured name servers over UDP (and TCP), never waiting itself.

An `Exchange` belongs to one lookup. It holds one connected, non-blocking UDP socket
per name server, made at its first use, of that server's own family (an IPv4 server
is never reached through an IPv6 socket as a mapped address): the kernel then drops
datagrams from any other source, and an ICMP port unreachable comes back as
ECONNREFUSED on the next receive, which ends that server's try at once. The source
port is the kernel's (randomized); every query id comes from the kernel's CSPRNG (getrandom(2),
through the door: `janus_net._kernel.processes.random_bytes`).

A `Query` asks one question (name, type) through a fixed list of tries: ``attempts``
rounds over the servers, each round starting at the same server (the next one per
lookup with ``rotate``). A try ends with a reply that answers the question (its id,
question and response bit match; anything else is ignored), after ``timeout``
seconds, at once on an ICMP refusal, or on SERVFAIL/REFUSED (then the next try).
A truncated reply asks the same server again over TCP (a non-blocking connect, a
two-byte length before each message, a reply of at most 65535 bytes), within a new
``timeout``; ``use_vc`` asks over TCP from the start.

Sockets live in descriptor cells from before the syscall that makes them; `close`
closes every one exactly once, and the cells' collection is the backstop for an
exception that lands anywhere (KeyboardInterrupt included).
"""

from __future__ import annotations

from janus_net._kernel import cell_io, cells, flags, processes, sockets
from janus_net._kernel.loop import WOULD_BLOCK
from janus_net._shim import ffi, lib
from janus_net._values import dns_message
from janus_net._values.dns_message import Reply, answers_question, encode_query, parse_reply, reply_id
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._kernel.loop import Checkpoint
    from janus_net._profiles.resolver_config import ResolverConfig
    from janus_net._values.ip import Ip4Address, Ip6Address

# Why a try ended without an answer. The first three are temporary (asking later may help).
TIMEOUT = "timeout"
SERVFAIL = "servfail"
UNREACHABLE = "unreachable"
REFUSED = "refused"
MALFORMED = "malformed"
UNCONFIGURED = "unconfigured"
TEMPORARY = frozenset({TIMEOUT, SERVFAIL, UNREACHABLE})

POLLIN: int = lib.POLLIN
POLLOUT: int = lib.POLLOUT
_SEND_FLAGS = lib.MSG_DONTWAIT | lib.JN_MSG_NOSIGNAL
_RECV_FLAGS = lib.MSG_DONTWAIT
_UDP_BUFFER = 65536
#: Datagrams read from one socket per wake-up: a flood of junk cannot hold the lookup in one advance.
_READS_PER_WAKE = 32
#: A receive buffer needs no zeroing (only the bytes the kernel wrote are read): 64 KiB of
#: memset is most of ffi.new's time.
_new_uncleared = ffi.new_allocator(should_clear_after_alloc=False)
_HAS_MMSG = bool(lib.JN_HAS_MMSG)

# `rotate`: each lookup starts one server further (glibc rotates per query, per process).
_rotation = [0]


#: What socket() answers when this host cannot speak the server's family at all (no IPv6):
#: that server is unreachable from here, not a failure of the lookup.
_NO_FAMILY = (
    SocketError.AddressFamilyUnsupported,
    SocketError.ProtocolUnsupportedByAddressFamily,
    SocketError.ProtocolUnsupportedBySystem,
)


def _open_socket(desc: Any, address: Ip4Address | Ip6Address, kind: int, check: Checkpoint | None) -> int:
    """A non-blocking socket of the server's family in ``desc``; -1 when the host has no such family."""
    try:
        fd = sockets.socket(desc, address.family, kind | lib.JN_SOCK_NONBLOCK, 0, check)
    except _NO_FAMILY:
        return -1
    if not lib.JN_SOCK_NONBLOCK:
        flags.set_nonblocking(fd, True, check)
    return fd


class Channel:
    """One name server's connected UDP socket (made on first use; `broken` after it could not be made or reached)."""

    __slots__ = ("address", "broken", "desc", "fd")

    def __init__(self, address: Ip4Address | Ip6Address) -> None:
        self.address = address
        self.desc: Any = None
        self.fd = -1
        self.broken = False

    def open(self, held: list[Any], check: Checkpoint | None) -> bool:
        """Make and connect the socket unless it exists; False when that failed (the server is unreachable)."""
        if self.fd >= 0:
            return True
        if self.broken:
            return False
        self.desc = desc = cells.new_desc()
        held.append(desc)  # owned by the exchange from here on: its close() closes it
        self.fd = _open_socket(desc, self.address, lib.SOCK_DGRAM, check)
        if self.fd < 0:
            self.broken = True
            return False
        encoded = self.address.sockaddr
        try:
            sockets.connect(self.fd, encoded.pointer, encoded.length, self.address, nonblocking=True)
        except SocketError.Timeout:
            raise
        except SocketError:
            self.broken = True  # no route, no interface: this server cannot be asked from here
            return False
        return True


class Tcp:
    """One question asked over TCP: connect, write the length-prefixed query, read the length-prefixed reply."""

    __slots__ = ("connecting", "desc", "fd", "incoming", "outgoing")

    def __init__(self, desc: Any, fd: int, query: bytes) -> None:
        self.desc = desc
        self.fd = fd
        self.connecting = True
        self.outgoing = len(query).to_bytes(2, "big") + query
        self.incoming = b""

    @property
    def events(self) -> int:
        return POLLOUT if self.connecting or self.outgoing else POLLIN

    def step(self, address: Ip4Address | Ip6Address) -> bytes | None:
        """Go as far as the socket allows now; the reply once it is all here, else None.

        Raises:
            SocketError: the connection failed or ended early (the try's end).
        """
        if self.connecting:
            sockets.connect_result(self.fd, address)
            self.connecting = False
        while self.outgoing:
            sent = cell_io.send_on(self.desc, self.outgoing, len(self.outgoing), _SEND_FLAGS, address)
            if sent == WOULD_BLOCK:
                return None
            self.outgoing = self.outgoing[sent:]
        buf = ffi.new("char[]", _UDP_BUFFER)
        while True:
            want = 2
            if len(self.incoming) >= 2:
                want += int.from_bytes(self.incoming[:2], "big")
                if len(self.incoming) >= want:
                    # A length of 0 is an empty message: malformed, not a server lost mid-reply.
                    return self.incoming[2:want]
            got = cell_io.recv_on(self.desc, buf, min(_UDP_BUFFER, want - len(self.incoming)), _RECV_FLAGS)
            if got == WOULD_BLOCK:
                return None
            if got == 0:
                raise SocketError.ConnectionResetByPeer(None, "the name server closed the connection early")
            self.incoming += ffi.unpack(buf, got)


class Query:
    """One question through its tries; ``reply`` once answered (NOERROR or NXDOMAIN), ``reasons`` of each failed try.

    Attributes:
        done: no more tries will be made.
        reply: the `Reply` that answered the question, or None.
        reasons: why each try that ended without an answer ended (`TIMEOUT`...).
    """

    __slots__ = ("deadline", "done", "malformed", "name", "qid", "qtype", "reasons", "reply", "tcp", "tries", "turn")

    def __init__(self, name: str, qtype: int, tries: list[int]) -> None:
        self.name = name
        self.qtype = qtype
        self.tries = tries
        self.turn = -1  # index in tries of the try under way
        self.qid = -1
        self.deadline = 0.0
        self.malformed = False
        self.tcp: Tcp | None = None
        self.done = False
        self.reply: Reply | None = None
        self.reasons: list[str] = []

    @property
    def server(self) -> int:
        return self.tries[self.turn]

    @property
    def temporary(self) -> bool:
        """Whether the failure may pass: a try timed out, met SERVFAIL, or could not reach its server."""
        return any(reason in TEMPORARY for reason in self.reasons)

    @property
    def servfail_only(self) -> bool:
        """Every try ended in SERVFAIL (glibc then goes on to the next search name)."""
        return bool(self.reasons) and all(reason == SERVFAIL for reason in self.reasons)


class Exchange:
    """The questions of one lookup and the sockets they use; driven by `entries` and `advance`, never waiting."""

    def __init__(self, config: ResolverConfig, check: Checkpoint | None, held: list[Any]) -> None:
        self.config = config
        self.check = check
        self.channels = [Channel(address) for address in config.nameservers]
        self.queries: list[Query] = []
        # Every cell this exchange makes, put here before the syscall that fills it: the
        # owner's list (NameLookup.held), which its driver's cleanup closes in one call.
        self.held = held
        count = len(self.channels)
        start = 0
        if config.rotate and count:
            start = _rotation[0] % count
            _rotation[0] = start + 1
        self.order = [(start + i) % count for i in range(count)] * config.attempts
        self._polled: list[tuple[Any, Any]] = []
        self._ids = bytearray()

    # --- asking

    def ask(self, name: str, qtype: int, now: float) -> Query:
        """Start asking ``name``/``qtype``: the first try's query is sent now."""
        query = Query(name, qtype, list(self.order))
        self.queries.append(query)
        if not query.tries:
            query.reasons.append(UNCONFIGURED)
            query.done = True
            return query
        self._next_try(query, None, now)
        return query

    def ask_all(self, name: str, qtypes: list[int], now: float) -> list[Query]:
        """`ask` for each of ``qtypes``, the first tries' queries in one sendmmsg(2) (the server wakes once, as for
        glibc's); over TCP, with one type, or without sendmmsg: `ask` one after the other."""
        if len(qtypes) < 2 or self.config.use_vc or not self.order or not _HAS_MMSG:
            return [self.ask(name, qtype, now) for qtype in qtypes]
        server = self.order[0]
        queries = [Query(name, qtype, list(self.order)) for qtype in qtypes]
        messages: list[bytes] = []
        for query in queries:
            self.queries.append(query)
            query.turn = 0
            query.qid = self._new_id(server)
            query.deadline = now + self.config.timeout
            messages.append(encode_query(query.qid, name, query.qtype, self.config.edns0))
        sent = self._send_udp_all(self.channels[server], messages)
        if sent:
            self._refused(server, None, now)  # as `_next_try`: every try on this server ends, these too
        elif sent is not None:
            for query in queries:
                self._next_try(query, UNREACHABLE, now)
        return queries

    def _send_udp_all(self, channel: Channel, messages: list[bytes]) -> bool | None:
        """`_send_udp` of several queries in one sendmmsg(2)."""
        if not channel.open(self.held, self.check):
            return False
        count = len(messages)
        vector = ffi.new("struct mmsghdr[]", count)
        pieces = ffi.new("struct iovec[]", count)
        buffers = [ffi.from_buffer(message) for message in messages]
        for i, buffer in enumerate(buffers):
            pieces[i].iov_base = buffer
            pieces[i].iov_len = len(messages[i])
            vector[i].msg_hdr.msg_iov = pieces + i
            vector[i].msg_hdr.msg_iovlen = 1
        try:
            went = cell_io.sendmmsg_on(channel.desc, vector, count, _SEND_FLAGS, channel.address)
        except SocketError.Timeout:
            raise
        except SocketError.ConnectionRefused:
            return True
        except SocketError:
            return False
        if went == WOULD_BLOCK:
            return None  # a full send buffer loses the datagrams: the timeout covers them
        # A short count: the next message failed, its error untold (sendmmsg reports only a first
        # message's; an ICMP refusal drawn by the first query is consumed there). Sent again one by
        # one, the rest reach the server or draw a refusal that the next send or receive reports.
        for message in messages[went:]:
            failed = self._send_udp(channel, message)
            if failed is not None:
                return failed
        return None

    def _new_id(self, server: int) -> int:
        used = {q.qid for q in self.queries if not q.done and q.turn >= 0 and q.server == server}
        while True:
            pool = self._ids
            if not pool:
                # CSPRNG bytes drawn 16 ids at a time: one getrandom(2) per lookup, not one per query.
                pool = self._ids = bytearray(processes.random_bytes(32))
            qid = (pool.pop() << 8) | pool.pop()
            if qid not in used:
                return qid

    def _next_try(self, query: Query, reason: str | None, now: float) -> None:
        """End the try under way (``reason``: why) and send the next, until one is sent or none is left."""
        if reason is not None:
            query.reasons.append(reason)
        self._drop_tcp(query)
        while True:
            query.turn += 1
            query.malformed = False
            if query.turn >= len(query.tries):
                query.done = True
                return
            channel = self.channels[query.server]
            query.qid = self._new_id(query.server)
            query.deadline = now + self.config.timeout
            message = encode_query(query.qid, query.name, query.qtype, self.config.edns0)
            if self.config.use_vc:
                if self._start_tcp(query, message):
                    return
            else:
                sent = self._send_udp(channel, message)
                if sent is None:
                    return
                if sent:
                    # The kernel reported here the ICMP refusal of a datagram sent earlier on
                    # this socket: whoever waits for this server waits in vain, so their tries end too.
                    self._refused(query.server, query, now)
            query.reasons.append(UNREACHABLE)

    def _refused(self, server: int, besides: Query | None, now: float) -> None:
        for other in self.queries:
            if other is not besides and not other.done and other.tcp is None and other.server == server:
                self._next_try(other, UNREACHABLE, now)

    def _send_udp(self, channel: Channel, message: bytes) -> bool | None:
        """Send one query; None when sent, else whether the failure was an ICMP refusal (ECONNREFUSED)."""
        if not channel.open(self.held, self.check):
            return False
        try:
            cell_io.send_on(channel.desc, message, len(message), _SEND_FLAGS, channel.address)
        except SocketError.Timeout:
            raise
        except SocketError.ConnectionRefused:
            return True
        except SocketError:
            return False  # no route, no buffer: this try cannot be made
        return None  # WOULD_BLOCK (a full send buffer) loses the datagram: the timeout covers it

    def _start_tcp(self, query: Query, message: bytes) -> bool:
        address = self.channels[query.server].address
        desc = cells.new_desc()
        self.held.append(desc)
        fd = _open_socket(desc, address, lib.SOCK_STREAM, self.check)
        if fd < 0:
            cells.close_desc(desc)
            self.held.remove(desc)
            return False
        tcp = Tcp(desc, fd, message)
        query.tcp = tcp
        encoded = address.sockaddr
        try:
            rc = sockets.connect_start(fd, encoded.pointer, encoded.length, self.check, address)
        except SocketError.Timeout:
            raise
        except SocketError:
            self._drop_tcp(query)
            return False
        if rc == 0:
            tcp.connecting = False
        return True

    def _drop_tcp(self, query: Query) -> None:
        tcp = query.tcp
        if tcp is not None:
            query.tcp = None
            cells.close_desc(tcp.desc)
            self.held.remove(tcp.desc)

    # --- what to wait for, and what happened

    def entries(self) -> list[tuple[int, int]]:
        """The ``(fd, events)`` to wait for now; `advance` takes the revents in this order."""
        polled: list[tuple[Any, Any]] = []
        waiting: set[int] = set()
        for query in self.queries:
            if query.done:
                continue
            if query.tcp is not None:
                polled.append((query, query.tcp))
            elif query.server not in waiting:
                waiting.add(query.server)
                polled.append((self.channels[query.server], None))
        self._polled = polled
        return [(tcp.fd, tcp.events) if tcp is not None else (owner.fd, POLLIN) for owner, tcp in polled]

    def deadline(self) -> float | None:
        """The earliest instant at which a try under way ends by its timeout; None when nothing is under way."""
        pending = [q.deadline for q in self.queries if not q.done]
        return min(pending) if pending else None

    def advance(self, revents: list[int], now: float) -> None:
        """Read what is ready (``revents`` in the order of the last `entries`), then end the tries whose time is up."""
        for (owner, tcp), events in zip(self._polled, revents, strict=False):
            if not events:
                continue
            if tcp is None:
                self._read_udp(owner, now)
            elif owner.tcp is tcp and not owner.done:
                self._step_tcp(owner, tcp, now)
        for query in self.queries:
            if not query.done and now >= query.deadline:
                self._next_try(query, MALFORMED if query.malformed else TIMEOUT, now)

    def _read_udp(self, channel: Channel, now: float) -> None:
        buf = _new_uncleared("char[]", _UDP_BUFFER)
        for _ in range(_READS_PER_WAKE):
            try:
                got = cell_io.recv_on(channel.desc, buf, _UDP_BUFFER, _RECV_FLAGS, self.check)
            except SocketError.Timeout:
                raise
            except SocketError:
                # ECONNREFUSED: the server's host answered ICMP port unreachable: nobody
                # serves DNS there, so every try on this server ends now.
                self._refused(self.channels.index(channel), None, now)
                return
            if got == WOULD_BLOCK:
                return
            self._dispatch(channel, ffi.unpack(buf, got), now)
            index = self.channels.index(channel)
            if not any(not q.done and q.tcp is None and q.server == index for q in self.queries):
                return  # nobody waits for this server any more: no receive only to hear it has nothing

    def _dispatch(self, channel: Channel, data: bytes, now: float) -> None:
        index = self.channels.index(channel)
        rid = reply_id(data)
        for query in self.queries:
            if query.done or query.tcp is not None or query.server != index or query.qid != rid:
                continue
            reply = parse_reply(data, query.qid, query.name, query.qtype, self.check)
            if reply is None:
                # Ignored. A reply to this very question that cannot be read is remembered, to
                # say why the try ended; a message about anything else is not even that.
                if answers_question(data, query.qid, query.name, query.qtype):
                    query.malformed = True
                return
            self._answered(query, reply, now)
            return

    def _step_tcp(self, query: Query, tcp: Tcp, now: float) -> None:
        address = self.channels[query.server].address
        try:
            data = tcp.step(address)
        except SocketError.Timeout:
            raise
        except SocketError:
            self._next_try(query, UNREACHABLE, now)
            return
        if data is None:
            return
        reply = parse_reply(data, query.qid, query.name, query.qtype, self.check)
        if reply is None:
            self._next_try(query, MALFORMED, now)
            return
        reply.truncated = False  # over TCP nothing more can be had: what came is the answer
        self._answered(query, reply, now)

    def _answered(self, query: Query, reply: Reply, now: float) -> None:
        if reply.truncated:
            # Ask the same server again over TCP, with a new id and a new timeout.
            self._drop_tcp(query)
            query.qid = self._new_id(query.server)
            query.deadline = now + self.config.timeout
            message = encode_query(query.qid, query.name, query.qtype, self.config.edns0)
            if not self._start_tcp(query, message):
                self._next_try(query, UNREACHABLE, now)
            return
        rcode = reply.rcode
        if rcode in (dns_message.RCODE_NOERROR, dns_message.RCODE_NXDOMAIN):
            self._drop_tcp(query)
            query.reply = reply
            query.done = True
        elif rcode == dns_message.RCODE_SERVFAIL:
            self._next_try(query, SERVFAIL, now)
        else:  # REFUSED, NOTIMP, FORMERR, anything else: this server will not answer this question
            self._next_try(query, REFUSED, now)

    def close(self) -> None:
        """Close every socket of the exchange, exactly once; idempotent."""
        cells.close_all(self.held)
        for channel in self.channels:
            channel.fd = -1
            channel.broken = True
        for query in self.queries:
            query.tcp = None
            query.done = True


__all__ = ["Exchange", "Query"]
