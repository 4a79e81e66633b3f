"""Moved: see janus_net._values (ip, unix, fd, addresses, reported) and janus_net._profiles.addresses."""

from janus_net._profiles.addresses import (
    _PARSED,
    _PARSED_MAX,
    as_bind_address,
    parse_address,
)
from janus_net._values import sockaddr
from janus_net._values.addresses import Address, BindAddress, as_address, exact
from janus_net._values.escaping import for_people
from janus_net._values.fd import MAX_FD as _MAX_FD
from janus_net._values.fd import FdAddress
from janus_net._values.ip import Ip4Address, Ip6Address, IpAddress, require_zone
from janus_net._values.reported import DECODED_SOURCES, from_sockaddr, from_sockaddr_cached, reported
from janus_net._values.sockaddr import sockaddr_size
from janus_net._values.unix import UnixAddress

__all__ = [
    "DECODED_SOURCES",
    "_MAX_FD",
    "_PARSED",
    "_PARSED_MAX",
    "Address",
    "BindAddress",
    "FdAddress",
    "Ip4Address",
    "Ip6Address",
    "IpAddress",
    "UnixAddress",
    "as_address",
    "as_bind_address",
    "exact",
    "for_people",
    "from_sockaddr",
    "from_sockaddr_cached",
    "parse_address",
    "reported",
    "require_zone",
    "sockaddr",
    "sockaddr_size",
]
