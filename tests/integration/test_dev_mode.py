"""`taskflow dev` in an empty folder, with no configuration at all, or beside the user's code."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")

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


def _wait(condition: Callable[[], T | None], what: str, process: Process) -> T:
    try:
        return wait_for(condition, timeout=30, interval=0.1, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{process.output()[-4000:]}") from None


def _wait_status(url: str, status: str, process: Process) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        task = httpx.get(url, timeout=5).json()
        return task if task["status"] == status else None

    return _wait(reached, f"{url} to be {status}", process)


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


def _attempts(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/attempts", timeout=5).json()["items"]  # type: ignore[no-any-return]


def _kill_dev_mid_task(folder: Path, env: Mapping[str, str], log_path: Path) -> str:
    """Start dev, let it begin a long task, SIGKILL it; returns the task's id."""
    port = free_port()
    dev = _start(folder, port, log_path, env)
    api = f"http://127.0.0.1:{port}/api/tasks"
    task = httpx.post(api, json={"type": "debug.sleep", "payload": {"seconds": 60}}).json()
    _wait_status(f"{api}/{task['id']}", "PROCESSING", dev)
    dev.signal(signal.SIGKILL)
    assert dev.stop() == -signal.SIGKILL
    return str(task["id"])


# Leases far longer than these tests wait: only a take-back at start can rerun the task.
LONG_LEASES = {"TASKFLOW_LEASE_SECONDS": "600", "TASKFLOW_SHUTDOWN_GRACE_SECONDS": "1"}


def test_dev_killed_mid_task_runs_it_again_at_once_when_started_again(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    env = base_env(**LONG_LEASES)
    task_id = _kill_dev_mid_task(folder, env, tmp_path / "dev-1.log")

    port = free_port()
    second = _start(folder, port, tmp_path / "dev-2.log", env)
    url = f"http://127.0.0.1:{port}/api/tasks/{task_id}"
    try:
        _wait(lambda: len(_attempts(url)) == 2, "a second attempt", second)
        assert [a["outcome"] for a in _attempts(url)] == ["WORKER_LOST", None]
        assert "took back tasks left running by a process that died tasks=1" in second.output()
    finally:
        assert second.stop() == 0


def test_dev_on_a_shared_database_takes_nothing_back(
    tmp_path: Path, pg_database_factory: Callable[[], str]
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    env = base_env(**LONG_LEASES, TASKFLOW_DATABASE_URL=pg_database_factory())
    task_id = _kill_dev_mid_task(folder, env, tmp_path / "dev-1.log")

    port = free_port()
    second = _start(folder, port, tmp_path / "dev-2.log", env)
    try:
        # Taking back happens before the API answers: had it happened, this would show it.
        [attempt] = _attempts(f"http://127.0.0.1:{port}/api/tasks/{task_id}")
        assert attempt["outcome"] is None
        assert "not taking back running tasks" in second.output()
        assert not (folder / "taskflow.db.lock").exists()
    finally:
        assert second.stop() == 0


def test_a_second_dev_on_the_same_file_refuses_while_the_first_serves(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    port = free_port()
    first = _start(folder, port, tmp_path / "dev-1.log")
    try:
        refused = run_cli(["dev", "--port", str(free_port())], base_env(), cwd=folder)
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert str(folder / "taskflow.db.lock") in lines[0]
        assert f"pid {first.pid}" in lines[0]

        api = f"http://127.0.0.1:{port}/api/tasks"
        task = httpx.post(api, json={"type": "debug.echo", "payload": {}}).json()
        _wait_status(f"{api}/{task['id']}", "SUCCESS", first)
    finally:
        assert first.stop() == 0
