#!/usr/bin/env python3
"""An independent check of `make bench`'s listen-cycle, accept, import and memory rows (DESIGN §11).

Shares no code with scripts/bench: its own loops, its own timing, its own client (a
small C program written below and compiled into build/bench_check/, or, without a C
compiler, a Python client process), its own wheel for the import row. Rounds
alternate the order of the implementations; every ratio is the median of per-round
ratios, printed with its first and third quartile.

Workloads:

* listen cycle: ``jn.listen("127.0.0.1:0").close()`` (:core), with a `Context`
  (:service), with a `NetBind` (:sovereign), the stdlib socket sequence (socket,
  SO_REUSEADDR, bind, listen, getsockname, close) and ``socket.create_server``.
* accept, client process: a separate process keeps 8 connections in flight (it
  waits for the server's close, then resets), the server accepts and closes on the
  main thread, as a user's accept loop does. Measured by wall clock and by the
  server thread's CPU time per connection.
* accept, worker: the same on a thread other than the main one, where a janus_net
  wait has no signal wakeup fd to install (DESIGN §3: only the main thread runs
  Python signal handlers).
* accept, queued: the backlog is filled first (loopback connects complete at once),
  then the server accepts and closes them: the server's own cost per connection
  with a connection always waiting, no other process in the picture.
* import: ``import janus_net`` / ``import socket`` in fresh interpreters of a venv
  with the package installed from a wheel of this tree (bytecode compiled at install).
* memory: bytes per open listener, 1000 listeners, janus vs stdlib: tracemalloc's count of
  Python's objects plus glibc's count of the C heap (the shim's descriptor cells), DESIGN §11.

* accept floor (``--only floor``, not in the default run): the same client, the stdlib and
  janus_net against a prototype (C below, compiled by cffi into build/bench_check/): one
  native call per accept that polls the listener, a wake fd and the signal wakeup fd, then
  accept4 -- the floor cffi allows for an accept that close() and signals can wake.

Usage: .venv/bin/python scripts/bench_check_listen.py [--rounds N] [--scale X] [--only listen,accept,...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import janus_net as jn  # noqa: E402

OUT = REPO / "build" / "bench_check"

CLIENT_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
/* keep K connections open to 127.0.0.1:PORT; each, once the server closed it, is reset and replaced */
static int dial(struct sockaddr_in *to) {
    struct linger reset = {1, 0};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    if (connect(s, (struct sockaddr *)to, sizeof *to) != 0) { close(s); return -1; }
    return s;
}
int main(int argc, char **argv) {
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons((unsigned short)atoi(argv[1]));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int k = argc > 2 ? atoi(argv[2]) : 8, open_[64];
    for (int i = 0; i < k; i++) if ((open_[i] = dial(&to)) < 0) return 1;
    for (unsigned long n = 0;; n++) {
        int i = (int)(n % (unsigned long)k);
        char c;
        if (read(open_[i], &c, 1) != 0) { /* data or an error: the server went away */ }
        close(open_[i]);
        if ((open_[i] = dial(&to)) < 0) return 0;
    }
}
"""

PY_CLIENT = r"""
import socket, struct, sys
port, k = int(sys.argv[1]), int(sys.argv[2])
reset = struct.pack("ii", 1, 0)
def dial():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
    s.connect(("127.0.0.1", port)); return s
ring = [dial() for _ in range(k)]
i = 0
while True:
    try:
        ring[i].recv(1); ring[i].close(); ring[i] = dial()
    except OSError:
        break
    i = (i + 1) % k
"""


def client_command() -> list[str]:
    """The accept workload's client: the C program (built once), else the Python one."""
    binary = OUT / "client"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is not None:
        source = OUT / "client.c"
        if not binary.exists() or not source.exists() or source.read_text() != CLIENT_C:
            OUT.mkdir(parents=True, exist_ok=True)
            source.write_text(CLIENT_C)
            subprocess.run([cc, "-O2", "-o", str(binary), str(source)], check=True)
        return [str(binary)]
    return [sys.executable, "-c", PY_CLIENT]


# --- the workloads: each returns seconds per operation as (wall, cpu)


def clocked(body, n: int) -> tuple[float, float]:
    w, c = time.perf_counter(), time.thread_time()
    body(n)
    return (time.perf_counter() - w) / n, (time.thread_time() - c) / n


def listen_core(n: int) -> None:
    listen = jn.listen
    for _ in range(n):
        listen("127.0.0.1:0").close()


CTX = jn.Context()


def listen_service(n: int) -> None:
    listen, ctx = jn.listen_with_context, CTX
    for _ in range(n):
        listen("127.0.0.1:0", ctx).close()


CAP = jn.NetBind("bench-check").allow_port(0)


def listen_sovereign(n: int) -> None:
    listen, cap = jn.listen_with_capability, CAP
    for _ in range(n):
        listen("127.0.0.1:0", cap).close()


def listen_stdlib(n: int) -> None:
    new = socket.socket
    for _ in range(n):
        s = new(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        s.getsockname()
        s.close()


def listen_create_server(n: int) -> None:
    create = socket.create_server
    for _ in range(n):
        create(("127.0.0.1", 0)).close()


def accept_client(kind: str, n: int, client: list[str], worker: bool = False) -> tuple[float, float]:
    """n accepts (and closes) while a client process keeps connections coming (``worker``: on another thread)."""
    if worker:
        import threading

        got: list[tuple[float, float]] = []
        t = threading.Thread(target=lambda: got.append(accept_client(kind, n, client)))
        t.start()
        t.join()
        return got[0]
    if kind == "janus":
        srv = jn.listen("127.0.0.1:0")
        port = srv.address.port

        def take() -> None:
            srv.accept().close()
    else:
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]

        def take() -> None:
            srv.accept()[0].close()

    proc = subprocess.Popen([*client, str(port), "8"])
    try:
        take()  # the client is up: its first connection arrived
        w, c = time.perf_counter(), time.thread_time()
        for _ in range(n):
            take()
        return (time.perf_counter() - w) / n, (time.thread_time() - c) / n
    finally:
        proc.kill()
        proc.wait()
        srv.close()


RESET = struct.pack("ii", 1, 0)


def accept_queued(kind: str, n: int) -> tuple[float, float]:
    """n connections queued first, then accepted and closed: the server side alone."""
    if kind == "janus":
        srv = jn.listen("127.0.0.1:0", backlog=n + 16)
        port, take = srv.address.port, srv.accept
        close = lambda conn: conn.close()  # noqa: E731
    else:
        srv = socket.create_server(("127.0.0.1", 0), backlog=n + 16)
        port, take = srv.getsockname()[1], srv.accept
        close = lambda pair: pair[0].close()  # noqa: E731
    peers = []
    try:
        for _ in range(n):
            p = socket.socket()
            p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            p.connect(("127.0.0.1", port))
            peers.append(p)
        w, c = time.perf_counter(), time.thread_time()
        for _ in range(n):
            close(take())
        return (time.perf_counter() - w) / n, (time.thread_time() - c) / n
    finally:
        for p in peers:
            p.close()
        srv.close()


# --- the accept floor: what cffi allows for a close-wakeable, signal-aware accept (--only floor)

FLOOR_C = r"""
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static int accepting;  /* one thread at a time between poll and accept4, as jn_desc_accept */
static long waited;    /* how many accepts found nothing queued (floor_poll0 only) */

/* Every accept of janus_net keeps three promises on a listener whose description it never
   switches to O_NONBLOCK (another process may hold it): close() from another thread wakes
   it (wake_fd), a Python signal handler runs on the main thread (sig_fd, the interpreter's
   wakeup fd, drained here), and accept(2) runs only once poll says a connection is queued.
   One poll of the three (it returns at once when a connection is queued), then accept4:
   two syscalls per connection, waiting or not. Returns the fd; -1 with errno (EAGAIN: poll
   again; EINTR: the caller's checkpoint); -2: closed; -3: a signal woke it. */
static int floor_accept(int lfd, int wake_fd, int sig_fd, struct sockaddr *sa, socklen_t *len)
{
    struct pollfd p[3] = {{lfd, POLLIN, 0}, {wake_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (poll(p, 3, -1) < 0)
        return -1;
    if (p[1].revents)
        return -2;
    if (p[2].revents) {
        char bytes[256];
        while (read(sig_fd, bytes, sizeof bytes) > 0) {}
        return -3;
    }
    int idle = 0;
    if (!(p[0].revents & POLLIN) || !__atomic_compare_exchange_n(&accepting, &idle, 1, 0, __ATOMIC_SEQ_CST,
                                                                  __ATOMIC_SEQ_CST)) {
        errno = EAGAIN;
        return -1;
    }
    int rc = accept4(lfd, sa, len, SOCK_CLOEXEC);
    int err = errno;
    __atomic_store_n(&accepting, 0, __ATOMIC_SEQ_CST);
    errno = err;
    return rc;
}

/* janus_net's present syscall shape with no Python between the calls: poll(listener, 0);
   when nothing is queued, the wait's poll of the three, then poll(listener, 0) again;
   then accept4. */
static int floor_poll0(int lfd, int wake_fd, int sig_fd, struct sockaddr *sa, socklen_t *len)
{
    struct pollfd one = {lfd, POLLIN, 0};
    if (poll(&one, 1, 0) == 0) {
        waited++;
        struct pollfd p[3] = {{lfd, POLLIN, 0}, {wake_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
        if (poll(p, 3, -1) < 0)
            return -1;
        if (p[1].revents)
            return -2;
        if (p[2].revents) {
            char bytes[256];
            while (read(sig_fd, bytes, sizeof bytes) > 0) {}
            return -3;
        }
        one.revents = 0;
        if (poll(&one, 1, 0) == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    return accept4(lfd, sa, len, SOCK_CLOEXEC);
}

static long floor_waited(void) { long n = waited; waited = 0; return n; }

/* floor_poll0 cut where janus_net's Python sits: the attempt (poll 0, then accept4 when a
   connection is queued; -1 EAGAIN when none), and the wait (the poll of the three; -2
   closed, -3 a signal, else 0). */
static int floor_try(int lfd, struct sockaddr *sa, socklen_t *len)
{
    struct pollfd one = {lfd, POLLIN, 0};
    if (poll(&one, 1, 0) == 0) {
        errno = EAGAIN;
        return -1;
    }
    return accept4(lfd, sa, len, SOCK_CLOEXEC);
}

static int floor_wait(int lfd, int wake_fd, int sig_fd)
{
    waited++;
    struct pollfd p[3] = {{lfd, POLLIN, 0}, {wake_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (poll(p, 3, -1) < 0)
        return -1;
    if (p[1].revents)
        return -2;
    if (p[2].revents) {
        char bytes[256];
        while (read(sig_fd, bytes, sizeof bytes) > 0) {}
        return -3;
    }
    return 0;
}
"""

FLOOR_CDEF = """
int floor_accept(int, int, int, struct sockaddr *, socklen_t *);
int floor_poll0(int, int, int, struct sockaddr *, socklen_t *);
long floor_waited(void);
int floor_try(int, struct sockaddr *, socklen_t *);
int floor_wait(int, int, int);
"""


def floor_module():
    """The prototype above, compiled by cffi (API mode, as the shim is) into build/bench_check/."""
    import importlib

    import cffi

    name = "_accept_floor_" + hashlib.sha256((FLOOR_C + FLOOR_CDEF).encode()).hexdigest()[:10]
    if str(OUT) not in sys.path:
        sys.path.insert(0, str(OUT))
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    OUT.mkdir(parents=True, exist_ok=True)
    ffi = cffi.FFI()
    ffi.cdef("typedef unsigned int socklen_t; struct sockaddr { ...; };" + FLOOR_CDEF)
    ffi.set_source(name, "#include <sys/socket.h>\n" + FLOOR_C, extra_compile_args=["-O2"])
    ffi.compile(tmpdir=str(OUT))
    return importlib.import_module(name)


def accept_floor(kind: str, n: int, client: list[str], waits: dict[str, list[float]]) -> tuple[float, float]:
    """n accepts (and closes) on the main thread, client process, through one native call per accept.

    ``floor``: janus_net's wakeup pipe installed once, for the whole loop; ``floor-install``:
    installed and taken out around every accept, with `signal.set_wakeup_fd` as janus_net's
    wait does (the interpreter has no cheaper way to set it); ``floor-poll0``: janus_net's
    present syscalls (poll 0, wait, poll 0, accept4), pipe installed once; ``floor-split``:
    the same cut in two native calls (the attempt, the wait), pipe installed once;
    ``floor-lean``: that, with the pipe emptied, installed and taken out around each wait by
    the least Python that can (no look-ups); ``floor-watch``: that, inside janus_net's own
    `wakeup.Watch` (its pipe installed for the length of each wait, as every janus_net
    wait does); ``kernel``:
    janus_net's kernel door itself (a `jn.listen` Server's cell, a new cell per
    connection, `cell_io.accept_into`, `waking.wait` inside a `Watch`, `close_desc`) with
    no Server.accept, `wait_for` or Stream around it.
    """
    if kind == "kernel":
        return accept_kernel(n, client, waits)
    import signal

    from janus_net._kernel import waking
    from janus_net._policy import wakeup

    mod = floor_module()
    ffi, lib = mod.ffi, mod.lib
    call = lib.floor_poll0 if kind == "floor-poll0" else lib.floor_accept
    srv = socket.create_server(("127.0.0.1", 0))
    lfd, port = srv.fileno(), srv.getsockname()[1]
    wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)  # close()'s wake fd
    sig_r, sig_w = wakeup._own_pipe()
    storage = ffi.new("char[128]")
    sa = ffi.cast("struct sockaddr *", storage)
    size = ffi.new("socklen_t *")
    set_wakeup_fd, close = signal.set_wakeup_fd, os.close
    per_accept = kind == "floor-install"

    class Lean:
        """The least Python a per-wait install needs: empty the pipe, install, take out (no look-ups)."""

        __slots__ = ()
        fd = sig_r

        def __enter__(self) -> Lean:
            forward(sig_r, -1)
            set_wakeup_fd(sig_w, warn_on_full_buffer=False)
            return self

        def __exit__(self, *exc: object) -> None:
            set_wakeup_fd(-1)

    class Bare:
        """No install at all (the pipe is installed once for the loop)."""

        __slots__ = ()
        fd = sig_r

        def __enter__(self) -> Bare:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    watch_type = {"floor-watch": wakeup.Watch, "floor-lean": Lean, "floor-split": Bare}.get(kind)
    forward = waking.forward_wakeup

    def take_split() -> None:
        size[0] = 128
        fd = lib.floor_try(lfd, sa, size)
        if fd < 0:
            with watch_type() as watch:
                while fd < 0:
                    if lib.floor_wait(lfd, wake, watch.fd) == -2:
                        raise RuntimeError("closed")
                    size[0] = 128
                    fd = lib.floor_try(lfd, sa, size)
        ffi.buffer(storage, size[0])[:]
        close(fd)

    def take() -> None:
        while True:
            size[0] = 128
            if per_accept:
                set_wakeup_fd(sig_w, warn_on_full_buffer=False)
                try:
                    fd = call(lfd, wake, sig_r, sa, size)
                finally:
                    set_wakeup_fd(-1)
            else:
                fd = call(lfd, wake, sig_r, sa, size)
            if fd >= 0:
                ffi.buffer(storage, size[0])[:]  # the peer's bytes, as janus_net keeps them
                close(fd)
                return
            if fd == -2:
                raise RuntimeError("closed")

    split = kind in ("floor-watch", "floor-lean")
    if watch_type is not None:
        take = take_split
    if not per_accept and not split:
        set_wakeup_fd(sig_w, warn_on_full_buffer=False)
    proc = subprocess.Popen([*client, str(port), "8"])
    try:
        take()
        lib.floor_waited()
        w, c = time.perf_counter(), time.thread_time()
        for _ in range(n):
            take()
        result = (time.perf_counter() - w) / n, (time.thread_time() - c) / n
        if kind in ("floor-poll0", "floor-split", "floor-lean", "floor-watch"):
            waits.setdefault(kind, []).append(lib.floor_waited() / n)
        return result
    finally:
        if not per_accept and not split:
            set_wakeup_fd(-1)
        proc.kill()
        proc.wait()
        srv.close()
        close(wake)


def accept_kernel(n: int, client: list[str], waits: dict[str, list[float]]) -> tuple[float, float]:
    """`accept_floor`'s ``kernel`` rung: janus_net's own cells, accept and wait, nothing above them."""
    from janus_net._kernel import cell_io, cells, waking
    from janus_net._policy import wakeup
    from janus_net._shim import ffi, lib

    srv = jn.listen("127.0.0.1:0")
    port = srv.address.port
    desc, address = srv._desc, srv._address
    storage = ffi.new("char[128]")
    size = ffi.new("socklen_t *")
    new_desc, close_desc, accept_into, wait = cells.new_desc, cells.close_desc, cell_io.accept_into, waking.wait
    pollin = lib.POLLIN
    waited = [0]

    def take() -> None:
        conn_desc = new_desc()
        size[0] = 128
        conn = accept_into(desc, storage, size, conn_desc, None, address)
        if conn < 0:
            waited[0] += 1
            waking.make_wake(desc)
            with wakeup.Watch() as watch:
                while conn < 0:
                    wait(desc, pollin, -1, watch.fd, watch.drain, -1, None)
                    size[0] = 128
                    conn = accept_into(desc, storage, size, conn_desc, None, address)
        ffi.buffer(storage, size[0])[:]
        close_desc(conn_desc)

    proc = subprocess.Popen([*client, str(port), "8"])
    try:
        take()
        waited[0] = 0
        w, c = time.perf_counter(), time.thread_time()
        for _ in range(n):
            take()
        result = (time.perf_counter() - w) / n, (time.thread_time() - c) / n
        waits.setdefault("kernel", []).append(waited[0] / n)
        return result
    finally:
        proc.kill()
        proc.wait()
        srv.close()


# --- the ladder: the :core cycle built up one exactness mechanism at a time (what each costs)


def ladder() -> dict[str, object]:
    """Loop bodies from the bare native calls up to ``jn.listen(text).close()``, each adding one mechanism."""
    from janus_net._kernel import cells
    from janus_net._profiles import native_sequence, option_checks, sequence
    from janus_net._profiles.addresses import as_bind_address
    from janus_net._shim import ffi, lib
    from janus_net._sockets.server import Server

    addr = as_bind_address("127.0.0.1:0")
    opts = option_checks.DEFAULT_LISTEN
    plan = native_sequence.plan_for(addr, opts)
    assert plan is not None
    encoded = addr.sockaddr
    io_p = ffi.typeof("struct jn_steps_io *")

    def raw_native(n: int) -> None:  # cffi's floor: the same C calls, no Python around them
        new_cell, new, steps, close_now, free = (
            lib.jn_desc_new,
            ffi.new,
            lib.jn_steps,
            lib.jn_desc_close_now,
            lib.jn_desc_free,
        )
        struct, sa, salen, end = plan.struct, encoded.pointer, encoded.length, plan.end
        for _ in range(n):
            d = new_cell()
            io = new(io_p)
            io.desc = d
            if steps(struct, io, sa, salen, 0, end) < 0:
                raise OSError(ffi.errno, "jn_steps")
            close_now(d)
            free(d)

    def owned_cell(n: int) -> None:  # + the cell is a collected object (ffi.gc): the exactly-once backstop
        new_desc, close_desc, new, steps = cells.new_desc, cells.close_desc, ffi.new, lib.jn_steps
        struct, sa, salen, end = plan.struct, encoded.pointer, encoded.length, plan.end
        for _ in range(n):
            d = new_desc()
            io = new(io_p)
            io.desc = d
            if steps(struct, io, sa, salen, 0, end) < 0:
                raise OSError(ffi.errno, "jn_steps")
            close_desc(d)

    def driver(n: int) -> None:  # + the one loop's driver: seam check, errno tables on failure, discard on raise
        new_desc, close_desc, new_io, run = (
            cells.new_desc,
            cells.close_desc,
            native_sequence.new_io,
            native_sequence.run,
        )
        for _ in range(n):
            d = new_desc()
            run(plan, new_io(d), addr)
            close_desc(d)

    def owner(n: int) -> None:  # + the Server object (hold, owner registry check, close(), __del__)
        new_desc, new_io, run = cells.new_desc, native_sequence.new_io, native_sequence.run
        for _ in range(n):
            d = new_desc()
            io = new_io(d)
            run(plan, io, addr)
            Server(d, addr, None, io.port).close()

    def sequence_front(n: int) -> None:  # + validate, Landlock refusal check, audit event, plan lookup
        open_socket = sequence.open_socket
        for _ in range(n):
            open_socket(addr, opts, None, None, Server).close()

    def public(n: int) -> None:  # + the public function: keyword check, the address text (cached parse)
        listen = jn.listen
        for _ in range(n):
            listen("127.0.0.1:0").close()

    return {
        "stdlib socket sequence": listen_stdlib,
        "raw native (cffi floor)": raw_native,
        "+ owned cell": owned_cell,
        "+ loop driver": driver,
        "+ Server object": owner,
        "+ checks, audit, plan": sequence_front,
        "+ jn.listen(text)": public,
    }


# --- import (from a wheel) and memory, in fresh interpreters


def wheel_python() -> str:
    """A venv under build/bench_check/ with this tree installed from a wheel (rebuilt on any source change)."""
    digest = hashlib.sha256()
    for path in sorted([*REPO.glob("janus_net/**/*.py"), *REPO.glob("native/**/*"), REPO / "pyproject.toml",
                        REPO / "setup.py"]):  # fmt: skip
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    home = OUT / f"wheel-{digest.hexdigest()[:12]}"
    python = home / "venv" / "bin" / "python"
    if not python.exists():
        for old in OUT.glob("wheel-*"):
            shutil.rmtree(old, ignore_errors=True)
        print(f"building a wheel into {home}", file=sys.stderr, flush=True)
        home.mkdir(parents=True)
        run = {"check": True, "capture_output": True}
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(home), str(REPO)], **run)
        subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], **run)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(next(home.glob("*.whl")))], **run)
    return str(python)


def fresh(python: str, code: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir(), env=env)  # fmt: skip
    return float(done.stdout.split()[-1])


IMPORT = "import time\nt0 = time.perf_counter()\nimport {0}\nprint(time.perf_counter() - t0)"

MEMORY = r"""
import ctypes, resource, socket, sys, tracemalloc
k = int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, k + 100)), hard))
import janus_net
if sys.argv[1] == "janus":
    make = lambda: janus_net.listen("127.0.0.1:0")
else:
    def make():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        return s
make().close(); make().close()
slots = [None] * k
if sys.argv[3] == "python":  # Python's objects, by tracemalloc
    tracemalloc.start()
    m0 = tracemalloc.get_traced_memory()[0]
    for i in range(k):
        slots[i] = make()
    m1 = tracemalloc.get_traced_memory()[0]
else:  # the C heap (glibc's bytes in use; tracemalloc off, its own tables are malloc'd)
    class M(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in "a b c d e f g used h i".split()]
    info = ctypes.CDLL(None).mallinfo2
    info.restype = M
    m0 = info().used
    for i in range(k):
        slots[i] = make()
    m1 = info().used
for s in slots:
    s.close()
print((m1 - m0) / k)
"""


# --- rounds and ratios


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    return quartiles([x / y for x, y in zip(a, b, strict=True)])


def show(label: str, q: tuple[float, float, float], target: str = "") -> None:
    print(f"  {label:<58} {q[1]:7.3f} [{q[0]:.2f}-{q[2]:.2f}]  {target}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="listen,ladder,accept,worker,queued,import,memory")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    rounds = args.rounds
    n_listen, n_accept = max(1, int(4000 * args.scale)), max(1, int(3000 * args.scale))
    print(f"load average {os.getloadavg()[0]:.2f}; {rounds} alternating rounds; medians of per-round ratios "
          "[quartiles]", flush=True)  # fmt: skip

    if "listen" in parts:
        impls = {"core": listen_core, "service": listen_service, "sovereign": listen_sovereign,
                 "stdlib": listen_stdlib, "create_server": listen_create_server}  # fmt: skip
        names = list(impls)
        wall: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        for k in names:
            impls[k](200)  # warm: plans, caches, the capability module
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in order:
                w, c = clocked(impls[k], n_listen)
                wall[k].append(w)
                cpu[k].append(c)
        print("listen cycle (µs per cycle, median: wall / cpu)")
        for k in names:
            print(f"  {k:<14} {statistics.median(wall[k]) * 1e6:7.2f} / {statistics.median(cpu[k]) * 1e6:7.2f}")
        for clock, d in (("wall", wall), ("cpu", cpu)):
            show(f":core / stdlib socket sequence ({clock})", paired(d["core"], d["stdlib"]), "<= 1.05")
            show(f":core / socket.create_server ({clock})", paired(d["core"], d["create_server"]), "<= 1.05")
            show(f":service / :core ({clock})", paired(d["service"], d["core"]), "<= 1.10")
            show(f":sovereign / :core ({clock})", paired(d["sovereign"], d["core"]), "<= 1.10")

    if "ladder" in parts:
        rungs = ladder()
        names = list(rungs)
        times: dict[str, list[float]] = {k: [] for k in names}
        for k in names:
            rungs[k](200)
        for r in range(rounds):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                times[k].append(clocked(rungs[k], n_listen)[1])
        print("the :core cycle, one mechanism at a time (thread CPU µs per cycle, median; step: what it adds)")
        previous = None
        for k in names:
            med = statistics.median(times[k]) * 1e6
            step = "" if previous is None or k == names[1] else f"{(med - previous) * 1000:+7.0f} ns"
            ratio = paired(times[k], times[names[0]])
            print(f"  {k:<26} {med:7.2f}  {step:>11}   / stdlib {ratio[1]:.3f} [{ratio[0]:.2f}-{ratio[2]:.2f}]")
            previous = med

    for part, worker in (("accept", False), ("worker", True)):
        if part not in parts:
            continue
        client = client_command()
        res: dict[str, list[tuple[float, float]]] = {"janus": [], "stdlib": []}
        for r in range(rounds):
            for k in ("janus", "stdlib") if r % 2 == 0 else ("stdlib", "janus"):
                res[k].append(accept_client(k, n_accept, client, worker))
        where = "a worker thread" if worker else "the main thread"
        print(f"accept on {where}, client process ({Path(client[0]).name}; µs per connection: wall / cpu)")
        for k, v in res.items():
            print(f"  {k:<14} {statistics.median(x[0] for x in v) * 1e6:7.2f} / "
                  f"{statistics.median(x[1] for x in v) * 1e6:7.2f}")  # fmt: skip
        # A rate ratio: stdlib time / janus time.
        show("accept rate janus / stdlib (wall)", paired([x[0] for x in res["stdlib"]], [x[0] for x in res["janus"]]),
             ">= 1.00")  # fmt: skip
        show("accept rate janus / stdlib (server cpu)",
             paired([x[1] for x in res["stdlib"]], [x[1] for x in res["janus"]]), ">= 1.00")  # fmt: skip

    if "floor" in parts:
        client = client_command()
        kinds = ["stdlib", "floor", "floor-poll0", "floor-install", "floor-split", "floor-lean", "floor-watch"]
        kinds += ["kernel", "janus"]
        res = {k: [] for k in kinds}
        waits: dict[str, list[float]] = {}
        floor_module()
        for r in range(rounds):
            for k in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                if k.startswith("floor") or k == "kernel":
                    res[k].append(accept_floor(k, n_accept, client, waits))
                else:
                    res[k].append(accept_client(k, n_accept, client))
        print("accept floor, main thread, client process (µs per connection: wall / cpu; rate / stdlib by cpu, wall)")
        for k, v in res.items():
            cpu_q = paired([x[1] for x in res["stdlib"]], [x[1] for x in v])
            wall_q = paired([x[0] for x in res["stdlib"]], [x[0] for x in v])
            us = f"{statistics.median(x[0] for x in v) * 1e6:7.2f} / {statistics.median(x[1] for x in v) * 1e6:7.2f}"
            print(f"  {k:<14} {us}   cpu {cpu_q[1]:.3f} [{cpu_q[0]:.2f}-{cpu_q[2]:.2f}]"
                  f"   wall {wall_q[1]:.3f} [{wall_q[0]:.2f}-{wall_q[2]:.2f}]")  # fmt: skip
        for k, v in waits.items():
            q = quartiles(v)
            print(f"  accepts that found nothing queued, {k}: {q[1]:.0%} [{q[0]:.0%}-{q[2]:.0%}]")

    if "queued" in parts:
        res = {"janus": [], "stdlib": []}
        n = min(n_accept, 3000)
        for r in range(rounds):
            for k in ("janus", "stdlib") if r % 2 == 0 else ("stdlib", "janus"):
                res[k].append(accept_queued(k, n))
        print("accept, queued (server side alone; µs per connection: wall / cpu)")
        for k, v in res.items():
            print(f"  {k:<14} {statistics.median(x[0] for x in v) * 1e6:7.2f} / "
                  f"{statistics.median(x[1] for x in v) * 1e6:7.2f}")  # fmt: skip
        show("queued accept rate janus / stdlib (cpu)",
             paired([x[1] for x in res["stdlib"]], [x[1] for x in res["janus"]]))  # fmt: skip

    if "import" in parts:
        python = wheel_python()
        times: dict[str, list[float]] = {"janus_net": [], "socket": []}
        for r in range(max(rounds, 11)):
            for m in ("janus_net", "socket") if r % 2 == 0 else ("socket", "janus_net"):
                times[m].append(fresh(python, IMPORT.format(m)))
        print(f"import (fresh interpreters, {python}; ms, median)")
        for m, v in times.items():
            print(f"  {m:<14} {statistics.median(v) * 1e3:7.2f}")
        show("import janus_net / import socket", paired(times["janus_net"], times["socket"]), "<= 3.00")

    if "memory" in parts:
        got: dict[str, list[float]] = {"janus": [], "stdlib": []}
        for r in range(3):
            for k in ("janus", "stdlib") if r % 2 == 0 else ("stdlib", "janus"):
                python_bytes = fresh(sys.executable, MEMORY, k, "1000", "python")
                c_bytes = fresh(sys.executable, MEMORY, k, "1000", "c")
                got[k].append(python_bytes + c_bytes)
                print(f"  {k:<14} {python_bytes:7.0f} B Python + {c_bytes:5.0f} B C heap", flush=True)
        print("memory per open listener (Python's bytes + the C heap's, median)")
        for k, v in got.items():
            print(f"  {k:<14} {statistics.median(v):9.0f}")
        show("memory per listener janus / stdlib", paired(got["janus"], got["stdlib"]), "<= 3.00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
