"""The project's module graph from an AST scan: import cycles, package layering, who imports the
test doubles, module sizes.

Imports inside functions count (a cycle through a function-level import is still a cycle);
imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

# Top to bottom: a package may import the ones after it, never the ones before it.
LAYERS = ("bench", "agent", "tools", "checkpoints", "cache")
MAX_MODULE_LINES = 400
# The test doubles (scripted and misbehaving VLM servers, the oracle VLM) and the only
# packages of the product that may import them: the chaos scorecard and the benchmarks.
DOUBLES = "bench.doubles"
MAY_IMPORT_DOUBLES = (DOUBLES, "bench.chaos", "bench.benchmarks")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Every module (or module attribute) name an import statement in ``tree`` names."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_block(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = current.split(".") if is_package else current.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, node.module] if node.module else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def module_files(root: Path) -> dict[str, Path]:
    return {module_name(root, p): p for pkg in LAYERS for p in sorted((root / pkg).rglob("*.py"))}


def import_graph(root: Path) -> dict[str, set[str]]:
    """``module -> modules of the project it imports``."""
    files = module_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = imported_names(tree, name, path.name == "__init__.py")
        graph[name] = {n for n in names if n in files and n != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that point up the layers (e.g. ``tools`` importing ``agent``)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = source.split(".")[0], target.split(".")[0]
            if rank[b] < rank[a]:
                bad.append(f"{source} imports {target} ({a} must not import {b})")
    return bad


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def doubles_violations(graph: dict[str, set[str]]) -> list[str]:
    """Product modules that import the test doubles (tests, chaos and benchmarks may)."""
    bad = []
    for source, targets in sorted(graph.items()):
        if any(_within(source, pkg) for pkg in MAY_IMPORT_DOUBLES):
            continue
        bad.extend(
            f"{source} imports {target} (only tests, {', '.join(MAY_IMPORT_DOUBLES[1:])} may)"
            for target in sorted(targets)
            if _within(target, DOUBLES)
        )
    return bad


def long_modules(root: Path) -> list[str]:
    out = []
    for name, path in module_files(root).items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            out.append(f"{name}: {n} lines")
    return out
