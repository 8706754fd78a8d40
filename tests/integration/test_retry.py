"""Retry through the real `taskflow api`, `taskflow worker` and the `taskflow retry` command."""

from __future__ import annotations

import json

from tests.integration.conftest import Stack
from tests.integration.processes import run_cli


def test_a_failed_task_retried_from_the_command_line_runs_again(stack: Stack) -> None:
    # Fails its first attempt, and has no retry left: FAILED, until someone retries it.
    body = {"type": "debug.fail", "payload": {"fail_attempts": 1}, "max_retries": 0}
    task_id = stack.submit(body)["id"]
    [failed] = stack.wait_status([task_id])
    assert failed["status"] == "FAILED", failed

    retried = run_cli(["retry", task_id, "--url", stack.base_url], stack.env)

    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "PENDING"
    [done] = stack.wait_status([task_id], {"SUCCESS"})
    assert (done["attempts"], done["retry_count"]) == (2, 0)
    assert done["result"] == {"attempts": 2}


def test_retrying_a_task_that_is_not_final_is_one_line_and_exit_1(stack: Stack) -> None:
    task_id = stack.submit(
        {"type": "debug.sleep", "payload": {"seconds": 0}, "delay_seconds": 600}
    )["id"]
    refused = run_cli(["retry", task_id, "--url", stack.base_url], stack.env)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("taskflow: error: HTTP 409")
