"""No import circle in the tree: every import a module makes, at its top or lazily inside a function,
is an edge; the graph of ``iqa_core`` and ``iqa_plugins`` must be acyclic.

Lazy imports count because a circle hidden in a function still ties the two modules together (each
needs the other to work) even when Python can load them. Imports under ``if TYPE_CHECKING:`` do not:
they never run. A package's ``__init__`` is an edge only where it is named.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"iqa_core": ROOT / "src" / "iqa_core", "iqa_plugins": ROOT / "plugins"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for both packages."""
    out = {}
    for name, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere in the module except TYPE_CHECKING blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (the deepest named module of each import)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                source = ".".join([*base, *([node.module] if node.module else [])])
                names = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in files else source for alias in node.names
                ]
            for name in names:
                while name and name not in files:  # `import a.b.c` of a function or class: its module
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_graph_sees_the_packages() -> None:
    # a walk that found nothing would pass every check below
    graph = import_graph()
    assert "iqa_core.pipeline.core" in graph["iqa_core.pipeline"]
    assert "iqa_core.api" in graph["iqa_plugins.scorers.mllm.scorer"]
    assert "iqa_core.executors.ray" in graph["iqa_core.executors.dispatch"]  # a lazy import counts


def test_no_import_cycle() -> None:
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as exc:
        cycle = exc.args[1][::-1]  # graphlib lists each module before the one that imports it
        pytest.fail("import circle: " + " imports ".join(cycle))


def test_pipeline_never_reaches_an_executor() -> None:
    # executors drive the pipeline; running it through one is the API's and the CLI's business
    reached = reachable(import_graph(), "iqa_core.pipeline")
    assert not {m for m in reached if m.startswith("iqa_core.executors")}
