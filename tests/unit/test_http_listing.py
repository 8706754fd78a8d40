"""GET /api/tasks and GET /api/tasks/stats through Litestar's test client, on the fakes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from litestar.testing import TestClient

from taskflow.domain.limits import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from tests.unit import test_http

container = test_http.container  # the fixtures: an app on the in-memory adapters
client = test_http.client

Client = TestClient  # type: ignore[type-arg]


def submit(client: Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("type", "debug.echo")
    fields.setdefault("payload", {})
    response = client.post("/api/tasks", json=fields)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


def listed(client: Client, params: Any = None) -> dict[str, Any]:
    response = client.get("/api/tasks", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_list_answers_items_newest_first_and_no_cursor_at_the_end(client: Client) -> None:
    ids = [submit(client)["id"] for _ in range(3)]
    body = listed(client)
    assert [t["id"] for t in body["items"]] == ids[::-1]
    assert body["next_cursor"] is None
    assert body["items"][0] == client.get(f"/api/tasks/{ids[-1]}").json()


def test_list_pages_with_the_cursor_until_none(client: Client) -> None:
    ids = [submit(client)["id"] for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        body = listed(client, {"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += [t["id"] for t in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        submit(client)  # a newer task never shows up on a later page
    assert seen == ids[::-1]
    assert pages == 3


def test_list_applies_every_filter(client: Client) -> None:
    hit = submit(client, queue="q1", metadata={"customer": 42, "tier": "gold"})
    submit(client, queue="q1", metadata={"customer": 7})
    submit(client, queue="q2", metadata={"customer": "42"})
    params = [
        ("status", "PENDING"),
        ("status", "FAILED"),
        ("type", "debug.echo"),
        ("queue", "q1"),
        ("created_after", "2000-01-01T00:00:00Z"),
        ("created_before", "2999-01-01T00:00:00+02:00"),
        ("metadata.customer", "42"),
        ("metadata.tier", "gold"),
    ]
    assert [t["id"] for t in listed(client, params)["items"]] == [hit["id"]]
    assert len(listed(client, {"metadata.customer": "42"})["items"]) == 2
    assert listed(client, {"status": "SUCCESS"})["items"] == []


def test_list_takes_the_default_limit(client: Client) -> None:
    for _ in range(LIST_LIMIT_DEFAULT + 1):
        submit(client)
    body = listed(client)
    assert len(body["items"]) == LIST_LIMIT_DEFAULT
    assert body["next_cursor"] is not None


def test_an_offset_missing_its_plus_sign_still_reads(client: Client) -> None:
    submit(client)
    # "+02:00" sent unescaped arrives as " 02:00".
    response = client.get("/api/tasks?created_after=2000-01-01T00:00:00+02:00")
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "DONE"}, "status"),
        ({"status": "pending"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": str(LIST_LIMIT_MAX + 1)}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"x" * 23).decode()}, "cursor"),
        ({"cursor": "@@@@"}, "cursor"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-01-01T00:00:00"}, "created_before"),
        ({"type": "Bad Type"}, "type"),
        ({"queue": "-q"}, "queue"),
        ({"metadata.": "x"}, "metadata"),
        ({"sort": "id"}, "sort"),
        ([("queue", "a"), ("queue", "b")], "queue"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(client: Client, params: Any, field: str) -> None:
    response = client.get("/api/tasks", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == [field]
    assert field in problem["detail"]


def test_the_largest_limit_is_accepted(client: Client) -> None:
    assert listed(client, {"limit": LIST_LIMIT_MAX})["items"] == []


def test_stats_counts_per_queue_type_and_status(client: Client) -> None:
    submit(client, queue="q1")
    submit(client, queue="q1")
    submit(client, queue="q2")
    response = client.get("/api/tasks/stats")
    assert response.status_code == 200
    items = response.json()["items"]
    assert {"queue": "q1", "type": "debug.echo", "status": "PENDING", "count": 2} in items
    assert {"queue": "q2", "type": "debug.echo", "status": "PENDING", "count": 1} in items
    assert len(items) == 2


def test_stats_is_not_read_as_a_task_id(client: Client) -> None:
    assert client.get("/api/tasks/stats").json() == {"items": []}
