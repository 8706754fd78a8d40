"""Cancelling through real `taskflow api` and `taskflow worker` processes on PostgreSQL and Redis.

A PENDING task is CANCELLED at once and never runs, though its id waits in Redis. A running
one is stopped by its worker: within moments through the Redis notice, and through the next
lease renewal when the notice is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Databases
from tests.integration.conftest import Stack, StackFactory, migrated_stacks
from tests.integration.processes import base_env, run_cli, wait_for
from tests.integration.servers import RedisServer

# Leases renewed so rarely that, within a test, no renewal happens after the worker starts:
# only the notice can stop a handler then.
NO_RENEWAL_SOON = {"TASKFLOW_LEASE_SECONDS": "900", "TASKFLOW_HEARTBEAT_SECONDS": "600"}
SLEEP_60 = {"type": "debug.sleep", "payload": {"seconds": 60}}


def cancel(stack: Stack, task_id: str) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/api/tasks/{task_id}/cancel", timeout=30)


def attempts(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.base_url}/api/tasks/{task_id}/attempts", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def started_worker(stack: Stack, *, with_api: bool = False) -> None:
    """Starts a worker (``with_api``: and the API beside it) and waits until it runs."""
    worker = stack.start_worker()
    if with_api:
        stack.start_api()
    wait_for(lambda: "worker started" in worker.output(), timeout=60, what="the worker to start")


def cancel_running(stack: Stack, task_id: str) -> dict[str, Any]:
    """Wait until the task runs, cancel it, and return the answer (PROCESSING, requested)."""
    stack.wait_status([task_id], {"PROCESSING"})
    response = cancel(stack, task_id)
    assert response.status_code == 200, response.text
    requested = response.json()
    assert (requested["status"], requested["cancel_requested"]) == ("PROCESSING", True)
    return requested


def assert_cancelled_while_running(stack: Stack, task_id: str, *, timeout: float) -> None:
    [done] = stack.wait_status([task_id], timeout=timeout)
    assert (done["status"], done["cancel_requested"]) == ("CANCELLED", False), done
    assert done["finished_at"] is not None
    assert [a["outcome"] for a in attempts(stack, task_id)] == ["CANCELLED"]


def test_a_pending_task_whose_id_waits_in_redis_is_cancelled_and_never_runs(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    stack.start_api()
    # No worker yet: the id waits in Redis, ahead of the marker by its priority.
    doomed = stack.submit({"type": "debug.echo", "payload": {"n": 1}, "priority": 9})
    marker = stack.submit({"type": "debug.echo", "payload": {"n": 2}, "priority": 0})

    response = cancel(stack, doomed["id"])

    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["attempts"]) == ("CANCELLED", 0)
    started_worker(stack)
    # The worker pops the cancelled id first, claims nothing of it, then runs the marker.
    assert stack.wait_status([marker["id"]])[0]["status"] == "SUCCESS"
    assert stack.task(doomed["id"]) == cancelled
    assert attempts(stack, doomed["id"]) == []
    assert cancel(stack, doomed["id"]).status_code == 409  # final already


def test_a_running_task_is_stopped_by_the_notice_long_before_any_renewal(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(**NO_RENEWAL_SOON)
    started_worker(stack, with_api=True)
    task = stack.submit(SLEEP_60)

    cancel_running(stack, task["id"])

    # Well inside the 60 s sleep and the first renewal, 600 s after the worker started.
    assert_cancelled_while_running(stack, task["id"], timeout=45)
    assert "cancel requested, stopping the handler" in stack.dump_logs()


@pytest.fixture
def own_redis_stack(
    pg_database_factory: Databases, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Stack, RedisServer]]:
    factory = migrated_stacks(pg_database_factory, tmp_path)
    stack = factory(TASKFLOW_REDIS_URL=redis_server.url)
    yield stack, redis_server
    factory.close()


def test_with_redis_down_the_next_renewal_stops_the_task(
    own_redis_stack: tuple[Stack, RedisServer],
) -> None:
    stack, redis_server = own_redis_stack
    started_worker(stack, with_api=True)
    task = stack.submit(SLEEP_60)
    stack.wait_status([task["id"]], {"PROCESSING"})

    redis_server.stop()  # the notice cannot be sent; the store still takes the request
    cancel_running(stack, task["id"])

    # Renewals run every second (the stack's TASKFLOW_HEARTBEAT_SECONDS), from PostgreSQL.
    assert_cancelled_while_running(stack, task["id"], timeout=45)


def test_taskflow_cancel_prints_the_task_and_refuses_a_final_one(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    stack.start_api()
    task = stack.submit({"type": "debug.echo", "payload": {}})

    first = run_cli(["cancel", task["id"], "--url", stack.base_url], stack.env)
    again = run_cli(["cancel", task["id"], "--url", stack.base_url], stack.env)
    helped = run_cli(["cancel", "--help"], base_env())

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["status"] == "CANCELLED"
    assert again.returncode == 1
    assert again.stderr.startswith("taskflow: error: HTTP 409")
    assert helped.returncode == 0
