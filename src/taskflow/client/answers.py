"""What the API answers, as the client hands it to you: typed, decoded msgspec Structs.

These mirror the HTTP API's bodies (docs/api.md, "The task" and "HTTP API") without importing
the server's own schemas. Unknown fields are ignored, so a newer server does not break an older
client. Timestamps are timezone-aware ``datetime``s in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from taskflow.domain.attempts import AttemptOutcome
from taskflow.domain.changes import ChangeAction
from taskflow.domain.model import FINAL, TaskStatus

__all__ = [
    "Attempt",
    "AttemptError",
    "AttemptOutcome",
    "ChangeAction",
    "Deliveries",
    "Delivery",
    "History",
    "Progress",
    "RetriedTasks",
    "Schedule",
    "Task",
    "TaskChange",
    "TaskCount",
    "TaskError",
    "TaskPage",
    "TaskStatus",
]


class Progress(msgspec.Struct, frozen=True):
    """The latest progress report of the running attempt."""

    fraction: float
    message: str


class TaskError(msgspec.Struct, frozen=True):
    """How the latest failed attempt failed."""

    type: str
    message: str


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """One task, as the API answered it (fields in the order the API writes them)."""

    id: UUID
    type: str
    payload: dict[str, Any]
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
    metadata: dict[str, Any]
    idempotency_key: str | None

    @property
    def done(self) -> bool:
        """True in a final status: SUCCESS, FAILED or CANCELLED."""
        return self.status in FINAL


class AttemptError(msgspec.Struct, frozen=True):
    """How a failed attempt failed, with the handler's traceback when there was one."""

    type: str
    message: str
    traceback: str | None


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of a task; ``outcome`` and ``finished_at`` are None while it runs."""

    attempt: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    error: AttemptError | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One try to deliver a task's completion webhook; ``error`` is None for a ``2xx``."""

    attempt: int
    at: datetime
    status_code: int | None
    error: str | None


class Deliveries(msgspec.Struct, frozen=True, kw_only=True):
    """A task's callback URL (None: it has none) and its webhook deliveries, oldest first."""

    callback_url: str | None
    items: list[Delivery]


class TaskChange(msgspec.Struct, frozen=True, kw_only=True):
    """A change a person made to a task (a retry): who, when, after which attempt, and the
    payload before and after when the change replaced it."""

    action: ChangeAction
    at: datetime
    by: str
    after_attempt: int
    payload_before: dict[str, Any] | None = None
    payload_after: dict[str, Any] | None = None


class History(msgspec.Struct, frozen=True):
    """A task's history: its attempts and the changes people made, each oldest first."""

    items: list[Attempt]
    changes: list[TaskChange] = msgspec.field(default_factory=list)


class TaskPage(msgspec.Struct, frozen=True):
    """One page of a listing, newest first; ``next_cursor`` is None on the last page."""

    items: list[Task]
    next_cursor: str | None


class TaskCount(msgspec.Struct, frozen=True):
    """How many tasks one queue holds of one type in one status."""

    queue: str
    type: str
    status: TaskStatus
    count: int


class RetriedTasks(msgspec.Struct, frozen=True):
    """What a bulk retry did: how many tasks it sent back to PENDING, and their ids."""

    retried: int
    ids: list[UUID] = msgspec.field(default_factory=list)


class Schedule(msgspec.Struct, frozen=True):
    """A periodic task of the API's Registry: ``cron`` (read in ``timezone``) or ``every``
    (seconds) is set; ``next_run_at`` is None while paused (docs/api.md, "Periodic tasks")."""

    name: str
    type: str
    cron: str | None
    every: float | None
    timezone: str
    queue: str
    paused: bool
    last_run_at: datetime | None
    next_run_at: datetime | None


# The envelopes some answers come in; the client unwraps them.
class TaskList(msgspec.Struct, frozen=True):
    tasks: list[Task]


class CountList(msgspec.Struct, frozen=True):
    items: list[TaskCount]


class ScheduleList(msgspec.Struct, frozen=True):
    items: list[Schedule]
