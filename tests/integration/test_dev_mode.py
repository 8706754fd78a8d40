"""`taskflow dev` in an empty folder, with no configuration at all, or beside the user's code."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import (
    Process,
    base_env,
    free_port,
    run_cli,
    wait_for,
    wait_http_ok,
)

USER_TASKS = """
from taskflow import Registry, TaskContext

tasks = Registry()


@tasks.task("myapp.greet")
async def greet(payload: dict, ctx: TaskContext) -> dict:
    return {"greeting": "hello " + payload["name"]}
"""


def _start(
    folder: Path, port: int, log_path: Path, env: Mapping[str, str] | None = None
) -> Process:
    process = Process(["dev", "--port", str(port)], env or base_env(), log_path, cwd=folder)
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


def _user_project(folder: Path) -> Path:
    """A folder as the README's quick start has it: ``myapp/tasks.py`` holding a Registry."""
    (folder / "myapp").mkdir(parents=True)
    (folder / "myapp" / "__init__.py").write_text("")
    (folder / "myapp" / "tasks.py").write_text(USER_TASKS)
    return folder


def _env_without_python_path(**overrides: str) -> dict[str, str]:
    env = base_env(**overrides)
    env.pop("PYTHONPATH", None)  # the user's folder must be found as the current directory
    return env


def test_dev_imports_the_users_tasks_from_the_current_directory(tmp_path: Path) -> None:
    folder = _user_project(tmp_path / "project")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/tasks"
    env = _env_without_python_path(TASKFLOW_TASKS="myapp.tasks:tasks")

    dev = _start(folder, port, tmp_path / "dev.log", env)
    try:
        task = httpx.post(api, json={"type": "myapp.greet", "payload": {"name": "you"}}).json()
        done = _wait_status(f"{api}/{task['id']}", "SUCCESS", dev)
        assert done["result"] == {"greeting": "hello you"}
    finally:
        assert dev.stop() == 0


@pytest.mark.parametrize("command", ["api", "worker"])
def test_api_and_worker_import_from_the_current_directory_too(tmp_path: Path, command: str) -> None:
    # The module imports; the attribute it names is not a Registry: that error proves the first.
    folder = _user_project(tmp_path / "project")
    env = _env_without_python_path(TASKFLOW_TASKS="myapp.tasks:greet")
    result = run_cli([command], env, cwd=folder)
    assert result.returncode == 2
    assert "'myapp.tasks:greet' is not a taskflow Registry" in result.stderr, result.stderr
