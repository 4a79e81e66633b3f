"""Lean imports and lean objects: what `import janus_net` loads, what a
listener keeps, and that the leaner forms behave exactly as the ones they replace.

No timing here (docs/performance.md measures it): these tests pin the *structure* that makes it
cheap — which modules a fresh interpreter has loaded after `import janus_net`, that the owner
registry is filled only once a process adopts a descriptor (and then finds the owners made before),
and the `Datagram` value's dataclass-like behaviour.
"""

from __future__ import annotations

import dataclasses
import pickle
import socket
from typing import Any

import pytest

import janus_net as jn
from janus_net._kernel import owners
from tests.peers import run_child

# Each of these is a measurable share of `import janus_net` and needed only by some calls.
NOT_AT_IMPORT = ("typing", "dataclasses", "json", "logging", "socket", "threading", "weakref", "inspect", "re")


def test_import_janus_net_loads_none_of_the_heavy_stdlib_modules() -> None:
    got = run_child(
        """
        import json as _j, sys
        before = set(sys.modules)
        import janus_net
        print(_j.dumps(sorted(set(sys.modules) - before)))
        """
    )
    loaded = set(got)  # type: ignore[call-overload]
    assert "janus_net._profiles.listen" in loaded  # the walk sees what the import did
    assert not loaded & set(NOT_AT_IMPORT), sorted(loaded & set(NOT_AT_IMPORT))
    assert "janus_net.audit" not in loaded and "janus_net.handoff" not in loaded
    # Nor the hand-over's machinery, the supervisor or the command line.
    assert not {"janus_net._process.handoff", "janus_net._process.supervisor", "janus_net._cli"} & loaded
    # The process wing (activation, notify, sending and receiving sockets) loads with its first name.
    assert not {m for m in loaded if m.startswith("janus_net._process")}, sorted(loaded)


def test_every_lazy_name_is_typed_and_every_public_name_loads_both_ways() -> None:
    # The TYPE_CHECKING block (what mypy reads) and `_LAZY` (what runs) name the same things.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(jn))
    typed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                typed |= {alias.asname or alias.name for alias in imp.names}
    assert typed == set(jn._LAZY)
    got = run_child(
        """
        import json, janus_net, sys
        names = sorted(janus_net.__all__)
        lazy = sorted(janus_net._LAZY)
        loaded_early = [n for n in lazy if janus_net._LAZY[n] in sys.modules]
        via_from = {}
        for name in names:
            ns = {}
            exec(f"from janus_net import {name}", ns)
            via_from[name] = ns[name] is getattr(janus_net, name)
        print(json.dumps({"from": via_from, "dir": sorted(set(names) - set(dir(janus_net))), "early": loaded_early}))
        """
    )
    assert got["from"] == {name: True for name in jn.__all__}
    assert got["dir"] == []
    assert got["early"] == []  # a lazy name whose module `import janus_net` loads anyway saves nothing
    assert set(jn._LAZY) <= set(jn.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        jn.nonexistent  # noqa: B018


def test_lazy_names_still_work_in_a_fresh_interpreter() -> None:
    got = run_child(
        """
        import json, janus_net as jn
        s = jn.listen("127.0.0.1:0")
        plain = s.to_socket()
        names = [jn.NetBind.__name__, jn.AuditRecord.__name__, jn.handoff.__name__, type(plain).__module__]
        plain.close()
        print(json.dumps(names))
        """
    )
    assert got == ["NetBind", "AuditRecord", "janus_net.handoff", "socket"]


def test_a_lazy_name_first_used_with_the_descriptor_table_full_is_the_fd_quota_member() -> None:
    """The import a lazy name makes opens files; at the fd limit that is ProcessFdQuotaExceeded, then it loads."""
    got = run_child(
        """
        import json, os, resource, janus_net as jn
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        fillers = []
        try:
            while True:
                fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        seen = {}
        for name in ("resolve", "connect_host", "ResolverConfig", "notify", "receive_sockets"):
            try:
                getattr(jn, name)
                seen[name] = "loaded"
            except jn.SocketError.ProcessFdQuotaExceeded as e:
                seen[name] = e.member
        for fd in fillers:
            os.close(fd)
        after = [getattr(jn, name).__name__ for name in seen]  # loads once descriptors are free
        print(json.dumps({"seen": seen, "after": after}))
        """
    )
    assert set(got["seen"].values()) == {"ProcessFdQuotaExceeded"}, got  # type: ignore[union-attr]
    assert got["after"] == ["resolve", "connect_host", "ResolverConfig", "notify", "receive_sockets"]


def test_owners_made_before_the_first_adoption_are_found() -> None:
    # In a fresh process nothing is registered until the first fd:// adoption: that call
    # must still find the listener and the bound socket made before it.
    got = run_child(
        """
        import json, socket, janus_net as jn
        from janus_net._kernel import owners
        server = jn.listen("127.0.0.1:0")
        udp = jn.bind("127.0.0.1:0")
        registered_before = owners.REGISTRATION.on
        errors = []
        for fd in (server.fileno(), udp.fileno()):
            try:
                (jn.listen if fd == server.fileno() else jn.bind)(f"fd://{fd}")
            except jn.SocketError.InvalidAddress as e:
                errors.append("already owned" in str(e))
        later = jn.listen("127.0.0.1:0")  # made after: registers itself
        try:
            jn.listen(f"fd://{later.fileno()}")
        except jn.SocketError.InvalidAddress as e:
            errors.append("already owned" in str(e))
        lent = socket.create_server(("127.0.0.1", 0)).detach()
        adopted = jn.listen(f"fd://{lent}")  # a number nobody owns is still adopted
        closed = [s.closed for s in (server, udp, later)]
        for s in (server, udp, later, adopted):
            s.close()
        print(json.dumps([registered_before, errors, closed]))
        """
    )
    assert got == [False, [True, True, True], [False, False, False]]


def test_two_first_adoptions_on_two_threads_both_see_every_owner() -> None:
    # The first lookup walks for the owners made before it; a second thread's lookup
    # during that walk must wait for it, not read a half-filled registry.
    got = run_child(
        """
        import json, threading, janus_net as jn
        servers = [jn.listen("127.0.0.1:0") for _ in range(200)]
        start = threading.Barrier(2)
        results = []
        def adopt(fd):
            start.wait()
            try:
                jn.listen(f"fd://{fd}").close()
                results.append("adopted")
            except jn.SocketError.InvalidAddress as e:
                results.append("already owned" in str(e))
        threads = [threading.Thread(target=adopt, args=(servers[k].fileno(),)) for k in (0, -1)]
        for t in threads: t.start()
        for t in threads: t.join()
        for s in servers: s.close()
        print(json.dumps(results))
        """
    )
    assert got == [True, True]


def test_a_closed_owner_does_not_block_adopting_its_number_later() -> None:
    server = jn.listen("127.0.0.1:0")
    fd = server.fileno()
    assert owners.owner_of(fd) is server
    server.close()
    assert owners.owner_of(fd) is None
    lent = socket.create_server(("127.0.0.1", 0))
    try:
        number = lent.fileno()
        assert owners.owner_of(number) is None
    finally:
        lent.close()


# --- Datagram: a slotted immutable value with a frozen dataclass's behaviour


def _datagram(**change: object) -> jn.Datagram:
    fields: dict[str, object] = {
        "data": b"hi",
        "source": jn.Ip4Address("127.0.0.1", 5000),
        "destination": jn.Ip6Address("::1", 53),
        "timestamp": 1.5,
        "segment_size": 2,
    }
    fields.update(change)
    return jn.Datagram(**fields)  # type: ignore[arg-type]


def test_datagram_equality_hash_repr_pickle_and_match() -> None:
    d = _datagram()
    assert d == _datagram() and hash(d) == hash(_datagram())
    for field, other in (("data", b"ho"), ("source", jn.Ip4Address("127.0.0.1", 5001)), ("destination", None),
                         ("timestamp", None), ("segment_size", 1)):  # fmt: skip
        assert d != _datagram(**{field: other}), field
    assert d != (b"hi", d.source, d.destination, 1.5, 2)  # not equal to a tuple of its fields
    assert repr(d) == (
        "Datagram(data=b'hi', source=Ip4Address('127.0.0.1:5000'), destination=Ip6Address('[::1]:53'), "
        "timestamp=1.5, segment_size=2)"
    )
    assert pickle.loads(pickle.dumps(d)) == d
    match d:
        case jn.Datagram(data, source, destination, timestamp, size):
            assert (data, source, destination, timestamp, size) == (b"hi", d.source, d.destination, 1.5, 2)
        case _:
            pytest.fail("positional match failed")


def test_datagram_is_immutable_and_has_no_dict() -> None:
    d = _datagram()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.data = b"x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del d.source  # type: ignore[misc]
    assert not hasattr(d, "__dict__")
    assert d.data == b"hi"


# --- the usual call of listen/bind (the address, and the context or capability, no keyword)

_PROFILE_FUNCTIONS = [
    (jn.listen, ()),
    (jn.bind, ()),
    (jn.listen_with_context, ("ctx",)),
    (jn.bind_with_context, ("ctx",)),
    (jn.listen_with_capability, ("cap",)),
    (jn.bind_with_capability, ("cap",)),
]


def _second(kind: str) -> object:
    if kind == "ctx":
        return jn.Context()
    return jn.NetBind("lean").allow_port(0)


@pytest.mark.parametrize(("function", "more"), _PROFILE_FUNCTIONS, ids=lambda f: getattr(f, "__name__", ""))
def test_the_usual_call_makes_what_the_written_function_makes(function: Any, more: tuple[str, ...]) -> None:
    import inspect

    written = function.__wrapped__
    assert inspect.signature(function) == inspect.signature(written)
    assert (function.__name__, function.__doc__) == (written.__name__, written.__doc__)
    assert function.__annotations__ == written.__annotations__  # typing.get_type_hints reads them
    extra = [_second(kind) for kind in more]
    fast, slow = function("127.0.0.1:0", *extra), written("127.0.0.1:0", *extra)
    try:
        assert type(fast) is type(slow)
        assert fast.options() == slow.options()
        assert (fast.address.host, type(fast.address)) == (slow.address.host, type(slow.address))
        assert fast.address.port > 0
    finally:
        fast.close()
        slow.close()
    # Every other call is the written function's: the same errors, word for word.
    for args, kwargs in [((), {}), (("127.0.0.1:0", *extra, 5), {}), (("127.0.0.1:0", *extra), {"bogus": 1})]:
        with pytest.raises(TypeError) as fast_error:
            function(*args, **kwargs)
        with pytest.raises(TypeError) as slow_error:
            written(*args, **kwargs)
        assert str(fast_error.value) == str(slow_error.value)
    # A keyword goes through the written function's checks.
    with pytest.raises(TypeError):
        function("127.0.0.1:0", *extra, reuse_address=1)


def test_the_usual_call_still_checks_the_context_and_the_capability() -> None:
    for function in (jn.listen_with_context, jn.bind_with_context):
        with pytest.raises(TypeError, match="context is required"):
            function("127.0.0.1:0", None)
        with pytest.raises(TypeError, match=r"must be a janus_net\.Context"):
            function("127.0.0.1:0", object())
        cancelled = jn.Context()
        cancelled.cancel()
        with pytest.raises(jn.SocketError.Timeout):
            function("127.0.0.1:0", cancelled)
    for function in (jn.listen_with_capability, jn.bind_with_capability):
        with pytest.raises(TypeError, match=r"must be a janus_net\.NetBind"):
            function("127.0.0.1:0", object())
        with pytest.raises(jn.SocketError.CapabilityDenied):
            function("127.0.0.1:0", jn.NetBind("lean").allow_port(1))
