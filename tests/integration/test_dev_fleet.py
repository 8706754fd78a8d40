"""`taskflow dev` in the fleet: its one worker is listed, its queues reported, and a pause
holds a queue's tasks on the in-process queue and SQLite store until it is resumed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.processes import Process, base_env, free_port, wait_for, wait_http_ok

pytestmark = pytest.mark.e2e


def test_dev_lists_its_worker_and_pauses_a_queue(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = base_env(TASKFLOW_WORKER_HEARTBEAT_SECONDS="60")  # the pause must come by its notice
    process = Process(["dev", "--port", str(port)], env, tmp_path / "dev.log", cwd=tmp_path)
    try:
        wait_http_ok(f"{base}/health/ready", timeout=60, process=process)
        workers = wait_for(
            lambda: httpx.get(f"{base}/api/workers", timeout=5).json()["workers"],
            timeout=30,
            what="dev's worker to be listed",
        )
        assert [w["pid"] for w in workers] == [process.pid]
        assert "default" in workers[0]["queues"]

        assert httpx.post(f"{base}/api/queues/default/pause", timeout=5).status_code == 200
        task = {"type": "debug.echo", "payload": {}}
        held = httpx.post(f"{base}/api/tasks", json=task, timeout=5).json()["id"]

        def queued() -> bool:
            default = {q["name"]: q for q in httpx.get(f"{base}/api/queues").json()["queues"]}
            return default["default"]["ready"] == 1

        wait_for(queued, timeout=30, what="the held task to be ready in a paused queue")
        assert httpx.get(f"{base}/api/tasks/{held}").json()["status"] == "PENDING"

        assert httpx.post(f"{base}/api/queues/default/resume", timeout=5).status_code == 200
        wait_for(
            lambda: httpx.get(f"{base}/api/tasks/{held}").json()["status"] == "SUCCESS",
            timeout=30,
            what="the task to run once resumed",
        )
    finally:
        assert process.stop() == 0, process.output()[-3000:]
