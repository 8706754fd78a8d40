"""The HTTP API through Litestar's test client, on the in-memory adapters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.domain.model import TaskError
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry
from taskflow.registry import Registry


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


# -- Idempotency-Key --------------------------------------------------------------------------

ECHO = {"type": "debug.echo", "payload": {"a": 1, "b": [1, 2]}, "priority": 7}


def _post(client: TestClient, body: object, key: str | None = None, raw: bytes | None = None):  # type: ignore[no-untyped-def,type-arg]
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post("/api/tasks", content=content, headers=headers)


def test_a_key_reused_with_a_json_equal_body_replays_the_task(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    first = _post(client, ECHO, key="order-42")
    reordered = b'{ "priority":7,"payload": {"b":[1,2], "a":1},\n "type":"debug.echo"}'
    again = _post(client, None, key="order-42", raw=reordered)

    assert first.status_code == again.status_code == 202
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == f"/api/tasks/{first.json()['id']}"
    assert again.json()["idempotency_key"] == "order-42"
    assert len(container.queue()) == 1


def test_a_replay_shows_the_task_as_it_is_now(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    first = _post(client, ECHO, key="k-now").json()
    asyncio.run(container.task_service().cancel(uuid.UUID(first["id"])))

    again = _post(client, ECHO, key="k-now")

    assert again.json()["status"] == "CANCELLED"
    assert again.json() == client.get(f"/api/tasks/{first['id']}").json()


def test_a_key_reused_with_another_body_is_422(client: TestClient) -> None:  # type: ignore[type-arg]
    first = _post(client, ECHO, key="order-43")
    other = _post(client, {**ECHO, "priority": 6}, key="order-43")

    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["status"] == 422
    assert client.get(f"/api/tasks/{first.json()['id']}").status_code == 200


def test_different_keys_make_different_tasks(client: TestClient) -> None:  # type: ignore[type-arg]
    a = _post(client, ECHO, key="k-1").json()
    b = _post(client, ECHO, key="k-2").json()
    c = _post(client, ECHO).json()
    assert len({a["id"], b["id"], c["id"]}) == 3


@pytest.mark.parametrize("key", [b"", b"k" * 256, "caf\u00e9".encode(), b"a\tb"])
def test_a_malformed_key_is_400_naming_the_header(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    key: bytes,
) -> None:
    response = client.post(
        "/api/tasks",
        content=json.dumps(ECHO).encode(),
        headers=[(b"content-type", b"application/json"), (b"idempotency-key", key)],
    )
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" in _fields(response)
    assert len(container.queue()) == 0


# -- attempts ---------------------------------------------------------------------------------


def test_attempts_lists_each_attempt_oldest_first(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    task_id = _post(client, {"type": "debug.echo", "payload": {}}).json()["id"]
    assert client.get(f"/api/tasks/{task_id}/attempts").json() == {"items": [], "changes": []}
    worker = container.execution_service()

    async def run_twice() -> None:
        [claimed] = await worker.claim(["default"], limit=1, timeout=0)
        await worker.fail(claimed, TaskError("ValueError", "nope"), retry_after=0)
        [claimed] = await worker.claim(["default"], limit=1, timeout=0)
        await worker.succeed(claimed, {"ok": True})

    asyncio.run(run_twice())
    response = client.get(f"/api/tasks/{task_id}/attempts")

    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["attempt"], i["outcome"]) for i in items] == [(1, "RETRY"), (2, "SUCCESS")]
    assert {i["worker_id"] for i in items} == {worker.worker_id}
    assert items[0]["error"] == {"type": "ValueError", "message": "nope", "traceback": None}
    assert items[1]["error"] is None
    task = client.get(f"/api/tasks/{task_id}").json()
    assert items[1]["started_at"] == task["started_at"]
    assert items[1]["finished_at"] == task["finished_at"]
    assert items[0]["started_at"] <= items[0]["finished_at"] <= items[1]["started_at"]


def test_attempts_of_unknown_and_malformed_ids(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get(f"/api/tasks/{uuid.uuid4()}/attempts").status_code == 404
    assert client.get("/api/tasks/123/attempts").status_code == 400
    schema = client.get("/schema/openapi.json").json()
    assert "/api/tasks/{task_id}/attempts" in schema["paths"]


# -- batches ----------------------------------------------------------------------------------


def test_a_batch_is_accepted_in_request_order(client: TestClient, container: Container) -> None:  # type: ignore[type-arg]
    body = {"tasks": [{"type": "debug.echo", "payload": {"n": n}} for n in range(5)]}
    response = client.post("/api/tasks/batch", json=body)
    assert response.status_code == 202, response.text
    tasks = response.json()["tasks"]
    assert [t["payload"] for t in tasks] == [{"n": n} for n in range(5)]
    assert len(container.queue()) == 5
    for task in tasks:
        assert client.get(f"/api/tasks/{task['id']}").json()["status"] == "PENDING"


def test_one_bad_submission_refuses_the_whole_batch(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    body = {
        "tasks": [
            {"type": "debug.echo", "payload": {}},
            {"type": "debug.sleep", "payload": {"seconds": "x"}},
        ]
    }
    response = client.post("/api/tasks/batch", json=body)
    assert response.status_code == 400
    assert "tasks[1].payload.seconds" in _fields(response)
    assert len(container.queue()) == 0


def test_an_unknown_type_in_a_batch_names_its_position(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"tasks": [{"type": "debug.echo", "payload": {}}, {"type": "no.pe", "payload": {}}]}
    response = client.post("/api/tasks/batch", json=body)
    assert response.status_code == 400
    assert "tasks[1].type" in _fields(response)


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_holds_1_to_1000(client: TestClient, count: int) -> None:  # type: ignore[type-arg]
    body = {"tasks": [{"type": "debug.echo", "payload": {}}] * count}
    response = client.post("/api/tasks/batch", json=body)
    assert response.status_code == 400
    assert "tasks" in _fields(response)


def test_a_batch_with_an_idempotency_key_is_replayed_whole(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"tasks": [{"type": "debug.echo", "payload": {"n": n}} for n in range(3)]}
    headers = {"Idempotency-Key": "batch-1"}
    first = client.post("/api/tasks/batch", json=body, headers=headers)
    again = client.post("/api/tasks/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert [t["id"] for t in again.json()["tasks"]] == [t["id"] for t in first.json()["tasks"]]
    other = client.post("/api/tasks/batch", json={"tasks": body["tasks"][:1]}, headers=headers)
    assert other.status_code == 422


def test_an_empty_body_is_400_naming_the_body_not_a_key_of_ours(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post("/api/tasks", content=b"", headers={"content-type": "application/json"})
    assert response.status_code == 400
    problem = response.json()
    assert problem["errors"] == [
        {"field": "body", "message": "the request body is empty; send a JSON object"}
    ]
    assert "data" not in response.text


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"payload": {}}, "type", "type is required"),
        (
            {"type": "debug.sleep", "payload": {"seconds": "x"}},
            "payload.seconds",
            "payload.seconds must be a number, got a string",
        ),
        (
            {
                "tasks": [
                    {"type": "debug.echo", "payload": {}},
                    {"type": "debug.fail", "payload": {}},
                ]
            },
            "tasks[1].payload.fail_attempts",
            "tasks[1].payload.fail_attempts is required",
        ),
        (
            {"tasks": [{"type": "debug.echo", "payload": {}, "priority": 10}]},
            "tasks[0].priority",
            "tasks[0].priority must be at most 9",
        ),
        (
            {"tasks": [{"type": "debug.echo", "payload": {}, "queue": "no spaces"}]},
            "tasks[0].queue",
            None,
        ),
    ],
)
def test_every_400_names_a_dotted_path_and_says_a_sentence(
    client: TestClient,  # type: ignore[type-arg]
    body: dict[str, object],
    field: str,
    message: str | None,
) -> None:
    path = "/api/tasks/batch" if "tasks" in body else "/api/tasks"
    response = client.post(path, json=body)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == field
    assert error["message"].startswith(field)
    assert "`" not in error["message"]
    assert "$." not in error["message"]
    if message is not None:
        assert error["message"] == message
    assert response.json()["detail"] == error["message"]


def test_a_body_over_the_limit_is_413_stating_the_limit(container: Container) -> None:
    container.settings.override(Settings(max_body_bytes=1024))
    with TestClient(app=create_app(container)) as small:
        response = small.post(
            "/api/tasks", json={"type": "debug.echo", "payload": {"a": "x" * 2000}}
        )
    assert response.status_code == 413
    assert "the limit is 1024 bytes (TASKFLOW_MAX_BODY_BYTES)" in response.json()["detail"]


def test_a_payload_over_the_limit_is_413_stating_the_limit(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"tasks": [{"type": "debug.echo", "payload": {"a": "x" * 600}}]}
    response = client.post("/api/tasks/batch", json=body)
    assert response.status_code == 413
    problem = response.json()
    assert "the limit is 512 bytes (TASKFLOW_MAX_PAYLOAD_BYTES)" in problem["detail"]
    assert problem["errors"][0]["field"] == "tasks[0].payload"


def test_retry_runs_a_failed_task_again_and_refuses_any_other(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    body = {"type": "debug.echo", "payload": {}, "max_retries": 0}
    task_id = _post(client, body).json()["id"]
    conflict = client.post(f"/api/tasks/{task_id}/retry")
    assert conflict.status_code == 409  # PENDING: nothing to retry
    assert conflict.headers["content-type"].startswith("application/problem+json")
    worker = container.execution_service()

    async def fail_it() -> None:
        [claimed] = await worker.claim(["default"], limit=1, timeout=0)
        await worker.fail(claimed, TaskError("ValueError", "nope"))

    asyncio.run(fail_it())
    assert client.get(f"/api/tasks/{task_id}").json()["status"] == "FAILED"

    response = client.post(f"/api/tasks/{task_id}/retry")

    assert response.status_code == 202
    task = response.json()
    assert (task["status"], task["retry_count"], task["attempts"]) == ("PENDING", 0, 1)
    assert task["finished_at"] is None
    assert task["error"] == {"type": "ValueError", "message": "nope"}  # kept, as the history is
    assert len(container.queue()) == 1  # dispatched again
    assert client.post(f"/api/tasks/{task_id}/retry").status_code == 409


def test_retry_of_unknown_and_malformed_ids(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.post(f"/api/tasks/{uuid.uuid4()}/retry").status_code == 404
    assert client.post("/api/tasks/nope/retry").status_code == 400


def test_types_lists_each_registered_type_with_its_settings_and_payload_schema(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    response = client.get("/api/types")
    assert response.status_code == 200
    items = {item["type"]: item for item in response.json()["items"]}
    assert list(items) == sorted(items)
    sleep = items["debug.sleep"]
    assert (sleep["queue"], sleep["priority"], sleep["max_retries"]) == ("default", 5, 3)
    assert (sleep["backoff_base"], sleep["backoff_max"]) == (1.0, 300.0)  # the deployment's
    schema = sleep["payload_schema"]
    definition = schema["$defs"]["SleepIn"]
    assert definition["required"] == ["seconds"]
    assert definition["properties"]["seconds"]["type"] == "number"
    assert items["debug.echo"]["payload_schema"] == {"type": "object"}


def test_a_types_own_settings_are_shown(container: Container) -> None:
    tasks = Registry()

    @tasks.task("billing.send", queue="billing", max_retries=7, timeout_seconds=30, backoff_max=60)
    async def send(payload: dict[str, object], ctx: object) -> None:
        return None

    container.registry.override(tasks)
    with TestClient(app=create_app(container)) as own:
        [item] = own.get("/api/types").json()["items"]
    assert item == {
        "type": "billing.send",
        "queue": "billing",
        "priority": 5,
        "max_retries": 7,
        "timeout_seconds": 30,
        "backoff_base": 1.0,
        "backoff_max": 60,
        "payload_schema": {"type": "object"},
    }
