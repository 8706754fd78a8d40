"""The values a task is made of: its statuses and which may follow which, its error, its
progress and its lease (re-exported by ``taskflow.domain.model``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


ALLOWED: Final[Mapping[TaskStatus, frozenset[TaskStatus]]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.PROCESSING, TaskStatus.CANCELLED}),
    # PROCESSING → PROCESSING: a cancel request, a progress report or a lease renewal.
    TaskStatus.PROCESSING: frozenset(
        {
            TaskStatus.PROCESSING,
            TaskStatus.SUCCESS,
            TaskStatus.PENDING,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        }
    ),
    TaskStatus.FAILED: frozenset({TaskStatus.PENDING}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.PENDING}),
    TaskStatus.SUCCESS: frozenset(),
}

CLAIMABLE: Final = frozenset({TaskStatus.PENDING})
ACTIVE: Final = frozenset({TaskStatus.PROCESSING})
FINAL: Final = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})
RETRYABLE: Final = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})
CANCELLABLE: Final = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})
#: Not yet final: what a tenant's quota on unfinished tasks counts.
UNFINISHED: Final = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})

#: error.type recorded when a lease runs out before the worker reported back.
WORKER_LOST: Final = "WorkerLost"
#: error.type recorded when a worker meets a type it has no handler for.
UNKNOWN_TASK_TYPE: Final = "UnknownTaskType"


@dataclass(frozen=True, slots=True)
class TaskError:
    """What went wrong in an attempt. ``traceback`` (bounded) is kept in the attempt history
    only: a task's own ``error`` never carries one."""

    type: str
    message: str
    traceback: str | None = None

    def without_traceback(self) -> TaskError:
        return self if self.traceback is None else TaskError(self.type, self.message)


@dataclass(frozen=True, slots=True)
class Progress:
    fraction: float
    message: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("progress fraction must lie in [0, 1]")


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that one worker runs the current attempt; only its holder may finish it."""

    token: UUID
    worker_id: str
    expires_at: datetime
