"""The text of ``/metrics``, and prometheus-client's multiprocess mode for several API
processes on one port.

With ``TASKFLOW_API_PROCESSES`` above 1, a scrape reaches any one of the processes; each then
answers the sum of all of them, read from the files prometheus-client's multiprocess mode keeps
in ``PROMETHEUS_MULTIPROC_DIR``, a directory the parent process makes for its children and
removes when they are gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from taskflow.adapters.prometheus.counting import Metrics, PrometheusMetrics

#: The text format generate_latest writes; Litestar adds the charset.
CONTENT_TYPE = "text/plain; version=0.0.4"
#: prometheus-client reads it when it is first imported: set before the children start.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class _Fixed:
    """A collector of metric families computed beforehand (the fleet's, read asynchronously)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


def new_metrics(enabled: bool) -> Metrics:
    """This process's metrics: in a registry of their own, or, in multiprocess mode, in the
    shared files (collected by ``exposition``)."""
    if not enabled:
        return Metrics()
    if os.environ.get(MULTIPROC_DIR):
        return PrometheusMetrics(None)
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return PrometheusMetrics(registry)


def exposition(metrics: Metrics, extra: Sequence[Metric] = ()) -> bytes:
    """The Prometheus text format of ``metrics`` (all processes' in multiprocess mode), and of
    the ``extra`` families."""
    registry = CollectorRegistry(auto_describe=False)
    own = metrics.registry if isinstance(metrics, PrometheusMetrics) else None
    if own is not None:
        registry.register(_Fixed(list(own.collect())))
    elif metrics.enabled and os.environ.get(MULTIPROC_DIR):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if extra:
        registry.register(_Fixed(extra))
    return generate_latest(registry)


@contextlib.contextmanager
def shared_across_processes() -> Iterator[str]:
    """A fresh multiprocess directory, named in the environment the child processes inherit,
    removed (with the variable) on exit."""
    directory = tempfile.mkdtemp(prefix="taskflow-metrics-")
    previous = os.environ.get(MULTIPROC_DIR)
    os.environ[MULTIPROC_DIR] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_DIR, None)
        else:
            os.environ[MULTIPROC_DIR] = previous
        shutil.rmtree(directory, ignore_errors=True)
