"""Attacks on the waits' use of the interpreter's signal wakeup fd (janus_net._policy.wakeup.Watch).

Every wait on the main thread lends the slot to janus_net's pipe and gives it back. A
Python handler runs between any two bytecodes of that, and may raise or wait itself:
whatever it does, the slot ends as it was before the call, and a wait that goes on
still hears signals the kernel gives other threads.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from interrupts import act_at, interrupt_at, live_fds
from peers import in_poll

import janus_net as jn
from janus_net._policy import waiting, wakeup

WAKEUP = wakeup.__file__


def slot() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


@contextmanager
def program_wakeup_fd(present: bool) -> Iterator[int]:
    """The program's own wakeup fd (a socket pair's write end, as asyncio's), or none: -1."""
    if not present:
        yield -1
        return
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    signal.set_wakeup_fd(b.fileno())
    try:
        yield b.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        a.close()
        b.close()


@pytest.mark.parametrize("program_fd", [False, True], ids=["no-program-fd", "program-fd"])
def test_an_exception_at_any_line_of_the_swap_leaves_the_slot_as_it_was(program_fd: bool) -> None:
    """KeyboardInterrupt (what a raising handler looks like) before each line of wakeup.py a wait runs.

    One instant no Python code can answer: a handler raising as ``__exit__`` begins, before
    its first line. Then janus_net's pipe stays in the slot, and the next wait takes it out.
    """
    wakeup.install()
    before = live_fds()
    interrupted = 0
    left_at: list[int] = []
    for n in range(1, 200):
        with program_wakeup_fd(program_fd) as own:
            sys.settrace(interrupt_at(n, {WAKEUP}))
            try:
                waiting.wait_fds([], jn.Context.with_timeout(0.001), None)
            except KeyboardInterrupt:
                interrupted += 1
            except jn.SocketError.Timeout:
                sys.settrace(None)
                break  # n passed the last line: the wait ran to its end
            finally:
                sys.settrace(None)
            if slot() != own:
                left_at.append(n)
                with pytest.raises(jn.SocketError.Timeout):
                    waiting.wait_fds([], jn.Context.with_timeout(0.001), None)
            assert slot() == own, f"interrupted before line event {n}"
    else:
        raise AssertionError("the wait never ran to its end")
    assert interrupted > 5  # the swap and the give-back were both interrupted, not the wait skipped
    assert len(left_at) == (0 if program_fd else 1), left_at  # only as __exit__ begins
    assert live_fds() == before


def test_a_wait_inside_a_handler_leaves_the_enclosing_wait_hearing_signals() -> None:
    """SIGUSR1's handler waits (a receive that times out); SIGUSR2's, later, cancels the outer receive.

    Both go to another thread, so only the wakeup fd tells the main thread: had the inner
    wait emptied the slot on its way out, the outer one would sleep to its deadline.
    """
    wakeup.install()
    main = threading.main_thread().native_id
    assert main is not None
    outer = jn.Context.with_timeout(20)
    inner_done: list[str] = []

    def wait_in_handler(*_: object) -> None:
        with jn.bind("127.0.0.1:0") as other:
            try:
                other.receive(ctx=jn.Context.with_timeout(0.02))
            except jn.SocketError.Timeout as error:
                inner_done.append(str(error.reason))

    def send() -> None:
        for signum in (signal.SIGUSR1, signal.SIGUSR2):
            while not in_poll(main) or (signum == signal.SIGUSR2 and not inner_done):
                threading.Event().wait(0.005)
            signal.pthread_kill(threading.get_ident(), signum)

    previous1 = signal.signal(signal.SIGUSR1, wait_in_handler)
    previous2 = signal.signal(signal.SIGUSR2, lambda *_: outer.cancel())
    try:
        with jn.bind("127.0.0.1:0") as sock:
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            with pytest.raises(jn.SocketError.Timeout) as caught:
                sock.receive(ctx=outer)
            sender.join(10)
    finally:
        signal.signal(signal.SIGUSR1, previous1)
        signal.signal(signal.SIGUSR2, previous2)
    assert inner_done == ["deadline"]
    # Woken by the second signal long before the 20 s deadline (whose check would also say so).
    assert caught.value.reason == "cancelled" and not outer.expired
    assert slot() == -1


def test_janus_nets_pipe_left_in_the_slot_is_taken_out_by_the_next_wait() -> None:
    """Never expected (the give-back is exact), but not sticky: a wait that finds janus_net's
    pipe with no enclosing wait holding it takes it out again, as if it had put it there."""
    wakeup.install()
    _, write_end = wakeup._own_pipe()
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    try:
        with pytest.raises(jn.SocketError.Timeout):
            waiting.wait_fds([], jn.Context.with_timeout(0.001), None)
    finally:
        left = signal.set_wakeup_fd(-1)
    assert left == -1


def test_a_forked_child_forgets_the_parents_holder() -> None:
    """A fork from another thread while the main thread waits: the child's waits own their slot."""
    wakeup.install()
    r, w = os.pipe()
    main = threading.main_thread().native_id
    assert main is not None
    children: list[int] = []

    def fork_while_main_waits() -> None:
        while not in_poll(main):
            threading.Event().wait(0.005)
        pid = os.fork()
        if pid == 0:  # the child's main thread is this one; its own wait must leave the slot empty
            status = 1
            try:
                with jn.bind("127.0.0.1:0") as sock:
                    try:
                        sock.receive(ctx=jn.Context.with_timeout(0.01))
                    except jn.SocketError.Timeout:
                        pass
                status = 0 if signal.set_wakeup_fd(-1) == -1 else 2
            finally:
                os.write(w, bytes([status]))
                os._exit(0)
        children.append(pid)

    forker = threading.Thread(target=fork_while_main_waits, daemon=True)
    forker.start()
    with jn.bind("127.0.0.1:0") as sock, pytest.raises(jn.SocketError.Timeout):
        sock.receive(ctx=jn.Context.with_timeout(0.5))
    forker.join(10)
    os.close(w)
    status = os.read(r, 1)
    os.close(r)
    os.waitpid(children[0], 0)
    assert status == b"\x00"


def test_a_child_forked_by_a_handler_during_a_wait_goes_on_waiting_on_a_pipe_of_its_own() -> None:
    """A handler forks while the main thread waits, and the child returns into the wait (a
    fork-based restart): the wait goes on in the child with the pipe numbers it started with.

    The child's copies of the parent's pipe must not simply be closed under it (its poll
    would find the closed read end, POLLNVAL, at once, and spin a core), nor shared with
    the parent (each would drain the other's wakes): the child's wait sleeps, still hears
    a signal the kernel gives another of the child's threads, and leaves the slot empty.
    """
    wakeup.install()
    r, w = os.pipe()
    main = threading.main_thread().native_id
    assert main is not None
    children: list[int] = []

    class Leave(Exception):
        pass

    def fork_and_go_on(*_: object) -> None:
        pid = os.fork()
        if pid:
            children.append(pid)
            raise Leave  # the parent leaves its wait; the child goes on with it
        # The child: SIGUSR2 goes to a thread of its own, so only the wakeup fd tells
        # the waiting main thread; its handler ends the wait.
        signal.signal(signal.SIGUSR2, lambda *_: (_ for _ in ()).throw(Leave()))
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})  # after the start: threads inherit it

    def send() -> None:
        while not in_poll(main):
            threading.Event().wait(0.005)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    previous1 = signal.signal(signal.SIGUSR1, fork_and_go_on)
    previous2 = signal.getsignal(signal.SIGUSR2)
    parent = os.getpid()
    try:
        with jn.bind("127.0.0.1:0") as sock:
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            try:
                sock.receive(ctx=jn.Context.with_timeout(10))
            except Leave:
                pass
            except BaseException:
                if os.getpid() != parent:
                    os._exit(3)
                raise
            if os.getpid() != parent:  # the child, once its wait ended
                status = 1
                try:
                    cpu = os.times()
                    spun = cpu.user + cpu.system > 0.25  # of the 0.5 s its wait lasted
                    status = 2 if spun else (0 if signal.set_wakeup_fd(-1) == -1 else 4)
                finally:
                    os.write(w, bytes([status]))
                    os._exit(0)
            sender.join(10)
    finally:
        signal.signal(signal.SIGUSR1, previous1)
        signal.signal(signal.SIGUSR2, previous2)
    os.close(w)
    answer = os.read(r, 1)
    os.close(r)
    os.waitpid(children[0], 0)
    assert answer == b"\x00", {b"\x02": "the child's wait spun", b"\x04": "the child's slot was left taken"}.get(answer)
    assert slot() == -1


def _wait_with_an_inner_wait_at(n: int, main: int) -> tuple[bool, float]:
    """An enclosing wait (2 s deadline) with a wait inside a handler-like action at the
    ``n``-th line event of wakeup.py, then SIGUSR2 to another thread, whose handler cancels.

    Returns whether the inner wait ran (only before the enclosing wait polls) and how
    long the enclosing wait lasted.
    """
    outer = jn.Context.with_timeout(2)
    inner_done = threading.Event()
    sender_done = threading.Event()

    def wait_inside() -> None:
        where = sys._getframe(2).f_code.co_name  # the line's function (action <- tracer <- it)
        if where not in ("__init__", "__enter__", "_own_pipe", "_main_thread_ident"):
            return  # the enclosing wait has polled already
        try:
            waiting.wait_fds([], jn.Context.with_timeout(0.001), None)
        except jn.SocketError.Timeout:
            pass
        inner_done.set()

    def send() -> None:
        while not inner_done.wait(0.002) or not in_poll(main):
            if sender_done.is_set():
                return
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)  # to this thread: only the fd tells main

    tracer, _ = act_at(n, wait_inside, {WAKEUP})
    previous = signal.signal(signal.SIGUSR2, lambda *_: outer.cancel())
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    started = time.monotonic()
    sys.settrace(tracer)
    try:
        waiting.wait_fds([], outer, None)
    except jn.SocketError.Timeout:
        pass
    finally:
        sys.settrace(None)
        sender_done.set()
        sender.join(10)
        signal.signal(signal.SIGUSR2, previous)
    return inner_done.is_set(), time.monotonic() - started


def test_a_wait_inside_a_handler_at_any_line_of_the_swap_leaves_the_enclosing_wait_hearing_signals() -> None:
    """A handler that waits may run at any line of the enclosing wait's swap: right after
    the swap put janus_net's pipe in the slot, before the enclosing wait has recorded that
    it holds it, included (an eval-breaker check follows the swap's call). The inner wait
    must still leave the pipe to it: SIGUSR2, given to another thread later, ends the
    enclosing wait long before its 2 s deadline."""
    wakeup.install()
    main = threading.main_thread().native_id
    assert main is not None
    deaf: list[int] = []
    n = 0
    while True:
        n += 1
        inner_ran, lasted = _wait_with_an_inner_wait_at(n, main)
        assert slot() == -1, f"a wait inside a handler at line event {n}"
        if not inner_ran:
            break  # past the swap: the enclosing wait polls
        if lasted > 1.5:  # slept to (near) its deadline
            deaf.append(n)
    assert n > 10  # the swap's lines were all tried
    assert not deaf, f"the enclosing wait slept to its deadline after an inner wait at line events {deaf}"
