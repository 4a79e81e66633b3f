"""Fixtures for the name tests: resolv.conf and hosts files in a tmp dir, named by the environment, and a DNS server.

``resolver_files`` writes ``resolv.conf`` and ``hosts`` into a tmp dir and points ``JANUS_NET_RESOLV_CONF`` /
``JANUS_NET_HOSTS`` at them (``LOCALDOMAIN`` and ``RES_OPTIONS`` are removed, so the machine's own cannot
leak in). resolv.conf cannot carry a port, so a test on a port-0 server loads the files and then points the
config at the server: ``config_for(server)`` does both. Use in a test module::

    from names_fixtures import config_for, dns_server, resolver_files  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_server import DnsServer


@dataclasses.dataclass
class ResolverFiles:
    """The two files the environment names; ``write`` replaces either."""

    directory: Path
    resolv_conf: Path
    hosts: Path

    def write(self, resolv_conf: str | None = None, hosts: str | None = None) -> None:
        """Replace the text of resolv.conf and/or hosts."""
        if resolv_conf is not None:
            self.resolv_conf.write_text(resolv_conf)
        if hosts is not None:
            self.hosts.write_text(hosts)


def resolv_conf_text(
    nameservers: Iterable[str] = ("127.0.0.1",),
    *,
    search: Iterable[str] = (),
    domain: str | None = None,
    options: Iterable[str] = (),
) -> str:
    """A resolv.conf: nameserver lines (no port: resolv.conf has none), then domain, search, options."""
    lines = [f"nameserver {ns}" for ns in nameservers]
    if domain is not None:
        lines.append(f"domain {domain}")
    search = list(search)
    if search:
        lines.append("search " + " ".join(search))
    options = list(options)
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


@pytest.fixture
def resolver_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ResolverFiles:
    """resolv.conf ("nameserver 127.0.0.1") and an empty hosts file, named by JANUS_NET_RESOLV_CONF/_HOSTS."""
    files = ResolverFiles(tmp_path, tmp_path / "resolv.conf", tmp_path / "hosts")
    files.write(resolv_conf_text(), "")
    monkeypatch.setenv("JANUS_NET_RESOLV_CONF", str(files.resolv_conf))
    monkeypatch.setenv("JANUS_NET_HOSTS", str(files.hosts))
    monkeypatch.delenv("LOCALDOMAIN", raising=False)
    monkeypatch.delenv("RES_OPTIONS", raising=False)
    return files


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A DNS server on 127.0.0.1, a free port, UDP and TCP; closed (with every socket) afterwards."""
    with DnsServer() as server:
        yield server


def config_for(*servers: DnsServer, **fields: Any) -> Any:
    """``ResolverConfig.load()`` (the environment's files) pointed at ``servers``, with ``fields`` replaced.

    Defaults to ``timeout=1, attempts=1`` so that a test of a silent server lasts a second, not ten.
    """
    import janus_net as jn

    fields.setdefault("timeout", 1)
    fields.setdefault("attempts", 1)
    return jn.ResolverConfig.load().replace(nameservers=tuple(s.nameserver for s in servers), **fields)


def socket_fds() -> set[int]:
    """This process's descriptors that are sockets (a context's wake fd is an eventfd: not one of them)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.add(int(name))
        except OSError:
            pass  # closed while we looked
    return found


def sockets_left(before: set[int], *servers: DnsServer, settle: float = 2.0) -> set[int]:
    """The sockets opened since ``before`` that no test server holds: what a lookup left open.

    The servers run in this process: a connection the lookup made may still wait in a server's accept
    queue when the lookup returns and be accepted a moment later. A leaked socket stays open for good, so
    the answer is taken once nothing but the servers' own sockets is left, or after ``settle`` seconds.
    """
    deadline = time.monotonic() + settle
    while True:
        held = set().union(*(server.fds() for server in servers)) if servers else set()
        left = socket_fds() - before - held
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)
