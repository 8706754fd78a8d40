"""The dashboard's actions: HTML forms POSTed here, answered by a redirect (303) to a page.

Each is refused with 403 unless it comes from the dashboard's own page in this browser: its
origin and the form's token are checked first (csrf.py, decision 31).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Redirect

from taskflow.domain.services import ScheduleService, TaskService
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.http.auth import tenant_of
from taskflow.entrypoints.http.dashboard.csrf import refuse_cross_site
from taskflow.entrypoints.http.dashboard.forms import dashboard_path, edited_payload, task_id
from taskflow.entrypoints.http.tasks import check_payload
from taskflow.entrypoints.logs import EventLog, task_facts

log = logging.getLogger("taskflow.api")
events = EventLog(log)

#: Who the task's history says made a change from the dashboard.
ACTOR = "dashboard"
_Act = Callable[[str], Awaitable[object]]


async def _pause_or_resume(kind: str, name: str, verb: str, *, pause: _Act, resume: _Act) -> None:
    """A queue's or a schedule's pause or resume; any other verb is no action (404)."""
    if verb == "pause":
        await pause(name)
    elif verb == "resume":
        await resume(name)
    else:
        raise HTTPException(status_code=404, detail=f"no {kind} action {verb[:32]!r}")


def back(request: Request[Any, Any, Any], form: Any, default: str, notice: str) -> Redirect:
    """To the page the form names in ``next`` (a dashboard page only), else ``default``."""
    target = dashboard_path(str(form.get("next") or ""), default)
    path, _, query = target.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("notice=")]
    kept.append(urlencode({"notice": notice}))
    return Redirect(f"{path}?{'&'.join(kept)}", status_code=303)


class DashboardActions(Controller):
    path = "/dashboard"
    include_in_schema = False

    @post("/tasks/{raw_id:str}/cancel", before_request=refuse_cross_site)
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        raw_id: FromPath[str],
        service: NamedDependency[TaskService],
    ) -> Redirect:
        form = await request.form()
        task = await service.cancel(task_id(raw_id), tenant=tenant_of(request))
        events.info(
            "cancel requested" if task.cancel_requested else "task cancelled", task_facts(task)
        )
        notice = "cancel_requested" if task.cancel_requested else "cancelled"
        return back(request, form, f"/dashboard/tasks/{task.id}", notice)

    @post("/tasks/{raw_id:str}/retry", before_request=refuse_cross_site)
    async def retry(
        self,
        request: Request[Any, Any, Any],
        raw_id: FromPath[str],
        service: NamedDependency[TaskService],
    ) -> Redirect:
        form = await request.form()
        payload = edited_payload(form)
        if payload is not None:
            check_payload(payload, request.app.state.limits)
        task = await service.retry(
            task_id(raw_id), payload=payload, by=ACTOR, tenant=tenant_of(request)
        )
        log.info("task retried", extra=task_facts(task))
        return back(request, form, f"/dashboard/tasks/{task.id}", "retried")

    @post("/queues/{name:str}/{verb:str}", before_request=refuse_cross_site)
    async def queue(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        verb: FromPath[str],
        fleet: NamedDependency[FleetService],
    ) -> Redirect:
        form = await request.form()
        await _pause_or_resume("queue", name, verb, pause=fleet.pause, resume=fleet.resume)
        return back(request, form, "/dashboard/queues", f"queue_{verb}d")

    @post("/schedules/{name:str}/{verb:str}", before_request=refuse_cross_site)
    async def schedule(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        verb: FromPath[str],
        schedules: NamedDependency[ScheduleService],
    ) -> Redirect:
        form = await request.form()
        tenant = tenant_of(request)
        await _pause_or_resume(
            "schedule",
            name,
            verb,
            pause=functools.partial(schedules.pause, tenant=tenant),
            resume=functools.partial(schedules.resume, tenant=tenant),
        )
        return back(request, form, "/dashboard/schedules", f"schedule_{verb}d")
