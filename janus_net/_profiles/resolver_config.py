"""`ResolverConfig`: where and how names are looked up, read from resolv.conf(5) as glibc reads it.

`ResolverConfig.load` reads the file (``$JANUS_NET_RESOLV_CONF``, else
``/etc/resolv.conf``) with glibc's rules (resolv/res_init.c):

* ``nameserver ADDRESS``: up to 3, in order; an address that is not an IPv4 or IPv6
  literal (a zone allowed) is skipped and does not count. Port 53.
* ``search D1 D2 ...`` and ``domain D``: the search list; whichever comes last wins
  (``domain D`` is the list ``(D,)``).
* ``options``: ``ndots:N`` (0..15), ``timeout:N`` (1..30 s), ``attempts:N`` (1..5;
  0 becomes 1, on purpose: glibc would then never ask), ``rotate``, ``edns0``,
  ``use-vc``, ``single-request``; a number is read as C's atoi reads it (leading
  digits, else 0) and clamped; unknown options are ignored.
* A keyword must be followed by a blank; a line starting with ``#`` or ``;`` is a
  comment, and so is the rest of a line after one.
* The environment, after the file: ``LOCALDOMAIN`` replaces the search list (blank
  separated; set but empty means none), ``RES_OPTIONS`` adds options as an
  ``options`` line would.
* The file is stat'ed at each `load` and parsed again only when its version (dev,
  inode, size, mtime, ctime) or the environment changed, as glibc does
  (`janus_net._profiles.file_versions`; not an answer cache).
* No ``nameserver`` line: 127.0.0.1. The default file missing: every default.
  A file named explicitly (an argument, or the environment variable) that is
  missing: `SocketError.FileNotFound`.

What is not read, on purpose: ``sortlist`` (RFC 6724 orders addresses instead), the
search list derived from the host name when the file has none (glibc's fallback:
janus_net searches nothing then), nsswitch.conf, and gai.conf.
"""

from __future__ import annotations

import os
import sys

from janus_net._kernel import files
from janus_net._profiles import file_versions
from janus_net._profiles.addresses import parse_address
from janus_net._values.errors import SocketError
from janus_net._values.host_names import check_host_name
from janus_net._values.ip import Ip4Address, Ip6Address, ip6_literal
from janus_net._values.seconds import seconds

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_HOSTS = "/etc/hosts"
#: The environment variables that name the two files (DESIGN §17: the tests' hook too).
RESOLV_CONF_VARIABLE = "JANUS_NET_RESOLV_CONF"
HOSTS_VARIABLE = "JANUS_NET_HOSTS"
#: resolv.conf larger than this is refused (`SocketError.SystemResources`).
MAX_RESOLV_CONF_BYTES = 1024 * 1024

MAX_NAMESERVERS = 3  # glibc's MAXNS
DNS_PORT = 53
# glibc's bounds (RES_MAXNDOTS, RES_MAXRETRANS, RES_MAXRETRY).
NDOTS_RANGE = (0, 15)
TIMEOUT_RANGE = (1, 30)
ATTEMPTS_RANGE = (1, 5)
#: More search domains than this are dropped (glibc has no limit since 2.26; a bound keeps a
#: hostile file from making one lookup ask thousands of names).
MAX_SEARCH = 32

_FIELDS = (
    "nameservers", "search", "ndots", "timeout", "attempts", "rotate", "edns0", "use_vc", "single_request", "hosts",
)  # fmt: skip


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return min(max(value, bounds[0]), bounds[1])


def _atoi(text: str) -> int:
    """C's atoi: optional blanks and sign, then the leading ASCII digits; 0 if there are none."""
    text = text.lstrip(" \t")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for char in text[:12]:  # more digits than 12 saturate whatever the bounds are
        if not ("0" <= char <= "9"):
            break
        digits += char
    return sign * int(digits) if digits else 0


def _nameserver(value: object) -> Ip4Address | Ip6Address:
    """A nameserver given to `ResolverConfig.replace`: an address value or §4 text, with port 53 by default."""
    if isinstance(value, (Ip4Address, Ip6Address)):
        address: object = value
    elif isinstance(value, str):
        try:
            address = parse_address(value)
        except SocketError.InvalidAddress:
            # A bare literal ("127.0.0.1", "::1") means port 53.
            address = _bare_literal(value)
            if address is None:
                raise
    else:
        raise TypeError(f"a nameserver is an IP address value or text such as '127.0.0.1:53', not {value!r}")
    if not isinstance(address, (Ip4Address, Ip6Address)):
        raise SocketError.InvalidAddress(None, "a nameserver is an IPv4 or IPv6 address", address=str(value))
    if address.port == 0:
        address = address._with_port(DNS_PORT)
    # An IPv4-mapped server (::ffff:a.b.c.d) is the IPv4 server it names, asked from an IPv4 socket
    # (DESIGN §17): through an IPv6 socket it is unreachable where those are IPv6-only (bindv6only).
    mapped = address.ip.ipv4_mapped if isinstance(address, Ip6Address) else None
    return address if mapped is None else Ip4Address(mapped, address.port)


def _bare_literal(text: str, port: int = DNS_PORT) -> Ip4Address | Ip6Address | None:
    """An IP literal without a port (resolv.conf's form), or None."""
    if ":" in text:
        try:
            ip, zone = ip6_literal(text)
        except SocketError:
            return None
        return Ip6Address(ip, port, scope_id=zone or 0)
    try:
        return Ip4Address(text, port)
    except SocketError:
        return None


def _strict_int(name: str, value: object, bounds: tuple[int, int]) -> int:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} must be in {bounds[0]}..{bounds[1]}, not {value}")
    return value


def _strict_bool(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


class ResolverConfig:
    """Where and how `janus_net.resolve` looks names up: resolv.conf's settings and the hosts file's path.

    An immutable value: `load` reads it from the files, `replace` makes a changed copy.

    Attributes:
        nameservers: the servers to ask, in order: `Ip4Address`/`Ip6Address` values
            carrying their port (53 unless given).
        search: the search domains, in order (no trailing dots).
        ndots: a name with at least this many dots is tried as given first.
        timeout: seconds to wait for one server's answer to one try (a float).
        attempts: rounds over the servers.
        rotate: start each lookup at the next server (round robin), not the first.
        edns0: advertise a 1232-byte UDP payload (EDNS0) in the queries.
        use_vc: ask over TCP only.
        single_request: ask A, then AAAA (not both at once).
        hosts: the hosts file's path.
    """

    __slots__ = _FIELDS

    nameservers: tuple[Ip4Address | Ip6Address, ...]
    search: tuple[str, ...]
    ndots: int
    timeout: float
    attempts: int
    rotate: bool
    edns0: bool
    use_vc: bool
    single_request: bool
    hosts: str

    def __init__(
        self,
        nameservers: tuple[Ip4Address | Ip6Address, ...] = (Ip4Address("127.0.0.1", DNS_PORT),),
        search: tuple[str, ...] = (),
        ndots: int = 1,
        timeout: float = 5.0,
        attempts: int = 2,
        rotate: bool = False,
        edns0: bool = False,
        use_vc: bool = False,
        single_request: bool = False,
        hosts: str = DEFAULT_HOSTS,
    ) -> None:
        fields = _check(
            {
                "nameservers": nameservers, "search": search, "ndots": ndots, "timeout": timeout,
                "attempts": attempts, "rotate": rotate, "edns0": edns0, "use_vc": use_vc,
                "single_request": single_request, "hosts": hosts,
            }
        )  # fmt: skip
        for name in _FIELDS:
            object.__setattr__(self, name, fields[name])

    @classmethod
    def load(
        cls, resolv_conf: str | os.PathLike[str] | None = None, hosts: str | os.PathLike[str] | None = None
    ) -> ResolverConfig:
        """Read resolv.conf (and the environment) as glibc does; see the module's rules.

        Args:
            resolv_conf: the file to read (a str or path-like); None: ``$JANUS_NET_RESOLV_CONF``,
                else ``/etc/resolv.conf``.
            hosts: the hosts file lookups will read (a str or path-like); None:
                ``$JANUS_NET_HOSTS``, else ``/etc/hosts``. It is read at each lookup, not here.

        Raises:
            TypeError: a path that is neither a str nor path-like.
            SocketError.FileNotFound: a file named explicitly (here or by the
                environment variable) does not exist.
            SocketError.AccessDenied / SystemResources...: the file could not be read,
                or is over 1 MiB, or is not a regular file.
        """
        resolv_conf = None if resolv_conf is None else _path("resolv_conf", resolv_conf)
        hosts = None if hosts is None else _path("hosts", hosts)
        getenv = _getenv()
        named_conf, named_hosts = getenv(RESOLV_CONF_VARIABLE), getenv(HOSTS_VARIABLE)
        explicit = resolv_conf is not None or bool(named_conf)
        path = resolv_conf if resolv_conf is not None else (named_conf or DEFAULT_RESOLV_CONF)
        hosts_path = hosts if hosts is not None else (named_hosts or DEFAULT_HOSTS)
        if hosts is not None or named_hosts:
            files.lstat(hosts_path, hosts_path)  # FileNotFound now, not a silent empty hosts file at each lookup
        environ = os.environ
        local, extra = getenv("LOCALDOMAIN"), getenv("RES_OPTIONS")
        # One stat(2) when nothing changed, as glibc checks resolv.conf (`file_versions`): the
        # parsed value is kept with the file's version and the environment it was parsed under.
        try:
            config: ResolverConfig = file_versions.read_kept(
                path, MAX_RESOLV_CONF_BYTES, (hosts_path, local, extra),
                lambda content: parse(content.decode("utf-8", "surrogateescape"), environ, hosts_path),
            )  # fmt: skip
            return config
        except SocketError.FileNotFound:
            if explicit:
                raise
        return parse("", environ, hosts_path)

    def replace(self, **fields: object) -> ResolverConfig:
        """A copy with ``fields`` changed, each checked.

        ``nameservers``: address values or DESIGN §4 text with a port
        (``"127.0.0.1:5353"``, ``"[::1]:5353"``); a bare literal, or port 0, means 53.
        ``search``: host names. ``ndots`` 0..15, ``attempts`` 1..5 (ints);
        ``timeout``: seconds, a positive int or float; the flags: bools; ``hosts``: a path
        (a str or path-like).

        Raises:
            TypeError: an unknown field, or a value of the wrong type.
            ValueError: a value out of range (`SocketError.InvalidHostName` for a bad
                search domain is one).
            SocketError.InvalidAddress / InvalidPort: a bad nameserver.
        """
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise TypeError(f"ResolverConfig has no field {sorted(unknown)[0]!r}")
        values: dict[str, object] = {name: getattr(self, name) for name in _FIELDS}
        values.update(fields)
        return ResolverConfig(**values)  # type: ignore[arg-type]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ResolverConfig is immutable: use replace()")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not ResolverConfig:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[object, ...]:
        return (ResolverConfig, self._values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={tuple(str(a) for a in self.nameservers)!r}"
            if name == "nameservers"
            else f"{name}={getattr(self, name)!r}"
            for name in _FIELDS
        )
        return f"ResolverConfig({shown})"


def _getenv() -> Callable[[str], str | None]:
    """A fast ``os.environ.get`` for the variables `ResolverConfig.load` reads at every lookup.

    ``os.environ.get`` of a missing name raises and catches a KeyError inside (about a
    microsecond and a half each); the mapping's own dict of encoded names answers in a
    tenth of that. Where the mapping has no such dict (not CPython on POSIX), the plain get.
    """
    data = getattr(os.environ, "_data", None)
    if type(data) is not dict or type(next(iter(data), b"")) is not bytes:
        return os.environ.get
    encoding = sys.getfilesystemencoding()

    def get(name: str) -> str | None:
        value = data.get(name.encode(encoding, "surrogateescape"))
        return None if value is None else os.fsdecode(value)

    return get


def _check(fields: dict[str, object]) -> dict[str, object]:
    servers = fields["nameservers"]
    if isinstance(servers, (str, bytes)) or not hasattr(servers, "__iter__"):
        raise TypeError(f"nameservers is a sequence of addresses, not {servers!r}")
    fields["nameservers"] = tuple(_nameserver(s) for s in servers)
    search = fields["search"]
    if isinstance(search, (str, bytes)) or not hasattr(search, "__iter__"):
        raise TypeError(f"search is a sequence of domain names, not {search!r}")
    fields["search"] = tuple(check_host_name(d).name for d in search)
    fields["ndots"] = _strict_int("ndots", fields["ndots"], NDOTS_RANGE)
    fields["attempts"] = _strict_int("attempts", fields["attempts"], ATTEMPTS_RANGE)
    # TypeError for a bool or a non-number, ValueError for NaN; an int beyond the float range is inf.
    timeout = seconds(fields["timeout"], "timeout")
    if timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {fields['timeout']!r}")
    fields["timeout"] = timeout
    for name in ("rotate", "edns0", "use_vc", "single_request"):
        fields[name] = _strict_bool(name, fields[name])
    fields["hosts"] = _path("hosts", fields["hosts"])
    return fields


def _path(what: str, value: object) -> str:
    """A path given as a str or an `os.PathLike` (as the stdlib's own calls take one), as a str."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)  # the object's __fspath__: no syscall
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, str):
        raise TypeError(f"{what} is the path of a file (a str or path-like), not {value!r}")
    return str.__str__(value)


class _Options:
    """The options being read: the defaults, then the file's ``options`` lines, then RES_OPTIONS."""

    __slots__ = ("attempts", "edns0", "ndots", "rotate", "single_request", "timeout", "use_vc")

    def __init__(self) -> None:
        self.ndots = 1
        self.timeout = 5
        self.attempts = 2
        self.rotate = False
        self.edns0 = False
        self.use_vc = False
        self.single_request = False

    def read(self, words: list[str]) -> None:
        for word in words:
            if word.startswith("ndots:"):
                self.ndots = _clamp(_atoi(word[6:]), NDOTS_RANGE)
            elif word.startswith("timeout:"):
                self.timeout = _clamp(_atoi(word[8:]), TIMEOUT_RANGE)
            elif word.startswith("attempts:"):
                self.attempts = _clamp(_atoi(word[9:]), ATTEMPTS_RANGE)
            elif word == "rotate":
                self.rotate = True
            elif word == "edns0":
                self.edns0 = True
            elif word == "use-vc":
                self.use_vc = True
            elif word == "single-request":
                self.single_request = True
            # anything else (inet6, trust-ad, no-aaaa, single-request-reopen...) is not ours


def _domains(words: list[str]) -> tuple[str, ...]:
    """Search domains as written, each checked; a domain that is no host name is dropped (glibc keeps it,
    but no query could carry it)."""
    found: list[str] = []
    for word in words:
        try:
            name = check_host_name(word).name
        except SocketError.InvalidHostName:
            continue
        if name not in found:
            found.append(name)
        if len(found) == MAX_SEARCH:
            break
    return tuple(found)


def _keyword(line: str, keyword: str) -> str | None:
    """The rest of ``line`` after ``keyword`` and a blank (glibc's MATCH), else None."""
    if line.startswith(keyword) and line[len(keyword) : len(keyword) + 1] in (" ", "\t"):
        return line[len(keyword) + 1 :]
    return None


def parse(text: str, environ: object, hosts: str = DEFAULT_HOSTS) -> ResolverConfig:
    """A `ResolverConfig` from resolv.conf ``text`` and an environment mapping (LOCALDOMAIN, RES_OPTIONS).

    Never raises for any content: what cannot be read is skipped, as glibc skips it.
    """
    servers: list[Ip4Address | Ip6Address] = []
    search: tuple[str, ...] = ()
    options = _Options()
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if line[:1] in ("#", ";"):
            continue
        for mark in ("#", ";"):
            at = line.find(mark)
            if at >= 0:
                line = line[:at]
        rest = _keyword(line, "nameserver")
        if rest is not None:
            words = rest.split()
            if words and len(servers) < MAX_NAMESERVERS:
                address = _bare_literal(words[0])
                if address is not None:
                    servers.append(address)
            continue
        rest = _keyword(line, "domain")
        if rest is not None:
            words = rest.split()
            if words:  # an empty line changes nothing (glibc skips it)
                search = _domains(words[:1])
            continue
        rest = _keyword(line, "search")
        if rest is not None:
            words = rest.split()
            if words:
                search = _domains(words)
            continue
        rest = _keyword(line, "options")
        if rest is not None:
            options.read(rest.split())
    get = getattr(environ, "get", None)
    if get is not None:
        local = get("LOCALDOMAIN")
        if local is not None:
            search = _domains(str(local).split())
        extra = get("RES_OPTIONS")
        if extra is not None:
            options.read(str(extra).split())
    if not servers:
        servers.append(Ip4Address("127.0.0.1", DNS_PORT))
    return ResolverConfig(
        nameservers=tuple(servers),
        search=search,
        ndots=options.ndots,
        timeout=float(options.timeout),
        attempts=options.attempts,
        rotate=options.rotate,
        edns0=options.edns0,
        use_vc=options.use_vc,
        single_request=options.single_request,
        hosts=hosts,
    )


__all__ = ["DEFAULT_HOSTS", "DEFAULT_RESOLV_CONF", "ResolverConfig", "parse"]
