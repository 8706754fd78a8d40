"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import importlib.metadata

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components

from taskflow.containers import Container, close_container, open_enqueued_listener
from taskflow.domain.services import ScheduleService, TaskService
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.http.auth import BEARER, BEARER_SCHEME, key_check
from taskflow.entrypoints.http.body_limits import BodyDeadlines, Limits
from taskflow.entrypoints.http.closed_structs import ClosedStructSchemaPlugin
from taskflow.entrypoints.http.dashboard import dashboard_router, template_config
from taskflow.entrypoints.http.fleet import QueueController, list_workers
from taskflow.entrypoints.http.health import Probes, live, ready
from taskflow.entrypoints.http.keys import KeyController, provide_keys
from taskflow.entrypoints.http.metrics import FleetReader, fleet_reader, metrics_text
from taskflow.entrypoints.http.openapi import SubmissionSchemaPlugin
from taskflow.entrypoints.http.problems import EXCEPTION_HANDLERS
from taskflow.entrypoints.http.request_ids import RequestIds
from taskflow.entrypoints.http.schedules import ScheduleController
from taskflow.entrypoints.http.schema_pages import SCHEMA_PATH, assets_router, render_plugins
from taskflow.entrypoints.http.security_headers import API_HEADERS
from taskflow.entrypoints.http.tasks import TaskController
from taskflow.entrypoints.http.tracing import submit_tracing
from taskflow.entrypoints.http.types import describe_types, list_types
from taskflow.entrypoints.startup import prepare, tune_gc_for_serving, warm_store
from taskflow.entrypoints.sweeper import Sweeper, log_queue_warnings

API_VERSION = importlib.metadata.version("taskflow")


def create_app(container: Container, *, fleet: FleetReader | None = None) -> Litestar:
    """The API's app; ``fleet`` reads the cluster-wide gauges its ``/metrics`` adds to the
    process's own (the API's only: decision 26)."""
    settings = container.settings()
    metrics = container.metrics()
    if fleet is None and metrics.enabled:  # the deployment's gauges, read at each scrape
        fleet = fleet_reader(container.fleet_service())
    tracing = container.tracing()

    def task_service() -> TaskService:
        return container.task_service()

    def schedule_service() -> ScheduleService:
        return container.schedule_service()

    def fleet_service() -> FleetService:
        return container.fleet_service()

    def probes() -> Probes:
        return Probes(store=container.repository().ping, queue=container.queue().ping)

    sweeping: list[asyncio.Task[None]] = []

    async def startup() -> None:
        # The API sweeps too, so a task it accepted but could not dispatch (Redis down, a
        # crash after the insert) is dispatched even before any worker looks for it.
        service = container.execution_service()
        await warm_store(container, "insert")
        await log_queue_warnings(service)
        sweeping.append(asyncio.create_task(Sweeper(service, metrics).run(settings.sweep_seconds)))
        listener = open_enqueued_listener(container, service.dispatch_stored)
        if listener is not None:  # tasks enqueued in callers' transactions, at their commit
            sweeping.append(asyncio.create_task(listener.run()))

    async def shutdown() -> None:
        for job in sweeping:
            job.cancel()
        await asyncio.gather(*sweeping, return_exceptions=True)
        await close_container(container)

    app = Litestar(
        route_handlers=[
            TaskController,
            ScheduleController,
            QueueController,
            KeyController,
            list_workers,
            list_types,
            live,
            ready,
            assets_router(),
            *([metrics_text] if metrics.enabled else []),
            dashboard_router(),
        ],
        # The `submit` span only while tracing is on (decision 28).
        middleware=[] if tracing is None else [submit_tracing(tracing)],
        dependencies={
            "service": Provide(task_service, sync_to_thread=False),
            "probes": Provide(probes, sync_to_thread=False),
            "schedules": Provide(schedule_service, sync_to_thread=False),
            "fleet": Provide(fleet_service, sync_to_thread=False),
            "keys": provide_keys(container),
        },
        # Read by the submit handlers from the app's state rather than injected: Litestar
        # resolves two dependencies of one handler in an anyio task group, which cost 15 % of
        # a single submission's CPU.
        state=State(
            {
                "types": describe_types(container.registry(), container.retry_policy()),
                "limits": Limits(
                    max_payload_bytes=settings.max_payload_bytes,
                    max_body_bytes=settings.max_body_bytes,
                    deadlines=BodyDeadlines(settings.body_timeout_seconds),
                ),
                "metrics": metrics,
                "fleet": fleet,
                "auth_disabled": settings.auth == "disabled",  # the dashboard needs no sign-in
            }
        ),
        template_config=template_config(),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="taskflow",
            version=API_VERSION,
            description="Submit background tasks and follow them to completion.",
            path=SCHEMA_PATH,
            render_plugins=render_plugins(),
            # Every operation asks for a key (once one exists); /health/* opts out.
            components=Components(security_schemes={BEARER: BEARER_SCHEME}),
            security=[{BEARER: []}],
        ),
        # The submission body as one schema per registered type (docs/api.md, "OpenAPI"), and
        # the bodies that refuse unknown fields documented as closed.
        plugins=[SubmissionSchemaPlugin(container.registry()), ClosedStructSchemaPlugin()],
        on_startup=[startup],
        on_shutdown=[shutdown],
        logging_config=None,  # ours (logs.configure) stays in charge
        debug=False,
    )
    # A trace id on every log line of a request, and in its answer (docs/operations.md), and
    # each request timed by its route's template (decision 26). Around the whole handler, not
    # as route middleware: that would wrap each route in one more exception handler, which
    # cost the submit path more than the ids and the timing themselves (about 8 % of it).
    timed = metrics.request if metrics.enabled else None
    # In it, API keys are checked once one exists (decision 30).
    app.asgi_handler = RequestIds(
        app.asgi_handler, timed=timed, headers=API_HEADERS, check=key_check(container)
    )
    return app


def app_from_environment() -> Litestar:
    """The app of one of several API processes (``TASKFLOW_API_PROCESSES``), built in it."""
    app = create_app(prepare("server"))
    tune_gc_for_serving()
    return app
