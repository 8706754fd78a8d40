"""TaskRepository.prune_finished: the retention job's delete, on every backend (memory, SQLite,
PostgreSQL; the ``backend`` fixture of test_repository_contract).

The cutoffs are arguments and ``finished_at`` is whatever the finishing transition was given,
so "finished a month ago" is written directly, on the stores' real clocks too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from taskflow.adapters.sql.engine import create_engine
from taskflow.adapters.sql.schema import attempts, metadata, task_changes
from taskflow.adapters.sql.schema import tasks as tasks_table
from taskflow.domain.attempts import AttemptOutcome
from taskflow.domain.changes import ChangeAction, TaskChange
from taskflow.domain.errors import TaskNotFound
from taskflow.domain.model import FINAL, Task, TaskError, TaskStatus
from taskflow.domain.retention import Cutoffs, Retention
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_repository_contract import Backend, claim_one, ending, new_task, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test

DAY = timedelta(days=1)


async def finished(
    backend: Backend, status: TaskStatus, *, at: datetime, queue: str = "default"
) -> Task:
    """A stored task that reached ``status`` at ``at`` (its attempt recorded, if it ran)."""
    task = new_task(at, queue=queue, max_retries=0)
    if status is TaskStatus.CANCELLED:
        await backend.repo.add(task)
        done = task.cancel(now=at)
        await backend.repo.save(done)
        return done
    claimed = await claim_one(backend, task)
    if status is TaskStatus.SUCCESS:
        done = claimed.succeed(token(claimed), {"ok": True}, now=at)
        outcome = AttemptOutcome.SUCCESS
    else:
        done = claimed.fail(token(claimed), TaskError("E", "no"), now=at, rand=0.5)
        outcome = AttemptOutcome.FAILED
    await backend.repo.save(done, closing=ending(claimed, done, outcome))
    assert done.status is status
    return done


async def kept(backend: Backend, *tasks: Task) -> list[bool]:
    """For each task, whether the store still has it."""
    found = {t.id for t in await backend.repo.get_many([t.id for t in tasks])}
    return [t.id in found for t in tasks]


async def test_only_final_tasks_finished_before_the_cutoff_go(backend: Backend) -> None:
    now = backend.now()
    old = now - 30 * DAY
    gone = [await finished(backend, s, at=old) for s in sorted(FINAL)]
    recent = await finished(backend, TaskStatus.SUCCESS, at=now - DAY)
    waiting = new_task(old)  # PENDING for a month: unfinished, never pruned
    await backend.repo.add(waiting)
    running = await claim_one(backend, new_task(old))

    assert await backend.repo.prune_finished(Cutoffs(now - 7 * DAY), limit=100) == 3

    assert await kept(backend, *gone) == [False, False, False]
    assert await kept(backend, recent, waiting, running) == [True, True, True]


async def test_attempts_and_changes_go_with_their_task(backend: Backend, store_url: str) -> None:
    old = backend.now() - 30 * DAY
    failed = await finished(backend, TaskStatus.FAILED, at=old)
    again = failed.retry(now=old, payload={"n": 2})
    assert await backend.repo.save_changed(
        [(again, TaskChange.between(failed, again, ChangeAction.RETRY, by="ana"))]
    ) == {failed.id}
    [claimed] = await backend.repo.claim([failed.id], worker_id="w-2", lease_seconds=60)
    done = claimed.succeed(token(claimed), None, now=old)
    await backend.repo.save(done, closing=ending(claimed, done, AttemptOutcome.SUCCESS))
    assert len(await backend.repo.attempts(failed.id)) == 2
    assert len(await backend.repo.changes(failed.id)) == 1

    assert await backend.repo.prune_finished(Cutoffs(backend.now() - DAY), limit=10) == 1

    with pytest.raises(TaskNotFound):
        await backend.repo.attempts(failed.id)
    with pytest.raises(TaskNotFound):
        await backend.repo.changes(failed.id)
    if store_url != "memory":
        assert await _rows_left(store_url) == {"tasks": 0, "attempts": 0, "task_changes": 0}


async def test_each_queue_keeps_its_tasks_as_long_as_its_override_says(backend: Backend) -> None:
    now = backend.now()
    retention = Retention(days=7, days_by_queue={"audit": 90, "mail": 1, "legal": 0})
    stored: dict[tuple[str, int], Task] = {}
    for queue in ("default", "audit", "mail", "legal"):
        for age in (3, 30, 400):
            task = await finished(backend, TaskStatus.SUCCESS, at=now - age * DAY, queue=queue)
            stored[queue, age] = task

    assert await backend.repo.prune_finished(retention.cutoffs(now), limit=100) == 6

    still = await kept(backend, *stored.values())
    left = sorted(key for key, present in zip(stored, still, strict=True) if present)
    assert left == [("audit", 3), ("audit", 30), ("default", 3)] + [
        ("legal", age) for age in (3, 30, 400)
    ]


async def test_a_call_deletes_at_most_its_limit_oldest_first(backend: Backend) -> None:
    now = backend.now()
    stored = [
        await finished(backend, TaskStatus.SUCCESS, at=now - (10 + n) * DAY) for n in range(5)
    ]
    oldest_first = stored[::-1]
    cutoffs = Cutoffs(now - 7 * DAY)

    assert await backend.repo.prune_finished(cutoffs, limit=2) == 2
    assert await kept(backend, *oldest_first) == [False, False, True, True, True]
    assert await backend.repo.prune_finished(cutoffs, limit=2) == 2
    assert await backend.repo.prune_finished(cutoffs, limit=2) == 1
    assert await backend.repo.prune_finished(cutoffs, limit=2) == 0
    assert await kept(backend, *stored) == [False] * 5


async def test_keeping_everything_deletes_nothing(backend: Backend) -> None:
    now = backend.now()
    task = await finished(backend, TaskStatus.SUCCESS, at=now - 400 * DAY)
    assert Retention(days=0).keeps_everything
    assert await backend.repo.prune_finished(Retention(days=0).cutoffs(now), limit=10) == 0
    assert await backend.repo.prune_finished(Cutoffs(None, {"other": now}), limit=10) == 0
    assert await kept(backend, task) == [True]


async def test_concurrent_pruners_delete_each_task_once(backend: Backend) -> None:
    now = backend.now()
    stored = [
        await finished(backend, TaskStatus.SUCCESS, at=now - (10 + n) * DAY) for n in range(9)
    ]
    cutoffs = Cutoffs(now - 7 * DAY)
    pruners = [backend.repo, backend.another(), backend.another()]

    counts = await asyncio.gather(*(p.prune_finished(cutoffs, limit=3) for p in pruners))

    assert sum(counts) == 9 - sum(await kept(backend, *stored))
    while await backend.repo.prune_finished(cutoffs, limit=3):
        pass
    assert await kept(backend, *stored) == [False] * 9


def test_every_table_that_refers_to_a_task_is_emptied_with_it() -> None:
    """The retention job deletes task rows only: a table referring to them must cascade."""
    for table in metadata.tables.values():
        for key in table.foreign_keys:
            if key.column.table is tasks_table:
                assert key.ondelete == "CASCADE", f"{table.name}.{key.parent.name}"


async def _rows_left(store_url: str) -> dict[str, int]:
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            return {
                table.name: await conn.scalar(select(func.count()).select_from(table))
                for table in (tasks_table, attempts, task_changes)
            }
    finally:
        await engine.dispose()


async def test_a_job_is_held_by_one_caller_at_a_time(backend: Backend) -> None:
    other = backend.another()
    async with (
        backend.repo.exclusively("job") as first,
        other.exclusively("job") as second,
        other.exclusively("other job") as third,
    ):
        assert (first, second, third) == (True, False, True)
    async with other.exclusively("job") as after:
        assert after
