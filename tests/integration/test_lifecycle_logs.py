"""Issue 10: every life-cycle event is a JSON line of a real process, and none is lost at exit.

Lines are written by a thread of their own; these tests stop the processes with SIGTERM and
read their output line by line, so a line lost at exit, split, or interleaved with another
fails them.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import FAULT_SETTINGS, Stack, StackFactory
from tests.integration.processes import TASKFLOW, Process, wait_for

#: What every life-cycle line says about its task.
FACTS = ("task_id", "type", "attempt", "queue")


def lines(process: Process) -> list[dict[str, Any]]:
    """Every line of the process's output, each of which must be one JSON object."""
    text = process.log_path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stop(process: Process) -> list[dict[str, Any]]:
    """SIGTERM, a clean exit, then every line the process wrote."""
    assert process.stop() == 0, process.log_path.read_text()[-3000:]
    return lines(process)


def one(entries: list[dict[str, Any]], event: str, task_id: str) -> dict[str, Any]:
    found = [e for e in entries if e["event"] == event and e.get("task_id") == task_id]
    assert len(found) == 1, (event, task_id, found)
    return found[0]


def assert_facts(entry: dict[str, Any], task: dict[str, Any], *, attempt: int) -> None:
    assert entry["level"] in ("INFO", "WARNING"), entry
    assert all(entry.get(key) is not None for key in FACTS), entry
    assert (entry["type"], entry["queue"], entry["attempt"]) == (task["type"], "default", attempt)


def test_every_life_cycle_event_is_logged_with_its_facts(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = stack_factory(**FAULT_SETTINGS)
    api = stack.start_api()
    worker = stack.start_worker()
    echo = stack.submit({"type": "debug.echo", "payload": {"n": 1}})
    failing = stack.submit(
        {"type": "debug.fail", "payload": {"fail_attempts": 9}, "max_retries": 1}
    )
    later = stack.submit({"type": "debug.echo", "payload": {}, "delay_seconds": 3600})
    held = stack.submit({"type": "fault.gate", "payload": {"path": str(tmp_path / "never")}})
    stack.wait_status([held["id"]], {"PROCESSING"}, timeout=60)
    for task in (later, held):
        response = httpx.post(f"{stack.base_url}/api/tasks/{task['id']}/cancel", timeout=30)
        assert response.status_code == 200, response.text
    stack.wait_status([echo["id"], failing["id"], later["id"], held["id"]], timeout=60)

    worked = stop(worker)
    [worker_id] = [e["worker_id"] for e in worked if e["event"] == "worker started"]
    for task, attempts in ((echo, 1), (failing, 2), (held, 1)):
        for attempt in range(1, attempts + 1):
            claimed = [
                e
                for e in worked
                if e["event"] == "task claimed"
                and e["task_id"] == task["id"]
                and e["attempt"] == attempt
            ]
            assert len(claimed) == 1, (task, worked)
            assert_facts(claimed[0], task, attempt=attempt)
            assert claimed[0]["worker_id"] == worker_id

    succeeded = one(worked, "task succeeded", echo["id"])
    assert_facts(succeeded, echo, attempt=1)
    assert succeeded["worker_id"] == worker_id
    assert succeeded["duration_ms"] >= 0

    retry = one(worked, "retry scheduled", failing["id"])
    failed = one(worked, "task failed", failing["id"])
    for entry, attempt in ((retry, 1), (failed, 2)):
        assert_facts(entry, failing, attempt=attempt)
        assert entry["worker_id"] == worker_id
        assert entry["error"]["type"] == "DebugFailure"
        assert entry["exception"].startswith("Traceback (most recent call last):")
        assert "raise DebugFailure(payload.message)" in entry["exception"]
    assert retry["retry"] == 1
    assert retry["run_at"]

    stopped = one(worked, "task cancelled", held["id"])
    assert_facts(stopped, held, attempt=1)
    assert stopped["worker_id"] == worker_id

    # A worker that dies holding a lease: the API's sweep reaps it once the lease is over.
    crasher = stack.start_worker()
    crash = stack.submit({"type": "fault.crash", "payload": {}, "max_retries": 0})
    stack.wait_status([crash["id"]], timeout=60)
    assert crasher.popen.wait(30) == 1

    served = stop(api)
    for task in (echo, failing, later, held, crash):
        assert_facts(one(served, "task submitted", task["id"]), task, attempt=0)
    assert_facts(one(served, "task cancelled", later["id"]), later, attempt=0)
    requested = one(served, "cancel requested", held["id"])
    assert_facts(requested, held, attempt=1)
    assert requested["worker_id"] == worker_id
    expired = one(served, "lease expired, attempt failed", crash["id"])
    assert_facts(expired, crash, attempt=1)
    assert (expired["status"], expired["error"]["type"]) == ("FAILED", "WorkerLost")


def test_sigterm_right_after_a_burst_loses_no_line_even_when_stderr_is_read_late(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(**FAULT_SETTINGS)
    api = stack.start_api()
    # Nobody reads the worker's stderr until it is told to stop: the pipe fills at once, so
    # most lines still wait in the process when SIGTERM comes, as behind a slow log collector.
    worker = subprocess.Popen(
        [TASKFLOW, "worker", "--concurrency", "32"],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        ids: list[str] = []
        for _ in range(6):
            batch = {"tasks": [{"type": "debug.echo", "payload": {}} for _ in range(500)]}
            response = httpx.post(f"{stack.base_url}/api/tasks/batch", json=batch, timeout=60)
            assert response.status_code == 202, response.text
            ids += [task["id"] for task in response.json()["tasks"]]
        wait_for(lambda: succeeded(stack) >= 300, timeout=60, what="the drain to be under way")
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    assert worker.returncode == 0, output[-3000:]
    in_store = succeeded(stack)
    served = stop(api)

    worked = [json.loads(line) for line in output.splitlines()]
    events = Counter(e["event"] for e in worked)
    done = {e["task_id"] for e in worked if e["event"] == "task succeeded"}
    assert events["task succeeded"] == len(done) == in_store
    assert events["task claimed"] == in_store + events["task handed back"]
    assert worked[-1]["event"] == "worker stopped"
    submitted = [e["task_id"] for e in served if e["event"] == "task submitted"]
    assert sorted(submitted) == sorted(ids)


def succeeded(stack: Stack) -> int:
    response = httpx.get(f"{stack.base_url}/api/tasks/stats", timeout=30)
    assert response.status_code == 200, response.text
    return sum(c["count"] for c in response.json()["items"] if c["status"] == "SUCCESS")


def test_api_processes_ended_by_uvicorn_lose_no_line(stack_factory: StackFactory) -> None:
    # uvicorn ends each of several API processes by raising SIGTERM again once the app has shut
    # down: no exit handler runs, so the app's shutdown must have written every line.
    stack = stack_factory(**FAULT_SETTINGS)
    api = stack.start_api(env={"TASKFLOW_API_PROCESSES": "2"})
    ids = [stack.submit({"type": "debug.echo", "payload": {"n": n}})["id"] for n in range(200)]

    served = stop(api)
    submitted = [e["task_id"] for e in served if e["event"] == "task submitted"]
    assert sorted(submitted) == sorted(ids)
    finished = [e for e in served if e["event"].startswith("Finished server process")]
    assert len(finished) == 2, served[-10:]
