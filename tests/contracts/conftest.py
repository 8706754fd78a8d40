"""The stores every contract suite runs on."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from taskflow.adapters.sql.engine import migrate
from tests.conftest import Databases

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once, whose folder each test copies (migrating takes longer)."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    asyncio.run(migrate(f"sqlite+aiosqlite:///{folder}/tasks.db"))
    return folder


def sql_store(kind: str, tmp_path: Path, databases: Databases, migrated_sqlite: Path | None) -> str:
    """The URL of a SQLite file or PostgreSQL database of this test's own: a copy of one
    migrated already, or (``migrated_sqlite`` None) an empty one."""
    if kind == "sqlite":
        if migrated_sqlite is not None:
            shutil.copytree(migrated_sqlite, tmp_path / "store")
        return f"sqlite+aiosqlite:///{tmp_path}/store/tasks.db"
    return databases(migrated=migrated_sqlite is not None)


@pytest.fixture(params=BACKENDS)
def store_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_database_factory: Databases,
    migrated_sqlite: Path,
) -> str:
    """ "memory", or the URL of a migrated SQLite file or PostgreSQL database of this test's own."""
    # Sync on purpose: the factory runs its own event loop.
    if request.param == "memory":
        return "memory"
    return sql_store(request.param, tmp_path, pg_database_factory, migrated_sqlite)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: Databases
) -> str:
    """The URL of an empty SQLite file or PostgreSQL database of this test's own."""
    return sql_store(request.param, tmp_path, pg_database_factory, None)
