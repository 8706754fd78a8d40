"""TASKFLOW_API_PROCESSES: one `taskflow api` serving from several processes on one port."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.conftest import StackFactory
from tests.integration.processes import wait_for


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_several_api_processes_serve_one_port_and_stop_cleanly(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    api = stack.start_api(env={"TASKFLOW_API_PROCESSES": "2"})
    stack.start_worker()
    # uvicorn's supervisor, its resource tracker, and the two servers.
    wait_for(lambda: len(_children(api.pid)) >= 3, timeout=30, what="two API processes")
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        ids = []
        for n in range(20):
            response = client.post("/api/tasks", json={"type": "debug.echo", "payload": {"n": n}})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])

        def all_done() -> bool:
            return all(client.get(f"/api/tasks/{i}").json()["status"] == "SUCCESS" for i in ids)

        wait_for(all_done, timeout=60, interval=0.2, what="the tasks to succeed")
    assert api.stop() == 0
