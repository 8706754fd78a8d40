"""A task's traceparent (decision 28) is kept by every store, through every way in and out.

Written once at creation; every later version of the task (a claim, an outcome, a retry)
carries it unchanged, and a task submitted with tracing off keeps None.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from taskflow.domain.changes import ChangeAction, TaskChange
from taskflow.domain.model import Task, TaskError
from taskflow.domain.queries import TaskQuery
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_repository_contract import Backend, new_task, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def traced(now: datetime, traceparent: str | None = TRACEPARENT) -> Task:
    return new_task(now, traceparent=traceparent)


@pytest.mark.parametrize("traceparent", [TRACEPARENT, None])
async def test_the_traceparent_comes_back_from_every_read(
    backend: Backend, traceparent: str | None
) -> None:
    task = traced(backend.now(), traceparent)
    await backend.repo.add(task)
    assert (await backend.repo.get(task.id)).traceparent == traceparent
    assert [t.traceparent for t in await backend.repo.get_many([task.id])] == [traceparent]
    page = await backend.repo.find(TaskQuery(), after=None, limit=10)
    assert [t.traceparent for t in page if t.id == task.id] == [traceparent]


async def test_the_traceparent_outlives_claims_outcomes_and_retries(backend: Backend) -> None:
    repo = backend.repo
    task = traced(backend.now())
    await repo.add(task)
    [claimed] = await repo.claim([task.id], worker_id="w-1", lease_seconds=60)
    assert claimed.traceparent == TRACEPARENT
    error = TaskError("ValueError", "boom")
    failed = claimed.fail(token(claimed), error, now=backend.now(), rand=0.0, final=True)
    await repo.save(failed)
    stored = await repo.get(task.id)
    retried = stored.retry(now=backend.now())
    change = TaskChange.between(stored, retried, ChangeAction.RETRY, by="test")
    assert await repo.save_changed([(retried, change)]) == {task.id}
    [again] = await repo.claim([task.id], worker_id="w-2", lease_seconds=60)
    assert again.attempts == 2
    assert again.traceparent == TRACEPARENT
    assert (await repo.get(task.id)).traceparent == TRACEPARENT


async def test_the_traceparent_is_kept_by_a_batch_and_an_idempotent_submission(
    backend: Backend,
) -> None:
    now = backend.now()
    batch = [traced(now), traced(now, None)]
    await backend.repo.add_many(batch)
    keyed = [traced(now)]
    stored, replayed = await backend.repo.add_idempotent(
        keyed, key=f"k-{uuid.uuid4()}", request_hash="h"
    )
    assert not replayed
    got = await backend.repo.get_many([t.id for t in [*batch, *stored]])
    assert {t.id: t.traceparent for t in got} == {
        batch[0].id: TRACEPARENT,
        batch[1].id: None,
        keyed[0].id: TRACEPARENT,
    }


async def test_the_traceparent_is_kept_for_a_task_with_a_callback(backend: Backend) -> None:
    task = traced(backend.now())
    store = backend.repo.callback_store()  # type: ignore[attr-defined]
    await store.add([task], {task.id: "https://example.com/hook"})
    assert (await backend.repo.get(task.id)).traceparent == TRACEPARENT
