"""``GET /metrics`` and the timing of every HTTP request (decision 26).

The route is left out of the OpenAPI document: it answers Prometheus's text format, for
Prometheus, and never a problem.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from taskflow.adapters.prometheus import (
    CONTENT_TYPE,
    Metrics,
    QueueFigures,
    WorkerFigures,
    exposition,
    fleet_families,
)
from taskflow.adapters.prometheus.counting import UNMATCHED

log = logging.getLogger("taskflow.metrics")

#: Reads the cluster-wide gauges from the stores; None where the process exposes none.
FleetReader = Callable[[], Awaitable[Sequence[Metric]]]


class FleetSource(Protocol):
    """What the fleet service (``container.fleet_service()``) offers the gauges."""

    async def queues(self) -> Sequence[QueueFigures]: ...
    async def workers(self) -> Sequence[WorkerFigures]: ...


def fleet_reader(source: FleetSource) -> FleetReader:
    """Read the queues and the live workers at each scrape, and make the gauges of them."""

    async def read() -> Sequence[Metric]:
        queues, workers = await asyncio.gather(source.queues(), source.workers())
        return fleet_families(queues, workers)

    return read


@get("/metrics", include_in_schema=False)
async def metrics_text(request: Request[Any, Any, Any]) -> Response[bytes]:
    metrics: Metrics = request.app.state.metrics
    fleet: FleetReader | None = request.app.state.fleet
    extra: list[Metric] = []
    if fleet is not None:
        extra = await _fleet_or_down(fleet)
    return Response(exposition(metrics, extra), media_type=CONTENT_TYPE)


async def _fleet_or_down(fleet: FleetReader) -> list[Metric]:
    """The fleet's gauges and ``taskflow_fleet_up`` 1; only the latter, 0, when the stores
    cannot be read: the process's own counters are still worth the scrape."""
    up = GaugeMetricFamily(
        "taskflow_fleet_up", "1 when the queue and worker gauges could be read from the stores."
    )
    try:
        families = list(await fleet())
    except Exception as exc:
        log.warning("metrics: could not read the queues and workers", extra={"error": str(exc)})
        up.add_metric((), 0)
        return [up]
    up.add_metric((), 1)
    return [*families, up]


def timing(metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware that times each HTTP request, labelled by its route's path template
    (``/api/tasks/{task_id}``, never the path itself) and its status."""

    def middleware(app: ASGIApp) -> ASGIApp:
        if not metrics.enabled:
            return app

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            began = time.perf_counter()
            status = 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = scope.get("path_template") or UNMATCHED
                method = scope["method"]
                metrics.request(method, route, status, time.perf_counter() - began)

        return timed

    return middleware
