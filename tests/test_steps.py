"""The native step sequence (native/src/jn_steps.c) and its driver (janus_net/steps.py).

Oracles: the plain path (`jn.listen`/`jn.bind`, one wrapped syscall at a time) for
error members and results, the stdlib socket module (on a dup of the fd) for what
the kernel holds, /proc/self/fd for leaks. Failures are real kernel failures where
the kernel can be made to fail (EADDRINUSE, ENOPROTOOPT, EOPNOTSUPP, EAFNOSUPPORT),
and otherwise injected two ways: through the fault seam (`testing.fail`), which
makes the driver run each step alone through the retry loop with the step's own
table; and, to reach the native path itself (several steps in one C call stopping
at step k with an errno, then resuming at k), by a fault on the loop's view of the
sequence (`syscalls._SEQUENCE`) that runs the real C steps before k and reports k
as failed exactly as C does (``io.at`` = k, errno set, -1).
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import signal
import socket
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from peers import sigint_raises

import janus_net as jn
from janus_net import platform
from janus_net._kernel import cells, loop, socket_options, step_sequence
from janus_net._kernel import cells as kernel_cells
from janus_net._kernel import loop as kernel_loop
from janus_net._kernel import sockets as kernel_sockets
from janus_net._kernel import step_sequence as kernel_step_sequence
from janus_net._profiles import native_sequence
from janus_net._profiles import native_sequence as profiles_native_sequence
from janus_net._profiles.addresses import parse_address
from janus_net._profiles.option_checks import Options, bind_options, listen_options
from janus_net._shim import ffi, lib
from janus_net._values.addresses import Address
from janus_net._values.errors import ErrnoBug
from janus_net._values.kinds import Mode
from janus_net._values.reported import from_sockaddr
from janus_net.testing import fail
from tests.tracing import calls_to, syscalls_after_mark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IP4 = "127.0.0.1:0"
IP6 = "[::1]:0"


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")


def native(address: str, opts: Options | None = None, ctx: jn.Context | None = None) -> tuple[int, Address]:
    """Run the driver as `_open` will: returns (fd, bound address); the caller closes the fd."""
    addr = parse_address(address)
    opts = listen_options() if opts is None else opts
    plan = profiles_native_sequence.plan_for(addr, opts)
    assert plan is not None
    desc = kernel_cells.new_desc()
    io = profiles_native_sequence.new_io(desc)
    try:  # as `_open` will: the call inside the try whose except discards
        profiles_native_sequence.run(plan, io, addr, ctx)
        bound = profiles_native_sequence.bound_address(io, addr)
        return int(lib.jn_desc_detach(desc)), bound  # the fd leaves the cell: the caller's to close
    except BaseException:
        profiles_native_sequence.discard(io)
        raise


@contextmanager
def closes_counted() -> Iterator[Any]:
    """Count close() calls without changing them (a fault that never fires)."""
    with fail("close", errno.EIO, after=10**9) as counter:
        yield counter


@contextmanager
def native_failure(step: int, err: int, times: int = 1) -> Iterator[list[int]]:
    """Make the native sequence stop at ``step`` with ``err`` (``times`` times), as C would.

    The steps before ``step`` run for real in C; the reported failure is exactly C's
    (-1, errno, io.at == step). Yields the list of starts the loop called C with.
    """
    starts: list[int] = []
    left = [times]

    class AtStep:
        def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
            plan, io, sa, salen, start, stop = args
            starts.append(io.at if start < 0 else start)
            if left[0] > 0 and io.at <= step < stop:
                left[0] -= 1
                if fn(plan, io, sa, salen, start, step) < 0:
                    return -1  # a real failure before the step
                io.at = step
                ffi.errno = err
                return -1
            return fn(*args)

    assert kernel_step_sequence._SEQUENCE.fault is None
    kernel_step_sequence._SEQUENCE.fault = AtStep()
    try:
        yield starts
    finally:
        kernel_step_sequence._SEQUENCE.fault = None


def plain_error(name: str, err: int, address: str = IP4, opts: Options | None = None) -> BaseException:
    """What the plain path raises when ``name`` fails with ``err``."""
    with fail(name, err):
        try:
            if opts is not None and opts.kind == "bind":
                jn.bind(address).close()
            else:
                jn.listen(address).close()
        except (jn.SocketError, ErrnoBug) as e:
            return e
    raise AssertionError("the plain path did not fail")


def same_error(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert getattr(a, "errno", None) == getattr(b, "errno", None)
    assert getattr(a, "syscall", None) == getattr(b, "syscall", None)
    assert getattr(a, "address", None) == getattr(b, "address", None)


# Step index -> (fault seam name, table) for the default IP listen plan (SO_REUSEADDR only).
DEFAULT_STEPS = {0: "socket", 1: "setsockopt", 2: "bind", 3: "listen", 4: "getsockname"}
TABLE_OF = {
    "socket": kernel_sockets.SOCKET,
    "setsockopt": socket_options.SETSOCKOPT,
    "bind": kernel_sockets.BIND_IP,
    "listen": kernel_sockets.LISTEN,
    "getsockname": kernel_sockets.GETSOCKNAME,
}


def rows(table: kernel_loop.Syscall) -> list[int]:
    return sorted({*table.errors, *table.bugs, errno.EIO})  # EIO: a row no table has (Unexpected)


# --- results


def kernel_view(fd: int) -> dict[str, object]:
    with socket.socket(fileno=os.dup(fd)) as s:
        view: dict[str, object] = {
            "family": s.family,
            "type": s.type,
            "name": s.getsockname(),
            "listening": s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
            "reuseaddr": s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR),
            "reuseport": s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
            "broadcast": s.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST),
        }
        if s.family == socket.AF_INET6:
            view["v6only"] = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    view["cloexec"] = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    view["blocking"] = not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
    return view


CASES: list[tuple[str, Options]] = [
    (IP4, listen_options()),
    (IP4, listen_options(reuse_address=False, backlog=5)),
    (IP4, listen_options(reuse_port=True)),
    (IP4, bind_options()),
    (IP4, bind_options(reuse_address=True, broadcast=True)),
    (IP4, bind_options(mode=Mode.STREAM)),
    ("unix:@jn-steps-test-{pid}", listen_options()),
    ("unix:@jn-steps-test-{pid}", bind_options()),
]
CASES6: list[tuple[str, Options]] = [
    (IP6, listen_options()),
    (IP6, listen_options(ip6_only=True)),
    (IP6, listen_options(ip6_only=False)),
    (IP6, bind_options(ip6_only=True)),
]


def plain(address: str, opts: Options) -> jn.Server | jn.Socket:
    if opts.kind == "listen":
        return jn.listen(
            address, backlog=opts.backlog, reuse_address=opts.reuse_address, reuse_port=opts.reuse_port,
            ip6_only=opts.ip6_only,
        )  # fmt: skip
    return jn.bind(
        address, mode=opts.mode, ip6_only=opts.ip6_only, reuse_address=opts.reuse_address, broadcast=opts.broadcast
    )


def check_same_as_plain(address: str, opts: Options) -> None:
    address = address.format(pid=os.getpid())
    fd, bound = native(address, opts)
    try:
        got = kernel_view(fd)
        storage, length = kernel_sockets.getsockname(fd)
        assert bound == from_sockaddr(storage, length)  # what the kernel says, decoded in full
    finally:
        os.close(fd)
    with plain(address, opts) as reference:
        want = kernel_view(reference.fileno())
        assert type(bound) is type(reference.address)
        assert bound.port is None or bound.port > 0
    got.pop("name"), want.pop("name")  # ports differ (both 0 asked); the addresses were compared above
    assert got == want


@pytest.mark.parametrize(("address", "opts"), CASES)
def test_results_equal_the_plain_path(address: str, opts: Options) -> None:
    check_same_as_plain(address, opts)


@needs_ipv6
@pytest.mark.parametrize(("address", "opts"), CASES6)
def test_results_equal_the_plain_path_ipv6(address: str, opts: Options) -> None:
    check_same_as_plain(address, opts)


def test_bound_address_is_the_requested_one_with_the_real_port() -> None:
    fd, bound = native(IP4)
    try:
        assert isinstance(bound, jn.Ip4Address)
        assert bound.host == "127.0.0.1"
        with socket.socket(fileno=os.dup(fd)) as view:
            assert view.getsockname() == ("127.0.0.1", bound.port)
    finally:
        os.close(fd)


def test_a_fixed_port_is_bound_and_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fd, bound = native(f"127.0.0.1:{port}")
    os.close(fd)
    assert bound == jn.Ip4Address("127.0.0.1", port)


def test_plans_are_built_once_and_only_where_native_applies(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a = parse_address(IP4)
    assert profiles_native_sequence.plan_for(a, listen_options()) is profiles_native_sequence.plan_for(
        a, listen_options()
    )
    path = parse_address(f"unix:{tmp_path}/s.sock")
    assert profiles_native_sequence.plan_for(path, listen_options()) is None  # a unix socket file: the plain path
    assert profiles_native_sequence.plan_for(parse_address("unix:@jn-steps-plan"), listen_options()) is not None
    monkeypatch.setattr(platform, "HAS_SOCK_CLOEXEC", False)
    assert profiles_native_sequence.plan_for(a, listen_options()) is None  # the SOCK_CLOEXEC emulation: the plain path


# --- errors, through the fault seam (each step alone through the retry loop)


SEAM_CASES = [(name, err) for name in DEFAULT_STEPS.values() for err in rows(TABLE_OF[name])]


@pytest.mark.parametrize(("name", "err"), SEAM_CASES)
def test_each_step_failing_through_the_seam_maps_like_the_plain_path(name: str, err: int) -> None:
    want = plain_error(name, err)
    with fail(name, err) as injected, closes_counted() as closes, pytest.raises((jn.SocketError, ErrnoBug)) as got:
        native(IP4)
    assert injected.failed == 1
    same_error(got.value, want)
    assert closes.calls == (0 if name == "socket" else 1)  # the fd, exactly once


@pytest.mark.parametrize("name", list(DEFAULT_STEPS.values()))
def test_keyboard_interrupt_at_each_step_closes_the_fd_once(name: str) -> None:
    with fail(name, KeyboardInterrupt), closes_counted() as closes, pytest.raises(KeyboardInterrupt):
        native(IP4)
    assert closes.calls == (0 if name == "socket" else 1)


@pytest.mark.parametrize("name", list(DEFAULT_STEPS.values()))
def test_eintr_through_the_seam_retries_the_step_only(name: str) -> None:
    with fail(name, errno.EINTR, times=2) as injected, fail("socket" if name != "socket" else "close", errno.EIO,
                                                             after=10**9) as other:  # fmt: skip
        fd, bound = native(IP4)
    os.close(fd)
    assert injected.failed == 2 and injected.calls == 3
    if name != "socket":
        assert other.calls == 1  # one socket was made: the sequence resumed at the failed step
    assert isinstance(bound, jn.Ip4Address) and bound.port > 0


# --- errors on the native path itself (several steps in one C call)


@pytest.mark.parametrize(("step", "err"), [(k, e) for k, name in DEFAULT_STEPS.items() for e in rows(TABLE_OF[name])])
def test_each_step_failing_natively_maps_like_the_plain_path(step: int, err: int) -> None:
    want = plain_error(DEFAULT_STEPS[step], err)
    with (
        native_failure(step, err) as starts,
        closes_counted() as closes,
        pytest.raises((jn.SocketError, ErrnoBug)) as got,
    ):
        native(IP4)
    assert starts == [0]  # one C call for the whole sequence (:core)
    same_error(got.value, want)
    assert closes.calls == (0 if step == 0 else 1)


@pytest.mark.parametrize("step", list(DEFAULT_STEPS))
def test_eintr_natively_runs_the_checkpoint_and_resumes_at_that_step(step: int) -> None:
    calls: list[str] = []

    class Counting(jn.Context):
        def check(self) -> None:
            calls.append("check")
            super().check()

    with native_failure(step, errno.EINTR, times=2) as starts, closes_counted() as closes:
        fd, bound = native(IP4)
    os.close(fd)
    assert starts == [0, step, step]  # no step before the failed one ran twice
    assert closes.calls == 0  # nothing made twice, nothing closed
    assert isinstance(bound, jn.Ip4Address) and bound.port > 0
    with native_failure(step, errno.EINTR, times=2):
        fd, _ = native(IP4, ctx=Counting())
    os.close(fd)
    assert len(calls) == 5 + 2  # the five checkpoints, and one per EINTR


def test_eintr_then_a_checkpoint_timeout_closes_the_fd_once() -> None:
    class CancelAtFifth(jn.Context):
        calls = 0

        def check(self) -> None:
            self.calls += 1
            if self.calls == 5:  # the checkpoint the EINTR at bind runs (after four)
                self.cancel()
            super().check()

    with (
        native_failure(2, errno.EINTR) as starts,
        closes_counted() as closes,
        pytest.raises(jn.SocketError.Timeout),
    ):
        native(IP4, ctx=CancelAtFifth())
    assert starts[-1] == 2
    assert closes.calls == 1


# --- real kernel failures, no injection


def test_real_bind_eaddrinuse() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with closes_counted() as closes, pytest.raises(jn.SocketError.AddressInUse) as got:
            native(f"127.0.0.1:{port}")
    assert got.value.syscall == "bind" and got.value.errno == errno.EADDRINUSE
    assert closes.calls == 1


def test_real_listen_eopnotsupp_on_a_datagram_socket() -> None:
    datagram_listen = listen_options()._replace(mode=Mode.DGRAM, reuse_address=False)
    with pytest.raises(jn.SocketError.SocketModeUnsupported) as got:
        native(IP4, datagram_listen)
    assert got.value.syscall == "listen"


def test_real_setsockopt_enoprotoopt() -> None:
    # IPV6_V6ONLY on an AF_INET socket: the kernel says ENOPROTOOPT at the second option.
    plan = profiles_native_sequence.Plan(lib.AF_INET, listen_options(ip6_only=True))
    addr = parse_address(IP4)
    desc = kernel_cells.new_desc()
    io = profiles_native_sequence.new_io(desc)
    with closes_counted() as closes, pytest.raises(jn.SocketError.OptionUnsupported) as got:
        profiles_native_sequence.run(plan, io, addr)
    assert got.value.syscall == "setsockopt" and io.desc.fd == -1 and closes.calls == 1


def test_real_socket_eafnosupport() -> None:
    plan = profiles_native_sequence.Plan(lib.AF_UNSPEC, listen_options())
    desc = kernel_cells.new_desc()
    io = profiles_native_sequence.new_io(desc)
    with closes_counted() as closes, pytest.raises(jn.SocketError.AddressFamilyUnsupported):
        profiles_native_sequence.run(plan, io, parse_address(IP4))
    assert io.desc.fd == -1 and closes.calls == 0


def test_c_resumes_at_the_failed_step_without_a_second_socket() -> None:
    """A real EADDRINUSE at bind, the port freed, then "call again": bind, listen, getsockname."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    addr = parse_address(f"127.0.0.1:{port}")
    plan = profiles_native_sequence.plan_for(addr, listen_options())
    assert plan is not None
    desc = kernel_cells.new_desc()
    io = profiles_native_sequence.new_io(desc)
    encoded = addr.sockaddr
    try:
        assert lib.jn_steps(plan.struct, io, encoded.pointer, encoded.length, 0, plan.end) == -1
        assert ffi.errno == errno.EADDRINUSE and io.at == plan.bind_step
        first = io.desc.fd
        holder.close()
        assert lib.jn_steps(plan.struct, io, encoded.pointer, encoded.length, -1, plan.end) == 0
        assert io.desc.fd == first and io.at == plan.end and io.port == port
    finally:
        holder.close()
        profiles_native_sequence.discard(io)


# --- checkpoints (:service)


class Recording(jn.Context):
    """Counts its check() calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def check(self) -> None:
        self.calls += 1
        super().check()


@pytest.mark.parametrize(("opts", "expected"), [(listen_options(), 5), (bind_options(), 4)])
def test_a_subclass_gets_exactly_its_checkpoints(opts: Options, expected: int) -> None:
    ctx = Recording()
    fd, _ = native(IP4, opts, ctx)
    os.close(fd)
    assert ctx.calls == expected


@pytest.mark.parametrize("at", [1, 2, 3, 4, 5])
def test_a_timeout_at_each_checkpoint_leaves_nothing(at: int) -> None:
    class StopAt(jn.Context):
        calls = 0

        def check(self) -> None:
            self.calls += 1
            if self.calls == at:
                raise jn.SocketError.Timeout("cancelled", "stop here")

    with closes_counted() as closes, pytest.raises(jn.SocketError.Timeout):
        native(IP4, ctx=StopAt())
    assert closes.calls == (0 if at == 1 else 1)  # checkpoint 1 is before socket


def test_checkpoints_fall_between_the_right_syscalls() -> None:
    """With the seam counting each step, record how many calls each step had at each checkpoint."""
    names = list(DEFAULT_STEPS.values())
    counters: dict[str, Any] = {}
    marks: list[tuple[int, ...]] = []

    class Marking(jn.Context):
        def check(self) -> None:
            marks.append(tuple(counters[n].calls for n in names))

    with (
        fail("socket", errno.EIO, after=10**9) as counters["socket"],
        fail("setsockopt", errno.EIO, after=10**9) as counters["setsockopt"],
        fail("bind", errno.EIO, after=10**9) as counters["bind"],
        fail("listen", errno.EIO, after=10**9) as counters["listen"],
        fail("getsockname", errno.EIO, after=10**9) as counters["getsockname"],
    ):
        fd, _ = native(IP4, ctx=Marking())
    os.close(fd)
    assert marks == [
        (0, 0, 0, 0, 0),  # (1) before socket
        (1, 0, 0, 0, 0),  # (2) between socket and options
        (1, 1, 0, 0, 0),  # (3) between options and sockaddr
        (1, 1, 0, 0, 0),  # (4) between sockaddr and bind
        (1, 1, 1, 0, 0),  # (5) between bind and listen
    ]


def test_a_subclass_overriding_check_gets_one_c_call_per_segment() -> None:
    with native_failure(99, errno.EIO, times=0) as starts:
        fd, _ = native(IP4, ctx=Recording())
    os.close(fd)
    assert starts == [0, 1, 2, 3]  # socket | options | bind | listen + getsockname


def test_a_stock_context_runs_the_sequence_in_one_c_call() -> None:
    class Plain(jn.Context):  # a subclass that keeps Context.check counts as stock
        pass

    for ctx in (jn.Context(), jn.Context.with_timeout(60), Plain()):
        with native_failure(99, errno.EIO, times=0) as starts:
            fd, bound = native(IP4, ctx=ctx)
        os.close(fd)
        assert starts == [0]
        assert isinstance(bound, jn.Ip4Address) and bound.port > 0


def test_a_cancelled_context_makes_no_socket() -> None:
    for ctx in (jn.Context(), Recording()):
        ctx.cancel()
        with (
            closes_counted() as closes,
            fail("socket", errno.EIO, after=10**9) as sockets,
            pytest.raises(jn.SocketError.Timeout) as got,
        ):
            native(IP4, ctx=ctx)
        assert sockets.calls == 0 and closes.calls == 0
        assert got.value.reason == "cancelled"


def test_a_stock_deadline_passing_mid_sequence_stops_natively_at_the_next_checkpoint() -> None:
    """The deadline passes after socket; C stops before bind (checkpoints 3/4) without calling it."""
    addr = parse_address(IP4)
    plan = profiles_native_sequence.plan_for(addr, listen_options())
    assert plan is not None
    # Long enough that no stall before the socket step passes it (the test would then stop at
    # the first checkpoint, not before bind); the step below waits until it has passed.
    ctx = jn.Context.with_timeout(1.0)

    class SlowSocket:
        def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
            p, io, sa, salen, start, _stop = args
            if start == -1 and io.at == 0:
                if fn(p, io, sa, salen, -1, 1) < 0:  # socket, for real
                    return -1
                while not ctx.expired:  # the deadline passes here
                    time.sleep(0.01)
            return fn(*args)  # resumes at step 1: the options, then the checkpoint before bind

    desc = kernel_cells.new_desc()

    io = profiles_native_sequence.new_io(desc)
    kernel_step_sequence._SEQUENCE.fault = SlowSocket()
    try:
        with closes_counted() as closes, pytest.raises(jn.SocketError.Timeout) as got:
            profiles_native_sequence.run(plan, io, addr, ctx)
    finally:
        kernel_step_sequence._SEQUENCE.fault = None
    assert got.value.reason == "deadline"
    assert io.at == plan.bind_step and io.desc.fd == -1 and closes.calls == 1


def test_discard_closes_once_and_empties_the_cell() -> None:
    fd, _ = native(IP4)
    desc = kernel_cells.new_desc()
    io = profiles_native_sequence.new_io(desc)
    cells.adopt_into(desc, fd)
    with closes_counted() as closes:
        profiles_native_sequence.discard(io)
        profiles_native_sequence.discard(io)
    assert closes.calls == 1 and io.desc.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)


# --- interrupts: a real signal during the C call, and KeyboardInterrupt at every line of the driver


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_a_real_sigint_arriving_inside_the_c_call_closes_the_fd_once(after: int) -> None:
    """SIGINT sent while C has run ``after`` steps: its handler runs once C returns; the fd is closed once."""

    class SignalInside:
        def call(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
            p, io, sa, salen, _start, stop = args
            rc = fn(p, io, sa, salen, -1, min(after, stop))
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # pending until C returns
            return rc if rc < 0 else fn(*args)

    kernel_step_sequence._SEQUENCE.fault = SignalInside()
    try:
        with sigint_raises(), closes_counted() as closes, pytest.raises(KeyboardInterrupt):
            native(IP4)
    finally:
        kernel_step_sequence._SEQUENCE.fault = None
    assert closes.calls == 1


# The driver's own code (its cleanup, `discard` and `syscalls.close`, excluded: an interrupt inside
# the cleanup itself can leak, on this path as on the plain one).
_DRIVER = (
    {(native_sequence.__file__, name) for name in ("run", "plan_for", "new_io", "bound_address")}
    | {(step_sequence.__file__, name) for name in ("steps", "steps_armed", "error")}
    | {(loop.__file__, name) for name in ("retry", "error")}
)


def interrupt_at(at: int) -> Callable[..., Any]:
    """A sys.settrace function raising KeyboardInterrupt at the ``at``-th line event of the driver."""
    count = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if (frame.f_code.co_filename, frame.f_code.co_name) not in _DRIVER:
            return None
        if event == "line":
            count[0] += 1
            if count[0] == at:
                raise KeyboardInterrupt
        return tracer

    return tracer


@pytest.mark.parametrize("kind", ["core", "stock context", "subclass context"])
def test_keyboard_interrupt_at_every_line_of_the_driver_leaves_nothing(kind: str) -> None:
    def make_ctx() -> jn.Context | None:
        return None if kind == "core" else jn.Context() if kind == "stock context" else Recording()

    lines_hit = 0
    for at in range(1, 500):
        tracer = interrupt_at(at)
        ctx = make_ctx()
        before = set(os.listdir("/proc/self/fd"))
        with closes_counted() as closes:
            sys.settrace(tracer)
            try:
                fd, _ = native(IP4, ctx=ctx)
            except KeyboardInterrupt:
                fd = -1
            finally:
                sys.settrace(None)
        if fd >= 0:
            os.close(fd)
            lines_hit = at
            break
        assert set(os.listdir("/proc/self/fd")) <= before, f"fd leaked with the interrupt at line event {at}"
        assert closes.calls <= 1
    assert lines_hit > 10  # the loop ran through every line event of the driver and then succeeded


def test_keyboard_interrupt_at_every_line_of_the_public_core_path_leaves_nothing() -> None:
    """``jn.listen`` runs the :core sequence from `sequence._open_native` itself: interrupted at each line."""
    from janus_net._profiles import sequence

    driver = _DRIVER | {(sequence.__file__, "_open_native")}
    made = 0
    for at in range(1, 500):
        count = [0]

        def tracer(frame: Any, event: str, arg: Any, at: int = at, count: list[int] = count) -> Any:
            if (frame.f_code.co_filename, frame.f_code.co_name) not in driver:
                return None
            if event == "line":
                count[0] += 1
                if count[0] == at:
                    raise KeyboardInterrupt
            return tracer

        before = set(os.listdir("/proc/self/fd"))
        server = None
        # An interrupt after the Server exists (at the return) leaves it to its collection,
        # which closes it with a ResourceWarning (DESIGN §3): that is the backstop, not a leak.
        with closes_counted() as closes, warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            sys.settrace(tracer)
            try:
                server = jn.listen("127.0.0.1:0")
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
            if server is not None:
                server.close()
                made = at
            gc.collect()
        assert set(os.listdir("/proc/self/fd")) <= before, f"fd leaked with the interrupt at line event {at}"
        assert closes.calls <= 1
        if server is not None:
            break
    assert made > 5  # every line event of the path was interrupted once, then it ran through


def test_strace_sees_exactly_the_plain_paths_syscalls(tmp_path: Any) -> None:
    program = """
import os
from janus_net._kernel import cells
from janus_net._profiles import native_sequence as steps
from janus_net._profiles.addresses import parse_address
from janus_net._profiles.option_checks import listen_options
from tests.tracing import MARK
addr = parse_address("127.0.0.1:0")
plan = steps.plan_for(addr, listen_options())
os.write(1, MARK)
desc = cells.new_desc()
io = steps.new_io(desc)
steps.run(plan, io, addr)
steps.discard(io)
os.write(1, MARK)
"""
    lines, _ = syscalls_after_mark(
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + textwrap.dedent(program),
        tmp_path,
        trace="write,socket,setsockopt,bind,listen,getsockname,close",
    )
    calls = [line.split("(", 1)[0].split()[-1] for line in calls_to(lines, "socket", "setsockopt", "bind", "listen",
                                                                        "getsockname", "close")]  # fmt: skip
    assert calls[:6] == ["socket", "setsockopt", "bind", "listen", "getsockname", "close"], lines
    assert "SOCK_CLOEXEC" in calls_to(lines, "socket")[0]
