"""U+0000 in what a client sends, on the in-memory API: refused with the 400 the SQL store's API
gives (tests/integration/test_http_errors.py), before any store, so the fake agrees with it."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from taskflow.containers import Container
from tests.unit.test_http import client, container

__all__ = ["client", "container"]  # the fixtures, used by name

Client = TestClient  # type: ignore[type-arg]
JSON = {"content-type": "application/json"}


def _post(client: Client, path: str, body: bytes, **headers: str) -> Any:
    return client.post(path, content=body, headers={**JSON, **headers})


def _refused(response: Any, where: str) -> None:
    assert response.status_code == 400, response.text
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == [where]
    assert f"{where} holds the character U+0000" in problem["detail"]


def _stored(client: Client, container: Container) -> list[Any]:
    return [client.get("/api/tasks").json()["items"], len(container.queue())]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"type": "debug.echo", "payload": {"a": ["ok", "x\\u0000y"]}}', "payload.a[1]"),
        (b'{"type": "debug.echo", "payload": {"k\\u0000": 1}}', "payload"),
        (b'{"type": "debug.echo", "payload": {}, "metadata": {"\\u0000": 1}}', "metadata"),
        (b'{"type": "debug.echo", "payload": {}, "metadata": {"k": "\\u0000"}}', "metadata.k"),
    ],
)
@pytest.mark.parametrize("key", [None, "k-nul"], ids=["plain", "idempotent"])
def test_a_submission_holding_u0000_is_400_naming_where_and_nothing_is_stored(
    client: Client, container: Container, body: bytes, where: str, key: str | None
) -> None:
    headers = {} if key is None else {"Idempotency-Key": key}
    _refused(_post(client, "/api/tasks", body, **headers), where)
    assert _stored(client, container) == [[], 0]


@pytest.mark.parametrize("key", [None, "k-nul"], ids=["plain", "idempotent"])
def test_u0000_in_one_task_of_a_batch_names_its_position_and_refuses_all(
    client: Client, container: Container, key: str | None
) -> None:
    body = (
        b'{"tasks": [{"type": "debug.echo", "payload": {}},'
        b' {"type": "debug.echo", "payload": {"s": "\\u0000"}}]}'
    )
    headers = {} if key is None else {"Idempotency-Key": key}
    _refused(_post(client, "/api/tasks/batch", body, **headers), "tasks[1].payload.s")
    assert _stored(client, container) == [[], 0]


def test_a_retry_with_a_payload_holding_u0000_is_400_and_changes_nothing(
    client: Client,
) -> None:
    task_id = client.post("/api/tasks", json={"type": "debug.echo", "payload": {"n": 1}}).json()
    task_id = task_id["id"]
    assert client.post(f"/api/tasks/{task_id}/cancel").json()["status"] == "CANCELLED"
    body = b'{"payload": {"s": "\\u0000"}}'
    _refused(_post(client, f"/api/tasks/{task_id}/retry", body), "payload.s")
    task = client.get(f"/api/tasks/{task_id}").json()
    assert (task["status"], task["payload"]) == ("CANCELLED", {"n": 1})


def test_a_backslash_before_u0000_is_ordinary_text(client: Client) -> None:
    # The JSON text "\\u0000" is the six characters \u0000, which every store keeps.
    response = _post(client, "/api/tasks", b'{"type": "debug.echo", "payload": {"s": "\\\\u0000"}}')
    assert response.status_code == 202, response.text
    assert client.get(f"/api/tasks/{response.json()['id']}").json()["payload"] == {"s": "\\u0000"}


@pytest.mark.parametrize("path", ["/api/tasks", "/api/tasks/batch"])
def test_a_raw_nul_byte_is_not_json_and_nothing_is_stored(
    client: Client, container: Container, path: str
) -> None:
    """What lets a body without the escape skip the search of its values (``NO_NUL``): JSON
    writes U+0000 in a string only as ``\\u0000``, and the decoder refuses the bare byte."""
    task = b'{"type": "debug.echo", "payload": {"s": "a\x00b"}}'
    body = task if path == "/api/tasks" else b'{"tasks": [' + task + b"]}"
    response = _post(client, path, body)
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["detail"]
    assert _stored(client, container) == [[], 0]
