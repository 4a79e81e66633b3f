"""The package's shape, checked: only the kernel door (janus_net/_kernel/) enters the kernel, and no import cycle.

DESIGN §2, §3: data flows down the layers, and only the door, `janus_net._kernel`, enters the
kernel -- through libc functions of the shim, with its one retry loop and a table per
syscall; never through ``os.*`` or ``fcntl.*``, which retry EINTR inside CPython where
no checkpoint can run. These rules are easy to break by accident -- a hot path that
hands ``lib.sendto`` to the loop itself, a helper that "just" calls ``os.read`` or
imports a module inside a function -- so they are read from the source here.
"""

from __future__ import annotations

import ast
import fcntl
import os
import re
from pathlib import Path

import janus_net
from janus_net._shim import lib

PACKAGE = Path(janus_net.__file__).resolve().parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

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

#: The kernel door: the package whose modules alone call into the kernel (DESIGN §2).
DOOR = "_kernel"

#: Calls that do enter the kernel outside the door, each with the reason it is allowed.
KNOWN = {
    # Resolving an interface name is part of parsing an address (DESIGN §4); glibc asks
    # the kernel through a throwaway socket and has no errno the caller could act on.
    ("_profiles/addresses.py", "if_nametoindex"): "zone names are resolved while parsing",
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _in_the_door(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] == DOOR


def _lib_functions_used(tree: ast.AST) -> set[str]:
    """Every ``lib.<name>`` that names a function (called or passed around as a value)."""
    used = set()
    for node in ast.walk(tree):
        is_lib = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "lib"
        if is_lib and callable(getattr(lib, node.attr, None)):  # type: ignore[attr-defined]
            used.add(node.attr)  # type: ignore[attr-defined]
    return used


def test_only_the_door_calls_libc_functions_that_enter_the_kernel() -> None:
    offenders = []
    for path in _modules():
        if _in_the_door(path):
            continue
        relative = str(path.relative_to(PACKAGE))
        for name in sorted(_lib_functions_used(ast.parse(path.read_text()))):
            if name not in PURE and (relative, name) not in KNOWN:
                offenders.append(f"{relative}: lib.{name}")
    assert not offenders, "libc calls outside the door (janus_net/_kernel/):\n" + "\n".join(offenders)


def test_the_door_is_where_the_kernel_calls_are() -> None:
    # The rule above would pass vacuously if the door moved: prove it holds the calls.
    door = [path for path in _modules() if _in_the_door(path)]
    assert len(door) > 5
    used = set().union(*(_lib_functions_used(ast.parse(path.read_text())) for path in door))
    assert {"jn_desc_socket", "jn_desc_accept", "jn_desc_sendto", "jn_steps", "close"} <= used


def test_the_checker_sees_a_lib_call_and_a_lib_function_passed_as_a_value() -> None:
    # The rule would pass vacuously if the walk found nothing: prove it finds both forms.
    tree = ast.parse("retry(SOCKET, lib.socket, args)\nlib.close(fd)\nx = lib.AF_INET\n")
    assert _lib_functions_used(tree) == {"socket", "close"}


# --- os.* and fcntl.*: no kernel entry outside the door

#: os functions that never enter the kernel: text, paths, the environment, wait-status arithmetic.
PURE_OS = {
    "fsencode": "text to bytes",
    "fsdecode": "bytes to text",
    "fspath": "a path-like object's text",
    "strerror": "the C library's message for an errno",
    "waitstatus_to_exitcode": "wait-status arithmetic",
    "register_at_fork": "registers callbacks with the interpreter",
    "getenv": "reads os.environ",
    "PathLike": "an abstract class",
}


def allowed_os_calls() -> dict[tuple[str, str], str]:
    """The allowed list of docs/architecture.md: (module, call) -> why, between its markers."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    begin, end = "<!-- os-allowed:begin -->", "<!-- os-allowed:end -->"
    assert begin in text and end in text, "docs/architecture.md lost its allowed list of os.* calls"
    rows = {}
    for line in text[text.index(begin) : text.index(end)].splitlines():
        match = re.fullmatch(r"\| `([\w/]+\.py)` \| `os\.(\w+)` \| (.+) \|", line.strip())
        if match:
            rows[(match[1], match[2])] = match[3]
    return rows


def _os_and_fcntl_calls(tree: ast.AST) -> set[str]:
    """Every ``os.X`` / ``fcntl.X`` naming a kernel call (called or passed as a value), as ``"os.X"``.

    Also ``from os import X``, and the modules under another name (``import os as o``).
    """
    aliases = {"os": "os", "fcntl": "fcntl"}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("os", "fcntl"):
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "fcntl"):
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            found.add(f"{aliases[node.value.id]}.{node.attr}")
    modules = {"os": os, "fcntl": fcntl}
    calls = set()
    for name in found:
        module, attr = name.split(".", 1)
        value = getattr(modules[module], attr, None)
        if module == "os" and (attr in PURE_OS or not callable(value)):
            continue  # os.environ, os.path, os.O_CLOEXEC: data, not calls
        if module == "fcntl" and not callable(value):
            continue  # constants
        calls.add(name)
    return calls


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_os_or_fcntl_kernel_call_outside_the_door() -> None:
    allowed = allowed_os_calls()
    offenders = []
    for path in _package_files():
        relative = str(path.relative_to(PACKAGE))
        if _in_the_door(path):
            continue
        for call in sorted(_os_and_fcntl_calls(ast.parse(path.read_text()))):
            module, attr = call.split(".", 1)
            if module == "fcntl" or (relative, attr) not in allowed:
                offenders.append(f"{relative}: {call}")
    assert not offenders, (
        "kernel calls outside the door (wrap them in janus_net/_kernel/, or list them with a reason in "
        "docs/architecture.md):\n" + "\n".join(offenders)
    )


#: Standard modules whose functions enter the kernel without ``os.`` in the source: ``secrets`` and
#: ``random.SystemRandom`` read os.urandom (getrandom(2)); the door has `processes.random_bytes`.
KERNEL_MODULES = {"secrets": "os.urandom, getrandom(2)"}


def _kernel_module_uses(tree: ast.AST) -> set[str]:
    """Every import of a `KERNEL_MODULES` module, and every ``random.SystemRandom``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in KERNEL_MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module in KERNEL_MODULES:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "random":
            found.update(f"random.{a.name}" for a in node.names if a.name == "SystemRandom")
        elif isinstance(node, ast.Attribute) and node.attr == "SystemRandom":
            found.add("random.SystemRandom")
    return found


def test_no_kernel_randomness_outside_the_door() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {use}"
        for path in _package_files()
        if not _in_the_door(path)
        for use in sorted(_kernel_module_uses(ast.parse(path.read_text())))
    ]
    assert not offenders, "kernel randomness outside the door (use processes.random_bytes):\n" + "\n".join(offenders)


def test_the_kernel_module_checker_sees_each_form() -> None:
    source = "import secrets\nfrom secrets import token_bytes\nimport random\nr = random.SystemRandom()\n"
    assert _kernel_module_uses(ast.parse(source)) == {"secrets", "random.SystemRandom"}
    assert _kernel_module_uses(ast.parse("import random\nrandom.random()\n")) == set()


def test_the_allowed_list_names_real_os_calls_with_reasons() -> None:
    allowed = allowed_os_calls()
    assert allowed, "the allowed list is empty or unreadable"
    for (module, call), why in allowed.items():
        assert (PACKAGE / module).exists(), f"{module} is listed but does not exist"
        assert callable(getattr(os, call, None)) and call not in PURE_OS, f"os.{call} is not a kernel call"
        assert len(why.split()) >= 4, f"{module}: os.{call} needs its reason"
        # A row whose call went behind the door goes too: the list stays the truth.
        assert f"os.{call}" in _os_and_fcntl_calls(ast.parse((PACKAGE / module).read_text())), (
            f"{module} no longer calls os.{call}: remove its row from docs/architecture.md"
        )


def test_the_os_checker_sees_each_form() -> None:
    source = (
        "import os\nimport fcntl as f\nfrom os import kill\n"
        "os.read(fd, 1)\ncb = os.waitpid\nf.fcntl(fd, f.F_GETFD)\n"
        "os.environ.get('X')\nos.path.join('a')\nos.fsencode('x')\nflags = os.O_CLOEXEC\n"
    )
    assert _os_and_fcntl_calls(ast.parse(source)) == {"os.read", "os.waitpid", "fcntl.fcntl", "os.kill"}


# --- Imports: the graph of every module, imports inside functions included


def _module_name(path: Path) -> str:
    """``listen`` for listen.py, ``layout`` for layout/__init__.py, ``janus_net`` for the package itself."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "janus_net"


MODULES = {_module_name(path): path for path in _package_files()}


def _resolve(dotted: str) -> str | None:
    """The module of the package that ``janus_net.<dotted>`` names (the longest known prefix)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in MODULES:
            return name
    return None


def _imports(path: Path, source: str | None = None) -> set[str]:
    """The package modules ``path`` imports when it runs: at load or inside a function.

    Left out: imports under ``if TYPE_CHECKING:``, which never run. Included:
    ``import janus_net.x``, ``from janus_net import x`` (a module, or a name of the
    package itself), ``from janus_net.x import y``, relative imports, and
    ``importlib.import_module("janus_net.x")`` with a literal name.
    """
    tree = ast.parse(path.read_text() if source is None else source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    targets: set[str | None] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = package.split(".") if package and package != "janus_net" else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, *([node.module] if node.module else [])])
                full = f"janus_net.{module}" if module else "janus_net"
            else:
                full = node.module or ""
            if full == "janus_net" or full.startswith("janus_net."):
                inner = full.removeprefix("janus_net").removeprefix(".")
                for alias in node.names:
                    sub = f"{inner}.{alias.name}" if inner else alias.name
                    targets.add(sub if sub in MODULES else (_resolve(inner) if inner else "janus_net"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("janus_net."):
                    targets.add(_resolve(alias.name.removeprefix("janus_net.")))
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("janus_net.")
        ):
            targets.add(_resolve(str(node.args[0].value).removeprefix("janus_net.")))
    return {t for t in targets if t is not None and t != here}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(path) for name, path in MODULES.items()}


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


def test_no_import_cycle_in_janus_net_not_even_at_call_time() -> None:
    graph = _graph()
    assert f"{DOOR}.cell_io" in graph["_sockets.datagram"]  # the walk sees real edges
    assert "_cli.run" in graph["_cli.command"]  # ...and imports made inside a function
    assert "_process.supervisor" in graph["_cli.run"]
    assert "layout" in graph["_cli.describe"] and "_cli" in graph["layout.__main__"]
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_import_walk_resolves_every_form() -> None:
    source = (
        "from janus_net import testing, SocketError\nfrom janus_net._values.errors import ErrnoBug\n"
        "import janus_net._values.ip\nfrom . import layout\nfrom janus_net._kernel import cells\n"
        "def late():\n    from janus_net._sockets.server import Server\n"
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from janus_net._profiles.listen import listen\n"
        "def dynamic():\n    return importlib.import_module('janus_net.handoff')\n"
    )
    found = _imports(PACKAGE / "a_module.py", source)  # a module beside the others, read from ``source``
    expected = {"testing", "janus_net", "_values.errors", "_values.ip", "layout", "_kernel.cells", "_sockets.server"}
    assert found == expected | {"handoff"}
    inside = _imports(PACKAGE / "layout" / "__main__.py", "from . import render\nfrom .. import _cli\n")
    assert inside == {"layout", "_cli"}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


#: The wings of DESIGN §2, from the top; a module imports only its own wing or wings below it.
#: The public submodules stand in the wing of their idea.
WINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("face", ("janus_net", "__main__", "layout", "_cli")),
    ("process", ("handoff", "_process")),
    ("profiles", ("_profiles",)),
    ("sockets", ("_sockets",)),
    ("policy", ("audit", "_policy")),
    ("the kernel door", ("testing", DOOR)),
    ("values", ("_values",)),
    ("facts", ("platform", "_shim")),
)


def _wing_of(module: str) -> int:
    head = module.split(".")[0]
    for rank, (_, roots) in enumerate(WINGS):
        if module in roots or head in roots:
            return rank
    raise AssertionError(f"{module} stands in no wing: add it to WINGS (and to docs/architecture.md)")


def _imports_for_the_checker_too(path: Path) -> set[str]:
    """Like `_imports`, with the imports under ``if TYPE_CHECKING:`` as well: an arrow the
    design forbids is forbidden for the checker too (a type names what it depends on)."""
    source = path.read_text().replace("if TYPE_CHECKING:", "if True:")
    return _imports(path, source)


def test_every_module_stands_in_a_wing_and_imports_only_its_own_or_lower_wings() -> None:
    wrong = []
    for name, path in sorted(MODULES.items()):
        rank = _wing_of(name)
        for target in sorted(_imports_for_the_checker_too(path)):
            if _wing_of(target) < rank:  # a smaller rank is a higher wing
                wrong.append(f"{name} ({WINGS[rank][0]}) imports {target} ({WINGS[_wing_of(target)][0]})")
    assert not wrong, "arrows that run back up:\n" + "\n".join(wrong)


def test_the_wing_check_sees_an_arrow_back_up() -> None:
    source = "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from janus_net._profiles.listen import listen\n"
    path = PACKAGE / "_sockets" / "a_module.py"
    found = _imports(path, source.replace("if TYPE_CHECKING:", "if True:"))
    assert found == {"_profiles.listen"} and _wing_of("_profiles.listen") < _wing_of("_sockets.a_module")


#: About 500 lines a room: past it a module holds more than one idea (split by idea).
ROOM_LINES = 500


def test_no_module_is_over_about_five_hundred_lines() -> None:
    big = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > ROOM_LINES}
    assert not big, f"modules over {ROOM_LINES} lines: {big}"


def test_the_door_imports_nothing_above_it() -> None:
    # The heart imports only below it: the values (errors), the facts and the shim.
    graph = _graph()
    door = {name for name in graph if name == DOOR or name.startswith(DOOR + ".")}
    assert {f"{DOOR}.loop", f"{DOOR}.cells", f"{DOOR}.tables"} <= door
    for name in sorted(door):
        below = {t for t in graph[name] if t.startswith("_values.") or t in ("platform", "_shim")}
        assert graph[name] <= door | below, (name, graph[name] - door - below)


def test_the_process_wing_imports_nothing_of_the_command_line() -> None:
    # DESIGN §2: the face sits above the process wing; the supervisor only supervises.
    for name, targets in _graph().items():
        if name == "_process" or name.startswith("_process."):
            face = {t for t in targets if t == "_cli" or t.startswith("_cli.")}
            assert not face, f"{name} imports the command line: {sorted(face)}"
    assert "argparse" not in (PACKAGE / "_process" / "supervisor.py").read_text()


def test_the_facts_ask_nothing_of_the_door() -> None:
    # DESIGN §2: no arrow from facts into the door, not even one made at call time.
    assert _graph()["platform"] <= {"_shim"}
