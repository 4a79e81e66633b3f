"""The supervisor behind ``janus-net run``: start a command on passed sockets, reload it, stop it, reap it.

`Supervisor` receives sockets already bound (the command line binds them:
`janus_net._cli.run`) and supervises the command that serves them:

1. The command runs with the sockets as systemd passes them: descriptors 3, 4, ...
   in order, ``LISTEN_FDS``, ``LISTEN_FDNAMES`` and ``LISTEN_PID`` (the command's own
   pid: a ``/bin/sh -c 'LISTEN_PID=$$ exec "$@"'`` step sets it between the spawn and
   the exec), and ``NOTIFY_SOCKET`` naming a datagram socket this supervisor reads
   with SO_PASSCRED (`janus_net._process.notify`, the protocol's receiving side).
   `janus_net.listen_fds` and `janus_net.notify` speak this protocol; so does any
   systemd-aware server.
2. SIGHUP starts a new command on the same sockets. When it sends ``READY=1`` (its
   pid checked through SCM_CREDENTIALS), the old one gets SIGTERM: it should stop
   accepting, finish its connections and exit. Both hold the same listening
   sockets meanwhile, so no connection is refused or reset. A new command that
   exits, or is not ready within the ready timeout, is stopped and the old one
   keeps serving.
3. SIGTERM or SIGINT stops the command (SIGTERM, then SIGKILL after the stop
   timeout), reaps it, and raises `Stopped`; the caller closes the sockets and dies
   of the signal. When the command ends on its own, `Supervisor.run` returns its
   status as `os.waitstatus_to_exitcode` does (-N when signal N killed it: the caller
   then dies of N), with no automatic restart: that is the service manager's job.

4. Under a service manager (``NOTIFY_SOCKET`` set when the supervisor starts) it
   speaks sd_notify upward for itself through `janus_net.notify`: ``READY=1`` with
   ``MAINPID=`` its own pid once the first command is ready, ``RELOADING=1`` when a
   reload starts and ``READY=1`` when it ends (a failed one with ``ERRNO=``), a
   ``STATUS=`` naming the serving pid, ``STOPPING=1`` on stop. A watchdog meant for
   this supervisor (``WATCHDOG_USEC``/``WATCHDOG_PID``) is handed down to each command
   it starts, and only the serving command's ``WATCHDOG=1`` goes up.
5. Each command leads its own process group (a terminal's job signal reaches this
   supervisor only, which stops or reloads the command gracefully), and gets SIGKILL
   when this supervisor dies (PR_SET_PDEATHSIG, unless ``keep_children``). The
   supervisor never returns while a command it started is alive: it reaps them all.

Descriptors the command sends with FDSTORE=1 never enter this supervisor: the notify
socket's control buffer has room for the credentials only, so the kernel drops them
(it keeps its own sockets and stores nothing else).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any, NoReturn

from janus_net._kernel import cells as kernel_cells
from janus_net._kernel import processes
from janus_net._policy import waiting
from janus_net._process import notify
from janus_net._process.stopped import Stopped
from janus_net._shim import lib
from janus_net._sockets.datagram import Socket
from janus_net._sockets.server import Server
from janus_net._values.errors import SocketError

#: The first passed descriptor (SD_LISTEN_FDS_START).
_FIRST_FD = 3
_SHELL = "/bin/sh"
# Sets LISTEN_PID to the pid that will run COMMAND ($$ is the shell, which execs it).
_SET_PID = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"'
# The same, with the watchdog handed down to the command's pid.
_SET_PIDS = 'LISTEN_PID=$$; WATCHDOG_PID=$$; export LISTEN_PID WATCHDOG_PID; exec "$@"'
# Python ignores SIGPIPE (and SIGXFSZ); an ignored signal stays ignored across exec, so reset them.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)

#: What stops the supervisor: SIGHUP is its reload, not a stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _log(text: str) -> None:
    print(f"janus-net run: {text}", file=sys.stderr, flush=True)


class Supervisor:
    """Runs ``command`` on ``sockets`` (name, socket), reloads it on SIGHUP, stops it on SIGTERM/SIGINT.

    ``ready_timeout``: how long a reloaded command may take to send READY=1;
    ``stop_timeout``: how long a stopped command may take to exit after SIGTERM
    before SIGKILL. The sockets stay the caller's (it closes them); the supervisor
    passes copies.
    """

    def __init__(
        self,
        sockets: list[tuple[str, Server | Socket]],
        command: list[str],
        ready_timeout: float,
        stop_timeout: float,
        keep_children: bool = False,
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
        self.parent_death = 0 if keep_children else int(signal.SIGKILL)
        self.told_ready = False
        self.reload_open = False  # RELOADING=1 told, its READY=1 not yet
        # Read before any command starts: the manager's watchdog, when it is meant for this process.
        self.watchdog_usec: int | None = None
        interval = notify.watchdog_interval()
        if interval is not None:
            self.watchdog_usec = int(os.environ["WATCHDOG_USEC"])

    def run(self, fired: Iterable[int] = ()) -> int:
        """Start the command and supervise it until it ends (its status; -N: signal N) or a stop signal (`Stopped`).

        ``fired``: stop signals that arrived before this supervisor's own handlers were
        installed (the caller recorded them); they are taken over, so none is lost
        between the two.

        Raises:
            Stopped: a stop signal ended the run, after the commands were stopped and reaped.
        """
        # Every descriptor made here lives in a cell (closed exactly once, whatever
        # exception comes): the wake pipe, and the copies of the sockets to pass.
        cells = [kernel_cells.new_desc(), kernel_cells.new_desc()]
        notify_socket = None
        handled = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
        previous = {sig: signal.getsignal(sig) for sig in handled}
        old_wakeup = -1
        old_mask: set[int | signal.Signals] | None = None
        try:
            wake_r, wake_w = processes.pipe(cells[0], cells[1])
            notify_name = f"janus-net-run/{os.getpid()}/{processes.random_bytes(6).hex()}"
            notify_socket = notify.notification_socket(notify_name)
            # Copies of the sockets above the numbers they get in the child, so the
            # spawn's dup2 steps can never overwrite a source they still need.
            low = _FIRST_FD + len(self.sockets)
            self.passing = []
            for _, sock in self.sockets:
                cells.append(kernel_cells.new_desc())
                self.passing.append(processes.dup_above(cells[-1], sock.fileno(), low))
            self.notify_path = "@" + notify_name
            old_wakeup = signal.set_wakeup_fd(wake_w)
            for sig in handled:
                signal.signal(sig, self._on_signal)
            # A parent may have started this process with them blocked (the mask is
            # inherited): a blocked SIGHUP would never reload, a blocked SIGTERM never stop.
            old_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
            self.signals.extend(fired)  # a stop that came before these handlers
            if self.signals:
                return self._shutdown(self.signals[0])
            self.current = self._spawn()
            _log(f"started pid {self.current}")
            return self._loop(notify_socket.fileno(), wake_r)
        finally:
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            if notify_socket is not None:
                notify_socket.close()
            for cell in cells:
                kernel_cells.close_desc(cell)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _spawn(self) -> int:
        env = dict(os.environ)
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC"):
            env.pop(key, None)
        env["LISTEN_FDS"] = str(len(self.sockets))
        env["LISTEN_FDNAMES"] = ":".join(name for name, _ in self.sockets)
        env["NOTIFY_SOCKET"] = self.notify_path
        script = _SET_PID
        if self.watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
            script = _SET_PIDS
        dups = [(fd, _FIRST_FD + i) for i, fd in enumerate(self.passing)]
        argv = [_SHELL, "-c", script, "janus-net-run", *self.command]
        return processes.spawn(_SHELL, argv, env, dups, _DEFAULT_SIGNALS, self.parent_death)

    def _tell(self, **fields: Any) -> None:
        """sd_notify upward (nothing without a manager); a manager that cannot be told is logged, not fatal."""
        try:
            notify.notify(**fields)
        except SocketError as e:
            _log(f"could not notify the service manager: {e}")

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
        self._tell(reloading=True, status=f"reloading; pid {self.current} serves")
        self.reload_open = True
        try:
            self.pending = self._spawn()
        except SocketError as e:
            _log(f"reload failed: {e}; pid {self.current} keeps serving")
            self._reload_failed(e.errno or errno.EIO)
            return
        self.pending_deadline = time.monotonic() + self.ready_timeout
        _log(f"reloading: started pid {self.pending}")

    def _reload_failed(self, code: int) -> None:
        self.reload_open = False
        self._tell(ready=True, status=f"reload failed; pid {self.current} serves", errno=code)

    def _read_notifications(self, fd: int) -> None:
        while True:
            got = _receive_notification(fd)
            if got is None:
                return
            pid, text = got
            lines = text.split("\n")
            if pid is not None and pid == self.current and "WATCHDOG=1" in lines and self.watchdog_usec is not None:
                self._tell(watchdog=True)
            if pid is not None and pid == self.pending and "READY=1" in lines:
                old, self.current, self.pending = self.current, self.pending, None
                _log(f"pid {self.current} is ready; stopping pid {old}")
                self.reload_open = False
                self._tell(ready=True, status=f"pid {self.current} serves")
                if old is not None:
                    self._stop(old)
            elif pid is not None and pid == self.current and "READY=1" in lines:
                _log(f"pid {pid} is ready")
                if not self.told_ready:
                    self.told_ready = True
                    self._tell(ready=True, mainpid=os.getpid(), status=f"pid {pid} serves")
                elif self.reload_open:
                    # The serving command died during the reload and this one took over: the reload ends here.
                    self.reload_open = False
                    self._tell(ready=True, status=f"pid {pid} serves")
            elif "READY=1" in lines:
                _log(f"ignored READY=1 from pid {pid}, which is not the command being started")

    def _stop(self, pid: int) -> None:
        if not processes.kill(pid, signal.SIGTERM):
            return
        self.stopping[pid] = time.monotonic() + self.stop_timeout

    def _timers(self) -> None:
        now = time.monotonic()
        if self.pending is not None and now >= self.pending_deadline:
            _log(f"pid {self.pending} was not ready in time; stopping it, pid {self.current} keeps serving")
            self._stop(self.pending)
            self.pending = None
            self._reload_failed(errno.ETIMEDOUT)
        for pid, deadline in list(self.stopping.items()):
            if now >= deadline:
                processes.kill(pid, signal.SIGKILL)
                self.stopping[pid] = now + 3600  # reaped soon; never SIGKILL twice

    def _reap(self) -> int | None:
        """Collect exited children; when the serving one ended on its own, its status (-N: killed by signal N)."""
        while True:
            reaped = processes.waitpid(-1, lib.WNOHANG)
            if reaped is None or reaped[0] == 0:
                return None
            pid, status = reaped
            code = _exit_code(status)
            if self.stopping.pop(pid, None) is not None:
                _log(f"pid {pid} stopped ({code})")
            elif pid == self.pending:
                _log(f"pid {pid} exited ({code}) before it was ready; pid {self.current} keeps serving")
                self.pending = None
                self._reload_failed(errno.ESRCH)
            elif pid == self.current:
                _log(f"pid {pid} exited ({code})")
                self.current = None
                if self.pending is None:
                    # Never leave a command behind: one still stopping from a reload is waited for.
                    self._stopping_reaped()
                    return os.waitstatus_to_exitcode(status)
                # The serving command died during a reload: the new one takes over at once.
                self.current, self.pending = self.pending, None

    def _shutdown(self, signum: int) -> NoReturn:
        """Stop the commands (SIGTERM, SIGKILL after the stop timeout), reap them, and raise `Stopped`."""
        self._tell(stopping=True, status="stopping")
        for pid in (self.current, self.pending):
            if pid is not None:
                self._stop(pid)
        self.current = self.pending = None
        self._stopping_reaped()
        raise Stopped(signum)

    def _stopping_reaped(self) -> None:
        """Wait for every command being stopped (SIGKILL after the stop timeout) and reap it."""
        while self.stopping:
            reaped = processes.waitpid(-1, lib.WNOHANG)
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


def _exit_code(status: int) -> int:
    """A child's wait status as a shell reports it: the exit code, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _drain(fd: int) -> None:
    while processes.read(fd, 512):
        pass


def _receive_notification(fd: int) -> tuple[int | None, str] | None:
    """One notification (sender pid, text), what was dropped on its way logged; None when none is queued."""
    got = notify.receive(fd)
    if got is None:
        return None
    for note in got.notes:
        _log(note)
    return got.pid, got.text


__all__ = ["STOP_SIGNALS", "Stopped", "Supervisor"]
