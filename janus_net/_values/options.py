"""The table of the ``listen*``/``bind*`` keyword options: plain data, one record per option.

Everything janus_net says about an option is read from here (DESIGN §2): the profiles
check and apply them (`janus_net._profiles`), ``Server.options()`` reads them back, the
``janus-net`` command makes its flags from them, and docs/options.md is generated from
them (`markdown`; ``scripts/options-doc`` writes the page). A test fails when a public
signature, the flags or the page disagree with this table.

Kernel constants are named, never numbered: ``level``/``optname`` are names of the
shim's constants (``"SOL_SOCKET"``, ``"JN_SO_INCOMING_CPU"``), looked up in
``janus_net._shim.lib`` by whoever uses them; a ``JN_`` constant that is 0 means the
platform lacks the option. Values do no I/O: this module imports nothing.

The order of `OPTIONS` is the order of the keywords in the signatures (the ``listen*``
and the ``bind*`` keywords are each an ordered subsequence) and the order in which
the options are set on a new socket.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Literal

    Profile = Literal["listen", "bind"]


class _NotTaken:
    """The default of a keyword a profile does not take (a marker, compared by identity)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_TAKEN"


NOT_TAKEN = _NotTaken()

#: How a value is checked (`janus_net._profiles.option_checks`). None is accepted exactly
#: where the default is None.
CHECKS = {
    "flag": "True or False",
    "count": "an int in 0..2**31-1",
    "permissions": "an int in 0..0o7777 (file permission bits)",
    "socket_type": "a janus_net.Mode, or the int of one",
    "protocol": "a janus_net.Protocol or a protocol number (int)",
    "interface": "an interface name (str, 1..15 bytes, no NUL, '/', ':' or whitespace)",
    "steer": '"cpu" (needs reuse_port=True)',
    "netns": "a path to a network namespace file (str, bytes or os.PathLike)",
    "user": "a user id (int) or name (str)",
    "group": "a group id (int) or name (str)",
}

#: Where an option can apply (else `SocketError.OptionUnsupported`, before any syscall),
#: and how the refusal words it.
WHERE = {
    "any": "any socket",
    "ip": "IP sockets",
    "ip6": "IPv6 addresses",
    "path": "unix socket paths",
    "tcp": "TCP (stream) sockets",
    "udp": "UDP sockets",
    "ip_datagram": "IP datagram sockets",
    "datagram": "datagram sockets",
}


class Option:
    """One keyword option of ``listen*`` and/or ``bind*``.

    Attributes:
        name: the keyword.
        field: its attribute on the checked options record (``mode`` of ``listen`` is
            ``file_mode``: in ``bind`` the same keyword is the socket type).
        annotation: its type as the signatures write it.
        check: how a value is checked (a key of `CHECKS`).
        listen, bind: the default in each profile, or `NOT_TAKEN`.
        unset: the value a profile that does not take the keyword holds.
        where: where it can apply (a key of `WHERE`); ``sets_on`` narrows where it is
            set without refusing elsewhere (``reuse_address`` is ignored on unix sockets).
        step: the step of the sequence (DESIGN §6) that uses it: ``"socket"``,
            ``"setsockopt"`` (before bind), ``"unix_file"`` (before and at bind),
            ``"listen"``, ``"after_listen"``, or ``"namespace"`` (where socket() runs).
        needs, needs6: shim constants that must be non-zero (the platform has the
            option); on IPv6, ``needs6`` instead when given.
        level, optname: the setsockopt level and name (shim constant names), or None
            for an option that is no socket option; ``level6``/``optname6`` on IPv6.
        value: what is set: ``"on"`` (1 when true), ``"bool"`` (1 or 0, when not
            None), ``"int"`` (when not None), ``"name"`` (a NUL-terminated name), or
            ``"cpu_program"`` (the steering BPF program, after listen).
        errors: the setsockopt errno table: ``"plain"`` or ``"server"`` (DESIGN §16:
            EPERM and ENODEV are the caller's; the message names the keyword).
        reads, reads_on: how ``options()`` reads it back (``"bool"``, ``"int"``,
            ``"name"``, ``"cpu"``: None when unset), and on which sockets (a key of
            `WHERE`); None when the kernel cannot say (backlog, steer).
        flag, flag_group, metavar, parser, help: the ``janus-net listen``/``run`` flag
            (``flag_group`` ``"socket"`` or ``"kernel"``; ``parser`` a name in
            `janus_net._cli.flags`, or ``"switch"`` for a flag without a value).
        doc: one line for docs/options.md.
    """

    __slots__ = (
        "annotation",
        "bind",
        "check",
        "doc",
        "errors",
        "field",
        "flag",
        "flag_group",
        "help",
        "level",
        "level6",
        "listen",
        "metavar",
        "name",
        "needs",
        "needs6",
        "optname",
        "optname6",
        "parser",
        "reads",
        "reads_on",
        "sets_on",
        "step",
        "unset",
        "value",
        "where",
    )

    def __init__(
        self,
        name: str,
        annotation: str,
        check: str,
        *,
        doc: str,
        field: str | None = None,
        step: str = "setsockopt",
        listen: object = NOT_TAKEN,
        bind: object = NOT_TAKEN,
        unset: object = None,
        where: str = "any",
        sets_on: str | None = None,
        needs: tuple[str, ...] = (),
        needs6: tuple[str, ...] = (),
        level: str | None = None,
        optname: str | None = None,
        level6: str | None = None,
        optname6: str | None = None,
        value: str = "on",
        errors: str = "plain",
        reads: str | None = None,
        reads_on: str = "any",
        flag: str | None = None,
        flag_group: str | None = None,
        metavar: str | None = None,
        parser: str = "switch",
        help: str | None = None,
    ) -> None:
        self.name = name
        self.field = name if field is None else field
        self.annotation = annotation
        self.step = step
        self.check = check
        self.listen = listen
        self.bind = bind
        self.unset = unset
        self.where = where
        self.sets_on = where if sets_on is None else sets_on
        self.needs = needs
        self.needs6 = needs6
        self.level = level
        self.optname = optname
        self.level6 = level if level6 is None else level6
        self.optname6 = optname if optname6 is None else optname6
        self.value = value
        self.errors = errors
        self.reads = reads
        self.reads_on = reads_on
        self.flag = flag
        self.flag_group = flag_group
        self.metavar = metavar
        self.parser = parser
        self.help = help
        self.doc = doc

    def default(self, profile: Profile) -> object:
        """The default in ``profile``, or `NOT_TAKEN`."""
        return self.listen if profile == "listen" else self.bind

    def __repr__(self) -> str:
        return f"Option({self.name!r})"


OPTIONS: tuple[Option, ...] = (
    Option(
        "mode", "Mode", "socket_type", field="mode", step="socket", bind="DGRAM", unset="STREAM",
        doc="the socket type: DGRAM, STREAM, SEQPACKET, RAW or RDM (a `Mode`)",
    ),
    Option(
        "protocol", "Protocol | int | None", "protocol", step="socket", bind=None, unset=0,
        doc="None (the family's default), a `Protocol` or a protocol number",
    ),
    Option(
        "backlog", "int", "count", step="listen", listen=128, unset=0,
        flag="--backlog", flag_group="socket", metavar="N", parser="backlog", help="listen() backlog (128)",
        doc="the listen(2) queue length (the kernel caps it at net.core.somaxconn)",
    ),
    Option(
        "reuse_address", "bool", "flag", listen=True, bind=False, unset=False, sets_on="ip",
        level="SOL_SOCKET", optname="SO_REUSEADDR", reads="bool",
        doc="SO_REUSEADDR (IP only; ignored for unix sockets)",
    ),
    Option(
        "reuse_port", "bool", "flag", listen=False, unset=False, where="ip", needs=("JN_SO_REUSEPORT",),
        level="SOL_SOCKET", optname="JN_SO_REUSEPORT", reads="bool",
        flag="--reuse-port", flag_group="kernel", help="SO_REUSEPORT: join a group of listeners",
        doc="SO_REUSEPORT: several sockets share the port; the kernel spreads connections among them",
    ),
    Option(
        "ip6_only", "bool | None", "flag", listen=None, bind=None, where="ip6",
        level="IPPROTO_IPV6", optname="IPV6_V6ONLY", value="bool", reads="bool", reads_on="ip6",
        doc="IPV6_V6ONLY: None leaves the system default; True or False sets it",
    ),
    Option(
        "mode", "int | None", "permissions", field="file_mode", step="unix_file", listen=None, where="path",
        flag="--mode", flag_group="socket", metavar="OCTAL", parser="file_mode",
        help="unix socket file permissions, set before bind (e.g. 600)",
        doc="a unix socket file's permissions (such as 0o600), set through the socket's inode before bind",
    ),
    Option(
        "unlink_stale", "bool", "flag", step="unix_file", listen=False, unset=False, where="path",
        flag="--unlink-stale", flag_group="socket",
        help="remove a dead unix socket file at the path (never a live one)",
        doc="remove a stale unix socket file (no socket bound to it) under a lock, and bind again",
    ),
    Option(
        "broadcast", "bool", "flag", bind=False, unset=False,
        level="SOL_SOCKET", optname="SO_BROADCAST", reads="bool", reads_on="datagram",
        doc="SO_BROADCAST: allow sending to a broadcast address",
    ),
    Option(
        "gro", "bool", "flag", bind=False, unset=False, where="udp", needs=("JN_HAS_UDP_GRO",),
        level="JN_SOL_UDP", optname="JN_UDP_GRO",
        doc="UDP_GRO: `receive_segments` gets coalesced datagrams",
    ),
    Option(
        "pktinfo", "bool", "flag", bind=False, unset=False, where="ip_datagram",
        needs=("JN_HAS_IP_PKTINFO",), needs6=("JN_HAS_IPV6_PKTINFO",),
        level="IPPROTO_IP", optname="JN_IP_PKTINFO", level6="IPPROTO_IPV6", optname6="JN_IPV6_RECVPKTINFO",
        doc="IP_PKTINFO / IPV6_RECVPKTINFO: `receive_message` gives each datagram's destination",
    ),
    Option(
        "timestamps", "bool", "flag", bind=False, unset=False, where="datagram", needs=("JN_SO_TIMESTAMPNS",),
        level="SOL_SOCKET", optname="JN_SO_TIMESTAMPNS",
        doc="SO_TIMESTAMPNS: `receive_message` gives each datagram's kernel receive time",
    ),
    Option(
        "freebind", "bool", "flag", listen=False, bind=False, unset=False, where="ip",
        needs=("JN_IP_FREEBIND",), needs6=("JN_IPV6_FREEBIND",),
        level="IPPROTO_IP", optname="JN_IP_FREEBIND", level6="IPPROTO_IPV6", optname6="JN_IPV6_FREEBIND",
        errors="server", reads="bool", reads_on="ip",
        flag="--freebind", flag_group="kernel", help="IP_FREEBIND: bind an address no interface has",
        doc="IP_FREEBIND / IPV6_FREEBIND: bind an address no interface has (yet)",
    ),
    Option(
        "transparent", "bool", "flag", listen=False, bind=False, unset=False, where="ip",
        needs=("JN_IP_TRANSPARENT",), needs6=("JN_IPV6_TRANSPARENT",),
        level="IPPROTO_IP", optname="JN_IP_TRANSPARENT", level6="IPPROTO_IPV6", optname6="JN_IPV6_TRANSPARENT",
        errors="server", reads="bool", reads_on="ip",
        flag="--transparent", flag_group="kernel", help="IP_TRANSPARENT (needs CAP_NET_ADMIN)",
        doc="IP_TRANSPARENT / IPV6_TRANSPARENT (TPROXY); needs CAP_NET_ADMIN",
    ),
    Option(
        "device", "str | None", "interface", listen=None, bind=None, where="ip", needs=("JN_SO_BINDTODEVICE",),
        level="SOL_SOCKET", optname="JN_SO_BINDTODEVICE", value="name", errors="server", reads="name", reads_on="ip",
        flag="--device", flag_group="kernel", metavar="IFNAME", parser="text",
        help="SO_BINDTODEVICE: only this interface",
        doc="SO_BINDTODEVICE: only this interface (ENODEV, no such interface: AddressUnavailable)",
    ),
    Option(
        "fastopen", "int | None", "count", listen=None, where="tcp", needs=("JN_TCP_FASTOPEN",),
        level="IPPROTO_TCP", optname="JN_TCP_FASTOPEN", value="int", errors="server", reads="int", reads_on="tcp",
        flag="--fastopen", flag_group="kernel", metavar="N", parser="count", help="TCP_FASTOPEN queue length",
        doc="TCP_FASTOPEN: the queue length of TFO connections",
    ),
    Option(
        "defer_accept", "int | None", "count", listen=None, where="tcp", needs=("JN_TCP_DEFER_ACCEPT",),
        level="IPPROTO_TCP", optname="JN_TCP_DEFER_ACCEPT", value="int", errors="server", reads="int", reads_on="tcp",
        flag="--defer-accept", flag_group="kernel", metavar="S", parser="count", help="TCP_DEFER_ACCEPT seconds",
        doc="TCP_DEFER_ACCEPT: seconds to wait for the client's first data (read back as the kernel rounds it)",
    ),
    Option(
        "incoming_cpu", "int | None", "count", listen=None, bind=None, needs=("JN_SO_INCOMING_CPU",),
        level="SOL_SOCKET", optname="JN_SO_INCOMING_CPU", value="int", errors="server", reads="cpu",
        flag="--incoming-cpu", flag_group="kernel", metavar="CPU", parser="count", help="SO_INCOMING_CPU",
        doc="SO_INCOMING_CPU: the CPU that should handle the socket",
    ),
    Option(
        "steer", "str | None", "steer", step="after_listen", listen=None, where="ip",
        needs=("JN_SO_ATTACH_REUSEPORT_CBPF", "JN_HAS_CBPF"),
        level="SOL_SOCKET", optname="JN_SO_ATTACH_REUSEPORT_CBPF", value="cpu_program", errors="server",
        flag="--steer", flag_group="kernel", parser="steer", help="steer the reuse-port group by receiving CPU",
        doc='"cpu": SO_ATTACH_REUSEPORT_CBPF hands each connection to the group member of the receiving CPU',
    ),
    Option(
        "netns", "NamespacePath | None", "netns", step="namespace", listen=None, bind=None, needs=("JN_HAS_SETNS",),
        flag="--netns", flag_group="kernel", metavar="PATH", parser="text",
        help="make the socket inside this network namespace file",
        doc="make the socket inside this network namespace file (the caller's thread never moves)",
    ),
    Option(
        "owner", "int | str | None", "user", step="unix_file", listen=None, where="path",
        doc="a unix socket file's owner (a user id or name), set before bind",
    ),
    Option(
        "group", "int | str | None", "group", step="unix_file", listen=None, where="path",
        doc="a unix socket file's group (a group id or name), set before bind",
    ),
)  # fmt: skip


_NONE = "\N{EN DASH}"  # a table cell with nothing in it


def _default_text(option: Option, profile: Profile) -> str:
    value = option.default(profile)
    if value is NOT_TAKEN:
        return _NONE
    if option.check == "socket_type":
        return f"`Mode.{value}`"
    return f"`{value!r}`"


def _kernel_text(option: Option) -> str:
    if option.optname is None:
        return {"socket": "socket()", "listen": "listen()", "unix_file": "the socket file", "namespace": "setns()"}[
            option.step
        ]
    names = [f"{option.level}/{option.optname}"]
    if (option.level6, option.optname6) != (option.level, option.optname):
        names.append(f"{option.level6}/{option.optname6} (IPv6)")
    return ", ".join(f"`{name.replace('JN_', '')}`" for name in names)


_FLAG_TEXT = {True: "None, True or False", False: "True or False"}


def markdown() -> str:
    """The table as docs/options.md prints it (between its ``options:begin``/``end`` marks)."""
    lines = [
        "| keyword | `listen*` | `bind*` | type | kernel | applies to | `options()` | flag | what it does |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in OPTIONS:
        reads = _NONE if o.reads is None else ("always" if o.reads_on == "any" else WHERE[o.reads_on])
        cells = [
            f"`{o.name}`",
            _default_text(o, "listen"),
            _default_text(o, "bind"),
            CHECKS[o.check] if o.check != "flag" else _FLAG_TEXT[None in (o.listen, o.bind)],
            _kernel_text(o),
            WHERE[o.where] if o.sets_on == o.where else f"{WHERE[o.where]} (set on {WHERE[o.sets_on]} only)",
            reads,
            _NONE if o.flag is None else f"`{o.flag}`",
            o.doc,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def taken_by(profile: Profile) -> tuple[Option, ...]:
    """The options ``profile`` takes, in signature order."""
    return tuple(option for option in OPTIONS if option.default(profile) is not NOT_TAKEN)


__all__ = ["CHECKS", "NOT_TAKEN", "OPTIONS", "WHERE", "Option", "markdown", "taken_by"]
