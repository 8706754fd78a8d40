"""The TaskQueue contract: every adapter passes the same suite.

What it promises:
- a pushed id comes out of ``pop`` once it is due, never before: by the queue's clock, once
  that clock reaches run_at (the Redis queue counts in whole milliseconds and may be up to one
  millisecond late, never early);
- within one ``pop``, the queues listed are served in the order given; within a queue, the
  highest priority comes first, then the earliest run_at, then the lowest task id (task ids are
  time-ordered UUIDv7, so among equals the older task goes first); run_ats less than a
  millisecond apart may count as equal;
- pushing an id that is queued already changes nothing unless the new run_at is earlier, in
  which case the earlier one wins; it is delivered once either way;
- ``pop`` returns at most ``limit`` ids and waits up to ``timeout`` for the first, waking as
  soon as one is pushed or becomes due, including an id pushed while it waits with a run_at
  sooner than any it knew of when it began to wait.

Both adapters read time from the same fake clock, so delays are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import redis.asyncio

import taskflow.adapters.redis as redis_adapter
from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskQueue
from taskflow.adapters.redis import RedisTaskQueue, connect
from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.ports import Dispatch, PoppedIds, TaskQueue
from tests.clocks import FakeClock

START = datetime(2030, 1, 1, tzinfo=UTC)
Q = "default"


@dataclass
class Harness:
    queue: TaskQueue
    clock: FakeClock
    # Return once a pop of this test's waits inside the queue, or once none does.
    until_waiting: Callable[[], Awaitable[None]]
    until_not_waiting: Callable[[], Awaitable[None]]


async def turns_of_the_loop() -> None:
    """In process, a pop waits once its task has run to its first await, and is gone once
    cancelled: a few turns of the loop do. (Were they too few, the tests using this would only
    test less, never fail.)"""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with either(request) as built:
        yield built


@pytest.fixture(params=["memory", "redis"])
async def keeping_kinds(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A queue that hands each popped id's queue and type back (the memory queue always does)."""
    async with either(request, kinds=True) as built:
        yield built


@contextlib.asynccontextmanager
async def either(request: pytest.FixtureRequest, *, kinds: bool = False) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock(START)
        yield Harness(InMemoryTaskQueue(clock), clock, turns_of_the_loop, turns_of_the_loop)
        return
    # Asked for here, not in the signature, so the memory runs never touch Redis.
    redis_url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_prefix"))
    async with on_redis(redis_url, prefix, kinds=kinds) as built:
        yield built


@contextlib.asynccontextmanager
async def on_redis(redis_url: str, prefix: str, *, kinds: bool = False) -> AsyncIterator[Harness]:
    client = connect(redis_url)
    # Named, so that the server can tell which of its clients are this test's.
    client.connection_pool.connection_kwargs["client_name"] = prefix
    clock = FakeClock(START)
    queue = RedisTaskQueue(client, prefix=prefix, clock=clock, kinds=kinds)
    admin = redis.asyncio.Redis.from_url(redis_url)

    async def blocked() -> bool:
        clients = await admin.client_list()
        return any(c.get("name") == prefix and "b" in c.get("flags", "") for c in clients)

    async def released() -> bool:
        return not await blocked()

    async def until_waiting() -> None:
        await until(blocked)

    async def until_not_waiting() -> None:
        await until(released)

    try:
        yield Harness(queue, clock, until_waiting, until_not_waiting)
    finally:
        await queue.close()
        await admin.aclose()


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(500):  # about five seconds
        if await condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the server never got there")


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def dispatch(
    task_id: UUID | None = None,
    *,
    queue: str = Q,
    priority: int = 5,
    run_at: datetime = START,
    type: str = "",
) -> Dispatch:
    return Dispatch(task_id or uuid.uuid4(), queue, priority, run_at, type)


def kinds_of(popped: list[UUID]) -> dict[UUID, tuple[str, str]]:
    assert isinstance(popped, PoppedIds), "a queue keeping kinds hands back PoppedIds"
    return popped.kinds


def sorted_ids(n: int) -> list[UUID]:
    return sorted(uuid.uuid4() for _ in range(n))


async def take(queue: TaskQueue, *queues: str, limit: int = 100) -> list[UUID]:
    return await queue.pop(queues or (Q,), limit=limit, timeout=0)


@contextlib.asynccontextmanager
async def background(
    pop: Coroutine[object, object, list[UUID]],
) -> AsyncIterator[asyncio.Task[list[UUID]]]:
    """Runs a pop alongside the test and never leaves it behind, even when the test fails."""
    task = asyncio.create_task(pop)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_pushed_id_comes_out_once(harness: Harness) -> None:
    d = dispatch()
    await harness.queue.push([d])

    assert await take(harness.queue) == [d.task_id]
    assert await take(harness.queue) == []


async def test_id_pushed_again_after_pop_comes_out_again(harness: Harness) -> None:
    d = dispatch()
    await harness.queue.push([d])
    assert await take(harness.queue) == [d.task_id]

    await harness.queue.push([d])  # e.g. handed back to the store and dispatched anew
    assert await take(harness.queue) == [d.task_id]


async def test_empty_push_does_nothing(harness: Harness) -> None:
    await harness.queue.push([])

    assert await take(harness.queue) == []


async def test_highest_priority_first_then_earliest_run_at(harness: Harness) -> None:
    # Ids and push order both run against the expected order, so only the rule can produce it.
    i0, i1, i2, i3 = sorted_ids(4)
    low = dispatch(i0, priority=1, run_at=at(-5))
    mid = dispatch(i1, priority=5, run_at=at(-2))
    high_late = dispatch(i2, priority=9, run_at=at(-1))
    high_early = dispatch(i3, priority=9, run_at=at(-3))
    await harness.queue.push([low, mid, high_late, high_early])

    assert await take(harness.queue) == [i3, i2, i1, i0]


async def test_ties_come_out_in_task_id_order(harness: Harness) -> None:
    ids = sorted_ids(5)
    pushed = [ids[3], ids[0], ids[4], ids[2], ids[1]]
    await harness.queue.push([dispatch(i, priority=7, run_at=at(-1)) for i in pushed])

    assert await take(harness.queue) == ids


async def test_future_run_at_is_not_popped_before_due(harness: Harness) -> None:
    run_at = at(60) + timedelta(microseconds=500)
    d = dispatch(run_at=run_at)
    await harness.queue.push([d])

    assert await take(harness.queue) == []
    harness.clock.set(run_at - timedelta(microseconds=1))
    assert await take(harness.queue) == []
    harness.clock.set(run_at + timedelta(milliseconds=1))
    assert await take(harness.queue) == [d.task_id]
    assert await take(harness.queue) == []


async def test_ids_that_became_due_keep_priority_order(harness: Harness) -> None:
    i0, i1, i2, i3 = sorted_ids(4)
    ready_low = dispatch(i0, priority=2, run_at=at(-1))
    delayed_mid = dispatch(i1, priority=5, run_at=at(5))
    delayed_high_late = dispatch(i2, priority=8, run_at=at(10))
    delayed_high_early = dispatch(i3, priority=8, run_at=at(2))
    await harness.queue.push([ready_low, delayed_mid, delayed_high_late, delayed_high_early])

    harness.clock.advance(10)
    assert await take(harness.queue) == [i3, i2, i1, i0]


async def test_many_delayed_ids_all_come_out_once_due(harness: Harness) -> None:
    # More than the Redis queue promotes per call, to show that its bound loses nothing.
    pushed = [dispatch(run_at=at(1 + n / 1000)) for n in range(2500)]
    await harness.queue.push(pushed)
    harness.clock.advance(10)

    popped: list[UUID] = []
    for _ in range(10):  # 4 pops are enough; bounded so a queue that never empties fails
        batch = await take(harness.queue, limit=700)
        assert len(batch) <= 700
        popped += batch
    assert sorted(popped) == sorted(d.task_id for d in pushed)


async def test_one_push_of_thousands_of_due_and_delayed_ids_loses_none(
    harness: Harness,
) -> None:
    # More ids in one call than the Redis push script adds or removes per command.
    due = [dispatch(queue=q, priority=n % 10) for n in range(4500) for q in (Q, "other")]
    later = [dispatch(run_at=at(5 + n / 1000)) for n in range(1200)]
    await harness.queue.push([*due, *later])

    now = [i for _ in range(10) for i in await take(harness.queue, Q, "other", limit=1000)]
    assert sorted(now) == sorted(d.task_id for d in due)
    harness.clock.advance(10)
    after = [i for _ in range(5) for i in await take(harness.queue, limit=1000)]
    assert sorted(after) == sorted(d.task_id for d in later)


async def test_limit_is_respected(harness: Harness) -> None:
    pushed = [dispatch(run_at=at(-10 + n)) for n in range(5)]
    await harness.queue.push(pushed)
    ids = [d.task_id for d in pushed]

    assert await take(harness.queue, limit=2) == ids[:2]
    assert await take(harness.queue, limit=2) == ids[2:4]
    assert await take(harness.queue, limit=2) == ids[4:]


async def test_queues_are_served_in_the_order_given(harness: Harness) -> None:
    a = dispatch(queue="a", priority=0)
    b = dispatch(queue="b", priority=9)
    c = dispatch(queue="c", priority=9)
    await harness.queue.push([a, b, c])

    assert await take(harness.queue, "b", "a", limit=1) == [b.task_id]
    assert await take(harness.queue, "a", "b") == [a.task_id]
    assert await take(harness.queue, "c") == [c.task_id]


async def test_limit_spans_the_queues_in_order(harness: Harness) -> None:
    a1, a2 = dispatch(queue="a", run_at=at(-2)), dispatch(queue="a", run_at=at(-1))
    b1, b2 = dispatch(queue="b", run_at=at(-2)), dispatch(queue="b", run_at=at(-1))
    await harness.queue.push([b1, a2, b2, a1])

    assert await take(harness.queue, "a", "b", limit=3) == [a1.task_id, a2.task_id, b1.task_id]
    assert await take(harness.queue, "a", "b", limit=3) == [b2.task_id]


async def test_other_queues_are_untouched(harness: Harness) -> None:
    mine, other = dispatch(queue="mine"), dispatch(queue="other")
    await harness.queue.push([mine, other])

    assert await take(harness.queue, "mine") == [mine.task_id]
    assert await take(harness.queue, "mine") == []
    assert await take(harness.queue, "other") == [other.task_id]


async def test_pushing_the_same_id_twice_in_one_batch_delivers_it_once(harness: Harness) -> None:
    d = dispatch()
    await harness.queue.push([d, d])
    await harness.queue.push([d])

    assert await take(harness.queue) == [d.task_id]
    assert await take(harness.queue) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [(60, 10), (10, 60), (60, 0), (0, 60), (0, 0), (30, 30)],
    ids=["earlier-second", "later-second", "due-second", "due-first", "both-due", "same"],
)
async def test_pushing_an_id_again_delivers_it_once_at_the_earlier_run_at(
    harness: Harness, first: int, second: int
) -> None:
    task_id = uuid.uuid4()
    await harness.queue.push([dispatch(task_id, run_at=at(first))])
    await harness.queue.push([dispatch(task_id, run_at=at(second))])
    earlier, later = sorted((first, second))

    if earlier > 0:
        harness.clock.set(at(earlier - 0.001))
        assert await take(harness.queue) == []
    harness.clock.set(at(earlier))
    assert await take(harness.queue) == [task_id]
    harness.clock.set(at(later + 1))
    assert await take(harness.queue) == []


async def test_pop_with_timeout_waits_then_returns_nothing(harness: Harness) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await harness.queue.pop([Q], limit=10, timeout=0.3) == []
    assert 0.28 <= loop.time() - started < 5


async def test_blocked_pop_wakes_when_an_id_is_pushed(harness: Harness) -> None:
    d = dispatch(queue="b")
    async with background(harness.queue.pop(["a", "b"], limit=10, timeout=30)) as waiting:
        await harness.until_waiting()
        assert not waiting.done()

        await harness.queue.push([d])
        assert await asyncio.wait_for(waiting, timeout=5) == [d.task_id]


async def test_blocked_pop_returns_a_delayed_id_once_due(harness: Harness) -> None:
    d = dispatch(run_at=at(0.3))
    await harness.queue.push([d])
    async with background(harness.queue.pop([Q], limit=10, timeout=30)) as waiting:
        await harness.until_waiting()
        assert not waiting.done()

        harness.clock.advance(0.3)
        assert await asyncio.wait_for(waiting, timeout=5) == [d.task_id]


async def test_cancelled_pop_takes_nothing_pushed_afterwards(harness: Harness) -> None:
    async with background(harness.queue.pop([Q], limit=10, timeout=30)) as waiting:
        await harness.until_waiting()
        assert not waiting.done()
    assert waiting.cancelled()
    await harness.until_not_waiting()  # the server has let go of the abandoned wait

    d = dispatch()
    await harness.queue.push([d])
    assert await take(harness.queue) == [d.task_id]


# -- due times learnt while waiting ------------------------------------------------------------


@pytest.fixture
def only_wakes_bring_news(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blocked Redis pop also looks again every MAX_BLOCK (one second); made longer than the
    tests' bounds, it cannot be what brings a sooner due time to a pop in time."""
    monkeypatch.setattr(redis_adapter, "MAX_BLOCK", 60.0)


async def still_waiting_after_a_look(waiting: asyncio.Task[list[UUID]]) -> bool:
    """Longer than the 0.2 s the waiting pop sleeps before it looks again at an id it knows."""
    await asyncio.sleep(0.4)
    return not waiting.done()


@pytest.mark.usefixtures("only_wakes_bring_news")
async def test_blocked_pop_learns_of_a_delayed_id_pushed_while_it_waits(harness: Harness) -> None:
    d = dispatch(run_at=at(0.2))
    async with background(harness.queue.pop([Q], limit=10, timeout=30)) as waiting:
        await harness.until_waiting()

        await harness.queue.push([d])
        assert await still_waiting_after_a_look(waiting)  # not before it is due
        harness.clock.advance(0.2)
        assert await asyncio.wait_for(waiting, timeout=10) == [d.task_id]


@pytest.mark.usefixtures("only_wakes_bring_news")
async def test_blocked_pop_learns_of_a_delayed_id_due_sooner_than_the_one_it_waits_for(
    harness: Harness,
) -> None:
    later, sooner = dispatch(run_at=at(20)), dispatch(run_at=at(0.2))
    await harness.queue.push([later])
    async with background(harness.queue.pop([Q], limit=10, timeout=30)) as waiting:
        await harness.until_waiting()

        await harness.queue.push([sooner])
        assert await still_waiting_after_a_look(waiting)
        harness.clock.advance(0.2)
        assert await asyncio.wait_for(waiting, timeout=10) == [sooner.task_id]
    assert await take(harness.queue) == []


@pytest.fixture(params=["memory", "redis"])
async def live_queue(request: pytest.FixtureRequest) -> AsyncIterator[TaskQueue]:
    """A queue on the host's clock: due times are kept in real time, with no fake to move."""
    if request.param == "memory":
        yield InMemoryTaskQueue(SystemClock())
        return
    redis_url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_prefix"))
    queue = RedisTaskQueue(connect(redis_url), prefix=prefix, clock=SystemClock())
    try:
        yield queue
    finally:
        await queue.close()


@pytest.mark.usefixtures("only_wakes_bring_news")
@pytest.mark.parametrize("known", [None, 20.0], ids=["none-known", "a-later-one-known"])
async def test_on_the_real_clock_an_id_pushed_while_a_pop_waits_comes_out_once_due(
    live_queue: TaskQueue, known: float | None
) -> None:
    if known is not None:
        await live_queue.push([dispatch(run_at=datetime.now(UTC) + timedelta(seconds=known))])
    async with background(live_queue.pop([Q], limit=10, timeout=30)) as waiting:
        await asyncio.sleep(0.05)  # under way; were it not yet, the push would only come first
        run_at = datetime.now(UTC) + timedelta(seconds=0.2)
        d = dispatch(run_at=run_at)
        await live_queue.push([d])

        assert await asyncio.wait_for(waiting, timeout=10) == [d.task_id]
        assert datetime.now(UTC) >= run_at


# Redis only: what a real server adds (foreign data in our keys, outages, socket timeouts).


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_harness(redis_url: str, redis_prefix: str) -> AsyncIterator[Harness]:
    async with on_redis(redis_url, redis_prefix) as built:
        yield built


async def test_redis_drops_and_logs_members_that_are_not_task_ids(
    redis_harness: Harness,
    raw_redis: redis.asyncio.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="taskflow.queue")
    valid = sorted_ids(2)
    huge = "x" * 1_000_000
    ready, delayed = f"{redis_prefix}:q:{Q}:ready", f"{redis_prefix}:q:{Q}:delayed"
    await raw_redis.zadd(ready, {"not-a-uuid": 0, huge: 1, str(valid[0]): 2, "é" * 18: 3})
    await redis_harness.queue.push([dispatch(valid[1], run_at=at(5))])
    await raw_redis.zadd(delayed, {"no-priority-here": 0, "7:not-a-uuid-either": 1})
    redis_harness.clock.advance(10)

    assert await take(redis_harness.queue) == valid
    assert await take(redis_harness.queue) == []
    warnings = [r for r in caplog.records if r.name == "taskflow.queue"]
    assert len(warnings) == 5
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert all(len(r.getMessage()) < 300 for r in warnings)
    assert await raw_redis.exists(ready, delayed) == 0


async def test_redis_wake_members_never_pile_up_nor_pass_for_task_ids(
    redis_harness: Harness,
    raw_redis: redis.asyncio.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="taskflow.queue")
    wake = f"{redis_prefix}:q:{Q}:wake"
    # Each one due sooner than all before it, with nobody waiting to be woken.
    for n in range(50):
        await redis_harness.queue.push([dispatch(run_at=at(100 - n))])
    assert await raw_redis.zcard(wake) == 1

    # A pop that may block takes the news for itself; the wake member is not an id.
    assert await redis_harness.queue.pop([Q], limit=10, timeout=0.05) == []
    assert await raw_redis.exists(wake) == 0
    await redis_harness.queue.push([dispatch(run_at=at(1))])
    async with background(redis_harness.queue.pop([Q], limit=10, timeout=30)) as waiting:
        await redis_harness.until_waiting()
        assert await raw_redis.exists(wake) == 0  # taken by the waiting pop, or dropped by it
        await redis_harness.queue.push([dispatch(run_at=at(60))])  # later: no wake member
        assert await raw_redis.exists(wake) == 0
        assert not waiting.done()
    assert [r.getMessage() for r in caplog.records if r.name == "taskflow.queue"] == []


async def test_redis_alarms_left_behind_expire(
    redis_url: str, redis_prefix: str, raw_redis: redis.asyncio.Redis
) -> None:
    queue = RedisTaskQueue(connect(redis_url), prefix=redis_prefix)
    try:
        for _ in range(10):  # a pop that waits on its alarm, ten times over
            await queue.push([dispatch(run_at=datetime.now(UTC) + timedelta(seconds=0.02))])
            assert len(await queue.pop([Q], limit=10, timeout=5)) == 1
    finally:
        await queue.close()
    # Taken by the pop that rang it, as a rule; one rung just after its pop returned remains.
    alarms = [k async for k in raw_redis.scan_iter(match=f"{redis_prefix}:alarm:*")]
    expiries = [await raw_redis.pttl(k) for k in alarms]
    assert all(0 < ms <= redis_adapter.ALARM_EXPIRY_MS for ms in expiries)


async def test_redis_unreachable_raises_queue_unavailable() -> None:
    queue = RedisTaskQueue(connect("redis://127.0.0.1:1/0", socket_timeout=1.0))
    try:
        await queue.push([])  # nothing to send, so nothing to fail
        with pytest.raises(QueueUnavailable):
            await queue.ping()
        with pytest.raises(QueueUnavailable):
            await queue.push([dispatch()])
        with pytest.raises(QueueUnavailable):
            await queue.pop([Q], limit=1, timeout=0)
        with pytest.raises(QueueUnavailable):
            await queue.pop([Q], limit=1, timeout=1)
    finally:
        await queue.close()


async def test_redis_blocking_pop_longer_than_the_socket_timeout_does_not_fail(
    redis_url: str, redis_prefix: str
) -> None:
    queue = RedisTaskQueue(connect(redis_url, socket_timeout=0.2), prefix=redis_prefix)
    try:
        assert await queue.pop([Q], limit=1, timeout=0.8) == []
        d = dispatch(run_at=datetime.now(UTC))
        await queue.push([d])
        assert await queue.pop([Q], limit=1, timeout=0.8) == [d.task_id]
        await queue.ping()
    finally:
        await queue.close()


# -- what the reconciler relies on -------------------------------------------------------------


async def test_absent_names_what_is_neither_ready_nor_waiting(harness: Harness) -> None:
    ready, waiting, popped, never = (dispatch() for _ in range(4))
    waiting = dispatch(run_at=at(60))
    await harness.queue.push([ready, waiting, popped])
    await harness.queue.pop([Q], limit=100, timeout=0)  # takes ready and popped
    await harness.queue.push([ready])
    assert await harness.queue.absent([ready, waiting, popped, never]) == [popped, never]
    assert await harness.queue.absent([]) == []


async def test_absent_checks_every_queue_and_keeps_the_order_asked_in(harness: Harness) -> None:
    here = [dispatch(queue="mail") for _ in range(3)]
    gone = [dispatch(queue="reports", priority=p) for p in (0, 9)]
    waiting = dispatch(queue="reports", run_at=at(60))
    await harness.queue.push([*here, waiting])
    mixed = [gone[0], here[0], waiting, gone[1], here[1], here[2]]
    assert await harness.queue.absent(mixed) == gone


async def test_a_fresh_queue_is_not_intact_until_marked(harness: Harness) -> None:
    assert await harness.queue.intact() is False
    await harness.queue.mark_intact()
    assert await harness.queue.intact() is True
    assert await harness.queue.warnings() == []


async def test_a_wiped_redis_is_no_longer_intact(redis_url: str, redis_prefix: str) -> None:
    client = redis.asyncio.from_url(redis_url)
    queue = RedisTaskQueue(connect(redis_url), prefix=redis_prefix)
    try:
        await queue.mark_intact()
        await queue.push([dispatch()])
        keys = [k async for k in client.scan_iter(match=f"{redis_prefix}:*")]
        await client.delete(*keys)  # what FLUSHALL or an empty restart does to our keys
        assert await queue.intact() is False
    finally:
        await client.aclose()
        await queue.close()


# -- kinds: the type a push told comes back with the id ------------------------------------


async def test_popped_ids_come_with_the_queue_and_type_their_push_told(
    keeping_kinds: Harness,
) -> None:
    mail = dispatch(queue="mail", type="mail.send")
    report = dispatch(queue="reports", type="reports.build")
    untold = dispatch(queue="reports")  # pushed by a process that did not say
    await keeping_kinds.queue.push([mail, report, untold])

    popped = await take(keeping_kinds.queue, "mail", "reports")

    assert sorted(popped) == sorted([mail.task_id, report.task_id, untold.task_id])
    assert kinds_of(popped) == {
        mail.task_id: ("mail", "mail.send"),
        report.task_id: ("reports", "reports.build"),
    }


async def test_kinds_come_back_after_a_delay_and_through_a_blocked_pop(
    keeping_kinds: Harness,
) -> None:
    later = dispatch(run_at=at(5), type="t.later")
    await keeping_kinds.queue.push([later])
    keeping_kinds.clock.advance(5)
    assert kinds_of(await take(keeping_kinds.queue)) == {later.task_id: (Q, "t.later")}

    pushed = dispatch(queue="b", type="t.pushed")
    async with background(keeping_kinds.queue.pop(["a", "b"], limit=10, timeout=30)) as waiting:
        await keeping_kinds.until_waiting()
        await keeping_kinds.queue.push([pushed])
        popped = await asyncio.wait_for(waiting, timeout=5)
    assert popped == [pushed.task_id]
    assert kinds_of(popped) == {pushed.task_id: ("b", "t.pushed")}


async def test_an_id_pushed_again_comes_back_with_its_kind(keeping_kinds: Harness) -> None:
    d = dispatch(type="t.again")
    await keeping_kinds.queue.push([d])
    assert kinds_of(await take(keeping_kinds.queue)) == {d.task_id: (Q, "t.again")}
    await keeping_kinds.queue.push([d])  # handed back by a throttled claim, say
    assert kinds_of(await take(keeping_kinds.queue)) == {d.task_id: (Q, "t.again")}


async def test_redis_forgets_kinds_as_ids_are_popped_and_keeps_none_unless_asked(
    redis_url: str, redis_prefix: str
) -> None:
    admin = redis.asyncio.Redis.from_url(redis_url)
    kinds_key = f"{redis_prefix}:q:{Q}:kinds"
    try:
        async with on_redis(redis_url, redis_prefix, kinds=True) as keeping:
            await keeping.queue.push([dispatch(type="t.x") for _ in range(50)])
            assert await admin.hlen(kinds_key) == 50
            assert len(await take(keeping.queue, limit=20)) == 20
            assert await admin.hlen(kinds_key) == 30
            assert len(await take(keeping.queue)) == 30
            assert not await admin.exists(kinds_key)

        async with on_redis(redis_url, redis_prefix) as plain:  # a deployment without type limits
            await plain.queue.push([dispatch(type="t.x") for _ in range(5)])
            popped = await take(plain.queue)
            assert len(popped) == 5
            assert not isinstance(popped, PoppedIds)
            assert not await admin.exists(kinds_key)
    finally:
        await admin.aclose()
