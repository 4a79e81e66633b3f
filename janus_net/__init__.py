"""janus_net: listening and bound sockets made straight from libc.

One typed error per cause, nothing leaked on any path, cancellable with a
`Context`, and gated by a `NetBind` capability that writes an audit trail::

    import janus_net as jn

    server = jn.listen("127.0.0.1:0")          # :core
    stream = server.accept()
"""

from __future__ import annotations

from janus_net._policy.context import Context
from janus_net._profiles.addresses import parse_address
from janus_net._profiles.connect import connect
from janus_net._profiles.listen import (
    bind,
    bind_with_capability,
    bind_with_context,
    listen,
    listen_with_capability,
    listen_with_context,
)
from janus_net._sockets.ancillary import Datagram
from janus_net._sockets.datagram import Socket
from janus_net._sockets.segments import split
from janus_net._sockets.server import Server
from janus_net._sockets.stream import Stream
from janus_net._values.addresses import Address, BindAddress
from janus_net._values.errors import ErrnoBug, SocketError
from janus_net._values.fd import FdAddress
from janus_net._values.ip import Ip4Address, Ip6Address
from janus_net._values.kinds import Mode, Protocol
from janus_net._values.unix import UnixAddress

__version__ = "0.1.0"

# Names most programs never use load on first use (PEP 562): `jn.notify` and
# `from janus_net import notify` both import their module then, and keep the value
# here so that later lookups never come back. A public name joins with one line in
# `_LAZY` (name -> module; the module itself when name is that module's own last
# part, as for `handoff`) and its import in the block below, which is what type
# checkers read (tests/test_lean.py checks that the two agree). What they save, in a
# fresh interpreter: the audit module brings dataclasses, json and logging; the
# process wing (activation, notify, hand-over of sockets) its own modules. What may
# be lazy: a first use imports a module, which opens its file; with the descriptor
# table full that import fails, and `__getattr__` raises the fd-quota member for it
# (ProcessFdQuotaExceeded, as the call itself would). Still, the profiles that make
# sockets (listen, bind, connect, and with them adoption and unix socket files) load
# with `import janus_net`; the names below are used at start-up (activation, notify),
# move descriptors between processes, or resolve names (a wing of its own).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from janus_net import handoff as handoff
    from janus_net._policy.capability import NetBind
    from janus_net._process.activation import listen_fds
    from janus_net._process.notify import notify, watchdog_interval
    from janus_net._process.receiving import receive_sockets
    from janus_net._process.sending import send_sockets
    from janus_net._profiles.connect_host import connect_host
    from janus_net._profiles.resolve import resolve
    from janus_net._profiles.resolver_config import ResolverConfig
    from janus_net._values.resolution import Resolution
    from janus_net.audit import AuditRecord

_LAZY = {
    "AuditRecord": "janus_net.audit",
    "NetBind": "janus_net._policy.capability",
    "Resolution": "janus_net._values.resolution",
    "ResolverConfig": "janus_net._profiles.resolver_config",
    "connect_host": "janus_net._profiles.connect_host",
    "handoff": "janus_net.handoff",
    "listen_fds": "janus_net._process.activation",
    "notify": "janus_net._process.notify",
    "receive_sockets": "janus_net._process.receiving",
    "resolve": "janus_net._profiles.resolve",
    "send_sockets": "janus_net._process.sending",
    "watchdog_interval": "janus_net._process.notify",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'janus_net' has no attribute {name!r}")
    import importlib

    try:
        loaded = importlib.import_module(module)
    except OSError as e:
        # The import opens the module's files: with the descriptor table full that is
        # the fd quota, the member every other call of janus_net raises for it.
        raise _import_error(e, module) from e
    value = loaded if module == f"janus_net.{name}" else getattr(loaded, name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def _import_error(error: OSError, module: str) -> BaseException:
    """The `SocketError` member for an import that failed on the fd quota; else the error as is."""
    import errno

    member = {errno.EMFILE: SocketError.ProcessFdQuotaExceeded, errno.ENFILE: SocketError.SystemFdQuotaExceeded}
    kind = member.get(error.errno or 0)
    if kind is None:
        return error
    return kind(error.errno, f"cannot open the files of {module} to import it", syscall="open")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Address",
    "AuditRecord",
    "BindAddress",
    "Context",
    "Datagram",
    "ErrnoBug",
    "FdAddress",
    "Ip4Address",
    "Ip6Address",
    "Mode",
    "NetBind",
    "Protocol",
    "Resolution",
    "ResolverConfig",
    "Server",
    "Socket",
    "SocketError",
    "Stream",
    "UnixAddress",
    "bind",
    "bind_with_capability",
    "bind_with_context",
    "connect",
    "connect_host",
    "handoff",
    "listen",
    "listen_fds",
    "listen_with_capability",
    "listen_with_context",
    "notify",
    "parse_address",
    "receive_sockets",
    "resolve",
    "send_sockets",
    "split",
    "watchdog_interval",
]
