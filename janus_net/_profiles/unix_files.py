"""The unix socket file rules (DESIGN §7): never delete a live socket, remove only our own inode.

bind() on a path creates a socket file. janus_net removes a file at that path in
exactly three cases:

* the Server/Socket that created it closes -- in the process that created it --
  and the path still names the inode bind created (identity read from the socket
  itself through sock_diag, not from a later lookup of the path);
* setup fails after bind (the same checks);
* ``unlink_stale=True`` and the file is a socket that no socket is bound to
  (the kernel's list of bound unix sockets says so) and that refuses connect().

Stale files are judged and replaced under an exclusive flock on ``PATH.lock``, so
two janus_net processes never do it at once (see `_PathLock` for the lock file's
life); a file is removed by its creator while its socket is still open, when no
janus_net process can take it for stale. `janus_net._profiles.sequence` calls this module at three marked points:
`before_bind` (permissions on the unbound socket), `bind` (the bind, with stale
handling under the lock) and `after_bind` (identity, owner, exact mode).
docs/unix-files.md says what this guarantees and what it cannot.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable

from janus_net._kernel import cells, files, loop, sockets
from janus_net._kernel import flags as kernel_flags
from janus_net._policy import waiting
from janus_net._policy.context import Context
from janus_net._shim import lib
from janus_net._values.errors import SocketError
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

# The kernel reports a bound file's inode number in 32 bits (struct unix_diag_vfs).
_VFS_INO_MASK = files.VFS_INO_MASK


def _same_file(dev: int, ino: int, identity: tuple[int, int]) -> bool:
    return dev == identity[0] and ino & _VFS_INO_MASK == identity[1] & _VFS_INO_MASK


class UnixFile:
    """The socket file one bind created: its absolute path, (st_dev, st_ino), and its creator.

    Attributes:
        path: absolute, so a later chdir cannot make close() look somewhere else.
        identity: (st_dev, st_ino) of the file bind created, read from the socket;
            None until recorded (and then nothing is ever removed).
        pid: the process that created it; no other process (a forked child) removes it.
    """

    __slots__ = ("_bound", "_claim", "identity", "path", "pid")

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.identity: tuple[int, int] | None = None
        # What the kernel said this socket is bound to, (st_dev, low 32 bits of st_ino),
        # kept for the one case where `record` fails after asking it: then a removal
        # must still find exactly this file, and no other.
        self._bound: tuple[int, int] | None = None
        self.pid = os.getpid()
        # One removal at most, even with close() racing in two threads (list.pop is atomic).
        self._claim: list[None] = [None]

    @property
    def lock_path(self) -> bytes:
        return os.fsencode(self.path) + b".lock"

    def record(self, fd: int, checkpoint: loop.Checkpoint | None = None) -> None:
        """Remember which inode bind created, asking the kernel about the socket ``fd`` itself.

        The kernel is asked first (sock_diag: the file this socket's inode is bound
        to), then the path is looked at. So when the look fails, the listen's clean-up
        still knows which file is ours and removes exactly that one.

        Raises:
            SocketError.AddressInUse: the path no longer names the file this socket is
                bound to (another process replaced it right after bind).
            SocketError: the look at the path failed (its typed error, e.g. FileNotFound
                when another process removed the file right after bind).
        """
        text = f"unix:{self.path}"
        try:
            bound = files.unix_diag(files.fstat(fd, text).ino & _VFS_INO_MASK, None, checkpoint)
        except (SocketError.ProtocolUnsupportedBySystem, SocketError.AccessDenied):
            bound = None  # no sock_diag here: the path, looked up right after bind, is all there is
        except BaseException:
            # The listen fails; what it made at the path must go (docs/unix-files.md: the one
            # case where an identity not confirmed by the socket is used).
            self._identity_from_path(text)
            raise
        self._bound = bound
        st = files.lstat(self.path, text)
        if not st.is_socket or (bound is not None and not _same_file(st.dev, st.ino, bound)):
            raise SocketError.AddressInUse(
                None, "another file replaced the socket file right after bind; it was left alone", address=text
            )
        self.identity = (st.dev, st.ino)

    def _identity_from_path(self, text: str) -> None:
        """The identity of the socket file at the path, unconfirmed (when the kernel could not be asked)."""
        try:
            st = files.lstat(self.path, text)
        except SocketError:
            return  # nothing to look at: nothing will be removed
        if st.is_socket:
            self.identity = (st.dev, st.ino)

    def names_our_file(self) -> bool:
        """Whether the path still names the recorded socket inode (a look, for tests and close)."""
        identity, bound = self.identity, self._bound
        if identity is None and bound is None:
            return False
        try:
            st = files.lstat(self.path)
        except SocketError:
            return False
        if not st.is_socket:
            return False
        if identity is not None:
            return st.identity == identity
        return bound is not None and _same_file(st.dev, st.ino, bound)

    def remove(self) -> None:
        """Unlink the path if this process created it and it still names our socket inode.

        Runs at most once. Call it while the socket is still open: a file whose socket
        is bound is live to every janus_net process (none judges it stale), so nothing
        can replace it between the look and the unlink here.
        """
        if os.getpid() != self.pid:
            return  # a forked child: the parent's file is not ours to remove
        try:
            self._claim.pop()
        except IndexError:
            return
        if self.names_our_file():
            try:
                files.unlink(self.path)
            except SocketError:
                pass  # gone, or the directory turned read-only: nothing of ours is left to remove


# --- The lock beside the path


class _PathLock:
    """An exclusive flock on ``PATH.lock``, the lock every janus_net process takes
    before judging and replacing a file at PATH.

    The lock file is created on first use and left in place, as flock-based schemes
    do: deleting it would let a process that opened the old file and one that
    creates a new one both "hold the lock". It is only ever opened, never written.

    Waiting for another holder is never a blocking flock(2): that sleeps in the kernel
    where neither a context's cancel nor a Python signal handler (on the main thread,
    when the kernel gave the signal to another thread) can reach it. It is LOCK_NB
    attempts with naps in between, each nap a janus_net wait (`waiting.pause`): a
    cancel of the context ends it at once, a Python signal handler runs in it (one that
    raises ends the wait with its exception), and the checkpoint runs between naps.
    """

    __slots__ = ("cell",)

    # Back-off between attempts while another process holds the lock (milliseconds).
    _WAIT_FIRST_MS = 1
    _WAIT_MOST_MS = 50

    def __init__(self, cell: Any) -> None:
        self.cell = cell

    @classmethod
    def acquire(cls, path: bytes, checkpoint: loop.Checkpoint | None, address: str) -> _PathLock:
        """Take the lock (waiting for another holder), or raise a `SocketError`.

        The lock file's fd lives in a descriptor cell from openat's return on: an
        exception anywhere (a signal handler's, say) closes it with the cell, and so
        drops the flock, instead of leaking a lock held for the life of the process.
        """
        # O_NONBLOCK: a FIFO planted at the name must not block the open.
        flags = lib.O_RDONLY | lib.O_CREAT | lib.O_NOFOLLOW | lib.O_NOCTTY | lib.O_NONBLOCK
        cell = cells.new_desc()
        try:
            fd = files.open_path(cell, path, flags, 0o644, checkpoint, address)
            if not files.fstat(fd, address).is_regular:
                raise SocketError.AddressInUse(
                    None, f"{os.fsdecode(path)!r} is not a regular file, so it cannot be the lock", address=address
                )
            _lock(fd, checkpoint)
        except BaseException:
            cells.close_desc(cell)
            raise
        return cls(cell)

    def release(self) -> None:
        cells.close_desc(self.cell)  # closing the last descriptor of the description drops the flock


def _lock(fd: int, checkpoint: loop.Checkpoint | None) -> None:
    # The checkpoint of a :service call is its context's bound check(): the nap then
    # also polls that context's wake fd, so its cancel() ends the nap at once.
    owner = getattr(checkpoint, "__self__", None)
    ctx = owner if isinstance(owner, Context) else None
    nap = _PathLock._WAIT_FIRST_MS
    while files.flock(fd, lib.LOCK_EX | lib.LOCK_NB, checkpoint, nonblocking=True) == loop.WOULD_BLOCK:
        if ctx is None and checkpoint is not None:
            checkpoint()
        waiting.pause(ctx, nap)  # checks the context before and after
        nap = min(nap * 2, _PathLock._WAIT_MOST_MS)


# --- The three steps `janus_net._profiles.sequence` calls


def before_bind(
    fd: int, mode: int | None, owner: int | None, group: int | None, checkpoint: loop.Checkpoint | None
) -> None:
    """Give the unbound socket the permissions the file must be born with.

    Linux creates the file with the unbound socket's mode (less the umask), so the file
    never exists with wider permissions. It does not take the socket's owner, so when
    ``owner``/``group`` will change after bind, the file is born with its owner's bits
    only (nobody else can connect) and gets its group/other bits after the chown.
    """
    if owner is not None or group is not None:
        sockets.fchmod(fd, (0o777 if mode is None else mode) & stat.S_IRWXU, checkpoint)
    elif mode is not None:
        sockets.fchmod(fd, mode, checkpoint)


_STALE_HINT = (
    "a file exists at the path; if it is a stale socket file, unlink_stale=True removes it"
    " (a live socket is never removed)"
)


# How many times `bind` judges a file that reappears between unlink and bind before
# giving up: each round needs another process to bind the path and die in between.
_JUDGEMENTS = 3
_RETAKEN = "the path was taken again each time the stale file was removed; it was left alone"


def bind(
    fd: int, address: UnixAddress, unix_file: UnixFile, unlink_stale: bool, probe_type: int,
    checkpoint: loop.Checkpoint | None,
) -> None:  # fmt: skip
    """bind(2) to the path; with ``unlink_stale``, take over a stale file under the lock.

    Raises:
        SocketError.AddressInUse: something is at the path and was left alone (a live
            socket, listening or merely bound; a file that is not a socket; a socket
            janus_net cannot prove stale). The message says which.
    """
    encoded = address.sockaddr
    try:
        sockets.bind(fd, encoded.pointer, encoded.length, unix=True, checkpoint=checkpoint, address=address)
        return
    except SocketError.AddressInUse as e:
        if not unlink_stale:
            # The caller may not know the option exists: name it, and its limit.
            raise SocketError.AddressInUse(
                e.errno, f"{e.strerror}: {_STALE_HINT}", syscall=e.syscall, address=e.address
            ) from None
    lock = _PathLock.acquire(unix_file.lock_path, checkpoint, str(address))
    try:
        # The lock orders janus_net processes that judge the file, but any process may
        # bind the path between our unlink and our bind (another janus_net process's
        # first, lock-free bind among them). Then the file at the path is a new one:
        # judge it as we judged the first, so a live socket is named as such, and a
        # socket that already died is taken over like any stale file.
        for attempt in range(_JUDGEMENTS):
            _remove_if_stale(address, probe_type, checkpoint)
            try:
                sockets.bind(fd, encoded.pointer, encoded.length, unix=True, checkpoint=checkpoint, address=address)
                return
            except SocketError.AddressInUse as e:
                if attempt == _JUDGEMENTS - 1:
                    raise SocketError.AddressInUse(
                        e.errno, f"{e.strerror}: {_RETAKEN}", syscall=e.syscall, address=e.address
                    ) from None
    finally:
        lock.release()


def after_bind(
    fd: int, unix_file: UnixFile, mode: int | None, owner: int | None, group: int | None,
    checkpoint: loop.Checkpoint | None,
) -> None:  # fmt: skip
    """Record the file's identity, then set its owner and exactly ``mode`` through that inode only.

    The umask may have narrowed ``mode``; widening it goes through an O_PATH descriptor
    of the path that is checked to be our inode (a symlink or another file swapped in
    is never followed or touched).
    """
    unix_file.record(fd, checkpoint)
    if owner is None and group is None:
        if mode is None:
            return
        st = files.lstat(unix_file.path, f"unix:{unix_file.path}")
        if stat.S_IMODE(st.mode) == mode and unix_file.names_our_file():
            return
    else:
        mode = _default_mode() if mode is None else mode
    text = f"unix:{unix_file.path}"
    cell = cells.new_desc()  # the O_PATH fd lives in a cell, as every fd janus_net opens
    try:
        path_fd = files.open_path(cell, os.fsencode(unix_file.path), lib.JN_O_PATH | lib.O_NOFOLLOW, 0, None, text)
        st2 = files.fstat(path_fd, text)
        if not st2.is_socket or unix_file.identity != (st2.dev, st2.ino):
            raise SocketError.AddressInUse(
                None, "another file replaced the socket file before its mode was set; it was left alone", address=text
            )
        if owner is not None or group is not None:
            files.fchown_inode(path_fd, owner, group, text)
        if stat.S_IMODE(st2.mode) != mode or owner is not None or group is not None:
            files.chmod_inode(path_fd, mode, text)
    finally:
        cells.close_desc(cell)


def _default_mode() -> int:
    """The mode bind gives a file without ``mode=``: 0o777 less the umask (read, not set)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o777 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o700  # cannot tell: the narrowest that still lets the owner in


# --- Stale files


def _remove_if_stale(address: UnixAddress, probe_type: int, checkpoint: loop.Checkpoint | None) -> None:
    """Unlink the file at ``address`` if it is stale (called with the lock held).

    Stale means all of: it is a socket file; no unix socket in this network namespace
    is bound to its inode (the kernel's list, sock_diag); and connect() to it is
    refused (which also covers sockets bound in other network namespaces that listen).
    A file that vanished meanwhile needs nothing.

    Raises:
        SocketError.AddressInUse: the file is not stale, or cannot be proven stale.
    """
    text = str(address)
    try:
        st = files.lstat(address.path, text)
    except SocketError.FileNotFound:
        return
    except SocketError as e:
        raise SocketError.AddressInUse(e.errno, f"cannot inspect {address.path!r}: {e.member}", address=text) from e
    if not st.is_socket:
        raise SocketError.AddressInUse(
            None, f"the path exists and is not a socket (it is {st.kind}); it was left alone", address=text
        )
    try:
        holder = files.unix_diag(0, st.identity, checkpoint)
    except SocketError as e:
        raise SocketError.AddressInUse(
            None, f"cannot tell whether a socket is bound to the file ({e.member}); it was left alone", address=text
        ) from e
    if holder is not None:
        raise SocketError.AddressInUse(
            None, "a live socket is bound to the file (listening or not); it was left alone", address=text
        )
    _probe_refuses(address, probe_type)
    # With the lock held, only a process outside janus_net changes the path. A file
    # gone meanwhile (FileNotFound) needs nothing: the bind that follows tells.
    try:
        again = files.lstat(address.path, text)
        if again.identity == st.identity:
            files.unlink(address.path, text)
    except SocketError.FileNotFound:
        return
    except SocketError as e:
        raise SocketError.AddressInUse(
            e.errno, f"cannot remove the stale file ({e.member}); it was left alone", address=text
        ) from e


def bound_but_refusing(path: str) -> bool:
    """Whether a socket of this network namespace is bound to the socket file at ``path``.

    For a connect() that was refused: True means someone holds the file and may be
    about to listen (between its bind and its listen); False means a stale file, no
    file, or a kernel that cannot tell (no sock_diag).
    """
    try:
        st = files.lstat(path)
    except SocketError:
        return False
    if not st.is_socket:
        return False
    try:
        return files.unix_diag(0, st.identity) is not None
    except SocketError:
        return False


def _probe_refuses(address: UnixAddress, type_: int) -> None:
    """Return if connect() to ``address`` is refused (nobody listens); raise AddressInUse otherwise."""
    text = str(address)
    cell = cells.new_desc()  # socket() writes the probe's fd into the cell: no bytecode holds it alone
    try:
        probe = sockets.socket(cell, address.family, type_, 0)
        try:
            # Non-blocking: a blocking connect to a live server whose backlog is full waits
            # until that server accepts -- forever, if it is stuck.
            kernel_flags.set_nonblocking(probe, True)
            encoded = address.sockaddr
            rc = sockets.connect(probe, encoded.pointer, encoded.length, address, nonblocking=True)
        except SocketError.ConnectionRefused:
            return
        except SocketError as e:
            raise SocketError.AddressInUse(
                None, f"the socket file is not stale ({e.member} on probe); it was left alone", address=text
            ) from e
    finally:
        cells.close_desc(cell)
    if rc == loop.WOULD_BLOCK:
        raise SocketError.AddressInUse(
            None, "a live socket with a full backlog is listening there; it was left alone", address=text
        )
    raise SocketError.AddressInUse(None, "a live socket is listening there; it was left alone", address=text)


# --- owner= and group=, resolved before any syscall

# uid_t/gid_t (unsigned 32-bit on every platform janus_net builds on); the all-ones
# value means "unchanged" to chown, so it is not a valid id to ask for.
_ID_LIMIT = files.ID_LIMIT


def resolve_owner(owner: object) -> int | None:
    """``owner=`` as a uid: None, a user id (int, not bool), or a user name (str).

    Raises:
        TypeError: neither None, int nor str.
        ValueError: an id out of range, or a name no user has.
    """
    return _resolve("owner", "user", owner, lambda name: pwd.getpwnam(name).pw_uid)


def resolve_group(group: object) -> int | None:
    """``group=`` as a gid: None, a group id (int, not bool), or a group name (str).

    Raises:
        TypeError: neither None, int nor str.
        ValueError: an id out of range, or a name no group has.
    """
    return _resolve("group", "group", group, lambda name: grp.getgrnam(name).gr_gid)


def _resolve(option: str, kind: str, value: object, lookup: Callable[[str], int]) -> int | None:
    if value is None:
        return None
    if type(value) is int:
        if not 0 <= value < _ID_LIMIT:
            raise ValueError(f"{option} must be a {kind} id in 0..{_ID_LIMIT - 1} or a {kind} name, not {value!r}")
        return value
    if type(value) is not str:
        raise TypeError(f"{option} must be a {kind} name (str) or id (int), not {type(value).__name__}")
    try:
        return lookup(value)
    except (KeyError, ValueError):
        hint = f" (pass {int(value)} as an int for a numeric id)" if value.isascii() and value.isdigit() else ""
        raise ValueError(f"{option}={value!r}: no {kind} of that name on this system{hint}") from None
