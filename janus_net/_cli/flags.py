"""The listen option flags shared by ``janus-net listen`` and ``janus-net run``: parsers, checks, mapping.

Both commands bind listening sockets with the same keyword options of `janus_net.listen`
(DESIGN §3, §14, §16), so the flags, their value parsers and the usage checks live
here once: ``cli.py`` and ``supervisor.py`` both import this module (and neither
imports the other at load time). The flags themselves (name, metavar, help, parser)
are read from the option table, `janus_net._values.options`.

* `add_socket_flags`: ``--backlog``, ``--mode``, ``--unlink-stale``.
* `add_kernel_flags`: ``--enforce``, ``--reuse-port``, ``--freebind``, ``--transparent``,
  ``--device``, ``--fastopen``, ``--defer-accept``, ``--incoming-cpu``, ``--steer``,
  ``--netns``.
* `kernel_options`: the keyword options those flags give (only the ones given).
* `check_kernel_args`: the library's own value checks (`janus_net._profiles.option_checks`),
  reported as usage errors before anything is bound.
"""

from __future__ import annotations

import argparse
from typing import Any

from janus_net._profiles.option_checks import listen_options
from janus_net._values import seconds as values_seconds
from janus_net._values.options import NOT_TAKEN, OPTIONS, Option


def seconds(text: str) -> float:
    """A number of seconds for ``--timeout``-style flags: 0 or more; ``inf`` (or beyond the float range) is never.

    The one reading of seconds on the command line, through the library's own
    (`janus_net._values.seconds`), so a flag and a `Context` treat the extremes alike.
    """
    try:
        value = values_seconds.seconds(float(text))
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


#: The value parsers the option table names (its ``parser``); a ``"switch"`` takes no value.
_PARSERS: dict[str, dict[str, Any]] = {
    "switch": {"action": "store_true"},
    "backlog": {"type": backlog},
    "file_mode": {"type": file_mode},
    "count": {"type": count},
    "text": {},
    "steer": {"choices": ["cpu"]},
}


def _flags(group: str) -> tuple[Option, ...]:
    return tuple(option for option in OPTIONS if option.flag_group == group and option.listen is not NOT_TAKEN)


def _add(cmd: argparse.ArgumentParser, option: Option) -> None:
    assert option.flag is not None
    extra: dict[str, Any] = dict(_PARSERS[option.parser])
    if option.metavar is not None:
        extra["metavar"] = option.metavar
    if option.parser != "switch" and option.listen is not None:
        extra["default"] = option.listen  # the library's default (``--backlog``: 128)
    cmd.add_argument(option.flag, dest=option.name, help=option.help, **extra)


def add_socket_flags(cmd: argparse.ArgumentParser) -> None:
    """The table's socket flags: ``--backlog``, ``--mode``, ``--unlink-stale``."""
    for option in _flags("socket"):
        _add(cmd, option)


def add_kernel_flags(cmd: argparse.ArgumentParser) -> None:
    """``--enforce`` and the table's kernel flags: ``--reuse-port``, the DESIGN §16 options, ``--netns``."""
    cmd.add_argument("--enforce", action="store_true", help="make the kernel enforce the capability (Landlock)")
    for option in _flags("kernel"):
        _add(cmd, option)


def kernel_options(args: argparse.Namespace) -> dict[str, Any]:
    """The listen keyword options given by the kernel flags (``--netns``, ``--freebind``...; only those given)."""
    given = {option.name: getattr(args, option.name) for option in _flags("kernel")}
    return {name: value for name, value in given.items() if value is not None and value is not False}


def check_kernel_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit 2) for flags that cannot apply: --enforce without --capability, bad values."""
    if args.enforce and args.capability is None:
        parser.error("--enforce needs --capability")
    try:
        listen_options(**kernel_options(args))  # the library's own checks, as usage errors
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
