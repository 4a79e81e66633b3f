"""An echo service for the zero-downtime tests: one line in, the same line out, per connection.

    python zero_downtime_service.py handoff HANDOFF_ADDRESS NAME=ADDRESS ...
        takes its sockets from a predecessor at HANDOFF_ADDRESS (or listens on the
        NAME=ADDRESS list when there is none), serves, says ready, then offers them
        to its own successor; once handed over it stops accepting, drains, exits.
    python zero_downtime_service.py activation
        serves the sockets of `janus_net.listen_fds()` and sends READY=1 with
        `janus_net.notify`; on SIGTERM it stops accepting, drains and exits.

Accepting happens on stdlib dups of the shared listening sockets, switched to
non-blocking: several processes accept from the same listening socket during a
hand-over, and a blocking accept in one of them could wait for a connection
another already took. Prints ``serving PID NAME=ADDRESS ...`` once it serves.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading

import janus_net as jn


def serve(servers: dict[str, jn.Server], stop_r: int) -> None:
    """Accept and echo until ``stop_r`` becomes readable; then finish every open connection."""
    listeners = {}
    for server in servers.values():
        sock = socket.socket(fileno=os.dup(server.fileno()))
        sock.setblocking(False)
        listeners[sock.fileno()] = sock
    poller = select.poll()
    for fd in listeners:
        poller.register(fd, select.POLLIN)
    poller.register(stop_r, select.POLLIN)
    workers = []
    while True:
        ready = [fd for fd, _ in poller.poll()]
        if stop_r in ready:
            break
        for fd in ready:
            try:
                conn, _ = listeners[fd].accept()
            except BlockingIOError:
                continue  # another process took it
            worker = threading.Thread(target=echo, args=(conn,))
            worker.start()
            workers.append(worker)
        workers = [w for w in workers if w.is_alive()]
    for sock in listeners.values():
        sock.close()
    for worker in workers:
        worker.join()


def echo(conn: socket.socket) -> None:
    with conn:
        conn.setblocking(True)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        conn.sendall(data)


def join(thread: threading.Thread) -> None:
    # A signal may be delivered to any thread; Python runs its handler in the main thread
    # only when that thread runs bytecode, and a plain join() would sleep through it.
    while thread.is_alive():
        thread.join(0.1)


def announce(servers: dict[str, jn.Server]) -> None:
    fields = " ".join(f"{name}={server.address}" for name, server in servers.items())
    print(f"serving {os.getpid()} {fields}", flush=True)


def main() -> None:
    stop_r, stop_w = os.pipe()
    offer_ctx = jn.Context()

    def on_term(*_: object) -> None:
        offer_ctx.cancel()
        os.write(stop_w, b"x")

    signal.signal(signal.SIGTERM, on_term)
    if sys.argv[1] == "handoff":
        handoff_address = sys.argv[2]
        taken = jn.handoff.take(handoff_address, ctx=jn.Context.with_timeout(30))
        servers: dict[str, jn.Server] = {}
        for spec in sys.argv[3:]:
            name, _, address = spec.partition("=")
            found = taken.get(name)
            servers[name] = found if isinstance(found, jn.Server) else jn.listen(address)
        serving = threading.Thread(target=serve, args=(servers, stop_r))
        serving.start()
        announce(servers)
        taken.ready()

        def hand_over() -> None:
            try:
                jn.handoff.offer(handoff_address, servers, ctx=offer_ctx)
            except jn.SocketError.Timeout:
                return  # stopped by SIGTERM: the last owner
            os.write(stop_w, b"x")

        offering = threading.Thread(target=hand_over)
        offering.start()
        join(serving)
        join(offering)
    else:
        servers = {name: s for name, s in jn.listen_fds().items() if isinstance(s, jn.Server)}
        serving = threading.Thread(target=serve, args=(servers, stop_r))
        serving.start()
        announce(servers)
        jn.notify(ready=True, status="serving")
        join(serving)
    for server in servers.values():
        server.close()


if __name__ == "__main__":
    main()
