"""A real deployment per test module: migrate, one API and worker processes on a fresh database."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, Databases, delete_redis_keys, new_redis_prefix
from tests.integration.processes import (
    Process,
    base_env,
    free_port,
    run_cli,
    wait_for,
    wait_http_ok,
)
from tests.integration.servers import PostgresServer, RedisServer

FINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})
ROOT = str(Path(__file__).resolve().parents[2])
FAULT_LEASE_SECONDS = 3.0
# Settings of the fault tests' stacks: their task types, and leases, heartbeats and sweeps
# short enough that recovery takes seconds.
FAULT_SETTINGS = {
    "TASKFLOW_TASKS": "tests.integration.fault_tasks:tasks",
    "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    "TASKFLOW_LEASE_SECONDS": str(FAULT_LEASE_SECONDS),
    "TASKFLOW_HEARTBEAT_SECONDS": "0.5",
    "TASKFLOW_SWEEP_SECONDS": "0.5",
}


@dataclass
class Stack:
    """One deployment's settings and processes.

    ``start_worker`` returns at once and ``start_api`` waits until the API answers, so a stack
    whose workers are started first has them starting beside the API (two cores, half the wait).
    """

    env: dict[str, str]
    base_url: str
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def start_worker(self, *args: str, env: Mapping[str, str] | None = None) -> Process:
        index = sum(1 for p in self.processes if p.args[0] == "worker")
        environ = {**self.env, **(env or {})}
        process = Process(["worker", *args], environ, self.logs / f"worker-{index}.log")
        self.processes.append(process)
        return process

    def start_api(self, env: Mapping[str, str] | None = None) -> Process:
        index = sum(1 for p in self.processes if p.args[0] == "api")
        environ = {**self.env, **(env or {})}
        process = Process(["api"], environ, self.logs / f"api-{index}.log")
        self.processes.append(process)
        wait_http_ok(f"{self.base_url}/health/live", timeout=60, process=process)
        return process

    def start_another_api(self, name: str = "api-second") -> tuple[Process, str]:
        """One more `taskflow api` on a port of its own, on the same database and Redis prefix;
        returned with its base URL."""
        port = free_port()
        environ = {**self.env, "TASKFLOW_PORT": str(port)}
        process = Process(["api"], environ, self.logs / f"{name}.log")
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/health/live", timeout=60, process=process)
        return process, url

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} ---\n{p.output()[-4000:]}" for p in self.processes)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/api/tasks", json=body, timeout=30)
        assert response.status_code == 202, f"{response.text}\n{self.dump_logs()}"
        return response.json()  # type: ignore[no-any-return]

    def task(self, task_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/api/tasks/{task_id}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_status(
        self, ids: Iterable[str], statuses: Collection[str] = FINAL, *, timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Poll until every task has one of ``statuses``; returns them in the order of ``ids``.

        Fails with the tasks that did not get there and the processes' logs. A 503 (the store
        is down) counts as "not yet".
        """
        ids = list(ids)
        seen: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=self.base_url, timeout=30) as client:

            def arrived() -> bool:
                for task_id in [i for i in ids if i not in seen]:
                    response = client.get(f"/api/tasks/{task_id}")
                    if response.status_code == 503:
                        return False
                    assert response.status_code == 200, response.text
                    task = response.json()
                    if task["status"] in statuses:
                        seen[task_id] = task
                return len(seen) == len(ids)

            try:
                wait_for(arrived, timeout=timeout, interval=0.2, what=f"tasks to be {statuses}")
            except AssertionError as exc:
                late = [client.get(f"/api/tasks/{i}").json() for i in ids if i not in seen]
                raise AssertionError(
                    f"{exc}: {len(late)} of {len(ids)} are not, e.g. {late[:3]}\n{self.dump_logs()}"
                ) from None
        return [seen[i] for i in ids]


def make_stack(
    database_url: str, redis_prefix: str, logs: Path, *, migrate: bool = True, **settings: str
) -> Stack:
    """``settings`` win over these defaults (TASKFLOW_REDIS_URL for a server of one's own).

    ``migrate``: run `taskflow migrate` first; False for a database copied from a migrated one.
    """
    port = free_port()
    defaults = {
        "TASKFLOW_DATABASE_URL": database_url,
        "TASKFLOW_REDIS_URL": REDIS_URL,
        "TASKFLOW_REDIS_PREFIX": redis_prefix,
        "TASKFLOW_PORT": str(port),
        "TASKFLOW_LOG_LEVEL": "INFO",
        "TASKFLOW_LEASE_SECONDS": "5",
        "TASKFLOW_HEARTBEAT_SECONDS": "1",
        "TASKFLOW_SWEEP_SECONDS": "1",
        "TASKFLOW_SHUTDOWN_GRACE_SECONDS": "5",
        "TASKFLOW_RETRY_BACKOFF_BASE": "0.1",
        "TASKFLOW_RETRY_BACKOFF_MAX": "1",
    }
    env = base_env(**{**defaults, **settings})
    if migrate:
        migrated = run_cli(["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
    return Stack(env=env, base_url=f"http://127.0.0.1:{port}", logs=logs)


class StackFactory:
    """Builds stacks and stops every process they started when closed.

    ``migrated``: ``make_database`` hands out databases that already have the schema, so no
    `taskflow migrate` runs per stack (test_cli, test_tls and test_database_role run it).
    """

    def __init__(
        self, make_database: Callable[[], str], logs: Path, *, migrated: bool = False
    ) -> None:
        self._make_database = make_database
        self._logs = logs
        self._migrated = migrated
        self._stacks: list[Stack] = []

    def __call__(self, **settings: str) -> Stack:
        logs = self._logs / f"stack-{len(self._stacks)}"
        logs.mkdir(parents=True, exist_ok=True)
        prefix = new_redis_prefix()
        stack = make_stack(
            self._make_database(), prefix, logs, migrate=not self._migrated, **settings
        )
        self._stacks.append(stack)
        return stack

    def close(self) -> None:
        for stack in self._stacks:
            for process in stack.processes:
                process.stop()
            # Only once its processes are gone: a running sweep writes the `intact` marker.
            delete_redis_keys(stack.env["TASKFLOW_REDIS_PREFIX"])


def migrated_stacks(databases: Databases, logs: Path) -> StackFactory:
    """Stacks on copies of the run's migrated template database."""
    return StackFactory(partial(databases, migrated=True), logs, migrated=True)


@pytest.fixture
def stack_factory(pg_database_factory: Databases, tmp_path: Path) -> Iterator[StackFactory]:
    factory = migrated_stacks(pg_database_factory, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_stack_factory(
    module_pg_database_factory: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackFactory]:
    factory = migrated_stacks(module_pg_database_factory, tmp_path_factory.mktemp("stacks"))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def stack(module_stack_factory: StackFactory) -> Stack:
    """Migrated database, one API, two workers; shared by the tests of a module."""
    built = module_stack_factory()
    built.start_worker()
    built.start_worker()
    built.start_api()
    return built


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop, pause or wipe; killed afterwards."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this module's own (initdb takes a while); removed afterwards.

    A test that stops it should start it again; `start` does nothing when it runs.
    """
    with PostgresServer() as server:
        yield server
