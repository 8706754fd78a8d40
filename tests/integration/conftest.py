"""A real deployment per test module: migrate, one API and worker processes on a fresh database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from tests.integration.processes import Process, base_env, free_port, run_cli, wait_http_ok


@dataclass
class Stack:
    env: dict[str, str]
    base_url: str
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def start_worker(self, *args: str) -> Process:
        index = sum(1 for p in self.processes if p.args[0] == "worker")
        process = Process(["worker", *args], self.env, self.logs / f"worker-{index}.log")
        self.processes.append(process)
        return process

    def start_api(self) -> Process:
        process = Process(["api"], self.env, self.logs / "api.log")
        self.processes.append(process)
        wait_http_ok(f"{self.base_url}/health/live", timeout=60, process=process)
        return process

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} ---\n{p.output()[-4000:]}" for p in self.processes)


def make_stack(database_url: str, redis_prefix: str, logs: Path, **settings: str) -> Stack:
    port = free_port()
    env = base_env(
        TASKFLOW_DATABASE_URL=database_url,
        TASKFLOW_REDIS_URL=REDIS_URL,
        TASKFLOW_REDIS_PREFIX=redis_prefix,
        TASKFLOW_PORT=str(port),
        TASKFLOW_LOG_LEVEL="INFO",
        TASKFLOW_LEASE_SECONDS="5",
        TASKFLOW_HEARTBEAT_SECONDS="1",
        TASKFLOW_SWEEP_SECONDS="1",
        TASKFLOW_SHUTDOWN_GRACE_SECONDS="5",
        TASKFLOW_RETRY_BACKOFF_BASE="0.1",
        TASKFLOW_RETRY_BACKOFF_MAX="1",
        **settings,
    )
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    return Stack(env=env, base_url=f"http://127.0.0.1:{port}", logs=logs)


class StackFactory:
    """Builds stacks and stops every process they started when closed."""

    def __init__(self, make_database: Callable[[], str], logs: Path) -> None:
        self._make_database = make_database
        self._logs = logs
        self._stacks: list[Stack] = []

    def __call__(self, **settings: str) -> Stack:
        logs = self._logs / f"stack-{len(self._stacks)}"
        logs.mkdir(parents=True, exist_ok=True)
        prefix = f"tftest:{uuid.uuid4().hex[:12]}"
        stack = make_stack(self._make_database(), prefix, logs, **settings)
        self._stacks.append(stack)
        return stack

    def close(self) -> None:
        for stack in self._stacks:
            for process in stack.processes:
                process.stop()


@pytest.fixture
def stack_factory(pg_database_factory: Callable[[], str], tmp_path: Path) -> Iterator[StackFactory]:
    factory = StackFactory(pg_database_factory, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_stack_factory(
    pg_database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackFactory]:
    factory = StackFactory(pg_database_factory, tmp_path_factory.mktemp("stacks"))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def stack(module_stack_factory: StackFactory) -> Stack:
    """Migrated database, one API, two workers; shared by the tests of a module."""
    built = module_stack_factory()
    built.start_api()
    built.start_worker()
    built.start_worker()
    return built
