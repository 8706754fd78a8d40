"""The QueueStore contract, on the in-memory fake, SQLite and PostgreSQL.

What it promises: pausing is stored, idempotent and shared by every store on the database;
``processing`` counts the running tasks per queue; ``throughput`` counts the tasks that became
SUCCESS or FAILED at or after a given time, per queue (CANCELLED is neither).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.adapters.memory_fleet import InMemoryQueueStore
from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.engine import create_engine, migrate
from taskflow.adapters.sql.queues import SqlQueueStore
from taskflow.domain.fleet import Throughput
from taskflow.domain.model import Lease, Task, TaskError
from taskflow.domain.ports import QueueStore, TaskRepository

NOW = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Stores:
    repo: TaskRepository
    another: Callable[[], QueueStore]  # a second store on the same database (a 2nd process)


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[Stores]:
    if store_url == "memory":
        repo = InMemoryTaskRepository(SystemClock())
        shared = InMemoryQueueStore(repo)
        yield Stores(repo, lambda: shared)
        return
    await migrate(store_url)
    engines: list[AsyncEngine] = []

    def engine() -> AsyncEngine:
        engines.append(create_engine(store_url))
        return engines[-1]

    repo = SqlTaskRepository(engine())
    yield Stores(repo, lambda: SqlQueueStore(engine()))
    await repo.close()
    for each in engines:
        await each.dispose()


def pending(queue: str, now: datetime = NOW) -> Task:
    return Task.new(id=uuid.uuid4(), type="t.job", payload={}, now=now, queue=queue)


def running(queue: str, now: datetime = NOW) -> Task:
    lease = Lease(uuid.uuid4(), "w-test", now + timedelta(seconds=60))
    return pending(queue, now).claim(lease, now=now)


def finished(queue: str, at: datetime, *, failed: bool) -> Task:
    task = running(queue, at)
    assert task.lease is not None
    if failed:
        error = TaskError("E", "no")
        return task.fail(task.lease.token, error, now=at, rand=0.5, final=True)
    return task.succeed(task.lease.token, {"ok": True}, now=at)


async def test_a_pause_is_stored_for_every_store_and_a_resume_removes_it(stores: Stores) -> None:
    one, other = stores.another(), stores.another()
    assert await one.paused() == frozenset()
    await one.set_paused("mail", True, now=NOW)
    await one.set_paused("mail", True, now=NOW + timedelta(seconds=1))  # idempotent
    await one.set_paused("never-used", True, now=NOW)
    assert await other.paused() == {"mail", "never-used"}
    await other.set_paused("mail", False, now=NOW)
    await other.set_paused("mail", False, now=NOW)  # idempotent
    assert await one.paused() == {"never-used"}


async def test_processing_counts_running_tasks_per_queue(stores: Stores) -> None:
    store = stores.another()
    assert await store.processing() == {}
    for task in [running("a"), running("a"), running("b"), pending("c")]:
        await stores.repo.add(task)
    await stores.repo.add(finished("d", NOW, failed=False))
    assert await store.processing() == {"a": 2, "b": 1}


async def test_throughput_counts_what_succeeded_or_failed_since(stores: Stores) -> None:
    store = stores.another()
    since = NOW - timedelta(seconds=60)
    tasks = [
        finished("a", NOW, failed=False),
        finished("a", since, failed=False),  # at the boundary: counted
        finished("a", NOW, failed=True),
        finished("a", since - timedelta(milliseconds=1), failed=False),  # too old
        finished("b", NOW, failed=True),
        pending("c").cancel(now=NOW),  # cancelled: neither
        running("d"),
    ]
    for task in tasks:
        await stores.repo.add(task)
    assert await store.throughput(since) == {
        "a": Throughput(succeeded=2, failed=1),
        "b": Throughput(succeeded=0, failed=1),
    }
