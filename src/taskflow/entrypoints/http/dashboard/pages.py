"""The dashboard's pages: thin handlers that ask the services and render a template."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from taskflow.domain.keys import Scope
from taskflow.domain.model import CANCELLABLE, RETRYABLE, TaskStatus
from taskflow.domain.queries import TaskCount
from taskflow.domain.services import ScheduleService, TaskService
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.http.auth import principal_of, tenant_of
from taskflow.entrypoints.http.dashboard import charts
from taskflow.entrypoints.http.dashboard.csrf import page_token
from taskflow.entrypoints.http.dashboard.figures import figures
from taskflow.entrypoints.http.dashboard.forms import form_values, list_request, task_id
from taskflow.entrypoints.http.listing import encode_cursor
from taskflow.entrypoints.http.schedules import ScheduleOut
from taskflow.entrypoints.http.sessions import cookie_name

#: The fixed texts an action's redirect may ask a page to show (never text from the request).
NOTICES = {
    "cancelled": "The task is cancelled.",
    "cancel_requested": "Cancel requested: the worker running the task is stopping it.",
    "retried": "The task is PENDING again and will run shortly.",
    "queue_paused": "The queue is paused: it accepts tasks and starts none.",
    "queue_resumed": "The queue is resumed.",
    "schedule_paused": "The schedule is paused.",
    "schedule_resumed": "The schedule is resumed.",
}


def page(request: Request[Any, Any, Any], name: str, nav: str, **context: Any) -> Template:
    """A page with its forms' token (``csrf``), setting the token's cookie when it is new. Its
    actions are shown to whoever may do them (``can_act``), and a signed-in browser gets the
    sign-out button (``signed_in``)."""
    notice = NOTICES.get(request.query_params.get("notice") or "")
    token, cookie = page_token(request)
    principal = principal_of(request)
    who = {
        "can_act": principal.allows(Scope.ADMIN),
        "operator": principal.is_operator,  # sees the fleet (decision 36)
        "signed_in": cookie_name(request.url.scheme) in request.cookies,
    }
    return Template(
        f"{name}.html",
        context={"nav": nav, "notice": notice, "csrf": token, **who, **context},
        cookies=[] if cookie is None else [cookie],
    )


def _by_status(counts: list[TaskCount]) -> dict[TaskStatus, int]:
    totals = dict.fromkeys(TaskStatus, 0)
    for count in counts:
        totals[count.status] += count.count
    return totals


class DashboardPages(Controller):
    path = "/dashboard"
    include_in_schema = False

    @get("/")
    async def overview(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[TaskService],
        fleet: NamedDependency[FleetService],
    ) -> Template:
        shared = await figures(request, service)
        counts, minutes = shared.counts, shared.minutes
        # The queues hold every tenant's tasks: the fleet is the operator's (decision 36).
        queues = await fleet.queues() if principal_of(request).is_operator else []
        ages = [q.oldest_ready_age_seconds for q in queues if q.oldest_ready_age_seconds]
        return page(
            request,
            "overview",
            "overview",
            statuses=list(TaskStatus),
            by_status=_by_status(counts),
            queues=queues,
            oldest_ready=max(ages, default=None),
            minutes=minutes,
            hour={
                "succeeded": sum(m.succeeded for m in minutes),
                "failed": sum(m.failed for m in minutes),
                "cancelled": sum(m.cancelled for m in minutes),
            },
            throughput=charts.throughput(minutes),
            failure_rate=charts.failure_rate(minutes),
        )

    @get("/tasks")
    async def tasks(
        self, request: Request[Any, Any, Any], service: NamedDependency[TaskService]
    ) -> Template:
        params = request.query_params
        wanted = list_request(params, tenant=tenant_of(request))
        found = await service.find(wanted.query, after=wanted.after, limit=wanted.limit)
        older = None
        if found.next is not None:
            kept = [(k, v) for k, v in params.multi_items() if k not in {"cursor", "notice"}]
            older = [*kept, ("cursor", encode_cursor(found.next))]
        return page(
            request,
            "tasks",
            "tasks",
            statuses=list(TaskStatus),
            form=form_values(params),
            tasks=found.items,
            older=older,
            paged=params.get("cursor") is not None,
        )

    @get("/lookup")
    async def lookup(self, request: Request[Any, Any, Any]) -> Redirect:
        wanted = task_id(request.query_params.get("id") or "")
        return Redirect(f"/dashboard/tasks/{wanted}", status_code=303)

    @get("/tasks/{raw_id:str}")
    async def task(
        self,
        request: Request[Any, Any, Any],
        raw_id: FromPath[str],
        service: NamedDependency[TaskService],
    ) -> Template:
        wanted, tenant = task_id(raw_id), tenant_of(request)
        task = await service.get(wanted, tenant=tenant)
        attempts, changes = await service.history(wanted, tenant=tenant)
        callback_url, deliveries = await service.deliveries(wanted, tenant=tenant)
        timeline = sorted(
            [("attempt", a.started_at, a) for a in attempts]
            + [("change", c.at, c) for c in changes],
            key=lambda entry: entry[1],
        )
        traceback = next(
            (a.error.traceback for a in reversed(attempts) if a.error and a.error.traceback),
            None,
        )
        return page(
            request,
            "task",
            "tasks",
            task=task,
            retryable=task.status in RETRYABLE,
            cancellable=task.status in CANCELLABLE and not task.cancel_requested,
            timeline=timeline,
            traceback=traceback,
            callback_url=callback_url,
            deliveries=deliveries,
        )

    @get("/schedules")
    async def schedules(
        self, request: Request[Any, Any, Any], schedules: NamedDependency[ScheduleService]
    ) -> Template:
        mine = await schedules.list(tenant=tenant_of(request))
        views = [ScheduleOut.of(view) for view in mine]
        return page(request, "schedules", "schedules", schedules=views)

    @get("/queues")
    async def queues(
        self, request: Request[Any, Any, Any], fleet: NamedDependency[FleetService]
    ) -> Template:
        return page(request, "queues", "queues", queues=await fleet.queues())

    @get("/workers")
    async def workers(
        self, request: Request[Any, Any, Any], fleet: NamedDependency[FleetService]
    ) -> Template:
        return page(request, "workers", "workers", workers=await fleet.workers())
