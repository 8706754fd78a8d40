"""How many tasks reached each final status, minute by minute: the dashboard's charts.

A task counts once, in the minute it last finished, under the status it holds now: a FAILED
task retried later leaves the count of its minute, and its new outcome counts in its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskflow.domain.values import TaskStatus

#: The dashboard's window: the last hour, minute by minute.
WINDOW_MINUTES = 60
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True, order=True)
class MinuteCount:
    """How many tasks finished in ``status`` during the minute that starts at ``minute``."""

    minute: datetime
    status: TaskStatus
    count: int


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute of the window: its start and how many tasks ended each way in it."""

    start: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def failure_rate(self) -> float | None:
        """Failed over succeeded plus failed; None when neither happened."""
        ended = self.succeeded + self.failed
        return None if ended == 0 else self.failed / ended


def window_start(now: datetime, minutes: int = WINDOW_MINUTES) -> datetime:
    """The start of the oldest of ``minutes`` whole minutes, the last being the minute of now."""
    return now.replace(second=0, microsecond=0) - (minutes - 1) * MINUTE


def minute_of(moment: datetime, since: datetime) -> datetime:
    """The start of the minute holding ``moment``, counted in whole minutes from ``since``."""
    return since + ((moment - since) // MINUTE) * MINUTE


def per_minute(counts: Iterable[MinuteCount], since: datetime, minutes: int) -> list[Minute]:
    """Every minute of the window, oldest first, the minutes nothing finished in as zeros."""
    by_start = {since + i * MINUTE: dict.fromkeys(TaskStatus, 0) for i in range(minutes)}
    for count in counts:
        if count.minute in by_start:
            by_start[count.minute][count.status] += count.count
    return [
        Minute(
            start,
            succeeded=n[TaskStatus.SUCCESS],
            failed=n[TaskStatus.FAILED],
            cancelled=n[TaskStatus.CANCELLED],
        )
        for start, n in by_start.items()
    ]
