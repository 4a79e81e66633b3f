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
- A unix socket (path or abstract name) has no port: it is allowed while the
  capability grants ``net.bind``.
- After ``revoke()`` nothing is allowed and ``.grants`` is empty.

The capability is shared safely between threads; ``.ports`` and ``.grants`` are
snapshots.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from janus_net import landlock
from janus_net.address import Address, UnixAddress, as_address
from janus_net.audit import AuditRecord, Operation, Result, Sink
from janus_net.errors import SocketError

NET_BIND = "net.bind"

_DEFAULT_PORTS = (8080, 3000, 8000)


class NetBind:
    """Permission to bind: ``net.bind`` on ``ports`` (and on unix sockets), until revoked.

    Args:
        id: names the capability in audit records and errors.
        ports: the ports IP binds may use (0..65535 each).
        audit: a sink (any callable taking an `AuditRecord`), or None for no trail.
    """

    def __init__(self, id: str, *, ports: Iterable[int] = _DEFAULT_PORTS, audit: Sink | None = None) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError(f"a capability id must be a non-empty str, not {id!r}")
        self._id = id
        self._ports = {_check_port(port) for port in ports}
        self._revoked = False
        self._audit = audit
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self._id

    @property
    def grants(self) -> frozenset[str]:
        """What this capability grants: ``{"net.bind"}``, or nothing once revoked."""
        return frozenset() if self._revoked else frozenset({NET_BIND})

    @property
    def ports(self) -> frozenset[int]:
        """The allowed ports, as of now."""
        with self._lock:
            return frozenset(self._ports)

    @property
    def revoked(self) -> bool:
        return self._revoked

    @property
    def audit(self) -> Sink | None:
        """The sink records go to (None: no trail)."""
        return self._audit

    def allow_port(self, port: int) -> NetBind:
        """Allow binding ``port`` too; returns the capability so calls can be chained.

        Raises ValueError unless ``port`` is an int in 0..65535. Allowing a port on a
        revoked capability changes nothing: revocation is final.
        """
        port = _check_port(port)
        with self._lock:
            self._ports.add(port)
        return self

    def revoke(self) -> None:
        """Deny everything from now on (binds already made are not touched)."""
        with self._lock:
            self._revoked = True

    def enforce(self) -> None:
        """Make the kernel enforce this capability's TCP ports for the whole process, for good (Landlock).

        From then on no code in the process or its later children can bind a TCP port
        outside ``.ports`` (port 0 only if allowed explicitly); a janus_net bind the
        kernel refuses raises ``CapabilityDenied`` with ``.reason == "kernel"``. UDP,
        unix sockets and outgoing connections are not restricted by the kernel.
        Audited as one ``enforce`` record. See `janus_net.landlock` and
        docs/kernel-capability.md.

        Raises:
            SocketError.OptionUnsupported: no Landlock network rules (ABI < 4), or other
                threads run on a kernel that restricts only the calling thread; nothing
                was changed.
        """
        landlock.enforce(self._id, self.ports if not self._revoked else (), self._audit)

    def allows(self, address: str | Address) -> bool:
        """Whether a bind to ``address`` would be allowed. Writes no audit record."""
        return self._decide(as_address(address))

    # --- the hooks janus_net.listen calls

    def authorize(self, address: Address) -> None:
        """Gate a bind: audit ``check_bind_address``, and raise CapabilityDenied if denied.

        Called before any syscall. A sink that raises propagates its exception
        whatever the decision was, so the bind does not happen.
        """
        allowed = self._decide(address)
        self._record("check_bind_address", address, "allowed" if allowed else "denied")
        if not allowed:
            raise SocketError.CapabilityDenied(None, self._denial(address), address=str(address))

    def record_bound(self, address: Address) -> None:
        """Audit ``bind_socket``: the OS bind succeeded, on ``address`` (the real port)."""
        self._record("bind_socket", address, "allowed")

    # --- internals

    def _decide(self, address: Address) -> bool:
        with self._lock:
            if self._revoked:
                return False
            if isinstance(address, UnixAddress):
                return True
            return address.port in self._ports

    def _denial(self, address: Address) -> str:
        if self._revoked:
            return f"capability {self._id!r} was revoked: it grants no {NET_BIND}"
        return f"capability {self._id!r} does not allow {NET_BIND} on port {address.port}"

    def _record(self, operation: Operation, address: Address, result: Result) -> None:
        sink = self._audit
        if sink is not None:
            sink(AuditRecord(self._id, operation, address.port, result, str(address), time.time()))

    def __repr__(self) -> str:
        state = "revoked" if self._revoked else f"ports={sorted(self.ports)}"
        return f"<janus_net.NetBind {self._id!r} {state}>"


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"a port must be an int in 0..65535, not {port!r}")
    return int(port)


__all__ = ["NET_BIND", "NetBind"]
