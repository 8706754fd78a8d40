"""``GET /api/workers``, ``GET /api/queues``, pausing and resuming a queue, through Litestar's
test client on the in-memory fakes; and the clients' calls against a scripted API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.memory_fleet import InMemoryQueueGauge, InMemoryQueueStore
from taskflow.client import InvalidRequest
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.domain.fleet import WorkerInfo
from taskflow.domain.flow import FlowLimits, Rate
from taskflow.domain.ports import Dispatch
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry
from tests.unit.client_fakes import FakeTime, ScriptedApi, answer, problem
from tests.unit.test_client import Driven

RUNNING = uuid.uuid4()


@pytest.fixture
def container() -> Container:
    registry = load_registry(None, debug_tasks=True)
    settings = Settings(redis_url=None, queue_limits={"mail": FlowLimits(rate=Rate(10, 1.0))})
    built = build_container(settings, registry)
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    built.queue_gauge.override(providers.Singleton(InMemoryQueueGauge, built.queue, built.clock))
    built.queue_store.override(providers.Singleton(InMemoryQueueStore, built.repository))
    return built


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def beat(container: Container, worker_id: str, *queues: str) -> None:
    now = datetime.now(UTC)
    info = WorkerInfo(worker_id, "host-1", 7, "0.1.0", queues, 4, (RUNNING,), now, now)
    asyncio.run(container.fleet_service().beat(info))


def push(container: Container, queue: str) -> None:
    dispatch = Dispatch(uuid.uuid4(), queue, 5, datetime.now(UTC))
    asyncio.run(container.queue().push([dispatch]))


def test_workers_lists_the_live_ones(client: TestClient, container: Container) -> None:  # type: ignore[type-arg]
    assert client.get("/api/workers").json() == {"workers": []}
    beat(container, "w-1", "default", "mail")
    [worker] = client.get("/api/workers").json()["workers"]
    assert worker["id"] == "w-1"
    assert worker["queues"] == ["default", "mail"]
    assert (worker["running"], worker["running_count"]) == ([str(RUNNING)], 1)
    assert worker["last_seen_at"].endswith("Z")
    assert set(worker) == {
        "id",
        "host",
        "pid",
        "version",
        "queues",
        "concurrency",
        "running",
        "running_count",
        "started_at",
        "last_seen_at",
    }


def test_queues_flags_work_that_no_live_worker_consumes(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    push(container, "orphan")
    push(container, "default")
    beat(container, "w-1", "default")
    queues = {q["name"]: q for q in client.get("/api/queues").json()["queues"]}
    assert sorted(queues) == ["default", "mail", "orphan"]
    assert queues["orphan"]["unconsumed"] is True
    assert queues["orphan"]["consumers"] == 0
    assert queues["default"]["unconsumed"] is False
    assert queues["default"]["ready"] == 1
    assert queues["mail"]["limits"] == {"rate": "10/s", "concurrency": None}
    assert queues["default"]["throughput_last_minute"] == {"succeeded": 0, "failed": 0}
    assert isinstance(queues["default"]["oldest_ready_age_seconds"], float)
    assert queues["mail"]["oldest_ready_age_seconds"] is None


def test_pause_and_resume_answer_the_queue(client: TestClient) -> None:  # type: ignore[type-arg]
    paused = client.post("/api/queues/reports/pause")
    assert paused.status_code == 200
    assert (paused.json()["name"], paused.json()["paused"]) == ("reports", True)
    listed = {q["name"]: q for q in client.get("/api/queues").json()["queues"]}
    assert listed["reports"]["paused"] is True
    resumed = client.post("/api/queues/reports/resume")
    assert (resumed.status_code, resumed.json()["paused"]) == (200, False)


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_a_malformed_queue_name_is_a_400_naming_it(client: TestClient, action: str) -> None:  # type: ignore[type-arg]
    response = client.post(f"/api/queues/bad%20name!/{action}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert "'bad name!'" in body["detail"]
    assert body["errors"][0]["field"] == "name"


# -- the clients, against a scripted API -------------------------------------------------------

QUEUE = {
    "name": "mail",
    "ready": 3,
    "delayed": 1,
    "processing": 2,
    "oldest_ready_age_seconds": 4.5,
    "throughput_last_minute": {"succeeded": 10, "failed": 1},
    "limits": {"rate": "10/s", "concurrency": None},
    "paused": False,
    "consumers": 0,
    "unconsumed": True,
}
WORKER = {
    "id": "h:1:abc",
    "host": "h",
    "pid": 1,
    "version": "0.1.0",
    "queues": ["mail"],
    "concurrency": 4,
    "running": [str(RUNNING)],
    "running_count": 1,
    "started_at": "2026-12-01T12:00:00.000000Z",
    "last_seen_at": "2026-12-01T12:00:05.000000Z",
}


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_clients_read_workers_and_queues(kind: str) -> None:
    api = ScriptedApi([answer(200, {"workers": [WORKER]}), answer(200, {"queues": [QUEUE]})])
    tf = Driven(kind, api, FakeTime())
    [worker] = tf.workers()
    assert worker.running == [RUNNING]
    assert worker.last_seen_at == datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)
    [queue] = tf.queues()
    assert (queue.unconsumed, queue.limits.rate, queue.throughput_last_minute.failed) == (
        True,
        "10/s",
        1,
    )
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("GET", "/api/workers"),
        ("GET", "/api/queues"),
    ]


def test_the_clients_pause_and_resume_on_the_queue_s_own_path(kind: str) -> None:
    api = ScriptedApi([answer(200, {**QUEUE, "paused": True}), answer(200, QUEUE)])
    tf = Driven(kind, api, FakeTime())
    assert tf.pause_queue("mail").paused is True
    assert tf.resume_queue("mail").paused is False
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("POST", "/api/queues/mail/pause"),
        ("POST", "/api/queues/mail/resume"),
    ]


def test_a_refused_name_raises_invalid_request(kind: str) -> None:
    api = ScriptedApi([answer(400, problem(400, "queue name 'a b': queue must be …"))])
    tf = Driven(kind, api, FakeTime())
    with pytest.raises(InvalidRequest):
        tf.pause_queue("a b")
    assert api.requests[0].url.raw_path == b"/api/queues/a%20b/pause"
