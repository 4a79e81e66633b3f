"""The face: the janus-net command (its subcommands, flags, output, the stop-signal rule) and the demo.

`main` is the ``janus-net`` console script and ``python -m janus_net``. One module
per idea: `command` (main: which subcommand, the error contract, the stop signals),
`parsers` (every parser and usage check, ``run``'s included), `flags` (the option
flags ``listen`` and ``run`` share), `output` (status lines, audit sinks, the one
exit-status rule), `stop_signals` (how a stop signal ends a subcommand), and one
module per subcommand: `describe` (parse, layout), `listen`, `run`, `demo`.
"""

from janus_net._cli.command import main

__all__ = ["main"]
