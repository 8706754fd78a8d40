"""Changes a person makes to a task besides its run, kept beside its attempts.

An attempt records what a worker did; a ``TaskChange`` records what an operator did: who
retried the task, when, after which attempt, and, when the retry replaced the payload, the
payload before and after. Both together are the task's history (docs/api.md,
"GET /api/tasks/{id}/attempts").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from taskflow.domain.model import Task


class ChangeAction(StrEnum):
    RETRY = "RETRY"  # FAILED or CANCELLED back to PENDING, by one task's retry or a bulk one


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskChange:
    """One change to a task, written in the same transaction as the task's new version."""

    task_id: UUID
    action: ChangeAction
    at: datetime
    by: str
    after_attempt: int  # how many attempts the task had: where the change sits among them
    payload_before: Mapping[str, Any] | None = None  # set only when the payload was replaced
    payload_after: Mapping[str, Any] | None = None

    @classmethod
    def between(cls, before: Task, after: Task, action: ChangeAction, *, by: str) -> TaskChange:
        """The change that made ``after`` of ``before``; the payloads only if they differ."""
        replaced = before.payload != after.payload
        return cls(
            task_id=after.id,
            action=action,
            at=after.updated_at,
            by=by,
            after_attempt=before.attempts,
            payload_before=before.payload if replaced else None,
            payload_after=after.payload if replaced else None,
        )
