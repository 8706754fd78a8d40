"""Bad requests against a real `taskflow api` process get 4xx problem details, never 500."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.conftest import Stack, StackFactory


@pytest.fixture(scope="module")
def api(module_stack_factory: StackFactory) -> Stack:
    built = module_stack_factory(TASKFLOW_MAX_PAYLOAD_BYTES="1024", TASKFLOW_MAX_BODY_BYTES="65536")
    built.start_api()
    return built


def _post(api: Stack, content: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(
        f"{api.base_url}/api/tasks", content=content, headers={"content-type": content_type}
    )


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


def _fields(body: dict[str, object]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}  # type: ignore[index,union-attr]


def test_malformed_json_is_400(api: Stack) -> None:
    body = _problem(_post(api, b'{"type": "debug.echo", '), 400)
    assert "JSON" in str(body["detail"])


def test_missing_type_is_400_naming_it(api: Stack) -> None:
    assert "type" in _fields(_problem(_post(api, b'{"payload": {}}'), 400))


def test_unknown_type_is_400_naming_it(api: Stack) -> None:
    body = _problem(_post(api, b'{"type": "no.such_type", "payload": {}}'), 400)
    assert "type" in _fields(body)
    assert "no.such_type" in str(body["detail"])


def test_payload_failing_its_schema_is_400_naming_the_field(api: Stack) -> None:
    response = _post(api, b'{"type": "debug.sleep", "payload": {"seconds": "soon"}}')
    assert "payload.seconds" in _fields(_problem(response, 400))


def test_wrong_field_type_is_400_naming_it(api: Stack) -> None:
    response = _post(api, b'{"type": "debug.echo", "payload": {}, "priority": 11}')
    assert "priority" in _fields(_problem(response, 400))


def test_invalid_type_name_is_400(api: Stack) -> None:
    assert "type" in _fields(_problem(_post(api, b'{"type": "Not Valid", "payload": {}}'), 400))


def test_delay_and_run_at_together_is_400(api: Stack) -> None:
    body = (
        b'{"type": "debug.echo", "payload": {}, "delay_seconds": 1,'
        b' "run_at": "2030-01-01T00:00:00Z"}'
    )
    assert "run_at" in _fields(_problem(_post(api, body), 400))


def test_non_json_content_type_is_415(api: Stack) -> None:
    _problem(_post(api, b'{"type": "debug.echo", "payload": {}}', "text/plain"), 415)


def test_payload_over_the_limit_is_413(api: Stack) -> None:
    big = b'{"type": "debug.echo", "payload": {"blob": "' + b"x" * 2000 + b'"}}'
    body = _problem(_post(api, big), 413)
    assert "the limit is 1024 bytes (TASKFLOW_MAX_PAYLOAD_BYTES)" in str(body["detail"])
    assert _fields(body) == {"payload"}


def test_unknown_id_is_404(api: Stack) -> None:
    _problem(httpx.get(f"{api.base_url}/api/tasks/{uuid.uuid4()}"), 404)


def test_malformed_id_is_400(api: Stack) -> None:
    _problem(httpx.get(f"{api.base_url}/api/tasks/not-a-uuid"), 400)


def test_openapi_and_health(api: Stack) -> None:
    schema = httpx.get(f"{api.base_url}/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/tasks" in schema["paths"]
    assert httpx.get(f"{api.base_url}/health/live").status_code == 200
    ready = httpx.get(f"{api.base_url}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["status"] == "up"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"type": "debug.echo", "payload": {"a": ["ok", "x\\u0000y"]}}', "payload.a[1]"),
        (b'{"type": "debug.echo", "payload": {}, "metadata": {"\\u0000": 1}}', "metadata"),
    ],
)
def test_text_holding_u0000_is_400_naming_where(api: Stack, body: bytes, where: str) -> None:
    # PostgreSQL's jsonb cannot hold U+0000: the store refuses it before the insert fails.
    problem = _problem(_post(api, body), 400)
    assert where in _fields(problem)
    assert where in str(problem["detail"])


@pytest.mark.parametrize("key", [None, "k-nul"], ids=["plain", "idempotent"])
def test_u0000_in_one_task_of_a_batch_names_its_position(api: Stack, key: str | None) -> None:
    body = (
        b'{"tasks": [{"type": "debug.echo", "payload": {}},'
        b' {"type": "debug.echo", "payload": {"s": "\\u0000"}}]}'
    )
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = httpx.post(f"{api.base_url}/api/tasks/batch", content=body, headers=headers)
    assert "tasks[1].payload.s" in _fields(_problem(response, 400))


def test_a_backslash_before_u0000_is_ordinary_text(api: Stack) -> None:
    # The JSON text "\\u0000" is the six characters \u0000, which the store keeps.
    response = _post(api, b'{"type": "debug.echo", "payload": {"s": "\\\\u0000"}}')
    assert response.status_code == 202, response.text
    task = httpx.get(f"{api.base_url}/api/tasks/{response.json()['id']}").json()
    assert task["payload"] == {"s": "\\u0000"}


def test_an_empty_body_is_400_on_the_body(api: Stack) -> None:
    body = _problem(_post(api, b""), 400)
    assert body["errors"] == [
        {"field": "body", "message": "the request body is empty; send a JSON object"}
    ]


def test_a_batch_names_each_fault_by_its_dotted_path_in_a_sentence(api: Stack) -> None:
    tasks = [
        {"type": "debug.echo", "payload": {}},
        {"type": "debug.sleep", "payload": {"seconds": "soon"}},
    ]
    response = httpx.post(f"{api.base_url}/api/tasks/batch", json={"tasks": tasks})
    body = _problem(response, 400)
    assert body["errors"] == [
        {
            "field": "tasks[1].payload.seconds",
            "message": "tasks[1].payload.seconds must be a number, got a string",
        }
    ]
    assert body["detail"] == "tasks[1].payload.seconds must be a number, got a string"


def test_a_body_over_the_limit_is_413_stating_it(api: Stack) -> None:
    content = b'{"type": "debug.echo", "payload": {"a": "' + b"x" * 70_000 + b'"}}'
    body = _problem(_post(api, content), 413)
    assert "the limit is 65536 bytes (TASKFLOW_MAX_BODY_BYTES)" in str(body["detail"])
