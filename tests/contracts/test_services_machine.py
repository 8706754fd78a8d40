"""The services as one state machine, run on every store: the fakes, SQLite and PostgreSQL.

Hypothesis drives ``TaskService`` and ``ExecutionService`` through random runs of submissions,
claims, outcomes, lost workers, lease renewals, cancels and retries. After every step the store
must agree with a model the machine keeps, the attempt history must hold one row per claim with
the outcome the model expects, and a command the services refuse must have changed nothing.

Time: the services and the in-memory queue read a ``FakeClock``. The fakes and SQLite read it
too, so there the machine moves time by hand. PostgreSQL stamps claims, renewals and expiry
with its own clock (``statement_timestamp()``): there the machine's clock catches up with the
host's after every step and is frozen within one. Either way leases are long (they never run
out by themselves within a run); to lose a worker the machine renews its lease to a millisecond
and lets that pass (on PostgreSQL, by polling the reaper). Backoffs and delays are an hour or
more, or none at all, so whether a task is due never depends on how fast a step ran.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.engine import migrate
from taskflow.domain.attempts import Attempt, AttemptOutcome
from taskflow.domain.errors import InvalidTransition, LeaseLost
from taskflow.domain.model import FINAL, WORKER_LOST, Progress, Task, TaskError, TaskStatus
from taskflow.domain.ports import Dispatch, Renewal, TaskRepository
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import ExecutionService, SubmitTask, TaskService
from taskflow.registry import Registry
from tests.clocks import FakeClock

T = TypeVar("T")
PENDING, PROCESSING, SUCCESS, FAILED, CANCELLED = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.SUCCESS,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)

START = datetime(2030, 1, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Every backoff lies in [1 h, 2 h]: never due within a step, always due after `let_time_pass`.
BACKOFF = RetryPolicy(base=2 * HOUR.total_seconds(), max=2 * HOUR.total_seconds())
LONG_LEASE = 30 * 24 * HOUR.total_seconds()  # the clock moves a few hours per step at most
SHORT_LEASE = 0.001
# Few tasks at once, so that each lives long (retried, reclaimed, lost, cancelled), and new
# ones when they succeed (SUCCESS is for good), up to a bound on the checks after each step.
LIVE_TASKS, MAX_TASKS = 3, 6
WORKERS = ("w-1", "w-2")
BOOM = TaskError("RuntimeError", "boom")
JOB = "machine.job"
# Which copy a worker acts with: 0 is the one its latest claim of the task handed it (still
# valid unless the attempt ended since), more is one from an earlier attempt (stale).
AGES = st.integers(0, 2)
# How a failed attempt ends, by the status it leaves the task in.
FAILED_ATTEMPT = {
    PENDING: AttemptOutcome.RETRY,
    FAILED: AttemptOutcome.FAILED,
    CANCELLED: AttemptOutcome.CANCELLED,  # a cancel was requested meanwhile
}

TYPES = Registry()
TYPES.task(JOB)(lambda payload, ctx: None)  # never run: the machine plays the worker


@dataclass
class Expected:
    """What the store should hold for one task, as the model has it."""

    queue: str
    max_retries: int
    run_at: datetime
    status: TaskStatus = PENDING
    version: int = 1
    attempts: int = 0
    retry_count: int = 0
    token: UUID | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    finished_at: datetime | None = None
    error: TaskError | None = None
    result: Any = None
    progress: Progress | None = None
    # (worker id, outcome, error, finished at) of each attempt; outcome None while it runs.
    history: list[tuple[str, AttemptOutcome | None, TaskError | None, datetime | None]] = field(
        default_factory=list
    )

    def holds(self, lease_token: UUID) -> bool:
        return self.status is PROCESSING and self.token == lease_token

    def close(
        self,
        outcome: AttemptOutcome,
        status: TaskStatus,
        now: datetime,
        error: TaskError | None = None,
    ) -> None:
        """The running attempt ended with ``outcome`` (and ``error``), leaving ``status``."""
        worker, _, _, _ = self.history[-1]
        self.history[-1] = (worker, outcome, error, now)
        self.status = status
        self.version += 1
        self.token = self.lease_expires_at = None
        self.cancel_requested = False
        self.finished_at = now if status in FINAL else None

    def failed(
        self, error: TaskError, now: datetime, *, final: bool = False, lost: bool = False
    ) -> None:
        """A failed attempt: FAILED when none is left, CANCELLED when asked to, else a retry.

        ``lost``: the worker was lost (its lease ran out), whatever became of the task.
        """
        self.error = error
        if final or self.retry_count >= self.max_retries:
            status = FAILED
        elif self.cancel_requested:
            status = CANCELLED
        else:
            status, self.retry_count = PENDING, self.retry_count + 1
        outcome = AttemptOutcome.WORKER_LOST if lost else FAILED_ATTEMPT[status]
        self.close(outcome, status, now, error)


def token(task: Task) -> UUID:
    assert task.lease is not None
    return task.lease.token


def store_kind(url: str) -> str:
    if url == "memory":
        return "memory"
    return "sqlite" if url.startswith("sqlite") else "postgres"


class ServicesMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")  # task ids
    claimed = Bundle("claimed")  # ids of tasks claimed at least once: workers hold copies

    def __init__(self, store_url: str) -> None:
        super().__init__()
        self.kind = store_kind(store_url)
        # The store's clock is the host's on PostgreSQL, so the machine's must follow it.
        self.follows_host = self.kind == "postgres"
        self.clock = FakeClock(SystemClock().now() if self.follows_host else START)
        self.loop = asyncio.new_event_loop()
        self.repo: TaskRepository
        if self.kind == "memory":
            self.repo = InMemoryTaskRepository(self.clock)
        else:
            self.repo = SqlTaskRepository.connect(store_url, clock=self.clock)
        self.queue = InMemoryTaskQueue(self.clock)
        self.service = TaskService(
            repository=self.repo,
            queue=self.queue,
            types=TYPES,
            clock=self.clock,
            new_id=uuid.uuid4,
            retry_policy=BACKOFF,
        )
        self.workers = {name: self._execution(name, LONG_LEASE) for name in WORKERS}
        self.loser = self._execution("w-lost", SHORT_LEASE)  # renews a lease to lose it
        self.model: dict[UUID, Expected] = {}
        # What workers were handed by each claim of a task, oldest first: their copies.
        self.copies: dict[UUID, list[Task]] = {}
        self.seen_versions: dict[UUID, int] = {}

    def teardown(self) -> None:
        try:
            self.run(self.close())
        finally:
            self.loop.close()

    async def close(self) -> None:
        await self.repo.close()
        # What the store left running (a group commit's flusher winding down).
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*leftover, return_exceptions=True)
        await self.loop.shutdown_asyncgens()

    # -- producers and operators --------------------------------------------------------------

    @initialize(target=tasks, max_retries=st.integers(0, 2))
    def first_task(self, max_retries: int) -> UUID:
        return self.submit(max_retries, None)

    @precondition(lambda self: self.live_tasks() < LIVE_TASKS and len(self.model) < MAX_TASKS)
    @rule(target=tasks, max_retries=st.integers(0, 2), delay=st.sampled_from([None, 3600.0]))
    def another_task(self, max_retries: int, delay: float | None) -> UUID:
        return self.submit(max_retries, delay)

    def submit(self, max_retries: int, delay: float | None) -> UUID:
        queue = f"q{len(self.model)}"  # a queue per task, so that a claim picks its task
        command = SubmitTask(
            type=JOB, payload={}, queue=queue, max_retries=max_retries, delay_seconds=delay
        )
        task = self.run(self.service.submit(command))
        now = self.clock.now()
        self.model[task.id] = Expected(queue, max_retries, now + timedelta(seconds=delay or 0))
        return task.id

    @rule(task_id=tasks)
    def cancel(self, task_id: UUID) -> None:
        expected = self.model[task_id]
        if expected.status in FINAL:
            self.refused(task_id, self.service.cancel(task_id), InvalidTransition)
            return
        self.run(self.service.cancel(task_id))
        event(f"cancel {expected.status}")
        expected.version += 1
        if expected.status is PROCESSING:
            expected.cancel_requested = True  # the worker learns of it when renewing
        else:
            expected.status, expected.finished_at = CANCELLED, self.clock.now()

    @rule(task_id=tasks)
    def retry(self, task_id: UUID) -> None:
        expected = self.model[task_id]
        if expected.status not in {FAILED, CANCELLED}:
            self.refused(task_id, self.service.retry(task_id), InvalidTransition)
            return
        self.run(self.service.retry(task_id))
        event(f"retry {expected.status}")
        expected.status, expected.version = PENDING, expected.version + 1
        expected.retry_count, expected.run_at, expected.finished_at = 0, self.clock.now(), None

    # -- workers ------------------------------------------------------------------------------

    @rule(target=claimed, task_id=tasks, worker=st.sampled_from(WORKERS))
    def claim(self, task_id: UUID, worker: str) -> Any:
        expected = self.model[task_id]
        pop = self.workers[worker].claim([expected.queue], limit=1, timeout=0)
        if expected.status is not PENDING or expected.run_at > self.clock.now():
            self.refused(task_id, pop, None)
            return multiple()
        [claimed] = self.run(pop)
        event("claimed")
        assert claimed == self.run(self.repo.get(task_id))
        assert claimed.lease is not None
        expected.status, expected.version = PROCESSING, expected.version + 1
        expected.attempts += 1
        expected.token, expected.lease_expires_at = claimed.lease.token, claimed.lease.expires_at
        expected.progress = None
        expected.history.append((worker, None, None, None))
        self.check_lease_ends_a_lease_from_now(claimed.lease.expires_at)
        self.copies.setdefault(task_id, []).append(claimed)
        return task_id

    @rule(task_id=claimed, age=AGES)
    def succeed(self, task_id: UUID, age: int) -> None:
        claim = self.copy_of(task_id, age)
        expected = self.model[claim.id]
        done = self.worker_of(claim).succeed(claim, {"attempt": claim.attempts})
        if not expected.holds(token(claim)):
            self.refused(claim.id, done, LeaseLost)
            return
        self.run(done)
        event("succeeded")
        expected.result = {"attempt": claim.attempts}
        expected.error = None  # a success clears the last failure; the history keeps it
        expected.close(AttemptOutcome.SUCCESS, SUCCESS, self.clock.now())

    @rule(task_id=claimed, age=AGES, how=st.sampled_from(["backoff", "at once", "final"]))
    def fail(self, task_id: UUID, age: int, how: str) -> None:
        claim = self.copy_of(task_id, age)
        expected = self.model[claim.id]
        retry_after = 0.0 if how == "at once" else None
        failed = self.worker_of(claim).fail(
            claim, BOOM, retry_after=retry_after, final=how == "final"
        )
        if not expected.holds(token(claim)):
            self.refused(claim.id, failed, LeaseLost)
            return
        after = self.run(failed)
        now = self.clock.now()
        expected.failed(BOOM, now, final=how == "final")
        event(f"fail ({how}) -> {expected.status}")
        if expected.status is PENDING:
            expected.run_at = self.check_backoff(after.run_at, now) if retry_after is None else now

    @rule(task_id=claimed, age=AGES)
    def release(self, task_id: UUID, age: int) -> None:
        claim = self.copy_of(task_id, age)
        expected = self.model[claim.id]
        released = self.worker_of(claim).release(claim)
        if not expected.holds(token(claim)):
            self.refused(claim.id, released, LeaseLost)
            return
        self.run(released)
        event(f"released, cancel requested: {expected.cancel_requested}")
        now = self.clock.now()
        if expected.cancel_requested:
            expected.close(AttemptOutcome.CANCELLED, CANCELLED, now)
        else:
            expected.close(AttemptOutcome.RELEASED, PENDING, now)
            expected.run_at = now

    @rule(task_id=claimed, age=AGES)
    def acknowledge_cancel(self, task_id: UUID, age: int) -> None:
        claim = self.copy_of(task_id, age)
        expected = self.model[claim.id]
        acknowledged = self.worker_of(claim).acknowledge_cancel(claim)
        if not expected.holds(token(claim)):
            self.refused(claim.id, acknowledged, LeaseLost)
        elif not expected.cancel_requested:
            self.refused(claim.id, acknowledged, InvalidTransition)
        else:
            self.run(acknowledged)
            event("cancel acknowledged")
            expected.close(AttemptOutcome.CANCELLED, CANCELLED, self.clock.now())

    @rule(task_id=claimed, age=AGES)
    def report_progress(self, task_id: UUID, age: int) -> None:
        claim = self.copy_of(task_id, age)
        expected = self.model[claim.id]
        progress = Progress(0.5 if expected.progress is None else 1.0, "working")
        reported = self.worker_of(claim).report_progress(claim, progress)
        if not expected.holds(token(claim)):
            self.refused(claim.id, reported, LeaseLost)
            return
        # Written straight from the worker's copy when no other change came in between; if
        # that copy predates a renewal, the store must keep the renewed expiry (the checks
        # after this step compare it with the model's, which is the renewed one).
        straight = claim.version == expected.version
        assert claim.lease is not None
        renewed = claim.lease.expires_at != expected.lease_expires_at
        self.run(reported)
        event(
            f"progress reported, straight from a copy older than a renewal: {straight and renewed}"
        )
        expected.version, expected.progress = expected.version + 1, progress

    @rule(task_ids=st.lists(claimed, min_size=1, max_size=3), age=AGES)
    def renew(self, task_ids: list[UUID], age: int) -> None:
        leases = {i: token(self.copy_of(i, age)) for i in task_ids}
        held = {i for i, t in leases.items() if self.model[i].holds(t)}
        asked = {i for i in held if self.model[i].cancel_requested}
        others = {i: self.run(self.repo.get(i)) for i in leases.keys() - held}

        renewal = self.run(self.workers[WORKERS[0]].renew(leases))

        assert renewal == Renewal(frozenset(held), frozenset(asked))
        event(f"renew: {len(held)} of {len(leases)} held")
        for task_id in held:
            stored = self.run(self.repo.get(task_id))
            assert stored.lease is not None
            expected = self.model[task_id]
            assert expected.lease_expires_at is not None
            assert stored.lease.expires_at >= expected.lease_expires_at
            self.check_lease_ends_a_lease_from_now(stored.lease.expires_at)
            expected.lease_expires_at = stored.lease.expires_at  # not a change: same version
        for task_id, before in others.items():
            assert self.run(self.repo.get(task_id)) == before

    @rule(task_id=tasks)
    def lose_the_worker(self, task_id: UUID) -> None:
        """The worker stops renewing: its lease runs out and the reaper fails the attempt."""
        expected = self.model[task_id]
        if expected.status is not PROCESSING:
            self.refused(task_id, self.workers[WORKERS[0]].reap(), None)
            return
        assert expected.token is not None
        asked = {task_id} if expected.cancel_requested else set()
        renewal = self.run(self.loser.renew({task_id: expected.token}))
        assert renewal == Renewal(frozenset({task_id}), frozenset(asked))

        [reaped] = self.run(self.lapse_and_reap())

        assert reaped.id == task_id
        assert reaped.error is not None
        assert reaped.error.type == WORKER_LOST
        now = self.clock.now()
        expected.failed(reaped.error, now, lost=True)
        event(f"worker lost -> {expected.status}")
        if expected.status is PENDING:
            expected.run_at = self.check_backoff(reaped.run_at, now)

    @precondition(lambda self: not self.follows_host)
    @rule(seconds=st.sampled_from([HOUR.total_seconds(), 2 * HOUR.total_seconds() + 1]))
    def let_time_pass(self, seconds: float) -> None:
        """Delays and backoffs fall due (the host's clock cannot be moved: not on PostgreSQL)."""
        self.clock.advance(seconds)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def the_store_agrees_with_the_model(self) -> None:
        for task_id, expected in self.model.items():
            stored = self.run(self.repo.get(task_id))
            self.check_task(stored, expected)
            self.check_history(self.run(self.service.attempts(task_id)), stored, expected)
            if stored.status is PENDING:  # no task is left waiting outside the queue
                assert self.run(self.queue.absent([Dispatch.of(stored)])) == []
        # Time passes between steps (a renewal then extends a lease): on PostgreSQL the
        # store's clock is the host's, so the machine's catches up with it; elsewhere, a second.
        if self.follows_host:
            self.clock.set(max(self.clock.now(), SystemClock().now()))
        else:
            self.clock.advance(1)

    def check_task(self, stored: Task, expected: Expected) -> None:
        assert self.seen_versions.get(stored.id, 0) <= stored.version, "the version went back"
        self.seen_versions[stored.id] = stored.version
        assert (stored.status, stored.version) == (expected.status, expected.version)
        assert (stored.attempts, stored.retry_count) == (expected.attempts, expected.retry_count)
        assert stored.max_retries == expected.max_retries
        assert (stored.run_at, stored.finished_at) == (expected.run_at, expected.finished_at)
        assert (stored.error, stored.result) == (expected.error, expected.result)
        assert stored.progress == expected.progress
        assert stored.cancel_requested == expected.cancel_requested
        processing = stored.status is PROCESSING
        assert (stored.lease is not None) == processing
        assert (stored.finished_at is not None) == (stored.status in FINAL)
        assert not stored.cancel_requested or processing
        if stored.lease is not None:
            assert stored.lease.token == expected.token
            assert stored.lease.expires_at == expected.lease_expires_at
            assert stored.lease.worker_id == expected.history[-1][0]

    def check_history(self, history: list[Attempt], stored: Task, expected: Expected) -> None:
        assert len(history) == stored.attempts  # one row per claim
        assert [a.number for a in history] == list(range(1, stored.attempts + 1))
        rows = [(a.worker_id, a.outcome, a.error, a.finished_at) for a in history]
        assert rows == expected.history
        if history:
            assert history[-1].started_at == stored.started_at
        assert all(a.task_id == stored.id for a in history)

    def check_backoff(self, run_at: datetime, now: datetime) -> datetime:
        assert now + HOUR <= run_at <= now + 2 * HOUR
        return run_at

    def check_lease_ends_a_lease_from_now(self, expires_at: datetime) -> None:
        lease = timedelta(seconds=LONG_LEASE)
        if self.follows_host:  # stamped by the store's clock, which is ahead of the machine's
            assert expires_at >= self.clock.now() + lease
        else:
            assert expires_at == self.clock.now() + lease

    # -- internals ----------------------------------------------------------------------------

    def refused(
        self, task_id: UUID, call: Coroutine[Any, Any, Any], error: type[Exception] | None
    ) -> None:
        """``call`` must raise ``error`` (or, when None, do nothing) and change nothing."""
        before = self.run(self.snapshot(task_id))
        if error is None:
            result = self.run(call)
            assert not result, result
        else:
            with pytest.raises(error):
                self.run(call)
        event(f"refused: {error.__name__ if error else 'nothing to do'}")
        assert self.run(self.snapshot(task_id)) == before

    async def snapshot(self, task_id: UUID) -> tuple[Task, list[Attempt]]:
        return await self.repo.get(task_id), await self.repo.attempts(task_id)

    async def lapse_and_reap(self) -> list[Task]:
        if not self.follows_host:
            self.clock.advance(1)
            return [lost.task for lost in await self.workers[WORKERS[1]].reap()]
        for _ in range(500):  # about five seconds; the lease ends a millisecond after renewal
            self.clock.set(max(self.clock.now(), SystemClock().now()))
            reaped = await self.workers[WORKERS[1]].reap()
            if reaped:
                return [lost.task for lost in reaped]
            await asyncio.sleep(0.01)
        raise AssertionError("a lease renewed to a millisecond never ran out")

    def live_tasks(self) -> int:
        return sum(expected.status is not SUCCESS for expected in self.model.values())

    def copy_of(self, task_id: UUID, age: int) -> Task:
        """The worker's copy from the task's latest claim (``age`` 0) or an earlier one."""
        copies = self.copies[task_id]
        return copies[-1 - min(age, len(copies) - 1)]

    def worker_of(self, claim: Task) -> ExecutionService:
        assert claim.lease is not None
        return self.workers[claim.lease.worker_id]

    def run(self, call: Awaitable[T]) -> T:
        return self.loop.run_until_complete(call)

    def _execution(self, worker_id: str, lease_seconds: float) -> ExecutionService:
        return ExecutionService(
            repository=self.repo,
            queue=self.queue,
            clock=self.clock,
            rand=lambda: 0.5,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
        )


# The SQL stores get a fixed, shorter budget whatever the profile: each step there costs a
# few round trips (about 12 s on SQLite, 10 s on PostgreSQL, here).
SQL_SETTINGS = settings(
    max_examples=50, stateful_step_count=40, suppress_health_check=[HealthCheck.too_slow]
)
SETTINGS = {
    "memory": settings(stateful_step_count=100),
    "sqlite": SQL_SETTINGS,
    "postgres": SQL_SETTINGS,
}


@pytest.fixture
def migrated_store(store_url: str) -> str:
    if store_url != "memory":
        asyncio.run(migrate(store_url))
    return store_url


def test_the_services_keep_the_store_and_the_history_in_step(migrated_store: str) -> None:
    machine: Callable[[], ServicesMachine] = lambda: ServicesMachine(migrated_store)  # noqa: E731
    run_state_machine_as_test(machine, settings=SETTINGS[store_kind(migrated_store)])
