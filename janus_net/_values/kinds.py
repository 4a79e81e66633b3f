"""`Mode` and `Protocol`: the kind of socket a `bind` asks for, as values (DESIGN §2).

`Mode` is valued as this platform's SOCK_* constants (read from the compiler), `Protocol`
as the IANA protocol numbers, which are the same everywhere.
"""

from __future__ import annotations

import enum

from janus_net._shim import lib


class Mode(enum.IntEnum):
    """Socket modes (types), valued as this platform's SOCK_* constants."""

    #: Sequenced, reliable, two-way connection-based byte streams.
    STREAM = lib.SOCK_STREAM
    #: Connectionless, unreliable messages of a fixed maximum length.
    DGRAM = lib.SOCK_DGRAM
    #: Reliable, ordered, connection-based datagrams read whole.
    SEQPACKET = lib.SOCK_SEQPACKET
    #: Raw network protocol access.
    RAW = lib.SOCK_RAW
    #: Reliable datagrams without guaranteed ordering.
    RDM = lib.SOCK_RDM


class Protocol(enum.IntEnum):
    """IP protocol numbers, as assigned by IANA (the same on every platform)."""

    HOPOPTS = 0
    ICMP = 1
    IGMP = 2
    IPIP = 4
    TCP = 6
    EGP = 8
    PUP = 12
    UDP = 17
    IDP = 22
    TP = 29
    DCCP = 33
    IPV6 = 41
    ROUTING = 43
    FRAGMENT = 44
    RSVP = 46
    GRE = 47
    ESP = 50
    AH = 51
    ICMPV6 = 58
    NONE = 59
    DSTOPTS = 60
    MTP = 92
    BEETPH = 94
    ENCAP = 98
    PIM = 103
    COMP = 108
    SCTP = 132
    MH = 135
    UDPLITE = 136
    MPLS = 137
    ETHERNET = 143
    RAW = 255
    MPTCP = 262


__all__ = ["Mode", "Protocol"]
