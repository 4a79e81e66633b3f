"""What the kernel confines a process to, and how janus_net confines it further.

`NetBind.enforce` (janus_net._policy.landlock) makes the kernel enforce the capability: a
Landlock ruleset (`landlock_*`), a seccomp filter beside it (`seccomp_*`), and
no_new_privs first (`set_no_new_privs`: prctl). janus_net._policy.netns makes a socket inside
another network namespace (`open_namespace`, `namespace_type`, `setns`). And the
limit every received descriptor is counted against: RLIMIT_NOFILE (`nofile_limits`).

The Landlock ABI is a fact the running kernel must be asked for, and `platform` (the
facts, below the door) asks the kernel nothing: this module hands its question up to
`platform.landlock_abi` when it is imported (DESIGN §2: no arrow from facts into the door).
"""

from __future__ import annotations

import errno as E  # noqa: N812 - E.EBADF keeps the tables' rows short and aligned

from janus_net import platform
from janus_net._kernel.loop import Checkpoint, Syscall, retry
from janus_net._shim import ffi, lib
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


# Landlock: https://docs.kernel.org/userspace-api/landlock.html (the ABI versions and
# what each adds); landlock_create_ruleset(2) and friends for the errnos.
LANDLOCK_CREATE_RULESET = Syscall(
    "landlock_create_ruleset",
    {
        # EOPNOTSUPP: built in but disabled at boot (lsm=); ENOSYS: not built in at all.
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
        E.ENOSYS: SocketError.OptionUnsupported,
        E.ENOMEM: SocketError.SystemResources,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
    },
    bugs={
        E.EINVAL: "an unknown flag or access bit: the ABI is asked first, so only a bug sends one",
        E.E2BIG: "the attribute size is ours, taken from the compiler's struct layout",
        E.EFAULT: "the attribute pointer is a struct janus_net allocated",
        E.ENOMSG: "an empty access mask: we always handle LANDLOCK_ACCESS_NET_BIND_TCP",
    },
)


def landlock_abi() -> int:
    """The Landlock ABI version the running kernel offers; 0 without Landlock (ENOSYS, EOPNOTSUPP)."""
    if not lib.JN_HAS_LANDLOCK:
        return 0
    try:
        return retry(
            LANDLOCK_CREATE_RULESET,
            lib.jn_landlock_create_ruleset,
            (ffi.NULL, ffi.NULL, 0, lib.JN_LANDLOCK_CREATE_RULESET_VERSION),  # no cell: no fd is made
        )
    except SocketError.OptionUnsupported:
        return 0


# The public question `janus_net.platform.landlock_abi()` is this door's: handed up to the
# facts module, which never imports the door (DESIGN §2: no arrow from facts into the door).
platform.hand_up(landlock_abi)


def landlock_create_ruleset(desc: Any, attr: Any, size: int) -> int:
    """landlock_create_ruleset(attr, size, 0) into the cell ``desc``: a new ruleset fd (close-on-exec)."""
    return retry(LANDLOCK_CREATE_RULESET, lib.jn_landlock_create_ruleset, (desc, attr, size, 0))


LANDLOCK_ADD_RULE = Syscall(
    "landlock_add_rule",
    {E.ENOMEM: SocketError.SystemResources},
    bugs={
        E.EINVAL: "a port above 65535 or an unhandled access bit: NetBind checks ports first",
        E.ENOMSG: "an empty access mask: every rule allows LANDLOCK_ACCESS_NET_BIND_TCP",
        E.EBADF: "the ruleset descriptor was made by the same call just before",
        E.EBADFD: "the descriptor is the Landlock ruleset the same call created",
        E.EFAULT: "the rule pointer is a struct janus_net allocated",
        E.EPERM: "the ruleset handles the access right the rule names, always",
        E.EAFNOSUPPORT: "network rules are only added after the ABI said they exist",
    },
)


def landlock_add_net_port_rule(ruleset: int, attr: Any) -> None:
    """landlock_add_rule(ruleset, LANDLOCK_RULE_NET_PORT, attr, 0)."""
    retry(LANDLOCK_ADD_RULE, lib.jn_landlock_add_net_port_rule, (ruleset, attr))


LANDLOCK_RESTRICT_SELF = Syscall(
    "landlock_restrict_self",
    {
        # EPERM: neither no_new_privs nor CAP_SYS_ADMIN (a seccomp filter may also refuse prctl).
        E.EPERM: SocketError.AccessDenied,
        # E2BIG: the thread already has the maximum of stacked Landlock domains (16).
        E.E2BIG: SocketError.SystemResources,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={
        E.EINVAL: "flags are 0 or LANDLOCK_RESTRICT_SELF_TSYNC, the latter only on ABI 8",
        E.EBADF: "the ruleset descriptor was made by the same call just before",
        E.EBADFD: "the descriptor is the Landlock ruleset the same call created",
    },
)


def landlock_restrict_self(ruleset: int, flags: int) -> None:
    """landlock_restrict_self(ruleset, flags): irreversible for this thread and what it starts."""
    retry(LANDLOCK_RESTRICT_SELF, lib.jn_landlock_restrict_self, (ruleset, flags))


# seccomp(2) (https://man7.org/linux/man-pages/man2/seccomp.2.html), for the filter
# NetBind.enforce installs beside the Landlock ruleset.
SECCOMP_ACTION_AVAIL = Syscall(
    "seccomp",
    {
        # EINVAL: a kernel built without seccomp filters (every operation is EINVAL);
        # ENOSYS: no seccomp(2) at all; EOPNOTSUPP: SECCOMP_RET_ERRNO unknown.
        E.EINVAL: SocketError.OptionUnsupported,
        E.ENOSYS: SocketError.OptionUnsupported,
        E.EOPNOTSUPP: SocketError.OptionUnsupported,
    },
    bugs={E.EFAULT: "the action is an unsigned int janus_net passes by address"},
    label="seccomp (action available)",
)


def seccomp_action_available(action: int) -> None:
    """seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action): OptionUnsupported unless the kernel has filters and ``action``."""
    retry(SECCOMP_ACTION_AVAIL, lib.jn_seccomp_action_avail, (action,))


SECCOMP_SET_FILTER = Syscall(
    "seccomp",
    {
        # EACCES: neither no_new_privs nor CAP_SYS_ADMIN (enforce sets no_new_privs first).
        E.EACCES: SocketError.AccessDenied,
        # ENOMEM: the filters of the thread would exceed the kernel's 32768 instructions, or memory.
        E.ENOMEM: SocketError.SystemResources,
        # ESRCH: another thread cannot take the filter (it runs a filter of its own).
        E.ESRCH: SocketError.OptionUnsupported,
    },
    bugs={
        E.EINVAL: "the program is built from the kernel's own constants, and TSYNC/TSYNC_ESRCH exist on every "
        "kernel with Landlock network rules (6.7)",
        E.EFAULT: "the program and its instructions are memory janus_net allocated",
    },
    label="seccomp (set filter)",
)


def seccomp_set_filter(flags: int, program: Any) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): irreversible for the threads it reaches and their children."""
    retry(SECCOMP_SET_FILTER, lib.jn_seccomp_set_filter, (flags, program))


PRCTL = Syscall(
    "prctl",
    {E.EPERM: SocketError.AccessDenied},
    bugs={
        E.EINVAL: "PR_SET_NO_NEW_PRIVS with 1 and zero arguments is valid since Linux 3.5",
        E.EFAULT: "PR_SET_NO_NEW_PRIVS takes no pointer at all",
    },
)


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again (irreversible)."""
    retry(PRCTL, lib.jn_set_no_new_privs, ())


NS_OPEN = Syscall(
    "open",
    {
        E.ENOENT: SocketError.FileNotFound,
        E.EACCES: SocketError.AccessDenied,
        E.EPERM: SocketError.AccessDenied,
        E.ELOOP: SocketError.SymLinkLoop,
        E.ENOTDIR: SocketError.NotDir,
        # ENAMETOOLONG: the path names no namespace file; ENXIO: a unix socket file or a
        # device without a driver; EISDIR cannot happen read-only but is the same story.
        E.ENAMETOOLONG: SocketError.InvalidAddress,
        E.ENXIO: SocketError.InvalidAddress,
        E.ENODEV: SocketError.InvalidAddress,
        E.EISDIR: SocketError.InvalidAddress,
        E.EMFILE: SocketError.ProcessFdQuotaExceeded,
        E.ENFILE: SocketError.SystemFdQuotaExceeded,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EFAULT: "the path is a bytes object cffi passes as a valid pointer"},
    label="open (namespace file)",
)


def open_namespace(path: bytes, address: object = None) -> int:
    """open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) of a namespace file."""
    return retry(NS_OPEN, lib.jn_open_namespace, (path,), None, address)


# ioctl_ns(2): NS_GET_NSTYPE says which kind of namespace a descriptor refers to.
NS_GET_NSTYPE = Syscall(
    "ioctl",
    # ENOTTY/EINVAL: the file is not a namespace file at all.
    {E.ENOTTY: SocketError.InvalidAddress, E.EINVAL: SocketError.InvalidAddress},
    bugs={
        E.EBADF: "the descriptor was opened by the same helper just before",
        E.EFAULT: "NS_GET_NSTYPE takes no pointer argument at all",
    },
)


def namespace_type(fd: int, address: object = None) -> int:
    """ioctl(fd, NS_GET_NSTYPE): the CLONE_NEW* kind of the namespace ``fd`` refers to."""
    return retry(NS_GET_NSTYPE, lib.jn_ns_get_nstype, (fd,), None, address)


SETNS = Syscall(
    "setns",
    {
        # EINVAL: not a namespace, or a namespace of another kind than CLONE_NEWNET.
        E.EINVAL: SocketError.InvalidAddress,
        # EPERM: no CAP_SYS_ADMIN over the namespace's owning user namespace.
        E.EPERM: SocketError.AccessDenied,
        E.ENOMEM: SocketError.SystemResources,
    },
    bugs={E.EBADF: "the namespace descriptor was opened by the same helper just before"},
)


def setns(fd: int, nstype: int, address: object = None) -> None:
    """setns(fd, nstype): the calling thread enters the namespace."""
    retry(SETNS, lib.jn_setns, (fd, nstype), None, address)


def nofile_limit(checkpoint: Checkpoint | None = None) -> int:
    """The soft RLIMIT_NOFILE: how many descriptors this process may hold (getrlimit(2))."""
    return nofile_limits(checkpoint)[0]


GETRLIMIT = Syscall(
    "getrlimit",
    {},
    bugs={
        E.EFAULT: "the struct rlimit is memory janus_net allocated for the call",
        E.EINVAL: "the resource is the compiler's RLIMIT_NOFILE",
    },
)


def nofile_limits(checkpoint: Checkpoint | None = None) -> tuple[int, int]:
    """RLIMIT_NOFILE's soft and hard limits (RLIM_INFINITY reads as the largest rlim_t)."""
    limit = ffi.new("struct rlimit *")
    retry(GETRLIMIT, lib.getrlimit, (lib.RLIMIT_NOFILE, limit), checkpoint)
    return int(limit.rlim_cur), int(limit.rlim_max)
