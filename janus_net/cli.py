"""The ``janus-net`` command: ``parse``, ``layout``, ``listen``, ``demo``.

The error contract, for every subcommand:

* A failure prints one line on stderr, ``janus-net: <Member>: ...`` (the `SocketError`
  member's name first), and exits 1 -- never a traceback. That covers output that cannot
  be written: a closed stdout, a stdout pipe whose reader has gone (EPIPE), an ``--audit``
  file on a full disk.
* Usage errors (unknown options, bad values) print argparse's usage and exit 2.
* ``listen`` ends on SIGINT, SIGTERM and SIGHUP alike: the server is closed (a unix socket
  file it created is removed) and it exits 128 + the signal's number.

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
from types import FrameType
from typing import TextIO

from janus_net import cliopts, layout
from janus_net.address import FdAddress, Ip6Address, UnixAddress, for_people, parse_address
from janus_net.audit import AuditRecord, JsonLinesSink, Sink
from janus_net.capability import NetBind
from janus_net.context import Context
from janus_net.errors import SocketError
from janus_net.listen import listen, listen_with_capability, listen_with_context
from janus_net.socket import Server, Stream

Command = Callable[[argparse.Namespace], int]

#: The signals that end ``listen`` the way Ctrl-C does.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopped(BaseException):
    """Raised in the main thread by a stop signal: unwinds like KeyboardInterrupt, closing what is open."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _StopSignals:
    """SIGINT/SIGTERM/SIGHUP become `_Stopped` while installed; the first one wins, later ones are ignored.

    While ``held`` (from installation until `deliver`), a stop signal is only recorded:
    the bind runs to its end and the server enters its ``with`` block, whose exit closes
    it (removing its unix socket file), before `deliver` raises the recorded stop. So no
    signal can land between "the server exists" and "someone will close it".
    """

    def __init__(self) -> None:
        self._fired: list[int] = []
        self._held = True
        self._previous: dict[signal.Signals, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._fired:
            return
        self._fired.append(signum)
        if not self._held:
            raise _Stopped(signum)

    def deliver(self) -> None:
        """From now on a stop signal raises at once; one that arrived while held raises here."""
        self._held = False
        if self._fired:
            raise _Stopped(self._fired[0])

    def __enter__(self) -> _StopSignals:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._held = True  # a signal during the restore is recorded, not raised into the caller
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


# An output error is reported as the member a socket write with that errno would raise,
# so the first word of the line is always a SocketError member.
_OUTPUT_MEMBERS: dict[int, type[SocketError]] = {
    errno.EPIPE: SocketError.SocketUnconnected,  # the reader of a pipe has gone
    errno.ECONNRESET: SocketError.ConnectionResetByPeer,
    errno.ENOSPC: SocketError.SystemResources,
    errno.EDQUOT: SocketError.SystemResources,
    errno.EFBIG: SocketError.SystemResources,
    errno.ENOMEM: SocketError.SystemResources,
    errno.EACCES: SocketError.AccessDenied,
    errno.EPERM: SocketError.AccessDenied,
    errno.ENOENT: SocketError.FileNotFound,
    errno.ENOTDIR: SocketError.NotDir,
    errno.ELOOP: SocketError.SymLinkLoop,
    errno.EROFS: SocketError.ReadOnlyFileSystem,
}


def _output_error(error: OSError, syscall: str, where: str) -> SocketError:
    number = error.errno if error.errno is not None else errno.EIO
    member = _OUTPUT_MEMBERS.get(number, SocketError.Unexpected)
    return member(number, error.strerror or os.strerror(number), syscall=syscall, address=where)


class _Output:
    """Where status lines go (stdout): each line is flushed at once; a failed write is a typed error."""

    def __init__(self, json_lines: bool) -> None:
        stream = sys.stdout
        if stream is None:  # started with stdout closed (`>&-`): Python sets it to None
            raise _output_error(OSError(errno.EBADF, os.strerror(errno.EBADF)), "write", "stdout")
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
            _discard_stdout()
            raise _output_error(e, "write", "stdout") from None


def _discard_stdout() -> None:
    # What is still buffered would fail again when the interpreter flushes stdout at
    # exit, printing a second error line: point fd 1 at /dev/null first.
    try:
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.dup2(null, 1)
    except OSError:
        pass
    finally:
        os.close(null)


class _FileSink:
    """`JsonLinesSink` to a named file; a record that cannot be written is a typed error naming the file."""

    def __init__(self, file: TextIO, name: str) -> None:
        self._sink = JsonLinesSink(file)
        self._name = name

    def __call__(self, record: AuditRecord) -> None:
        try:
            self._sink(record)
        except OSError as e:
            raise _output_error(e, "write", self._name) from None


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


def _parse(args: argparse.Namespace) -> int:
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


def _layout(args: argparse.Namespace) -> int:
    out = _Output(args.json)
    if args.json:
        out.write(json.dumps(layout.describe(args.addresses)) + "\n")
    else:
        out.write(_for_people_lines(layout.render(args.addresses)) + "\n")
    return 0


def _for_people_lines(text: str) -> str:
    """Escape each line of a multi-line report, keeping its line breaks."""
    return "\n".join(for_people(line) for line in text.split("\n"))


def _listen(args: argparse.Namespace) -> int:
    out = _Output(args.json)  # before anything is bound: a closed stdout is reported, not discovered later
    with _StopSignals() as stops:
        ctx = None if args.timeout is None else Context.with_timeout(args.timeout)
        audit_file: TextIO | None = None
        try:
            server, held, audit_file = _bind(args, out, ctx)
            with server:
                stops.deliver()
                out.line(f"listening on {server.address}", listening=str(server.address))
                if held is not None:
                    held.release()
                for _ in range(args.accept):
                    _serve_one(args, out, server, ctx)
        finally:
            if audit_file is not None:
                _close_quietly(audit_file)
    return 0


def _bind(
    args: argparse.Namespace, out: _Output, ctx: Context | None
) -> tuple[Server, _HeldSink | None, TextIO | None]:
    options = {
        "backlog": args.backlog,
        "mode": args.mode,
        "unlink_stale": args.unlink_stale,
        **cliopts.kernel_options(args),
    }
    if args.capability is None:
        if ctx is None:
            return listen(args.address, **options), None, None
        return listen_with_context(args.address, ctx, **options), None, None
    held: _HeldSink | None = None
    audit_file: TextIO | None = None
    sink: Sink | None = None
    if args.audit == "-":
        sink = held = _HeldSink(_stdout_sink(out))
    elif args.audit is not None:
        audit_file = _open_audit_file(args.audit)
        sink = _FileSink(audit_file, args.audit)
    try:
        cap = NetBind(args.capability, audit=sink)
        for port in args.allow_port:
            cap.allow_port(port)
        try:
            if args.enforce:
                cap.enforce()  # the kernel enforces the ports from here on (Landlock)
            server = listen_with_capability(args.address, cap, ctx=ctx, **options)
        except SocketError:
            if held is not None:
                held.release()  # the denied record still gets printed
            raise
    except BaseException:
        if audit_file is not None:
            _close_quietly(audit_file)
        raise
    return server, held, audit_file


def _close_quietly(file: TextIO) -> None:
    # Every record was flushed, or its failure reported, when it was written; what a
    # failed write left in the buffer fails again here, after the descriptor is closed.
    try:
        file.close()
    except OSError:
        pass


def _open_audit_file(path: str) -> TextIO:
    try:
        return open(path, "a", encoding="utf-8")  # closed by _listen
    except OSError as e:
        raise _output_error(e, "open", path) from None


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


def _demo(args: argparse.Namespace) -> int:
    from janus_net import demo  # loaded only for this command

    out = _Output(False)
    return demo.run(out.file)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be finite and not negative: {text!r}")
    return value


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
        "SIGINT, SIGTERM and SIGHUP close the server (removing a unix socket file it created) and exit "
        "128+signal. A peer that resets its connection ends that connection only.",
    )
    listen_cmd.add_argument("address")
    listen_cmd.add_argument(
        "--timeout", type=_seconds, metavar="S",
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


def _error_line(text: str) -> int:
    try:
        if sys.stderr is not None:
            sys.stderr.write(for_people(f"janus-net: {text}") + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass  # nowhere left to say it; the exit status still does
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``janus-net`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["run"]:
        from janus_net import supervisor  # loaded only for this command

        return supervisor.main(words[1:])
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A character stdout cannot encode is shown as an escape, never a UnicodeEncodeError.
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    run: Command = args.run
    try:
        return run(args)
    except SocketError as e:
        return _error_line(str(e))
    except OSError as e:  # an output the command could not write, not already typed (the demo's)
        _discard_stdout()
        return _error_line(str(_output_error(e, "write", "stdout")))
    except _Stopped as stop:
        _error_line(f"stopped by {signal.Signals(stop.signum).name}")
        return 128 + stop.signum
    except KeyboardInterrupt:
        _error_line("interrupted")
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
