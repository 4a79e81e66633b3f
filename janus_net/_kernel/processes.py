"""Processes: what ``janus-net run`` asks of the kernel to start, signal and reap its commands.

Its wake pipe (`pipe`, into cells), its copies of the passed sockets (`dup_above`),
starting a command (`spawn`: a native fork and exec of /bin/sh, with the sockets dup2'ed
in the child, its own process group, PR_SET_PDEATHSIG), signalling (`kill`) and reaping
(`waitpid`) it, reading a pipe (`read`), random bytes for its notify socket's name
(`random_bytes`), and `dup2` (the command's stdout pointed at /dev/null after a failed
write).

os.* would retry EINTR inside CPython, where no checkpoint runs; these go through
`retry` like every other call. ESRCH from kill and ECHILD from waitpid are answers,
not failures: the wrappers return them as values (`kill` False, `waitpid` None).
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned
from collections.abc import Iterable, Mapping

from janus_net._kernel.files import os_bytes
from janus_net._kernel.loop import OUR_FD, OUR_POINTER, WOULD_BLOCK, Syscall, retry
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


RANDOM = Syscall(
    "getrandom",
    # ENOSYS: a kernel older than getrandom(2) (Linux 3.17).
    {E.ENOSYS: SocketError.OptionUnsupported},
    bugs={
        E.EFAULT: OUR_POINTER,
        E.EINVAL: "the flags are 0 (getrandom) and the length at most 256 (getentropy)",
    },
)


def random_bytes(count: int) -> bytes:
    """``count`` (at most 256) random bytes from the kernel (getrandom, or getentropy)."""
    buf = ffi.new("char[]", count)
    got = retry(RANDOM, lib.jn_random, (buf, count))
    return ffi.unpack(buf, got)


PIPE = Syscall(
    "pipe",
    {
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        # ENFILE: the system's file table, or the user's pipe buffer quota, is full.
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
    },
    bugs={
        E.EFAULT: "the two ints are on the native call's own stack",
        E.EINVAL: "the flags are O_CLOEXEC and O_NONBLOCK, constants from the compiler",
    },
)


def pipe(read_end: Any, write_end: Any) -> tuple[int, int]:
    """A close-on-exec, non-blocking pipe into the cells ``read_end`` and ``write_end``; its two fds."""
    retry(PIPE, lib.jn_desc_pipe, (read_end, write_end))
    return int(read_end.fd), int(write_end.fd)


DUP_ABOVE = Syscall(
    "fcntl",
    {
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        # EINVAL: the lowest number asked (3 + the number of sockets) is at or above
        # RLIMIT_NOFILE: the sockets to pass do not fit under the limit.
        E.EINVAL: SocketError.ProcessFdQuotaExceeded,
    },
    bugs={E.EBADF: OUR_FD},
    label="fcntl (F_DUPFD_CLOEXEC)",
)


def dup_above(into: Any, fd: int, low: int) -> int:
    """fcntl(fd, F_DUPFD_CLOEXEC, low) into the cell ``into``: a close-on-exec copy numbered ``low`` or more."""
    return retry(DUP_ABOVE, lib.jn_desc_dup_above, (into, fd, low))


SPAWN = Syscall(
    "spawn",
    {
        # The program is /bin/sh: these are its file's answers (sh itself reports
        # COMMAND's own, as 127 and 126).
        E.ENOENT: SocketError.FileNotFound,
        E.ENOTDIR: SocketError.NotDir,
        E.ELOOP: SocketError.SymLinkLoop,
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        # ENOEXEC / ETXTBSY: the file is there but cannot be run (a bad format, open for writing).
        E.ENOEXEC: SocketError.AccessDenied,
        E.ETXTBSY: SocketError.AccessDenied,
        # EAGAIN: RLIMIT_NPROC or the pid limit of a cgroup.
        E.EAGAIN: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
        # E2BIG: COMMAND's arguments and the environment exceed the kernel's limit (ARG_MAX).
        E.E2BIG: SocketError.SystemResources,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
    },
    bugs={
        E.EBADF: "the dup2 sources are the copies janus-net run holds open in its cells for the whole run",
        E.EFAULT: "argv and envp are NULL-terminated arrays janus_net built for the call",
        E.EINVAL: "pipe2 takes O_CLOEXEC; the report pipe moves above the dup2 targets, all below the sources and "
        "RLIMIT_NOFILE; the signal numbers come from the signal module",
    },
)


def spawn(
    path: str,
    argv: list[str],
    env: Mapping[str, str],
    dups: list[tuple[int, int]],
    defaults: Iterable[int],
    parent_death: int = 0,
) -> int:
    """fork and execve(path, argv, env) (native: ``jn_spawn``): the child's pid.

    In the child, each ``(source, target)`` of ``dups`` is dup2'ed (its copy is not
    close-on-exec), the signal mask is empty, each signal of ``defaults`` has its
    default action, the child leads its own process group, and with ``parent_death``
    (a signal number) PR_SET_PDEATHSIG sends it that signal when this thread dies
    (a child whose parent died before that is set never runs the program). An exec
    that fails raises its errno's error, as posix_spawn does.
    """
    keep = [ffi.new("char[]", os_bytes(text)) for text in argv]
    keep_env = [ffi.new("char[]", os_bytes(f"{key}={value}")) for key, value in env.items()]
    argv_c = ffi.new("char *[]", [*keep, ffi.NULL])
    env_c = ffi.new("char *[]", [*keep_env, ffi.NULL])
    sources = ffi.new("int[]", [source for source, _ in dups] or [0])
    targets = ffi.new("int[]", [target for _, target in dups] or [0])
    signals = list(defaults)
    sigdef = ffi.new("int[]", signals or [0])
    pid = ffi.new("pid_t *")
    args = (pid, os_bytes(path), argv_c, env_c, sources, targets, len(dups), sigdef, len(signals), parent_death)
    retry(SPAWN, lib.jn_spawn, args, None, path)
    return int(pid[0])


KILL = Syscall(
    "kill",
    # EPERM: the command changed its user (a setuid program) and may no longer be signalled.
    {E.EPERM: SocketError.AccessDenied},
    bugs={E.EINVAL: "the signal is SIGTERM, SIGKILL or a stop signal just received: numbers from the signal module"},
)


def kill(pid: int, signum: int) -> bool:
    """kill(pid, signum); False when no such process is left (ESRCH)."""
    try:
        retry(KILL, lib.kill, (pid, signum))
    except SocketError.Unexpected as e:
        if e.errno == E.ESRCH:
            return False
        raise
    return True


WAITPID = Syscall(
    "waitpid",
    {},
    bugs={
        E.EINVAL: "the options are WNOHANG, a constant from the compiler",
        E.EFAULT: "the status is an int janus_net allocated for the call",
    },
)


def waitpid(pid: int, options: int) -> tuple[int, int] | None:
    """waitpid(pid, &status, options): (pid, wait status); (0, 0) with WNOHANG while none ended; None: no children."""
    status = ffi.new("int *")
    try:
        got = retry(WAITPID, lib.waitpid, (pid, status, options))
    except SocketError.Unexpected as e:
        if e.errno == E.ECHILD:
            return None
        raise
    return got, int(status[0])


READ = Syscall(
    "read",
    {},
    bugs={
        E.EBADF: OUR_FD,
        E.EFAULT: OUR_POINTER,
        E.EINVAL: "the descriptor is a pipe janus_net made, readable into any buffer",
    },
)


def read(fd: int, size: int) -> bytes | None:
    """read(2) of up to ``size`` bytes from a non-blocking descriptor; None when nothing is there."""
    buf = ffi.new("char[]", size)
    got = retry(READ, lib.read, (fd, buf, size), None, None, True)
    if got == WOULD_BLOCK:
        return None
    return ffi.unpack(buf, got)


DUP2 = Syscall(
    "dup2",
    # EBUSY: Linux's answer when another thread is opening a file at the target number (dup2(2)).
    {E.EBUSY: SocketError.SystemResources},
    bugs={
        E.EBADF: "the source is the descriptor the same call just opened, the target 1 (stdout)",
        E.EINVAL: "dup2 takes no flags; only dup3 answers EINVAL",
    },
)


def dup2(fd: int, target: int) -> None:
    """dup2(fd, target): ``target`` now names what ``fd`` names."""
    retry(DUP2, lib.dup2, (fd, target))
