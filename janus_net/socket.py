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
import math
import operator
import socket as _stdsocket
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from janus_net import platform, syscalls
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
from janus_net.errors import SocketError

if TYPE_CHECKING:
    from janus_net.context import Context
    from janus_net.unixfile import UnixFile

_T = TypeVar("_T")

#: Anything with the buffer protocol (bytes, bytearray, memoryview, array...).
Buffer = bytes | bytearray | memoryview

_SOCKADDR_STORAGE_SIZE = ffi.sizeof("struct sockaddr_storage")
_STORAGE_P = ffi.typeof("struct sockaddr_storage *")
_SOCKADDR_P = ffi.typeof("struct sockaddr *")
_SOCKLEN_P = ffi.typeof("socklen_t *")
# Where sa_family ends in a sockaddr: a shorter one from accept has no family to read.
_SA_FAMILY_END = ffi.offsetof("struct sockaddr", "sa_family") + ffi.sizeof("sa_family_t")
_PEER_FAMILIES = frozenset({lib.AF_INET, lib.AF_INET6, lib.AF_UNIX})
# Receive buffers are filled by the kernel before they are read; clearing them first
# would only cost a memset of up to 64 KiB per call.
_uncleared = ffi.new_allocator(should_clear_after_alloc=False)
#: The source of a datagram from an unbound unix socket (the kernel gives length 0).
_UNNAMED_UNIX = UnixAddress("")


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


class Descriptor:
    """Owns one fd: hands it out to calls, and closes it once no call is using it.

    Lock-free on the hot path: ``list.append``/``list.pop`` are atomic under the GIL.
    A call registers itself *before* checking for closure and ``close`` marks closure
    *before* counting calls, so either the call sees the closure or ``close`` sees
    the call; whoever is last out closes the fd, claimed once through ``_close_token``.
    """

    __slots__ = ("_close_token", "_inflight", "closing", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closing = False
        self._inflight: list[None] = []
        self._close_token: list[None] = [None]

    def acquire(self, syscall: syscalls.Syscall, address: object = None) -> int:
        """The fd for one call; a closed descriptor gives that syscall's EBADF error."""
        self._inflight.append(None)
        if self.closing:
            self.release()
            raise syscall.error(errno.EBADF, address)
        return self.fd

    def release(self) -> None:
        self._inflight.pop()
        if self.closing and not self._inflight:
            self._close_now()

    def close(self) -> bool:
        """Close now, or (a call is in flight) shut down now and close when it returns.

        Returns False if the descriptor was already closed.
        """
        if self.closing:
            return False
        self.closing = True
        if self._inflight:
            try:
                syscalls.shutdown(self.fd, lib.SHUT_RDWR)
            except SocketError:
                pass  # unconnected sockets say ENOTCONN but are woken all the same
            if self._inflight:
                return True
        self._close_now()
        return True

    def detach(self) -> int:
        """Give the fd away without closing it."""
        if self._inflight:
            raise SocketError.Unexpected(None, "cannot hand over a socket while a call is using it")
        self.closing = True
        self._close_token.clear()
        return self.fd

    def _close_now(self) -> None:
        try:
            self._close_token.pop()
        except IndexError:
            return  # someone else closed it
        syscalls.close(self.fd)


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
        return f"<janus_net.{type(self).__name__} {self._address} {state}>"


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
        first = True  # only the first close makes the syscall, so only it can raise
        try:
            first = self._descriptor.close()
        finally:
            if first and self._unix_file is not None:
                self._unix_file.remove()

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


class _Pool(Generic[_T]):
    """At most one idle object (scratch memory, batch arrays) kept for the next call.

    Lock-free: ``list.pop`` and ``list.append`` are atomic under the GIL, so two
    threads never share an object: the second finds the pool empty and makes its
    own, and when both give theirs back only one is kept.
    """

    __slots__ = ("_idle",)

    def __init__(self) -> None:
        self._idle: list[_T] = []

    def take(self) -> _T | None:
        """The idle object, or None: the caller makes a fresh one."""
        try:
            return self._idle.pop()
        except IndexError:
            return None

    def give(self, item: _T) -> None:
        """Keep ``item`` for the next call, unless another one is already kept."""
        if not self._idle:
            self._idle.append(item)


class _Scratch:
    """What one ``receive`` needs besides the caller's data: reused, one caller at a time.

    The source sockaddr_storage and its length (value-result: reset before each
    call), and a data buffer for ``receive`` that grows to the largest ``size``
    asked, up to `_SCRATCH_KEEP` bytes (a larger receive gets a one-off buffer).
    ``words`` reads the storage as 8-byte words: for an IPv4 source the first word
    identifies it (see `_ReceiveBatch.collect`), a key for `DECODED_SOURCES` that
    costs no bytes object. A Socket keeps one idle `_Scratch`; a caller takes it out
    of the pool (atomic ``list.pop``), so concurrent callers never share one.
    """

    __slots__ = ("buf", "capacity", "length", "sa", "storage", "words")

    def __init__(self) -> None:
        self.storage = _uncleared(_STORAGE_P)
        self.sa = ffi.cast(_SOCKADDR_P, self.storage)
        self.length = ffi.new(_SOCKLEN_P)
        self.words = memoryview(ffi.buffer(self.storage)).cast("Q") if _IP4_KEY_OK else None
        self.buf: Any = None
        self.capacity = -1

    def buffer(self, size: int) -> Any:
        """A buffer of at least ``size`` bytes: this scratch's own when it may keep one that big."""
        if type(size) is not int or not 0 <= size <= _SCRATCH_KEEP:
            return _uncleared("char[]", size)  # and cffi's own error for a bad size
        if size > self.capacity:
            self.buf = _uncleared("char[]", size)
            self.capacity = size
        return self.buf


_SEND = syscalls.SEND
_RECEIVE = syscalls.RECEIVE
_MSG_NOSIGNAL = platform.MSG_NOSIGNAL
# The address classes `as_address` passes through unchanged: checked by exact type.
_ADDRESS_TYPES = frozenset({Ip4Address, Ip6Address, UnixAddress})

# A receive buffer up to this size is kept by the Socket for the next receive
# (65536 is receive()'s default size).
_SCRATCH_KEEP = 65536


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

    def send(self, dest: str | Address, data: Buffer) -> int:
        """Send one datagram to ``dest``; returns the bytes sent."""
        # This and _receive_from are the datagram hot path: they hand their syscall to
        # the retry loop themselves, without a typed wrapper's frame in between.
        # An address value passes as is (a type check, not as_address's call); text is parsed.
        target: Address = dest if type(dest) in _ADDRESS_TYPES else as_address(dest)  # type: ignore[assignment]
        encoded = target.sockaddr
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


# --- Batched datagram I/O (sendmmsg / recvmmsg)

#: Datagrams per sendmmsg/recvmmsg call: Linux caps a call at UIO_MAXIOV (1024)
#: messages; larger requests are served by several calls.
_BATCH_MAX = 1024
# A send batch for an iterator of unknown length starts this big and grows on demand.
_BATCH_DEFAULT = 64
_MMSGHDR_SIZE = ffi.sizeof("struct mmsghdr")
# recvmmsg's results (each message's length and source length) are read in one go
# through a view of the header array as unsigned ints; that needs these C types to
# be 4 bytes, as they are on every platform with recvmmsg. Otherwise: the loop path.
_WORD = struct.calcsize("I")
_USE_MMSG = (
    platform.HAS_MMSG
    and _WORD == 4
    and ffi.sizeof("socklen_t") == _WORD
    and ffi.sizeof("unsigned int") == _WORD
    and _MMSGHDR_SIZE % _WORD == 0
)
_MSG_LEN_WORD = ffi.offsetof("struct mmsghdr", "msg_len") // _WORD
_MSG_NAMELEN_WORD = (ffi.offsetof("struct mmsghdr", "msg_hdr") + ffi.offsetof("struct msghdr", "msg_namelen")) // _WORD
_MMSGHDR_WORDS = _MMSGHDR_SIZE // _WORD
# Message containers send_many slices into batches instead of iterating.
_SEQUENCES = frozenset({list, tuple})
# Data types the send fast path joins directly (len() is their byte count).
_JOINABLE = frozenset({bytes, bytearray})
_SOCKADDR_IN_SIZE = ffi.sizeof("struct sockaddr_in")
_STORAGE_QWORDS = _SOCKADDR_STORAGE_SIZE // 8
# An IPv4 source can be keyed by its first 8 bytes when they cover the address.
_IP4_KEY_OK = (
    struct.calcsize("Q") == 8
    and _SOCKADDR_STORAGE_SIZE % 8 == 0
    and ffi.offsetof("struct sockaddr_in", "sin_addr") + 4 <= 8
)
# A batch's payloads are copied into a staging buffer the batch keeps, up to this
# many bytes; a bigger batch is sent from a one-off buffer instead.
_STAGING_KEEP = 256 * 1024


def _batch_capacity(messages: object) -> int:
    """Slots for a send: the message count when it is known, capped at `_BATCH_MAX`."""
    try:
        known = len(messages)  # type: ignore[arg-type]
    except TypeError:
        return _BATCH_DEFAULT
    return max(1, min(known, _BATCH_MAX))


class _SendBatch:
    """Reused ``struct mmsghdr[]`` + ``struct iovec[]`` for sendmmsg, and a staging buffer.

    Each header's msg_iov points at its own iovec once and for all. What changes
    per call is written only where it changed since the last call, because each
    field write from Python costs about as much as the kernel's per-datagram work
    we are trying to save:

    * destinations: msg_name/msg_namelen point at the address's own encoded
      sockaddr (``encodings`` keeps it alive); a slot is rewritten only when its
      destination differs from last time, so a stream of batches to one peer
      writes no header at all after the first;
    * data: the payloads are joined (one C-level copy) into a staging buffer this
      batch keeps, and the iovecs point into it; they are rewritten only when the
      sequence of lengths changes. Batches too big to keep a copy of
      (`_STAGING_KEEP`) point at a one-off joined buffer instead.

    Anything the fast path does not cover (an item that is not a 2-tuple, data that
    is not bytes/bytearray) goes through `_fill_each`, one item at a time, which
    also places an error exactly after the items before it.
    """

    __slots__ = (
        "buffers", "capacity", "encodings", "headers", "iov", "layout", "msgs", "staging", "targets", "uniform",
        "uniform_count", "vectors",
    )  # fmt: skip

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.msgs = ffi.new("struct mmsghdr[]", capacity)
        self.iov = ffi.new("struct iovec[]", capacity)
        self.headers = [self.msgs[i].msg_hdr for i in range(capacity)]
        self.vectors = [self.iov[i] for i in range(capacity)]
        for i, header in enumerate(self.headers):
            header.msg_iov = self.iov + i
            header.msg_iovlen = 1
        self.encodings: list[Any] = [None] * capacity
        self.targets: list[Any] = [None] * capacity
        # The sockaddr that slots [0, uniform_count) all point at, if any: a batch to
        # one destination that fits there needs no look at the slots at all.
        self.uniform: Any = None
        self.uniform_count = 0
        # What pins the data of the current call (caller buffers, a one-off join).
        self.buffers: list[Any] = []
        self.staging: Any = _uncleared("char[]", 0)
        # The lengths the iovecs currently describe, in staging order ([] = unknown).
        self.layout: list[int] = []

    def fill(self, items: Sequence[tuple[str | Address, Buffer]]) -> tuple[int, Exception | None]:
        """Describe ``items`` (at most ``capacity``); returns (slots filled, what stopped it early)."""
        if not items:
            return 0, None
        try:
            dests, datas = zip(*items, strict=True)
        except (TypeError, ValueError):
            return self._fill_each(items)
        if not _JOINABLE.issuperset(map(type, datas)):
            return self._fill_each(items)
        filled, failure = self._set_destinations(dests)
        if filled < len(datas):
            datas = datas[:filled]
        self._set_data(datas)
        return filled, failure

    def _set_destinations(self, dests: tuple[str | Address, ...]) -> tuple[int, Exception | None]:
        encodings = self.encodings
        first = dests[0]
        if all(map(operator.is_, dests, itertools.repeat(first))):
            # One destination for the whole batch: the usual case, checked in C.
            try:
                target = as_address(first)
            except SocketError as failure:
                return 0, failure
            encoded = target.sockaddr
            count = len(dests)
            if encoded is not self.uniform or count > self.uniform_count:
                for slot in range(count):
                    if encodings[slot] is not encoded:
                        self._set_destination(slot, target, encoded)
                self.uniform = encoded
                self.uniform_count = count
            return count, None
        last: object = None
        for slot, dest in enumerate(dests):
            if dest is not last:
                try:
                    target = as_address(dest)
                except SocketError as failure:
                    return slot, failure
                encoded = target.sockaddr
                last = dest
            if encodings[slot] is not encoded:
                self._set_destination(slot, target, encoded)
        return len(dests), None

    def _set_destination(self, slot: int, target: Address, encoded: Any) -> None:
        header = self.headers[slot]
        header.msg_name = encoded.pointer
        header.msg_namelen = encoded.length
        self.encodings[slot] = encoded
        self.targets[slot] = target
        self.uniform = None

    def _set_data(self, datas: tuple[Buffer, ...]) -> None:
        joined = b"".join(datas)
        lengths = list(map(len, datas))  # bytes and bytearray: len is the byte count
        if len(joined) > _STAGING_KEEP:
            base = ffi.from_buffer(joined)
            self.buffers.append(base)
            self.layout = []  # the iovecs now point at memory that will not be there next time
        else:
            if len(joined) > len(self.staging):
                self.staging = _uncleared("char[]", max(len(joined), 2 * len(self.staging)))
                self.layout = []
            base = self.staging
            ffi.memmove(base, joined, len(joined))
            layout = self.layout
            if layout == lengths or layout[: len(lengths)] == lengths:
                return
            self.layout = lengths
        offset = 0
        for vector, length in zip(self.vectors, lengths, strict=False):  # more slots than messages
            vector.iov_base = base + offset
            vector.iov_len = length
            offset += length

    def _fill_each(self, items: Sequence[Any]) -> tuple[int, Exception | None]:
        """The general path: each item unpacked, addressed and pinned on its own."""
        vectors = self.vectors
        self.layout = []
        filled = 0
        last: object = None
        try:
            for dest, data in items:
                if dest is not last:
                    target = as_address(dest)
                    encoded = target.sockaddr
                    last = dest
                if self.encodings[filled] is not encoded:
                    self._set_destination(filled, target, encoded)
                view = ffi.from_buffer(data)
                self.buffers.append(view)
                vector = vectors[filled]
                vector.iov_base = view
                vector.iov_len = len(view)
                filled += 1
        except Exception as failure:  # a bad address or item; the ones before it still go
            return filled, failure
        return filled, None

    def drop_buffers(self) -> None:
        """Unpin the call's buffers (a pinned bytearray could not be resized)."""
        self.buffers.clear()


class _ReceiveBatch:
    """Reused ``struct mmsghdr[]``, iovecs, source sockaddrs and one data buffer for recvmmsg.

    Slot ``i`` receives into bytes ``[i*size, (i+1)*size)`` of the buffer and its
    source into sockaddr_storage ``i``. The kernel overwrites msg_namelen, msg_flags
    and msg_len, so before each call the headers are restored from a pristine copy
    with one memmove instead of one field write per slot; after it, every length is
    read at once through an unsigned-int view of the headers. The per-datagram work
    left is what the result is made of: a bytes object, and the source looked up by
    its raw sockaddr bytes in `DECODED_SOURCES`.
    """

    __slots__ = (
        "buf", "capacity", "cut", "cut_lengths", "cuts", "data", "iov", "ip4", "msgs", "name_words", "names",
        "pristine", "raw_names", "size", "words",
    )  # fmt: skip

    def __init__(self, capacity: int, size: int, ip4: bool) -> None:
        self.capacity = capacity
        self.size = size
        # Sources of an IPv4 socket are keyed by an int, not by bytes (see collect).
        self.ip4 = ip4 and _IP4_KEY_OK
        self.msgs = ffi.new("struct mmsghdr[]", capacity)
        self.iov = ffi.new("struct iovec[]", capacity)
        self.names = _uncleared("struct sockaddr_storage[]", capacity)
        self.buf = _uncleared("char[]", capacity * size)
        for i in range(capacity):
            header = self.msgs[i].msg_hdr
            header.msg_name = self.names + i
            header.msg_namelen = _SOCKADDR_STORAGE_SIZE
            header.msg_iov = self.iov + i
            header.msg_iovlen = 1
            vector = self.iov[i]
            vector.iov_base = self.buf + i * size
            vector.iov_len = size
        self.pristine = ffi.buffer(self.msgs)[:]
        self.words = memoryview(ffi.buffer(self.msgs)).cast("I")
        self.data = ffi.buffer(self.buf)
        self.raw_names = ffi.buffer(self.names)
        self.name_words = memoryview(self.raw_names).cast("Q")
        # ``cut(cuts[i])`` is datagram i as bytes; ``cuts`` are slices of the data
        # buffer for the lengths in ``cut_lengths``, rebuilt only when those change.
        self.cut = self.data.__getitem__
        self.cuts: list[slice] = []
        self.cut_lengths: list[int] = []

    def reset(self, count: int) -> None:
        ffi.memmove(self.msgs, self.pristine, count * _MMSGHDR_SIZE)

    def collect(self, got: int, out: list[tuple[bytes, Address]]) -> None:
        """Append the first ``got`` datagrams and their sources to ``out``."""
        words = self.words
        end = got * _MMSGHDR_WORDS
        lengths = words[_MSG_LEN_WORD:end:_MMSGHDR_WORDS].tolist()
        name_lengths = words[_MSG_NAMELEN_WORD:end:_MMSGHDR_WORDS].tolist()
        if lengths != self.cut_lengths:
            # Datagrams of the same lengths as last time (a steady stream) reuse the
            # slices; otherwise they are made in C, with no Python step per datagram.
            size = self.size
            starts = range(0, got * size, size) if size else [0] * got  # read twice below
            self.cuts = list(map(slice, starts, map(operator.add, starts, lengths)))
            self.cut_lengths = lengths
        payloads = map(self.cut, self.cuts)
        keys: list[Any]
        if self.ip4 and name_lengths.count(_SOCKADDR_IN_SIZE) == got:
            # The first 8 bytes of a sockaddr_in hold everything that identifies it
            # (family, port, address; the rest is sin_zero, which the kernel zeroes):
            # read them for every slot at once as ints, instead of one bytes per slot.
            keys = self.name_words[0 : got * _STORAGE_QWORDS : _STORAGE_QWORDS].tolist()
            first = keys[0]
            if keys.count(first) == got:
                # One peer sent the whole batch (compared in C): one lookup for all.
                source = DECODED_SOURCES.get(first) or self._decode(0, _SOCKADDR_IN_SIZE, first)
                out.extend(zip(payloads, itertools.repeat(source, got), strict=True))
                return
        else:
            raw_names = self.raw_names
            name_starts = range(0, got * _SOCKADDR_STORAGE_SIZE, _SOCKADDR_STORAGE_SIZE)
            keys = [raw_names[start : start + length] for start, length in zip(name_starts, name_lengths, strict=True)]
        sources: list[Any] = list(map(DECODED_SOURCES.get, keys))
        if not all(sources):  # addresses are always true; None marks a peer not seen yet
            for slot, source in enumerate(sources):
                if source is None:
                    sources[slot] = self._decode(slot, name_lengths[slot], keys[slot])
        out.extend(zip(payloads, sources, strict=True))

    def _decode(self, slot: int, length: int, key: bytes | int) -> Address:
        if length == 0:
            return _UNNAMED_UNIX  # an unbound unix sender: the kernel writes no address
        return from_sockaddr_cached(self.names + slot, length, key)


class _PollInterrupted(Exception):
    """Raised by `_wait_for`'s EINTR checkpoint so that the loop recomputes its timeout."""


def _poll_interrupted() -> None:
    raise _PollInterrupted


# poll takes an int of milliseconds; a longer wait is cut into pieces by the loop.
_MAX_POLL_MS = 2**31 - 1


def _wait_for(ctx: Context, fd: int, attempt: Callable[[], int], hangup: Callable[[], int] | None = None) -> int:
    """Try a non-blocking call; while it would block, wait for the fd or the context.

    The loop is ``check -> attempt -> poll`` and never ``poll -> blocking call``:
    poll saying "readable" is only a hint when other threads read the same socket
    (one of them may take the connection or datagram first), so every wakeup is
    followed by another *non-blocking* attempt, and a thread that loses the race
    simply waits again. The poll watches the socket and the context's wake fd, with
    the time left until the deadline (rounded up, so an early wakeup cannot spin);
    ``ctx.check()`` at the top of each turn turns a cancel or an expired deadline
    into `SocketError.Timeout`. A signal (EINTR) also goes back to the top, so the
    timeout is recomputed and a deadline is never overshot by a retry.

    A socket that was shut down (``close()`` or ``shutdown()`` from another thread)
    polls as POLLHUP forever, yet some non-blocking calls still say EAGAIN there
    (recv on a datagram socket, accept on a unix listener), where the blocking call
    would return at once. Waiting again would spin, so after a POLLHUP the call is
    answered by ``hangup()`` -- the blocking call's answer -- or, without one, by 0
    (end of stream, the answer of every receive flavour).
    """
    pollfds: Any = None
    hung_up = False
    while True:
        ctx.check()
        rc = attempt()
        if rc != syscalls.WOULD_BLOCK:
            return rc
        if hung_up:
            return 0 if hangup is None else hangup()
        if pollfds is None:
            # Made only now: a call that never waits never creates the wake fd.
            pollfds = ffi.new("struct pollfd[2]")
            pollfds[0].fd = fd
            pollfds[0].events = lib.POLLIN
            pollfds[1].fd = ctx._wake_fd()
            pollfds[1].events = lib.POLLIN
        remaining = ctx.remaining()
        if remaining is None or remaining >= _MAX_POLL_MS / 1000:
            timeout_ms = -1 if remaining is None or math.isinf(remaining) else _MAX_POLL_MS
        else:
            timeout_ms = math.ceil(remaining * 1000)
        try:
            syscalls.poll(pollfds, 2, timeout_ms, _poll_interrupted)
        except _PollInterrupted:
            continue
        hung_up = bool(pollfds[0].revents & lib.POLLHUP)


__all__ = ["Mode", "Protocol", "Server", "Socket", "Stream", "UnixAddress"]
