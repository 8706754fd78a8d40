"""The ports the domain needs. Each line of semantics is pinned by tests/contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from taskflow.domain.attempts import Attempt, AttemptEnd
from taskflow.domain.changes import TaskChange
from taskflow.domain.flow import Admission, Limit
from taskflow.domain.model import Task
from taskflow.domain.queries import Position, TaskCount, TaskQuery


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What the queue carries for one task: enough to order it, nothing needed to run it."""

    task_id: UUID
    queue: str
    priority: int
    run_at: datetime

    @classmethod
    def of(cls, task: Task) -> Dispatch:
        return cls(task.id, task.queue, task.priority, task.run_at)


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a lease renewal found: the leases still held, and which of those tasks a cancel
    was requested for since they were claimed (their worker should stop them)."""

    held: frozenset[UUID]
    cancel_requested: frozenset[UUID] = frozenset()


class Clock(Protocol):
    """The deployment's clock."""

    def now(self) -> datetime: ...  # timezone-aware, UTC


class TaskRepository(Protocol):
    """The durable store of tasks: the source of truth."""

    async def add(self, task: Task) -> None: ...  # DuplicateTask if the id exists
    async def add_many(self, tasks: Sequence[Task]) -> None: ...  # all or none; DuplicateTask
    async def get(self, task_id: UUID) -> Task: ...  # TaskNotFound
    async def get_many(self, task_ids: Sequence[UUID]) -> list[Task]: ...  # unknown ids skipped
    async def save(
        self, task: Task, *, closing: AttemptEnd | None = None
    ) -> None: ...  # StaleTask unless stored version == version - 1; writes the attempt it ends

    async def add_idempotent(
        self, tasks: Sequence[Task], *, key: str, request_hash: str
    ) -> tuple[list[Task], bool]: ...  # (stored tasks, replayed); waits for a racing twin;

    # a known key with the same hash adds nothing and returns its tasks as they are now;
    # another hash → IdempotencyKeyReused; a new key is stored with the tasks, all or none

    async def prune_idempotency_keys(
        self, older_than: datetime
    ) -> int: ...  # forgets keys stored before ``older_than``; returns how many

    async def attempts(
        self, task_id: UUID
    ) -> list[Attempt]: ...  # oldest first, the running one last; TaskNotFound

    async def claim(
        self, task_ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> list[Task]: ...  # each PENDING task due by the store's clock → Task.claim, and an

    # open Attempt for it, in one write; others skipped

    async def renew_leases(
        self, leases: Mapping[UUID, UUID], *, lease_seconds: float
    ) -> Renewal: ...  # task id → token; Task.renew_lease on each held, unexpired lease

    async def expired(
        self, *, limit: int, horizon_seconds: float | None = 0.0
    ) -> list[
        Task
    ]: ...  # PROCESSING, lease ended by store now + horizon (None: any), soonest first

    async def pending(
        self, *, after: UUID | None, limit: int
    ) -> list[Dispatch]: ...  # PENDING tasks ordered by id, strictly after ``after``

    async def ping(self) -> None: ...  # StoreUnavailable when unreachable
    async def close(self) -> None: ...  # hands back what it holds (connections); idempotent

    async def find(
        self, query: TaskQuery, *, after: Position | None, limit: int
    ) -> list[Task]: ...  # matching tasks, (created_at, id) descending, strictly below ``after``

    async def stats(self) -> list[TaskCount]: ...  # tasks per (queue, type, status), in that order

    async def save_changed(
        self, items: Sequence[tuple[Task, TaskChange]]
    ) -> set[UUID]: ...  # each task (payload too) where the stored version is version - 1, with

    # its change recorded, all in one transaction; returns the ids written, the rest changed
    # meanwhile or are gone

    async def changes(
        self, task_id: UUID
    ) -> list[TaskChange]: ...  # oldest first; TaskNotFound for an unknown task


class TaskQueue(Protocol):
    """Carries task ids to workers; it may lose them, the store never does."""

    async def push(self, dispatches: Sequence[Dispatch]) -> None: ...  # idempotent per task id
    async def pop(
        self, queues: Sequence[str], *, limit: int, timeout: float
    ) -> list[UUID]: ...  # due ids, priority then run_at; waits up to timeout for the first
    async def absent(
        self, dispatches: Sequence[Dispatch]
    ) -> list[Dispatch]: ...  # those whose id is neither ready nor waiting in the queue
    async def intact(self) -> bool: ...  # False once the queue may have lost ids (restart, flush)
    async def mark_intact(self) -> None: ...  # call before re-pushing everything the store has
    async def warnings(self) -> list[str]: ...  # settings that put queued ids at risk
    async def ping(self) -> None: ...  # QueueUnavailable when unreachable


class FlowLimiter(Protocol):
    """Counts starts and running tasks against limits, the same for every worker (decision 21).

    A slot is held by a task id until released, or until its lease runs out unrenewed.
    """

    async def admit(
        self, requests: Sequence[tuple[UUID, Sequence[Limit]]], *, lease_seconds: float
    ) -> Admission: ...  # in order: a task passing all its limits takes a start of each rate

    # and a slot of each concurrency limit, held lease_seconds; one that fails any takes nothing.
    # A task id holding a slot already is refused (busy), never counted twice

    async def renew(
        self, task_ids: Sequence[UUID], *, lease_seconds: float
    ) -> (
        None
    ): ...  # the slots these ids still hold now last lease_seconds from now; lapsed ones stay free
    async def release(self, task_ids: Sequence[UUID]) -> None: ...  # frees their slots
    async def restore(
        self, holders: Sequence[tuple[UUID, Sequence[Limit], float]]
    ) -> None: ...  # (task id, its limits, seconds its lease has left): its slots held that long

    # again, whatever the count: to rebuild what a Redis restart lost
    async def close(self) -> None: ...  # hands back its connections; idempotent


class CancelNotices(Protocol):
    """Tells workers within moments that a cancel was requested; it may lose a notice, since
    the next lease renewal carries every request too."""

    async def notify_cancel(self, task_id: UUID) -> None: ...  # QueueUnavailable when down
    def cancellations(
        self,
    ) -> AsyncIterator[UUID]: ...  # ids notified from now until closed; QueueUnavailable when cut


class TaskType(Protocol):
    """What the domain needs to know of a registered task type."""

    @property
    def name(self) -> str: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def max_retries(self) -> int | None: ...
    @property
    def timeout_seconds(self) -> float | None: ...
    @property
    def backoff_base(self) -> float | None: ...  # None: the deployment's (TASKFLOW_RETRY_…)
    @property
    def backoff_max(self) -> float | None: ...

    def validate(self, payload: Mapping[str, Any]) -> None: ...  # InvalidPayload


class TaskTypes(Protocol):
    """The catalogue of known task types."""

    def get(self, name: str) -> TaskType | None: ...
