"""`NameLookup`: one name's lookup as a state machine that never waits, driven by `resolve` and `connect_host`.

The sources, in order (DESIGN §17): an IP literal in the strict forms of §4 is
itself; ``localhost`` and names under ``.localhost`` are loopback (RFC 6761); then
the hosts file; then DNS. The first three answer in the constructor, with no socket.

DNS asks the search names one after the other, in glibc's order (res_search):

* a name ending in a dot: the name only;
* a name with at least ``ndots`` dots: the name as given, then with each search domain;
* a name with fewer: with each search domain, then as given.

For each name, A and AAAA are asked at once (A, then AAAA, with ``single_request``)
for the families wanted. A name with an address of either type wins; a name whose
answers are NXDOMAIN, NODATA or SERVFAIL from every server passes to the next; a
timeout, an unreachable server or a refusal ends the search (glibc's TRY_AGAIN).
When no name wins: `SocketError.UnknownHostName` if some name existed without an
address of the families asked or none existed, `SocketError.NameServerFailure` if
the servers failed (``.temporary``, see `janus_net._profiles.dns_exchange`).

The driver's loop (`janus_net._profiles.resolve`)::

    lookup = None
    try:
        lookup = NameLookup(host, port, family, config, ctx)
        while not lookup.done():
            revents = waiting.wait_fds(lookup.poll_entries(), ctx, lookup.next_deadline())
            lookup.advance(revents, time.monotonic())
        return lookup.result()
    finally:
        if lookup is not None:
            cells.close_all(lookup.held)

`result` orders the addresses by RFC 6724 (`janus_net._profiles.source_address`: the
source of each destination learned by a UDP connect, no packet sent, then the rules of
`janus_net._values.address_order`). `answer` serves Happy Eyeballs: the addresses of one family as soon as the winning
name's answer of that type is known, before the other type's.
"""

from __future__ import annotations

import ipaddress
import sys
import time

from janus_net._kernel import cells
from janus_net._policy.context import Context
from janus_net._profiles import hosts_file, source_address
from janus_net._profiles.dns_exchange import Exchange, Query
from janus_net._profiles.resolver_config import ResolverConfig
from janus_net._shim import lib
from janus_net._values.dns_message import CHECK_EVERY, RCODE_NOERROR, TYPE_A, TYPE_AAAA
from janus_net._values.errors import SocketError
from janus_net._values.host_names import MAX_NAME, HostName, check_host_name, literal
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.resolution import Resolution
from janus_net._values.value_base import check_port

AF_INET: int = lib.AF_INET
AF_INET6: int = lib.AF_INET6
_QTYPE = {AF_INET: TYPE_A, AF_INET6: TYPE_AAAA}

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

Address = Ip4Address | Ip6Address


def _check_family(family: object) -> int | None:
    if family is None:
        return None
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(f"family must be None, socket.AF_INET or socket.AF_INET6, not {family!r}")
    if family not in (AF_INET, AF_INET6):
        raise ValueError(f"family must be None, socket.AF_INET or socket.AF_INET6, not {family!r}")
    return int(family)


def search_names(name: HostName, search: tuple[str, ...], ndots: int) -> list[str]:
    """The names DNS is asked, in glibc's order (see the module's docstring); none longer than 253 bytes."""
    if name.absolute:
        return [name.name]
    suffixed = [f"{name.name}.{domain}" for domain in search]
    suffixed = [n for n in suffixed if len(n) <= MAX_NAME]
    if name.dots >= ndots:
        names = [name.name, *suffixed]
    else:
        names = [*suffixed, name.name]
    unique: list[str] = []
    for candidate in names:
        if candidate.lower() not in (u.lower() for u in unique):
            unique.append(candidate)
    return unique


def is_localhost(name: HostName) -> bool:
    """``localhost`` or a name under ``.localhost`` (RFC 6761 §6.3), in any case."""
    folded = name.folded
    return folded == "localhost" or folded.endswith(".localhost")


class NameLookup:
    """One lookup of ``host``: literal, localhost, hosts file, then DNS; see the module's docstring."""

    def __init__(
        self, host: str, port: int, family: int | None, config: ResolverConfig | None, ctx: Context | None
    ) -> None:
        """Check ``host`` and answer it at once when no DNS is needed; else send the first queries.

        Raises:
            TypeError / ValueError: a bad type, ``family`` or ``config``.
            SocketError.InvalidPort: ``port`` is not an int in 0..65535.
            SocketError.InvalidHostName: ``host`` cannot be a name; before any I/O.
            SocketError.Timeout: ``ctx`` is done already.
            SocketError.FileNotFound...: ``config`` None and ResolverConfig.load() failed.
        """
        self._exchange: Exchange | None = None
        self._finished = False  # decided: an answer without DNS, or the winning name's every answer in
        #: Every socket cell of the lookup, put here before the syscall that fills it. A
        #: driver's cleanup closes them with one call, `cells.close_all(lookup.held)`, in
        #: its ``finally``: nothing of this module runs then, so no exception can stop it.
        self.held: list[Any] = []
        self._static: tuple[Address, ...] | None = None
        self._error: SocketError | None = None
        self._canonical = ""
        self._source = "dns"
        if not isinstance(host, str):
            raise TypeError(f"host is a str, not {type(host).__name__}")
        host = str.__str__(host)
        self._host = host
        self._port = check_port(port)
        self._family = _check_family(family)
        if config is not None and not isinstance(config, ResolverConfig):
            raise TypeError(f"config is a ResolverConfig, not {config!r}")
        if ctx is not None and not isinstance(ctx, Context):
            raise TypeError(f"ctx is a janus_net.Context, not {ctx!r}")
        found = literal(host)
        name = None if found is not None else check_host_name(host)
        sys.audit("janus_net.resolve", host)
        self._ctx = ctx
        self._check = None if ctx is None else ctx.check
        if ctx is not None:
            ctx.check()
        if found is not None:
            self._finish_static(self._with_port((found,)), found.host, "literal")
            return
        assert name is not None
        if is_localhost(name):
            loopback = (Ip6Address("::1"), Ip4Address("127.0.0.1"))
            self._finish_static(self._with_port(loopback), name.name, "localhost")
            return
        self._config = config = ResolverConfig.load() if config is None else config
        canonical, addresses = hosts_file.lookup(config.hosts, name.name, self._family, self._port, self._check)
        if addresses:
            self._finish_static(addresses, canonical, "files")
            return
        self._names = search_names(name, config.search, config.ndots)
        self._turn = -1
        self._got_nodata = False
        self._got_servfail = False
        self._queries: dict[int, Query] = {}
        self._exchange = Exchange(config, self._check, self.held)
        try:
            now = time.monotonic()
            self._next_name(now)
            self._evaluate(now)  # every try may have ended at once (no server reachable)
        except BaseException:
            cells.close_all(self.held)
            raise

    # --- the answers that need no DNS

    def _with_port(self, addresses: tuple[Address, ...]) -> tuple[Address, ...]:
        port = self._port
        out: list[Address] = []
        for address in addresses:
            if self._family is not None and address.family != self._family:
                continue
            if isinstance(address, Ip4Address):
                out.append(Ip4Address(address.ip, port))
            else:
                out.append(Ip6Address(address.ip, port, scope_id=address.scope_id))
        return tuple(out)

    def _finish_static(self, addresses: tuple[Address, ...], canonical: str, source: str) -> None:
        self._finished = True
        self._static = addresses
        self._canonical = canonical
        self._source = source

    # --- DNS: one search name after the other

    def _wanted(self) -> list[int]:
        if self._family is None:
            return [TYPE_A, TYPE_AAAA]
        return [_QTYPE[self._family]]

    def _next_name(self, now: float) -> None:
        assert self._exchange is not None
        self._turn += 1
        if self._turn >= len(self._names):
            if self._got_servfail and not self._got_nodata:
                self._error = SocketError.NameServerFailure(name=self._host, temporary=True)
            else:
                self._error = SocketError.UnknownHostName(name=self._host)
            return
        name = self._names[self._turn]
        wanted = self._wanted()
        if self._config.single_request:
            wanted = wanted[:1]  # the next type is asked when this one is done
        # Asked together: both queries leave in one sendmmsg(2) where it can (as glibc's).
        self._queries = dict(zip(wanted, self._exchange.ask_all(name, wanted, now), strict=True))

    def _winner(self) -> bool:
        return any(q.reply is not None and q.reply.addresses for q in self._queries.values())

    def _evaluate(self, now: float) -> None:
        """After progress: ask the next type (single-request), decide the name, or go on to the next."""
        assert self._exchange is not None
        while self._error is None:
            queries = self._queries
            wanted = self._wanted()
            if len(queries) < len(wanted) and all(q.done for q in queries.values()):
                qtype = wanted[len(queries)]
                queries[qtype] = self._exchange.ask(self._names[self._turn], qtype, now)
                continue
            all_done = len(queries) == len(wanted) and all(q.done for q in queries.values())
            winner = self._winner()
            if winner or not all_done:
                self._finished = winner and all_done
                return
            failed = [q for q in queries.values() if q.reply is None]
            if any(not q.servfail_only for q in failed):
                temporary = any(q.temporary for q in failed)
                reasons = sorted({reason for q in failed for reason in q.reasons})
                detail = f"no name server gave a usable answer for {self._host!r} ({', '.join(reasons)})"
                self._error = SocketError.NameServerFailure(None, detail, name=self._host, temporary=temporary)
                return
            if failed:
                self._got_servfail = True
            if any(q.reply is not None and q.reply.rcode == RCODE_NOERROR for q in queries.values()):
                self._got_nodata = True
            self._next_name(now)

    # --- the driver's side

    def poll_entries(self) -> list[tuple[int, int]]:
        """The ``(fd, events)`` to wait for now (empty once done)."""
        if self._exchange is None or self.done():
            return []
        return self._exchange.entries()

    def next_deadline(self) -> float | None:
        """The `time.monotonic` instant of the next timer (a try's timeout); None when done."""
        if self._exchange is None or self.done():
            return None
        return self._exchange.deadline()

    def advance(self, revents: list[int], now: float) -> None:
        """Take what the wait saw (``revents`` in `poll_entries`' order) and the time, and move on."""
        if self._exchange is None or self.done():
            return
        self._exchange.advance(revents, now)
        self._evaluate(now)

    def _addresses(self, query: Query | None) -> tuple[Address, ...]:
        if query is None or query.reply is None:
            return ()
        port = self._port
        check = self._check
        raws = query.reply.addresses
        v4 = query.qtype == TYPE_A
        made: list[Address] = []
        # A hostile answer may carry thousands of addresses: made in pieces, the context checked
        # between two, so that a cancel does not wait for all of them.
        for start in range(0, len(raws), CHECK_EVERY):
            if start and check is not None:
                check()
            piece = raws[start : start + CHECK_EVERY]
            if v4:
                made.extend(Ip4Address(ipaddress.IPv4Address(raw), port) for raw in piece)
            else:
                made.extend(Ip6Address(ipaddress.IPv6Address(raw), port) for raw in piece)
        return tuple(made)

    def answer(self, family: int) -> tuple[Address, ...] | None:
        """The addresses of ``family`` (AF_INET or AF_INET6) once known; None: not yet; (): none.

        Known for DNS as soon as the winning name's answer of that type is in, before the other's.
        """
        if self._static is not None:
            return tuple(a for a in self._static if a.family == family)
        if self._error is not None or (self._family is not None and self._family != family):
            return ()
        if not self._winner():
            return None
        query = self._queries.get(_QTYPE[family])
        if query is None:
            return None  # single-request: that type is not asked yet
        return self._addresses(query) if query.done else None

    def done(self) -> bool:
        """Whether `result` has its answer (or its error)."""
        return self._finished or self._error is not None

    def result(self) -> Resolution:
        """The answer, once `done`.

        Raises:
            SocketError.UnknownHostName: no address of the families asked (``.name``).
            SocketError.NameServerFailure: the name servers gave no usable answer (``.temporary``).
            RuntimeError: not done yet.
        """
        if self._static is not None:
            if not self._static:
                raise SocketError.UnknownHostName(name=self._host)
            # localhost is answered with no I/O at all (DESIGN §17): its order is RFC 6724's for
            # two reachable loopbacks (::1 first, rule 6), not learned. A literal is one address.
            static = self._static if self._source != "files" else self._ordered(self._static)
            return Resolution(static, self._canonical, self._source)
        if self._error is not None:
            raise self._error
        if not self.done():
            raise RuntimeError("the lookup is not done yet")
        a = self._queries.get(TYPE_A)
        aaaa = self._queries.get(TYPE_AAAA)
        addresses = self._addresses(a) + self._addresses(aaaa)
        if not addresses:
            raise SocketError.UnknownHostName(name=self._host)
        addresses = self._ordered(addresses)
        asked = self._names[self._turn]
        source = a if a is not None and a.reply is not None and a.reply.addresses else aaaa
        canonical = asked
        if source is not None and source.reply is not None and source.reply.chain:
            canonical = source.reply.canonical_name
        return Resolution(addresses, canonical, "dns")

    def _ordered(self, addresses: tuple[Address, ...]) -> tuple[Address, ...]:
        """RFC 6724 destination order, each destination's source learned by a UDP connect (no packet sent)."""
        if len(addresses) < 2:
            return addresses
        return tuple(source_address.in_rfc6724_order(addresses, ctx=self._ctx))

    def close(self) -> None:
        """Close every socket the lookup holds, exactly once; idempotent.

        A driver's ``finally`` should rather call ``cells.close_all(lookup.held)``, which
        runs no line of this module (see `held`).
        """
        cells.close_all(self.held)
        exchange = self._exchange
        if exchange is not None:
            exchange.close()


__all__ = ["NameLookup", "is_localhost", "search_names"]
