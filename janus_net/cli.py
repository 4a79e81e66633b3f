"""The ``janus-net`` command: ``parse``, ``layout``, ``listen``, ``demo``.

Errors never show a traceback: a `SocketError` prints one line,
``janus-net: InvalidPort: ...``, on stderr and exits 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from janus_net.address import FdAddress, Ip6Address, UnixAddress, parse_address
from janus_net.errors import SocketError

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
