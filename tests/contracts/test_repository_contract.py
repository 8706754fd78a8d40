"""The TaskRepository contract: every line of domain/ports.py, on every backend.

Backends: the in-memory fake (with a clock the test moves), SQLite and PostgreSQL (each test
gets a fresh, migrated database; PostgreSQL being down fails the run). On the SQL stores "now"
is the store's own clock, so waiting for a lease to lapse is real, short, and polled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.engine import create_engine, migrate
from taskflow.adapters.sql.schema import attempts, metadata
from taskflow.domain.attempts import Attempt, AttemptEnd, AttemptOutcome
from taskflow.domain.errors import (
    DuplicateTask,
    IdempotencyKeyReused,
    InvalidTransition,
    NotDue,
    StaleTask,
    StoreUnavailable,
    TaskNotFound,
    UnstorableValue,
)
from taskflow.domain.model import Lease, Progress, Task, TaskError, TaskStatus
from taskflow.domain.ports import Dispatch, TaskRepository
from taskflow.domain.retry import RetryPolicy
from tests.clocks import FakeClock
from tests.conftest import PG_ADMIN_URL

SQL_BACKENDS = ["sqlite", "postgres"]
HOUR = timedelta(hours=1)
# Clocks of the test and of a database on the same host agree closely; this absorbs scheduling.
SLACK = timedelta(seconds=1)


@dataclass
class Backend:
    name: str
    repo: TaskRepository
    now: Callable[[], datetime]
    elapse: Callable[[float], Awaitable[None]]
    another: Callable[[], TaskRepository]  # a second repository on the same store


@pytest.fixture
async def backend(store_url: str) -> AsyncIterator[Backend]:
    if store_url == "memory":
        clock = FakeClock(datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC))
        repo = InMemoryTaskRepository(clock)

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        yield Backend("memory", repo, clock.now, advance, lambda: repo)
        return
    await migrate(store_url)
    opened: list[tuple[SqlTaskRepository, AsyncEngine]] = []

    def open_repo() -> TaskRepository:
        engine = create_engine(store_url)
        opened.append((SqlTaskRepository(engine, clock=SystemClock()), engine))
        return opened[-1][0]

    name = "sqlite" if store_url.startswith("sqlite") else "postgres"
    yield Backend(name, open_repo(), SystemClock().now, asyncio.sleep, open_repo)
    for repo, engine in opened:
        await repo.close()
        await engine.dispose()


def new_task(now: datetime, **options: Any) -> Task:
    options.setdefault("payload", {"n": 1})
    return Task.new(id=uuid.uuid4(), type="test.job", now=now, **options)


def lease(now: datetime, seconds: float = 60.0, worker: str = "w-test") -> Lease:
    return Lease(uuid.uuid4(), worker, now + timedelta(seconds=seconds))


def token(task: Task) -> uuid.UUID:
    assert task.lease is not None
    return task.lease.token


def assert_same(got: Task, want: Task) -> None:
    for f in fields(Task):
        assert getattr(got, f.name) == getattr(want, f.name), f.name


async def eventually(backend: Backend, condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll until ``condition`` holds, letting store time pass; at most about five seconds."""
    for _ in range(500):
        if await condition():
            return
        await backend.elapse(0.01)
    pytest.fail("condition never held")


async def claim_one(backend: Backend, task: Task, seconds: float = 60.0) -> Task:
    await backend.repo.add(task)
    claimed = await backend.repo.claim([task.id], worker_id="w-1", lease_seconds=seconds)
    assert [t.id for t in claimed] == [task.id]
    return claimed[0]


# -- add, get ---------------------------------------------------------------------------------


def retried_task(now: datetime) -> Task:
    """PENDING after a failed attempt, with every option set and the attempt's traces kept."""
    task = Task.new(
        id=uuid.uuid4(),
        type="billing.send_invoice",
        payload={"order": "A-1", "lines": [1, 2.5, "x", None, True], "nested": {"k": {}}},
        now=now - 2 * HOUR,
        queue="billing",
        priority=8,
        max_retries=5,
        timeout_seconds=12.5,
        metadata={"tenant": "acme", "tags": ["a", "b"], "émoji": "✓"},
        idempotency_key=f"key-{uuid.uuid4()}",
        retry_policy=RetryPolicy(base=2.0, max=60.0),
    )
    first = task.claim(lease(now - 2 * HOUR), now=now - 2 * HOUR)
    first = first.report_progress(token(first), Progress(0.5, "half"), now=now - 2 * HOUR)
    error = TaskError("ValueError", "boom")
    return first.fail(token(first), error, now=now - HOUR, rand=0.5, retry_after=0.0)


def running_task(now: datetime) -> Task:
    """PROCESSING, with every field a running task can carry set to something non-default."""
    task = retried_task(now)
    second = task.claim(lease(now, worker="w-2"), now=now)
    progressed = second.report_progress(token(second), Progress(0.25, "quarter"), now=now)
    return replace(progressed.cancel(now=now), result={"partial": [1, 2]})


def finished_task(now: datetime) -> Task:
    task = new_task(now - HOUR, metadata={"m": 1})
    claimed = task.claim(lease(now - HOUR), now=now - HOUR)
    return claimed.succeed(token(claimed), [{"ok": True}, 3.25, "done"], now=now)


@pytest.mark.parametrize("shape", [new_task, retried_task, running_task, finished_task])
async def test_add_then_get_returns_every_field(
    backend: Backend, shape: Callable[[datetime], Task]
) -> None:
    task = shape(backend.now())
    await backend.repo.add(task)
    got = await backend.repo.get(task.id)
    assert_same(got, task)
    assert got == task


async def test_timestamps_come_back_utc_with_microseconds(backend: Backend) -> None:
    now = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    task = running_task(now)
    await backend.repo.add(task)
    got = await backend.repo.get(task.id)
    assert got.lease is not None
    instants = (got.run_at, got.created_at, got.started_at, got.updated_at, got.lease.expires_at)
    for instant in instants:
        assert instant is not None
        assert instant.utcoffset() == timedelta(0)
    assert got.updated_at == now
    assert got.updated_at.microsecond == 789012


async def test_get_unknown_id_raises_task_not_found(backend: Backend) -> None:
    with pytest.raises(TaskNotFound):
        await backend.repo.get(uuid.uuid4())


async def test_add_existing_id_raises_duplicate_and_keeps_the_first(backend: Backend) -> None:
    task = new_task(backend.now())
    await backend.repo.add(task)
    with pytest.raises(DuplicateTask):
        await backend.repo.add(replace(task, payload={"other": True}))
    assert await backend.repo.get(task.id) == task


async def test_add_many_stores_all(backend: Backend) -> None:
    batch = [new_task(backend.now(), payload={"i": i}) for i in range(5)]
    await backend.repo.add_many(batch)
    assert await backend.repo.get_many([t.id for t in batch]) == batch


async def test_add_many_with_a_known_id_stores_nothing(backend: Backend) -> None:
    existing = new_task(backend.now())
    await backend.repo.add(existing)
    batch = [new_task(backend.now()), replace(existing, payload={}), new_task(backend.now())]
    with pytest.raises(DuplicateTask):
        await backend.repo.add_many(batch)
    assert await backend.repo.get_many([t.id for t in batch]) == [existing]


async def test_add_many_with_an_id_twice_stores_nothing(backend: Backend) -> None:
    first = new_task(backend.now())
    batch = [first, new_task(backend.now()), replace(first, payload={"again": 1})]
    with pytest.raises(DuplicateTask):
        await backend.repo.add_many(batch)
    assert await backend.repo.get_many([t.id for t in batch]) == []


async def test_add_many_stores_every_field_of_a_large_mixed_batch(backend: Backend) -> None:
    """A full batch of every shape and awkward JSON comes back exactly as it went in."""
    now = backend.now()
    awkward: list[dict[str, Any]] = [
        {},
        {"quote": 'a"b\\c', "line": "x\ny", "émoji": "✓ 😀", "tab\t": "\u2028"},
        {"big": 2**62, "neg": -(2**53) - 1, "float": 0.1, "tiny": 5e-324, "exp": 1.5e-7},
        {"nested": [[], {}, [None, True, False, {"k": [1.25]}]], "empty": ""},
    ]
    shapes = [new_task, retried_task, running_task, finished_task]
    batch = [
        replace(shapes[i % 4](now), payload=awkward[i % len(awkward)], metadata={"i": i})
        for i in range(1000)
    ]
    batch[1] = replace(batch[1], timeout_seconds=0.1, run_at=now + timedelta(days=3650))
    await backend.repo.add_many(batch)
    assert await backend.repo.get_many([t.id for t in batch]) == batch


async def test_a_refused_batch_leaves_the_store_usable(backend: Backend) -> None:
    existing = new_task(backend.now())
    await backend.repo.add(existing)
    for _ in range(3):  # more often than the pool has idle connections to spoil
        with pytest.raises(DuplicateTask):
            await backend.repo.add_many([new_task(backend.now()), existing])
    batch = [new_task(backend.now()) for _ in range(3)]
    await backend.repo.add_many(batch)
    await backend.repo.add(new := new_task(backend.now()))
    assert await backend.repo.get_many([t.id for t in [*batch, new]]) == [*batch, new]


async def test_tasks_may_share_an_idempotency_key(backend: Backend) -> None:
    # A batch submitted with one key stores it on every task; uniqueness is add_idempotent's.
    batch = [new_task(backend.now(), idempotency_key="same") for _ in range(2)]
    await backend.repo.add_many(batch)
    await backend.repo.add(new_task(backend.now(), idempotency_key="same"))
    assert await backend.repo.get_many([t.id for t in batch]) == batch


async def test_get_many_skips_unknown_ids_and_keeps_the_given_order(backend: Backend) -> None:
    a, b, c = (new_task(backend.now()) for _ in range(3))
    await backend.repo.add_many([a, b, c])
    got = await backend.repo.get_many([c.id, uuid.uuid4(), a.id, b.id])
    assert got == [c, a, b]
    assert await backend.repo.get_many([]) == []


async def test_popped_reads_what_the_flow_gate_needs_in_the_given_order(backend: Backend) -> None:
    now = backend.now()
    a = new_task(now, queue="mail", priority=3, payload={"customer": "c-1", "n": 2})
    b = new_task(now, payload={"n": 1})
    await backend.repo.add_many([a, b])
    assert len(await backend.repo.claim([b.id], worker_id="w-1", lease_seconds=30)) == 1

    heads = await backend.repo.popped([b.id, uuid.uuid4(), a.id], keys=())
    assert [(p.id, p.type, p.queue, p.priority, p.status, p.attempts) for p in heads] == [
        (b.id, "test.job", "default", b.priority, TaskStatus.PROCESSING, 1),
        (a.id, "test.job", "mail", 3, TaskStatus.PENDING, 0),
    ]
    keyed = await backend.repo.popped([a.id], keys={"customer"})
    assert keyed[0].payload["customer"] == "c-1"  # the named field, whatever else comes along
    assert await backend.repo.popped([], keys={"customer"}) == []


# -- add_idempotent ---------------------------------------------------------------------------


def keyed(backend: Backend, key: str, n: int = 1) -> list[Task]:
    return [new_task(backend.now(), idempotency_key=key, payload={"i": i}) for i in range(n)]


async def test_add_idempotent_with_a_new_key_stores_the_tasks(backend: Backend) -> None:
    batch = keyed(backend, "k-new", 3)
    stored, replayed = await backend.repo.add_idempotent(batch, key="k-new", request_hash="h1")
    assert (stored, replayed) == (batch, False)
    assert await backend.repo.get_many([t.id for t in batch]) == batch


async def test_the_same_key_and_hash_replays_the_tasks_as_they_are_now(backend: Backend) -> None:
    first = keyed(backend, "k-replay", 2)
    await backend.repo.add_idempotent(first, key="k-replay", request_hash="h1")
    cancelled = first[1].cancel(now=backend.now())
    await backend.repo.save(cancelled)
    again = keyed(backend, "k-replay", 2)

    stored, replayed = await backend.repo.add_idempotent(again, key="k-replay", request_hash="h1")

    assert replayed
    assert stored == [first[0], cancelled]
    assert await backend.repo.get_many([t.id for t in again]) == []


async def test_the_same_key_with_another_hash_is_refused(backend: Backend) -> None:
    [first] = keyed(backend, "k-reused")
    await backend.repo.add_idempotent([first], key="k-reused", request_hash="h1")
    [other] = keyed(backend, "k-reused")
    with pytest.raises(IdempotencyKeyReused):
        await backend.repo.add_idempotent([other], key="k-reused", request_hash="h2")
    assert await backend.repo.get_many([other.id]) == []
    assert await backend.repo.add_idempotent([other], key="k-reused", request_hash="h1") == (
        [first],
        True,
    )


async def test_replay_reads_a_known_key_and_stores_nothing(backend: Backend) -> None:
    assert await backend.repo.replay("k-unknown", "h1") is None
    first = keyed(backend, "k-read", 2)
    await backend.repo.add_idempotent(first, key="k-read", request_hash="h1")
    cancelled = first[0].cancel(now=backend.now())
    await backend.repo.save(cancelled)
    assert await backend.repo.replay("k-read", "h1") == [cancelled, first[1]]
    with pytest.raises(IdempotencyKeyReused):
        await backend.repo.replay("k-read", "h2")
    assert await backend.repo.replay("k-unknown", "h1") is None  # still: reading stored nothing


async def test_keys_are_independent(backend: Backend) -> None:
    [a] = keyed(backend, "k-a")
    [b] = keyed(backend, "k-b")
    assert await backend.repo.add_idempotent([a], key="k-a", request_hash="h") == ([a], False)
    assert await backend.repo.add_idempotent([b], key="k-b", request_hash="h") == ([b], False)


async def test_add_idempotent_with_a_known_id_stores_neither_tasks_nor_key(
    backend: Backend,
) -> None:
    existing = new_task(backend.now())
    await backend.repo.add(existing)
    fresh = keyed(backend, "k-dup")[0]
    with pytest.raises(DuplicateTask):
        await backend.repo.add_idempotent(
            [fresh, replace(existing, payload={})], key="k-dup", request_hash="h1"
        )
    assert await backend.repo.get_many([fresh.id]) == []
    # The key was not kept: a corrected request under it is new, whatever its hash.
    assert await backend.repo.add_idempotent([fresh], key="k-dup", request_hash="h2") == (
        [fresh],
        False,
    )


async def test_concurrent_add_idempotent_with_one_key_stores_one_task(backend: Backend) -> None:
    repos = [backend.another() for _ in range(4)]
    for repo in repos:
        await repo.ping()  # connect first, so the requests reach the store together
    candidates = keyed(backend, "k-race", 20)

    results = await asyncio.gather(
        *(
            repos[i % len(repos)].add_idempotent([task], key="k-race", request_hash="h")
            for i, task in enumerate(candidates)
        )
    )

    stored = await backend.repo.get_many([t.id for t in candidates])
    assert len(stored) == 1
    assert [replayed for _, replayed in results].count(False) == 1
    assert all(tasks == stored for tasks, _ in results)


async def test_prune_forgets_keys_stored_before_the_cutoff(backend: Backend) -> None:
    [first] = keyed(backend, "k-old")
    await backend.repo.add_idempotent([first], key="k-old", request_hash="h1")

    assert await backend.repo.prune_idempotency_keys(backend.now() - HOUR) == 0
    assert (
        await backend.repo.add_idempotent(keyed(backend, "k-old"), key="k-old", request_hash="h1")
    )[1]
    await backend.elapse(0.01)  # so that the key was stored strictly before the cutoff
    assert await backend.repo.prune_idempotency_keys(backend.now() + SLACK) == 1

    [second] = keyed(backend, "k-old")
    assert await backend.repo.add_idempotent([second], key="k-old", request_hash="h2") == (
        [second],
        False,
    )
    assert await backend.repo.get(first.id) == first  # the tasks stay; only the key goes


# -- save -------------------------------------------------------------------------------------


async def test_save_stores_the_next_version(backend: Backend) -> None:
    task = new_task(backend.now())
    await backend.repo.add(task)
    cancelled = task.cancel(now=backend.now())
    await backend.repo.save(cancelled)
    assert await backend.repo.get(task.id) == cancelled


@pytest.mark.parametrize("version_offset", [0, 2, -1])
async def test_save_of_a_stale_version_raises_and_changes_nothing(
    backend: Backend, version_offset: int
) -> None:
    task = new_task(backend.now())
    await backend.repo.add(task)
    await backend.repo.save(task.cancel(now=backend.now()))
    stored = await backend.repo.get(task.id)
    wrong = replace(stored.retry(now=backend.now()), version=stored.version + version_offset)
    with pytest.raises(StaleTask):
        await backend.repo.save(wrong)
    assert await backend.repo.get(task.id) == stored


async def test_concurrent_adds_are_independent(backend: Backend) -> None:
    """Many adds at once (the SQL store inserts them together): a duplicate fails alone."""
    existing = new_task(backend.now())
    await backend.repo.add(existing)
    fresh = [new_task(backend.now()) for _ in range(6)]
    outcomes = await asyncio.gather(
        *(backend.repo.add(t) for t in [*fresh[:3], existing, *fresh[3:]]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], DuplicateTask)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [None] * 6
    assert await backend.repo.get_many([t.id for t in fresh]) == fresh


async def test_concurrent_saves_each_get_their_own_outcome(backend: Backend) -> None:
    """Many saves at once (the SQL store commits them together): each ends as it would alone."""
    claimed = [await claim_one(backend, new_task(backend.now() - HOUR)) for _ in range(12)]
    good = [t.succeed(token(t), {"n": n}, now=backend.now()) for n, t in enumerate(claimed[:8])]
    stale = [
        replace(t.release(token(t), now=backend.now()), version=t.version + 5) for t in claimed[8:]
    ]
    unknown = new_task(backend.now()).cancel(now=backend.now())
    outcomes = await asyncio.gather(
        *(backend.repo.save(t) for t in [*good, *stale, unknown]), return_exceptions=True
    )
    assert outcomes[:8] == [None] * 8
    assert all(isinstance(o, StaleTask) for o in outcomes[8:12]), outcomes[8:12]
    assert isinstance(outcomes[12], TaskNotFound)
    for changed in good:
        assert await backend.repo.get(changed.id) == changed
    for original in claimed[8:]:
        assert await backend.repo.get(original.id) == original


async def test_save_of_an_unknown_task_raises_task_not_found(backend: Backend) -> None:
    task = new_task(backend.now())
    with pytest.raises(TaskNotFound):
        await backend.repo.save(task.cancel(now=backend.now()))


# -- claim ------------------------------------------------------------------------------------


def in_status(status: TaskStatus, now: datetime) -> Task:
    pending = new_task(now - HOUR)
    running = pending.claim(lease(now - HOUR), now=now - HOUR)
    build: dict[TaskStatus, Callable[[], Task]] = {
        TaskStatus.PENDING: lambda: pending,
        TaskStatus.PROCESSING: lambda: running,
        TaskStatus.SUCCESS: lambda: running.succeed(token(running), None, now=now),
        TaskStatus.FAILED: lambda: running.fail(
            token(running), TaskError("E", "e"), now=now, rand=0.0, final=True
        ),
        TaskStatus.CANCELLED: lambda: pending.cancel(now=now),
    }
    return build[status]()


def domain_would_claim(task: Task, now: datetime) -> bool:
    try:
        task.claim(lease(now), now=now)
    except (InvalidTransition, NotDue):
        return False
    return True


@pytest.mark.parametrize("status", list(TaskStatus))
async def test_claim_agrees_with_the_domain_on_every_status(
    backend: Backend, status: TaskStatus
) -> None:
    task = in_status(status, backend.now())
    assert task.status is status
    await backend.repo.add(task)
    claimed = await backend.repo.claim([task.id], worker_id="w-1", lease_seconds=30)
    assert bool(claimed) == domain_would_claim(task, backend.now())
    if not claimed:
        assert await backend.repo.get(task.id) == task


async def test_claim_gives_what_task_claim_gives(backend: Backend) -> None:
    task = retried_task(backend.now())
    assert task.progress is not None
    assert task.error is not None
    assert task.retry_count == 1
    await backend.repo.add(task)
    before = backend.now()
    [claimed] = await backend.repo.claim([task.id], worker_id="w-9", lease_seconds=42.5)
    after = backend.now()

    assert claimed.started_at is not None
    assert claimed.lease is not None
    assert before - SLACK <= claimed.started_at <= after + SLACK
    assert claimed.lease.worker_id == "w-9"
    assert claimed.lease.expires_at - claimed.started_at == timedelta(seconds=42.5)
    assert claimed.attempts == task.attempts + 1
    # The token and the instant are the store's to choose; everything else is Task.claim's.
    expected = task.claim(
        Lease(claimed.lease.token, "w-9", claimed.lease.expires_at), now=claimed.started_at
    )
    assert_same(claimed, expected)
    assert_same(await backend.repo.get(task.id), expected)


async def test_claim_skips_what_is_not_due_pending(backend: Backend) -> None:
    now = backend.now()
    due = [new_task(now - HOUR) for _ in range(3)]
    later = new_task(now, run_at=now + HOUR)
    running = in_status(TaskStatus.PROCESSING, now)
    done = in_status(TaskStatus.SUCCESS, now)
    await backend.repo.add_many([*due, later, running, done])
    asked = [
        due[2].id,
        later.id,
        uuid.uuid4(),
        due[0].id,
        running.id,
        due[2].id,
        done.id,
        due[1].id,
    ]
    claimed = await backend.repo.claim(asked, worker_id="w-1", lease_seconds=30)
    assert [t.id for t in claimed] == [due[2].id, due[0].id, due[1].id]
    assert all(t.status is TaskStatus.PROCESSING and t.attempts == 1 for t in claimed)
    assert len({token(t) for t in claimed}) == 3
    assert await backend.repo.get_many([later.id, running.id, done.id]) == [later, running, done]
    assert await backend.repo.claim([], worker_id="w-1", lease_seconds=30) == []


async def test_concurrent_claims_never_share_a_task(backend: Backend) -> None:
    other = backend.another()
    await other.ping()  # connect first, so both claims reach the store at the same moment
    for _ in range(5):
        batch = [new_task(backend.now() - HOUR) for _ in range(40)]
        await backend.repo.add_many(batch)
        ids = [t.id for t in batch]
        mine, theirs = await asyncio.gather(
            backend.repo.claim(ids, worker_id="w-a", lease_seconds=30),
            other.claim(list(reversed(ids)), worker_id="w-b", lease_seconds=30),
        )
        assert not {t.id for t in mine} & {t.id for t in theirs}
        assert {t.id for t in mine} | {t.id for t in theirs} == set(ids)
        for task in [*mine, *theirs]:
            [attempt] = await backend.repo.attempts(task.id)
            assert task.lease is not None
            assert attempt.worker_id == task.lease.worker_id


# -- leases -----------------------------------------------------------------------------------


async def test_renew_extends_a_held_lease_and_keeps_the_version(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR), seconds=30)
    renewed = (
        await backend.repo.renew_leases({claimed.id: token(claimed)}, lease_seconds=600)
    ).held
    assert renewed == {claimed.id}
    stored = await backend.repo.get(claimed.id)
    assert stored.lease is not None
    assert claimed.lease is not None
    assert stored.lease.expires_at - claimed.lease.expires_at >= timedelta(seconds=570)
    assert stored.lease.expires_at <= backend.now() + timedelta(seconds=600) + SLACK
    assert replace(stored, lease=claimed.lease) == claimed


async def test_a_save_after_a_renewal_keeps_the_later_expiry(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR), seconds=30)
    await backend.repo.renew_leases({claimed.id: token(claimed)}, lease_seconds=600)
    renewed = await backend.repo.get(claimed.id)
    # The worker's copy still carries the claim-time expiry when it reports progress.
    progressed = claimed.report_progress(token(claimed), Progress(0.5, "half"), now=backend.now())
    await backend.repo.save(progressed)
    stored = await backend.repo.get(claimed.id)
    assert stored.progress == Progress(0.5, "half")
    assert stored.lease == renewed.lease


async def test_renew_refuses_another_token(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR), seconds=30)
    assert (
        await backend.repo.renew_leases({claimed.id: uuid.uuid4()}, lease_seconds=600)
    ).held == set()
    assert (
        await backend.repo.renew_leases({uuid.uuid4(): token(claimed)}, lease_seconds=60)
    ).held == set()
    assert await backend.repo.get(claimed.id) == claimed


async def test_renew_refuses_a_lapsed_lease(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR), seconds=0.05)

    async def lapsed() -> bool:
        return claimed.id in {t.id for t in await backend.repo.expired(limit=100)}

    await eventually(backend, lapsed)
    assert (
        await backend.repo.renew_leases({claimed.id: token(claimed)}, lease_seconds=60)
    ).held == set()
    assert await backend.repo.get(claimed.id) == claimed


async def test_renew_refuses_a_task_no_longer_running(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR), seconds=30)
    released = claimed.release(token(claimed), now=backend.now())
    await backend.repo.save(released)
    assert (
        await backend.repo.renew_leases({claimed.id: token(claimed)}, lease_seconds=60)
    ).held == set()
    assert await backend.repo.get(claimed.id) == released


async def test_renew_answers_for_each_task_of_a_batch(backend: Backend) -> None:
    a, b, c = [await claim_one(backend, new_task(backend.now() - HOUR)) for _ in range(3)]
    leases = {a.id: token(a), b.id: uuid.uuid4(), c.id: token(c)}
    assert (await backend.repo.renew_leases(leases, lease_seconds=90)).held == {a.id, c.id}
    assert (await backend.repo.renew_leases({}, lease_seconds=90)).held == set()


async def test_expired_lists_only_running_tasks_whose_lease_lapsed(backend: Backend) -> None:
    short = await claim_one(backend, new_task(backend.now() - HOUR), seconds=0.05)
    long = await claim_one(backend, new_task(backend.now() - HOUR), seconds=600)
    pending = new_task(backend.now() - HOUR)
    await backend.repo.add(pending)

    async def lapsed() -> bool:
        return bool(await backend.repo.expired(limit=100))

    await eventually(backend, lapsed)
    assert await backend.repo.expired(limit=100) == [short]
    assert long.id not in {t.id for t in await backend.repo.expired(limit=100)}


async def test_expired_respects_the_limit_oldest_first(backend: Backend) -> None:
    tasks = [new_task(backend.now() - HOUR) for _ in range(3)]
    await backend.repo.add_many(tasks)
    # Claimed in reverse, so the oldest lease is not the first row stored.
    for task in reversed(tasks):
        await backend.repo.claim([task.id], worker_id="w", lease_seconds=0.05)
        await backend.elapse(0.01)

    async def all_lapsed() -> bool:
        return len(await backend.repo.expired(limit=100)) == 3

    await eventually(backend, all_lapsed)
    assert [t.id for t in await backend.repo.expired(limit=2)] == [tasks[2].id, tasks[1].id]


async def test_renew_reports_the_cancel_requests_of_held_leases(backend: Backend) -> None:
    asked, running = [await claim_one(backend, new_task(backend.now() - HOUR)) for _ in range(2)]
    await backend.repo.save(asked.cancel(now=backend.now()))
    leases = {asked.id: token(asked), running.id: token(running), uuid.uuid4(): uuid.uuid4()}
    renewal = await backend.repo.renew_leases(leases, lease_seconds=90)
    assert renewal.held == {asked.id, running.id}
    assert renewal.cancel_requested == {asked.id}


async def test_a_renewal_in_the_store_agrees_with_the_domains(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR), seconds=30)
    await backend.repo.renew_leases({claimed.id: token(claimed)}, lease_seconds=600)
    stored = await backend.repo.get(claimed.id)
    assert stored.lease is not None
    by_the_domain = claimed.renew_lease(
        token(claimed), now=stored.lease.expires_at - timedelta(seconds=600), lease_seconds=600
    )
    assert stored == by_the_domain


async def test_expired_with_no_horizon_lists_every_running_task(backend: Backend) -> None:
    running = await claim_one(backend, new_task(backend.now() - HOUR), seconds=600)
    await backend.repo.add(new_task(backend.now() - HOUR))
    assert await backend.repo.expired(limit=100) == []
    assert await backend.repo.expired(limit=100, horizon_seconds=None) == [running]
    assert await backend.repo.expired(limit=100, horizon_seconds=601) == [running]


# -- pending ----------------------------------------------------------------------------------


async def test_pending_pages_through_pending_tasks_by_id(backend: Backend) -> None:
    now = backend.now()
    waiting = [new_task(now, queue=f"q{i}", priority=i) for i in range(4)]
    waiting.append(new_task(now, run_at=now + HOUR))
    others = [in_status(s, now) for s in TaskStatus if s is not TaskStatus.PENDING]
    await backend.repo.add_many([*waiting, *others])
    by_id = sorted(waiting, key=lambda t: t.id)
    expected = [Dispatch(t.id, t.queue, t.priority, t.run_at, t.type) for t in by_id]

    assert await backend.repo.pending(after=None, limit=100) == expected
    assert await backend.repo.pending(after=None, limit=2) == expected[:2]
    assert await backend.repo.pending(after=by_id[1].id, limit=2) == expected[2:4]
    assert await backend.repo.pending(after=by_id[-1].id, limit=2) == []


# -- transitions saved ------------------------------------------------------------------------

Step = Callable[[Task, datetime], Task]
STEPS: dict[str, list[Step]] = {
    "succeed": [lambda t, now: t.succeed(token(t), {"answer": 42}, now=now)],
    "fail, retries left": [
        lambda t, now: t.fail(token(t), TaskError("KeyError", "'k'"), now=now, rand=0.3)
    ],
    "fail, final": [
        lambda t, now: t.fail(token(t), TaskError("Fail", "no"), now=now, rand=0.3, final=True)
    ],
    "fail after Retry(after)": [
        lambda t, now: t.fail(token(t), TaskError("Retry", ""), now=now, rand=0.3, retry_after=7)
    ],
    "expire lease": [lambda t, now: t.expire_lease(now=now + HOUR, rand=0.9)],
    "release": [lambda t, now: t.release(token(t), now=now)],
    "progress": [lambda t, now: t.report_progress(token(t), Progress(1.0, "all"), now=now)],
    "cancel, acknowledge": [
        lambda t, now: t.cancel(now=now),
        lambda t, now: t.acknowledge_cancel(token(t), now=now),
    ],
    "fail, retry": [
        lambda t, now: t.fail(token(t), TaskError("E", "e"), now=now, rand=0.0, final=True),
        lambda t, now: t.retry(now=now),
    ],
    "release, cancel, retry": [
        lambda t, now: t.release(token(t), now=now),
        lambda t, now: t.cancel(now=now),
        lambda t, now: t.retry(now=now),
    ],
}


@pytest.mark.parametrize("steps", STEPS.values(), ids=STEPS.keys())
async def test_saved_transitions_round_trip(backend: Backend, steps: list[Step]) -> None:
    stored = await claim_one(backend, new_task(backend.now() - HOUR, max_retries=2))
    for step in steps:
        changed = step(stored, backend.now())
        await backend.repo.save(changed)
        stored = await backend.repo.get(changed.id)
        assert_same(stored, changed)


# -- attempts ---------------------------------------------------------------------------------


def ending(
    before: Task, after: Task, outcome: AttemptOutcome, error: TaskError | None = None
) -> AttemptEnd:
    return AttemptEnd.of(before, after, {after.status: outcome}, error)


async def test_attempts_of_an_unknown_task_raise_task_not_found(backend: Backend) -> None:
    with pytest.raises(TaskNotFound):
        await backend.repo.attempts(uuid.uuid4())


async def test_a_task_never_claimed_has_no_attempts(backend: Backend) -> None:
    task = new_task(backend.now())
    await backend.repo.add(task)
    assert await backend.repo.attempts(task.id) == []


async def test_a_claim_opens_an_attempt(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    assert claimed.started_at is not None
    assert await backend.repo.attempts(claimed.id) == [
        Attempt(task_id=claimed.id, number=1, worker_id="w-1", started_at=claimed.started_at)
    ]


async def test_a_claim_of_many_opens_one_attempt_each_and_none_for_the_skipped(
    backend: Backend,
) -> None:
    due = [new_task(backend.now() - HOUR) for _ in range(3)]
    later = new_task(backend.now(), run_at=backend.now() + HOUR)
    await backend.repo.add_many([*due, later])
    claimed = await backend.repo.claim(
        [t.id for t in [*due, later]], worker_id="w-m", lease_seconds=30
    )
    assert len(claimed) == 3
    for task in claimed:
        [attempt] = await backend.repo.attempts(task.id)
        assert (attempt.number, attempt.worker_id, attempt.started_at) == (
            1,
            "w-m",
            task.started_at,
        )
    assert await backend.repo.attempts(later.id) == []


async def test_a_save_with_closing_ends_the_attempt_with_the_change(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    error = TaskError("ValueError", "bad input ✗")
    failed = claimed.fail(token(claimed), error, now=backend.now(), rand=0.5, final=True)

    await backend.repo.save(failed, closing=ending(claimed, failed, AttemptOutcome.FAILED, error))

    assert await backend.repo.get(claimed.id) == failed
    [attempt] = await backend.repo.attempts(claimed.id)
    assert (attempt.finished_at, attempt.outcome, attempt.error) == (
        failed.updated_at,
        AttemptOutcome.FAILED,
        error,
    )


async def test_a_save_without_closing_leaves_the_attempt_open(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    progressed = claimed.report_progress(token(claimed), Progress(0.5, "half"), now=backend.now())
    await backend.repo.save(progressed)
    [attempt] = await backend.repo.attempts(claimed.id)
    assert (attempt.finished_at, attempt.outcome) == (None, None)


async def test_a_stale_save_closes_nothing(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    requested = claimed.cancel(now=backend.now())
    await backend.repo.save(requested)
    done = claimed.succeed(token(claimed), "late", now=backend.now())  # from the older copy

    with pytest.raises(StaleTask):
        await backend.repo.save(done, closing=ending(claimed, done, AttemptOutcome.SUCCESS))

    [attempt] = await backend.repo.attempts(claimed.id)
    assert (attempt.finished_at, attempt.outcome) == (None, None)


async def test_an_ended_attempt_is_never_written_over(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    progressed = claimed.report_progress(token(claimed), Progress(0.1, ""), now=backend.now())
    first = ending(claimed, progressed, AttemptOutcome.RETRY, TaskError("KeyError", "k"))
    await backend.repo.save(progressed, closing=first)
    again = progressed.report_progress(token(claimed), Progress(0.2, ""), now=backend.now())
    await backend.repo.save(again, closing=ending(progressed, again, AttemptOutcome.SUCCESS))
    assert await backend.repo.attempts(claimed.id) == [Attempt.ended(claimed.id, first)]


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
async def test_an_attempt_row_a_claim_opened_before_decision_18_is_closed_by_its_end(
    backend: Backend, store_url: str
) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:  # what a claim wrote before the upgrade
            opened = {"task_id": claimed.id, "attempt": 1, "worker_id": "w-1"}
            await conn.execute(insert(attempts).values(**opened, started_at=claimed.started_at))
    finally:
        await engine.dispose()
    [running] = await backend.repo.attempts(claimed.id)
    assert running.finished_at is None

    done = claimed.succeed(token(claimed), 1, now=backend.now())
    closing = ending(claimed, done, AttemptOutcome.SUCCESS)
    await backend.repo.save(done, closing=closing)

    assert await backend.repo.attempts(claimed.id) == [Attempt.ended(claimed.id, closing)]


async def test_the_history_lists_every_attempt_oldest_first(backend: Backend) -> None:
    task = new_task(backend.now() - HOUR, max_retries=2)
    await backend.repo.add(task)
    boom = TaskError("RuntimeError", "boom")
    ends: list[tuple[str, AttemptOutcome, TaskError | None]] = [
        ("w-a", AttemptOutcome.RETRY, boom),
        ("w-b", AttemptOutcome.RELEASED, None),
        ("w-c", AttemptOutcome.SUCCESS, None),
    ]
    expected: list[Attempt] = []
    for worker, outcome, error in ends:
        [claimed] = await backend.repo.claim([task.id], worker_id=worker, lease_seconds=30)
        assert claimed.started_at is not None
        now = backend.now()
        if outcome is AttemptOutcome.RETRY:
            changed = claimed.fail(token(claimed), boom, now=now, rand=0.0, retry_after=0)
        elif outcome is AttemptOutcome.RELEASED:
            changed = claimed.release(token(claimed), now=now)
        else:
            changed = claimed.succeed(token(claimed), 1, now=now)
        closing = ending(claimed, changed, outcome, error)
        await backend.repo.save(changed, closing=closing)
        opened = Attempt(
            task_id=task.id,
            number=claimed.attempts,
            worker_id=worker,
            started_at=claimed.started_at,
        )
        expected.append(opened.close(closing))

    assert await backend.repo.attempts(task.id) == expected
    assert [a.number for a in expected] == [1, 2, 3]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_warm_opens_the_hot_paths_connections_ahead_and_writes_nothing(
    backend: Backend, store_url: str
) -> None:
    fresh = backend.another()  # an engine of its own, no connection opened yet
    assert isinstance(fresh, SqlTaskRepository)
    database = make_url(store_url).database
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        count = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
        before = await admin.fetchval(count, database)
        await fresh.warm("insert", "save", "claim")
        assert await admin.fetchval(count, database) == before + 3
    finally:
        await admin.close()
    assert await fresh.pending(after=None, limit=10) == []
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))  # and they work
    done = claimed.succeed(token(claimed), 1, now=backend.now())
    await fresh.save(done, closing=ending(claimed, done, AttemptOutcome.SUCCESS))
    assert (await backend.repo.get(done.id)).status is TaskStatus.SUCCESS


async def test_ping_answers(backend: Backend) -> None:
    await backend.repo.ping()


# -- SQL only: U+0000, which PostgreSQL cannot keep -------------------------------------------

# The values a task is made of, holding U+0000, and where the refusal says it is.
NUL_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"payload": {"a": ["ok", "x\x00y"]}}, "payload.a[1]"),
    ({"payload": {"k\x00": 1}}, "payload"),
    ({"metadata": {"m": {"n": "\x00"}}}, "metadata.m.n"),
    ({"result": ["\x00"]}, "result[0]"),
]
ADDS: dict[str, Callable[[TaskRepository, Task], Awaitable[object]]] = {
    "add": lambda repo, task: repo.add(task),
    "add_many": lambda repo, task: repo.add_many([task]),
    "add_idempotent": lambda repo, task: repo.add_idempotent([task], key="k", request_hash="h"),
}


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
@pytest.mark.parametrize("add", ADDS.values(), ids=ADDS.keys())
@pytest.mark.parametrize(("values", "where"), NUL_VALUES, ids=[v[1] for v in NUL_VALUES])
async def test_a_task_holding_u0000_is_refused_naming_where(
    backend: Backend,
    add: Callable[[TaskRepository, Task], Awaitable[object]],
    values: dict[str, Any],
    where: str,
) -> None:
    task = replace(new_task(backend.now()), **values)
    with pytest.raises(UnstorableValue) as refused:
        await add(backend.repo, task)
    assert (refused.value.field, refused.value.task_id) == (where, task.id)
    assert where in refused.value.message
    assert await backend.repo.get_many([task.id]) == []


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
async def test_a_batch_with_u0000_in_one_task_stores_nothing_and_names_that_task(
    backend: Backend,
) -> None:
    batch = [new_task(backend.now()) for _ in range(3)]
    batch[1] = replace(batch[1], payload={"s": "\x00"})
    with pytest.raises(UnstorableValue) as refused:
        await backend.repo.add_many(batch)
    assert (refused.value.field, refused.value.task_id) == ("payload.s", batch[1].id)
    assert await backend.repo.get_many([t.id for t in batch]) == []


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
async def test_a_result_holding_u0000_is_refused_and_the_task_stays(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    done = claimed.succeed(token(claimed), {"rows": ["fine", "not\x00fine"]}, now=backend.now())
    with pytest.raises(UnstorableValue) as refused:
        await backend.repo.save(done, closing=ending(claimed, done, AttemptOutcome.SUCCESS))
    assert (refused.value.field, refused.value.task_id) == ("result.rows[1]", done.id)
    assert await backend.repo.get(claimed.id) == claimed
    [attempt] = await backend.repo.attempts(claimed.id)
    assert attempt.outcome is None


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
async def test_u0000_in_messages_is_replaced(backend: Backend) -> None:
    claimed = await claim_one(backend, new_task(backend.now() - HOUR))
    now = backend.now()
    progressed = claimed.report_progress(token(claimed), Progress(0.5, "half\x00way"), now=now)
    await backend.repo.save(progressed)
    assert (await backend.repo.get(claimed.id)).progress == Progress(0.5, "half\ufffdway")

    error = TaskError("Runtime\x00Error", "broken\x00here")
    failed = progressed.fail(token(progressed), error, now=now, rand=0.0, final=True)
    await backend.repo.save(
        failed, closing=ending(progressed, failed, AttemptOutcome.FAILED, error)
    )

    cleaned = TaskError("Runtime\ufffdError", "broken\ufffdhere")
    assert (await backend.repo.get(claimed.id)).error == cleaned
    [attempt] = await backend.repo.attempts(claimed.id)
    assert attempt.error == cleaned


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
async def test_text_showing_a_backslash_before_u0000_is_kept(backend: Backend) -> None:
    # The six characters \u0000 encode as "\\u0000", which shows the escape: nothing is refused.
    task = new_task(backend.now(), payload={"s": "\\u0000"}, metadata={"\\u0000": "\\"})
    await backend.repo.add(task)
    assert await backend.repo.get(task.id) == task


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
async def test_only_the_caller_whose_task_holds_u0000_fails_a_group_commit(
    backend: Backend,
) -> None:
    fresh = [new_task(backend.now()) for _ in range(6)]
    fresh[2] = replace(fresh[2], payload={"s": "\x00"})
    added = await asyncio.gather(*(backend.repo.add(t) for t in fresh), return_exceptions=True)
    assert isinstance(added[2], UnstorableValue), added[2]
    assert [o for i, o in enumerate(added) if i != 2] == [None] * 5

    claimed = await backend.repo.claim(
        [t.id for i, t in enumerate(fresh) if i != 2], worker_id="w-1", lease_seconds=60
    )
    done = [t.succeed(token(t), {"n": n}, now=backend.now()) for n, t in enumerate(claimed)]
    done[1] = claimed[1].succeed(token(claimed[1]), {"s": "\x00"}, now=backend.now())
    saved = await asyncio.gather(*(backend.repo.save(t) for t in done), return_exceptions=True)
    assert isinstance(saved[1], UnstorableValue), saved[1]
    assert [o for i, o in enumerate(saved) if i != 1] == [None] * 4
    for i, changed in enumerate(done):
        assert await backend.repo.get(changed.id) == (claimed[1] if i == 1 else changed)


# -- SQL only: migrations and failures --------------------------------------------------------


async def test_migrate_twice_changes_nothing(empty_store_url: str) -> None:
    await migrate(empty_store_url)
    engine = create_engine(empty_store_url)
    try:
        repo = SqlTaskRepository(engine)
        task = new_task(SystemClock().now())
        await repo.add(task)
        await migrate(empty_store_url)
        assert await repo.get(task.id) == task
        await repo.close()
    finally:
        await engine.dispose()


async def test_migrated_database_matches_sql_schema(empty_store_url: str) -> None:
    await migrate(empty_store_url)
    engine = create_engine(empty_store_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(
                        c, opts={"compare_type": True, "include_object": _on_this_dialect(c)}
                    ),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


def _on_this_dialect(conn: Any) -> Callable[..., bool]:
    """Leave out what schema.py makes on another database only (``Index.ddl_if``)."""

    def include(item: Any, name: Any, kind: str, reflected: bool, compare_to: Any) -> bool:
        only_on = getattr(getattr(item, "_ddl_if", None), "dialect", None)
        return only_on is None or only_on == conn.dialect.name

    return include


UNREACHABLE_PG = "postgresql+asyncpg://postgres@127.0.0.1:1/taskflow"


async def test_unreachable_postgres_raises_store_unavailable() -> None:
    engine = create_engine(UNREACHABLE_PG)
    repo = SqlTaskRepository(engine)
    calls: list[Callable[[], Awaitable[object]]] = [
        repo.ping,
        lambda: repo.get(uuid.uuid4()),
        lambda: repo.add(new_task(SystemClock().now())),
        lambda: repo.claim([uuid.uuid4()], worker_id="w", lease_seconds=1),
        lambda: repo.add_idempotent([new_task(SystemClock().now())], key="k", request_hash="h"),
        lambda: repo.prune_idempotency_keys(SystemClock().now()),
        lambda: repo.attempts(uuid.uuid4()),
        lambda: repo.save(
            running_task(SystemClock().now()),
            closing=AttemptEnd(
                attempt=1,
                worker_id="w",
                started_at=SystemClock().now(),
                outcome=AttemptOutcome.SUCCESS,
                finished_at=SystemClock().now(),
            ),
        ),
        lambda: migrate(UNREACHABLE_PG),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call()
    finally:
        await repo.close()
        await engine.dispose()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_an_insert_on_a_killed_connection_is_unavailable_then_recovers(
    store_url: str,
) -> None:
    """The insert runs on asyncpg directly: a connection that died under it must be dropped."""
    url = store_url
    await migrate(url)
    engine = create_engine(url, pool_size=1)
    repo = SqlTaskRepository(engine)
    try:
        await repo.add_many([new_task(SystemClock().now())])  # a connection is open now
        database = url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
        finally:
            await admin.close()
        batch = [new_task(SystemClock().now()) for _ in range(2)]
        with pytest.raises(StoreUnavailable):
            await repo.add_many(batch)
        await repo.add_many(batch)
        assert await repo.get_many([t.id for t in batch]) == batch
    finally:
        await repo.close()
        await engine.dispose()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_value_postgres_refuses_fails_only_its_own_save(store_url: str) -> None:
    """Saves go out together in one statement; a row PostgreSQL refuses (a worker id longer
    than its column) must not fail the rows written with it."""
    await migrate(store_url)
    engine = create_engine(store_url)
    repo = SqlTaskRepository(engine)
    try:
        now = SystemClock().now()
        tasks = [new_task(now - HOUR) for _ in range(6)]
        await repo.add_many(tasks)
        claimed = await repo.claim([t.id for t in tasks], worker_id="w-1", lease_seconds=60)
        changed = [t.report_progress(token(t), Progress(0.5), now=now) for t in claimed]
        assert changed[2].lease is not None
        changed[2] = replace(changed[2], lease=replace(changed[2].lease, worker_id="w" * 300))
        outcomes = await asyncio.gather(*(repo.save(t) for t in changed), return_exceptions=True)
        assert isinstance(outcomes[2], asyncpg.DataError), outcomes[2]
        assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 5
        for i, task in enumerate(changed):
            assert await repo.get(task.id) == (claimed[i] if i == 2 else task)
    finally:
        await repo.close()
        await engine.dispose()
