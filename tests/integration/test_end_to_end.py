"""End to end: real `taskflow migrate`, `api` and two `worker` processes on PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.integration.conftest import Stack
from tests.integration.processes import wait_for


def _get(stack: Stack, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}/api/tasks/{task_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _submit(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{stack.base_url}/api/tasks", json=body, timeout=10)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/tasks/{response.json()['id']}"
    return response.json()


def _wait_final(stack: Stack, task_id: str, timeout: float = 60) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        task = _get(stack, task_id)
        return task if task["status"] in ("SUCCESS", "FAILED", "CANCELLED") else None

    try:
        return wait_for(final, timeout=timeout, interval=0.1, what=f"task {task_id} to finish")
    except AssertionError:
        raise AssertionError(f"{_get(stack, task_id)}\n{stack.dump_logs()}") from None


async def _submit_many(stack: Stack, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:

        async def one(body: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                response = await client.post("/api/tasks", json=body)
            assert response.status_code == 202, response.text
            return response.json()

        return await asyncio.gather(*(one(b) for b in bodies))


async def _fetch_many(stack: Stack, ids: list[str]) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:

        async def one(task_id: str) -> dict[str, Any]:
            async with limit:
                response = await client.get(f"/api/tasks/{task_id}")
            assert response.status_code == 200, response.text
            return response.json()

        return await asyncio.gather(*(one(i) for i in ids))


def test_500_tasks_submitted_over_http_all_succeed(stack: Stack) -> None:
    bodies = [{"type": "debug.echo", "payload": {"n": n}} for n in range(500)]
    submitted = asyncio.run(_submit_many(stack, bodies))
    ids = [task["id"] for task in submitted]
    assert len(set(ids)) == 500
    assert all(task["status"] == "PENDING" for task in submitted)

    def all_done() -> list[dict[str, Any]] | None:
        tasks = asyncio.run(_fetch_many(stack, ids))
        return tasks if all(t["status"] == "SUCCESS" for t in tasks) else None

    try:
        tasks = wait_for(all_done, timeout=120, interval=0.5, what="500 tasks to succeed")
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None
    assert [t["result"] for t in tasks] == [{"n": n} for n in range(500)]
    assert all(t["attempts"] == 1 and t["retry_count"] == 0 for t in tasks)
    assert all(t["finished_at"] >= t["started_at"] >= t["created_at"] for t in tasks)


def test_failing_twice_then_succeeding_is_retried_to_success(stack: Stack) -> None:
    task = _submit(stack, {"type": "debug.fail", "payload": {"fail_attempts": 2}, "max_retries": 3})
    done = _wait_final(stack, task["id"])
    assert done["status"] == "SUCCESS", done
    assert done["attempts"] == 3
    assert done["retry_count"] == 2
    assert done["result"] == {"attempts": 3}


def test_endless_failure_ends_failed_with_the_error_recorded(stack: Stack) -> None:
    task = _submit(
        stack,
        {
            "type": "debug.fail",
            "payload": {"fail_attempts": 100, "message": "the printer is on fire"},
            "max_retries": 2,
        },
    )
    done = _wait_final(stack, task["id"])
    assert done["status"] == "FAILED", done
    assert done["attempts"] == 3
    assert done["retry_count"] == 2
    assert done["error"] == {"type": "DebugFailure", "message": "the printer is on fire"}
    assert done["finished_at"] is not None


def test_a_delayed_task_waits_for_its_time(stack: Stack) -> None:
    task = _submit(stack, {"type": "debug.echo", "payload": {}, "delay_seconds": 1.5})
    assert _get(stack, task["id"])["status"] == "PENDING"
    done = _wait_final(stack, task["id"])
    assert done["status"] == "SUCCESS"
    assert done["started_at"] >= task["run_at"]
