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
   (UDP GSO) and received with ``receive_segments`` (GRO), cut apart with ``split``.

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
from collections.abc import Callable
from typing import TextIO

from janus_net import handoff, layout
from janus_net._cli.output import Output
from janus_net._cli.stop_signals import StopSignals
from janus_net._policy.capability import NetBind
from janus_net._policy.context import Context
from janus_net._profiles.listen import bind, listen, listen_with_capability, listen_with_context
from janus_net._sockets.segments import split
from janus_net._sockets.server import Server
from janus_net._values.errors import SocketError
from janus_net._values.ip import Ip4Address
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


def _client(server: Server) -> socket.socket:
    addr = server.address
    assert isinstance(addr, Ip4Address)  # the demo listens on 127.0.0.1 only
    return socket.create_connection((addr.host, addr.port), timeout=5)


__all__ = ["command", "run"]
