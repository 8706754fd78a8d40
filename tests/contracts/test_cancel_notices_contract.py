"""The CancelNotices contract: the in-process fake and Redis pub/sub pass the same suite.

What it promises:
- a notice sent while a subscription is open reaches every open subscription, in the order
  sent;
- nothing is kept: a subscription hears only what is sent after it opened;
- closing the subscription's iterator ends it (on Redis: its connection leaves the channel);
- Redis only: deployments with different key prefixes never hear each other's notices, a
  message that is not a task id is dropped, and an unreachable server is `QueueUnavailable`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import pytest
import redis.asyncio

from taskflow.adapters.memory import InMemoryCancelNotices
from taskflow.adapters.redis import connect
from taskflow.adapters.redis_cancel import RedisCancelNotices
from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.ports import CancelNotices

BOUND = 10.0


@dataclass
class Harness:
    notices: CancelNotices
    # Returns once ``n`` subscriptions are open.
    until_subscribed: Callable[[int], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        fake = InMemoryCancelNotices()

        async def until_listening(n: int) -> None:
            await until(lambda: _count(fake) >= n)

        yield Harness(fake, until_listening)
        return
    redis_url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_prefix"))
    client = connect(redis_url)
    notices = RedisCancelNotices(client, prefix=prefix)
    admin = redis.asyncio.Redis.from_url(redis_url)

    async def until_subscribed(n: int) -> None:
        async def subscribed() -> bool:
            [(_, count)] = await admin.pubsub_numsub(notices.channel)
            return int(count) >= n

        await until_async(subscribed)

    try:
        yield Harness(notices, until_subscribed)
    finally:
        await client.aclose()
        await admin.aclose()


def _count(fake: InMemoryCancelNotices) -> int:
    return len(fake._subscribers)


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await until_async(check)


async def until_async(condition: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(int(BOUND / 0.01)):
        if await condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the subscriptions never opened")


async def receive(subscription: AsyncIterator[UUID], n: int) -> list[UUID]:
    async with asyncio.timeout(BOUND):
        return [await anext(subscription) for _ in range(n)]


async def test_every_open_subscription_hears_each_notice_in_order(harness: Harness) -> None:
    first, second = harness.notices.cancellations(), harness.notices.cancellations()
    ids = [uuid.uuid4() for _ in range(3)]
    heard = [asyncio.ensure_future(receive(s, len(ids))) for s in (first, second)]
    await harness.until_subscribed(2)

    for task_id in ids:
        await harness.notices.notify_cancel(task_id)

    assert await asyncio.gather(*heard) == [ids, ids]
    await first.aclose()
    await second.aclose()


async def test_a_subscription_hears_nothing_sent_before_it_opened(harness: Harness) -> None:
    before, after = uuid.uuid4(), uuid.uuid4()
    await harness.notices.notify_cancel(before)
    subscription = harness.notices.cancellations()
    heard = asyncio.ensure_future(receive(subscription, 1))
    await harness.until_subscribed(1)

    await harness.notices.notify_cancel(after)

    assert await heard == [after]
    await subscription.aclose()


async def test_closing_a_subscription_ends_it(harness: Harness) -> None:
    subscription = harness.notices.cancellations()
    heard = asyncio.ensure_future(receive(subscription, 1))
    await harness.until_subscribed(1)
    task_id = uuid.uuid4()
    await harness.notices.notify_cancel(task_id)
    assert await heard == [task_id]

    await subscription.aclose()

    with pytest.raises(StopAsyncIteration):
        await anext(subscription)


async def test_other_prefixes_and_malformed_messages_are_not_heard(
    redis_url: str, redis_prefix: str
) -> None:
    client = connect(redis_url)
    ours = RedisCancelNotices(client, prefix=redis_prefix)
    theirs = RedisCancelNotices(client, prefix=f"{redis_prefix}:other")
    subscription = ours.cancellations()
    heard = asyncio.ensure_future(receive(subscription, 1))
    try:

        async def subscribed() -> bool:
            return int((await client.pubsub_numsub(ours.channel))[0][1]) >= 1

        await until_async(subscribed)
        await theirs.notify_cancel(uuid.uuid4())
        await client.publish(ours.channel, "not a task id")
        task_id = uuid.uuid4()
        await ours.notify_cancel(task_id)

        assert await heard == [task_id]
    finally:
        await subscription.aclose()
        await client.aclose()


async def test_an_unreachable_redis_is_queue_unavailable() -> None:
    client = connect("redis://127.0.0.1:1/0")
    notices = RedisCancelNotices(client)
    try:
        with pytest.raises(QueueUnavailable):
            await notices.notify_cancel(uuid.uuid4())
        with pytest.raises(QueueUnavailable):
            await anext(notices.cancellations())
    finally:
        await client.aclose()
