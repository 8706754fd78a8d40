"""The HTTP API through Litestar's test client, on the in-memory adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.entrypoints.http.app import create_app
from taskflow.registry import load_registry


@pytest.fixture
def container() -> Container:
    built = build_container(Settings(max_payload_bytes=512), load_registry(None, debug_tasks=True))
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    return built


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def _fields(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {e["field"] for e in response.json().get("errors", [])}


def test_submit_answers_202_with_the_task_and_its_location(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post(
        "/api/tasks",
        json={"type": "debug.echo", "payload": {"a": 1}, "priority": 7, "metadata": {"k": "v"}},
    )
    assert response.status_code == 202
    task = response.json()
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert task["status"] == "PENDING"
    assert task["priority"] == 7
    assert task["queue"] == "default"
    assert task["max_retries"] == 3
    assert task["metadata"] == {"k": "v"}
    assert task["created_at"].endswith("Z")
    assert len(task["created_at"]) == len("2026-01-01T00:00:00.000000Z")
    assert client.get(f"/api/tasks/{task['id']}").json() == task


def test_submitted_task_is_dispatched(client: TestClient, container: Container) -> None:  # type: ignore[type-arg]
    client.post("/api/tasks", json={"type": "debug.echo", "payload": {}})
    assert len(container.queue()) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {}}, "type"),
        ({"type": "debug.echo"}, "payload"),
        ({"type": "nope.nope", "payload": {}}, "type"),
        ({"type": "Bad Name", "payload": {}}, "type"),
        ({"type": "debug.sleep", "payload": {"seconds": "x"}}, "payload.seconds"),
        ({"type": "debug.fail", "payload": {}}, "payload.fail_attempts"),
        ({"type": "debug.echo", "payload": {}, "max_retries": 26}, "max_retries"),
        ({"type": "debug.echo", "payload": {}, "surprise": 1}, "surprise"),
        ({"type": "debug.echo", "payload": {}, "queue": "no spaces"}, "queue"),
        ({"type": "debug.echo", "payload": {}, "run_at": "2030-01-01T00:00:00"}, "run_at"),
    ],
)
def test_bad_submissions_are_400_naming_the_field(
    client: TestClient,  # type: ignore[type-arg]
    body: dict[str, object],
    field: str,
) -> None:
    response = client.post("/api/tasks", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in _fields(response)


def test_malformed_json_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post(
        "/api/tasks", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_payload_too_large_is_413(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post("/api/tasks", json={"type": "debug.echo", "payload": {"x": "y" * 600}})
    assert response.status_code == 413


def test_metadata_over_16_kib_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"type": "debug.echo", "payload": {}, "metadata": {"x": "y" * 17_000}}
    response = client.post("/api/tasks", json=body)
    assert response.status_code == 400
    assert "metadata" in _fields(response)


def test_wrong_content_type_is_415(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post(
        "/api/tasks",
        content=b'{"type": "debug.echo", "payload": {}}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 415


def test_unknown_and_malformed_ids(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get(f"/api/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/tasks/123").status_code == 400


def test_health_and_openapi(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    schema = client.get("/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert {"/api/tasks", "/api/tasks/{task_id}", "/health/ready"} <= set(schema["paths"])
