"""Every parser of the ``janus-net`` command, and the usage checks argparse cannot make alone.

`build_parser` is the command's (``parse``, ``layout``, ``listen``, ``demo``, and
``run`` listed for ``--help``); `build_run_parser` is ``janus-net run``'s, which
parses the words after ``run`` itself (COMMAND and its options included). The flags
``listen`` and ``run`` share come from `janus_net._cli.flags`. A refused value is a
usage error (exit 2, argparse's own line), before anything is bound.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from janus_net import __version__
from janus_net._cli import flags
from janus_net._process.transfer import check_name


def _capability_id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a capability id must not be empty")
    return text


def check_listen_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``janus-net listen``'s usage errors that depend on several flags."""
    flags.check_kernel_args(parser, args)
    # Options that could not apply are usage errors, not silent no-ops.
    if args.capability is None and (args.allow_port or args.audit is not None):
        parser.error("--allow-port and --audit need --capability")
    if args.echo and args.accept == 0:
        parser.error("--echo needs connections to echo: --accept N (N >= 1), or no --accept")


#: The one exit-status rule, as ``--help`` shows it (docs/command.md says the same).
EXIT_STATUS = """exit status (every subcommand):
  0    success
  2    a usage error: argparse's, or a value given on the command line refused
       (InvalidAddress, InvalidPort, InvalidHostName, ValueError, TypeError)
  1    every other failure (CapabilityDenied included)
  after a stop signal N (SIGINT, SIGTERM; SIGHUP but for run, where it reloads) the
  command cleans up and dies of N (a shell shows 128+N; systemd sees a clean stop)
  run: COMMAND's own status when COMMAND ends on its own (127/126 when it cannot be
  found/executed), and death by the same signal when COMMAND died of one"""


def build_parser() -> argparse.ArgumentParser:
    """The ``janus-net`` argument parser; ``args.command`` names the subcommand, ``args.check`` (if any) checks it."""
    parser = argparse.ArgumentParser(
        prog="janus-net",
        description="Inspect and bind janus_net sockets.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"janus-net {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    parse = commands.add_parser("parse", help="print an address's canonical form and fields")
    parse.add_argument("address")
    parse.add_argument("--json", action="store_true", help="print one JSON object")

    layout_cmd = commands.add_parser("layout", help="show the sockaddr structs as compiled, and encoded addresses")
    layout_cmd.add_argument("addresses", nargs="*", metavar="ADDRESS", help="addresses whose encoding to show")
    layout_cmd.add_argument("--json", action="store_true", help="print one JSON object")

    listen_cmd = commands.add_parser(
        "listen",
        help="listen through the matching profile, print the bound address, accept connections",
        description="Bind ADDRESS (:core; :service with --timeout; :sovereign with --capability), print "
        "'listening on ADDRESS' with the real port as the first line, then serve until a stop signal "
        "(--accept N: accept N connections, then exit 0). "
        "SIGINT, SIGTERM and SIGHUP close the server (removing a unix socket file it created), then the "
        "command dies of that signal (a shell shows 128+signal). A peer that resets its connection ends "
        "that connection only. Exit status: 0 success, 2 a refused command-line value, 1 any other failure.",
    )
    listen_cmd.add_argument("address")
    listen_cmd.add_argument(
        "--timeout", type=flags.seconds, metavar="S",
        help="bound the whole run (bind, every accept, read and write) by S seconds; exit 1 with Timeout",
    )  # fmt: skip
    listen_cmd.add_argument(
        "--capability", type=_capability_id, metavar="ID", help="bind through a NetBind capability with this id"
    )
    listen_cmd.add_argument(
        "--allow-port", type=flags.port, action="append", default=[], metavar="P",
        help="a port the capability allows, besides 8080, 3000 and 8000 (repeatable; 0 allows an ephemeral "
        "port, chosen by the kernel)",
    )  # fmt: skip
    listen_cmd.add_argument("--audit", metavar="FILE", help="append audit records as JSON lines to FILE ('-': stdout)")
    listen_cmd.add_argument(
        "--accept",
        type=flags.count,
        default=None,
        metavar="N",
        help="accept N connections, then exit 0 (0: bind, print, exit); without it: until a stop signal",
    )
    listen_cmd.add_argument("--echo", action="store_true", help="echo each accepted connection until end of stream")
    listen_cmd.add_argument("--json", action="store_true", help="print the status lines as JSON objects")
    flags.add_socket_flags(listen_cmd)
    flags.add_kernel_flags(listen_cmd)
    listen_cmd.set_defaults(check=lambda args: check_listen_args(listen_cmd, args))

    # `run` parses its own arguments (build_run_parser), COMMAND and its options included.
    commands.add_parser("run", help="run COMMAND on sockets passed as systemd does; SIGHUP reloads without downtime")

    commands.add_parser("demo", help="run the three profiles against themselves on loopback")
    return parser


# --- janus-net run


def _listen_spec(text: str) -> tuple[str, str]:
    name, sep, address = text.partition("=")
    if not sep or not address:
        raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS, not {text!r}")
    try:
        check_name(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, address


def build_run_parser() -> argparse.ArgumentParser:
    """``janus-net run``'s parser (the words after ``run``); `check_run_args` completes it."""
    parser = argparse.ArgumentParser(
        prog="janus-net run",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Bind sockets, run COMMAND with them (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID, NOTIFY_SOCKET); "
        "SIGHUP starts a new COMMAND and stops the old one once the new one sends READY=1.",
        usage="janus-net run [--listen NAME=ADDRESS ...] [--bind NAME=ADDRESS ...] "
        "[--capability ID [--allow-port P ...] [--audit FILE] [--enforce]] [socket options] -- COMMAND [ARGS ...]",
    )
    parser.add_argument(
        "--listen", type=_listen_spec, action="append", default=[], metavar="NAME=ADDRESS",
        help="a listening stream socket passed to COMMAND (repeatable; passed in this order)",
    )  # fmt: skip
    parser.add_argument(
        "--bind", type=_listen_spec, action="append", default=[], metavar="NAME=ADDRESS",
        help="a bound datagram socket passed to COMMAND after the --listen ones (repeatable)",
    )  # fmt: skip
    parser.add_argument("--capability", metavar="ID", help="bind through a NetBind capability with this id")
    parser.add_argument(
        "--allow-port", type=flags.port, action="append", default=[], metavar="P", help="a port the capability allows"
    )
    parser.add_argument("--audit", metavar="FILE", help="append the capability's audit records to FILE (JSON lines)")
    parser.add_argument(
        "--ready-timeout", type=flags.seconds, default=60.0, metavar="S",
        help="how long a reloaded COMMAND may take to send READY=1 (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--stop-timeout", type=flags.seconds, default=10.0, metavar="S",
        help="how long a stopped COMMAND may take to exit after SIGTERM before SIGKILL (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--fdstore", action="store_true",
        help="store the sockets in the service manager (FDSTORE=1, FDNAME=NAME) and take each NAME back from "
        "LISTEN_FDS on the next start instead of binding it (needs NOTIFY_SOCKET)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-children", action="store_true",
        help="let COMMAND live on if this supervisor is killed with SIGKILL "
        "(by default it gets SIGKILL then: PR_SET_PDEATHSIG)",
    )  # fmt: skip
    flags.add_socket_flags(parser)
    flags.add_kernel_flags(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS ...]")
    return parser


# The listen options a bound (datagram) socket does not have: with no --listen socket they could not apply.
_LISTEN_ONLY_FLAGS: dict[str, Callable[[argparse.Namespace], bool]] = {
    "--backlog": lambda args: args.backlog != 128,
    "--mode": lambda args: args.mode is not None,
    "--unlink-stale": lambda args: bool(args.unlink_stale),
    "--fastopen": lambda args: args.fastopen is not None,
    "--defer-accept": lambda args: args.defer_accept is not None,
    "--reuse-port": lambda args: bool(args.reuse_port),
    "--steer": lambda args: args.steer is not None,
}


def check_run_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """``janus-net run``'s usage errors that depend on several flags; returns COMMAND and its arguments."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("missing -- COMMAND")
    if args.capability is None and (args.allow_port or args.audit is not None):
        parser.error("--allow-port and --audit need --capability")
    if not args.capability and args.capability is not None:
        parser.error("a capability id must not be empty")
    names = [name for name, _ in args.listen + args.bind]
    if len(set(names)) != len(names):
        parser.error("each NAME may be given once")
    flags.check_kernel_args(parser, args)
    if not args.listen:
        only = [flag for flag, given in _LISTEN_ONLY_FLAGS.items() if given(args)]
        if only:
            parser.error(f"{only[0]} applies to --listen sockets, and none is given")
    if args.fdstore and not os.environ.get("NOTIFY_SOCKET"):
        parser.error("--fdstore needs a service manager to store the sockets in (NOTIFY_SOCKET is not set)")
    return command


__all__ = [
    "build_parser",
    "build_run_parser",
    "check_listen_args",
    "check_run_args",
]
