"""Retention: its settings, the cutoffs the domain decides, and the pruner's passes on the
in-memory store (the delete itself is pinned by tests/contracts/test_retention_contract.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.config import ConfigError, Settings
from taskflow.containers import build_container
from taskflow.domain.model import Task
from taskflow.domain.retention import MAX_RETENTION_DAYS, Cutoffs, Retention
from taskflow.domain.services import RetentionService
from taskflow.domain.services.retention import JOB
from taskflow.entrypoints.retention import Pruner
from taskflow.registry import Registry
from tests.clocks import FakeClock

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


# -- settings ---------------------------------------------------------------------------------


def test_finished_tasks_are_kept_seven_days_by_default() -> None:
    settings = Settings.from_env({})
    assert (settings.retention_days, settings.retention_days_by_queue) == (7, {})


def test_days_per_queue_are_read_as_queue_equals_days() -> None:
    settings = Settings.from_env(
        {
            "TASKFLOW_RETENTION_DAYS": "0",
            "TASKFLOW_RETENTION_DAYS_BY_QUEUE": " audit = 90, mail=1,,legal=0 ",
        }
    )
    assert settings.retention_days == 0
    assert settings.retention_days_by_queue == {"audit": 90, "mail": 1, "legal": 0}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASKFLOW_RETENTION_DAYS", "-1"),
        ("TASKFLOW_RETENTION_DAYS", "1.5"),
        ("TASKFLOW_RETENTION_DAYS", str(MAX_RETENTION_DAYS + 1)),
        ("TASKFLOW_RETENTION_DAYS_BY_QUEUE", "audit"),
        ("TASKFLOW_RETENTION_DAYS_BY_QUEUE", "audit=ninety"),
        ("TASKFLOW_RETENTION_DAYS_BY_QUEUE", "audit=-3"),
        ("TASKFLOW_RETENTION_DAYS_BY_QUEUE", "=3"),
        ("TASKFLOW_RETENTION_DAYS_BY_QUEUE", "a queue=3"),
        ("TASKFLOW_RETENTION_DAYS_BY_QUEUE", "audit=1,audit=2"),
    ],
)
def test_a_bad_retention_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable) as raised:
        Settings.from_env({variable: value})
    assert "\n" not in str(raised.value)


def test_the_container_builds_the_retention_of_the_settings() -> None:
    settings = Settings(retention_days=3, retention_days_by_queue={"audit": 30})
    service = build_container(settings, Registry()).retention_service()
    assert service.retention == Retention(days=3, days_by_queue={"audit": 30})


# -- cutoffs ----------------------------------------------------------------------------------


def test_cutoffs_are_now_minus_each_queues_days_and_zero_keeps_for_ever() -> None:
    cutoffs = Retention(days=7, days_by_queue={"audit": 90, "legal": 0}).cutoffs(NOW)
    assert cutoffs.of("default") == cutoffs.of("anything") == NOW - 7 * DAY
    assert cutoffs.of("audit") == NOW - 90 * DAY
    assert cutoffs.of("legal") is None
    assert cutoffs.latest() == NOW - 7 * DAY


def test_only_an_override_can_keep_a_queue_shorter_than_a_default_of_for_ever() -> None:
    retention = Retention(days=0, days_by_queue={"mail": 1})
    assert not retention.keeps_everything
    assert retention.cutoffs(NOW) == Cutoffs(None, {"mail": NOW - DAY})
    assert retention.cutoffs(NOW).latest() == NOW - DAY
    assert Retention(days=0, days_by_queue={"audit": 0}).keeps_everything


# -- the pruner -------------------------------------------------------------------------------


class Store:
    def __init__(self) -> None:
        self.clock = FakeClock(NOW)
        self.repo = InMemoryTaskRepository(self.clock)

    async def finished(self, count: int, *, days_ago: float, queue: str = "default") -> None:
        at = NOW - timedelta(days=days_ago)
        for _ in range(count):
            task = Task.new(id=uuid.uuid4(), type="t.x", payload={}, now=at, queue=queue)
            await self.repo.add(task)
            await self.repo.save(task.cancel(now=at))

    async def count(self) -> int:
        return sum(c.count for c in await self.repo.stats(tenant=None))


async def test_a_pass_deletes_batch_after_batch_until_nothing_is_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    await store.finished(25, days_ago=30)
    await store.finished(4, days_ago=1)
    service = RetentionService(repository=store.repo, clock=store.clock, retention=Retention())
    service.batch = 10
    caplog.set_level(logging.INFO, logger="taskflow.retention")

    assert await Pruner(service).prune() == 25

    assert await store.count() == 4
    [line] = [r for r in caplog.records if r.getMessage() == "retention pruned"]
    assert (line.tasks, line.batches) == (25, 3)  # type: ignore[attr-defined]
    assert line.cutoff == (NOW - 7 * DAY).isoformat()  # type: ignore[attr-defined]
    assert line.duration_s >= 0  # type: ignore[attr-defined]


async def test_a_pass_that_deletes_nothing_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    await store.finished(3, days_ago=1)
    service = RetentionService(repository=store.repo, clock=store.clock, retention=Retention())
    caplog.set_level(logging.INFO, logger="taskflow.retention")

    assert await Pruner(service).prune() == 0

    assert await store.count() == 3
    assert [r for r in caplog.records if r.name == "taskflow.retention"] == []


async def test_the_job_passes_again_after_its_interval() -> None:
    store = Store()
    service = RetentionService(repository=store.repo, clock=store.clock, retention=Retention())

    async def emptied() -> None:
        for _ in range(1000):  # a bound, not a wait: each turn sleeps 10 ms at most
            if await store.count() == 0:
                return
            await asyncio.sleep(0.01)
        pytest.fail("the old tasks were never pruned")

    await store.finished(5, days_ago=30)
    job = asyncio.create_task(Pruner(service).run(interval=0.01))
    try:
        await emptied()  # the first pass
        await store.finished(5, days_ago=30)
        await emptied()  # a later one
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


async def test_the_job_does_nothing_when_everything_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    await store.finished(2, days_ago=400)
    service = RetentionService(
        repository=store.repo, clock=store.clock, retention=Retention(days=0)
    )
    caplog.set_level(logging.INFO, logger="taskflow.retention")

    await asyncio.wait_for(Pruner(service).run(interval=0.01), timeout=10)

    assert await store.count() == 2
    assert "kept for ever" in caplog.text


async def test_a_pass_is_skipped_while_another_process_makes_one() -> None:
    store = Store()
    await store.finished(3, days_ago=30)
    service = RetentionService(repository=store.repo, clock=store.clock, retention=Retention())

    async with store.repo.exclusively(JOB) as first:
        assert first
        assert await Pruner(service).prune() == 0
        assert await store.count() == 3

    assert await Pruner(service).prune() == 3


class CancelSwallowedMidBatch(InMemoryTaskRepository):
    """A store whose first batch is under way when the job is cancelled, and whose driver
    catches that cancel and finishes the batch (decision 39)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deleting = asyncio.Event()

    async def prune_finished(self, cutoffs: Cutoffs, *, limit: int) -> int:
        if not self.deleting.is_set():
            self.deleting.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return await super().prune_finished(cutoffs, limit=limit)


async def test_a_cancel_swallowed_mid_batch_stops_the_pass_after_that_batch() -> None:
    store = Store()
    store.repo = CancelSwallowedMidBatch(store.clock)
    await store.finished(25, days_ago=30)
    service = RetentionService(repository=store.repo, clock=store.clock, retention=Retention())
    service.batch = 10
    job = asyncio.create_task(Pruner(service).run(interval=3600))
    await asyncio.wait_for(store.repo.deleting.wait(), timeout=10)

    job.cancel()
    await asyncio.wait([job], timeout=10)

    assert job.cancelled()
    assert await store.count() == 15  # the batch under way, and no more: shutdown is not held
