"""The sockets janus_net hands out: `Server` (listening), `Stream` (accepted), `Socket` (bound).

All of them own one descriptor, are blocking and close-on-exec, and never raise
SIGPIPE. Each closes its descriptor exactly once: explicitly with ``close()`` (or a
``with`` block), or, if forgotten, when garbage-collected, with a `ResourceWarning`
as stdlib sockets do. ``to_socket()`` hands the descriptor to a plain
`socket.socket` for asyncio, trio and friends, and leaves the janus_net object
closed and detached.

Closing while another thread is blocked in any call on the same object is safe:
``close()`` signals the object's wake fd, which the blocked call polls, so it wakes
and raises a `SocketError` member; the descriptor is released only once no call is
using it, so its number cannot be reused under a syscall (see `janus_net.descriptor`
and `janus_net.waiting`). ``close()`` never calls shutdown(), so a socket shared
with other processes keeps working for them.
"""

from __future__ import annotations

import enum
import errno
import functools
import itertools
import warnings
from collections.abc import Iterable, Iterator

from janus_net import ancillary, coalesced, descriptor, platform, segments, sockopts, syscalls, waiting
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
from janus_net.errors import ErrnoBug, SocketError
from janus_net.escaping import for_people
from janus_net.scratch import (
    _IP4_KEY_OK,
    _PEER_FAMILIES,
    _SA_FAMILY_END,
    _SOCKADDR_STORAGE_SIZE,
    _STORAGE_P,
    _UNNAMED_UNIX,
    SIZE_MAX,
    Buffer,
    _Pool,
    _Scratch,
    _uncleared,
    size_argument,
    view_of,
)

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    import socket as _stdsocket
    from typing import Any, TypeVar


if TYPE_CHECKING:
    from janus_net.context import Context
    from janus_net.unixfile import UnixFile

if TYPE_CHECKING:
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


_NULL = ffi.NULL
_HOLD = syscalls.HOLD_DESC
_UNHOLD = syscalls.UNHOLD_DESC
_DEAD = syscalls.DEAD_DESC


class _Owner:
    """What Server, Stream and Socket share: one owned descriptor cell and the ways to end it.

    The cell (`janus_net.descriptor`) is the ownership: it is made before the
    syscall that fills it and handed to this object as is, so there is no moment
    when the fd is held by neither.
    """

    __slots__ = ("__weakref__", "_address", "_desc")

    # Only a Stream's peer is ever a _PendingPeer (decoded by the first ``address``).
    _address: Address | _PendingPeer

    def __init__(self, desc: Any, address: Address | _PendingPeer) -> None:
        # The hold comes first: an interrupt between the two lines costs the cell's
        # memory, never a read of freed memory in __del__ (which releases only a cell it holds).
        _HOLD(desc)
        self._desc = desc
        self._address = address
        if descriptor.REGISTRATION.on:  # only once the process has adopted an fd (janus_net._kernel.owners)
            descriptor.register(int(desc.fd), self)

    @property
    def address(self) -> Address:
        """The address: a Server's or Socket's bound address, a Stream's peer (decoded on first read)."""
        address = self._address
        if isinstance(address, _PendingPeer):
            # Two threads may both decode; they store equal values.
            address = address.decode()
            self._address = address
        return address

    @property
    def closed(self) -> bool:
        """Whether ``close()`` (or ``to_socket()``) has ended this object."""
        return bool(self._desc.closing)

    def fileno(self) -> int:
        """The descriptor, or -1 once closed (as stdlib sockets report)."""
        desc = self._desc
        return -1 if desc.closing else int(desc.fd)

    def close(self) -> None:
        """Close the socket. Idempotent; safe while another thread is blocked in it.

        A call blocked in this object wakes and raises its `SocketError` member
        (``SocketNotListening`` for ``accept``, ``SocketUnconnected`` for the others);
        the fd is closed at once, or by that call on its way out. Never shutdown(): a
        socket shared with other processes goes on working for them. A call *started*
        after ``close()`` is the caller's bug: its table's EBADF row (``ErrnoBug`` in
        debug mode, ``SocketError.Unexpected`` in release mode).

        Raises:
            SocketError.Unexpected: close(2) reported an errno (EIO on some file systems);
                the descriptor is released all the same and the object is closed.
        """
        descriptor.close(self._desc)

    def to_socket(self) -> _stdsocket.socket:
        """Hand the descriptor to a plain `socket.socket` and leave this object closed.

        ``type(result) is socket.socket``, so trio's ``from_stdlib_socket`` and
        asyncio's ``sock=`` parameters take it. The stdlib socket owns the descriptor
        from then on: this object never closes it.

        Returns:
            A blocking `socket.socket` on the same descriptor.

        Raises:
            SocketError.Unexpected: the object is closed or was handed over already
                (errno EBADF), or a call in another thread is using it (EBUSY);
                ``.syscall`` is ``"to_socket"``.
        """
        import socket as _stdsocket  # here: most programs never hand over (import time)

        desc = self._desc
        syscalls.check_detachable(desc, str(self.address))
        # The fd leaves the cell inside the stdlib socket's C constructor, with no
        # bytecode in between: it reads ``fileno`` through ``__index__``, and this one
        # is the native hand-over itself (a partial of a C function, so no Python frame
        # runs). `_DETACH(desc)` called here instead returned the number to this frame,
        # and an exception landing there (a signal handler's, a KeyboardInterrupt)
        # leaked it: a raising signal storm lost 150 descriptors in 4 300 hand-overs.
        handover = type("_HandOver", (), {"__slots__": (), "__index__": functools.partial(_DETACH, desc)})
        return _stdsocket.socket(fileno=handover())

    def _closed_error(self, syscall: str) -> SocketError:
        """What a call woken by another thread's ``close()`` raises: SocketUnconnected.

        Closing from another thread is the documented way to stop a loop, not a bug,
        so it gets a catchable member (the socket can no longer send or receive), not
        the EBADF row that a call *started* on a closed socket reports.
        """
        return SocketError.SocketUnconnected(
            None,
            "the socket was closed by another thread while this call waited",
            syscall=syscall,
            address=str(self.address),
        )

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        desc = getattr(self, "_desc", None)
        if desc is None or desc is _DEAD:
            return  # __init__ cut short before the cell was ours, or a second __del__
        try:
            # fd < 0 with ``collected``: in a reference cycle the cell's own collection
            # ran first and closed it; the owner was still never closed.
            if not desc.closing and (desc.fd >= 0 or desc.collected):
                warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
                self.close()
        finally:
            # Done with the cell: later reads (another __del__ in the same cycle) see a
            # closed one, and the memory goes once the cell's own collection has run too.
            self._desc = _DEAD
            _UNHOLD(desc)

    def __repr__(self) -> str:
        # getattr: __del__ may print an object whose __init__ an exception cut short.
        desc = getattr(self, "_desc", None)
        state = "closed" if desc is None or desc.closing else f"fd={desc.fd}"
        try:
            text = str(self.address)
        except AttributeError:
            text = "?"
        return f"<janus_net.{type(self).__name__} {for_people(text)} {state}>"


def _accepted_options(fd: int) -> None:
    if platform.ACCEPT_INHERITS_O_NONBLOCK:
        # Our own new description: BSD kernels copy the listener's O_NONBLOCK into it.
        syscalls.set_nonblocking(fd, False)
    if platform.SO_NOSIGPIPE:
        syscalls.setsockopt_int(fd, lib.SOL_SOCKET, platform.SO_NOSIGPIPE, 1)


def _later_call_error(owner: _Owner, error: BaseException, syscall: str) -> BaseException:
    """A call after the first of a loop (write_all, send_many...) found the object closed:
    that is another thread's ``close()``, not the caller's bug, so it is `_closed_error`."""
    if getattr(error, "errno", None) == errno.EBADF and owner._desc.closing:
        return owner._closed_error(syscall)
    return error


def _closed_during(owner: _Owner, error: BaseException, syscall: str, began_open: bool) -> BaseException:
    """The error of a many-step call (send_many, send_segments) whose step found the object closed.

    Each native call enters the descriptor cell for its syscall and finds EBADF once
    ``close()`` has marked the cell closing. If the object was open when the call
    began, that close came from another thread while the call ran -- between two
    batches, during a poll, before its first syscall or a getsockopt of its checks
    -- so it is `_closed_error`, as for every woken call. A call begun on an object
    already closed keeps the EBADF row (a bug of the caller).
    """
    return _later_call_error(owner, error, syscall) if began_open else error


class _Bound(_Owner):
    """What Server and Socket share: a socket this process bound (or adopted), maybe to a unix socket file."""

    __slots__ = ("_unix_file",)

    def __init__(self, desc: Any, address: Address, unix_file: UnixFile | None = None) -> None:
        super().__init__(desc, address)
        self._unix_file = unix_file

    def close(self) -> None:
        """Close the socket, and remove the unix socket file if this bind created it.

        Idempotent, and safe while another thread is blocked in it (see `Stream.close`'s
        rules, which are the same). The file is removed only if this object created it, in
        this process (a forked child never removes its parent's file), and the path still
        names the inode bind created: a file someone else put there since is left alone.
        """
        # getattr: an exception may have cut __init__ short before the unix file was
        # set (then the step sequence that made the socket removes the file).
        unix_file = getattr(self, "_unix_file", None)
        if unix_file is None:
            descriptor.close(self._desc)
            return
        state = syscalls.begin_close(self._desc)
        try:
            if state & syscalls.CLOSE_FIRST:
                # Before the socket closes: while it is bound, no janus_net process takes
                # the file for stale, so nothing can replace it under this unlink.
                unix_file.remove()
        finally:
            if state & syscalls.CLOSE_FINISH:
                syscalls.finish_close(self._desc)

    def options(self) -> dict[str, object]:
        """The options the kernel holds on this socket, keyed by the listen/bind keyword names.

        Read with getsockopt each time (see `janus_net.sockopts.read` for the keys), so
        it shows what is in force, not what was asked: always ``reuse_address`` and
        ``incoming_cpu``, ``reuse_port`` where the platform has it, ``ip6_only`` for
        IPv6, ``broadcast`` for datagram sockets, ``freebind``, ``transparent`` and
        ``device`` for IP, ``fastopen`` and ``defer_accept`` for TCP.

        Returns:
            A new dict, keyword name → value.

        Raises:
            SocketError.SocketUnconnected: the object was closed (by this or another thread).
        """
        if self._desc.closing:
            raise self._closed_error("getsockopt")
        try:
            return sockopts.read(self._desc)
        except (SocketError, ErrnoBug) as e:
            raise _later_call_error(self, e, "getsockopt") from None

    def to_socket(self) -> _stdsocket.socket:
        """Hand over the descriptor, as `Stream.to_socket` does.

        A unix socket file stays where it is: it is the new owner's now, and this
        object will never remove it.

        Raises:
            SocketError.Unexpected: closed or handed over already, or a call is using it.
        """
        sock = super().to_socket()
        self._unix_file = None
        return sock


descriptor.owners_are(_Owner)


class Server(_Bound):
    """A listening stream socket (from `janus_net.listen`): ``accept()`` returns one `Stream` per connection.

    Use it as a context manager, or call ``close()``; ``.address`` is the bound address (with the
    real port when port 0 was asked), ``.fileno()`` the descriptor.

    ``accept`` never switches the listening description to O_NONBLOCK (another
    process may share it): it polls the socket and this object's wake fd, then
    accepts, one thread of this process at a time, only when poll says a connection
    is queued. So ``close()`` from another thread reaches a waiting accept. When
    another *process* sharing a *blocking* description takes the connection between
    the poll and the accept (the prefork race), the accept sleeps in the kernel:
    ``close()``, or a cancel of the accept's context, then wakes it with SIGURG (see
    docs/mechanism.md); a context's deadline reaches it only at the next connection.
    """

    __slots__ = ("_port", "_scratch")

    def __init__(self, desc: Any, address: Address, unix_file: UnixFile | None = None, port: int = -1) -> None:
        # The address is built on first use: ``port`` >= 0 is the port the kernel chose
        # for ``address`` (asked with port 0), and the copy with it is made by the first
        # ``address`` read (an Ip4Address is a fifth of what a listener would keep).
        self._port = port
        # _Owner's and _Bound's __init__, written out: two frames less per listen.
        _HOLD(desc)
        self._desc = desc
        self._address = address
        self._unix_file = unix_file
        # At most one idle _Scratch (the peer's sockaddr and length), reused by the next accept.
        self._scratch: _Pool[_Scratch] | None = None
        if descriptor.REGISTRATION.on:  # only once the process has adopted an fd (janus_net._kernel.owners)
            descriptor.register(int(desc.fd), self)

    @property
    def address(self) -> Address:
        """The address the socket is bound to (with the port the kernel chose for port 0)."""
        port = self._port
        address: Address = self._address  # type: ignore[assignment]  # a Server's is never pending
        if port >= 0:
            # Two threads may both build it; they store equal values (and _with_port of
            # the stored copy gives the copy back).
            address = address._with_port(port)  # type: ignore[union-attr]  # IP only (listen.py)
            self._address = address
            self._port = -1
        return address

    def accept(self, ctx: Context | None = None) -> Stream:
        """Wait for a connection and return it.

        The new `Stream` is close-on-exec and blocking; its ``.address`` is the peer's.

        Args:
            ctx: a `Context` whose cancel or deadline ends the wait with
                `SocketError.Timeout`; None waits until a connection arrives or
                ``close()``/``shutdown()`` ends the wait.

        Raises:
            SocketError.SocketNotListening: after ``shutdown()``, or when ``close()``
                from another thread ended the wait.
            SocketError.Timeout: ``ctx`` was cancelled or its deadline passed.
            SocketError.ConnectionAborted: the client reset the connection while it was
                queued (accept again).
            SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded,
                SocketError.SystemResources: no descriptor or memory for the connection.
            SocketError.ProtocolFailure: a protocol error on the queued connection.
            SocketError.BlockedByFirewall: a firewall rule forbade the connection.
        """
        pool = self._scratch
        if pool is None:
            pool = self._scratch = _Pool()
        scratch = pool.take() or _Scratch()
        conn_desc = descriptor.new()  # the accepted fd lands here, inside the accept call
        try:
            size = scratch.length
            size[0] = _SOCKADDR_STORAGE_SIZE
            desc = self._desc
            storage = scratch.storage
            conn = self._accept_wait(ctx, desc, storage, size, conn_desc)
            # Copied out before the scratch goes back to the pool.
            length = size[0]
            family = scratch.sa.sa_family if length >= _SA_FAMILY_END else None
            peer = _PendingPeer(ffi.buffer(storage, min(length, _SOCKADDR_STORAGE_SIZE))[:], length)
            pool.give(scratch)
            _accepted_options(conn)
            # Not a family the lazy decode is sure to handle: decode (and fail) now.
            return Stream(conn_desc, peer if family in _PEER_FAMILIES else peer.decode())
        except BaseException:
            descriptor.close(conn_desc)
            raise

    def _accept_wait(self, ctx: Context | None, desc: Any, storage: Any, size: Any, conn_desc: Any) -> int:
        """`accept`'s wait; with a context, one whose cancel also reaches an accept(2) in the kernel.

        The native accept is given the context's native cell and reads its cancel mark
        once it has said it is inside accept(2); the context knows this listener while
        the wait lasts, and its ``cancel()`` signals the thread in accept(2) (see
        docs/mechanism.md). A deadline is checked at each wakeup, as for every wait.
        """
        address = self.address
        check = None if ctx is None else ctx.check
        ctx_cell = _NULL if ctx is None else getattr(ctx, "_waker", _NULL)
        # A subclass whose __init__ skipped Context's has no list: its cancel reaches the
        # waits only (the rare accept(2) sleep waits for the next connection or close()).
        accepting: list[Any] | None = None if ctx is None else getattr(ctx, "_accepting", None)
        if accepting is not None:
            accepting.append(desc)  # list.append: atomic under the GIL, as the removal
        try:
            return waiting.wait_for(
                desc,
                waiting.POLLIN,
                ctx,
                lambda: syscalls.accept_into(desc, storage, size, conn_desc, check, address, ctx_cell),
                self._not_listening,
            )
        finally:
            if accepting is not None:
                accepting.remove(desc)

    def _not_listening(self) -> SocketError:
        return SocketError.SocketNotListening(
            None,
            "the server was closed by another thread while accept waited",
            syscall="accept",
            address=str(self._address),
        )

    def shutdown(self) -> None:
        """Stop listening, for every process that shares this socket.

        Threads blocked in ``accept`` (here and in every process sharing the
        description) wake with SocketNotListening, and so do later ``accept`` calls.
        The Server stays open until ``close()``; calling ``shutdown()`` again does nothing.
        Use it on purpose only: ``close()`` never does this.
        """
        try:
            syscalls.shutdown_on(self._desc, lib.SHUT_RDWR, self._address)
        except SocketError.SocketUnconnected:
            pass  # already shut down: the listener is in the CLOSE state, which is the goal

    def __enter__(self) -> Server:
        return self


class Stream(_Owner):
    """An accepted, connected stream (from `Server.accept`). ``.address`` is the peer's address.

    ``read``/``read_into`` and ``write``/``write_all`` are blocking; ``read`` takes a `Context`
    for a deadline or a cancel, and ``close()`` from another thread wakes any of them.
    """

    __slots__ = ()

    def read(self, n: int, ctx: Context | None = None) -> bytes:
        """Read up to ``n`` bytes; ``b""`` at end of stream (the peer closed its side).

        Args:
            n: the most bytes to return, an int >= 0.
            ctx: a `Context` whose cancel or deadline ends the wait; None waits until
                data, the end of the stream or ``close()``.

        Raises:
            ValueError, TypeError: ``n`` negative or not an int.
            SocketError.SocketUnconnected: ``close()`` from another thread ended the wait.
            SocketError.Timeout: ``ctx`` was cancelled or its deadline passed.
            SocketError.ConnectionResetByPeer: the peer reset the connection.
            SocketError.ConnectionTimedOut: the connection timed out (keepalive, retransmissions).
            SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded: no
                descriptor left for the wake fd a wait needs (as in `Socket.receive`).
            SocketError.NetworkSubsystemDown, SocketError.SystemResources: the network or memory.
        """
        if type(n) is not int or not 0 <= n <= SIZE_MAX:
            n = size_argument("n", n)
        buf = _uncleared("char[]", n)
        got = self._receive(buf, n, ctx)
        return ffi.unpack(buf, got)

    def read_into(self, buffer: Buffer, ctx: Context | None = None) -> int:
        """Read into a writable buffer; returns the byte count (0 at end of stream).

        Args:
            buffer: a writable bytes-like object (``bytearray``, ``memoryview``...);
                at most ``len(buffer)`` bytes are read.
            ctx: as for `read`.

        Raises:
            TypeError: ``buffer`` is not a writable buffer.
            The members `read` raises.
        """
        view = view_of(buffer, "buffer", writable=True)
        return self._receive(view, len(view), ctx)

    def _receive(self, buf: Any, size: int, ctx: Context | None) -> int:
        desc = self._desc
        if ctx is None:
            # First attempt inline; the wait loop only after EAGAIN.
            got = syscalls.recv_on(desc, buf, size, _MSG_DONTWAIT)
            if got >= 0:
                return got
        check = None if ctx is None else ctx.check
        return waiting.wait_for(
            desc,
            waiting.POLLIN,
            ctx,
            lambda: syscalls.recv_on(desc, buf, size, _MSG_DONTWAIT, check),
            lambda: self._closed_error("receive"),
            tried=ctx is None,
        )

    def write(self, data: Buffer) -> int:
        """Send some of ``data``; returns how many bytes went (a short write is possible).

        Waits (with poll, woken by ``close()``) while the send buffer is full. Never
        raises SIGPIPE.

        Args:
            data: a bytes-like object.

        Raises:
            TypeError: ``data`` is not a bytes-like object (a ``str`` included).
            SocketError.SocketUnconnected: the peer is gone (EPIPE), or ``close()`` from
                another thread ended the wait.
            SocketError.ConnectionResetByPeer: the peer reset the connection.
            SocketError.NetworkSubsystemDown, SocketError.NetworkUnreachable,
                SocketError.HostUnreachable, SocketError.SystemResources: the network or memory.
        """
        view = view_of(data)
        desc = self._desc
        size = len(view)
        address = self._address
        sent = syscalls.send_on(desc, view, size, _SEND_FLAGS, address)
        if sent >= 0:
            return sent
        return waiting.wait_for(
            desc,
            waiting.POLLOUT,
            None,
            lambda: syscalls.send_on(desc, view, size, _SEND_FLAGS, address),
            lambda: self._closed_error("send"),
            tried=True,
        )

    def write_all(self, data: Buffer) -> None:
        """Send all of ``data``, looping over short writes.

        A ``close()`` from another thread between two writes ends it with
        SocketUnconnected too (how much went before is unknown to the caller).

        Args:
            data: a bytes-like object.

        Raises:
            The errors of `write`.
        """
        view = memoryview(data).cast("B")
        first = True
        while view:
            try:
                went = self.write(view)
            except (SocketError, ErrnoBug) as e:
                if first:
                    raise
                raise _later_call_error(self, e, "send") from None
            first = False
            view = view[went:]

    def __enter__(self) -> Stream:
        return self


_SEND, _SENDTO = syscalls.SENDTO_CALL
_RECEIVE, _RECVFROM = syscalls.RECVFROM_CALL
_MSG_DONTWAIT = lib.MSG_DONTWAIT
# Every send is a per-call non-blocking attempt that never raises SIGPIPE.
_SEND_FLAGS = platform.MSG_NOSIGNAL | lib.MSG_DONTWAIT
_WOULD_BLOCK = syscalls.WOULD_BLOCK
_retry = syscalls.retry
_after_failure = syscalls.after_failure
_DETACH = syscalls.DETACH
# The address classes `as_address` passes through unchanged: checked by exact type.
_ADDRESS_TYPES = frozenset({Ip4Address, Ip6Address, UnixAddress})


class Socket(_Bound):
    """A bound socket (from `janus_net.bind`), usually datagram: ``send`` to any address, ``receive`` from any.

    Besides one datagram at a time, it sends and receives in batches (``send_many``,
    ``receive_many``), with segmentation offload (``send_segments``, ``receive_segments``) and
    with control data (``receive_message``). ``close()`` from another thread wakes any call
    blocked in it.
    """

    __slots__ = ("_gro", "_ip4_keys", "_receive_batches", "_scratch", "_send_batches")

    def __init__(self, desc: Any, address: Address, unix_file: UnixFile | None = None) -> None:
        # Plain receives: None (GRO off: the hot path), a coalesced.Held (made with gro=True),
        # or not yet known (an adopted or received socket: asked at its first plain receive).
        self._gro: object = coalesced.UNCHECKED
        super().__init__(desc, address, unix_file)
        # At most one idle batch each, reused by the next send_many / receive_many:
        # made by the first call that needs one.
        self._send_batches: _Pool[_SendBatch] | None = None
        self._receive_batches: _Pool[_ReceiveBatch] | None = None
        # At most one idle _Scratch, reused by the next receive / receive_into.
        self._scratch: _Pool[_Scratch] = _Pool()
        # An AF_INET socket hears only IPv4 peers: their sources can be keyed by an int.
        self._ip4_keys = _IP4_KEY_OK and address.family == lib.AF_INET

    def send(self, dest: str | Address, data: Buffer, source: str | Address | None = None) -> int:
        """Send one datagram to ``dest``; returns the bytes sent.

        Waits (with poll, woken by ``close()``) while the socket cannot take it, e.g.
        a unix datagram peer whose queue is full.

        Args:
            dest: the destination, an address or its text (parsed as `parse_address`
                does); port 0 is refused before the syscall (a peer can forge it).
            data: a bytes-like object: the datagram.
            source: None, or an address of this host with this socket's port or 0: the
                datagram leaves from that address (IP_PKTINFO / IPV6_PKTINFO), so a
                server bound to the wildcard replies from the address the client used
                (``Datagram.destination``). IP only.

        Raises:
            TypeError: ``data`` is not a bytes-like object.
            SocketError.InvalidAddress: ``dest`` is text that does not parse.
            SocketError.AddressUnavailable: port 0, or a source that is not this host's.
            SocketError.AddressFamilyUnsupported: ``dest`` is of another family than the socket.
            SocketError.MessageTooBig: more than one datagram can carry.
            SocketError.AccessDenied: a broadcast address without ``broadcast=True``, or a
                unix socket file you may not write.
            SocketError.ConnectionRefused: an earlier datagram was refused (ICMP).
            SocketError.NetworkUnreachable, SocketError.HostUnreachable,
                SocketError.NetworkSubsystemDown, SocketError.SystemResources: the network or memory.
            SocketError.FileNotFound, SocketError.NotDir, SocketError.SymLinkLoop: a unix path.
            SocketError.SocketModeUnsupported: a destination on a connected or stream socket.
            SocketError.SocketUnconnected: ``close()`` from another thread ended the wait.
        """
        if source is not None:
            return ancillary.send_from(self._desc, self.address, dest, data, source)
        # This and _receive_from are the datagram hot path: the first attempt is made
        # inline (one retry frame); the wait loop is entered only after EAGAIN.
        # An address value passes as is (a type check, not as_address's call); text is parsed.
        if type(dest) is Ip4Address and self._ip4_keys:
            # An IPv4 value to an IPv4 socket, the usual case: of destination()'s checks
            # only the port's applies, and the value keeps its encoding once made.
            target: Address = dest
            encoded = dest._encoded
            if encoded is None or not dest._port:
                encoded = dest.destination()  # encodes it, or refuses port 0
        else:
            target = dest if type(dest) in _ADDRESS_TYPES else as_address(dest)  # type: ignore[assignment]
            encoded = target.destination(self._address.family)  # type: ignore[union-attr]  # refuses port 0 first
        if type(data) is bytes:
            view: Any = data  # cffi passes bytes to a const void * as is
        else:
            view = view_of(data)
        args = (self._desc, view, len(view), _SEND_FLAGS, encoded.pointer, encoded.length)
        if _SEND.fault is None:
            sent = _SENDTO(*args)
            if sent >= 0:
                return sent
            sent = _after_failure(_SEND, _SENDTO, args, None, target, True)
        else:
            sent = _retry(_SEND, _SENDTO, args, None, target, True)
        if sent >= 0:
            return sent
        return waiting.wait_for(
            self._desc,
            waiting.POLLOUT,
            None,
            lambda: _retry(_SEND, _SENDTO, args, None, target, True),
            lambda: self._closed_error("send"),
            tried=True,
        )

    def receive(self, size: int = 65536, ctx: Context | None = None) -> tuple[bytes, Address]:
        """Wait for one datagram; returns ``(data, source)``.

        Args:
            size: the most bytes to take, an int >= 0; the rest of a longer datagram
                is dropped.
            ctx: a `Context` whose cancel or deadline ends the wait; None waits until a
                datagram or ``close()``.

        Raises:
            ValueError, TypeError: ``size`` negative or not an int.
            SocketError.SocketUnconnected: ``close()`` from another thread ended the wait,
                or the socket was shut down.
            SocketError.Timeout: ``ctx`` was cancelled or its deadline passed.
            SocketError.ConnectionRefused: an earlier send was refused (ICMP).
            SocketError.ProcessFdQuotaExceeded, SocketError.SystemFdQuotaExceeded: no
                descriptor left for the wake fd a wait needs (made once per object, by the
                first call that has to wait; with ``ctx``, the context's too).
            SocketError.NetworkSubsystemDown, SocketError.SystemResources: the network or memory.
        """
        if self._gro is not None:  # GRO on, or not yet known (janus_net.coalesced)
            return coalesced.receive(self, size, ctx)
        # The pool's take and give written out (the per-packet path): list.pop and
        # append are atomic, so two threads never share a scratch (see _Pool).
        idle = self._scratch._idle
        try:
            scratch = idle.pop()
        except IndexError:
            scratch = _Scratch()
        try:
            if type(size) is int and 0 <= size <= scratch.capacity:
                buf = scratch.buf  # the usual case, without scratch.buffer's frame
            else:
                buf = scratch.buffer(size)
            length = scratch.length
            if ctx is None and _RECEIVE.fault is None and self._ip4_keys:
                # _receive_from written out for the usual case (one frame less): the
                # first attempt inline, the loop and the wait only after it failed.
                length[0] = _SOCKADDR_STORAGE_SIZE
                args = (self._desc, buf, size, _MSG_DONTWAIT, scratch.sa, length)
                got = _RECVFROM(*args)
                if got < 0:
                    got = _after_failure(_RECEIVE, _RECVFROM, args, None, None, True)
                    if got < 0:
                        got = self._wait_receive(args, None, True)
                if length[0] == _SOCKADDR_IN_SIZE:
                    key = scratch.words[0]  # type: ignore[index]  # _ip4_keys implies words
                    source = DECODED_SOURCES.get(key) or from_sockaddr_cached(scratch.storage, _SOCKADDR_IN_SIZE, key)
                    return ffi.unpack(buf, got), source
                return ffi.unpack(buf, got), self._source(scratch, length[0])
            got, source = self._receive_from(buf, size, ctx, scratch)
            return ffi.unpack(buf, got), source
        finally:
            if not idle:
                idle.append(scratch)

    def receive_into(self, buffer: Buffer, ctx: Context | None = None) -> tuple[int, Address]:
        """Wait for one datagram and write it into ``buffer``; returns ``(byte count, source)``.

        Args:
            buffer: a writable bytes-like object; the rest of a longer datagram is dropped.
            ctx: as for `receive`.

        Raises:
            TypeError: ``buffer`` is not a writable buffer.
            The members `receive` raises.
        """
        if self._gro is not None:
            return coalesced.receive_into(self, buffer, ctx)
        view = view_of(buffer, "buffer", writable=True)
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
        args = (self._desc, buf, size, _MSG_DONTWAIT, scratch.sa, length)
        if ctx is None:
            got = _retry(_RECEIVE, _RECVFROM, args, None, None, True)
            if got < 0 and not nonblocking:
                got = self._wait_receive(args, None, True)
        else:
            got = self._wait_receive(args, ctx, False)
        if got < 0:
            return got, self.address  # nonblocking and nothing queued
        named = length[0]
        if self._ip4_keys and named == _SOCKADDR_IN_SIZE:
            key = scratch.words[0]  # type: ignore[index]  # _ip4_keys implies words
            return got, DECODED_SOURCES.get(key) or from_sockaddr_cached(scratch.storage, named, key)
        return got, self._source(scratch, named)

    @staticmethod
    def _source(scratch: _Scratch, named: int) -> Address:
        """The sender's address, from the sockaddr recvfrom wrote into ``scratch`` (``named`` bytes)."""
        if named == 0:
            # An unbound AF_UNIX sender: recvfrom reports no address at all, not even a family.
            return _UNNAMED_UNIX
        return from_sockaddr_cached(scratch.storage, named)

    def _wait_receive(self, args: tuple[Any, ...], ctx: Context | None, tried: bool) -> int:
        check = None if ctx is None else ctx.check
        length = args[5]

        def attempt() -> int:
            length[0] = _SOCKADDR_STORAGE_SIZE
            return _retry(_RECEIVE, _RECVFROM, args, check, None, True)

        return waiting.wait_for(
            self._desc, waiting.POLLIN, ctx, attempt, lambda: self._closed_error("receive"), self._hung_up, tried
        )

    def _hung_up(self) -> int:
        # Some holder of the description shut it down: no datagram will come again.
        raise SocketError.SocketUnconnected(
            None, "the socket was shut down; no datagram can arrive", syscall="receive", address=str(self._address)
        )

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

        If iterating ``messages`` raises (a generator that fails after some items),
        every datagram taken from it before the failure is sent first, in order, and
        then the iterator's exception propagates, with a note saying how many were
        sent. So nothing taken is ever silently dropped: a datagram is either sent or
        reported by the count.

        Args:
            messages: an iterable (a list, a generator...) of ``(dest, data)`` pairs:
                ``dest`` an address or its text, ``data`` a bytes-like object.

        Raises:
            TypeError: an item is not ``(address, bytes-like)`` (after the datagrams before it
                were sent).
            The members `send` raises, for the first datagram.
        """
        # A close() from another thread can land between any two steps of the loop:
        # what the call knew when it began decides whether an EBADF is that close or a bug.
        began_open = not self._desc.closing
        try:
            if _USE_MMSG:
                return self._send_batched(messages)
            return self._send_each(messages)
        except (SocketError, ErrnoBug) as e:
            woken = _closed_during(self, e, "send", began_open)
            if woken is e:
                raise
            raise woken from None

    def _send_each(self, messages: Iterable[tuple[str | Address, Buffer]]) -> int:
        # The per-call path, for platforms without sendmmsg.
        sent = 0
        iterator = iter(messages)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return sent
            except Exception as e:
                _note(e, f"send_many: {sent} datagrams taken before this error were sent")
                raise
            dest, data = item
            try:
                self.send(dest, data)
            except (SocketError, ErrnoBug) as e:
                if sent == 0:
                    raise
                if isinstance(_later_call_error(self, e, "send"), ErrnoBug):
                    raise
                return sent
            sent += 1

    def _send_batched(self, messages: Iterable[tuple[str | Address, Buffer]]) -> int:
        wanted = _batch_capacity(messages)
        pool = self._send_batches
        if pool is None:
            pool = self._send_batches = _Pool()
        batch = pool.take()
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
            taking: Exception | None = None  # what the caller's iterator raised
            while True:
                if iterator is None:
                    count = len(messages)  # type: ignore[arg-type]  # a list or tuple
                    items: Any = messages
                    if start or count > capacity:
                        items = items[start : start + capacity]
                    start += capacity
                    last = start >= count
                else:
                    items, taking = _take(iterator, capacity)
                    last = taking is not None or len(items) < capacity
                filled, failure = batch.fill(items)
                if filled:
                    try:
                        done = self._send_filled(batch, filled)
                    except (SocketError, ErrnoBug) as e:
                        if sent == 0 or isinstance(_later_call_error(self, e, "send"), ErrnoBug):
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
                if taking is not None:
                    _note(taking, f"send_many: {sent} datagrams taken before this error were sent")
                    raise taking
                if last:
                    return sent
        finally:
            pool.give(batch)

    def _send_filled(self, batch: _SendBatch, filled: int) -> int:
        """sendmmsg the first ``filled`` slots, again from where the kernel stopped."""
        targets = batch.targets
        desc = self._desc
        done = 0
        while done < filled:
            args = (desc, batch.msgs + done, filled - done, _SEND_FLAGS, targets[done])
            try:
                went = syscalls.sendmmsg_on(*args)  # first attempt inline; wait only after EAGAIN
                if went < 0:
                    went = waiting.wait_for(
                        desc,
                        waiting.POLLOUT,
                        None,
                        functools.partial(syscalls.sendmmsg_on, *args),
                        lambda: self._closed_error("send"),
                        tried=True,
                    )
            except (SocketError, ErrnoBug):
                if done == 0:
                    raise
                break
            if went == 0:
                break  # not expected after poll said writable; never spin on it
            done += went
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

        Args:
            count: the most datagrams to return, an int >= 1.
            size: the most bytes kept of each datagram, an int >= 0.
            ctx: as for `receive`.

        Raises:
            ValueError, TypeError: ``count`` or ``size`` out of range or not an int.
            The members `receive` raises.
        """
        if self._gro is not None:
            return coalesced.receive_many(self, count, size, ctx)
        count = size_argument("count", count, 1)
        size = size_argument("size", size)
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
        pool = self._receive_batches
        if pool is None:
            pool = self._receive_batches = _Pool()
        batch = pool.take()
        if batch is None or batch.size != size or batch.capacity < wanted:
            batch = _ReceiveBatch(wanted, size, self.address.family == lib.AF_INET)
        try:
            return self._receive_with(batch, count, ctx)
        finally:
            pool.give(batch)

    def _receive_with(self, batch: _ReceiveBatch, count: int, ctx: Context | None) -> list[tuple[bytes, Address]]:
        received: list[tuple[bytes, Address]] = []
        msgs = batch.msgs
        want = min(count, batch.capacity)
        desc = self._desc
        check = None if ctx is None else ctx.check
        batch.reset(want)
        # Without a context the first attempt is inline; the wait loop only after EAGAIN.
        got = _WOULD_BLOCK if ctx is not None else syscalls.recvmmsg_on(desc, msgs, want, _MSG_DONTWAIT, None)
        if got < 0:
            got = waiting.wait_for(
                desc,
                waiting.POLLIN,
                ctx,
                lambda: syscalls.recvmmsg_on(desc, msgs, want, _MSG_DONTWAIT, check),
                lambda: self._closed_error("receive"),
                self._hung_up,
                tried=ctx is None,
            )
        batch.collect(got, received)
        # A full batch may mean more is queued: keep taking it without waiting.
        while got == want and len(received) < count:
            want = min(count - len(received), batch.capacity)
            batch.reset(want)
            try:
                got = syscalls.recvmmsg_on(desc, msgs, want, _MSG_DONTWAIT, check)
            except (SocketError, ErrnoBug):
                break  # keep what was already taken off the queue; the next call reports
            if got == _WOULD_BLOCK:
                break
            batch.collect(got, received)
        return received

    def send_segments(self, dest: str | Address, data: Buffer, segment_size: int) -> int:
        """Send ``data`` to ``dest`` as datagrams of ``segment_size`` bytes (the last may be shorter).

        One sendmsg with a UDP_SEGMENT control message (GSO) carries them all; where
        the platform, the socket or the route cannot segment, one sendmmsg does,
        with the same datagrams on the wire. Returns the number of datagrams sent
        (an error after some went returns that count, as `send_many` does).

        Args:
            dest: the destination, an address or its text (not port 0).
            data: a bytes-like object: the datagrams' bytes, back to back.
            segment_size: the size of each datagram but the last, an int in 1..65507.

        Raises:
            ValueError: ``segment_size`` not an int in 1..65507 (before any syscall).
            SocketError.MessageTooBig: more data than one UDP send can carry (65,507
                bytes over IPv4, 65,527 over IPv6).
            SocketError.OptionUnsupported: not a UDP socket.
            SocketError.AddressUnavailable: port 0 as the destination.
            The other members `send` raises.
        """
        if self._desc.closing:
            # Begun on a closed socket: the send table's EBADF row, as send_many's first
            # sendmmsg reports it (the checks before the send would name getsockopt).
            raise _SEND.error(errno.EBADF, self._address)
        try:
            return segments.send_segments(self, dest, data, segment_size)
        except (SocketError, ErrnoBug) as e:
            woken = _closed_during(self, e, "send", True)  # as in send_many
            if woken is e:
                raise
            raise woken from None

    def receive_segments(self, size: int = 65535, ctx: Context | None = None) -> tuple[bytes, int, Address]:
        """Coalesced datagrams of one source: ``(buffer, segment_size, source)``.

        With ``bind(..., gro=True)`` the kernel may hand over many datagrams at once;
        ``jn.split(buffer, segment_size)`` yields them. A datagram that was not
        coalesced comes alone, with ``segment_size == len(buffer)``.

        Args:
            size: the most bytes to take in one call, an int >= 0 (65535 holds the
                largest coalesced message).
            ctx: as for `receive`.

        Raises:
            SocketError.MessageTooBig: the message was longer than ``size`` (MSG_TRUNC;
                it is dropped), or its control data did not fit (MSG_CTRUNC).
            The members `receive` raises.
        """
        if self._gro is not None:
            entry = coalesced.take_held(self)  # what a plain receive held comes first
            if entry is not None:
                return entry[0], len(entry[0]), entry[1]
        # A Socket's _address is always an Address (only a Stream's peer is pending).
        local: Address = self._address  # type: ignore[assignment]
        data, source, segment, _, _ = ancillary.receive(self, local, size, ctx)
        return data, len(data) if segment is None else segment, source

    def receive_message(self, size: int = 65536, ctx: Context | None = None) -> ancillary.Datagram:
        """One datagram with its destination address and kernel timestamp, as a `Datagram`.

        ``.destination`` needs ``bind(..., pktinfo=True)`` and ``.timestamp``
        ``bind(..., timestamps=True)``; each is None otherwise.

        Args:
            size: the most bytes to take, an int >= 0.
            ctx: as for `receive`.

        Raises:
            SocketError.MessageTooBig: the datagram was longer than ``size`` (it is
                dropped), or the control data did not fit.
            SocketError.ProtocolFailure: the kernel's control data was malformed.
            The members `receive` raises.
        """
        if self._gro is not None:
            entry = coalesced.take_held(self)  # what a plain receive held comes first
            if entry is not None:
                return ancillary.Datagram(entry[0], entry[1], entry[2], entry[3], len(entry[0]))
        data, source, segment, destination, timestamp = ancillary.receive(self, self.address, size, ctx)
        return ancillary.Datagram(data, source, destination, timestamp, len(data) if segment is None else segment)

    @property
    def pending(self) -> int:
        """Datagrams of a coalesced buffer received and held for the next receives (``gro=True``); else 0.

        While any are held a receive returns the oldest at once, and ``to_socket()``
        refuses. A forked child holds none of its parent's.
        """
        return coalesced.pending(self)

    def to_socket(self) -> _stdsocket.socket:
        """Hand over the descriptor, as `Stream.to_socket` does.

        Raises:
            SocketError.SocketModeUnsupported: datagrams of a coalesced buffer are held
                (``pending``): receive them first, the stdlib socket could not deliver them.
            SocketError.Unexpected: closed or handed over already, or a call is using it.
        """
        coalesced.check_handover(self)
        return super().to_socket()

    def _made(self, gro: bool) -> None:
        """Called by the bind profiles on the socket they made: GRO is on exactly when asked."""
        self._gro = coalesced.Held() if gro else None

    def __enter__(self) -> Socket:
        return self


def _note(error: BaseException, text: str) -> None:
    # BaseException.add_note is Python 3.11+; without it the error goes as it is.
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(text)


def _take(iterator: Iterator[_T], count: int) -> tuple[list[_T], Exception | None]:
    """Up to ``count`` items, and what the iterator raised (None if it did not)."""
    items: list[_T] = []
    try:
        for item in itertools.islice(iterator, count):
            items.append(item)
    except Exception as e:
        return items, e
    return items, None


__all__ = ["Mode", "Protocol", "Server", "Socket", "Stream", "UnixAddress"]
