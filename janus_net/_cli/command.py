"""The ``janus-net`` command: ``parse``, ``layout``, ``listen``, ``demo``.

The error contract, for every subcommand:

* A failure prints one line on stderr, ``janus-net: <Member>: ...`` (the `SocketError`
  member's name first), never a traceback, and exits with the one status rule
  (`janus_net.cliout`): 2 for a value given on the command line that was refused
  (argparse's usage errors, ``InvalidAddress``, ``InvalidPort``, ``ValueError``,
  ``TypeError``), 1 for every other failure. That covers output that cannot be
  written: a closed stdout, a stdout pipe whose reader has gone (EPIPE), an
  ``--audit`` file on a full disk.
* A stop signal -- SIGINT, SIGTERM, and SIGHUP but for ``run`` (its reload) -- ends
  every subcommand alike (`janus_net.stops`): what it made is closed (a unix socket
  file it created is removed, the commands ``run`` started are stopped and reaped),
  then the process dies of that signal, so a shell shows 128 + its number.

Text for people shows addresses and paths with control characters (and bytes that are
not UTF-8) escaped, so a crafted unix path cannot forge a line; ``--json`` carries the
exact text.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from janus_net import cliopts, cliout, layout
from janus_net.address import FdAddress, Ip6Address, UnixAddress, for_people, parse_address
from janus_net.audit import AuditRecord, Sink
from janus_net.capability import NetBind
from janus_net.context import Context
from janus_net.errors import SocketError
from janus_net.listen import listen_with_capability, listen_with_context
from janus_net.socket import Server, Stream
from janus_net.stops import Stopped, StopSignals, die_of

Command = Callable[[argparse.Namespace, StopSignals], int]

#: The signals that end every subcommand but ``run`` (whose SIGHUP reloads) the way Ctrl-C does.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Output:
    """Where status lines go (stdout): each line is flushed at once; a failed write is a typed error."""

    def __init__(self, json_lines: bool) -> None:
        stream = sys.stdout
        if stream is None:  # started with stdout closed (`>&-`): Python sets it to None
            raise cliout.output_error(OSError(errno.EBADF, os.strerror(errno.EBADF)), "write", "stdout")
        self.file: TextIO = stream
        self.json = json_lines

    def line(self, text: str, **fields: object) -> None:
        """Print ``text`` (escaped) or, with --json, ``fields`` as one JSON object (exact)."""
        self.write(json.dumps(fields) + "\n" if self.json else for_people(text) + "\n")

    def write(self, text: str) -> None:
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as e:
            cliout.discard_stdout()
            raise cliout.output_error(e, "write", "stdout") from None


class _HeldSink:
    """Holds audit records until ``release()``, then passes them and every later one on.

    ``--audit -`` shares stdout with the ``listening on`` line, which must come first;
    the check_bind_address record is written before the bind, so it waits here.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._held: list[AuditRecord] | None = []

    def __call__(self, record: AuditRecord) -> None:
        if self._held is None:
            self._sink(record)
        else:
            self._held.append(record)

    def release(self) -> None:
        held, self._held = self._held, None
        for record in held or ():
            self._sink(record)


def _stdout_sink(out: _Output) -> Sink:
    def sink(record: AuditRecord) -> None:
        out.write(json.dumps(record.as_dict()) + "\n")

    return sink


def _parse(args: argparse.Namespace, stops: StopSignals) -> int:
    stops.deliver()  # nothing to clean up: a stop signal may end it anywhere
    out = _Output(args.json)
    addr = parse_address(args.address)
    fields: dict[str, object] = {"canonical": str(addr), "kind": type(addr).__name__}
    if isinstance(addr, FdAddress):
        fields.update(fd=addr.fd)
    elif isinstance(addr, UnixAddress):
        fields.update(path=addr.path, abstract=addr.abstract, port=None)
    else:
        fields.update(host=addr.host, port=addr.port)
        if isinstance(addr, Ip6Address):
            fields.update(flowinfo=addr.flowinfo, scope_id=addr.scope_id)
    if args.json:
        out.write(json.dumps(fields) + "\n")
    else:
        lines = [for_people(str(addr))]
        lines += [f"  {key:<9} {for_people(str(value))}" for key, value in fields.items() if key != "canonical"]
        out.write("\n".join(lines) + "\n")
    return 0


def _layout(args: argparse.Namespace, stops: StopSignals) -> int:
    stops.deliver()
    out = _Output(args.json)
    if args.json:
        out.write(json.dumps(layout.describe(args.addresses)) + "\n")
    else:
        out.write(_for_people_lines(layout.render(args.addresses)) + "\n")
    return 0


def _for_people_lines(text: str) -> str:
    """Escape each line of a multi-line report, keeping its line breaks."""
    return "\n".join(for_people(line) for line in text.split("\n"))


def _listen(args: argparse.Namespace, stops: StopSignals) -> int:
    """Bind, print, accept; a stop signal is held (recorded, and cancels the bind's context)
    until the server is inside its ``with`` block, whose exit closes it and removes its file."""
    out = _Output(args.json)  # before anything is bound: a closed stdout is reported, not discovered later
    ctx = None if args.timeout is None else stops.context.child(timeout=args.timeout)
    audit_file: TextIO | None = None
    try:
        server, held, audit_file = _bind(args, out, ctx, stops.context)
        with server:
            stops.deliver()
            out.line(f"listening on {server.address}", listening=str(server.address))
            if held is not None:
                held.release()
            for _ in range(args.accept):
                _serve_one(args, out, server, ctx)
    finally:
        if audit_file is not None:
            cliout.close_quietly(audit_file)
    return 0


def _bind(
    args: argparse.Namespace, out: _Output, ctx: Context | None, stop_ctx: Context
) -> tuple[Server, _HeldSink | None, TextIO | None]:
    options = {
        "backlog": args.backlog,
        "mode": args.mode,
        "unlink_stale": args.unlink_stale,
        **cliopts.kernel_options(args),
    }
    if args.capability is None:
        # Always a context: a stop signal cancels stop_ctx, so a wait for PATH.lock ends at once.
        return listen_with_context(args.address, stop_ctx if ctx is None else ctx, **options), None, None
    held: _HeldSink | None = None
    audit_file: TextIO | None = None
    sink: Sink | None = None
    if args.audit == "-":
        sink = held = _HeldSink(_stdout_sink(out))
    elif args.audit is not None:
        audit_file = cliout.open_audit_file(args.audit)
        sink = cliout.FileSink(audit_file, args.audit)
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
            cliout.close_quietly(audit_file)
        raise
    return server, held, audit_file


# Errors that end one connection, not the run: the peer reset it, or went away while we wrote.
_PEER_GONE = (SocketError.ConnectionResetByPeer, SocketError.SocketUnconnected, SocketError.ConnectionAborted)


def _serve_one(args: argparse.Namespace, out: _Output, server: Server, ctx: Context | None) -> None:
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


def _demo(args: argparse.Namespace, stops: StopSignals) -> int:
    from janus_net import demo  # loaded only for this command

    # Every step closes what it made in a `with` block: a stop signal may land anywhere.
    stops.deliver()
    out = _Output(False)
    return demo.run(out.file)


def _capability_id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a capability id must not be empty")
    return text


def _check_listen_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    cliopts.check_kernel_args(parser, args)
    # Options that could not apply are usage errors, not silent no-ops.
    if args.capability is None and (args.allow_port or args.audit is not None):
        parser.error("--allow-port and --audit need --capability")
    if args.echo and not args.accept:
        parser.error("--echo needs --accept N (N >= 1)")


def build_parser() -> argparse.ArgumentParser:
    """The ``janus-net`` argument parser (each subcommand stores its function as ``run``)."""
    parser = argparse.ArgumentParser(prog="janus-net", description="Inspect and bind janus_net sockets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    parse = commands.add_parser("parse", help="print an address's canonical form and fields")
    parse.add_argument("address")
    parse.add_argument("--json", action="store_true", help="print one JSON object")
    parse.set_defaults(run=_parse)

    layout_cmd = commands.add_parser("layout", help="show the sockaddr structs as compiled, and encoded addresses")
    layout_cmd.add_argument("addresses", nargs="*", metavar="ADDRESS", help="addresses whose encoding to show")
    layout_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    layout_cmd.set_defaults(run=_layout)

    listen_cmd = commands.add_parser(
        "listen",
        help="listen through the matching profile, print the bound address, accept connections",
        description="Bind ADDRESS (:core; :service with --timeout; :sovereign with --capability), print "
        "'listening on ADDRESS' with the real port as the first line, accept N connections, exit 0. "
        "SIGINT, SIGTERM and SIGHUP close the server (removing a unix socket file it created), then the "
        "command dies of that signal (a shell shows 128+signal). A peer that resets its connection ends "
        "that connection only. Exit status: 0 success, 2 a refused command-line value, 1 any other failure.",
    )
    listen_cmd.add_argument("address")
    listen_cmd.add_argument(
        "--timeout", type=cliopts.seconds, metavar="S",
        help="bound the whole run (bind, every accept, read and write) by S seconds; exit 1 with Timeout",
    )  # fmt: skip
    listen_cmd.add_argument(
        "--capability", type=_capability_id, metavar="ID", help="bind through a NetBind capability with this id"
    )
    listen_cmd.add_argument(
        "--allow-port", type=cliopts.port, action="append", default=[], metavar="P",
        help="a port the capability allows, besides 8080, 3000 and 8000 (repeatable; 0 allows an ephemeral "
        "port, chosen by the kernel)",
    )  # fmt: skip
    listen_cmd.add_argument("--audit", metavar="FILE", help="append audit records as JSON lines to FILE ('-': stdout)")
    listen_cmd.add_argument(
        "--accept", type=cliopts.count, default=0, metavar="N", help="accept N connections, then exit"
    )
    listen_cmd.add_argument("--echo", action="store_true", help="echo each accepted connection until end of stream")
    listen_cmd.add_argument("--json", action="store_true", help="print the status lines as JSON objects")
    cliopts.add_socket_flags(listen_cmd)
    cliopts.add_kernel_flags(listen_cmd)
    listen_cmd.set_defaults(run=_listen, check=lambda args: _check_listen_args(listen_cmd, args))

    # `run` parses its own arguments (janus_net.supervisor), COMMAND and its options included.
    commands.add_parser("run", help="run COMMAND on sockets passed as systemd does; SIGHUP reloads without downtime")

    demo = commands.add_parser("demo", help="run the three profiles against themselves on loopback")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``janus-net`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    After a stop signal it does not return: once everything is cleaned up, the
    process dies of that signal (`janus_net.stops.die_of`).
    """
    words = list(sys.argv[1:] if argv is None else argv)
    signals: tuple[int, ...] = STOP_SIGNALS
    ignored: tuple[int, ...] = ()
    if words[:1] == ["run"]:
        from janus_net import supervisor  # loaded only for this command

        signals, ignored = supervisor.STOP_SIGNALS, supervisor.IGNORED_AT_START_UP
    status, signum = 1, None
    with StopSignals(signals, ignored=ignored) as stops:
        try:
            status = _main(words, stops)
        except Stopped as stop:
            signum = stop.signum  # run's own handlers record its stops: they come this way only
    if signum is None and stops.fired:
        signum = stops.fired[0]  # a stop held until the end of a command that had finished
    if signum is not None:
        cliout.error_line(f"stopped by {signal.Signals(signum).name}")
        return die_of(signum)
    return status


def _main(words: list[str], stops: StopSignals) -> int:
    if words[:1] == ["run"]:
        from janus_net import supervisor

        return supervisor.main(words[1:], stops)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A character stdout cannot encode is shown as an escape, never a UnicodeEncodeError.
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(words)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    run: Command = args.run
    try:
        return run(args, stops)
    except (SocketError, ValueError, TypeError) as e:
        stops.check()  # an error the stop caused (its cancelled context) is the stop
        cliout.error_line(str(e) if isinstance(e, SocketError) else f"{type(e).__name__}: {e}")
        return cliout.usage_status(e)
    except OSError as e:  # an output the command could not write, not already typed (the demo's)
        stops.check()
        cliout.discard_stdout()
        cliout.error_line(str(cliout.output_error(e, "write", "stdout")))
        return 1


if __name__ == "__main__":
    sys.exit(main())
