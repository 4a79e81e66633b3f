"""`resolve`: a host name's addresses, looked up without a thread and cancellable at once (DESIGN §17).

A `NameLookup` and one loop on `janus_net._policy.waiting.wait_fds`: the lookup
says which sockets and which timer to wait for, one poll(2) waits for them, the
context's wake fd and (on the main thread) the signal wakeup fd, and the lookup
advances. A ``ctx.cancel()`` from any thread, or the context's deadline, ends the
wait and raises `SocketError.Timeout`; the ``finally`` closes every socket the
lookup made, whatever ended it.
"""

from __future__ import annotations

import time

from janus_net._kernel import cells
from janus_net._policy import waiting
from janus_net._profiles.name_lookup import NameLookup

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from janus_net._policy.context import Context
    from janus_net._profiles.resolver_config import ResolverConfig
    from janus_net._values.resolution import Resolution


def resolve(
    host: str,
    port: int = 0,
    *,
    family: int | None = None,
    ctx: Context | None = None,
    config: ResolverConfig | None = None,
) -> Resolution:
    """The addresses of ``host``, each carrying ``port``: an IP literal, localhost, the hosts file, then DNS.

    Args:
        host: an IP literal (``"127.0.0.1"``, ``"::1"``, ``"fe80::1%eth0"``) or a host
            name; a non-ASCII name is IDNA-encoded (UTS 46) first.
        port: the port the addresses carry (0..65535).
        family: None for both, ``socket.AF_INET`` or ``socket.AF_INET6``.
        ctx: a `Context` whose cancel or deadline ends the lookup at once.
        config: a `ResolverConfig`; None reads ``ResolverConfig.load()`` now.

    Returns:
        A `Resolution`: ``.addresses``, ``.canonical_name`` and ``.source``.

    Raises:
        SocketError.InvalidHostName: ``host`` cannot be a name (before any I/O).
        SocketError.UnknownHostName: no address of the families asked (``.name``).
        SocketError.NameServerFailure: no usable answer from any name server (``.temporary``).
        SocketError.Timeout: the context was cancelled or its deadline passed; every
            socket of the lookup is closed.
        SocketError.InvalidPort, TypeError, ValueError: a bad argument.

    The audit event ``janus_net.resolve`` (``host``) is raised before any I/O.
    """
    lookup = None
    try:
        # Made inside the try: the finally closes whatever the lookup made, wherever an
        # exception lands (the constructor closes its own sockets if it fails itself).
        lookup = NameLookup(host, port, family, config, ctx)
        while not lookup.done():
            entries = lookup.poll_entries()
            until = lookup.next_deadline()
            if not entries and until is None:  # a lookup under way always has a try with a timeout
                raise RuntimeError("janus_net bug: a name lookup that is not done waits for nothing")
            revents = waiting.wait_fds(entries, ctx, until)
            lookup.advance(revents, time.monotonic())
        return lookup.result()
    finally:
        if lookup is not None:
            cells.close_all(lookup.held)  # one call into the door: no line of the lookup runs here


__all__ = ["resolve"]
