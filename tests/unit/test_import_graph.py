"""The import graph: no cycles, and the composition root is reached only from entrypoints."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_architecture import PACKAGE_ROOT, _absolute, module_name

PATHS = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """The taskflow modules ``path`` imports, at module level or inside a function.

    ``from package import module`` depends on that module, not on the package's own body.
    """
    module = module_name(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package=path.name == "__init__.py")
            names = {f"{base}.{alias.name}" for alias in node.names}
            found |= names & PATHS.keys()
            if names - PATHS.keys():
                found.add(base)
    return (found & PATHS.keys()) - {module}


GRAPH = {module: imported_modules(path) for module, path in PATHS.items()}


def cycle_from(start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one."""
    seen: set[str] = set()

    def walk(module: str, trail: list[str]) -> Iterator[list[str]]:
        for imported in sorted(GRAPH[module]):
            if imported == start:
                yield [*trail, imported]
            elif imported not in seen:
                seen.add(imported)
                yield from walk(imported, [*trail, imported])

    return next(walk(start, [start]), None)


def test_the_graph_sees_the_imports_it_guards() -> None:
    assert "taskflow.entrypoints.startup" in GRAPH["taskflow.entrypoints.http.app"]
    assert "taskflow.containers" in GRAPH["taskflow.entrypoints.startup"]
    # `from taskflow.adapters.sql import bulk` is an import of bulk, not of the package's body.
    assert "taskflow.adapters.sql" not in GRAPH["taskflow.adapters.sql.repository"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_itself_through_others(module: str) -> None:
    assert cycle_from(module) is None


@pytest.mark.parametrize(
    "module", sorted(m for m in GRAPH if not m.startswith("taskflow.entrypoints"))
)
def test_only_entrypoints_import_the_container(module: str) -> None:
    assert "taskflow.containers" not in GRAPH[module]
