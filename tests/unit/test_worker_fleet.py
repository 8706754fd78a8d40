"""A Worker in the fleet, on the in-memory fakes: it lists itself, leaves when it stops, starts
nothing from a paused queue, and hands back what it popped just as a pause landed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

from taskflow.adapters.memory import InMemoryTaskQueue
from taskflow.adapters.memory_fleet import (
    InMemoryPauseNotices,
    InMemoryQueueGauge,
    InMemoryQueueStore,
    InMemoryWorkerRegistry,
)
from taskflow.domain.attempts import AttemptOutcome
from taskflow.domain.flow import FlowPolicy
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.prefetch import Prefetch
from taskflow.entrypoints.presence import Presence
from taskflow.entrypoints.worker import Worker, WorkerOptions
from tests.unit.test_worker import BOUND, PENDING, SUCCESS, Env, Order, serving, until


def fleet_of(env: Env) -> FleetService:
    return FleetService(
        workers=InMemoryWorkerRegistry(env.clock),
        store=InMemoryQueueStore(env.repo),
        gauge=InMemoryQueueGauge(env.queue, env.clock),
        clock=env.clock,
        flow=FlowPolicy(),
        notices=InMemoryPauseNotices(),
        beat_seconds=3600.0,  # the notices must do it: the backstop would come too late
    )


class Eager(Prefetch):
    """Claims ahead as much as its cap allows, whatever the throughput."""

    def room(self) -> int:
        return max(0, self.cap - len(self))


def worker_in(
    env: Env, fleet: FleetService, *queues: str, prefetch: Prefetch | None = None, **opts: Any
) -> Worker:
    options = WorkerOptions(
        queues=queues or ("default",),
        heartbeat_seconds=3600.0,
        sweep_seconds=3600.0,
        poll_seconds=0.05,
        **opts,
    )
    return Worker(env.execution(), env.registry, options, prefetch=prefetch, fleet=fleet)


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(BOUND):
        while not await condition():  # noqa: ASYNC110 - a condition on the store
            await asyncio.sleep(0.01)


async def test_a_serving_worker_is_listed_with_what_it_serves_and_leaves_when_it_stops() -> None:
    env = Env()
    fleet = fleet_of(env)
    worker = worker_in(env, fleet, "default", "mail", concurrency=3)
    async with serving(worker):

        async def listed() -> bool:
            return bool(await fleet.workers())

        await eventually(listed)
        [me] = await fleet.workers()
        assert (me.id, me.queues, me.concurrency, me.running) == (
            worker.id,
            ("default", "mail"),
            3,
            (),
        )
        assert me.pid > 0
        assert me.version
    assert await fleet.workers() == []


async def test_a_paused_queue_starts_nothing_until_it_is_resumed() -> None:
    env = Env()
    fleet = fleet_of(env)
    worker = worker_in(env, fleet, "default", "other")
    async with serving(worker):
        await eventually(lambda: _listed(fleet))
        await fleet.pause("default")

        async def heard_it() -> bool:
            return "default" in worker._pauses.paused

        await eventually(heard_it)
        held = await env.submit("t.order", {"order_id": "o", "qty": 1})
        # A task of the other queue, submitted later, runs: the worker is serving.
        other = await env.submit("t.order", {"order_id": "p", "qty": 1}, queue="other")

        async def other_done() -> bool:
            return (await env.get(other)).status is SUCCESS

        await eventually(other_done)
        assert (await env.get(held)).status is PENDING
        assert (await env.get(held)).attempts == 0
        [stats] = [q for q in await fleet.queues() if q.name == "default"]
        assert (stats.paused, stats.ready, stats.consumers) == (True, 1, 1)

        await fleet.resume("default")

        async def held_done() -> bool:
            return (await env.get(held)).status is SUCCESS

        await eventually(held_done)


class PausingQueue(InMemoryTaskQueue):
    """Pops as usual, then has the pause land before the claim."""

    land: Callable[[], None] = staticmethod(lambda: None)

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        ids = await super().pop(queues, limit=limit, timeout=timeout)
        self.land()
        return ids


async def test_a_task_popped_just_as_the_pause_lands_goes_back_unclaimed() -> None:
    env = Env()
    env.queue = PausingQueue(env.clock)
    env.tasks = env.task_service()
    fleet = fleet_of(env)
    worker = worker_in(env, fleet)
    env.queue.land = lambda: worker._pauses.apply("default", True)
    task = await env.submit("t.order", {"order_id": "o", "qty": 1})

    assert await worker.run_once() == 0

    assert env.probe.payloads == []  # the handler never ran
    back = await env.get(task)
    assert (back.status, back.attempts, back.version) == (PENDING, 0, task.version)
    assert await env.repo.attempts(task.id) == []
    assert await env.queue.pop(["default"], limit=1, timeout=0) == [task.id]


async def test_tasks_claimed_ahead_from_a_queue_that_pauses_are_handed_back() -> None:
    env = Env()
    fleet = fleet_of(env)
    worker = worker_in(env, fleet, concurrency=1, prefetch=Eager(1))
    for _ in range(2):
        await env.submit("t.block")
    assert await worker.run_once() == 2
    await until(env.probe.started)
    [running] = worker.running
    [ahead] = worker.prefetched

    worker._pauses.apply("default", True)

    async def handed_back() -> bool:
        return (await env.get(ahead)).status is PENDING and not worker.prefetched

    await eventually(handed_back)
    [attempt] = await env.repo.attempts(ahead.id)
    assert attempt.outcome is AttemptOutcome.RELEASED
    env.probe.release.set()  # what runs, runs on
    async with asyncio.timeout(BOUND):
        await worker.wait_idle()
    assert (await env.get(running)).status is SUCCESS
    assert (await env.get(ahead)).status is PENDING


async def _listed(fleet: FleetService) -> bool:
    return bool(await fleet.workers())


class SlowStore(InMemoryQueueStore):
    """Its read of the paused queues waits until the test lets it answer."""

    def __init__(self, env: Env) -> None:
        super().__init__(env.repo)
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def paused(self) -> frozenset[str]:
        found = await super().paused()
        self.reading.set()
        await self.answer.wait()
        return found


async def test_a_beat_s_stale_read_does_not_undo_a_notice_heard_meanwhile() -> None:
    env = Env()
    store = SlowStore(env)
    fleet = fleet_of(env)
    fleet._store = store
    presence = Presence(fleet, worker_id="w1", queues=["default"], concurrency=1, running=list)
    listening = asyncio.create_task(presence._listen())
    try:
        beating = asyncio.create_task(presence.beat())
        await until(store.reading)  # the read saw nothing paused
        await store.set_paused("default", True, now=env.clock.now())
        notices = fleet._notices
        assert notices is not None

        async def subscribed() -> bool:
            return bool(notices._subscribers)  # type: ignore[attr-defined]

        await eventually(subscribed)
        await notices.notify_pause("default", True)

        async def heard() -> bool:
            return presence.pauses.paused == {"default"}

        await eventually(heard)
        store.answer.set()
        await beating
        assert presence.pauses.paused == {"default"}
    finally:
        listening.cancel()


async def test_a_queue_paused_before_the_worker_starts_is_never_popped() -> None:
    env = Env()
    store = SlowStore(env)
    fleet = fleet_of(env)
    fleet._store = store
    await store.set_paused("default", True, now=env.clock.now())
    held = await env.submit("t.order", {"order_id": "o", "qty": 1})
    worker = worker_in(env, fleet, "default", "other")
    async with serving(worker):
        await until(store.reading)  # the first beat reads the paused queues before any claim
        store.answer.set()
        other = await env.submit("t.order", {"order_id": "p", "qty": 1}, queue="other")

        async def other_done() -> bool:
            return (await env.get(other)).status is SUCCESS

        await eventually(other_done)
        assert (await env.get(held)).attempts == 0
        assert env.probe.payloads == [Order(order_id="p", qty=1)]
