"""Flow control in the claim, on the in-memory store, queue and limiter, with a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.memory_flow import InMemoryFlowLimiter
from taskflow.domain.flow import Admission, FlowLimits, FlowPolicy, Limit, Popped, Rate
from taskflow.domain.model import TaskStatus
from taskflow.domain.ports import Dispatch
from taskflow.domain.services import ExecutionService, SubmitTask, TaskService
from taskflow.domain.services.flow_gate import SLOT_RECHECK
from taskflow.entrypoints.worker import Worker, WorkerOptions
from taskflow.entrypoints.worker import log as worker_log
from taskflow.handlers import TaskContext
from taskflow.registry import Registry
from tests.clocks import FakeClock
from tests.unit.test_services import LEASE_SECONDS, QUEUES, START, task_service

HOURLY = FlowLimits(rate=Rate(2, 3600.0))
SINGLE = FlowLimits(concurrency=1)
PER_CUSTOMER = FlowLimits(concurrency=1, concurrency_key="customer")
POLICY = FlowPolicy(types={"mail.send": HOURLY, "plain": SINGLE})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def repo(clock: FakeClock) -> InMemoryTaskRepository:
    return InMemoryTaskRepository(clock)


@pytest.fixture
def queue(clock: FakeClock) -> InMemoryTaskQueue:
    return InMemoryTaskQueue(clock)


@pytest.fixture
def service(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> TaskService:
    return task_service(repo, queue, clock)


@pytest.fixture
def limiter(clock: FakeClock) -> InMemoryFlowLimiter:
    return InMemoryFlowLimiter(clock)


def worker(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    limiter: object,
    policy: FlowPolicy = POLICY,
) -> ExecutionService:
    return ExecutionService(
        repository=repo,
        queue=queue,
        clock=clock,
        rand=lambda: 0.5,
        worker_id="worker-1",
        lease_seconds=LEASE_SECONDS,
        flow=policy,
        limiter=limiter,  # type: ignore[arg-type]
    )


async def submit(service: TaskService, type_: str, n: int, **payload: object) -> list[UUID]:
    return [
        (await service.submit(SubmitTask(type=type_, payload={"to": "a@b.c", **payload}))).id
        for _ in range(n)
    ]


async def test_a_throttled_task_is_no_attempt_and_waits_in_the_queue(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    ids = await submit(service, "mail.send", 3)
    execution = worker(repo, queue, clock, limiter)

    claim = await execution.claim_batch(QUEUES, limit=10, timeout=0)

    assert [t.id for t in claim.tasks] == ids[:2]
    [(held_back, wait)] = claim.throttled
    assert held_back.id == ids[2]
    # Its hourly start is 30 minutes away, and the recheck spread is added on top.
    assert wait == pytest.approx(1800 + SLOT_RECHECK * 0.5)
    stored = await repo.get(ids[2])
    assert (stored.status, stored.attempts, stored.lease) == (TaskStatus.PENDING, 0, None)
    assert await execution.claim_batch(QUEUES, limit=10, timeout=0) == type(claim)([], [])
    clock.advance(wait)
    [again] = (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    assert (again.id, again.attempts) == (ids[2], 1)


async def test_a_throttled_type_does_not_hold_back_the_others(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    singles = await submit(service, "plain", 3)
    mails = await submit(service, "mail.send", 2)
    execution = worker(repo, queue, clock, limiter)

    claim = await execution.claim_batch(QUEUES, limit=10, timeout=0)

    assert {t.id for t in claim.tasks} == {singles[0], *mails}
    assert {t.id for t, _ in claim.throttled} == set(singles[1:])
    assert all(SLOT_RECHECK <= wait < 2 * SLOT_RECHECK for _, wait in claim.throttled)


async def test_a_slot_is_given_back_when_the_attempt_ends(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    first, second = await submit(service, "plain", 2)
    execution = worker(repo, queue, clock, limiter)
    [running] = (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    await execution.succeed(running, None)
    clock.advance(2 * SLOT_RECHECK)
    [next_one] = (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    assert (running.id, next_one.id) == (first, second)


async def test_per_key_slots_hold_one_customer_and_let_the_others_run(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    policy = FlowPolicy(types={"plain": PER_CUSTOMER})
    a1, a2 = await submit(service, "plain", 2, customer="a")
    (b1,) = await submit(service, "plain", 1, customer="b")
    execution = worker(repo, queue, clock, limiter, policy)

    claim = await execution.claim_batch(QUEUES, limit=10, timeout=0)

    assert {t.id for t in claim.tasks} == {a1, b1}
    assert [t.id for t, _ in claim.throttled] == [a2]


async def test_renewed_slots_hold_and_unrenewed_ones_lapse_with_the_lease(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    await submit(service, "plain", 2)
    execution = worker(repo, queue, clock, limiter)
    [running] = (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    assert running.lease is not None
    for _ in range(3):  # renewed past the first lease: the waiting task stays out
        clock.advance(LEASE_SECONDS * 0.6)
        await execution.renew({running.id: running.lease.token})
        assert (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks == []
    clock.advance(LEASE_SECONDS + 1)  # the worker died: nobody renews
    await execution.reap()
    claimed = (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    assert len(claimed) == 1


async def test_a_slot_taken_for_a_task_the_claim_did_not_get_is_given_back(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    later = await service.submit(
        SubmitTask(type="plain", payload={}, run_at=START.replace(year=2030))
    )
    # Its id reaches the queue as due (a stale push): admitted, then not claimable yet.
    await queue.push([Dispatch(later.id, later.queue, later.priority, START)])
    execution = worker(repo, queue, clock, limiter)
    assert (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks == []
    (now_due,) = await submit(service, "plain", 1)
    assert [t.id for t in (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks] == [
        now_due
    ]


class Untouchable:
    """A limiter no call may reach."""

    async def admit(
        self, requests: Sequence[tuple[UUID, Sequence[Limit]]], **_: float
    ) -> Admission:
        raise AssertionError("the limiter was asked")

    renew = release = admit


async def test_without_a_limit_the_claim_never_asks_the_limiter(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
) -> None:
    ids = await submit(service, "plain", 2)
    execution = worker(repo, queue, clock, Untouchable(), FlowPolicy())
    claimed = (await execution.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    assert [t.id for t in claimed] == ids
    assert claimed[0].lease is not None
    await execution.renew({claimed[0].id: claimed[0].lease.token})
    await execution.succeed(claimed[0], None)


async def test_a_queue_limit_leaves_the_other_queues_alone(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
) -> None:
    ids = await submit(service, "plain", 2)
    policy = FlowPolicy(queues={"mail": SINGLE})
    execution = worker(repo, queue, clock, Untouchable(), policy)
    # A worker of the default queue alone meets no limit: it never asks.
    assert [t.id for t in await execution.claim(["default"], limit=10, timeout=0)] == ids


async def test_a_lost_limiter_gets_the_slots_of_running_tasks_back_from_the_store(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
) -> None:
    await submit(service, "plain", 2)
    before = worker(repo, queue, clock, InMemoryFlowLimiter(clock))
    await before.reconcile(after=None)  # the fresh queue is marked intact
    [running] = (await before.claim_batch(QUEUES, limit=10, timeout=0)).tasks
    # Redis restarted: the queue and the slots are gone; the store still knows what runs.
    lost = InMemoryTaskQueue(clock)
    after = worker(repo, lost, clock, InMemoryFlowLimiter(clock))
    await after.reconcile(after=None)
    claim = await after.claim_batch(QUEUES, limit=10, timeout=0)
    assert claim.tasks == []
    assert [t.id for t, _ in claim.throttled] != [running.id]
    assert len(claim.throttled) == 1


async def test_the_worker_logs_a_throttled_start_at_debug_with_its_wait(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = Registry()

    @tasks.task("plain")
    async def plain(payload: dict[str, object], ctx: TaskContext) -> None:
        return None

    first, second = await submit(service, "plain", 2)
    running = Worker(worker(repo, queue, clock, limiter), tasks, WorkerOptions(queues=QUEUES))
    with caplog.at_level(logging.DEBUG, logger=worker_log.name):
        assert await running.run_once() == 1
        await running.wait_idle()
    [record] = [r for r in caplog.records if r.getMessage() == "task throttled"]
    assert record.levelno == logging.DEBUG
    assert (record.task_id, record.type) == (second, "plain")  # type: ignore[attr-defined]
    assert SLOT_RECHECK <= record.wait < 2 * SLOT_RECHECK  # type: ignore[attr-defined]
    assert (await repo.get(first)).status is TaskStatus.SUCCESS


async def test_a_queue_limit_on_the_one_queue_served_is_asked_without_reading_first(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    ids = await submit(service, "mail.send", 3)
    execution = worker(repo, queue, clock, limiter, FlowPolicy(queues={"mail": HOURLY}))

    claim = await execution.claim_batch(["mail"], limit=10, timeout=0)

    assert [t.id for t in claim.tasks] == ids[:2]
    [(held_back, wait)] = claim.throttled
    assert held_back.id == ids[2]
    assert wait == pytest.approx(1800 + SLOT_RECHECK * 0.5)
    stored = await repo.get(ids[2])
    assert (stored.status, stored.attempts) == (TaskStatus.PENDING, 0)


class CountingReads:
    """The repository, counting the ids the claim reads before it asks the limiter."""

    def __init__(self, inner: InMemoryTaskRepository) -> None:
        self._inner = inner
        self.read: list[UUID] = []

    async def popped(self, task_ids: Sequence[UUID], **options: Any) -> list[Popped]:
        self.read += task_ids
        return await self._inner.popped(task_ids, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Untold:
    """A queue that hands back bare ids, as one whose pushers did not tell the types."""

    def __init__(self, inner: InMemoryTaskQueue) -> None:
        self._inner = inner

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        return list(await self._inner.pop(queues, limit=limit, timeout=timeout))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_with_the_types_handed_back_a_claim_reads_only_the_refused(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    limited = await submit(service, "mail.send", 3)
    free = await submit(service, "plain", 2)  # no limit of its own here
    reads = CountingReads(repo)
    policy = FlowPolicy(types={"mail.send": HOURLY})
    execution = worker(reads, queue, clock, limiter, policy)  # type: ignore[arg-type]

    claim = await execution.claim_batch(QUEUES, limit=10, timeout=0)

    assert sorted(t.id for t in claim.tasks) == sorted([*limited[:2], *free])
    assert [held.id for held, _ in claim.throttled] == [limited[2]]
    # Only the refused one, for its priority on the way back to the queue.
    assert reads.read == [limited[2]]


async def test_without_the_types_a_claim_reads_its_batch_and_limits_hold_the_same(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    limited = await submit(service, "mail.send", 3)
    free = await submit(service, "plain", 2)
    reads = CountingReads(repo)
    policy = FlowPolicy(types={"mail.send": HOURLY})
    execution = worker(reads, Untold(queue), clock, limiter, policy)  # type: ignore[arg-type]

    claim = await execution.claim_batch(QUEUES, limit=10, timeout=0)

    assert sorted(t.id for t in claim.tasks) == sorted([*limited[:2], *free])
    assert [held.id for held, _ in claim.throttled] == [limited[2]]
    assert sorted(reads.read) == sorted([*limited, *free])


async def test_a_concurrency_key_is_read_from_the_payload_even_with_the_type_known(
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    service: TaskService,
    limiter: InMemoryFlowLimiter,
) -> None:
    policy = FlowPolicy(types={"mail.send": PER_CUSTOMER})
    a1, a2 = await submit(service, "mail.send", 2, customer="a")
    [b1] = await submit(service, "mail.send", 1, customer="b")
    reads = CountingReads(repo)
    execution = worker(reads, queue, clock, limiter, policy)  # type: ignore[arg-type]

    claim = await execution.claim_batch(QUEUES, limit=10, timeout=0)

    assert sorted(t.id for t in claim.tasks) == sorted([a1, b1])
    assert [held.id for held, _ in claim.throttled] == [a2]
    assert sorted(reads.read) == sorted([a1, a2, b1])
