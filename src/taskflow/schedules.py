"""Periodic task definitions: ``tasks.periodic(...)`` (docs/api.md, "Periodic tasks").

A cron expression is read and stepped by cronsim (decision 22), which follows Debian's cron
across daylight-saving changes: a job whose time does not exist that day (02:30 when clocks
spring from 02:00 to 03:00) runs at the jump, once; a job whose time happens twice (02:30
when clocks fall back) runs the first time only. Jobs with ``*`` in the hour field run every
hour that happens, both 02:00s included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

from taskflow.domain.keys import DEFAULT_TENANT, tenant_problem
from taskflow.domain.limits import type_name_problem, type_options_problem
from taskflow.domain.schedules import EVERY_MIN, every_tick_after, schedule_name_problem


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """One periodic task: submit ``type`` with ``payload`` at each tick of ``cron`` (in
    ``timezone``) or of ``every``. Build it with ``Registry.periodic``."""

    name: str
    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    queue: str | None = None
    priority: int | None = None
    catchup: timedelta | None = None  # None: TASKFLOW_SCHEDULE_CATCHUP_SECONDS
    tenant: str = DEFAULT_TENANT  # whose tasks its ticks make, and who sees it (decision 36)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self)
        object.__setattr__(self, "_zone", _zone(self.name, self.timezone))

    def next_after(self, instant: datetime) -> datetime:
        """The first tick strictly after ``instant``, in UTC."""
        if self.every is not None:
            return every_tick_after(instant, self.every)
        return self._cron_after(instant)

    def _cron_after(self, instant: datetime) -> datetime:
        assert self.cron is not None
        local = instant.astimezone(self._zone)
        try:
            tick = next(iter(CronSim(self.cron, local)))
        except (CronSimError, StopIteration) as exc:
            raise ValueError(
                f"{self.name!r}: cron {self.cron!r}: {exc or 'never matches'}"
            ) from None
        return tick.astimezone(UTC)


def _check(schedule: Schedule) -> None:
    name = schedule.name
    problem = schedule_name_problem(name)
    if problem:
        raise ValueError(f"{name!r}: {problem}")
    problem = type_name_problem(schedule.type)
    if problem:
        raise ValueError(f"{name!r}: type: {problem}")
    _check_timing(schedule)
    refused = type_options_problem(queue=schedule.queue, priority=schedule.priority)
    if refused:
        raise ValueError(f"{name!r}: {refused[1]}")
    problem = tenant_problem(schedule.tenant)
    if problem:
        raise ValueError(f"{name!r}: {problem}")
    if not isinstance(schedule.payload, Mapping):
        raise ValueError(f"{name!r}: payload must be a JSON object")
    try:
        msgspec.json.encode(schedule.payload)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"{name!r}: payload is not JSON: {exc}") from None


def _check_timing(schedule: Schedule) -> None:
    name = schedule.name
    if (schedule.cron is None) == (schedule.every is None):
        raise ValueError(f"{name!r}: give cron or every, exactly one of them")
    if schedule.every is not None and not (
        isinstance(schedule.every, timedelta) and schedule.every >= EVERY_MIN
    ):
        raise ValueError(f"{name!r}: every must be a timedelta of at least {EVERY_MIN}")
    if schedule.cron is not None:
        try:
            CronSim(schedule.cron, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"{name!r}: cron {schedule.cron!r} is not valid: {exc}") from None
    if schedule.catchup is not None and not (
        isinstance(schedule.catchup, timedelta) and schedule.catchup >= timedelta(0)
    ):
        raise ValueError(f"{name!r}: catchup must be a timedelta, zero or more")


def _zone(name: str, timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r}: timezone {timezone!r} is not a known IANA time zone") from None


def every_seconds(schedule: Schedule) -> float | None:
    """``every`` in seconds, as the API shows it."""
    if schedule.every is None:
        return None
    seconds = schedule.every.total_seconds()
    return float(int(seconds)) if math.isclose(seconds, round(seconds)) else seconds
