"""A Redis that may evict our keys is warned about at start (on a Redis of the test's own)."""

from __future__ import annotations

import asyncio

from taskflow.adapters.redis import RedisTaskQueue, connect
from tests.integration.conftest import StackFactory
from tests.integration.processes import wait_for
from tests.integration.servers import RedisServer


def _warnings(url: str) -> list[str]:
    async def ask() -> list[str]:
        queue = RedisTaskQueue(connect(url), prefix="tftest")
        try:
            return await queue.warnings()
        finally:
            await queue.close()

    return asyncio.run(ask())


def test_an_evicting_policy_is_reported_and_noeviction_is_not(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.config_set("maxmemory-policy", "noeviction")
    assert _warnings(redis_server.url) == []
    client.config_set("maxmemory-policy", "volatile-lru")  # our keys carry no TTL: safe
    assert _warnings(redis_server.url) == []
    client.config_set("maxmemory-policy", "allkeys-lru")
    (warning,) = _warnings(redis_server.url)
    assert "allkeys-lru" in warning
    assert "noeviction" in warning


def test_a_worker_warns_at_start(stack_factory: StackFactory, redis_server: RedisServer) -> None:
    redis_server.client().config_set("maxmemory-policy", "allkeys-random")
    stack = stack_factory(TASKFLOW_REDIS_URL=redis_server.url)
    worker = stack.start_worker()
    wait_for(
        lambda: "maxmemory-policy is allkeys-random" in worker.output(),
        timeout=30,
        what="the eviction warning in the worker's log",
    )
