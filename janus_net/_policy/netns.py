"""Sockets made inside another network namespace, without the caller's thread ever leaving its own.

``listen*(..., netns=PATH)``, ``bind*(..., netns=PATH)`` and ``connect(..., netns=PATH)``
make their socket with `run_in`: a short-lived helper thread opens the namespace file
(``/run/netns/NAME``, ``/proc/PID/ns/net``), checks that it is a *network*
namespace, enters it with ``setns(fd, CLONE_NEWNET)``, makes the socket and hands
its descriptor back; then the thread ends, and its namespace with it. A socket
belongs for good to the namespace it was created in: binding, listening, accepting
and connecting it from the caller's thread all happen there.

Errors entering the namespace are typed: `SocketError.FileNotFound` (no such file),
`SocketError.AccessDenied` (the file cannot be opened, or no CAP_SYS_ADMIN over the
namespace), `SocketError.InvalidAddress` (the file is not a namespace, or is another
kind of namespace: mount, user, pid...).

Nothing leaks: if the caller is interrupted (KeyboardInterrupt, a signal handler's
exception) while it waits, the descriptor the helper makes is closed -- by the caller
if it was already handed over, else by the helper when it sees nobody is waiting.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from janus_net._kernel import cells, confinement, loop, sockets
from janus_net._shim import lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


#: What ``netns=`` accepts: a path as str, bytes or an os.PathLike.
NamespacePath = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def check_path(path: object) -> bytes:
    """The namespace file's path as bytes; ValueError/TypeError before any syscall for a bad one."""
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"netns must be a path (str, bytes or os.PathLike), not {type(path).__name__}")
    encoded = os.fsencode(path)
    if not encoded:
        raise ValueError("netns must name a namespace file, not an empty path")
    if b"\0" in encoded:
        raise ValueError("netns must not contain a NUL byte")
    return encoded


def shown(path: bytes) -> str:
    """The namespace file as an error's ``.address``: ``netns:PATH``, the exact text.

    Like every address an error carries, it is escaped where it is printed for people
    (`SocketError.__str__` runs it through `janus_net._values.escaping.for_people`), so
    a crafted name forges no line, and machine output keeps the exact path.
    """
    return "netns:" + os.fsdecode(path)


class _Handoff:
    """The one place a descriptor made by the helper passes to the caller (or back to the helper)."""

    __slots__ = ("abandoned", "done", "error", "fd", "into_cell", "lock")

    def __init__(self) -> None:
        import threading  # here: only a netns= call needs threads (import time)

        self.lock = threading.Lock()
        self.done = threading.Event()
        self.fd = -1
        self.error: BaseException | None = None
        self.abandoned = False
        self.into_cell = False

    # The caller's two uses of the lock are each one ``with`` statement on one line: an
    # exception landing on the caller's thread (KeyboardInterrupt, a signal handler's)
    # then finds no line event between the acquire and the release. (At a with block's
    # exit line it would leave the lock held, and the except path of `run_in` would wait
    # on it for ever.)
    def take(self) -> int:
        with self.lock: return self._swap_out()  # noqa: E701 - one line on purpose (above)  # fmt: skip

    def abandon(self) -> int:
        with self.lock: return self._swap_out(abandon=True)  # noqa: E701 - one line on purpose  # fmt: skip

    def _swap_out(self, abandon: bool = False) -> int:
        if abandon:
            self.abandoned = True
        fd, self.fd = self.fd, -1
        return fd


def run_in(path: NamespacePath, make: Callable[[], int], *, into_cell: bool = False) -> int:
    """Call ``make()`` on a helper thread inside the network namespace ``path``; return its descriptor.

    The caller's thread never changes namespace. ``make`` must return a new
    descriptor that the caller then owns (for example ``lambda: syscalls.socket(...)``);
    an exception it raises is raised here.

    Args:
        path: a network namespace file, such as ``/run/netns/NAME`` or ``/proc/PID/ns/net``.
        make: creates the descriptor; runs on the helper thread, inside the namespace.
        into_cell: ``make`` writes the descriptor into an owned cell (`janus_net._kernel.cells`)
            that closes it: then neither thread ever closes it here.

    Raises:
        ValueError, TypeError: a bad path (empty, NUL byte, not a path), before any syscall.
        SocketError.FileNotFound, NotDir, SymLinkLoop: the path leads to no file.
        SocketError.AccessDenied: the file cannot be opened, or the process may not enter it.
        SocketError.InvalidAddress: the file is not a network namespace.
        SocketError.OptionUnsupported: the platform has no setns (not Linux).
    """
    encoded = check_path(path)
    if not lib.JN_HAS_SETNS:
        raise SocketError.OptionUnsupported(None, "this platform has no network namespaces", address=shown(encoded))
    handoff = _Handoff()
    handoff.into_cell = into_cell
    import threading

    helper = threading.Thread(target=_helper, args=(encoded, make, handoff), name="janus_net-netns", daemon=True)
    try:
        helper.start()
        handoff.done.wait()
        helper.join()  # it has nothing left to do; a thread left behind would make enforce() refuse
        if handoff.error is not None:
            raise handoff.error
        return handoff.take()
    except BaseException:
        # Interrupted while waiting (or the helper failed): whatever was made, nobody owns it.
        orphan = handoff.abandon()
        if orphan >= 0 and not into_cell:
            cells.close(orphan)
        # Wait for the helper (a few syscalls): a cell it fills after this point is then
        # filled before the caller's cleanup closes the cell, so the descriptor is closed
        # before the exception reaches the caller, not when the helper's thread ends.
        try:
            helper.join()
        except RuntimeError:
            pass  # interrupted before the thread started: there is nothing to wait for
        raise


def _helper(path: bytes, make: Callable[[], int], handoff: _Handoff) -> None:
    fd = -1
    error: BaseException | None = None
    try:
        _enter(path)
        fd = make()
    except BaseException as exc:  # handed to the caller, raised there
        error = exc
    try:
        with handoff.lock:
            if handoff.abandoned:
                if fd >= 0 and not handoff.into_cell:
                    cells.close(fd)
                return
            handoff.fd = fd
            handoff.error = error
    finally:
        handoff.done.set()  # whatever happened here, the caller must never wait forever


def _enter(path: bytes) -> None:
    where = shown(path)
    ns = confinement.open_namespace(path, where)
    try:
        if lib.JN_HAS_NS_GET_NSTYPE:
            try:
                kind = confinement.namespace_type(ns, where)
            except SocketError.InvalidAddress as exc:
                raise SocketError.InvalidAddress(
                    exc.errno, "the file is not a namespace file", syscall=exc.syscall, address=where
                ) from None
            if kind != lib.JN_CLONE_NEWNET:
                why = "the file is a namespace, but not a network namespace"
                raise SocketError.InvalidAddress(None, why, address=where)
        # setns checks the kind again (EINVAL), so a kernel without NS_GET_NSTYPE is still right.
        confinement.setns(ns, lib.JN_CLONE_NEWNET, where)
    finally:
        cells.close(ns)


class Maker:
    """One helper thread inside a network namespace that makes every socket of one call.

    `run_in` starts a thread per socket; a call that makes several sockets
    (``connect_host``: one per attempt, one per source probe) makes one `Maker`
    instead: its thread enters the namespace once, then makes each socket asked of it
    (`socket`, writing the fd straight into the caller's cell) until `close`, which
    ends the thread and joins it. A `Maker` belongs to the call that made it and is
    used from that call's thread only.

    Nothing leaks when the caller is interrupted while it waits for a socket: `socket`
    then closes the helper, which makes what it was asked first, so the fd is in the
    caller's cell before the caller's cleanup closes that cell. A helper whose `Maker`
    is dropped without `close` (an interrupt inside it) ends on its own within a second.
    """

    __slots__ = ("__weakref__", "_path", "_queue", "_ready", "_thread")

    def __init__(self, path: NamespacePath) -> None:
        """Check ``path`` (ValueError/TypeError before any syscall); the thread starts later (`start`)."""
        self._path = check_path(path)
        self._thread: Any = None
        self._queue: Any = None
        self._ready: _Request | None = None

    def socket(self, desc: Any, family: int, type_: int, proto: int) -> int:
        """`sockets.socket` into ``desc``, made on the helper thread inside the namespace.

        Raises:
            The namespace errors of `run_in` (the first call enters the namespace), or
            the socket's own.
        """
        self.start()
        request = _Request(lambda: sockets.socket(desc, family, type_, proto))
        try:
            self._queue.put(request)
            request.done.wait()
        except BaseException:
            # Interrupted, the request asked or not: end the helper now. It makes what it
            # was asked first (a few syscalls), so the fd is in the caller's cell before
            # the caller's cleanup closes that cell.
            self.close()
            raise
        if request.error is not None:
            raise request.error
        return request.fd

    def start(self) -> None:
        """Start the helper and enter the namespace, if not done yet; raise what entering it raised.

        Raises:
            The namespace errors of `run_in`: FileNotFound, AccessDenied, InvalidAddress,
            OptionUnsupported (no setns on this platform).
        """
        if self._thread is None:
            self._start()
        ready = self._ready
        assert ready is not None  # set by _start
        if ready.error is not None:
            raise ready.error

    def _start(self) -> None:
        if not lib.JN_HAS_SETNS:
            why = "this platform has no network namespaces"
            raise SocketError.OptionUnsupported(None, why, address=shown(self._path))
        import queue
        import threading  # here: only a netns= call needs threads (import time)
        import weakref

        self._queue = queue.SimpleQueue()
        path = self._path
        self._ready = _Request(lambda: _entered(path))
        owner = weakref.ref(self)  # the helper's, so that a Maker dropped without a close ends it too
        thread = threading.Thread(
            target=_serve, args=(self._queue, self._ready, owner), name="janus_net-netns", daemon=True
        )
        self._thread = thread
        thread.start()
        self._ready.done.wait()

    def close(self) -> None:
        """End the helper thread and join it (idempotent); every socket asked of it is made by then."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        try:
            thread.join()
        except RuntimeError:
            pass  # interrupted before the thread started: there is nothing to wait for
        self._thread = None


class _Request:
    """One thing for the helper to make, and its answer."""

    __slots__ = ("done", "error", "fd", "make")

    def __init__(self, make: Callable[[], int]) -> None:
        import threading

        self.make = make
        self.done = threading.Event()
        self.fd = -1
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fd = self.make()
        except BaseException as exc:  # handed to the caller, raised there
            self.error = exc
        finally:
            self.done.set()


def _entered(path: bytes) -> int:
    _enter(path)
    return -1


# How long the helper waits for a request before it looks whether its `Maker` is still
# there: a caller interrupted before it could say "close" must not leave it waiting for ever.
_IDLE_LOOK = 1.0


def _serve(requests: Any, ready: _Request, owner: Any) -> None:
    import queue

    ready.run()
    while True:
        try:
            request = requests.get(timeout=_IDLE_LOOK)
        except queue.Empty:
            if owner() is None:
                return  # its Maker is gone without a close: nobody will ask again
            continue
        if request is None:
            return
        if ready.error is not None:
            # The namespace could not be entered: every request gets that error.
            request.error = ready.error
            request.done.set()
        else:
            request.run()


def socket(
    path: NamespacePath | Maker | None,
    desc: Any,
    family: int,
    type_: int,
    proto: int,
    checkpoint: loop.Checkpoint | None = None,
) -> int:
    """`syscalls.open_socket` into the cell ``desc``, inside the network namespace ``path`` when one is given.

    ``path`` may also be a `Maker`: the socket is then made by its one helper thread.

    The helper thread writes the new fd straight into the caller's cell, so it is the
    cell's from the syscall's return on, whichever thread is interrupted when: the
    caller's cleanup (or the cell's collection, once the helper has let go of it)
    closes it exactly once.
    """
    if path is None:
        return sockets.socket(desc, family, type_, proto, checkpoint)
    if isinstance(path, Maker):
        return path.socket(desc, family, type_, proto)
    # The checkpoint stays on the caller's thread: a context is not the helper's to raise from.
    return run_in(path, lambda: sockets.socket(desc, family, type_, proto), into_cell=True)


__all__ = ["Maker", "NamespacePath", "check_path", "run_in", "shown", "socket"]
