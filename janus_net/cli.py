"""The ``janus-net`` command: ``parse``, ``layout``, ``listen``, ``demo``.

Errors never show a traceback: a `SocketError` prints one line,
``janus-net: InvalidPort: ...``, on stderr and exits 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from janus_net import sockopts
from janus_net.address import FdAddress, Ip6Address, UnixAddress, for_people, parse_address
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
        print(for_people(str(addr)))
        for key, value in fields.items():
            if key != "canonical":
                print(f"  {key:<9} {for_people(str(value))}")
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
        options = _kernel_options(args)
        if args.capability is None:
            server = (
                listen(args.address, **options) if ctx is None else listen_with_context(args.address, ctx, **options)
            )
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
                if args.enforce:
                    cap.enforce()  # the kernel enforces the ports from here on (Landlock)
                server = listen_with_capability(args.address, cap, ctx=ctx, **options)
            except SocketError:
                if held is not None:
                    held.release()  # the denied record still gets printed
                raise
        with server:
            _emit(args, f"listening on {for_people(str(server.address))}", listening=str(server.address))
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
        _emit(args, f"accepted {for_people(peer)}", accepted=peer)
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


# --- DESIGN §14/§16 flags of `listen` (docs/kernel-capability.md)


def _kernel_options(args: argparse.Namespace) -> dict[str, Any]:
    """The listen keyword options given by the --netns/--freebind/... flags (only those given)."""
    given = {
        "netns": args.netns,
        "freebind": args.freebind or None,
        "transparent": args.transparent or None,
        "device": args.device,
        "fastopen": args.fastopen,
        "defer_accept": args.defer_accept,
        "incoming_cpu": args.incoming_cpu,
        "reuse_port": args.reuse_port or None,
        "steer": args.steer,
    }
    return {name: value for name, value in given.items() if value is not None}


def _check_kernel_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.enforce and args.capability is None:
        parser.error("--enforce needs --capability")
    options = _kernel_options(args)
    reuse_port = options.pop("reuse_port", False)
    try:
        sockopts.extra(reuse_port=reuse_port, **options)  # the library's own checks, as usage errors
    except (ValueError, TypeError) as e:
        parser.error(str(e))


def _add_kernel_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--enforce", action="store_true", help="make the kernel enforce the capability (Landlock)")
    cmd.add_argument("--netns", metavar="PATH", help="make the socket inside this network namespace file")
    cmd.add_argument("--freebind", action="store_true", help="IP_FREEBIND: bind an address no interface has")
    cmd.add_argument("--transparent", action="store_true", help="IP_TRANSPARENT (needs CAP_NET_ADMIN)")
    cmd.add_argument("--device", metavar="IFNAME", help="SO_BINDTODEVICE: only this interface")
    cmd.add_argument("--fastopen", type=_count, metavar="N", help="TCP_FASTOPEN queue length")
    cmd.add_argument("--defer-accept", type=_count, metavar="S", help="TCP_DEFER_ACCEPT seconds")
    cmd.add_argument("--incoming-cpu", type=_count, metavar="CPU", help="SO_INCOMING_CPU")
    cmd.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: join a group of listeners")
    cmd.add_argument("--steer", choices=["cpu"], help="steer the reuse-port group by receiving CPU")


def _check_listen_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    _check_kernel_args(parser, args)
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
    _add_kernel_flags(listen_cmd)
    listen_cmd.set_defaults(run=_listen, check=lambda args: _check_listen_args(listen_cmd, args))

    demo = commands.add_parser("demo", help="run the three profiles against themselves on loopback")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
