"""The options in force on a socket, read back from the kernel: what ``options()`` returns.

Read with getsockopt each time, so the answer is what the kernel holds, not what was
asked; the keys are the ``listen``/``bind`` keyword names.
"""

from __future__ import annotations

import os

from janus_net import platform
from janus_net._kernel import socket_options
from janus_net._shim import lib

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any


def read(fd: Any) -> dict[str, object]:
    """The options the kernel holds on ``fd``, keyed by the listen/bind keyword names (getsockopt).

    Keys present depend on the socket: ``reuse_address`` and ``incoming_cpu`` always;
    ``reuse_port`` where the platform has SO_REUSEPORT; ``ip6_only`` on IPv6;
    ``broadcast`` on datagram sockets; ``freebind``, ``transparent``, ``device`` on IP;
    ``fastopen``, ``defer_accept`` on TCP. ``device`` and ``incoming_cpu`` are None when
    unset; ``fastopen`` and ``defer_accept`` 0 when off (``defer_accept`` in seconds as
    the kernel rounds it). ``backlog`` and ``steer`` are not readable and never present.
    """
    family = socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_DOMAIN)
    kind = socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_TYPE)
    ip = family in (lib.AF_INET, lib.AF_INET6)
    result: dict[str, object] = {
        "reuse_address": bool(socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_REUSEADDR)),
    }
    if platform.SO_REUSEPORT:
        result["reuse_port"] = bool(socket_options.getsockopt_int(fd, lib.SOL_SOCKET, platform.SO_REUSEPORT))
    if family == lib.AF_INET6:
        result["ip6_only"] = bool(socket_options.getsockopt_int(fd, lib.IPPROTO_IPV6, lib.IPV6_V6ONLY))
    if kind != lib.SOCK_STREAM:
        result["broadcast"] = bool(socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.SO_BROADCAST))
    if ip:
        v6 = family == lib.AF_INET6
        if lib.JN_IPV6_FREEBIND if v6 else lib.JN_IP_FREEBIND:
            level, option = (lib.IPPROTO_IPV6, lib.JN_IPV6_FREEBIND) if v6 else (lib.IPPROTO_IP, lib.JN_IP_FREEBIND)
            result["freebind"] = bool(socket_options.getsockopt_int(fd, level, option))
        if lib.JN_IPV6_TRANSPARENT if v6 else lib.JN_IP_TRANSPARENT:
            level, option = (
                (lib.IPPROTO_IPV6, lib.JN_IPV6_TRANSPARENT) if v6 else (lib.IPPROTO_IP, lib.JN_IP_TRANSPARENT)
            )
            result["transparent"] = bool(socket_options.getsockopt_int(fd, level, option))
        if lib.JN_SO_BINDTODEVICE:
            raw = socket_options.getsockopt_buffer(fd, lib.SOL_SOCKET, lib.JN_SO_BINDTODEVICE, lib.IF_NAMESIZE)
            name = raw.split(b"\0", 1)[0]
            result["device"] = os.fsdecode(name) if name else None
        if kind == lib.SOCK_STREAM:
            if lib.JN_TCP_FASTOPEN:
                result["fastopen"] = socket_options.getsockopt_int(fd, lib.IPPROTO_TCP, lib.JN_TCP_FASTOPEN)
            if lib.JN_TCP_DEFER_ACCEPT:
                result["defer_accept"] = socket_options.getsockopt_int(fd, lib.IPPROTO_TCP, lib.JN_TCP_DEFER_ACCEPT)
    if lib.JN_SO_INCOMING_CPU:
        cpu = socket_options.getsockopt_int(fd, lib.SOL_SOCKET, lib.JN_SO_INCOMING_CPU)
        result["incoming_cpu"] = None if cpu < 0 else cpu
    return result


__all__ = ["read"]
