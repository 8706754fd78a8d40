"""Prometheus metrics (prometheus-client): what each process counts, the gauges computed from
the stores, and the text a scrape of ``/metrics`` gets (decision 26)."""

from taskflow.adapters.prometheus.counting import Metrics, PrometheusMetrics
from taskflow.adapters.prometheus.exposition import (
    CONTENT_TYPE,
    MULTIPROC_DIR,
    exposition,
    new_metrics,
    shared_across_processes,
)
from taskflow.adapters.prometheus.fleet import QueueFigures, WorkerFigures, fleet_families

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_DIR",
    "Metrics",
    "PrometheusMetrics",
    "QueueFigures",
    "WorkerFigures",
    "exposition",
    "fleet_families",
    "new_metrics",
    "shared_across_processes",
]
