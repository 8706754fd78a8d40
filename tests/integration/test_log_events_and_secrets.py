"""Issue 12: the life-cycle lines of real `taskflow api` and `taskflow worker` processes name
their task, type, attempt, queue and worker; a request's lines carry its trace id; and no line
shows a secret, wherever one was planted.

The secret goes in the payloads, in the callback URL's query string, in
TASKFLOW_WEBHOOK_SECRET and in the database URL's password (PostgreSQL here trusts local
connections, so any password is accepted), then the tasks go through success, failure with a
retry, cancels of a waiting and of a running task, a throttled start and a worker's death.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from tests.integration.conftest import FAULT_SETTINGS, Stack, StackFactory
from tests.integration.processes import (
    Process,
    base_env,
    free_port,
    run_cli,
    wait_for,
    wait_http_ok,
)
from tests.webhook_receiver import Receiver

SECRET = f"planted-{uuid.uuid4().hex}"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(f"webhook-{SECRET}".encode()).decode()
#: What every life-cycle line says about its task.
FACTS = ("task_id", "type", "attempt", "queue")


@pytest.fixture
def secret_stacks(pg_database_factory: Callable[[], str], tmp_path: Path) -> Iterator[StackFactory]:
    def database_with_a_password() -> str:
        return make_url(pg_database_factory()).set(password=SECRET).render_as_string(False)

    factory = StackFactory(database_with_a_password, tmp_path)
    yield factory
    factory.close()


def entries(text: str) -> list[dict[str, Any]]:
    """Every line of a process's output, each of which must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stop(process: Process) -> list[dict[str, Any]]:
    assert process.stop() == 0, process.log_path.read_text()[-3000:]
    return entries(process.log_path.read_text())


def one(lines: list[dict[str, Any]], event: str, task_id: str, **match: Any) -> dict[str, Any]:
    found = [
        e
        for e in lines
        if e["event"] == event
        and e.get("task_id") == task_id
        and all(e.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, (event, task_id, match, found)
    return found[0]


def facts_of(line: dict[str, Any], task: dict[str, Any], attempt: int) -> None:
    assert all(line.get(key) is not None for key in FACTS), line
    assert (line["type"], line["queue"], line["attempt"]) == (task["type"], task["queue"], attempt)


def post(
    stack: Stack, path: str, body: Any = None, request_id: str | None = None
) -> httpx.Response:
    headers = {} if request_id is None else {"X-Request-ID": request_id}
    response = httpx.post(f"{stack.base_url}{path}", json=body, headers=headers, timeout=30)
    assert response.status_code in (200, 202), response.text
    return response


def test_every_event_names_its_task_and_worker_and_no_line_shows_a_secret(
    secret_stacks: StackFactory, tmp_path: Path
) -> None:
    stack = secret_stacks(
        **{
            **FAULT_SETTINGS,
            "TASKFLOW_TASKS": "tests.integration.secret_tasks:tasks",
            "TASKFLOW_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TASKFLOW_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
            "TASKFLOW_QUEUE_LIMITS": "narrow=concurrency:1",
        }
    )
    assert SECRET in stack.env["TASKFLOW_DATABASE_URL"]
    worker = stack.start_worker("--queues", "default,narrow")
    api = stack.start_api()
    gate, narrow_gate = tmp_path / f"gate-{SECRET}", tmp_path / f"narrow-{SECRET}"
    secret = {"secret": SECRET}

    with Receiver(200) as receiver:
        hook = f"{receiver.url}?token={SECRET}"
        submitted = post(
            stack,
            "/api/tasks",
            {"type": "debug.echo", "payload": secret, "callback_url": hook},
            request_id="req-ok",
        )
        assert submitted.headers["x-request-id"] == "req-ok"
        ok = submitted.json()
        flaky = stack.submit(
            {
                "type": "secret.flaky",
                "payload": {**secret, "fail_attempts": 9},
                "max_retries": 1,
                "callback_url": hook,
            }
        )
        later = stack.submit({"type": "debug.echo", "payload": secret, "delay_seconds": 3600})
        held = stack.submit({"type": "secret.gate", "payload": {**secret, "path": str(gate)}})
        narrow = [
            stack.submit(
                {
                    "type": "secret.gate",
                    "queue": "narrow",
                    "payload": {**secret, "path": str(narrow_gate)},
                }
            )
            for _ in range(2)
        ]
        stack.wait_status([held["id"]], {"PROCESSING"}, timeout=60)
        wait_for(
            lambda: b'"task throttled"' in worker.log_path.read_bytes(),
            timeout=60,
            what="a narrow task to be held back by its queue's concurrency limit",
        )
        post(stack, f"/api/tasks/{later['id']}/cancel")
        post(stack, f"/api/tasks/{held['id']}/cancel", request_id="req-cancel")
        narrow_gate.touch()
        ids = [t["id"] for t in (ok, flaky, later, held, *narrow)]
        stack.wait_status(ids, timeout=60)
        wait_for(lambda: len(receiver.received) >= 2, timeout=60, what="both webhooks")
    worked = stop(worker)

    # A worker that dies holding a lease: the API's sweep reaps it once the lease is over.
    crasher = stack.start_worker()
    crash = stack.submit({"type": "secret.crash", "payload": secret, "max_retries": 0})
    stack.wait_status([crash["id"]], timeout=60)
    assert crasher.popen.wait(30) == 3
    attempts = httpx.get(f"{stack.base_url}/api/tasks/{crash['id']}/attempts", timeout=30)
    crasher_id = attempts.json()["items"][0]["worker_id"]
    served = stop(api)
    migrated = run_cli(["migrate"], stack.env)
    assert migrated.returncode == 0, migrated.stderr

    # No line of any process shows a secret, however it was planted.
    outputs = {p.log_path.name: p.log_path.read_text() for p in stack.processes}
    outputs["migrate"] = migrated.stdout + migrated.stderr
    planted = (SECRET, WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_"))
    for name, text in outputs.items():
        entries(text)  # every line is one JSON object
        for value in planted:
            assert value not in text, (name, value)
    assert any(e["event"] == "database migrated" for e in entries(outputs["migrate"]))

    [worker_id] = [e["worker_id"] for e in worked if e["event"] == "worker started"]
    for line in served + worked:
        if "task_id" in line and line["event"].startswith(("task ", "retry ", "lease ")):
            assert all(line.get(key) is not None for key in FACTS), line

    # submitted (API), with the request's trace id; a cancel's lines with that request's
    for task in (ok, flaky, later, held, *narrow, crash):
        facts_of(one(served, "task submitted", task["id"]), task, 0)
    assert one(served, "task submitted", ok["id"])["trace_id"] == "req-ok"
    submitted_ids = {one(served, "task submitted", t["id"])["trace_id"] for t in (flaky, later)}
    assert len(submitted_ids) == 2  # a request of its own each, an id of its own each

    # claimed, succeeded
    for task, attempts_made in ((ok, 1), (flaky, 2), (held, 1), (narrow[0], 1), (narrow[1], 1)):
        for attempt in range(1, attempts_made + 1):
            claimed = one(worked, "task claimed", task["id"], attempt=attempt)
            facts_of(claimed, task, attempt)
            assert claimed["worker_id"] == worker_id
    succeeded = one(worked, "task succeeded", ok["id"])
    facts_of(succeeded, ok, 1)
    assert succeeded["worker_id"] == worker_id

    # retry scheduled, then failed: each with its traceback
    retry = one(worked, "retry scheduled", flaky["id"])
    failed = one(worked, "task failed", flaky["id"])
    for line, attempt in ((retry, 1), (failed, 2)):
        facts_of(line, flaky, attempt)
        assert line["worker_id"] == worker_id
        assert line["error"] == {"type": "RuntimeError", "message": "failing on purpose"}
        assert line["exception"].startswith("Traceback (most recent call last):")
        assert line["exception"].rstrip().endswith("RuntimeError: failing on purpose")
    assert (retry["level"], failed["level"]) == ("WARNING", "WARNING")
    assert retry["retry"] == 1
    assert retry["run_at"]
    assert retry["delay_seconds"] >= 0

    # cancelled: a waiting task by the API; a running one asked by the API, stopped by the worker
    facts_of(one(served, "task cancelled", later["id"]), later, 0)
    requested = one(served, "cancel requested", held["id"])
    facts_of(requested, held, 1)
    assert requested["worker_id"] == worker_id
    assert requested["trace_id"] == "req-cancel"
    stopped = one(worked, "task cancelled", held["id"])
    facts_of(stopped, held, 1)
    assert stopped["worker_id"] == worker_id

    # throttled: at INFO the first time, with the worker that held it back and the wait
    throttled = [e for e in worked if e["event"] == "task throttled" and e["level"] == "INFO"]
    assert throttled, worked
    [first] = throttled[:1]
    [task] = [t for t in narrow if t["id"] == first["task_id"]]
    facts_of(first, task, 0)
    assert first["worker_id"] == worker_id
    assert first["wait"] > 0

    # lease expired: the sweep of the API names the worker that died
    expired = one(served, "lease expired, attempt failed", crash["id"])
    facts_of(expired, crash, 1)
    assert expired["worker_id"] == crasher_id
    assert (expired["status"], expired["error"]["type"]) == ("FAILED", "WorkerLost")

    # the webhooks went out and were logged, without their URLs
    delivered = [e for e in worked if e["event"] == "webhook delivered"]
    assert {e["task_id"] for e in delivered} == {ok["id"], flaky["id"]}


def test_taskflow_dev_writes_one_readable_line_per_event_with_the_traceback_below(
    tmp_path: Path,
) -> None:
    port = free_port()
    dev = Process(["dev", "--port", str(port)], base_env(), tmp_path / "dev.log", cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base}/health/ready", timeout=60, process=dev)
        body = {"type": "debug.fail", "payload": {"fail_attempts": 1}, "max_retries": 1}
        response = httpx.post(
            f"{base}/api/tasks", json=body, headers={"X-Request-ID": "dev-1"}, timeout=30
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]

        def succeeded() -> bool:
            task = httpx.get(f"{base}/api/tasks/{task_id}", timeout=30).json()
            return bool(task["status"] == "SUCCESS")

        wait_for(succeeded, timeout=60, what="the task to succeed on its second attempt")
    finally:
        assert dev.stop() == 0, dev.output()[-3000:]
    text = dev.log_path.read_text()
    lines = text.splitlines()

    def line_of(event: str) -> int:
        [index] = [i for i, line in enumerate(lines) if f" {event} task_id={task_id} " in line]
        return index

    time_level = r"\d\d:\d\d:\d\d\.\d{3} (INFO   |WARNING) "
    submitted = lines[line_of("task submitted")]
    assert re.match(time_level + "task submitted task_id=", submitted), submitted
    assert "type=debug.fail attempt=0 queue=default" in submitted
    assert submitted.endswith("trace_id=dev-1")
    retry = line_of("retry scheduled")
    assert re.match(time_level, lines[retry])
    assert "attempt=1" in lines[retry]
    assert "worker_id=" in lines[retry]
    assert lines[retry + 1] == "Traceback (most recent call last):"
    below = lines[retry + 2 : retry + 40]
    assert any(line.endswith("DebugFailure: debug.fail: failing on purpose") for line in below)
    assert "attempt=2" in lines[line_of("task succeeded")]
    assert not text.lstrip().startswith("{")
