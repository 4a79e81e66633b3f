"""The sockets janus_net hands out: `Server` (listening), `Stream` (accepted), `Socket` (bound).

All of them own one descriptor, are blocking and close-on-exec, and never raise
SIGPIPE. Each closes its descriptor exactly once: explicitly with ``close()`` (or a
``with`` block), or, if forgotten, when garbage-collected, with a `ResourceWarning`
as stdlib sockets do. ``to_socket()`` hands the descriptor to a plain
`socket.socket` for asyncio, trio and friends, and leaves the janus_net object
closed and detached.

Closing while another thread is blocked in ``accept``/``read``/``receive`` on the
same object is safe: ``close()`` shuts the socket down, which wakes the blocked
call, and the descriptor is released only once that call has returned, so its
number cannot be reused under a syscall that is still using it.
"""

from __future__ import annotations

import enum
import errno
import itertools
import operator
import socket as _stdsocket
import sys
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from janus_net import ancillary, platform, segments, sockopts, syscalls
from janus_net._shim import ffi, lib
from janus_net.address import (
    DECODED_SOURCES,
    Address,
    Ip4Address,
    Ip6Address,
    UnixAddress,
    as_address,
    from_sockaddr,
    from_sockaddr_cached,
)
from janus_net.batch import (
    _BATCH_MAX,
    _SEQUENCES,
    _SOCKADDR_IN_SIZE,
    _USE_MMSG,
    _batch_capacity,
    _ReceiveBatch,
    _SendBatch,
)
from janus_net.descriptor import Descriptor
from janus_net.errors import SocketError
from janus_net.escaping import for_people
from janus_net.scratch import (
    _IP4_KEY_OK,
    _PEER_FAMILIES,
    _SA_FAMILY_END,
    _SOCKADDR_STORAGE_SIZE,
    _STORAGE_P,
    _UNNAMED_UNIX,
    Buffer,
    _Pool,
    _Scratch,
    _uncleared,
)
from janus_net.waiting import _wait_for

if TYPE_CHECKING:
    from janus_net.context import Context
    from janus_net.unixfile import UnixFile

_T = TypeVar("_T")


class Mode(enum.IntEnum):
    """Socket modes (types), valued as this platform's SOCK_* constants."""

    #: Sequenced, reliable, two-way connection-based byte streams.
    STREAM = lib.SOCK_STREAM
    #: Connectionless, unreliable messages of a fixed maximum length.
    DGRAM = lib.SOCK_DGRAM
    #: Reliable, ordered, connection-based datagrams read whole.
    SEQPACKET = lib.SOCK_SEQPACKET
    #: Raw network protocol access.
    RAW = lib.SOCK_RAW
    #: Reliable datagrams without guaranteed ordering.
    RDM = lib.SOCK_RDM


class Protocol(enum.IntEnum):
    """IP protocol numbers, as assigned by IANA (the same on every platform)."""

    HOPOPTS = 0
    ICMP = 1
    IGMP = 2
    IPIP = 4
    TCP = 6
    EGP = 8
    PUP = 12
    UDP = 17
    IDP = 22
    TP = 29
    DCCP = 33
    IPV6 = 41
    ROUTING = 43
    FRAGMENT = 44
    RSVP = 46
    GRE = 47
    ESP = 50
    AH = 51
    ICMPV6 = 58
    NONE = 59
    DSTOPTS = 60
    MTP = 92
    BEETPH = 94
    ENCAP = 98
    PIM = 103
    COMP = 108
    SCTP = 132
    MH = 135
    UDPLITE = 136
    MPLS = 137
    ETHERNET = 143
    RAW = 255
    MPTCP = 262


class _PendingPeer:
    """An accepted peer's sockaddr, as accept wrote it, until someone asks for the address.

    Many servers never look at the peer address, and a peer's port is new for every
    connection, so no cache would help: decoding it (an `ipaddress` object and an
    address value) is left to the first use. Errors and ``repr`` print it through
    ``__str__``, which decodes it the same way.
    """

    __slots__ = ("length", "raw")

    def __init__(self, raw: bytes, length: int) -> None:
        self.raw = raw  # the bytes accept wrote (at most a sockaddr_storage)
        self.length = length  # the length accept reported

    def decode(self) -> Address:
        # A zeroed storage holding exactly what the kernel wrote: what from_sockaddr
        # would have seen had it decoded at once.
        storage = ffi.new(_STORAGE_P)
        ffi.memmove(storage, self.raw, len(self.raw))
        return from_sockaddr(storage, self.length)

    def __str__(self) -> str:
        return str(self.decode())


class _Owner:
    """What Server, Stream and Socket share: one Descriptor and the ways to end it."""

    __slots__ = ("__weakref__", "_address", "_descriptor")

    # Only a Stream's peer is ever a _PendingPeer (decoded by the first ``address``).
    _address: Address | _PendingPeer

    def __init__(self, fd: int, address: Address | _PendingPeer) -> None:
        self._descriptor = Descriptor(fd)
        self._address = address

    @property
    def address(self) -> Address:
        address = self._address
        if isinstance(address, _PendingPeer):
            # Two threads may both decode; they store equal values.
            address = address.decode()
            self._address = address
        return address

    @property
    def closed(self) -> bool:
        return self._descriptor.closing

    def fileno(self) -> int:
        """The descriptor, or -1 once closed (as stdlib sockets report)."""
        return -1 if self._descriptor.closing else self._descriptor.fd

    def close(self) -> None:
        """Close the socket. Idempotent; safe while another thread is blocked in it."""
        self._descriptor.close()

    def to_socket(self) -> _stdsocket.socket:
        """Hand the descriptor to a plain `socket.socket` and leave this object closed.

        ``type(result) is socket.socket``, so trio's ``from_stdlib_socket`` and
        asyncio's ``sock=`` parameters take it.
        """
        if self._descriptor.closing:
            raise syscalls.GETSOCKNAME.error(errno.EBADF, self._address)
        fd = self._descriptor.detach()
        try:
            return _stdsocket.socket(fileno=fd)
        except BaseException:
            syscalls.close(fd)
            raise

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        descriptor = getattr(self, "_descriptor", None)
        if descriptor is not None and not descriptor.closing:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._descriptor.closing else f"fd={self._descriptor.fd}"
        return f"<janus_net.{type(self).__name__} {for_people(str(self._address))} {state}>"


# BSD-derived kernels give an accepted socket the listener's O_NONBLOCK; Linux does not.
_ACCEPT_INHERITS_O_NONBLOCK = not sys.platform.startswith("linux")


def _set_nonblocking(fd: int, on: bool) -> None:
    """Set or clear O_NONBLOCK on the file description behind ``fd``."""
    flags = syscalls.retry(syscalls.FCNTL, lib.fcntl, (fd, lib.F_GETFL, ffi.cast("int", 0)))
    wanted = flags | lib.O_NONBLOCK if on else flags & ~lib.O_NONBLOCK
    if wanted != flags:
        syscalls.retry(syscalls.FCNTL, lib.fcntl, (fd, lib.F_SETFL, ffi.cast("int", wanted)))


def _closed_while_waiting(address: object) -> SocketError:
    """What a receive woken by another thread's ``close()`` raises.

    Closing from another thread is the documented way to stop a receive loop, not a
    bug, so it gets a catchable member (SocketUnconnected: the socket can no longer
    receive), not the EBADF row that a call *started* on a closed socket reports.
    What the kernel handed back is the shutdown's end-of-file marker, never a datagram.
    """
    return SocketError.SocketUnconnected(
        None, "the socket was closed by another thread while this call waited", syscall="receive", address=str(address)
    )


def _accepted_options(fd: int) -> None:
    if platform.SO_NOSIGPIPE:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1)


class _Bound(_Owner):
    """What Server and Socket share: a socket this process bound, maybe to a unix socket file."""

    __slots__ = ("_unix_file",)

    def __init__(self, fd: int, address: Address, unix_file: UnixFile | None = None) -> None:
        super().__init__(fd, address)
        self._unix_file = unix_file

    def close(self) -> None:
        """Close the socket, and remove the unix socket file if this bind created it.

        The file is removed only if the path still names the inode bind created, so a
        file someone else put there since is left alone.
        """
        unix_file = self._unix_file
        try:
            if unix_file is not None and not self._descriptor.closing:
                # Before the socket closes: while it is bound, no janus_net process takes
                # the file for stale, so nothing can replace it under this unlink.
                unix_file.remove()
        finally:
            self._descriptor.close()

    def options(self) -> dict[str, object]:
        """The options the kernel holds on this socket, keyed by the listen/bind keyword names.

        Read with getsockopt each time (see `janus_net.sockopts.read` for the keys), so
        it shows what is in force, not what was asked.
        """
        fd = self._descriptor.acquire(syscalls.GETSOCKOPT, self._address)
        try:
            return sockopts.read(fd)
        finally:
            self._descriptor.release()

    def to_socket(self) -> _stdsocket.socket:
        """Hand over the descriptor. A unix socket file stays: it is the caller's now."""
        sock = super().to_socket()
        self._unix_file = None
        return sock


class Server(_Bound):
    """A listening stream socket. ``accept()`` returns one `Stream` per connection.

    The listening descriptor is blocking, as every janus_net socket is, except while
    at least one ``accept(ctx)`` is in flight: accept has no per-call "don't wait"
    flag (recv has MSG_DONTWAIT), so for a context-aware accept to try without
    blocking, the file description is switched to O_NONBLOCK for as long as any
    such call is waiting (a count under a lock decides who switches it on and off).
    Plain ``accept()`` calls running meanwhile treat "nothing pending" by polling
    and accepting again, so they never notice.
    """

    __slots__ = ("_nonblocking_lock", "_nonblocking_users", "_scratch")

    def __init__(self, fd: int, address: Address, unix_file: UnixFile | None = None) -> None:
        super().__init__(fd, address, unix_file)
        self._nonblocking_lock = threading.Lock()
        self._nonblocking_users = 0
        # At most one idle _Scratch (the peer's sockaddr and length), reused by the next accept.
        self._scratch: _Pool[_Scratch] = _Pool()

    def accept(self, ctx: Context | None = None) -> Stream:
        """Wait for a connection and return it.

        Without ``ctx`` this is one blocking accept (signals still interrupt it, and a
        KeyboardInterrupt propagates). With ``ctx`` it waits with poll on the socket and
        on the context, so a cancel from another thread or the deadline ends it with
        `SocketError.Timeout`. After ``shutdown()`` it raises SocketNotListening.
        """
        descriptor = self._descriptor
        fd = descriptor.acquire(syscalls.ACCEPT, self._address)
        scratch = self._scratch.take() or _Scratch()
        try:
            size = scratch.length
            size[0] = _SOCKADDR_STORAGE_SIZE
            try:
                if ctx is None:
                    conn = self._accept_blocking(fd, scratch.storage, size)
                else:
                    conn = self._accept_with_context(ctx, fd, scratch.storage, size)
            finally:
                descriptor.release()
            # Copied out before the scratch goes back to the pool.
            length = size[0]
            family = scratch.sa.sa_family if length >= _SA_FAMILY_END else None
            peer = _PendingPeer(ffi.buffer(scratch.storage, min(length, _SOCKADDR_STORAGE_SIZE))[:], length)
        finally:
            self._scratch.give(scratch)
        try:
            if ctx is not None and _ACCEPT_INHERITS_O_NONBLOCK:
                _set_nonblocking(conn, False)
            _accepted_options(conn)
            if family not in _PEER_FAMILIES:
                # Not a family the lazy decode is sure to handle: decode (and fail) now, as before.
                return Stream(conn, peer.decode())
            return Stream(conn, peer)
        except BaseException:
            syscalls.close(conn)
            raise

    def _accept_blocking(self, fd: int, storage: Any, size: Any) -> int:
        # The fd is blocking unless an accept(ctx) has made it O_NONBLOCK for a while;
        # then "nothing pending" comes back as WOULD_BLOCK and we wait like a blocking
        # accept would. Without a checkpoint, a signal handler's exception (SIGINT's
        # KeyboardInterrupt) still propagates from the retry loop.
        while True:
            conn = syscalls.accept(fd, storage, size, None, self._address, True)
            if conn != syscalls.WOULD_BLOCK:
                return conn
            pollfd = ffi.new("struct pollfd *")
            pollfd.fd = fd
            pollfd.events = lib.POLLIN
            syscalls.poll(pollfd, 1, -1)

    def _accept_with_context(self, ctx: Context, fd: int, storage: Any, size: Any) -> int:
        with self._nonblocking_lock:
            if self._nonblocking_users == 0:
                _set_nonblocking(fd, True)
            self._nonblocking_users += 1
        try:
            return _wait_for(
                ctx,
                fd,
                lambda: syscalls.accept(fd, storage, size, ctx.check, self._address, True),
                self._not_listening,
            )
        finally:
            with self._nonblocking_lock:
                self._nonblocking_users -= 1
                if self._nonblocking_users == 0:
                    _set_nonblocking(fd, False)

    def _not_listening(self) -> int:
        # POLLHUP on a listener means it was shut down; the blocking accept says EINVAL.
        raise syscalls.ACCEPT.error(errno.EINVAL, self._address)

    def shutdown(self) -> None:
        """Stop listening: threads blocked in ``accept`` wake with SocketNotListening.

        So do later ``accept`` calls. The Server stays open until ``close()``, and
        calling ``shutdown()`` again does nothing.
        """
        fd = self._descriptor.acquire(syscalls.SHUTDOWN, self._address)
        try:
            syscalls.shutdown(fd, lib.SHUT_RDWR)
        except SocketError.SocketUnconnected:
            pass  # already shut down: the listener is in the CLOSE state, which is the goal
        finally:
            self._descriptor.release()

    def __enter__(self) -> Server:
        return self


class Stream(_Owner):
    """An accepted, connected stream. ``.address`` is the peer's address."""

    __slots__ = ()

    def read(self, n: int, ctx: Context | None = None) -> bytes:
        """Up to ``n`` bytes; ``b""`` at end of stream."""
        buf = _uncleared("char[]", n)
        got = self._receive(buf, n, ctx)
        return ffi.unpack(buf, got)

    def read_into(self, buffer: Buffer, ctx: Context | None = None) -> int:
        """Read into a writable buffer; returns the byte count (0 at end of stream)."""
        view = ffi.from_buffer(buffer, require_writable=True)
        return self._receive(view, len(view), ctx)

    def _receive(self, buf: Any, size: int, ctx: Context | None) -> int:
        descriptor = self._descriptor
        fd = descriptor.acquire(syscalls.RECEIVE, self._address)
        try:
            if ctx is None:
                return syscalls.recv(fd, buf, size, 0)
            return _wait_for(
                ctx,
                fd,
                lambda: syscalls.recv(fd, buf, size, lib.MSG_DONTWAIT, ctx.check, True),
                lambda: syscalls.recv(fd, buf, size, 0, ctx.check),
            )
        finally:
            descriptor.release()

    def write(self, data: Buffer) -> int:
        """Send some of ``data``; returns how many bytes went (a short write is possible)."""
        view = ffi.from_buffer(data)
        descriptor = self._descriptor
        fd = descriptor.acquire(syscalls.SEND, self._address)
        try:
            return syscalls.send(fd, view, len(view), platform.MSG_NOSIGNAL, self._address)
        finally:
            descriptor.release()

    def write_all(self, data: Buffer) -> None:
        """Send all of ``data``, looping over short writes."""
        view = memoryview(data).cast("B")
        while view:
            view = view[self.write(view) :]

    def __enter__(self) -> Stream:
        return self


_SEND = syscalls.SEND
_RECEIVE = syscalls.RECEIVE
_MSG_NOSIGNAL = platform.MSG_NOSIGNAL
# The address classes `as_address` passes through unchanged: checked by exact type.
_ADDRESS_TYPES = frozenset({Ip4Address, Ip6Address, UnixAddress})


class Socket(_Bound):
    """A bound socket, usually datagram: ``send`` to any address, ``receive`` from any."""

    __slots__ = ("_ip4_keys", "_receive_batches", "_scratch", "_send_batches")

    def __init__(self, fd: int, address: Address, unix_file: UnixFile | None = None) -> None:
        super().__init__(fd, address, unix_file)
        # At most one idle batch each, reused by the next send_many / receive_many.
        self._send_batches: _Pool[_SendBatch] = _Pool()
        self._receive_batches: _Pool[_ReceiveBatch] = _Pool()
        # At most one idle _Scratch, reused by the next receive / receive_into.
        self._scratch: _Pool[_Scratch] = _Pool()
        # An AF_INET socket hears only IPv4 peers: their sources can be keyed by an int.
        self._ip4_keys = _IP4_KEY_OK and address.family == lib.AF_INET

    def send(self, dest: str | Address, data: Buffer, source: str | Address | None = None) -> int:
        """Send one datagram to ``dest``; returns the bytes sent.

        ``source`` (an address of this host, with this socket's port or 0) makes the
        datagram leave from that address (IP_PKTINFO / IPV6_PKTINFO): a server bound
        to the wildcard replies from the address the client used (``Datagram.destination``).
        """
        if source is not None:
            return ancillary.send_from(self._descriptor, self.address, dest, data, source)
        # This and _receive_from are the datagram hot path: they hand their syscall to
        # the retry loop themselves, without a typed wrapper's frame in between.
        # An address value passes as is (a type check, not as_address's call); text is parsed.
        target: Address = dest if type(dest) in _ADDRESS_TYPES else as_address(dest)  # type: ignore[assignment]
        encoded = target.destination(self._address.family)  # type: ignore[union-attr]  # refuses port 0 first
        if type(data) is bytes:
            view: Any = data  # cffi passes bytes to a const void * as is
        else:
            view = ffi.from_buffer(data)
        descriptor = self._descriptor
        fd = descriptor.acquire(_SEND, target)
        try:
            args = (fd, view, len(view), _MSG_NOSIGNAL, encoded.pointer, encoded.length)
            return syscalls.retry(_SEND, lib.sendto, args, None, target)
        finally:
            descriptor.release()

    def receive(self, size: int = 65536, ctx: Context | None = None) -> tuple[bytes, Address]:
        """One datagram (at most ``size`` bytes; the rest of a longer one is dropped) and its source."""
        pool = self._scratch
        scratch = pool.take() or _Scratch()
        try:
            if type(size) is int and 0 <= size <= scratch.capacity:
                buf = scratch.buf  # the usual case, without scratch.buffer's frame
            else:
                buf = scratch.buffer(size)
            got, source = self._receive_from(buf, size, ctx, scratch)
            return ffi.unpack(buf, got), source
        finally:
            pool.give(scratch)

    def receive_into(self, buffer: Buffer, ctx: Context | None = None) -> tuple[int, Address]:
        """One datagram into a writable buffer: (byte count, source)."""
        view = ffi.from_buffer(buffer, require_writable=True)
        scratch = self._scratch.take() or _Scratch()
        try:
            return self._receive_from(view, len(view), ctx, scratch)
        finally:
            self._scratch.give(scratch)

    def _receive_from(
        self, buf: Any, size: int, ctx: Context | None, scratch: _Scratch, nonblocking: bool = False
    ) -> tuple[int, Address]:
        length = scratch.length
        length[0] = _SOCKADDR_STORAGE_SIZE
        sa = scratch.sa
        descriptor = self._descriptor
        fd = descriptor.acquire(_RECEIVE, self._address)
        try:
            if nonblocking:
                attempt = (fd, buf, size, lib.MSG_DONTWAIT, sa, length)
                got = syscalls.retry(_RECEIVE, lib.recvfrom, attempt, None, None, True)
                if got == syscalls.WOULD_BLOCK:
                    return got, self.address
            elif ctx is None:
                got = syscalls.retry(_RECEIVE, lib.recvfrom, (fd, buf, size, 0, sa, length))
            else:
                check = ctx.check
                attempt = (fd, buf, size, lib.MSG_DONTWAIT, sa, length)
                blocking = (fd, buf, size, 0, sa, length)
                got = _wait_for(
                    ctx,
                    fd,
                    lambda: syscalls.retry(_RECEIVE, lib.recvfrom, attempt, check, None, True),
                    lambda: syscalls.retry(_RECEIVE, lib.recvfrom, blocking, check),
                )
        finally:
            descriptor.release()
        if descriptor.closing:
            raise _closed_while_waiting(self._address)
        named = length[0]
        if self._ip4_keys and named == _SOCKADDR_IN_SIZE:
            key = scratch.words[0]  # type: ignore[index]  # _ip4_keys implies words
            return got, DECODED_SOURCES.get(key) or from_sockaddr_cached(scratch.storage, named, key)
        if named == 0:
            # An unbound AF_UNIX sender: recvfrom reports no address at all, not even a family.
            return got, _UNNAMED_UNIX
        return got, from_sockaddr_cached(scratch.storage, named)

    def send_many(self, messages: Iterable[tuple[str | Address, Buffer]]) -> int:
        """Send each ``(dest, data)`` datagram, in order; returns how many were sent.

        ``dest`` is an address or its text. Where the platform has sendmmsg the
        datagrams go in batches of up to `_BATCH_MAX` per syscall, described by
        arrays this Socket keeps and reuses; each destination's sockaddr is the one
        its address owns, so nothing is encoded per message. Elsewhere it is one
        sendto per datagram.

        Every datagram is attempted: when the kernel takes only part of a batch, the
        rest goes in the next call. An error on the very first datagram raises its
        `SocketError` member (``MessageTooBig``, ``AddressFamilyUnsupported``, an
        ``InvalidAddress`` text...); an error on a later one stops there and returns
        the count, so ``messages[count]`` is the one that failed and is where to
        resume. (From an iterator, items after the failed one may have been taken.)
        An item that is not ``(address, bytes-like)`` raises TypeError once the
        datagrams before it have been sent.
        """
        if _USE_MMSG:
            return self._send_batched(messages)
        return self._send_each(messages)

    def _send_each(self, messages: Iterable[tuple[str | Address, Buffer]]) -> int:
        # The per-call path, for platforms without sendmmsg.
        sent = 0
        for dest, data in messages:
            try:
                self.send(dest, data)
            except SocketError:
                if sent == 0:
                    raise
                return sent
            sent += 1
        return sent

    def _send_batched(self, messages: Iterable[tuple[str | Address, Buffer]]) -> int:
        wanted = _batch_capacity(messages)
        batch = self._send_batches.take()
        if batch is None or batch.capacity < wanted:
            batch = _SendBatch(wanted)
        try:
            sent = 0
            capacity = batch.capacity
            # A list or tuple is cut into batches by slicing (none at all when it fits
            # in one), so no iterator is made and no empty read ends the last batch.
            sequence = type(messages) in _SEQUENCES
            iterator = None if sequence else iter(messages)
            start = 0
            while True:
                if iterator is None:
                    count = len(messages)  # type: ignore[arg-type]  # a list or tuple
                    items: Any = messages
                    if start or count > capacity:
                        items = items[start : start + capacity]
                    start += capacity
                    last = start >= count
                else:
                    items = list(itertools.islice(iterator, capacity))
                    last = len(items) < capacity
                filled, failure = batch.fill(items)
                if filled:
                    try:
                        done = self._send_filled(batch, filled)
                    except SocketError:
                        if sent == 0:
                            raise
                        return sent
                    finally:
                        batch.drop_buffers()
                    sent += done
                    if done < filled:
                        return sent
                if failure is not None:
                    if sent and isinstance(failure, SocketError):
                        return sent
                    raise failure
                if last:
                    return sent
        finally:
            self._send_batches.give(batch)

    def _send_filled(self, batch: _SendBatch, filled: int) -> int:
        """sendmmsg the first ``filled`` slots, again from where the kernel stopped."""
        targets = batch.targets
        descriptor = self._descriptor
        fd = descriptor.acquire(syscalls.SEND, targets[0])
        done = 0
        try:
            while done < filled:
                try:
                    went = syscalls.sendmmsg(fd, batch.msgs + done, filled - done, platform.MSG_NOSIGNAL, targets[done])
                except SocketError:
                    if done == 0:
                        raise
                    break
                if went == 0:
                    break  # not expected from a blocking socket; never spin on it
                done += went
        finally:
            descriptor.release()
        return done

    def receive_many(self, count: int, size: int = 2048, ctx: Context | None = None) -> list[tuple[bytes, Address]]:
        """Wait for at least one datagram, then take whatever else is queued, up to ``count``.

        Returns ``[(data, source), ...]`` in arrival order; each datagram longer than
        ``size`` bytes is cut to ``size`` (the rest is dropped, as `receive` does).
        Where the platform has recvmmsg this is one syscall per `_BATCH_MAX`
        datagrams, into arrays this Socket keeps and reuses (a second thread
        receiving at the same moment gets arrays of its own). Without ``ctx`` it is
        one blocking recvmmsg with MSG_WAITFORONE; with ``ctx`` it waits with poll on
        the socket and the context, as `receive` does -- never with recvmmsg's own
        timeout, which is checked only after a datagram arrives (see BUGS in
        recvmmsg(2)). Sources are decoded once per peer (`from_sockaddr_cached`).
        """
        count = operator.index(count)
        size = operator.index(size)
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if size < 0:
            raise ValueError(f"size must not be negative, not {size}")
        if _USE_MMSG:
            return self._receive_batched(count, size, ctx)
        return self._receive_each(count, size, ctx)

    def _receive_each(self, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
        # The per-call path, for platforms without recvmmsg.
        received = [self.receive(size, ctx)]
        buf = _uncleared("char[]", size)
        scratch = _Scratch()
        while len(received) < count:
            got, source = self._receive_from(buf, size, None, scratch, nonblocking=True)
            if got == syscalls.WOULD_BLOCK:
                break
            received.append((ffi.unpack(buf, got), source))
        return received

    def _receive_batched(self, count: int, size: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
        wanted = min(count, _BATCH_MAX)
        batch = self._receive_batches.take()
        if batch is None or batch.size != size or batch.capacity < wanted:
            batch = _ReceiveBatch(wanted, size, self.address.family == lib.AF_INET)
        try:
            return self._receive_with(batch, count, ctx)
        finally:
            self._receive_batches.give(batch)

    def _receive_with(self, batch: _ReceiveBatch, count: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
        received: list[tuple[bytes, Address]] = []
        msgs = batch.msgs
        want = min(count, batch.capacity)
        descriptor = self._descriptor
        fd = descriptor.acquire(syscalls.RECEIVE, self._address)
        try:
            batch.reset(want)
            if ctx is None:
                got = syscalls.recvmmsg(fd, msgs, want, lib.MSG_WAITFORONE)
                check = None
            else:
                check = ctx.check
                got = _wait_for(ctx, fd, lambda: syscalls.recvmmsg(fd, msgs, want, lib.MSG_DONTWAIT, check, True))
            if descriptor.closing:
                raise _closed_while_waiting(self._address)
            batch.collect(got, received)
            # A full batch may mean more is queued: keep taking it without waiting.
            while got == want and len(received) < count:
                want = min(count - len(received), batch.capacity)
                batch.reset(want)
                try:
                    got = syscalls.recvmmsg(fd, msgs, want, lib.MSG_DONTWAIT, check, True)
                except SocketError:
                    break  # keep what was already taken off the queue; the next call reports
                if got == syscalls.WOULD_BLOCK or descriptor.closing:
                    break
                batch.collect(got, received)
        finally:
            descriptor.release()
        return received

    def __enter__(self) -> Socket:
        return self

    # --- UDP segmentation offload and ancillary data (DESIGN §15): janus_net.segments, janus_net.ancillary

    def send_segments(self, dest: str | Address, data: Buffer, segment_size: int) -> int:
        """Send ``data`` to ``dest`` as datagrams of ``segment_size`` bytes (the last may be shorter).

        One sendmsg with a UDP_SEGMENT control message (GSO) carries them all; where
        the platform, the socket or the route cannot segment, one sendmmsg does,
        with the same datagrams on the wire. Returns the number of datagrams sent
        (an error after some went returns that count, as `send_many` does).

        Raises:
            ValueError: ``segment_size`` not an int in 1..65507 (before any syscall).
            SocketError.MessageTooBig: more data than one UDP send can carry (65,507
                bytes over IPv4, 65,527 over IPv6).
            SocketError.OptionUnsupported: not a UDP socket.
        """
        return segments.send_segments(self, dest, data, segment_size)

    def receive_segments(self, size: int = 65535, ctx: Context | None = None) -> tuple[bytes, int, Address]:
        """Coalesced datagrams of one source: ``(buffer, segment_size, source)``.

        With ``bind(..., gro=True)`` the kernel may hand over many datagrams at once;
        ``jn.split(buffer, segment_size)`` yields them. A datagram that was not
        coalesced comes alone, with ``segment_size == len(buffer)``.

        Raises:
            SocketError.MessageTooBig: the message was longer than ``size`` (MSG_TRUNC;
                it is dropped), or its control data did not fit (MSG_CTRUNC).
        """
        # A Socket's _address is always an Address (only a Stream's peer is pending).
        local: Address = self._address  # type: ignore[assignment]
        data, source, segment, _, _ = ancillary.receive(self._descriptor, local, size, ctx, _closed_while_waiting)
        return data, len(data) if segment is None else segment, source

    def receive_message(self, size: int = 65536, ctx: Context | None = None) -> ancillary.Datagram:
        """One datagram with its destination address and kernel timestamp, as a `Datagram`.

        ``.destination`` needs ``bind(..., pktinfo=True)`` and ``.timestamp``
        ``bind(..., timestamps=True)``; each is None otherwise.

        Raises:
            SocketError.MessageTooBig: the datagram was longer than ``size`` (it is
                dropped), or the control data did not fit.
        """
        data, source, segment, destination, timestamp = ancillary.receive(
            self._descriptor, self.address, size, ctx, _closed_while_waiting
        )
        return ancillary.Datagram(data, source, destination, timestamp, len(data) if segment is None else segment)


__all__ = ["Mode", "Protocol", "Server", "Socket", "Stream", "UnixAddress"]
