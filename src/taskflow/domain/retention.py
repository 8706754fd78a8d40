"""How long finished tasks are kept (docs/api.md, "Retention").

The domain decides which finished tasks are old enough to go (``Retention.cutoffs``, given the
time); the store deletes them (``TaskRepository.prune_finished``), a bounded batch at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

#: Tasks deleted by one ``prune_finished`` call, each call its own short transaction.
PRUNE_BATCH: Final = 1000
#: The most days a setting may keep a task (about a century): beyond it, say 0 (for ever).
MAX_RETENTION_DAYS: Final = 36_500


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Which finished tasks may go: those that finished before their queue's cutoff.

    ``default`` applies to every queue not in ``by_queue``; ``None`` keeps those tasks for ever.
    """

    default: datetime | None
    by_queue: Mapping[str, datetime | None] = field(default_factory=dict)

    def of(self, queue: str) -> datetime | None:
        return self.by_queue.get(queue, self.default)

    def latest(self) -> datetime | None:
        """The latest cutoff of any queue: no task that finished at or after it may go."""
        found = [c for c in (self.default, *self.by_queue.values()) if c is not None]
        return max(found, default=None)


@dataclass(frozen=True, slots=True)
class Retention:
    """Days a finished task is kept after ``finished_at``, by default and per queue; 0 keeps
    it for ever (TASKFLOW_RETENTION_DAYS, TASKFLOW_RETENTION_DAYS_BY_QUEUE)."""

    days: int = 7
    days_by_queue: Mapping[str, int] = field(default_factory=dict)

    def cutoffs(self, now: datetime) -> Cutoffs:
        return Cutoffs(
            _cutoff(now, self.days),
            {queue: _cutoff(now, days) for queue, days in self.days_by_queue.items()},
        )

    @property
    def keeps_everything(self) -> bool:
        return self.days == 0 and not any(self.days_by_queue.values())


def _cutoff(now: datetime, days: int) -> datetime | None:
    return None if days == 0 else now - timedelta(days=days)


def retention_days_problem(days: int) -> str | None:
    if not 0 <= days <= MAX_RETENTION_DAYS:
        return f"must be between 0 (keep for ever) and {MAX_RETENTION_DAYS} days, got {days}"
    return None
