"""``GET /api/schedules`` and pausing, through Litestar's test client on the in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import (
    InMemoryScheduleStore,
    InMemoryTaskQueue,
    InMemoryTaskRepository,
)
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry
from taskflow.registry import Registry


def _in_memory(registry: Registry) -> Container:
    built = build_container(Settings(), registry)
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    built.schedule_store.override(providers.Singleton(InMemoryScheduleStore, built.repository))
    return built


@pytest.fixture
def container() -> Container:
    registry = load_registry(None, debug_tasks=True)
    registry.periodic(
        "nightly-report", type="debug.echo", cron="0 2 * * *", timezone="Europe/Paris"
    )
    registry.periodic("heartbeat", type="debug.echo", every=timedelta(minutes=5), queue="ops")
    return _in_memory(registry)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def test_the_listing_shows_each_schedule_by_name(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/api/schedules")
    assert response.status_code == 200
    heartbeat, nightly = response.json()["items"]
    assert {k: v for k, v in heartbeat.items() if k != "next_run_at"} == {
        "name": "heartbeat",
        "type": "debug.echo",
        "cron": None,
        "every": 300,
        "timezone": "UTC",
        "queue": "ops",
        "paused": False,
        "last_run_at": None,
    }
    assert nightly["cron"] == "0 2 * * *"
    assert nightly["every"] is None
    assert nightly["timezone"] == "Europe/Paris"
    assert nightly["queue"] == "default"
    assert nightly["next_run_at"].endswith("Z")
    assert len(nightly["next_run_at"]) == len("2026-01-01T00:00:00.000000Z")
    next_run = datetime.fromisoformat(nightly["next_run_at"])
    assert next_run.minute == 0
    assert next_run.utcoffset() == timedelta(0)


def test_pause_and_resume_answer_the_schedule(client: TestClient) -> None:  # type: ignore[type-arg]
    paused = client.post("/api/schedules/heartbeat/pause")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert paused.json()["next_run_at"] is None
    listed = {s["name"]: s for s in client.get("/api/schedules").json()["items"]}
    assert listed["heartbeat"]["paused"] is True
    assert listed["nightly-report"]["paused"] is False
    resumed = client.post("/api/schedules/heartbeat/resume")
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    assert resumed.json()["next_run_at"] is not None


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_an_unknown_schedule_is_a_404_problem(client: TestClient, action: str) -> None:  # type: ignore[type-arg]
    response = client.post(f"/api/schedules/nope/{action}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "nope" in response.json()["detail"]


def test_a_registry_without_schedules_lists_none() -> None:
    with TestClient(app=create_app(_in_memory(load_registry(None, debug_tasks=True)))) as client:
        assert client.get("/api/schedules").json() == {"items": []}
