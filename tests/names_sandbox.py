"""Run a command where the README's host names resolve: ``unshare --net python tests/names_sandbox.py -- CMD...``.

Inside a network namespace of its own (made by the caller), this brings ``lo`` up, starts the
test DNS server (tests/dns_server.py) on 127.0.0.1:53 and [::1]:53 with the zone below, writes a
resolv.conf and a hosts file and names them in ``JANUS_NET_RESOLV_CONF`` / ``JANUS_NET_HOSTS``, runs
the command, stops the server and exits with the command's status. So the README's examples call
``jn.resolve("www.example.com", 443)`` as a reader would, get the same answers on every machine, and
no query leaves the machine. tests/test_readme.py uses it for every block that resolves a name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dns_server import DnsServer, Zone  # after the path above

# Documentation addresses (RFC 5737, RFC 3849): nothing answers there, and nothing is sent there.
ZONE = {
    "www.example.com": {"a": ["192.0.2.10"], "aaaa": ["2001:db8::10"]},
    "example.com": {"a": ["192.0.2.11"], "aaaa": ["2001:db8::11"]},
    "mail.example.com": {"a": ["192.0.2.25"]},
}
ALIASES = {"web.example.com": "www.example.com"}
RESOLV_CONF = "nameserver 127.0.0.1\nnameserver ::1\nsearch example.com\noptions timeout:2 attempts:2\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost\n192.0.2.80 intranet.example.com intranet\n"


def main(command: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    zone = Zone()
    for name, records in ZONE.items():
        zone.add(name, **records)
    for alias, target in ALIASES.items():
        zone.add_cname(alias, target)
    with tempfile.TemporaryDirectory(prefix="jn-names-") as home:
        resolv_conf, hosts = Path(home, "resolv.conf"), Path(home, "hosts")
        resolv_conf.write_text(RESOLV_CONF)
        hosts.write_text(HOSTS)
        env = dict(os.environ, JANUS_NET_RESOLV_CONF=str(resolv_conf), JANUS_NET_HOSTS=str(hosts))
        with DnsServer("127.0.0.1", 53, zone=zone), DnsServer("::1", 53, zone=zone):
            return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    if sys.argv[1:2] != ["--"] or len(sys.argv) < 3:
        sys.exit("usage: unshare --net python tests/names_sandbox.py -- COMMAND [ARG...]")
    sys.exit(main(sys.argv[2:]))
