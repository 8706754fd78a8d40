"""callback_url on submissions and GET /api/tasks/{id}/deliveries, through Litestar's test client
on the in-memory adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.domain.callbacks import CallbackHosts
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry

SECRET = b"0123456789abcdef0123"
HOOK = "https://hooks.example.com/taskflow"


def _container(settings: Settings) -> Container:
    built = build_container(settings, load_registry(None, debug_tasks=True))
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    return built


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    settings = Settings(
        webhook_secret=SECRET, callback_allowed_hosts=CallbackHosts.parse(["10.0.0.0/8"])
    )
    with TestClient(app=create_app(_container(settings))) as test_client:
        yield test_client


def _problem_fields(response: Any) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


def test_a_task_with_a_callback_is_accepted_and_shows_it_with_its_deliveries(
    client: TestClient[Any],
) -> None:
    response = client.post(
        "/api/tasks", json={"type": "debug.echo", "payload": {}, "callback_url": HOOK}
    )
    assert response.status_code == 202
    task = response.json()
    assert "callback_url" not in task  # the task's JSON is the same with or without one
    deliveries = client.get(f"/api/tasks/{task['id']}/deliveries")
    assert deliveries.status_code == 200
    assert deliveries.json() == {"callback_url": HOOK, "items": []}


def test_a_task_without_callback_has_no_deliveries(client: TestClient[Any]) -> None:
    task = client.post("/api/tasks", json={"type": "debug.echo", "payload": {}}).json()
    assert client.get(f"/api/tasks/{task['id']}/deliveries").json() == {
        "callback_url": None,
        "items": [],
    }


def test_deliveries_of_an_unknown_or_malformed_id_are_404_and_400(
    client: TestClient[Any],
) -> None:
    assert client.get(f"/api/tasks/{uuid.uuid4()}/deliveries").status_code == 404
    malformed = client.get("/api/tasks/not-a-uuid/deliveries")
    assert malformed.status_code == 400
    assert _problem_fields(malformed) == {"id"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/x",
        "not a url",
        "https://" + "a" * 2050 + ".com",
    ],
)
def test_a_bad_or_private_callback_url_is_400_naming_it(client: TestClient[Any], url: str) -> None:
    response = client.post(
        "/api/tasks", json={"type": "debug.echo", "payload": {}, "callback_url": url}
    )
    assert response.status_code == 400
    assert _problem_fields(response) == {"callback_url"}


def test_a_listed_private_network_is_allowed(client: TestClient[Any]) -> None:
    response = client.post(
        "/api/tasks",
        json={"type": "debug.echo", "payload": {}, "callback_url": "http://10.1.2.3:8080/h"},
    )
    assert response.status_code == 202


def test_a_batch_names_the_submission_whose_callback_is_refused_and_stores_none(
    client: TestClient[Any],
) -> None:
    good = {"type": "debug.echo", "payload": {}, "callback_url": HOOK}
    bad = {"type": "debug.echo", "payload": {}, "callback_url": "http://192.168.1.1/"}
    response = client.post("/api/tasks/batch", json={"tasks": [good, bad]})
    assert response.status_code == 400
    assert _problem_fields(response) == {"tasks[1].callback_url"}
    assert client.get("/api/tasks").json()["items"] == []


def test_a_batch_mixing_tasks_with_and_without_callbacks_keeps_its_order(
    client: TestClient[Any],
) -> None:
    plain = {"type": "debug.echo", "payload": {"n": 0}}
    hooked = {"type": "debug.echo", "payload": {"n": 1}, "callback_url": HOOK}
    response = client.post(
        "/api/tasks/batch", json={"tasks": [plain, hooked]}, headers={"Idempotency-Key": "k-1"}
    )
    assert response.status_code == 202
    first, second = response.json()["tasks"]
    assert (first["payload"], second["payload"]) == ({"n": 0}, {"n": 1})
    urls = [
        client.get(f"/api/tasks/{t['id']}/deliveries").json()["callback_url"]
        for t in (first, second)
    ]
    assert urls == [None, HOOK]
    again = client.post(
        "/api/tasks/batch", json={"tasks": [plain, hooked]}, headers={"Idempotency-Key": "k-1"}
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert [t["id"] for t in again.json()["tasks"]] == [first["id"], second["id"]]


def test_without_a_webhook_secret_a_callback_is_400_naming_it() -> None:
    with TestClient(app=create_app(_container(Settings()))) as client:
        response = client.post(
            "/api/tasks", json={"type": "debug.echo", "payload": {}, "callback_url": HOOK}
        )
    assert response.status_code == 400
    assert _problem_fields(response) == {"callback_url"}
    assert "TASKFLOW_WEBHOOK_SECRET" in response.json()["errors"][0]["message"]
