"""The `taskflow` command as a user runs it: help, clear one-line errors, submit and status."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config

from taskflow.adapters.sql.engine import MIGRATIONS
from tests.conftest import REDIS_URL
from tests.integration.conftest import Stack
from tests.integration.processes import (
    Process,
    base_env,
    free_port,
    run_cli,
    wait_for,
    wait_http_ok,
)

COMMANDS = ["dev", "api", "worker", "migrate", "submit", "status", "cancel", "retry"]
COMMANDS += ["tasks", "tasks show", "tasks retry", "schedules", "queues", "queues pause", "workers"]


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskflow"), lines
    assert "Traceback" not in result.stderr
    return str(lines[0])


@pytest.mark.parametrize("command", [[], *(c.split() for c in COMMANDS)], ids=str)
def test_help_of_every_command(command: list[str]) -> None:
    result = run_cli([*command, "--help"], base_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: taskflow")


def test_version() -> None:
    result = run_cli(["--version"], base_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"taskflow {importlib.metadata.version('taskflow')}\n"


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("TASKFLOW_PORT", "abc", "api"),
        ("TASKFLOW_WORKER_CONCURRENCY", "0", "worker"),
        ("TASKFLOW_LEASE_SECONDS", "soon", "worker"),
        ("TASKFLOW_DEBUG_TASKS", "perhaps", "api"),
        ("TASKFLOW_DATABASE_URL", "mysql://nope", "migrate"),
        ("TASKFLOW_TASKS", "no_such_module:tasks", "worker"),
    ],
)
def test_a_bad_setting_stops_with_one_line_naming_it(
    variable: str, value: str, command: str
) -> None:
    result = run_cli([command], base_env(**{variable: value}))
    assert result.returncode == 2
    assert variable in _one_error_line(result)


def test_a_bad_argument_is_one_line() -> None:
    result = run_cli(["submit", "debug.echo", "--payload", "{nope"], base_env())
    assert result.returncode == 2
    assert "--payload" in _one_error_line(result)


def test_an_unreachable_api_is_one_line() -> None:
    result = run_cli(["status", str(uuid.uuid4()), "--url", "http://127.0.0.1:9"], base_env())
    assert result.returncode == 1
    assert "cannot reach the API" in _one_error_line(result)


@pytest.mark.parametrize(
    ("command", "settings"),
    [("dev", {}), ("api", {}), ("api", {"TASKFLOW_API_PROCESSES": "2"})],
    ids=["dev", "api", "api-processes"],
)
def test_a_taken_port_is_one_line_naming_it_before_anything_starts(
    tmp_path: Path, command: str, settings: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli([command, "--port", str(port)], base_env(**settings), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in _one_error_line(result)
    assert not (tmp_path / "taskflow.db").exists()  # dev neither migrated nor started its worker


def test_an_unreachable_database_is_one_line() -> None:
    env = base_env(TASKFLOW_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:9/x")
    result = run_cli(["migrate"], env)
    assert result.returncode == 1
    assert "database" in _one_error_line(result)


@pytest.mark.parametrize("settings", [{}, {"TASKFLOW_API_PROCESSES": "2"}], ids=["1", "2"])
def test_an_api_on_a_database_without_the_keys_table_says_to_migrate(
    pg_database_factory: Callable[[], str],
    redis_prefix: str,
    tmp_path: Path,
    settings: dict[str, str],
) -> None:
    url = pg_database_factory()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0009")  # the schema before API keys
    port = free_port()
    env = base_env(
        TASKFLOW_DATABASE_URL=url,
        TASKFLOW_REDIS_URL=REDIS_URL,
        TASKFLOW_REDIS_PREFIX=redis_prefix,
        TASKFLOW_PORT=str(port),
        **settings,
    )
    refused = run_cli(["api"], env, timeout=60)
    assert refused.returncode == 1
    assert _one_error_line(refused) == (
        "taskflow: error: the database's schema is older than this taskflow "
        '(relation "api_keys" does not exist): run `taskflow migrate`'
    )
    assert run_cli(["migrate"], env).returncode == 0  # the fix it names
    api = Process(["api"], env, tmp_path / "api.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health/live", timeout=60, process=api)
    finally:
        stopped = api.stop()
    assert stopped == 0, api.output()


def test_submit_wait_and_status(stack: Stack) -> None:
    submitted = run_cli(
        ["submit", "debug.echo", "--payload", '{"via": "cli"}', "--wait", "--url", stack.base_url],
        stack.env,
    )
    assert submitted.returncode == 0, submitted.stderr
    task = json.loads(submitted.stdout)
    assert task["status"] == "SUCCESS"
    assert task["result"] == {"via": "cli"}

    status = run_cli(["status", task["id"], "--url", stack.base_url], stack.env)
    assert status.returncode == 0
    assert json.loads(status.stdout)["id"] == task["id"]


def test_submit_wait_exits_3_when_the_task_fails(stack: Stack) -> None:
    result = run_cli(
        [
            "submit",
            "debug.fail",
            "--payload",
            '{"fail_attempts": 9}',
            "--max-retries",
            "0",
            "--wait",
            "--url",
            stack.base_url,
        ],
        stack.env,
    )
    assert result.returncode == 3
    assert json.loads(result.stdout)["status"] == "FAILED"


def test_submit_of_an_unknown_type_and_status_of_an_unknown_id(stack: Stack) -> None:
    unknown_type = run_cli(["submit", "no.such", "--url", stack.base_url], stack.env)
    assert unknown_type.returncode == 1
    assert "HTTP 400" in _one_error_line(unknown_type)
    unknown_id = run_cli(["status", str(uuid.uuid4()), "--url", stack.base_url], stack.env)
    assert unknown_id.returncode == 1
    assert "HTTP 404" in _one_error_line(unknown_id)


def test_migrate_says_one_line_without_alembics_chatter(tmp_path: Path) -> None:
    env = base_env(TASKFLOW_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    for _ in range(2):  # creating the schema, then finding it there
        result = run_cli(["migrate"], env)
        assert result.returncode == 0, result.stderr
        lines = result.stderr.strip().splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["database migrated"], lines


def test_a_batch_is_logged_as_a_count_not_a_list_of_ids(stack: Stack) -> None:
    batch = {"tasks": [{"type": "debug.echo", "payload": {"n": n}} for n in range(3)]}
    response = httpx.post(f"{stack.base_url}/api/tasks/batch", json=batch, timeout=30)
    assert response.status_code == 202, response.text
    ids = [task["id"] for task in response.json()["tasks"]]
    api = next(p for p in stack.processes if p.args[0] == "api")

    def logged() -> str | None:
        lines = api.output().splitlines()
        return next((line for line in lines if '"event":"batch submitted"' in line), None)

    line = wait_for(logged, timeout=30, what="the batch's log line")
    assert json.loads(line)["tasks"] == 3
    assert not [task_id for task_id in ids if task_id in line], line
