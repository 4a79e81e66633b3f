"""`connect_host`: a stream to a host by name -- Happy Eyeballs v2 (RFC 8305), one thread, one wait.

The name is looked up by a `janus_net._profiles.name_lookup.NameLookup` (literals, localhost,
the hosts file, DNS: A and AAAA asked together) and its answers are raced as they come,
all in one loop of `janus_net._policy.waiting.wait_fds` over the lookup's sockets and
the connecting ones (DESIGN §17)::

    lookup ──AAAA──► start at once ─┐
           ──A─────► start 50 ms later unless AAAA came first (the resolution delay)
                                     ▼
    sort (RFC 6724, the sources learned by UDP connects) -> interleave the families
    -> attempt 1 ─ attempt_delay, or at once when one fails ─► attempt 2 ─► ...
    -> the first connection wins; every other attempt is closed, each exactly once

Each attempt is the connect door of `janus_net._profiles.connect` -- `open_socket`
(a close-on-exec, non-blocking socket in its own cell), `start` (the non-blocking
connect), `sockets.connect_result` (SO_ERROR once it polls ready), `finish` (blocking
again, SO_NOSIGPIPE, the `Stream`) -- so ``connect_host`` and ``connect`` make their
sockets the same way, and the audit event ``janus_net.connect`` is raised before each
attempt as ``connect`` raises it.

Every descriptor of the call -- the lookup's, every attempt's -- is closed before it
returns or raises, on every path (the winner's passes to its `Stream`); a cancel or a
deadline ends the call within one wake-up with `SocketError.Timeout`. No thread is
used, but with ``netns=``: then one helper thread (`janus_net._policy.netns.Maker`) makes
the attempts' sockets (and the source probes) inside the namespace, and is joined
before the call returns.
"""

from __future__ import annotations

import errno
import math
import sys
import time

from janus_net._kernel import cells, sockets
from janus_net._policy import netns as policy_netns
from janus_net._policy import waiting
from janus_net._policy.netns import Maker, NamespacePath
from janus_net._profiles import source_address
from janus_net._profiles.connect import finish, open_socket, refuse_self, start
from janus_net._profiles.name_lookup import NameLookup
from janus_net._shim import lib
from janus_net._sockets.stream import Stream
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address, require_zone
from janus_net._values.seconds import seconds

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from janus_net._kernel.loop import Checkpoint
    from janus_net._policy.context import Context
    from janus_net._profiles.resolver_config import ResolverConfig

IpAddress = Ip4Address | Ip6Address

#: RFC 8305 §3: how long an A answer waits for the AAAA answer before the first attempt.
RESOLUTION_DELAY = 0.05
#: RFC 8305 §5: the smallest delay between two attempts (10 ms).
MIN_ATTEMPT_DELAY = 0.01

_AF_INET: int = lib.AF_INET
_AF_INET6: int = lib.AF_INET6
_POLLOUT: int = lib.POLLOUT
_IN_PROGRESS = sockets.IN_PROGRESS
# The errors of an attempt's socket that say "no descriptor or memory now", not "this address fails".
_SHORT_OF_RESOURCES = (
    SocketError.ProcessFdQuotaExceeded,
    SocketError.SystemFdQuotaExceeded,
    SocketError.SystemResources,
)


def connect_host(
    host: str,
    port: int,
    *,
    ctx: Context | None = None,
    config: ResolverConfig | None = None,
    family: int | None = None,
    attempt_delay: float = 0.25,
    netns: NamespacePath | None = None,
) -> Stream:
    """Connect a TCP stream to ``host``:``port``, racing its addresses (Happy Eyeballs v2, RFC 8305).

    A and AAAA are asked together. The first attempt starts as soon as the AAAA answer
    is in, or 50 ms after the A answer if AAAA is still missing; the addresses known are
    sorted by RFC 6724 (the source each would use learned from the kernel) and the
    families interleaved, IPv6 and IPv4 in turn from the family of the best address.
    A new attempt starts every ``attempt_delay`` seconds, or at once when one fails;
    addresses that arrive later join the race. An attempt whose socket cannot be made for
    want of descriptors or memory while others are in flight is no failure of its address:
    it is made again later (the next attempt's time, or when one ends). The first attempt to connect wins and
    every other one is closed, exactly once. The result is a blocking, close-on-exec
    `Stream` whose ``.address`` is the peer, as `janus_net.connect` gives.

    Args:
        host: a host name, or an IP literal in the strict forms of DESIGN §4.
        port: the TCP port, 0..65535.
        ctx: a `Context`; its cancel or deadline ends the lookup and every attempt at
            once with `SocketError.Timeout`, nothing left open.
        config: the resolver configuration (`ResolverConfig.load()` when None).
        family: None (both), ``socket.AF_INET`` or ``socket.AF_INET6``: only that family
            is asked and tried.
        attempt_delay: seconds between the starts of two attempts; at least 0.01
            (RFC 8305 §5); ``math.inf``: a new attempt only when one fails.
        netns: a network namespace file: the connections are made inside it, their
            sockets made by one helper thread that enters it (joined before this
            returns); the name is still looked up from the caller's namespace.

    Returns:
        The connected `Stream` of the winning attempt.

    Raises:
        ValueError / TypeError: ``attempt_delay`` not a number, NaN or below 0.01; a bad
            ``netns``; before any I/O.
        SocketError.InvalidHostName: the name is malformed (before any I/O).
        SocketError.UnknownHostName / NameServerFailure: the lookup found no address.
        SocketError.Timeout: the context was cancelled or its deadline passed.
        SocketError: every attempt failed. The error raised is the first address's (the
            first attempt's) own error -- ``ConnectionRefused``, ``NetworkUnreachable``,
            ``ConnectionTimedOut``... -- and its ``exceptions`` attribute is the tuple
            of every attempt's error, in the order the attempts were made (the raised
            one first), each naming its address in ``.address``.
        SocketError.FileNotFound / AccessDenied / InvalidAddress: the ``netns`` file
            cannot be entered (as `janus_net.connect` says).

    The audit events are ``janus_net.resolve`` (the host, before any I/O) and
    ``janus_net.connect`` (each address, before its attempt's socket is made).
    """
    delay = _check_attempt_delay(attempt_delay)
    if netns is not None:
        policy_netns.check_path(netns)  # ValueError/TypeError before any I/O
    lookup: NameLookup | None = None
    maker: Maker | None = None
    race: _Race | None = None
    try:
        # Made inside the try (as `resolve` does): the cleanup closes whatever the lookup
        # made, wherever an exception lands. It checks all else, audits, loads the config.
        lookup = NameLookup(host, port, family, config, ctx)
        if netns is not None:
            maker = Maker(netns)
            maker.start()  # a namespace that cannot be entered is the call's error, before any attempt
        race = _Race(delay, maker, ctx)
        return _run(lookup, race, family, ctx)
    except BaseException:
        if race is not None:
            race.winner = None  # a Stream made before the exception is lost with it: its cell is closed below
        raise
    finally:
        # The helper first: a socket it is still making lands in its cell before the
        # cells are closed; then the lookup's sockets; then every losing attempt, each
        # exactly once (claim-once cells) -- inline here, in the cleanup itself. An
        # exception in this cleanup loses the Stream too: then its cell is closed as well.
        try:
            try:
                if maker is not None:
                    maker.close()
            finally:
                if lookup is not None:
                    cells.close_all(lookup.held)  # one call into the door: no line of the lookup runs here
        except BaseException:
            if race is not None:
                race.winner = None
            raise
        finally:
            if race is not None:
                for attempt in race.attempts:
                    if attempt is not race.winner:
                        cells.close_desc(attempt.desc)


def _check_attempt_delay(value: object) -> float:
    delay = seconds(value, "attempt_delay")  # TypeError for a non-number, ValueError for NaN
    if not delay >= MIN_ATTEMPT_DELAY:
        raise ValueError(f"attempt_delay must be at least {MIN_ATTEMPT_DELAY} seconds (RFC 8305), not {value!r}")
    return delay


def _run(lookup: NameLookup, race: _Race, family: int | None, ctx: Context | None) -> Stream:
    """The one loop: take the lookup's answers, start attempts when due, wait for whichever comes next."""
    wanted = (_AF_INET6, _AF_INET) if family is None else (family,)
    known: dict[int, tuple[IpAddress, ...]] = {}
    a_alone_since: float | None = None  # when A answered while AAAA had not: the resolution delay
    while True:
        now = time.monotonic()
        done = lookup.done()
        fresh: list[IpAddress] = []
        for fam in wanted:
            if fam not in known:
                answer = lookup.answer(fam)
                if answer is None and done:
                    answer = ()  # the lookup is over: what it did not answer, it never will
                if answer is not None:
                    known[fam] = tuple(a for a in answer if isinstance(a, (Ip4Address, Ip6Address)))
                    fresh.extend(known[fam])
        if race.started:
            if fresh:
                race.add(fresh)
        elif any(known.values()):
            ready = _AF_INET6 in known or _AF_INET6 not in wanted
            if not ready:  # A alone: AAAA gets the resolution delay to catch up (RFC 8305 §3)
                if a_alone_since is None:
                    a_alone_since = now
                ready = now >= a_alone_since + RESOLUTION_DELAY
            if ready:
                race.begin([a for fam in wanted for a in known.get(fam, ())])
        elif done:
            lookup.result()  # raises UnknownHostName / NameServerFailure
            raise SocketError.Unexpected(None, "the lookup ended with no address and no error")  # pragma: no cover

        stream = race.launch_due(now)
        if stream is not None:
            return stream
        if race.started and race.idle() and len(known) == len(wanted):
            raise race.failure()

        asked = not done
        lookup_entries = lookup.poll_entries() if asked else []
        entries = lookup_entries + race.entries()
        until = _earliest(
            lookup.next_deadline() if asked else None,
            race.next_start(),
            None if race.started or a_alone_since is None else a_alone_since + RESOLUTION_DELAY,
        )
        revents = waiting.wait_fds(entries, ctx, until)
        now = time.monotonic()
        if asked:
            lookup.advance(revents[: len(lookup_entries)], now)
        stream = race.settle(revents[len(lookup_entries) :], now)
        if stream is not None:
            return stream


def _earliest(*instants: float | None) -> float | None:
    times = [t for t in instants if t is not None and t != math.inf]
    return min(times) if times else None


class _Attempt:
    """One connection attempt: its address, its cell (the fd once the socket exists), and its place in the race."""

    __slots__ = ("address", "desc", "fd", "number")

    def __init__(self, address: IpAddress, desc: Any, number: int) -> None:
        self.address = address
        self.desc = desc
        self.fd = -1
        self.number = number  # 0 for the first attempt made: the order `failure` reports errors in


class _Race:
    """The attempts of one call: the addresses left per family, the attempts in flight, the errors.

    Every attempt's cell is in ``attempts`` from before its socket exists until it is
    closed: at once when it fails, by the cleanup of `connect_host` when it loses (or
    when anything ends the call with an exception); the ``winner``'s passes to its Stream.
    """

    __slots__ = (
        "attempts",
        "check",
        "ctx",
        "delay",
        "errors",
        "made",
        "maker",
        "next_at",
        "next_family",
        "polled",
        "queues",
        "winner",
    )

    def __init__(self, delay: float, maker: Maker | None, ctx: Context | None) -> None:
        self.delay = delay
        self.maker = maker
        self.ctx = ctx
        self.check: Checkpoint | None = None if ctx is None else ctx.check
        self.queues: dict[int, list[IpAddress]] = {_AF_INET6: [], _AF_INET: []}
        self.next_family = 0  # 0: not started
        self.next_at = -math.inf
        self.attempts: list[_Attempt] = []
        self.polled: list[_Attempt] = []
        # (attempt number, its error): attempts fail in any order (a blackholed first address
        # fails long after a refused second one), but `failure` reports them in the order made.
        self.errors: list[tuple[int, SocketError]] = []
        self.made = 0
        self.winner: _Attempt | None = None

    @property
    def started(self) -> bool:
        return self.next_family != 0

    def _ordered(self, addresses: list[IpAddress]) -> list[IpAddress]:
        return source_address.in_rfc6724_order(addresses, ctx=self.ctx, netns=self.maker)

    def begin(self, addresses: list[IpAddress]) -> None:
        """Sort what is known (RFC 6724) and start with the family of the best address."""
        ordered = self._ordered(addresses)
        for address in ordered:
            self.queues[address.family].append(address)
        self.next_family = ordered[0].family

    def add(self, addresses: list[IpAddress]) -> None:
        """Addresses that came after the race began join their family's queue, in RFC 6724 order.

        When the attempts in flight hold the last descriptors, the source probes cannot be made:
        the addresses then join in the lookup's order (they are deferred like any attempt short
        of a descriptor). Raising would end the call and close the attempts that may yet win.
        """
        try:
            ordered = self._ordered(addresses)
        except _SHORT_OF_RESOURCES:
            if not self.attempts:
                raise  # nothing of the race holds a descriptor: the shortage is the call's error
            ordered = addresses
        for address in ordered:
            self.queues[address.family].append(address)

    def idle(self) -> bool:
        """Nothing left to try and nothing in flight."""
        return not self.attempts and not self.queues[_AF_INET6] and not self.queues[_AF_INET]

    def next_start(self) -> float | None:
        """When the next attempt is due, if one is left to make."""
        if not self.started or (not self.queues[_AF_INET6] and not self.queues[_AF_INET]):
            return None
        return self.next_at

    def launch_due(self, now: float) -> Stream | None:
        """Start every attempt that is due (more than one when attempts fail at once)."""
        while self.started and now >= self.next_at:
            turn = self.next_family
            address = self._next_address()
            if address is None:
                return None
            stream = self._launch(address, turn)
            if stream is not None:
                return stream
            now = time.monotonic()
        return None

    def _next_address(self) -> IpAddress | None:
        family = self.next_family
        other = _AF_INET if family == _AF_INET6 else _AF_INET6
        queue = self.queues[family] or self.queues[other]
        if not queue:
            return None
        address = queue.pop(0)
        self.next_family = other if address.family == family else family
        return address

    def _launch(self, address: IpAddress, turn: int) -> Stream | None:
        sys.audit("janus_net.connect", str(address))
        attempt = _Attempt(address, cells.new_desc(), self.made)
        self.made += 1
        self.attempts.append(attempt)
        try:
            require_zone(address, "connect")  # fe80::1 with no link cannot be tried
            fd = open_socket(attempt.desc, address, self.maker, self.check)
            rc = start(fd, address, self.check)
            if rc != 0 and rc != _IN_PROGRESS:  # EAGAIN from a TCP connect: no local port is free
                why = "no local port is free for another connection"
                raise SocketError.AddressUnavailable(errno.EAGAIN, why, syscall="connect", address=str(address))
        except SocketError.Timeout:
            raise
        except _SHORT_OF_RESOURCES as exc:
            if len(self.attempts) == 1:
                self._failed(attempt, exc)  # nothing of this race holds a descriptor: the failure is the address's
            else:
                self._defer(attempt, turn)
            return None
        except SocketError as exc:
            self._failed(attempt, exc)
            return None
        attempt.fd = fd
        if rc == 0:
            try:
                refuse_self(fd, address)
            except SocketError as exc:
                self._failed(attempt, exc)
                return None
            return self._won(attempt)  # connected at once
        self.next_at = time.monotonic() + self.delay
        return None

    def _failed(self, attempt: _Attempt, error: SocketError) -> None:
        """An attempt failed: its error is kept, its socket closed now, and the next attempt is due at once."""
        if error.address is None:
            # Made by a step given no address (socket, fcntl: EMFILE...): each of the call's
            # errors names the address it stands for, as the docstring of connect_host says.
            error.address = str(attempt.address)
        self.errors.append((attempt.number, error))
        cells.close_desc(attempt.desc)  # claim-once: closed before it leaves the list, never twice
        self.attempts.remove(attempt)
        self.next_at = -math.inf

    def _defer(self, attempt: _Attempt, turn: int) -> None:
        """The race's own attempts in flight hold the last descriptors (EMFILE...): no verdict on the address.

        It goes back to the head of its queue, its number and its family's turn with it, and is
        asked again at the next attempt's time or at once when an attempt in flight ends (and
        frees its descriptor). Counting it as failed made every address after it fail the same
        way in one loop, and a call that one free descriptor would have won waited for the
        blackholed attempts instead.
        """
        cells.close_desc(attempt.desc)
        self.attempts.remove(attempt)
        self.made -= 1
        self.queues[attempt.address.family].insert(0, attempt.address)
        self.next_family = turn
        self.next_at = time.monotonic() + self.delay

    def _won(self, attempt: _Attempt) -> Stream:
        # Named the winner before its Stream exists: the cleanup of `connect_host` then
        # closes every other attempt on return, and all of them, this one too, if an
        # exception comes before the Stream has reached the caller.
        self.winner = attempt
        return finish(attempt.desc, attempt.fd, attempt.address, self.check)

    def entries(self) -> list[tuple[int, int]]:
        """(fd, POLLOUT) for each attempt in flight; `settle` reads the answers in this order."""
        self.polled = list(self.attempts)
        return [(attempt.fd, _POLLOUT) for attempt in self.polled]

    def settle(self, revents: list[int], now: float) -> Stream | None:
        """Read the outcome of each attempt that polled ready: the first connected one wins."""
        for attempt, ready in zip(self.polled, revents, strict=True):
            if not ready:
                continue
            try:
                sockets.connect_result(attempt.fd, attempt.address)
                refuse_self(attempt.fd, attempt.address)  # connected to itself: nobody listens there
            except SocketError as exc:
                self._failed(attempt, exc)
                continue
            return self._won(attempt)
        return None

    def failure(self) -> SocketError:
        """Every attempt failed: the first attempt's error, with every attempt's, in order, in ``exceptions``."""
        errors = tuple(error for _number, error in sorted(self.errors, key=lambda pair: pair[0]))
        first = errors[0]
        first.exceptions = errors  # type: ignore[attr-defined]
        return first


__all__ = ["MIN_ATTEMPT_DELAY", "RESOLUTION_DELAY", "connect_host"]
