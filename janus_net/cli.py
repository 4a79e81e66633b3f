"""The ``janus-net`` command: ``parse``, ``layout``, ``listen``, ``demo``.

Errors never show a traceback: a `SocketError` prints one line,
``janus-net: InvalidPort: ...``, on stderr and exits 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from janus_net.address import FdAddress, Ip6Address, UnixAddress, parse_address
from janus_net.audit import AuditRecord, JsonLinesSink, Sink
from janus_net.capability import NetBind
from janus_net.context import Context
from janus_net.errors import SocketError
from janus_net.listen import listen, listen_with_capability, listen_with_context
from janus_net.socket import Server

Command = Callable[[argparse.Namespace], int]


def _parse(args: argparse.Namespace) -> int:
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
        print(json.dumps(fields))
    else:
        print(str(addr))
        for key, value in fields.items():
            if key != "canonical":
                print(f"  {key:<9} {value}")
    return 0


def _layout(args: argparse.Namespace) -> int:
    from janus_net import layout  # loaded only for this command; it runs `janus-net layout` as main()

    return layout.run(args)


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


def _emit(args: argparse.Namespace, text: str, **fields: object) -> None:
    print(json.dumps(fields) if args.json else text, flush=True)


def _listen(args: argparse.Namespace) -> int:
    ctx = None if args.timeout is None else Context.with_timeout(args.timeout)
    audit_file = None
    held = None
    try:
        if args.capability is None:
            server = listen(args.address) if ctx is None else listen_with_context(args.address, ctx)
        else:
            sink: Sink | None = None
            if args.audit == "-":
                sink = held = _HeldSink(JsonLinesSink(sys.stdout))
            elif args.audit is not None:
                audit_file = _open_audit_file(args.audit)
                sink = JsonLinesSink(audit_file)
            cap = NetBind(args.capability, audit=sink)
            for port in args.allow_port:
                cap.allow_port(port)
            try:
                server = listen_with_capability(args.address, cap, ctx=ctx)
            except SocketError:
                if held is not None:
                    held.release()  # the denied record still gets printed
                raise
        with server:
            _emit(args, f"listening on {server.address}", listening=str(server.address))
            if held is not None:
                held.release()
            for _ in range(args.accept):
                _serve_one(args, server, ctx)
    finally:
        if audit_file is not None:
            audit_file.close()
    return 0


def _open_audit_file(path: str) -> TextIO:
    try:
        return open(path, "a", encoding="utf-8")  # closed by _listen
    except OSError as e:
        raise SystemExit(f"janus-net: cannot open the audit file: {e}") from None


def _serve_one(args: argparse.Namespace, server: Server, ctx: Context | None) -> None:
    with server.accept(ctx) as stream:
        peer = str(stream.address)
        _emit(args, f"accepted {peer}", accepted=peer)
        if args.echo:
            echoed = 0
            while data := stream.read(65536, ctx):
                stream.write_all(data)
                echoed += len(data)
            _emit(args, f"echoed {echoed} bytes to {peer}", echoed=echoed, peer=peer)


def _demo(args: argparse.Namespace) -> int:
    from janus_net import demo  # loaded only for this command

    return demo.run(sys.stdout)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be finite and not negative: {text!r}")
    return value


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port (0..65535): {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"not a count (0 or more): {text!r}")
    return int(text)


def _capability_id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a capability id must not be empty")
    return text


def _check_listen_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    # Options that could not apply are usage errors, not silent no-ops.
    if args.capability is None and (args.allow_port or args.audit is not None):
        parser.error("--allow-port and --audit need --capability")
    if args.echo and not args.accept:
        parser.error("--echo needs --accept N (N >= 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="janus-net", description="Inspect and bind janus_net sockets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    parse = commands.add_parser("parse", help="print an address's canonical form and fields")
    parse.add_argument("address")
    parse.add_argument("--json", action="store_true", help="print one JSON object")
    parse.set_defaults(run=_parse)

    layout = commands.add_parser("layout", help="show the sockaddr structs as compiled, and encoded addresses")
    layout.add_argument("addresses", nargs="*", metavar="ADDRESS", help="addresses whose encoding to show")
    layout.add_argument("--json", action="store_true", help="print one JSON object")
    layout.set_defaults(run=_layout)

    listen_cmd = commands.add_parser(
        "listen",
        help="listen through the matching profile, print the bound address, accept connections",
        description="Bind ADDRESS (:core; :service with --timeout; :sovereign with --capability), print "
        "'listening on ADDRESS' with the real port as the first line, accept N connections, exit 0.",
    )
    listen_cmd.add_argument("address")
    listen_cmd.add_argument(
        "--timeout", type=_seconds, metavar="S", help="a context deadline for the bind and every accept and read"
    )
    listen_cmd.add_argument(
        "--capability", type=_capability_id, metavar="ID", help="bind through a NetBind capability with this id"
    )
    listen_cmd.add_argument(
        "--allow-port", type=_port, action="append", default=[], metavar="P",
        help="a port the capability allows, besides 8080, 3000, 8000 (repeatable; 0 = any)",
    )  # fmt: skip
    listen_cmd.add_argument("--audit", metavar="FILE", help="append audit records as JSON lines to FILE ('-': stdout)")
    listen_cmd.add_argument("--accept", type=_count, default=0, metavar="N", help="accept N connections, then exit")
    listen_cmd.add_argument("--echo", action="store_true", help="echo each accepted connection until end of stream")
    listen_cmd.add_argument("--json", action="store_true", help="print the status lines as JSON objects")
    listen_cmd.set_defaults(run=_listen, check=lambda args: _check_listen_args(listen_cmd, args))

    # `run` parses its own arguments (janus_net.supervisor), COMMAND and its options included.
    commands.add_parser("run", help="run COMMAND on sockets passed as systemd does; SIGHUP reloads without downtime")

    demo = commands.add_parser("demo", help="run the three profiles against themselves on loopback")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["run"]:
        from janus_net import supervisor  # loaded only for this command

        return supervisor.main(words[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    run: Command = args.run
    try:
        return run(args)
    except SocketError as e:
        print(f"janus-net: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("janus-net: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
