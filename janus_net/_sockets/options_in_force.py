"""The options in force on a socket, read back from the kernel: what ``options()`` returns.

Read with getsockopt each time, so the answer is what the kernel holds, not what was
asked; the keys are the ``listen``/``bind`` keyword names.
"""

from __future__ import annotations

import os

from janus_net._kernel import socket_options
from janus_net._shim import lib
from janus_net._values.options import OPTIONS

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


def _constant(name: str | None) -> int:
    return 0 if name is None else int(getattr(lib, name))


#: The options the kernel can report, with their constants (from the table); `needs` gates each.
_READABLE = tuple(
    (o, _constant(o.level), _constant(o.optname), _constant(o.level6), _constant(o.optname6))
    for o in OPTIONS
    if o.reads is not None
)


def read(fd: Any) -> dict[str, object]:
    """The options the kernel holds on ``fd``, keyed by the listen/bind keyword names (getsockopt).

    Which keys are present follows the table (``reads_on``, ``needs``): ``reuse_address``
    and ``incoming_cpu`` always; ``reuse_port`` where the platform has SO_REUSEPORT;
    ``ip6_only`` on IPv6; ``broadcast`` on datagram sockets; ``freebind``,
    ``transparent``, ``device`` on IP; ``fastopen``, ``defer_accept`` on TCP.
    ``device`` and ``incoming_cpu`` are None when unset; ``fastopen`` and
    ``defer_accept`` 0 when off (``defer_accept`` in seconds as the kernel rounds it).
    ``backlog`` and ``steer`` are not readable and never present.
    """
    family = socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_DOMAIN)
    kind = socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_TYPE)
    ip = family in (lib.AF_INET, lib.AF_INET6)
    ip6 = family == lib.AF_INET6
    stream = kind == lib.SOCK_STREAM
    on = {"any": True, "ip": ip, "ip6": ip6, "tcp": ip and stream, "datagram": not stream}
    result: dict[str, object] = {}
    for option, level, optname, level6, optname6 in _READABLE:
        if not on[option.reads_on]:
            continue
        needs = option.needs6 if ip6 and option.needs6 else option.needs
        if any(not getattr(lib, name) for name in needs):
            continue  # the platform has no such option
        if ip6:
            level, optname = level6, optname6
        how = option.reads
        if how == "name":
            raw = socket_options.getsockopt_buffer(fd, level, optname, lib.IF_NAMESIZE)
            name = raw.split(b"\0", 1)[0]
            result[option.name] = os.fsdecode(name) if name else None
            continue
        number = socket_options.getsockopt_int(fd, level, optname)
        if how == "bool":
            result[option.name] = bool(number)
        elif how == "cpu":
            result[option.name] = None if number < 0 else number
        else:
            result[option.name] = number
    return result


__all__ = ["read"]
