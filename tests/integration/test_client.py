"""``Client`` and ``AsyncClient`` against real `taskflow api` and `taskflow worker` processes on
PostgreSQL and Redis, with the sample task types (tests/integration/sample_tasks.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskflow import (
    AsyncClient,
    Client,
    Conflict,
    IdempotencyKeyReused,
    InvalidSubmission,
    NotFound,
    Submission,
    Unavailable,
    new_idempotency_key,
)
from taskflow.client import AttemptOutcome, ChangeAction, Task, TaskStatus
from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import run_cli
from tests.integration.sample_tasks import Invoice, build_report, send_invoice
from tests.integration.servers import PostgresServer

ROOT = str(Path(__file__).resolve().parents[2])
# Far enough ahead that no worker starts it during a test.
LATER = {"delay_seconds": 3600.0}


@pytest.fixture(scope="module")
def stack(module_stack_factory: StackFactory) -> Stack:
    built = module_stack_factory(
        TASKFLOW_TASKS="tests.integration.sample_tasks:tasks", PYTHONPATH=ROOT
    )
    built.start_worker("--queues", "billing,default")
    built.start_api()
    return built


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.base_url) as tf:
        yield tf


def test_submit_wait_and_the_attempts_of_a_task_that_failed_once(client: Client) -> None:
    task = client.submit("debug.fail", {"fail_attempts": 1}, max_retries=2, priority=8)
    assert (task.status, task.priority, task.attempts) == (TaskStatus.PENDING, 8, 0)

    done = client.wait(task.id, timeout=60)

    assert (done.status, done.result, done.attempts) == (TaskStatus.SUCCESS, {"attempts": 2}, 2)
    assert done.finished_at is not None
    assert done.finished_at >= done.created_at
    assert client.get(task.id) == done
    outcomes = [a.outcome for a in client.attempts(task.id)]
    assert outcomes == [AttemptOutcome.RETRY, AttemptOutcome.SUCCESS]


def test_submit_many_with_a_key_is_replayed_and_the_key_refuses_another_body(
    client: Client,
) -> None:
    key = new_idempotency_key()
    batch = [Submission(type="debug.echo", payload={"n": n}, **LATER) for n in range(3)]

    first = client.submit_many(batch, idempotency_key=key)
    again = client.submit_many(batch, idempotency_key=key)

    assert [t.id for t in again] == [t.id for t in first]
    assert [t.payload for t in first] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {t.idempotency_key for t in first} == {key}
    with pytest.raises(IdempotencyKeyReused) as reused:
        client.submit_many(batch[:1], idempotency_key=key)
    assert reused.value.status == 422


def test_cancel_retry_and_their_conflicts(client: Client) -> None:
    task = client.submit("debug.echo", {"to": "cancel"}, **LATER)

    cancelled = client.cancel(task.id)
    assert (cancelled.status, cancelled.done) == (TaskStatus.CANCELLED, True)
    with pytest.raises(Conflict):
        client.cancel(task.id)

    again = client.retry(task.id)  # due now: it runs at once
    assert (again.status, again.finished_at) == (TaskStatus.PENDING, None)
    assert client.wait(task.id, timeout=60).status is TaskStatus.SUCCESS
    with pytest.raises(Conflict):
        client.retry(task.id)


def test_an_unknown_id_is_not_found(client: Client) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as caught:
        client.get(missing)
    assert str(missing) in caught.value.problem.detail
    with pytest.raises(NotFound):
        client.attempts(missing)


def test_a_payload_off_its_schema_is_refused_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidSubmission) as refused:
        client.submit("billing.send_invoice", {"order_id": "A-1"})
    assert [e.field for e in refused.value.errors] == ["payload.amount_cents"]
    with pytest.raises(InvalidSubmission) as unknown:
        client.submit("no.such_type", {})
    assert [e.field for e in unknown.value.errors] == ["type"]


def test_iter_tasks_walks_every_page_newest_first(client: Client) -> None:
    run = {"run": str(uuid.uuid4())}
    ids = [client.submit("debug.echo", {"n": n}, metadata=run, **LATER).id for n in range(5)]

    pages = list(client.pages(limit=2, metadata=run))
    listed = [t.id for t in client.iter_tasks(limit=2, metadata=run, status=["PENDING"])]

    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert pages[-1].next_cursor is None
    assert listed == ids[::-1]
    for task_id in ids:
        client.cancel(task_id)


def test_a_declared_task_is_enqueued_with_its_payload_type(client: Client) -> None:
    task = send_invoice.enqueue(Invoice("A-9", 990), client=client)
    assert task.queue == "billing"  # the type's own default, from its registration

    done = client.wait(task.id, timeout=60)

    assert done.status is TaskStatus.SUCCESS
    assert done.result == {"sent": "A-9", "attempt": 1}
    report = client.wait(build_report.enqueue({"rows": 4}, client=client).id, timeout=60)
    assert report.result is not None
    assert report.result["rows"] == 4


def test_a_declared_task_refuses_a_bad_payload_before_sending(client: Client) -> None:
    marker = str(uuid.uuid4())
    with pytest.raises(InvalidSubmission) as refused:
        send_invoice.enqueue({"order_id": marker}, client=client)  # type: ignore[arg-type]
    assert [e.field for e in refused.value.errors] == ["payload.amount_cents"]
    sent = [t.payload for t in client.iter_tasks(type="billing.send_invoice")]
    assert {"order_id": marker} not in sent


def test_wait_gives_up_after_its_timeout(client: Client) -> None:
    task = client.submit("debug.echo", {}, **LATER)
    with pytest.raises(TimeoutError, match="still PENDING"):
        client.wait(task.id, timeout=0.3)
    client.cancel(task.id)


async def test_the_async_client_does_the_same(stack: Stack) -> None:
    async with AsyncClient(stack.base_url) as tf:
        task = await send_invoice.enqueue_async(Invoice("A-10", 5), client=tf)
        done = await tf.wait(task.id, timeout=60)
        assert done.result == {"sent": "A-10", "attempt": 1}
        assert [a.outcome for a in await tf.attempts(task.id)] == [AttemptOutcome.SUCCESS]

        run = {"run": str(uuid.uuid4())}
        batch = [Submission(type="debug.echo", payload={"n": n}, metadata=run) for n in range(3)]
        submitted = await tf.submit_many(batch)
        listed = [t.id async for t in tf.iter_tasks(limit=1, metadata=run)]
        # One batch, one created_at: its tasks are listed by id, not in the batch's order.
        assert sorted(listed) == sorted(t.id for t in submitted)

        with pytest.raises(NotFound):
            await tf.cancel(uuid.uuid4())
        with pytest.raises(InvalidSubmission):
            await tf.submit("debug.sleep", {"seconds": -1})
        counts = {(c.type, c.status): c.count for c in await tf.stats()}
        assert counts[("billing.send_invoice", TaskStatus.SUCCESS)] >= 1


def test_a_stopped_database_is_waited_out_through_retry_after_and_the_task_stored_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    postgres_server.start()
    factory = StackFactory(postgres_server.create_database, tmp_path)
    try:
        stack = factory()
        stack.start_api()
        postgres_server.stop()
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            # The client's pause: the database comes back during it, as it would in life.
            waits.append(seconds)
            postgres_server.start()

        with Client(stack.base_url, retries=0) as once:
            with pytest.raises(Unavailable) as down:
                once.submit("debug.echo", {})
            assert down.value.retry_after == 5.0
        key = new_idempotency_key()
        with Client(stack.base_url, retries=5, sleep=sleep) as patient:
            task = patient.submit("debug.echo", {"after": "outage"}, idempotency_key=key)
            assert waits[0] == 5.0  # the API's Retry-After, not the client's own backoff
            stored = [t for t in patient.iter_tasks() if t.idempotency_key == key]
        assert [t.id for t in stored] == [task.id]
    finally:
        postgres_server.start()
        factory.close()


def failed_task(client: Client, **options: Any) -> Task:
    task = client.submit("debug.fail", {"fail_attempts": 9}, max_retries=0, **options)
    done = client.wait(task.id, timeout=60)
    assert done.status is TaskStatus.FAILED
    return done


def test_retry_with_a_new_payload_runs_it_and_records_who_asked(stack: Stack) -> None:
    with Client(stack.base_url, actor="ana@support") as client:
        task = failed_task(client)
        with pytest.raises(InvalidSubmission) as refused:
            client.retry(task.id, {"fail_attempts": -1})
        assert [e.field for e in refused.value.errors] == ["payload.fail_attempts"]

        client.retry(task.id, {"fail_attempts": 0})
        done = client.wait(task.id, timeout=60)

        assert (done.status, done.payload) == (TaskStatus.SUCCESS, {"fail_attempts": 0})
        [change] = client.history(task.id).changes
    assert (change.action, change.by, change.after_attempt) == (
        ChangeAction.RETRY,
        "ana@support",
        1,
    )
    assert (change.payload_before, change.payload_after) == (
        {"fail_attempts": 9},
        {"fail_attempts": 0},
    )


def test_retry_many_retries_the_tasks_the_filters_select_once_each(client: Client) -> None:
    # CANCELLED ones: revived, they succeed, so none can be selected a second time.
    run = {"run": str(uuid.uuid4())}
    cancelled = [client.submit("debug.echo", {}, metadata=run, **LATER) for _ in range(3)]
    for task in cancelled:
        client.cancel(task.id)
    other = client.submit("debug.echo", {}, **LATER)
    client.cancel(other.id)  # another run's: left alone

    none = client.retry_many(metadata=run, status=["FAILED"])
    first = client.retry_many(metadata=run, limit=2)
    rest = client.retry_many(metadata=run, status=["CANCELLED"])

    assert (none.retried, first.retried, rest.retried) == (0, 2, 1)
    assert sorted(first.ids + rest.ids) == sorted(t.id for t in cancelled)
    done = [client.wait(t.id, timeout=60) for t in cancelled]
    assert {t.status for t in done} == {TaskStatus.SUCCESS}
    assert client.get(other.id).status is TaskStatus.CANCELLED
    changes = [client.history(t.id).changes for t in cancelled]
    assert all(len(c) == 1 and c[0].by.startswith("http:") for c in changes)


def test_the_cli_retries_with_a_payload_and_in_bulk(stack: Stack, client: Client) -> None:
    run = {"run": str(uuid.uuid4())}
    task = failed_task(client, metadata=run)
    url = ["--url", stack.base_url]

    one = run_cli(["retry", str(task.id), "--payload", '{"fail_attempts": 0}', *url], stack.env)
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["payload"] == {"fail_attempts": 0}
    assert client.wait(task.id, timeout=60).status is TaskStatus.SUCCESS
    [change] = client.history(task.id).changes
    assert change.by.startswith("cli:")

    second = failed_task(client, metadata=run)
    bulk = run_cli(["tasks", "retry", "--metadata", f"run={run['run']}", *url], stack.env)
    assert bulk.returncode == 0, bulk.stderr
    assert bulk.stdout == f"retried 1 task\nID\n{second.id}\n"
    assert client.wait(second.id, timeout=60).attempts == 2
    refused = run_cli(["tasks", "retry", "--limit", "0", *url], stack.env)
    assert refused.returncode == 1
    assert refused.stderr.startswith("taskflow: error: HTTP 400")
