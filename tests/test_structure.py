"""The package's shape, checked: only syscalls.py enters the kernel through lib, and no import cycle.

DESIGN §2: data flows down the layers, and only `janus_net.syscalls` calls libc
functions (through its one retry loop and a table per syscall). Both rules are easy
to break by accident -- a hot path that hands ``lib.sendto`` to the loop itself, a
helper that "just" calls ``lib.fcntl`` -- so they are read from the source here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import janus_net
from janus_net._shim import lib

PACKAGE = Path(janus_net.__file__).resolve().parent

#: lib functions any module may call: pure computations that never enter the kernel.
PURE = {
    "htons": "byte order",
    "ntohs": "byte order",
    "htonl": "byte order",
    "ntohl": "byte order",
    "jn_cmsg_space": "CMSG_SPACE arithmetic",
    "jn_cmsg_len": "CMSG_LEN arithmetic",
    "jn_cmsg_firsthdr": "CMSG_FIRSTHDR: pointer arithmetic on the caller's buffer",
    "jn_cmsg_nxthdr": "CMSG_NXTHDR: pointer arithmetic on the caller's buffer",
    "jn_cmsg_data": "CMSG_DATA: pointer arithmetic on the caller's buffer",
}

#: Calls that do enter the kernel outside syscalls.py, each with the reason it is allowed.
KNOWN = {
    # Resolving an interface name is part of parsing an address (DESIGN §4); glibc asks
    # the kernel through a throwaway socket and has no errno the caller could act on.
    ("address.py", "if_nametoindex"): "zone names are resolved while parsing",
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.glob("*.py"))


def _lib_functions_used(tree: ast.AST) -> set[str]:
    """Every ``lib.<name>`` that names a function (called or passed around as a value)."""
    used = set()
    for node in ast.walk(tree):
        is_lib = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "lib"
        if is_lib and callable(getattr(lib, node.attr, None)):  # type: ignore[attr-defined]
            used.add(node.attr)  # type: ignore[attr-defined]
    return used


def test_only_syscalls_calls_libc_functions_that_enter_the_kernel() -> None:
    offenders = []
    for path in _modules():
        if path.name == "syscalls.py":
            continue
        for name in sorted(_lib_functions_used(ast.parse(path.read_text()))):
            if name not in PURE and (path.name, name) not in KNOWN:
                offenders.append(f"{path.name}: lib.{name}")
    assert not offenders, "libc calls outside syscalls.py:\n" + "\n".join(offenders)


def test_the_checker_sees_a_lib_call_and_a_lib_function_passed_as_a_value() -> None:
    # The rule would pass vacuously if the walk found nothing: prove it finds both forms.
    tree = ast.parse("retry(SOCKET, lib.socket, args)\nlib.close(fd)\nx = lib.AF_INET\n")
    assert _lib_functions_used(tree) == {"socket", "close"}


def _runtime_imports(path: Path) -> set[str]:
    """janus_net modules ``path`` imports at run time (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "janus_net":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("janus_net."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("janus_net."):
                    found.add(alias.name.split(".")[1])
    modules = {p.stem for p in _modules()} | {"_shim"}
    return {name for name in found if name in modules and name != path.stem}


#: Edges the cycle test tolerates, each with the reason. DESIGN §14 names the question
#: `janus_net.platform.landlock_abi()`, and asking the kernel is a syscall, which only
#: syscalls.py makes: platform's function imports syscalls when called (never at load,
#: so loading has no cycle). tests/test_architecture.py allows the same one edge.
TOLERATED_EDGES = {("platform", "syscalls"): "platform.landlock_abi() asks the kernel through syscalls"}


def _graph() -> dict[str, set[str]]:
    graph = {path.stem: _runtime_imports(path) for path in _modules() if path.stem != "__init__"}
    for source, target in TOLERATED_EDGES:
        graph.get(source, set()).discard(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_janus_net() -> None:
    graph = _graph()
    assert "syscalls" in graph["socket"]  # the walk sees real edges
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_syscalls_imports_nothing_above_it() -> None:
    # errors -> syscalls -> sockaddr -> address -> socket -> ...: the heart imports only below.
    assert _graph()["syscalls"] <= {"errors", "platform", "_shim"}
