"""``janus-net listen``: bind through the matching profile, print the bound address, accept, echo.

Without ``--accept`` it serves (accepting, echoing with ``--echo``) until a stop
signal; ``--accept N`` accepts N connections and exits 0 (``--accept 0``: bind,
print, close).

The profile follows the flags: :core by default, :service with ``--timeout`` (one
`Context` for the whole run: the bind, every accept and every read), :sovereign with
``--capability`` (``--allow-port``, ``--audit``, ``--enforce``). A stop signal is held
(recorded, and cancelling the bind's context) until the server is inside its
``with`` block, whose exit closes it and removes its unix socket file. Writes take
no context, so `_Deadline` closes the stream from a timer thread when the deadline
passes (close from another thread wakes a blocked write) and the error that write
raises is reported as ``Timeout``.
"""

from __future__ import annotations

import argparse
import threading
from typing import TextIO

from janus_net._cli import flags, output
from janus_net._cli.output import HeldSink, Output, stdout_sink
from janus_net._cli.stop_signals import StopSignals
from janus_net._policy.capability import NetBind
from janus_net._policy.context import Context
from janus_net._profiles.listen import listen_with_capability, listen_with_context
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream
from janus_net._values.errors import SocketError
from janus_net.audit import Sink


def listen(args: argparse.Namespace, stops: StopSignals) -> int:
    """Bind, print, accept; a stop signal is held (recorded, and cancels the bind's context)
    until the server is inside its ``with`` block, whose exit closes it and removes its file."""
    out = Output(args.json)  # before anything is bound: a closed stdout is reported, not discovered later
    ctx = None if args.timeout is None else stops.context.child(timeout=args.timeout)
    audit_file: TextIO | None = None
    try:
        server, held, audit_file = _bind(args, out, ctx, stops.context)
        with server:
            stops.deliver()
            out.line(f"listening on {server.address}", listening=str(server.address))
            if held is not None:
                held.release()
            if args.accept is not None:
                for _ in range(args.accept):
                    _serve_one(args, out, server, ctx)
            else:
                # Serve until a stop signal: it cancels stops.context (an accept waiting
                # in poll wakes) and raises `Stopped`, which closes the server on its way out.
                while True:
                    _serve_one(args, out, server, stops.context if ctx is None else ctx)
    finally:
        if audit_file is not None:
            output.close_quietly(audit_file)
    return 0


def _bind(
    args: argparse.Namespace, out: Output, ctx: Context | None, stop_ctx: Context
) -> tuple[Server, HeldSink | None, TextIO | None]:
    options = {
        "backlog": args.backlog,
        "mode": args.mode,
        "unlink_stale": args.unlink_stale,
        **flags.kernel_options(args),
    }
    if args.capability is None:
        # Always a context: a stop signal cancels stop_ctx, so a wait for PATH.lock ends at once.
        return listen_with_context(args.address, stop_ctx if ctx is None else ctx, **options), None, None
    held: HeldSink | None = None
    audit_file: TextIO | None = None
    sink: Sink | None = None
    if args.audit == "-":
        sink = held = HeldSink(stdout_sink(out))
    elif args.audit is not None:
        audit_file = output.open_audit_file(args.audit)
        sink = output.FileSink(audit_file, args.audit)
    try:
        cap = NetBind(args.capability, audit=sink)
        for port in args.allow_port:
            cap.allow_port(port)
        try:
            if args.enforce:
                cap.enforce()  # the kernel enforces the ports from here on (Landlock)
            # A stop signal cancels stop_ctx (a lock wait, say, ends at once).
            server = listen_with_capability(args.address, cap, ctx=stop_ctx if ctx is None else ctx, **options)
        except SocketError:
            if held is not None:
                held.release()  # the denied record still gets printed
            raise
    except BaseException:
        if audit_file is not None:
            output.close_quietly(audit_file)
        raise
    return server, held, audit_file


# Errors that end one connection, not the run: the peer reset it, or went away while we wrote.
_PEER_GONE = (SocketError.ConnectionResetByPeer, SocketError.SocketUnconnected, SocketError.ConnectionAborted)


def _serve_one(args: argparse.Namespace, out: Output, server: Server, ctx: Context | None) -> None:
    with server.accept(ctx) as stream:
        peer = str(stream.address)
        out.line(f"accepted {peer}", accepted=peer)
        if not args.echo:
            return
        echoed = 0
        with _Deadline(stream, ctx) as deadline:
            try:
                while data := stream.read(65536, ctx):
                    stream.write_all(data)
                    echoed += len(data)
            except SocketError as e:
                if deadline.fired:
                    # Our own timer closed the stream under a blocked write (the woken
                    # write_all says SocketUnconnected): that was the deadline.
                    raise SocketError.Timeout("deadline", "the --timeout passed while writing", address=peer) from None
                if not isinstance(e, _PEER_GONE):
                    raise
                out.line(
                    f"connection from {peer} ended by {e.member} after {echoed} bytes echoed",
                    ended=peer,
                    error=e.member,
                    echoed=echoed,
                )
                return
            if deadline.fired:  # the timer's close() can end a read as end-of-stream: that was the deadline
                raise SocketError.Timeout("deadline", "the --timeout passed while echoing", address=peer)
        out.line(f"echoed {echoed} bytes to {peer}", echoed=echoed, peer=peer)


class _Deadline:
    """Bounds writes by the run's deadline: a peer that never reads blocks ``write_all``; closing wakes it.

    Reads wait on the Context itself; writes take no Context, so a timer thread closes
    the stream when the deadline passes (close() from another thread wakes a blocked
    write) and records that it did, so the error the write then raises reads as Timeout.
    """

    def __init__(self, stream: Stream, ctx: Context | None) -> None:
        self._stream = stream
        self._remaining = None if ctx is None else ctx.remaining()
        self._timer: threading.Timer | None = None
        self.fired = False

    def _fire(self) -> None:
        self.fired = True
        self._stream.close()

    def __enter__(self) -> _Deadline:
        if self._remaining is not None:
            self._timer = threading.Timer(self._remaining, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


__all__ = ["listen"]
