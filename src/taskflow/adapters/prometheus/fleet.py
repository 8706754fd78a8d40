"""The cluster-wide gauges, computed from the stores when ``/metrics`` is scraped.

They describe the whole deployment, not the process that answers: only the API exposes them
(decision 26), from the fleet service's queues and workers. The figures are read through the
two protocols below, which the fleet's ``QueueStats`` and ``WorkerInfo`` satisfy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric


class QueueFigures(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def ready(self) -> int: ...
    @property
    def delayed(self) -> int: ...
    @property
    def processing(self) -> int: ...
    @property
    def oldest_ready_age_seconds(self) -> float | None: ...
    @property
    def paused(self) -> bool: ...
    @property
    def consumers(self) -> int: ...
    @property
    def unconsumed(self) -> bool: ...


class WorkerFigures(Protocol):
    @property
    def queues(self) -> tuple[str, ...]: ...
    @property
    def running(self) -> tuple[object, ...]: ...


def fleet_families(
    queues: Sequence[QueueFigures], workers: Sequence[WorkerFigures]
) -> list[Metric]:
    """The gauges of the deployment's queues and live workers, as one scrape shows them."""
    depth = GaugeMetricFamily(
        "taskflow_queue_depth",
        "Tasks of a queue by state: ready (due), delayed (due later), processing.",
        labels=("queue", "state"),
    )
    oldest = GaugeMetricFamily(
        "taskflow_queue_oldest_ready_age_seconds",
        "How long the oldest ready task of a queue has been due (0: none is ready).",
        labels=("queue",),
    )
    consumers = GaugeMetricFamily(
        "taskflow_queue_consumers", "Live workers consuming a queue.", labels=("queue",)
    )
    unconsumed = GaugeMetricFamily(
        "taskflow_queue_unconsumed",
        "1 when a queue has work (ready or delayed) and no live worker consumes it.",
        labels=("queue",),
    )
    paused = GaugeMetricFamily(
        "taskflow_queue_paused", "1 while a queue is paused.", labels=("queue",)
    )
    for queue in queues:
        for state, count in (
            ("ready", queue.ready),
            ("delayed", queue.delayed),
            ("processing", queue.processing),
        ):
            depth.add_metric((queue.name, state), count)
        oldest.add_metric((queue.name,), queue.oldest_ready_age_seconds or 0.0)
        consumers.add_metric((queue.name,), queue.consumers)
        unconsumed.add_metric((queue.name,), 1 if queue.unconsumed else 0)
        paused.add_metric((queue.name,), 1 if queue.paused else 0)
    alive = GaugeMetricFamily("taskflow_workers_alive", "Live worker processes.")
    alive.add_metric((), len(workers))
    running = GaugeMetricFamily(
        "taskflow_workers_running_tasks", "Tasks the live workers are running now."
    )
    running.add_metric((), sum(len(worker.running) for worker in workers))
    return [depth, oldest, consumers, unconsumed, paused, alive, running]
