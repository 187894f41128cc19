"""hil's modules import each other without cycles (lazy and TYPE_CHECKING imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import hil

ROOT = Path(hil.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the hil package by dotted name (a package by its ``__init__``)."""
    out: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = ["hil", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The hil modules one file imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return out


def test_hil_has_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert "hil.sim_bench" in graph["hil.runner"]  # the walk sees lazy imports
    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = {"hil.bench": {"hil.sim_bench"}, "hil.sim_bench": {"hil.bench", "hil.profile"}, "hil.profile": set()}
    assert _cycles(graph) == [["hil.bench", "hil.sim_bench"]]
