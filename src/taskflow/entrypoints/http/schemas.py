"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from taskflow.domain.attempts import Attempt
from taskflow.domain.callbacks import CALLBACK_URL_MAX_LENGTH
from taskflow.domain.changes import TaskChange
from taskflow.domain.deliveries import Delivery
from taskflow.domain.limits import (
    MAX_BATCH,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MIN_PRIORITY,
    QUEUE_MAX_LENGTH,
    QUEUE_REGEX,
    TYPE_MAX_LENGTH,
    TYPE_REGEX,
)
from taskflow.domain.model import Task

# The limits also stated here, so that the OpenAPI schema shows them; the service checks them
# all again (it serves Python callers too), from the same constants.
TypeName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=TYPE_MAX_LENGTH, pattern=TYPE_REGEX, examples=["debug.echo"]
    ),
]
QueueName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=QUEUE_MAX_LENGTH, pattern=QUEUE_REGEX)
]


class SubmitTaskIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: TypeName
    payload: dict[str, Any]
    queue: QueueName | None = None
    priority: Annotated[int, msgspec.Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)] | None = None
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=MAX_RETRIES_LIMIT)] | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None
    metadata: dict[str, Any] | None = None
    delay_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    run_at: datetime | None = None
    callback_url: Annotated[str, msgspec.Meta(max_length=CALLBACK_URL_MAX_LENGTH)] | None = None

    @property
    def idempotency_key(self) -> None:
        """Never in the body: the Idempotency-Key header gives it (a ``Submission``)."""
        return None


class SubmitBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    tasks: Annotated[list[SubmitTaskIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class ProgressOut(msgspec.Struct):
    fraction: float
    message: str


class ErrorOut(msgspec.Struct):
    type: str
    message: str


class TaskOut(msgspec.Struct, kw_only=True):
    id: UUID  # msgspec writes the canonical text, faster than str() would
    type: str
    payload: dict[str, Any]
    status: str
    queue: str
    priority: int
    attempts: int
    retry_count: int
    max_retries: int
    timeout_seconds: float | None
    run_at: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    cancel_requested: bool
    progress: ProgressOut | None
    result: Any
    error: ErrorOut | None
    metadata: dict[str, Any]
    idempotency_key: str | None

    @classmethod
    def from_task(cls, task: Task) -> TaskOut:
        return cls(
            id=task.id,
            type=task.type,
            payload=dict(task.payload),
            status=task.status.value,
            queue=task.queue,
            priority=task.priority,
            attempts=task.attempts,
            retry_count=task.retry_count,
            max_retries=task.max_retries,
            timeout_seconds=task.timeout_seconds,
            run_at=timestamp(task.run_at),
            created_at=timestamp(task.created_at),
            started_at=_maybe(task.started_at),
            finished_at=_maybe(task.finished_at),
            updated_at=timestamp(task.updated_at),
            cancel_requested=task.cancel_requested,
            progress=None
            if task.progress is None
            else ProgressOut(task.progress.fraction, task.progress.message),
            result=task.result,
            error=None if task.error is None else ErrorOut(task.error.type, task.error.message),
            metadata=dict(task.metadata),
            idempotency_key=task.idempotency_key,
        )


class AttemptErrorOut(msgspec.Struct):
    type: str
    message: str
    traceback: str | None  # the handler's, bounded to its last 16 KiB; null when none


class AttemptOut(msgspec.Struct, kw_only=True):
    attempt: int
    worker_id: str
    started_at: str
    finished_at: str | None
    outcome: str | None  # SUCCESS FAILED RETRY RELEASED CANCELLED WORKER_LOST; null while running
    error: AttemptErrorOut | None

    @classmethod
    def from_attempt(cls, attempt: Attempt) -> AttemptOut:
        error = attempt.error
        return cls(
            attempt=attempt.number,
            worker_id=attempt.worker_id,
            started_at=timestamp(attempt.started_at),
            finished_at=_maybe(attempt.finished_at),
            outcome=None if attempt.outcome is None else attempt.outcome.value,
            error=None
            if error is None
            else AttemptErrorOut(error.type, error.message, error.traceback),
        )


class ChangeOut(msgspec.Struct, kw_only=True):
    """A change a person made to the task: who, when, after which attempt, and what."""

    action: str  # RETRY
    at: str
    by: str
    after_attempt: int
    payload_before: dict[str, Any] | None  # both set only when the change replaced the payload
    payload_after: dict[str, Any] | None

    @classmethod
    def from_change(cls, change: TaskChange) -> ChangeOut:
        return cls(
            action=change.action.value,
            at=timestamp(change.at),
            by=change.by,
            after_attempt=change.after_attempt,
            payload_before=_dict(change.payload_before),
            payload_after=_dict(change.payload_after),
        )


class AttemptsOut(msgspec.Struct):
    items: list[AttemptOut]
    changes: list[ChangeOut]


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


@functools.lru_cache(maxsize=1024)
def timestamp(moment: datetime) -> str:
    """RFC 3339, UTC, always with six fractional digits (docs/api.md, "The task").

    Cached: a new task's three timestamps are one instant, a batch's tasks share it, and
    ``strftime`` took a sixth of the API's CPU under batch submissions. Written by
    ``isoformat``, which costs a fraction of ``strftime`` (no format string to read, no
    locale): ``strftime`` still took 4 % of a single submission's samples."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return f"{utc.isoformat(timespec='microseconds')}Z"


def _maybe(moment: datetime | None) -> str | None:
    return None if moment is None else timestamp(moment)


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One try to deliver the task's completion webhook."""

    attempt: int
    at: str
    status_code: int | None  # the receiver's answer; null when none came
    error: str | None  # why the try failed; null for a 2xx

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            attempt=delivery.attempt,
            at=timestamp(delivery.at),
            status_code=delivery.status_code,
            error=delivery.error,
        )


class DeliveriesOut(msgspec.Struct):
    callback_url: str | None  # null: the task has no callback
    items: list[DeliveryOut]


class TasksOut(msgspec.Struct):
    tasks: list[TaskOut]


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class ProblemOut(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details."""

    title: str
    status: int
    detail: str
    type: str = "about:blank"
    errors: list[FieldProblem] = msgspec.field(default_factory=list)


class CheckOut(msgspec.Struct):
    status: str
    error: str | None = None


class ReadinessOut(msgspec.Struct):
    status: str
    checks: dict[str, CheckOut]


class TaskTypeOut(msgspec.Struct, kw_only=True):
    """A registered task type with the settings its tasks get unless a submission says other."""

    type: str
    queue: str
    priority: int
    max_retries: int
    timeout_seconds: float | None
    backoff_base: float
    backoff_max: float
    payload_schema: dict[str, Any]


class TaskTypesOut(msgspec.Struct):
    items: list[TaskTypeOut]
