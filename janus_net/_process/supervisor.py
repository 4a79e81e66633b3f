"""``janus-net run``: bind sockets once, run a command on them, reload it on SIGHUP without downtime.

::

    janus-net run --listen web=127.0.0.1:8080 --listen admin=unix:/run/app.sock -- ./server --flag

1. Each ``--listen NAME=ADDRESS`` is bound through the matching profile (:core, or
   :sovereign with ``--capability ID [--allow-port P ...] [--audit FILE]``), with the
   options ``janus-net listen`` takes (`janus_net.cliopts`): ``--backlog``, ``--mode``,
   ``--unlink-stale``, ``--netns``, ``--freebind``, ``--transparent``, ``--device``,
   ``--fastopen``, ``--defer-accept``, ``--incoming-cpu``, ``--reuse-port``, ``--steer``.
   A ``--bind`` socket takes those a bound socket has (``--netns``, ``--freebind``,
   ``--transparent``, ``--device``, ``--incoming-cpu``). ``--enforce`` makes the kernel
   enforce the capability (Landlock) before anything is bound and before any thread
   starts: the sockets, this supervisor and every COMMAND it starts are held to its
   TCP ports.
2. COMMAND runs with the sockets as systemd passes them: descriptors 3, 4, ... in
   ``--listen`` order, ``LISTEN_FDS``, ``LISTEN_FDNAMES`` and ``LISTEN_PID`` (the
   command's own pid: a ``/bin/sh -c 'LISTEN_PID=$$ exec "$@"'`` step sets it between
   the spawn and the exec), and ``NOTIFY_SOCKET`` naming a datagram socket this
   supervisor reads with SO_PASSCRED. `janus_net.listen_fds` and `janus_net.notify`
   speak this protocol; so does any systemd-aware server.
3. SIGHUP starts a new COMMAND on the same sockets. When it sends ``READY=1`` (its
   pid checked through SCM_CREDENTIALS), the old one gets SIGTERM: it should stop
   accepting, finish its connections and exit. Both hold the same listening
   sockets meanwhile, so no connection is refused or reset. A new command that
   exits, or is not ready within ``--ready-timeout``, is stopped and the old one
   keeps serving.
4. SIGTERM or SIGINT stops the command (SIGTERM, then SIGKILL after
   ``--stop-timeout``), removes the unix socket files this supervisor created and
   dies of that signal (`janus_net.stops`), at start-up as while serving. When the
   command exits on its own, the supervisor exits with its status (no automatic
   restart: that is the service manager's job).

Descriptors the command sends with FDSTORE=1 never enter this supervisor: the notify
socket's control buffer has room for the credentials only, so the kernel drops them
(it keeps its own sockets and stores nothing else).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from janus_net import cliopts, cliout, control, descriptor, platform, syscalls, waiting
from janus_net._shim import ffi, lib
from janus_net.address import parse_address
from janus_net.capability import NetBind
from janus_net.context import Context
from janus_net.errors import SocketError
from janus_net.fdpass import check_name
from janus_net.listen import (
    bind,
    bind_with_capability,
    bind_with_context,
    listen_with_capability,
    listen_with_context,
)
from janus_net.socket import Mode, Server, Socket
from janus_net.stops import Stopped, StopSignals

#: The first passed descriptor (SD_LISTEN_FDS_START).
_FIRST_FD = 3
_SHELL = "/bin/sh"
# Sets LISTEN_PID to the pid that will run COMMAND ($$ is the shell, which execs it).
_SET_PID = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"'
_DATAGRAM_MAX = 4096
# Python ignores SIGPIPE (and SIGXFSZ); an ignored signal stays ignored across exec, so reset them.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
# Room for SCM_CREDENTIALS only: the kernel installs no descriptor a command attaches.
_CONTROL_SIZE: int = lib.jn_cmsg_space(ffi.sizeof("struct ucred"))


def _say(line: str) -> None:
    """A status line on stdout; one that cannot be written is the typed error a socket write would raise."""
    try:
        print(line, flush=True)
    except OSError as e:
        cliout.discard_stdout()
        raise cliout.output_error(e, "write", "stdout") from None


def _log(text: str) -> None:
    print(f"janus-net run: {text}", file=sys.stderr, flush=True)


def _listen_spec(text: str) -> tuple[str, str]:
    name, sep, address = text.partition("=")
    if not sep or not address:
        raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS, not {text!r}")
    try:
        check_name(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, address


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="janus-net run",
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
        "--allow-port", type=cliopts.port, action="append", default=[], metavar="P", help="a port the capability allows"
    )
    parser.add_argument("--audit", metavar="FILE", help="append the capability's audit records to FILE (JSON lines)")
    parser.add_argument(
        "--ready-timeout", type=cliopts.seconds, default=60.0, metavar="S",
        help="how long a reloaded COMMAND may take to send READY=1 (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--stop-timeout", type=cliopts.seconds, default=10.0, metavar="S",
        help="how long a stopped COMMAND may take to exit after SIGTERM before SIGKILL (default 10)",
    )  # fmt: skip
    cliopts.add_socket_flags(parser)
    cliopts.add_kernel_flags(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS ...]")
    return parser


#: What stops ``run``: SIGHUP is its reload, not a stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Before the command runs there is nothing to reload: a SIGHUP then is ignored (and
#: does not kill the supervisor with its sockets bound and its unix files in place).
IGNORED_AT_START_UP = (signal.SIGHUP,)


def main(argv: Sequence[str], stops: StopSignals | None = None) -> int:
    """Run ``janus-net run`` with ``argv`` (the words after ``run``); returns the exit status.

    ``stops`` records a stop signal (SIGINT, SIGTERM) that arrives while the sockets
    are bound: it cancels the binds (they take its context) and is raised as
    `Stopped` once every socket made so far is in the list the ``finally`` closes.

    Raises:
        Stopped: a stop signal ended the run, after the commands were stopped and
            reaped and the sockets closed (the caller dies of it: `janus_net.stops.die_of`).
    """
    if stops is None:
        with StopSignals(STOP_SIGNALS, ignored=IGNORED_AT_START_UP) as own:
            return main(argv, own)
    parser = build_parser()
    args = parser.parse_args(list(argv))
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
    cliopts.check_kernel_args(parser, args)
    listen_options, bind_options = _socket_options(args)
    if not args.listen:
        only = [flag for flag, given in _LISTEN_ONLY_FLAGS.items() if given(args)]
        if only:
            parser.error(f"{only[0]} applies to --listen sockets, and none is given")
    audit_file: TextIO | None = None
    sockets: list[tuple[str, Server | Socket]] = []
    try:
        if args.audit is not None:
            audit_file = cliout.open_audit_file(args.audit)
        cap = None
        if args.capability is not None:
            cap = NetBind(
                args.capability, audit=None if audit_file is None else cliout.FileSink(audit_file, args.audit)
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
            sockets.append((name, _open(address, cap, "listen", listen_options, stops.context)))
            stops.check()
        for name, address in args.bind:
            sockets.append((name, _open(address, cap, "bind", bind_options, stops.context)))
            stops.check()
        for name, sock in sockets:
            _say(f"listening on {sock.address} as {name}")
        stops.check()
        return _Supervisor(sockets, command, args.ready_timeout, args.stop_timeout).run(stops)
    except (SocketError, ValueError, TypeError) as e:
        stops.check()  # an error caused by the stop (a cancelled bind) is the stop
        cliout.error_line(str(e) if isinstance(e, SocketError) else f"{type(e).__name__}: {e}")
        return cliout.usage_status(e)
    finally:
        for _, sock in sockets:
            sock.close()
        if audit_file is not None:
            cliout.close_quietly(audit_file)


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
_BIND_OPTIONS = frozenset({"netns", "freebind", "transparent", "device", "incoming_cpu"})


def _socket_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword options for each --listen socket, and those for each --bind socket."""
    kernel = cliopts.kernel_options(args)
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


class _Supervisor:
    def __init__(
        self, sockets: list[tuple[str, Server | Socket]], command: list[str], ready_timeout: float, stop_timeout: float
    ) -> None:
        self.sockets = sockets
        self.command = command
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.signals: list[int] = []
        self.current: int | None = None
        self.pending: int | None = None
        self.pending_deadline = 0.0
        self.stopping: dict[int, float] = {}  # pid -> when to SIGKILL

    def run(self, stops: StopSignals) -> int:
        """Start the command and supervise it until it ends (its status) or a stop signal (`Stopped`).

        A stop signal that ``stops`` recorded before this supervisor's own handlers
        were installed is taken over, so none is lost between the two.
        """
        # Every descriptor made here lives in a cell (closed exactly once, whatever
        # exception comes): the wake pipe, and the copies of the sockets to pass.
        cells = [descriptor.new(), descriptor.new()]
        notify_socket = None
        handled = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
        previous = {sig: signal.getsignal(sig) for sig in handled}
        old_wakeup = -1
        try:
            wake_r, wake_w = syscalls.pipe(cells[0], cells[1])
            notify_name = f"janus-net-run/{os.getpid()}/{syscalls.random_bytes(6).hex()}"
            notify_socket = bind(f"unix:@{notify_name}", mode=Mode.DGRAM)
            syscalls.setsockopt_int(notify_socket.fileno(), lib.SOL_SOCKET, lib.SO_PASSCRED, 1)
            # Copies of the sockets above the numbers they get in the child, so the
            # spawn's dup2 steps can never overwrite a source they still need.
            low = _FIRST_FD + len(self.sockets)
            self.passing = []
            for _, sock in self.sockets:
                cells.append(descriptor.new())
                self.passing.append(syscalls.dup_above(cells[-1], sock.fileno(), low))
            self.notify_path = "@" + notify_name
            old_wakeup = signal.set_wakeup_fd(wake_w)
            for sig in handled:
                signal.signal(sig, self._on_signal)
            self.signals.extend(stops.fired)  # a stop that came before these handlers
            if self.signals:
                return self._shutdown(self.signals[0])
            self.current = self._spawn()
            _log(f"started pid {self.current}")
            return self._loop(notify_socket.fileno(), wake_r)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            if notify_socket is not None:
                notify_socket.close()
            for cell in cells:
                descriptor.close(cell)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _spawn(self) -> int:
        env = dict(os.environ)
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC"):
            env.pop(key, None)
        env["LISTEN_FDS"] = str(len(self.sockets))
        env["LISTEN_FDNAMES"] = ":".join(name for name, _ in self.sockets)
        env["NOTIFY_SOCKET"] = self.notify_path
        dups = [(fd, _FIRST_FD + i) for i, fd in enumerate(self.passing)]
        argv = [_SHELL, "-c", _SET_PID, "janus-net-run", *self.command]
        return syscalls.spawn(_SHELL, argv, env, dups, _DEFAULT_SIGNALS)

    def _loop(self, notify_fd: int, wake_r: int) -> int:
        while True:
            now = time.monotonic()
            deadlines = list(self.stopping.values())
            if self.pending is not None:
                deadlines.append(self.pending_deadline)
            timeout_ms = -1 if not deadlines else max(0, int((min(deadlines) - now) * 1000) + 1)
            # A signal ends the poll early (all zeros): the handlers' records are read below.
            notify_events, _ = waiting.poll_fds([notify_fd, wake_r], lib.POLLIN, timeout_ms)
            _drain(wake_r)
            if notify_events & lib.POLLIN:
                self._read_notifications(notify_fd)
            status = self._reap()
            if status is not None:
                return status
            signals, self.signals = self.signals, []
            for signum in signals:
                if signum == signal.SIGHUP:
                    self._reload()
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    return self._shutdown(signum)
            self._timers()

    def _reload(self) -> None:
        if self.pending is not None:
            _log(f"reload already in progress (pid {self.pending}); SIGHUP ignored")
            return
        self.pending = self._spawn()
        self.pending_deadline = time.monotonic() + self.ready_timeout
        _log(f"reloading: started pid {self.pending}")

    def _read_notifications(self, fd: int) -> None:
        while True:
            got = _receive_notification(fd)
            if got is None:
                return
            pid, text = got
            lines = text.split("\n")
            if pid is not None and pid == self.pending and "READY=1" in lines:
                old, self.current, self.pending = self.current, self.pending, None
                _log(f"pid {self.current} is ready; stopping pid {old}")
                if old is not None:
                    self._stop(old)
            elif pid is not None and pid == self.current and "READY=1" in lines:
                _log(f"pid {pid} is ready")
            elif "READY=1" in lines:
                _log(f"ignored READY=1 from pid {pid}, which is not the command being started")

    def _stop(self, pid: int) -> None:
        if not syscalls.kill(pid, signal.SIGTERM):
            return
        self.stopping[pid] = time.monotonic() + self.stop_timeout

    def _timers(self) -> None:
        now = time.monotonic()
        if self.pending is not None and now >= self.pending_deadline:
            _log(f"pid {self.pending} was not ready in time; stopping it, pid {self.current} keeps serving")
            self._stop(self.pending)
            self.pending = None
        for pid, deadline in list(self.stopping.items()):
            if now >= deadline:
                syscalls.kill(pid, signal.SIGKILL)
                self.stopping[pid] = now + 3600  # reaped soon; never SIGKILL twice

    def _reap(self) -> int | None:
        """Collect exited children; the command's exit status when the serving one ended on its own."""
        while True:
            reaped = syscalls.waitpid(-1, lib.WNOHANG)
            if reaped is None or reaped[0] == 0:
                return None
            pid, status = reaped
            code = _exit_code(status)
            if self.stopping.pop(pid, None) is not None:
                _log(f"pid {pid} stopped ({code})")
            elif pid == self.pending:
                _log(f"pid {pid} exited ({code}) before it was ready; pid {self.current} keeps serving")
                self.pending = None
            elif pid == self.current:
                _log(f"pid {pid} exited ({code})")
                self.current = None
                if self.pending is None:
                    return code
                # The serving command died during a reload: the new one takes over at once.
                self.current, self.pending = self.pending, None

    def _shutdown(self, signum: int) -> NoReturn:
        """Stop the commands (SIGTERM, SIGKILL after --stop-timeout), reap them, and raise `Stopped`."""
        for pid in (self.current, self.pending):
            if pid is not None:
                self._stop(pid)
        self.current = self.pending = None
        while self.stopping:
            reaped = syscalls.waitpid(-1, lib.WNOHANG)
            if reaped is None:
                break
            pid, status = reaped
            if pid:
                if self.stopping.pop(pid, None) is not None:
                    # Reported as during a reload, so every command's end is in the log.
                    _log(f"pid {pid} stopped ({_exit_code(status)})")
                continue
            time.sleep(0.02)
            self._timers()
        raise Stopped(signum)


def _exit_code(status: int) -> int:
    """A child's wait status as a shell reports it: the exit code, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _drain(fd: int) -> None:
    while syscalls.read(fd, 512):
        pass


def _receive_notification(fd: int) -> tuple[int | None, str] | None:
    """One datagram from the notify socket: (sender pid from SCM_CREDENTIALS, text); None when none is queued.

    The control buffer has room for the credentials only: descriptors a command
    sends (FDSTORE=1) are dropped by the kernel (MSG_CTRUNC, logged) and never enter
    this process; any the walk still finds are closed at once. A datagram cut short
    (MSG_TRUNC) is logged and counts as an empty one. A datagram whose control
    data breaks `janus_net.control`'s rule counts as an empty one (logged).
    """
    data = ffi.new("char[]", _DATAGRAM_MAX)
    iov = ffi.new("struct iovec *")
    iov.iov_base = data
    iov.iov_len = _DATAGRAM_MAX
    # Zeroed, and closing on collection whatever descriptor it still holds (the last resort).
    buffer = syscalls.new_rights_buffer()
    msg = control.header(iov, 1, control=buffer, controllen=_CONTROL_SIZE)
    got = syscalls.recvmsg(fd, msg, lib.MSG_DONTWAIT | platform.MSG_CMSG_CLOEXEC, None, nonblocking=True)
    if got == syscalls.WOULD_BLOCK:
        return None
    try:
        cmsgs = control.walk(msg, "recvmsg")  # closes every descriptor it saw before it raises
    except SocketError.ProtocolFailure as e:
        _log(f"ignored a notification: {e}")
        return None, ""
    control.close_all([cmsg.slots() for cmsg in cmsgs if cmsg.is_rights])
    pid = None
    for cmsg in cmsgs:
        if cmsg.level == lib.SOL_SOCKET and cmsg.kind == lib.JN_SCM_CREDENTIALS:
            pid = int(ffi.cast("struct ucred *", cmsg.data).pid)
    sender = "" if pid is None else f" from pid {pid}"
    if msg.msg_flags & lib.MSG_CTRUNC:  # truncation is reported, never silent
        _log(f"descriptors sent with a notification{sender} were dropped: this supervisor stores none")
    if msg.msg_flags & lib.MSG_TRUNC:
        _log(f"a notification{sender} longer than {_DATAGRAM_MAX} bytes was cut off and ignored")
        return pid, ""
    return pid, ffi.unpack(data, got).decode("utf-8", "replace")


__all__ = ["main"]
