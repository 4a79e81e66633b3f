"""Attacks on the waits' handling of the interpreter's signal wakeup fd (janus_net._policy.wakeup.Watch).

Every wait on the main thread swaps janus_net's pipe into the slot and gives it back. A
Python handler can run between any two bytecodes of that swap, or inside the wait, and
call janus_net again: whatever happens, the slot ends as it was before the call.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from dns_server import Behaviour, DnsServer
from peers import in_poll

import janus_net as jn
from janus_net._policy import waiting, wakeup


class _Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@contextmanager
def handler(signum: int, action: object) -> Iterator[None]:
    previous = signal.signal(signum, action)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.signal(signum, previous)


@contextmanager
def signal_after_swap(number: int) -> Iterator[None]:
    """SIGUSR1 as the ``number``-th call of `signal.set_wakeup_fd` returns: its handler runs right after.

    The profile hook stands for a signal that lands while the swap runs: CPython then runs
    the handler at the first check after the call, before its result is stored.
    """
    calls = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "c_return" and arg is signal.set_wakeup_fd:
            calls += 1
            if calls == number:
                os.kill(os.getpid(), signal.SIGUSR1)

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)


@pytest.mark.parametrize("number", [1, 2, 3])
@pytest.mark.parametrize("program_fd", [False, True], ids=["no-program-fd", "program-fd"])
def test_a_handler_that_raises_while_the_slot_is_swapped_leaves_the_slot_as_it_was(
    number: int, program_fd: bool
) -> None:
    wakeup.install()
    before = open_fds()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    own = b.fileno() if program_fd else -1
    if program_fd:
        signal.set_wakeup_fd(own)
    try:
        with handler(signal.SIGUSR1, _raise_stop), signal_after_swap(number):
            try:
                waiting.wait_fds([], jn.Context.with_timeout(0.05), None)
            except (_Stop, jn.SocketError.Timeout):
                pass  # where the handler ran decides which; the slot is what matters
    finally:
        slot = signal.set_wakeup_fd(-1)
    a.close()
    b.close()
    assert slot == own
    assert open_fds() == before


def _receive_while_a_handler_resolves(tmp_path: Path) -> tuple[bool, bool, str]:
    """A receive on the main thread; SIGUSR1's handler resolves, then SIGUSR2's cancels the receive.

    Both signals go to another thread: only the wakeup fd tells the main thread. Returns
    (the handler's resolve answered, the wait ended before its deadline, the Timeout's reason).
    """
    main = threading.main_thread().native_id
    assert main is not None
    outer = jn.Context.with_timeout(10)
    answered: list[object] = []
    with DnsServer() as dns:
        dns.add("slow.example", a=["192.0.2.7"], aaaa=[])
        dns.on("slow.example", behaviour=Behaviour(delay=0.05))
        config = jn.ResolverConfig.load(str(tmp_path / "resolv.conf"), str(tmp_path / "hosts"))
        config = config.replace(nameservers=(dns.nameserver,))

        def resolve_in_handler(*_: object) -> None:  # a wait inside the outer wait
            answered.append(jn.resolve("slow.example", config=config, family=socket.AF_INET))

        def send() -> None:
            for signum in (signal.SIGUSR1, signal.SIGUSR2):
                while not in_poll(main) or (signum == signal.SIGUSR2 and not answered):
                    threading.Event().wait(0.005)
                signal.pthread_kill(threading.get_ident(), signum)

        with (
            jn.bind("127.0.0.1:0") as sock,
            handler(signal.SIGUSR1, resolve_in_handler),
            handler(signal.SIGUSR2, lambda *_: outer.cancel()),
        ):
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            try:
                sock.receive(ctx=outer)
            except jn.SocketError.Timeout as error:
                reason = error.reason
            else:
                raise AssertionError("the receive returned")
            # Woken by the second signal, not by the deadline (whose check would run the
            # pending handler too, and so also say "cancelled").
            before_deadline = not outer.expired
            sender.join()
    return bool(answered), before_deadline, str(reason)


def test_a_handler_that_resolves_inside_a_wait_leaves_the_outer_wait_watching_signals(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text("")
    (tmp_path / "hosts").write_text("")
    wakeup.install()
    before = open_fds()
    assert _receive_while_a_handler_resolves(tmp_path) == (True, True, "cancelled")
    assert signal.set_wakeup_fd(-1) == -1
    gc.collect()  # the context's wake fd closes with it
    assert open_fds() == before
