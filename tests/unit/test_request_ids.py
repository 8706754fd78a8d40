"""The trace id of a request: taken from its headers or made, on its log lines, in its answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.entrypoints import logs
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.request_ids import trace_id_of
from taskflow.entrypoints.loading import load_registry
from taskflow.entrypoints.log_writer import LineWriter
from taskflow.entrypoints.logs import JsonFormatter
from tests.unit.test_logs import Writes

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": TRACEPARENT}, TRACE),
        ({"x-request-id": "req-42"}, "req-42"),
        ({"traceparent": TRACEPARENT, "x-request-id": "req-42"}, TRACE),  # the trace wins
        ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "x-request-id": "r"}, "r"),
        ({"traceparent": f"ff-{TRACE}-00f067aa0ba902b7-01", "x-request-id": "r"}, "r"),
        ({"traceparent": f"00-{TRACE.upper()}-00f067aa0ba902b7-01", "x-request-id": "r"}, "r"),
    ],
)
def test_the_trace_id_comes_from_a_valid_traceparent_then_x_request_id(
    headers: dict[str, str], expected: str
) -> None:
    assert trace_id_of([(k.encode(), v.encode()) for k, v in headers.items()]) == expected


@pytest.mark.parametrize(
    "request_id",
    ["", "a b", 'say "hi"', "x" * 129, "ünïcode", "line\\break", "<script>", "ends\n"],
)
def test_an_implausible_x_request_id_is_replaced_by_a_new_id(request_id: str) -> None:
    made = trace_id_of([(b"x-request-id", request_id.encode())])
    assert GENERATED.match(made), made


def test_without_either_header_each_request_gets_an_id_of_its_own() -> None:
    made = {trace_id_of([(b"accept", b"*/*")]) for _ in range(100)}
    assert len(made) == 100
    assert all(GENERATED.match(m) for m in made)


@pytest.fixture
def api_lines() -> Iterator[Writes]:
    """The JSON lines the API's loggers write, kept."""
    stream = Writes()
    handler = LineWriter(stream, JsonFormatter())
    logger = logging.getLogger("taskflow.api")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
    handler.close()


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    container: Container = build_container(Settings(), load_registry(None, debug_tasks=True))
    container.repository.override(providers.Singleton(InMemoryTaskRepository, container.clock))
    container.queue.override(providers.Singleton(InMemoryTaskQueue, container.clock))
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def submit(client: TestClient[Any], headers: dict[str, str] | None = None) -> tuple[str, str]:
    """The new task's id, and the request id the answer gave."""
    body = {"type": "debug.echo", "payload": {}}
    response = client.post("/api/tasks", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"], response.headers["x-request-id"]


def trace_of(lines: Writes, event: str, task_id: str) -> str:
    logging.getLogger("taskflow.api").handlers[-1].flush()
    [line] = [e for e in lines.lines() if e["event"] == event and e["task_id"] == task_id]
    return str(line["trace_id"])


def test_two_requests_get_two_ids_each_on_the_lines_it_wrote(
    client: TestClient[Any], api_lines: Writes
) -> None:
    first, first_id = submit(client)
    second, second_id = submit(client)

    assert GENERATED.match(first_id)
    assert GENERATED.match(second_id)
    assert first_id != second_id
    assert trace_of(api_lines, "task submitted", first) == first_id
    assert trace_of(api_lines, "task submitted", second) == second_id


def test_a_given_x_request_id_is_echoed_and_on_the_lines(
    client: TestClient[Any], api_lines: Writes
) -> None:
    task_id, answered = submit(client, {"X-Request-ID": "checkout-7f3a"})

    assert answered == "checkout-7f3a"
    assert trace_of(api_lines, "task submitted", task_id) == "checkout-7f3a"
    cancelled = client.post(f"/api/tasks/{task_id}/cancel", headers={"X-Request-ID": "op-1"})
    assert cancelled.headers["x-request-id"] == "op-1"
    assert trace_of(api_lines, "task cancelled", task_id) == "op-1"


def test_a_traceparents_trace_id_is_the_requests_id(
    client: TestClient[Any], api_lines: Writes
) -> None:
    task_id, answered = submit(client, {"traceparent": TRACEPARENT})

    assert answered == TRACE
    assert trace_of(api_lines, "task submitted", task_id) == TRACE


def test_an_error_answer_carries_the_id_too(client: TestClient[Any]) -> None:
    response = client.post(
        "/api/tasks", json={"type": "no.such", "payload": {}}, headers={"X-Request-ID": "bad-1"}
    )
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "bad-1"


def test_lines_outside_a_request_carry_no_trace_id() -> None:
    assert logs.current_trace_id() is None
    line = JsonFormatter().event_line("taskflow.worker", logging.INFO, "task claimed", {})
    assert b"trace_id" not in line


def test_an_answer_of_no_route_carries_the_id_too(client: TestClient[Any]) -> None:
    response = client.get("/no/such/route", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "lost-1"
