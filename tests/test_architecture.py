"""docs/architecture.md's drawing of the layers is what the imports say (issue 10 item 8).

Each row of the drawing may import modules on rows below it, and the one module a ``─▶`` on its
own row points at. Every module of the package is drawn, so every module is checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "janus_net"
DOC = ROOT / "docs" / "architecture.md"
# A module as drawn: ``listen.py``, ``layout/__init__.py``, or one inside a wing's package (``_values/errors.py``).
MODULE = re.compile(r"(?<![\w/.])((?:(?:layout|_[a-z]+)/)?[a-z_]+(?:/__init__|/__main__)?\.py|_shim)(?![\w.])")


def drawing() -> list[tuple[list[str], set[tuple[str, str]]]]:
    """Rows of the drawing, top first: (modules, arrows within the row)."""
    text = DOC.read_text()
    block = text.split("## The layers", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.splitlines()[3:]:  # after the fence line and the two header lines
        cells = line[17:]  # past the row's name
        found = [m.group(1) for m in MODULE.finditer(cells)]
        arrows = set(re.findall(r"([\w/]+\.py) ─▶ (?=([\w/]+\.py))", cells))
        if found:
            rows.append((found, arrows))
    return rows


def module_name(drawn: str) -> str:
    return drawn.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _package_modules() -> set[str]:
    """Every module of the package as a drawn name's module name: ``socket``, ``layout``, ``_values.errors``."""
    return {module_name(str(path.relative_to(PACKAGE))) for path in PACKAGE.rglob("*.py")}


def _resolve(dotted: str, known: set[str]) -> str:
    """The module ``janus_net.<dotted>`` names: the longest known prefix (``_values.ip`` for ``_values.ip.X``)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in known:
            return name
    return parts[0]


def imports_of(path: Path) -> set[str]:
    """The janus_net modules ``path`` imports, as drawn names' module names (``layout``, ``socket``...).

    An import from a wing's package names the module inside it: ``from janus_net._values.errors import X``
    and ``from janus_net._values import errors`` both import ``_values.errors``.

    Imports under ``if TYPE_CHECKING:`` are left out: they name a type for the checker and never run
    (``ancillary`` and ``segments`` annotate their ``sock`` parameter with ``socket.Socket``, the type
    that calls them), so they are no dependency at load or at run time.
    """
    tree = ast.parse(path.read_text())
    for_the_checker = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    known = _package_modules()
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in for_the_checker:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("janus_net"):
            if node.module == "janus_net":
                found |= {alias.name for alias in node.names}
            else:
                inner = node.module.split(".", 1)[1]
                for alias in node.names:
                    found.add(_resolve(f"{inner}.{alias.name}", known))
        elif isinstance(node, ast.Import):
            found |= {_resolve(a.name.split(".", 1)[1], known) for a in node.names if a.name.startswith("janus_net.")}
    return found


def test_the_drawing_names_the_real_modules() -> None:
    drawn = [m for modules, _ in drawing() for m in modules]
    assert len(drawn) == len(set(drawn)), "a module drawn twice"
    for name in drawn:
        assert name == "_shim" or (PACKAGE / name).exists(), f"{name} is drawn but does not exist"
    real = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}
    assert not real - set(drawn), "modules the drawing does not show (add them to docs/architecture.md)"


def test_the_reader_sees_imports_into_a_wing() -> None:
    # The check would pass vacuously if a wing's modules were read as the wing: prove it names them.
    found = imports_of(PACKAGE / "_values" / "addresses.py")
    assert {"_values.errors", "_values.ip", "_values.unix", "_values.fd"} <= found
    assert "_values.sockaddr" in imports_of(PACKAGE / "_values" / "ip.py")  # from janus_net._values import sockaddr


def test_every_drawn_module_imports_only_downwards() -> None:
    rows = drawing()
    row_of = {module_name(m): i for i, (modules, _) in enumerate(rows) for m in modules}
    arrows = {(module_name(a), module_name(b)) for _, pairs in rows for a, b in pairs}
    for modules, _ in rows:
        for drawn in modules:
            if drawn == "_shim":
                continue
            name = module_name(drawn)
            for target in imports_of(PACKAGE / drawn):
                if target not in row_of or target == name:
                    continue
                below = row_of[target] > row_of[name]
                assert below or (name, target) in arrows, (
                    f"{drawn} imports {target}, which the drawing shows above it or beside it without an arrow"
                )


# --- The wings of DESIGN §2 that live in packages: what each may import, whatever the drawing says.

#: The door and the facts: the modules below the policy wing (old paths until the door's package is drawn).
_DOOR_AND_FACTS = {"syscalls", "descriptor", "control", "testing", "platform", "errors", "_shim"}


def _wing_imports(wing: str) -> dict[str, set[str]]:
    return {
        module_name(str(path.relative_to(PACKAGE))): imports_of(path) for path in sorted((PACKAGE / wing).glob("*.py"))
    }


def test_the_values_import_only_values_and_facts() -> None:
    # DESIGN §2: values do no I/O, so no arrow into the door (or anything above it), even inside a function.
    found = _wing_imports("_values")
    assert "_values.addresses" in found and found["_values.ip"]  # the walk sees the wing
    for module, targets in found.items():
        above = {t for t in targets if not t.startswith("_values.") and t not in {"platform", "_shim"}}
        assert not above, f"{module} imports {sorted(above)}: values import only values and the facts"


def test_the_policy_imports_only_itself_the_audit_and_what_lies_below() -> None:
    # DESIGN §2: no arrow from the policy into the sockets (nor the profiles, the process or the face).
    found = _wing_imports("_policy")
    assert "syscalls" in found["_policy.context"]  # the walk sees the wing
    for module, targets in found.items():
        allowed = {t for t in targets if t.startswith(("_policy.", "_values.")) or t in _DOOR_AND_FACTS | {"audit"}}
        assert targets == allowed, f"{module} imports {sorted(targets - allowed)}, which sit above the policy"


def test_the_address_parser_stands_on_the_values_alone() -> None:
    # The parser sits above the door only for its one kernel question (if_nametoindex, through the shim).
    targets = imports_of(PACKAGE / "_profiles" / "addresses.py")
    assert "_values.ip" in targets
    assert all(t.startswith("_values.") or t == "_shim" for t in targets), sorted(targets)
