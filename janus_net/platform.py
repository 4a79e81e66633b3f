"""What this platform offers, as the C compiler saw it when the shim was built.

Everything here is read from the compiled shim; nothing is guessed from the OS
name. `JANUS_NET_FORCE_CLOEXEC_EMULATION=1` (read once, at import) makes a Linux
process take the Darwin path: socket() without SOCK_CLOEXEC then fcntl(F_SETFD),
and accept() rather than accept4(), so that path is tested where CI runs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from janus_net._shim import ffi, lib

FORCE_CLOEXEC_EMULATION: bool = os.environ.get("JANUS_NET_FORCE_CLOEXEC_EMULATION") == "1"

#: socket() can take SOCK_CLOEXEC (atomically close-on-exec).
HAS_SOCK_CLOEXEC: bool = bool(lib.JN_HAS_SOCK_CLOEXEC) and not FORCE_CLOEXEC_EMULATION
#: accept4() exists (atomically close-on-exec accepted sockets).
HAS_ACCEPT4: bool = bool(lib.JN_HAS_ACCEPT4) and not FORCE_CLOEXEC_EMULATION
#: sendmmsg()/recvmmsg() exist.
HAS_MMSG: bool = bool(lib.JN_HAS_MMSG)
#: send flag that suppresses SIGPIPE (0 where the platform uses SO_NOSIGPIPE instead). On
#: Darwin it is 0 unless the oldest macOS the shim was built for honours it (macOS 27): the
#: SDK's definition alone says nothing about the kernel the package runs on.
MSG_NOSIGNAL: int = lib.JN_MSG_NOSIGNAL
#: socket option that suppresses SIGPIPE, set on every socket where it exists (0 on Linux).
SO_NOSIGPIPE: int = lib.JN_SO_NOSIGPIPE
#: SO_REUSEPORT, or 0 where the platform lacks it.
SO_REUSEPORT: int = lib.JN_SO_REUSEPORT
#: Linux abstract unix socket names (``unix:@name``).
HAS_ABSTRACT_UNIX: bool = bool(lib.JN_HAS_ABSTRACT_UNIX)
#: sizeof(sun_path): a path may use this many bytes minus one (the NUL).
SUN_PATH_SIZE: int = ffi.sizeof(dict(ffi.typeof("struct sockaddr_un").fields)["sun_path"].type)
#: offsetof(struct sockaddr_un, sun_path): where the path starts in the encoding.
SUN_PATH_OFFSET: int = ffi.offsetof("struct sockaddr_un", "sun_path")

#: Flags every socket() call adds to the type.
SOCKET_TYPE_FLAGS: int = lib.JN_SOCK_CLOEXEC if HAS_SOCK_CLOEXEC else 0

#: An accepted socket inherits the listener's O_NONBLOCK (BSD-derived kernels; not Linux).
ACCEPT_INHERITS_O_NONBLOCK: bool = bool(lib.JN_ACCEPT_INHERITS_O_NONBLOCK)
#: eventfd(2) exists: a wake fd is one descriptor (else a pipe, two).
HAS_EVENTFD: bool = bool(lib.JN_HAS_EVENTFD)
#: SO_PROTOCOL exists: an adopted socket's protocol can be read.
HAS_SO_PROTOCOL: bool = bool(lib.JN_HAS_SO_PROTOCOL)
#: SO_DOMAIN exists: an adopted socket's family can be read before getsockname.
HAS_SO_DOMAIN: bool = bool(lib.JN_HAS_SO_DOMAIN)

#: sendmmsg/recvmmsg are used: the platform has them, and their results (each message's
#: length and source length) can be read in one go through a view of the header array
#: as 4-byte unsigned ints (socklen_t, unsigned int and the header size agree).
USE_MMSG: bool = (
    HAS_MMSG
    and struct.calcsize("I") == 4
    and ffi.sizeof("socklen_t") == 4
    and ffi.sizeof("unsigned int") == 4
    and ffi.sizeof("jn_mmsg_len_t") == 4
    and ffi.sizeof("struct mmsghdr") % 4 == 0
)
#: An IPv4 source in a sockaddr_storage is identified by its first 8 bytes (family,
#: port, address), so a receive can key its decode cache by one int.
IP4_KEY_OK: bool = (
    struct.calcsize("Q") == 8
    and ffi.sizeof("struct sockaddr_storage") % 8 == 0
    and ffi.offsetof("struct sockaddr_in", "sin_addr") + 4 <= 8
)

# --- UDP segmentation offload and ancillary data (DESIGN §15)

#: `JANUS_NET_FORCE_GSO_FALLBACK=1` (read once, at import) makes ``send_segments`` take
#: the path of a platform without UDP_SEGMENT (one sendmmsg of the datagrams), so that
#: path is tested where CI runs.
FORCE_GSO_FALLBACK: bool = os.environ.get("JANUS_NET_FORCE_GSO_FALLBACK") == "1"
#: UDP_SEGMENT control messages can be sent (Linux 4.18+ headers).
HAS_UDP_SEGMENT: bool = bool(lib.JN_HAS_UDP_SEGMENT) and not FORCE_GSO_FALLBACK
#: UDP_GRO can be turned on (Linux 5.0+ headers).
HAS_UDP_GRO: bool = bool(lib.JN_HAS_UDP_GRO)
#: IP_PKTINFO (IPv4 destination address and source selection).
HAS_IP_PKTINFO: bool = bool(lib.JN_HAS_IP_PKTINFO)
#: IPV6_RECVPKTINFO / IPV6_PKTINFO.
HAS_IPV6_PKTINFO: bool = bool(lib.JN_HAS_IPV6_PKTINFO)
#: SO_TIMESTAMPNS (receive timestamps as struct timespec).
HAS_TIMESTAMPNS: bool = bool(lib.JN_SO_TIMESTAMPNS)


# --- A fact the running kernel must be asked for. This module asks the kernel nothing:
# the kernel door (`janus_net._kernel.confinement`) asks, and hands its question up here when
# it is imported (`hand_up`), which importing janus_net always does first.


def _not_handed_up() -> int:
    raise RuntimeError("the kernel door has not handed its Landlock question up (import janus_net first)")


_landlock_abi: Callable[[], int] = _not_handed_up


def landlock_abi() -> int:
    """The Landlock ABI version the running kernel offers: an int, 0 without Landlock.

    Network rules (what `NetBind.enforce` needs) start at ABI 4. Asked of the kernel
    on each call (LANDLOCK_CREATE_RULESET_VERSION), since a boot option can turn it off.
    """
    return _landlock_abi()


def hand_up(landlock_abi: Callable[[], int]) -> None:
    """Called once by the kernel door (`janus_net._kernel.confinement`) at import: its way of asking the kernel."""
    global _landlock_abi
    _landlock_abi = landlock_abi


#: The kernel lists bound unix sockets with their file's inode (Linux sock_diag, unix_diag).
HAS_UNIX_DIAG: bool = bool(lib.JN_HAS_UNIX_DIAG)

#: recvmsg flag making received descriptors close-on-exec at once (0: set FD_CLOEXEC with
#: fcntl right after recvmsg; forced by JANUS_NET_FORCE_CLOEXEC_EMULATION like the others).
MSG_CMSG_CLOEXEC: int = 0 if FORCE_CLOEXEC_EMULATION else lib.JN_MSG_CMSG_CLOEXEC
