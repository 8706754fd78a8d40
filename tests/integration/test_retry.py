"""Retry through the real `taskflow api`, `taskflow worker` and the `taskflow retry` command."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

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


def _failed(stack: Stack, count: int, batch: str) -> list[str]:
    """``count`` tasks that fail their first attempt with no retry left: FAILED, and they
    succeed once run again."""
    body = {
        "type": "debug.fail",
        "payload": {"fail_attempts": 1},
        "max_retries": 0,
        "metadata": {"batch": batch},
    }
    ids = [stack.submit(body)["id"] for _ in range(count)]
    assert {t["status"] for t in stack.wait_status(ids)} == {"FAILED"}
    return ids


def test_a_retry_with_a_new_payload_runs_it_and_the_history_says_who_changed_what(
    stack: Stack,
) -> None:
    body = {"type": "debug.fail", "payload": {"fail_attempts": 99}, "max_retries": 0}
    task_id = stack.submit(body)["id"]
    stack.wait_status([task_id])

    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        refused = client.post(
            f"/api/tasks/{task_id}/retry", json={"payload": {"fail_attempts": -1}}
        )
        retried = client.post(
            f"/api/tasks/{task_id}/retry",
            json={"payload": {"fail_attempts": 0}},
            headers={"Taskflow-Actor": "ana@support"},
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["errors"][0]["field"] == "payload.fail_attempts"
        assert retried.status_code == 202, retried.text
        [done] = stack.wait_status([task_id], {"SUCCESS"})
        history = client.get(f"/api/tasks/{task_id}/attempts").json()

    assert done["payload"] == {"fail_attempts": 0}
    assert done["result"] == {"attempts": 2}
    assert [a["outcome"] for a in history["items"]] == ["FAILED", "SUCCESS"]
    [change] = history["changes"]
    assert (change["action"], change["by"], change["after_attempt"]) == (
        "RETRY",
        "ana@support",
        1,
    )
    assert change["payload_before"] == {"fail_attempts": 99}
    assert change["payload_after"] == {"fail_attempts": 0}


def test_bulk_retries_at_once_revive_each_task_once_and_a_repeat_finds_none(
    stack: Stack,
) -> None:
    batch = str(uuid.uuid4())
    ids = _failed(stack, 12, batch)
    body = {"status": ["FAILED"], "type": "debug.fail", "metadata": {"batch": batch}, "limit": 5}

    def bulk(_: int) -> dict[str, Any]:
        response = httpx.post(f"{stack.base_url}/api/tasks/retry", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=4) as pool:  # four requests at once, three times
        answers = list(pool.map(bulk, range(4)))
        answers += list(pool.map(bulk, range(4)))
        answers += list(pool.map(bulk, range(4)))

    revived = [task_id for answer in answers for task_id in answer["ids"]]
    assert all(answer["retried"] == len(answer["ids"]) <= 5 for answer in answers)
    assert sorted(revived) == sorted(ids)  # every one, none twice
    done = stack.wait_status(ids, {"SUCCESS"})
    assert {(t["attempts"], t["retry_count"]) for t in done} == {(2, 0)}
    for task_id in ids:
        history = httpx.get(f"{stack.base_url}/api/tasks/{task_id}/attempts", timeout=30).json()
        assert [c["action"] for c in history["changes"]] == ["RETRY"]
    assert bulk(0) == {"retried": 0, "ids": []}
