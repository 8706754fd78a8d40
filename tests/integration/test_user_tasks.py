"""A user's own Registry (TASKFLOW_TASKS) served by real api and worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import wait_for

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def user_stack(module_stack_factory: StackFactory) -> Stack:
    stack = module_stack_factory(
        TASKFLOW_TASKS="tests.integration.sample_tasks:tasks", PYTHONPATH=ROOT
    )
    stack.start_worker("--queues", "billing,default", "--concurrency", "4")
    stack.start_api()
    return stack


def _run(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{stack.base_url}/api/tasks", json=body, timeout=10)
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]

    def final() -> dict[str, Any] | None:
        task = httpx.get(f"{stack.base_url}/api/tasks/{task_id}", timeout=10).json()
        return task if task["status"] in ("SUCCESS", "FAILED") else None

    try:
        return wait_for(final, timeout=60, interval=0.1, what=f"task {task_id}")
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None


def test_struct_payload_handler_runs_on_its_queue(user_stack: Stack) -> None:
    task = _run(
        user_stack,
        {"type": "billing.send_invoice", "payload": {"order_id": "A-1", "amount_cents": 500}},
    )
    assert task["status"] == "SUCCESS"
    assert task["queue"] == "billing"
    assert task["max_retries"] == 5
    assert task["timeout_seconds"] == 30
    assert task["result"] == {"sent": "A-1", "attempt": 1}
    assert task["progress"] == {"fraction": 0.5, "message": "rendered"}


def test_fail_raised_by_a_user_handler_is_final(user_stack: Stack) -> None:
    task = _run(
        user_stack,
        {"type": "billing.send_invoice", "payload": {"order_id": "A-2", "amount_cents": -1}},
    )
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1
    assert task["error"] == {"type": "Fail", "message": "negative amount"}


def test_plain_def_handler_runs_in_a_thread(user_stack: Stack) -> None:
    task = _run(user_stack, {"type": "reports.build", "payload": {"rows": 3}})
    assert task["status"] == "SUCCESS"
    assert task["result"]["rows"] == 3
    assert task["result"]["thread"].startswith("taskflow-handler")
    assert task["progress"] == {"fraction": 1.0, "message": "done"}


def test_the_api_validates_against_the_users_schema(user_stack: Stack) -> None:
    response = httpx.post(
        f"{user_stack.base_url}/api/tasks",
        json={"type": "billing.send_invoice", "payload": {"order_id": "A-3"}},
    )
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"payload.amount_cents"}


def test_a_result_holding_u0000_fails_the_attempt_naming_where(user_stack: Stack) -> None:
    task = _run(user_stack, {"type": "sample.nul", "payload": {}, "max_retries": 0})
    assert task["status"] == "FAILED"
    assert task["error"]["type"] == "UnstorableResult"
    assert "result.rows[1]" in task["error"]["message"]
    assert task["result"] is None
    assert task["progress"] == {"fraction": 0.5, "message": "half\ufffdway"}


def test_u0000_in_an_error_message_is_replaced(user_stack: Stack) -> None:
    task = _run(user_stack, {"type": "sample.nul", "payload": {"raise": True}, "max_retries": 0})
    assert task["status"] == "FAILED"
    assert task["error"] == {"type": "RuntimeError", "message": "broken\ufffdhere"}


def test_the_api_publishes_the_users_types_and_their_payload_schemas(user_stack: Stack) -> None:
    response = httpx.get(f"{user_stack.base_url}/api/types", timeout=10)
    assert response.status_code == 200
    items = {item["type"]: item for item in response.json()["items"]}
    invoice = items["billing.send_invoice"]
    assert (invoice["queue"], invoice["max_retries"], invoice["timeout_seconds"]) == (
        "billing",
        5,
        30,
    )
    fields = invoice["payload_schema"]["$defs"]["Invoice"]
    assert fields["required"] == ["order_id", "amount_cents"]
    assert fields["properties"]["amount_cents"]["type"] == "integer"
    assert "debug.echo" in items  # the built-ins too, unless TASKFLOW_DEBUG_TASKS=false
