"""The seccomp filter `NetBind.enforce` installs beside its Landlock ruleset: what Landlock cannot see.

Landlock's network rules cover IPPROTO_TCP only. The filter refuses what would bind
around them: socket() of IPPROTO_MPTCP or IPPROTO_SMC and of AF_SMC (EACCES),
io_uring_setup (EPERM: an io_uring makes sockets without socket(2)), socketcall's
SYS_SOCKET where the architecture has socketcall, and every syscall of a foreign ABI
(compat, x32: EPERM). The program is classic BPF built from the shim's constants
(native/linux_seccomp_h.py); `janus_net._policy.landlock` installs it.
"""

from __future__ import annotations

import errno

from janus_net._shim import ffi, lib

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


class Program:
    """A classic BPF program for seccomp: ``fprog`` (a ``struct sock_fprog *``) and the instructions it points at."""

    __slots__ = ("fprog", "instructions")

    def __init__(self, instructions: list[tuple[int, int, int, int]]) -> None:
        self.instructions: Any = ffi.new("struct sock_filter[]", len(instructions))
        for slot, (code, jt, jf, k) in enumerate(instructions):
            item = self.instructions[slot]
            item.code, item.jt, item.jf, item.k = code, jt, jf, k
        self.fprog: Any = ffi.new("struct sock_fprog *")
        self.fprog.len = len(instructions)
        self.fprog.filter = self.instructions

    def __len__(self) -> int:
        return int(self.fprog.len)

    def __getitem__(self, slot: int) -> tuple[int, int, int, int]:
        item = self.instructions[slot]
        return int(item.code), int(item.jt), int(item.jf), int(item.k)


def filter_program() -> Program:
    """The seccomp program `enforce` installs, from the shim's constants (native/linux_seccomp_h.py).

    In order: a syscall of another architecture's ABI (the audit arch differs, or an
    x32 number on x86_64) fails with EPERM, since its numbers would bypass the rest;
    socket(AF_INET or AF_INET6, any type, IPPROTO_MPTCP or IPPROTO_SMC) and
    socket(AF_SMC, ...) fail with EACCES (both serve TCP clients from sockets that are
    not IPPROTO_TCP, which Landlock's rules do not see);
    io_uring_setup fails with EPERM; where the architecture multiplexes through
    socketcall, its SYS_SOCKET fails with EACCES (the protocol lies in memory the
    filter cannot read); everything else is allowed.
    """
    ld = lib.JN_BPF_LD | lib.JN_BPF_W | lib.JN_BPF_ABS
    jeq = lib.JN_BPF_JMP | lib.JN_BPF_JEQ | lib.JN_BPF_K
    jge = lib.JN_BPF_JMP | lib.JN_BPF_JGE | lib.JN_BPF_K
    ret = lib.JN_BPF_RET | lib.JN_BPF_K
    allow = lib.JN_SECCOMP_RET_ALLOW
    data = lib.JN_SECCOMP_RET_DATA
    # (opcode, k, label when true, label when false); None: the next instruction.
    code: list[tuple[str, int, int, str | None, str | None]] = []

    def op(label: str, opcode: int, k: int, true: str | None = None, false: str | None = None) -> None:
        code.append((label, opcode, k, true, false))

    op("", ld, lib.JN_SECCOMP_DATA_ARCH)
    op("", jeq, lib.JN_SECCOMP_AUDIT_ARCH, None, "foreign")
    op("", ld, lib.JN_SECCOMP_DATA_NR)
    if lib.JN_SECCOMP_X32_SYSCALL_BIT:
        op("", jge, lib.JN_SECCOMP_X32_SYSCALL_BIT, "foreign", None)
    if lib.JN_SECCOMP_NR_SOCKET >= 0:
        op("", jeq, lib.JN_SECCOMP_NR_SOCKET, "socket", None)
    if lib.JN_SECCOMP_NR_IO_URING_SETUP >= 0:
        op("", jeq, lib.JN_SECCOMP_NR_IO_URING_SETUP, "eperm", None)
    if lib.JN_SECCOMP_NR_SOCKETCALL >= 0:
        op("", jeq, lib.JN_SECCOMP_NR_SOCKETCALL, "socketcall", None)
    op("", ret, allow)
    op("socket", ld, lib.JN_SECCOMP_DATA_ARG0_LO)  # the family
    op("", jeq, lib.JN_AF_SMC, "eacces", None)
    op("", jeq, lib.AF_INET, "protocol", None)
    op("", jeq, lib.AF_INET6, "protocol", "allow")
    op("protocol", ld, lib.JN_SECCOMP_DATA_ARG2_LO)
    op("", jeq, lib.JN_IPPROTO_MPTCP, "eacces", None)
    op("", jeq, lib.JN_IPPROTO_SMC, "eacces", "allow")
    if lib.JN_SECCOMP_NR_SOCKETCALL >= 0:
        op("socketcall", ld, lib.JN_SECCOMP_DATA_ARG0_LO)  # the multiplexed call
        op("", jeq, lib.JN_SECCOMP_SYS_SOCKET, "eacces", "allow")
    op("allow", ret, allow)
    op("eacces", ret, lib.JN_SECCOMP_RET_ERRNO | (errno.EACCES & data))
    op("eperm", ret, lib.JN_SECCOMP_RET_ERRNO | (errno.EPERM & data))
    op("foreign", ret, lib.JN_SECCOMP_RET_ERRNO | (errno.EPERM & data))
    where = {label: slot for slot, (label, *_rest) in enumerate(code) if label}

    def jump(slot: int, label: str | None) -> int:
        return 0 if label is None else where[label] - slot - 1  # BPF jumps count from the next instruction

    return Program([(opcode, jump(i, t), jump(i, f), k) for i, (_, opcode, k, t, f) in enumerate(code)])
