"""Submissions under tenant quotas (decision 37): the use cases on the in-memory store, queue and
quota counter, with a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import pytest

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.memory_quotas import InMemoryQuotaCounter
from taskflow.domain.errors import InvalidSubmission, QueueUnavailable, QuotaExceeded
from taskflow.domain.flow import Rate
from taskflow.domain.model import TaskStatus
from taskflow.domain.queries import TaskQuery
from taskflow.domain.quotas import RECOUNT_SECONDS, Counted, Quota, QuotaPolicy, Seed
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import SubmitTask, TaskService
from taskflow.domain.services.quotas import WARN_EVERY_SECONDS, QuotaService
from tests.clocks import FakeClock
from tests.unit.test_services import TYPES

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PLAIN = SubmitTask(type="plain", payload={"n": 1})
POLICY = QuotaPolicy(
    {
        "acme": Quota(rate=Rate(2, 1.0), burst=3),
        "globex": Quota(unfinished=3),
    }
)


class CountedCalls:
    """The in-memory counter, with the calls made to it."""

    def __init__(self, inner: InMemoryQuotaCounter) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, Seed | None]] = []

    async def take(
        self, tenant: str, count: int, quota: Quota, *, seed: Seed | None = None
    ) -> Counted:
        self.calls.append((tenant, count, seed))
        return await self.inner.take(tenant, count, quota, seed=seed)


class DownCounter:
    """A counter whose server is unreachable."""

    async def take(
        self, tenant: str, count: int, quota: Quota, *, seed: Seed | None = None
    ) -> Counted:
        raise QueueUnavailable("redis is unreachable: Connection refused")


class SlowCounts(InMemoryTaskRepository):
    """Counts its reads of unfinished tasks; each waits for ``opened``."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.reads = 0
        self.asked = asyncio.Event()
        self.opened = asyncio.Event()

    async def count_unfinished(self, tenant: str) -> int:
        self.reads += 1
        self.asked.set()
        await self.opened.wait()
        return await super().count_unfinished(tenant)


class World:
    def __init__(self, counter: object = None, policy: QuotaPolicy = POLICY) -> None:
        self.clock = FakeClock(START)
        self.repo = SlowCounts(self.clock)
        self.repo.opened.set()
        self.counter = CountedCalls(InMemoryQuotaCounter(self.clock))
        self.warnings: list[str] = []
        self.monotonic = 0.0
        self.quotas = QuotaService(
            policy=policy,
            counter=counter or self.counter,  # type: ignore[arg-type]
            store=self.repo,
            warn=self.warnings.append,
            monotonic=lambda: self.monotonic,
        )
        ids = itertools.count(1)
        self.service = TaskService(
            repository=self.repo,
            queue=InMemoryTaskQueue(self.clock),
            types=TYPES,
            clock=self.clock,
            new_id=lambda: UUID(int=next(ids)),
            retry_policy=RetryPolicy(),
            quotas=self.quotas,
        )

    async def stored(self, tenant: str) -> int:
        return len(await self.repo.find(TaskQuery(tenant=tenant), after=None, limit=1000))


async def _refused(call: Callable[[], object]) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        await call()  # type: ignore[misc]
    return caught.value


async def test_a_tenant_without_a_quota_never_reaches_the_counter() -> None:
    world = World()
    for _ in range(10):
        await world.service.submit(PLAIN, tenant="initech")
    await world.service.submit_many([PLAIN] * 50)
    await world.service.submit_idempotent([PLAIN], key="k", request_hash="h", tenant="initech")
    assert world.counter.calls == []
    assert await world.stored("initech") == 11


async def test_the_rate_admits_the_burst_then_refuses_until_the_pace_allows() -> None:
    world = World()
    await world.service.submit_many([PLAIN, PLAIN], tenant="acme")
    await world.service.submit(PLAIN, tenant="acme")
    refused = await _refused(lambda: world.service.submit(PLAIN, tenant="acme"))
    assert refused.retry_after == 1  # 0.5 s, rounded up
    assert "'acme'" in refused.message
    assert "2/s (burst 3)" in refused.message
    batch = await _refused(lambda: world.service.submit_many([PLAIN] * 3, tenant="acme"))
    assert batch.retry_after == 2  # 1.5 s until three fit
    assert await world.stored("acme") == 3  # nothing of the refused ones
    world.clock.advance(0.5)
    await world.service.submit(PLAIN, tenant="acme")
    assert await world.stored("acme") == 4


async def test_a_batch_larger_than_the_burst_is_a_400_not_a_429() -> None:
    world = World()
    with pytest.raises(InvalidSubmission) as caught:
        await world.service.submit_many([PLAIN] * 4, tenant="acme")
    assert caught.value.field == "tasks"
    assert "send at most 3 at once" in caught.value.message
    with pytest.raises(InvalidSubmission):
        await world.service.submit_many([PLAIN] * 4, tenant="globex")  # over unfinished:3
    assert world.counter.calls == []


async def test_unfinished_tasks_are_counted_from_the_store_then_refused_over_the_quota() -> None:
    world = World()
    first = await world.service.submit(PLAIN, tenant="globex")
    await world.service.submit_many([PLAIN, PLAIN], tenant="globex")
    refused = await _refused(lambda: world.service.submit(PLAIN, tenant="globex"))
    assert refused.retry_after == 1
    assert "at most 3 unfinished tasks" in refused.message
    assert world.repo.reads == 1  # read once, then counted

    await world.service.cancel(first.id, tenant="globex")
    # Until the count is read again, the finished task is still counted: it errs on refusing.
    await _refused(lambda: world.service.submit(PLAIN, tenant="globex"))
    world.clock.advance(RECOUNT_SECONDS)
    await world.service.submit(PLAIN, tenant="globex")
    assert world.repo.reads == 2
    found = await world.repo.find(TaskQuery(tenant="globex"), after=None, limit=10)
    assert sorted(t.status for t in found) == [TaskStatus.CANCELLED] + [TaskStatus.PENDING] * 3


async def test_submissions_that_find_no_count_at_once_read_the_store_once() -> None:
    world = World()
    world.repo.opened.clear()
    waiting = [asyncio.create_task(world.service.submit(PLAIN, tenant="globex")) for _ in range(5)]
    await world.repo.asked.wait()
    for _ in range(10):  # every submission is waiting on the one read by now
        await asyncio.sleep(0)
    world.repo.opened.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert world.repo.reads == 1
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 3
    assert all(isinstance(o, QuotaExceeded) for o in outcomes if isinstance(o, BaseException))


async def test_an_unreachable_counter_admits_and_warns_at_most_every_few_seconds() -> None:
    world = World(counter=DownCounter())
    for _ in range(5):
        await world.service.submit(PLAIN, tenant="acme")
    assert await world.stored("acme") == 5  # over the burst of 3: admitted all the same
    assert len(world.warnings) == 1
    assert "redis is unreachable" in world.warnings[0]
    world.monotonic += WARN_EVERY_SECONDS
    await world.service.submit(PLAIN, tenant="globex")
    assert len(world.warnings) == 2


async def test_a_replay_is_answered_even_over_the_quota_and_stores_nothing() -> None:
    world = World()
    body = [PLAIN, PLAIN]
    first, replayed = await world.service.submit_idempotent(
        body, key="order-1", request_hash="h", tenant="acme"
    )
    assert not replayed
    await world.service.submit(PLAIN, tenant="acme")  # the burst of 3 is spent
    again, replayed = await world.service.submit_idempotent(
        body, key="order-1", request_hash="h", tenant="acme"
    )
    assert replayed
    assert [t.id for t in again] == [t.id for t in first]
    await _refused(
        lambda: world.service.submit_idempotent(
            body, key="order-2", request_hash="h", tenant="acme"
        )
    )
    assert await world.stored("acme") == 3
