"""The fleet's Redis ports and their in-memory fakes pass one suite: the worker registry, the
queue gauge and the pause notices.

What it promises:
- a worker is listed from its beat until ``ttl`` after its last one, with what it said last;
  ``leave`` unlists it at once; a Redis that lost everything lists it again at its next beat;
- the gauge counts, per queue, the ids due now (``ready``, delayed ids that fell due
  included), those still waiting, and the earliest due time among the ready ones;
- every open subscription hears each pause and resume, in order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskQueue
from taskflow.adapters.memory_fleet import (
    InMemoryPauseNotices,
    InMemoryQueueGauge,
    InMemoryWorkerRegistry,
)
from taskflow.adapters.redis import RedisTaskQueue, connect
from taskflow.adapters.redis_fleet import RedisPauseNotices, RedisQueueGauge, RedisWorkerRegistry
from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.fleet import WorkerInfo
from taskflow.domain.ports import (
    Dispatch,
    PauseNotices,
    QueueGauge,
    TaskQueue,
    WorkerRegistry,
)
from tests.conftest import delete_redis_keys

BOUND = 10.0


@dataclass
class Fleet:
    workers: WorkerRegistry
    queue: TaskQueue
    gauge: QueueGauge
    notices: PauseNotices
    subscribed: Callable[[int], Awaitable[None]]
    wipe: Callable[[], None] | None  # a Redis restarting empty; None in memory


@pytest.fixture(params=["memory", "redis"])
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    clock = SystemClock()
    if request.param == "memory":
        queue = InMemoryTaskQueue(clock)
        notices = InMemoryPauseNotices()

        async def listening(n: int) -> None:
            await eventually(lambda: _true(len(notices._subscribers) >= n))

        yield Fleet(
            InMemoryWorkerRegistry(clock),
            queue,
            InMemoryQueueGauge(queue, clock),
            notices,
            listening,
            None,
        )
        return
    redis_url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_prefix"))
    client = connect(redis_url)
    admin = redis.asyncio.Redis.from_url(redis_url)
    redis_notices = RedisPauseNotices(client, prefix=prefix)

    async def subscribed(n: int) -> None:
        async def enough() -> bool:
            [(_, count)] = await admin.pubsub_numsub(redis_notices.channel)
            return int(count) >= n

        await eventually(enough)

    try:
        yield Fleet(
            RedisWorkerRegistry(client, prefix=prefix),
            RedisTaskQueue(client, prefix=prefix, clock=clock),
            RedisQueueGauge(client, prefix=prefix, clock=clock),
            redis_notices,
            subscribed,
            lambda: delete_redis_keys(prefix),
        )
    finally:
        await client.aclose()
        await admin.aclose()


async def _true(value: bool) -> bool:
    return value


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(BOUND):
        while not await condition():  # noqa: ASYNC110 - a condition on a server
            await asyncio.sleep(0.01)


def worker(worker_id: str, *queues: str) -> WorkerInfo:
    now = datetime.now(UTC).replace(microsecond=0)
    return WorkerInfo(
        id=worker_id,
        host="host-1",
        pid=4242,
        version="0.1.0",
        queues=queues,
        concurrency=8,
        running=(uuid.uuid4(), uuid.uuid4()),
        started_at=now - timedelta(minutes=5),
        last_seen_at=now,
    )


async def test_a_beat_lists_the_worker_as_it_said_and_the_next_one_updates_it(
    fleet: Fleet,
) -> None:
    first = worker("w-1", "default", "mail")
    await fleet.workers.beat(first, ttl_seconds=60)
    second = worker("w-2", "default")
    await fleet.workers.beat(second, ttl_seconds=60)
    assert await fleet.workers.live() == [first, second]
    later = replace(first, running=(), last_seen_at=first.last_seen_at + timedelta(seconds=5))
    await fleet.workers.beat(later, ttl_seconds=60)
    assert (await fleet.workers.live())[0] == later


async def test_a_worker_drops_out_after_its_ttl_and_leave_unlists_at_once(fleet: Fleet) -> None:
    await fleet.workers.beat(worker("short", "default"), ttl_seconds=0.2)
    await fleet.workers.beat(worker("long", "default"), ttl_seconds=60)

    async def only_long() -> bool:
        return [w.id for w in await fleet.workers.live()] == ["long"]

    await eventually(only_long)
    await fleet.workers.leave("long")
    await fleet.workers.leave("never-listed")
    assert await fleet.workers.live() == []


async def test_after_redis_restarts_empty_a_worker_is_listed_at_its_next_beat(
    fleet: Fleet,
) -> None:
    if fleet.wipe is None:
        return  # nothing to lose in one process
    await fleet.workers.beat(worker("w-1", "default"), ttl_seconds=60)
    fleet.wipe()
    assert await fleet.workers.live() == []
    await fleet.workers.beat(worker("w-1", "default"), ttl_seconds=60)
    assert [w.id for w in await fleet.workers.live()] == ["w-1"]


async def test_the_gauge_counts_ready_and_delayed_ids_per_queue(fleet: Fleet) -> None:
    assert await fleet.gauge.depths() == {}
    now = datetime.now(UTC)
    oldest = now - timedelta(seconds=30)
    dispatches = [
        Dispatch(uuid.uuid4(), "default", 9, now - timedelta(seconds=1)),
        Dispatch(uuid.uuid4(), "default", 0, oldest),  # low priority, waiting longest
        Dispatch(uuid.uuid4(), "default", 5, now + timedelta(hours=1)),
        Dispatch(uuid.uuid4(), "later", 5, now + timedelta(hours=1)),
    ]
    await fleet.queue.push(dispatches)
    depths = await fleet.gauge.depths()
    assert sorted(depths) == ["default", "later"]
    default = depths["default"]
    assert (default.ready, default.delayed) == (2, 1)
    assert default.oldest_ready_at is not None
    assert abs((default.oldest_ready_at - oldest).total_seconds()) < 0.002
    assert (depths["later"].ready, depths["later"].delayed) == (0, 1)
    assert depths["later"].oldest_ready_at is None


async def test_delayed_ids_that_fell_due_count_as_ready(fleet: Fleet) -> None:
    soon = datetime.now(UTC) + timedelta(milliseconds=200)
    await fleet.queue.push([Dispatch(uuid.uuid4(), "nobody", 5, soon)])

    async def due() -> bool:
        depth = (await fleet.gauge.depths())["nobody"]
        return (depth.ready, depth.delayed) == (1, 0)

    await eventually(due)
    depth = (await fleet.gauge.depths())["nobody"]
    assert depth.oldest_ready_at is not None
    assert abs((depth.oldest_ready_at - soon).total_seconds()) < 0.002


async def test_popped_ids_leave_the_gauge(fleet: Fleet) -> None:
    task_id = uuid.uuid4()
    await fleet.queue.push([Dispatch(task_id, "default", 5, datetime.now(UTC))])
    assert await fleet.queue.pop(["default"], limit=10, timeout=0) == [task_id]
    assert await fleet.gauge.depths() == {}


async def receive(subscription: AsyncIterator[tuple[str, bool]], n: int) -> list[tuple[str, bool]]:
    async with asyncio.timeout(BOUND):
        return [await anext(subscription) for _ in range(n)]


async def test_every_subscription_hears_each_pause_and_resume_in_order(fleet: Fleet) -> None:
    first, second = fleet.notices.pauses(), fleet.notices.pauses()
    sent = [("mail", True), ("default", True), ("mail", False)]
    heard = [asyncio.ensure_future(receive(s, len(sent))) for s in (first, second)]
    await fleet.subscribed(2)
    for queue, paused in sent:
        await fleet.notices.notify_pause(queue, paused)
    assert await asyncio.gather(*heard) == [sent, sent]
    await first.aclose()
    await second.aclose()


async def test_an_unreachable_redis_is_queue_unavailable() -> None:
    client = connect("redis://127.0.0.1:1/0", socket_timeout=0.5)
    try:
        with pytest.raises(QueueUnavailable):
            await RedisWorkerRegistry(client, prefix="nowhere").live()
        with pytest.raises(QueueUnavailable):
            await RedisQueueGauge(client, prefix="nowhere").depths()
        with pytest.raises(QueueUnavailable):
            await RedisPauseNotices(client, prefix="nowhere").notify_pause("q", True)
    finally:
        await client.aclose()
