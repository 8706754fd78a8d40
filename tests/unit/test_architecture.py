"""The dependency rule (STYLE.md): the domain stands alone; adapters never reach upwards or
into each other."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import taskflow

PACKAGE_ROOT = Path(taskflow.__file__).parent
# The host clock and time-ordered ids, group commit, and a job's turn within one process:
# any adapter may use them.
SHARED_TECHNOLOGIES = frozenset({"clock", "batching", "turns", "cancelling"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE_ROOT / folder).rglob("*.py"))


def imported_names(source: str, module: str, *, is_package: bool) -> Iterator[str]:
    """Every module ``source`` imports, absolute; ``from a import b`` gives ``a`` and ``a.b``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package=is_package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _absolute(node: ast.ImportFrom, module: str, *, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    parts = package[: len(package) - node.level + 1]
    return ".".join([*parts, node.module] if node.module else parts)


def imports_of(path: Path) -> set[str]:
    return set(
        imported_names(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    )


def technology(module: str) -> str | None:
    """``taskflow.adapters.sql.schema`` → ``sql``; the Alembic migrations belong to sql too."""
    parts = module.split(".")
    if parts[:2] != ["taskflow", "adapters"] or len(parts) < 3:
        return None
    name = parts[2].split("_")[0]
    return "sql" if name == "migrations" else name


def is_domain_or_stdlib(name: str) -> bool:
    return (
        name.partition(".")[0] in sys.stdlib_module_names
        or name == "taskflow.domain"
        or name.startswith("taskflow.domain.")
    )


DOMAIN = modules_under("domain")
ADAPTERS = modules_under("adapters")


def test_the_walk_sees_the_modules_it_guards() -> None:
    names = {module_name(p) for p in DOMAIN + ADAPTERS}
    assert {
        "taskflow.domain.model",
        "taskflow.domain.services",
        "taskflow.adapters.memory",
    } <= names


def test_imports_are_resolved_to_absolute_names() -> None:
    source = "import os.path\nfrom . import clock\nfrom ..domain.model import Task\n"
    found = set(imported_names(source, "taskflow.adapters.sql", is_package=False))
    assert {"os.path", "taskflow.adapters.clock", "taskflow.domain.model"} <= found
    assert technology("taskflow.adapters.sql.migrations.env") == technology("taskflow.adapters.sql")


@pytest.mark.parametrize("path", DOMAIN, ids=module_name)
def test_the_domain_imports_only_the_standard_library(path: Path) -> None:
    outside = sorted(name for name in imports_of(path) if not is_domain_or_stdlib(name))
    assert outside == []


@pytest.mark.parametrize("path", ADAPTERS, ids=module_name)
def test_adapters_never_import_entrypoints_or_the_container(path: Path) -> None:
    upward = sorted(
        name
        for name in imports_of(path)
        if name.startswith(("taskflow.entrypoints", "taskflow.containers"))
    )
    assert upward == []


@pytest.mark.parametrize("path", ADAPTERS, ids=module_name)
def test_adapters_do_not_import_each_other(path: Path) -> None:
    own = technology(module_name(path))
    others = sorted(
        name
        for name in imports_of(path)
        if technology(name) not in {None, own, *SHARED_TECHNOLOGIES}
    )
    assert others == []


# -- every module in a layer; the contracts bite (cycles: test_import_graph.py) ----------


def _layered_names() -> set[str]:
    config = tomllib.loads((PACKAGE_ROOT.parents[1] / "pyproject.toml").read_text())
    [layers] = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    return {name.strip() for layer in layers for name in re.split(r"[:|]", layer)}


def test_every_top_level_module_sits_in_a_layer() -> None:
    top_level = {
        f"taskflow.{p.stem if p.is_file() else p.name}"
        for p in PACKAGE_ROOT.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert top_level - _layered_names() == set()


def test_the_import_contracts_fail_on_a_wrong_import(tmp_path: Path) -> None:
    """A copy of the package whose domain imports the container: lint-imports must refuse it."""
    shutil.copytree(PACKAGE_ROOT, tmp_path / "taskflow")
    model = tmp_path / "taskflow" / "domain" / "model.py"
    model.write_text(model.read_text() + "\nimport taskflow.containers  # wrong on purpose\n")
    config = PACKAGE_ROOT.parents[1] / "pyproject.toml"
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    broken = subprocess.run(
        [str(lint), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert broken.returncode != 0, broken.stdout
    assert "taskflow.domain.model -> taskflow.containers" in broken.stdout
    clean = subprocess.run(
        [str(lint), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=PACKAGE_ROOT.parents[1],
        timeout=120,
        check=False,
    )
    assert clean.returncode == 0, clean.stdout


MAX_MODULE_LINES = 400


@pytest.mark.parametrize("path", sorted(PACKAGE_ROOT.rglob("*.py")), ids=module_name)
def test_no_module_grows_past_a_few_hundred_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES
