"""The CallbackStore port (completion webhooks, decision 23) on every store: memory, SQLite and
PostgreSQL (the ``backend`` fixture of test_repository_contract)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from taskflow.domain.deliveries import Delivery, DueCallback
from taskflow.domain.errors import DuplicateTask, IdempotencyKeyReused, TaskNotFound
from taskflow.domain.model import Task, TaskError, TaskStatus
from taskflow.domain.ports import CallbackStore
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_changes_contract import retried
from tests.contracts.test_repository_contract import Backend, new_task, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test

URL = "https://hooks.example.com/done"
LEASE = 30.0


def store_of(backend: Backend) -> CallbackStore:
    store: CallbackStore = backend.repo.callback_store()  # type: ignore[attr-defined]
    return store


async def finished(backend: Backend, task: Task) -> Task:
    """``task`` (stored) claimed and succeeded."""
    [claimed] = await backend.repo.claim([task.id], worker_id="w", lease_seconds=60)
    done = claimed.succeed(token(claimed), {"ok": True}, now=backend.now())
    await backend.repo.save(done)
    return done


async def hooked(backend: Backend, **options: Any) -> Task:
    """A task stored with a callback to URL."""
    task = new_task(backend.now(), **options)
    await store_of(backend).add([task], {task.id: URL})
    return task


def later(backend: Backend, seconds: float = 0.0) -> datetime:
    """Past every instant stored so far (on the backend's clock), by ``seconds`` more."""
    return backend.now() + timedelta(seconds=1 + seconds)


def tried(due: DueCallback, status_code: int | None, at: datetime) -> Delivery:
    error = None if status_code == 200 else "no"
    return Delivery(due.attempt, at, status_code, error)


async def test_tasks_and_callbacks_are_stored_together_and_read_back(backend: Backend) -> None:
    store = store_of(backend)
    with_url, without = new_task(backend.now()), new_task(backend.now())
    stored, replayed = await store.add([with_url, without], {with_url.id: URL})
    assert ([t.id for t in stored], replayed) == ([with_url.id, without.id], False)
    assert (await backend.repo.get(without.id)).status is TaskStatus.PENDING
    assert await store.deliveries(with_url.id) == (URL, [])
    assert await store.deliveries(without.id) == (None, [])
    with pytest.raises(TaskNotFound):
        await store.deliveries(uuid.uuid4())


async def test_a_duplicate_task_stores_neither_it_nor_any_callback(backend: Backend) -> None:
    store = store_of(backend)
    taken = await hooked(backend)
    fresh = new_task(backend.now())
    with pytest.raises(DuplicateTask):
        await store.add([fresh, taken], {fresh.id: URL, taken.id: "https://other.example.com/"})
    with pytest.raises(TaskNotFound):
        await store.deliveries(fresh.id)
    assert await store.deliveries(taken.id) == (URL, [])


async def test_an_idempotent_add_replays_and_refuses_another_body(backend: Backend) -> None:
    store = store_of(backend)
    task = new_task(backend.now())
    await store.add([task], {task.id: URL}, key="k", request_hash="h1")
    twin = new_task(backend.now())
    stored, replayed = await store.add([twin], {twin.id: URL}, key="k", request_hash="h1")
    assert ([t.id for t in stored], replayed) == ([task.id], True)
    with pytest.raises(TaskNotFound):
        await store.deliveries(twin.id)
    with pytest.raises(IdempotencyKeyReused):
        await store.add([new_task(backend.now())], {}, key="k", request_hash="h2")


async def test_a_callback_is_due_only_once_its_task_is_final_and_then_to_one_caller(
    backend: Backend,
) -> None:
    store, other = store_of(backend), backend.another().callback_store()  # type: ignore[attr-defined]
    task = await hooked(backend)
    assert await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE) == []
    done = await finished(backend, task)

    [due] = await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE)
    assert (due.task.id, due.task.status, due.task.version) == (task.id, done.status, done.version)
    assert (due.url, due.tries, due.attempt) == (URL, 0, 1)
    assert due.message_id.startswith("msg_")
    assert await other.claim_due(now=later(backend), limit=10, lease_seconds=LEASE) == []
    # Once the lease has run out, another deliverer takes it (the same message) and the first
    # one's record is refused.
    [again] = await other.claim_due(now=later(backend, LEASE + 1), limit=10, lease_seconds=LEASE)
    assert again.message_id == due.message_id
    assert not await store.record(due, tried(due, 200, later(backend)), retry_at=None)
    assert await other.record(again, tried(again, 200, later(backend)), retry_at=None)


async def test_a_failed_try_is_due_again_at_its_retry_time_as_the_same_message(
    backend: Backend,
) -> None:
    store = store_of(backend)
    await finished(backend, await hooked(backend))
    [first] = await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE)
    assert await store.record(first, tried(first, 500, later(backend)), retry_at=later(backend, 60))

    assert await store.claim_due(now=later(backend, 30), limit=10, lease_seconds=LEASE) == []
    [second] = await store.claim_due(now=later(backend, 61), limit=10, lease_seconds=LEASE)
    assert (second.message_id, second.tries, second.attempt) == (first.message_id, 1, 2)
    assert await store.record(second, tried(second, 200, later(backend, 61)), retry_at=None)

    assert await store.claim_due(now=later(backend, 3600), limit=10, lease_seconds=LEASE) == []
    url, deliveries = await store.deliveries(first.task.id)
    assert url == URL
    assert [(d.attempt, d.status_code, d.error) for d in deliveries] == [
        (1, 500, "no"),
        (2, 200, None),
    ]


async def test_a_task_that_ends_again_after_a_manual_retry_is_called_back_again(
    backend: Backend,
) -> None:
    store = store_of(backend)
    task = await hooked(backend, max_retries=0)
    [claimed] = await backend.repo.claim([task.id], worker_id="w", lease_seconds=60)
    failed = claimed.fail(token(claimed), TaskError("E", "no"), now=backend.now(), rand=0.5)
    await backend.repo.save(failed)
    [first] = await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE)
    assert first.task.status is TaskStatus.FAILED
    assert await store.record(first, tried(first, 200, later(backend)), retry_at=None)

    assert await backend.repo.save_changed([retried(failed, backend.now())]) == {task.id}
    assert await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE) == []
    done = await finished(backend, await backend.repo.get(task.id))

    [second] = await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE)
    assert (second.task.status, second.task.version) == (TaskStatus.SUCCESS, done.version)
    assert second.message_id != first.message_id
    assert (second.tries, second.attempt) == (0, 2)


async def test_only_due_callbacks_come_and_at_most_the_limit(backend: Backend) -> None:
    store = store_of(backend)
    for _ in range(3):
        await finished(backend, await hooked(backend))
    await hooked(backend)  # still PENDING
    first = await store.claim_due(now=later(backend), limit=2, lease_seconds=LEASE)
    rest = await store.claim_due(now=later(backend), limit=10, lease_seconds=LEASE)
    assert (len(first), len(rest)) == (2, 1)
    assert not {d.task.id for d in first} & {d.task.id for d in rest}
