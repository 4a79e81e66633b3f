"""The listen option flags shared by ``janus-net listen`` and ``janus-net run``: parsers, checks, mapping.

Both commands bind listening sockets with the same keyword options of `janus_net.listen`
(DESIGN §3, §14, §16), so the flags, their value parsers and the usage checks live
here once: ``cli.py`` and ``supervisor.py`` both import this module (and neither
imports the other at load time).

* `add_socket_flags`: ``--backlog``, ``--mode``, ``--unlink-stale``.
* `add_kernel_flags`: ``--enforce``, ``--netns``, ``--freebind``, ``--transparent``,
  ``--device``, ``--fastopen``, ``--defer-accept``, ``--incoming-cpu``,
  ``--reuse-port``, ``--steer``.
* `kernel_options`: the keyword options those flags give (only the ones given).
* `check_kernel_args`: the library's own value checks (`janus_net.sockopts.extra`),
  reported as usage errors before anything is bound.
"""

from __future__ import annotations

import argparse
from typing import Any

from janus_net import seconds as _seconds
from janus_net import sockopts


def seconds(text: str) -> float:
    """A number of seconds for ``--timeout``-style flags: 0 or more; ``inf`` (or beyond the float range) is never.

    The one reading of seconds on the command line, through the library's own
    (`janus_net.seconds`), so a flag and a `Context` treat the extremes alike.
    """
    try:
        value = _seconds.seconds(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative: {text!r}")
    return value


def port(text: str) -> int:
    """A port 0..65535 written in ASCII digits."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port (0..65535): {text!r}")
    return int(text)


def count(text: str) -> int:
    """A count, 0 or more, in ASCII digits."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"not a count (0 or more): {text!r}")
    return int(text)


def backlog(text: str) -> int:
    """A listen() backlog, 0..2**31-1."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"not a backlog (0..2147483647): {text!r}")
    return int(text)


def file_mode(text: str) -> int:
    """Permission bits in octal, as chmod takes them: 600, 0600 and 0o600 all mean rw-------."""
    digits = text.removeprefix("0o")
    if not digits or not (digits.isascii() and all(c in "01234567" for c in digits)) or int(digits, 8) > 0o7777:
        raise argparse.ArgumentTypeError(f"not octal permission bits (0..7777): {text!r}")
    return int(digits, 8)


def add_socket_flags(cmd: argparse.ArgumentParser) -> None:
    """``--backlog``, ``--mode``, ``--unlink-stale``."""
    cmd.add_argument("--backlog", type=backlog, default=128, metavar="N", help="listen() backlog (128)")
    cmd.add_argument(
        "--mode", type=file_mode, metavar="OCTAL", help="unix socket file permissions, set before bind (e.g. 600)"
    )
    cmd.add_argument(
        "--unlink-stale", action="store_true", help="remove a dead unix socket file at the path (never a live one)"
    )


def add_kernel_flags(cmd: argparse.ArgumentParser) -> None:
    """``--enforce``, ``--netns`` and the DESIGN §16 server options."""
    cmd.add_argument("--enforce", action="store_true", help="make the kernel enforce the capability (Landlock)")
    cmd.add_argument("--netns", metavar="PATH", help="make the socket inside this network namespace file")
    cmd.add_argument("--freebind", action="store_true", help="IP_FREEBIND: bind an address no interface has")
    cmd.add_argument("--transparent", action="store_true", help="IP_TRANSPARENT (needs CAP_NET_ADMIN)")
    cmd.add_argument("--device", metavar="IFNAME", help="SO_BINDTODEVICE: only this interface")
    cmd.add_argument("--fastopen", type=count, metavar="N", help="TCP_FASTOPEN queue length")
    cmd.add_argument("--defer-accept", type=count, metavar="S", help="TCP_DEFER_ACCEPT seconds")
    cmd.add_argument("--incoming-cpu", type=count, metavar="CPU", help="SO_INCOMING_CPU")
    cmd.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: join a group of listeners")
    cmd.add_argument("--steer", choices=["cpu"], help="steer the reuse-port group by receiving CPU")


def kernel_options(args: argparse.Namespace) -> dict[str, Any]:
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


def check_kernel_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit 2) for flags that cannot apply: --enforce without --capability, bad values."""
    if args.enforce and args.capability is None:
        parser.error("--enforce needs --capability")
    options = kernel_options(args)
    reuse_port = options.pop("reuse_port", False)
    try:
        sockopts.extra(reuse_port=reuse_port, **options)  # the library's own checks, as usage errors
    except (ValueError, TypeError) as e:
        parser.error(str(e))


__all__ = [
    "add_kernel_flags",
    "add_socket_flags",
    "backlog",
    "check_kernel_args",
    "count",
    "file_mode",
    "kernel_options",
    "port",
]
