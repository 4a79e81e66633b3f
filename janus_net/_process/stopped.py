"""`Stopped`: a stop signal ended the work under way; it unwinds like KeyboardInterrupt, closing what is open.

The supervisor raises it once its commands are stopped and reaped; the command line
(`janus_net._cli.stop_signals`) raises it for every subcommand, and dies of the
signal after the clean-up.
"""

from __future__ import annotations

import signal


class Stopped(BaseException):
    """A stop signal ended the command: unwinds like KeyboardInterrupt, closing what is open.

    A BaseException, so no ``except Exception`` (nor ``except SocketError``) on the way
    up takes it for an error of the operation it interrupted.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


__all__ = ["Stopped"]
