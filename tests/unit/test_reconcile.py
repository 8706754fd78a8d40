"""Reconciliation on the in-memory adapters: the queue gets back what it lost, and only that."""

from __future__ import annotations

from uuid import UUID

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.services import ExecutionService, TaskService
from tests.clocks import FakeClock
from tests.unit.test_services import (
    PLAIN,
    QUEUES,
    START,
    execution_service,
    task_service,
)


def _setup() -> tuple[TaskService, ExecutionService, InMemoryTaskQueue, InMemoryTaskRepository]:
    clock = FakeClock(START)
    repo, queue = InMemoryTaskRepository(clock), InMemoryTaskQueue(clock)
    return task_service(repo, queue, clock), execution_service(repo, queue, clock, "w"), queue, repo


async def _popped(worker: ExecutionService) -> set[UUID]:
    return {t.id for t in await worker.claim(QUEUES, limit=100, timeout=0)}


async def test_a_queue_that_lost_everything_is_refilled_and_marked() -> None:
    service, _, _, repo = _setup()
    submitted = {(await service.submit(PLAIN)).id for _ in range(3)}
    clock = FakeClock(START)
    fresh = InMemoryTaskQueue(clock)  # what a restarted, empty queue looks like
    worker = execution_service(repo, fresh, clock, "w2")
    step = await worker.reconcile(after=None)
    assert step.resync is True
    assert step.pushed == 3
    assert await fresh.intact() is True
    assert await _popped(worker) == submitted


async def test_an_intact_queue_gets_only_the_missing_ids() -> None:
    service, worker, queue, repo = _setup()
    await queue.mark_intact()
    kept, lost = await service.submit(PLAIN), await service.submit(PLAIN)
    # Lose one id the way a worker dying between pop and claim would.
    await queue.pop(QUEUES, limit=2, timeout=0)
    pending = await repo.pending(after=None, limit=10)
    await queue.push([d for d in pending if d.task_id == kept.id])
    step = await worker.reconcile(after=None)
    assert (step.resync, step.pushed, step.cursor) == (False, 1, None)
    assert await _popped(worker) == {kept.id, lost.id}


async def test_reconciliation_pages_through_a_large_backlog() -> None:
    service, worker, queue, _ = _setup()
    await queue.mark_intact()
    ids = [(await service.submit(PLAIN)).id for _ in range(5)]
    step = await worker.reconcile(after=None, limit=2)
    assert step.cursor == sorted(ids)[1]
    step = await worker.reconcile(after=step.cursor, limit=2)
    assert step.cursor == sorted(ids)[3]
    step = await worker.reconcile(after=step.cursor, limit=2)
    assert step.cursor is None  # the last page: start again from the beginning next time
    assert step.pushed == 0  # nothing was missing
