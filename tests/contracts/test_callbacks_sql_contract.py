"""The callbacks tables on the SQL stores only: a deleted task (the retention job deletes old
ones) takes its callback and its deliveries with it, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from taskflow.adapters.sql import create_engine
from taskflow.adapters.sql.schema import callbacks, deliveries, tasks
from tests.conftest import Databases
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.conftest import sql_store
from tests.contracts.test_callbacks_contract import finished, hooked, later, store_of, tried
from tests.contracts.test_repository_contract import Backend

backend = repository_contract.backend


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_database_factory: Databases,
    migrated_sqlite: Path,
) -> str:
    """The SQL stores of tests/contracts/conftest.py's ``store_url``."""
    return sql_store(request.param, tmp_path, pg_database_factory, migrated_sqlite)


async def test_deleting_a_task_deletes_its_callback_and_deliveries(
    backend: Backend, store_url: str
) -> None:
    store = store_of(backend)
    await finished(backend, await hooked(backend))
    [due] = await store.claim_due(now=later(backend), limit=1, lease_seconds=30)
    assert await store.record(due, tried(due, 200, later(backend)), retry_at=None)

    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(tasks).where(tasks.c.id == due.task.id))
            left = [
                await conn.scalar(select(func.count()).select_from(table))
                for table in (callbacks, deliveries)
            ]
    finally:
        await engine.dispose()
    assert left == [0, 0]
