"""Metrics (decision 26): what a process counts, the fleet's gauges, ``/metrics`` and the
request timing, on the in-memory adapters; parsed with prometheus-client's own parser."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.prometheus import (
    Metrics,
    PrometheusMetrics,
    exposition,
    fleet_families,
    new_metrics,
)
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.domain.model import Task, TaskStatus
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.metrics import fleet_reader
from taskflow.entrypoints.loading import load_registry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Queue:
    """A hand-made queue, shaped as the fleet's QueueStats."""

    name: str
    ready: int = 0
    delayed: int = 0
    processing: int = 0
    oldest_ready_age_seconds: float | None = None
    paused: bool = False
    consumers: int = 0

    @property
    def unconsumed(self) -> bool:
        return self.ready + self.delayed > 0 and self.consumers == 0


@dataclass(frozen=True, slots=True)
class Worker:
    """A hand-made worker, shaped as the fleet's WorkerInfo."""

    queues: tuple[str, ...]
    running: tuple[uuid.UUID, ...] = ()


class Fleet:
    def __init__(self, queues: Sequence[Queue], workers: Sequence[Worker]) -> None:
        self._queues, self._workers = queues, workers
        self.down = False

    async def queues(self) -> Sequence[Queue]:
        if self.down:
            raise ConnectionError("Redis is down")
        return self._queues

    async def workers(self) -> Sequence[Worker]:
        return self._workers


def samples(text: bytes | str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    raw = text.decode() if isinstance(text, bytes) else text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(raw)
        for sample in family.samples
    }


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def make_task(status: TaskStatus = TaskStatus.PENDING, **changes: Any) -> Task:
    """A mail.send task in the ``mail`` queue, after one attempt, in ``status``."""
    task = Task.new(id=uuid.uuid4(), type="mail.send", payload={}, now=NOW, queue="mail")
    finished = (
        NOW if status in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED) else None
    )
    return replace(task, status=status, attempts=1, finished_at=finished, **changes)


def test_outcomes_are_counted_by_status_type_and_queue() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    metrics.submitted([make_task(), make_task(), make_task(type="mail.digest")])
    metrics.ended(make_task(TaskStatus.SUCCESS), 0.2)
    metrics.ended(make_task(TaskStatus.FAILED), 1.5)
    metrics.ended(make_task(TaskStatus.PENDING, retry_count=1), 0.1)
    metrics.ended(make_task(TaskStatus.CANCELLED))
    metrics.leases_expired([make_task(TaskStatus.PENDING, retry_count=1)])
    metrics.throttled([make_task(), make_task()])
    metrics.started(make_task(started_at=NOW + timedelta(seconds=3)))
    metrics.started(make_task(started_at=NOW - timedelta(seconds=1)))  # a clock behind: 0
    scrape = samples(exposition(metrics))
    labels = {"type": "mail.send", "queue": "mail"}
    assert value(scrape, "taskflow_tasks_submitted_total", **labels) == 2
    assert value(scrape, "taskflow_tasks_submitted_total", type="mail.digest", queue="mail") == 1
    assert value(scrape, "taskflow_tasks_succeeded_total", **labels) == 1
    assert value(scrape, "taskflow_tasks_failed_total", **labels) == 1
    assert value(scrape, "taskflow_tasks_retried_total", **labels) == 2  # one by the reaper
    assert value(scrape, "taskflow_tasks_cancelled_total", **labels) == 1
    assert value(scrape, "taskflow_leases_expired_total", **labels) == 1
    assert value(scrape, "taskflow_tasks_throttled_total", **labels) == 2
    # Run times only where a handler ran here: the cancel and the reap have none.
    assert value(scrape, "taskflow_task_run_seconds_count", type="mail.send") == 3
    assert value(scrape, "taskflow_task_run_seconds_sum", type="mail.send") == pytest.approx(1.8)
    assert value(scrape, "taskflow_task_queue_wait_seconds_count", type="mail.send") == 2
    assert value(scrape, "taskflow_task_queue_wait_seconds_sum", type="mail.send") == 3
    assert value(scrape, "taskflow_task_queue_wait_seconds_bucket", type="mail.send", le="0.005")


def test_a_child_is_looked_up_once_per_label_values() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    for _ in range(3):
        metrics.ended(make_task(TaskStatus.SUCCESS), 0.01)
        metrics.request("GET", "/api/tasks/{task_id:str}", 200, 0.001)
    # One child each for the counter, the run histogram and the request histogram.
    assert len(metrics._by_status[TaskStatus.SUCCESS]) == 1
    assert len(metrics._run) == 1
    assert len(metrics._http) == 1


def test_metrics_turned_off_count_nothing_and_expose_nothing() -> None:
    metrics = new_metrics(False)
    assert type(metrics) is Metrics
    metrics.submitted([make_task()])
    metrics.ended(make_task(TaskStatus.SUCCESS), 1.0)
    assert exposition(metrics) == b""


def test_fleet_gauges_from_hand_made_queues_and_workers() -> None:
    queues = [
        Queue("default", ready=4, delayed=1, processing=2, oldest_ready_age_seconds=12.5,
              consumers=2),
        Queue("mail", ready=3, oldest_ready_age_seconds=90.0, paused=True),
        Queue("idle"),
    ]  # fmt: skip
    workers = [
        Worker(("default",), running=(uuid.uuid4(), uuid.uuid4())),
        Worker(("default", "reports")),
    ]
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    scrape = samples(exposition(metrics, fleet_families(queues, workers)))
    assert value(scrape, "taskflow_queue_depth", queue="default", state="ready") == 4
    assert value(scrape, "taskflow_queue_depth", queue="default", state="delayed") == 1
    assert value(scrape, "taskflow_queue_depth", queue="default", state="processing") == 2
    assert value(scrape, "taskflow_queue_oldest_ready_age_seconds", queue="default") == 12.5
    assert value(scrape, "taskflow_queue_oldest_ready_age_seconds", queue="mail") == 90
    assert ("taskflow_queue_oldest_ready_age_seconds", frozenset({("queue", "idle")})) in scrape
    assert value(scrape, "taskflow_queue_consumers", queue="default") == 2
    assert value(scrape, "taskflow_queue_unconsumed", queue="mail") == 1
    assert value(scrape, "taskflow_queue_unconsumed", queue="default") == 0
    assert value(scrape, "taskflow_queue_unconsumed", queue="idle") == 0
    assert value(scrape, "taskflow_queue_paused", queue="mail") == 1
    assert value(scrape, "taskflow_workers_alive") == 2
    assert value(scrape, "taskflow_workers_running_tasks") == 2


@pytest.fixture
def container() -> Container:
    built = build_container(Settings(), load_registry(None, debug_tasks=True))
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    return built


@pytest.fixture
def fleet() -> Fleet:
    return Fleet([Queue("default", ready=1, oldest_ready_age_seconds=7.0)], [])


@pytest.fixture
def client(container: Container, fleet: Fleet) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(container, fleet=fleet_reader(fleet))) as test_client:
        yield test_client


def test_the_api_counts_submissions_and_cancels_and_adds_the_fleet(client: TestClient) -> None:  # type: ignore[type-arg]
    ids = [
        client.post("/api/tasks", json={"type": "debug.echo", "payload": {}}).json()["id"]
        for _ in range(3)
    ]
    batch = {"tasks": [{"type": "debug.echo", "payload": {}}, {"type": "debug.echo",
                                                              "payload": {}}]}  # fmt: skip
    assert client.post("/api/tasks/batch", json=batch).status_code == 202
    keyed = {"Idempotency-Key": "once"}
    for _ in range(2):  # the replay creates nothing, and counts nothing
        client.post("/api/tasks", json={"type": "debug.echo", "payload": {}}, headers=keyed)
    assert client.post(f"/api/tasks/{ids[0]}/cancel").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    scrape = samples(response.text)
    echo = {"type": "debug.echo", "queue": "default"}
    assert value(scrape, "taskflow_tasks_submitted_total", **echo) == 6
    assert value(scrape, "taskflow_tasks_cancelled_total", **echo) == 1
    assert value(scrape, "taskflow_queue_depth", queue="default", state="ready") == 1
    assert value(scrape, "taskflow_queue_oldest_ready_age_seconds", queue="default") == 7
    assert value(scrape, "taskflow_fleet_up") == 1
    assert value(scrape, "taskflow_workers_alive") == 0


def test_requests_are_timed_by_route_template_never_by_path(client: TestClient) -> None:  # type: ignore[type-arg]
    task_id = client.post("/api/tasks", json={"type": "debug.echo", "payload": {}}).json()["id"]
    assert client.get(f"/api/tasks/{task_id}").status_code == 200
    assert client.get(f"/api/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get("/nowhere/at/all").status_code == 404
    text = client.get("/metrics").text
    assert task_id not in text
    scrape = samples(text)
    name = "taskflow_http_request_duration_seconds_count"
    route = "/api/tasks/{task_id}"
    assert value(scrape, name, method="GET", route=route, status="200") == 1
    assert value(scrape, name, method="GET", route=route, status="404") == 1
    assert value(scrape, name, method="POST", route="/api/tasks", status="202") == 1
    # A path no route matches counts under one label, never its own: /nowhere is not a label.
    assert value(scrape, name, method="GET", route="<unmatched>", status="404") == 1
    routes = {dict(labels).get("route") for n, labels in scrape if n == name}
    assert routes == {route, "/api/tasks", "<unmatched>"}, routes


def test_the_scrape_still_answers_when_the_fleet_cannot_be_read(
    client: TestClient,  # type: ignore[type-arg]
    fleet: Fleet,
) -> None:
    fleet.down = True
    response = client.get("/metrics")
    assert response.status_code == 200
    scrape = samples(response.text)
    assert value(scrape, "taskflow_fleet_up") == 0
    assert not any(name.startswith("taskflow_queue_") for name, _ in scrape)


def test_metrics_off_serve_no_route(container: Container) -> None:
    container.settings.override(providers.Object(Settings(metrics=False)))
    with TestClient(app=create_app(container)) as client:
        assert client.get("/metrics").status_code == 404
        assert client.post("/api/tasks", json={"type": "debug.echo", "payload": {}}).is_success


def test_a_tallied_histogram_is_cumulative_with_each_bound_inclusive() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    for seconds in (0.001, 0.005, 2.0, 100_000.0):  # 0.005 is a bound: it counts under it
        metrics.ended(make_task(TaskStatus.SUCCESS), seconds)
    scrape = samples(exposition(metrics))
    name = "taskflow_task_run_seconds_bucket"
    assert value(scrape, name, type="mail.send", le="0.005") == 2
    assert value(scrape, name, type="mail.send", le="1.0") == 2
    assert value(scrape, name, type="mail.send", le="2.5") == 3
    assert value(scrape, name, type="mail.send", le="86400.0") == 3
    assert value(scrape, name, type="mail.send", le="+Inf") == 4
    assert value(scrape, "taskflow_task_run_seconds_count", type="mail.send") == 4
    total = value(scrape, "taskflow_task_run_seconds_sum", type="mail.send")
    assert total == pytest.approx(100_002.006)
