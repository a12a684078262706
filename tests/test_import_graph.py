"""No two claudemeter modules import each other, not even inside a function (an import
deferred into a function hides a cycle, it does not remove it): the graph of every
``import`` in ``python/claudemeter`` (those under ``if TYPE_CHECKING:`` aside: they
never run) has no cycle, but through a back edge :data:`KNOWN` lets through (none now;
one added there is described in docs/internals.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "claudemeter"

#: The back edges let through: none (the last, ``history`` and ``derived`` to the store,
#: went when the private-file helpers moved into :mod:`claudemeter.private`).
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, name: str, modules: set[str], package: bool = False) -> set[str]:
    """The ``modules`` that module ``name`` (whose code is ``source``; ``package``: an
    ``__init__``) imports anywhere but under ``if TYPE_CHECKING:``."""
    parent = name.split(".") if package else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]))  # only what runs
                continue
            if isinstance(child, ast.ImportFrom):
                base = parent[: len(parent) - child.level + 1] if child.level else []
                target = ".".join([*base, *([child.module] if child.module else [])])
                candidates = [target, *(f"{target}.{alias.name}" for alias in child.names)]
            elif isinstance(child, ast.Import):
                candidates = [alias.name for alias in child.names]
            else:
                visit(child)
                continue
            found.update(c for c in candidates if c in modules and c != name)

    visit(ast.parse(source))
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: imported(path.read_text(), name, set(files), path.name == "__init__.py")
        for name, path in files.items()
    }


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules along it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(edges[node]):
            found = walk(target)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        found = walk(start)
        if found:
            return found
    return None


def test_no_module_imports_one_that_imports_it() -> None:
    edges = graph()
    assert len(edges) > 40
    for source, target in KNOWN:
        edges[source].discard(target)
    assert cycle(edges) is None, " -> ".join(cycle(edges) or [])


def test_imports_inside_functions_count_and_type_checking_ones_do_not() -> None:
    source = (
        "TYPE_CHECKING = False\n"
        "if TYPE_CHECKING:\n"
        "    from .store import State\n"
        "else:\n"
        "    from . import env\n"
        "def render() -> None:\n"
        "    from .cli import main\n"
        "    from ..model import Snapshot\n"
    )
    modules = {"claudemeter.store", "claudemeter.env", "claudemeter.cli", "claudemeter.model"}
    assert imported(source, "claudemeter.sources.x", modules) == {"claudemeter.model"}
    assert imported(source, "claudemeter.x", modules) == {"claudemeter.env", "claudemeter.cli"}
    edges = graph()
    edges["claudemeter.times"].add("claudemeter.cli")  # what a lazy import of cli would add
    found = cycle(edges)
    assert found is not None and "claudemeter.times" in found
