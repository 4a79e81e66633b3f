"""The listen/bind step sequence through the native fast path (DESIGN §2, §6).

`run` performs socket -> options -> sockaddr -> bind -> listen -> getsockname with
``lib.jn_steps`` (native/jn_steps.py), which makes the raw calls in C and stops at
the first failure. Everything else stays in Python, under `syscalls`' rules:

* **Errors.** EINTR runs the checkpoint and resumes at the step that failed; any
  other errno is mapped through that step's table (SOCKET, SETSOCKOPT, BIND_IP or
  BIND_UNIX, LISTEN, GETSOCKNAME): the same member as on the plain path.
* **The fault seam.** While `janus_net.testing.fail`/`hold` has armed any of those
  tables, each step runs alone through `syscalls.retry` with its own table, so the
  seam sees the same names, counts and rows as on the plain path (the single step is
  still the C function, so the native calls are what the seam wraps).
* **Checkpoints.** Without a context (:core) the whole sequence is one C call.
  With a `Context` whose class overrides ``check()``, the sequence is cut at the
  five checkpoints of DESIGN §6 and ``check()`` is called from Python at each, so
  it gets exactly its five calls (plus one per EINTR), in order: (1) before socket,
  (2) between socket and options, (3) between options and sockaddr, (4) between
  sockaddr and bind, (5) between bind and listen. A stock `Context` (its class
  keeps `Context.check`) has its state read natively at checkpoints 2-5, as DESIGN
  §2 allows: ``check()`` runs at (1), then the sequence is one C call that compares
  the clock with the context's deadline at each later checkpoint and stops there
  once it has passed (then ``check()`` raises the Timeout). Its cancelled flag can
  change during that call only by another thread's ``cancel()`` (a signal handler
  runs between bytecodes, not inside C), which is then ordered after the sequence,
  exactly as if it had come after checkpoint 5: the call succeeds and the next
  blocking call sees it.
* **The fd.** C stores it in the owned cell ``io.desc`` (`janus_net._kernel.cells`) as
  soon as socket() returns, before anything else can happen, so an exception at any
  later point (a kernel error, a checkpoint's Timeout, a KeyboardInterrupt) finds it
  there. `run` closes the cell before propagating; after `run` returns, the cell is
  the caller's to hand to its owner (or to close with `discard`).

Which requests take this path is decided by `plan_for`: IP and abstract unix
addresses on platforms with SOCK_CLOEXEC. A unix socket *file* (fchmod before bind,
stale-file removal after AddressInUse, recording the inode right after bind) and
the SOCK_CLOEXEC emulation keep the plain path: their Python steps sit between
every pair of native ones, so there is nothing to gain.
"""

from __future__ import annotations

from janus_net import platform
from janus_net._kernel import cells, loop, socket_options, sockets, step_sequence
from janus_net._policy.context import Context
from janus_net._profiles.option_checks import Options
from janus_net._profiles.socket_options import setsockopt_steps
from janus_net._shim import ffi, lib
from janus_net._values.addresses import Address
from janus_net._values.caches import bounded_put
from janus_net._values.options import OPTIONS
from janus_net._values.reported import reported
from janus_net._values.unix import UnixAddress

TYPE_CHECKING = False  # `typing` only for the checker (import time, docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

_PLAN_P = ffi.typeof("struct jn_steps_plan *")
_IO_P = ffi.typeof("struct jn_steps_io *")


class Plan:
    """What the C sequence needs for one (address family, options): built once, shared.

    Attributes:
        struct: the ``struct jn_steps_plan *`` (read-only for C; safe across threads).
        tables: the errno table of each step by index; None for a skipped listen.
        options: how many setsockopt steps there are (n): socket is step 0, the
            options 1..n, bind n+1, listen n+2, getsockname n+3, the end n+4.
        listens: whether the sequence has a listen step.
    """

    __slots__ = ("bind_step", "end", "listens", "options", "struct", "tables")

    def __init__(self, family: int, opts: Options) -> None:
        sockopts = [(level, name, value) for _option, level, name, value in setsockopt_steps(family, opts)]
        if len(sockopts) > lib.JN_STEPS_MAX_OPTS:
            raise AssertionError("more socket options than jn_steps_plan holds")  # a bug: grow the C array
        struct = ffi.new(_PLAN_P)
        struct.family = family
        struct.type = int(opts.mode) | platform.SOCKET_TYPE_FLAGS
        struct.protocol = opts.protocol
        struct.backlog = opts.backlog if opts.kind == "listen" else -1
        struct.nopts = len(sockopts)
        for i, (level, name, value) in enumerate(sockopts):
            assert isinstance(value, int)  # `plan_for` sends every other option to the plain path
            slot = struct.opts[i]
            slot.level, slot.name, slot.value = level, name, value
        n = len(sockopts)
        self.struct = struct
        self.options = n
        self.listens = opts.kind == "listen"
        self.bind_step = n + 1
        self.end = n + 4
        bind_table = sockets.BIND_UNIX if family == lib.AF_UNIX else sockets.BIND_IP
        self.tables: tuple[loop.Syscall | None, ...] = (
            sockets.SOCKET,
            *(socket_options.SETSOCKOPT,) * n,
            bind_table,
            sockets.LISTEN if self.listens else None,
            sockets.GETSOCKNAME,
        )


#: The fields of the options the native sequence cannot take: a step of its own (a
#: namespace, a unix socket file, steering after listen), or a setsockopt with a
#: buffer or with the DESIGN §16 errno table (its messages name the keyword).
_PLAIN_ONLY = tuple(
    o.field
    for o in OPTIONS
    if o.step not in ("socket", "listen", "setsockopt")
    or (o.step == "setsockopt" and (o.errors != "plain" or o.value == "name"))
)


def _plain_only(opts: Options) -> bool:
    for field in _PLAIN_ONLY:
        value = getattr(opts, field)
        if value is not None and value is not False:
            return True
    return False


# Plans by (family, options). Options values are few (the defaults are one shared
# object), so the cache stays small; it is bounded all the same. The last plan per
# family is also kept by the identity of its Options, so the usual call (the shared
# default options) skips hashing the options record.
_PLANS: dict[tuple[int, Options], Plan] = {}
_PLANS_MAX = 64
_LAST: dict[int, tuple[Options, Plan]] = {}


def plan_for(addr: Address, opts: Options) -> Plan | None:
    """The native plan for this request, or None when it must take the plain path."""
    family = addr.family
    last = _LAST.get(family)
    if last is not None and last[0] is opts and type(addr) is not UnixAddress and platform.HAS_SOCK_CLOEXEC:
        return last[1]
    if not platform.HAS_SOCK_CLOEXEC or _plain_only(opts):
        return None  # the SOCK_CLOEXEC emulation, and the options above, keep the plain path
    if isinstance(addr, UnixAddress) and not addr.abstract:
        return None
    key = (family, opts)
    plan = _PLANS.get(key)
    if plan is None:
        plan = Plan(family, opts)
        bounded_put(_PLANS, _PLANS_MAX, key, plan)
    _LAST[family] = (opts, plan)
    return plan


def new_io(desc: Any) -> Any:
    """A fresh ``struct jn_steps_io *`` whose new fd goes into the owned cell ``desc``.

    The caller keeps ``desc`` (and with it the only reference that keeps the cell
    alive): ``io.desc`` is a plain pointer.
    """
    io = ffi.new(_IO_P)
    io.desc = desc
    return io


def discard(io: Any) -> None:
    """Close the fd in ``io``'s cell, if any: the cell's claim-once close (at most one per fd)."""
    cells.close_desc(io.desc)


def run(plan: Plan, io: Any, addr: Address, ctx: Context | None = None) -> None:
    """Make, configure, bind (and listen on) a socket for ``addr``; its fd ends in the cell ``io.desc``.

    On return ``io.desc.fd`` is the new socket and ``io.name``/``io.namelen`` hold what
    getsockname said (see `bound_address`). Call it inside the ``try`` whose
    ``except`` calls `discard`: an interrupt between this function's ``return`` and
    the caller's next line finds the fd in ``io`` and nowhere else.

    Args:
        plan: from `plan_for` (never None here).
        io: from `new_io`, its cell empty.
        addr: the address to bind; its sockaddr is encoded (once, it keeps it).
        ctx: the :service profile's context: ``ctx.check()`` at the five
            checkpoints and on every EINTR (see the module's docstring).

    Raises:
        SocketError: the member the failed step's table gives, after the socket (if
            made) was closed. Whatever ``ctx.check()`` raises, likewise after closing.
    """
    try:  # from the start: the fd is in the cell the moment socket() returns
        if ctx is None:
            # :core, one C call (here, not in _run: one frame less per listen). The
            # sockaddr is encoded first: no checkpoint can tell.
            encoded = addr.sockaddr
            step_sequence.steps(plan.tables, plan.struct, io, encoded.pointer, encoded.length, 0, plan.end, None, addr)
        else:
            _run(plan, io, addr, ctx)
    except BaseException:
        discard(io)
        raise


def _run(plan: Plan, io: Any, addr: Address, ctx: Context) -> None:
    tables, struct = plan.tables, plan.struct
    check = ctx.check
    # Stock: the bound method is Context.check itself (no subclass override, no instance patch).
    if getattr(check, "__func__", None) is _STOCK_CHECK and not step_sequence.steps_armed():
        check()  # (1) before socket; (2)-(5) natively, against the deadline
        encoded = addr.sockaddr
        deadline = ctx.deadline
        if deadline is not None:
            io.deadline = deadline
            io.has_deadline = 1
        step_sequence.steps(tables, struct, io, encoded.pointer, encoded.length, 0, plan.end, check, addr)
        return
    bind_step = plan.bind_step
    check()  # (1) before socket
    step_sequence.steps(tables, struct, io, ffi.NULL, 0, 0, 1, check, addr)
    check()  # (2) between socket and options
    if plan.options:
        step_sequence.steps(tables, struct, io, ffi.NULL, 0, 1, bind_step, check, addr)
    check()  # (3) between options and sockaddr
    encoded = addr.sockaddr
    check()  # (4) between sockaddr and bind
    step_sequence.steps(tables, struct, io, encoded.pointer, encoded.length, bind_step, bind_step + 1, check, addr)
    if plan.listens:
        check()  # (5) between bind and listen
    # The sockaddr again: getsockname's answer is compared with it (io.port).
    step_sequence.steps(tables, struct, io, encoded.pointer, encoded.length, bind_step + 1, plan.end, check, addr)


_STOCK_CHECK = Context.check


def bound_address(io: Any, requested: Address) -> Address:
    """The address getsockname reported in ``io`` (the real port when 0 was asked).

    When C found everything but the port equal to what was bound (``io.port`` >= 0),
    it is ``requested`` with that port, sharing its ``ipaddress`` object; otherwise
    (a unix address, or the kernel reported something else) ``io.name`` is decoded
    as `address.reported` does.
    """
    port = io.port
    if port >= 0 and not isinstance(requested, UnixAddress):
        return requested._with_port(port)
    return reported(requested, ffi.addressof(io, "name"), io.namelen)
