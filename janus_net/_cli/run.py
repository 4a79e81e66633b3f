"""``janus-net run``: bind sockets once, run a command on them, reload it on SIGHUP without downtime.

::

    janus-net run --listen web=127.0.0.1:8080 --listen admin=unix:/run/app.sock -- ./server --flag

1. Each ``--listen NAME=ADDRESS`` is bound through the matching profile (:core, or
   :sovereign with ``--capability ID [--allow-port P ...] [--audit FILE]``), with the
   options ``janus-net listen`` takes (`janus_net._cli.flags`): ``--backlog``, ``--mode``,
   ``--unlink-stale``, ``--netns``, ``--freebind``, ``--transparent``, ``--device``,
   ``--fastopen``, ``--defer-accept``, ``--incoming-cpu``, ``--reuse-port``, ``--steer``.
   A ``--bind`` socket takes those a bound socket has (``--netns``, ``--freebind``,
   ``--transparent``, ``--device``, ``--incoming-cpu``). ``--enforce`` makes the kernel
   enforce the capability (Landlock) before anything is bound and before any thread
   starts: the sockets, this supervisor and every COMMAND it starts are held to its
   TCP ports.
2. The sockets are handed to `janus_net._process.supervisor.Supervisor`, which runs
   COMMAND with them as systemd passes them, reloads it on SIGHUP once the new one
   sends ``READY=1``, and stops and reaps it on SIGTERM or SIGINT.
3. With ``--fdstore`` the sockets are stored in the service manager (``FDSTORE=1``,
   ``FDNAME=NAME``) once bound, and on the next start each NAME the manager passes back
   (``LISTEN_FDS``, `janus_net.listen_fds`) is taken instead of bound: a restart of
   the unit keeps the listening sockets, and the connections queued on them. A unix
   socket file then stays when ``run`` stops (the stored socket still serves it).
4. A stop signal ends the run at start-up as while serving: the commands stopped and
   reaped, the sockets closed, the unix socket files this command created removed,
   then the process dies of the signal (`janus_net._cli.stop_signals`). When the
   command ends on its own, ``run`` exits with its status, or (``main`` returns -N)
   dies of the signal N that killed it, once its sockets are closed.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from typing import Any, TextIO

from janus_net._cli import flags, output
from janus_net._cli.parsers import build_run_parser, check_run_args
from janus_net._cli.stop_signals import StopSignals
from janus_net._policy.capability import NetBind
from janus_net._policy.context import Context
from janus_net._process.activation import listen_fds
from janus_net._process.notify import notify
from janus_net._process.supervisor import STOP_SIGNALS, Supervisor
from janus_net._profiles.addresses import parse_address
from janus_net._profiles.listen import (
    bind_with_capability,
    bind_with_context,
    listen_with_capability,
    listen_with_context,
)
from janus_net._sockets.datagram import Socket
from janus_net._sockets.owner import give_unix_file
from janus_net._sockets.server import Server
from janus_net._values.errors import SocketError
from janus_net._values.kinds import Mode

#: Before the command runs there is nothing to reload: a SIGHUP then is ignored (and
#: does not kill the supervisor with its sockets bound and its unix files in place).
IGNORED_AT_START_UP = (signal.SIGHUP,)


def main(argv: Sequence[str], stops: StopSignals | None = None) -> int:
    """Run ``janus-net run`` with ``argv`` (the words after ``run``); returns the exit status (-N: die of N).

    ``stops`` records a stop signal (SIGINT, SIGTERM) that arrives while the sockets
    are bound: it cancels the binds (they take its context) and is raised as
    `Stopped` once every socket made so far is in the list the ``finally`` closes.

    Raises:
        Stopped: a stop signal ended the run, after the commands were stopped and
            reaped and the sockets closed (the caller dies of it: `janus_net._cli.stop_signals.die_of`).
    """
    if stops is None:
        with StopSignals(STOP_SIGNALS, ignored=IGNORED_AT_START_UP) as own:
            return main(argv, own)
    parser = build_run_parser()
    args = parser.parse_args(list(argv))
    command = check_run_args(parser, args)
    listen_options, bind_options = _socket_options(args)
    audit_file: TextIO | None = None
    sockets: list[tuple[str, Server | Socket]] = []
    stored: dict[str, Server | Socket] = {}
    try:
        if args.fdstore:
            stored = listen_fds()
        if args.audit is not None:
            audit_file = output.open_audit_file(args.audit)
        cap = None
        if args.capability is not None:
            cap = NetBind(
                args.capability, audit=None if audit_file is None else output.FileSink(audit_file, args.audit)
            )
            for port in args.allow_port:
                cap.allow_port(port)
            if args.enforce:
                # Before anything is bound (so the kernel checks those binds too) and before
                # any thread starts: on kernels without LANDLOCK_RESTRICT_SELF_TSYNC enforce()
                # refuses while other threads run. A --netns helper thread starts only later,
                # inside the restricted process, and inherits the restriction.
                cap.enforce()
        # A stop signal now cancels the bind under way (its context) and lands at the
        # check after it, once the socket is in the list the ``finally`` closes.
        for name, address in args.listen:
            sockets.append(
                (name, _take(stored, name, Server) or _open(address, cap, "listen", listen_options, stops.context))
            )
            stops.check()
        for name, address in args.bind:
            sockets.append(
                (name, _take(stored, name, Socket) or _open(address, cap, "bind", bind_options, stops.context))
            )
            stops.check()
        if args.fdstore:
            for _, sock in sockets:
                give_unix_file(sock, None)  # the stored socket outlives this run: its file stays
            notify(fds=dict(sockets))
        out = output.Output(False)
        for name, sock in sockets:
            out.line(f"listening on {sock.address} as {name}")
        stops.check()
        supervisor = Supervisor(sockets, command, args.ready_timeout, args.stop_timeout, args.keep_children)
        return supervisor.run(stops.fired)
    except (SocketError, ValueError, TypeError) as e:
        stops.check()  # an error caused by the stop (a cancelled bind) is the stop
        output.error_line(str(e) if isinstance(e, SocketError) else f"{type(e).__name__}: {e}")
        return output.usage_status(e)
    finally:
        for _, sock in sockets:
            sock.close()
        for sock in stored.values():
            sock.close()  # passed back but no longer asked for (the manager keeps its own copy)
        if audit_file is not None:
            output.close_quietly(audit_file)


def _take(stored: dict[str, Server | Socket], name: str, kind: type[Server] | type[Socket]) -> Server | Socket | None:
    """The socket the manager passed back as ``name``, if it is of the kind asked for (it is then ours)."""
    sock = stored.get(name)
    if not isinstance(sock, kind):
        return None
    del stored[name]
    return sock


_BIND_OPTIONS = frozenset({"netns", "freebind", "transparent", "device", "incoming_cpu"})


def _socket_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword options for each --listen socket, and those for each --bind socket."""
    kernel = flags.kernel_options(args)
    listen_options = {"backlog": args.backlog, "mode": args.mode, "unlink_stale": args.unlink_stale, **kernel}
    bind_options = {name: value for name, value in kernel.items() if name in _BIND_OPTIONS}
    return listen_options, bind_options


def _open(
    address: str, cap: NetBind | None, kind: str, options: dict[str, Any], ctx: Context
) -> Server | Socket:  # fmt: skip
    parse_address(address)  # InvalidAddress / InvalidPort before anything is bound
    if kind == "listen":
        if cap is None:
            return listen_with_context(address, ctx, **options)
        return listen_with_capability(address, cap, ctx=ctx, **options)
    if cap is None:
        return bind_with_context(address, ctx, mode=Mode.DGRAM, **options)
    return bind_with_capability(address, cap, ctx=ctx, mode=Mode.DGRAM, **options)


__all__ = ["IGNORED_AT_START_UP", "STOP_SIGNALS", "main"]
