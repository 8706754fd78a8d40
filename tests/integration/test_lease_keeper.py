"""An async handler that hogs the worker's event loop does not lose its lease."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.conftest import StackFactory
from tests.integration.processes import wait_for

ROOT = str(Path(__file__).resolve().parents[2])


def test_a_handler_blocking_the_loop_past_the_lease_keeps_it(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(
        TASKFLOW_TASKS="tests.integration.sample_tasks:tasks",
        PYTHONPATH=ROOT,
        TASKFLOW_LEASE_SECONDS="2",
        TASKFLOW_HEARTBEAT_SECONDS="0.5",
        TASKFLOW_SWEEP_SECONDS="0.5",
    )
    stack.start_api()
    stack.start_worker()
    stack.start_worker()  # its reaper would take the task if the first let the lease lapse
    response = httpx.post(
        f"{stack.base_url}/api/tasks",
        json={"type": "sample.hog", "payload": {"seconds": 5}, "max_retries": 3},
    )
    assert response.status_code == 202, response.text
    url = f"{stack.base_url}/api/tasks/{response.json()['id']}"

    def finished() -> dict[str, object] | None:
        task = httpx.get(url).json()
        return task if task["status"] in ("SUCCESS", "FAILED") else None

    try:
        task = wait_for(finished, timeout=60, interval=0.2, what="the hog to finish")
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None
    assert task["status"] == "SUCCESS", stack.dump_logs()
    assert task["attempts"] == 1, stack.dump_logs()
    assert task["result"] == {"attempt": 1}
