"""What producers and operators do: submit, look up, cancel, retry."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from taskflow.domain.attempts import Attempt
from taskflow.domain.errors import (
    InvalidSubmission,
    StaleTask,
    UnknownTaskType,
    UnstorableValue,
)
from taskflow.domain.limits import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    idempotency_key_problem,
    queue_name_problem,
    timeout_problem,
    type_name_problem,
    type_options_problem,
)
from taskflow.domain.model import Task
from taskflow.domain.ports import Clock, TaskQueue, TaskRepository, TaskType, TaskTypes
from taskflow.domain.queries import Page, Position, TaskCount, TaskQuery, checked_limit
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services.dispatching import CAS_ATTEMPTS, dispatch


class Submission(Protocol):
    """What a request to run a task says. ``None`` means: the type's setting, else the default.

    The one shape the service accepts, and ``TaskService._build`` (with ``domain.limits``) is
    the one place a submission is validated. Two classes have this shape, each for a reason:
    ``SubmitTask`` for Python callers and tests, and the HTTP schema's ``SubmitTaskIn``, which
    msgspec decodes straight from the body (and which documents the limits in the OpenAPI
    schema) and which the API hands over as it is, sparing an object per task on the hot path.
    A task type's defaults (the Registry's ``TaskDefinition``) are a ``TaskType``, not a
    submission: they fill in what a submission leaves as ``None``.
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
    """A request to run a task, made in Python (a ``Submission``)."""

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
        self._policies: dict[str, RetryPolicy] = {}

    async def submit(self, command: Submission) -> Task:
        task = self._build(command, self._clock.now(), command.idempotency_key)
        await self._repo.add(task)
        await dispatch(self._queue, [task])
        return task

    async def submit_many(self, commands: Sequence[Submission]) -> list[Task]:
        """Submit a batch, all or none; a fault names its submission (``tasks[3].type``)."""
        now = self._clock.now()
        tasks = self._build_all(commands, now, batch=True)
        with _naming_the_task(tasks, batch=True):
            await self._repo.add_many(tasks)
        await dispatch(self._queue, tasks)
        return tasks

    async def submit_idempotent(
        self,
        commands: Sequence[Submission],
        *,
        key: str,
        request_hash: str,
        batch: bool = True,
    ) -> tuple[list[Task], bool]:
        """Submit ``commands`` (all sharing ``key``) unless ``key`` was seen: then nothing new.

        Returns the tasks, as they are now, and whether this was a replay of an earlier
        submission with the same ``request_hash``. A different hash: IdempotencyKeyReused.
        ``batch=False``: one submission of its own, whose faults name no ``tasks[i]``.
        """
        problem = idempotency_key_problem(key)
        if problem:
            raise InvalidSubmission(problem, field="Idempotency-Key")
        now = self._clock.now()
        tasks = self._build_all(commands, now, key, batch=batch)
        with _naming_the_task(tasks, batch=batch):
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
        for _ in range(CAS_ATTEMPTS):
            changed = change(await self._repo.get(task_id))
            try:
                await self._repo.save(changed)
            except StaleTask:
                continue
            return changed
        raise StaleTask(f"task {task_id} kept changing; try again")

    def _build_all(
        self,
        commands: Sequence[Submission],
        now: datetime,
        key: str | None = None,
        *,
        batch: bool,
    ) -> list[Task]:
        """The tasks of ``commands``, all carrying ``key`` (else each its own key)."""
        if not batch:
            return [
                self._build(command, now, key or command.idempotency_key) for command in commands
            ]
        tasks = []
        for index, command in enumerate(commands):
            try:
                tasks.append(self._build(command, now, key or command.idempotency_key))
            except InvalidSubmission as exc:  # name the submission at fault within the batch
                raise exc.under(f"tasks[{index}]") from None
        return tasks

    def _build(self, command: Submission, now: datetime, key: str | None) -> Task:
        _check_limits(command)
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
            retry_policy=self._policies[kind.name],
        )

    def _known_type(self, name: str) -> TaskType:
        kind = self._checked_types.get(name)
        if kind is not None:
            return kind
        problem = type_name_problem(name)
        if problem:
            raise InvalidSubmission(problem, field="type")
        kind = self._types.get(name)
        if kind is None:
            raise UnknownTaskType(f"unknown task type {name!r}")
        # Only registered names are kept, so the cache is as large as the catalogue at most.
        self._checked_types[name] = kind
        self._policies[name] = self._policy.with_overrides(
            base=kind.backoff_base, max=kind.backoff_max
        )
        return kind

    async def find(
        self, query: TaskQuery, *, after: Position | None = None, limit: int | None = None
    ) -> Page:
        """A page of the tasks ``query`` picks, newest first, starting after ``after``;
        ``limit`` (default ``LIST_LIMIT_DEFAULT``) out of range: InvalidQuery."""
        size = checked_limit(limit)
        return Page.of(await self._repo.find(query, after=after, limit=size + 1), size)

    async def stats(self) -> list[TaskCount]:
        """How many tasks there are per queue, type and status."""
        return await self._repo.stats()


@contextlib.contextmanager
def _naming_the_task(tasks: Sequence[Task], *, batch: bool) -> Iterator[None]:
    """The store's refusal of one task of a batch, naming that task's place in the batch."""
    try:
        yield
    except UnstorableValue as exc:
        index = next((i for i, t in enumerate(tasks) if t.id == exc.task_id), None)
        if not batch or index is None:
            raise
        raise exc.under(f"tasks[{index}]") from None


def _pick(requested: int | None, default: int | None, fallback: int) -> int:
    if requested is not None:
        return requested
    return fallback if default is None else default


@functools.lru_cache(maxsize=256)
def _queue_name(name: str) -> str:
    problem = queue_name_problem(name)
    if problem:
        raise InvalidSubmission(problem, field="queue")
    return name


def _timeout(requested: float | None, default: float | None) -> float | None:
    value = requested if requested is not None else default
    problem = None if value is None else timeout_problem(value)
    if problem:
        raise InvalidSubmission(problem, field="timeout_seconds")
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


def _check_limits(command: Submission) -> None:
    # Most submissions leave these to the type: no call at all then, on the hot path.
    if command.priority is None and command.max_retries is None:
        return
    refused = type_options_problem(priority=command.priority, max_retries=command.max_retries)
    if refused:
        raise InvalidSubmission(refused[1], field=refused[0])
