"""FleetService on the in-memory fakes: live workers, the queues' figures, pause and resume."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.memory_fleet import (
    InMemoryPauseNotices,
    InMemoryQueueGauge,
    InMemoryQueueStore,
    InMemoryWorkerRegistry,
)
from taskflow.domain.errors import InvalidQuery
from taskflow.domain.fleet import QueueStats, WorkerInfo
from taskflow.domain.flow import FlowLimits, FlowPolicy, Rate
from taskflow.domain.model import Lease, Task, TaskError
from taskflow.domain.ports import Dispatch
from taskflow.domain.services.fleet import FleetService
from tests.clocks import FakeClock

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BEAT = 2.0


class Fleet:
    def __init__(self, flow: FlowPolicy | None = None) -> None:
        self.clock = FakeClock(START)
        self.repo = InMemoryTaskRepository(self.clock)
        self.queue = InMemoryTaskQueue(self.clock)
        self.notices = InMemoryPauseNotices()
        self.store = InMemoryQueueStore(self.repo)
        self.service = FleetService(
            workers=InMemoryWorkerRegistry(self.clock),
            store=self.store,
            gauge=InMemoryQueueGauge(self.queue, self.clock),
            clock=self.clock,
            flow=flow or FlowPolicy(),
            notices=self.notices,
            beat_seconds=BEAT,
        )

    def worker(self, worker_id: str, *queues: str, running: int = 0) -> WorkerInfo:
        return WorkerInfo(
            id=worker_id,
            host="h",
            pid=1,
            version="0.1.0",
            queues=queues,
            concurrency=4,
            running=tuple(uuid.uuid4() for _ in range(running)),
            started_at=START,
            last_seen_at=self.clock.now(),
        )

    async def push(self, queue: str, *, delay: float = 0.0, priority: int = 5) -> None:
        run_at = self.clock.now() + timedelta(seconds=delay)
        await self.queue.push([Dispatch(uuid.uuid4(), queue, priority, run_at)])


def running(now: datetime, queue: str = "default") -> Task:
    task = Task.new(id=uuid.uuid4(), type="t.job", payload={}, now=now, queue=queue)
    return task.claim(Lease(uuid.uuid4(), "w-test", now + timedelta(seconds=60)), now=now)


def succeeded(now: datetime, queue: str = "default") -> Task:
    task = running(now, queue)
    assert task.lease is not None
    return task.succeed(task.lease.token, None, now=now)


def failed(now: datetime, queue: str = "default") -> Task:
    task = running(now, queue)
    assert task.lease is not None
    return task.fail(task.lease.token, TaskError("E", "no"), now=now, rand=0.5, final=True)


def cancelled(now: datetime, queue: str = "default") -> Task:
    task = Task.new(id=uuid.uuid4(), type="t.job", payload={}, now=now, queue=queue)
    return task.cancel(now=now)


def by_name(queues: list[QueueStats]) -> dict[str, QueueStats]:
    return {q.name: q for q in queues}


async def test_a_worker_is_live_until_it_misses_three_beats() -> None:
    fleet = Fleet()
    await fleet.service.beat(fleet.worker("w1", "default"))
    fleet.clock.advance(3 * BEAT - 0.01)
    assert [w.id for w in await fleet.service.workers()] == ["w1"]
    fleet.clock.advance(0.02)
    assert await fleet.service.workers() == []


async def test_each_beat_keeps_it_live_and_leave_drops_it_at_once() -> None:
    fleet = Fleet()
    for _ in range(5):
        await fleet.service.beat(fleet.worker("w1", "default", running=2))
        fleet.clock.advance(BEAT)
    [listed] = await fleet.service.workers()
    assert len(listed.running) == 2
    await fleet.service.leave("w1")
    assert await fleet.service.workers() == []


async def test_queues_list_work_limits_consumers_and_pauses() -> None:
    limits = FlowPolicy(queues={"mail": FlowLimits(rate=Rate(10, 1.0), concurrency=3)})
    fleet = Fleet(limits)
    await fleet.push("default")
    await fleet.push("default", delay=60)
    await fleet.push("orphan")
    await fleet.service.beat(fleet.worker("w1", "default", "served"))
    await fleet.service.beat(fleet.worker("w2", "default"))
    await fleet.service.pause("held")
    queues = by_name(await fleet.service.queues())
    assert sorted(queues) == ["default", "held", "mail", "orphan", "served"]
    default = queues["default"]
    assert (default.ready, default.delayed, default.consumers) == (1, 1, 2)
    assert not default.unconsumed
    assert queues["orphan"].unconsumed
    assert queues["orphan"].consumers == 0
    assert (queues["mail"].rate_limit, queues["mail"].concurrency) == ("10/s", 3)
    assert not queues["mail"].unconsumed  # no work
    assert queues["held"].paused
    assert queues["served"].consumers == 1


async def test_only_delayed_work_without_a_consumer_is_unconsumed() -> None:
    fleet = Fleet()
    await fleet.push("later", delay=3600)
    [later] = await fleet.service.queues()
    assert (later.ready, later.delayed, later.unconsumed) == (0, 1, True)
    assert later.oldest_ready_age_seconds is None


async def test_the_oldest_ready_age_counts_from_the_earliest_due_time() -> None:
    fleet = Fleet()
    await fleet.push("default", priority=9)
    fleet.clock.advance(4)
    await fleet.push("default", priority=0)
    await fleet.push("default", delay=1)
    fleet.clock.advance(10)
    [default] = await fleet.service.queues()
    assert default.ready == 3
    assert default.oldest_ready_age_seconds == pytest.approx(14)


async def test_processing_and_the_last_minute_come_from_the_store() -> None:
    fleet = Fleet()
    await fleet.repo.add(running(START))
    await fleet.repo.add(succeeded(START))
    await fleet.repo.add(failed(START))
    await fleet.repo.add(succeeded(START - timedelta(seconds=61)))
    await fleet.repo.add(cancelled(START))
    [default] = await fleet.service.queues()
    assert default.processing == 1
    assert (default.succeeded_last_minute, default.failed_last_minute) == (1, 1)
    assert not default.unconsumed  # nothing waits


async def test_pause_and_resume_are_stored_notified_and_answered() -> None:
    fleet = Fleet()
    heard: list[tuple[str, bool]] = []

    async def listen() -> None:
        async for notice in fleet.notices.pauses():
            heard.append(notice)

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0)
    paused = await fleet.service.pause("mail")
    assert paused.paused
    assert await fleet.service.paused() == {"mail"}
    assert (await fleet.service.pause("mail")).paused  # idempotent
    resumed = await fleet.service.resume("mail")
    assert not resumed.paused
    assert await fleet.service.paused() == frozenset()
    await asyncio.sleep(0)
    listening.cancel()
    assert heard == [("mail", True), ("mail", True), ("mail", False)]


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "-leading"])
async def test_a_malformed_queue_name_is_refused_naming_it(name: str) -> None:
    fleet = Fleet()
    with pytest.raises(InvalidQuery) as caught:
        await fleet.service.pause(name)
    assert repr(name) in caught.value.message
    assert caught.value.field == "name"
    assert await fleet.service.paused() == frozenset()
