"""Attempts: one execution of a task each, from its claim to its outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from taskflow.domain.limits import MAX_TRACEBACK_BYTES
from taskflow.domain.model import Task, TaskError, TaskStatus


class AttemptOutcome(StrEnum):
    """How one attempt ended."""

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"  # no retry left, or Fail raised
    RETRY = "RETRY"  # failed, a retry is scheduled
    RELEASED = "RELEASED"  # handed back at shutdown, not counted
    CANCELLED = "CANCELLED"
    WORKER_LOST = "WORKER_LOST"  # the lease expired


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptEnd:
    """The attempt numbered ``attempt``, as it ended; saved together with the task's change.

    It carries the whole attempt: its row is written once, when it ends (decision 18). While
    it runs, the task itself (PROCESSING, its lease and ``started_at``) says as much.
    """

    attempt: int
    worker_id: str
    started_at: datetime
    outcome: AttemptOutcome
    finished_at: datetime
    error: TaskError | None = None

    @classmethod
    def of(
        cls,
        before: Task,
        after: Task,
        outcomes: Mapping[TaskStatus, AttemptOutcome],
        error: TaskError | None = None,
    ) -> AttemptEnd:
        """The end of the attempt ``before`` was running, as the transition to ``after`` left it.

        ``outcomes`` names the outcome for each status that transition can lead to.
        """
        if before.lease is None or before.started_at is None:
            raise ValueError(f"task {before.id} runs no attempt to end")
        return cls(
            attempt=after.attempts,
            worker_id=before.lease.worker_id,
            started_at=before.started_at,
            outcome=outcomes[after.status],
            finished_at=after.updated_at,
            error=error,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One execution of a task: running from its claim (``finished_at`` None), or ended."""

    task_id: UUID
    number: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    error: TaskError | None = None

    def close(self, end: AttemptEnd) -> Attempt:
        return replace(self, finished_at=end.finished_at, outcome=end.outcome, error=end.error)

    @classmethod
    def ended(cls, task_id: UUID, end: AttemptEnd) -> Attempt:
        return cls(
            task_id=task_id,
            number=end.attempt,
            worker_id=end.worker_id,
            started_at=end.started_at,
            finished_at=end.finished_at,
            outcome=end.outcome,
            error=end.error,
        )

    @classmethod
    def running(cls, task: Task) -> Attempt | None:
        """The attempt ``task`` runs now, as the task row tells it; None when it runs none."""
        if task.status is not TaskStatus.PROCESSING or task.lease is None:
            return None
        assert task.started_at is not None  # the claim sets it
        return cls(
            task_id=task.id,
            number=task.attempts,
            worker_id=task.lease.worker_id,
            started_at=task.started_at,
        )


def with_running(task: Task, stored: list[Attempt]) -> list[Attempt]:
    """``stored`` (ended attempts, oldest first) and the one ``task`` runs now, if any.

    A row opened by a claim before decision 18 stands for the running attempt itself.
    """
    running = Attempt.running(task)
    if running is None or (stored and stored[-1].number >= running.number):
        return stored
    return [*stored, running]


_TRUNCATED = "... (the start of this traceback was cut)\n"


def bounded_traceback(text: str, limit: int = MAX_TRACEBACK_BYTES) -> str:
    """``text`` whole when it fits in ``limit`` bytes of UTF-8, else its tail: the innermost
    frames and the exception itself are what a reader needs."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    keep = limit - len(_TRUNCATED.encode())
    return _TRUNCATED + encoded[-keep:].decode(errors="ignore")
