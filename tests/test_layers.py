"""Layers point one way: data_pipeline and parallel know nothing of the trainer, and no two
top-level packages import each other (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("data_pipeline", "parallel", "pretrain", "launch")
ALLOWED = {
    "data_pipeline": set(),
    "parallel": set(),
    "pretrain": {"data_pipeline", "parallel"},
    "launch": {"pretrain"},
}
"""Which packages each may import: the trainer sits on the data format and the parallel layer."""


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of this repo that one file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """{package: {imported package: [files importing it]}}."""
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for other in imported_packages(path) - {package}:
                graph[package].setdefault(other, []).append(str(path.relative_to(REPO)))
    return graph


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_each_package_imports_only_the_layers_below_it():
    graph = package_graph()
    wrong = {
        f"{package} -> {other}": files
        for package, imports in graph.items()
        for other, files in imports.items()
        if other not in ALLOWED[package]
    }
    assert not wrong, wrong


def test_no_import_cycle_between_top_level_packages():
    edges = {package: set(imports) for package, imports in package_graph().items()}
    assert find_cycle(edges) is None, find_cycle(edges)


def test_the_checks_see_a_cycle_and_a_function_level_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from pretrain.model import Transformer\n    import parallel.dims\n")
    assert imported_packages(source) == {"pretrain", "parallel"}
