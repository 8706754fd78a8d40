"""Periodic schedules over HTTP: ``GET /api/schedules``, pause and resume (docs/api.md)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from taskflow.domain.limits import DEFAULT_QUEUE
from taskflow.domain.services import ScheduleService, ScheduleView
from taskflow.entrypoints.http.auth import tenant_of
from taskflow.entrypoints.http.openapi import problem_responses
from taskflow.entrypoints.http.schemas import timestamp
from taskflow.schedules import Schedule, every_seconds


class ScheduleOut(msgspec.Struct, kw_only=True):
    """A periodic task of the Registry: ``cron`` (read in ``timezone``) or ``every`` (seconds,
    counted from the Unix epoch) is set, the other null; ``next_run_at`` is null while paused."""

    name: str
    type: str
    cron: str | None
    every: float | None
    timezone: str
    queue: str
    paused: bool
    last_run_at: str | None
    next_run_at: str | None

    @classmethod
    def of(cls, view: ScheduleView) -> ScheduleOut:
        schedule = view.timetable
        assert isinstance(schedule, Schedule)
        return cls(
            name=schedule.name,
            type=schedule.type,
            cron=schedule.cron,
            every=every_seconds(schedule),
            timezone=schedule.timezone,
            queue=schedule.queue or DEFAULT_QUEUE,
            paused=view.paused,
            last_run_at=None if view.last_run_at is None else timestamp(view.last_run_at),
            next_run_at=None if view.next_run_at is None else timestamp(view.next_run_at),
        )


class SchedulesOut(msgspec.Struct):
    items: list[ScheduleOut]


class ScheduleController(Controller):
    path = "/api/schedules"
    tags = ["schedules"]

    @get(
        "/",
        summary="The periodic tasks, with their last and next tick",
        operation_id="list_schedules",
        responses=problem_responses(503),
    )
    async def list_schedules(
        self, request: Request[Any, Any, Any], schedules: NamedDependency[ScheduleService]
    ) -> SchedulesOut:
        mine = await schedules.list(tenant=tenant_of(request))
        return SchedulesOut([ScheduleOut.of(view) for view in mine])

    @post(
        "/{name:str}/pause",
        status_code=200,
        summary="Enqueue no tick of this schedule until it is resumed",
        operation_id="pause_schedule",
        responses=problem_responses(400, 404, 503),
    )
    async def pause(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        schedules: NamedDependency[ScheduleService],
    ) -> ScheduleOut:
        return ScheduleOut.of(await schedules.pause(name, tenant=tenant_of(request)))

    @post(
        "/{name:str}/resume",
        status_code=200,
        summary="Enqueue this schedule's ticks again, from now on (missed ones are not caught up)",
        operation_id="resume_schedule",
        responses=problem_responses(400, 404, 503),
    )
    async def resume(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        schedules: NamedDependency[ScheduleService],
    ) -> ScheduleOut:
        return ScheduleOut.of(await schedules.resume(name, tenant=tenant_of(request)))
