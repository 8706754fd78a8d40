"""`taskflow dev` in an empty folder, with no configuration at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration.processes import Process, base_env, free_port, wait_for, wait_http_ok


def _start(folder: Path, port: int, log_path: Path) -> Process:
    process = Process(["dev", "--port", str(port)], base_env(), log_path, cwd=folder)
    wait_http_ok(f"http://127.0.0.1:{port}/health/ready", timeout=60, process=process)
    return process


def _wait_status(url: str, status: str, process: Process) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        task = httpx.get(url, timeout=5).json()
        return task if task["status"] == status else None

    try:
        return wait_for(reached, timeout=30, interval=0.1, what=f"{url} to be {status}")
    except AssertionError:
        raise AssertionError(process.output()[-4000:]) from None


def test_dev_runs_a_task_and_keeps_everything_across_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/tasks"

    first = _start(folder, port, tmp_path / "dev-1.log")
    done = httpx.post(api, json={"type": "debug.echo", "payload": {"hello": "dev"}}).json()
    later = httpx.post(
        api, json={"type": "debug.echo", "payload": {"n": 2}, "delay_seconds": 3}
    ).json()
    _wait_status(f"{api}/{done['id']}", "SUCCESS", first)
    assert first.stop() == 0
    assert (folder / "taskflow.db").exists()

    second = _start(folder, port, tmp_path / "dev-2.log")
    try:
        kept = httpx.get(f"{api}/{done['id']}").json()
        assert kept["status"] == "SUCCESS"
        assert kept["result"] == {"hello": "dev"}
        # The delayed task was only in the first process's in-memory queue; the store refills it.
        ran = _wait_status(f"{api}/{later['id']}", "SUCCESS", second)
        assert ran["result"] == {"n": 2}
    finally:
        assert second.stop() == 0
