"""ScheduleService on the in-memory fakes: one task per tick, catch-up, pause and resume."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from taskflow.adapters.memory import (
    InMemoryScheduleStore,
    InMemoryTaskQueue,
    InMemoryTaskRepository,
)
from taskflow.adapters.prometheus import PrometheusMetrics, exposition
from taskflow.domain.errors import InvalidSubmission, ScheduleNotFound, StoreUnavailable
from taskflow.domain.model import Task
from taskflow.domain.queries import TaskQuery
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import ScheduleService
from taskflow.domain.services.scheduling import check_timetables
from taskflow.entrypoints.loading import load_registry
from taskflow.entrypoints.scheduler import Scheduler
from taskflow.registry import Registry
from tests.clocks import FakeClock

T0 = datetime(2026, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class World:
    def __init__(self, registry: Registry, catchup: timedelta = timedelta(hours=1)) -> None:
        self.clock = FakeClock(T0)
        self.repo = InMemoryTaskRepository(self.clock)
        self.queue = InMemoryTaskQueue(self.clock)
        self.store = InMemoryScheduleStore(self.repo)
        self.registry = registry
        self.catchup = catchup

    def service(self) -> ScheduleService:
        """A process's service: several share one store, as workers share the database."""
        return ScheduleService(
            store=self.store,
            queue=self.queue,
            types=self.registry,
            clock=self.clock,
            new_id=uuid.uuid4,
            retry_policy=RetryPolicy(),
            timetables=self.registry.schedules,
            catchup=self.catchup,
        )

    async def tasks(self) -> list[tuple[str, str]]:
        found = await self.repo.find(TaskQuery(), after=None, limit=1000)
        return sorted((t.metadata["schedule"], t.metadata["tick"]) for t in found)


def _registry(**options: object) -> Registry:
    registry = load_registry(None, debug_tasks=True)
    registry.periodic(
        "echo-minutely",
        type="debug.echo",
        every=MINUTE,
        payload={"hello": "world"},
        queue="periodic",
        **options,  # type: ignore[arg-type]
    )
    return registry


@pytest.fixture
def world() -> World:
    return World(_registry())


async def test_each_due_tick_becomes_one_task_however_many_processes_run(world: World) -> None:
    processes = [world.service() for _ in range(3)]
    for service in processes:
        await service.run_due()  # the first pass of each: the schedule starts now
    world.clock.advance(150)  # two ticks: 12:01 and 12:02
    passes = [await service.run_due() for service in processes]
    assert [len(p.enqueued) for p in passes] == [2, 0, 0]
    ticks = [tick for _, tick, _ in passes[0].enqueued]
    assert ticks == [
        datetime(2026, 6, 1, 12, 1, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 2, tzinfo=UTC),
    ]
    assert passes[0].next_at == datetime(2026, 6, 1, 12, 3, tzinfo=UTC)
    assert len(await world.tasks()) == 2


async def test_the_task_is_an_ordinary_submission_dispatched_to_the_queue(world: World) -> None:
    service = world.service()
    await service.run_due()
    world.clock.advance(60)
    [(name, tick, task)] = (await service.run_due()).enqueued
    assert (task.type, task.payload, task.queue) == ("debug.echo", {"hello": "world"}, "periodic")
    assert task.metadata == {"schedule": name, "tick": tick.isoformat()}
    assert await world.repo.get(task.id) == task
    assert len(world.queue) == 1


async def test_missed_ticks_within_the_window_are_caught_up_once_and_older_ones_skipped() -> None:
    world = World(_registry(), catchup=timedelta(minutes=5))
    service = world.service()
    await service.run_due()
    world.clock.advance(3600)  # an hour down
    done = await service.run_due()
    # The window reaches back to 12:55:00.5: 12:56 to 13:00 are caught up, each once.
    assert [tick.minute for _, tick, _ in done.enqueued] == [56, 57, 58, 59, 0]
    assert done.skipped
    assert done.skipped[0].first == datetime(2026, 6, 1, 12, 1, tzinfo=UTC)
    assert (await service.run_due()).enqueued == []


async def test_a_schedule_s_own_catchup_overrides_the_setting() -> None:
    world = World(_registry(catchup=timedelta(0)), catchup=timedelta(hours=1))
    service = world.service()
    await service.run_due()
    world.clock.advance(600)
    done = await service.run_due()
    assert done.enqueued == []
    assert len(done.skipped) == 1


async def test_a_paused_schedule_enqueues_nothing_and_missed_ticks_are_not_caught_up(
    world: World,
) -> None:
    service = world.service()
    await service.run_due()
    paused = await service.pause("echo-minutely")
    assert paused.paused
    assert paused.next_run_at is None
    world.clock.advance(300)
    assert (await world.service().run_due()).enqueued == []
    resumed = await service.resume("echo-minutely")
    assert not resumed.paused
    assert resumed.next_run_at == datetime(2026, 6, 1, 12, 6, tzinfo=UTC)
    assert (await service.run_due()).enqueued == []  # 12:01 … 12:05 were missed while paused
    world.clock.advance(60)
    assert len((await service.run_due()).enqueued) == 1


async def test_resuming_a_running_schedule_loses_no_tick(world: World) -> None:
    service = world.service()
    await service.run_due()
    world.clock.advance(90)  # 12:01 is due, not enqueued yet
    await service.resume("echo-minutely")
    assert len((await service.run_due()).enqueued) == 1


async def test_the_listing_shows_the_last_and_next_tick(world: World) -> None:
    service = world.service()
    [view] = await service.list()
    assert (view.timetable.name, view.paused, view.last_run_at) == ("echo-minutely", False, None)
    assert view.next_run_at == datetime(2026, 6, 1, 12, 1, tzinfo=UTC)
    world.clock.advance(60)
    await service.run_due()
    [view] = await service.list()
    assert view.last_run_at == datetime(2026, 6, 1, 12, 1, tzinfo=UTC)
    assert view.next_run_at == datetime(2026, 6, 1, 12, 2, tzinfo=UTC)


async def test_an_unknown_schedule_cannot_be_paused(world: World) -> None:
    with pytest.raises(ScheduleNotFound):
        await world.service().pause("nope")
    with pytest.raises(ScheduleNotFound):
        await world.service().resume("nope")


def test_a_schedule_of_an_unknown_type_or_a_wrong_payload_is_refused_at_start() -> None:
    registry = load_registry(None, debug_tasks=True)
    registry.periodic("sleepy", type="debug.sleep", every=MINUTE, payload={"seconds": "long"})
    with pytest.raises(InvalidSubmission, match="sleepy"):
        check_timetables(registry.schedules, registry, RetryPolicy(), T0)
    other = Registry()
    other.periodic("ghost", type="nobody.home", every=MINUTE)
    with pytest.raises(InvalidSubmission, match=r"ghost.*unknown task type"):
        check_timetables(other.schedules, other, RetryPolicy(), T0)
    check_timetables(_registry().schedules, _registry(), RetryPolicy(), T0)


class FailingOn(InMemoryScheduleStore):
    """The in-memory store, unreachable when asked to write one given tick."""

    def __init__(self, repo: InMemoryTaskRepository, tick: datetime) -> None:
        super().__init__(repo)
        self.failing_tick = tick

    async def add_tick(self, name: str, tick: datetime, task: Task) -> bool:
        if tick == self.failing_tick:
            raise StoreUnavailable("down")
        return await super().add_tick(name, tick, task)


async def test_ticks_stored_before_an_outage_are_dispatched_at_once(world: World) -> None:
    world.store = FailingOn(world.repo, datetime(2026, 6, 1, 12, 2, tzinfo=UTC))
    service = world.service()
    await service.run_due()
    world.clock.advance(150)
    with pytest.raises(StoreUnavailable):
        await service.run_due()
    assert len(world.queue) == 1  # 12:01, stored before 12:02 failed, is in the queue


async def test_the_scheduler_logs_what_it_enqueued_and_skipped(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = Scheduler(world.service(), world.clock)
    await scheduler.run_once()
    world.clock.advance(2 * 3600)
    with caplog.at_level(logging.INFO, logger="taskflow.scheduler"):
        done = await scheduler.run_once()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("periodic task enqueued") == len(done.enqueued) == 60  # 13:01 to 14:00
    assert "periodic ticks older than the catch-up window skipped" in messages


async def test_the_scheduler_counts_the_ticks_it_enqueued_as_submitted(world: World) -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    scheduler = Scheduler(world.service(), world.clock, metrics)
    first = await scheduler.run_once()
    world.clock.advance(600)
    done = await scheduler.run_once()
    [family] = [
        f
        for f in text_string_to_metric_families(exposition(metrics).decode())
        if f.name == "taskflow_tasks_submitted"
    ]
    enqueued = len(first.enqueued) + len(done.enqueued)
    assert sum(sample.value for sample in family.samples) == enqueued == 10


async def test_the_scheduler_loop_waits_out_an_outage_and_stops_when_told(world: World) -> None:
    world.store = FailingOn(world.repo, datetime(2026, 6, 1, 12, 1, tzinfo=UTC))
    service = world.service()
    await service.run_due()
    world.clock.advance(60)
    stop = asyncio.Event()
    loop = asyncio.create_task(Scheduler(service, world.clock).run(stop))
    await asyncio.sleep(0)  # one failed pass, then a wait
    assert not loop.done()
    stop.set()
    await asyncio.wait_for(loop, timeout=10)
