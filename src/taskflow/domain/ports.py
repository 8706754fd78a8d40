"""The ports the domain needs. Each line of semantics is pinned by tests/contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from taskflow.domain.attempts import Attempt, AttemptEnd
from taskflow.domain.changes import TaskChange
from taskflow.domain.deliveries import Delivery, DueCallback, Sent
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


class CallbackStore(Protocol):
    """Completion-webhook callbacks and their deliveries, kept with the tasks (decision 23)."""

    async def add(
        self,
        tasks: Sequence[Task],
        urls: Mapping[UUID, str],
        *,
        key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[list[Task], bool]: ...  # the tasks and their callback URLs in one transaction,

    # all or none (DuplicateTask); with ``key``, as TaskRepository.add_idempotent

    async def claim_due(
        self, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[DueCallback]: ...  # callbacks of final tasks not yet settled for the task's

    # version, due by ``now`` and not leased: each leased to the caller until now + lease (a
    # new message for a new version); never the same one to two callers at once

    async def record(
        self, due: DueCallback, delivery: Delivery, *, retry_at: datetime | None
    ) -> bool: ...  # the try recorded and the next one set (None: settled for that version);

    # False, and nothing written, once the lease was lost (a manual retry reopens a callback)

    async def deliveries(
        self, task_id: UUID
    ) -> tuple[str | None, list[Delivery]]: ...  # its URL and tries, oldest first; TaskNotFound


class WebhookSender(Protocol):
    """Signs and POSTs webhook messages."""

    async def send(
        self, url: str, body: bytes, *, message_id: str
    ) -> Sent: ...  # never raises for the receiver's faults: they are in Sent


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
