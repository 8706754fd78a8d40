"""A notice listener on the real Redis ends when cancelled, at whatever moment the cancel lands.

On Python 3.11 a cancel that lands just as redis-py's ``subscribe`` completes is swallowed by
``asyncio.wait_for`` inside the driver. The listener then waited for messages for ever, and a
worker told to stop right after it started hung until it was killed (seen in CI as
``test_a_worker_that_stops_cleanly_is_unlisted_at_once`` exiting -9). Cancels are spread over
the first milliseconds of a subscription, where that race lives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio

from taskflow.adapters.redis import connect
from taskflow.adapters.redis_cancel import RedisCancelNotices
from taskflow.adapters.redis_fleet import RedisPauseNotices

pytestmark = pytest.mark.integration

TRIES = 300
SPREAD_SECONDS = 0.004  # past the subscribe's reply on this machine, even when it is busy
BOUND = 10.0

Listen = Callable[[redis.asyncio.Redis, str], AsyncIterator[Any]]


def _cancel_notices(client: redis.asyncio.Redis, prefix: str) -> AsyncIterator[Any]:
    return RedisCancelNotices(client, prefix=prefix).cancellations()


def _pause_notices(client: redis.asyncio.Redis, prefix: str) -> AsyncIterator[Any]:
    return RedisPauseNotices(client, prefix=prefix).pauses()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    opened = connect(redis_url)
    yield opened
    await opened.aclose()


async def _drain(listen: AsyncIterator[Any]) -> None:
    async for _ in listen:
        pass


@pytest.mark.parametrize("listen", [_cancel_notices, _pause_notices], ids=["cancel", "pause"])
async def test_a_listener_cancelled_as_it_subscribes_ends(
    client: redis.asyncio.Redis, redis_prefix: str, listen: Listen
) -> None:
    for n in range(TRIES):
        job = asyncio.create_task(_drain(listen(client, redis_prefix)))
        await asyncio.sleep(SPREAD_SECONDS * n / TRIES)
        job.cancel()
        done, _ = await asyncio.wait([job], timeout=BOUND)
        assert job in done, f"try {n}: the listener went on after its cancel"
        assert job.cancelled(), f"try {n}: ended with {job.exception()!r}, not the cancel"
