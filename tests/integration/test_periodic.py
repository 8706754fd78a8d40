"""Periodic tasks against real PostgreSQL and Redis: several `taskflow worker` processes run
the scheduler at once, and each tick of an every-second schedule becomes exactly one task,
also after one of them is killed with SIGKILL; `taskflow dev` runs them on SQLite too."""

from __future__ import annotations

import itertools
import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import ROOT, Stack, StackFactory
from tests.integration.periodic_tasks import SCHEDULE
from tests.integration.processes import (
    Process,
    base_env,
    free_port,
    run_cli,
    wait_for,
    wait_http_ok,
)

SETTINGS = {"TASKFLOW_TASKS": "tests.integration.periodic_tasks:tasks", "PYTHONPATH": ROOT}


def _periodic_tasks(base_url: str) -> list[dict[str, Any]]:
    """Every task the schedule enqueued, through the API's listing, page after page."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"metadata.schedule": SCHEDULE, "limit": 500}
    while True:
        page = httpx.get(f"{base_url}/api/tasks", params=params, timeout=30).json()
        found.extend(page["items"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


def _ticks(tasks: list[dict[str, Any]]) -> list[datetime]:
    return sorted(datetime.fromisoformat(t["metadata"]["tick"]) for t in tasks)


def _assert_one_task_per_tick_and_no_gap(tasks: list[dict[str, Any]]) -> None:
    ticks = _ticks(tasks)
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert steps <= {timedelta(seconds=1)}, f"ticks were missed: {sorted(steps)}"


def _wait_for_ticks(stack: Stack, count: int, *, after: int = 0) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        tasks = _periodic_tasks(stack.base_url)
        return tasks if len(tasks) >= after + count else None

    try:
        return wait_for(enough, timeout=90, interval=0.5, what=f"{count} more periodic tasks")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.dump_logs()}") from None


def test_three_workers_enqueue_each_tick_once_also_after_one_is_killed(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(**SETTINGS)
    workers = [stack.start_worker() for _ in range(3)]
    stack.start_api()
    before = len(_wait_for_ticks(stack, 5))

    workers[0].signal(signal.SIGKILL)
    wait_for(lambda: not workers[0].alive(), timeout=30, what="the killed worker to exit")
    tasks = _wait_for_ticks(stack, 5, after=before)

    _assert_one_task_per_tick_and_no_gap(tasks)
    done = stack.wait_status([t["id"] for t in tasks], {"SUCCESS"})
    assert {t["result"]["k"] for t in done} == {"v"}
    listed = httpx.get(f"{stack.base_url}/api/schedules", timeout=30).json()["items"]
    assert [(s["name"], s["every"], s["paused"]) for s in listed] == [(SCHEDULE, 1, False)]
    assert listed[0]["last_run_at"] is not None


def test_a_paused_schedule_is_paused_for_every_worker(stack_factory: StackFactory) -> None:
    stack = stack_factory(**SETTINGS)
    stack.start_worker()
    stack.start_worker()
    stack.start_api()
    _wait_for_ticks(stack, 2)
    paused = httpx.post(f"{stack.base_url}/api/schedules/{SCHEDULE}/pause", timeout=30)
    assert paused.status_code == 200
    shown = run_cli(["schedules", "--url", stack.base_url, "--json"], stack.env)
    assert shown.returncode == 0, shown.stderr
    assert [(s["name"], s["paused"]) for s in json.loads(shown.stdout)["items"]] == [
        (SCHEDULE, True)
    ]
    table = run_cli(["schedules", "--url", stack.base_url], stack.env)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "TYPE", "WHEN"]
    assert row.split()[:6] == [SCHEDULE, "periodic.tick", "every", "1s", "UTC", "yes"]
    # The store checks the pause in each tick's own transaction: from now on, none is written.
    paused_at = datetime.fromisoformat(
        httpx.get(f"{stack.base_url}/api/schedules", timeout=30).json()["items"][0]["last_run_at"]
    )
    # Let at least two ticks pass while paused (waiting on the clock itself).
    wait_for(
        lambda: datetime.now(UTC) > paused_at + timedelta(seconds=2.5),
        timeout=30,
        what="two ticks to pass while paused",
    )
    resumed = httpx.post(f"{stack.base_url}/api/schedules/{SCHEDULE}/resume", timeout=30)
    assert resumed.status_code == 200
    resumed_next = datetime.fromisoformat(resumed.json()["next_run_at"])
    tasks = _wait_for_ticks(stack, 2, after=len(_periodic_tasks(stack.base_url)))
    ticks = _ticks(tasks)
    assert len(ticks) == len(set(ticks))
    # Ticks missed while paused were not caught up after the resume.
    assert [t for t in ticks if paused_at < t < resumed_next] == []
    assert any(t >= resumed_next for t in ticks)
    missing = httpx.post(f"{stack.base_url}/api/schedules/nope/pause", timeout=30)
    assert missing.status_code == 404


def test_dev_runs_the_schedule_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(**SETTINGS)
    process = Process(["dev", "--port", str(port)], env, tmp_path / "dev.log", cwd=tmp_path)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health/ready", timeout=60, process=process)
        base_url = f"http://127.0.0.1:{port}"

        def succeeded() -> list[dict[str, Any]] | None:
            tasks = [t for t in _periodic_tasks(base_url) if t["status"] == "SUCCESS"]
            return tasks if len(tasks) >= 3 else None

        try:
            tasks = wait_for(succeeded, timeout=60, interval=0.5, what="3 periodic tasks done")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{process.output()[-4000:]}") from None
        ticks = _ticks(tasks)
        assert len(ticks) == len(set(ticks))
    finally:
        process.stop()
