"""A task's tenant (decision 36) on every store: kept through every write, and every listing,
count and per-minute tally made within one tenant (or across all, for the operator's jobs)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.model import Task, TaskError, TaskStatus
from taskflow.domain.queries import Position, TaskCount, TaskQuery
from taskflow.domain.throughput import window_start
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_repository_contract import Backend, new_task, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test

ACME, GLOBEX = "acme", "globex"


def of(backend: Backend, tenant: str, *, queue: str = "default", seconds: float = 0) -> Task:
    created = backend.now() - timedelta(minutes=10) + timedelta(seconds=seconds)
    return new_task(created, tenant=tenant, queue=queue)


async def test_the_tenant_comes_back_from_every_read_and_outlives_every_write(
    backend: Backend,
) -> None:
    repo = backend.repo
    task = new_task(backend.now(), tenant=ACME)
    await repo.add(task)
    assert (await repo.get(task.id)).tenant == ACME
    [claimed] = await repo.claim([task.id], worker_id="w-1", lease_seconds=60)
    assert claimed.tenant == ACME
    failed = claimed.fail(token(claimed), TaskError("E", "x"), now=backend.now(), rand=0.0)
    await repo.save(failed)
    assert [t.tenant for t in await repo.get_many([task.id])] == [ACME]
    plain = new_task(backend.now())
    await repo.add(plain)
    assert (await repo.get(plain.id)).tenant == DEFAULT_TENANT


async def test_a_listing_holds_its_tenants_tasks_only_page_after_page(backend: Backend) -> None:
    mine = [of(backend, ACME, seconds=s) for s in range(5)]
    others = [of(backend, GLOBEX, seconds=s + 0.5) for s in range(5)]
    plain = [of(backend, DEFAULT_TENANT, seconds=s + 0.25) for s in range(3)]
    await backend.repo.add_many([*mine, *others, *plain])

    async def listed(tenant: str | None, limit: int) -> list[Task]:
        found: list[Task] = []
        after: Position | None = None
        while True:
            page = await backend.repo.find(TaskQuery(tenant=tenant), after=after, limit=limit)
            if not page:
                return found
            found.extend(page)
            after = Position.of(page[-1])

    assert {t.id for t in await listed(ACME, 2)} == {t.id for t in mine}
    assert {t.id for t in await listed(GLOBEX, 3)} == {t.id for t in others}
    assert {t.id for t in await listed(DEFAULT_TENANT, 2)} == {t.id for t in plain}
    assert len(await listed(None, 4)) == 13  # the operator's own jobs: every tenant
    narrowed = TaskQuery(tenant=ACME, statuses=frozenset({TaskStatus.PENDING}))
    assert len(await backend.repo.find(narrowed, after=None, limit=100)) == 5


async def test_counts_are_made_within_a_tenant(backend: Backend) -> None:
    repo = backend.repo
    await repo.add_many(
        [of(backend, ACME, queue="mail"), of(backend, ACME), of(backend, GLOBEX, queue="mail")]
    )
    running = of(backend, GLOBEX)
    await repo.add(running)
    await repo.claim([running.id], worker_id="w-1", lease_seconds=60)
    assert await repo.stats(tenant=ACME) == [
        TaskCount("default", "test.job", TaskStatus.PENDING, 1),
        TaskCount("mail", "test.job", TaskStatus.PENDING, 1),
    ]
    assert await repo.stats(tenant=GLOBEX) == [
        TaskCount("default", "test.job", TaskStatus.PROCESSING, 1),
        TaskCount("mail", "test.job", TaskStatus.PENDING, 1),
    ]
    assert await repo.stats(tenant=DEFAULT_TENANT) == []
    assert sum(c.count for c in await repo.stats(tenant=None)) == 4
    assert await repo.count_unfinished(ACME) == 2
    assert await repo.count_unfinished(GLOBEX) == 2
    assert await repo.count_unfinished(DEFAULT_TENANT) == 0
    assert await repo.count_unfinished("initech") == 0


@pytest.mark.parametrize("tenant", [ACME, DEFAULT_TENANT])
async def test_a_finished_task_leaves_the_unfinished_count_and_enters_its_tenants_minutes(
    backend: Backend, tenant: str
) -> None:
    repo = backend.repo
    since = window_start(backend.now(), 5)
    task = new_task(backend.now(), tenant=tenant)
    await repo.add(task)
    stranger = new_task(backend.now(), tenant=GLOBEX)
    await repo.add(stranger)
    assert await repo.count_unfinished(tenant) == 1
    await repo.save(task.cancel(now=backend.now()))
    await repo.save(stranger.cancel(now=backend.now()))
    assert await repo.count_unfinished(tenant) == 0
    mine = await repo.finished_per_minute(since, tenant=tenant)
    assert sum(m.count for m in mine) == 1
    everyone = await repo.finished_per_minute(since, tenant=None)
    assert sum(m.count for m in everyone) == 2
