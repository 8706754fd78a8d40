"""TaskRepository.save_changed and .changes: a person's change to a task and its record, on
every backend (the ``backend`` fixture of test_repository_contract: memory, SQLite,
PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest

from taskflow.domain.changes import ChangeAction, TaskChange
from taskflow.domain.errors import TaskNotFound
from taskflow.domain.model import Task, TaskError, TaskStatus
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_repository_contract import Backend, assert_same, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test


async def failed(backend: Backend, payload: dict[str, object] | None = None) -> Task:
    """A stored task that ran once and FAILED, with no retry left."""
    now = backend.now()
    task = Task.new(
        id=uuid.uuid4(), type="test.job", payload=payload or {"n": 1}, now=now, max_retries=0
    )
    await backend.repo.add(task)
    [claimed] = await backend.repo.claim([task.id], worker_id="w-1", lease_seconds=60)
    done = claimed.fail(token(claimed), TaskError("E", "no"), now=backend.now(), rand=0.5)
    await backend.repo.save(done)
    assert done.status is TaskStatus.FAILED
    return done


def retried(
    task: Task, at: datetime, *, payload: dict[str, object] | None = None, by: str = "ana"
) -> tuple[Task, TaskChange]:
    again = task.retry(now=at, payload=payload)
    return again, TaskChange.between(task, again, ChangeAction.RETRY, by=by)


async def test_a_retry_with_a_new_payload_stores_it_and_records_who_and_what(
    backend: Backend,
) -> None:
    task = await failed(backend, {"email": "old@example.com"})
    again, change = retried(task, backend.now(), payload={"email": "new@example.com"})

    assert await backend.repo.save_changed([(again, change)]) == {task.id}

    assert_same(await backend.repo.get(task.id), again)
    [recorded] = await backend.repo.changes(task.id)
    assert recorded == change
    assert (recorded.by, recorded.after_attempt) == ("ana", 1)
    assert recorded.payload_before == {"email": "old@example.com"}
    assert recorded.payload_after == {"email": "new@example.com"}


async def test_a_retry_keeping_the_payload_records_no_payload(backend: Backend) -> None:
    task = await failed(backend)
    again, change = retried(task, backend.now())
    await backend.repo.save_changed([(again, change)])
    [recorded] = await backend.repo.changes(task.id)
    assert (recorded.payload_before, recorded.payload_after) == (None, None)
    assert (await backend.repo.get(task.id)).payload == {"n": 1}


async def test_a_stale_change_is_neither_written_nor_recorded(backend: Backend) -> None:
    task = await failed(backend)
    first = retried(task, backend.now(), by="first")
    second = retried(task, backend.now(), payload={"n": 2}, by="second")
    assert await backend.repo.save_changed([first]) == {task.id}

    assert await backend.repo.save_changed([second]) == set()

    assert (await backend.repo.get(task.id)).payload == {"n": 1}
    assert [c.by for c in await backend.repo.changes(task.id)] == ["first"]


async def test_one_write_takes_the_current_and_skips_the_stale_and_the_unknown(
    backend: Backend,
) -> None:
    current, stale = await failed(backend), await failed(backend)
    await backend.repo.save_changed([retried(stale, backend.now())])
    ghost = await failed(backend)
    ghost_again = retried(ghost, backend.now())
    ghost_again = (
        Task.new(id=uuid.uuid4(), type="x", payload={}, now=backend.now()),
        ghost_again[1],
    )

    written = await backend.repo.save_changed(
        [retried(current, backend.now()), retried(stale, backend.now()), ghost_again]
    )

    assert written == {current.id}
    assert len(await backend.repo.changes(stale.id)) == 1


async def test_racing_changes_of_one_task_write_one(backend: Backend) -> None:
    task = await failed(backend)
    other = backend.another()
    results = await asyncio.gather(
        backend.repo.save_changed([retried(task, backend.now(), by="a")]),
        other.save_changed([retried(task, backend.now(), by="b")]),
    )
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(await backend.repo.changes(task.id)) == 1


async def test_changes_of_an_unknown_task_is_not_found(backend: Backend) -> None:
    with pytest.raises(TaskNotFound):
        await backend.repo.changes(uuid.uuid4())


async def test_changes_come_oldest_first(backend: Backend) -> None:
    task = await failed(backend)
    again, change = retried(task, backend.now(), by="first")
    await backend.repo.save_changed([(again, change)])
    [claimed] = await backend.repo.claim([task.id], worker_id="w-2", lease_seconds=60)
    done = claimed.fail(token(claimed), TaskError("E", "no"), now=backend.now(), rand=0.5)
    await backend.repo.save(done)
    await backend.repo.save_changed([retried(done, backend.now(), by="second")])

    recorded = await backend.repo.changes(task.id)
    assert [(c.by, c.after_attempt) for c in recorded] == [("first", 1), ("second", 2)]
