"""The package's import graph has no cycles, counting imports inside functions too.

A cycle hidden behind a function-level import still means two modules that cannot be understood (or
imported first) apart; with every edge counted and the graph acyclic, any module imports in isolation.
"""

from __future__ import annotations

import ast
import importlib
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sora_assets"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.AST, known: set[str]) -> set[str]:
    """Package modules a module imports anywhere in its body (`from a.b import c` counts a.b.c if it is a
    module, else a.b)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        found.update(n for n in names if n in known)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        graph[name] = {t for t in imported(ast.parse(path.read_text()), set(mods))
                       # a package and its own children importing each other is not a cycle between modules
                       if t != name and not t.startswith(name + ".") and not name.startswith(t + ".")}
    return graph


def test_no_import_cycles() -> None:
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None
    assert len(order) == len(modules())


def test_core_never_imports_dagster_or_orchestration() -> None:
    graph = import_graph()
    for name, path in modules().items():
        if not name.startswith("sora_assets.core"):
            continue
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "dagster" not in roots, name
        outside = sorted(t for t in graph[name] if not t.startswith("sora_assets.core"))
        assert not outside, f"{name} imports {outside}"


def test_every_module_imports() -> None:
    for name in modules():
        importlib.import_module(name)
