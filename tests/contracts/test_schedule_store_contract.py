"""The ScheduleStore contract, on the in-memory fake, SQLite and PostgreSQL.

The line that matters most: a tick written twice, by two stores on one database as by two
worker processes, creates one task. The second write changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryScheduleStore, InMemoryTaskRepository
from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.engine import create_engine, migrate
from taskflow.adapters.sql.schedules import SqlScheduleStore
from taskflow.domain.errors import TaskNotFound
from taskflow.domain.model import Task
from taskflow.domain.ports import ScheduleStore, TaskRepository
from taskflow.domain.queries import TaskQuery

NOW = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
TICK = datetime(2030, 1, 1, 12, 1, tzinfo=UTC)


@dataclass
class Stores:
    repo: TaskRepository
    another: Callable[[], ScheduleStore]  # a second store on the same database (a 2nd process)


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[Stores]:
    if store_url == "memory":
        repo = InMemoryTaskRepository(SystemClock())
        shared = InMemoryScheduleStore(repo)
        yield Stores(repo, lambda: shared)
        return
    await migrate(store_url)
    engines: list[AsyncEngine] = []

    def engine() -> AsyncEngine:
        engines.append(create_engine(store_url))
        return engines[-1]

    repo = SqlTaskRepository(engine())
    yield Stores(repo, lambda: SqlScheduleStore(engine()))
    await repo.close()
    for each in engines:
        await each.dispose()


def _task(tick: datetime = TICK) -> Task:
    return Task.new(
        id=uuid.uuid4(),
        type="reports.build",
        payload={"n": 1},
        now=NOW,
        metadata={"schedule": "nightly", "tick": tick.isoformat()},
    )


async def _ticked(repo: TaskRepository) -> list[Task]:
    return await repo.find(TaskQuery(), after=None, limit=100)


async def test_ensure_stores_a_new_schedule_once_unpaused(stores: Stores) -> None:
    store = stores.another()
    assert await store.states(["nightly"]) == {}
    await store.ensure(["nightly", "hourly"], since=NOW)
    await stores.another().ensure(["nightly"], since=NOW + timedelta(hours=1))  # changes nothing
    states = await store.states(["nightly", "hourly", "unknown"])
    assert set(states) == {"nightly", "hourly"}
    assert states["nightly"].since == NOW
    assert states["nightly"].paused is False
    assert states["nightly"].last_tick_at is None


async def test_a_tick_is_written_with_its_task(stores: Stores) -> None:
    store = stores.another()
    await store.ensure(["nightly"], since=NOW)
    task = _task()
    assert await store.add_tick("nightly", TICK, task) is True
    assert (await stores.repo.get(task.id)).metadata == task.metadata
    assert (await store.states(["nightly"]))["nightly"].last_tick_at == TICK


async def test_the_same_tick_written_again_creates_no_second_task(stores: Stores) -> None:
    first, second = stores.another(), stores.another()
    await first.ensure(["nightly"], since=NOW)
    assert await first.add_tick("nightly", TICK, _task()) is True
    loser = _task()
    assert await second.add_tick("nightly", TICK, loser) is False
    with pytest.raises(TaskNotFound):
        await stores.repo.get(loser.id)
    assert len(await _ticked(stores.repo)) == 1


async def test_racing_writers_of_one_tick_create_one_task(stores: Stores) -> None:
    writers = [stores.another() for _ in range(4)]
    await writers[0].ensure(["nightly"], since=NOW)
    won = await asyncio.gather(*(w.add_tick("nightly", TICK, _task()) for w in writers))
    assert sorted(won) == [False, False, False, True]
    assert len(await _ticked(stores.repo)) == 1


async def test_an_older_tick_written_late_keeps_the_latest_as_last(stores: Stores) -> None:
    store = stores.another()
    await store.ensure(["nightly"], since=NOW)
    later = TICK + timedelta(minutes=1)
    assert await store.add_tick("nightly", later, _task(later)) is True
    assert await store.add_tick("nightly", TICK, _task()) is True
    assert (await store.states(["nightly"]))["nightly"].last_tick_at == later


async def test_a_paused_or_unknown_schedule_takes_no_tick(stores: Stores) -> None:
    store = stores.another()
    await store.ensure(["nightly"], since=NOW)
    paused = await store.set_paused("nightly", True, now=NOW)
    assert paused is not None
    assert paused.paused
    assert await store.add_tick("nightly", TICK, _task()) is False
    assert await store.add_tick("unknown", TICK, _task()) is False
    assert await _ticked(stores.repo) == []


async def test_resume_moves_since_only_when_the_schedule_was_paused(stores: Stores) -> None:
    store = stores.another()
    await store.ensure(["nightly"], since=NOW)
    later = NOW + timedelta(hours=1)
    still = await store.set_paused("nightly", False, now=later)
    assert still is not None
    assert still.since == NOW
    await store.set_paused("nightly", True, now=later)
    resumed = await store.set_paused("nightly", False, now=later + timedelta(hours=1))
    assert resumed is not None
    assert (resumed.paused, resumed.since) == (False, later + timedelta(hours=1))
    assert await store.set_paused("unknown", True, now=later) is None
