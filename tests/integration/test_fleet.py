"""Issue 12, item 2, end to end: real `taskflow api` and `taskflow worker` processes on the real
PostgreSQL and Redis. Workers list themselves and drop out when they die; a queue with work and
no consumer is flagged; a paused queue starts nothing until it is resumed."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import Process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BEAT = "0.5"  # TASKFLOW_WORKER_HEARTBEAT_SECONDS: a dead worker is gone 1.5 s after its last beat
BOUND = 60.0


def workers(stack: Stack) -> dict[int, dict[str, Any]]:
    response = httpx.get(f"{stack.base_url}/api/workers", timeout=30)
    assert response.status_code == 200, response.text
    return {w["pid"]: w for w in response.json()["workers"]}


def queues(stack: Stack) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{stack.base_url}/api/queues", timeout=30)
    assert response.status_code == 200, response.text
    return {q["name"]: q for q in response.json()["queues"]}


def listed(stack: Stack, *processes: Process) -> dict[int, dict[str, Any]]:
    def all_there() -> dict[int, dict[str, Any]] | None:
        found = workers(stack)
        return found if all(p.pid in found for p in processes) else None

    return wait_for(all_there, timeout=BOUND, what=f"workers {[p.pid for p in processes]}")


def submit(stack: Stack, queue: str, n: int = 1) -> list[str]:
    return [
        stack.submit({"type": "debug.echo", "payload": {}, "queue": queue})["id"] for _ in range(n)
    ]


def test_workers_on_different_queues_are_listed_and_a_killed_one_drops_out(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(TASKFLOW_WORKER_HEARTBEAT_SECONDS=BEAT)
    stack.start_api()
    mail = stack.start_worker("--queues", "mail", "--concurrency", "3")
    reports = stack.start_worker("--queues", "reports,default")
    found = listed(stack, mail, reports)
    assert found[mail.pid]["queues"] == ["mail"]
    assert found[mail.pid]["concurrency"] == 3
    assert found[reports.pid]["queues"] == ["reports", "default"]
    assert found[mail.pid]["id"] != found[reports.pid]["id"]
    by_name = queues(stack)
    assert (by_name["mail"]["consumers"], by_name["default"]["consumers"]) == (1, 1)

    mail.signal(signal.SIGKILL)

    wait_for(
        lambda: mail.pid not in workers(stack),
        timeout=BOUND,
        what="the killed worker to drop out after three missed heartbeats",
    )
    assert reports.pid in workers(stack)  # the living one beats on
    assert "mail" not in queues(stack)  # no work, no consumer: not in use


def test_a_worker_that_stops_cleanly_is_unlisted_at_once(stack_factory: StackFactory) -> None:
    # Beats a minute apart: only the worker's own leaving can unlist it within the bound.
    stack = stack_factory(TASKFLOW_WORKER_HEARTBEAT_SECONDS="60")
    stack.start_api()
    worker = stack.start_worker()
    listed(stack, worker)
    assert worker.stop() == 0, worker.output()[-3000:]
    wait_for(lambda: worker.pid not in workers(stack), timeout=30, what="the worker to leave")


def test_a_queue_with_work_and_no_consumer_is_unconsumed(stack_factory: StackFactory) -> None:
    stack = stack_factory(TASKFLOW_WORKER_HEARTBEAT_SECONDS=BEAT)
    stack.start_api()
    worker = stack.start_worker("--queues", "default")
    listed(stack, worker)
    submit(stack, "nobody", 3)
    [served] = submit(stack, "default")
    stack.wait_status([served], {"SUCCESS"})
    by_name = queues(stack)
    nobody = by_name["nobody"]
    assert (nobody["ready"], nobody["consumers"], nobody["unconsumed"]) == (3, 0, True)
    assert nobody["oldest_ready_age_seconds"] >= 0
    default = by_name["default"]
    assert (default["consumers"], default["unconsumed"]) == (1, False)
    assert default["throughput_last_minute"] == {"succeeded": 1, "failed": 0}


def test_a_paused_queue_starts_nothing_until_it_is_resumed(stack_factory: StackFactory) -> None:
    # Beats a minute apart: the pause must reach the worker by its notice, not its next beat.
    stack = stack_factory(TASKFLOW_WORKER_HEARTBEAT_SECONDS="60")
    stack.start_api()
    worker = stack.start_worker("--queues", "default,other")
    listed(stack, worker)
    paused = httpx.post(f"{stack.base_url}/api/queues/default/pause", timeout=30)
    assert (paused.status_code, paused.json()["paused"]) == (200, True)
    # Submissions are taken while paused.
    held = submit(stack, "default", 5)
    # Submitted after them and served by the same worker: once it ran, the pause held them.
    stack.wait_status(submit(stack, "other"), {"SUCCESS"})
    assert [stack.task(i)["status"] for i in held] == ["PENDING"] * 5
    default = queues(stack)["default"]
    assert (default["paused"], default["ready"], default["consumers"]) == (True, 5, 1)
    assert default["unconsumed"] is False  # consumed, only paused

    resumed = httpx.post(f"{stack.base_url}/api/queues/default/resume", timeout=30)
    assert (resumed.status_code, resumed.json()["paused"]) == (200, False)
    stack.wait_status(held, {"SUCCESS"})


def test_a_malformed_queue_name_is_a_400_problem(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    stack.start_api()
    response = httpx.post(f"{stack.base_url}/api/queues/no%20spaces/pause", timeout=30)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "'no spaces'" in response.json()["detail"]


def test_a_worker_started_after_the_pause_starts_nothing_from_that_queue(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(TASKFLOW_WORKER_HEARTBEAT_SECONDS="60")
    stack.start_api()
    assert httpx.post(f"{stack.base_url}/api/queues/default/pause", timeout=30).status_code == 200
    held = submit(stack, "default", 3)
    worker = stack.start_worker("--queues", "default,other")
    listed(stack, worker)
    stack.wait_status(submit(stack, "other"), {"SUCCESS"})
    assert [stack.task(i)["attempts"] for i in held] == [0, 0, 0]
    assert httpx.post(f"{stack.base_url}/api/queues/default/resume", timeout=30).status_code == 200
    stack.wait_status(held, {"SUCCESS"})
