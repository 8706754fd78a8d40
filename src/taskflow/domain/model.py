"""The task and its life cycle (docs/api.md, "The task" and "Life cycle").

::

    PENDING ──claim──▶ PROCESSING ──succeed──▶ SUCCESS
       ▲  │                 ├── fail, retries left ──▶ PENDING (run_at = now + backoff)
       │  │                 ├── release (shutdown) ──▶ PENDING (run_at = now)
       │  │                 ├── fail, none left / Fail ──▶ FAILED
       │  └──cancel──▶ CANCELLED ◀── acknowledge_cancel ── PROCESSING
       └──────── retry (from FAILED or CANCELLED) ───────┘

Every transition is a method that returns a new :class:`Task` with ``version`` one higher;
the table :data:`ALLOWED` is the single statement of which status may follow which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from taskflow.domain.errors import InvalidTransition, InvariantViolated, NotDue
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.limits import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    max_retries_problem,
    priority_problem,
)
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.values import (
    ACTIVE,
    ALLOWED,
    CANCELLABLE,
    CLAIMABLE,
    FINAL,
    RETRYABLE,
    UNFINISHED,
    UNKNOWN_TASK_TYPE,
    WORKER_LOST,
    Lease,
    Progress,
    TaskError,
    TaskStatus,
)

# The values live in their own module; they are part of this one's interface too.
__all__ = [
    "ACTIVE",
    "ALLOWED",
    "CANCELLABLE",
    "CLAIMABLE",
    "FINAL",
    "RETRYABLE",
    "UNFINISHED",
    "UNKNOWN_TASK_TYPE",
    "WORKER_LOST",
    "Lease",
    "Progress",
    "Task",
    "TaskError",
    "TaskStatus",
    "assemble",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    id: UUID
    type: str
    payload: Mapping[str, Any]
    status: TaskStatus
    queue: str
    priority: int
    attempts: int
    retry_count: int
    max_retries: int
    timeout_seconds: float | None
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    cancel_requested: bool
    progress: Progress | None
    result: Any
    error: TaskError | None
    metadata: Mapping[str, Any]
    idempotency_key: str | None
    # Not part of the public representation:
    version: int
    lease: Lease | None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    # The W3C traceparent of the span that submitted it (tracing on), fixed at creation: every
    # attempt's span joins that trace, however long after and wherever it runs (decision 28).
    traceparent: str | None = None
    # Whose task it is: the tenant of the API key that submitted it (docs/security.md,
    # "Tenants"); every lookup, list and count is made within one tenant (decision 36).
    tenant: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        problem = _invariant_problem(self)
        if problem:
            raise InvariantViolated(f"task {self.id}: {problem}")

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        *,
        id: UUID,
        type: str,
        payload: Mapping[str, Any],
        now: datetime,
        queue: str = DEFAULT_QUEUE,
        priority: int = DEFAULT_PRIORITY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_seconds: float | None = None,
        run_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        retry_policy: RetryPolicy | None = None,
        traceparent: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Task:
        return assemble(
            {
                "id": id,
                "type": type,
                "payload": payload,
                "status": TaskStatus.PENDING,
                "queue": queue,
                "priority": priority,
                "attempts": 0,
                "retry_count": 0,
                "max_retries": max_retries,
                "timeout_seconds": timeout_seconds,
                "run_at": run_at if run_at is not None else now,
                "created_at": now,
                "started_at": None,
                "finished_at": None,
                "updated_at": now,
                "cancel_requested": False,
                "progress": None,
                "result": None,
                "error": None,
                "metadata": metadata if metadata is not None else {},
                "idempotency_key": idempotency_key,
                "version": 1,
                "lease": None,
                "retry_policy": retry_policy or RetryPolicy(),
                "traceparent": traceparent,
                "tenant": tenant,
            }
        )

    # -- queries --------------------------------------------------------------------------

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def is_due(self, now: datetime) -> bool:
        return self.status in CLAIMABLE and self.run_at <= now

    def holds(self, token: UUID) -> bool:
        """True while ``token`` is the lease of the current attempt."""
        return self.status in ACTIVE and self.lease is not None and self.lease.token == token

    # -- transitions ----------------------------------------------------------------------

    def claim(self, lease: Lease, *, now: datetime) -> Task:
        self._require(CLAIMABLE, "claim")
        if self.run_at > now:
            raise NotDue(f"task {self.id} is not due before {self.run_at.isoformat()}")
        return self._to(
            TaskStatus.PROCESSING,
            now=now,
            attempts=self.attempts + 1,
            started_at=now,
            lease=lease,
            cancel_requested=False,
            progress=None,
        )

    def renew_lease(self, token: UUID, *, now: datetime, lease_seconds: float) -> Task:
        """Extend the held, unexpired lease to ``now + lease_seconds``.

        Not a change of the task: ``version`` and ``updated_at`` stay, so a worker holding the
        version it claimed still writes its outcome with one compare-and-set. An expired lease
        is not renewed: the reaper may already be handing the task to another worker.
        """
        lease = self._held_lease(token, "renew the lease of")
        if lease.expires_at <= now:
            raise InvalidTransition(f"cannot renew the lease of task {self.id}: it has expired")
        renewed = replace(lease, expires_at=now + timedelta(seconds=lease_seconds))
        return replace(self, lease=renewed)

    def keeping_renewal_of(self, stored: Task) -> Task:
        """This version as it is to be written over ``stored``, the one in the store now.

        A renewal does not move the version, so a writer's copy may predate one: writing its
        older expiry would take the lease from a worker that heartbeats. The later expiry of
        the same lease is kept.
        """
        lease, kept = self.lease, stored.lease
        if lease is None or kept is None or lease.token != kept.token:
            return self
        if kept.expires_at <= lease.expires_at:
            return self
        return replace(self, lease=kept)

    def report_progress(self, token: UUID, progress: Progress, *, now: datetime) -> Task:
        self._held_lease(token, "report progress on")
        return self._to(TaskStatus.PROCESSING, now=now, progress=progress)

    def succeed(self, token: UUID, result: Any, *, now: datetime) -> Task:
        self._held_lease(token, "complete")
        # Every failure before this success stays in the attempt history, not on the task.
        return self._to(TaskStatus.SUCCESS, now=now, result=result, error=None, **self._closed(now))

    def fail(
        self,
        token: UUID,
        error: TaskError,
        *,
        now: datetime,
        rand: float,
        retry_after: float | None = None,
        final: bool = False,
    ) -> Task:
        """A failed attempt: back to PENDING after a backoff while retries remain, else FAILED.

        ``final`` (``Fail`` raised) skips the retries; ``retry_after`` replaces the backoff.
        A failure after a cancel request ends the task CANCELLED rather than retrying it.
        """
        self._held_lease(token, "fail")
        error = error.without_traceback()
        return self._failed(error, now=now, rand=rand, retry_after=retry_after, final=final)

    def expire_lease(self, *, now: datetime, rand: float, holder_gone: bool = False) -> Task:
        """The lease ran out: the attempt counts as failed with ``WorkerLost``.

        ``holder_gone``: the process that held the lease is known to be dead (``taskflow dev``
        restarting on its own store), so its lease need not run out first.
        """
        self._require(ACTIVE, "expire the lease of")
        if self.lease is None or (self.lease.expires_at > now and not holder_gone):
            raise InvalidTransition(f"task {self.id}: its lease has not expired")
        error = TaskError(WORKER_LOST, f"worker {self.lease.worker_id} stopped renewing its lease")
        return self._failed(error, now=now, rand=rand, retry_after=None, final=False)

    def release(self, token: UUID, *, now: datetime) -> Task:
        """Graceful shutdown hands back an unfinished attempt; nothing is counted."""
        self._held_lease(token, "release")
        if self.cancel_requested:
            return self._to(TaskStatus.CANCELLED, now=now, **self._closed(now))
        return self._to(TaskStatus.PENDING, now=now, run_at=now, lease=None, cancel_requested=False)

    def cancel(self, *, now: datetime) -> Task:
        if self.status is TaskStatus.PROCESSING:
            return self._to(TaskStatus.PROCESSING, now=now, cancel_requested=True)
        self._require(CANCELLABLE, "cancel")
        return self._to(TaskStatus.CANCELLED, now=now, finished_at=now)

    def acknowledge_cancel(self, token: UUID, *, now: datetime) -> Task:
        self._held_lease(token, "acknowledge the cancel of")
        if not self.cancel_requested:
            raise InvalidTransition(f"task {self.id}: no cancel was requested")
        return self._to(TaskStatus.CANCELLED, now=now, **self._closed(now))

    def retry(self, *, now: datetime, payload: Mapping[str, Any] | None = None) -> Task:
        """Run a FAILED or CANCELLED task again, with a fresh count of retries; ``payload``
        (already checked against the task's type) replaces the one it ran with."""
        if self.status not in RETRYABLE:
            raise InvalidTransition(
                f"task {self.id} is {self.status}; only FAILED or CANCELLED tasks can be retried"
            )
        return self._to(
            TaskStatus.PENDING,
            now=now,
            retry_count=0,
            run_at=now,
            finished_at=None,
            cancel_requested=False,
            payload=self.payload if payload is None else payload,
        )

    # -- internals ------------------------------------------------------------------------

    def _failed(
        self,
        error: TaskError,
        *,
        now: datetime,
        rand: float,
        retry_after: float | None,
        final: bool,
    ) -> Task:
        if final or self.retry_count >= self.max_retries:
            return self._to(TaskStatus.FAILED, now=now, error=error, **self._closed(now))
        if self.cancel_requested:
            return self._to(TaskStatus.CANCELLED, now=now, error=error, **self._closed(now))
        retry = self.retry_count + 1
        if retry_after is None:
            delay = self.retry_policy.delay(retry, rand)
        else:
            delay = timedelta(seconds=max(0.0, retry_after))
        return self._to(
            TaskStatus.PENDING,
            now=now,
            error=error,
            retry_count=retry,
            run_at=now + delay,
            lease=None,
            cancel_requested=False,
        )

    @staticmethod
    def _closed(now: datetime) -> dict[str, Any]:
        return {"finished_at": now, "lease": None, "cancel_requested": False}

    def _require(self, sources: frozenset[TaskStatus], verb: str) -> None:
        if self.status not in sources:
            raise InvalidTransition(f"cannot {verb} task {self.id}: it is {self.status}")

    def _held_lease(self, token: UUID, verb: str) -> Lease:
        if self.status is not TaskStatus.PROCESSING or self.lease is None:
            raise InvalidTransition(f"cannot {verb} task {self.id}: it is {self.status}")
        if self.lease.token != token:
            raise InvalidTransition(f"cannot {verb} task {self.id}: the lease is another's")
        return self.lease

    def _to(self, status: TaskStatus, *, now: datetime, **changes: Any) -> Task:
        if status not in ALLOWED[self.status]:
            raise InvalidTransition(f"task {self.id}: {self.status} cannot become {status}")
        # dataclasses.replace, without its per-call walk over the fields' definitions.
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes, status=status, updated_at=now, version=self.version + 1)
        return assemble(values)


_FIELDS: Final = tuple(f.name for f in fields(Task))
# Each slot's own setter. The generated __init__ of a frozen dataclass sets every field through
# object.__setattr__; going straight to the slots builds a Task in about a quarter of the time.
_SETTERS: Final = tuple((name, getattr(Task, name).__set__) for name in _FIELDS)


def assemble(values: Mapping[str, Any]) -> Task:
    """``Task(**values)``, every field named and the same invariants checked, only cheaper:
    one is built per claim and per transition of every task."""
    task: Task = object.__new__(Task)
    for name, set_field in _SETTERS:
        set_field(task, values[name])
    task.__post_init__()
    return task


def _invariant_problem(task: Task) -> str | None:
    # Plain tests in a row: this runs for every version of every task built.
    if not 0 <= task.retry_count <= task.max_retries:
        return "retry_count must lie in [0, max_retries]"
    if task.retry_count > task.attempts:
        return "retry_count cannot exceed attempts"
    limit_problem = max_retries_problem(task.max_retries) or priority_problem(task.priority)
    if limit_problem:
        return limit_problem
    processing = task.status is TaskStatus.PROCESSING
    if task.cancel_requested and not processing:
        return "cancel_requested only while PROCESSING"
    if (task.lease is not None) != processing:
        return "a lease exists exactly while PROCESSING"
    if (task.finished_at is not None) != (task.status in FINAL):
        return "finished_at is set exactly in a final state"
    if task.version < 1:
        return "version starts at 1"
    if task.error is not None and task.error.traceback is not None:
        return "a traceback belongs to the attempt history, not to the task's error"
    return None
