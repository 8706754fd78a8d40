"""Crashes at the worst lines (TASKFLOW_FAULTS crash points): nothing accepted is lost."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx

from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import Process, wait_for


def _db_url(stack: Stack) -> str:
    return stack.env["TASKFLOW_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")


def _rows(stack: Stack) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(_db_url(stack))
        try:
            rows = await conn.fetch("SELECT id, status, attempts FROM tasks ORDER BY created_at")
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    return asyncio.run(fetch())


def _submit(stack: Stack, body: dict[str, Any]) -> str:
    response = httpx.post(f"{stack.base_url}/api/tasks", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait_exit(process: Process, stack: Stack) -> int:
    wait_for(lambda: not process.alive(), timeout=60, what="the crash point to strike")
    code = process.popen.wait()
    assert code == 70, stack.dump_logs()  # faults.EXIT_CODE: it died at the crash point
    return code


def _wait_all(stack: Stack, status: str, count: int) -> list[dict[str, Any]]:
    def reached() -> list[dict[str, Any]] | None:
        rows = _rows(stack)
        return rows if len(rows) == count and all(r["status"] == status for r in rows) else None

    try:
        return wait_for(reached, timeout=60, interval=0.2, what=f"{count} tasks {status}")
    except AssertionError:
        raise AssertionError(f"{_rows(stack)}\n{stack.dump_logs()}") from None


def test_api_crashing_between_insert_and_push_still_dispatches(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    api = stack.start_api(env={"TASKFLOW_FAULTS": "exit_before_push"})
    with contextlib.suppress(httpx.HTTPError):  # the API dies mid-request, as intended
        httpx.post(
            f"{stack.base_url}/api/tasks", json={"type": "debug.echo", "payload": {}}, timeout=10
        )
    _wait_exit(api, stack)
    (row,) = _rows(stack)
    assert row["status"] == "PENDING"  # stored, never pushed

    stack.start_worker()
    (done,) = _wait_all(stack, "SUCCESS", 1)
    assert done["attempts"] == 1


def test_worker_killed_between_pop_and_claim_loses_nothing(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    stack.start_api()
    doomed = stack.start_worker(env={"TASKFLOW_FAULTS": "exit_after_pop"})
    _submit(stack, {"type": "debug.echo", "payload": {"n": 1}})
    _wait_exit(doomed, stack)
    (row,) = _rows(stack)
    assert row["status"] == "PENDING"
    assert row["attempts"] == 0  # popped from Redis, never claimed

    stack.start_worker()
    (done,) = _wait_all(stack, "SUCCESS", 1)
    assert done["attempts"] == 1


def test_worker_killed_after_storing_success_runs_nothing_twice(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    stack.start_api()
    doomed = stack.start_worker(env={"TASKFLOW_FAULTS": "exit_after_success"})
    first = _submit(stack, {"type": "debug.echo", "payload": {"n": 1}})
    _wait_exit(doomed, stack)

    stack.start_worker()
    # A second task succeeding shows the new worker has swept and worked for a while.
    _submit(stack, {"type": "debug.echo", "payload": {"n": 2}})
    rows = _wait_all(stack, "SUCCESS", 2)
    assert {str(r["id"]): r["attempts"] for r in rows}[first] == 1
