"""What one process counts: the tasks it submitted, ran, failed, reaped or held back, and the
HTTP requests it answered.

Each process counts only what it did itself, so that a sum over every process of a deployment
(API processes and workers, on any hosts) counts each event once. A child of a metric is looked
up once per label values and kept: an event costs a dict lookup and an addition (``tally``),
no network, no lock and no await.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from taskflow.adapters.prometheus.tally import Tallies
from taskflow.domain.flow import Popped
from taskflow.domain.model import Task, TaskStatus

#: Seconds: from a millisecond to a day, for both the wait in the queue and the run.
TASK_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0, 21600.0, 86400.0,
)  # fmt: skip
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The route label of a request no route matched (a 404 or 405 of the router).
UNMATCHED = "<unmatched>"

# A ``_created`` series beside each counter and histogram doubles the scrape and tells
# Prometheus nothing it uses (the multiprocess mode never writes them either).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Counts nothing: what a process with ``TASKFLOW_METRICS=false`` (or a test) is given."""

    enabled = False

    def submitted(self, tasks: Iterable[Task]) -> None:
        """New tasks were stored (not an idempotent replay)."""

    def ended(self, task: Task, run_seconds: float | None = None) -> None:
        """An attempt of ``task`` ended with ``task`` as it now is (PENDING: a retry is due;
        never called for an attempt handed back at shutdown); ``run_seconds``: how long its
        handler ran, when one ran here. Also a PENDING task cancelled at once."""

    def started(self, task: Task) -> None:
        """A claimed task's handler is about to run: its wait in the queue is over."""

    def leases_expired(self, tasks: Iterable[Task]) -> None:
        """The sweep turned these tasks' expired leases into failed attempts."""

    def throttled(self, tasks: Iterable[Popped]) -> None:
        """A flow limit held these tasks back before a claim."""

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """An HTTP request was answered."""


class PrometheusMetrics(Metrics):
    """The metrics of one process, exposed with prometheus-client.

    ``registry``: the registry a scrape reads, where they are kept as tallies of this process
    (``tally``). None in multiprocess mode: then they are prometheus-client's own objects,
    whose values live in the shared files (collected by ``exposition``).
    """

    enabled = True

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry
        make_counter: Callable[[str, str, Sequence[str]], Any]
        make_histogram: Callable[[str, str, Sequence[str], Sequence[float]], Any]
        if registry is None:
            make_counter = _shared_counter
            make_histogram = _shared_histogram
        else:
            tallies = Tallies()
            registry.register(tallies)
            make_counter, make_histogram = tallies.counter, tallies.histogram
        by_type_and_queue = ("type", "queue")

        def counter(name: str, doc: str) -> Children:
            return Children(make_counter(name, doc, by_type_and_queue))

        def histogram(name: str, doc: str) -> Children:
            return Children(make_histogram(name, doc, ("type",), TASK_BUCKETS))

        self._submitted = counter("taskflow_tasks_submitted", "Tasks stored by this process.")
        self._by_status = {
            TaskStatus.SUCCESS: counter("taskflow_tasks_succeeded", "Tasks that succeeded."),
            TaskStatus.FAILED: counter(
                "taskflow_tasks_failed", "Tasks that failed for good (no retry left, or Fail)."
            ),
            TaskStatus.PENDING: counter(
                "taskflow_tasks_retried", "Failed attempts followed by a retry."
            ),
            TaskStatus.CANCELLED: counter("taskflow_tasks_cancelled", "Tasks cancelled."),
        }
        self._expired = counter(
            "taskflow_leases_expired", "Expired leases the sweep turned into failed attempts."
        )
        self._throttled = counter(
            "taskflow_tasks_throttled", "Starts a flow limit held back (not attempts)."
        )
        self._wait = histogram(
            "taskflow_task_queue_wait_seconds", "From when a task was due to its claim."
        )
        self._run = histogram("taskflow_task_run_seconds", "How long handlers ran.")
        self._http = Children(
            make_histogram(
                "taskflow_http_request_duration_seconds",
                "HTTP requests answered, by route template and status.",
                ("method", "route", "status"),
                HTTP_BUCKETS,
            )
        )

    def submitted(self, tasks: Iterable[Task]) -> None:
        for task in tasks:
            self._submitted[task.type, task.queue].inc()

    def ended(self, task: Task, run_seconds: float | None = None) -> None:
        counted = self._by_status.get(task.status)
        if counted is None:
            return
        counted[task.type, task.queue].inc()
        if run_seconds is not None:
            self._run[(task.type,)].observe(run_seconds)

    def started(self, task: Task) -> None:
        if task.started_at is None:
            return
        waited = (task.started_at - task.run_at).total_seconds()
        self._wait[(task.type,)].observe(waited if waited > 0.0 else 0.0)

    def leases_expired(self, tasks: Iterable[Task]) -> None:
        for task in tasks:
            self._expired[task.type, task.queue].inc()
            self.ended(task)

    def throttled(self, tasks: Iterable[Popped]) -> None:
        for task in tasks:
            self._throttled[task.type, task.queue].inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http[method, route, status].observe(seconds)


class Children(dict[tuple[Any, ...], Any]):
    """A metric's children by their label values, each made once: a hit is a dict look-up."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, labels: tuple[Any, ...]) -> Any:
        child = self[labels] = self.metric.labels(*labels)
        return child


def _shared_counter(name: str, doc: str, labelnames: Sequence[str]) -> Counter:
    return Counter(name, doc, labelnames, registry=None)


def _shared_histogram(
    name: str, doc: str, labelnames: Sequence[str], buckets: Sequence[float]
) -> Histogram:
    return Histogram(name, doc, labelnames, buckets=buckets, registry=None)
