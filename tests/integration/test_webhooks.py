"""Completion webhooks end to end: real `taskflow api` and `taskflow worker` processes on the
real PostgreSQL and Redis, delivering to a local HTTP receiver started by the test."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url

import taskflow
from taskflow import transactional
from taskflow.debug_tasks import tasks as debug_tasks
from taskflow.domain.errors import InvalidSubmission
from taskflow.domain.model import Task
from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import Process, base_env, free_port, wait_for, wait_http_ok
from tests.webhook_receiver import Receiver, documented_verify

SECRET = "whsec_" + base64.b64encode(b"integration-test-secret-32-bytes").decode()
WEBHOOK_SETTINGS = {
    "TASKFLOW_WEBHOOK_SECRET": SECRET,
    "TASKFLOW_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
}


def _stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(**WEBHOOK_SETTINGS)


def _deliveries(stack: Stack, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}/api/tasks/{task_id}/deliveries", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _wait_delivered(stack: Stack, task_id: str, tries: int) -> list[dict[str, Any]]:
    def delivered() -> list[dict[str, Any]] | None:
        items = _deliveries(stack, task_id)["items"]
        return items if len(items) >= tries and items[-1]["error"] is None else None

    try:
        return wait_for(delivered, timeout=60, interval=0.1, what=f"{tries} deliveries")
    except AssertionError:
        raise AssertionError(f"{_deliveries(stack, task_id)}\n{stack.dump_logs()}") from None


def test_a_finished_task_is_posted_signed_and_the_documented_snippet_verifies_it(
    stack_factory: StackFactory,
) -> None:
    stack = _stack(stack_factory)
    stack.start_worker()
    stack.start_api()
    with Receiver(200) as receiver:
        task = stack.submit(
            {"type": "debug.echo", "payload": {"order": 17}, "callback_url": receiver.url}
        )
        [delivery] = _wait_delivered(stack, task["id"], 1)
        final = stack.task(task["id"])
    assert delivery["attempt"] == 1
    assert delivery["status_code"] == 200
    assert _deliveries(stack, task["id"])["callback_url"] == receiver.url
    [got] = receiver.received
    assert documented_verify()(SECRET, got.headers, got.body)
    assert got.headers["webhook-id"].startswith("msg_")
    assert json.loads(got.body) == final  # the task's JSON, exactly as GET shows it
    assert final["status"] == "SUCCESS"
    assert final["result"] == {"order": 17}


def test_a_receiver_failing_twice_gets_three_tries_all_listed(
    stack_factory: StackFactory,
) -> None:
    stack = _stack(stack_factory)
    stack.start_worker()
    stack.start_api()
    with Receiver(500, 500, 200) as receiver:
        task = stack.submit({"type": "debug.echo", "payload": {}, "callback_url": receiver.url})
        deliveries = _wait_delivered(stack, task["id"], 3)
    assert [(d["attempt"], d["status_code"]) for d in deliveries] == [(1, 500), (2, 500), (3, 200)]
    assert [d["error"] for d in deliveries] == [
        "the receiver answered 500",
        "the receiver answered 500",
        None,
    ]
    assert len(receiver.received) == 3
    # One message, retried: the same webhook-id each time, each try signed on its own.
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert all(documented_verify()(SECRET, r.headers, r.body) for r in receiver.received)


def test_a_worker_killed_after_the_final_state_before_delivery_still_delivers(
    stack_factory: StackFactory,
) -> None:
    stack = _stack(stack_factory)
    doomed = stack.start_worker(env={"TASKFLOW_FAULTS": "exit_after_success"})
    stack.start_api()
    with Receiver(200) as receiver:
        task = stack.submit({"type": "debug.echo", "payload": {}, "callback_url": receiver.url})
        wait_for(lambda: not doomed.alive(), timeout=60, what="the crash point to strike")
        assert doomed.popen.wait() == 70, stack.dump_logs()  # died right after storing SUCCESS
        assert stack.task(task["id"])["status"] == "SUCCESS"
        assert _deliveries(stack, task["id"])["items"] == []
        assert receiver.received == []

        stack.start_worker()
        [delivery] = _wait_delivered(stack, task["id"], 1)
    assert delivery["status_code"] == 200
    [got] = receiver.received
    assert json.loads(got.body)["id"] == task["id"]


def test_a_worker_killed_while_the_receiver_holds_its_request_is_delivered_by_another(
    stack_factory: StackFactory,
) -> None:
    # A 2 s timeout: the lease on a message being sent is 8 s, so the next worker tries soon.
    stack = stack_factory(**WEBHOOK_SETTINGS, TASKFLOW_CALLBACK_TIMEOUT_SECONDS="2")
    doomed = stack.start_worker()
    stack.start_api()
    with Receiver(200, hold=True) as receiver:
        task = stack.submit({"type": "debug.echo", "payload": {}, "callback_url": receiver.url})
        wait_for(lambda: receiver.received, timeout=60, interval=0.02, what="the first request")
        doomed.signal(signal.SIGKILL)
        assert doomed.popen.wait(30) == -signal.SIGKILL
        receiver.release()

        stack.start_worker()
        deliveries = _wait_delivered(stack, task["id"], 1)
    assert deliveries[-1]["status_code"] == 200
    assert len(receiver.received) >= 2  # the request the killed worker never heard back from
    # One message: its retry carries the same webhook-id, for the receiver to deduplicate.
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_private_host_not_listed_is_refused_at_submit_and_nothing_is_stored(
    stack_factory: StackFactory,
) -> None:
    stack = _stack(stack_factory)
    stack.start_api()
    for url in ("http://10.0.0.5:8080/hook", "http://localhost:9000/", "http://[::1]/hook"):
        response = httpx.post(
            f"{stack.base_url}/api/tasks",
            json={"type": "debug.echo", "payload": {}, "callback_url": url},
            timeout=10,
        )
        assert response.status_code == 400, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["callback_url"]
    listed = httpx.get(f"{stack.base_url}/api/tasks", timeout=10).json()
    assert listed["items"] == []


def test_taskflow_dev_delivers_on_sqlite_and_again_after_a_manual_retry(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(**WEBHOOK_SETTINGS)
    dev = Process(["dev", "--port", str(port)], env, tmp_path / "dev.log", cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base}/health/ready", timeout=60, process=dev)
        with Receiver(200) as receiver:
            submitted = httpx.post(
                f"{base}/api/tasks",
                json={
                    "type": "debug.fail",
                    "payload": {"fail_attempts": 1},
                    "max_retries": 0,
                    "callback_url": receiver.url,
                },
                timeout=10,
            ).json()
            task_id = submitted["id"]

            def tries(count: int) -> list[dict[str, Any]] | None:
                items = httpx.get(f"{base}/api/tasks/{task_id}/deliveries", timeout=10).json()
                return items["items"] if len(items["items"]) >= count else None

            wait_for(lambda: tries(1), timeout=60, interval=0.1, what="the first delivery")
            retried = httpx.post(f"{base}/api/tasks/{task_id}/retry", timeout=10)
            assert retried.status_code == 202, retried.text
            deliveries = wait_for(lambda: tries(2), timeout=60, interval=0.1, what="another")
        first, second = (json.loads(r.body) for r in receiver.received)
        assert (first["status"], second["status"]) == ("FAILED", "SUCCESS")
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert ids[0] != ids[1]  # a new final state is a new message
        assert [d["status_code"] for d in deliveries] == [200, 200]
    finally:
        assert dev.stop() == 0, dev.output()[-4000:]


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's settings, as taskflow.enqueue reads them, with webhooks on."""
    for name, value in WEBHOOK_SETTINGS.items():
        monkeypatch.setenv(name, value)
    transactional._deployment.cache_clear()
    yield
    transactional._deployment.cache_clear()


def test_a_task_enqueued_in_a_transaction_with_a_callback_is_called_back(
    stack_factory: StackFactory, webhook_env: None
) -> None:
    stack = _stack(stack_factory)
    stack.start_worker()
    stack.start_api()
    url = make_url(stack.env["TASKFLOW_DATABASE_URL"]).set(drivername="postgresql")

    async def enqueue(callback_url: str) -> Task:
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            async with conn.transaction():
                return await taskflow.enqueue(
                    conn, "debug.echo", {"n": 1}, registry=debug_tasks, callback_url=callback_url
                )
        finally:
            await conn.close()

    with pytest.raises(InvalidSubmission) as refused:
        asyncio.run(enqueue("http://10.9.9.9/"))
    assert refused.value.field == "callback_url"
    with Receiver(200) as receiver:
        task = asyncio.run(enqueue(receiver.url))
        [delivery] = _wait_delivered(stack, str(task.id), 1)
    assert delivery["status_code"] == 200
    assert json.loads(receiver.received[0].body)["id"] == str(task.id)
