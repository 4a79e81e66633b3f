"""Landlock: a `NetBind` the kernel enforces for the whole process (`NetBind.enforce`).

janus_net's own gate (`NetBind.authorize`) binds only code that goes through
janus_net. Landlock (Linux 5.13; network rules since ABI 4, Linux 6.7) moves the
rule into the kernel: after `enforce`, no code in the process -- the stdlib
``socket`` module, a C extension, a child process started later -- can bind a TCP
port the capability does not allow. The steps:

1. ask the kernel's Landlock ABI (LANDLOCK_CREATE_RULESET_VERSION); below
   `MINIMUM_ABI` raise `SocketError.OptionUnsupported`, having changed nothing;
2. refuse (OptionUnsupported, nothing changed) while other threads run, unless the
   kernel can restrict every thread at once (LANDLOCK_RESTRICT_SELF_TSYNC, ABI 8):
   ``landlock_restrict_self`` otherwise restricts only the calling thread;
3. create a ruleset that handles LANDLOCK_ACCESS_NET_BIND_TCP, add one
   LANDLOCK_RULE_NET_PORT rule per allowed port (port 0, an ephemeral port, only if
   the capability allows 0 explicitly);
4. PR_SET_NO_NEW_PRIVS, then ``landlock_restrict_self`` -- irreversible;
5. install a seccomp filter (`janus_net._policy.seccomp`) on every thread (SECCOMP_FILTER_FLAG_TSYNC),
   inherited by every child: Landlock's network rules cover IPPROTO_TCP only, so the
   filter refuses what would bind around them -- socket() of IPPROTO_MPTCP
   (EACCES), io_uring_setup (EPERM: an io_uring makes sockets without socket(2)),
   socketcall's SYS_SOCKET where the architecture has socketcall, and every syscall
   of a foreign ABI (compat, x32: EPERM). Once per process: a second enforcement
   stacks a ruleset, not a filter;
6. remember the enforced ports, so that an EACCES from a later TCP bind on a port
   they do not allow is reported as ``CapabilityDenied`` with ``.reason == "kernel"``,
   and janus_net's own binds refuse MPTCP before any syscall (`refuse_uncovered`);
7. write one `AuditRecord` (operation ``"enforce"``) to the capability's sink.

Not enforced by the kernel (and not claimed): UDP and other non-TCP binds, unix
socket paths and abstract names, outgoing connections (LANDLOCK_ACCESS_NET_CONNECT_TCP
is deliberately not handled), and listen() on an unbound TCP socket, which binds a
kernel-chosen port with no bind hook -- a filter cannot see whether a socket is
bound, and janus_net itself never listens before it binds. README "Kernel-enforced
capability" lists each gap with the test that shows it.
"""

from __future__ import annotations

import _thread  # the lock without the threading module (import time)
import errno
import os
import sys
import time
from collections.abc import Iterable

from janus_net._kernel import cells, confinement
from janus_net._policy.seccomp import filter_program
from janus_net._shim import ffi, lib
from janus_net._values.addresses import Address
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from janus_net.audit import Sink

#: The lowest Landlock ABI `enforce` accepts: 4, the first with network rules. Tests
#: raise it above what the kernel offers to see the "kernel without the rules" path.
MINIMUM_ABI = 4

#: The ABI that brought LANDLOCK_RESTRICT_SELF_TSYNC (restrict every thread at once).
_TSYNC_ABI = 8

_lock = _thread.allocate_lock()
# The TCP ports every enforced ruleset allows (stacked rulesets intersect); None: none enforced.
_allowed: frozenset[int] | None = None
# Whether this process (or the one it was forked from) installed the seccomp filter.
_filtered = False
# Protocols of TCP-serving sockets that Landlock's IPPROTO_TCP rules do not see.
_UNCOVERED = frozenset({lib.JN_IPPROTO_MPTCP, lib.JN_IPPROTO_SMC})


def abi() -> int:
    """The Landlock ABI the running kernel offers (an int; 0 without Landlock)."""
    return confinement.landlock_abi()


def enforced_ports() -> frozenset[int] | None:
    """The TCP ports the kernel still lets this process bind, or None if `enforce` never ran here."""
    return _allowed


def enforce(capability_id: str, ports: Iterable[int], audit: Sink | None) -> None:
    """Restrict every TCP bind of this process to ``ports``, in the kernel, for good.

    `NetBind.enforce` is the public door; see the module docstring for the steps.

    Raises:
        SocketError.OptionUnsupported: the kernel has no Landlock network rules (ABI
            below `MINIMUM_ABI`), no seccomp filters (or the shim does not know this
            architecture's audit arch), or other threads run and the kernel cannot
            restrict them all; nothing was changed. Also (after the ruleset holds)
            ESRCH: a thread with a seccomp filter of its own cannot take ours.
        SocketError.AccessDenied: the kernel refused no_new_privs, the restriction or the filter.
        SocketError.SystemResources: no memory, too many stacked Landlock domains, or
            seccomp filters over the kernel's instruction limit (the ruleset then holds).
        Any exception of the audit sink, after the restriction is in force.
    """
    allowed = frozenset(ports)
    offered = abi()
    if offered < MINIMUM_ABI:
        raise SocketError.OptionUnsupported(
            None,
            f"the kernel cannot enforce TCP bind rules: Landlock ABI {offered}, network rules need {MINIMUM_ABI}",
        )
    if not _filtered:
        _filter_available()  # OptionUnsupported, nothing changed, where the filter cannot be installed
    flags = lib.JN_LANDLOCK_RESTRICT_SELF_TSYNC if offered >= _TSYNC_ABI else 0
    if not flags:
        threads = _thread_count()
        if threads != 1:
            raise SocketError.OptionUnsupported(
                None,
                f"{threads} threads run, and this kernel (Landlock ABI {offered}) can restrict only the "
                "calling thread: call enforce() before starting threads",
            )
    sys.audit("janus_net.enforce", capability_id, tuple(sorted(allowed)))
    # One line: no line event between the lock's acquire and release, so an exception
    # landing here (a KeyboardInterrupt) cannot leave it held (docs/kernel-capability.md).
    with _lock: _restrict_and_remember(allowed, flags)  # noqa: E701 - one line on purpose  # fmt: skip
    if audit is not None:
        text = "landlock tcp-bind " + (",".join(str(p) for p in sorted(allowed)) or "none")
        from janus_net.audit import AuditRecord  # only a capability enforces; audit brings json, logging

        audit(AuditRecord(capability_id, "enforce", None, "allowed", text, time.time()))


def _restrict_and_remember(allowed: frozenset[int], flags: int) -> None:
    global _allowed, _filtered
    _restrict(allowed, flags)
    # Remembered before the filter: the ruleset holds from here on, whatever follows.
    _allowed = allowed if _allowed is None else _allowed & allowed
    if not _filtered:
        program = filter_program()
        confinement.seccomp_set_filter(lib.JN_SECCOMP_FILTER_FLAG_TSYNC, program.fprog)
        _filtered = True


def filtered() -> bool:
    """Whether `enforce` installed the seccomp filter in this process (or the one it was forked from)."""
    return _filtered


def _filter_available() -> None:
    if not lib.JN_HAS_SECCOMP:
        raise SocketError.OptionUnsupported(
            None,
            "this build cannot install the seccomp filter that closes Landlock's MPTCP gap (no seccomp(2) or an "
            "architecture the shim does not know)",
        )
    confinement.seccomp_action_available(lib.JN_SECCOMP_RET_ERRNO)


def refuse_uncovered(address: Address, mode: int, protocol: int) -> None:
    """CapabilityDenied (``.reason == "kernel"``) for a bind the enforced ruleset could not see.

    Once `enforce` ran, janus_net makes no IPPROTO_MPTCP or IPPROTO_SMC socket:
    Landlock's rules cover IPPROTO_TCP only, so such a socket would bind any port and
    serve TCP clients (the seccomp filter refuses its socket() for all code too; this
    says why, before any syscall).
    """
    if _allowed is None or protocol not in _UNCOVERED or not isinstance(address, (Ip4Address, Ip6Address)):
        return
    name = "IPPROTO_MPTCP" if protocol == lib.JN_IPPROTO_MPTCP else "IPPROTO_SMC"
    denied = SocketError.CapabilityDenied(
        None,
        f"an enforced capability refuses {name} sockets: Landlock's TCP bind rules do not cover them",
        syscall="socket",
        address=str(address),
    )
    denied.reason = "kernel"
    raise denied


def _restrict(ports: frozenset[int], flags: int) -> None:
    attr = ffi.new("struct jn_landlock_ruleset_attr *")
    attr.handled_access_net = lib.JN_LANDLOCK_ACCESS_NET_BIND_TCP
    cell = cells.new_desc()  # the ruleset fd lives in a cell, as every fd janus_net opens
    try:
        ruleset = confinement.landlock_create_ruleset(cell, attr, ffi.sizeof("struct jn_landlock_ruleset_attr"))
        rule = ffi.new("struct jn_landlock_net_port_attr *")
        rule.allowed_access = lib.JN_LANDLOCK_ACCESS_NET_BIND_TCP
        for port in sorted(ports):
            rule.port = port
            confinement.landlock_add_net_port_rule(ruleset, rule)
        confinement.set_no_new_privs()
        confinement.landlock_restrict_self(ruleset, flags)
    finally:
        cells.close_desc(cell)


def _thread_count() -> int:
    # Every kernel thread counts, not only Python's: a C library's worker would escape.
    # A thread that has just been joined may still be listed for a moment while it
    # exits, so an extra thread gets a short grace period before it counts.
    for _ in range(50):
        try:
            count = len(os.listdir("/proc/self/task"))
        except OSError:
            import threading  # here: only this fallback needs it (import time)

            return threading.active_count()
        if count == 1:
            return 1
        time.sleep(0.002)
    return count


def kernel_denial(error: SocketError, address: Address, mode: int, protocol: int) -> SocketError:
    """What an EACCES from bind means once `enforce` ran: ``CapabilityDenied`` if the ruleset caused it.

    A TCP bind to a port the enforced ruleset does not allow becomes
    ``CapabilityDenied`` (``.reason == "kernel"``); anything else (a port below 1024
    the ruleset allows but the process may not bind, a UDP bind) is returned as is.
    """
    allowed = _allowed
    if (
        allowed is None
        or error.errno != errno.EACCES
        or not isinstance(address, (Ip4Address, Ip6Address))
        or mode != lib.SOCK_STREAM
        or protocol not in (0, lib.IPPROTO_TCP)
        or address.port in allowed
    ):
        return error
    denied = SocketError.CapabilityDenied(
        errno.EACCES,
        f"the kernel (Landlock, enforced capability) does not allow binding TCP port {address.port}",
        syscall=error.syscall,
        address=error.address,
    )
    denied.reason = "kernel"
    return denied


__all__ = [
    "MINIMUM_ABI",
    "abi",
    "enforce",
    "enforced_ports",
    "filtered",
    "kernel_denial",
    "refuse_uncovered",
]
