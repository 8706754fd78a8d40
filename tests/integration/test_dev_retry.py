"""Retrying under `taskflow dev`: one task with a new payload, then many by a filter."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.processes import base_env, free_port
from tests.integration.test_dev_mode import _start, _wait_status


def test_dev_retries_one_task_with_a_new_payload_and_many_by_filter(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/tasks"
    dev = _start(tmp_path, port, tmp_path / "dev.log", base_env())
    try:
        body = {"type": "debug.fail", "payload": {"fail_attempts": 9}, "max_retries": 0}
        ids = [httpx.post(api, json=body).json()["id"] for _ in range(3)]
        for task_id in ids:
            _wait_status(f"{api}/{task_id}", "FAILED", dev)

        one = httpx.post(f"{api}/{ids[0]}/retry", json={"payload": {"fail_attempts": 0}})
        assert one.status_code == 202, one.text
        assert _wait_status(f"{api}/{ids[0]}", "SUCCESS", dev)["result"] == {"attempts": 2}
        [change] = httpx.get(f"{api}/{ids[0]}/attempts").json()["changes"]
        assert change["payload_after"] == {"fail_attempts": 0}

        many = httpx.post(f"{api}/retry", json={"type": "debug.fail", "limit": 10})
        assert many.json()["retried"] == 2
        assert sorted(many.json()["ids"]) == sorted(ids[1:])
        for task_id in ids[1:]:  # the same payload: they fail again
            assert _wait_status(f"{api}/{task_id}", "FAILED", dev)["attempts"] == 2
    finally:
        assert dev.stop() == 0
