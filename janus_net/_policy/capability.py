"""`NetBind`: the capability that the :sovereign profile asks before it binds anything.

A capability is an object you hand to code to say what it may do. ``NetBind``
grants ``net.bind`` on a set of ports; `listen_with_capability` and
`bind_with_capability` ask it about the address *before any syscall*, and write
the answer to its audit sink::

    cap = NetBind("api-server", audit=JsonLinesSink(sys.stderr))   # ports 8080, 3000, 8000
    cap.allow_port(9000)
    server = listen_with_capability("127.0.0.1:9000", cap)
    # {"capability_id": "api-server", "operation": "check_bind_address", ..., "result": "allowed", ...}
    # {"capability_id": "api-server", "operation": "bind_socket", "port": 9000, ...}

Rules:

- An IP address is allowed when its port is one of ``.ports``. Port 0 (let the
  kernel choose) is a port like any other: allowed only if it was added, since it
  lets the holder bind a port nobody chose.
- A capability speaks of ports, so on IP addresses it allows only sockets whose
  port field is a port: STREAM, DGRAM and SEQPACKET sockets of TCP, UDP, SCTP or the
  default protocol. A RAW socket (its "port" is a protocol number, and it reads
  every service's traffic of that protocol), an RDM socket or another protocol is
  denied unless the capability was built with ``raw=True``; its records carry
  ``port: null``.
- A unix socket (path or abstract name) has no port: it is allowed while the
  capability grants ``net.bind``.
- The gate sees the exact value that is bound: `listen*`/`bind*` rebuild an
  instance of a subclass of an address type as its base type first.
- After ``revoke()`` nothing is allowed and ``.grants`` is empty.

The capability is shared safely between threads; ``.ports`` and ``.grants`` are
snapshots. It takes no lock: every change is one operation the interpreter makes
atomically (``set.add`` of an int, the assignment of ``True``), and every decision
reads each field once. So an exception landing anywhere in its methods -- a
KeyboardInterrupt, a signal handler's exception -- can leave nothing held, and a
later call from any thread goes through (tests/test_capability.py injects one at
every line). Revocation is one-way, so a decision that read "not revoked" was made
before the revoke.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from janus_net._policy import landlock
from janus_net._shim import lib
from janus_net._values.addresses import Address, as_address
from janus_net._values.errors import SocketError
from janus_net._values.strict import flag, integer
from janus_net._values.unix import UnixAddress
from janus_net.audit import AuditRecord, Operation, Result, Sink

NET_BIND = "net.bind"

_DEFAULT_PORTS = (8080, 3000, 8000)

# The socket kinds whose port field is a port (DESIGN §6): anything else on IP needs raw=True.
_PORT_MODES = frozenset({lib.SOCK_STREAM, lib.SOCK_DGRAM, lib.SOCK_SEQPACKET})
_PORT_PROTOCOLS = frozenset({0, 6, 17, 132})  # default, TCP, UDP, SCTP (IANA numbers)
_STREAM = lib.SOCK_STREAM


def _has_ports(address: Address, mode: int, protocol: int) -> bool:
    """Whether ``address``'s port field is a port for a socket of this mode and protocol."""
    return isinstance(address, UnixAddress) or (mode in _PORT_MODES and protocol in _PORT_PROTOCOLS)


class NetBind:
    """Permission to bind: ``net.bind`` on ``ports`` (and on unix sockets), until revoked.

    Args:
        id: names the capability in audit records and errors.
        ports: the ports IP binds may use (0..65535 each).
        audit: a sink (any callable taking an `AuditRecord`), or None for no trail.
        raw: also allow, on any IP address, sockets whose port field is not a port
            (RAW, RDM, protocols other than TCP, UDP, SCTP). Off by default: a RAW
            socket reads other services' traffic.

    Raises:
        ValueError: an empty id, a port outside 0..65535.
        TypeError: ``raw`` is not a bool.
    """

    def __init__(
        self, id: str, *, ports: Iterable[int] = _DEFAULT_PORTS, audit: Sink | None = None, raw: bool = False
    ) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError(f"a capability id must be a non-empty str, not {id!r}")
        self._raw = flag("raw", raw)
        self._id = str.__str__(id)
        self._ports = {_check_port(port) for port in ports}
        self._revoked = False
        self._audit = audit

    @property
    def id(self) -> str:
        """The name this capability carries in audit records and error messages."""
        return self._id

    @property
    def grants(self) -> frozenset[str]:
        """What this capability grants: ``{"net.bind"}``, or nothing once revoked."""
        return frozenset() if self._revoked else frozenset({NET_BIND})

    @property
    def ports(self) -> frozenset[int]:
        """The allowed ports, as of now."""
        return frozenset(self._ports)  # one C-level copy: atomic under the GIL

    @property
    def revoked(self) -> bool:
        """True once `revoke` was called: nothing is allowed any more."""
        return self._revoked

    @property
    def raw(self) -> bool:
        """Whether sockets whose port field is not a port (RAW, RDM...) are allowed too."""
        return self._raw

    @property
    def audit(self) -> Sink | None:
        """The sink records go to (None: no trail)."""
        return self._audit

    def allow_port(self, port: int) -> NetBind:
        """Allow binding ``port`` too; returns the capability so calls can be chained.

        Allowing a port on a revoked capability changes nothing: revocation is final.
        A port allowed after `enforce` is allowed by janus_net's gate only; the kernel
        keeps the ports it was given.

        Args:
            port: an int in 0..65535. 0 lets the holder bind a port the kernel picks.

        Returns:
            This capability: ``NetBind("web").allow_port(0).allow_port(9000)``.

        Raises:
            ValueError: ``port`` is not an int in 0..65535 (a bool is refused).
        """
        port = _check_port(port)
        self._ports.add(port)  # one atomic operation: an exception cannot land half-way
        return self

    def revoke(self) -> None:
        """Deny everything from now on (binds already made are not touched).

        Final and idempotent: there is no way back. A later `enforce` allows no port
        at all in the kernel.

        Raises:
            Nothing: revoking cannot fail.
        """
        self._revoked = True

    def enforce(self) -> None:
        """Make the kernel enforce this capability's TCP ports for the whole process, for good (Landlock).

        From then on no code in the process or its later children can bind a TCP port
        outside ``.ports`` (port 0 only if allowed explicitly); a janus_net bind the
        kernel refuses raises ``CapabilityDenied`` with ``.reason == "kernel"``. A
        seccomp filter on every thread (inherited by children) refuses what Landlock's
        TCP rules cannot see: MPTCP sockets (EACCES), io_uring_setup and syscalls of
        another ABI (EPERM); janus_net's own MPTCP binds are ``CapabilityDenied`` before
        any syscall. UDP, unix sockets, outgoing connections and listen() on a socket
        nobody bound (which autobinds a port) are not restricted by the kernel.
        Audited as one ``enforce`` record (``port`` None, ``address`` the text
        ``"landlock tcp-bind 3000,8000,8080"``), written once the restriction holds; the
        PEP 578 event ``janus_net.enforce`` (id, ports) is raised before anything changes,
        so an audit hook can veto it. Enforcing again stacks: the kernel then allows
        only ports every enforcement allowed. It also sets ``no_new_privs``. See
        `janus_net._policy.landlock` and docs/kernel-capability.md.

        Raises:
            SocketError.OptionUnsupported: no Landlock network rules (ABI < 4, Landlock
                disabled or not built), no seccomp filters, or other threads run on a
                kernel that restricts only the calling thread (call ``enforce()`` before
                starting threads); nothing was changed.
            SocketError.AccessDenied: the kernel refused ``no_new_privs`` or the
                restriction (a seccomp filter, say).
            SocketError.SystemResources: no memory, or the process already has the
                maximum of stacked Landlock domains.
            Any exception of an audit hook (before anything changed) or of the audit
            sink (after the restriction is in force: it stays).
        """
        landlock.enforce(self._id, self.ports if not self._revoked else (), self._audit)

    def allows(self, address: str | Address, *, mode: int = _STREAM, protocol: int = 0) -> bool:
        """Whether a bind to ``address`` would be allowed. Writes no audit record.

        Args:
            address: text or an address value (a subclass instance is judged as its base type).
            mode: the socket type (`janus_net.Mode`); STREAM by default, as `listen` makes.
            protocol: the protocol number; 0, the family's default, by default.

        Returns:
            True when `listen_with_capability`/`bind_with_capability` would let the bind
            through this capability's gate (the kernel may still refuse it).

        Raises:
            SocketError.InvalidAddress / InvalidPort: ``address`` is text that does not
                parse, or ``fd://N`` (an inherited socket is judged when adopted).
        """
        return self._decide(as_address(address), mode, protocol)

    # --- the hooks janus_net.listen calls

    def authorize(self, address: Address, mode: int = _STREAM, protocol: int = 0) -> None:
        """Gate a bind: audit ``check_bind_address``, and raise CapabilityDenied if denied.

        Called before any syscall, with the exact address value that will be bound
        (`janus_net._values.addresses.exact`) and the socket's mode and protocol. A sink that
        raises propagates its exception whatever the decision was, so the bind does
        not happen.

        Args:
            address: the address to be bound (text is parsed; a subclass instance is
                rebuilt as its base type).
            mode: the socket type; STREAM by default.
            protocol: the protocol number; 0 by default.

        Raises:
            SocketError.CapabilityDenied: the capability does not allow this bind
                (``.reason`` None: janus_net's own gate refused).
            SocketError.InvalidAddress / InvalidPort: ``address`` is text that does not parse.
            Any exception of the audit sink.
        """
        address = as_address(address)  # an exact value already; a subclass instance is rebuilt
        allowed = self._decide(address, mode, protocol)
        self._record("check_bind_address", address, "allowed" if allowed else "denied", mode, protocol)
        if not allowed:
            raise SocketError.CapabilityDenied(None, self._denial(address, mode, protocol), address=str(address))

    def record_bound(self, address: Address, mode: int = _STREAM, protocol: int = 0) -> None:
        """Audit ``bind_socket``: the OS bind succeeded, on ``address`` (the real port).

        janus_net calls it only when the capability has an `audit` sink (without one
        there is nothing to record, and the bound address need not be built).

        Args:
            address: the bound address as the kernel reports it.
            mode: the socket type; STREAM by default.
            protocol: the protocol number; 0 by default.

        Raises:
            Any exception of the audit sink.
        """
        self._record("bind_socket", address, "allowed", mode, protocol)

    # --- internals

    def _decide(self, address: Address, mode: int, protocol: int) -> bool:
        if self._revoked:
            return False
        if isinstance(address, UnixAddress):
            return True
        if not _has_ports(address, mode, protocol):
            return self._raw
        return address.port in self._ports

    def _denial(self, address: Address, mode: int, protocol: int) -> str:
        if self._revoked:
            return f"capability {self._id!r} was revoked: it grants no {NET_BIND}"
        if not _has_ports(address, mode, protocol):
            return (
                f"capability {self._id!r} allows only sockets with ports (STREAM, DGRAM, SEQPACKET of TCP, UDP, "
                f"SCTP); mode {_mode_name(mode)} protocol {protocol} needs NetBind(..., raw=True)"
            )
        return f"capability {self._id!r} does not allow {NET_BIND} on port {address.port}"

    def _record(self, operation: Operation, address: Address, result: Result, mode: int, protocol: int) -> None:
        sink = self._audit
        if sink is not None:
            port = address.port if _has_ports(address, mode, protocol) else None
            sink(AuditRecord(self._id, operation, port, result, str(address), time.time()))

    def __repr__(self) -> str:
        state = "revoked" if self._revoked else f"ports={sorted(self.ports)}"
        return f"<janus_net.NetBind {self._id!r} {state}>"


def _mode_name(mode: int) -> str:
    names = {lib.SOCK_STREAM: "STREAM", lib.SOCK_DGRAM: "DGRAM", lib.SOCK_SEQPACKET: "SEQPACKET",
             lib.SOCK_RAW: "RAW", lib.SOCK_RDM: "RDM"}  # fmt: skip
    return names.get(mode, str(mode))


def _check_port(port: object) -> int:
    return integer("port", port, 0, 65535)


__all__ = ["NET_BIND", "NetBind"]
