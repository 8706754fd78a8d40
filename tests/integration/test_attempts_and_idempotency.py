"""Attempt history and Idempotency-Key end to end: real `api` and two `worker` processes on
PostgreSQL and Redis (the module's `stack`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.conftest import Stack
from tests.integration.processes import wait_for

FAIL_TWICE = {"type": "debug.fail", "payload": {"fail_attempts": 2}, "max_retries": 3}


def _get(stack: Stack, path: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _post(stack: Stack, body: bytes, key: str) -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}/api/tasks",
        content=body,
        headers={"content-type": "application/json", "Idempotency-Key": key},
        timeout=10,
    )


def _wait_success(stack: Stack, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task = _get(stack, f"/api/tasks/{task_id}")
        return task if task["status"] in ("SUCCESS", "FAILED", "CANCELLED") else None

    try:
        task = wait_for(done, timeout=60, interval=0.1, what=f"task {task_id} to finish")
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None
    assert task["status"] == "SUCCESS", task
    return task


async def _count_tasks_with_key(stack: Stack, key: str) -> int:
    engine = create_async_engine(stack.env["TASKFLOW_DATABASE_URL"])
    try:
        async with engine.connect() as conn:
            query = text("SELECT count(*) FROM tasks WHERE idempotency_key = :key")
            return int(await conn.scalar(query, {"key": key}) or 0)
    finally:
        await engine.dispose()


# -- attempts ---------------------------------------------------------------------------------


def test_failing_twice_then_succeeding_records_three_attempts(stack: Stack) -> None:
    response = httpx.post(f"{stack.base_url}/api/tasks", json=FAIL_TWICE, timeout=10)
    assert response.status_code == 202, response.text
    task = _wait_success(stack, response.json()["id"])

    items = _get(stack, f"/api/tasks/{task['id']}/attempts")["items"]

    assert [(i["attempt"], i["outcome"]) for i in items] == [
        (1, "RETRY"),
        (2, "RETRY"),
        (3, "SUCCESS"),
    ]
    worker_pids = {str(p.pid) for p in stack.processes if p.args[0] == "worker"}
    # A worker id is host:pid:random; every attempt was run by one of this stack's workers.
    assert {i["worker_id"].split(":")[1] for i in items} <= worker_pids
    assert [i["error"] and i["error"]["type"] for i in items] == [
        "DebugFailure",
        "DebugFailure",
        None,
    ]
    for earlier, later in itertools.pairwise(items):
        assert earlier["started_at"] <= earlier["finished_at"] <= later["started_at"]
    # Each failure keeps the handler's traceback in the history; the task keeps none of it.
    for failed in items[:2]:
        trace = failed["error"]["traceback"]
        assert trace.startswith("Traceback (most recent call last)")
        assert "debug_tasks.py" in trace
        assert trace.rstrip().endswith("DebugFailure: debug.fail: failing on purpose")
    assert items[2]["error"] is None
    assert task["error"] is None  # SUCCESS clears the last failure
    worker_logs = "".join(p.output() for p in stack.processes if p.args[0] == "worker")
    retried = [json.loads(line) for line in worker_logs.splitlines() if '"retry scheduled"' in line]
    assert any("DebugFailure" in entry.get("exception", "") for entry in retried)
    assert (items[-1]["started_at"], items[-1]["finished_at"]) == (
        task["started_at"],
        task["finished_at"],
    )


def test_attempts_of_an_unknown_task_are_404(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/api/tasks/{uuid.uuid4()}/attempts", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


# -- Idempotency-Key --------------------------------------------------------------------------


def test_a_repeated_request_is_replayed_and_a_changed_one_refused(stack: Stack) -> None:
    key = f"order-{uuid.uuid4()}"
    first = _post(
        stack, json.dumps({"type": "debug.echo", "payload": {"a": 1, "b": 2}}).encode(), key
    )
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers

    again = _post(stack, b'{"payload": {"b": 2, "a": 1}, "type": "debug.echo"}', key)
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == f"/api/tasks/{first.json()['id']}"

    changed = _post(stack, b'{"type": "debug.echo", "payload": {"a": 2, "b": 2}}', key)
    assert changed.status_code == 422, changed.text
    assert changed.headers["content-type"].startswith("application/problem+json")
    assert asyncio.run(_count_tasks_with_key(stack, key)) == 1
    assert _wait_success(stack, first.json()["id"])["result"] == {"a": 1, "b": 2}


async def _twenty_at_once(stack: Stack, key: str) -> list[httpx.Response]:
    body = json.dumps({"type": "debug.echo", "payload": {"n": 20}}).encode()
    headers = {"content-type": "application/json", "Idempotency-Key": key}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        return await asyncio.gather(
            *(client.post("/api/tasks", content=body, headers=headers) for _ in range(20))
        )


def test_twenty_concurrent_requests_with_one_key_make_one_task(stack: Stack) -> None:
    key = f"burst-{uuid.uuid4()}"

    responses = asyncio.run(_twenty_at_once(stack, key))

    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r.headers.get("idempotent-replayed") for r in responses]
    assert replayed.count("true") == 19
    assert asyncio.run(_count_tasks_with_key(stack, key)) == 1
