"""glibc's getaddrinfo as the oracle for search order and address sets, without touching the machine's /etc.

:func:`run_case` starts a child in ``unshare --net --mount`` (a network namespace with only loopback, and a
mount namespace whose bind mounts vanish with it). The child brings ``lo`` up, bind-mounts the case's
resolv.conf, hosts and an nsswitch.conf (``hosts: files dns``) over /etc, runs the test DNS server
(tests/dns_server.py) on 127.0.0.1:53 (and [::1]:53 when resolv.conf names it), then asks the name twice:

* glibc: ``socket.getaddrinfo(name, None, family, SOCK_STREAM, flags=AI_CANONNAME)``;
* janus_net: ``jn.resolve(name, family=...)`` with the default configuration, which reads the very same
  /etc/resolv.conf and /etc/hosts (the environment's ``JANUS_NET_*`` are removed, ``LOCALDOMAIN`` and
  ``RES_OPTIONS`` are the case's, for both).

Each side's answer is an :class:`Outcome`: the address set (or the error), the canonical name, and the
queries the server saw (name, qtype, transport, EDNS0) in order. One child per case, because glibc reads
resolv.conf and the environment once per process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent

NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


@dataclasses.dataclass(frozen=True)
class Case:
    """One question to both resolvers.

    Attributes:
        name: the name asked, as given (a trailing dot kept).
        resolv_conf: the text of /etc/resolv.conf (nameserver 127.0.0.1 and/or ::1: the servers run there).
        zone: name -> {"A": [...], "AAAA": [...], "CNAME": target}.
        hosts: the text of /etc/hosts.
        family: None (both), socket.AF_INET or socket.AF_INET6.
        env: LOCALDOMAIN / RES_OPTIONS for both resolvers.
        rules: name -> Behaviour fields (e.g. {"rcode": "SERVFAIL"}, {"truncate": True}), for every qtype;
            "name AAAA" -> fields for that type only.
        janus: also ask janus_net in the same child.
        server_rules: one server's own rules (its address -> name -> Behaviour fields), over ``rules``.
        gai_conf: the text bind-mounted over /etc/gai.conf (glibc's order policy; janus_net must not read it);
            None leaves the machine's (the mount needs /etc/gai.conf to exist).
    """

    name: str
    resolv_conf: str = "nameserver 127.0.0.1\n"
    zone: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    hosts: str = "127.0.0.1 localhost\n::1 localhost\n"
    family: int | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    janus: bool = True
    gai_conf: str | None = None
    server_rules: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one resolver answered.

    Attributes:
        addresses: the set of address texts (empty on error).
        error: None, or the error's kind: for glibc the EAI name ("EAI_NONAME", "EAI_AGAIN", ...), for
            janus_net the SocketError member's name ("UnknownHostName", "NameServerFailure", ...).
        canonical_name: glibc's AI_CANONNAME of the first entry / janus_net's ``canonical_name`` (no final dot).
        queries: (name, qtype, transport, edns) in the order the server received them.
        source: janus_net's ``Resolution.source`` (None for glibc).
        ordered: the addresses in the order given (glibc's getaddrinfo order, janus_net's RFC 6724 order).
        servers: (qtype, the server's address) of each query, in order: which name server was asked when.
    """

    addresses: frozenset[str]
    error: str | None
    canonical_name: str | None
    queries: tuple[tuple[str | None, str | None, str, int | None], ...]
    source: str | None = None
    ordered: tuple[str, ...] = ()
    servers: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> list[str | None]:
        """The names queried, in order, each once (A and AAAA of one name may come in either order)."""
        seen: list[str | None] = []
        for name, *_ in self.queries:
            if name not in seen:
                seen.append(name)
        return seen


@dataclasses.dataclass(frozen=True)
class Result:
    """Both sides of one case."""

    glibc: Outcome
    janus: Outcome | None


def unshare_problem() -> str | None:
    """None when ``unshare --net --mount`` works here, else why not (the oracle tests then skip)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount is not installed"
    try:
        proc = subprocess.run(
            ["unshare", "--net", "--mount", "true"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare failed: {error}"
    return None if proc.returncode == 0 else f"unshare --net --mount: {proc.stderr.strip()}"


def run_case(case: Case, timeout: float = 120) -> Result:
    """Ask ``case.name`` of glibc (and janus_net) in a fresh namespace child; both outcomes."""
    with tempfile.TemporaryDirectory(prefix="jn-oracle-") as directory:
        spec = dataclasses.asdict(case)
        spec["directory"] = directory
        env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_NET_")}
        env.pop("LOCALDOMAIN", None)
        env.pop("RES_OPTIONS", None)
        env.update(case.env)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
        proc = subprocess.run(
            ["unshare", "--net", "--mount", sys.executable, str(Path(__file__).resolve()), "--child"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"the oracle child failed ({proc.returncode}):\n{proc.stderr}")
    answer = json.loads(proc.stdout.splitlines()[-1])
    return Result(_outcome(answer["glibc"]), _outcome(answer["janus"]) if answer["janus"] else None)


def _outcome(raw: dict[str, Any]) -> Outcome:
    return Outcome(
        frozenset(raw["addresses"]),
        raw["error"],
        raw["canonical_name"],
        tuple((q[0], q[1], q[2], q[3]) for q in raw["queries"]),
        raw.get("source"),
        tuple(raw.get("ordered", ())),
        tuple((q[1], q[4]) for q in raw["queries"]),
    )


# -- the child, in its namespaces ------------------------------------------------------------------


def _child() -> None:
    spec = json.loads(sys.stdin.read())
    directory = Path(spec["directory"])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    # Private propagation: the bind mounts below must not reach the parent's namespace (unshare's default,
    # made sure of here).
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, capture_output=True)
    files = [("resolv.conf", spec["resolv_conf"]), ("hosts", spec["hosts"]), ("nsswitch.conf", NSSWITCH)]
    if spec["gai_conf"] is not None:
        files.append(("gai.conf", spec["gai_conf"]))
    for name, text in files:
        (directory / name).write_text(text)
        target = Path("/etc") / name
        if not target.exists():  # a dangling symlink (systemd-resolved's stub): mount on what it names
            target = target.resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        subprocess.run(["mount", "--bind", str(directory / name), str(target)], check=True, capture_output=True)

    from dns_server import Behaviour, DnsServer, Zone

    def zone_for(host: str) -> Zone:
        zone = Zone()
        for name, records in spec["zone"].items():
            if "CNAME" in records:
                zone.add_cname(name, records["CNAME"])
            zone.add(name, a=records.get("A", ()), aaaa=records.get("AAAA", ()))
        for key, fields in {**spec["rules"], **spec["server_rules"].get(host, {})}.items():
            name, _, qtype = key.partition(" ")  # "name" for every type, "name AAAA" for one
            zone.on(name, qtype or None, Behaviour(**fields))
        return zone

    # A server on each loopback address resolv.conf names (127.0.0.0/8 is all on lo), and on 127.0.0.1
    # (glibc's default when it names none).
    hosts = ["127.0.0.1"]
    for line in spec["resolv_conf"].splitlines():
        words = line.split()
        named = words[1] if words[:1] == ["nameserver"] and len(words) > 1 else ""
        if (named.startswith("127.") or named == "::1") and named not in hosts:
            hosts.append(named)
    servers = [DnsServer(host, 53, zone=zone_for(host)) for host in hosts]
    try:
        glibc = _ask_glibc(spec["name"], spec["family"], servers)
        for server in servers:
            server.clear_log()
        janus = _ask_janus(spec["name"], spec["family"], servers) if spec["janus"] else None
    finally:
        for server in servers:
            server.close()
    print(json.dumps({"glibc": glibc, "janus": janus}))


def _log(servers: list[Any]) -> list[list[Any]]:
    queries = sorted((q for server in servers for q in server.queries()), key=lambda q: q.time)
    return [[q.name, q.qtype, q.transport, q.edns, q.server.rsplit(":", 1)[0].strip("[]")] for q in queries]


def _ask_glibc(name: str, family: int | None, servers: list[Any]) -> dict[str, Any]:
    eai = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
    try:
        infos = socket.getaddrinfo(name, None, family or 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    except socket.gaierror as error:
        return {
            "addresses": [],
            "error": eai.get(error.errno, str(error.errno)),
            "canonical_name": None,
            "queries": _log(servers),
        }
    canonical = infos[0][3].rstrip(".") or None
    ordered = list(dict.fromkeys(info[4][0] for info in infos))
    return {
        "addresses": sorted(ordered),
        "error": None,
        "canonical_name": canonical,
        "queries": _log(servers),
        "ordered": ordered,
    }


def _ask_janus(name: str, family: int | None, servers: list[Any]) -> dict[str, Any]:
    import janus_net as jn

    try:
        resolution = jn.resolve(name, family=family)
    except jn.SocketError as error:
        return {"addresses": [], "error": type(error).__name__, "canonical_name": None, "queries": _log(servers)}
    return {
        "addresses": sorted({address.host for address in resolution.addresses}),
        "error": None,
        "canonical_name": resolution.canonical_name.rstrip(".") or None,
        "queries": _log(servers),
        "source": resolution.source,
        "ordered": [address.host for address in resolution.addresses],
    }


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    _child()
