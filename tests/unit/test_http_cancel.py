"""POST /api/tasks/{id}/cancel through Litestar's test client, on the in-memory adapters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import (
    InMemoryCancelNotices,
    InMemoryTaskQueue,
    InMemoryTaskRepository,
)
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry


@pytest.fixture
def container() -> Container:
    built = build_container(Settings(), load_registry(None, debug_tasks=True))
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    built.cancel_notices.override(providers.Singleton(InMemoryCancelNotices))
    return built


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def _submit(client: TestClient) -> str:  # type: ignore[type-arg]
    response = client.post("/api/tasks", json={"type": "debug.sleep", "payload": {"seconds": 1}})
    assert response.status_code == 202
    return str(response.json()["id"])


def _claim(container: Container) -> None:
    worker = container.execution_service()
    assert len(asyncio.run(worker.claim(["default"], limit=1, timeout=0))) == 1


def test_a_pending_task_is_cancelled_at_once(client: TestClient) -> None:  # type: ignore[type-arg]
    task_id = _submit(client)

    response = client.post(f"/api/tasks/{task_id}/cancel")

    assert response.status_code == 200
    task = response.json()
    assert (task["status"], task["cancel_requested"]) == ("CANCELLED", False)
    assert task["finished_at"] is not None
    assert client.get(f"/api/tasks/{task_id}").json() == task


def test_a_running_task_gets_cancel_requested(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    task_id = _submit(client)
    _claim(container)

    response = client.post(f"/api/tasks/{task_id}/cancel")

    assert response.status_code == 200
    task = response.json()
    assert (task["status"], task["cancel_requested"]) == ("PROCESSING", True)
    assert task["finished_at"] is None
    again = client.post(f"/api/tasks/{task_id}/cancel")  # asking twice changes nothing more
    assert (again.status_code, again.json()["cancel_requested"]) == (200, True)


def test_a_final_task_answers_409(client: TestClient) -> None:  # type: ignore[type-arg]
    task_id = _submit(client)
    client.post(f"/api/tasks/{task_id}/cancel")

    response = client.post(f"/api/tasks/{task_id}/cancel")

    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "CANCELLED" in response.json()["detail"]


def test_unknown_and_malformed_ids(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.post(f"/api/tasks/{uuid.uuid4()}/cancel").status_code == 404
    malformed = client.post("/api/tasks/123/cancel")
    assert malformed.status_code == 400
    assert [e["field"] for e in malformed.json()["errors"]] == ["id"]
    schema = client.get("/schema/openapi.json").json()
    assert "post" in schema["paths"]["/api/tasks/{task_id}/cancel"]
