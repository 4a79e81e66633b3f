"""janus_net: listening and bound sockets made straight from libc.

One typed error per cause, nothing leaked on any path, cancellable with a
`Context`, and gated by a `NetBind` capability that writes an audit trail::

    import janus_net as jn

    server = jn.listen("127.0.0.1:0")          # :core
    stream = server.accept()
"""

from __future__ import annotations

from janus_net._policy.context import Context
from janus_net._process.activation import listen_fds
from janus_net._process.notify import notify, watchdog_interval
from janus_net._process.receiving import receive_sockets
from janus_net._process.sending import send_sockets
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

# The :sovereign names load on first use: the audit module brings dataclasses, json
# and logging (about a third of `import janus_net`), which :core and :service never
# need. `jn.NetBind` / `from janus_net import NetBind` load them then (PEP 562).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from janus_net import handoff as handoff
    from janus_net._policy.capability import NetBind
    from janus_net._profiles.connect_host import connect_host
    from janus_net._profiles.resolve import resolve
    from janus_net._profiles.resolver_config import ResolverConfig
    from janus_net._values.resolution import Resolution
    from janus_net.audit import AuditRecord

# The names wing (DESIGN §17) loads on first use too: a program that never resolves a
# name never pays for the resolver's modules at import.
_LAZY = {
    "AuditRecord": "janus_net.audit",
    "NetBind": "janus_net._policy.capability",
    "Resolution": "janus_net._values.resolution",
    "ResolverConfig": "janus_net._profiles.resolver_config",
    "connect_host": "janus_net._profiles.connect_host",
    "resolve": "janus_net._profiles.resolve",
}


def __getattr__(name: str) -> object:
    if name == "handoff":
        # jn.handoff is imported on first use: most programs never upgrade themselves.
        import importlib

        return importlib.import_module("janus_net.handoff")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'janus_net' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


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
