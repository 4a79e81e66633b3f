"""Files: open, identity (fstat, lstat), removal, owner and mode, locks, and which unix socket is bound where.

What a unix socket file needs (DESIGN §7, docs/unix-files.md): the lock beside the
path (`open_path`, `flock`), the file's identity and mode (`fstat`, `lstat`,
`chmod_inode`, `fchown_inode`: through the inode, never a name that could be swapped),
its removal (`unlink`), and which socket is bound to which file (`unix_diag`, over
NETLINK_SOCK_DIAG). lstat and unlink look at and remove a path another process may
change at any moment, so every errno a racing process or a hostile directory can cause
is a member of their tables, not a bug.
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned
import sys
from collections.abc import Mapping

from janus_net import platform
from janus_net._kernel.cells import close_desc, new_desc
from janus_net._kernel.loop import NOT_ADOPTABLE, OUR_FD, OUR_POINTER, Checkpoint, Syscall, retry
from janus_net._kernel.sockets import socket
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


_FS_ENCODING = sys.getfilesystemencoding()


#: The kernel reports a bound file's inode number in 32 bits (struct unix_diag_vfs).
VFS_INO_MASK = (1 << (8 * ffi.sizeof("unsigned int"))) - 1

#: One past the largest uid/gid: the all-ones value means "unchanged" to chown.
ID_LIMIT = (1 << (8 * ffi.sizeof("uid_t"))) - 1

OPEN = Syscall(
    "open",
    {
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        # ELOOP: O_NOFOLLOW met a symlink where the lock file or the socket file should be.
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOMEM: SocketError.SystemResources,
        E.ENOSPC: SocketError.SystemResources,
        E.EDQUOT: SocketError.SystemResources,
        # EISDIR / ENXIO: a directory or a socket sits where the lock file goes; the name is taken.
        E.EISDIR: SocketError.AddressInUse,
        E.ENXIO: SocketError.AddressInUse,
    },
    bugs={
        E.EBADF: "openat is given AT_FDCWD or a directory descriptor janus_net holds open",
        E.EFAULT: "the path is a buffer janus_net encoded for the call",
        E.EINVAL: "the open flags are constants janus_net chose, valid on every kernel it builds for",
    },
    label="open (unix file)",
)


def open_path(
    desc: Any, path: bytes, flags: int, mode: int = 0, checkpoint: Checkpoint | None = None, address: object = None
) -> int:
    """openat(AT_FDCWD, path, flags | O_CLOEXEC, mode) into the cell ``desc``: a close-on-exec descriptor of a file.

    The fd is in the cell when the call returns, so it is closed (with `close_desc`,
    or by the cell's collection) whatever exception comes after.
    """
    return retry(OPEN, lib.jn_desc_openat, (desc, lib.AT_FDCWD, path, flags | lib.O_CLOEXEC, mode), checkpoint, address)


class Stat:
    """What janus_net reads of fstat(2) and lstat(2): identity, type and permission bits, owner, size."""

    __slots__ = ("ctime_ns", "dev", "gid", "ino", "mode", "mtime_ns", "size", "uid")

    def __init__(
        self, dev: int, ino: int, mode: int, uid: int, gid: int, size: int = -1, mtime_ns: int = -1, ctime_ns: int = -1
    ) -> None:
        self.dev = dev
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns

    @property
    def is_socket(self) -> bool:
        return self.mode & lib.S_IFMT == lib.S_IFSOCK

    @property
    def is_regular(self) -> bool:
        return self.mode & lib.S_IFMT == lib.S_IFREG

    @property
    def kind(self) -> str:
        """What the file is, for messages: ``"a socket"``, ``"a regular file"``..."""
        return _FILE_KINDS.get(self.mode & lib.S_IFMT, "some other kind of file")

    @property
    def identity(self) -> tuple[int, int]:
        """(st_dev, st_ino): which file this is, whatever its name."""
        return (self.dev, self.ino)

    @property
    def version(self) -> tuple[int, int, int, int, int]:
        """(dev, ino, size, mtime_ns, ctime_ns): which file, as of which change (glibc's resolv.conf check).

        Equal versions mean the same content, short of a write that keeps the size within
        one timestamp tick and sets both times back: glibc trusts the same fields.
        """
        return (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)


_FILE_KINDS = {
    lib.S_IFSOCK: "a socket",
    lib.S_IFREG: "a regular file",
    lib.S_IFDIR: "a directory",
    lib.S_IFIFO: "a pipe or FIFO",
    lib.S_IFCHR: "a character device",
    lib.S_IFBLK: "a block device",
    lib.S_IFLNK: "a symbolic link",
}

FSTAT = Syscall(
    "fstat",
    {E.ENOMEM: SocketError.SystemResources},
    bugs={E.EBADF: OUR_FD, E.EFAULT: "the stat buffer is a struct janus_net allocated for the call"},
)


def fstat(fd: int, address: object = None, table: Syscall | None = None) -> Stat:
    """fstat(2); ``table`` as for `getsockopt_int`."""
    st = ffi.new("struct stat *")
    retry(FSTAT if table is None else table, lib.fstat, (fd, st), None, address)
    return _stat_of(st)


def _stat_of(st: Any) -> Stat:
    return Stat(
        int(st.st_dev), int(st.st_ino), int(st.st_mode), int(st.st_uid), int(st.st_gid), int(st.st_size),
        lib.jn_stat_mtime_ns(st), lib.jn_stat_ctime_ns(st),
    )  # fmt: skip


#: fstat on a descriptor janus_net did not make (see loop.NOT_ADOPTABLE).
ADOPT_FSTAT = Syscall(
    "fstat",
    {E.EBADF: NOT_ADOPTABLE, E.ENOMEM: SocketError.SystemResources, E.EOVERFLOW: SocketError.SystemResources},
    bugs={E.EFAULT: OUR_POINTER},
    label="fstat (adoption)",
)


# lstat and unlink look at and remove a path another process may change at any moment:
# every errno a racing process or a hostile directory can cause is a member, not a bug.
_PATH_ERRORS: Mapping[int, type[SocketError]] = {
    E.ENOENT: SocketError.FileNotFound,
    E.EACCES: SocketError.AccessDenied,
    E.EPERM: SocketError.AccessDenied,
    E.ENOTDIR: SocketError.NotDir,
    E.ELOOP: SocketError.SymLinkLoop,
    # ENAMETOOLONG: a path longer than PATH_MAX; a caller or a peer can hand one over.
    E.ENAMETOOLONG: SocketError.InvalidAddress,
    E.ENOMEM: SocketError.SystemResources,
    # EOVERFLOW: a 32-bit stat cannot hold the file's size or inode; janus_net builds 64-bit stat.
    E.EOVERFLOW: SocketError.SystemResources,
}

LSTAT = Syscall(
    "lstat", _PATH_ERRORS, bugs={E.EFAULT: "the path and the stat buffer are memory janus_net allocated for the call"}
)


def lstat(path: str | bytes, address: object = None) -> Stat:
    """lstat(2) of ``path``: what the name points at now (a final symlink is not followed).

    Raises `SocketError.FileNotFound` when nothing is there, as every other cause, typed.
    """
    st = ffi.new("struct stat *")
    retry(LSTAT, lib.lstat, (os_bytes(path), st), None, address)
    return _stat_of(st)


STAT = Syscall(
    "stat", _PATH_ERRORS, bugs={E.EFAULT: "the path and the stat buffer are memory janus_net allocated for the call"}
)


_new_uncleared = ffi.new_allocator(should_clear_after_alloc=False)


def stat_version(path: str | bytes, address: object = None) -> tuple[int, int, int, int, int]:
    """stat(2) of ``path`` (a final symlink followed) reduced to its `Stat.version`: what a per-lookup check needs.

    Raises `SocketError.FileNotFound` when nothing is there, as every other cause, typed.
    """
    st = _new_uncleared("struct stat *")  # the kernel fills it whole, or the call fails
    retry(STAT, lib.stat, (os_bytes(path), st), None, address)
    return (st.st_dev, st.st_ino, st.st_size, lib.jn_stat_mtime_ns(st), lib.jn_stat_ctime_ns(st))


UNLINK = Syscall(
    "unlink",
    {
        **_PATH_ERRORS,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # EBUSY: the path is a mount point; EISDIR: a directory took the socket's name.
        E.EBUSY: SocketError.AddressInUse,
        E.EISDIR: SocketError.AddressInUse,
    },
    bugs={E.EFAULT: "the path is a buffer janus_net encoded for the call"},
)


def unlink(path: str | bytes, address: object = None) -> None:
    """unlink(2) of ``path``; `SocketError.FileNotFound` when it is gone already."""
    retry(UNLINK, lib.unlink, (os_bytes(path),), None, address)


def os_bytes(path: str | bytes) -> bytes:
    """``path`` as the kernel takes a path or an argument: the file system encoding, surrogateescape, no NUL.

    As os.fsencode: a name read from the file system comes back as the same bytes.
    """
    raw = path if isinstance(path, bytes) else path.encode(_FS_ENCODING, "surrogateescape")
    if b"\0" in raw:
        raise ValueError(f"a path with a NUL byte cannot name a file: {path!r}")
    return raw


CHMOD = Syscall(
    "chmod",
    {
        E.EPERM: SocketError.AccessDenied,
        E.EACCES: SocketError.AccessDenied,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # ENOENT: no /proc mounted, so /proc/self/fd/N does not exist.
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EFAULT: "the /proc/self/fd path is text janus_net built for the call"},
)


def chmod_inode(path_fd: int, mode: int, address: object = None) -> None:
    """Set the mode of exactly the inode ``path_fd`` (an O_PATH descriptor) holds.

    chmod of the /proc/self/fd magic link reaches the inode itself, never a name that
    could have been swapped since the descriptor was opened (fchmod(2) refuses an O_PATH
    descriptor with EBADF; the magic link is the way, see open(2) on O_PATH).
    """
    retry(CHMOD, lib.chmod, (b"/proc/self/fd/%d" % path_fd, mode), None, address)


FCHOWN = Syscall(
    "fchown",
    {
        E.EPERM: SocketError.AccessDenied,
        E.EACCES: SocketError.AccessDenied,
        E.EROFS: SocketError.ReadOnlyFileSystem,
        # EINVAL: the uid or gid has no mapping in this process's user namespace.
        E.EINVAL: SocketError.AccessDenied,
        E.ENOMEM: SocketError.SystemResources,
        E.EDQUOT: SocketError.SystemResources,
    },
    bugs={
        E.EBADF: OUR_FD,
        E.EFAULT: "the empty path of AT_EMPTY_PATH is a constant janus_net passes",
    },
)


def fchown_inode(path_fd: int, uid: int | None, gid: int | None, address: object = None) -> None:
    """fchownat(path_fd, "", uid, gid, AT_EMPTY_PATH); None leaves that id unchanged."""
    keep_uid = ffi.cast("uid_t", -1 if uid is None else uid)
    keep_gid = ffi.cast("gid_t", -1 if gid is None else gid)
    retry(FCHOWN, lib.fchownat, (path_fd, b"", keep_uid, keep_gid, lib.JN_AT_EMPTY_PATH), None, address)


FLOCK = Syscall(
    "flock",
    # ENOLCK: the kernel's lock table is full.
    {E.ENOLCK: SocketError.SystemResources},
    bugs={E.EBADF: OUR_FD, E.EINVAL: "the lock operation is LOCK_EX (with LOCK_NB), a constant janus_net chose"},
)


def flock(fd: int, operation: int, checkpoint: Checkpoint | None = None, nonblocking: bool = False) -> int:
    """flock(2). With ``nonblocking`` (LOCK_NB in ``operation``), `WOULD_BLOCK` while another holds it."""
    return retry(FLOCK, lib.flock, (fd, operation), checkpoint, None, nonblocking)


# A dump arrives in buffers the kernel sizes up to 32 KiB; a larger one never truncates.
_DIAG_BUFFER = 65536

SOCK_DIAG = Syscall(
    "sock_diag",
    {
        # No sock_diag in this kernel (EAFNOSUPPORT, EPROTONOSUPPORT), or no unix_diag
        # handler loaded (the kernel answers ENOENT): janus_net cannot ask.
        E.EAFNOSUPPORT: SocketError.ProtocolUnsupportedBySystem,
        E.EPROTONOSUPPORT: SocketError.ProtocolUnsupportedBySystem,
        E.ENOENT: SocketError.ProtocolUnsupportedBySystem,
        # EACCES / EPERM: a seccomp filter or an LSM forbids netlink.
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOBUFS: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={
        E.EBADF: OUR_FD,
        E.EFAULT: "the request and reply buffers are memory janus_net allocated for the call",
        E.ENOTSOCK: "the descriptor is the netlink socket the same call just made",
        E.EINVAL: "a malformed request, which only jn_udiag_request could lay out",
    },
)


def unix_diag(
    socket_ino: int, want: tuple[int, int] | None, checkpoint: Checkpoint | None = None
) -> tuple[int, int] | None:
    """Ask the kernel (NETLINK_SOCK_DIAG, UDIAG_SHOW_VFS: sock_diag(7)) about bound unix sockets.

    ``socket_ino`` != 0: the file the socket with that inode number (fstat of the
    socket) is bound to, as ``(st_dev, st_ino & 0xffffffff)``, or None if it is bound
    to no file. ``socket_ino`` == 0 with ``want=(st_dev, st_ino)``: whether any
    socket of this network namespace is bound to that file (the match, or None).
    The kernel reports only the low 32 bits of the file's inode number.

    Raises:
        SocketError.ProtocolUnsupportedBySystem: the kernel cannot answer (no unix_diag).
        SocketError.AccessDenied: netlink is forbidden to this process.
        SocketError: ProcessFdQuotaExceeded, SystemResources... for the netlink socket.
    """
    if not platform.HAS_UNIX_DIAG:
        raise SocketError.ProtocolUnsupportedBySystem(
            None, "this platform has no sock_diag to list bound unix sockets", syscall=SOCK_DIAG.name
        )
    # The netlink socket lives in an owned cell from socket()'s return to the one close,
    # like every socket janus_net makes (janus_net._kernel.cells).
    desc = new_desc()
    try:
        socket(desc, lib.JN_AF_NETLINK, lib.SOCK_DGRAM, lib.JN_NETLINK_SOCK_DIAG, checkpoint, SOCK_DIAG)
        dump = socket_ino == 0
        request = ffi.new("char[]", lib.JN_UDIAG_REQUEST_SIZE)
        length = lib.jn_udiag_request(request, socket_ino, 1 if dump else 0)
        retry(SOCK_DIAG, lib.jn_desc_send, (desc, request, length, 0), checkpoint)
        want_dev, want_ino = want if want is not None else (0, 0)
        buf = ffi.new("char[]", _DIAG_BUFFER)
        vfs_ino = ffi.new("unsigned int *")
        vfs_dev = ffi.new("unsigned long long *")
        error = ffi.new("int *")
        while True:
            got = retry(SOCK_DIAG, lib.jn_desc_recv, (desc, buf, _DIAG_BUFFER, 0), checkpoint)
            found = lib.jn_udiag_scan(
                buf, got, want_ino & VFS_INO_MASK, want_dev, 0 if dump else 1, vfs_ino, vfs_dev, error
            )
            if found == lib.JN_UDIAG_FOUND:
                return int(vfs_dev[0]), int(vfs_ino[0])
            if found == lib.JN_UDIAG_ERROR:
                raise SOCK_DIAG.error(int(error[0]))
            if found == lib.JN_UDIAG_DONE or not dump or got == 0:
                return None
    finally:
        close_desc(desc)


# --- A small text file read whole: resolv.conf, hosts (janus_net._profiles.resolver_config)

OPEN_READ = Syscall(
    "open",
    {
        E.ENOENT: SocketError.FileNotFound,
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        # ENAMETOOLONG: a path a caller or an environment variable named, longer than PATH_MAX.
        E.ENAMETOOLONG: SocketError.InvalidAddress,
        # ENXIO / ENODEV: a device file whose driver is not there.
        E.ENXIO: SocketError.FileNotFound,
        E.ENODEV: SocketError.FileNotFound,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOMEM: SocketError.SystemResources,
        E.EOVERFLOW: SocketError.SystemResources,
        E.EFBIG: SocketError.SystemResources,
    },
    bugs={
        E.EBADF: "openat is given AT_FDCWD",
        E.EFAULT: "the path is a buffer janus_net encoded for the call",
        E.EINVAL: "the open flags are O_RDONLY, O_NONBLOCK and O_CLOEXEC, constants valid on every kernel",
    },
    label="open (small file)",
)

READ_FILE = Syscall(
    "read",
    {
        # EIO: the storage under the file failed; EISDIR cannot come (fstat said regular file).
        E.EIO: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EBADF: OUR_FD, E.EFAULT: OUR_POINTER},
    label="read (small file)",
)


def read_small_file(path: str | bytes, limit: int, checkpoint: Checkpoint | None = None) -> bytes:
    """The whole content of the regular file at ``path``, at most ``limit`` bytes (see `read_small_file_stat`)."""
    return read_small_file_stat(path, limit, checkpoint)[0]


def read_small_file_stat(path: str | bytes, limit: int, checkpoint: Checkpoint | None = None) -> tuple[bytes, Stat]:
    """The whole content of the regular file at ``path``, at most ``limit`` bytes, and the fstat of what was read.

    The `Stat` is the open file's own: its `Stat.version` names exactly the content
    returned (a later `stat` of the path that differs means the file changed since).

    Opened read-only, close-on-exec and non-blocking (a FIFO put where a
    configuration file belongs cannot make the open wait for a writer), checked to be a
    regular file by fstat, read to its end and closed, exactly once on every path: the
    descriptor lives in a cell from the open's return on.

    Raises:
        SocketError.FileNotFound / AccessDenied / NotDir / SymLinkLoop: the open's answer.
        SocketError.SystemResources: the file is larger than ``limit`` bytes (``.errno``
            EFBIG), or is not a regular file (``.errno`` EINVAL).
    """
    raw = os_bytes(path)
    desc = new_desc()
    try:
        text = path if isinstance(path, str) else path.decode(_FS_ENCODING, "surrogateescape")
        flags = lib.O_RDONLY | lib.O_NONBLOCK | lib.O_CLOEXEC
        fd = retry(OPEN_READ, lib.jn_desc_openat, (desc, lib.AT_FDCWD, raw, flags, 0), checkpoint, text)
        st = fstat(fd)
        if not st.is_regular:
            raise SocketError.SystemResources(
                E.EINVAL, f"{text!r} is {st.kind}, not a regular file", syscall="read", address=text
            )
        chunks: list[bytes] = []
        total = 0
        buf = ffi.new("char[]", 65536)
        while True:
            got = retry(READ_FILE, lib.read, (fd, buf, 65536), checkpoint)
            if got == 0:
                break
            total += got
            if total > limit:
                raise SocketError.SystemResources(
                    E.EFBIG, f"{text!r} is larger than {limit} bytes", syscall="read", address=text
                )
            chunks.append(ffi.unpack(buf, got))
            if got < 65536 and total >= st.size:
                break  # a regular file read short at its size is at its end: no read(2) for the 0
        return b"".join(chunks), st
    finally:
        close_desc(desc)
