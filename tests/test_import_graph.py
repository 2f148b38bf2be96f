"""The `bench` package has no import circle (every import counted, function-level ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str = "bench") -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its body (parsed, not imported)."""
    files = {module_name(p): p for p in (REPO / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None (depth-first search, colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_finds_a_planted_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_bench_has_no_import_circle() -> None:
    graph = import_graph()
    assert "bench.runner.run" in graph and "bench.runner.config" in graph["bench.runner.run"]  # the graph is real
    # a package __init__ importing its own submodules is not a circle worth reporting
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def rooms(graph: dict[str, set[str]], package: str = "bench") -> dict[str, set[str]]:
    """The graph folded to `package`'s direct children (a sub-package is one room): room -> the
    rooms it imports. A room importing itself is dropped."""
    def room(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 else module

    folded: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if name == package:
            continue
        folded.setdefault(room(name), set()).update(
            room(t) for t in targets if t != package and room(t) != room(name))
    return folded


def floors(graph: dict[str, set[str]]) -> int:
    """The number of floors: the longest chain of imports + 1 (the graph must have no circle)."""
    depth: dict[str, int] = {}

    def height(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((height(t) for t in graph[node]), default=0)
        return depth[node]

    return max(height(n) for n in graph)


def test_rooms_and_floors_on_a_known_graph() -> None:
    graph = {"bench": set(), "bench.cli": {"bench.runner.run", "bench.report.tables"},
             "bench.runner.run": {"bench.runner.store", "bench.schema"}, "bench.runner.store": set(),
             "bench.report.tables": {"bench.runner.store"}, "bench.schema": set()}
    folded = rooms(graph)
    assert folded == {"bench.cli": {"bench.runner", "bench.report"},
                      "bench.runner": {"bench.schema"}, "bench.report": {"bench.runner"},
                      "bench.schema": set()}
    assert floors(folded) == 4 and sum(map(len, folded.values())) == 4


def test_the_rooms_of_bench_have_no_circle() -> None:
    """Folded to its rooms (top-level modules and sub-packages), bench still has no circle: each
    sub-package (runner, protocol, report, tasks) sits on floors of its own."""
    folded = rooms(import_graph())
    assert {"bench.runner", "bench.protocol", "bench.report", "bench.tasks"} <= set(folded)
    assert find_cycle(folded) is None, " -> ".join(find_cycle(folded))


if __name__ == "__main__":  # python -m tests.test_import_graph: the numbers the README quotes
    folded = rooms(import_graph())
    print(f"{len(folded)} rooms on {floors(folded)} floors with "
          f"{sum(map(len, folded.values()))} arrows")
