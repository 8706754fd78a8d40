"""The use cases on the in-memory store and queue, with a clock the test moves by hand."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.attempts import Attempt, AttemptOutcome
from taskflow.domain.errors import (
    IdempotencyKeyReused,
    InvalidPayload,
    InvalidSubmission,
    LeaseLost,
    QueueUnavailable,
    TaskNotFound,
    UnknownTaskType,
    UnstorableValue,
)
from taskflow.domain.limits import MAX_TRACEBACK_BYTES
from taskflow.domain.model import WORKER_LOST, Progress, Task, TaskError, TaskStatus
from taskflow.domain.ports import Dispatch, TaskQueue
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import ExecutionService, SubmitTask, TaskService
from tests.clocks import FakeClock

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SERVICE_POLICY = RetryPolicy(base=2.0, max=8.0)
MAIL_POLICY = RetryPolicy(base=10.0, max=60.0)
LEASE_SECONDS = 30
QUEUES = ["default", "mail"]
BOOM = TaskError("RuntimeError", "boom")


@dataclass(frozen=True)
class FakeType:
    name: str
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    backoff_base: float | None = None
    backoff_max: float | None = None
    required: frozenset[str] = frozenset()

    def validate(self, payload: Mapping[str, Any]) -> None:
        missing = sorted(self.required - payload.keys())
        if missing:
            raise InvalidPayload(f"{missing[0]} is required", field=f"payload.{missing[0]}")


class FakeTypes:
    def __init__(self, *kinds: FakeType) -> None:
        self._kinds = {kind.name: kind for kind in kinds}

    def get(self, name: str) -> FakeType | None:
        return self._kinds.get(name)


class DownQueue:
    """A queue whose server is unreachable."""

    async def push(self, dispatches: Sequence[Dispatch]) -> None:
        raise QueueUnavailable()

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        raise QueueUnavailable()

    async def ping(self) -> None:
        raise QueueUnavailable()


TYPES = FakeTypes(
    FakeType("plain"),
    FakeType(
        "mail.send",
        queue="mail",
        priority=7,
        max_retries=2,
        timeout_seconds=30.0,
        backoff_base=MAIL_POLICY.base,
        backoff_max=MAIL_POLICY.max,
        required=frozenset({"to"}),
    ),
)
PLAIN = SubmitTask(type="plain", payload={"n": 1})
MAIL = SubmitTask(type="mail.send", payload={"to": "a@b.c"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def repo(clock: FakeClock) -> InMemoryTaskRepository:
    return InMemoryTaskRepository(clock)


@pytest.fixture
def queue(clock: FakeClock) -> InMemoryTaskQueue:
    return InMemoryTaskQueue(clock)


def task_service(
    repo: InMemoryTaskRepository, queue: TaskQueue, clock: FakeClock, types: FakeTypes = TYPES
) -> TaskService:
    ids = itertools.count(1)
    return TaskService(
        repository=repo,
        queue=queue,
        types=types,
        clock=clock,
        new_id=lambda: UUID(int=next(ids)),
        retry_policy=SERVICE_POLICY,
    )


def execution_service(
    repo: InMemoryTaskRepository, queue: TaskQueue, clock: FakeClock, worker_id: str
) -> ExecutionService:
    return ExecutionService(
        repository=repo,
        queue=queue,
        clock=clock,
        rand=lambda: 1.0,
        worker_id=worker_id,
        lease_seconds=LEASE_SECONDS,
    )


@pytest.fixture
def service(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> TaskService:
    return task_service(repo, queue, clock)


@pytest.fixture
def worker(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> ExecutionService:
    return execution_service(repo, queue, clock, "worker-1")


@pytest.fixture
def other_worker(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> ExecutionService:
    return execution_service(repo, queue, clock, "worker-2")


async def claim_one(worker: ExecutionService) -> Task:
    [task] = await worker.claim(QUEUES, limit=10, timeout=0)
    return task


async def nothing_to_claim(worker: ExecutionService) -> bool:
    return await worker.claim(QUEUES, limit=10, timeout=0) == []


async def stored_pending(repo: InMemoryTaskRepository) -> list[UUID]:
    return [d.task_id for d in await repo.pending(after=None, limit=100)]


# -- submit -----------------------------------------------------------------------------------


async def test_submit_stores_the_task_and_dispatches_it(
    service: TaskService, repo: InMemoryTaskRepository, queue: InMemoryTaskQueue
) -> None:
    task = await service.submit(PLAIN)

    assert await repo.get(task.id) == task
    assert task.status is TaskStatus.PENDING
    assert await queue.pop(["default"], limit=10, timeout=0) == [task.id]


async def test_submit_takes_the_settings_of_the_type(service: TaskService) -> None:
    task = await service.submit(MAIL)

    assert task.queue == "mail"
    assert task.priority == 7
    assert task.max_retries == 2
    assert task.timeout_seconds == 30.0
    assert task.retry_policy == MAIL_POLICY


async def test_submit_falls_back_to_the_defaults(service: TaskService, clock: FakeClock) -> None:
    task = await service.submit(PLAIN)

    assert task.queue == "default"
    assert task.priority == 5
    assert task.max_retries == 3
    assert task.timeout_seconds is None
    assert task.retry_policy == SERVICE_POLICY
    assert task.run_at == task.created_at == clock.now()


async def test_the_submission_overrides_the_type(service: TaskService) -> None:
    command = SubmitTask(
        type="mail.send",
        payload={"to": "a@b.c"},
        queue="urgent",
        priority=0,
        max_retries=0,
        timeout_seconds=5.0,
    )

    task = await service.submit(command)

    assert (task.queue, task.priority, task.max_retries, task.timeout_seconds) == (
        "urgent",
        0,
        0,
        5.0,
    )


async def test_delay_seconds_sets_run_at(service: TaskService, clock: FakeClock) -> None:
    task = await service.submit(SubmitTask(type="plain", payload={}, delay_seconds=90))

    assert task.run_at == clock.now() + timedelta(seconds=90)


def submission(**fields: Any) -> SubmitTask:
    return SubmitTask(**{"type": "plain", "payload": {}, **fields})


@pytest.mark.parametrize(
    ("command", "error", "field"),
    [
        (submission(type="Plain"), InvalidSubmission, "type"),
        (submission(type="a" * 129), InvalidSubmission, "type"),
        (submission(type="mail.send", payload={}), InvalidPayload, "payload.to"),
        (submission(priority=10), InvalidSubmission, "priority"),
        (submission(priority=-1), InvalidSubmission, "priority"),
        (submission(max_retries=26), InvalidSubmission, "max_retries"),
        (submission(max_retries=-1), InvalidSubmission, "max_retries"),
        (submission(delay_seconds=5, run_at=START), InvalidSubmission, "run_at"),
        (submission(delay_seconds=-1), InvalidSubmission, "delay_seconds"),
        # Found by Schemathesis: past year 9999, or past what a timedelta holds, was a 500.
        (submission(delay_seconds=4e11), InvalidSubmission, "delay_seconds"),
        (submission(delay_seconds=7.9e260), InvalidSubmission, "delay_seconds"),
        (submission(run_at=datetime(2030, 1, 1)), InvalidSubmission, "run_at"),
        (submission(timeout_seconds=0), InvalidSubmission, "timeout_seconds"),
        (submission(queue="no spaces"), InvalidSubmission, "queue"),
    ],
)
async def test_an_invalid_submission_is_refused_and_nothing_is_stored(
    service: TaskService,
    repo: InMemoryTaskRepository,
    queue: InMemoryTaskQueue,
    command: SubmitTask,
    error: type[InvalidSubmission],
    field: str,
) -> None:
    with pytest.raises(error) as refused:
        await service.submit(command)

    assert type(refused.value) is error
    assert refused.value.field == field
    assert await stored_pending(repo) == []
    assert len(queue) == 0


async def test_an_unknown_type_is_refused(
    service: TaskService, repo: InMemoryTaskRepository
) -> None:
    with pytest.raises(UnknownTaskType):
        await service.submit(submission(type="no.such_type"))

    assert await stored_pending(repo) == []


async def test_submit_many_accepts_all_in_order(
    service: TaskService, queue: InMemoryTaskQueue
) -> None:
    tasks = await service.submit_many([PLAIN, PLAIN])

    assert len({t.id for t in tasks}) == 2
    assert await queue.pop(["default"], limit=10, timeout=0) == [t.id for t in tasks]


async def test_submit_many_accepts_none_when_one_is_invalid(
    service: TaskService, repo: InMemoryTaskRepository, queue: InMemoryTaskQueue
) -> None:
    with pytest.raises(InvalidSubmission):
        await service.submit_many([PLAIN, submission(priority=10), PLAIN])

    assert await stored_pending(repo) == []
    assert len(queue) == 0


class NulRefusingStore(InMemoryTaskRepository):
    """A store that cannot keep U+0000 in a payload's "s", as the SQL store cannot anywhere."""

    async def add_many(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            if "\x00" in task.payload.get("s", ""):
                raise UnstorableValue(field="payload.s", task_id=task.id)
        await super().add_many(tasks)


NUL = submission(payload={"s": "\x00"})
SUBMIT_MANY: dict[str, Callable[[TaskService, list[SubmitTask]], Awaitable[object]]] = {
    "submit_many": lambda service, batch: service.submit_many(batch),
    "submit_idempotent": lambda service, batch: service.submit_idempotent(
        batch, key="k", request_hash="h"
    ),
}


@pytest.mark.parametrize("submit", SUBMIT_MANY.values(), ids=SUBMIT_MANY.keys())
@pytest.mark.parametrize(
    ("batch", "field"),
    [([PLAIN, NUL, PLAIN], "tasks[1].payload.s"), ([NUL], "tasks[0].payload.s")],
)
async def test_a_value_the_store_refuses_names_its_place_in_the_batch(
    queue: InMemoryTaskQueue,
    clock: FakeClock,
    submit: Callable[[TaskService, list[SubmitTask]], Awaitable[object]],
    batch: list[SubmitTask],
    field: str,
) -> None:
    service = task_service(NulRefusingStore(clock), queue, clock)

    with pytest.raises(UnstorableValue) as refused:
        await submit(service, batch)

    assert refused.value.field == field
    assert len(queue) == 0


async def test_a_value_the_store_refuses_in_a_submission_of_its_own_names_no_batch(
    queue: InMemoryTaskQueue, clock: FakeClock
) -> None:
    service = task_service(NulRefusingStore(clock), queue, clock)
    with pytest.raises(UnstorableValue) as refused:
        await service.submit_idempotent([NUL], key="k", request_hash="h", batch=False)
    assert refused.value.field == "payload.s"


async def test_submit_while_the_queue_is_down_still_stores_the_task(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> None:
    service = task_service(repo, DownQueue(), clock)

    task = await service.submit(PLAIN)

    assert await repo.get(task.id) == task
    reconciler = execution_service(repo, queue, clock, "sweeper")
    assert await reconciler.redispatch() == 1
    assert await queue.pop(["default"], limit=10, timeout=0) == [task.id]


# -- execution --------------------------------------------------------------------------------


async def test_claim_then_succeed(
    service: TaskService, worker: ExecutionService, repo: InMemoryTaskRepository
) -> None:
    submitted = await service.submit(PLAIN)

    claimed = await claim_one(worker)
    done = await worker.succeed(claimed, {"ok": True})

    assert claimed.id == submitted.id
    assert claimed.attempts == 1
    assert claimed.lease is not None
    assert claimed.lease.worker_id == "worker-1"
    assert done.status is TaskStatus.SUCCESS
    assert done.result == {"ok": True}
    assert await repo.get(submitted.id) == done
    assert await nothing_to_claim(worker)


async def test_a_failure_with_retries_left_comes_back_after_the_backoff(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    await service.submit(MAIL)
    failed = await worker.fail(await claim_one(worker), BOOM)

    assert failed.status is TaskStatus.PENDING
    assert failed.retry_count == 1
    assert (
        clock.now() + timedelta(seconds=5) <= failed.run_at <= clock.now() + timedelta(seconds=10)
    )
    assert await nothing_to_claim(worker)
    clock.current = failed.run_at - timedelta(microseconds=1)
    assert await nothing_to_claim(worker)
    clock.current = failed.run_at
    assert (await claim_one(worker)).attempts == 2


async def test_a_failure_on_the_last_retry_fails_the_task(
    service: TaskService, worker: ExecutionService, repo: InMemoryTaskRepository
) -> None:
    await service.submit(submission(max_retries=0))

    failed = await worker.fail(await claim_one(worker), BOOM)

    assert failed.status is TaskStatus.FAILED
    assert failed.finished_at is not None
    assert await repo.get(failed.id) == failed
    assert await stored_pending(repo) == []


async def test_retry_after_sets_when_the_task_comes_back(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    await service.submit(PLAIN)

    failed = await worker.fail(await claim_one(worker), BOOM, retry_after=120)

    assert failed.run_at == clock.now() + timedelta(seconds=120)


async def test_a_stale_worker_cannot_complete_the_newer_attempt(
    service: TaskService,
    worker: ExecutionService,
    other_worker: ExecutionService,
    repo: InMemoryTaskRepository,
    clock: FakeClock,
) -> None:
    await service.submit(PLAIN)
    stale = await claim_one(worker)
    clock.advance(LEASE_SECONDS)
    [lost] = await other_worker.reap()
    reaped = lost.task
    clock.current = reaped.run_at
    current = await claim_one(other_worker)

    with pytest.raises(LeaseLost):
        await worker.succeed(stale, "late result")

    assert await repo.get(stale.id) == current
    assert current.attempts == 2
    assert current.lease is not None
    assert current.lease.worker_id == "worker-2"


async def test_a_cancel_request_racing_the_outcome_lets_the_outcome_stand(
    service: TaskService, worker: ExecutionService, repo: InMemoryTaskRepository
) -> None:
    await service.submit(PLAIN)
    claimed = await claim_one(worker)
    requested = await service.cancel(claimed.id)
    assert requested.cancel_requested
    assert requested.version > claimed.version  # the worker's copy is stale: its save must race

    done = await worker.succeed(claimed, "finished first")

    assert done.status is TaskStatus.SUCCESS
    assert done.result == "finished first"
    assert await repo.get(claimed.id) == done


async def test_the_worker_acknowledges_a_cancel_request(
    service: TaskService, worker: ExecutionService, repo: InMemoryTaskRepository
) -> None:
    await service.submit(PLAIN)
    claimed = await claim_one(worker)
    await service.cancel(claimed.id)
    seen = await service.get(claimed.id)  # how the worker learns of the request

    ended = await worker.acknowledge_cancel(seen)

    assert ended.status is TaskStatus.CANCELLED
    assert await repo.get(claimed.id) == ended


async def test_a_failure_racing_a_cancel_request_ends_cancelled_not_retried(
    service: TaskService, worker: ExecutionService, repo: InMemoryTaskRepository
) -> None:
    await service.submit(PLAIN)
    claimed = await claim_one(worker)
    await service.cancel(claimed.id)

    ended = await worker.fail(claimed, BOOM)

    assert ended.status is TaskStatus.CANCELLED
    assert ended.error == BOOM
    assert await repo.get(claimed.id) == ended
    assert await nothing_to_claim(worker)


async def test_a_cancelled_pending_task_is_never_claimed(
    service: TaskService, worker: ExecutionService, queue: InMemoryTaskQueue
) -> None:
    task = await service.submit(PLAIN)

    cancelled = await service.cancel(task.id)

    assert cancelled.status is TaskStatus.CANCELLED
    assert await nothing_to_claim(worker)
    assert len(queue) == 0


async def test_retry_dispatches_a_failed_task_again(
    service: TaskService, worker: ExecutionService
) -> None:
    await service.submit(submission(max_retries=0))
    failed = await worker.fail(await claim_one(worker), BOOM)

    again = await service.retry(failed.id)

    assert again.status is TaskStatus.PENDING
    reclaimed = await claim_one(worker)
    assert reclaimed.id == failed.id
    assert reclaimed.attempts == 2


async def test_release_hands_the_task_back_at_once(
    service: TaskService, worker: ExecutionService, other_worker: ExecutionService
) -> None:
    await service.submit(PLAIN)

    released = await worker.release(await claim_one(worker))

    assert released.status is TaskStatus.PENDING
    assert released.retry_count == 0
    assert (await claim_one(other_worker)).id == released.id


async def test_get_of_an_unknown_id_is_not_found(service: TaskService) -> None:
    with pytest.raises(TaskNotFound):
        await service.get(UUID(int=12345))


# -- leases and recovery ----------------------------------------------------------------------


async def test_reap_turns_expired_leases_into_lost_workers_and_redispatches(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    await service.submit(PLAIN)
    claimed = await claim_one(worker)
    clock.advance(LEASE_SECONDS - 1)
    assert await worker.reap() == []
    clock.advance(1)

    [reaped] = await worker.reap()

    assert reaped.worker_id == worker.worker_id
    lost = reaped.task
    assert lost.id == claimed.id
    assert lost.status is TaskStatus.PENDING
    assert lost.error is not None
    assert lost.error.type == WORKER_LOST
    assert lost.retry_count == 1
    clock.current = lost.run_at
    assert (await claim_one(worker)).attempts == 2


async def test_a_heartbeat_keeps_the_lease(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    await service.submit(PLAIN)
    claimed = await claim_one(worker)
    clock.advance(LEASE_SECONDS - 1)

    assert (await worker.renew(leases_of(claimed))).held == {claimed.id}
    clock.advance(LEASE_SECONDS - 1)
    assert await worker.reap() == []


async def test_a_progress_report_does_not_undo_a_heartbeat(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    await service.submit(PLAIN)
    task = await claim_one(worker)
    clock.advance(20)
    await worker.renew(leases_of(task))
    clock.advance(5)

    task = await worker.report_progress(task, Progress(0.5, "half way"))
    clock.advance(10)  # past the first lease, within the renewed one

    assert await worker.reap() == []
    assert (await worker.renew(leases_of(task))).held == {task.id}


async def test_redispatch_pushes_every_pending_task_once(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> None:
    offline = task_service(repo, DownQueue(), clock)
    tasks = [await offline.submit(PLAIN) for _ in range(3)]
    gone = await offline.cancel(tasks[0].id)
    sweeper = execution_service(repo, queue, clock, "sweeper")

    assert await sweeper.redispatch(batch=1) == 2
    assert await sweeper.redispatch(batch=1) == 2
    assert len(queue) == 2
    popped = await queue.pop(["default"], limit=10, timeout=0)
    assert sorted(popped) == [t.id for t in tasks[1:]]
    assert gone.id not in popped


async def test_claim_requeues_an_id_not_yet_due_in_the_store(
    service: TaskService, worker: ExecutionService, clock: FakeClock, queue: InMemoryTaskQueue
) -> None:
    task = await service.submit(submission(delay_seconds=60))
    # A stale dispatch announcing the task as due now, as a queue may hold after a re-push.
    await queue.push([Dispatch(task.id, task.queue, task.priority, clock.now())])

    assert await nothing_to_claim(worker)
    assert len(queue) == 1
    clock.current = task.run_at
    assert (await claim_one(worker)).id == task.id


# -- idempotent submission --------------------------------------------------------------------


async def test_submit_idempotent_stores_and_dispatches_tasks_carrying_the_key(
    service: TaskService, repo: InMemoryTaskRepository, queue: InMemoryTaskQueue
) -> None:
    tasks, replayed = await service.submit_idempotent([PLAIN], key="order-1", request_hash="h")

    assert not replayed
    [task] = tasks
    assert task.idempotency_key == "order-1"
    assert await repo.get(task.id) == task
    assert await queue.pop(["default"], limit=10, timeout=0) == [task.id]


async def test_a_replay_creates_nothing_and_returns_the_tasks_as_they_are_now(
    service: TaskService, repo: InMemoryTaskRepository
) -> None:
    [first], _ = await service.submit_idempotent([PLAIN], key="order-1", request_hash="h")
    cancelled = await service.cancel(first.id)

    tasks, replayed = await service.submit_idempotent([PLAIN], key="order-1", request_hash="h")

    assert replayed
    assert tasks == [cancelled]
    assert await stored_pending(repo) == []  # the replay's own candidate was never stored


async def test_a_batch_shares_one_key_and_replays_in_order(service: TaskService) -> None:
    first, _ = await service.submit_idempotent([PLAIN, MAIL], key="batch-1", request_hash="h")
    again, replayed = await service.submit_idempotent(
        [PLAIN, MAIL], key="batch-1", request_hash="h"
    )

    assert replayed
    assert [t.id for t in again] == [t.id for t in first]
    assert [t.type for t in again] == ["plain", "mail.send"]
    assert {t.idempotency_key for t in again} == {"batch-1"}


async def test_the_same_key_with_another_request_is_refused(
    service: TaskService, repo: InMemoryTaskRepository
) -> None:
    await service.submit_idempotent([PLAIN], key="order-1", request_hash="h1")

    with pytest.raises(IdempotencyKeyReused):
        await service.submit_idempotent([MAIL], key="order-1", request_hash="h2")

    assert len(await stored_pending(repo)) == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "naïve", "line\nbreak", "tab\there"])
async def test_an_invalid_key_is_refused_naming_the_header(
    service: TaskService, repo: InMemoryTaskRepository, key: str
) -> None:
    with pytest.raises(InvalidSubmission) as refused:
        await service.submit_idempotent([PLAIN], key=key, request_hash="h")

    assert refused.value.field == "Idempotency-Key"
    assert await stored_pending(repo) == []


async def test_the_longest_printable_key_is_accepted(service: TaskService) -> None:
    key = "".join(chr(c) for c in range(0x20, 0x7F)) * 3
    key = key[:255]
    _, replayed = await service.submit_idempotent([PLAIN], key=key, request_hash="h")
    assert not replayed


async def test_an_invalid_submission_does_not_use_up_its_key(service: TaskService) -> None:
    with pytest.raises(InvalidSubmission):
        await service.submit_idempotent([submission(priority=10)], key="k", request_hash="h1")

    _, replayed = await service.submit_idempotent([PLAIN], key="k", request_hash="h2")

    assert not replayed


async def test_keys_are_kept_a_day_then_pruned(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    [first], _ = await service.submit_idempotent([PLAIN], key="k", request_hash="h")
    clock.advance(24 * 3600)

    assert await worker.prune_idempotency_keys() == 0
    assert (await service.submit_idempotent([PLAIN], key="k", request_hash="h"))[1]

    clock.advance(1)
    assert await worker.prune_idempotency_keys() == 1
    [second], replayed = await service.submit_idempotent([PLAIN], key="k", request_hash="h")
    assert not replayed
    assert second.id != first.id


# -- attempt history --------------------------------------------------------------------------


def outcomes(attempts: Sequence[Attempt]) -> list[tuple[int, str, AttemptOutcome | None]]:
    return [(a.number, a.worker_id, a.outcome) for a in attempts]


async def test_each_attempt_is_recorded_with_its_worker_and_outcome(
    service: TaskService,
    worker: ExecutionService,
    other_worker: ExecutionService,
    clock: FakeClock,
) -> None:
    task = await service.submit(submission(max_retries=1))
    failed = await worker.fail(await claim_one(worker), BOOM, retry_after=0)
    released = await other_worker.release(await claim_one(other_worker))
    claimed = await claim_one(worker)
    clock.advance(3)
    done = await worker.succeed(claimed, "ok")

    history = await service.attempts(task.id)

    assert outcomes(history) == [
        (1, "worker-1", AttemptOutcome.RETRY),
        (2, "worker-2", AttemptOutcome.RELEASED),
        (3, "worker-1", AttemptOutcome.SUCCESS),
    ]
    assert [a.error for a in history] == [BOOM, None, None]
    assert [a.finished_at for a in history] == [
        failed.updated_at,
        released.updated_at,
        done.finished_at,
    ]
    assert history[2].started_at == claimed.started_at
    assert history[2].finished_at == history[2].started_at + timedelta(seconds=3)


async def test_the_last_failure_is_recorded_as_failed(
    service: TaskService, worker: ExecutionService
) -> None:
    task = await service.submit(submission(max_retries=0))
    await worker.fail(await claim_one(worker), BOOM)

    [attempt] = await service.attempts(task.id)

    assert (attempt.outcome, attempt.error) == (AttemptOutcome.FAILED, BOOM)


async def test_fail_raised_is_recorded_as_failed_even_with_retries_left(
    service: TaskService, worker: ExecutionService
) -> None:
    task = await service.submit(PLAIN)
    await worker.fail(await claim_one(worker), BOOM, final=True)

    assert outcomes(await service.attempts(task.id)) == [(1, "worker-1", AttemptOutcome.FAILED)]


@pytest.mark.parametrize("end", ["acknowledge", "fail", "release"])
async def test_an_attempt_ended_by_a_cancel_request_is_recorded_as_cancelled(
    service: TaskService, worker: ExecutionService, end: str
) -> None:
    task = await service.submit(PLAIN)
    claimed = await claim_one(worker)
    await service.cancel(task.id)
    seen = await service.get(task.id)

    if end == "acknowledge":
        ended = await worker.acknowledge_cancel(seen)
    elif end == "fail":
        ended = await worker.fail(claimed, BOOM)
    else:
        ended = await worker.release(claimed)

    assert ended.status is TaskStatus.CANCELLED
    [attempt] = await service.attempts(task.id)
    assert attempt.outcome is AttemptOutcome.CANCELLED
    assert attempt.finished_at == ended.finished_at


async def test_a_reaped_attempt_is_recorded_as_worker_lost_and_the_late_outcome_is_not(
    service: TaskService,
    worker: ExecutionService,
    other_worker: ExecutionService,
    clock: FakeClock,
) -> None:
    task = await service.submit(PLAIN)
    stale = await claim_one(worker)
    clock.advance(LEASE_SECONDS)
    [lost] = await other_worker.reap()
    reaped = lost.task
    clock.current = reaped.run_at
    await claim_one(other_worker)

    with pytest.raises(LeaseLost):
        await worker.succeed(stale, "late")

    history = await service.attempts(task.id)
    assert outcomes(history) == [
        (1, "worker-1", AttemptOutcome.WORKER_LOST),
        (2, "worker-2", None),
    ]
    assert history[0].error == reaped.error
    assert reaped.error is not None
    assert reaped.error.type == WORKER_LOST
    assert history[1].finished_at is None


async def test_progress_leaves_the_attempt_open(
    service: TaskService, worker: ExecutionService
) -> None:
    task = await service.submit(PLAIN)
    await worker.report_progress(await claim_one(worker), Progress(0.5, "half"))

    assert outcomes(await service.attempts(task.id)) == [(1, "worker-1", None)]


async def test_attempts_of_an_unknown_task_are_not_found(service: TaskService) -> None:
    with pytest.raises(TaskNotFound):
        await service.attempts(UUID(int=999))


def leases_of(*tasks: Task) -> dict[UUID, UUID]:
    return {t.id: t.lease.token for t in tasks if t.lease is not None}


async def test_a_renewal_carries_a_cancel_request_back(
    service: TaskService, worker: ExecutionService
) -> None:
    await service.submit(PLAIN)
    task = await claim_one(worker)
    await service.cancel(task.id)
    renewal = await worker.renew(leases_of(task))
    assert renewal.held == {task.id}
    assert renewal.cancel_requested == {task.id}


async def test_orphans_are_taken_back_without_waiting_for_their_lease(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    await service.submit(PLAIN)
    task = await claim_one(worker)
    assert await worker.reap() == []  # the lease has not run out

    [orphan] = await worker.take_back_orphans()

    assert orphan.worker_id == worker.worker_id
    taken = orphan.task
    assert taken.id == task.id
    assert taken.status is TaskStatus.PENDING
    assert taken.error is not None
    assert taken.error.type == WORKER_LOST
    assert await worker.take_back_orphans() == []


async def test_a_traceback_goes_to_the_attempt_history_not_to_the_task(
    service: TaskService, worker: ExecutionService
) -> None:
    await service.submit(PLAIN)
    task = await claim_one(worker)
    failed = await worker.fail(task, TaskError("ValueError", "bad"), traceback="Traceback ...\n")
    assert failed.error == TaskError("ValueError", "bad")
    [attempt] = await service.attempts(task.id)
    assert attempt.error == TaskError("ValueError", "bad", "Traceback ...\n")


async def test_a_long_traceback_keeps_its_tail_within_the_bound(
    service: TaskService, worker: ExecutionService
) -> None:
    await service.submit(PLAIN)
    task = await claim_one(worker)
    trace = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "ValueError: bad\n"
    await worker.fail(task, TaskError("ValueError", "bad"), traceback=trace)
    [attempt] = await service.attempts(task.id)
    assert attempt.error is not None
    assert attempt.error.traceback is not None
    assert len(attempt.error.traceback.encode()) <= MAX_TRACEBACK_BYTES
    assert attempt.error.traceback.endswith("ValueError: bad\n")
    assert "was cut" in attempt.error.traceback


async def test_a_type_that_sets_only_one_backoff_bound_takes_the_other_from_the_deployment(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> None:
    types = FakeTypes(
        FakeType("base.only", backoff_base=4.0), FakeType("max.only", backoff_max=5.0)
    )
    service = task_service(repo, queue, clock, types)
    base_only = await service.submit(SubmitTask(type="base.only", payload={}))
    max_only = await service.submit(SubmitTask(type="max.only", payload={}))
    assert base_only.retry_policy == RetryPolicy(base=4.0, max=SERVICE_POLICY.max)
    assert max_only.retry_policy == RetryPolicy(base=SERVICE_POLICY.base, max=5.0)


async def test_dispatch_stored_pushes_only_the_pending_of_the_ids_given(
    repo: InMemoryTaskRepository,
    service: TaskService,
    worker: ExecutionService,
    clock: FakeClock,
) -> None:
    await service.submit(PLAIN)
    running = await claim_one(worker)
    waiting = await service.submit(PLAIN)
    unheard = InMemoryTaskQueue(clock)  # as if the submissions' pushes were lost
    listener = execution_service(repo, unheard, clock, "listener")

    pushed = await listener.dispatch_stored([waiting.id, running.id, UUID(int=0)])

    assert pushed == 1
    assert await unheard.pop(["default"], limit=10, timeout=0) == [waiting.id]
