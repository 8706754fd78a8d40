"""Attempts: one execution of a task each, opened by a claim and closed by its outcome."""

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


@dataclass(frozen=True, slots=True)
class AttemptEnd:
    """How the attempt numbered ``attempt`` ended; saved together with the task's change."""

    attempt: int
    outcome: AttemptOutcome
    finished_at: datetime
    error: TaskError | None = None

    @classmethod
    def of(
        cls,
        task: Task,
        outcomes: Mapping[TaskStatus, AttemptOutcome],
        error: TaskError | None = None,
    ) -> AttemptEnd:
        """The end of ``task``'s latest attempt, as the transition that ended it left the task.

        ``outcomes`` names the outcome for each status that transition can lead to.
        """
        return cls(task.attempts, outcomes[task.status], task.updated_at, error)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One execution of a task: opened by a claim, closed by the attempt's end."""

    task_id: UUID
    number: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    error: TaskError | None = None

    def close(self, end: AttemptEnd) -> Attempt:
        return replace(self, finished_at=end.finished_at, outcome=end.outcome, error=end.error)


_TRUNCATED = "... (the start of this traceback was cut)\n"


def bounded_traceback(text: str, limit: int = MAX_TRACEBACK_BYTES) -> str:
    """``text`` whole when it fits in ``limit`` bytes of UTF-8, else its tail: the innermost
    frames and the exception itself are what a reader needs."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    keep = limit - len(_TRUNCATED.encode())
    return _TRUNCATED + encoded[-keep:].decode(errors="ignore")
