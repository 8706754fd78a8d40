"""Use cases, written against the ports only."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from taskflow.domain.errors import (
    InvalidSubmission,
    InvalidTransition,
    LeaseLost,
    QueueUnavailable,
    StaleTask,
    UnknownTaskType,
)
from taskflow.domain.model import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    IDEMPOTENCY_KEY_TTL,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MIN_PRIORITY,
    QUEUE_PATTERN,
    Attempt,
    AttemptEnd,
    AttemptOutcome,
    Progress,
    Task,
    TaskError,
    TaskStatus,
    validate_idempotency_key,
    validate_type_name,
)
from taskflow.domain.ports import Clock, Dispatch, TaskQueue, TaskRepository, TaskType, TaskTypes
from taskflow.domain.retry import RetryPolicy

#: How often a write that lost a race is re-read and tried again before giving up.
_CAS_ATTEMPTS = 8

# How an attempt ended, by the status its ending transition left the task in.
_SUCCEEDED = {TaskStatus.SUCCESS: AttemptOutcome.SUCCESS}
_FAILED = {
    TaskStatus.PENDING: AttemptOutcome.RETRY,
    TaskStatus.FAILED: AttemptOutcome.FAILED,
    TaskStatus.CANCELLED: AttemptOutcome.CANCELLED,  # a cancel was requested meanwhile
}
_RELEASED = {
    TaskStatus.PENDING: AttemptOutcome.RELEASED,
    TaskStatus.CANCELLED: AttemptOutcome.CANCELLED,
}
_ACKNOWLEDGED = {TaskStatus.CANCELLED: AttemptOutcome.CANCELLED}
_LOST = dict.fromkeys(
    (TaskStatus.PENDING, TaskStatus.FAILED, TaskStatus.CANCELLED), AttemptOutcome.WORKER_LOST
)


class Submission(Protocol):
    """What a request to run a task says. ``None`` means: the type's setting, else the default.

    ``SubmitTask`` is one; an entrypoint may hand the service its own decoded request instead,
    sparing an object per task on the hot path.
    """

    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def max_retries(self) -> int | None: ...
    @property
    def timeout_seconds(self) -> float | None: ...
    @property
    def delay_seconds(self) -> float | None: ...
    @property
    def run_at(self) -> datetime | None: ...
    @property
    def metadata(self) -> Mapping[str, Any] | None: ...
    @property
    def idempotency_key(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitTask:
    """A request to run a task (a ``Submission``)."""

    type: str
    payload: Mapping[str, Any]
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    delay_seconds: float | None = None
    run_at: datetime | None = None
    metadata: Mapping[str, Any] | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one reconciliation step did; ``cursor`` is where the next one should start."""

    pushed: int
    resync: bool
    cursor: UUID | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The tasks a worker claimed, and popped ids that no task in the store has."""

    tasks: list[Task]
    unknown: list[UUID]


class TaskService:
    """What producers and operators do: submit, look up, cancel, retry."""

    def __init__(
        self,
        *,
        repository: TaskRepository,
        queue: TaskQueue,
        types: TaskTypes,
        clock: Clock,
        new_id: Callable[[], UUID],
        retry_policy: RetryPolicy,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._types = types
        self._clock = clock
        self._new_id = new_id
        self._policy = retry_policy
        self._checked_types: dict[str, TaskType] = {}

    async def submit(self, command: Submission) -> Task:
        task = self._build(command, self._clock.now(), command.idempotency_key)
        await self._repo.add(task)
        await dispatch(self._queue, [task])
        return task

    async def submit_many(self, commands: Sequence[Submission]) -> list[Task]:
        now = self._clock.now()
        tasks = self._build_all(commands, now)
        await self._repo.add_many(tasks)
        await dispatch(self._queue, tasks)
        return tasks

    async def submit_idempotent(
        self, commands: Sequence[Submission], *, key: str, request_hash: str
    ) -> tuple[list[Task], bool]:
        """Submit ``commands`` (all sharing ``key``) unless ``key`` was seen: then nothing new.

        Returns the tasks, as they are now, and whether this was a replay of an earlier
        submission with the same ``request_hash``. A different hash: IdempotencyKeyReused.
        """
        problem = validate_idempotency_key(key)
        if problem:
            raise InvalidSubmission(problem, field="Idempotency-Key")
        now = self._clock.now()
        tasks = self._build_all(commands, now, key)
        stored, replayed = await self._repo.add_idempotent(
            tasks, key=key, request_hash=request_hash
        )
        if not replayed:
            await dispatch(self._queue, stored)
        return stored, replayed

    async def get(self, task_id: UUID) -> Task:
        return await self._repo.get(task_id)

    async def attempts(self, task_id: UUID) -> list[Attempt]:
        """The task's attempts, oldest first."""
        return await self._repo.attempts(task_id)

    async def cancel(self, task_id: UUID) -> Task:
        return await self._change(task_id, lambda t: t.cancel(now=self._clock.now()))

    async def retry(self, task_id: UUID) -> Task:
        task = await self._change(task_id, lambda t: t.retry(now=self._clock.now()))
        await dispatch(self._queue, [task])
        return task

    async def _change(self, task_id: UUID, change: Callable[[Task], Task]) -> Task:
        for _ in range(_CAS_ATTEMPTS):
            changed = change(await self._repo.get(task_id))
            try:
                await self._repo.save(changed)
            except StaleTask:
                continue
            return changed
        raise StaleTask(f"task {task_id} kept changing; try again")

    def _build_all(
        self, commands: Sequence[Submission], now: datetime, key: str | None = None
    ) -> list[Task]:
        """The tasks of ``commands``, all carrying ``key`` (else each its own key)."""
        if len(commands) == 1:
            command = commands[0]
            return [self._build(command, now, key or command.idempotency_key)]
        tasks = []
        for index, command in enumerate(commands):
            try:
                tasks.append(self._build(command, now, key or command.idempotency_key))
            except InvalidSubmission as exc:  # name the submission at fault within the batch
                field = f"tasks[{index}].{exc.field}" if exc.field else f"tasks[{index}]"
                raise type(exc)(exc.message, field=field) from None
        return tasks

    def _build(self, command: Submission, now: datetime, key: str | None) -> Task:
        _check_limits(priority=command.priority, max_retries=command.max_retries)
        kind = self._known_type(command.type)
        kind.validate(command.payload)
        return Task.new(
            id=self._new_id(),
            type=command.type,
            payload=command.payload,
            now=now,
            queue=_queue_name(command.queue or kind.queue or DEFAULT_QUEUE),
            priority=_pick(command.priority, kind.priority, DEFAULT_PRIORITY),
            max_retries=_pick(command.max_retries, kind.max_retries, DEFAULT_MAX_RETRIES),
            timeout_seconds=_timeout(command.timeout_seconds, kind.timeout_seconds),
            run_at=_run_at(command, now),
            metadata=command.metadata,
            idempotency_key=key,
            retry_policy=kind.retry_policy or self._policy,
        )

    def _known_type(self, name: str) -> TaskType:
        kind = self._checked_types.get(name)
        if kind is not None:
            return kind
        problem = validate_type_name(name)
        if problem:
            raise InvalidSubmission(problem, field="type")
        kind = self._types.get(name)
        if kind is None:
            raise UnknownTaskType(f"unknown task type {name!r}")
        # Only registered names are kept, so the cache is as large as the catalogue at most.
        self._checked_types[name] = kind
        return kind


class ExecutionService:
    """What workers do: claim, report the outcome, renew leases, recover lost work."""

    def __init__(
        self,
        *,
        repository: TaskRepository,
        queue: TaskQueue,
        clock: Clock,
        rand: Callable[[], float],
        worker_id: str,
        lease_seconds: float,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._clock = clock
        self._rand = rand
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds

    async def claim(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[Task]:
        return (await self.claim_batch(queues, limit=limit, timeout=timeout)).tasks

    async def claim_batch(self, queues: Sequence[str], *, limit: int, timeout: float) -> Claim:
        """Pop up to ``limit`` ids and claim them; ids the store does not know are reported."""
        ids = list(dict.fromkeys(await self._queue.pop(queues, limit=limit, timeout=timeout)))
        if not ids:
            return Claim([], [])
        claimed = await self._repo.claim(
            ids, worker_id=self.worker_id, lease_seconds=self.lease_seconds
        )
        unknown: list[UUID] = []
        if len(claimed) < len(ids):
            unknown = await self._requeue_unclaimed(set(ids) - {t.id for t in claimed})
        return Claim(claimed, unknown)

    async def succeed(self, task: Task, result: Any) -> Task:
        token = _token(task)
        return await self._fenced(
            task, lambda t: t.succeed(token, result, now=self._clock.now()), _ending(_SUCCEEDED)
        )

    async def fail(
        self,
        task: Task,
        error: TaskError,
        *,
        retry_after: float | None = None,
        final: bool = False,
    ) -> Task:
        token = _token(task)
        rand = self._rand()
        failed = await self._fenced(
            task,
            lambda t: t.fail(
                token,
                error,
                now=self._clock.now(),
                rand=rand,
                retry_after=retry_after,
                final=final,
            ),
            _ending(_FAILED, error),
        )
        await dispatch(self._queue, [failed])
        return failed

    async def release(self, task: Task) -> Task:
        token = _token(task)
        released = await self._fenced(
            task, lambda t: t.release(token, now=self._clock.now()), _ending(_RELEASED)
        )
        await dispatch(self._queue, [released])
        return released

    async def acknowledge_cancel(self, task: Task) -> Task:
        token = _token(task)
        return await self._fenced(
            task,
            lambda t: t.acknowledge_cancel(token, now=self._clock.now()),
            _ending(_ACKNOWLEDGED),
        )

    async def report_progress(self, task: Task, progress: Progress) -> Task:
        token = _token(task)
        return await self._fenced(
            task, lambda t: t.report_progress(token, progress, now=self._clock.now())
        )

    async def renew(self, tasks: Sequence[Task]) -> set[UUID]:
        """Extend the leases of running tasks; returns the ids whose lease is still held."""
        if not tasks:
            return set()
        leases = {t.id: _token(t) for t in tasks}
        return await self._repo.renew_leases(leases, lease_seconds=self.lease_seconds)

    async def reap(self, *, limit: int = 500) -> list[Task]:
        """Turn every expired lease into a failed attempt (``WorkerLost``)."""
        reaped: list[Task] = []
        for task in await self._repo.expired(limit=limit):
            now = self._clock.now()
            if task.lease is None or task.lease.expires_at > now:
                continue  # our clock is behind the store's; the next sweep takes it
            changed = task.expire_lease(now=now, rand=self._rand())
            try:
                await self._repo.save(changed, closing=AttemptEnd.of(changed, _LOST, changed.error))
            except StaleTask:
                continue  # renewed, finished or reaped by someone else meanwhile
            reaped.append(changed)
        await dispatch(self._queue, reaped)
        return reaped

    async def prune_idempotency_keys(self) -> int:
        """Forget idempotency keys kept longer than IDEMPOTENCY_KEY_TTL; returns how many."""
        return await self._repo.prune_idempotency_keys(self._clock.now() - IDEMPOTENCY_KEY_TTL)

    async def reconcile(self, *, after: UUID | None, limit: int = 5000) -> Reconciled:
        """Give the queue back every PENDING task it lacks; safe to run in many processes.

        When the queue says it lost its contents (restart, flush, a fresh in-process queue),
        everything PENDING is pushed again. Otherwise one page of PENDING tasks (by id, after
        ``after``) is checked and the missing ones pushed: ids popped by a worker that died
        before claiming them, or never pushed because the API or Redis failed after the insert.
        Pushes are idempotent and claims conditional, so overlapping runs do no harm.
        """
        if not await self._queue.intact():
            await self._queue.mark_intact()  # first: a flush during the refill clears it again
            return Reconciled(pushed=await self.redispatch(), resync=True, cursor=None)
        page = await self._repo.pending(after=after, limit=limit)
        missing = await self._queue.absent(page)
        await self._queue.push(missing)
        cursor = page[-1].task_id if len(page) == limit else None
        return Reconciled(pushed=len(missing), resync=False, cursor=cursor)

    async def queue_warnings(self) -> list[str]:
        return await self._queue.warnings()

    async def redispatch(self, *, batch: int = 1000) -> int:
        """Push every PENDING task to the queue again (idempotent); returns how many."""
        count = 0
        after: UUID | None = None
        while True:
            dispatches = await self._repo.pending(after=after, limit=batch)
            if not dispatches:
                return count
            await self._queue.push(dispatches)
            count += len(dispatches)
            after = dispatches[-1].task_id

    async def _requeue_unclaimed(self, ids: set[UUID]) -> list[UUID]:
        # An id we popped but could not claim is either taken, final, or not yet due by the
        # store's clock. Only the last must go back, or it would wait for the reconciler.
        # An id the store does not know is returned: someone else writes into our queue.
        found = await self._repo.get_many(list(ids))
        await dispatch(self._queue, [t for t in found if t.status is TaskStatus.PENDING])
        return sorted(ids - {t.id for t in found})

    async def _fenced(
        self,
        task: Task,
        change: Callable[[Task], Task],
        ending: Callable[[Task], AttemptEnd] | None = None,
    ) -> Task:
        """Apply ``change`` while this worker's lease holds; re-read when another writer won.

        ``ending``, given the changed task, says how the attempt ended; it is saved with it.
        """
        token = _token(task)
        current = task
        for _ in range(_CAS_ATTEMPTS):
            try:
                changed = change(current)
            except InvalidTransition:
                if current is not task:
                    raise
                # Our copy may predate a change that makes this transition fit (a cancel
                # request, say): decide again on what the store holds now.
                current = await self._held(task.id, token)
                changed = change(current)
            try:
                await self._repo.save(changed, closing=ending(changed) if ending else None)
            except StaleTask:
                current = await self._held(task.id, token)
                continue
            return changed
        raise LeaseLost(f"task {task.id}: gave up after repeated concurrent changes")

    async def _held(self, task_id: UUID, token: UUID) -> Task:
        current = await self._repo.get(task_id)
        if not current.holds(token):
            raise LeaseLost(f"task {task_id}: this worker's attempt lost its lease")
        return current


async def dispatch(queue: TaskQueue, tasks: Sequence[Task]) -> None:
    """Hand PENDING tasks to the queue. If it is down, the reconciler dispatches them later."""
    dispatches = [Dispatch.of(t) for t in tasks if t.status is TaskStatus.PENDING]
    if not dispatches:
        return
    try:
        await queue.push(dispatches)
    except QueueUnavailable:
        return


def _ending(
    outcomes: Mapping[TaskStatus, AttemptOutcome], error: TaskError | None = None
) -> Callable[[Task], AttemptEnd]:
    return lambda task: AttemptEnd.of(task, outcomes, error)


def _token(task: Task) -> UUID:
    if task.lease is None:
        raise LeaseLost(f"task {task.id} holds no lease")
    return task.lease.token


def _pick(requested: int | None, default: int | None, fallback: int) -> int:
    if requested is not None:
        return requested
    return fallback if default is None else default


@functools.lru_cache(maxsize=256)
def _queue_name(name: str) -> str:
    if not QUEUE_PATTERN.fullmatch(name):
        raise InvalidSubmission(
            "queue must be 1-64 letters, digits, '_', '.' or '-'", field="queue"
        )
    return name


def _timeout(requested: float | None, default: float | None) -> float | None:
    value = requested if requested is not None else default
    if value is not None and value <= 0:
        raise InvalidSubmission("timeout_seconds must be positive", field="timeout_seconds")
    return value


def _run_at(command: Submission, now: datetime) -> datetime:
    if command.run_at is not None and command.delay_seconds is not None:
        raise InvalidSubmission("give delay_seconds or run_at, not both", field="run_at")
    if command.delay_seconds is not None:
        if command.delay_seconds < 0:
            raise InvalidSubmission("delay_seconds cannot be negative", field="delay_seconds")
        return now + timedelta(seconds=command.delay_seconds)
    if command.run_at is not None:
        if command.run_at.tzinfo is None:
            raise InvalidSubmission("run_at must carry a time zone", field="run_at")
        return max(command.run_at, now)
    return now


def _check_limits(*, priority: int | None, max_retries: int | None) -> None:
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidSubmission("priority must lie in 0-9", field="priority")
    if max_retries is not None and not 0 <= max_retries <= MAX_RETRIES_LIMIT:
        raise InvalidSubmission("max_retries must lie in 0-25", field="max_retries")
