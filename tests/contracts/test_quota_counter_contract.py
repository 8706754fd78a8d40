"""The QuotaCounter contract: the in-process counter and the Redis one pass the same suite.

What it promises:
- a rate admits its burst at once, a batch counting its size, then refuses, telling how long
  until the whole submission would pass;
- with an unfinished limit and no count kept, it asks for a recount (a token) and takes
  nothing; a seed carrying that token is kept, one carrying another is not, and a count kept
  already wins over any seed;
- a kept count lapses after its time, and the token moves on: a seed read before another
  process's count was set and lapsed is refused;
- a refused submission takes nothing, from the rate or the count; tenants never meet.

The Redis counter uses Redis's clock, so these tests use real time and slow rates: they only
assert what holds however slow the machine is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory_quotas import InMemoryQuotaCounter
from taskflow.adapters.redis import connect
from taskflow.adapters.redis_quotas import RedisQuotaCounter
from taskflow.domain.flow import Rate
from taskflow.domain.ports import QuotaCounter
from taskflow.domain.quotas import ADMITTED, Counted, Quota, Seed

HOURLY_10 = Rate(10, 3600.0)  # one task every 360 s: nothing passes again during a test
SHORT_KEEP = 0.3  # seconds a count is kept, in the lapse tests


@pytest.fixture(params=["memory", "redis"])
async def make_counter(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Callable[..., QuotaCounter]]:
    clients = []
    shared: list[QuotaCounter] = []  # in memory, every "process" is the one counter

    def make(**options: float) -> QuotaCounter:
        if request.param == "memory":
            if not shared:
                shared.append(InMemoryQuotaCounter(SystemClock(), **options))
            return shared[0]
        client = connect(redis_url)
        clients.append(client)
        return RedisQuotaCounter(client, prefix=redis_prefix, **options)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def counter(make_counter: Callable[..., QuotaCounter]) -> QuotaCounter:
    return make_counter()


async def _seeded(counter: QuotaCounter, tenant: str, quota: Quota, count: int, seed: int) -> None:
    asked = await counter.take(tenant, count, quota)
    assert asked.recount is not None
    assert not asked.admitted
    assert await counter.take(tenant, count, quota, seed=Seed(seed, asked.recount)) == ADMITTED


async def _lapsed(counter: QuotaCounter, tenant: str, quota: Quota) -> Counted:
    """The first answer that asks for a recount: the kept count has lapsed (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counted = await counter.take(tenant, 1, quota)
        if counted.recount is not None:
            return counted
        await asyncio.sleep(0.02)
    raise AssertionError(f"the count of {tenant} was still kept after 10 s")


async def test_a_rate_admits_its_burst_then_says_when_a_submission_would_pass(
    counter: QuotaCounter,
) -> None:
    quota = Quota(rate=HOURLY_10, burst=5)
    began = time.monotonic()
    assert await counter.take("acme", 3, quota) == ADMITTED
    assert await counter.take("acme", 2, quota) == ADMITTED
    one = await counter.take("acme", 1, quota)
    three = await counter.take("acme", 3, quota)
    elapsed = time.monotonic() - began
    assert not one.admitted
    assert not three.admitted
    assert not one.full
    assert one.recount is None
    # One task waits for one interval, a batch of three for three.
    assert 360 - elapsed - 1 <= one.rate_wait <= 360
    assert 1080 - elapsed - 1 <= three.rate_wait <= 1080


async def test_with_no_count_kept_it_asks_for_a_recount_and_keeps_the_seed_with_its_token(
    counter: QuotaCounter,
) -> None:
    quota = Quota(unfinished=5)
    asked = await counter.take("acme", 2, quota)
    assert asked.recount is not None
    assert not asked.admitted
    token = asked.recount
    assert await counter.take("acme", 2, quota) == Counted(recount=token)  # took nothing
    wrong = await counter.take("acme", 2, quota, seed=Seed(2, token + 1))
    assert wrong == Counted(recount=token)
    assert await counter.take("acme", 2, quota, seed=Seed(2, token)) == ADMITTED  # 4 of 5
    assert await counter.take("acme", 1, quota) == ADMITTED  # 5 of 5
    assert await counter.take("acme", 1, quota) == Counted(full=True)
    # A count kept wins over any seed, however low.
    assert await counter.take("acme", 1, quota, seed=Seed(0, token)) == Counted(full=True)


async def test_a_kept_count_lapses_and_a_seed_read_before_another_count_is_refused(
    make_counter: Callable[..., QuotaCounter],
) -> None:
    first = make_counter(recount_seconds=SHORT_KEEP)
    second = make_counter(recount_seconds=SHORT_KEEP)
    quota = Quota(unfinished=10)
    slow = await first.take("acme", 1, quota)  # the first process starts a slow read
    assert slow.recount is not None
    await _seeded(second, "acme", quota, 1, 9)  # the second reads, sets 9, admits 1: 10
    assert await first.take("acme", 1, quota) == Counted(full=True)

    again = await _lapsed(second, "acme", quota)
    assert again.recount != slow.recount
    # The first read's count is older than what the second process admitted: not kept.
    refused = await first.take("acme", 1, quota, seed=Seed(0, slow.recount))
    assert refused == Counted(recount=again.recount)


async def test_a_refused_submission_takes_nothing_from_the_rate_or_the_count(
    counter: QuotaCounter,
) -> None:
    await _seeded(counter, "acme", Quota(unfinished=3), 1, 2)  # 3 unfinished
    rate_only = Quota(rate=HOURLY_10, burst=2)
    assert await counter.take("acme", 1, Quota(rate=HOURLY_10, burst=2, unfinished=3)) == Counted(
        full=True
    )
    assert await counter.take("acme", 2, rate_only) == ADMITTED  # the whole burst was left
    over_rate = await counter.take("acme", 1, Quota(rate=HOURLY_10, burst=2, unfinished=10))
    assert over_rate.rate_wait > 0
    assert not over_rate.full
    assert await counter.take("acme", 1, Quota(unfinished=4)) == ADMITTED  # 3 were kept: 4
    both = await counter.take("acme", 1, Quota(rate=HOURLY_10, burst=2, unfinished=4))
    assert both.rate_wait > 0
    assert both.full


async def test_a_rate_that_refuses_asks_for_no_recount(counter: QuotaCounter) -> None:
    assert await counter.take("acme", 1, Quota(rate=HOURLY_10, burst=1)) == ADMITTED
    refused = await counter.take("acme", 1, Quota(rate=HOURLY_10, burst=1, unfinished=5))
    assert refused.rate_wait > 0
    assert refused.recount is None


async def test_tenants_never_meet(counter: QuotaCounter) -> None:
    quota = Quota(rate=HOURLY_10, burst=1, unfinished=1)
    await _seeded(counter, "acme", quota, 1, 0)
    assert not (await counter.take("acme", 1, quota)).admitted
    await _seeded(counter, "globex", quota, 1, 0)
    await _seeded(counter, "acme:x", quota, 1, 0)  # a name that extends another's
