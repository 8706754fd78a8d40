"""The ports the domain needs. Each line of semantics is pinned by tests/contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from taskflow.domain.attempts import Attempt, AttemptEnd
from taskflow.domain.changes import TaskChange
from taskflow.domain.deliveries import Delivery, DueCallback, Sent
from taskflow.domain.fleet import QueueDepth, Throughput, WorkerInfo
from taskflow.domain.flow import Admission, Limit, Popped
from taskflow.domain.keys import ApiKey
from taskflow.domain.model import Task
from taskflow.domain.queries import Position, TaskCount, TaskQuery
from taskflow.domain.quotas import Counted, Quota, Seed
from taskflow.domain.retention import Cutoffs
from taskflow.domain.schedules import ScheduleState
from taskflow.domain.throughput import MinuteCount


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What the queue carries for one task: enough to order it, nothing needed to run it."""

    task_id: UUID
    queue: str
    priority: int
    run_at: datetime
    #: The task's type; a queue may hand it back with the id (`PoppedIds.kinds`), sparing a
    #: worker under a type limit a read before it asks the limiter. "": not told.
    type: str = ""

    @classmethod
    def of(cls, task: Task) -> Dispatch:
        return cls(task.id, task.queue, task.priority, task.run_at, task.type)


class PoppedIds(list[UUID]):
    """What `TaskQueue.pop` may return instead of a plain list: the ids, and the queue and type
    of those whose push told their type (`Dispatch.type`), for a queue that keeps them."""

    __slots__ = ("kinds",)

    def __init__(
        self, ids: Iterable[UUID] = (), kinds: dict[UUID, tuple[str, str]] | None = None
    ) -> None:
        super().__init__(ids)
        self.kinds: dict[UUID, tuple[str, str]] = {} if kinds is None else kinds


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a lease renewal found: the leases still held, and which of those tasks a cancel
    was requested for since they were claimed (their worker should stop them)."""

    held: frozenset[UUID]
    cancel_requested: frozenset[UUID] = frozenset()


class Clock(Protocol):
    """The deployment's clock."""

    def now(self) -> datetime: ...  # timezone-aware, UTC


class KeyStore(Protocol):
    """The API keys (docs/security.md); rows are revoked, never deleted."""

    async def create(self, key: ApiKey) -> None: ...
    async def find_by_hash(self, digest: str) -> ApiKey | None: ...  # revoked ones too
    async def find_by_id(self, key_id: UUID) -> ApiKey | None: ...  # revoked ones too
    async def list(self) -> list[ApiKey]: ...  # oldest first
    async def revoke(self, key_id: UUID, *, now: datetime) -> ApiKey | None: ...  # None: no such id
    async def any_exist(self) -> bool: ...  # revoked ones count


class TraceContext(Protocol):
    """The trace a new task joins (decision 28); only given while tracing is on."""

    def current(self) -> str | None: ...  # the caller's active span as a W3C traceparent, or None


class TaskRepository(Protocol):
    """The durable store of tasks: the source of truth."""

    async def add(self, task: Task) -> None: ...  # DuplicateTask if the id exists
    async def add_many(self, tasks: Sequence[Task]) -> None: ...  # all or none; DuplicateTask
    async def get(self, task_id: UUID) -> Task: ...  # TaskNotFound
    async def get_many(self, task_ids: Sequence[UUID]) -> list[Task]: ...  # unknown ids skipped
    async def popped(
        self, task_ids: Sequence[UUID], *, keys: Collection[str]
    ) -> list[
        Popped
    ]: ...  # as get_many, reading only what the flow gate needs (`keys`: of payload)
    async def save(
        self, task: Task, *, closing: AttemptEnd | None = None
    ) -> None: ...  # StaleTask unless stored version == version - 1; writes the attempt it ends

    async def add_idempotent(
        self, tasks: Sequence[Task], *, key: str, request_hash: str
    ) -> tuple[list[Task], bool]: ...  # (stored tasks, replayed); waits for a racing twin;

    # a known key with the same hash adds nothing and returns its tasks as they are now;
    # another hash → IdempotencyKeyReused; a new key is stored with the tasks, all or none

    async def replay(
        self, key: str, request_hash: str
    ) -> list[Task] | None: ...  # as add_idempotent's replay, adding nothing; None: key unknown

    async def prune_idempotency_keys(
        self, older_than: datetime
    ) -> int: ...  # forgets keys stored before ``older_than``; returns how many

    async def prune_finished(
        self, cutoffs: Cutoffs, *, limit: int
    ) -> int: ...  # deletes up to ``limit`` final tasks that finished before their queue's

    # cutoff, oldest first, with their attempts, changes and every row that refers to them;
    # returns how many; concurrent calls delete disjoint tasks and never wait on each other

    def exclusively(
        self, job: str
    ) -> AbstractAsyncContextManager[bool]: ...  # True: no other holder of ``job`` in any

    # process on this store until exit; False at once when another holds it (nothing is held)

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

    async def stats(
        self, *, tenant: str | None
    ) -> list[TaskCount]: ...  # ``tenant``'s tasks (None: all) per (queue, type, status), sorted

    async def finished_per_minute(
        self, since: datetime, *, tenant: str | None
    ) -> list[MinuteCount]: ...  # final tasks that finished at or after ``since`` (a minute's

    # start), counted per minute (counted from ``since``) and status; empty minutes left out;
    # ``tenant``'s only, or every tenant's (None)

    async def count_unfinished(self, tenant: str) -> int: ...  # its PENDING or PROCESSING tasks

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


class QuotaCounter(Protocol):
    """Counts tenants' submissions against their quotas, the same for every API process."""

    async def take(
        self, tenant: str, count: int, quota: Quota, *, seed: Seed | None = None
    ) -> Counted: ...  # all or nothing: admitted, ``count`` tasks are taken from the rate (GCRA)

    # and added to the unfinished count; else nothing is. With an unfinished limit and no count
    # kept: Counted(recount=token), unless ``seed`` carries that token and no count was set
    # since: then its count is kept RECOUNT_SECONDS


class CancelNotices(Protocol):
    """Tells workers within moments that a cancel was requested; it may lose a notice, since
    the next lease renewal carries every request too."""

    async def notify_cancel(self, task_id: UUID) -> None: ...  # QueueUnavailable when down
    def cancellations(
        self,
    ) -> AsyncIterator[UUID]: ...  # ids notified from now until closed; QueueUnavailable when cut


class WorkerRegistry(Protocol):
    """The live workers, each kept listed by its own heartbeats (decision 25)."""

    async def beat(
        self, worker: WorkerInfo, *, ttl_seconds: float
    ) -> None: ...  # lists or relists it; unlisted ttl_seconds after its last beat
    async def leave(self, worker_id: str) -> None: ...  # unlisted at once; nothing if unknown
    async def live(self) -> list[WorkerInfo]: ...  # those listed now, by id


class QueueStore(Protocol):
    """What the store knows of queues: which are paused, what runs, what finished lately."""

    async def paused(self) -> frozenset[str]: ...  # the paused queues
    async def set_paused(
        self, queue: str, paused: bool, *, now: datetime
    ) -> None: ...  # idempotent; any name (a queue may be paused before it has tasks)
    async def processing(self) -> dict[str, int]: ...  # PROCESSING tasks per queue that has any
    async def throughput(
        self, since: datetime
    ) -> dict[str, Throughput]: ...  # tasks that became SUCCESS or FAILED at or after since


class QueueGauge(Protocol):
    """How many ids the dispatch queue holds per queue: for operators, never on the hot path."""

    async def depths(self) -> dict[str, QueueDepth]: ...  # every queue holding ids; due by now


class PauseNotices(Protocol):
    """Tells workers within moments that a queue was paused or resumed; it may lose a notice,
    since workers read the paused queues from the store at every heartbeat too."""

    async def notify_pause(
        self, queue: str, paused: bool
    ) -> None: ...  # QueueUnavailable when down
    def pauses(
        self,
    ) -> AsyncIterator[tuple[str, bool]]: ...  # (queue, paused) from now until closed


class ScheduleStore(Protocol):
    """The state of the periodic schedules, and the ticks enqueued, shared by every process."""

    async def states(
        self, names: Sequence[str]
    ) -> dict[str, ScheduleState]: ...  # the stored ones among ``names``
    async def ensure(
        self, names: Sequence[str], *, since: datetime
    ) -> None: ...  # stores those not stored yet, unpaused, with ``since``; others unchanged
    async def add_tick(
        self, name: str, tick: datetime, task: Task
    ) -> bool: ...  # tick and task in one transaction; False, and nothing written, when the

    # (name, tick) pair exists (another process enqueued it), or the schedule is paused or unknown

    async def set_paused(
        self, name: str, paused: bool, *, now: datetime
    ) -> ScheduleState | None: ...  # None when unknown; a resume sets ``since`` = ``now``


class Timetable(Protocol):
    """A periodic schedule as the domain sees it: what to submit, and when."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def queue(self) -> str | None: ...  # None: the type's
    @property
    def priority(self) -> int | None: ...
    @property
    def catchup(self) -> timedelta | None: ...  # None: the deployment's
    @property
    def tenant(self) -> str: ...  # whose tasks its ticks make, and who sees it

    def next_after(self, instant: datetime) -> datetime: ...  # the first tick after, in UTC


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
