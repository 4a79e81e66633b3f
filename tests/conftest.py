"""Shared fixtures. Every test is checked for leaked file descriptors."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest


def open_fds() -> set[int]:
    """The descriptors this process has open right now."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True, scope="session")
def signal_wakeup_pipe() -> None:
    """janus_net's waits on the main thread watch the signal wakeup fd, installing a pipe
    of their own once per process when there is none (docs/mechanism.md): made here,
    before the first test counts descriptors, not inside whichever test waits first."""
    from janus_net._policy import wakeup

    wakeup.install()


@pytest.fixture(autouse=True)
def wakeup_slot_as_found() -> Iterator[None]:
    """Fail any test after which the interpreter's signal wakeup fd is not what it was before.

    janus_net's waits lend the slot to their own pipe and give it back (docs/mechanism.md);
    one left behind is what trio reports as "signal handling code might have collided".
    """
    found = _wakeup_slot()
    yield
    left = _wakeup_slot()
    if left != found:
        signal.set_wakeup_fd(found)  # the next test starts as this one did
    assert left == found, f"the signal wakeup fd was {found} before the test and {left} after"


def _wakeup_slot() -> int:
    """The interpreter's wakeup fd (CPython has no getter: swapped out and back, on the main thread)."""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


@pytest.fixture(autouse=True)
def no_fd_leak(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that leaves a descriptor open (opt out: @pytest.mark.fd_leak_ok).

    A full garbage collection is paid for only when a descriptor looks leaked: an
    unreachable object may still hold it, and collecting it closes it (with a
    ResourceWarning, which pytest turns into an error for janus_net objects).
    """
    before = open_fds()
    yield
    if request.node.get_closest_marker("fd_leak_ok"):
        return
    if open_fds() - before:
        gc.collect()
    leaked = {fd: _describe(fd) for fd in open_fds() - before}
    leaked = {fd: what for fd, what in leaked.items() if what is not None}
    assert not leaked, f"file descriptors leaked: {leaked}"


def _describe(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None  # closed while we looked (the listing's own fd)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh network namespace with loopback up, deleted afterwards; its name (its file is /run/netns/NAME)."""
    name = f"jn-test-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=60)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True, capture_output=True, timeout=60)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fd_leak_ok: the test may leave descriptors open on purpose")
