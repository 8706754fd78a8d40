"""Retry and listing under `taskflow dev` (its SQLite store and in-process queue)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.processes import base_env, free_port, run_cli
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


def test_dev_lists_pages_filters_and_counts(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = base_env()
    dev = _start(tmp_path, port, tmp_path / "dev.log", env)
    try:
        later = {"type": "debug.echo", "payload": {}, "delay_seconds": 600}
        ids = [
            httpx.post(f"{base}/api/tasks", json={**later, "metadata": {"n": n}}).json()["id"]
            for n in range(5)
        ]
        pages, cursor = [], None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{base}/api/tasks", params=params).json()
            pages.append([t["id"] for t in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert [i for page in pages for i in page] == ids[::-1]  # newest first, each once
        assert [len(p) for p in pages] == [2, 2, 1]
        one = httpx.get(f"{base}/api/tasks", params={"metadata.n": "3"}).json()["items"]
        assert [t["id"] for t in one] == [ids[3]]
        stats = httpx.get(f"{base}/api/tasks/stats").json()["items"]
        assert {"queue": "default", "type": "debug.echo", "status": "PENDING", "count": 5} in stats
        printed = run_cli(["tasks", "list", "--status", "PENDING", "--json", "--url", base], env)
        assert printed.returncode == 0, printed.stderr
        assert [t["id"] for t in json.loads(printed.stdout)["items"]] == ids[::-1]
    finally:
        assert dev.stop() == 0
