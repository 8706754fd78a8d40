"""The stores every contract suite runs on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: Callable[[], str]
) -> str:
    """ "memory", or the URL of an empty SQLite file or PostgreSQL database of this test's own."""
    # Sync on purpose: the factory runs its own event loop.
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store/tasks.db"
    if request.param == "postgres":
        return pg_database_factory()
    return "memory"
