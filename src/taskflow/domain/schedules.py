"""Periodic tasks: which ticks of a schedule are due, and which are too old to catch up.

Pure: the instants come in as arguments, and a schedule's timetable (cron or interval) is
given as a ``next_after`` function, so the cron library stays out of the domain.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

#: A schedule's name appears in URLs (``/api/schedules/{name}/pause``) and in task metadata.
SCHEDULE_NAME_MAX_LENGTH: Final = 128
_SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")

#: The shortest interval of ``every=``: ticks closer than this are not a schedule but a loop.
EVERY_MIN: Final = timedelta(seconds=1)

#: At most this many ticks of one schedule are enqueued in one pass; the rest in the next.
TICKS_PER_PASS: Final = 100

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

NextAfter = Callable[[datetime], datetime]


def schedule_name_problem(name: str) -> str | None:
    if not 0 < len(name) <= SCHEDULE_NAME_MAX_LENGTH:
        return f"a schedule name has 1 to {SCHEDULE_NAME_MAX_LENGTH} characters"
    if not _SCHEDULE_NAME.match(name):
        return (
            "a schedule name has letters, digits and _ . : - only, and starts with a letter "
            "or a digit"
        )
    return None


def every_tick_after(instant: datetime, step: timedelta) -> datetime:
    """The first tick of an interval schedule strictly after ``instant``.

    Ticks are whole multiples of ``step`` since the Unix epoch (UTC), so every process finds
    the same ticks whenever it started: ``every=timedelta(hours=1)`` ticks on the hour (UTC).
    """
    since = (instant - _EPOCH) // _MICROSECOND
    size = step // _MICROSECOND
    return _EPOCH + (since // size + 1) * size * _MICROSECOND


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What every process agrees on about one schedule, kept in the store.

    ``since``: ticks at or before it are never enqueued (the schedule was first seen, or
    resumed, then); ``last_tick_at``: the latest tick enqueued.
    """

    name: str
    paused: bool
    since: datetime
    last_tick_at: datetime | None = None

    @property
    def after(self) -> datetime:
        """Ticks strictly after this instant may still be enqueued."""
        if self.last_tick_at is None:
            return self.since
        return max(self.since, self.last_tick_at)


@dataclass(frozen=True, slots=True)
class DueTicks:
    """One schedule's pass: the ticks to enqueue now (oldest first), the span of the ticks
    skipped as older than the catch-up window (``None`` when none was), and the next tick
    after the due ones."""

    due: list[datetime]
    skipped: tuple[datetime, datetime] | None
    next_at: datetime


def due_ticks(
    next_after: NextAfter, state: ScheduleState, *, now: datetime, catchup: timedelta
) -> DueTicks:
    """The ticks of a schedule due at ``now``: each tick after ``state.after`` up to ``now``
    that is at most ``catchup`` old, at most ``TICKS_PER_PASS`` of them.

    A paused schedule has none due. Ticks too old are not enumerated (a long outage of an
    every-second schedule would be millions): only the first of them and the window's start
    are reported.
    """
    if state.paused:
        return DueTicks([], None, next_after(max(state.after, now)))
    first = next_after(state.after)
    window = now - catchup
    skipped = None
    start = state.after
    if first < window:
        start = window - _MICROSECOND  # a tick exactly ``catchup`` old is still caught up
        skipped = (first, window)
        first = next_after(start)
    due: list[datetime] = []
    tick = first
    while tick <= now and len(due) < TICKS_PER_PASS:
        due.append(tick)
        tick = next_after(tick)
    return DueTicks(due, skipped, tick)
