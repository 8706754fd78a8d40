"""``GET /metrics`` and the timing of every HTTP request (decision 26).

The route is left out of the OpenAPI document: it answers Prometheus's text format, for
Prometheus, and never a problem.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from litestar import Request, Response, get
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
