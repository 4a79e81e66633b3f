"""Unclosed owners collected in reference cycles and at interpreter exit.

cffi runs an ``ffi.gc`` destructor from the wrapper's tp_finalize, and the garbage
collector finalizes the members of a reference cycle in no particular order: the
cell's own collection can run before the owner's ``__del__``, which still reads the
cell. Each case runs in a fresh interpreter with glibc's allocator checks on
(MALLOC_CHECK_), so a read of freed memory shows as a crash, an
``Exception ignored`` (a close of a garbage fd number) or a closed bystander; and
once under valgrind, which sees a read of freed memory even when nothing visible
follows from it (a context's freed wake cell usually still reads -1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_ENV = {**os.environ, "MALLOC_CHECK_": "3", "PYTHONWARNINGS": "ignore::ResourceWarning"}

# Owners of every kind, each in a cycle, beside bystander descriptors janus_net does not own.
_SETUP = """
import gc, json, os, socket, sys
import janus_net as jn

bystanders = [fd for pair in (os.pipe() for _ in range(8)) for fd in pair]

def kernel_objects():
    # What each open descriptor names (socket:[inode], pipe:[inode]): numbers are reused, these are not.
    names = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            names[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return names

bystander_objects = {fd: kernel_objects()[fd] for fd in bystanders}

def owners(tmp, round_=0):
    server = jn.listen("127.0.0.1:0")
    client = socket.create_connection((server.address.host, server.address.port))
    stream = server.accept()
    unix = jn.listen("unix:" + os.path.join(tmp, f"cycle{round_}.sock"))
    return [server, stream, unix, jn.bind("127.0.0.1:0"), jn.bind("[::1]:0")], client

class Toucher:
    # Another object of the same cycle whose __del__ uses the owner (or context) after
    # the collector may have finalized it and its native cell.
    def __init__(self, thing):
        self.thing = thing
    def __del__(self):
        if isinstance(self.thing, jn.Context):
            self.thing.cancel()
        else:
            self.thing.close()
            self.thing.fileno()
        repr(self.thing)

def in_cycle(thing, touched):
    # A dict that refers to itself and to thing; with touched, a Toucher of thing in it too.
    cycle = {"thing": thing}
    cycle["self"] = cycle
    if touched:
        cycle["toucher"] = Toucher(thing)
        cycle["toucher"].cycle = cycle

def report(owned):
    # owned: what the owners' descriptors named when they were made.
    now = kernel_objects()
    still_open = set(owned) & set(now.values())
    closed = [fd for fd, name in bystander_objects.items() if now.get(fd) != name]
    print(json.dumps({"owned_still_open": len(still_open), "bystanders_closed": closed}), flush=True)
"""


def _run(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SETUP) + textwrap.dedent(source), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_ENV,
    )


@pytest.mark.parametrize("toucher", [False, True])
def test_owners_in_reference_cycles_are_collected_without_touching_freed_memory(tmp_path: Path, toucher: bool) -> None:
    result = _run(
        f"""
        fds, clients = [], []
        for round_ in range(20):
            made, client = owners(sys.argv[1], round_)
            clients.append(client)
            for owner in made:
                fds.append(os.readlink("/proc/self/fd/%d" % owner.fileno()))
                in_cycle(owner, {toucher})
            del made, owner
        gc.collect()
        report(fds)
        """,
        tmp_path,
    )
    _assert_all_closed_and_nothing_else(result)


def _assert_all_closed_and_nothing_else(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout) == {"owned_still_open": 0, "bystanders_closed": []}


def test_owners_left_in_module_globals_are_collected_at_exit(tmp_path: Path) -> None:
    # A function refers to the module's globals: at exit they are collected as a cycle,
    # in the final collection of interpreter shutdown.
    result = _run(
        """
        made, client = owners(sys.argv[1])
        def keeps_globals_in_a_cycle():
            return made, client, bystanders
        print("ok", flush=True)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert result.stderr == ""


def test_an_owner_finalized_first_leaves_a_closed_object(tmp_path: Path) -> None:
    # After its __del__, an owner reached from elsewhere behaves as closed.
    result = _run(
        """
        server = jn.listen("127.0.0.1:0")
        fd = server.fileno()
        server.__del__()
        print(json.dumps([server.closed, server.fileno(), os.path.exists(f"/proc/self/fd/{fd}")]), flush=True)
        server.close()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, -1, False]
    assert result.stderr == ""


@pytest.mark.parametrize("toucher", [False, True])
def test_contexts_in_reference_cycles_are_collected_without_touching_freed_memory(
    tmp_path: Path, toucher: bool
) -> None:
    # A context's wake pair lives in a native cell too: a cancel() from another __del__
    # of the cycle, after the pair's collection, must find it closed, not freed.
    result = _run(
        f"""
        made = []
        for _ in range(50):
            parent = jn.Context.with_timeout(60)
            child = parent.child()
            for ctx in (parent, child):
                ctx._wake_fd()  # the pair exists: its fds are what the collection closes
                made.append(os.readlink("/proc/self/fd/%d" % ctx._waker[0]))
                in_cycle(ctx, {toucher})
        del parent, child, ctx
        gc.collect()
        report(made)
        """,
        tmp_path,
    )
    _assert_all_closed_and_nothing_else(result)


_VALGRIND_SCRIPT = """
import gc, os, socket, sys
import janus_net as jn

class Toucher:
    def __init__(self, thing):
        self.thing = thing
    def __del__(self):
        (self.thing.cancel if isinstance(self.thing, jn.Context) else self.thing.close)()

for _ in range(3):
    server = jn.listen("127.0.0.1:0")
    client = socket.create_connection((server.address.host, server.address.port))
    ctx = jn.Context.with_timeout(60)
    ctx._wake_fd()
    for thing in (server, server.accept(), jn.bind("127.0.0.1:0"), ctx):
        cycle = {"thing": thing, "toucher": Toucher(thing)}
        cycle["self"] = cycle
        cycle["toucher"].cycle = cycle
    client.close()
del server, ctx, thing, cycle
gc.collect()
"""


def test_valgrind_finds_no_read_of_freed_memory_when_cycles_are_collected() -> None:
    # The glibc checks see a freed cell only when its memory is reused; valgrind sees
    # every read of freed memory (PYTHONMALLOC=malloc: each object is its own block).
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("needs valgrind (scripts/install-test-tools installs it)")
    result = subprocess.run(
        [valgrind, "--error-exitcode=0", sys.executable, "-c", _VALGRIND_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_ENV, "PYTHONMALLOC": "malloc"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    invalid = [
        line
        for line in result.stderr.splitlines()
        if "Invalid read" in line or "Invalid write" in line or "Invalid free" in line
    ]
    assert not invalid, result.stderr[-4000:]


def test_every_unclosed_owner_in_a_cycle_warns_whichever_is_finalized_first(tmp_path: Path) -> None:
    # The cell's collection may close the fd before the owner's __del__ runs: the owner
    # still reports that it was never closed, as DESIGN §6 says (ResourceWarning).
    result = _run(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            count = 0
            for round_ in range(10):
                made, client = owners(sys.argv[1], round_)
                client.close()
                for owner in made:
                    in_cycle(owner, False)
                    count += 1
                del made, owner
            gc.collect()
        unclosed = [w for w in caught if "unclosed <janus_net" in str(w.message)]
        print(json.dumps([count, len(unclosed)]), flush=True)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    made, warned = json.loads(result.stdout)
    assert warned == made == 50
