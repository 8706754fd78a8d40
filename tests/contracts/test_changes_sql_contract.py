"""TaskRepository.save_changed on the SQL stores only: a value PostgreSQL cannot keep (U+0000)
is refused on both SQL stores; the in-memory fake keeps any Python value, so it is not run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskflow.domain.errors import UnstorableValue
from taskflow.domain.model import TaskStatus
from tests.conftest import Databases
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.conftest import sql_store
from tests.contracts.test_changes_contract import failed, retried
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


async def test_a_payload_the_store_cannot_keep_is_refused_and_nothing_is_written(
    backend: Backend,
) -> None:
    task = await failed(backend)
    with pytest.raises(UnstorableValue):
        await backend.repo.save_changed([retried(task, backend.now(), payload={"s": "a\x00"})])
    assert (await backend.repo.get(task.id)).status is TaskStatus.FAILED
    assert await backend.repo.changes(task.id) == []
