"""systemd socket activation: `listen_fds` adopts the sockets a service manager passed in.

With a ``.socket`` unit, systemd (or any manager speaking the same protocol, such
as ``systemd-socket-activate``) binds the sockets itself and starts the service
with them open as descriptors 3, 4, ... and three environment variables::

    LISTEN_PID=<the service's pid>    the variables are for this process only
    LISTEN_FDS=2                      how many descriptors, starting at 3
    LISTEN_FDNAMES=web:metrics        optional names (FileDescriptorName=), ':'-separated

`listen_fds` follows sd_listen_fds(3)::

    servers = jn.listen_fds()                 # {"web": Server, "metrics": Server}
    web = servers.get("web") or jn.listen(":8080")

Names: without LISTEN_FDNAMES the keys are the descriptor numbers as text
("3", "4"...). systemd names every descriptor of a unit after the unit unless told
otherwise, so a name may repeat: the first descriptor keeps the plain name and each
later one is keyed ``NAME:FD`` (``web.socket:4``); ':' never occurs in a systemd
name, so such a key cannot collide with a real one.

All or nothing: every descriptor is looked at before any is adopted, so when one
of them is not a listening stream socket or a bound datagram socket, the error
(InvalidAddress, naming the descriptor) leaves all of them open and untouched --
they are the service manager's, and janus_net owns none of them yet.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable

from janus_net._kernel import confinement
from janus_net._profiles import adoption
from janus_net._sockets.datagram import Socket
from janus_net._sockets.server import Server
from janus_net._values.errors import SocketError
from janus_net._values.fd import MAX_FD as _MAX_FD
from janus_net._values.fd import FdAddress

#: The first passed descriptor (SD_LISTEN_FDS_START): 0, 1 and 2 are stdio.
LISTEN_FDS_START = 3

_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(unset_environment: bool = True) -> dict[str, Server | Socket]:
    """The sockets passed by socket activation, by name: listening streams as `Server`, datagrams as `Socket`.

    Names are the LISTEN_FDNAMES entries, or the descriptor numbers as text ("3", "4")
    without them; a repeated name keys each later descriptor as ``NAME:FD``. Every
    descriptor is looked at (and announced to audit hooks as ``janus_net.bind`` with
    ``"fd://N"``) before any is adopted, so an error adopts none and leaves all of them
    open. The adopted sockets are close-on-exec like every janus_net socket.

    Args:
        unset_environment: remove LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from
            `os.environ` in every case -- also when the result is empty or an error is
            raised, as sd_listen_fds does -- so child processes do not see them.

    Returns:
        The sockets by name; ``{}`` when nothing was passed to this process: LISTEN_PID or
        LISTEN_FDS unset, LISTEN_PID naming another process (a parent's variables that
        leaked into the environment of a child), or LISTEN_FDS=0.

    Raises:
        SocketError.InvalidAddress: LISTEN_PID or LISTEN_FDS is not a decimal number;
            LISTEN_FDS is more descriptors than the process's RLIMIT_NOFILE allows
            (checked before anything is allocated); LISTEN_FDNAMES has a different count
            of names; or a descriptor is not open, not a socket, or not a listening
            stream or bound datagram socket (the message names it).
        SocketError.SystemResources: the kernel could not describe a descriptor.
    """
    try:
        return _listen_fds()
    finally:
        if unset_environment:
            for name in _VARIABLES:
                os.environ.pop(name, None)


def _listen_fds() -> dict[str, Server | Socket]:
    pid_text = os.environ.get("LISTEN_PID")
    count_text = os.environ.get("LISTEN_FDS")
    if pid_text is None or count_text is None:
        return {}
    if _number("LISTEN_PID", pid_text) != os.getpid():
        return {}
    count = _number("LISTEN_FDS", count_text)
    if count == 0:
        return {}
    # Checked before anything is allocated: LISTEN_FDS=30000000 must not build 30 million
    # names. A descriptor at or above the process's fd limit cannot have been passed (the
    # manager's dup2 onto it would have failed), so a count beyond it is malformed.
    limit = _fd_limit()
    if count > limit - LISTEN_FDS_START:
        raise _invalid("LISTEN_FDS", count_text, f"is more descriptors than this process can have ({limit})")
    names_text = os.environ.get("LISTEN_FDNAMES")
    names: Iterable[str]
    if names_text is None:
        names = map(str, itertools.count(LISTEN_FDS_START))  # made one by one, as the descriptors are looked at
    else:
        # Bounded by the size of the environment, not by LISTEN_FDS.
        names = names_text.split(":")
        if len(names) != count:
            raise _invalid("LISTEN_FDNAMES", names_text, f"has {len(names)} names for LISTEN_FDS={count} descriptors")

    # Look at every descriptor, and let audit hooks veto each, before adopting any:
    # a failure up to here leaves all of them as they were. The work grows with the
    # descriptors really open: the first one that is not stops it.
    # Then, for all of them, the adoption door's owner check: a descriptor a janus_net
    # owner already holds (an earlier listen_fds or fd://N) is refused, and left to it.
    found = [adoption.examine(FdAddress(fd), "any") for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count)]
    for verdict in found:
        adoption.admit(verdict)
    for verdict in found:
        adoption.announce(verdict.seen.target)
    sockets: dict[str, Server | Socket] = {}
    try:
        for name, verdict in zip(names, found, strict=False):  # names may be an endless count
            key = name if name not in sockets else f"{name}:{verdict.seen.target.fd}"
            sock = adoption.own(verdict)
            assert isinstance(sock, (Server, Socket))  # "any" judges a Server or a Socket
            sockets[key] = sock
    except BaseException:
        # Only an interrupt (or a bug) lands here: give back what was taken, still open.
        for sock in sockets.values():
            sock.to_socket().detach()
        raise
    return sockets


def _fd_limit() -> int:
    """The highest descriptor number this process could hold, plus one (RLIMIT_NOFILE, the larger of soft and hard)."""
    # RLIM_INFINITY is the largest rlim_t, far above any descriptor number.
    return int(min(max(confinement.nofile_limits()), _MAX_FD))  # _MAX_FD is a power of two: Any to the checker


def _number(variable: str, text: str) -> int:
    # sd_listen_fds accepts a plain decimal number only; so do we (no sign, no spaces).
    if not text.isascii() or not text.isdigit() or len(text) > len(str(_MAX_FD)):
        raise _invalid(variable, text, "is not a decimal number")
    return int(text)


def _invalid(variable: str, text: str, why: str) -> SocketError:
    return SocketError.InvalidAddress(None, f"socket activation: {variable}={text!r} {why}")


__all__ = ["LISTEN_FDS_START", "listen_fds"]
