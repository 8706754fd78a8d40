"""POST /api/tasks/{id}/retry with a new payload, and POST /api/tasks/retry, through Litestar's
test client on the in-memory adapters."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from taskflow.domain.limits import RETRY_MANY_LIMIT_MAX
from tests.unit.test_http_cancel import client, container

Client = TestClient  # type: ignore[type-arg]
_ = (client, container)  # the fixtures: an app on the in-memory adapters with the debug tasks


def cancelled(client: Client, seconds: float = 1) -> str:
    """A task that never ran, CANCELLED: retryable."""
    body = {"type": "debug.sleep", "payload": {"seconds": seconds}, "delay_seconds": 600}
    task_id = str(client.post("/api/tasks", json=body).json()["id"])
    assert client.post(f"/api/tasks/{task_id}/cancel").json()["status"] == "CANCELLED"
    return task_id


def changes(client: Client, task_id: str) -> list[dict[str, Any]]:
    history = client.get(f"/api/tasks/{task_id}/attempts").json()
    return history["changes"]  # type: ignore[no-any-return]


def test_a_retry_with_a_payload_replaces_it_and_the_history_names_who(client: Client) -> None:
    task_id = cancelled(client)

    response = client.post(
        f"/api/tasks/{task_id}/retry",
        json={"payload": {"seconds": 0.5}},
        headers={"Taskflow-Actor": "ana@ops"},
    )

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["payload"]) == ("PENDING", {"seconds": 0.5})
    [change] = changes(client, task_id)
    assert change["action"] == "RETRY"
    assert change["by"] == "ana@ops"
    assert change["after_attempt"] == 0
    assert (change["payload_before"], change["payload_after"]) == ({"seconds": 1}, {"seconds": 0.5})
    assert change["at"].endswith("Z")


def test_a_retry_without_a_body_keeps_the_payload_and_names_the_client(client: Client) -> None:
    task_id = cancelled(client)
    response = client.post(f"/api/tasks/{task_id}/retry")
    assert response.status_code == 202
    assert response.json()["payload"] == {"seconds": 1}
    [change] = changes(client, task_id)
    assert change["by"].startswith("http:")
    assert (change["payload_before"], change["payload_after"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {"seconds": "soon"}}, "payload.seconds"),
        ({"payload": {"seconds": 1, "extra": 1}}, "payload.extra"),
        ({"payload": []}, "payload"),
        ({"payload": {"seconds": 1}, "priority": 3}, "priority"),
    ],
)
def test_a_bad_retry_body_is_a_400_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    task_id = cancelled(client)
    response = client.post(f"/api/tasks/{task_id}/retry", json=body)
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert client.get(f"/api/tasks/{task_id}").json()["status"] == "CANCELLED"
    assert changes(client, task_id) == []


def test_a_bad_actor_is_a_400_naming_the_header(client: Client) -> None:
    task_id = cancelled(client)
    response = client.post(f"/api/tasks/{task_id}/retry", headers={"Taskflow-Actor": "x" * 201})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Taskflow-Actor"


def test_a_payload_over_the_limit_is_a_413(client: Client, container: Any) -> None:
    task_id = cancelled(client)
    huge = {"seconds": 1, "pad": "x" * container.settings().max_payload_bytes}
    response = client.post(f"/api/tasks/{task_id}/retry", json={"payload": huge})
    assert response.status_code == 413
    assert client.get(f"/api/tasks/{task_id}").json()["status"] == "CANCELLED"


def test_retry_many_revives_up_to_the_limit_and_says_how_many(client: Client) -> None:
    ids = [cancelled(client) for _ in range(3)]
    headers = {"Taskflow-Actor": "bulk"}

    first = client.post("/api/tasks/retry", json={"limit": 2}, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json()["retried"] == 2
    assert first.json()["ids"] == [ids[2], ids[1]]  # newest first
    second = client.post("/api/tasks/retry", json={"status": ["CANCELLED"]}, headers=headers)
    assert second.json() == {"retried": 1, "ids": [ids[0]]}
    assert client.post("/api/tasks/retry", json={}).json() == {"retried": 0, "ids": []}
    assert all(changes(client, i)[0]["by"] == "bulk" for i in ids)


def test_retry_many_filters_by_type_and_metadata(client: Client) -> None:
    echo = client.post(
        "/api/tasks",
        json={"type": "debug.echo", "payload": {}, "delay_seconds": 60, "metadata": {"c": 7}},
    ).json()["id"]
    client.post(f"/api/tasks/{echo}/cancel")
    cancelled(client)

    by_type = client.post("/api/tasks/retry", json={"type": "debug.echo", "metadata": {"c": "8"}})
    assert by_type.json()["retried"] == 0
    by_both = client.post("/api/tasks/retry", json={"type": "debug.echo", "metadata": {"c": "7"}})
    assert by_both.json() == {"retried": 1, "ids": [echo]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": ["SUCCESS"]}, "status[0]"),
        ({"limit": 0}, "limit"),
        ({"limit": RETRY_MANY_LIMIT_MAX + 1}, "limit"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"type": "Not A Type"}, "type"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_retry_many_body_is_a_400_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/tasks/retry", json=body)
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_retry_many_wants_json(client: Client) -> None:
    response = client.post("/api/tasks/retry", content=b"limit=1")
    assert response.status_code == 415
