"""The hand-over's machinery behind `janus_net.handoff` (`offer`, `take`, `HandOff.ready`).

The protocol, the promises about unix socket files and the errors are documented in
the public module, `janus_net.handoff`; this module holds how they are kept: the
frames read and written on the channel (parsed with bounds by
`janus_net._process.frames`), the offer's listening socket and its loop over
successors, the successor's connect, and the proof of which unix socket files a
successor may remove (`files_to_own`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from janus_net._kernel import files as kernel_files
from janus_net._policy import waiting
from janus_net._process import frames
from janus_net._process.receiving import check_peer, receive_sockets
from janus_net._process.sending import send_sockets
from janus_net._process.transfer import AnySocket, check_channel, sockets_to_send
from janus_net._profiles.connect import connect
from janus_net._profiles.listen import listen, listen_with_context
from janus_net._profiles.unix_files import UnixFile, bound_but_refusing
from janus_net._sockets.datagram import Socket
from janus_net._sockets.owner import give_unix_file, unix_file_of
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream
from janus_net._values.addresses import as_address
from janus_net._values.errors import SocketError
from janus_net._values.unix import UnixAddress

if TYPE_CHECKING:
    from janus_net._policy.capability import NetBind
    from janus_net._policy.context import Context


def hand_over_address(address: str | UnixAddress) -> UnixAddress:
    """``address`` as a `UnixAddress`; InvalidAddress for any other kind."""
    addr = as_address(address)
    if not isinstance(addr, UnixAddress):
        raise SocketError.InvalidAddress(None, "a hand-over address is a unix path or @name", address=str(addr))
    return addr


def _send_frame(channel: Stream, frame: bytes) -> None:
    channel.write_all(frame)


def _read_frame(channel: Stream, ctx: Context | None) -> bytes:
    """One frame's body; `frames` parses it.

    The length is bounded (`frames.body_size`) before the body is read. The other side
    closing before a frame begins is `ConnectionResetByPeer` (it is gone); closing in
    the middle of one is `ProtocolFailure` (a truncated frame).
    """
    header = _read_exact(channel, frames.HEADER.size, ctx, None)
    return _read_exact(channel, frames.body_size(header), ctx, header)


def _read_exact(channel: Stream, size: int, ctx: Context | None, header: bytes | None) -> bytes:
    out = bytearray()
    while len(out) < size:
        chunk = channel.read(size - len(out), ctx)
        if not chunk:
            if header is None and not out:
                raise SocketError.ConnectionResetByPeer(
                    None, "the other side of the hand-over closed the channel", syscall="recv"
                )
            where = f"{len(out)} of its {size} bytes" if header is not None else f"{len(out)} bytes of its length"
            raise frames.protocol(f"the channel closed in the middle of a frame, after {where}")
        out += chunk
    return bytes(out)


# --- The old process


def offer(address: str | UnixAddress, sockets: Mapping[str, AnySocket], ctx: Context | None) -> None:
    """`janus_net.handoff.offer`: wait for a successor, give it ``sockets``, return once it serves."""
    addr = hand_over_address(address)
    items = dict(sockets)
    sockets_to_send(items)  # the checks send_sockets makes, before anything waits
    files, listed = _owned_files(items)
    files_frame = frames.files_frame(listed)  # as the successor will check it, before anything waits
    with _listen_for_successor(addr, ctx) as server:
        while True:
            with server.accept(ctx) as channel:
                try:
                    _offer_to(channel, items, files, files_frame, ctx, server.close)
                except SocketError.Timeout:
                    raise
                except SocketError:
                    continue  # a failed, foreign or misbehaving successor: wait for the next one
                return


def _listen_for_successor(addr: UnixAddress, ctx: Context | None) -> Server:
    """Listen at the hand-over address, or raise AddressInUse at once.

    A path gets mode 0600 (only our user may connect) and replaces a stale socket file
    left by a crashed predecessor (`unixfile`'s stale rule, under its lock); anything
    else at the path -- a live socket (another offer), a regular file, a directory, a
    FIFO, a symlink -- is left alone and reported at once. There is nothing to wait
    for: a predecessor stops listening at the address before it sends
    ``{"given": true}``, so a successor's own offer finds the address free. An
    abstract name has neither file nor permissions.
    """
    options: dict[str, Any] = {} if addr.abstract else {"mode": 0o600, "unlink_stale": True}
    if ctx is None:
        return listen(addr, **options)
    return listen_with_context(addr, ctx, **options)


def _owned_files(items: Mapping[str, AnySocket]) -> tuple[list[str], dict[str, tuple[str, tuple[int, int]]]]:
    """The names whose unix socket files this process would remove on close, and the ``files`` frame's entries.

    Every such file is given up once the successor is ready. The frame lists only those
    the successor can prove are its sockets' (bound to an absolute path, `files_to_own`): a
    socket bound to a relative path names its file relative to a directory the
    successor does not know, so neither process removes that file after the hand-over.
    """
    names: list[str] = []
    listed: dict[str, tuple[str, tuple[int, int]]] = {}
    for name, sock in items.items():
        unix_file = unix_file_of(sock)
        if not isinstance(unix_file, UnixFile) or unix_file.identity is None:
            continue
        names.append(name)
        address = sock.address
        if isinstance(address, UnixAddress) and os.fsencode(address.path).startswith(b"/"):
            listed[name] = (unix_file.path, unix_file.identity)
    return names, listed


def _offer_to(
    channel: Stream,
    items: dict[str, AnySocket],
    files: list[str],
    files_frame: bytes,
    ctx: Context | None,
    stop_listening: Callable[[], None],
) -> None:
    check_peer(channel._desc, frozenset(), channel.address)
    send_sockets(channel, items, ctx=ctx)
    _send_frame(channel, files_frame)
    frames.ready(_read_frame(channel, ctx))
    # From here the successor serves: this process stops removing the files...
    for name in files:
        sock = items[name]
        assert isinstance(sock, (Server, Socket))
        give_unix_file(sock, None)
    # ...stops listening at the hand-over address, so the successor can offer there in turn...
    stop_listening()
    # ...and tells the successor so. If it is gone meanwhile, it had said it was ready:
    # the hand-over happened either way.
    try:
        _send_frame(channel, frames.GIVEN)
    except SocketError:
        pass


# --- The successor


def take(
    address: str | UnixAddress, ctx: Context | None, capability: NetBind | None
) -> tuple[dict[str, AnySocket], Stream | None, dict[str, UnixFile]]:
    """`janus_net.handoff.take`: (the sockets received, the channel to the predecessor, the files to own).

    ``({}, None, {})`` when nobody offers at ``address``.
    """
    addr = hand_over_address(address)
    channel: Stream | None = None
    sockets: dict[str, AnySocket] = {}
    # One try around everything that owns something, the return included, so an
    # interrupt at any line leaves nothing open.
    try:
        channel = _connect_to_offer(addr, ctx)
        if channel is None:
            return {}, None, {}
        check_channel(channel)
        check_peer(channel._desc, frozenset(), addr)
        sockets = receive_sockets(channel, ctx=ctx, capability=capability)
        files = files_to_own(_read_frame(channel, ctx), sockets)
        return sockets, channel, files
    except BaseException:
        for sock in sockets.values():
            sock.close()
        if channel is not None:
            channel.close()
        raise


def ready(channel: Stream, files: dict[str, UnixFile], sockets: Mapping[str, AnySocket], ctx: Context | None) -> None:
    """`janus_net.handoff.HandOff.ready` on a hand-over that happened: say ready, then own the files given up."""
    with channel:
        try:
            _send_frame(channel, frames.READY)
            body = _read_frame(channel, ctx)
        except (SocketError.Timeout, SocketError.ProtocolFailure):
            raise  # a truncated frame is not "gone": the files stay unowned
        except SocketError:
            body = None  # the old one is gone: it never removes the files again
        if body is not None:
            frames.given(body)  # anything but {"given": true}: ProtocolFailure, and the files stay unowned
        for name, unix_file in files.items():
            sock = sockets.get(name)
            if isinstance(sock, (Server, Socket)) and not sock.closed:
                give_unix_file(sock, unix_file)


#: How long `take` waits for a predecessor that has bound the hand-over path but does not listen yet.
_BOUND_WAIT_S = 2.0
_BOUND_PAUSE_MS = 2


def _connect_to_offer(addr: UnixAddress, ctx: Context | None) -> Stream | None:
    """The channel to the process offering at ``addr``, or None if none does.

    `offer` binds the path a moment before it listens (its mode and identity are set
    in between): a connect in that moment is refused although an offer is coming. So
    a refused connect to a path that a live socket is bound to is tried again, every
    2 ms for up to 2 s (or until ``ctx`` ends); a stale file, no file, or a socket
    bound for longer than that means no offer. An abstract name has no file to ask
    about: refused there is no offer.
    """
    waited = 0.0
    while True:
        try:
            return connect(addr, ctx=ctx)
        except SocketError.FileNotFound:
            return None
        except SocketError.ConnectionRefused:
            if addr.abstract or waited >= _BOUND_WAIT_S or not bound_but_refusing(addr.path):
                return None
        waiting.pause(ctx, _BOUND_PAUSE_MS)
        waited += _BOUND_PAUSE_MS / 1000


def files_to_own(body: bytes, sockets: Mapping[str, AnySocket]) -> dict[str, UnixFile]:
    """The socket files to own after ready(): only those the kernel says are the received sockets' own.

    The frame (`frames.files`, bounded) only says which files the predecessor gives
    up; it never says which file to remove. A file is owned only if the received
    socket itself is bound to that path (its getsockname, the kernel's word) and the
    file there now is the inode that socket is bound to (sock_diag about the socket,
    as `UnixFile.record` asks). A dev/ino sent along is a hint that must agree. A
    socket bound to a relative path cannot say where its file is, and a kernel without
    sock_diag cannot say which inode is the socket's: those files are never removed.
    """
    owned: dict[str, UnixFile] = {}
    for name, entry in frames.files(body).items():
        sock = sockets.get(name)
        if not isinstance(sock, (Server, Socket)):
            raise frames.protocol(f"a socket file for {name!r}, which is not a received Server or Socket")
        address = sock.address
        if not isinstance(address, UnixAddress) or address.abstract:
            raise frames.protocol(f"a socket file for {name!r}, which is not bound to a unix path")
        bound = os.fsencode(address.path)
        if not bound.startswith(b"/"):
            continue  # bound to a relative path: which file that is cannot be proven here
        if os.fsencode(os.path.abspath(bound)) != os.fsencode(entry.path):
            raise frames.protocol(f"the file named for {name!r} is not the path its socket is bound to")
        identity = _bound_file(sock, entry.path)
        if identity is not None and entry.hint in (None, identity):
            unix_file = UnixFile(entry.path)
            unix_file.identity = identity
            owned[name] = unix_file
    return owned


def _bound_file(sock: Server | Socket, path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the socket file at ``path`` if it is the inode ``sock`` is bound to, else None."""
    try:
        st = kernel_files.lstat(path)
    except SocketError:
        return None  # gone already (or unreadable): nothing to remove later
    if not st.is_socket:
        return None
    try:
        socket_ino = kernel_files.fstat(sock.fileno()).ino & kernel_files.VFS_INO_MASK
        bound = kernel_files.unix_diag(socket_ino, None)
    except (SocketError.ProtocolUnsupportedBySystem, SocketError.AccessDenied):
        return None  # the kernel cannot say which file is the socket's: trust nothing
    if bound is None or bound != (st.dev, st.ino & kernel_files.VFS_INO_MASK):
        return None  # replaced since, or another file altogether: not ours to remove
    return st.identity


__all__ = ["hand_over_address", "offer", "ready", "take"]
