"""``janus-net demo``: the three profiles and the new capabilities, run against themselves on loopback.

Each step prints what it did and what came back, so the output doubles as a tour:

1. :core -- ``listen("127.0.0.1:0")``, the bytes of the encoded listening address
   (as the layout tool shows them), and a connect / accept / echo round trip with a
   stdlib client;
2. :service -- ``listen_with_context``, then an ``accept`` that nobody connects to,
   ended first by a 0.3 s deadline and then by ``cancel()`` from another thread;
3. :sovereign -- a `NetBind` that allows port 0, with its audit records printed as
   they are written (``check_bind_address``, then ``bind_socket`` with the real
   port), and a denied bind of port 9 with its record and the error;
4. hand-over -- a listening socket given to a successor with ``handoff.offer`` /
   ``handoff.take`` over a unix socket: the successor accepts on the same port, and the
   predecessor's ``close()`` does not stop it;
5. datagrams at line rate -- 54 datagrams of 1200 bytes in one ``send_segments``
   (UDP GSO) and received with ``receive_segments`` (GRO), cut apart with ``split``;
6. names without threads -- ``resolve`` from a hosts file of its own, a lookup sent to
   a name server that never answers ended by ``cancel()`` from another thread, and
   ``connect_host`` racing a blackholed [::1] (a listener whose accept queue is full)
   against 127.0.0.1 (Happy Eyeballs).

Everything it opens it closes; it exits 0 when every step behaved as described.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from janus_net import handoff, layout
from janus_net._cli.output import Output
from janus_net._cli.stop_signals import StopSignals
from janus_net._policy.capability import NetBind
from janus_net._policy.context import Context
from janus_net._profiles.connect_host import connect_host
from janus_net._profiles.listen import bind, listen, listen_with_capability, listen_with_context
from janus_net._profiles.resolve import resolve
from janus_net._profiles.resolver_config import ResolverConfig
from janus_net._sockets.segments import split
from janus_net._sockets.server import Server
from janus_net._values.dns_message import TYPE_A, TYPE_AAAA, encode_query, reply_id
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net.audit import AuditRecord

_DEADLINE = 0.3

#: Prints one line of the tour (flushed, so a pipe sees it at once).
_Say = Callable[..., None]


def command(args: argparse.Namespace, stops: StopSignals) -> int:
    """``janus-net demo``: `run` on stdout."""
    # Every step closes what it made in a `with` block: a stop signal may land anywhere.
    stops.deliver()
    return run(Output(False).file)


def run(out: TextIO) -> int:
    """Run the tour on loopback, printing each step to ``out``.

    Args:
        out: a text file; each line is flushed as it is written.

    Returns:
        The exit status: 0 when every step behaved as described.

    Raises:
        SocketError: a step failed in a way the demo does not expect (say, no loopback).
        OSError: ``out`` cannot be written (``janus-net demo`` reports it as one line).
    """

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    say("janus-net demo: the three profiles on loopback")
    _core(say)
    _service(say)
    _sovereign(say)
    _handover(say)
    _segments(say)
    _names(say)
    say()
    say("done: every socket the demo opened is closed")
    return 0


def _core(say: _Say) -> None:
    say()
    say(":core  listen / connect / accept")
    with listen("127.0.0.1:0") as server:
        say(f"  listen('127.0.0.1:0') -> listening on {server.address} (the kernel chose the port)")
        say("  the listening address as bind() was given it:")
        for line in layout.render_address(layout.encoded_address(server.address)):
            say(f"    {line}")
        with _client(server) as client, server.accept() as stream:
            say(f"  stdlib client connected; accept() -> stream from {stream.address}")
            client.sendall(b"ping")
            data = stream.read(16)
            stream.write_all(data.upper())
            say(f"  round trip: client sent b'ping', server read {data!r}, client got back {client.recv(16)!r}")


def _service(say: _Say) -> None:
    say()
    say(":service  listen_with_context, accept(ctx) with nobody connecting")
    ctx = Context.with_timeout(10)
    with listen_with_context("127.0.0.1:0", ctx) as server:
        say(f"  listen_with_context('127.0.0.1:0', ctx) -> listening on {server.address} (5 checkpoints passed)")
        waits = [
            (f"accept(ctx.child(timeout={_DEADLINE}))", ctx.child(timeout=_DEADLINE), None),
            ("accept(ctx2), ctx2.cancel() from another thread after 0.1 s", Context(), 0.1),
        ]
        for label, wait_ctx, cancel_after in waits:
            if cancel_after is not None:
                threading.Timer(cancel_after, wait_ctx.cancel).start()
            start = time.monotonic()
            try:
                server.accept(wait_ctx).close()
                say(f"  {label}: a connection arrived?")
            except SocketError.Timeout as e:
                elapsed = time.monotonic() - start
                say(f"  {label}: {e} (reason={e.reason!r}) after {elapsed:.2f} s")
        with _client(server), server.accept(ctx) as stream:
            say(f"  the server still accepts: accept(ctx) -> stream from {stream.address}")


def _sovereign(say: _Say) -> None:
    say()
    say(":sovereign  NetBind capability with an audit trail")

    def print_record(record: AuditRecord) -> None:
        say(f"  audit {json.dumps(record.as_dict())}")

    cap = NetBind("demo", audit=print_record).allow_port(0)
    say(f"  NetBind('demo').allow_port(0) -> grants {sorted(cap.grants)}, ports {sorted(cap.ports)}")
    say("  listen_with_capability('127.0.0.1:0', cap):")
    with listen_with_capability("127.0.0.1:0", cap) as server:
        say(f"  -> listening on {server.address} (bind_socket recorded the real port {server.address.port})")
    say("  listen_with_capability('127.0.0.1:9', cap):")
    try:
        listen_with_capability("127.0.0.1:9", cap).close()
        say("  -> listening?! the capability should have denied port 9")
    except SocketError.CapabilityDenied as e:
        say(f"  -> janus-net: {e}")
        say("     (denied before any syscall: no socket was made)")


def _handover(say: _Say) -> None:
    say()
    say("hand-over  a listening socket moves to a successor, no connection lost")
    with tempfile.TemporaryDirectory() as directory:
        address = f"unix:{os.path.join(directory, 'handoff')}"
        server = listen("127.0.0.1:0")
        errors: list[BaseException] = []

        def offer() -> None:
            try:
                handoff.offer(address, {"web": server}, ctx=Context.with_timeout(10))
            except BaseException as e:  # shown below
                errors.append(e)

        thread = threading.Thread(target=offer)
        thread.start()
        try:
            say(f"  predecessor: listening on {server.address}; handoff.offer({address!r}, {{'web': server}})")
            deadline = time.monotonic() + 10
            while True:  # the offer listens a moment after the thread starts
                taken = handoff.take(address, ctx=Context.with_timeout(10))
                if taken.pending or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            web = taken["web"]
            assert isinstance(web, Server)  # what was offered: a listening stream socket
            say(f"  successor: handoff.take(...) -> {sorted(taken)}, 'web' listening on {web.address}")
            taken.ready()
            thread.join(10)
            server.close()
            say(
                f"  successor ready(); offer returned{' with ' + repr(errors[0]) if errors else ''}; predecessor closed"
            )
            with web, _client(web) as client, web.accept() as stream:
                client.sendall(b"still here")
                say(f"  the successor accepts on the same port: read {stream.read(16)!r} from {stream.address}")
        finally:
            thread.join(10)
            server.close()


def _segments(say: _Say) -> None:
    say()
    say("datagrams at line rate  UDP segmentation offload (GSO) and receive coalescing (GRO)")
    data = bytes(range(256)) * 253  # 64,768 bytes: 54 datagrams of 1200 bytes, the last one 1168
    with bind("127.0.0.1:0", gro=True) as receiver, bind("127.0.0.1:0") as sender:
        count = sender.send_segments(receiver.address, data, 1200)
        say(f"  send_segments(dest, {len(data)} bytes, 1200) -> {count} datagrams in one call")
        got: list[bytes] = []
        buffers = 0
        while len(got) < count:
            buffer, segment_size, source = receiver.receive_segments(ctx=Context.with_timeout(5))
            got.extend(bytes(view) for view in split(buffer, segment_size))
            buffers += 1
        same = b"".join(got) == data
        say(f"  receive_segments() x {buffers} -> {len(got)} datagrams from {source}, every byte in order: {same}")


def _names(say: _Say) -> None:
    say()
    say("names without threads  resolve and connect_host: a hosts file, DNS on janus_net's own sockets, Happy Eyeballs")
    # Everything stays on loopback: the name server is a UDP socket of the demo's that reads
    # nothing, and both addresses of the name come from a hosts file the demo writes.
    with tempfile.TemporaryDirectory() as directory, bind("127.0.0.1:0") as silent:
        resolv_conf = os.path.join(directory, "resolv.conf")
        hosts = os.path.join(directory, "hosts")
        with open(resolv_conf, "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
        with open(hosts, "w") as f:
            f.write("::1        web.demo.test\n127.0.0.1  web.demo.test\n")
        config = ResolverConfig.load(resolv_conf, hosts).replace(nameservers=[str(silent.address)])
        say(f"  hosts file: web.demo.test is ::1 and 127.0.0.1; the name server {silent.address} never answers")
        found = resolve("web.demo.test", 8080, config=config)
        shown = ", ".join(str(a) for a in found.addresses)
        say(f"  resolve('web.demo.test', 8080) -> {shown} from {found.source!r} (RFC 6724 order)")

        ctx = Context()
        threads: list[int] = []

        def cancel() -> None:
            threads.append(threading.active_count())  # the demo's thread and this timer's
            ctx.cancel()

        threading.Timer(0.1, cancel).start()
        start = time.monotonic()
        try:
            resolve("api.demo.test", config=config, ctx=ctx)
            say("  resolve('api.demo.test', ctx): an answer from a server that never answers?")
        except SocketError.Timeout as e:
            elapsed = time.monotonic() - start
            say(f"  resolve('api.demo.test', ctx), ctx.cancel() from another thread after 0.1 s: {e}")
            say(f"    returned after {elapsed:.2f} s; threads while it waited: {threads[0]} (the demo's and the timer)")
        queries = []
        try:
            while True:
                queries.append(silent.receive(512, ctx=Context.with_timeout(0.2)))
        except SocketError.Timeout:
            pass
        for source in sorted({source for _, source in queries}, key=str):
            asked = " and ".join(_question(data, "api.demo.test") for data, sent_from in queries if sent_from == source)
            # The lookup's socket is gone when its port can be bound again (UDP keeps no TIME_WAIT).
            with bind(str(source)):
                say(f"    the server was asked {asked} from {source}; that socket is closed: its port binds again")
        _happy_eyeballs(say, config)


def _question(query: bytes, name: str) -> str:
    """Which question about ``name`` a DNS query asks: the one whose encoding it is."""
    for label, qtype in (("A", TYPE_A), ("AAAA", TYPE_AAAA)):
        if query == encode_query(reply_id(query), name, qtype, False):
            return label
    return "something else"


def _happy_eyeballs(say: _Say, config: ResolverConfig) -> None:
    for _ in range(8):  # [::1]:P is free, 127.0.0.1:P may not be: try another P
        try:
            hole = listen("[::1]:0", backlog=0)
        except SocketError as e:  # a machine without IPv6 loopback: the race needs two families
            say(f"  connect_host: skipped, [::1] cannot be bound here ({e})")
            return
        with hole:
            assert isinstance(hole.address, Ip6Address)
            port = hole.address.port
            try:
                server = listen(f"127.0.0.1:{port}")
            except SocketError.AddressInUse:
                continue
            with server, _queue_filled(port):
                start = time.monotonic()
                with connect_host("web.demo.test", port, config=config, ctx=Context.with_timeout(10)) as stream:
                    elapsed = time.monotonic() - start
                    with server.accept():
                        say(f"  connect_host('web.demo.test', {port}, attempt_delay=0.25): [::1]:{port} drops the SYN")
                        say(f"    (its accept queue is full) -> connected to {stream.address} after {elapsed:.2f} s")
            return
    raise SocketError.AddressInUse(None, "no port free on both [::1] and 127.0.0.1 in 8 tries")


@contextmanager
def _queue_filled(port: int) -> Iterator[None]:
    """Fill the accept queue of the listener on [::1]:``port`` (backlog 0): the kernel then drops new SYNs."""
    clients: list[socket.socket] = []
    try:
        for _ in range(8):
            client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            clients.append(client)
            client.settimeout(0.2)
            try:
                client.connect(("::1", port))
            except TimeoutError:
                break  # this SYN was dropped: the queue is full
        else:
            raise RuntimeError("the accept queue of [::1] never filled")
        yield
    finally:
        for client in clients:
            client.close()


def _client(server: Server) -> socket.socket:
    addr = server.address
    assert isinstance(addr, Ip4Address)  # the demo listens on 127.0.0.1 only
    return socket.create_connection((addr.host, addr.port), timeout=5)


__all__ = ["command", "run"]
