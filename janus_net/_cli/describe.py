"""``janus-net parse`` and ``janus-net layout``: an address, and the sockaddr structs, described.

Both only print: text for people (every line escaped), or with ``--json`` one exact
JSON object. Nothing is bound, so a stop signal may end them anywhere.
"""

from __future__ import annotations

import argparse
import json

from janus_net import layout
from janus_net._cli.output import Output, for_people_lines
from janus_net._cli.stop_signals import StopSignals
from janus_net._profiles.addresses import parse_address
from janus_net._values.escaping import for_people
from janus_net._values.fd import FdAddress
from janus_net._values.ip import Ip6Address
from janus_net._values.unix import UnixAddress


def parse(args: argparse.Namespace, stops: StopSignals) -> int:
    """``janus-net parse ADDRESS``: its canonical form and fields."""
    stops.deliver()  # nothing to clean up: a stop signal may end it anywhere
    out = Output(args.json)
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


def layout_command(args: argparse.Namespace, stops: StopSignals) -> int:
    """``janus-net layout [ADDRESS ...]``: the structs as compiled, and the addresses encoded."""
    stops.deliver()
    out = Output(args.json)
    if args.json:
        out.write(json.dumps(layout.describe(args.addresses)) + "\n")
    else:
        out.write(for_people_lines(layout.render(args.addresses)) + "\n")
    return 0


__all__ = ["layout_command", "parse"]
