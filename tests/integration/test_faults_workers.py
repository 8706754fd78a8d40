"""Issue 3, workers: kill, pause and stop real worker processes; no accepted task is lost.

Every fault is real (SIGKILL, SIGSTOP, SIGTERM, os._exit, garbage written into Redis). The
processes run on the shared PostgreSQL and Redis with short leases, so that a lost worker is
noticed within seconds. A ledger file written by the handlers counts executions independently
of the store.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import REDIS_URL
from tests.integration.conftest import FAULT_SETTINGS as FAULTS
from tests.integration.conftest import FINAL, Stack, StackFactory
from tests.integration.fault_tasks import LedgerEntry, read_ledger
from tests.integration.processes import Process, wait_for


def fault_stack(factory: StackFactory, *, workers: int, **settings: str) -> Stack:
    stack = factory(**{**FAULTS, **settings})
    for _ in range(workers):
        stack.start_worker()
    stack.start_api()
    return stack


def workers(stack: Stack) -> list[Process]:
    return [p for p in stack.processes if p.args[0] == "worker"]


def worker_with_pid(stack: Stack, pid: int) -> Process:
    return next(p for p in workers(stack) if p.pid == pid)


def ledger_task(stack: Stack, ledger: Path, *sleeps: float) -> str:
    payload = {"ledger": str(ledger), "sleeps": list(sleeps)}
    return str(stack.submit({"type": "fault.ledger", "payload": payload})["id"])


def wait_started(stack: Stack, ledger: Path, task_id: str, attempt: int = 1) -> LedgerEntry:
    """Wait until ``attempt`` of the task is PROCESSING and its handler has begun."""

    def started() -> LedgerEntry | None:
        entry = next(
            (
                e
                for e in read_ledger(ledger, task_id)
                if e.event == "start" and e.attempt == attempt
            ),
            None,
        )
        return entry if entry and stack.task(task_id)["status"] == "PROCESSING" else None

    try:
        return wait_for(started, timeout=30, interval=0.05, what=f"attempt {attempt} to start")
    except AssertionError:
        raise AssertionError(f"{stack.task(task_id)}\n{stack.dump_logs()}") from None


def events(process: Process) -> list[dict[str, Any]]:
    """The process's JSON log lines."""
    found = []
    for line in process.output().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def wait_logged(stack: Stack, process: Process, *needles: str, timeout: float = 30) -> str:
    """Wait until one of ``needles`` appears in the process's output; returns the one found."""

    def logged() -> str | None:
        output = process.output()
        return next((n for n in needles if n in output), None)

    try:
        return wait_for(logged, timeout=timeout, interval=0.1, what=f"a log line with {needles}")
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None


def starts(ledger: Path, task_id: str) -> list[LedgerEntry]:
    return [e for e in read_ledger(ledger, task_id) if e.event == "start"]


def history(stack: Stack, task_id: str) -> list[tuple[int, str | None, int]]:
    """The task's attempts as (number, outcome, pid of the worker that ran it)."""
    response = httpx.get(f"{stack.base_url}/api/tasks/{task_id}/attempts", timeout=30)
    assert response.status_code == 200, response.text
    # A worker id is "host:pid:suffix".
    return [
        (a["attempt"], a["outcome"], int(a["worker_id"].split(":")[-2]))
        for a in response.json()["items"]
    ]


def test_sigkill_mid_task_reruns_it_on_another_worker_after_the_lease(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = fault_stack(stack_factory, workers=2)
    ledger = tmp_path / "ledger"
    task_id = ledger_task(stack, ledger, 60, 0.2)  # the first attempt would outlive the test
    first = wait_started(stack, ledger, task_id)
    victim = worker_with_pid(stack, first.pid)

    victim.signal(signal.SIGKILL)
    assert victim.popen.wait(10) == -signal.SIGKILL

    done = stack.wait_status([task_id], timeout=60)[0]
    assert done["status"] == "SUCCESS", f"{done}\n{stack.dump_logs()}"
    assert done["attempts"] == 2
    assert done["retry_count"] == 1
    assert done["error"] is None, done  # SUCCESS clears it; the history keeps the lost attempt
    run = starts(ledger, task_id)
    assert [e.attempt for e in run] == [1, 2]
    assert run[1].pid != first.pid
    assert run[1].token != first.token
    assert done["result"] == {"attempt": 2, "pid": run[1].pid, "token": run[1].token}
    assert history(stack, task_id) == [(1, "WORKER_LOST", first.pid), (2, "SUCCESS", run[1].pid)]


def test_a_task_that_kills_every_worker_fails_as_worker_lost_while_others_flow(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    pool = 3
    stack = fault_stack(stack_factory, workers=pool)
    ledger = tmp_path / "ledger"
    crash_id = stack.submit(
        {"type": "fault.crash", "payload": {"ledger": str(ledger)}, "max_retries": 2}
    )["id"]
    echoes: list[str] = []

    def crash_settled() -> dict[str, Any] | None:
        # Keep the pool full (a dead worker is replaced) and keep submitting other work.
        alive = [p for p in workers(stack) if p.alive()]
        assert alive, f"every worker is dead at once\n{stack.dump_logs()}"
        for _ in range(pool - len(alive)):
            stack.start_worker()
        for _ in range(min(2, 50 - len(echoes))):
            body = {"type": "debug.echo", "payload": {"n": len(echoes)}, "max_retries": 5}
            echoes.append(stack.submit(body)["id"])
        task = stack.task(crash_id)
        return task if task["status"] in FINAL else None

    try:
        crashed = wait_for(crash_settled, timeout=90, interval=0.2, what="the crash task to end")
    except AssertionError:
        raise AssertionError(f"{stack.task(crash_id)}\n{stack.dump_logs()}") from None
    assert crashed["status"] == "FAILED", crashed
    assert crashed["attempts"] == 3
    assert crashed["retry_count"] == 2
    assert crashed["error"]["type"] == "WorkerLost", crashed
    killed = [p for p in workers(stack) if not p.alive()]
    assert [p.popen.returncode for p in killed] == [1, 1, 1]
    assert {e.pid for e in starts(ledger, crash_id)} == {p.pid for p in killed}

    while len(echoes) < 50:
        echoes.append(stack.submit({"type": "debug.echo", "payload": {"n": len(echoes)}})["id"])
    done = stack.wait_status(echoes, timeout=60)
    assert [t["status"] for t in done] == ["SUCCESS"] * 50, stack.dump_logs()
    assert [t["result"] for t in done] == [{"n": n} for n in range(50)]


def test_sigstop_past_the_lease_rejects_the_late_outcome_of_the_paused_worker(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = fault_stack(stack_factory, workers=2)
    ledger = tmp_path / "ledger"
    task_id = ledger_task(stack, ledger, 2.0)
    first = wait_started(stack, ledger, task_id)
    paused = worker_with_pid(stack, first.pid)

    paused.signal(signal.SIGSTOP)
    try:
        done = stack.wait_status([task_id], timeout=60)[0]
        second = starts(ledger, task_id)[-1]
        assert done["status"] == "SUCCESS", done
        assert done["attempts"] == 2
        assert second.pid != first.pid
        assert done["result"] == {"attempt": 2, "pid": second.pid, "token": second.token}
        attempts = history(stack, task_id)
        assert attempts == [(1, "WORKER_LOST", first.pid), (2, "SUCCESS", second.pid)]
    finally:
        paused.signal(signal.SIGCONT)

    wait_logged(stack, paused, "outcome discarded", "lease lost")
    assert stack.task(task_id) == done, "the paused worker's late outcome overwrote the task"
    assert history(stack, task_id) == attempts, "the late outcome rewrote the attempt history"
    accepted = [
        e
        for e in events(paused)
        if e.get("task_id") == task_id and e["event"] in ("task succeeded", "task failed")
    ]
    assert accepted == [], accepted
    assert paused.alive(), stack.dump_logs()


def test_sigterm_lets_a_running_task_finish_within_the_grace_and_exits_0(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = fault_stack(stack_factory, workers=1, TASKFLOW_SHUTDOWN_GRACE_SECONDS="20")
    ledger = tmp_path / "ledger"
    task_id = ledger_task(stack, ledger, 1.5)
    wait_started(stack, ledger, task_id)
    (worker,) = workers(stack)

    begun = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.popen.wait(30) == 0, stack.dump_logs()
    assert time.monotonic() - begun < 20

    done = stack.task(task_id)
    assert done["status"] == "SUCCESS", f"{done}\n{stack.dump_logs()}"
    assert done["attempts"] == 1


def test_sigterm_hands_back_a_task_longer_than_the_grace_to_another_worker(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    grace = 2.0
    stack = fault_stack(stack_factory, workers=1, TASKFLOW_SHUTDOWN_GRACE_SECONDS=str(grace))
    ledger = tmp_path / "ledger"
    task_id = ledger_task(stack, ledger, 60, 0.2)
    first = wait_started(stack, ledger, task_id)
    (worker,) = workers(stack)

    begun = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.popen.wait(grace + 30) == 0, stack.dump_logs()
    assert time.monotonic() - begun >= grace - 0.5  # it did wait for the handler

    handed_back = stack.task(task_id)
    assert handed_back["status"] == "PENDING", f"{handed_back}\n{stack.dump_logs()}"
    assert handed_back["retry_count"] == 0
    assert handed_back["attempts"] == 1
    assert handed_back["error"] is None

    stack.start_worker()
    done = stack.wait_status([task_id], timeout=60)[0]
    assert done["status"] == "SUCCESS", done
    assert (done["attempts"], done["retry_count"]) == (2, 0)
    second = starts(ledger, task_id)[-1]
    assert second.pid != first.pid
    assert history(stack, task_id) == [(1, "RELEASED", first.pid), (2, "SUCCESS", second.pid)]


def test_sigterm_hands_back_a_handler_that_ignores_its_cancel_and_exits_0(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = fault_stack(stack_factory, workers=1, TASKFLOW_SHUTDOWN_GRACE_SECONDS="1")
    ledger = tmp_path / "ledger"
    payload = {"ledger": str(ledger)}
    task_id = str(stack.submit({"type": "fault.stubborn", "payload": payload})["id"])
    first = wait_started(stack, ledger, task_id)
    (worker,) = workers(stack)

    worker.signal(signal.SIGTERM)
    # Before: the worker waited for the handler for as long as it ran (here two minutes).
    assert worker.popen.wait(60) == 0, stack.dump_logs()
    assert "handler ignored its cancel, handed back" in worker.output()
    handed_back_then_run_elsewhere(stack, task_id, first)


def test_a_second_sigterm_stops_the_worker_at_once_and_hands_back_the_task(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    grace = 60.0
    stack = fault_stack(stack_factory, workers=1, TASKFLOW_SHUTDOWN_GRACE_SECONDS=str(grace))
    ledger = tmp_path / "ledger"
    task_id = ledger_task(stack, ledger, 600, 0.2)
    first = wait_started(stack, ledger, task_id)
    (worker,) = workers(stack)

    worker.signal(signal.SIGTERM)
    wait_logged(stack, worker, "finishing running tasks")
    begun = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.popen.wait(30) == 0, stack.dump_logs()
    assert time.monotonic() - begun < 10, "the second signal did not cut the grace short"
    handed_back_then_run_elsewhere(stack, task_id, first)


def handed_back_then_run_elsewhere(stack: Stack, task_id: str, first: LedgerEntry) -> None:
    """The first attempt was released uncounted; a new worker then runs the task through."""
    handed_back = stack.task(task_id)
    assert handed_back["status"] == "PENDING", f"{handed_back}\n{stack.dump_logs()}"
    assert (handed_back["retry_count"], handed_back["attempts"]) == (0, 1)
    assert history(stack, task_id) == [(1, "RELEASED", first.pid)]

    stack.start_worker()
    done = stack.wait_status([task_id], timeout=60)[0]
    assert (done["status"], done["attempts"], done["retry_count"]) == ("SUCCESS", 2, 0), done


def test_sigterm_with_a_blocking_def_handler_past_the_grace_exits_0_and_hands_back_the_task(
    stack_factory: StackFactory,
) -> None:
    grace = 2.0
    stack = fault_stack(stack_factory, workers=1, TASKFLOW_SHUTDOWN_GRACE_SECONDS=str(grace))
    task_id = stack.submit({"type": "fault.block", "payload": {"sleeps": [120, 0.2]}})["id"]
    stack.wait_status([task_id], {"PROCESSING"}, timeout=30)
    (worker,) = workers(stack)

    worker.signal(signal.SIGTERM)
    try:
        code: int | None = worker.popen.wait(grace + 20)
    except subprocess.TimeoutExpired:
        code = None  # still running: the thread of the handed-back attempt holds it up
        logs = stack.dump_logs()
        worker.popen.kill()

    handed_back = stack.task(task_id)
    assert handed_back["status"] == "PENDING", f"{handed_back}\n{stack.dump_logs()}"
    assert (handed_back["retry_count"], handed_back["attempts"]) == (0, 1)
    stack.start_worker()
    done = stack.wait_status([task_id], timeout=60)[0]
    assert (done["status"], done["attempts"], done["retry_count"]) == ("SUCCESS", 2, 0)
    assert code == 0, f"the worker did not exit {grace + 20}s after SIGTERM\n{logs}"


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def test_garbage_ids_in_redis_are_dropped_and_the_worker_keeps_running(
    stack_factory: StackFactory, shared_redis: redis.Redis
) -> None:
    stack = fault_stack(stack_factory, workers=1)
    (worker,) = workers(stack)
    prefix = stack.env["TASKFLOW_REDIS_PREFIX"]
    ready, delayed = f"{prefix}:q:default:ready", f"{prefix}:q:default:delayed"
    unknown = str(uuid.uuid4())
    shared_redis.zadd(ready, {"not-a-task-id": 0, unknown: 0, "x" * 100_000: 0})
    shared_redis.zadd(delayed, {"no-priority-here": 0, "7:not-a-uuid-either": 0})

    def drained() -> bool:
        return shared_redis.zcard(ready) == 0 and shared_redis.zcard(delayed) == 0

    wait_for(drained, timeout=30, what="the worker to pop the garbage")
    wait_logged(stack, worker, "not-a-uuid-either")
    output = worker.output()
    assert "not-a-task-id" in output
    assert "x" * 50 in output
    assert "x" * 1000 not in output  # logged, but not all 100 KB
    assert "no-priority-here" in output

    task = stack.submit({"type": "debug.echo", "payload": {"after": "garbage"}})
    done = stack.wait_status([task["id"]], timeout=30)[0]
    assert done["status"] == "SUCCESS", done
    assert worker.alive(), stack.dump_logs()
    assert unknown in worker.output(), "an id the store does not know was dropped silently"
