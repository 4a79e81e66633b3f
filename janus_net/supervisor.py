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
   exits with 128 + the signal. When the command exits on its own, the supervisor
   exits with its status (no automatic restart: that is the service manager's job).

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
from typing import Any, TextIO

from janus_net import cliopts, control, platform, syscalls, waiting
from janus_net._shim import ffi, lib
from janus_net.address import parse_address
from janus_net.audit import JsonLinesSink
from janus_net.capability import NetBind
from janus_net.errors import SocketError
from janus_net.fdpass import check_name
from janus_net.listen import bind, bind_with_capability, listen, listen_with_capability
from janus_net.socket import Mode, Server, Socket

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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be positive and finite: {text!r}")
    return value


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
        "--ready-timeout", type=_seconds, default=60.0, metavar="S",
        help="how long a reloaded COMMAND may take to send READY=1 (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--stop-timeout", type=_seconds, default=10.0, metavar="S",
        help="how long a stopped COMMAND may take to exit after SIGTERM before SIGKILL (default 10)",
    )  # fmt: skip
    cliopts.add_socket_flags(parser)
    cliopts.add_kernel_flags(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS ...]")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``janus-net run`` with ``argv`` (the words after ``run``); returns the exit status."""
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
            try:
                audit_file = open(args.audit, "a", encoding="utf-8")  # noqa: SIM115 - closed below
            except OSError as e:
                print(f"janus-net: cannot open the audit file: {e}", file=sys.stderr)
                return 1
        cap = None
        if args.capability is not None:
            cap = NetBind(args.capability, audit=None if audit_file is None else JsonLinesSink(audit_file))
            for port in args.allow_port:
                cap.allow_port(port)
            if args.enforce:
                # Before anything is bound (so the kernel checks those binds too) and before
                # any thread starts: on kernels without LANDLOCK_RESTRICT_SELF_TSYNC enforce()
                # refuses while other threads run. A --netns helper thread starts only later,
                # inside the restricted process, and inherits the restriction.
                cap.enforce()
        for name, address in args.listen:
            sockets.append((name, _open(address, cap, "listen", listen_options)))
        for name, address in args.bind:
            sockets.append((name, _open(address, cap, "bind", bind_options)))
        for name, sock in sockets:
            print(f"listening on {sock.address} as {name}", flush=True)
        return _Supervisor(sockets, command, args.ready_timeout, args.stop_timeout).run()
    except SocketError as e:
        print(f"janus-net: {e}", file=sys.stderr)
        return 1
    finally:
        for _, sock in sockets:
            sock.close()
        if audit_file is not None:
            audit_file.close()


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


def _open(address: str, cap: NetBind | None, kind: str, options: dict[str, Any]) -> Server | Socket:
    parse_address(address)  # InvalidAddress / InvalidPort before anything is bound
    if kind == "listen":
        return listen(address, **options) if cap is None else listen_with_capability(address, cap, **options)
    if cap is None:
        return bind(address, mode=Mode.DGRAM, **options)
    return bind_with_capability(address, cap, mode=Mode.DGRAM, **options)


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

    def run(self) -> int:
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        notify_name = f"janus-net-run/{os.getpid()}/{os.urandom(6).hex()}"
        notify_socket = bind(f"unix:@{notify_name}", mode=Mode.DGRAM)
        handled = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
        previous = {sig: signal.getsignal(sig) for sig in handled}
        old_wakeup = -1
        passing: list[int] = []
        try:
            syscalls.setsockopt_int(notify_socket.fileno(), lib.SOL_SOCKET, lib.SO_PASSCRED, 1)
            # Copies of the sockets above the numbers they get in the child, so the
            # spawn's dup2 steps can never overwrite a source they still need.
            low = _FIRST_FD + len(self.sockets)
            passing = [_dup_above(sock.fileno(), low) for _, sock in self.sockets]
            self.passing = passing
            self.notify_path = "@" + notify_name
            old_wakeup = signal.set_wakeup_fd(wake_w)
            for sig in handled:
                signal.signal(sig, self._on_signal)
            self.current = self._spawn()
            _log(f"started pid {self.current}")
            return self._loop(notify_socket.fileno(), wake_r)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            for fd in passing:
                os.close(fd)
            notify_socket.close()
            os.close(wake_r)
            os.close(wake_w)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _spawn(self) -> int:
        env = dict(os.environ)
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC"):
            env.pop(key, None)
        env["LISTEN_FDS"] = str(len(self.sockets))
        env["LISTEN_FDNAMES"] = ":".join(name for name, _ in self.sockets)
        env["NOTIFY_SOCKET"] = self.notify_path
        actions = [(os.POSIX_SPAWN_DUP2, fd, _FIRST_FD + i) for i, fd in enumerate(self.passing)]
        argv = [_SHELL, "-c", _SET_PID, "janus-net-run", *self.command]
        try:
            return os.posix_spawn(_SHELL, argv, env, file_actions=actions, setsigmask=(), setsigdef=_DEFAULT_SIGNALS)
        except OSError as e:
            raise SocketError.Unexpected(e.errno, f"cannot start {self.command[0]!r}: {e.strerror}") from None

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
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
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
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.stopping[pid] = now + 3600  # reaped soon; never SIGKILL twice

    def _reap(self) -> int | None:
        """Collect exited children; the command's exit status when the serving one ended on its own."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
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

    def _shutdown(self, signum: int) -> int:
        for pid in (self.current, self.pending):
            if pid is not None:
                self._stop(pid)
        self.current = self.pending = None
        while self.stopping:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                if self.stopping.pop(pid, None) is not None:
                    # Reported as during a reload, so every command's end is in the log.
                    _log(f"pid {pid} stopped ({_exit_code(status)})")
                continue
            time.sleep(0.02)
            self._timers()
        return 128 + signum


def _exit_code(status: int) -> int:
    """A child's wait status as a shell reports it: the exit code, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _dup_above(fd: int, low: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
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
